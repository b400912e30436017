//! `examples/prompts.rs` as a user runs it: with a managed prompt in the fake Langfuse server the
//! generation is linked to that version; without one, and without keys, the fallback is used and
//! never linked.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{by_name, clear_sdk_environment, example_command, run_example, FakeLangfuse};

const QUESTION: &str = "How do I reset my password?";

#[test]
fn the_managed_prompt_is_compiled_and_linked_to_the_generation() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-prompts", "sk-lf-prompts");
    server.put_prompt(json!({
        "name": "support/answer", "version": 3, "labels": ["production"],
        "config": {"temperature": 0.1},
        "prompt": [
            {"role": "system", "content": "You are {{persona}}, version three."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{question}}"}
        ]
    }));
    let output = run_example("prompts", &[], &server);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("(You are a support agent, version three.) You asked: {QUESTION}\n")
    );
    let spans = server.wait_for_spans(2, Duration::from_secs(30));
    assert_eq!(spans.len(), 2);
    let generation = by_name(&spans, "chat-completion");
    assert_eq!(
        generation.str_attr("langfuse.observation.prompt.name"),
        Some("support/answer")
    );
    assert_eq!(
        generation.int_attr("langfuse.observation.prompt.version"),
        Some(3)
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.1}))
    );
    assert_eq!(
        generation.json_attr("langfuse.observation.input"),
        Some(json!({"messages": [
            {"role": "system", "content": "You are a support agent, version three."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": QUESTION}
        ]}))
    );
    assert_eq!(server.prompt_fetch_count("support/answer"), 1);
}

#[test]
fn without_a_managed_prompt_the_fallback_is_used_and_not_linked() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-prompts", "sk-lf-prompts");
    let output = run_example("prompts", &[], &server);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("(You are a support agent. Answer in one sentence.) You asked: {QUESTION}\n")
    );
    let spans = server.wait_for_spans(2, Duration::from_secs(30));
    let generation = by_name(&spans, "chat-completion");
    assert_eq!(
        generation.str_attr("langfuse.observation.prompt.name"),
        None
    );
    assert_eq!(
        generation.int_attr("langfuse.observation.prompt.version"),
        None
    );
}

#[test]
fn without_keys_the_fallback_is_used_and_the_tree_printed() {
    let mut command = example_command("prompts");
    clear_sdk_environment(&mut command);
    let output = command.output().expect("run the example");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("(You are a support agent. Answer in one sentence.) You asked: {QUESTION}\n")
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("using the fallback prompt (not linked)"),
        "{stderr}"
    );
    assert!(stderr.contains("chat-completion"), "{stderr}");
}
