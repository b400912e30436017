//! `testing::capture` as a user's own tests use it: no `init`, tests running in parallel in one
//! binary, each seeing exactly its own observations and scores, also from threads and tasks
//! bound with the crate's helpers, and never taking spans of a global client running beside it.

use observe_runtime::{
    current_observation, observe, score_current_trace, span, testing, Config, Exporter,
    MemoryExporter, ScoreValue,
};
use serde_json::json;

#[observe(as_type = "tool")]
fn lookup(topic: &str, index: usize) -> String {
    format!("{topic}#{index}")
}

#[observe(as_type = "generation")]
fn answer(question: &str, facts: Vec<String>) -> String {
    current_observation().model("test-model");
    format!("{question}: {}", facts.join(", "))
}

/// An agent that fans out to two threads and then asks a model; the topic makes its tree its own.
#[observe(as_type = "agent")]
fn agent(topic: String) -> String {
    let first = observe_runtime::thread::spawn({
        let topic = topic.clone();
        move || lookup(&topic, 1)
    });
    let second = observe_runtime::thread::spawn({
        let topic = topic.clone();
        move || lookup(&topic, 2)
    });
    let facts = vec![first.join().unwrap(), second.join().unwrap()];
    score_current_trace("facts", facts.len() as f64);
    answer(&topic, facts)
}

/// One test's run: its own topic everywhere, its own two lookups, its own score.
fn run_agent(topic: &str) {
    let run = testing::capture(|| agent(topic.to_string()));
    assert_eq!(run.value, format!("{topic}: {topic}#1, {topic}#2"));
    assert_eq!(run.spans().len(), 4, "{}", run.tree());
    assert_eq!(
        run.tree(),
        "agent [agent]\n  lookup [tool]\n  lookup [tool]\n  answer [generation] model=test-model\n"
    );
    assert_eq!(run.input("agent"), json!({ "topic": topic }));
    let mut lookups: Vec<serde_json::Value> = run
        .all("lookup")
        .iter()
        .map(|span| serde_json::from_str(span.input.as_deref().unwrap()).unwrap())
        .collect();
    lookups.sort_by_key(|input| input["index"].as_u64());
    assert_eq!(
        lookups,
        [
            json!({"topic": topic, "index": 1}),
            json!({"topic": topic, "index": 2})
        ]
    );
    assert_eq!(
        run.output("answer"),
        json!(format!("{topic}: {topic}#1, {topic}#2"))
    );
    let trace_id = run.observation("agent").trace_id;
    assert!(run.spans().iter().all(|span| span.trace_id == trace_id));
    assert_eq!(run.scores().len(), 1);
    assert_eq!(run.scores()[0].name, "facts");
    assert_eq!(run.scores()[0].value, ScoreValue::Numeric(2.0));
    assert_eq!(run.scores()[0].trace_id, Some(trace_id));
}

macro_rules! parallel_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_agent(stringify!($name));
            }
        )*
    };
}

parallel_tests!(
    topic_01, topic_02, topic_03, topic_04, topic_05, topic_06, topic_07, topic_08, topic_09,
    topic_10, topic_11, topic_12, topic_13, topic_14, topic_15, topic_16,
);

#[observe]
async fn fetch(id: u32) -> String {
    tokio::task::yield_now().await;
    format!("item {id}")
}

#[observe]
async fn fetch_all(ids: Vec<u32>) -> Vec<String> {
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| observe_runtime::task::spawn(fetch(id)))
        .collect();
    let mut items = Vec::new();
    for task in tasks {
        items.push(task.await.unwrap());
    }
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_capture_takes_tasks_spawned_in_the_trace() {
    let run = testing::capture_async(fetch_all(vec![1, 2, 3])).await;
    assert_eq!(run.value, ["item 1", "item 2", "item 3"]);
    assert_eq!(run.all("fetch").len(), 3, "{}", run.tree());
    assert_eq!(run.spans().len(), 4);
    let root = run.observation("fetch_all");
    assert_eq!(run.children(root).len(), 3);
    let mut outputs: Vec<String> = run
        .all("fetch")
        .iter()
        .map(|span| span.output.clone().unwrap())
        .collect();
    outputs.sort();
    assert_eq!(outputs, ["\"item 1\"", "\"item 2\"", "\"item 3\""]);
}

#[test]
fn a_global_client_beside_captures_keeps_its_own_spans() {
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .unwrap();
    for _ in 0..50 {
        let run = testing::capture(|| span("captured").start().end());
        assert_eq!(run.tree(), "captured [span]\n");
        span("global").start().end();
    }
    guard.shutdown().unwrap();
    // Other tests of this binary may record into the global client meanwhile: count by name.
    let spans = memory.spans();
    assert_eq!(spans.iter().filter(|s| s.name == "global").count(), 50);
    assert_eq!(spans.iter().filter(|s| s.name == "captured").count(), 0);
}

#[test]
fn only_what_starts_inside_a_capture_is_taken() {
    span("before").start().end();
    let run = testing::capture(|| {
        span("inside").start().end();
        42
    });
    span("after").start().end();
    assert_eq!(run.value, 42);
    assert_eq!(run.tree(), "inside [span]\n");
    let empty = testing::capture(|| ());
    assert!(empty.spans().is_empty());
}

#[test]
fn an_error_shows_its_level_and_message() {
    #[observe]
    fn fail(code: u8) -> Result<u8, String> {
        Err(format!("code {code}"))
    }
    let run = testing::capture(|| fail(7));
    assert_eq!(run.tree(), "fail [span] level=ERROR status=\"code 7\"\n");
    assert_eq!(run.input("fail"), json!({"code": 7}));
}

#[test]
fn a_missing_observation_names_those_there_are() {
    let run = testing::capture(|| {
        span("b").start().end();
        span("a").start().end();
    });
    let panic = std::panic::catch_unwind(|| run.observation("c").name.clone()).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<String>().unwrap(),
        "no observation named \"c\" was recorded; there are: [\"a\", \"b\"]"
    );
}

#[test]
fn a_capture_takes_the_configuration_given() {
    let config = Config::default().capture_io(false);
    let run = testing::capture_with(config, || lookup("x", 1)).unwrap();
    assert_eq!(run.observation("lookup").input, None);
    let bad = testing::capture_with(Config::default().sample_rate(2.0), || ());
    assert_eq!(
        bad.unwrap_err().to_string(),
        "LANGFUSE_SAMPLE_RATE=\"2\" is not valid: expected a number from 0 to 1, the fraction of traces to keep (1 keeps all)"
    );
}
