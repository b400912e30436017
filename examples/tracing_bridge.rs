//! An app already instrumented with `tracing`: `cargo run --example tracing_bridge`.
//!
//! `#[tracing::instrument]` functions, a span shaped like the ones rig and genai emit (the
//! OpenTelemetry GenAI fields) and `#[observe]` functions make one trace. With no `LANGFUSE_*`
//! variables set, it is printed to stderr as a tree; with `LANGFUSE_PUBLIC_KEY` and
//! `LANGFUSE_SECRET_KEY`, it is sent to Langfuse.

use observe_runtime::observe;
use tracing::field::Empty;
use tracing::Instrument as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// An `#[observe]` function: a retriever, its arguments and result captured.
#[observe(as_type = "retriever")]
fn retrieve(query: &str) -> Vec<String> {
    vec![
        format!("Langfuse traces {query}"),
        format!("{query} is observable"),
    ]
}

/// What an LLM client crate does: a `chat` span with the GenAI fields, the response recorded
/// when it arrives.
async fn chat(prompt: String) -> String {
    let span = tracing::info_span!(
        target: "llm_client",
        "chat",
        otel.name = "chat gpt-4o-mini",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "openai",
        gen_ai.request.model = "gpt-4o-mini",
        gen_ai.request.temperature = 0.2,
        gen_ai.input.messages = serde_json::json!([{"role": "user", "content": prompt}]).to_string(),
        gen_ai.output.messages = Empty,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    );
    let answer = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        "Langfuse shows the whole trace.".to_string()
    }
    .instrument(span.clone())
    .await;
    span.record("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
    span.record("gen_ai.usage.input_tokens", 42u64);
    span.record("gen_ai.usage.output_tokens", 7u64);
    span.record(
        "gen_ai.output.messages",
        serde_json::json!([{"role": "assistant", "content": answer}]).to_string(),
    );
    answer
}

/// The app's own `tracing` instrumentation.
#[tracing::instrument(fields(session.id = "session-1", user.id = "user-1"))]
async fn answer(question: String) -> String {
    let documents = retrieve(&question);
    tracing::info!(documents = documents.len(), "retrieved");
    chat(format!("{question}\n{}", documents.join("\n"))).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), observe_runtime::ConfigError> {
    let _guard = observe_runtime::init()?;
    // The app's own spans and the LLM client's, at INFO and above.
    let filter = Targets::new()
        .with_target("tracing_bridge", tracing::Level::INFO)
        .with_target("llm_client", tracing::Level::INFO);
    tracing_subscriber::registry()
        .with(
            observe_runtime::tracing_layer()
                .record_info_events(true)
                .with_filter(filter),
        )
        .init();
    let reply = answer("tracing".to_string()).await;
    println!("{reply}");
    Ok(())
}
