//! A worker process joins its parent's trace: `TraceContext::apply_to_with_keys` hands it
//! `TRACEPARENT` and the parent's Langfuse settings, and the worker's plain `init()` picks both
//! up. `apply_to` hands over the trace and the settings but never the keys.

mod support;

use std::time::Duration;

use observe_runtime::{current_trace, span, Config, TraceContext};
use support::{by_name, child_mode, run_child_with, FakeLangfuse};

const TEST: &str = "a_worker_process_reports_into_the_parents_trace";

#[test]
fn a_worker_process_reports_into_the_parents_trace() {
    if child_mode().as_deref() == Some("worker") {
        // The worker: configured only by what the parent passed in its environment.
        let guard = observe_runtime::init().expect("the worker's init");
        let work = span("worker-task").start();
        current_trace().user_id("user-from-worker");
        work.end();
        guard.shutdown().expect("the worker delivers");
        return;
    }

    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-parent", "sk-lf-parent");
    let guard = Config::default()
        .public_key("pk-lf-parent")
        .secret_key("sk-lf-parent")
        .base_url(server.base_url())
        .environment("jobs")
        .init()
        .expect("init");
    let root = span("dispatch").start();
    let context = TraceContext::current().expect("a running trace");
    let output = run_child_with(TEST, "worker", Duration::from_secs(60), |command| {
        context.apply_to_with_keys(command);
    });
    output.assert_success();
    root.end();
    guard.shutdown().expect("shutdown");

    let spans = server.accepted_spans();
    let dispatch = by_name(&spans, "dispatch");
    let worker = by_name(&spans, "worker-task");
    assert_eq!(worker.trace_id(), dispatch.trace_id(), "one trace");
    assert_eq!(
        worker.parent_span_id(),
        dispatch.span_id(),
        "the worker's span hangs under the parent's"
    );
    assert_eq!(worker.str_attr("user.id"), Some("user-from-worker"));
    assert_eq!(
        worker.str_attr("langfuse.environment"),
        Some("jobs"),
        "settings were passed on"
    );
    assert_eq!(spans.len(), 2);
}

#[test]
fn apply_to_keeps_the_keys_back_and_apply_to_with_keys_passes_them() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-parent", "sk-lf-parent");
    let guard = Config::default()
        .public_key("pk-lf-parent")
        .secret_key("sk-lf-parent")
        .base_url(server.base_url())
        .init()
        .expect("init");
    let root = span("dispatch").start();
    let context = TraceContext::current().expect("a running trace");
    let env = |with_keys: bool| {
        let mut command = std::process::Command::new("sh");
        if with_keys {
            context.apply_to_with_keys(&mut command);
        } else {
            context.apply_to(&mut command);
        }
        let mut vars: Vec<(String, Option<String>)> = command
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .filter(|(k, _)| k.starts_with("LANGFUSE_") && k != "LANGFUSE_SAMPLE_RATE")
            .collect();
        vars.sort();
        vars
    };
    // Without keys they are removed, so not even a key in this process's environment is inherited.
    assert_eq!(
        env(false),
        [
            ("LANGFUSE_BASE_URL".to_string(), Some(server.base_url())),
            ("LANGFUSE_PUBLIC_KEY".to_string(), None),
            ("LANGFUSE_SECRET_KEY".to_string(), None),
        ]
    );
    assert_eq!(
        env(true),
        [
            ("LANGFUSE_BASE_URL".to_string(), Some(server.base_url())),
            (
                "LANGFUSE_PUBLIC_KEY".to_string(),
                Some("pk-lf-parent".to_string())
            ),
            (
                "LANGFUSE_SECRET_KEY".to_string(),
                Some("sk-lf-parent".to_string())
            ),
        ]
    );
    root.end();
    drop(guard);
}
