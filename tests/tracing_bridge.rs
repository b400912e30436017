//! The bridge from `tracing`: spans shaped like those rig and genai emit, `#[instrument]`
//! functions and `#[observe]` functions in one trace tree, as a fake Langfuse server receives
//! them, attribute by attribute.
//!
//! One client for the whole binary (against one fake server); each test finds its own trace by
//! id. Each test sets its own subscriber with `tracing::subscriber::set_default` (spawned tasks
//! carry it with `with_current_subscriber`). What needs its own configuration (capture off, a
//! global subscriber that the exporter thread sees) runs in a child process.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use observe_runtime::{
    current_observation, current_trace_id, observe, tracing_layer, Config, FlushGuard, FutureExt,
};
use tracing::field::Empty;
use tracing::{Instrument as _, Level};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

use support::{by_name, child_mode, FakeLangfuse, ReceivedSpan};

use support::sdk::{PUBLIC_KEY, SECRET_KEY};
const WAIT: Duration = Duration::from_secs(10);
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// The field limit of the binary's client, in bytes.
const FIELD_LIMIT: usize = 1000;

fn config(server: &FakeLangfuse) -> Config {
    support::sdk::config_for(server)
}

/// The binary's server and client: capture on, a mask that redacts live keys, a field limit of
/// [`FIELD_LIMIT`].
fn server() -> &'static FakeLangfuse {
    static CLIENT: OnceLock<(FakeLangfuse, FlushGuard)> = OnceLock::new();
    &CLIENT
        .get_or_init(|| {
            let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
            let guard = config(&server)
                .max_field_bytes(FIELD_LIMIT)
                .mask(support::sdk::redact_live_keys)
                .init()
                .expect("init");
            (server, guard)
        })
        .0
}

/// The default subscriber of this thread until the guard drops: a registry with the bridge.
fn bridged() -> tracing::subscriber::DefaultGuard {
    tracing::subscriber::set_default(tracing_subscriber::registry().with(tracing_layer()))
}

/// The spans of trace `trace_id` the server accepted, after a flush; `expected` of them.
fn received(trace_id: &str, expected: usize) -> Vec<ReceivedSpan> {
    observe_runtime::flush().expect("flush");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let spans: Vec<ReceivedSpan> = server()
            .accepted_spans()
            .into_iter()
            .filter(|span| span.trace_id() == trace_id)
            .collect();
        if spans.len() >= expected || std::time::Instant::now() > deadline {
            assert_eq!(
                spans.len(),
                expected,
                "spans of the trace: {:?}",
                spans.iter().map(ReceivedSpan::name).collect::<Vec<_>>()
            );
            return spans;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The id of the trace running here, as hex.
fn trace_here() -> String {
    current_trace_id()
        .expect("a recorded trace is current")
        .to_string()
}

/// The attributes of `span` that carry observation metadata, as (key, JSON text).
fn metadata(span: &ReceivedSpan) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = span
        .attr_keys()
        .into_iter()
        .filter_map(|key| {
            let name = key.strip_prefix("langfuse.observation.metadata.")?;
            Some((name.to_string(), span.str_attr(key)?.to_string()))
        })
        .collect();
    pairs.sort();
    pairs
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

fn assert_child_of(child: &ReceivedSpan, parent: &ReceivedSpan) {
    assert_eq!(
        child.parent_span_id(),
        parent.span_id(),
        "{} should be a child of {}",
        child.name(),
        parent.name()
    );
    assert_eq!(child.trace_id(), parent.trace_id());
}

fn assert_attr(span: &ReceivedSpan, key: &str, expected: Option<&str>) {
    assert_eq!(span.str_attr(key), expected, "{} of {}", key, span.name());
}

// ------------------------------------------------------------------------------------ rig

#[test]
fn rig_shaped_agent_completion_and_tool_spans_map_to_langfuse_fields() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let agent = tracing::info_span!(
            target: "rig::agent_chat",
            "invoke_agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = "weather-agent",
            gen_ai.system_instructions = "You answer weather questions.",
            gen_ai.prompt = "Weather in Paris?",
            gen_ai.completion = Empty,
        );
        let _agent = agent.enter();
        trace_id = trace_here();
        {
            let chat = tracing::info_span!(
                target: "rig::completions",
                "chat",
                gen_ai.operation.name = "chat",
                gen_ai.provider.name = "openai",
                gen_ai.request.model = "gpt-4o",
                gen_ai.request.temperature = 0.2,
                gen_ai.request.max_tokens = 256u64,
                gen_ai.response.id = Empty,
                gen_ai.response.model = Empty,
                gen_ai.usage.input_tokens = Empty,
                gen_ai.usage.output_tokens = Empty,
                gen_ai.input.messages = r#"[{"role":"user","content":"Weather in Paris?"}]"#,
                gen_ai.output.messages = Empty,
            );
            let _chat = chat.enter();
            chat.record("gen_ai.response.id", "chatcmpl-1");
            chat.record("gen_ai.response.model", "gpt-4o-2024-08-06");
            chat.record("gen_ai.usage.input_tokens", 12u64);
            chat.record("gen_ai.usage.output_tokens", 30u64);
            chat.record(
                "gen_ai.output.messages",
                r#"[{"role":"assistant","tool_calls":[{"name":"get_weather"}]}]"#,
            );
        }
        {
            let tool = tracing::info_span!(
                target: "rig::tools",
                "execute_tool",
                gen_ai.operation.name = "execute_tool",
                gen_ai.tool.type = "function",
                gen_ai.tool.name = "get_weather",
                gen_ai.tool.call.id = Empty,
                gen_ai.tool.call.arguments = r#"{"city":"Paris"}"#,
                gen_ai.tool.call.result = Empty,
            );
            let _tool = tool.enter();
            tool.record("gen_ai.tool.call.id", "call-7");
            tool.record("gen_ai.tool.call.result", r#"{"celsius":21}"#);
        }
        agent.record("gen_ai.completion", "Sunny, 21 °C.");
    }
    let spans = received(&trace_id, 3);
    let agent = by_name(&spans, "invoke_agent");
    let chat = by_name(&spans, "chat");
    let tool = by_name(&spans, "execute_tool");
    assert_eq!(agent.parent_span_id(), "", "the agent span is the root");
    assert_child_of(chat, agent);
    assert_child_of(tool, agent);

    assert_attr(agent, "langfuse.observation.type", Some("agent"));
    assert_attr(
        agent,
        "langfuse.observation.input",
        Some(r#""Weather in Paris?""#),
    );
    assert_attr(
        agent,
        "langfuse.observation.output",
        Some(r#""Sunny, 21 °C.""#),
    );
    assert_eq!(
        metadata(agent),
        pairs(&[
            ("gen_ai.agent.name", r#""weather-agent""#),
            (
                "gen_ai.system_instructions",
                r#""You answer weather questions.""#
            ),
        ])
    );

    assert_attr(chat, "langfuse.observation.type", Some("generation"));
    assert_attr(
        chat,
        "langfuse.observation.model.name",
        Some("gpt-4o-2024-08-06"),
    );
    assert_attr(
        chat,
        "langfuse.observation.model.parameters",
        Some(r#"{"max_tokens":256,"temperature":0.2}"#),
    );
    assert_attr(
        chat,
        "langfuse.observation.usage_details",
        Some(r#"{"input":12,"output":30,"total":42}"#),
    );
    assert_attr(
        chat,
        "langfuse.observation.input",
        // The mask re-serializes what it sees: keys come out sorted.
        Some(r#"[{"content":"Weather in Paris?","role":"user"}]"#),
    );
    assert_attr(
        chat,
        "langfuse.observation.output",
        Some(r#"[{"role":"assistant","tool_calls":[{"name":"get_weather"}]}]"#),
    );
    assert_eq!(
        metadata(chat),
        pairs(&[
            ("gen_ai.provider.name", r#""openai""#),
            ("gen_ai.response.id", r#""chatcmpl-1""#),
        ])
    );
    assert_attr(chat, "langfuse.observation.level", None);

    assert_attr(tool, "langfuse.observation.type", Some("tool"));
    assert_attr(
        tool,
        "langfuse.observation.input",
        Some(r#"{"city":"Paris"}"#),
    );
    assert_attr(
        tool,
        "langfuse.observation.output",
        Some(r#"{"celsius":21}"#),
    );
    assert_attr(tool, "langfuse.observation.model.name", None);
    assert_eq!(
        metadata(tool),
        pairs(&[
            ("gen_ai.tool.call.id", r#""call-7""#),
            ("gen_ai.tool.name", r#""get_weather""#),
            ("gen_ai.tool.type", r#""function""#),
        ])
    );
}

// ---------------------------------------------------------------------------------- genai

#[test]
fn genai_shaped_spans_take_otel_name_first_chunk_and_trace_attributes() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let chat = tracing::info_span!(
            target: "genai::chat",
            "chat",
            otel.name = "chat gpt-4o-mini",
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.system = "openai",
            gen_ai.request.model = "gpt-4o-mini",
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.total_tokens = Empty,
            gen_ai.usage.cache_read_input_tokens = Empty,
            gen_ai.usage.cost = Empty,
            gen_ai.response.time_to_first_chunk = Empty,
            gen_ai.conversation.id = "conv-9",
            user.id = "user-3",
        );
        let _chat = chat.enter();
        trace_id = trace_here();
        // A child that ends first still carries the trace attributes.
        tracing::info_span!("decode-stream").in_scope(|| {});
        chat.record("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
        chat.record("gen_ai.usage.input_tokens", 100u64);
        chat.record("gen_ai.usage.output_tokens", 20u64);
        chat.record("gen_ai.usage.total_tokens", 120u64);
        chat.record("gen_ai.usage.cache_read_input_tokens", 64u64);
        chat.record("gen_ai.usage.cost", 0.0003);
        chat.record("gen_ai.response.time_to_first_chunk", 0.25);
    }
    let spans = received(&trace_id, 2);
    let chat = by_name(&spans, "chat gpt-4o-mini");
    let decode = by_name(&spans, "decode-stream");
    assert_child_of(decode, chat);
    assert_attr(chat, "langfuse.observation.type", Some("generation"));
    assert_attr(
        chat,
        "langfuse.observation.model.name",
        Some("gpt-4o-mini-2024-07-18"),
    );
    assert_attr(
        chat,
        "langfuse.observation.usage_details",
        Some(r#"{"cache_read_input_tokens":64,"input":100,"output":20,"total":120}"#),
    );
    assert_attr(
        chat,
        "langfuse.observation.cost_details",
        Some(r#"{"total":0.0003}"#),
    );
    assert_attr(chat, "langfuse.observation.model.parameters", None);
    assert_eq!(metadata(chat), pairs(&[("gen_ai.system", r#""openai""#)]));
    let first_chunk = chat
        .str_attr("langfuse.observation.completion_start_time")
        .expect("a completion start time");
    let start_micros = (chat.span.start_time_unix_nano / 1_000) as i64;
    let after = support::iso8601_micros(first_chunk) as i64 - start_micros;
    assert!(
        (after - 250_000).abs() <= 1,
        "completion start {first_chunk} is {after} µs after the start, not 250 ms"
    );
    for span in [chat, decode] {
        assert_attr(span, "session.id", Some("conv-9"));
        assert_attr(span, "user.id", Some("user-3"));
    }
}

// -------------------------------------------------------------------- nesting, sync

#[observe]
fn plan(step: u32) -> String {
    lookup(step)
}

#[tracing::instrument]
fn lookup(step: u32) -> String {
    current_observation().model("tiny-model");
    summarize(step)
}

#[observe(name = "summarize")]
fn summarize(step: u32) -> String {
    format!("summary {step}")
}

#[test]
fn observe_and_instrument_nest_inside_each_other_both_ways() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let request = tracing::info_span!("handle_request", route = "/plan");
        let _request = request.enter();
        trace_id = trace_here();
        assert_eq!(plan(3), "summary 3");
    }
    let spans = received(&trace_id, 4);
    let request = by_name(&spans, "handle_request");
    let plan = by_name(&spans, "plan");
    let lookup = by_name(&spans, "lookup");
    let summarize = by_name(&spans, "summarize");
    assert_eq!(request.parent_span_id(), "");
    assert_child_of(plan, request);
    assert_child_of(lookup, plan);
    assert_child_of(summarize, lookup);
    assert_attr(plan, "langfuse.observation.input", Some(r#"{"step":3}"#));
    assert_attr(plan, "langfuse.observation.output", Some(r#""summary 3""#));
    // The handle reaches the entered tracing span; a model makes it a generation.
    assert_attr(
        lookup,
        "langfuse.observation.model.name",
        Some("tiny-model"),
    );
    assert_attr(lookup, "langfuse.observation.type", Some("span"));
    assert_eq!(metadata(lookup), pairs(&[("step", "3")]));
    assert_eq!(metadata(request), pairs(&[("route", r#""/plan""#)]));
}

#[test]
fn an_explicit_parent_wins_over_the_current_observation() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let background = tracing::info_span!("background");
        let _root = observe_runtime::span("request").start();
        trace_id = trace_here();
        let orphan_of_request = tracing::info_span!(parent: &background, "explicit-child");
        let contextual = tracing::info_span!("contextual-child");
        drop((orphan_of_request, contextual));
        drop(background);
    }
    let spans = received(&trace_id, 2);
    let request = by_name(&spans, "request");
    assert_child_of(by_name(&spans, "contextual-child"), request);
    // "background" started a trace of its own, and its explicit child went there.
    let background: Vec<ReceivedSpan> = server()
        .accepted_spans()
        .into_iter()
        .filter(|span| span.name() == "background" || span.name() == "explicit-child")
        .collect();
    assert_eq!(background.len(), 2, "{background:?}");
    let root = by_name(&background, "background");
    assert_child_of(by_name(&background, "explicit-child"), root);
    assert_ne!(root.trace_id(), trace_id);
}

// ------------------------------------------------------------------- nesting, async

#[observe]
async fn research(topic: String) -> String {
    let found = search(topic.clone()).await;
    let spawned = tokio::spawn(rank(found.clone()).in_current_context())
        .await
        .expect("the ranking task");
    let instrumented = tokio::spawn(
        async { tokio::task::yield_now().await }.instrument(tracing::info_span!("spawned-step")),
    );
    instrumented.await.expect("the instrumented task");
    format!("{spawned} on {topic}")
}

#[tracing::instrument]
async fn search(topic: String) -> Vec<String> {
    tokio::task::yield_now().await;
    let docs = fetch(topic).await;
    tokio::task::yield_now().await;
    docs
}

#[observe]
async fn fetch(topic: String) -> Vec<String> {
    tokio::task::yield_now().await;
    vec![format!("doc about {topic}")]
}

#[observe]
async fn rank(docs: Vec<String>) -> String {
    tokio::task::yield_now().await;
    docs.join(",")
}

async fn async_tree() -> String {
    let (trace_id, answer) = async {
        let trace_id = trace_here();
        (trace_id, research("rust".to_string()).await)
    }
    .instrument(tracing::info_span!("agent_turn"))
    .await;
    assert_eq!(answer, "doc about rust on rust");
    trace_id
}

fn check_async_tree(trace_id: &str) {
    let spans = received(trace_id, 6);
    let turn = by_name(&spans, "agent_turn");
    let research = by_name(&spans, "research");
    let search = by_name(&spans, "search");
    assert_eq!(turn.parent_span_id(), "");
    assert_child_of(research, turn);
    assert_child_of(search, research);
    assert_child_of(by_name(&spans, "fetch"), search);
    assert_child_of(by_name(&spans, "rank"), research);
    assert_child_of(by_name(&spans, "spawned-step"), research);
    assert_attr(
        research,
        "langfuse.observation.output",
        Some(r#""doc about rust on rust""#),
    );
    assert_eq!(metadata(search), pairs(&[("topic", r#""rust""#)]));
}

#[tokio::test(flavor = "current_thread")]
async fn nesting_holds_across_await_on_a_current_thread_runtime() {
    server();
    let _subscriber = bridged();
    let trace_id = async_tree().await;
    check_async_tree(&trace_id);
}

#[test]
fn nesting_holds_across_await_on_a_multi_thread_runtime() {
    server();
    // As with a global subscriber: every worker thread has it as its default (a span that ends
    // where no subscriber is the default would keep its parent open).
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(tracing_layer()));
    let for_workers = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&for_workers));
        })
        .build()
        .expect("a multi-thread runtime");
    let _default = tracing::dispatcher::set_default(&dispatch);
    let trace_id = runtime
        .block_on(async { tokio::spawn(async_tree()).await })
        .expect("the tree task");
    check_async_tree(&trace_id);
}

#[test]
fn a_span_entered_on_two_threads_at_once_is_one_observation_with_both_children() {
    server();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(tracing_layer()));
    let _default = tracing::dispatcher::set_default(&dispatch);
    let shared = tracing::info_span!("shared-span", gen_ai.request.model = "model-x");
    let trace_id = shared.in_scope(trace_here);
    let both_entered = std::sync::Arc::new(std::sync::Barrier::new(2));
    let workers: Vec<_> = (0..2u32)
        .map(|i| {
            let (span, both_entered, dispatch) =
                (shared.clone(), both_entered.clone(), dispatch.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _entered = span.enter();
                    both_entered.wait();
                    summarize(i);
                    both_entered.wait();
                })
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker thread");
    }
    drop(shared);
    let spans = received(&trace_id, 3);
    let shared = by_name(&spans, "shared-span");
    let children: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name() == "summarize").collect();
    assert_eq!(children.len(), 2);
    for child in children {
        assert_child_of(child, shared);
    }
    assert_attr(shared, "langfuse.observation.model.name", Some("model-x"));
    assert_attr(shared, "langfuse.observation.type", Some("generation"));
}

// ------------------------------------------------------------------- levels and errors

#[derive(Debug)]
struct QuotaExceeded;

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota exceeded")
    }
}

impl std::error::Error for QuotaExceeded {}

#[tracing::instrument(err)]
fn charge(amount: u32) -> Result<u32, QuotaExceeded> {
    if amount > 10 {
        return Err(QuotaExceeded);
    }
    Ok(amount)
}

#[test]
fn errors_and_warnings_set_levels_and_status_messages() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let _root = tracing::info_span!("billing").entered();
        trace_id = trace_here();
        assert!(charge(50).is_err());
        assert_eq!(charge(5).ok(), Some(5));
        tracing::info_span!("slow-step").in_scope(|| {
            tracing::warn!(elapsed_ms = 900u64, "took 900 ms");
        });
        tracing::info_span!("warned-then-failed").in_scope(|| {
            tracing::warn!("retrying");
            tracing::error!("gave up");
            tracing::warn!("cleanup was slow");
        });
        let failed = tracing::info_span!(
            "otel-status",
            otel.status_code = Empty,
            otel.status_message = Empty
        );
        failed.record("otel.status_code", "ERROR");
        failed.record("otel.status_message", "upstream returned 503");
    }
    // billing, two charge spans, slow-step, warned-then-failed, otel-status, and the event
    // observations: the error of charge(50), "took 900 ms", "retrying", "gave up",
    // "cleanup was slow".
    let spans = received(&trace_id, 11);
    let billing = by_name(&spans, "billing");
    let charges: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name() == "charge").collect();
    assert_eq!(charges.len(), 2);
    let (failed_charge, good_charge) =
        if charges[0].str_attr("langfuse.observation.level").is_some() {
            (charges[0], charges[1])
        } else {
            (charges[1], charges[0])
        };
    assert_attr(failed_charge, "langfuse.observation.level", Some("ERROR"));
    assert_attr(
        failed_charge,
        "langfuse.observation.status_message",
        Some("quota exceeded"),
    );
    assert_attr(good_charge, "langfuse.observation.level", None);
    assert_attr(good_charge, "langfuse.observation.status_message", None);
    let error_event = by_name(&spans, "quota exceeded");
    assert_child_of(error_event, failed_charge);
    assert_attr(error_event, "langfuse.observation.type", Some("event"));
    assert_attr(error_event, "langfuse.observation.level", Some("ERROR"));
    assert_eq!(
        error_event.span.start_time_unix_nano,
        error_event.span.end_time_unix_nano
    );

    let slow = by_name(&spans, "slow-step");
    assert_attr(slow, "langfuse.observation.level", Some("WARNING"));
    assert_attr(
        slow,
        "langfuse.observation.status_message",
        Some("took 900 ms"),
    );
    let warning = by_name(&spans, "took 900 ms");
    assert_child_of(warning, slow);
    assert_attr(warning, "langfuse.observation.level", Some("WARNING"));
    assert_eq!(metadata(warning), pairs(&[("elapsed_ms", "900")]));

    let mixed = by_name(&spans, "warned-then-failed");
    assert_attr(mixed, "langfuse.observation.level", Some("ERROR"));
    assert_attr(
        mixed,
        "langfuse.observation.status_message",
        Some("gave up"),
    );

    let status = by_name(&spans, "otel-status");
    assert_attr(status, "langfuse.observation.level", Some("ERROR"));
    assert_attr(
        status,
        "langfuse.observation.status_message",
        Some("upstream returned 503"),
    );
    assert_eq!(metadata(status), vec![]);
    assert_attr(billing, "langfuse.observation.level", None);
}

#[test]
fn info_events_are_observations_only_when_asked() {
    server();
    let trace_id;
    let with_events;
    {
        let _subscriber = bridged();
        let _root = tracing::info_span!("quiet").entered();
        trace_id = trace_here();
        tracing::info!(docs = 3u64, "retrieved");
        tracing::debug!("details");
    }
    {
        let _subscriber = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(tracing_layer().record_info_events(true)),
        );
        let _root = tracing::info_span!("chatty").entered();
        with_events = trace_here();
        tracing::info!(docs = 3u64, "retrieved");
        tracing::debug!("details");
        tracing::info!(error = "transient", "retried");
    }
    let quiet = received(&trace_id, 1);
    assert_eq!(quiet[0].name(), "quiet");
    let chatty = received(&with_events, 4);
    let root = by_name(&chatty, "chatty");
    let info = by_name(&chatty, "retrieved");
    let debug = by_name(&chatty, "details");
    assert_child_of(info, root);
    assert_child_of(debug, root);
    assert_attr(info, "langfuse.observation.type", Some("event"));
    assert_attr(info, "langfuse.observation.level", None);
    assert_attr(debug, "langfuse.observation.level", Some("DEBUG"));
    assert_eq!(metadata(info), pairs(&[("docs", "3")]));
    // An `error` field does not make an INFO event an error, nor its span.
    let retried = by_name(&chatty, "retried");
    assert_attr(retried, "langfuse.observation.level", None);
    assert_eq!(metadata(retried), pairs(&[("error", r#""transient""#)]));
    assert_attr(root, "langfuse.observation.level", None);
}

// ------------------------------------------------------------------------- recording

#[test]
fn values_recorded_after_creation_are_merged() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let step = tracing::info_span!(
            "step",
            otel.name = Empty,
            attempt = 1u64,
            result = Empty,
            api_key = "sk-live-123",
            notes = Empty,
        );
        let _step = step.enter();
        trace_id = trace_here();
        step.record("attempt", 2u64);
        step.record("result", "ok");
        step.record("otel.name", "step 2");
        step.record("notes", "x".repeat(3000).as_str());
    }
    let spans = received(&trace_id, 1);
    let step = by_name(&spans, "step 2");
    // Cut so that the value as sent, quotes and marker included, fills the field limit.
    let marker = "… [truncated from 3000 bytes]";
    let notes = format!("\"{}{marker}\"", "x".repeat(FIELD_LIMIT - marker.len() - 2));
    assert_eq!(notes.len(), FIELD_LIMIT);
    assert_eq!(
        metadata(step),
        pairs(&[
            ("api_key", r#""[redacted]""#),
            ("attempt", "2"),
            ("notes", &notes),
            ("result", r#""ok""#),
        ])
    );
}

/// A value whose `Debug` logs: what a layer must survive without deadlocking.
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::warn!("formatted while recorded");
        f.write_str("chatty")
    }
}

#[test]
fn a_value_that_logs_while_it_is_recorded_neither_deadlocks_nor_is_lost() {
    server();
    let trace_id = support::within(WAIT, "recording a value that logs", || {
        let _subscriber = bridged();
        let span = tracing::info_span!("formatting", value = Empty);
        let _entered = span.enter();
        span.record("value", tracing::field::debug(&Chatty));
        trace_here()
    });
    let spans = received(&trace_id, 2);
    let formatting = by_name(&spans, "formatting");
    assert_child_of(by_name(&spans, "formatted while recorded"), formatting);
    assert_attr(formatting, "langfuse.observation.level", Some("WARNING"));
    assert_eq!(metadata(formatting), pairs(&[("value", r#""chatty""#)]));
}

#[test]
fn swiftide_and_langfuse_fields_mean_what_langfuse_means() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let span = tracing::info_span!(
            "prompt",
            langfuse.type = "GENERATION",
            langfuse.input = r#"{"prompt":"hi"}"#,
            langfuse.output = Empty,
            langfuse.model = "llama-3",
            langfuse.usage = Empty,
            langfuse.session_id = "s-5",
            langfuse.user_id = "u-5",
            langfuse.tags = r#"["rag","beta"]"#,
            langfuse.observation.metadata.stage = "draft",
            langfuse.observation.completion_start_time = "2026-12-02T15:44:04.123456+01:00",
            langfuse.level = "DEBUG",
        );
        let _span = span.enter();
        trace_id = trace_here();
        span.record("langfuse.output", "hello");
        span.record(
            "langfuse.usage",
            r#"{"prompt_tokens":4,"completion_tokens":1}"#,
        );
    }
    let spans = received(&trace_id, 1);
    let prompt = &spans[0];
    assert_attr(prompt, "langfuse.observation.type", Some("generation"));
    assert_attr(prompt, "langfuse.observation.level", Some("DEBUG"));
    assert_attr(
        prompt,
        "langfuse.observation.input",
        Some(r#"{"prompt":"hi"}"#),
    );
    assert_attr(prompt, "langfuse.observation.output", Some(r#""hello""#));
    assert_attr(prompt, "langfuse.observation.model.name", Some("llama-3"));
    assert_attr(
        prompt,
        "langfuse.observation.usage_details",
        Some(r#"{"input":4,"output":1,"total":5}"#),
    );
    assert_attr(prompt, "session.id", Some("s-5"));
    assert_attr(prompt, "user.id", Some("u-5"));
    assert_eq!(
        prompt.string_array_attr("langfuse.trace.tags"),
        Some(vec!["rag".to_string(), "beta".to_string()])
    );
    assert_attr(
        prompt,
        "langfuse.observation.completion_start_time",
        Some("2026-12-02T14:44:04.123456Z"),
    );
    assert_eq!(metadata(prompt), pairs(&[("stage", r#""draft""#)]));
}

// ------------------------------------------------------------------------- filtering

/// Asserts that trace `trace_id` is exactly `outer` > `inner` > `summarize`.
fn assert_chain_to_summarize(trace_id: &str, outer: &str, inner: &str) {
    let spans = received(trace_id, 3);
    let outer = by_name(&spans, outer);
    let inner = by_name(&spans, inner);
    assert_child_of(inner, outer);
    assert_child_of(by_name(&spans, "summarize"), inner);
}

#[test]
fn two_bridge_layers_in_one_subscriber_record_each_span_once() {
    server();
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(tracing_layer())
            .with(tracing_layer()),
    );
    let trace_id;
    {
        let _outer = tracing::info_span!("twice-outer").entered();
        trace_id = trace_here();
        tracing::info_span!("twice-inner").in_scope(|| summarize(2));
    }
    assert_chain_to_summarize(&trace_id, "twice-outer", "twice-inner");
}

#[test]
fn a_per_layer_filter_leaves_rejected_spans_out_of_the_tree() {
    server();
    let filter = Targets::new().with_target("tracing_bridge", Level::INFO);
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(tracing_layer().with_filter(filter)),
    );
    let trace_id;
    {
        let _app = tracing::info_span!("app").entered();
        trace_id = trace_here();
        let _noisy = tracing::info_span!(target: "noisy_dependency", "pool-checkout").entered();
        let _debug = tracing::debug_span!("debug-detail").entered();
        let _inner = tracing::info_span!("inner").entered();
        summarize(1);
    }
    assert_chain_to_summarize(&trace_id, "app", "inner");
}

#[test]
fn spans_and_events_of_the_exporters_http_stack_are_not_recorded() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let _app = tracing::info_span!("upload").entered();
        trace_id = trace_here();
        {
            let _http = tracing::info_span!(target: "hyper::client", "http-request").entered();
            tracing::error!(target: "reqwest::connect", "connection reset");
            let _inner = tracing::info_span!(target: "h2", "stream").entered();
            tracing::warn!(target: "rustls::conn", "close notify");
            let _pool = tracing::info_span!(target: "hyper_util::client", "pool").entered();
            tracing::error!(target: "hyper", "broken pipe");
        }
        let _app_step = tracing::info_span!("after-http").entered();
    }
    let spans = received(&trace_id, 2);
    let upload = by_name(&spans, "upload");
    assert_child_of(by_name(&spans, "after-http"), upload);
    assert_attr(upload, "langfuse.observation.level", None);
}

// --------------------------------------------------------------- child processes

/// A child's own client, configured from its environment, against a fake server of its own.
fn client_from_env() -> (FakeLangfuse, FlushGuard) {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = Config::from_env()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(server.base_url())
        .init()
        .expect("init");
    (server, guard)
}

#[test]
fn capture_off_keeps_mapped_input_and_output_out() {
    if child_mode().as_deref() == Some("capture-off") {
        let (server, guard) = client_from_env();
        let _subscriber = bridged();
        let trace_id;
        {
            let chat = tracing::info_span!(
                "chat",
                gen_ai.operation.name = "chat",
                gen_ai.request.model = "gpt-4o",
                gen_ai.input.messages = r#"[{"role":"user","content":"secret plans"}]"#,
                gen_ai.output.messages = Empty,
                gen_ai.usage.input_tokens = 5u64,
            );
            let _chat = chat.enter();
            trace_id = trace_here();
            chat.record("gen_ai.output.messages", r#"[{"role":"assistant"}]"#);
        }
        guard.flush().expect("flush");
        let spans: Vec<ReceivedSpan> = server
            .wait_for_spans(1, WAIT)
            .into_iter()
            .filter(|span| span.trace_id() == trace_id)
            .collect();
        assert_eq!(spans.len(), 1);
        assert_attr(&spans[0], "langfuse.observation.input", None);
        assert_attr(&spans[0], "langfuse.observation.output", None);
        assert_attr(&spans[0], "langfuse.observation.model.name", Some("gpt-4o"));
        assert_attr(
            &spans[0],
            "langfuse.observation.usage_details",
            Some(r#"{"input":5,"output":0,"total":5}"#),
        );
        return;
    }
    child_test!(
        "capture-off",
        &[("LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED", "false")],
        CHILD_TIMEOUT
    )
    .assert_success();
}

#[test]
fn a_sampled_out_trace_sends_nothing_of_its_spans_or_observations() {
    if child_mode().as_deref() == Some("sampled-out") {
        let (server, guard) = client_from_env();
        let _subscriber = bridged();
        {
            let _turn = tracing::info_span!("turn", session.id = "s-1").entered();
            assert_eq!(current_trace_id(), None, "the trace is not recorded");
            assert_eq!(plan(1), "summary 1");
            tracing::error!("failed");
        }
        let report = guard.shutdown().expect("shutdown");
        assert_eq!(server.accepted_spans().len(), 0);
        assert_eq!(report.stats.spans_created, 0, "{report:?}");
        return;
    }
    child_test!(
        "sampled-out",
        &[("LANGFUSE_SAMPLE_RATE", "0")],
        CHILD_TIMEOUT
    )
    .assert_success();
}

/// An observation that hands out a `tracing` span made inside it, to end after it.
#[observe(name = "dispatch")]
fn dispatch() -> tracing::Span {
    tracing::info_span!("job")
}

#[test]
fn under_a_full_queue_a_parent_of_a_tracing_span_is_kept() {
    if child_mode().as_deref() == Some("pressure") {
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        // Nothing is sent before the shutdown, so what is queued stays queued: a queue of 4
        // takes children while fewer than 4 spans wait, roots while fewer than 8 do.
        let guard = config(&server).max_queue(4).init().expect("init");
        let _subscriber = bridged();
        for _ in 0..5 {
            tracing::info_span!("filler").in_scope(|| {});
        }
        {
            let _turn = tracing::info_span!("turn").entered();
            // Ends while the queue is full; the span made inside it may end elsewhere, later.
            let job = dispatch();
            drop(job);
        }
        let report = guard.shutdown().expect("shutdown");
        let spans = server.accepted_spans();
        let mut names: Vec<&str> = spans.iter().map(ReceivedSpan::name).collect();
        names.sort();
        assert_eq!(
            names,
            ["dispatch", "filler", "filler", "filler", "filler", "filler", "turn"],
            "{report:?}"
        );
        assert_child_of(by_name(&spans, "dispatch"), by_name(&spans, "turn"));
        assert_eq!(
            report.stats.spans_dropped_queue_full, 1,
            "the job: {report:?}"
        );
        return;
    }
    child_test!("pressure", &[], CHILD_TIMEOUT).assert_success();
}

#[test]
fn a_global_subscriber_without_filter_records_nothing_of_the_exporter() {
    if child_mode().as_deref() == Some("global") {
        // Everything, at every level, on every thread (the exporter's too).
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(tracing_layer().record_info_events(true)),
        )
        .expect("the only global subscriber of this process");
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        let guard = config(&server).init().expect("init");
        // Outside any trace: a log line starts no trace.
        tracing::error!("outside any trace");
        for round in 0..3u64 {
            tracing::info_span!("round", round).in_scope(|| tracing::info!("working"));
            guard.flush().expect("flush");
        }
        let report = guard.shutdown().expect("shutdown");
        let names: Vec<String> = server
            .accepted_spans()
            .iter()
            .map(|span| span.name().to_string())
            .collect();
        assert_eq!(
            names,
            ["working", "round", "working", "round", "working", "round"],
            "{report:?}"
        );
        return;
    }
    child_test!("global", &[], CHILD_TIMEOUT).assert_success();
}

// --------------------------------------------------------------------------- the example

/// Runs `examples/tracing_bridge.rs` with `env` and returns its stderr.
fn run_example(env: &[(&str, String)]) -> String {
    let mut command = support::example_command("tracing_bridge");
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let output = support::within(
        Duration::from_secs(120),
        "the tracing_bridge example",
        move || command.output().expect("run the example"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "the example failed: {}\n{stderr}",
        output.status
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Langfuse shows the whole trace.\n"
    );
    stderr
}

#[test]
fn the_example_makes_one_trace_of_instrument_genai_and_observe_spans() {
    let server = FakeLangfuse::start("pk-lf-example", "sk-lf-example");
    run_example(&[
        ("LANGFUSE_PUBLIC_KEY", server.public_key().to_string()),
        ("LANGFUSE_SECRET_KEY", server.secret_key().to_string()),
        ("LANGFUSE_BASE_URL", server.base_url()),
    ]);
    let spans = server.wait_for_spans(4, WAIT);
    assert_eq!(
        spans.len(),
        4,
        "{:?}",
        spans.iter().map(ReceivedSpan::name).collect::<Vec<_>>()
    );
    let answer = by_name(&spans, "answer");
    let retrieve = by_name(&spans, "retrieve");
    let event = by_name(&spans, "retrieved");
    let chat = by_name(&spans, "chat gpt-4o-mini");
    assert_eq!(answer.parent_span_id(), "");
    for child in [retrieve, event, chat] {
        assert_child_of(child, answer);
    }
    for span in [answer, retrieve, event, chat] {
        assert_attr(span, "session.id", Some("session-1"));
        assert_attr(span, "user.id", Some("user-1"));
    }
    assert_attr(answer, "langfuse.observation.type", Some("span"));
    assert_eq!(metadata(answer), pairs(&[("question", r#""tracing""#)]));
    assert_attr(retrieve, "langfuse.observation.type", Some("retriever"));
    assert_attr(
        retrieve,
        "langfuse.observation.input",
        Some(r#"{"query":"tracing"}"#),
    );
    assert_attr(event, "langfuse.observation.type", Some("event"));
    assert_eq!(metadata(event), pairs(&[("documents", "2")]));
    assert_attr(chat, "langfuse.observation.type", Some("generation"));
    assert_attr(
        chat,
        "langfuse.observation.model.name",
        Some("gpt-4o-mini-2024-07-18"),
    );
    assert_attr(
        chat,
        "langfuse.observation.model.parameters",
        Some(r#"{"temperature":0.2}"#),
    );
    assert_attr(
        chat,
        "langfuse.observation.usage_details",
        Some(r#"{"input":42,"output":7,"total":49}"#),
    );
    assert_attr(
        chat,
        "langfuse.observation.output",
        Some(r#"[{"content":"Langfuse shows the whole trace.","role":"assistant"}]"#),
    );
    assert_eq!(
        metadata(chat),
        pairs(&[("gen_ai.provider.name", r#""openai""#)])
    );
}

#[test]
fn the_example_runs_without_credentials_and_prints_the_tree() {
    let stderr = run_example(&[]);
    let tree: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("─ "))
        .map(|line| line.split(" [").next().unwrap_or(line))
        .collect();
    assert_eq!(
        tree,
        [
            "└─ answer",
            "   ├─ retrieve",
            "   ├─ retrieved",
            "   └─ chat gpt-4o-mini"
        ],
        "{stderr}"
    );
}

// ------------------------------------------------------------------------- loose ends

#[test]
fn json_text_of_any_type_in_inputs_and_outputs_is_shown_as_json() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let _agent =
            tracing::info_span!("invoke_agent", gen_ai.operation.name = "invoke_agent").entered();
        trace_id = trace_here();
        // What rig records for a `String` tool result: the JSON of the string, quotes included.
        tracing::info_span!(
            "execute_tool",
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = "search",
            gen_ai.tool.call.arguments = "42",
            gen_ai.tool.call.result = r#""3 documents""#,
        )
        .in_scope(|| {});
        tracing::info_span!(
            "plain",
            gen_ai.prompt = "not JSON: \"quoted\" words",
            gen_ai.completion = "true",
        )
        .in_scope(|| {});
    }
    let spans = received(&trace_id, 3);
    let tool = by_name(&spans, "execute_tool");
    assert_attr(tool, "langfuse.observation.input", Some("42"));
    assert_attr(
        tool,
        "langfuse.observation.output",
        Some(r#""3 documents""#),
    );
    let plain = by_name(&spans, "plain");
    assert_attr(
        plain,
        "langfuse.observation.input",
        Some(r#""not JSON: \"quoted\" words""#),
    );
    assert_attr(plain, "langfuse.observation.output", Some("true"));
}

#[test]
fn two_bridge_layers_in_one_subscriber_record_warn_and_error_events_once() {
    server();
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(tracing_layer())
            .with(tracing_layer()),
    );
    let trace_id;
    {
        let _root = tracing::info_span!("doubled").entered();
        trace_id = trace_here();
        for attempt in 1..=2u32 {
            tracing::warn!(attempt, "retrying");
        }
        tracing::error!("gave up");
    }
    {
        // Under an observation of this crate, with no bridged span current.
        let _root = observe_runtime::span("observed-root").start();
        let observed_trace = trace_here();
        tracing::warn!("slow");
        drop(_root);
        let spans = received(&observed_trace, 2);
        let root = by_name(&spans, "observed-root");
        assert_child_of(by_name(&spans, "slow"), root);
        assert_attr(root, "langfuse.observation.level", Some("WARNING"));
    }
    let spans = received(&trace_id, 4);
    let root = by_name(&spans, "doubled");
    let retries: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name() == "retrying").collect();
    assert_eq!(retries.len(), 2, "one event per warn!, not one per layer");
    let mut attempts: Vec<Vec<(String, String)>> = retries.iter().map(|s| metadata(s)).collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [pairs(&[("attempt", "1")]), pairs(&[("attempt", "2")])]
    );
    assert_child_of(by_name(&spans, "gave up"), root);
    assert_attr(root, "langfuse.observation.level", Some("ERROR"));
    assert_attr(root, "langfuse.observation.status_message", Some("gave up"));
}

#[test]
fn follows_from_names_the_other_observation_in_metadata() {
    server();
    let _subscriber = bridged();
    let trace_id;
    let (first_id, second_id);
    {
        let _root = tracing::info_span!("pipeline").entered();
        trace_id = trace_here();
        let first = tracing::info_span!("produce");
        first_id = first.in_scope(|| observe_runtime::current_observation_id().unwrap());
        let other_trace = tracing::info_span!(parent: None, "elsewhere");
        second_id = other_trace.in_scope(|| {
            (
                trace_here(),
                observe_runtime::current_observation_id().unwrap(),
            )
        });
        let consumer = tracing::info_span!("consume");
        consumer.follows_from(&first);
        consumer.follows_from(&other_trace);
        consumer.in_scope(|| {});
    }
    let spans = received(&trace_id, 3);
    let consume = by_name(&spans, "consume");
    let expected = serde_json::json!([
        {"trace_id": trace_id, "observation_id": first_id.to_string()},
        {"trace_id": second_id.0, "observation_id": second_id.1.to_string()},
    ])
    .to_string();
    assert_eq!(
        metadata(consume),
        pairs(&[("follows_from", expected.as_str())])
    );
    assert_eq!(metadata(by_name(&spans, "produce")), vec![]);
}

#[test]
fn follows_from_names_a_span_that_has_already_closed() {
    server();
    let _subscriber = bridged();
    let (trace_id, produced);
    {
        let _root = tracing::info_span!("batch").entered();
        trace_id = trace_here();
        let producer = tracing::info_span!("produce");
        produced = producer.in_scope(|| observe_runtime::current_observation_id().unwrap());
        // What a queue hands on: the id, not the span, which closes here.
        let handed_on = producer.id().expect("an enabled span has an id");
        drop(producer);
        let consumer = tracing::info_span!("consume");
        consumer.follows_from(handed_on);
        consumer.in_scope(|| {});
    }
    let spans = received(&trace_id, 3);
    let expected = serde_json::json!([
        {"trace_id": trace_id, "observation_id": produced.to_string()},
    ])
    .to_string();
    assert_eq!(
        metadata(by_name(&spans, "consume")),
        pairs(&[("follows_from", expected.as_str())])
    );
}

#[test]
fn swiftide_trace_input_and_output_set_the_traces_masked() {
    server();
    let _subscriber = bridged();
    let trace_id;
    {
        let span = tracing::info_span!(
            "query_pipeline",
            langfuse.trace.input = r#"{"question":"What is RAG?","key":"sk-live-1"}"#,
            langfuse.trace.output = Empty,
        );
        let _span = span.enter();
        trace_id = trace_here();
        tracing::info_span!("retrieve").in_scope(|| {});
        span.record("langfuse.trace.output", r#"{"answer":"retrieval"}"#);
    }
    let spans = received(&trace_id, 2);
    let root = by_name(&spans, "query_pipeline");
    assert_attr(
        root,
        "langfuse.trace.input",
        Some(r#"{"key":"[redacted]","question":"What is RAG?"}"#),
    );
    assert_attr(
        root,
        "langfuse.trace.output",
        Some(r#"{"answer":"retrieval"}"#),
    );
    // The child ended before the output was known: it carries the input only.
    let child = by_name(&spans, "retrieve");
    assert_attr(
        child,
        "langfuse.trace.input",
        Some(r#"{"key":"[redacted]","question":"What is RAG?"}"#),
    );
    assert_attr(child, "langfuse.trace.output", None);
    assert_attr(root, "langfuse.observation.input", None);
    assert_eq!(metadata(root), vec![]);
}
