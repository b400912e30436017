//! `examples/chat_stream.rs` against the fake Langfuse server: the streamed chat completion
//! arrives as one generation under the agent, with model, parameters, usage, cost, time to first
//! token and the streamed text, and both scores land on its trace.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{by_name, run_example, FakeLangfuse};

const ANSWER: &str = "Time to first token is the wait before the answer starts.";

#[test]
fn the_chat_stream_example_records_a_streamed_generation_and_scores_its_trace() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-chat", "sk-lf-chat");
    let output = run_example("chat_stream", &[], &server);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{ANSWER}\n")
    );

    let spans = server.wait_for_spans(2, Duration::from_secs(30));
    assert_eq!(spans.len(), 2, "the agent and its generation, once each");
    let agent = by_name(&spans, "answer");
    let chat = by_name(&spans, "chat-completion");
    assert_eq!(agent.parent_span_id(), "");
    assert_eq!(chat.parent_span_id(), agent.span_id());
    for span in [agent, chat] {
        assert_eq!(span.str_attr("langfuse.trace.name"), Some("support-chat"));
        assert_eq!(span.str_attr("session.id"), Some("chat-42"));
        assert_eq!(span.str_attr("user.id"), Some("user-7"));
    }

    assert_eq!(
        chat.str_attr("langfuse.observation.type"),
        Some("generation")
    );
    assert_eq!(
        chat.str_attr("langfuse.observation.model.name"),
        Some("gpt-4o-mini")
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.2, "max_tokens": 256}))
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.input"),
        Some(json!({"question": "What is time to first token?"}))
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.output"),
        Some(json!(ANSWER))
    );
    assert_eq!(
        chat.json_attr("langfuse.observation.usage_details"),
        Some(json!({"input": 118, "output": 12, "total": 1282, "input_cached_tokens": 1152}))
    );
    let cost = chat
        .json_attr("langfuse.observation.cost_details")
        .expect("cost_details");
    for (key, usd) in [
        ("input", 118.0 * 0.15 / 1e6),
        ("output", 12.0 * 0.60 / 1e6),
        ("input_cached_tokens", 1152.0 * 0.075 / 1e6),
        ("total", (118.0 * 0.15 + 12.0 * 0.60 + 1152.0 * 0.075) / 1e6),
    ] {
        let sent = cost[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {cost}"));
        assert!((sent - usd).abs() < 1e-12, "{key}: {sent} != {usd}");
    }
    // The server waits 180 ms before the first token: the completion starts after that, and the
    // generation ends with the stream, after its eight tokens.
    let first = chat
        .str_attr("langfuse.observation.completion_start_time")
        .expect("completion_start_time");
    let start_micros = chat.span.start_time_unix_nano / 1_000;
    let first_micros = support::iso8601_micros(first);
    assert!(
        first_micros >= start_micros + 179_000,
        "first token at {first} is 180 ms after the start"
    );
    assert!(chat.span.end_time_unix_nano / 1_000 >= first_micros + 7 * 24_000);

    let scores = server.wait_for_scores(2, Duration::from_secs(30));
    let mut scores: Vec<_> = scores
        .into_iter()
        .map(|mut score| {
            score.as_object_mut().unwrap().remove("id");
            score
        })
        .collect();
    scores.sort_by_key(|score| score["name"].as_str().map(str::to_owned));
    let trace = agent.trace_id();
    assert_eq!(
        scores,
        [
            json!({"traceId": trace, "name": "answer-length", "value": 57.0, "dataType": "NUMERIC",
                   "comment": "characters in the streamed answer"}),
            json!({"traceId": trace, "name": "helpful", "value": 1, "dataType": "BOOLEAN"}),
        ]
    );
}
