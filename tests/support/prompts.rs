//! Langfuse's prompt management, as the fake server plays it: a store of prompt versions per name
//! and the answers of the three routes the SDKs use (the OpenAPI document, schemas `Prompt`,
//! `CreatePromptRequest`; Langfuse's `promptNameHandler`, `promptsHandler`, `promptVersionHandler`):
//!
//! - `GET /api/public/v2/prompts/{name}?label=…&version=…`: the name is one percent-encoded path
//!   segment (`team%2Fsummarise` is the prompt `team/summarise`); neither query: the `production`
//!   label; both: 400 [`BOTH_VERSION_AND_LABEL`]; nothing matching: 404 with
//!   [`not_found_with_label`] or [`not_found_with_version`].
//! - `POST /api/public/v2/prompts`: a `CreatePromptRequest`; creates the next version of the name
//!   (1 for a new name), moves its labels away from the older versions, applies its tags to every
//!   version; answers the new version (200 by default, see [`PromptStore::create_status`]).
//! - `PATCH /api/public/v2/prompts/{name}/versions/{version}` with `{"newLabels": [...]}`: adds
//!   those labels to that version and moves them away from the others; `latest` is refused
//!   ([`LATEST_LABEL_RESERVED`]); unknown name or version: 404 [`not_found_for_update`].
//!
//! `latest` is maintained by the store: it is always on the newest version, and only there.
//! Authentication and faults are the server's business (`server.rs`); this module sees only
//! authenticated requests. Prompt dependencies (`@@@langfusePrompt:…@@@`) are stored as sent,
//! never resolved.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The create route, and the prefix of every prompt route.
pub const PROMPTS_PATH: &str = "/api/public/v2/prompts";
/// The label a fetch without `label` and `version` asks for.
pub const PRODUCTION_LABEL: &str = "production";
/// The label the server keeps on the newest version of every prompt.
pub const LATEST_LABEL: &str = "latest";

/// 400 to a fetch with both `version` and `label`.
pub const BOTH_VERSION_AND_LABEL: &str = "Cannot specify both version and label";
/// 400 to a label update that includes `latest`.
pub const LATEST_LABEL_RESERVED: &str =
    "Label 'latest' is always assigned to the latest prompt version";
/// 400 to a create whose type differs from the existing versions' type.
pub const PROMPT_TYPE_CHANGED: &str =
    "Previous versions have different prompt type. Create a new prompt with a different name.";
/// The `message` of a 400 whose body failed validation; the details are in `error`.
pub const INVALID_REQUEST_DATA: &str = "Invalid request data";
/// 400 to a prompt path whose percent-encoding is broken.
pub const INVALID_PATH_ENCODING: &str = "Invalid percent-encoding in the prompt path";

/// 404 to a fetch by label: `Prompt not found: '<name>' with label '<label>'`.
pub fn not_found_with_label(name: &str, label: &str) -> String {
    format!("Prompt not found: '{name}' with label '{label}'")
}

/// 404 to a fetch by version: `Prompt not found: '<name>' with version <version>`.
pub fn not_found_with_version(name: &str, version: i64) -> String {
    format!("Prompt not found: '{name}' with version {version}")
}

/// 404 to a label update of an unknown name or version: `Prompt not found: <name>`.
pub fn not_found_for_update(name: &str) -> String {
    format!("Prompt not found: {name}")
}

/// Whether `path` (without the query) is the create route or below it.
pub fn is_prompt_path(path: &str) -> bool {
    path == PROMPTS_PATH
        || path
            .strip_prefix(PROMPTS_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `/api/public/v2/prompts/<name percent-encoded as one segment>`.
pub fn prompt_path(name: &str) -> String {
    format!("{PROMPTS_PATH}/{}", encode_segment(name))
}

/// `/api/public/v2/prompts/<name>/versions/<version>`.
pub fn prompt_version_path(name: &str, version: i64) -> String {
    format!("{}/versions/{version}", prompt_path(name))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so `/` becomes `%2F`.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (a `+` stays a `+`); `None` for a broken escape or non-UTF-8 bytes.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The first value of `key` in a query string (`a=1&b=2`), decoded as a form value (`+` is a
/// space); `None` when absent or badly encoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(&name.replace('+', " "))?;
        (name == key)
            .then(|| percent_decode(&value.replace('+', " ")))
            .flatten()
    })
}

/// Which prompt route a request is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptRoute {
    /// `GET /api/public/v2/prompts/{name}` (name decoded).
    Get { name: String },
    /// `POST /api/public/v2/prompts`.
    Create,
    /// `PATCH /api/public/v2/prompts/{name}/versions/{version}` (name decoded, version as sent).
    UpdateLabels { name: String, version: String },
    /// A known path with another method.
    MethodNotAllowed,
    /// A path below the prompts route that is none of the above (e.g. an unencoded `/` in the
    /// name).
    NotFound,
    /// The name segment is not valid percent-encoding.
    BadEncoding,
}

/// The route of `method` on `path` (without the query).
pub fn route(method: &str, path: &str) -> PromptRoute {
    if path == PROMPTS_PATH {
        return match method {
            "POST" => PromptRoute::Create,
            _ => PromptRoute::MethodNotAllowed,
        };
    }
    let Some(rest) = path
        .strip_prefix(PROMPTS_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return PromptRoute::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return PromptRoute::NotFound;
    }
    let Some(name) = percent_decode(segments[0]) else {
        return PromptRoute::BadEncoding;
    };
    match (segments.len(), method) {
        (1, "GET") => PromptRoute::Get { name },
        (1, _) => PromptRoute::MethodNotAllowed,
        (3, "PATCH") if segments[1] == "versions" => PromptRoute::UpdateLabels {
            name,
            version: segments[2].to_owned(),
        },
        (3, _) if segments[1] == "versions" => PromptRoute::MethodNotAllowed,
        _ => PromptRoute::NotFound,
    }
}

/// Every version of every prompt, by name; each version is a full `Prompt` JSON object.
#[derive(Debug)]
pub struct PromptStore {
    /// Versions of one name, sorted by version.
    prompts: BTreeMap<String, Vec<Value>>,
    /// The `projectId` of every stored version.
    project_id: String,
    next_id: u64,
    /// The status a successful create answers: 200 as the OpenAPI document says (the default);
    /// Langfuse's handler itself answers 201.
    pub create_status: u16,
}

impl PromptStore {
    /// An empty store for the project `project_id`.
    pub fn new(project_id: &str) -> Self {
        PromptStore {
            prompts: BTreeMap::new(),
            project_id: project_id.to_owned(),
            next_id: 0,
            create_status: 200,
        }
    }

    /// Stores `prompt` (a full `Prompt` JSON object) as given, replacing the same name and
    /// version if present. `name` (a string), `version` (an integer) and `prompt` (a string or an
    /// array) are required; missing `type` (from `prompt`), `config` (`{}`), `labels`, `tags`
    /// (`[]`), `commitMessage` (null), `id`, `projectId`, `createdBy`, `createdAt`, `updatedAt`
    /// are filled in. Its labels are moved away from the other versions of the name, and
    /// `latest` is put on the newest version (and removed from the others). Panics on a prompt
    /// without the required fields: this is for seeding by tests.
    pub fn put(&mut self, prompt: Value) {
        let Value::Object(mut object) = prompt else {
            panic!("put_prompt takes a JSON object, got {prompt}");
        };
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("put_prompt: `name` must be a string in {object:?}"))
            .to_owned();
        let version = object
            .get("version")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("put_prompt: `version` must be an integer in {object:?}"));
        let kind = match object.get("prompt") {
            Some(Value::String(_)) => "text",
            Some(Value::Array(_)) => "chat",
            _ => panic!("put_prompt: `prompt` must be a string or an array in {object:?}"),
        };
        let id = self.new_id();
        let now = now_iso8601();
        let defaults = [
            ("type", json!(kind)),
            ("config", json!({})),
            ("labels", json!([])),
            ("tags", json!([])),
            ("commitMessage", Value::Null),
            ("id", json!(id)),
            ("projectId", json!(self.project_id)),
            ("createdBy", json!("API")),
            ("createdAt", json!(now)),
            ("updatedAt", json!(now)),
        ];
        for (key, value) in defaults {
            object.entry(key).or_insert(value);
        }
        let labels = strings(&object["labels"]);
        let versions = self.prompts.entry(name).or_default();
        versions.retain(|existing| version_of(existing) != version);
        move_labels_away(versions, &labels);
        let position = versions.partition_point(|existing| version_of(existing) < version);
        versions.insert(position, Value::Object(object));
        refresh_latest(versions);
    }

    /// Every version of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<Value> {
        self.prompts.get(name).cloned().unwrap_or_default()
    }

    /// Version `version` of `name`.
    pub fn version(&self, name: &str, version: i64) -> Option<Value> {
        self.prompts
            .get(name)?
            .iter()
            .find(|prompt| version_of(prompt) == version)
            .cloned()
    }

    /// The version of `name` that carries `label`.
    pub fn labelled(&self, name: &str, label: &str) -> Option<Value> {
        self.prompts
            .get(name)?
            .iter()
            .find(|prompt| strings(&prompt["labels"]).iter().any(|l| l == label))
            .cloned()
    }

    /// Answers an authenticated request on `route` (`Get`, `Create` or `UpdateLabels`; the
    /// others are the server's) with a status and a JSON body. `query` is the query string
    /// without `?`; `content_type` the request's header.
    pub fn answer(
        &mut self,
        route: &PromptRoute,
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        match route {
            PromptRoute::Get { name } => self.answer_get(name, query),
            PromptRoute::Create => match json_body(content_type, body) {
                Ok(body) => self.answer_create(&body),
                Err(answer) => answer,
            },
            PromptRoute::UpdateLabels { name, version } => match json_body(content_type, body) {
                Ok(body) => self.answer_update(name, version, &body),
                Err(answer) => answer,
            },
            PromptRoute::MethodNotAllowed => message(405, "Method not allowed"),
            PromptRoute::NotFound => message(404, "Not found"),
            PromptRoute::BadEncoding => message(400, INVALID_PATH_ENCODING),
        }
    }

    fn answer_get(&self, name: &str, query: &str) -> (u16, Value) {
        // `z.coerce.number().int().nullish()`, then `if (version)`: empty and 0 mean no version.
        let version = match query_param(query, "version").as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match text.parse::<f64>() {
                Ok(number) if number.is_finite() && number.fract() == 0.0 => {
                    Some(number as i64).filter(|&version| version != 0)
                }
                _ => return invalid("version", &format!("Expected integer, received {text:?}")),
            },
        };
        let label = query_param(query, "label").filter(|label| !label.is_empty());
        match (version, label) {
            (Some(_), Some(_)) => message(400, BOTH_VERSION_AND_LABEL),
            (Some(version), None) => match self.version(name, version) {
                Some(prompt) => (200, prompt),
                None => message(404, &not_found_with_version(name, version)),
            },
            (None, label) => {
                let label = label.as_deref().unwrap_or(PRODUCTION_LABEL);
                match self.labelled(name, label) {
                    Some(prompt) => (200, prompt),
                    None => message(404, &not_found_with_label(name, label)),
                }
            }
        }
    }

    fn answer_create(&mut self, body: &Value) -> (u16, Value) {
        let request = match CreateRequest::parse(body) {
            Ok(request) => request,
            Err((path, detail)) => return invalid(path, &detail),
        };
        let id = self.new_id();
        let now = now_iso8601();
        let create_status = self.create_status;
        let project_id = self.project_id.clone();
        let versions = self.prompts.entry(request.name.clone()).or_default();
        let newest = versions.last().cloned();
        if newest
            .as_ref()
            .is_some_and(|newest| newest["type"].as_str() != Some(request.kind))
        {
            return message(400, PROMPT_TYPE_CHANGED);
        }
        let version = newest.as_ref().map_or(0, version_of) + 1;
        let mut labels = request.labels;
        labels.push(LATEST_LABEL.to_owned());
        let labels = dedupe(labels);
        let tags = dedupe(request.tags.unwrap_or_else(|| {
            newest
                .as_ref()
                .map(|newest| strings(&newest["tags"]))
                .unwrap_or_default()
        }));
        move_labels_away(versions, &labels);
        for existing in versions.iter_mut() {
            if strings(&existing["tags"]) != tags {
                existing["tags"] = json!(tags);
                existing["updatedAt"] = json!(now);
            }
        }
        let created = json!({
            "id": id,
            "projectId": project_id,
            "createdBy": "API",
            "createdAt": now,
            "updatedAt": now,
            "name": request.name,
            "version": version,
            "type": request.kind,
            "prompt": request.prompt,
            "config": request.config,
            "labels": labels,
            "tags": tags,
            "commitMessage": request.commit_message,
        });
        versions.push(created);
        refresh_latest(versions);
        let created = versions.last().cloned().unwrap_or(Value::Null);
        (create_status, created)
    }

    fn answer_update(&mut self, name: &str, version: &str, body: &Value) -> (u16, Value) {
        let new_labels = match body.get("newLabels") {
            Some(value @ Value::Array(items)) if items.iter().all(Value::is_string) => {
                strings(value)
            }
            Some(other) => {
                return invalid(
                    "newLabels",
                    &format!("Expected array of strings, received {other}"),
                )
            }
            None if body.is_object() => return invalid("newLabels", "Required"),
            None => return invalid("", &format!("Expected object, received {body}")),
        };
        if new_labels.iter().any(|label| label == LATEST_LABEL) {
            return message(400, LATEST_LABEL_RESERVED);
        }
        let Ok(version) = version.parse::<i64>() else {
            return invalid(
                "version",
                &format!("Expected integer, received {version:?}"),
            );
        };
        let Some(versions) = self.prompts.get_mut(name) else {
            return message(404, &not_found_for_update(name));
        };
        let Some(position) = versions
            .iter()
            .position(|prompt| version_of(prompt) == version)
        else {
            return message(404, &not_found_for_update(name));
        };
        let target = versions.remove(position);
        let now = now_iso8601();
        move_labels_away(versions, &new_labels);
        let mut labels = new_labels;
        labels.extend(strings(&target["labels"]));
        let mut target = target;
        target["labels"] = json!(dedupe(labels));
        target["updatedAt"] = json!(now);
        versions.insert(position, target.clone());
        (200, target)
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_id)
    }
}

/// A validated `CreatePromptRequest`.
struct CreateRequest {
    name: String,
    kind: &'static str,
    prompt: Value,
    config: Value,
    labels: Vec<String>,
    tags: Option<Vec<String>>,
    commit_message: Value,
}

impl CreateRequest {
    /// The checks of Langfuse's `CreatePromptSchema`; `Err((path, message))` on the first
    /// failure.
    fn parse(body: &Value) -> Result<Self, (&'static str, String)> {
        let Some(object) = body.as_object() else {
            return Err(("", format!("Expected object, received {body}")));
        };
        let name = match object.get("name") {
            Some(Value::String(name)) => name.clone(),
            Some(other) => return Err(("name", format!("Expected string, received {other}"))),
            None => return Err(("name", "Required".into())),
        };
        check_name(&name).map_err(|message| ("name", message))?;
        let kind = match object.get("type") {
            None | Some(Value::Null) => "text",
            Some(Value::String(kind)) if kind == "text" => "text",
            Some(Value::String(kind)) if kind == "chat" => "chat",
            Some(other) => {
                let expected = "expected \"text\" or \"chat\"";
                return Err((
                    "type",
                    format!("Invalid literal value, {expected}, received {other}"),
                ));
            }
        };
        let prompt = match (kind, object.get("prompt")) {
            ("text", Some(Value::String(text))) => Value::String(text.clone()),
            ("chat", Some(Value::Array(messages))) => Value::Array(
                messages
                    .iter()
                    .enumerate()
                    .map(|(index, message)| chat_message(message).map_err(|m| (index, m)))
                    .collect::<Result<_, _>>()
                    .map_err(|(index, message)| {
                        ("prompt", format!("Message at index {index}: {message}"))
                    })?,
            ),
            (_, None) => return Err(("prompt", "Required".into())),
            ("text", Some(other)) => {
                return Err((
                    "prompt",
                    format!(
                        "Expected string for a text prompt (a chat prompt needs \"type\": \"chat\"), received {other}"
                    ),
                ))
            }
            (_, Some(other)) => {
                return Err((
                    "prompt",
                    format!("Expected array of chat messages for a chat prompt, received {other}"),
                ))
            }
        };
        let config = match object.get("config") {
            None | Some(Value::Null) => json!({}),
            Some(config) => config.clone(),
        };
        let labels = optional_strings(object, "labels")?.unwrap_or_default();
        for label in &labels {
            check_label(label).map_err(|message| ("labels", message))?;
        }
        let tags = optional_strings(object, "tags")?;
        let commit_message = match object.get("commitMessage") {
            None | Some(Value::Null) => Value::Null,
            Some(text @ Value::String(_)) => text.clone(),
            Some(other) => {
                return Err((
                    "commitMessage",
                    format!("Expected string, received {other}"),
                ))
            }
        };
        Ok(CreateRequest {
            name,
            kind,
            prompt,
            config,
            labels,
            tags,
            commit_message,
        })
    }
}

/// Langfuse's `PromptNameSchema`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Enter a name".into());
    }
    if name == "new" {
        return Err("Prompt name cannot be 'new'".into());
    }
    if name.contains('|') {
        return Err("Prompt name cannot contain '|' character".into());
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("Name cannot start or end with a slash or contain consecutive slashes".into());
    }
    Ok(())
}

/// Langfuse's `PromptLabelSchema`.
fn check_label(label: &str) -> Result<(), String> {
    let valid = !label.is_empty()
        && label.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Label {label:?} must be lowercase alphanumeric with optional underscores, hyphens, or periods"
        ))
    }
}

/// One entry of a chat prompt, as Langfuse's zod schemas keep it: a placeholder
/// `{"type": "placeholder", "name"}` or a message `{"role", "content"}` with an optional
/// `"type": "chatmessage"`; other keys are dropped.
fn chat_message(message: &Value) -> Result<Value, String> {
    let Some(object) = message.as_object() else {
        return Err(format!("Expected object, received {message}"));
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let kind = object.get("type");
    match kind.and_then(Value::as_str) {
        Some("placeholder") => match text("name") {
            Some(name) if !name.is_empty() => Ok(json!({"type": "placeholder", "name": name})),
            _ => Err("a placeholder needs a non-empty string `name`".into()),
        },
        Some("chatmessage") | None
            if kind.is_none_or(|kind| kind.is_null() || kind.is_string()) =>
        {
            let (Some(role), Some(content)) = (text("role"), text("content")) else {
                return Err("a chat message needs string `role` and `content`".into());
            };
            let mut kept = Map::new();
            kept.insert("role".into(), json!(role));
            kept.insert("content".into(), json!(content));
            if let Some(kind) = kind {
                kept.insert("type".into(), kind.clone());
            }
            Ok(Value::Object(kept))
        }
        _ => Err(format!(
            "`type` must be \"chatmessage\" or \"placeholder\", received {}",
            kind.unwrap_or(&Value::Null)
        )),
    }
}

/// An optional, nullable array of strings.
fn optional_strings(
    object: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<Vec<String>>, (&'static str, String)> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Some(strings(value)))
        }
        Some(other) => Err((key, format!("Expected array of strings, received {other}"))),
    }
}

/// The body parsed as JSON; a 400 like Next.js + zod answer when it is not JSON.
pub(super) fn json_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, (u16, Value)> {
    let media_type = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media_type != "application/json" {
        // Next.js parses only JSON bodies; anything else reaches the schema as a string.
        return Err(invalid(
            "",
            &format!("Expected object, received string (content-type {media_type:?})"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|error| message(400, &format!("Invalid JSON body: {error}")))
}

fn message(status: u16, text: &str) -> (u16, Value) {
    (status, json!({ "message": text }))
}

/// A 400 as Langfuse answers a body that fails its zod schema.
fn invalid(path: &str, detail: &str) -> (u16, Value) {
    let path: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        vec![path]
    };
    (
        400,
        json!({
            "message": INVALID_REQUEST_DATA,
            "error": [{"code": "custom", "path": path, "message": detail}],
        }),
    )
}

fn version_of(prompt: &Value) -> i64 {
    prompt["version"].as_i64().unwrap_or(0)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// In order, without repeats.
fn dedupe(items: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// Removes `labels` from every version in `versions` (labels are unique across versions).
fn move_labels_away(versions: &mut [Value], labels: &[String]) {
    let now = now_iso8601();
    for prompt in versions {
        let before = strings(&prompt["labels"]);
        let after: Vec<String> = before
            .iter()
            .filter(|label| !labels.contains(label))
            .cloned()
            .collect();
        if after.len() != before.len() {
            prompt["labels"] = json!(after);
            prompt["updatedAt"] = json!(now);
        }
    }
}

/// Puts `latest` on the newest version (the last) and nowhere else.
fn refresh_latest(versions: &mut [Value]) {
    let newest = versions.len().saturating_sub(1);
    for (position, prompt) in versions.iter_mut().enumerate() {
        let mut labels = strings(&prompt["labels"]);
        let had = labels.iter().any(|label| label == LATEST_LABEL);
        if position == newest && !had {
            labels.push(LATEST_LABEL.to_owned());
        } else if position != newest && had {
            labels.retain(|label| label != LATEST_LABEL);
        } else {
            continue;
        }
        prompt["labels"] = json!(labels);
    }
}

/// The current time as Langfuse writes it: `2026-11-25T14:44:04.123Z`.
pub(super) fn now_iso8601() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    iso8601_millis(since_epoch.as_millis() as u64)
}

/// Milliseconds since the Unix epoch as Langfuse writes them: `2026-11-25T14:44:04.123Z`.
pub(super) fn iso8601_millis(millis: u64) -> String {
    let seconds = (millis / 1000) as i64;
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        millis % 1000
    )
}
