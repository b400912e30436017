//! `examples/openai.rs` as a user runs it, without an OpenAI key (it starts its own fake OpenAI
//! server): against the fake Langfuse server, the agent and its two generations arrive with
//! their attributes; without Langfuse keys, the console prints the tree.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{by_name, run_example, FakeLangfuse};

const TIPS: &str = "Ride tram 28; eat pastéis de nata.";

#[test]
fn the_openai_example_records_the_agent_and_both_generations() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-openai-example", "sk-lf-openai-example");
    let output = run_example("openai", &[], &server);
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{TIPS}\n"));

    let spans = server.wait_for_spans(3, Duration::from_secs(30));
    assert_eq!(spans.len(), 3, "the agent and two generations, once each");
    let agent = by_name(&spans, "trip-planner");
    assert_eq!(agent.parent_span_id(), "");
    let generations: Vec<_> = spans
        .iter()
        .filter(|span| span.name() == "OpenAI-generation")
        .collect();
    assert_eq!(generations.len(), 2);
    let (short, streamed) = if generations[0]
        .str_attr("langfuse.observation.completion_start_time")
        .is_none()
    {
        (generations[0], generations[1])
    } else {
        (generations[1], generations[0])
    };
    for span in [agent, short, streamed] {
        assert_eq!(span.str_attr("session.id"), Some("trip-42"));
        assert_eq!(span.str_attr("user.id"), Some("user-7"));
    }
    for generation in [short, streamed] {
        assert_eq!(generation.parent_span_id(), agent.span_id());
        assert_eq!(
            generation.str_attr("langfuse.observation.type"),
            Some("generation")
        );
        assert_eq!(
            generation.str_attr("langfuse.observation.model.name"),
            Some("gpt-4o-mini-2024-07-18")
        );
    }
    assert_eq!(
        short.json_attr("langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.0, "max_completion_tokens": 40}))
    );
    assert_eq!(
        short.json_attr("langfuse.observation.input"),
        Some(
            json!([{"role": "system", "content": "Answer in five words."},
                    {"role": "user", "content": "Weather in Lisbon in May?"}])
        )
    );
    assert_eq!(
        short.json_attr("langfuse.observation.output"),
        Some(json!({"role": "assistant", "content": "Warm, sunny, light breeze."}))
    );
    assert_eq!(
        short.json_attr("langfuse.observation.usage_details"),
        Some(json!({"input": 24, "output": 6, "total": 30}))
    );
    assert_eq!(
        streamed.json_attr("langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.7}))
    );
    assert_eq!(
        streamed.json_attr("langfuse.observation.output"),
        Some(json!({"role": "assistant", "content": TIPS}))
    );
    assert_eq!(
        streamed.json_attr("langfuse.observation.usage_details"),
        Some(json!({"input": 31, "output": 14, "total": 45})),
        "asked for with include_usage"
    );
}

/// Durations (`123.4 ms`) written as `_ ms`, and the trace id line left out.
fn without_times(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().filter(|line| !line.starts_with("trace ")) {
        let words: Vec<String> = line
            .split(' ')
            .map(|word| {
                let (head, _) = word.split_once('=').unwrap_or(("", word));
                let number = word.strip_prefix(&format!("{head}=")).unwrap_or(word);
                if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    if head.is_empty() {
                        "_".to_string()
                    } else {
                        format!("{head}=_")
                    }
                } else {
                    word.to_string()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

#[test]
fn without_keys_the_example_prints_the_tree() {
    let mut command = support::example_command("openai");
    let output = support::within(Duration::from_secs(120), "the openai example", move || {
        command.output().expect("run the example")
    });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{TIPS}\n"));
    assert_eq!(
        without_times(&String::from_utf8_lossy(&output.stderr)),
        "[langfuse] note: no LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY set: traces are printed here instead of being sent to Langfuse\n\
         └─ trip-planner [agent] _ ms input={\"city\":\"Lisbon\"} output=\"Warm, sunny, light breeze. Ride tram 28; eat pastéis de nata.\"\n   \
         ├─ OpenAI-generation [generation] _ ms model=gpt-4o-mini-2024-07-18 usage={\"input\":24,\"output\":6,\"total\":30} input=[{\"role\":\"system\",\"content\":\"Answer in five words.\"},{\"role\":\"user\",\"content\":\"W… output={\"content\":\"Warm, sunny, light breeze.\",\"role\":\"assistant\"}\n   \
         └─ OpenAI-generation [generation] _ ms model=gpt-4o-mini-2024-07-18 first-token=_ ms usage={\"input\":31,\"output\":14,\"total\":45} input=[{\"role\":\"user\",\"content\":\"Two tips for Lisbon; the weather: Warm, sunny, light … output={\"content\":\"Ride tram 28; eat pastéis de nata.\",\"role\":\"assistant\"}\n"
    );
}
