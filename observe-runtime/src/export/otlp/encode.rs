//! Spans, their attributes and the envelope as protobuf, written straight into a reused buffer.

use crate::clock::iso8601;
use crate::record::FinishedSpan;
use crate::record::{ExperimentAttributes, Level, ObservationType};

use super::wire::{self, bytes, close, field_len, fixed32, fixed64, header, open, string, uint};

// Field numbers of the official .proto files.
/// `ExportTraceServiceRequest.resource_spans`.
pub(super) const REQUEST_RESOURCE_SPANS: u32 = 1;
/// `ResourceSpans.resource`, `.scope_spans`.
pub(super) const RESOURCE_SPANS_RESOURCE: u32 = 1;
pub(super) const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
/// `Resource.attributes`.
pub(super) const RESOURCE_ATTRIBUTES: u32 = 1;
/// `ScopeSpans.scope`, `.spans`.
pub(super) const SCOPE_SPANS_SCOPE: u32 = 1;
pub(super) const SCOPE_SPANS_SPANS: u32 = 2;
/// `InstrumentationScope.name`, `.version`.
pub(super) const SCOPE_NAME_FIELD: u32 = 1;
pub(super) const SCOPE_VERSION_FIELD: u32 = 2;
/// `Span` fields.
pub(super) const SPAN_TRACE_ID: u32 = 1;
pub(super) const SPAN_SPAN_ID: u32 = 2;
pub(super) const SPAN_PARENT_SPAN_ID: u32 = 4;
pub(super) const SPAN_NAME: u32 = 5;
pub(super) const SPAN_KIND: u32 = 6;
pub(super) const SPAN_START_TIME: u32 = 7;
pub(super) const SPAN_END_TIME: u32 = 8;
pub(super) const SPAN_ATTRIBUTES: u32 = 9;
pub(super) const SPAN_STATUS: u32 = 15;
pub(super) const SPAN_FLAGS: u32 = 16;
/// `Status.message`, `.code`.
pub(super) const STATUS_MESSAGE: u32 = 2;
pub(super) const STATUS_CODE: u32 = 3;
/// `KeyValue.key`, `.value`.
pub(super) const KEY_VALUE_KEY: u32 = 1;
pub(super) const KEY_VALUE_VALUE: u32 = 2;
/// `AnyValue` oneof: `string_value`, `bool_value`, `int_value`, `array_value`.
pub(super) const ANY_STRING: u32 = 1;
pub(super) const ANY_BOOL: u32 = 2;
pub(super) const ANY_INT: u32 = 3;
pub(super) const ANY_ARRAY: u32 = 5;
/// `ArrayValue.values`.
pub(super) const ARRAY_VALUES: u32 = 1;

pub(super) const SPAN_KIND_INTERNAL: i32 = 1;
pub(super) const STATUS_CODE_ERROR: i32 = 2;
/// W3C trace flags: sampled. Bit 8 (0x100) says the "is remote" bit below is known.
pub(super) const FLAGS_SAMPLED: u32 = 0x01 | 0x100;
pub(super) const FLAGS_PARENT_IS_REMOTE: u32 = 0x200;

/// The instrumentation scope name of the official SDKs.
pub(crate) const SCOPE_NAME: &str = "langfuse-sdk";
/// This crate's version, sent as the scope version and `x-langfuse-sdk-version`.
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The length of the `InstrumentationScope` message.
pub(super) const SCOPE_LEN: usize = field_len(SCOPE_NAME_FIELD, SCOPE_NAME.len())
    + field_len(SCOPE_VERSION_FIELD, SDK_VERSION.len());

/// An attribute value (`AnyValue`).
#[derive(Clone, Copy)]
pub(super) enum Value<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Strs(&'a [String]),
}

impl Value<'_> {
    /// The length of the `AnyValue` message. A oneof field is written even when it holds the
    /// default (`""`, `false`, `0`).
    #[inline]
    fn encoded_len(self) -> usize {
        match self {
            Value::Str(s) => field_len(ANY_STRING, s.len()),
            Value::Bool(_) => 2,
            Value::Int(i) => 1 + wire::varint_len(i as u64),
            Value::Strs(items) => field_len(ANY_ARRAY, array_len(items)),
        }
    }

    #[inline]
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Value::Str(s) => string(out, ANY_STRING, s),
            Value::Bool(b) => uint(out, ANY_BOOL, u64::from(b)),
            Value::Int(i) => uint(out, ANY_INT, i as u64),
            Value::Strs(items) => {
                header(out, ANY_ARRAY, array_len(items));
                for item in items {
                    header(out, ARRAY_VALUES, field_len(ANY_STRING, item.len()));
                    string(out, ANY_STRING, item);
                }
            }
        }
    }
}

/// The length of an `ArrayValue` of strings.
pub(super) fn array_len(items: &[String]) -> usize {
    items
        .iter()
        .map(|item| field_len(ARRAY_VALUES, field_len(ANY_STRING, item.len())))
        .sum()
}

/// A `KeyValue` as field `field`, its key `prefix` followed by `key`.
#[inline]
pub(super) fn key_value(out: &mut Vec<u8>, field: u32, prefix: &str, key: &str, value: Value<'_>) {
    let key_len = prefix.len() + key.len();
    let value_len = value.encoded_len();
    let key_field_len = if key_len == 0 {
        0
    } else {
        field_len(KEY_VALUE_KEY, key_len)
    };
    header(
        out,
        field,
        key_field_len + field_len(KEY_VALUE_VALUE, value_len),
    );
    if key_len != 0 {
        header(out, KEY_VALUE_KEY, key_len);
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(key.as_bytes());
    }
    header(out, KEY_VALUE_VALUE, value_len);
    value.write(out);
}

/// What every span and the resource carry from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// The resource attributes, in order, for the prost encoder the writer is checked against.
    #[cfg(test)]
    pub(super) resource_attributes: Vec<(String, String)>,
    /// `ResourceSpans.resource` as protobuf (tag, length, message), written once.
    resource: Vec<u8>,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
}

impl Envelope {
    pub(crate) fn new(
        service_name: &str,
        extra: &[(String, String)],
        environment: Option<String>,
        release: Option<String>,
    ) -> Self {
        let pair = |key: &str, value: &str| (key.to_string(), value.to_string());
        let mut attributes = vec![
            pair("service.name", service_name),
            pair("telemetry.sdk.language", "rust"),
            pair("telemetry.sdk.name", "observe"),
            pair("telemetry.sdk.version", SDK_VERSION),
        ];
        if let Some(environment) = &environment {
            attributes.push(pair("deployment.environment.name", environment));
        }
        if let Some(release) = &release {
            attributes.push(pair("langfuse.release", release));
        }
        for (key, value) in extra {
            if !attributes.iter().any(|(k, _)| k == key) {
                attributes.push(pair(key, value));
            }
        }
        let mut message = Vec::new();
        for (key, value) in &attributes {
            key_value(
                &mut message,
                RESOURCE_ATTRIBUTES,
                "",
                key,
                Value::Str(value),
            );
        }
        let mut resource = Vec::with_capacity(message.len() + 8);
        header(&mut resource, RESOURCE_SPANS_RESOURCE, message.len());
        resource.extend_from_slice(&message);
        Self {
            #[cfg(test)]
            resource_attributes: attributes,
            resource,
            environment,
            release,
        }
    }
}

/// A span attribute.
#[inline]
pub(super) fn attribute(out: &mut Vec<u8>, key: &str, value: Value<'_>) {
    key_value(out, SPAN_ATTRIBUTES, "", key, value);
}

/// A string span attribute when the value is set.
#[inline]
pub(super) fn optional(out: &mut Vec<u8>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        attribute(out, key, Value::Str(value));
    }
}

/// The attributes of a finished observation, every Langfuse attribute it has, in this order.
pub(super) fn attributes(out: &mut Vec<u8>, record: &FinishedSpan, envelope: &Envelope) {
    attribute(
        out,
        "langfuse.observation.type",
        Value::Str(record.kind.as_str()),
    );
    optional(out, "langfuse.observation.input", &record.input);
    optional(out, "langfuse.observation.output", &record.output);
    optional(
        out,
        "langfuse.observation.status_message",
        &record.status_message,
    );
    optional(out, "langfuse.observation.model.name", &record.model);
    optional(
        out,
        "langfuse.observation.model.parameters",
        &record.model_parameters,
    );
    if record.level != Level::Default {
        attribute(
            out,
            "langfuse.observation.level",
            Value::Str(record.level.as_str()),
        );
    }
    if let Some(usage) = &record.usage {
        attribute(
            out,
            "langfuse.observation.usage_details",
            Value::Str(&usage.to_json()),
        );
    }
    if let Some(cost) = &record.cost {
        attribute(
            out,
            "langfuse.observation.cost_details",
            Value::Str(&cost.to_json()),
        );
    }
    if let Some(at) = record.completion_start_unix_nanos {
        let text = iso8601(at);
        let text = std::str::from_utf8(&text).expect("an ISO-8601 time is ASCII");
        attribute(
            out,
            "langfuse.observation.completion_start_time",
            Value::Str(text),
        );
    }
    if let (Some(prompt), ObservationType::Generation) = (&record.prompt, record.kind) {
        attribute(
            out,
            "langfuse.observation.prompt.name",
            Value::Str(&prompt.name),
        );
        attribute(
            out,
            "langfuse.observation.prompt.version",
            Value::Int(i64::from(prompt.version)),
        );
    }
    for (key, json) in &record.metadata {
        key_value(
            out,
            SPAN_ATTRIBUTES,
            "langfuse.observation.metadata.",
            key,
            Value::Str(json),
        );
    }

    // Trace attributes go on every span: Langfuse keeps only what each span carries.
    let trace = &record.trace;
    optional(out, "langfuse.trace.name", &trace.name);
    optional(out, "user.id", &trace.user_id);
    optional(out, "session.id", &trace.session_id);
    if !trace.tags.is_empty() {
        attribute(out, "langfuse.trace.tags", Value::Strs(&trace.tags));
    }
    for (key, json) in &trace.metadata {
        key_value(
            out,
            SPAN_ATTRIBUTES,
            "langfuse.trace.metadata.",
            key,
            Value::Str(json),
        );
    }
    if let Some(public) = trace.public {
        attribute(out, "langfuse.trace.public", Value::Bool(public));
    }
    optional(out, "langfuse.trace.input", &trace.input);
    optional(out, "langfuse.trace.output", &trace.output);
    if let Some(release) = trace.release.as_ref().or(envelope.release.as_ref()) {
        attribute(out, "langfuse.release", Value::Str(release));
    }
    optional(out, "langfuse.version", &trace.version);
    match &trace.experiment {
        Some(experiment) => {
            experiment_attributes(out, experiment, record.experiment_item);
            attribute(
                out,
                "langfuse.environment",
                Value::Str(EXPERIMENT_ENVIRONMENT),
            );
        }
        None => optional(out, "langfuse.environment", &envelope.environment),
    }
}

/// The environment of every span of an experiment item, as the Python SDK sends it.
pub(super) const EXPERIMENT_ENVIRONMENT: &str = "sdk-experiment";

/// The experiment attributes of the Python SDK 5.x, on every span of an item's trace; the run's
/// description and the item's expected output only on its run and task observations.
pub(super) fn experiment_attributes(
    out: &mut Vec<u8>,
    experiment: &ExperimentAttributes,
    item_span: bool,
) {
    attribute(out, "langfuse.experiment.id", Value::Str(&experiment.id));
    attribute(
        out,
        "langfuse.experiment.name",
        Value::Str(&experiment.name),
    );
    optional(out, "langfuse.experiment.metadata", &experiment.metadata);
    optional(
        out,
        "langfuse.experiment.dataset.id",
        &experiment.dataset_id,
    );
    attribute(
        out,
        "langfuse.experiment.item.id",
        Value::Str(&experiment.item_id),
    );
    optional(
        out,
        "langfuse.experiment.item.metadata",
        &experiment.item_metadata,
    );
    optional(
        out,
        "langfuse.experiment.item.root_observation_id",
        &experiment.item_root_observation_id,
    );
    if item_span {
        optional(
            out,
            "langfuse.experiment.description",
            &experiment.description,
        );
        optional(
            out,
            "langfuse.experiment.item.expected_output",
            &experiment.item_expected_output,
        );
    }
}

/// The OTLP `Span` of a finished observation, as a `ScopeSpans.spans` field. Fields holding
/// their default are left out, as protobuf encoders do.
pub(super) fn span(out: &mut Vec<u8>, record: &FinishedSpan, envelope: &Envelope) {
    let start = open(out, SCOPE_SPANS_SPANS);
    bytes(out, SPAN_TRACE_ID, &record.trace_id.to_bytes());
    bytes(out, SPAN_SPAN_ID, &record.span_id.to_bytes());
    if let Some(parent) = record.parent_span_id {
        bytes(out, SPAN_PARENT_SPAN_ID, &parent.to_bytes());
    }
    if !record.name.is_empty() {
        string(out, SPAN_NAME, &record.name);
    }
    uint(out, SPAN_KIND, SPAN_KIND_INTERNAL as u64);
    if record.start_unix_nanos != 0 {
        fixed64(out, SPAN_START_TIME, record.start_unix_nanos);
    }
    if record.end_unix_nanos != 0 {
        fixed64(out, SPAN_END_TIME, record.end_unix_nanos);
    }
    attributes(out, record, envelope);
    if record.level == Level::Error {
        let message = record.status_message.as_deref().unwrap_or_default();
        let message_len = if message.is_empty() {
            0
        } else {
            field_len(STATUS_MESSAGE, message.len())
        };
        header(out, SPAN_STATUS, message_len + 2);
        if !message.is_empty() {
            string(out, STATUS_MESSAGE, message);
        }
        uint(out, STATUS_CODE, STATUS_CODE_ERROR as u64);
    }
    let remote_parent = record.is_local_root && record.parent_span_id.is_some();
    let flags = FLAGS_SAMPLED
        | if remote_parent {
            FLAGS_PARENT_IS_REMOTE
        } else {
            0
        };
    fixed32(out, SPAN_FLAGS, flags);
    close(out, start);
}

/// A rough upper bound of a span's encoded size, for batching by bytes.
pub(crate) fn estimated_size(record: &FinishedSpan) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    512 + record.name.len()
        + text(&record.input)
        + text(&record.output)
        + text(&record.status_message)
        + text(&record.model_parameters)
        + record
            .metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
        + text(&record.model)
        + record.prompt.as_ref().map_or(0, |p| p.name.len() + 64)
        + record
            .usage
            .as_ref()
            .map_or(0, |u| 128 + u.details.len() * 48)
        + record
            .cost
            .as_ref()
            .map_or(0, |c| 128 + c.details.len() * 48)
        + trace_attributes_size(&record.trace)
}

/// What the trace attributes add to every span of the trace (they are copied onto each).
pub(super) fn trace_attributes_size(trace: &crate::record::TraceAttributes) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 32);
    text(&trace.name)
        + text(&trace.user_id)
        + text(&trace.session_id)
        + text(&trace.release)
        + text(&trace.version)
        + trace.tags.iter().map(|t| t.len() + 8).sum::<usize>()
        + trace.experiment.as_ref().map_or(0, |e| {
            512 + e.id.len()
                + e.name.len()
                + e.item_id.len()
                + [
                    &e.description,
                    &e.metadata,
                    &e.dataset_id,
                    &e.item_metadata,
                    &e.item_expected_output,
                ]
                .iter()
                .map(|text| text.as_ref().map_or(0, String::len))
                .sum::<usize>()
        })
        + trace
            .metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
}

/// One request body into `out` (cleared first): the spans under one resource and scope, as
/// protobuf.
pub(crate) fn encode(out: &mut Vec<u8>, batch: &[FinishedSpan], envelope: &Envelope) {
    out.clear();
    let resource_spans = open(out, REQUEST_RESOURCE_SPANS);
    out.extend_from_slice(&envelope.resource);
    let scope_spans = open(out, RESOURCE_SPANS_SCOPE_SPANS);
    header(out, SCOPE_SPANS_SCOPE, SCOPE_LEN);
    string(out, SCOPE_NAME_FIELD, SCOPE_NAME);
    string(out, SCOPE_VERSION_FIELD, SDK_VERSION);
    for record in batch {
        span(out, record, envelope);
    }
    close(out, scope_spans);
    close(out, resource_spans);
}

/// Gzip at level 1, as the official SDKs send: the compressor and the buffer of the gzipped
/// body are kept between bodies. (A compressor made per body cleared about 320 KB of zlib's
/// tables each time, more bytes than the body itself; a kept one clears its hash table only.)
#[derive(Default)]
pub(crate) struct Gzip {
    compressor: Option<flate2::Compress>,
    out: Vec<u8>,
}

impl Gzip {
    /// Gzips `body`; [`Self::bytes`] then holds it.
    pub(crate) fn zip(&mut self, body: &[u8]) -> Result<(), String> {
        let compressor = self
            .compressor
            .get_or_insert_with(|| flate2::Compress::new_gzip(flate2::Compression::fast(), 15));
        self.out.clear();
        // Protobuf of spans shrinks to about a tenth; grown as needed.
        self.out.reserve(body.len() / 4 + 64);
        let zipped = loop {
            let read = usize::try_from(compressor.total_in()).unwrap_or(usize::MAX);
            let rest = body.get(read..).unwrap_or_default();
            match compressor.compress_vec(rest, &mut self.out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => break Ok(()),
                // Stopped for room (never with room left: then it is stuck).
                Ok(flate2::Status::Ok | flate2::Status::BufError)
                    if self.out.len() == self.out.capacity() =>
                {
                    self.out.reserve(self.out.capacity().max(64));
                }
                Ok(flate2::Status::Ok) => {}
                Ok(flate2::Status::BufError) => break Err("gzip: no progress".to_string()),
                Err(e) => break Err(format!("gzip: {e}")),
            }
        };
        match zipped {
            // Ready for the next body.
            Ok(()) => compressor.reset(),
            // Made anew for the next body.
            Err(_) => self.compressor = None,
        }
        zipped
    }

    /// The last body gzipped.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.out
    }
}

/// The exporter benchmark: `spans` typical spans encoded into one request body (gzipped or
/// not); returns its length. The buffers are kept between calls, as the sink keeps them between
/// requests.
pub(crate) fn bench_encode(spans: usize, gzipped: bool) -> usize {
    thread_local! {
        static BUFFERS: std::cell::RefCell<(Vec<u8>, Gzip)> = Default::default();
    }
    let (batch, envelope) = bench_batch(spans);
    BUFFERS.with_borrow_mut(|(body, gzip)| {
        encode(body, &batch, &envelope);
        if gzipped {
            gzip.zip(body).map_or(0, |()| gzip.bytes().len())
        } else {
            body.len()
        }
    })
}

/// The typical batch of the benchmark: `spans` spans of one trace, each with a 40-byte input and
/// output and two metadata keys.
pub(super) fn bench_batch(spans: usize) -> (Vec<FinishedSpan>, Envelope) {
    use std::sync::Arc;

    use crate::ids::{ObservationId, TraceId};
    use crate::record::TraceAttributes;

    let envelope = Envelope::new("bench", &[], Some("production".into()), None);
    let trace = Arc::new(TraceAttributes {
        session_id: Some("session-42".into()),
        user_id: Some("user-7".into()),
        ..Default::default()
    });
    let trace_id = TraceId::from_seed("bench");
    let batch: Vec<FinishedSpan> = (0..spans)
        .map(|i| {
            let id = |n: u64| ObservationId::from_bytes((n + 1).to_be_bytes());
            FinishedSpan {
                trace_id,
                span_id: id(i as u64 + 1).unwrap_or_else(ObservationId::random),
                parent_span_id: id(0),
                is_local_root: false,
                name: "retrieve".into(),
                kind: ObservationType::Span,
                start_unix_nanos: 1_764_081_844_123_456_789 + i as u64 * 1_000,
                end_unix_nanos: 1_764_081_844_123_556_789 + i as u64 * 1_000,
                input: Some(r#"{"query":"what is the capital of France"}"#.into()),
                output: Some(r#"["doc about the capital of France"]"#.into()),
                level: Level::Default,
                status_message: None,
                model: None,
                model_parameters: None,
                usage: None,
                cost: None,
                completion_start_unix_nanos: None,
                prompt: None,
                metadata: vec![
                    ("step".into(), "3".into()),
                    ("source".into(), "\"wiki\"".into()),
                ],
                trace: trace.clone(),
                experiment_item: false,
                media: Vec::new(),
            }
        })
        .collect();
    (batch, envelope)
}
