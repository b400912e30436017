//! A chat completion streamed token by token, recorded as one generation with its model, token
//! usage, cost and time to first token, and a user-feedback score on the trace.
//!
//! Run it with `cargo run --example chat_stream`. It starts its own small OpenAI-compatible server
//! on 127.0.0.1 that answers with server-sent events, so it needs neither network nor API key.
//! Without `LANGFUSE_*` variables the trace tree and the score are printed to the console; with
//! `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` (and `LANGFUSE_BASE_URL` for a self-hosted
//! server) they are sent to Langfuse.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::{self, Stream, StreamExt};
use observe_runtime::{
    current_observation, current_trace, observe, score_current_trace, Cost, Score, Usage,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod local_model;

const MODEL: &str = "gpt-4o-mini";
/// USD per million tokens: prompt, cached prompt, completion.
const PRICE_PER_MILLION: (f64, f64, f64) = (0.15, 0.075, 0.60);

#[derive(Debug)]
enum ChatError {
    Http(reqwest::Error),
    Api(String),
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::Http(error) => write!(f, "request failed: {error}"),
            ChatError::Api(message) => write!(f, "the model server answered: {message}"),
        }
    }
}

impl std::error::Error for ChatError {}

impl From<reqwest::Error> for ChatError {
    fn from(error: reqwest::Error) -> Self {
        ChatError::Http(error)
    }
}

/// Asks the model and returns its answer as it comes. The generation stays open until the last
/// token; the first token's time is its time to first token; the tokens become its output.
#[observe(name = "chat-completion", as_type = "generation", skip(http, base_url))]
async fn stream_chat(
    http: &reqwest::Client,
    base_url: &str,
    question: &str,
) -> Result<impl Stream<Item = Result<String, ChatError>> + Send, ChatError> {
    current_observation()
        .model(MODEL)
        .model_parameters(json!({"temperature": 0.2, "max_tokens": 256}));
    let request = json!({
        "model": MODEL,
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0.2,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": question}],
    });
    let response = http
        .post(format!("{base_url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(ChatError::Api(response.status().to_string()));
    }
    Ok(server_sent_tokens(response))
}

/// What one server-sent event of a chat completion stream says.
enum Event {
    Token(String),
    Usage(Usage),
    Done,
    Nothing,
}

fn parse_event(event: &str) -> Result<Event, ChatError> {
    let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) else {
        return Ok(Event::Nothing);
    };
    if data == "[DONE]" {
        return Ok(Event::Done);
    }
    let chunk: Value =
        serde_json::from_str(data).map_err(|e| ChatError::Api(format!("bad chunk: {e}")))?;
    if let Some(message) = chunk["error"]["message"].as_str() {
        return Err(ChatError::Api(message.to_string()));
    }
    if let Some(token) = chunk["choices"][0]["delta"]["content"].as_str() {
        return Ok(Event::Token(token.to_string()));
    }
    if chunk["usage"].is_object() {
        // OpenAI's usage object, cached and reasoning tokens included, read as Langfuse counts.
        return Ok(Event::Usage(Usage::from_value(&chunk["usage"])));
    }
    Ok(Event::Nothing)
}

/// The cost of a generation from its usage, with the cached prompt tokens at their own price.
fn cost_of(usage: &Usage) -> Cost {
    let (input, cached, output) = PRICE_PER_MILLION;
    let cached_tokens = usage
        .details
        .get("input_cached_tokens")
        .copied()
        .unwrap_or(0);
    Cost::new(
        usage.input as f64 * input / 1e6,
        usage.output as f64 * output / 1e6,
    )
    .with_detail("input_cached_tokens", cached_tokens as f64 * cached / 1e6)
}

/// The tokens of a server-sent event stream. The usage comes in the last chunk; it is set on the
/// generation, which is the current observation while the stream is polled.
fn server_sent_tokens(
    response: reqwest::Response,
) -> impl Stream<Item = Result<String, ChatError>> + Send {
    struct State {
        bytes: Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
        buffer: String,
        ended: bool,
    }
    let state = State {
        bytes: Box::pin(
            response
                .bytes_stream()
                .map(|chunk| chunk.map(|b| b.to_vec())),
        ),
        buffer: String::new(),
        ended: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(at) = state.buffer.find("\n\n") {
                let event: String = state.buffer.drain(..at + 2).collect();
                match parse_event(&event) {
                    Ok(Event::Token(token)) => return Some((Ok(token), state)),
                    Ok(Event::Usage(usage)) => {
                        current_observation().cost(cost_of(&usage)).usage(usage);
                    }
                    Ok(Event::Done) => return None,
                    Ok(Event::Nothing) => {}
                    Err(error) => {
                        state.ended = true;
                        state.buffer.clear();
                        return Some((Err(error), state));
                    }
                }
                continue;
            }
            if state.ended {
                return None;
            }
            match state.bytes.next().await {
                Some(Ok(chunk)) => state.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(error)) => {
                    state.ended = true;
                    return Some((Err(error.into()), state));
                }
                None => state.ended = true,
            }
        }
    })
}

/// One turn of a chat: streams the answer to the terminal and records the user's thumbs-up.
#[observe(as_type = "agent", skip(http, base_url))]
async fn answer(
    http: &reqwest::Client,
    base_url: &str,
    question: &str,
) -> Result<String, ChatError> {
    current_trace()
        .name("support-chat")
        .session_id("chat-42")
        .user_id("user-7");
    let mut tokens = std::pin::pin!(stream_chat(http, base_url, question).await?);
    let mut text = String::new();
    while let Some(token) = tokens.next().await {
        let token = token?;
        print!("{token}");
        text.push_str(&token);
    }
    println!();
    score_current_trace("helpful", true);
    Score::new("answer-length", text.len() as f64)
        .comment("characters in the streamed answer")
        .current_trace()
        .send();
    Ok(text)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = observe_runtime::init()?; // flushes the trace and the scores when dropped
    let base_url = start_model_server().await?;
    let http = reqwest::Client::new();
    answer(&http, &base_url, "What is time to first token?").await?;
    Ok(())
}

// --- A small OpenAI-compatible server, so the example runs offline. ---

const ANSWER: [&str; 8] = [
    "Time",
    " to",
    " first",
    " token",
    " is",
    " the",
    " wait",
    " before the answer starts.",
];

/// Starts the model server on a free loopback port; returns its base URL.
async fn start_model_server() -> std::io::Result<String> {
    local_model::start(serve).await
}

/// Answers one chat completion request with a stream of server-sent events, then closes.
async fn serve(mut connection: TcpStream) -> std::io::Result<()> {
    let Some(_request) = local_model::read_body(&mut connection).await? else {
        return Ok(());
    };
    connection
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
              connection: close\r\n\r\n",
        )
        .await?;
    // The model thinks before the first token, then streams.
    tokio::time::sleep(Duration::from_millis(180)).await;
    for token in ANSWER {
        let chunk = json!({
            "object": "chat.completion.chunk",
            "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}],
        });
        connection
            .write_all(format!("data: {chunk}\n\n").as_bytes())
            .await?;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let usage = json!({
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": 1270, "completion_tokens": 12, "total_tokens": 1282,
            "prompt_tokens_details": {"cached_tokens": 1152},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    });
    connection
        .write_all(format!("data: {usage}\n\ndata: [DONE]\n\n").as_bytes())
        .await?;
    connection.shutdown().await
}
