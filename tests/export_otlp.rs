//! The OTLP export as Langfuse sees it: what arrives at a fake Langfuse server (decoded with the
//! official OpenTelemetry messages), how requests are batched, retried and refused, and what the
//! user is told when the keys are wrong.
//!
//! The client is global to the process: every test holds [`support::serial`] and shuts its
//! client down before it ends.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use observe_runtime::{
    current_observation, current_trace, span, stats, Config, Cost, FlushError, Level,
    ObservationType, Stats, Usage,
};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use serde_json::json;

use support::server::{
    BEARER_DENIED, INVALID_AUTHORIZATION_HEADER, INVALID_AUTHORIZATION_HEADER_HOST,
    INVALID_CREDENTIALS, NO_AUTHORIZATION_HEADER, TRACES_PATH,
};
use support::{by_name, FakeLangfuse, Fault, ReceivedSpan, RecordedRequest};

use support::sdk::{PUBLIC_KEY, SECRET_KEY};
/// How long to wait for something that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);

/// A client for `server` that exports only when asked (or when 512 spans are waiting).
fn config(server: &FakeLangfuse) -> Config {
    support::sdk::config_for(server)
        .max_queue(8192)
        .environment("test")
        .release("rel-1")
        .service_name("svc")
}

/// Counter increments since a baseline taken after `init` (whether the counters are per client
/// or per process).
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    spans_queued: u64,
    spans_exported: u64,
    spans_dropped_queue_full: u64,
    spans_dropped_export_failed: u64,
    requests_ok: u64,
    requests_retried: u64,
    requests_failed: u64,
    requests_unanswered: u64,
    spans_unanswered: u64,
    auth_failures: u64,
}

impl Counts {
    /// What became of the attempts: (unanswered, failed, retried, accepted).
    fn attempts(&self) -> (u64, u64, u64, u64) {
        (
            self.requests_unanswered,
            self.requests_failed,
            self.requests_retried,
            self.requests_ok,
        )
    }
}

fn counts_since(before: &Stats) -> Counts {
    let now = stats();
    Counts {
        spans_queued: now.spans_queued.saturating_sub(before.spans_queued),
        spans_exported: now.spans_exported.saturating_sub(before.spans_exported),
        spans_dropped_queue_full: now
            .spans_dropped_queue_full
            .saturating_sub(before.spans_dropped_queue_full),
        spans_dropped_export_failed: now
            .spans_dropped_export_failed
            .saturating_sub(before.spans_dropped_export_failed),
        requests_ok: now.requests_ok.saturating_sub(before.requests_ok),
        requests_retried: now.requests_retried.saturating_sub(before.requests_retried),
        requests_failed: now.requests_failed.saturating_sub(before.requests_failed),
        requests_unanswered: now
            .requests_unanswered
            .saturating_sub(before.requests_unanswered),
        spans_unanswered: now.spans_unanswered.saturating_sub(before.spans_unanswered),
        auth_failures: now.auth_failures.saturating_sub(before.auth_failures),
    }
}

/// One root span (a trace of its own) per name.
fn root_spans(names: &[&'static str]) {
    for &name in names {
        span(name).start().end();
    }
}

fn statuses(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|request| format!("{:?}", request.answer))
        .collect()
}

/// Panics unless every accepted span id appears exactly once.
fn assert_no_duplicates(spans: &[ReceivedSpan]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for span in spans {
        *seen.entry(span.span_id()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, &count)| count > 1).collect();
    assert!(
        duplicated.is_empty(),
        "span ids accepted more than once: {duplicated:?}"
    );
}

fn is_lower_hex(text: &str, length: usize) -> bool {
    text.len() == length
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        && text.chars().any(|c| c != '0')
}

/// A JSON-text attribute, or a plain string sent as is (both are valid on the wire).
fn text_or_json(span: &ReceivedSpan, key: &str) -> Option<serde_json::Value> {
    span.json_attr(key)
        .or_else(|| span.str_attr(key).map(|text| json!(text)))
}

#[test]
fn nested_trace_arrives_with_exact_parents_and_attributes() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init with a valid config");

    let root = span("agent")
        .as_type(ObservationType::Agent)
        .input(json!({"q": "hi"}))
        .start();
    current_trace()
        .name("my-trace")
        .session_id("s-1")
        .user_id("u-1")
        .tags(["a", "b"])
        .metadata("k", json!(1))
        .version("v2")
        .public(true);
    {
        let tool = span("search")
            .as_type(ObservationType::Tool)
            .input(json!({"query": "hi"}))
            .start();
        current_observation().output(json!(["doc about hi"]));
        tool.end();
    }
    {
        let generation = span("llm").as_type(ObservationType::Generation).start();
        current_observation()
            .model("gpt-4o")
            .usage(Usage {
                input: 10,
                output: 25,
                ..Default::default()
            })
            .cost(Cost {
                total: Some(0.0012),
                ..Default::default()
            })
            .output("answer")
            .level(Level::Warning)
            .status_message("slow")
            .metadata("temperature", 0.2)
            .model_parameters(json!({"temperature": 0.2}));
        generation.end();
    }
    current_observation().output(json!({"answer": "answer"}));
    root.end();
    guard.flush().expect("flush against a healthy server");

    let spans = server.wait_for_spans(3, WAIT);
    assert_eq!(
        spans.len(),
        3,
        "spans: {:?}",
        spans.iter().map(ReceivedSpan::name).collect::<Vec<_>>()
    );
    let root = by_name(&spans, "agent");
    let tool = by_name(&spans, "search");
    let generation = by_name(&spans, "llm");

    // The tree.
    assert!(
        is_lower_hex(&root.trace_id(), 32),
        "trace id {}",
        root.trace_id()
    );
    for span in [tool, generation] {
        assert_eq!(span.trace_id(), root.trace_id(), "{} trace id", span.name());
        assert_eq!(
            span.parent_span_id(),
            root.span_id(),
            "{} parent",
            span.name()
        );
    }
    assert_eq!(root.parent_span_id(), "", "the root has no parent");
    let ids: BTreeSet<String> = spans.iter().map(ReceivedSpan::span_id).collect();
    assert_eq!(ids.len(), 3, "span ids are distinct: {ids:?}");
    for span in &spans {
        assert!(
            is_lower_hex(&span.span_id(), 16),
            "span id {}",
            span.span_id()
        );
        assert_eq!(
            span.kind(),
            SpanKind::Internal as i32,
            "{} kind",
            span.name()
        );
        assert!(
            span.span.start_time_unix_nano > 0
                && span.span.start_time_unix_nano <= span.span.end_time_unix_nano,
            "{} times {}..{}",
            span.name(),
            span.span.start_time_unix_nano,
            span.span.end_time_unix_nano
        );
    }
    for child in [tool, generation] {
        assert!(
            root.span.start_time_unix_nano <= child.span.start_time_unix_nano
                && child.span.end_time_unix_nano <= root.span.end_time_unix_nano,
            "{} runs inside the root",
            child.name()
        );
    }

    // Observation attributes.
    assert_eq!(root.str_attr("langfuse.observation.type"), Some("agent"));
    assert_eq!(tool.str_attr("langfuse.observation.type"), Some("tool"));
    assert_eq!(
        generation.str_attr("langfuse.observation.type"),
        Some("generation")
    );
    assert_eq!(
        root.json_attr("langfuse.observation.input"),
        Some(json!({"q": "hi"}))
    );
    assert_eq!(
        root.json_attr("langfuse.observation.output"),
        Some(json!({"answer": "answer"}))
    );
    assert_eq!(
        tool.json_attr("langfuse.observation.input"),
        Some(json!({"query": "hi"}))
    );
    assert_eq!(
        tool.json_attr("langfuse.observation.output"),
        Some(json!(["doc about hi"]))
    );
    assert_eq!(
        generation.str_attr("langfuse.observation.model.name"),
        Some("gpt-4o")
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.usage_details"),
        Some(json!({"input": 10, "output": 25, "total": 35}))
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.cost_details"),
        Some(json!({"total": 0.0012}))
    );
    assert_eq!(
        text_or_json(generation, "langfuse.observation.output"),
        Some(json!("answer"))
    );
    assert_eq!(
        generation.str_attr("langfuse.observation.level"),
        Some("WARNING")
    );
    assert_eq!(
        generation.str_attr("langfuse.observation.status_message"),
        Some("slow")
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.metadata.temperature"),
        Some(json!(0.2))
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.2}))
    );
    assert_ne!(
        generation.status_code(),
        StatusCode::Error as i32,
        "a warning is not an error"
    );

    // Trace attributes: set before any child started, so on every span.
    for span in &spans {
        let name = span.name();
        assert_eq!(
            span.str_attr("langfuse.trace.name"),
            Some("my-trace"),
            "{name}"
        );
        assert_eq!(span.str_attr("user.id"), Some("u-1"), "{name}");
        assert_eq!(span.str_attr("session.id"), Some("s-1"), "{name}");
        assert_eq!(
            span.string_array_attr("langfuse.trace.tags"),
            Some(vec!["a".to_owned(), "b".to_owned()]),
            "{name}: tags are a string array"
        );
        assert_eq!(
            span.json_attr("langfuse.trace.metadata.k"),
            Some(json!(1)),
            "{name}"
        );
        assert_eq!(
            span.bool_attr("langfuse.trace.public"),
            Some(true),
            "{name}"
        );
        assert_eq!(span.str_attr("langfuse.version"), Some("v2"), "{name}");
        assert_eq!(span.str_attr("langfuse.release"), Some("rel-1"), "{name}");
        assert_eq!(
            span.str_attr("langfuse.environment"),
            Some("test"),
            "{name}"
        );
        assert_eq!(span.resource_str("service.name"), Some("svc"), "{name}");
        assert_eq!(span.scope.name, "langfuse-sdk", "{name}: scope name");
        assert_eq!(
            span.scope.version,
            env!("CARGO_PKG_VERSION"),
            "{name}: scope version"
        );
    }

    // Headers of the export requests (the server itself needs only the auth and the ingestion
    // version: the SDK's own headers are checked here).
    let requests = server.trace_requests();
    assert_eq!(
        statuses(&requests),
        ["Status(200)"],
        "one flush, one request"
    );
    for request in &requests {
        assert_eq!(request.header("x-langfuse-sdk-name"), Some("rust"));
        assert_eq!(
            request.header("x-langfuse-sdk-version"),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(request.header("x-langfuse-ingestion-version"), Some("4"));
        assert_eq!(request.header("x-langfuse-public-key"), Some(PUBLIC_KEY));
        assert_eq!(
            request.header("authorization"),
            Some(support::basic_auth(PUBLIC_KEY, SECRET_KEY).as_str())
        );
    }

    guard.shutdown().expect("shutdown against a healthy server");
}

#[test]
fn error_level_marks_the_span_status_error() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");

    let failing = span("failing-step").start();
    current_observation()
        .level(Level::Error)
        .status_message("tool crashed");
    failing.end();
    guard.flush().expect("flush");

    let spans = server.wait_for_spans(1, WAIT);
    assert_eq!(spans.len(), 1);
    let failing = &spans[0];
    assert_eq!(failing.status_code(), StatusCode::Error as i32);
    assert_eq!(
        failing.str_attr("langfuse.observation.level"),
        Some("ERROR")
    );
    assert_eq!(
        failing.str_attr("langfuse.observation.status_message"),
        Some("tool crashed")
    );
    guard.shutdown().expect("shutdown");
}

#[test]
fn trace_attributes_reach_every_later_span_and_the_root_has_the_final_values() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");

    let root = span("root").start();
    span("early").start().end();
    current_trace()
        .user_id("u-1")
        .session_id("s-1")
        .tags(["first"]);
    span("late").start().end();
    current_trace().user_id("u-2").name("final-name");
    root.end();
    guard.flush().expect("flush");

    let spans = server.wait_for_spans(3, WAIT);
    assert_eq!(spans.len(), 3);
    let late = by_name(&spans, "late");
    assert_eq!(late.str_attr("session.id"), Some("s-1"));
    assert!(
        matches!(late.str_attr("user.id"), Some("u-1" | "u-2")),
        "user.id on a span ended after it was set: {:?}",
        late.str_attr("user.id")
    );
    assert_eq!(
        late.string_array_attr("langfuse.trace.tags"),
        Some(vec!["first".to_owned()])
    );
    let root = by_name(&spans, "root");
    assert_eq!(root.str_attr("user.id"), Some("u-2"));
    assert_eq!(root.str_attr("session.id"), Some("s-1"));
    assert_eq!(root.str_attr("langfuse.trace.name"), Some("final-name"));
    assert_eq!(
        root.string_array_attr("langfuse.trace.tags"),
        Some(vec!["first".to_owned()])
    );
    guard.shutdown().expect("shutdown");
}

#[test]
fn exports_are_gzip_compressed_protobuf() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");

    root_spans(&["compressed"]);
    guard.flush().expect("flush");

    let requests = server.trace_requests();
    assert_eq!(requests.len(), 1, "answers: {:?}", statuses(&requests));
    let request = &requests[0];
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert!(request.body_is_gzip, "the body starts with the gzip magic");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(request.status(), Some(200));
    assert_eq!(request.spans().len(), 1);
    assert_eq!(request.spans()[0].name(), "compressed");
    guard.shutdown().expect("shutdown");
}

#[test]
fn batches_by_count_while_running_and_the_rest_at_flush() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).flush_at(3).init().expect("init");

    root_spans(&["s1", "s2", "s3", "s4", "s5", "s6", "s7"]);

    let requests = server.wait_for_trace_requests(2, WAIT);
    // A wrong third request would show up before the server is quiet.
    support::wait_until_quiet(&server, || {});
    let requests_before_flush = server.trace_requests();
    assert_eq!(
        requests_before_flush.len(),
        2,
        "two full batches are sent without a flush, the 7th span waits (answers: {:?})",
        statuses(&requests)
    );
    for request in &requests_before_flush {
        assert_eq!(request.spans().len(), 3, "a batch holds flush_at spans");
    }

    guard.flush().expect("flush");
    let requests = server.trace_requests();
    let sizes: Vec<usize> = requests.iter().map(|r| r.spans().len()).collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    let spans = server.accepted_spans();
    assert_eq!(spans.len(), 7);
    assert_no_duplicates(&spans);
    guard.shutdown().expect("shutdown");
}

#[test]
fn small_traces_are_handed_over_a_hundred_and_twenty_eight_at_a_time_or_a_batch_when_fewer() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");
    let before = stats();

    // 127 traces of one span wait in this thread's buffer; the 128th hands them over.
    for _ in 0..127 {
        span("small").start().end();
    }
    assert_eq!(counts_since(&before).spans_queued, 0);
    span("small").start().end();
    assert_eq!(counts_since(&before).spans_queued, 128);
    // The next one waits for the flush.
    span("small").start().end();
    assert_eq!(counts_since(&before).spans_queued, 128);
    guard.flush().expect("flush");
    let counts = counts_since(&before);
    assert_eq!((counts.spans_queued, counts.spans_exported), (129, 129));
    assert_eq!(server.accepted_spans().len(), 129);
    guard.shutdown().expect("shutdown");

    // With a batch of fewer spans, a batch's worth is handed over as soon as it is there.
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).flush_at(1).init().expect("init");
    let before = stats();
    root_spans(&["alone"]);
    assert_eq!(counts_since(&before).spans_queued, 1);
    let spans = server.wait_for_spans(1, WAIT);
    assert_eq!(spans[0].name(), "alone");
    guard.shutdown().expect("shutdown");
}

#[test]
fn a_queue_smaller_than_what_a_thread_gathers_still_counts_every_small_trace() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .max_queue(4)
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");
    let before = stats();

    // The thread gathers small traces (128 before it hands them over), but a root may take only
    // twice the queue's room: eight traces are gathered, the ninth is dropped and hands the eight
    // over at once (drops are reported without waiting), the tenth is dropped too (nothing was
    // sent yet: no batch is due).
    for _ in 0..10 {
        span("small").start().end();
    }
    let counts = counts_since(&before);
    assert_eq!(
        (counts.spans_queued, counts.spans_dropped_queue_full),
        (8, 2),
        "{counts:?}"
    );
    guard.flush().expect("flush");
    assert_eq!(server.accepted_spans().len(), 8);
    guard.shutdown().expect("shutdown");
}

#[test]
fn a_batch_that_comes_while_the_exporter_is_busy_goes_without_waiting_for_the_timer() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_fault(Some(Fault::Delay(Duration::from_millis(500))));
    let guard = config(&server)
        .flush_at(2)
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");

    // A flush from another thread takes the one span this thread holds, and the exporter then
    // waits half a second for the answer.
    root_spans(&["first"]);
    let flush = std::thread::spawn(observe_runtime::flush);
    assert_eq!(server.wait_for_trace_requests(1, WAIT).len(), 1);
    // Threads do not wake an exporter at work: the batch's worth handed over now is seen when
    // the flush is done.
    root_spans(&["second", "third"]);
    flush.join().expect("flush thread").expect("flush");
    let spans = server.wait_for_spans(3, WAIT);
    let names: BTreeSet<&str> = spans.iter().map(|span| span.name()).collect();
    assert_eq!(names, BTreeSet::from(["first", "second", "third"]));
    assert_eq!(server.trace_requests().len(), 2);
    guard.shutdown().expect("shutdown");
}

#[test]
fn batches_stay_under_four_megabytes() {
    use prost::Message as _;
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .max_field_bytes(2_000_000)
        .init()
        .expect("init");

    // Three spans of about 1.5 MB each: two fit in one request, the third needs another.
    for name in ["big-1", "big-2", "big-3"] {
        let _span = span(name).start();
        current_observation().output("y".repeat(1_500_000));
    }
    guard.flush().expect("flush");

    let requests = server.trace_requests();
    let sizes: Vec<usize> = requests.iter().map(|r| r.spans().len()).collect();
    assert_eq!(sizes, vec![2, 1], "split by size, not by count");
    for request in &requests {
        let encoded = request.decoded.as_ref().expect("decoded").encoded_len();
        assert!(encoded < 4_000_000, "a request of {encoded} bytes");
    }
    assert_eq!(server.accepted_spans().len(), 3);
    guard.shutdown().expect("shutdown");
}

#[observe_runtime::observe]
fn echo_text(text: String) -> String {
    text
}

/// A captured field as the server received it: within the limit, valid JSON, its text a
/// beginning of `original` (escaped once, not twice) followed by the marker.
fn assert_cut_within(attribute: &str, original: &str, limit: usize) {
    assert!(attribute.len() <= limit, "{} bytes sent", attribute.len());
    assert!(
        attribute.len() > limit - 64,
        "cut too short: {} bytes",
        attribute.len()
    );
    let text: String = serde_json::from_str(attribute).expect("a JSON string");
    let marker = format!(
        "… [truncated from {} bytes]",
        serde_json::to_string(original).unwrap().len()
    );
    let kept = text.strip_suffix(&marker).expect("ends with the marker");
    assert!(
        original.starts_with(kept),
        "the kept text is a beginning of the value"
    );
}

#[test]
fn the_field_limit_holds_for_the_value_as_sent() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    const LIMIT: usize = observe_runtime::DEFAULT_FIELD_LIMIT;

    let texts = [
        "plain ".repeat(300_000),
        "say \"hi\" \\ tab\t nl\n bell\u{7} ".repeat(60_000),
        "héllo wörld 你好 🎉 ".repeat(60_000),
    ];
    for text in &texts {
        let _root = span("field").start();
        echo_text(text.clone());
        current_observation().metadata("note", text);
    }
    guard.flush().expect("flush");

    let spans = server.accepted_spans();
    assert_eq!(spans.len(), 6);
    // The span whose attribute `key` holds a JSON string beginning like `text`.
    let holding = |key: &str, text: &str| -> String {
        let start: String = text.chars().take(10).collect();
        spans
            .iter()
            .filter_map(|span| span.str_attr(key))
            .find(|value| {
                serde_json::from_str::<String>(value).is_ok_and(|value| value.starts_with(&start))
            })
            .unwrap_or_else(|| panic!("no {key} beginning with {start:?}"))
            .to_string()
    };
    for text in &texts {
        assert_cut_within(&holding("langfuse.observation.output", text), text, LIMIT);
        assert_cut_within(
            &holding("langfuse.observation.metadata.note", text),
            text,
            LIMIT,
        );
    }
    let inputs: Vec<&str> = spans
        .iter()
        .filter_map(|span| span.str_attr("langfuse.observation.input"))
        .collect();
    assert_eq!(inputs.len(), 3);
    for input in inputs {
        assert!(input.len() <= LIMIT, "input of {} bytes", input.len());
        let input: serde_json::Value = serde_json::from_str(input).expect("an object");
        let member = input["text"].to_string();
        let text = texts
            .iter()
            .find(|text| member[1..].starts_with(&text[..3]))
            .expect("one of the texts");
        // `{"text":` and `}` take 9 bytes of the limit.
        assert_cut_within(&member, text, LIMIT - 9);
    }
    guard.shutdown().expect("shutdown");
}

#[test]
fn large_trace_attributes_count_toward_the_request_size() {
    use prost::Message as _;
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");

    // A 200 KB session id is copied onto each of the 100 spans: 20 MB if it were one request.
    {
        let _root = span("root").start();
        current_trace().session_id("s".repeat(200_000));
        for _ in 0..99 {
            span("child").start().end();
        }
    }
    guard.flush().expect("flush");

    let requests = server.trace_requests();
    assert!(requests.len() >= 6, "{} requests", requests.len());
    for request in &requests {
        let encoded = request.decoded.as_ref().expect("decoded").encoded_len();
        assert!(encoded < 4_000_000, "a request of {encoded} bytes");
    }
    let spans = server.accepted_spans();
    assert_eq!(spans.len(), 100);
    assert!(spans
        .iter()
        .all(|span| span.str_attr("session.id").map(str::len) == Some(200_000)));
    guard.shutdown().expect("shutdown");
}

#[test]
fn batches_by_time_without_any_flush() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .flush_interval(Duration::from_millis(200))
        .init()
        .expect("init");

    root_spans(&["on-a-timer"]);

    let spans = server.wait_for_spans(1, Duration::from_secs(5));
    assert_eq!(
        spans.len(),
        1,
        "a span is exported by the 200 ms timer without any flush call"
    );
    assert_eq!(spans[0].name(), "on-a-timer");
    guard.shutdown().expect("shutdown");
}

#[test]
fn retries_after_503_without_duplicates() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.script([Fault::service_unavailable()]);
    let guard = config(&server).init().expect("init");
    let before = stats();

    let root = span("root").start();
    span("child-1").start().end();
    span("child-2").start().end();
    root.end();
    guard.flush().expect("flush succeeds after one retry");

    let requests = server.trace_requests();
    assert_eq!(
        requests
            .iter()
            .map(RecordedRequest::status)
            .collect::<Vec<_>>(),
        vec![Some(503), Some(200)]
    );
    let first: BTreeSet<String> = requests[0].span_ids().into_iter().collect();
    let second: BTreeSet<String> = requests[1].span_ids().into_iter().collect();
    assert_eq!(first, second, "the retry resends the same spans");
    let spans = server.accepted_spans();
    assert_eq!(spans.len(), 3);
    assert_no_duplicates(&spans);

    let counts = counts_since(&before);
    assert_eq!(counts.requests_retried, 1, "{counts:?}");
    assert_eq!(counts.spans_exported, 3, "{counts:?}");
    assert_eq!(counts.spans_dropped_export_failed, 0, "{counts:?}");
    assert_eq!(counts.requests_ok, 1, "{counts:?}");
    guard.shutdown().expect("shutdown");
}

#[test]
fn honours_retry_after_on_429() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.script([Fault::too_many_requests(1)]);
    let guard = config(&server).init().expect("init");
    let before = stats();

    root_spans(&["rate-limited"]);
    guard.flush().expect("flush succeeds after waiting");

    let requests = server.trace_requests();
    assert_eq!(
        requests
            .iter()
            .map(RecordedRequest::status)
            .collect::<Vec<_>>(),
        vec![Some(429), Some(200)]
    );
    let gap = requests[1].arrived.duration_since(requests[0].arrived);
    assert!(
        gap >= Duration::from_millis(900),
        "Retry-After: 1 waits a second, waited {gap:?}"
    );
    assert!(
        gap < Duration::from_secs(5),
        "Retry-After: 1 waits about a second, waited {gap:?}"
    );
    assert_eq!(server.accepted_spans().len(), 1);
    assert_eq!(counts_since(&before).requests_retried, 1);
    guard.shutdown().expect("shutdown");
}

#[test]
fn bad_request_is_not_retried() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.script([Fault::bad_request("Invalid request body")]);
    let guard = config(&server).init().expect("init");
    let before = stats();

    root_spans(&["refused"]);
    assert_eq!(
        guard.flush(),
        Err(FlushError::ExportFailed {
            reason: format!(
                "{}{TRACES_PATH} refused the export with HTTP 400: \"Invalid request body\"; the \
                 request is not retried",
                server.base_url()
            )
        })
    );
    support::wait_until_quiet(&server, || guard.flush().expect("nothing left to send"));

    let requests = server.trace_requests();
    assert_eq!(
        requests.len(),
        1,
        "a 400 is not retried (answers: {:?})",
        statuses(&requests)
    );
    let counts = counts_since(&before);
    assert_eq!(counts.requests_retried, 0, "{counts:?}");
    assert_eq!(counts.requests_failed, 1, "{counts:?}");
    assert_eq!(counts.spans_dropped_export_failed, 1, "{counts:?}");
    assert_eq!(counts.spans_exported, 0, "{counts:?}");

    // The pipeline goes on.
    root_spans(&["after-refusal"]);
    guard.flush().expect("flush");
    let spans = server.accepted_spans();
    assert_eq!(
        spans.iter().map(ReceivedSpan::name).collect::<Vec<_>>(),
        vec!["after-refusal"]
    );
    guard.shutdown().expect("shutdown");
}

#[test]
fn dropped_connection_is_retried_then_succeeds() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.script([Fault::DropConnection]);
    let guard = config(&server).init().expect("init");
    let before = stats();

    root_spans(&["first", "second"]);
    guard.flush().expect("flush succeeds after one retry");

    let requests = server.trace_requests();
    assert_eq!(
        statuses(&requests),
        vec!["Dropped".to_owned(), "Status(200)".to_owned()]
    );
    let spans = server.accepted_spans();
    assert_eq!(spans.len(), 2);
    assert_no_duplicates(&spans);
    let counts = counts_since(&before);
    assert_eq!(counts.requests_retried, 1, "{counts:?}");
    assert_eq!(counts.spans_exported, 2, "{counts:?}");
    guard.shutdown().expect("shutdown");
}

#[test]
fn a_slow_answer_times_out_and_is_retried() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.script([Fault::Delay(Duration::from_secs(3))]);
    let guard = config(&server)
        .timeout(Duration::from_millis(500))
        .init()
        .expect("init");
    let before = stats();

    root_spans(&["patient"]);
    guard.flush().expect("flush succeeds after one retry");
    // The client left the slow request before its answer was ready: the retry did not wait for it.
    support::wait_until_quiet(&server, || {});
    assert_eq!(
        statuses(&server.trace_requests()),
        ["ClientGone", "Status(200)"]
    );

    let spans = server.accepted_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name(), "patient");
    let counts = counts_since(&before);
    assert_eq!(counts.requests_retried, 1, "{counts:?}");
    assert_eq!(counts.requests_failed, 0, "{counts:?}");
    assert_eq!(counts.requests_unanswered, 1, "{counts:?}");
    assert_eq!(counts.spans_exported, 1, "{counts:?}");
    guard.shutdown().expect("shutdown");
}

/// A client for `server` whose first attempt times out after 500 ms, with time for retries.
fn impatient(server: &FakeLangfuse) -> observe_runtime::FlushGuard {
    config(server)
        .timeout(Duration::from_millis(500))
        .shutdown_timeout(Duration::from_secs(30))
        .init()
        .expect("init")
}

#[test]
fn a_server_slower_than_the_timeout_gets_longer_timeouts_then_an_answer() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    // Two copies get no answer at all; the third is answered at once.
    server.script([Fault::Hang, Fault::Hang]);
    let guard = impatient(&server);
    let before = stats();

    root_spans(&["slow"]);
    guard.flush().expect("the third attempt is answered");

    let copies = server.trace_requests();
    assert_eq!(
        copies.len(),
        3,
        "each attempt is a copy the server may store"
    );
    assert!(copies.iter().all(|copy| copy.span_ids().len() == 1));
    let counts = counts_since(&before);
    assert_eq!(counts.attempts(), (2, 0, 2, 1), "{counts:?}");
    assert_eq!((counts.spans_exported, counts.spans_unanswered), (1, 0));
    assert_eq!(counts.spans_dropped_export_failed, 0, "{counts:?}");
    guard.shutdown().expect("shutdown");
}

#[test]
fn a_server_that_never_answers_gets_three_copies_counted_as_unanswered_not_lost() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_fault(Some(Fault::Hang));
    let guard = impatient(&server);
    let before = stats();

    root_spans(&["stored-maybe"]);
    let error = guard.flush().expect_err("no answer came");
    assert!(
        error.to_string().contains(
            "got no answer to 3 of 3 attempt(s) (the server may have stored them): no answer \
             within 2s"
        ),
        "{error}"
    );

    // 500 ms, then 1 s, then 2 s: three copies, where the timeouts used to make six.
    assert_eq!(server.trace_requests().len(), 3);
    let counts = counts_since(&before);
    assert_eq!(counts.attempts(), (3, 0, 2, 0), "{counts:?}");
    assert_eq!((counts.spans_exported, counts.spans_unanswered), (0, 1));
    assert_eq!(counts.spans_dropped_export_failed, 0, "not counted as lost");
    let report = guard.shutdown().expect("nothing left to send");
    assert_eq!(report.stats.spans_dropped(), 0);
}

#[test]
fn unauthorized_is_counted_and_quotes_the_server_and_the_host() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .secret_key("sk-lf-wrong")
        .init()
        .expect("init");
    let before = stats();

    root_spans(&["unauthorized"]);
    assert_eq!(
        guard.flush(),
        Err(FlushError::ExportFailed {
            reason: format!(
                "Langfuse rejected the credentials with HTTP 401: {INVALID_CREDENTIALS:?} (base \
                 URL {}). Check that LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are the API keys \
                 of a project on this host.",
                server.base_url()
            )
        })
    );

    let requests = server.trace_requests();
    assert_eq!(
        statuses(&requests),
        ["Status(401)"],
        "refused credentials are not retried"
    );
    assert!(server.accepted_spans().is_empty());
    let counts = counts_since(&before);
    assert_eq!(counts.auth_failures, 1, "{counts:?}");
    assert_eq!(counts.spans_dropped_export_failed, 1, "{counts:?}");
    let last_error = stats().last_error.unwrap_or_default();
    assert!(
        last_error.contains(INVALID_CREDENTIALS),
        "last_error quotes the server: {last_error:?}"
    );
    assert!(
        last_error.contains(&server.base_url()),
        "last_error names the host {}: {last_error:?}",
        server.base_url()
    );
    drop(guard);
}

/// The child's part of `unauthorized_is_logged_once_across_batches`: three batches fail with 401.
fn unauthorized_batches_in_child() {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .secret_key("sk-lf-wrong")
        .init()
        .expect("init");
    for name in ["batch-1", "batch-2", "batch-3"] {
        root_spans(&[name]);
        let _ = guard.flush();
    }
    let _ = guard.shutdown();
    let requests = server.trace_requests();
    println!(
        "child: {} export requests, answers {:?}",
        requests.len(),
        statuses(&requests)
    );
    assert_eq!(
        statuses(&requests),
        vec!["Status(401)".to_owned(); 3],
        "each of the three batches was sent and refused"
    );
}

#[test]
fn unauthorized_is_logged_once_across_batches() {
    if support::child_mode().as_deref() == Some("unauthorized") {
        unauthorized_batches_in_child();
        return;
    }
    let _serial = support::serial();
    let output = child_test!("unauthorized", &[], Duration::from_secs(60),);
    output.assert_success();
    let quoting_lines: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.contains("[langfuse]") && line.contains(INVALID_CREDENTIALS))
        .collect();
    let error_lines: Vec<&str> = quoting_lines
        .iter()
        .copied()
        .filter(|line| line.trim_start().starts_with("[langfuse] error"))
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "exactly one [langfuse] error line about the credentials after three failed batches; stderr:\n{}",
        output.stderr
    );
    assert!(
        error_lines[0].contains("http://127.0.0.1:"),
        "the credentials error names the host: {}",
        error_lines[0]
    );
    assert!(
        quoting_lines.len() < 3,
        "the server message is not repeated for every failed batch; stderr:\n{}",
        output.stderr
    );
}

#[test]
fn a_full_queue_drops_and_counts() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let guard = config(&server)
        .max_queue(4)
        .flush_at(2)
        .init()
        .expect("init");
    let before = stats();

    for _ in 0..100 {
        span("burst").start().end();
    }
    let counts = counts_since(&before);
    assert_eq!(
        counts.spans_queued + counts.spans_dropped_queue_full,
        100,
        "every span is either queued or counted as dropped: {counts:?}"
    );
    assert!(counts.spans_dropped_queue_full > 0, "{counts:?}");

    guard.flush().expect("flush");
    let counts = counts_since(&before);
    assert_eq!(counts.spans_exported, counts.spans_queued, "{counts:?}");
    let spans = server.accepted_spans();
    assert_eq!(spans.len() as u64, counts.spans_exported, "{counts:?}");
    assert_no_duplicates(&spans);
    guard.shutdown().expect("shutdown");
}

#[test]
fn auth_check_lists_the_project_of_valid_keys() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");

    let check = observe_runtime::auth_check().expect("valid keys pass the auth check");
    let projects: Vec<(String, String)> = check
        .projects
        .iter()
        .map(|project| (project.id.clone(), project.name.clone()))
        .collect();
    assert_eq!(
        projects,
        vec![("proj-test".to_owned(), "Test Project".to_owned())]
    );
    let requests = server.requests();
    let asked = requests
        .iter()
        .find(|request| request.method == "GET" && request.path == support::server::PROJECTS_PATH)
        .expect("auth_check asks GET /api/public/projects");
    assert_eq!(
        asked.header("authorization"),
        Some(support::basic_auth(PUBLIC_KEY, SECRET_KEY).as_str())
    );
    guard.shutdown().expect("shutdown");
}

#[test]
fn auth_check_reports_invalid_credentials_with_the_host() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .secret_key("sk-lf-wrong")
        .init()
        .expect("init");

    let error = observe_runtime::auth_check().expect_err("wrong keys fail the auth check");
    let text = error.to_string();
    assert!(
        text.contains(INVALID_CREDENTIALS),
        "quotes the server: {text}"
    );
    assert!(
        text.contains(&server.base_url()),
        "names the host {}: {text}",
        server.base_url()
    );
    assert!(
        !text.contains("sk-lf-wrong"),
        "never prints the secret key: {text}"
    );
    drop(guard);
}

/// An export of one span with these ids, gzip-compressed, encoded with the official messages.
fn gzip_export(trace_id: [u8; 16], span_id: [u8; 8]) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use std::io::Write;

    let export = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    name: "handmade".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&export.encode_to_vec())
        .expect("compress in memory");
    encoder.finish().expect("compress in memory")
}

/// The fixture itself: the fake server answers like the wire document says Langfuse does, so
/// the tests above are measured against the real contract.
#[test]
fn the_fake_server_plays_the_documented_contract() {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let base = server.base_url();
    let good_auth = support::basic_auth(PUBLIC_KEY, SECRET_KEY);
    let wrong_auth = support::basic_auth(PUBLIC_KEY, "sk-lf-wrong");
    let empty_auth = support::basic_auth(PUBLIC_KEY, "");
    let valid = gzip_export([1; 16], [2; 8]);
    let export = |authorization: Option<&str>, version: &str, body: &[u8]| {
        let mut headers = vec![
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
            ("x-langfuse-ingestion-version", version),
            ("x-langfuse-sdk-name", "rust"),
            ("x-langfuse-sdk-version", "0.1.0"),
            ("x-langfuse-public-key", PUBLIC_KEY),
        ];
        if let Some(authorization) = authorization {
            headers.push(("authorization", authorization));
        }
        support::raw_request(&base, "POST", TRACES_PATH, &headers, body)
    };
    let message = |text: &str| json!({ "message": text });
    let parse = |body: &str| serde_json::from_str::<serde_json::Value>(body).expect("JSON body");

    let (status, body) = export(None, "4", &valid);
    assert_eq!(
        (status, parse(&body)),
        (401, message(NO_AUTHORIZATION_HEADER))
    );
    let (status, body) = export(Some("Token abc"), "4", &valid);
    assert_eq!(
        (status, parse(&body)),
        (401, message(INVALID_AUTHORIZATION_HEADER))
    );
    let (status, body) = export(Some(&empty_auth), "4", &valid);
    assert_eq!(
        (status, parse(&body)),
        (401, message(INVALID_AUTHORIZATION_HEADER_HOST))
    );
    let (status, body) = export(Some(&wrong_auth), "4", &valid);
    assert_eq!((status, parse(&body)), (401, message(INVALID_CREDENTIALS)));
    let (status, body) = export(Some("Bearer pk-lf-test"), "4", &valid);
    assert_eq!((status, parse(&body)), (403, message(BEARER_DENIED)));
    let (status, body) = export(Some(&good_auth), "5", &valid);
    assert_eq!(status, 400, "{body}");
    assert!(parse(&body)["error"].is_string(), "{body}");
    let (status, body) = export(Some(&good_auth), "4", &gzip_export([1; 16], [0; 8]));
    assert_eq!(status, 400, "an all-zero span id is refused: {body}");
    let (status, body) = export(Some(&good_auth), "4", b"not gzip");
    assert_eq!(status, 400, "{body}");
    assert!(server.accepted_spans().is_empty());

    let (status, body) = export(Some(&good_auth), "4", &valid);
    assert_eq!((status, parse(&body)), (200, json!({})));
    let spans = server.accepted_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name(), "handmade");
    assert_eq!(spans[0].span_id(), "0202020202020202");

    let projects = support::server::PROJECTS_PATH;
    let (status, body) = support::raw_request(
        &base,
        "GET",
        projects,
        &[("authorization", good_auth.as_str())],
        b"",
    );
    assert_eq!(
        (status, parse(&body)),
        (
            200,
            json!({"data": [{"id": "proj-test", "name": "Test Project"}]})
        )
    );
    let (status, body) = support::raw_request(
        &base,
        "GET",
        projects,
        &[("authorization", wrong_auth.as_str())],
        b"",
    );
    assert_eq!((status, parse(&body)), (401, message(INVALID_CREDENTIALS)));
    let (status, body) = support::raw_request(&base, "GET", support::server::HEALTH_PATH, &[], b"");
    assert_eq!(
        (status, parse(&body)),
        (200, json!({"status": "OK", "version": "4.16.0"}))
    );
}
