//! Which calls are recorded and what their requests say: the endpoint from the URL, and from the
//! JSON body the model, the model parameters (under the names the request used), the input and
//! the tools. Knows nothing about responses or the runtime.

use serde_json::{Map, Value};

/// A recorded endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST …/chat/completions`
    Chat,
    /// `POST …/responses`
    Responses,
    /// `POST …/embeddings`
    Embeddings,
}

impl Endpoint {
    /// The endpoint of a request, when it is one that is recorded.
    pub(crate) fn of(method: &reqwest::Method, path: &str) -> Option<Endpoint> {
        if method != reqwest::Method::POST {
            return None;
        }
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Some(Endpoint::Chat)
        } else if path.ends_with("/responses") {
            Some(Endpoint::Responses)
        } else if path.ends_with("/embeddings") {
            Some(Endpoint::Embeddings)
        } else {
            None
        }
    }

    /// The observation name, as Langfuse's Python SDK (`langfuse.openai`) names them.
    pub(crate) fn observation_name(self) -> &'static str {
        match self {
            Endpoint::Chat | Endpoint::Responses => "OpenAI-generation",
            Endpoint::Embeddings => "OpenAI-embedding",
        }
    }

    /// The request fields recorded as model parameters.
    fn parameter_names(self) -> &'static [&'static str] {
        match self {
            Endpoint::Chat => &[
                "temperature",
                "top_p",
                "max_tokens",
                "max_completion_tokens",
                "frequency_penalty",
                "presence_penalty",
                "seed",
                "n",
                "stop",
                "response_format",
                "reasoning_effort",
                "logit_bias",
                "logprobs",
                "top_logprobs",
                "parallel_tool_calls",
                "service_tier",
            ],
            Endpoint::Responses => &[
                "temperature",
                "top_p",
                "max_output_tokens",
                "max_tool_calls",
                "reasoning",
                "text",
                "truncation",
                "top_logprobs",
                "parallel_tool_calls",
                "service_tier",
            ],
            Endpoint::Embeddings => &["dimensions", "encoding_format"],
        }
    }
}

/// What a recorded request says.
#[derive(Debug, Default)]
pub(crate) struct RequestFacts {
    pub(crate) model: Option<String>,
    /// The model parameters present in the request (an object, maybe empty).
    pub(crate) parameters: Map<String, Value>,
    pub(crate) input: Option<Value>,
    /// `tools` and `tool_choice`, recorded as metadata.
    pub(crate) tools: Vec<(&'static str, Value)>,
}

impl RequestFacts {
    /// Reads a request body (taking its parts out of it: no copies).
    pub(crate) fn read(endpoint: Endpoint, body: Value) -> RequestFacts {
        let Value::Object(mut body) = body else {
            return RequestFacts::default();
        };
        let mut facts = RequestFacts {
            model: match body.remove("model") {
                Some(Value::String(model)) => Some(model),
                _ => None,
            },
            ..RequestFacts::default()
        };
        for name in endpoint.parameter_names() {
            if let Some(value) = body.remove(*name) {
                if !value.is_null() {
                    facts.parameters.insert((*name).to_string(), value);
                }
            }
        }
        for name in ["tools", "tool_choice"] {
            if let Some(value) = body.remove(name) {
                if !value.is_null() {
                    facts.tools.push((name, value));
                }
            }
        }
        facts.input = match endpoint {
            Endpoint::Chat => body.remove("messages"),
            Endpoint::Embeddings => body.remove("input"),
            Endpoint::Responses => {
                let input = body.remove("input");
                match body.remove("instructions") {
                    Some(Value::String(instructions)) => {
                        let mut both = Map::new();
                        both.insert("instructions".into(), Value::String(instructions));
                        if let Some(input) = input {
                            both.insert("input".into(), input);
                        }
                        Some(Value::Object(both))
                    }
                    _ => input,
                }
            }
        };
        facts
    }
}

/// Adds `stream_options.include_usage = true` to a streamed chat request that does not say
/// otherwise; `None` when the body stays as it is.
pub(crate) fn with_usage_requested(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    if object.get("stream").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let options = object
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if options.is_null() {
        *options = Value::Object(Map::new());
    }
    let options = options.as_object_mut()?;
    if options.contains_key("include_usage") {
        return None;
    }
    options.insert("include_usage".into(), Value::Bool(true));
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_three_post_endpoints_are_recorded() {
        let post = reqwest::Method::POST;
        assert_eq!(
            Endpoint::of(&post, "/v1/chat/completions"),
            Some(Endpoint::Chat)
        );
        assert_eq!(
            Endpoint::of(&post, "/v1/responses"),
            Some(Endpoint::Responses)
        );
        assert_eq!(
            Endpoint::of(&post, "/openai/v1/embeddings"),
            Some(Endpoint::Embeddings)
        );
        assert_eq!(Endpoint::of(&post, "/v1/files"), None);
        assert_eq!(Endpoint::of(&post, "/v1/responses/resp_1/cancel"), None);
        assert_eq!(Endpoint::of(&reqwest::Method::GET, "/v1/responses"), None);
    }

    #[test]
    fn parameters_keep_the_request_names_and_tools_go_apart() {
        let facts = RequestFacts::read(
            Endpoint::Chat,
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                   "max_completion_tokens": 20, "temperature": 0.5, "stop": null,
                   "tools": [{"type": "function"}], "stream": true}),
        );
        assert_eq!(facts.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            Value::Object(facts.parameters),
            json!({"max_completion_tokens": 20, "temperature": 0.5})
        );
        assert_eq!(
            facts.input,
            Some(json!([{"role": "user", "content": "hi"}]))
        );
        assert_eq!(facts.tools, vec![("tools", json!([{"type": "function"}]))]);
    }

    #[test]
    fn usage_is_requested_only_for_streams_that_do_not_say() {
        let asked = with_usage_requested(br#"{"stream":true,"model":"m"}"#).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&asked).unwrap(),
            json!({"stream": true, "model": "m", "stream_options": {"include_usage": true}})
        );
        assert_eq!(with_usage_requested(br#"{"model":"m"}"#), None);
        assert_eq!(
            with_usage_requested(br#"{"stream":true,"stream_options":{"include_usage":false}}"#),
            None
        );
    }
}
