//! Which calls are recorded and what their requests say: the endpoint from the URL, and from the
//! JSON body the model, the model parameters (under the names the request used), the input and
//! the tools, borrowed from the body as its own JSON text. Knows nothing about responses or the
//! runtime.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap as _, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::json::Json;

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

/// What a recorded request says, borrowed from its body.
#[derive(Debug, Default)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) model: Option<String>,
    /// The model parameters present in the request, by name (maybe none).
    pub(crate) parameters: BTreeMap<&'static str, Json<'a>>,
    pub(crate) input: Option<Input<'a>>,
    /// `tools` and `tool_choice`, recorded as metadata.
    pub(crate) tools: Vec<(&'static str, Json<'a>)>,
}

/// The input of a request: its messages or input, and the instructions of a Responses API call.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    Only(Json<'a>),
    /// `{"input": …, "instructions": …}`
    WithInstructions {
        input: Option<Json<'a>>,
        instructions: Json<'a>,
    },
}

impl Serialize for Input<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Only(json) => json.serialize(serializer),
            Input::WithInstructions {
                input,
                instructions,
            } => {
                let mut map = serializer.serialize_map(None)?;
                if let Some(input) = input {
                    map.serialize_entry("input", input)?;
                }
                map.serialize_entry("instructions", instructions)?;
                map.end()
            }
        }
    }
}

/// The members of a JSON object, their values as text (one pass over the body, nothing parsed
/// below the top level).
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

impl<'a> Members<'a> {
    /// The value of member `name`, unless absent or `null`.
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
            .filter(|value| value.get() != "null")
    }
}

impl<'a> RequestFacts<'a> {
    /// Reads a request body; `None` when it is not a JSON object.
    pub(crate) fn read(endpoint: Endpoint, body: &'a [u8]) -> Option<RequestFacts<'a>> {
        let members: Members<'a> = serde_json::from_slice(body).ok()?;
        let mut facts = RequestFacts {
            model: members
                .get("model")
                .and_then(|model| serde_json::from_str::<String>(model.get()).ok()),
            ..RequestFacts::default()
        };
        for name in endpoint.parameter_names() {
            if let Some(value) = members.get(name) {
                facts.parameters.insert(name, Json::of(value));
            }
        }
        for name in ["tools", "tool_choice"] {
            if let Some(value) = members.get(name) {
                facts.tools.push((name, Json::of(value)));
            }
        }
        facts.input = match endpoint {
            Endpoint::Chat => members.get("messages").map(|m| Input::Only(Json::of(m))),
            Endpoint::Embeddings => members.get("input").map(|i| Input::Only(Json::of(i))),
            Endpoint::Responses => {
                let input = members.get("input").map(Json::of);
                match members.get("instructions") {
                    Some(instructions) if instructions.get().starts_with('"') => {
                        Some(Input::WithInstructions {
                            input,
                            instructions: Json::of(instructions),
                        })
                    }
                    _ => input.map(Input::Only),
                }
            }
        };
        Some(facts)
    }
}

/// Adds `stream_options.include_usage = true` to a streamed chat request that does not say
/// otherwise; `None` when the body stays as it is. Without `stream_options` (the usual case) the
/// member is added to the text as it is; else the body is parsed and written again.
pub(crate) fn with_usage_requested(body: &[u8]) -> Option<Vec<u8>> {
    let members: Members<'_> = serde_json::from_slice(body).ok()?;
    if members.get("stream").map(RawValue::get) != Some("true") {
        return None;
    }
    if !members.0.iter().any(|(key, _)| key == "stream_options") {
        let end = body.iter().rposition(|&byte| byte == b'}')?;
        let member = br#","stream_options":{"include_usage":true}"#;
        let mut spliced = Vec::with_capacity(body.len() + member.len());
        spliced.extend_from_slice(&body[..end]);
        spliced.extend_from_slice(member);
        spliced.extend_from_slice(&body[end..]);
        return Some(spliced);
    }
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
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
               "max_completion_tokens": 20, "temperature": 0.5, "stop": null,
               "tools": [{"type": "function"}], "stream": true})
        .to_string();
        let facts = RequestFacts::read(Endpoint::Chat, body.as_bytes()).unwrap();
        assert_eq!(facts.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            serde_json::to_string(&facts.parameters).unwrap(),
            r#"{"max_completion_tokens":20,"temperature":0.5}"#
        );
        assert_eq!(
            serde_json::to_string(&facts.input).unwrap(),
            r#"[{"content":"hi","role":"user"}]"#
        );
        assert_eq!(
            serde_json::to_string(&facts.tools).unwrap(),
            r#"[["tools",[{"type":"function"}]]]"#
        );
    }

    #[test]
    fn instructions_go_beside_the_input_of_a_responses_call() {
        let body = br#"{"model":"m","instructions":"Be brief.","input":"Hi"}"#;
        let facts = RequestFacts::read(Endpoint::Responses, body).unwrap();
        assert_eq!(
            serde_json::to_string(&facts.input).unwrap(),
            r#"{"input":"Hi","instructions":"Be brief."}"#
        );
        assert!(RequestFacts::read(Endpoint::Chat, b"[1]").is_none());
    }

    #[test]
    fn usage_is_requested_only_for_streams_that_do_not_say() {
        let asked = with_usage_requested(br#"{"stream":true,"model":"m"} "#).unwrap();
        assert_eq!(
            String::from_utf8(asked).unwrap(),
            r#"{"stream":true,"model":"m","stream_options":{"include_usage":true}} "#
        );
        let asked = with_usage_requested(br#"{"stream":true,"stream_options":null}"#).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&asked).unwrap(),
            json!({"stream": true, "stream_options": {"include_usage": true}})
        );
        let asked = with_usage_requested(br#"{"stream":true,"stream_options":{}}"#).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&asked).unwrap(),
            json!({"stream": true, "stream_options": {"include_usage": true}})
        );
        assert_eq!(with_usage_requested(br#"{"model":"m"}"#), None);
        assert_eq!(
            with_usage_requested(br#"{"stream":true,"stream_options":{"include_usage":false}}"#),
            None
        );
    }
}
