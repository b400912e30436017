//! async-openai with `observe_openai`: every chat completion (streamed or not) becomes a
//! generation under the agent, with model, parameters, messages, answer, tokens and time to first
//! token, and no recording code in the agent.
//!
//! Run it with `cargo run --example openai`. Without `OPENAI_API_KEY` it starts a small
//! OpenAI-compatible server on 127.0.0.1, so it needs neither network nor key; with it, it asks
//! OpenAI. Without `LANGFUSE_*` variables the trace tree is printed to the console; with
//! `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` (and `LANGFUSE_BASE_URL` for a self-hosted
//! server) it is sent to Langfuse.

use std::io::Write as _;
use std::time::Duration;

use futures::StreamExt as _;
use observe_openai::async_openai::config::OpenAIConfig;
use observe_openai::async_openai::error::OpenAIError;
use observe_openai::async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequestArgs,
};
use observe_openai::async_openai::Client;
use observe_openai::ObserveLayer;
use observe_runtime::{current_trace, observe};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod local_model;

const MODEL: &str = "gpt-4o-mini";

/// Plans a trip in two model calls: a short answer, then a streamed one.
#[observe(name = "trip-planner", as_type = "agent", skip(client))]
async fn plan(client: &Client<OpenAIConfig>, city: &str) -> Result<String, OpenAIError> {
    current_trace().session_id("trip-42").user_id("user-7");
    let weather = CreateChatCompletionRequestArgs::default()
        .model(MODEL)
        .temperature(0.0)
        .max_completion_tokens(40u32)
        .messages([
            ChatCompletionRequestSystemMessage::from("Answer in five words.").into(),
            ChatCompletionRequestUserMessage::from(format!("Weather in {city} in May?")).into(),
        ])
        .build()?;
    let weather = client.chat().create(weather).await?;
    let weather = weather.choices[0]
        .message
        .content
        .clone()
        .unwrap_or_default();

    let tips = CreateChatCompletionRequestArgs::default()
        .model(MODEL)
        .temperature(0.7)
        .messages([ChatCompletionRequestUserMessage::from(format!(
            "Two tips for {city}; the weather: {weather}"
        ))
        .into()])
        .build()?;
    let mut stream = client.chat().create_stream(tips).await?;
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        if let Some(token) = chunk?
            .choices
            .first()
            .and_then(|choice| choice.delta.content.clone())
        {
            print!("{token}");
            let _ = std::io::stdout().flush();
            text.push_str(&token);
        }
    }
    println!();
    Ok(format!("{weather} {text}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = observe_runtime::init()?; // flushes the trace when dropped
    let config = match std::env::var("OPENAI_API_KEY") {
        Ok(_) => OpenAIConfig::default(),
        Err(_) => OpenAIConfig::new()
            .with_api_base(start_model_server().await?)
            .with_api_key("sk-local"),
    };
    // The one line: a client whose calls are generations (with usage also for streams).
    let client = observe_openai::client_with(config, ObserveLayer::new().include_usage(true));
    plan(&client, "Lisbon").await?;
    Ok(())
}

// --- A small OpenAI-compatible server, so the example runs offline. ---

const WEATHER: &str = "Warm, sunny, light breeze.";
const TIPS: [&str; 6] = ["Ride", " tram 28", ";", " eat", " pastéis", " de nata."];

/// Starts the model server on a free loopback port; returns its base URL.
async fn start_model_server() -> std::io::Result<String> {
    Ok(format!("{}/v1", local_model::start(serve).await?))
}

/// Answers one chat completion request (JSON, or server-sent events when it asks for a
/// stream), then closes.
async fn serve(mut connection: TcpStream) -> std::io::Result<()> {
    let Some(body) = local_model::read_body(&mut connection).await? else {
        return Ok(());
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = format!("{MODEL}-2024-07-18");
    if body["stream"] != json!(true) {
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": WEATHER}}],
            "usage": {"prompt_tokens": 24, "completion_tokens": 6, "total_tokens": 30},
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            answer.len()
        );
        connection.write_all(head.as_bytes()).await?;
        connection.write_all(answer.as_bytes()).await?;
        return connection.shutdown().await;
    }
    connection
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
              connection: close\r\n\r\n",
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(120)).await;
    for token in TIPS {
        let chunk = json!({
            "id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}],
        });
        connection
            .write_all(format!("data: {chunk}\n\n").as_bytes())
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if body["stream_options"]["include_usage"] == json!(true) {
        let usage = json!({
            "id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": 31, "completion_tokens": 14, "total_tokens": 45},
        });
        connection
            .write_all(format!("data: {usage}\n\n").as_bytes())
            .await?;
    }
    connection.write_all(b"data: [DONE]\n\n").await?;
    connection.shutdown().await
}
