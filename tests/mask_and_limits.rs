//! The mask hook and the field size limit, seen in what an exporter receives.

use std::sync::OnceLock;

use observe_runtime::{
    current_observation, observe, span, Config, Exporter, FlushGuard, MemoryExporter,
};

fn memory() -> &'static MemoryExporter {
    static CLIENT: OnceLock<(MemoryExporter, FlushGuard)> = OnceLock::new();
    &CLIENT
        .get_or_init(|| {
            let memory = MemoryExporter::new();
            let guard = Config::default()
                .max_field_bytes(256)
                .mask(|mut value| {
                    if let Some(object) = value.as_object_mut() {
                        if object.contains_key("password") {
                            object.insert("password".into(), "***".into());
                        }
                    }
                    value
                })
                .exporter(Exporter::Memory(memory.clone()))
                .init()
                .expect("init");
            (memory, guard)
        })
        .0
}

#[observe]
fn login(user: &str, password: &str) -> usize {
    user.len() + password.len()
}

#[test]
fn the_mask_runs_before_spans_leave_the_process() {
    let memory = memory();
    login("ada", "hunter2");
    let root = span("mask-manual").start();
    current_observation()
        .output(serde_json::json!({"password": "p", "ok": true}))
        .metadata("credentials", serde_json::json!({"password": "p"}));
    let trace_id = observe_runtime::current_trace_id().unwrap();
    root.end();

    let spans = memory.spans();
    let login = spans.iter().find(|s| s.name == "login").unwrap();
    assert_eq!(
        login.input.as_deref(),
        Some(r#"{"password":"***","user":"ada"}"#)
    );
    assert_eq!(login.output.as_deref(), Some("10"));
    let manual = &memory.trace(trace_id)[0];
    assert_eq!(
        manual.output.as_deref(),
        Some(r#"{"ok":true,"password":"***"}"#)
    );
    assert_eq!(
        manual.metadata,
        [(
            "credentials".to_string(),
            r#"{"password":"***"}"#.to_string()
        )]
    );
}

#[observe]
fn echo(text: String) -> String {
    text
}

#[test]
fn large_values_are_cut_with_a_marker_saying_how_much() {
    let memory = memory();
    let long = "x".repeat(400);
    echo(long.clone());
    let span = memory
        .spans()
        .into_iter()
        .find(|s| s.name == "echo")
        .unwrap();
    // The limit holds for the text as sent, escapes and marker included.
    let expected = format!("\"{}… [truncated from 402 bytes]\"", "x".repeat(224));
    assert_eq!(span.output.as_deref(), Some(expected.as_str()));
    assert_eq!(expected.len(), 256);
    // The input object holds the cut argument as a JSON string, so it stays valid JSON, and the
    // object as a whole holds the limit too.
    let input = span.input.as_deref().unwrap();
    assert_eq!(input.len(), 256);
    let input: serde_json::Value = serde_json::from_str(input).unwrap();
    assert_eq!(
        input["text"].as_str(),
        Some(format!("{}… [truncated from 402 bytes]", "x".repeat(215)).as_str())
    );
}
