//! One rule for token usage: the same provider usage object gives the same counts whether it is
//! set on an `#[observe]` generation (through `Usage`'s `Deserialize`) or recorded on a `tracing`
//! span the bridge maps (`langfuse.observation.usage_details`, or `gen_ai.usage.*` fields), and
//! the same cost object the same costs.

use observe_runtime::{current_observation, observe, testing, tracing_layer, Cost, Usage};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt as _;

/// (provider, its usage object, the `usage_details` Langfuse gets: zero counts are left out).
fn providers() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "OpenAI chat completions",
            json!({"prompt_tokens": 1270, "completion_tokens": 155, "total_tokens": 1425,
                   "prompt_tokens_details": {"cached_tokens": 1152, "audio_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 100}}),
            r#"{"input":118,"input_cached_tokens":1152,"output":55,"output_reasoning_tokens":100,"total":1425}"#,
        ),
        (
            "OpenAI responses",
            json!({"input_tokens": 300, "output_tokens": 40, "total_tokens": 340,
                   "input_tokens_details": {"cached_tokens": 200},
                   "output_tokens_details": {"reasoning_tokens": 10}}),
            r#"{"input":100,"input_cached_tokens":200,"output":30,"output_reasoning_tokens":10,"total":340}"#,
        ),
        (
            "Anthropic",
            json!({"input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 100,
                   "cache_creation_input_tokens": 7, "service_tier": "standard"}),
            r#"{"cache_creation_input_tokens":7,"cache_read_input_tokens":100,"input":12,"output":30,"total":149}"#,
        ),
        (
            "Gemini",
            json!({"promptTokenCount": 500, "candidatesTokenCount": 60, "totalTokenCount": 590,
                   "cachedContentTokenCount": 400, "thoughtsTokenCount": 30}),
            r#"{"input":100,"input_cached_tokens":400,"output":60,"output_reasoning_tokens":30,"total":590}"#,
        ),
        (
            "camelCase",
            json!({"promptTokens": 8, "completionTokens": 4, "totalTokens": 12}),
            r#"{"input":8,"output":4,"total":12}"#,
        ),
    ]
}

#[observe(as_type = "generation", skip_all)]
fn observed_generation(usage: Value, cost: Value) {
    let usage: Usage = serde_json::from_value(usage).expect("a usage object");
    let cost = Cost::new(0.0, 0.0)
        .with_detail("input", cost["input"].as_f64().unwrap())
        .with_detail("output", cost["output"].as_f64().unwrap())
        .with_detail(
            "input_cached_tokens",
            cost["input_cached_tokens"].as_f64().unwrap(),
        );
    current_observation().usage(usage).cost(cost);
}

fn bridged_generation(usage: &Value, cost: &Value) {
    let subscriber = tracing_subscriber::registry().with(tracing_layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!(
            "bridged_generation",
            "gen_ai.operation.name" = "chat",
            "langfuse.observation.usage_details" = usage.to_string(),
            "langfuse.observation.cost_details" = cost.to_string(),
        )
        .in_scope(|| {});
    });
}

#[test]
fn observe_and_the_bridge_read_usage_alike() {
    let cost = json!({"input": 0.25, "output": 0.5, "input_cached_tokens": 0.125});
    for (provider, usage, expected) in providers() {
        let run = testing::capture(|| {
            observed_generation(usage.clone(), cost.clone());
            bridged_generation(&usage, &cost);
        });
        let observed = run.observation("observed_generation");
        let bridged = run.observation("bridged_generation");
        assert_eq!(observed.usage, bridged.usage, "{provider}");
        assert_eq!(
            bridged.usage.as_ref().map(Usage::to_json).as_deref(),
            Some(expected),
            "{provider}"
        );
        assert_eq!(observed.cost, bridged.cost, "{provider}");
        assert_eq!(
            bridged.cost.as_ref().map(Cost::to_json).as_deref(),
            Some(r#"{"input":0.25,"input_cached_tokens":0.125,"output":0.5,"total":0.875}"#),
            "{provider}"
        );
    }
}

#[test]
fn gen_ai_usage_fields_read_as_the_same_object() {
    let run = testing::capture(|| {
        let subscriber = tracing_subscriber::registry().with(tracing_layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!(
                "anthropic_fields",
                "gen_ai.operation.name" = "chat",
                "gen_ai.usage.input_tokens" = 12,
                "gen_ai.usage.output_tokens" = 30,
                "gen_ai.usage.cache_read_input_tokens" = 100,
            )
            .in_scope(|| {});
        });
    });
    let expected = Usage::from_value(&json!({
        "input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 100
    }));
    assert_eq!(
        run.observation("anthropic_fields").usage.as_ref(),
        Some(&expected)
    );
    assert_eq!(
        expected.to_json(),
        r#"{"cache_read_input_tokens":100,"input":12,"output":30,"total":142}"#
    );
}
