//! `DetachedSpan::record` (fields set now, without entering the span) and `DetachedSpan::defer`:
//! values recorded after the observation ended, on the exporter's thread,
//! seen on the wire with the mask and the field limit applied; a fill that panics loses only
//! itself; an observation that is not recorded never runs its fill.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use observe_runtime::{span, testing, Config, Level, ObservationType, Usage};
use serde_json::json;
use support::received::ReceivedSpan;
use support::sdk::{config_for, fake_langfuse};

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    support::received::by_name(spans, name)
}

#[test]
fn a_fill_runs_on_the_exporter_thread_and_its_values_are_masked_and_limited() {
    let server = fake_langfuse();
    let guard = config_for(&server)
        .max_field_bytes(256)
        .mask(|mut value| {
            if let Some(object) = value.as_object_mut() {
                if object.contains_key("key") {
                    object.insert("key".into(), "***".into());
                }
            }
            value
        })
        .init()
        .expect("init");
    let caller = std::thread::current().name().map(str::to_string);
    let mut call = span("call")
        .as_type(ObservationType::Generation)
        .start_detached();
    call.defer(|fields| {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        fields
            .model("m-1")
            .model_parameters(json!({"temperature": 0.5}))
            .input(json!({"key": "sk-123", "question": "why?"}))
            .output("x".repeat(300))
            .metadata("thread", thread)
            .usage(Usage {
                input: 3,
                output: 4,
                ..Usage::default()
            })
            .level(Level::Warning)
            .status_message("late");
    });
    call.end();
    observe_runtime::flush().expect("flush");
    let spans = server.wait_for_spans(1, Duration::from_secs(10));
    let call = by_name(&spans, "call");
    assert_eq!(
        call.str_attr("langfuse.observation.model.name"),
        Some("m-1")
    );
    assert_eq!(
        call.json_attr("langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.5}))
    );
    assert_eq!(
        call.json_attr("langfuse.observation.input"),
        Some(json!({"key": "***", "question": "why?"}))
    );
    let output = call.json_attr("langfuse.observation.output").unwrap();
    let output = output.as_str().expect("a cut value is a string");
    assert!(output.ends_with("… [truncated from 302 bytes]"), "{output}");
    assert_eq!(
        call.json_attr("langfuse.observation.metadata.thread"),
        Some(json!("langfuse-exporter")),
        "the fill ran on the exporter thread, not on {caller:?}"
    );
    assert_eq!(
        call.json_attr("langfuse.observation.usage_details"),
        Some(json!({"input": 3, "output": 4, "total": 7}))
    );
    assert_eq!(call.str_attr("langfuse.observation.level"), Some("WARNING"));
    assert_eq!(
        call.str_attr("langfuse.observation.status_message"),
        Some("late")
    );
    drop(guard);
}

#[test]
fn a_fill_that_panics_keeps_what_it_set_before_and_the_capture_sees_fills() {
    let captured = testing::capture(|| {
        let mut first = span("first").start_detached();
        first.defer(|fields| {
            fields.model("before the panic");
            panic!("a bug in a fill");
        });
        first.end();
        let mut second = span("second").start_detached();
        second.defer(|fields| {
            fields.output(json!({"answer": 42}));
        });
        second.end();
        let mut third = span("third").start_detached();
        third.record(|fields| {
            fields.model("set now").metadata("step", 3);
        });
        third.defer(|fields| {
            fields.metadata("step", 4);
        });
        third.end();
    });
    let third = captured.observation("third");
    assert_eq!(third.model.as_deref(), Some("set now"));
    assert_eq!(
        third.metadata,
        [("step".to_string(), "4".to_string())],
        "the fill's value replaces the one set before"
    );
    assert_eq!(
        captured.observation("first").model.as_deref(),
        Some("before the panic")
    );
    assert_eq!(captured.output("second"), json!({"answer": 42}));
    assert_eq!(captured.spans().len(), 3);
}

#[test]
fn an_observation_that_is_not_recorded_never_runs_its_fill() {
    let ran = Arc::new(AtomicBool::new(false));
    let captured = testing::capture_with(Config::default().sample_rate(0.0), || {
        let mut call = span("sampled out").start_detached();
        assert!(!call.is_recording());
        let ran = ran.clone();
        call.record(|_| unreachable!("not recorded"));
        call.defer(move |_| ran.store(true, Ordering::Relaxed));
        call.end();
    })
    .expect("a valid configuration");
    assert!(captured.spans().is_empty());
    assert!(!ran.load(Ordering::Relaxed));
}
