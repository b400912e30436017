//! The public types as a user's code meets them: every error can cross threads and be boxed,
//! ids travel through serde as their hex text, and types that will grow can be extended without
//! breaking a user's code.

use observe_runtime::{
    ApiError, AuthError, ConfigError, ExperimentError, FlushError, IdParseError, ObservationId,
    PromptError, TraceId, TraceparentError,
};

fn is_error<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn every_error_type_is_an_error_that_crosses_threads() {
    is_error::<ApiError>();
    is_error::<AuthError>();
    is_error::<ConfigError>();
    is_error::<ExperimentError>();
    is_error::<FlushError>();
    is_error::<IdParseError>();
    is_error::<PromptError>();
    is_error::<TraceparentError>();
    let boxed: Box<dyn std::error::Error + Send + Sync> =
        Box::new("x".parse::<TraceId>().unwrap_err());
    assert!(
        boxed
            .to_string()
            .starts_with("\"x\" is not a valid trace id"),
        "{boxed}"
    );
}

#[test]
fn ids_travel_through_serde_as_their_hex_text() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Job {
        trace: TraceId,
        parent: Option<ObservationId>,
    }
    let job = Job {
        trace: "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap(),
        parent: Some("00f067aa0ba902b7".parse().unwrap()),
    };
    let text = serde_json::to_string(&job).unwrap();
    assert_eq!(
        text,
        r#"{"trace":"4bf92f3577b34da6a3ce929d0e0e4736","parent":"00f067aa0ba902b7"}"#
    );
    assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    let error = serde_json::from_str::<Job>(r#"{"trace":"4BF9","parent":null}"#).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("\"4BF9\" is not a valid trace id: expected 32 lowercase hex characters"),
        "{error}"
    );
}

#[test]
fn usage_round_trips_through_serde() {
    let usage = observe_runtime::Usage::new(118, 155)
        .with_total(1425)
        .with_detail("input_cached_tokens", 1152);
    let text = serde_json::to_string(&usage).unwrap();
    assert_eq!(
        text,
        r#"{"input":118,"output":155,"total":1425,"input_cached_tokens":1152}"#
    );
    assert_eq!(
        serde_json::from_str::<observe_runtime::Usage>(&text).unwrap(),
        usage
    );
}
