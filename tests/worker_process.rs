//! A worker process joins its parent's trace: `TraceContext::apply_to` hands it `TRACEPARENT` and
//! the parent's Langfuse settings, and the worker's plain `init()` picks both up.

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
        context.apply_to(command);
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
