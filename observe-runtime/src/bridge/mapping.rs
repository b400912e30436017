//! What the fields of a `tracing` span mean to Langfuse: the OpenTelemetry GenAI conventions
//! (`gen_ai.*`, as rig and genai emit them), the `langfuse.*` fields (swiftide's and Langfuse's
//! own attribute names), `otel.*`, `session.id`, `user.id` and the `error` field of
//! `#[instrument(err)]`, mapped into the observation's own fields in the client, so every
//! exporter shows the same. Every other field becomes observation metadata. The media a field's
//! text refers to go with it, as media of the input, output or metadata. Knows nothing of
//! thread-locals, the registry or export.

use std::borrow::Cow;
use std::time::Duration;

use super::fields::{FieldValue, Fields};
use crate::capture;
use crate::clock;
use crate::media::{MediaAttachment, MediaField};
use crate::record::{
    raise_level, Cost, Level, ObservationType, PromptLink, SpanData, TraceState, Usage,
};

/// What a field stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role<'a> {
    /// `otel.name`: the observation name.
    Name,
    /// `langfuse.observation.type`.
    Kind,
    /// `gen_ai.operation.name`.
    Operation,
    /// The model; the higher rank wins.
    Model(u8),
    /// One `gen_ai.request.*` parameter, by its name.
    ModelParameter(&'a str),
    /// `langfuse.observation.model.parameters`: a JSON object.
    ModelParameters,
    /// One `gen_ai.usage.*` count, by its name.
    UsageCount(&'a str),
    /// `langfuse.observation.usage_details`: a JSON object.
    UsageDetails,
    /// `gen_ai.usage.cost`: the total in USD.
    CostTotal,
    /// `langfuse.observation.cost_details`: a JSON object.
    CostDetails,
    /// The input; the higher rank wins.
    Input(u8),
    /// The output; the higher rank wins.
    Output(u8),
    /// `gen_ai.response.time_to_first_chunk`, in seconds.
    FirstChunk,
    /// `langfuse.observation.completion_start_time`: ISO-8601 text.
    CompletionStart,
    /// `langfuse.observation.level`.
    Level,
    /// `otel.status_code`.
    StatusCode,
    /// The status message.
    StatusMessage,
    /// The `error` field.
    Error,
    /// One metadata key, named apart from the field (`langfuse.observation.metadata.<key>`).
    MetadataKey(&'a str),
    /// `langfuse.observation.metadata`: a JSON object of metadata keys.
    MetadataObject,
    PromptName,
    PromptVersion,
    Session,
    User,
    TraceName,
    Tags,
    TraceMetadataKey(&'a str),
    /// `langfuse.trace.input` / `.output` (swiftide): the trace's own input and output.
    TraceInput,
    TraceOutput,
    Release,
    Version,
    Public,
    /// Read elsewhere or meaningless here (`otel.kind`).
    Ignored,
    /// Anything else: metadata under the field's own name.
    Other,
}

/// What the field `name` stands for.
fn role(name: &str) -> Role<'_> {
    if let Some(rest) = name.strip_prefix("gen_ai.") {
        return gen_ai_role(rest);
    }
    if let Some(rest) = name.strip_prefix("langfuse.observation.") {
        return langfuse_observation_role(rest);
    }
    if let Some(rest) = name.strip_prefix("langfuse.") {
        return langfuse_role(rest);
    }
    match name {
        "otel.name" => Role::Name,
        "otel.status_code" => Role::StatusCode,
        "otel.status_message" | "otel.status_description" => Role::StatusMessage,
        "otel.kind" => Role::Ignored,
        "error" => Role::Error,
        "session.id" => Role::Session,
        "user.id" => Role::User,
        _ => Role::Other,
    }
}

fn gen_ai_role(rest: &str) -> Role<'_> {
    match rest {
        "operation.name" => Role::Operation,
        "response.model" => Role::Model(2),
        "request.model" => Role::Model(1),
        "usage.cost" => Role::CostTotal,
        "input.messages" => Role::Input(3),
        "prompt" => Role::Input(2),
        "tool.call.arguments" => Role::Input(1),
        "output.messages" => Role::Output(3),
        "completion" => Role::Output(2),
        "tool.call.result" => Role::Output(1),
        "response.time_to_first_chunk" => Role::FirstChunk,
        "conversation.id" => Role::Session,
        _ => {
            if let Some(parameter) = rest.strip_prefix("request.") {
                Role::ModelParameter(parameter)
            } else if let Some(count) = rest.strip_prefix("usage.") {
                Role::UsageCount(count)
            } else {
                Role::Other
            }
        }
    }
}

/// Langfuse's own attribute names after `langfuse.observation.`.
fn langfuse_observation_role(rest: &str) -> Role<'_> {
    match rest {
        "type" => Role::Kind,
        "input" => Role::Input(9),
        "output" => Role::Output(9),
        "model.name" | "model" => Role::Model(9),
        "model.parameters" | "model_parameters" => Role::ModelParameters,
        "usage_details" | "usage" => Role::UsageDetails,
        "cost_details" | "cost" => Role::CostDetails,
        "level" => Role::Level,
        "status_message" => Role::StatusMessage,
        "metadata" => Role::MetadataObject,
        "prompt.name" => Role::PromptName,
        "prompt.version" => Role::PromptVersion,
        "completion_start_time" => Role::CompletionStart,
        _ => match rest.strip_prefix("metadata.") {
            Some(key) => Role::MetadataKey(key),
            None => Role::Other,
        },
    }
}

/// `langfuse.<rest>`: swiftide's short names, and Langfuse's trace attribute names.
fn langfuse_role(rest: &str) -> Role<'_> {
    match rest {
        "session_id" | "session.id" => Role::Session,
        "user_id" | "user.id" => Role::User,
        "trace.name" | "trace_name" => Role::TraceName,
        "trace.tags" | "tags" => Role::Tags,
        "release" => Role::Release,
        "version" => Role::Version,
        "trace.public" | "public" => Role::Public,
        "trace.input" => Role::TraceInput,
        "trace.output" => Role::TraceOutput,
        _ => {
            if let Some(key) = rest.strip_prefix("trace.metadata.") {
                Role::TraceMetadataKey(key)
            } else {
                langfuse_observation_role(rest)
            }
        }
    }
}

/// Whether the field `name` is a trace attribute (applied to the trace as soon as it is seen, so
/// that every span of the trace that ends afterwards carries it).
fn is_trace_role(role: Role<'_>) -> bool {
    matches!(
        role,
        Role::Session
            | Role::User
            | Role::TraceName
            | Role::Tags
            | Role::TraceMetadataKey(_)
            | Role::TraceInput
            | Role::TraceOutput
            | Role::Release
            | Role::Version
            | Role::Public
    )
}

/// Applies the trace attributes among the fields `names` (just recorded) to `trace`.
pub(crate) fn apply_trace_fields(fields: &Fields, names: &[&'static str], trace: &TraceState) {
    for name in names {
        let role = role(name);
        if !is_trace_role(role) {
            continue;
        }
        let Some(value) = fields.get(name) else {
            continue;
        };
        let limit = trace.options.field_limit;
        if matches!(role, Role::TraceInput | Role::TraceOutput) && !trace.options.capture_io {
            continue;
        }
        trace.update(|a| match role {
            Role::TraceInput => a.input = Some(capture::bound_field(value.io_json_text(), limit)),
            Role::TraceOutput => a.output = Some(capture::bound_field(value.io_json_text(), limit)),
            Role::Session => a.session_id = Some(value.text()),
            Role::User => a.user_id = Some(value.text()),
            Role::TraceName => a.name = Some(value.text()),
            Role::Release => a.release = Some(value.text()),
            Role::Version => a.version = Some(value.text()),
            Role::Public => a.public = value.boolean(),
            Role::Tags => {
                for tag in tags(value) {
                    if !a.tags.contains(&tag) {
                        a.tags.push(tag);
                    }
                }
            }
            Role::TraceMetadataKey(key) => {
                let json = capture::serialize_json(&value.to_json_parsed(), limit);
                a.metadata.retain(|(k, _)| k != key);
                a.metadata.push((key.to_string(), json));
            }
            _ => {}
        });
    }
}

/// Tags from a JSON array text or a comma-separated list.
fn tags(value: &FieldValue) -> Vec<String> {
    match value.to_json_parsed() {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            })
            .collect(),
        _ => value
            .text()
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// The observation type `gen_ai.operation.name` stands for.
fn operation_kind(operation: &str) -> Option<ObservationType> {
    match operation {
        "chat" | "completion" | "text_completion" | "generate_content" => {
            Some(ObservationType::Generation)
        }
        "embeddings" => Some(ObservationType::Embedding),
        "invoke_agent" | "create_agent" => Some(ObservationType::Agent),
        "execute_tool" => Some(ObservationType::Tool),
        _ => None,
    }
}

/// An observation type by its Langfuse name, in any case (`GENERATION`, `generation`).
fn kind_named(name: &str) -> Option<ObservationType> {
    ObservationType::ALL
        .into_iter()
        .find(|kind| kind.as_str().eq_ignore_ascii_case(name.trim()))
}

fn level_named(name: &str) -> Option<Level> {
    [Level::Debug, Level::Default, Level::Warning, Level::Error]
        .into_iter()
        .find(|level| level.as_str().eq_ignore_ascii_case(name.trim()))
}

/// A slot that keeps the value of the highest rank seen.
struct Ranked<'a>(Option<(u8, &'static str, &'a FieldValue)>);

impl<'a> Ranked<'a> {
    fn offer(&mut self, rank: u8, name: &'static str, value: &'a FieldValue) {
        if self.0.is_none_or(|(best, _, _)| rank > best) {
            self.0 = Some((rank, name, value));
        }
    }

    fn get(&self) -> Option<&'a FieldValue> {
        self.0.map(|(_, _, value)| value)
    }

    /// The field the value kept came from.
    fn name(&self) -> Option<&'static str> {
        self.0.map(|(_, name, _)| name)
    }
}

/// Where the observation's level and status message come from, apart from the fields.
pub(crate) struct Severity {
    pub(crate) level: Level,
    pub(crate) message: Option<String>,
}

impl Severity {
    pub(crate) const NONE: Severity = Severity {
        level: Level::Default,
        message: None,
    };

    /// Raises the level to `level` with its message; a lower or equal level changes nothing
    /// (a WARN after an ERROR leaves the ERROR).
    pub(crate) fn raise(&mut self, level: Level, message: Option<String>) {
        raise_level(&mut self.level, &mut self.message, level, message);
    }
}

/// Maps the fields of a finished span (or of an event, `is_event`) onto its record. Values set
/// through [`crate::current_observation`] win; input and output only when `capture_io`.
pub(crate) fn apply_span_fields(
    fields: &Fields,
    data: &mut SpanData,
    is_event: bool,
    capture_io: bool,
    limit: usize,
) {
    let mut name = None;
    let mut kind = None;
    let mut operation = None;
    let mut has_tool_name = false;
    let mut model = Ranked(None);
    let mut input = Ranked(None);
    let mut output = Ranked(None);
    let mut parameters = serde_json::Map::new();
    let mut parameters_object = None;
    // `gen_ai.usage.*` counts by name, read as one usage object.
    let mut usage_counts = serde_json::Map::new();
    let mut usage_object = None;
    let mut cost = None;
    let mut first_chunk = None;
    let mut completion_start = None;
    let mut severity = Severity::NONE;
    let mut declared_level = None;
    let mut status_message = None;
    let mut prompt_name = None;
    let mut prompt_version = None;
    let mut metadata: Vec<(String, String)> = Vec::new();
    let mut media: Vec<MediaAttachment> = Vec::new();
    let mut put_metadata = |key: &str, json: String| {
        metadata.retain(|(k, _)| k != key);
        metadata.push((key.to_string(), json));
    };

    for (field, value) in fields.iter() {
        if is_event && field == "message" {
            // An event's message is its name.
            continue;
        }
        match role(field) {
            Role::Name => name = Some(value.text()),
            Role::Kind => kind = kind_named(&value.text()),
            Role::Operation => operation = Some(value.text()),
            Role::Model(rank) => model.offer(rank, field, value),
            Role::Input(rank) => input.offer(rank, field, value),
            Role::Output(rank) => output.offer(rank, field, value),
            Role::ModelParameter(parameter) => {
                parameters.insert(parameter.to_string(), value.to_json_parsed());
            }
            Role::ModelParameters => parameters_object = Some(value.to_json_parsed()),
            Role::UsageCount(key) => {
                if let Some(count) = value.count() {
                    usage_counts.insert(key.to_string(), count.into());
                }
            }
            Role::UsageDetails => usage_object = Some(value.to_json_parsed()),
            Role::CostTotal => {
                if let Some(total) = value.number() {
                    cost.get_or_insert_with(Cost::default).total = Some(total);
                }
            }
            Role::CostDetails => {
                if let Some(details) = Cost::from_value(&value.to_json_parsed()) {
                    cost = Some(details);
                }
            }
            Role::FirstChunk => first_chunk = value.number(),
            Role::CompletionStart => completion_start = clock::unix_nanos_of_iso8601(&value.text()),
            Role::Level => declared_level = level_named(&value.text()),
            Role::StatusCode if value.text().eq_ignore_ascii_case("error") => {
                severity.raise(Level::Error, None);
            }
            Role::StatusCode => {}
            Role::StatusMessage => status_message = Some(value.text()),
            // An event's level is its own; its `error` field is its text (and metadata).
            Role::Error if !is_event => severity.raise(Level::Error, Some(value.text())),
            Role::MetadataKey(key) => {
                media.extend(fields.media_of(field, MediaField::Metadata));
                put_metadata(key, value.json_text())
            }
            Role::MetadataObject => {
                media.extend(fields.media_of(field, MediaField::Metadata));
                if let serde_json::Value::Object(object) = value.to_json_parsed() {
                    for (key, value) in &object {
                        put_metadata(key, capture::serialize_json(value, limit));
                    }
                }
            }
            Role::PromptName => prompt_name = Some(value.text()),
            Role::PromptVersion => prompt_version = value.count(),
            Role::Ignored => {}
            // The trace's input and output are set elsewhere; their media are this span's.
            Role::TraceInput => media.extend(fields.media_of(field, MediaField::Input)),
            Role::TraceOutput => media.extend(fields.media_of(field, MediaField::Output)),
            role if is_trace_role(role) => {}
            Role::Other | Role::Error => {
                media.extend(fields.media_of(field, MediaField::Metadata));
                if field == "gen_ai.tool.name" {
                    has_tool_name = true;
                }
                put_metadata(field, value.json_text())
            }
            _ => {}
        }
    }

    if let Some(name) = name {
        data.name = Cow::Owned(name);
    }
    let model = model.get().map(FieldValue::text);
    if !is_event && data.kind() == ObservationType::Span {
        data.set_kind(
            kind.or_else(|| operation.as_deref().and_then(operation_kind))
                .or(has_tool_name.then_some(ObservationType::Tool))
                .or(model.is_some().then_some(ObservationType::Generation))
                .unwrap_or(ObservationType::Span),
        );
    }
    if capture_io {
        if let (Some(value), false) = (input.get(), data.explicit_input()) {
            data.input = Some(value.io_json_text().into());
            media.extend(
                input
                    .name()
                    .map(|name| fields.media_of(name, MediaField::Input))
                    .unwrap_or_default(),
            );
        }
        if let (Some(value), false) = (output.get(), data.explicit_output()) {
            data.output = Some(value.io_json_text().into());
            media.extend(
                output
                    .name()
                    .map(|name| fields.media_of(name, MediaField::Output))
                    .unwrap_or_default(),
            );
        }
    }
    let status_message = status_message.or(severity.message.take());
    if severity.level > data.level() && severity.level > Level::Default {
        data.set_level(severity.level);
    }
    if let (true, Some(message)) = (data.status_message().is_none(), status_message) {
        *data.status_message_mut() = Some(message);
    }
    // `langfuse.observation.level` is the level, unless something raised it already.
    if let (Some(level), Level::Default) = (declared_level, data.level()) {
        data.set_level(level);
    }

    let parameters = parameters_object
        .or_else(|| (!parameters.is_empty()).then_some(serde_json::Value::Object(parameters)));
    let usage = usage_object
        .filter(serde_json::Value::is_object)
        .map(|object| Usage::from_value(&object))
        .or_else(|| {
            (!usage_counts.is_empty())
                .then(|| Usage::from_value(&serde_json::Value::Object(usage_counts)))
        });
    let first_chunk = first_chunk
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
    let prompt = match (prompt_name, prompt_version) {
        (Some(name), Some(version)) => u32::try_from(version)
            .ok()
            .map(|version| PromptLink { name, version }),
        _ => None,
    };
    let nothing_else = model.is_none()
        && parameters.is_none()
        && usage.is_none()
        && cost.is_none()
        && first_chunk.is_none()
        && completion_start.is_none()
        && prompt.is_none()
        && metadata.is_empty();
    if !media.is_empty() {
        data.details().media.extend(media);
    }
    if nothing_else {
        return;
    }
    let start = data.start;
    let details = data.details();
    if details.model.is_none() {
        details.model = model;
    }
    if details.model_parameters.is_none() {
        details.model_parameters = parameters.map(|p| capture::serialize_json(&p, limit));
    }
    if details.usage.is_none() {
        details.usage = usage;
    }
    if details.cost.is_none() {
        details.cost = cost;
    }
    if details.completion_start_unix_nanos.is_none() && details.first_item.is_none() {
        details.completion_start_unix_nanos = completion_start;
        details.first_item = first_chunk.map(|after| start.after(after));
    }
    if details.prompt.is_none() {
        details.prompt = prompt;
    }
    for (key, value) in metadata {
        // A key set through the handle wins.
        if !details.metadata.iter().any(|(k, _)| *k == key) {
            details.metadata.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_observation_types() {
        assert_eq!(operation_kind("chat"), Some(ObservationType::Generation));
        assert_eq!(
            operation_kind("generate_content"),
            Some(ObservationType::Generation)
        );
        assert_eq!(
            operation_kind("embeddings"),
            Some(ObservationType::Embedding)
        );
        assert_eq!(operation_kind("create_agent"), Some(ObservationType::Agent));
        assert_eq!(operation_kind("execute_tool"), Some(ObservationType::Tool));
        assert_eq!(operation_kind("dance"), None);
        assert_eq!(kind_named("GENERATION"), Some(ObservationType::Generation));
    }

    #[test]
    fn langfuse_names_outrank_the_conventions() {
        assert_eq!(role("langfuse.observation.model.name"), Role::Model(9));
        assert_eq!(role("langfuse.model"), Role::Model(9));
        assert_eq!(role("gen_ai.response.model"), Role::Model(2));
        assert_eq!(role("langfuse.session_id"), Role::Session);
        assert_eq!(
            role("gen_ai.request.temperature"),
            Role::ModelParameter("temperature")
        );
        assert_eq!(
            role("gen_ai.usage.cache_read_input_tokens"),
            Role::UsageCount("cache_read_input_tokens")
        );
        assert_eq!(role("langfuse.metadata.step"), Role::MetadataKey("step"));
        assert_eq!(role("http.method"), Role::Other);
    }

    #[test]
    fn a_warning_does_not_lower_an_error() {
        let mut severity = Severity::NONE;
        severity.raise(Level::Error, Some("boom".into()));
        severity.raise(Level::Warning, Some("slow".into()));
        assert_eq!(severity.level, Level::Error);
        assert_eq!(severity.message.as_deref(), Some("boom"));
    }
}
