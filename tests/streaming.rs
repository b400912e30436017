//! `#[observe]` on functions that return iterators and streams: the observation stays open until
//! the last item (or the drop), is current while each item is produced, notes the first item's
//! time, collects the items as its output, and marks `Err` items and early drops. One in-memory
//! client for the whole binary.

use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use futures::stream::{self, BoxStream, Stream, StreamExt};
use observe_runtime::{
    current_trace_id, observe, span, Config, Exporter, FinishedSpan, FlushGuard, Level,
    MemoryExporter, ObservationType, TraceId,
};

fn memory() -> &'static MemoryExporter {
    static CLIENT: OnceLock<(MemoryExporter, FlushGuard)> = OnceLock::new();
    &CLIENT
        .get_or_init(|| {
            let memory = MemoryExporter::new();
            let guard = Config::default()
                .exporter(Exporter::Memory(memory.clone()))
                .init()
                .expect("init");
            (memory, guard)
        })
        .0
}

/// Runs `body` under a root span and returns the spans of its trace.
fn traced(name: &'static str, body: impl FnOnce()) -> Vec<FinishedSpan> {
    let memory = memory();
    let root = span(name).start();
    let trace: TraceId = current_trace_id().expect("a recorded trace");
    body();
    drop(root);
    memory.trace(trace)
}

fn named<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span named {name} in {spans:#?}"))
}

const STEP: Duration = Duration::from_millis(15);

#[observe]
fn detokenize(id: u32) -> String {
    format!("t{id}")
}

#[observe(name = "chat", as_type = "generation")]
fn chat_tokens(count: u32) -> impl Iterator<Item = String> {
    (0..count).map(|id| {
        std::thread::sleep(STEP);
        detokenize(id)
    })
}

#[test]
fn an_iterator_keeps_its_observation_open_until_the_last_item() {
    let spans = traced("iter-root", || {
        let text: String = chat_tokens(3).collect();
        assert_eq!(text, "t0t1t2");
    });
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let chat = named(&spans, "chat");
    assert_eq!(chat.kind, ObservationType::Generation);
    assert_eq!(
        chat.output.as_deref(),
        Some("\"t0t1t2\""),
        "strings concatenated"
    );
    assert_eq!(chat.input.as_deref(), Some("{\"count\":3}"));
    assert_eq!(chat.level, Level::Default);
    assert_eq!(chat.status_message, None);
    let step = STEP.as_nanos() as u64;
    assert!(
        chat.end_unix_nanos - chat.start_unix_nanos >= 3 * step,
        "the observation lasted while the items were produced"
    );
    let first = chat
        .completion_start_unix_nanos
        .expect("the first item's time");
    assert!(
        first >= chat.start_unix_nanos + step,
        "after the first step"
    );
    assert!(first <= chat.end_unix_nanos);
    let tokens: Vec<_> = spans.iter().filter(|s| s.name == "detokenize").collect();
    assert_eq!(tokens.len(), 3);
    for token in tokens {
        assert_eq!(
            token.parent_span_id,
            Some(chat.span_id),
            "produced while the stream's observation was current"
        );
    }
}

#[observe]
fn numbers(count: u32) -> Box<dyn Iterator<Item = u32> + Send> {
    Box::new(0..count)
}

#[test]
fn a_dropped_iterator_says_how_many_items_were_taken() {
    let spans = traced("iter-drop", || {
        let taken: Vec<u32> = numbers(10).take(2).collect();
        assert_eq!(taken, [0, 1]);
    });
    let observed = named(&spans, "numbers");
    assert_eq!(observed.level, Level::Warning);
    assert_eq!(
        observed.status_message.as_deref(),
        Some("dropped before the end, after 2 items")
    );
    assert_eq!(observed.output.as_deref(), Some("[0,1]"), "a JSON array");
}

#[observe]
fn parse_all(lines: Vec<&'static str>) -> impl Iterator<Item = Result<u32, String>> {
    lines
        .into_iter()
        .map(|line| line.parse::<u32>().map_err(|e| format!("{line:?}: {e}")))
}

#[test]
fn an_err_item_marks_the_observation_failed() {
    let spans = traced("iter-err", || {
        let results: Vec<_> = parse_all(vec!["1", "x", "3", "y"]).collect();
        assert_eq!(results.len(), 4);
    });
    let observed = named(&spans, "parse_all");
    assert_eq!(observed.level, Level::Error);
    assert_eq!(
        observed.status_message.as_deref(),
        Some("\"x\": invalid digit found in string (and 1 more error)")
    );
    assert_eq!(observed.output.as_deref(), Some("[1,3]"));
}

#[observe]
fn open_feed(ok: bool) -> Result<impl Iterator<Item = &'static str>, std::io::Error> {
    if ok {
        Ok(["a", "b"].into_iter())
    } else {
        Err(std::io::Error::other("feed offline"))
    }
}

#[test]
fn a_result_of_an_iterator_ends_at_once_on_err_and_with_the_items_on_ok() {
    let spans = traced("iter-result", || {
        assert!(open_feed(false).is_err());
        let items: Vec<_> = open_feed(true).expect("ok").collect();
        assert_eq!(items, ["a", "b"]);
    });
    let feeds: Vec<_> = spans.iter().filter(|s| s.name == "open_feed").collect();
    assert_eq!(feeds.len(), 2);
    let failed = feeds
        .iter()
        .find(|s| s.level == Level::Error)
        .expect("the Err");
    assert_eq!(failed.status_message.as_deref(), Some("feed offline"));
    assert_eq!(failed.completion_start_unix_nanos, None);
    let ok = feeds
        .iter()
        .find(|s| s.level != Level::Error)
        .expect("the Ok");
    assert_eq!(ok.output.as_deref(), Some("\"ab\""));
    assert!(ok.completion_start_unix_nanos.is_some());
}

#[observe]
fn letters(text: &str) -> std::str::Chars<'_> {
    text.chars()
}

#[observe(stream = false)]
fn opted_out(count: u32) -> impl Iterator<Item = u32> {
    0..count
}

#[test]
fn concrete_iterator_types_and_opted_out_functions_are_plain_values() {
    let spans = traced("iter-plain", || {
        assert_eq!(letters("ab").count(), 2);
        assert_eq!(opted_out(3).count(), 3);
    });
    let chars = named(&spans, "letters");
    assert_eq!(chars.output.as_deref(), Some("\"Chars(['a', 'b'])\""));
    assert_eq!(chars.completion_start_unix_nanos, None);
    let plain = named(&spans, "opted_out");
    assert_eq!(plain.completion_start_unix_nanos, None);
    assert_eq!(plain.level, Level::Default);
}

// --- streams ---------------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[observe(name = "chat-stream", as_type = "generation")]
async fn stream_chat(prompt: String) -> impl Stream<Item = String> {
    let words: Vec<String> = prompt.split(' ').map(str::to_string).collect();
    stream::iter(words).then(|word| async move {
        tokio::time::sleep(STEP).await;
        detokenize(word.len() as u32)
    })
}

#[test]
fn an_async_fn_returning_a_stream_ends_with_its_last_item() {
    let runtime = runtime();
    let spans = traced("stream-root", || {
        let tokens: Vec<String> = runtime.block_on(async {
            let stream = stream_chat("hello big world".into()).await;
            // Consumed on another task of the multi-threaded runtime.
            tokio::spawn(stream.collect::<Vec<_>>()).await.unwrap()
        });
        assert_eq!(tokens, ["t5", "t3", "t5"]);
    });
    let chat = named(&spans, "chat-stream");
    assert_eq!(chat.output.as_deref(), Some("\"t5t3t5\""));
    let step = STEP.as_nanos() as u64;
    assert!(chat.end_unix_nanos - chat.start_unix_nanos >= 3 * step);
    let first = chat.completion_start_unix_nanos.expect("the first item");
    assert!(first >= chat.start_unix_nanos + step && first <= chat.end_unix_nanos);
    let tokens: Vec<_> = spans.iter().filter(|s| s.name == "detokenize").collect();
    assert_eq!(tokens.len(), 3);
    assert!(tokens
        .iter()
        .all(|t| t.parent_span_id == Some(chat.span_id)));
}

#[observe]
fn pinned_events(count: u32) -> Pin<Box<dyn Stream<Item = Result<u32, String>> + Send>> {
    Box::pin(stream::iter(0..count).map(|n| {
        if n == 1 {
            Err("rate limited".to_string())
        } else {
            Ok(n)
        }
    }))
}

#[observe(stream = true)]
fn aliased_events(count: u32) -> BoxStream<'static, u32> {
    stream::iter(0..count).boxed()
}

#[test]
fn pinned_boxed_and_aliased_streams_are_wrapped() {
    let runtime = runtime();
    let spans = traced("stream-boxed", || {
        runtime.block_on(async {
            assert_eq!(pinned_events(3).collect::<Vec<_>>().await.len(), 3);
            assert_eq!(aliased_events(4).take(1).collect::<Vec<_>>().await, [0]);
        });
    });
    let pinned = named(&spans, "pinned_events");
    assert_eq!(pinned.level, Level::Error);
    assert_eq!(pinned.status_message.as_deref(), Some("rate limited"));
    assert_eq!(pinned.output.as_deref(), Some("[0,2]"));
    let aliased = named(&spans, "aliased_events");
    assert_eq!(aliased.level, Level::Warning);
    assert_eq!(
        aliased.status_message.as_deref(),
        Some("dropped before the end, after 1 item")
    );
    assert_eq!(aliased.output.as_deref(), Some("[0]"));
}
