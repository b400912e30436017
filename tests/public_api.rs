//! The public entry points that no other test observes, each seen once where a user would see
//! it: on the wire at the fake Langfuse server (decoded with the official OpenTelemetry
//! messages), or in a child process's output. Also every `ObservationType`, compared with the
//! literal names Langfuse reads.
//!
//! The client is global to the process: every test holds [`support::serial`] and shuts its
//! client down before it ends.

mod support;

use std::time::Duration;

use observe_runtime::{
    current_observation, current_trace, observe, span, Config, Cost, Exporter, MemoryExporter,
    ObservationType, ScoreValue, TraceContext, Usage,
};
use serde_json::json;

use support::{by_name, child_mode, FakeLangfuse, ReceivedSpan};

use support::sdk::{PUBLIC_KEY, SECRET_KEY};
const WAIT: Duration = Duration::from_secs(10);

/// A client for `server` that exports only when asked.
fn config(server: &FakeLangfuse) -> Config {
    support::sdk::config_for(server)
}

fn names(spans: &[ReceivedSpan]) -> Vec<&str> {
    let mut names: Vec<&str> = spans.iter().map(ReceivedSpan::name).collect();
    names.sort_unstable();
    names
}

#[test]
fn every_observation_type_arrives_with_its_langfuse_name() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");

    // The names of the wire document, written out: a renamed or added variant fails here.
    let expected = [
        (ObservationType::Span, "span"),
        (ObservationType::Generation, "generation"),
        (ObservationType::Event, "event"),
        (ObservationType::Agent, "agent"),
        (ObservationType::Tool, "tool"),
        (ObservationType::Chain, "chain"),
        (ObservationType::Retriever, "retriever"),
        (ObservationType::Evaluator, "evaluator"),
        (ObservationType::Embedding, "embedding"),
        (ObservationType::Guardrail, "guardrail"),
    ];
    assert_eq!(
        ObservationType::ALL.to_vec(),
        expected.map(|(kind, _)| kind).to_vec(),
        "every type is sent below"
    );
    {
        let _root = span("types").start();
        for (kind, name) in expected {
            span(format!("as-{name}")).as_type(kind).start().end();
        }
    }
    guard.flush().expect("flush");

    let spans = server.wait_for_spans(expected.len() + 1, WAIT);
    assert_eq!(spans.len(), expected.len() + 1, "{:?}", names(&spans));
    for (_, name) in expected {
        assert_eq!(
            by_name(&spans, &format!("as-{name}")).str_attr("langfuse.observation.type"),
            Some(name),
            "as-{name}"
        );
    }
    guard.shutdown().expect("shutdown");
}

#[test]
fn resource_attributes_from_the_builder_and_from_the_environment_arrive() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);

    // `Config::resource_attribute`.
    let guard = config(&server)
        .resource_attribute("deployment.region", "eu-1")
        .resource_attribute("team", "replaced")
        .resource_attribute("team", "ml")
        .init()
        .expect("init");
    span("from-the-builder").start().end();
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(report.stats.spans_exported, 1);

    // `OTEL_RESOURCE_ATTRIBUTES`, read by `Config::from_vars` as by `Config::from_env`.
    let base_url = server.base_url();
    let guard = Config::from_vars([
        ("LANGFUSE_PUBLIC_KEY", PUBLIC_KEY),
        ("LANGFUSE_SECRET_KEY", SECRET_KEY),
        ("LANGFUSE_BASE_URL", base_url.as_str()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.region=us-2,team=search",
        ),
    ])
    .debug(false)
    .init()
    .expect("init from variables");
    span("from-the-environment").start().end();
    guard.shutdown().expect("shutdown");

    let spans = server.wait_for_spans(2, WAIT);
    let builder = by_name(&spans, "from-the-builder");
    assert_eq!(builder.resource_str("deployment.region"), Some("eu-1"));
    assert_eq!(
        builder.resource_str("team"),
        Some("ml"),
        "the last value wins"
    );
    let environment = by_name(&spans, "from-the-environment");
    assert_eq!(environment.resource_str("deployment.region"), Some("us-2"));
    assert_eq!(environment.resource_str("team"), Some("search"));
}

#[test]
fn handle_setters_and_the_guards_stats_reach_the_wire() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).release("from-config").init().expect("init");
    let before = guard.stats();

    let (trace_id, root_id, child_id);
    {
        let root = span("handles").start();
        root_id = root.id().expect("recorded");
        // `TraceHandle::release` and `::id`; `ObservationHandle::input` and `::id`.
        current_trace().release("from-the-handle");
        trace_id = current_trace().id().expect("recorded");
        current_observation().input(json!({"question": "why?"}));
        assert_eq!(current_observation().id(), Some(root_id));
        let child = span("generation")
            .as_type(ObservationType::Generation)
            .start();
        child_id = child.id().expect("recorded");
        current_observation()
            .input("plain text")
            .usage(Usage::new(10, 25).with_total(40))
            .cost(Cost::total_only(0.5));
        assert_eq!(Cost::total_only(0.5).total_usd(), Some(0.5));
        child.end();
        // `Usage::from_value`: a provider's usage object (Anthropic's here).
        let provider = span("provider-usage").start();
        current_observation().usage(Usage::from_value(&json!({
            "input_tokens": 12, "output_tokens": 30,
            "cache_read_input_tokens": 100, "service_tier": "standard"
        })));
        provider.end();
    }
    guard.flush().expect("flush");

    let spans = server.wait_for_spans(3, WAIT);
    assert_eq!(
        names(&spans),
        ["generation", "handles", "provider-usage"],
        "one trace of three"
    );
    for span in &spans {
        assert_eq!(span.trace_id(), trace_id.to_string());
        assert_eq!(
            span.str_attr("langfuse.release"),
            Some("from-the-handle"),
            "{}: the trace's release is on every span",
            span.name()
        );
    }
    let root = by_name(&spans, "handles");
    assert_eq!(root.span_id(), root_id.to_string());
    assert_eq!(
        root.json_attr("langfuse.observation.input"),
        Some(json!({"question": "why?"}))
    );
    let generation = by_name(&spans, "generation");
    assert_eq!(generation.span_id(), child_id.to_string());
    assert_eq!(
        generation.json_attr("langfuse.observation.input"),
        Some(json!("plain text"))
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.usage_details"),
        Some(json!({"input": 10, "output": 25, "total": 40}))
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.cost_details"),
        Some(json!({"total": 0.5}))
    );
    assert_eq!(
        by_name(&spans, "provider-usage").json_attr("langfuse.observation.usage_details"),
        Some(json!({"cache_read_input_tokens": 100, "input": 12, "output": 30, "total": 142}))
    );

    // `FlushGuard::stats`: what this client did, as `stats()` tells it.
    let after = guard.stats();
    assert_eq!(after, observe_runtime::stats());
    assert_eq!(after.spans_exported - before.spans_exported, 3);
    assert_eq!(after.requests_ok - before.requests_ok, 1);
    guard.shutdown().expect("shutdown");
}

#[observe]
fn answer(question: &str) -> String {
    format!("{question} 42")
}

#[observe(capture_input = true)]
fn answer_with_input(question: &str) -> String {
    format!("{question} 43")
}

#[test]
fn capture_io_off_keeps_arguments_and_results_unless_asked() {
    let _serial = support::serial();
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .capture_io(false)
        .init()
        .expect("init");
    assert_eq!(answer("why?"), "why? 42");
    assert_eq!(answer_with_input("how?"), "how? 43");
    guard.shutdown().expect("shutdown");

    let spans = memory.spans();
    let plain = spans.iter().find(|s| s.name == "answer").expect("answer");
    assert_eq!(
        (plain.input.as_deref(), plain.output.as_deref()),
        (None, None)
    );
    let asked = spans
        .iter()
        .find(|s| s.name == "answer_with_input")
        .expect("answer_with_input");
    assert_eq!(asked.input.as_deref(), Some(r#"{"question":"how?"}"#));
    assert_eq!(asked.output.as_deref(), None);
}

#[test]
fn a_configured_traceparent_and_baggage_make_this_process_a_child() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .baggage("langfuse_session_id=session-7,langfuse_user_id=user%40example.com")
        .init()
        .expect("init");
    span("worker-root").start().end();
    guard.shutdown().expect("shutdown");

    let spans = server.wait_for_spans(1, WAIT);
    let root = by_name(&spans, "worker-root");
    assert_eq!(root.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(root.parent_span_id(), "00f067aa0ba902b7");
    assert_eq!(root.str_attr("session.id"), Some("session-7"));
    assert_eq!(root.str_attr("user.id"), Some("user@example.com"));
}

/// The child's part of `trace_context_from_env_reads_the_variables_of_a_worker`: what
/// `TraceContext::from_env` read, and the span recorded under it.
#[test]
#[ignore = "the child process of trace_context_from_env_reads_the_variables_of_a_worker"]
fn trace_context_from_env_child() {
    child_mode().expect("run by its parent, with OBSERVE_TEST_CHILD_MODE set");
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .expect("init");
    let context = TraceContext::from_env().expect("TRACEPARENT is set");
    println!(
        "context trace={} parent={:?} sampled={} baggage={}",
        context.trace_id(),
        context.observation_id().map(|id| id.to_string()),
        context.is_sampled(),
        context.to_baggage()
    );
    {
        let _attached = context.attach();
        span("in-the-worker").start().end();
    }
    guard.shutdown().expect("shutdown");
    for span in memory.spans() {
        println!(
            "span {} trace={} parent={:?} session={:?}",
            span.name,
            span.trace_id,
            span.parent_span_id.map(|id| id.to_string()),
            span.trace.session_id
        );
    }
}

#[test]
fn trace_context_from_env_reads_the_variables_of_a_worker() {
    let output = support::run_child(
        "trace_context_from_env_child",
        "worker",
        &[
            (
                "TRACEPARENT",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("BAGGAGE", "langfuse_session_id=session-7"),
        ],
        Duration::from_secs(60),
    );
    output.assert_success();
    let lines: Vec<&str> = output
        .stdout
        .lines()
        // The test harness prints its own text before the first line.
        .filter_map(|line| {
            ["context ", "span "]
                .iter()
                .find_map(|start| line.find(start).map(|at| &line[at..]))
        })
        .collect();
    assert_eq!(
        lines,
        [
            "context trace=4bf92f3577b34da6a3ce929d0e0e4736 parent=Some(\"00f067aa0ba902b7\") \
             sampled=true baggage=langfuse_session_id=session-7",
            "span in-the-worker trace=4bf92f3577b34da6a3ce929d0e0e4736 \
             parent=Some(\"00f067aa0ba902b7\") session=Some(\"session-7\")",
        ],
        "stdout:\n{}\nstderr:\n{}",
        output.stdout,
        output.stderr
    );
}

#[test]
fn a_scores_data_type_is_what_arrives() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    let trace = observe_runtime::TraceId::from_seed("public-api");
    let values = [
        ScoreValue::from(0.5),
        ScoreValue::from(true),
        ScoreValue::from("good"),
    ];
    for (i, value) in values.iter().enumerate() {
        observe_runtime::score_trace(trace, format!("score-{i}"), value.clone());
    }
    guard.flush().expect("flush");
    let scores = server.wait_for_scores(3, WAIT);
    let types: Vec<&str> = scores
        .iter()
        .map(|score| score["dataType"].as_str().unwrap_or("missing"))
        .collect();
    assert_eq!(types, ["NUMERIC", "BOOLEAN", "CATEGORICAL"]);
    assert_eq!(
        values.iter().map(ScoreValue::data_type).collect::<Vec<_>>(),
        types
    );
    guard.shutdown().expect("shutdown");
}

#[test]
fn a_context_binds_closures_to_its_trace_on_other_threads() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    let root_id;
    {
        let root = span("fan-out").start();
        root_id = root.id().expect("recorded");
        let context = TraceContext::current().expect("inside a root");
        // `TraceContext::bind` and `TraceContext::bind_each`.
        let once = context.clone().bind(|| span("bound-once").start().end());
        std::thread::spawn(once).join().expect("the thread ran");
        let each = context.bind_each(|n: u32| span(format!("bound-{n}")).start().end());
        std::thread::spawn(move || (1..=2).for_each(each))
            .join()
            .expect("the thread ran");
    }
    guard.flush().expect("flush");

    let spans = server.wait_for_spans(4, WAIT);
    assert_eq!(
        names(&spans),
        ["bound-1", "bound-2", "bound-once", "fan-out"]
    );
    let root = by_name(&spans, "fan-out");
    assert_eq!(root.span_id(), root_id.to_string());
    for name in ["bound-1", "bound-2", "bound-once"] {
        let bound = by_name(&spans, name);
        assert_eq!(bound.trace_id(), root.trace_id(), "{name}");
        assert_eq!(bound.parent_span_id(), root.span_id(), "{name}");
    }
    guard.shutdown().expect("shutdown");
}

#[test]
fn malformed_ids_are_refused_with_the_reason() {
    let trace: observe_runtime::IdParseError = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
        .parse::<observe_runtime::TraceId>()
        .unwrap_err();
    assert_eq!(
        trace.to_string(),
        "\"6F9619FF-8B86-D011-B42D-00C04FC964FF\" is not a valid trace id: expected 32 lowercase \
         hex characters, not all zero (use TraceId::from_external for ids from other systems, \
         such as UUIDs)"
    );
    let observation: observe_runtime::IdParseError = "0000000000000000"
        .parse::<observe_runtime::ObservationId>()
        .unwrap_err();
    assert_eq!(
        observation.to_string(),
        "\"0000000000000000\" is not a valid observation id: expected 16 lowercase hex \
         characters, not all zero (use TraceId::from_external for ids from other systems, such \
         as UUIDs)"
    );
}
