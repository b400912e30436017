//! What a prompt is once fetched: [`Prompt`] (a cheap handle, cloned out of the cache) and
//! [`ChatMessage`], with the wire form Langfuse answers and accepts.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::PromptError;
use crate::record::PromptLink;

/// One message of a chat prompt: a role and its content, plus any other fields as they came
/// (`name`, `tool_calls`, ...).
///
/// A chat prompt may also hold placeholders (`{"type": "placeholder", "name": "history"}`): they
/// are kept as their own kind ([`ChatMessage::placeholder_name`]) until
/// [`Prompt::compile_chat`] replaces each with the messages given under its name.
///
/// ```
/// use observe_runtime::ChatMessage;
/// let system = ChatMessage::new("system", "You are {{persona}}.");
/// let history = ChatMessage::placeholder("history");
/// assert_eq!(history.placeholder_name(), Some("history"));
/// assert_eq!(system.placeholder_name(), None);
/// assert_eq!(
///     serde_json::to_value(&history).unwrap(),
///     serde_json::json!({"type": "placeholder", "name": "history"})
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`... (empty for a placeholder).
    pub role: String,
    /// The text (empty for a placeholder, or when the message had none, such as a tool call).
    pub content: String,
    /// Every other field, as it came.
    pub extra: Map<String, Value>,
    placeholder: Option<String>,
}

impl ChatMessage {
    /// A message with this role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            extra: Map::new(),
            placeholder: None,
        }
    }

    /// A placeholder: [`Prompt::compile_chat`] puts the messages given under `name` in its place.
    pub fn placeholder(name: impl Into<String>) -> Self {
        Self {
            role: String::new(),
            content: String::new(),
            extra: Map::new(),
            placeholder: Some(name.into()),
        }
    }

    /// The name of a placeholder; `None` for a message.
    pub fn placeholder_name(&self) -> Option<&str> {
        self.placeholder.as_deref()
    }

    /// Reads one entry of a chat prompt or of a placeholder's list.
    pub(crate) fn from_value(value: Value) -> Result<Self, String> {
        let Value::Object(mut fields) = value else {
            return Err(format!(
                "a chat message must be an object with \"role\" and \"content\", not {value}"
            ));
        };
        if fields.get("type").and_then(Value::as_str) == Some("placeholder") {
            return match fields.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => Ok(Self::placeholder(name)),
                _ => Err("a placeholder has no \"name\"".to_string()),
            };
        }
        let role = match fields.remove("role") {
            Some(Value::String(role)) => role,
            other => {
                return Err(format!(
                    "a chat message needs a \"role\" string, found {}",
                    other.map_or("none".to_string(), |v| v.to_string())
                ))
            }
        };
        let content = match fields.remove("content") {
            Some(Value::String(content)) => content,
            None | Some(Value::Null) => String::new(),
            // Content parts (text and images) stay as they came, under `content`.
            Some(other) => {
                fields.insert("content".to_string(), other);
                String::new()
            }
        };
        // The wire's own marker of a plain message carries nothing.
        if fields.get("type").and_then(Value::as_str) == Some("chatmessage") {
            fields.remove("type");
        }
        Ok(Self {
            role,
            content,
            extra: fields,
            placeholder: None,
        })
    }

    /// The message as JSON: `role`, `content` (unless the extra fields carry their own), then the
    /// extra fields; a placeholder as `{"type": "placeholder", "name": ...}`.
    pub(crate) fn to_value(&self) -> Value {
        let mut fields = Map::new();
        if let Some(name) = &self.placeholder {
            fields.insert("type".into(), Value::String("placeholder".into()));
            fields.insert("name".into(), Value::String(name.clone()));
            return Value::Object(fields);
        }
        fields.insert("role".into(), Value::String(self.role.clone()));
        if !self.extra.contains_key("content") {
            fields.insert("content".into(), Value::String(self.content.clone()));
        }
        for (key, value) in &self.extra {
            fields.insert(key.clone(), value.clone());
        }
        Value::Object(fields)
    }
}

impl Serialize for ChatMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// The body of a prompt: a text, or a list of chat messages and placeholders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Text(String),
    Chat(Vec<ChatMessage>),
}

impl Body {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Chat(_) => "chat",
        }
    }
}

#[derive(Debug, PartialEq)]
pub(crate) struct PromptData {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) body: Body,
    pub(crate) config: Value,
    pub(crate) labels: Vec<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) commit_message: Option<String>,
    pub(crate) fallback: bool,
}

/// A prompt from Langfuse's prompt management (or the fallback given when it could not be
/// fetched): its text or chat messages, version, labels and config.
///
/// Cloning is cheap (a reference count): a cache hit hands out a clone.
#[derive(Clone, PartialEq)]
pub struct Prompt {
    pub(crate) data: Arc<PromptData>,
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = &*self.data;
        f.debug_struct("Prompt")
            .field("name", &data.name)
            .field("version", &data.version)
            .field("type", &data.body.kind())
            .field("labels", &data.labels)
            .field("is_fallback", &data.fallback)
            .finish_non_exhaustive()
    }
}

/// The wire form of a prompt (`GET /api/public/v2/prompts/{name}` and friends).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePrompt {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    name: String,
    version: u32,
    prompt: Value,
    #[serde(default)]
    config: Value,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    commit_message: Option<String>,
}

impl Prompt {
    /// Reads a prompt as the API answers it.
    pub(crate) fn from_wire(value: Value) -> Result<Prompt, String> {
        let wire: WirePrompt = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let body = match (wire.kind.as_deref(), wire.prompt) {
            (Some("text") | None, Value::String(text)) => Body::Text(text),
            (Some("chat") | None, Value::Array(entries)) => Body::Chat(
                entries
                    .into_iter()
                    .map(ChatMessage::from_value)
                    .collect::<Result<_, _>>()?,
            ),
            (kind, prompt) => {
                return Err(format!(
                    "a prompt of type {kind:?} cannot have this body: {}",
                    prompt.to_string().chars().take(200).collect::<String>()
                ))
            }
        };
        Ok(Prompt::new(PromptData {
            name: wire.name,
            version: wire.version,
            body,
            config: wire.config,
            labels: wire.labels,
            tags: wire.tags,
            commit_message: wire.commit_message,
            fallback: false,
        }))
    }

    pub(crate) fn new(data: PromptData) -> Prompt {
        Prompt {
            data: Arc::new(data),
        }
    }

    /// A fallback prompt: version 0, no labels, never cached, never linked.
    pub(crate) fn fallback(name: &str, body: Body) -> Prompt {
        Prompt::new(PromptData {
            name: name.to_string(),
            version: 0,
            body,
            config: Value::Null,
            labels: Vec::new(),
            tags: Vec::new(),
            commit_message: None,
            fallback: true,
        })
    }

    /// The prompt's name (with its folders: `team/summarise`).
    pub fn name(&self) -> &str {
        &self.data.name
    }

    /// The version; 0 for a fallback.
    pub fn version(&self) -> u32 {
        self.data.version
    }

    /// The labels of this version (`production`, `latest`, ...); empty for a fallback.
    pub fn labels(&self) -> &[String] {
        &self.data.labels
    }

    /// The tags of the prompt.
    pub fn tags(&self) -> &[String] {
        &self.data.tags
    }

    /// The commit message of this version, if it has one.
    pub fn commit_message(&self) -> Option<&str> {
        self.data.commit_message.as_deref()
    }

    /// The config stored with this version (model, temperature, ... as JSON); `null` when there
    /// is none, and for a fallback.
    pub fn config(&self) -> &Value {
        &self.data.config
    }

    /// The config read as your own type.
    ///
    /// ```
    /// # use observe_runtime::Prompt;
    /// #[derive(serde::Deserialize)]
    /// struct ModelConfig { model: String, temperature: f64 }
    /// # fn demo(prompt: &Prompt) -> Result<(), observe_runtime::PromptError> {
    /// let config: ModelConfig = prompt.config_as()?;
    /// # Ok(()) }
    /// ```
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, PromptError> {
        T::deserialize(&self.data.config).map_err(|error| PromptError::Config {
            name: self.data.name.clone(),
            version: self.data.version,
            reason: error.to_string(),
        })
    }

    /// Whether this is the fallback given to the request, because the prompt could not be
    /// fetched.
    pub fn is_fallback(&self) -> bool {
        self.data.fallback
    }

    /// The text of a text prompt (uncompiled); `None` for a chat prompt.
    pub fn text(&self) -> Option<&str> {
        match &self.data.body {
            Body::Text(text) => Some(text),
            Body::Chat(_) => None,
        }
    }

    /// The messages and placeholders of a chat prompt (uncompiled); `None` for a text prompt.
    pub fn messages(&self) -> Option<&[ChatMessage]> {
        match &self.data.body {
            Body::Chat(messages) => Some(messages),
            Body::Text(_) => None,
        }
    }

    /// `true` for a chat prompt.
    pub fn is_chat(&self) -> bool {
        matches!(self.data.body, Body::Chat(_))
    }

    /// The link a generation carries to this prompt; `None` for a fallback.
    pub(crate) fn link(&self) -> Option<PromptLink> {
        (!self.data.fallback).then(|| PromptLink {
            name: self.data.name.clone(),
            version: self.data.version,
        })
    }
}
