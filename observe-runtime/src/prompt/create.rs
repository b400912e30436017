//! The write side: [`create_prompt`] (a new version) and [`set_prompt_labels`] (labels moved to a
//! version). Both forget the name's cache entries, so the next `get_prompt` asks Langfuse.

use std::sync::Arc;

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::fetch::{prompt_error, prompt_path, CACHE};
use super::types::{Body, ChatMessage};
use super::{Prompt, PromptError};
use crate::api::{self, ApiClient, ApiCore, ApiError};

/// The installed client and the work `make` builds for it.
fn with_api<F>(make: impl FnOnce(Arc<ApiCore>) -> F) -> Result<(Arc<ApiClient>, F), ApiError> {
    let api = api::installed()?;
    let work = make(api.core().clone());
    Ok((api, work))
}

async fn send_json(
    core: Arc<ApiCore>,
    method: Method,
    path: String,
    body: Value,
) -> Result<Prompt, ApiError> {
    let mut request = core.request(method, path);
    request.body = Some(body.to_string().into_bytes());
    // A write is not repeated after a lost answer: it may have been applied.
    request.attempts = 1;
    let response = core.send(request).await?;
    Prompt::from_wire(response.json()?).map_err(|reason| ApiError::InvalidResponse {
        method: response.method.to_string(),
        url: response.url.clone(),
        reason,
    })
}

/// Starts a new version of a prompt; see [`CreatePrompt`].
///
/// ```no_run
/// use observe_runtime::{create_prompt, ChatMessage};
/// # fn demo() -> Result<(), observe_runtime::PromptError> {
/// let prompt = create_prompt("support/answer")
///     .chat(vec![
///         ChatMessage::new("system", "You answer questions about {{product}}."),
///         ChatMessage::placeholder("history"),
///         ChatMessage::new("user", "{{question}}"),
///     ])
///     .config(serde_json::json!({"model": "gpt-4o", "temperature": 0.2}))
///     .labels(["staging"])
///     .commit_message("shorter system prompt")
///     .send()?;
/// assert!(prompt.version() >= 1);
/// # Ok(()) }
/// ```
pub fn create_prompt(name: impl Into<String>) -> CreatePrompt {
    CreatePrompt {
        name: name.into(),
        body: None,
        config: None,
        labels: Vec::new(),
        tags: Vec::new(),
        commit_message: None,
    }
}

/// A new prompt version (`POST /api/public/v2/prompts`), built by [`create_prompt`]: its text or
/// chat messages, then optional config, labels (moved from the versions that had them), tags
/// and commit message. Sent once (a write is not retried: it may have been applied).
#[derive(Debug, Clone)]
#[must_use = "a new prompt version is created by .send() or .send_async()"]
pub struct CreatePrompt {
    name: String,
    body: Option<Body>,
    config: Option<Result<Value, String>>,
    labels: Vec<String>,
    tags: Vec<String>,
    commit_message: Option<String>,
}

impl CreatePrompt {
    /// A text prompt.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.body = Some(Body::Text(text.into()));
        self
    }

    /// A chat prompt: messages and placeholders.
    pub fn chat(mut self, messages: Vec<ChatMessage>) -> Self {
        self.body = Some(Body::Chat(messages));
        self
    }

    /// The config stored with the version (any `Serialize` value, usually a JSON object).
    pub fn config(mut self, config: impl Serialize) -> Self {
        self.config = Some(serde_json::to_value(config).map_err(|e| e.to_string()));
        self
    }

    /// Labels of the new version (`production` makes it the one served by default).
    pub fn labels(mut self, labels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Tags of the prompt (all its versions).
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The commit message of the version.
    pub fn commit_message(mut self, message: impl Into<String>) -> Self {
        self.commit_message = Some(message.into());
        self
    }

    fn body(&self) -> Result<Value, PromptError> {
        let invalid = |reason: String| PromptError::InvalidRequest {
            name: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(invalid("the name is empty".into()));
        }
        let (kind, prompt) = match &self.body {
            Some(Body::Text(text)) => ("text", Value::String(text.clone())),
            Some(Body::Chat(messages)) => (
                "chat",
                Value::Array(messages.iter().map(ChatMessage::to_value).collect()),
            ),
            None => {
                return Err(invalid(
                    "a new version needs a body: call .text(..) or .chat(..)".into(),
                ))
            }
        };
        let config = match &self.config {
            None => json!({}),
            Some(Ok(config)) => config.clone(),
            Some(Err(reason)) => {
                return Err(invalid(format!(
                    "the config could not be serialized: {reason}"
                )))
            }
        };
        let mut body = json!({
            "name": self.name,
            "type": kind,
            "prompt": prompt,
            "config": config,
            "labels": self.labels,
            "tags": self.tags,
        });
        if let Some(message) = &self.commit_message {
            body["commitMessage"] = Value::String(message.clone());
        }
        Ok(body)
    }

    fn done(&self, result: Result<Prompt, ApiError>) -> Result<Prompt, PromptError> {
        CACHE.invalidate(&self.name);
        result.map_err(|source| prompt_error(&self.name, "a new version".into(), source))
    }

    /// Creates the version, blocking this thread (any thread, any runtime or none).
    pub fn send(self) -> Result<Prompt, PromptError> {
        let body = self.body()?;
        let result =
            with_api(|core| send_json(core, Method::POST, "/api/public/v2/prompts".into(), body))
                .and_then(|(api, work)| api.block_on(work));
        self.done(result)
    }

    /// Creates the version without blocking the executor.
    pub async fn send_async(self) -> Result<Prompt, PromptError> {
        let body = self.body()?;
        let result = match with_api(|core| {
            send_json(core, Method::POST, "/api/public/v2/prompts".into(), body)
        }) {
            Ok((api, work)) => api.run(work).await,
            Err(error) => Err(error),
        };
        self.done(result)
    }
}

fn labels_request(
    name: &str,
    version: u32,
    labels: Vec<String>,
) -> Result<(String, Value), PromptError> {
    if let Some(reserved) = labels.iter().find(|l| *l == "latest") {
        return Err(PromptError::InvalidRequest {
            name: name.to_string(),
            reason: format!(
                "the label {reserved:?} is reserved: Langfuse moves it to the newest version \
                 itself"
            ),
        });
    }
    let path = format!("{}/versions/{version}", prompt_path(name));
    Ok((path, json!({ "newLabels": labels })))
}

/// Moves `labels` to `version` of the prompt `name` (`PATCH
/// /api/public/v2/prompts/{name}/versions/{version}`): each label leaves the version that had it.
/// Returns the version as it is now, and forgets the name's cache entries. Blocks this thread;
/// [`set_prompt_labels_async`] is the async twin.
///
/// ```no_run
/// # fn demo() -> Result<(), observe_runtime::PromptError> {
/// let promoted = observe_runtime::set_prompt_labels("team/summarise", 4, ["production"])?;
/// assert!(promoted.labels().contains(&"production".to_string()));
/// # Ok(()) }
/// ```
pub fn set_prompt_labels(
    name: impl Into<String>,
    version: u32,
    labels: impl IntoIterator<Item = impl Into<String>>,
) -> Result<Prompt, PromptError> {
    let name = name.into();
    let (path, body) =
        labels_request(&name, version, labels.into_iter().map(Into::into).collect())?;
    let result = with_api(|core| send_json(core, Method::PATCH, path, body))
        .and_then(|(api, work)| api.block_on(work));
    CACHE.invalidate(&name);
    result.map_err(|source| prompt_error(&name, format!("labels of version {version}"), source))
}

/// [`set_prompt_labels`] without blocking the executor.
pub async fn set_prompt_labels_async(
    name: impl Into<String>,
    version: u32,
    labels: impl IntoIterator<Item = impl Into<String>>,
) -> Result<Prompt, PromptError> {
    let name = name.into();
    let (path, body) =
        labels_request(&name, version, labels.into_iter().map(Into::into).collect())?;
    let result = match with_api(|core| send_json(core, Method::PATCH, path, body)) {
        Ok((api, work)) => api.run(work).await,
        Err(error) => Err(error),
    };
    CACHE.invalidate(&name);
    result.map_err(|source| prompt_error(&name, format!("labels of version {version}"), source))
}
