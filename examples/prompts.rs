//! Prompt management: a chat prompt fetched from Langfuse (with a fallback for when it cannot
//! be), compiled with variables and the conversation so far, and sent to a model in a generation
//! linked to the prompt version, so Langfuse shows which version produced which answer.
//!
//! Run it with `cargo run --example prompts`. The "model" is a local stand-in, so it needs neither
//! network nor API key. With `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` (and `LANGFUSE_BASE_URL`
//! for a self-hosted server) it fetches the chat prompt `support/answer` (label `production`),
//! and the trace goes to Langfuse. Without keys, or when the prompt does not exist yet, it uses
//! the fallback below, which is never linked, and without keys the trace tree is printed here.

use observe_runtime::{
    current_observation, current_trace, get_prompt, observe, ChatMessage, Prompt,
};
use serde_json::json;

const PROMPT_NAME: &str = "support/answer";

/// The prompt used when Langfuse cannot be asked: the same shape as the managed one.
fn fallback() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "You are {{persona}}. Answer in one sentence."),
        ChatMessage::placeholder("history"),
        ChatMessage::new("user", "{{question}}"),
    ]
}

/// A stand-in for an LLM call: answers from the messages it was given.
#[observe(name = "chat-completion", as_type = "generation", skip(prompt))]
fn complete(prompt: &Prompt, messages: &[ChatMessage]) -> String {
    current_observation()
        .link_prompt(prompt)
        .model("local-echo")
        .model_parameters(prompt.config());
    let system = &messages[0].content;
    let question = messages.last().map_or("", |m| m.content.as_str());
    format!("({system}) You asked: {question}")
}

#[observe(name = "answer")]
fn answer(question: &str) -> Result<String, observe_runtime::PromptError> {
    current_trace().session_id("chat-42");
    let prompt = get_prompt(PROMPT_NAME).fallback_chat(fallback()).fetch()?;
    if prompt.is_fallback() {
        eprintln!("using the fallback prompt (not linked)");
    } else {
        eprintln!("using {:?} version {}", prompt.name(), prompt.version());
    }
    let messages = prompt.compile_chat(
        &json!({"persona": "a support agent", "question": question}),
        &json!({"history": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"}
        ]}),
    )?;
    Ok(complete(&prompt, &messages))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = observe_runtime::init()?;
    println!("{}", answer("How do I reset my password?")?);
    Ok(())
}
