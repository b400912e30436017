//! Generations as Langfuse reads them, at a fake Langfuse server (decoded with the official
//! OpenTelemetry messages): every setter's attribute, usage read from providers' answers, the
//! prompt link, and a streamed generation's time to first token, early drop and `Err` items.
//!
//! The client is global to the process: every test holds [`support::serial`] and shuts its
//! client down before it ends.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use observe_runtime::{
    current_observation, observe, span, Config, Cost, Exporter, MemoryExporter, ObservationType,
    Usage,
};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::json;

use support::{by_name, child_mode, FakeLangfuse, ReceivedSpan};

use support::sdk::{PUBLIC_KEY, SECRET_KEY};
const WAIT: Duration = Duration::from_secs(10);

fn config(server: &FakeLangfuse) -> Config {
    support::sdk::config_for(server)
}

/// Runs `body` with a client sending to a fresh fake server; returns the spans that arrived.
fn received(count: usize, body: impl FnOnce()) -> Vec<ReceivedSpan> {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    body();
    guard.flush().expect("flush against a healthy server");
    let spans = server.wait_for_spans(count, WAIT);
    drop(guard);
    assert_eq!(
        spans.len(),
        count,
        "{:?}",
        spans.iter().map(ReceivedSpan::name).collect::<Vec<_>>()
    );
    spans
}

#[test]
fn the_iso_parser_of_the_tests_reads_known_instants() {
    assert_eq!(support::iso8601_micros("1970-01-01T00:00:00.000000Z"), 0);
    assert_eq!(
        support::iso8601_micros("2025-11-25T14:44:04.123456Z"),
        1_764_081_844_123_456
    );
    assert_eq!(
        support::iso8601_micros("2000-02-29T00:00:00.000001Z"),
        951_782_400_000_001
    );
}

#[observe(name = "chat", as_type = "generation")]
fn chat(question: &str) -> String {
    let provider_usage = r#"{"prompt_tokens": 1270, "completion_tokens": 155, "total_tokens": 1425,
        "prompt_tokens_details": {"cached_tokens": 1152, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 64}}"#;
    let usage: Usage = serde_json::from_str(provider_usage).expect("an OpenAI usage object");
    current_observation()
        .model("gpt-4o-mini")
        .model_parameters(json!({"temperature": 0.2, "max_tokens": 256}))
        .usage(usage)
        .cost(Cost::new(0.000_018, 0.000_054).with_detail("input_cached_tokens", 0.000_086))
        .completion_start_time(UNIX_EPOCH + Duration::from_nanos(1_764_081_844_123_456_789))
        .prompt("support-answer", 7)
        .metadata("region", "eu")
        .status_message("served from cache");
    format!("answer to {question}")
}

#[test]
fn every_generation_setter_arrives_as_the_wire_doc_says() {
    let spans = received(1, || {
        chat("why?");
    });
    let chat = by_name(&spans, "chat");
    assert_eq!(
        chat.str_attr("langfuse.observation.type"),
        Some("generation")
    );
    assert_eq!(
        chat.str_attr("langfuse.observation.model.name"),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.2, "max_tokens": 256}))
    );
    // Cached and reasoning tokens are their own usage types, taken out of input and output,
    // as Langfuse prices them; the total is the provider's.
    assert_eq!(
        chat.json_attr("langfuse.observation.usage_details"),
        Some(json!({
            "input": 118, "output": 91, "total": 1425,
            "input_cached_tokens": 1152, "output_reasoning_tokens": 64
        }))
    );
    let cost = chat
        .json_attr("langfuse.observation.cost_details")
        .expect("cost_details");
    assert_eq!(
        cost.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["input", "input_cached_tokens", "output", "total"]
    );
    assert_eq!(cost["input"], json!(0.000_018));
    assert_eq!(cost["output"], json!(0.000_054));
    assert_eq!(cost["input_cached_tokens"], json!(0.000_086));
    let total = cost["total"].as_f64().unwrap();
    assert!((total - 0.000_158).abs() < 1e-12, "total {total}");
    assert_eq!(
        chat.str_attr("langfuse.observation.completion_start_time"),
        Some("2025-11-25T14:44:04.123456Z")
    );
    assert_eq!(
        chat.str_attr("langfuse.observation.prompt.name"),
        Some("support-answer")
    );
    assert_eq!(
        chat.int_attr("langfuse.observation.prompt.version"),
        Some(7)
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.metadata.region"),
        Some(json!("eu"))
    );
    assert_eq!(
        chat.str_attr("langfuse.observation.status_message"),
        Some("served from cache")
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.input"),
        Some(json!({"question": "why?"}))
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.output"),
        Some(json!("answer to why?"))
    );
}

#[observe(name = "plan", as_type = "agent")]
fn plan_with_a_prompt(step: u32) -> u32 {
    current_observation().prompt("planner", 3);
    step
}

/// A prompt link on anything but a generation would make Langfuse drop the observation: it is
/// left out, the observation arrives, and the user is told once.
#[test]
fn a_prompt_link_on_a_non_generation_is_left_out_with_one_warning() {
    if child_mode().as_deref() == Some("prompt") {
        let memory = MemoryExporter::new();
        let guard = Config::default()
            .exporter(Exporter::Memory(memory.clone()))
            .init()
            .expect("init");
        plan_with_a_prompt(1);
        plan_with_a_prompt(2);
        let linked = span("llm").as_type(ObservationType::Generation).start();
        current_observation().prompt("planner", 3);
        linked.end();
        drop(guard);
        let spans = memory.spans();
        let prompts: Vec<_> = spans
            .iter()
            .map(|s| (s.name.to_string(), s.prompt.as_ref().map(|p| p.version)))
            .collect();
        assert_eq!(
            prompts,
            [
                ("plan".to_string(), None),
                ("plan".to_string(), None),
                ("llm".to_string(), Some(3))
            ]
        );
        return;
    }
    let output = child_test!("prompt", &[], Duration::from_secs(60));
    output.assert_success();
    let warnings: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.starts_with("[langfuse] warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "[langfuse] warning: prompt \"planner\" version 3 was not linked to the agent \
             observation \"plan\": Langfuse accepts a prompt link only on a generation and would \
             drop the observation; use #[observe(as_type = \"generation\")]"
        ],
        "{}",
        output.stderr
    );
}

const FIRST_TOKEN_AFTER: Duration = Duration::from_millis(120);
const BETWEEN_TOKENS: Duration = Duration::from_millis(40);

#[observe(name = "stream-chat", as_type = "generation")]
fn stream_chat(tokens: u32) -> impl Iterator<Item = Result<String, std::io::Error>> {
    current_observation().model("gpt-4o");
    (0..tokens).map(move |i| {
        std::thread::sleep(if i == 0 {
            FIRST_TOKEN_AFTER
        } else {
            BETWEEN_TOKENS
        });
        if i == 3 {
            Err(std::io::Error::other("connection reset by the provider"))
        } else {
            Ok(format!("t{i} "))
        }
    })
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// The observation ends at the last item, not when the function returns; the first item's time
/// is the completion start time.
#[test]
fn a_streamed_generation_ends_at_the_last_item_with_its_first_item_time() {
    let mut returned_at = 0;
    let spans = received(1, || {
        let tokens = stream_chat(3);
        returned_at = nanos(SystemTime::now());
        let text: String = tokens.map(|t| t.unwrap()).collect();
        assert_eq!(text, "t0 t1 t2 ");
    });
    let chat = by_name(&spans, "stream-chat");
    let (start, end) = (chat.span.start_time_unix_nano, chat.span.end_time_unix_nano);
    let first = support::iso8601_micros(
        chat.str_attr("langfuse.observation.completion_start_time")
            .expect("completion_start_time"),
    ) * 1_000;
    let first_after = FIRST_TOKEN_AFTER.as_nanos() as u64;
    let rest = 2 * BETWEEN_TOKENS.as_nanos() as u64;
    // Lower bounds from the sleeps (1 ms of slack for the microsecond rounding and the clocks).
    assert!(
        first + 1_000_000 >= start + first_after,
        "first token {first} is at least {first_after} ns after the start {start}"
    );
    assert!(
        end + 1_000_000 >= first + rest,
        "the end {end} comes after the last token, {rest} ns after the first {first}"
    );
    assert!(
        end > returned_at + rest,
        "the end {end} is not when the function returned ({returned_at})"
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.output"),
        Some(json!("t0 t1 t2 "))
    );
    assert_eq!(
        chat.str_attr("langfuse.observation.model.name"),
        Some("gpt-4o")
    );
    assert_eq!(chat.str_attr("langfuse.observation.level"), None);
    assert_ne!(chat.status_code(), StatusCode::Error as i32);
}

#[test]
fn a_streamed_generation_dropped_early_arrives_as_a_warning() {
    let spans = received(1, || {
        let first: Vec<String> = stream_chat(3).take(2).map(|t| t.unwrap()).collect();
        assert_eq!(first, ["t0 ", "t1 "]);
    });
    let chat = by_name(&spans, "stream-chat");
    assert_eq!(chat.str_attr("langfuse.observation.level"), Some("WARNING"));
    assert_eq!(
        chat.str_attr("langfuse.observation.status_message"),
        Some("dropped before the end, after 2 items")
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.output"),
        Some(json!("t0 t1 "))
    );
    assert_ne!(chat.status_code(), StatusCode::Error as i32);
}

#[test]
fn an_err_item_of_a_streamed_generation_arrives_as_an_error() {
    let spans = received(1, || {
        let items: Vec<_> = stream_chat(5).collect();
        assert_eq!(items.len(), 5);
    });
    let chat = by_name(&spans, "stream-chat");
    assert_eq!(chat.str_attr("langfuse.observation.level"), Some("ERROR"));
    assert_eq!(chat.status_code(), StatusCode::Error as i32);
    assert_eq!(
        chat.str_attr("langfuse.observation.status_message"),
        Some("connection reset by the provider")
    );
    assert_eq!(chat.status_message(), "connection reset by the provider");
}
