//! With no credentials, each finished trace is printed to stderr as an indented tree.

mod support;

use std::time::Duration;

use observe_runtime::{current_observation, observe, Config};
use support::child_mode;

#[observe(as_type = "retriever")]
fn search(query: &str) -> Vec<String> {
    vec![format!("doc about {query}")]
}

#[observe(name = "llm", as_type = "generation")]
fn generate(prompt: String) -> Result<String, String> {
    current_observation().model("gpt-4o");
    Err(format!("quota exceeded for {} chars", prompt.len()))
}

#[observe(as_type = "agent")]
fn agent(question: &str) -> String {
    let docs = search(question);
    generate(docs.join(" ")).unwrap_or_default()
}

/// The printed lines with each duration ("0.1 ms", "1.20 s") replaced by `<t>`.
fn without_durations(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let mut out = Vec::new();
            let mut i = 0;
            while i < words.len() {
                let is_duration = words[i].parse::<f64>().is_ok()
                    && matches!(words.get(i + 1), Some(&"ms") | Some(&"s"));
                if is_duration {
                    out.push("<t>");
                    i += 2;
                } else {
                    out.push(words[i]);
                    i += 1;
                }
            }
            out.join(" ")
        })
        .collect()
}

#[test]
fn with_no_credentials_traces_print_as_a_tree() {
    if child_mode().as_deref() == Some("console") {
        let guard = Config::from_vars(Vec::<(String, String)>::new())
            .init()
            .expect("init without credentials");
        agent("rust");
        drop(guard);
        return;
    }
    let output = child_test!("console", &[], Duration::from_secs(60));
    output.assert_success();
    let lines = without_durations(&output.stderr);
    let start = lines
        .iter()
        .position(|l| l.starts_with("[langfuse] note: no LANGFUSE_PUBLIC_KEY"))
        .unwrap_or_else(|| panic!("no console note in:\n{}", output.stderr));
    assert_eq!(
        lines[start],
        "[langfuse] note: no LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY set: traces are printed here \
         instead of being sent to Langfuse"
    );
    assert!(lines[start + 1].starts_with("trace "), "{}", output.stderr);
    assert_eq!(lines[start + 1].len(), "trace ".len() + 32);
    assert_eq!(
        &lines[start + 2..start + 5],
        [
            "└─ agent [agent] <t> input={\"question\":\"rust\"} output=\"\"",
            "   ├─ search [retriever] <t> input={\"query\":\"rust\"} output=[\"doc about rust\"]",
            "   └─ llm [generation] <t> ERROR: quota exceeded for 14 chars model=gpt-4o \
             input={\"prompt\":\"doc about rust\"} output=\"quota exceeded for 14 chars\"",
        ]
    );
}
