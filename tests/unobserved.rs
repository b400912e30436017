//! What the SDK does itself is never observed: a mask that calls an `#[observe]` function (or
//! sends a score) adds nothing to what arrives, whether the mask runs on the exporter thread or,
//! with the in-memory exporter, on the user's thread.
//!
//! The client is global to the process: every test holds [`support::serial`] and shuts its
//! client down before it ends; work that could deadlock runs under [`within`].

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use observe_runtime::{observe, score_trace, Config, Exporter, MemoryExporter, TraceId};
use serde_json::Value;

use support::{within, FakeLangfuse};

const PUBLIC_KEY: &str = "pk-lf-test";
const SECRET_KEY: &str = "sk-lf-test";

/// Calls of the mask, all tests together (each test compares before and after).
static MASK_CALLS: AtomicUsize = AtomicUsize::new(0);

/// An observed helper the mask calls, as a user's redaction library might be.
#[observe]
fn redact(text: String) -> String {
    text.replace("secret", "***")
}

/// A mask that observes: it calls [`redact`] and sends a score.
fn observing_mask(value: Value) -> Value {
    MASK_CALLS.fetch_add(1, Ordering::SeqCst);
    score_trace(TraceId::from_seed("mask"), "made-in-the-mask", 1.0);
    match value {
        Value::String(text) => Value::String(redact(text)),
        other => other,
    }
}

#[observe]
fn answer(question: String) -> String {
    format!("the secret is {question}")
}

#[test]
fn a_mask_that_calls_an_observed_function_adds_no_span_on_the_exporter_thread() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(server.base_url())
        .flush_interval(Duration::from_secs(60))
        .mask(observing_mask)
        .init()
        .expect("init");
    let calls_before = MASK_CALLS.load(Ordering::SeqCst);

    for question in ["a", "b", "c"] {
        answer(question.to_string());
    }
    // Spans the mask made during one flush would be queued for the next one.
    guard.flush().expect("first flush");
    guard.flush().expect("second flush");
    let stats = guard.shutdown().expect("shutdown").stats;

    let spans = server.accepted_spans();
    let names: Vec<&str> = spans.iter().map(|span| span.name()).collect();
    assert_eq!(names, ["answer", "answer", "answer"]);
    let mut outputs: Vec<&str> = spans
        .iter()
        .filter_map(|span| span.str_attr("langfuse.observation.output"))
        .collect();
    outputs.sort_unstable();
    assert_eq!(
        outputs,
        ["\"the *** is a\"", "\"the *** is b\"", "\"the *** is c\""]
    );
    // Input and output of each of the three spans.
    assert_eq!(MASK_CALLS.load(Ordering::SeqCst) - calls_before, 6);
    assert_eq!((stats.spans_created, stats.spans_exported), (3, 3));
    assert_eq!(stats.scores_created, 0);
    assert!(server.score_requests().is_empty());
}

#[test]
fn a_mask_that_calls_an_observed_function_adds_no_span_with_the_memory_exporter() {
    let _serial = support::serial();
    let memory = MemoryExporter::new();
    let recorded = memory.clone();
    let calls = within(
        Duration::from_secs(30),
        "masking on the user's thread",
        move || {
            let guard = Config::default()
                .exporter(Exporter::Memory(recorded))
                .mask(observing_mask)
                .init()
                .expect("init");
            let before = MASK_CALLS.load(Ordering::SeqCst);
            answer("d".to_string());
            let stats = guard.shutdown().expect("shutdown").stats;
            (
                MASK_CALLS.load(Ordering::SeqCst) - before,
                stats.spans_created,
            )
        },
    );
    let spans = memory.spans();
    let names: Vec<&str> = spans.iter().map(|span| &*span.name).collect();
    assert_eq!(names, ["answer"]);
    assert_eq!(spans[0].output.as_deref(), Some("\"the *** is d\""));
    assert_eq!(calls, (2, 1));
    assert!(memory.scores().is_empty());
}
