//! An agent that fans out to tools concurrently, asks a model once, and survives a failing tool.
//!
//! Run it with `cargo run --example async_agent`. Without `LANGFUSE_*` variables the trace tree is
//! printed to the console; with `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` (and
//! `LANGFUSE_BASE_URL` for a self-hosted server) it is sent to Langfuse.

use std::fmt;
use std::time::Duration;

use observe_runtime::{observe, FutureExt as _, TraceContext, Usage};

#[derive(Debug)]
struct ToolError {
    tool: &'static str,
    reason: String,
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.tool, self.reason)
    }
}

impl std::error::Error for ToolError {}

#[derive(Debug, serde::Serialize)]
struct Document {
    title: String,
    score: f32,
}

#[observe(as_type = "retriever")]
async fn search_documents(query: &str, k: usize) -> Vec<Document> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    (0..k)
        .map(|i| Document {
            title: format!("{query}, part {}", i + 1),
            score: 1.0 - i as f32 / 10.0,
        })
        .collect()
}

#[observe(as_type = "tool")]
async fn weather(city: String) -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("sunny in {city}")
}

#[observe(as_type = "tool")]
async fn stock_price(symbol: &str) -> Result<f64, ToolError> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Err(ToolError {
        tool: "stock_price",
        reason: format!("market closed for {symbol}"),
    })
}

#[observe(as_type = "guardrail")]
fn check_prompt(prompt: &str) -> bool {
    !prompt.to_lowercase().contains("password")
}

#[observe(name = "llm-call", as_type = "generation", skip(api_key))]
async fn call_llm(prompt: String, api_key: &str) -> String {
    let _ = api_key;
    observe_runtime::current_observation()
        .model("gpt-4o")
        .model_parameters(serde_json::json!({ "temperature": 0.2 }))
        .usage(Usage {
            input: prompt.split_whitespace().count() as u64,
            output: 12,
            ..Default::default()
        });
    tokio::time::sleep(Duration::from_millis(40)).await;
    "Take an umbrella just in case; the documents agree.".to_string()
}

#[observe(as_type = "agent")]
async fn agent(question: String) -> Result<String, ToolError> {
    observe_runtime::current_trace()
        .session_id("example-session")
        .user_id("example-user")
        .tags(["example", "async"]);

    // Two tools at once on this task...
    let (documents, forecast) = tokio::join!(
        search_documents(&question, 3),
        weather("Lisbon".to_string())
    );

    // ...and one on another task: the trace context goes with it (there is none when tracing is
    // disabled or this trace was sampled out).
    let task = stock_price("ACME");
    let price = match TraceContext::current() {
        Some(context) => tokio::spawn(task.in_context(context)),
        None => tokio::spawn(task),
    };
    let price = match price.await {
        Ok(Ok(price)) => format!("{price:.2}"),
        Ok(Err(error)) => format!("unknown ({error})"),
        Err(join_error) => format!("unknown ({join_error})"),
    };

    let prompt = format!(
        "Question: {question}\nDocuments: {}\nWeather: {forecast}\nACME: {price}",
        documents
            .iter()
            .map(|document| document.title.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    if !check_prompt(&prompt) {
        return Err(ToolError {
            tool: "guardrail",
            reason: "the prompt leaks a secret".to_string(),
        });
    }
    Ok(call_llm(prompt, "sk-example").await)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = observe_runtime::init()?;

    let answer = agent("Should I take an umbrella?".to_string()).await?;
    println!("{answer}");
    Ok(())
}
