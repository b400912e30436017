//! The quickstart: `cargo run --example quickstart`.
//!
//! With no `LANGFUSE_*` variables set, the trace is printed to stderr as a tree. With
//! `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` (and `LANGFUSE_BASE_URL` for a region other than
//! EU, or a self-hosted Langfuse), it is sent to Langfuse.

use observe_runtime::{current_observation, current_trace, observe, Usage};

#[derive(Debug)]
struct ModelError(String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model error: {}", self.0)
    }
}

#[observe(as_type = "retriever")]
fn retrieve(query: &str, k: usize) -> Vec<String> {
    (1..=k)
        .map(|i| format!("document {i} about {query}"))
        .collect()
}

#[observe(name = "llm-call", as_type = "generation")]
fn call_llm(prompt: String) -> Result<String, ModelError> {
    current_observation()
        .model("gpt-4o")
        .model_parameters(serde_json::json!({ "temperature": 0.2 }))
        .usage(Usage {
            input: prompt.len() as u64 / 4,
            output: 12,
            ..Default::default()
        });
    if prompt.is_empty() {
        return Err(ModelError("empty prompt".into()));
    }
    Ok(format!(
        "An answer drawing on {} characters of context.",
        prompt.len()
    ))
}

#[observe(as_type = "agent")]
fn answer(question: &str) -> String {
    current_trace()
        .name("quickstart")
        .session_id("session-1")
        .user_id("user-1")
        .tags(["quickstart"]);
    let documents = retrieve(question, 2);
    call_llm(documents.join("\n")).unwrap_or_else(|e| e.to_string())
}

fn main() -> Result<(), observe_runtime::ConfigError> {
    let _guard = observe_runtime::init()?;
    let reply = answer("What is Langfuse?");
    println!("{reply}");
    Ok(())
}
