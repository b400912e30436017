//! What leaves the process when values may hold secrets: `Debug` capture off
//! (`LANGFUSE_CAPTURE_DEBUG=false`) records a placeholder instead of a `Debug` text, and the mask
//! covers trace metadata and status messages (error texts) as well as inputs and outputs.

mod support;

use observe_runtime::{current_trace, observe, Config, Exporter, MemoryExporter};
use serde_json::Value;

use support::serial;

/// A client whose `Debug` prints its key, as many do.
#[derive(Debug)]
struct HttpClient {
    authorization: String,
}

#[observe]
fn call(client: &HttpClient, question: &str) -> usize {
    client.authorization.len() + question.len()
}

fn init(capture_debug: bool, memory: &MemoryExporter) -> observe_runtime::FlushGuard {
    Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .capture_debug(capture_debug)
        .mask(redact)
        .init()
        .expect("init")
}

/// Replaces every string holding a live key by `***`.
fn redact(value: Value) -> Value {
    match value {
        Value::String(text) if text.contains("sk-live-") => Value::String("***".into()),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, redact(v))).collect()),
        other => other,
    }
}

#[test]
fn with_debug_capture_off_a_debug_value_is_a_placeholder() {
    let _serial = serial();
    let memory = MemoryExporter::new();
    let guard = init(false, &memory);
    let client = HttpClient {
        authorization: "Bearer sk-live-123".into(),
    };
    call(&client, "why?");
    drop(guard);
    let spans = memory.spans();
    assert_eq!(
        spans[0].input.as_deref(),
        Some(
            r#"{"client":"<&privacy::HttpClient: not Serialize, and Debug capture is off>","question":"why?"}"#
        )
    );
}

#[test]
fn with_debug_capture_on_the_debug_text_is_kept() {
    let _serial = serial();
    let memory = MemoryExporter::new();
    let guard = init(true, &memory);
    let client = HttpClient {
        authorization: "Bearer sk-live-123".into(),
    };
    call(&client, "why?");
    drop(guard);
    // The mask sees the Debug text as a string and redacts it.
    assert_eq!(
        memory.spans()[0].input.as_deref(),
        Some(r#"{"client":"***","question":"why?"}"#)
    );
}

#[observe]
fn failing() -> Result<(), String> {
    current_trace().metadata("token", "sk-live-456");
    Err("upstream refused key sk-live-789".into())
}

#[test]
fn the_mask_covers_trace_metadata_and_error_texts() {
    let _serial = serial();
    let memory = MemoryExporter::new();
    let guard = init(true, &memory);
    let _ = failing();
    drop(guard);
    let span = &memory.spans()[0];
    assert_eq!(span.status_message.as_deref(), Some("***"));
    assert_eq!(
        span.trace.metadata,
        [("token".to_string(), "\"***\"".to_string())]
    );
}
