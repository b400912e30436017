//! The context machinery with the in-memory exporter: manual spans, trace attributes on every span,
//! ids, `traceparent`, threads and child processes. One client for the whole binary.

use std::sync::OnceLock;

use observe_runtime::{
    current_observation, current_trace, span, Config, Exporter, FinishedSpan, FlushGuard, Level,
    MemoryExporter, ObservationType, TraceContext, TraceId, Usage,
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

fn by_name<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span named {name} in {spans:#?}"))
}

#[test]
fn manual_spans_nest_and_carry_their_setters() {
    let memory = memory();
    let root = span("ctx-root")
        .as_type(ObservationType::Agent)
        .input(serde_json::json!({"q": "hi"}))
        .start();
    let trace_id = observe_runtime::current_trace_id().expect("a recorded trace");
    {
        let _tool = span("ctx-tool").as_type(ObservationType::Tool).start();
        current_observation()
            .output("done")
            .metadata("attempt", 2)
            .level(Level::Warning)
            .status_message("slow");
    }
    let generation = span("ctx-llm").as_type(ObservationType::Generation).start();
    current_observation()
        .model("gpt-4o")
        .usage(Usage {
            input: 3,
            output: 4,
            ..Default::default()
        })
        .prompt("qa", 7);
    generation.end();
    root.end();

    let spans = memory.trace(trace_id);
    assert_eq!(
        spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>(),
        ["ctx-tool", "ctx-llm", "ctx-root"],
        "end order"
    );
    let (root, tool, llm) = (
        by_name(&spans, "ctx-root"),
        by_name(&spans, "ctx-tool"),
        by_name(&spans, "ctx-llm"),
    );
    assert_eq!(root.parent_span_id, None);
    assert!(root.is_local_root);
    assert_eq!(tool.parent_span_id, Some(root.span_id));
    assert_eq!(llm.parent_span_id, Some(root.span_id));
    assert_eq!(root.kind, ObservationType::Agent);
    assert_eq!(root.input.as_deref(), Some(r#"{"q":"hi"}"#));
    assert_eq!(tool.output.as_deref(), Some(r#""done""#));
    assert_eq!(tool.metadata, [("attempt".to_string(), "2".to_string())]);
    assert_eq!(
        (tool.level, tool.status_message.as_deref()),
        (Level::Warning, Some("slow"))
    );
    assert_eq!(llm.model.as_deref(), Some("gpt-4o"));
    assert_eq!(
        llm.usage.as_ref().map(Usage::to_json).as_deref(),
        Some(r#"{"input":3,"output":4,"total":7}"#)
    );
    assert_eq!(
        llm.prompt.as_ref().map(|p| (p.name.as_str(), p.version)),
        Some(("qa", 7))
    );
    assert!(root.start_unix_nanos <= tool.start_unix_nanos);
    assert!(tool.end_unix_nanos <= root.end_unix_nanos);
}

#[test]
fn trace_attributes_reach_every_span_that_ends_after_them() {
    let memory = memory();
    let root = span("attrs-root").start();
    let trace_id = observe_runtime::current_trace_id().unwrap();
    span("attrs-before").start().end();
    current_trace()
        .name("attrs-trace")
        .session_id("s-1")
        .user_id("u-1")
        .tags(["a", "b", "a"])
        .metadata("tenant", "acme")
        .version("v2");
    span("attrs-after").start().end();
    current_trace().tag("c").public(true);
    root.end();

    let spans = memory.trace(trace_id);
    let before = by_name(&spans, "attrs-before");
    assert_eq!(
        before.trace.session_id, None,
        "ended before the attributes were set"
    );
    let after = by_name(&spans, "attrs-after");
    assert_eq!(after.trace.session_id.as_deref(), Some("s-1"));
    assert_eq!(after.trace.user_id.as_deref(), Some("u-1"));
    assert_eq!(after.trace.tags, ["a", "b"]);
    assert_eq!(after.trace.public, None);
    let root = by_name(&spans, "attrs-root");
    assert_eq!(root.trace.name.as_deref(), Some("attrs-trace"));
    assert_eq!(
        root.trace.tags,
        ["a", "b", "c"],
        "the root carries the final values"
    );
    assert_eq!(root.trace.public, Some(true));
    assert_eq!(root.trace.version.as_deref(), Some("v2"));
    assert_eq!(
        root.trace.metadata,
        [("tenant".to_string(), "\"acme\"".to_string())]
    );
}

#[test]
fn setters_outside_an_observation_do_nothing() {
    let memory = memory();
    current_observation().model("nobody").output(1);
    current_trace().session_id("nobody");
    assert_eq!(observe_runtime::current_observation_id(), None);
    assert_eq!(observe_runtime::current_trace_id(), None);
    // Other tests of this binary record meanwhile, so the number of spans is not compared: no
    // span was made or changed by the setters, and none is left waiting for the next trace.
    {
        let _next = span("after-setters-outside").start();
    }
    let spans = memory.spans();
    let next = by_name(&spans, "after-setters-outside");
    assert_eq!(
        (next.model.as_deref(), next.output.as_deref()),
        (None, None)
    );
    assert_eq!(next.trace.session_id, None);
    assert!(spans
        .iter()
        .all(|s| s.model.as_deref() != Some("nobody")
            && s.trace.session_id.as_deref() != Some("nobody")));
}

#[test]
fn a_context_carries_the_trace_to_another_thread() {
    let memory = memory();
    let root = span("thread-root").start();
    let context = TraceContext::current().unwrap();
    let trace_id = context.trace_id();
    std::thread::spawn(move || {
        let _attached = context.attach();
        current_trace().user_id("from-thread");
        span("thread-child").start().end();
    })
    .join()
    .unwrap();
    root.end();
    let spans = memory.trace(trace_id);
    let root = by_name(&spans, "thread-root");
    let child = by_name(&spans, "thread-child");
    assert_eq!(child.parent_span_id, Some(root.span_id));
    assert_eq!(root.trace.user_id.as_deref(), Some("from-thread"));
}

#[test]
fn futures_keep_their_context_across_tokio_tasks() {
    use observe_runtime::FutureExt;
    let memory = memory();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let trace_id = runtime.block_on(async {
        let root = span("task-root").start();
        let context = TraceContext::current().unwrap();
        let handle = tokio::spawn(
            async {
                tokio::task::yield_now().await;
                span("task-child").start().end();
            }
            .in_context(context.clone()),
        );
        drop(root);
        handle.await.unwrap();
        context.trace_id()
    });
    let spans = memory.trace(trace_id);
    let root = by_name(&spans, "task-root");
    assert_eq!(
        by_name(&spans, "task-child").parent_span_id,
        Some(root.span_id)
    );
}

#[test]
fn a_traceparent_joins_the_callers_trace() {
    let memory = memory();
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let context = TraceContext::from_traceparent(header).unwrap();
    {
        let _attached = context.attach();
        let _span = span("remote-child").start();
        let here = TraceContext::current().unwrap().to_traceparent();
        assert!(
            here.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{here}"
        );
        assert!(here.ends_with("-01"));
        assert_ne!(here, header, "the child's own id is passed on");
    }
    let spans = memory.trace("4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap());
    let child = by_name(&spans, "remote-child");
    assert_eq!(
        child.parent_span_id,
        Some("00f067aa0ba902b7".parse().unwrap())
    );
    assert!(child.is_local_root);
}

#[test]
fn an_unsampled_traceparent_records_nothing() {
    let memory = memory();
    let header = "00-11111111111111111111111111111111-2222222222222222-00";
    let context = TraceContext::from_traceparent(header).unwrap();
    {
        let _attached = context.attach();
        let _span = span("unsampled").start();
        assert_eq!(observe_runtime::current_observation_id(), None);
        let _inner = span("unsampled-inner").start();
        assert!(TraceContext::current()
            .unwrap()
            .to_traceparent()
            .ends_with("-00"));
    }
    assert!(memory
        .spans()
        .iter()
        .all(|s| !s.name.starts_with("unsampled")));
}

#[test]
fn malformed_traceparents_are_refused_with_the_reason() {
    let error =
        TraceContext::from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid traceparent \"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\": the trace \
         id is not 32 lowercase hex characters, not all zero; expected \"00-<32 lowercase hex trace \
         id>-<16 lowercase hex parent id>-<2 hex flags>\""
    );
    assert_eq!(
        TraceContext::from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
            .unwrap_err()
            .to_string(),
        "invalid traceparent \"00-00000000000000000000000000000000-00f067aa0ba902b7-01\": the trace \
         id is not 32 lowercase hex characters, not all zero; expected \"00-<32 lowercase hex trace \
         id>-<16 lowercase hex parent id>-<2 hex flags>\""
    );
    assert_eq!(
        TraceContext::from_traceparent("garbage")
            .unwrap_err()
            .to_string(),
        "invalid traceparent \"garbage\": it has 1 part(s) separated by '-', not 4; expected \
         \"00-<32 lowercase hex trace id>-<16 lowercase hex parent id>-<2 hex flags>\""
    );
}

#[test]
fn an_external_id_starts_or_joins_a_trace_and_keeps_session_and_user() {
    let memory = memory();
    let request_id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
    let trace_id = TraceId::from_external(request_id);
    for part in ["ext-1", "ext-2"] {
        let _attached = TraceContext::for_trace(trace_id).attach();
        let _span = span(part).start();
        current_trace().session_id("chat-9").user_id("user-9");
    }
    let spans = memory.trace(trace_id);
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(span.trace.session_id.as_deref(), Some("chat-9"));
        assert_eq!(span.trace.user_id.as_deref(), Some("user-9"));
    }
}

#[test]
fn apply_to_passes_the_context_to_a_child_process() {
    let _root = span("parent-process").start();
    let context = TraceContext::current().unwrap();
    let mut command = std::process::Command::new("sh");
    command.args(["-c", "printf %s \"$TRACEPARENT\""]);
    context.apply_to(&mut command);
    let output = command.output().expect("sh runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        context.to_traceparent()
    );
}

#[test]
fn a_panic_through_a_manual_span_records_its_message() {
    let memory = memory();
    let trace_id = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let _span = span("panicking-manual").start();
        *trace_id.lock().unwrap() = observe_runtime::current_trace_id();
        panic!("disk full");
    });
    assert!(result.is_err(), "the panic goes on unwinding");
    let trace_id = trace_id.into_inner().unwrap().expect("a recorded trace");
    let span = &memory.trace(trace_id)[0];
    assert_eq!(span.name, "panicking-manual");
    assert_eq!(span.level, Level::Error);
    assert_eq!(span.status_message.as_deref(), Some("disk full"));
}

/// Starts and ends a manual span when it is dropped.
struct SpanInDrop(&'static std::sync::Mutex<Option<observe_runtime::TraceId>>);

impl Drop for SpanInDrop {
    fn drop(&mut self) {
        let _span = span("cleanup-manual").start();
        *self.0.lock().unwrap() = observe_runtime::current_trace_id();
    }
}

#[test]
fn a_manual_span_started_while_a_panic_unwinds_is_not_an_error() {
    let memory = memory();
    static TRACE_ID: std::sync::Mutex<Option<observe_runtime::TraceId>> =
        std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let _cleanup = SpanInDrop(&TRACE_ID);
        panic!("disk full");
    });
    assert!(result.is_err(), "the panic goes on unwinding");
    let trace_id = TRACE_ID.lock().unwrap().expect("a recorded trace");
    let span = &memory.trace(trace_id)[0];
    assert_eq!(span.name, "cleanup-manual");
    assert_eq!(span.level, Level::Default);
    assert_eq!(span.status_message, None);
}

#[test]
fn span_times_are_wall_clock_times() {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let memory = memory();
    let nanos = |at: SystemTime| at.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let before = nanos(SystemTime::now());
    let id = {
        let timed = span("timed").start();
        std::thread::sleep(Duration::from_millis(20));
        timed.id().expect("recorded")
    };
    let after = nanos(SystemTime::now());
    let spans = memory.spans();
    let timed = spans
        .iter()
        .find(|s| s.span_id == id)
        .expect("the span arrived");
    // Ticks are turned into Unix time on the way out: within a millisecond of the wall clock.
    let slack = 1_000_000;
    assert!(
        timed.start_unix_nanos + slack >= before && timed.start_unix_nanos <= after,
        "start {} not within [{before}, {after}]",
        timed.start_unix_nanos
    );
    assert!(
        timed.end_unix_nanos <= after + slack && timed.end_unix_nanos >= before,
        "end {} not within [{before}, {after}]",
        timed.end_unix_nanos
    );
    let took = timed.end_unix_nanos - timed.start_unix_nanos;
    assert!(
        (20_000_000..after - before + slack).contains(&took),
        "the span took {took} ns, slept 20 ms"
    );
}

#[test]
fn a_malformed_traceparent_says_what_is_wrong() {
    let message = |header: &str| {
        TraceContext::from_traceparent(header)
            .expect_err("refused")
            .to_string()
    };
    let expected = "; expected \"00-<32 lowercase hex trace id>-<16 lowercase hex parent id>-<2 \
                    hex flags>\"";
    assert_eq!(
        message("00-550e8400-e29b-41d4-a716-446655440000-zz-01"),
        format!(
            "invalid traceparent \"00-550e8400-e29b-41d4-a716-446655440000-zz-01\": the trace id \
             \"550e8400-e29b-41d4-a716-446655440000\" is a UUID with dashes; write it as 32 \
             lowercase hex characters without them (TraceId::from_external turns any id into a \
             trace id){expected}"
        )
    );
    assert_eq!(
        message("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"),
        format!(
            "invalid traceparent \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra\": \
             version 00 has exactly 4 parts separated by '-' (version, trace id, parent id, \
             flags), this one has 5{expected}"
        )
    );
    assert_eq!(
        message("00-4bf92f3577b34da6a3ce929d0e0e4736"),
        format!(
            "invalid traceparent \"00-4bf92f3577b34da6a3ce929d0e0e4736\": it has 2 part(s) \
             separated by '-', not 4{expected}"
        )
    );
    assert_eq!(
        message("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        format!(
            "invalid traceparent \"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\": \
             version ff is invalid in the W3C format{expected}"
        )
    );
}
