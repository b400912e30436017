//! `observe_openai`: async-openai calls against a fake OpenAI server on 127.0.0.1, as the fake
//! Langfuse server receives them, attribute by attribute: chat completions (JSON and streamed,
//! with tool calls and a final usage chunk), embeddings, the Responses API, an HTTP error, a
//! rate limit retried, a stream cut by the server and one dropped by the caller; nested under
//! `#[observe]` and under a bridged `tracing` span, on both tokio flavours; the mask, the field
//! limit, media references and the trace-wide prompt link applied to the layer's generations.
//!
//! One client for the whole binary (a mask that redacts live keys, a field limit of
//! [`FIELD_LIMIT`]); each test finds its own trace by id.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt as _;
use observe_openai::async_openai::config::OpenAIConfig;
use observe_openai::async_openai::types::chat::CreateChatCompletionRequest;
use observe_openai::async_openai::types::embeddings::CreateEmbeddingRequest;
use observe_openai::async_openai::types::responses::CreateResponse;
use observe_openai::async_openai::Client;
use observe_openai::{ObserveLayer, Price};
use observe_runtime::{
    current_trace, current_trace_id, get_prompt, observe, tracing_layer, Config, FlushGuard,
};
use serde_json::{json, Value};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

use support::openai::{FakeOpenAi, Reply};
use support::{by_name, FakeLangfuse, ReceivedSpan};

use support::sdk::{PUBLIC_KEY, SECRET_KEY};
const WAIT: Duration = Duration::from_secs(10);
const STEP: Duration = Duration::from_millis(20);
/// The field limit of the binary's client, in bytes.
const FIELD_LIMIT: usize = 1000;

fn server() -> &'static FakeLangfuse {
    static CLIENT: OnceLock<(FakeLangfuse, FlushGuard)> = OnceLock::new();
    &CLIENT
        .get_or_init(|| {
            let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
            let guard = support::sdk::config_for(&server)
                .max_field_bytes(FIELD_LIMIT)
                .mask(support::sdk::redact_live_keys)
                .init()
                .expect("init");
            (server, guard)
        })
        .0
}

/// The spans of trace `trace_id` the server accepted, after a flush; `expected` of them.
fn received(trace_id: &str, expected: usize) -> Vec<ReceivedSpan> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        observe_runtime::flush().expect("flush");
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn client(openai: &FakeOpenAi, layer: ObserveLayer) -> Client<OpenAIConfig> {
    let _ = server();
    observe_openai::client_with(
        OpenAIConfig::new()
            .with_api_base(openai.api_base())
            .with_api_key("sk-test"),
        layer,
    )
}

fn chat_request(body: Value) -> CreateChatCompletionRequest {
    serde_json::from_value(body).expect("a chat completion request")
}

/// The observation attributes of `span` (`langfuse.observation.*`), without the prefix, values
/// as text; the completion start time is checked apart.
fn observation(span: &ReceivedSpan) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = span
        .attr_keys()
        .into_iter()
        .filter_map(|key| {
            let name = key.strip_prefix("langfuse.observation.")?;
            if name == "completion_start_time" || name == "cost_details" {
                return None;
            }
            Some((name.to_string(), span.str_attr(key)?.to_string()))
        })
        .collect();
    pairs.sort();
    pairs
}

/// The costs of `span` are `per_million` (USD per million tokens) each, and their sum as total
/// (to the last bits of a double).
fn assert_costs(span: &ReceivedSpan, per_million: &[(&str, f64)]) {
    let costs = span
        .json_attr("langfuse.observation.cost_details")
        .expect("cost details");
    let costs = costs.as_object().expect("an object");
    let mut names: Vec<&str> = per_million.iter().map(|(name, _)| *name).collect();
    names.push("total");
    names.sort();
    assert_eq!(costs.keys().map(String::as_str).collect::<Vec<_>>(), names);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-9);
    let mut total = 0.0;
    for (name, value) in per_million {
        let sent = costs[*name].as_f64().expect("a number");
        assert!(
            close(sent, value / 1e6),
            "{name}: {sent} != {}",
            value / 1e6
        );
        total += value / 1e6;
    }
    let sent = costs["total"].as_f64().expect("a number");
    assert!(close(sent, total), "total: {sent} != {total}");
}

fn expect(pairs: &[(&str, Value)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (key.to_string(), text)
        })
        .collect();
    pairs.sort();
    pairs
}

fn chat_answer() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Paris."}}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 30, "total_tokens": 1230,
                  "prompt_tokens_details": {"cached_tokens": 1024}}
    })
}

#[observe(name = "agent")]
async fn ask_capital(client: &Client<OpenAIConfig>) -> (String, String) {
    let request = chat_request(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Capital of France?"}],
        "temperature": 0.2, "max_completion_tokens": 64, "seed": 7,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    }));
    let answer = client.chat().create(request).await.expect("an answer");
    let text = answer.choices[0]
        .message
        .content
        .clone()
        .unwrap_or_default();
    (text, trace_here())
}

/// The id of the trace running here, as hex.
fn trace_here() -> String {
    current_trace_id()
        .expect("a recorded trace is current")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_completion_is_a_generation_under_the_observed_function() {
    let openai = FakeOpenAi::start([Reply::json(chat_answer())]);
    let layer =
        ObserveLayer::new().price("gpt-4o-mini", Price::new(0.15, 0.60).cached_input(0.075));
    let client = client(&openai, layer);
    let (answer, trace) = ask_capital(&client).await;
    assert_eq!(answer, "Paris.");

    let spans = received(&trace, 2);
    let agent = by_name(&spans, "agent");
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(generation.parent_span_id(), agent.span_id());
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini-2024-07-18")),
            (
                "model.parameters",
                json!({"max_completion_tokens": 64, "seed": 7, "temperature": 0.2})
            ),
            (
                "input",
                json!([{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Capital of France?"}])
            ),
            ("output", json!({"role": "assistant", "content": "Paris."})),
            (
                "usage_details",
                json!({"input": 176, "input_cached_tokens": 1024, "output": 30, "total": 1230})
            ),
            (
                "metadata.tools",
                json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}])
            ),
        ])
    );
    assert_costs(
        generation,
        &[
            ("input", 176.0 * 0.15),
            ("input_cached_tokens", 1024.0 * 0.075),
            ("output", 30.0 * 0.60),
        ],
    );
    assert_eq!(
        generation.str_attr("langfuse.observation.completion_start_time"),
        None
    );
    // The request went out as it was made.
    let sent = openai.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].json()["max_completion_tokens"], json!(64));
}

fn chunk(delta: Value) -> Value {
    json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000,
           "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
}

fn usage_chunk() -> Value {
    json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000,
           "model": "gpt-4o-mini-2024-07-18", "choices": [],
           "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
                     "completion_tokens_details": {"reasoning_tokens": 4}}})
}

fn streamed_answer() -> Vec<Value> {
    vec![
        chunk(json!({"role": "assistant", "content": ""})),
        chunk(json!({"content": "Let me "})),
        chunk(
            json!({"content": "check.", "tool_calls": [{"index": 0, "id": "call_7", "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":"}}]}),
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]})),
        usage_chunk(),
    ]
}

#[observe(name = "streamer")]
async fn stream_all(client: &Client<OpenAIConfig>, take: Option<usize>) -> (Vec<String>, String) {
    let request = chat_request(json!({
        "model": "gpt-4o-mini", "stream": true,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}]
    }));
    let mut stream = client
        .chat()
        .create_stream(request)
        .await
        .expect("a stream");
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => items.push(
                chunk
                    .choices
                    .first()
                    .and_then(|choice| choice.delta.content.clone())
                    .unwrap_or_default(),
            ),
            Err(error) => items.push(format!("error: {error}")),
        }
        if take == Some(items.len()) {
            break;
        }
    }
    (items, trace_here())
}

#[tokio::test(flavor = "current_thread")]
async fn a_streamed_chat_completion_merges_deltas_and_takes_the_last_usage() {
    let openai = FakeOpenAi::start([Reply::sse(&streamed_answer(), STEP)]);
    let client = client(&openai, ObserveLayer::new().include_usage(true));
    let before = std::time::SystemTime::now();
    let (items, trace) = stream_all(&client, None).await;
    assert_eq!(
        items,
        ["", "Let me ", "check.", "", ""],
        "the stream is unchanged"
    );

    let sent = openai.requests()[0].json();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));

    let spans = received(&trace, 2);
    let parent = by_name(&spans, "streamer");
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(generation.parent_span_id(), parent.span_id());
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini-2024-07-18")),
            (
                "input",
                json!([{"role": "user", "content": "Weather in Oslo?"}])
            ),
            (
                "output",
                json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_7", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]})
            ),
            (
                "usage_details",
                json!({"input": 20, "output": 5, "output_reasoning_tokens": 4, "total": 29})
            ),
        ])
    );
    // Time to first token: after the first chunk's delay, before the generation's end.
    let first = generation
        .str_attr("langfuse.observation.completion_start_time")
        .expect("a completion start time");
    let start_nanos = generation.span.start_time_unix_nano;
    let first_nanos = rfc3339_nanos(first);
    let before_nanos = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        first_nanos >= start_nanos + STEP.as_nanos() as u64 / 2,
        "{first}"
    );
    assert!(first_nanos <= generation.span.end_time_unix_nano, "{first}");
    assert!(start_nanos >= before_nanos);
    // The generation ends at `[DONE]`, after the last chunk's delay.
    assert!(generation.span.end_time_unix_nano >= first_nanos + 4 * STEP.as_nanos() as u64);
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time with fraction (`2026-12-03T14:00:00.123456789Z`).
fn rfc3339_nanos(text: &str) -> u64 {
    let (date, time) = text.trim_end_matches('Z').split_once('T').expect("a time");
    let mut parts = date.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, m, d) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<i64>().unwrap());
    let seconds =
        days * 86400 + hms.next().unwrap() * 3600 + hms.next().unwrap() * 60 + hms.next().unwrap();
    let nanos: u64 = format!("{fraction:0<9}")[..9].parse().unwrap();
    seconds as u64 * 1_000_000_000 + nanos
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_before_done_is_a_warning_with_what_came() {
    let slow = Duration::from_millis(300);
    let openai = FakeOpenAi::start([Reply::sse(&streamed_answer(), slow)]);
    let client = client(&openai, ObserveLayer::new());
    let (items, trace) = stream_all(&client, Some(2)).await;
    assert_eq!(items, ["", "Let me "]);
    let sent = openai.requests()[0].json();
    assert_eq!(
        sent.get("stream_options"),
        None,
        "include_usage is off by default"
    );
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini-2024-07-18")),
            (
                "input",
                json!([{"role": "user", "content": "Weather in Oslo?"}])
            ),
            ("output", json!({"role": "assistant", "content": "Let me "})),
            ("level", json!("WARNING")),
            (
                "status_message",
                json!("dropped before the end, after 2 chunks")
            ),
        ])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_stream_cut_by_the_server_is_an_error() {
    let openai = FakeOpenAi::start([Reply::sse_cut(&streamed_answer()[..2], STEP)]);
    let client = client(&openai, ObserveLayer::new());
    let (items, trace) = stream_all(&client, None).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items[2].starts_with("error: "), "{items:?}");
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini-2024-07-18")),
            ("input", json!([{"role": "user", "content": "Weather in Oslo?"}])),
            ("output", json!({"role": "assistant", "content": "Let me "})),
            ("level", json!("ERROR")),
            ("status_message", json!("stream broken: request or response body error: error reading a body from connection: unexpected EOF during chunk size line")),
        ])
    );
}

#[observe(name = "ask")]
async fn ask(client: &Client<OpenAIConfig>) -> (Result<String, String>, String) {
    let request = chat_request(json!({
        "model": "gpt-4o-mini", "temperature": 2.5,
        "messages": [{"role": "user", "content": "Hi"}]
    }));
    let answer = client
        .chat()
        .create(request)
        .await
        .map(|answer| {
            answer.choices[0]
                .message
                .content
                .clone()
                .unwrap_or_default()
        })
        .map_err(|error| error.to_string());
    (answer, trace_here())
}

#[tokio::test(flavor = "current_thread")]
async fn an_http_error_is_an_error_with_the_server_message() {
    let openai = FakeOpenAi::start([Reply::status(
        400,
        json!({"error": {"message": "Invalid 'temperature': above 2", "type": "invalid_request_error",
                         "param": "temperature", "code": "invalid_value"}}),
    )]);
    let client = client(&openai, ObserveLayer::new());
    let (answer, trace) = ask(&client).await;
    assert!(answer.is_err(), "{answer:?}");
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini")),
            ("model.parameters", json!({"temperature": 2.5})),
            ("input", json!([{"role": "user", "content": "Hi"}])),
            ("level", json!("ERROR")),
            (
                "status_message",
                json!("HTTP 400: Invalid 'temperature': above 2")
            ),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_retried_is_one_generation_with_its_retry_counted() {
    let openai = FakeOpenAi::start([
        Reply::status(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        )
        .with_header("retry-after", "0"),
        Reply::json(chat_answer()),
    ]);
    let client = client(&openai, ObserveLayer::new());
    let (answer, trace) = ask(&client).await;
    assert_eq!(answer, Ok("Paris.".to_string()));
    assert_eq!(openai.requests().len(), 2);
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini-2024-07-18")),
            ("model.parameters", json!({"temperature": 2.5})),
            ("input", json!([{"role": "user", "content": "Hi"}])),
            ("output", json!({"role": "assistant", "content": "Paris."})),
            (
                "usage_details",
                json!({"input": 176, "input_cached_tokens": 1024, "output": 30, "total": 1230})
            ),
            ("metadata.retries", json!(1)),
        ])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_embedding_call_is_an_embedding_under_a_tracing_span() {
    let openai = FakeOpenAi::start([Reply::json(json!({
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 0.125]},
                 {"object": "embedding", "index": 1, "embedding": [0.0, 1.0, 0.0]}],
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    }))]);
    let client = client(&openai, ObserveLayer::new());
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(tracing_layer()));
    let request: CreateEmbeddingRequest = serde_json::from_value(json!({
        "model": "text-embedding-3-small", "input": ["first", "second"], "dimensions": 3
    }))
    .unwrap();
    let (count, trace) = async {
        let answer = client
            .embeddings()
            .create(request)
            .await
            .expect("embeddings");
        (answer.data.len(), trace_here())
    }
    .instrument(tracing::info_span!("index"))
    .await;
    assert_eq!(count, 2);
    let spans = received(&trace, 2);
    let parent = by_name(&spans, "index");
    let embedding = by_name(&spans, "OpenAI-embedding");
    assert_eq!(embedding.parent_span_id(), parent.span_id());
    assert_eq!(
        observation(embedding),
        expect(&[
            ("type", json!("embedding")),
            ("model.name", json!("text-embedding-3-small")),
            ("model.parameters", json!({"dimensions": 3})),
            ("input", json!(["first", "second"])),
            ("output", json!({"count": 2, "dimensions": 3})),
            (
                "usage_details",
                json!({"input": 8, "output": 0, "total": 8})
            ),
        ])
    );
}

fn response_object(status: &str, output: Value, usage: Value) -> Value {
    json!({
        "id": "resp_1", "object": "response", "created_at": 1700000000, "status": status,
        "model": "gpt-4.1-mini-2025-04-14", "output": output, "usage": usage,
        "tools": [], "parallel_tool_calls": true, "tool_choice": "auto"
    })
}

fn response_message(text: &str) -> Value {
    json!([{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}])
}

fn response_usage() -> Value {
    json!({"input_tokens": 40, "output_tokens": 12, "total_tokens": 52,
           "input_tokens_details": {"cached_tokens": 8},
           "output_tokens_details": {"reasoning_tokens": 2}})
}

fn create_response(body: Value) -> CreateResponse {
    serde_json::from_value(body).expect("a responses request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_call_outside_any_trace_starts_its_own() {
    let openai = FakeOpenAi::start([Reply::json(response_object(
        "completed",
        response_message("Oslo is cold."),
        response_usage(),
    ))]);
    let client = client(&openai, ObserveLayer::new());
    let request = create_response(json!({
        "model": "gpt-4.1-mini", "instructions": "Answer in one sentence.",
        "input": "Weather in Oslo?", "max_output_tokens": 50
    }));
    let answer = client
        .responses()
        .create(request)
        .await
        .expect("a response");
    assert_eq!(answer.id, "resp_1");
    let generation = loop_for_generation("resp_1-trace", |span| {
        span.name() == "OpenAI-generation"
            && span.str_attr("langfuse.observation.model.name") == Some("gpt-4.1-mini-2025-04-14")
            && span
                .str_attr("langfuse.observation.output")
                .is_some_and(|o| o.contains("Oslo is cold."))
    });
    assert_eq!(generation.parent_span_id(), "", "a root: its own trace");
    assert_eq!(
        observation(&generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4.1-mini-2025-04-14")),
            ("model.parameters", json!({"max_output_tokens": 50})),
            (
                "input",
                json!({"instructions": "Answer in one sentence.", "input": "Weather in Oslo?"})
            ),
            ("output", response_message("Oslo is cold.")),
            (
                "usage_details",
                json!({"input": 32, "input_cached_tokens": 8, "output": 10,
                                     "output_reasoning_tokens": 2, "total": 52})
            ),
        ])
    );
}

/// The one span accepted so far that `matches` (waiting for it), for calls made outside any
/// trace of the test's own.
fn loop_for_generation(what: &str, matches: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        observe_runtime::flush().expect("flush");
        let mut found: Vec<ReceivedSpan> = server()
            .accepted_spans()
            .into_iter()
            .filter(|span| matches(span))
            .collect();
        if found.len() == 1 {
            return found.remove(0);
        }
        assert!(found.len() < 2, "{what}: more than one span matches");
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no span arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[observe(name = "responder")]
async fn stream_response(client: &Client<OpenAIConfig>) -> (String, String) {
    let request = create_response(json!({
        "model": "gpt-4.1-mini", "input": [{"role": "user", "content": "Say hi"}],
        "stream": true, "temperature": 0.5
    }));
    let mut stream = client
        .responses()
        .create_stream(request)
        .await
        .expect("a stream");
    let mut kinds = Vec::new();
    while let Some(event) = stream.next().await {
        let event = serde_json::to_value(event.expect("an event")).unwrap();
        kinds.push(event["type"].as_str().unwrap_or_default().to_string());
    }
    (kinds.join(","), trace_here())
}

#[tokio::test(flavor = "current_thread")]
async fn a_streamed_responses_call_takes_the_final_response() {
    let delta = |n: u64, text: &str| {
        json!({"type": "response.output_text.delta", "sequence_number": n, "item_id": "msg_1",
               "output_index": 0, "content_index": 0, "delta": text})
    };
    let openai = FakeOpenAi::start([Reply::response_events(
        &[
            json!({"type": "response.created", "sequence_number": 0,
                   "response": response_object("in_progress", json!([]), Value::Null)}),
            delta(1, "Hi "),
            delta(2, "there."),
            json!({"type": "response.completed", "sequence_number": 3,
                   "response": response_object("completed", response_message("Hi there."), response_usage())}),
        ],
        STEP,
    )]);
    let client = client(&openai, ObserveLayer::new());
    let (kinds, trace) = stream_response(&client).await;
    assert_eq!(
        kinds,
        "response.created,response.output_text.delta,response.output_text.delta,response.completed"
    );
    let spans = received(&trace, 2);
    let parent = by_name(&spans, "responder");
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(generation.parent_span_id(), parent.span_id());
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4.1-mini-2025-04-14")),
            ("model.parameters", json!({"temperature": 0.5})),
            // As sent: async-openai adds the item type.
            (
                "input",
                json!([{"role": "user", "content": "Say hi", "type": "message"}])
            ),
            ("output", response_message("Hi there.")),
            (
                "usage_details",
                json!({"input": 32, "input_cached_tokens": 8, "output": 10,
                                     "output_reasoning_tokens": 2, "total": 52})
            ),
        ])
    );
    assert!(generation
        .str_attr("langfuse.observation.completion_start_time")
        .is_some());
}

#[observe(name = "lister")]
async fn list_models(api_base: String) -> (String, String) {
    use observe_openai::async_openai::error::OpenAIError;
    use observe_openai::async_openai::middleware::{HttpRequestFactory, ReqwestService};
    use tower::{Layer as _, Service as _};

    let mut service = ObserveLayer::new().layer(ReqwestService::new(reqwest::Client::new()));
    let url = format!("{api_base}/models");
    let factory = HttpRequestFactory::new(move || {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .build()
                .map_err(OpenAIError::Reqwest)
        }
    });
    futures::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .expect("ready");
    let response = service.call(factory).await.expect("a response");
    let body = response.text().await.expect("a body");
    (body, trace_here())
}

#[tokio::test(flavor = "current_thread")]
async fn other_endpoints_pass_through_untouched_and_unrecorded() {
    let openai = FakeOpenAi::start([Reply::json(json!({"object": "list", "data": []}))]);
    let _ = server();
    let (body, trace) = list_models(openai.api_base()).await;
    assert_eq!(body, r#"{"data":[],"object":"list"}"#);
    let sent = openai.requests();
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("GET", "/v1/models")
    );
    let spans = received(&trace, 1);
    assert_eq!(spans[0].name(), "lister");
}

#[observe(name = "chat")]
async fn chat_once(client: &Client<OpenAIConfig>, user: &str) -> (String, String) {
    let request = chat_request(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": user}]
    }));
    let answer = client.chat().create(request).await.expect("an answer");
    let text = answer.choices[0]
        .message
        .content
        .clone()
        .unwrap_or_default();
    (text, trace_here())
}

fn chat_answer_saying(content: &str) -> Value {
    let mut answer = chat_answer();
    answer["choices"][0]["message"]["content"] = json!(content);
    answer
}

#[tokio::test(flavor = "current_thread")]
async fn the_mask_applies_to_the_input_and_output_of_a_generation() {
    let openai = FakeOpenAi::start([Reply::json(chat_answer_saying(
        "Deploying with sk-live-42 now.",
    ))]);
    let client = client(&openai, ObserveLayer::new());
    let (answer, trace) = chat_once(&client, "Deploy with key sk-live-42").await;
    assert_eq!(
        answer, "Deploying with sk-live-42 now.",
        "the answer is unchanged"
    );
    assert_eq!(
        openai.requests()[0].json()["messages"][0]["content"],
        json!("Deploy with key sk-live-42"),
        "the request is unchanged"
    );
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini-2024-07-18")),
            ("input", json!([{"role": "user", "content": "[redacted]"}])),
            (
                "output",
                json!({"role": "assistant", "content": "[redacted]"})
            ),
            (
                "usage_details",
                json!({"input": 176, "input_cached_tokens": 1024, "output": 30, "total": 1230})
            ),
        ])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_long_message_and_answer_are_cut_at_the_field_limit() {
    let openai = FakeOpenAi::start([Reply::json(chat_answer_saying(&"x".repeat(3000)))]);
    let client = client(&openai, ObserveLayer::new());
    let (answer, trace) = chat_once(&client, &"y".repeat(3000)).await;
    assert_eq!(answer.len(), 3000, "the answer is unchanged");
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    // As `#[observe]` cuts a value too large: a JSON string holding the beginning of its JSON
    // text and a marker giving the size of the whole, `FIELD_LIMIT` bytes as sent (the quotes,
    // the escaped beginning and the 31 bytes of the marker leave room for 933 and 952 letters).
    // The messages are recorded as async-openai wrote them, the answer as the server did.
    let input = generation
        .str_attr("langfuse.observation.input")
        .expect("an input");
    assert_eq!(
        input,
        format!(
            r#""[{{\"role\":\"user\",\"content\":\"{}… [truncated from 3030 bytes]""#,
            "y".repeat(933)
        )
    );
    assert_eq!(input.len(), FIELD_LIMIT);
    let output = generation
        .str_attr("langfuse.observation.output")
        .expect("an output");
    assert_eq!(
        output,
        format!(
            r#""{{\"content\":\"{}… [truncated from 3033 bytes]""#,
            "x".repeat(952)
        )
    );
    assert_eq!(output.len(), FIELD_LIMIT);
}

#[observe(name = "look")]
async fn look(client: &Client<OpenAIConfig>, content: Value) -> String {
    let request = chat_request(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}]
    }));
    client.chat().create(request).await.expect("an answer");
    trace_here()
}

#[tokio::test(flavor = "current_thread")]
async fn an_image_in_a_message_is_recorded_as_a_media_reference() {
    let openai = FakeOpenAi::start([Reply::json(chat_answer())]);
    let client = client(&openai, ObserveLayer::new());
    // A PNG-like payload and the media id Langfuse derives from it (as in tests/media.rs).
    let image = "data:image/png;base64,iVBORw0KGgpmYWtlIGltYWdl";
    let trace = look(
        &client,
        json!([{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": image}}]),
    )
    .await;
    assert_eq!(
        openai.requests()[0].json()["messages"][0]["content"][1]["image_url"]["url"],
        json!(image),
        "the request is unchanged"
    );
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    let reference =
        "@@@langfuseMedia:type=image/png|id=T5YND2oVSmGVUnDBOTIY5Y|source=base64_data_uri@@@";
    assert_eq!(
        generation.str_attr("langfuse.observation.input"),
        Some(
            json!([{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": reference}}]}])
            .to_string()
            .as_str()
        )
    );
}

#[observe(name = "planner")]
async fn plan(client: &Client<OpenAIConfig>) -> (String, String) {
    let prompt = get_prompt("planner/system")
        .fetch_async()
        .await
        .expect("the prompt");
    current_trace().link_prompt(&prompt);
    let request = chat_request(json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": prompt.text().unwrap_or_default()},
                     {"role": "user", "content": "Plan a trip."}]
    }));
    let answer = client.chat().create(request).await.expect("an answer");
    let text = answer.choices[0]
        .message
        .content
        .clone()
        .unwrap_or_default();
    (text, trace_here())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_wide_prompt_link_reaches_the_generation() {
    server().put_prompt(json!({
        "name": "planner/system", "version": 3, "labels": ["production"],
        "prompt": "You plan trips.", "config": {}
    }));
    let openai = FakeOpenAi::start([Reply::json(chat_answer())]);
    let client = client(&openai, ObserveLayer::new());
    let (answer, trace) = plan(&client).await;
    assert_eq!(answer, "Paris.");
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(
        (
            generation.str_attr("langfuse.observation.prompt.name"),
            generation.int_attr("langfuse.observation.prompt.version"),
        ),
        (Some("planner/system"), Some(3))
    );
    // Only a generation carries a prompt link.
    let planner = by_name(&spans, "planner");
    assert_eq!(planner.str_attr("langfuse.observation.prompt.name"), None);
    assert_eq!(
        generation.str_attr("langfuse.observation.input"),
        Some(
            json!([{"role": "system", "content": "You plan trips."},
                   {"role": "user", "content": "Plan a trip."}])
            .to_string()
            .as_str()
        )
    );
}

#[test]
fn capture_off_keeps_messages_and_answers_out() {
    if support::child_mode().as_deref() == Some("capture-off") {
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        let guard = Config::from_env()
            .public_key(PUBLIC_KEY)
            .secret_key(SECRET_KEY)
            .base_url(server.base_url())
            .init()
            .expect("init");
        let openai = FakeOpenAi::start([Reply::json(chat_answer())]);
        let client = observe_openai::client(
            OpenAIConfig::new()
                .with_api_base(openai.api_base())
                .with_api_key("sk-test"),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (answer, trace) = runtime.block_on(ask(&client));
        assert_eq!(answer, Ok("Paris.".to_string()));
        guard.flush().expect("flush");
        let spans: Vec<ReceivedSpan> = server
            .wait_for_spans(2, WAIT)
            .into_iter()
            .filter(|span| span.trace_id() == trace)
            .collect();
        let generation = by_name(&spans, "OpenAI-generation");
        assert_eq!(
            observation(generation),
            expect(&[
                ("type", json!("generation")),
                ("model.name", json!("gpt-4o-mini-2024-07-18")),
                ("model.parameters", json!({"temperature": 2.5})),
                (
                    "usage_details",
                    json!({"input": 176, "input_cached_tokens": 1024, "output": 30, "total": 1230})
                ),
            ])
        );
        return;
    }
    let child = child_test!(
        "capture-off",
        &[("LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED", "false")],
        Duration::from_secs(60),
    );
    child.assert_success();
    assert!(
        child.stdout.contains("test result: ok. 1 passed"),
        "{}",
        child.stdout
    );
}

#[observe(name = "impatient")]
async fn ask_impatiently(client: &Client<OpenAIConfig>) -> (bool, String) {
    let request = chat_request(json!({
        "model": "gpt-4o-mini", "temperature": 0.1,
        "messages": [{"role": "user", "content": "Still there?"}]
    }));
    let chat = client.chat();
    let timed_out = tokio::time::timeout(Duration::from_millis(200), chat.create(request))
        .await
        .is_err();
    (timed_out, trace_here())
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_cancelled_before_its_answer_keeps_its_request() {
    // A server that takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let _ = server();
    let client = observe_openai::client(
        OpenAIConfig::new()
            .with_api_base(format!("http://{}/v1", silent.local_addr().unwrap()))
            .with_api_key("sk-test"),
    );
    let (timed_out, trace) = ask_impatiently(&client).await;
    assert!(timed_out, "the call was cancelled by the timeout");
    let spans = received(&trace, 2);
    let generation = by_name(&spans, "OpenAI-generation");
    assert_eq!(
        generation.parent_span_id(),
        by_name(&spans, "impatient").span_id()
    );
    assert_eq!(
        observation(generation),
        expect(&[
            ("type", json!("generation")),
            ("model.name", json!("gpt-4o-mini")),
            ("model.parameters", json!({"temperature": 0.1})),
            (
                "input",
                json!([{"role": "user", "content": "Still there?"}])
            ),
        ])
    );
}
