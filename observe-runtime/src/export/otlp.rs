//! Finished spans → an OTLP `ExportTraceServiceRequest` in protobuf. The Langfuse attribute names
//! live here and nowhere else (the wire doc, section 2).
//!
//! The protobuf is written straight into a buffer the sink keeps between requests: no message
//! structs, no allocation per span or attribute (but for the usage and cost JSON of a generation,
//! made by `to_json`). A message whose length is known before it is written (a key-value, an
//! attribute value, the status, the scope) gets its exact length first; one whose length is not
//! (a span, the scope spans, the resource spans) gets five bytes reserved and filled in afterwards
//! with a padded varint (`0x85 0x80 0x80 0x80 0x00` is 5), which every protobuf decoder accepts.
//! Field numbers and types are those of the official opentelemetry-proto files
//! (collector/trace/v1, trace/v1, common/v1, resource/v1).

use std::collections::HashSet;

use super::media_upload::{uploads_of, MediaUploader, Upload};
use crate::clock::iso8601;
use crate::record::FinishedSpan;
use crate::record::{ExperimentAttributes, Level, ObservationType};

/// The protobuf wire format, written into a `Vec<u8>`.
mod wire {
    const VARINT: u32 = 0;
    const I64: u32 = 1;
    const LEN: u32 = 2;
    const I32: u32 = 5;
    /// The bytes reserved for a length written afterwards: a 5-byte varint holds 35 bits.
    const RESERVED: usize = 5;

    /// How many bytes `value` takes as a varint.
    #[inline]
    pub(super) const fn varint_len(value: u64) -> usize {
        // One byte per started group of seven bits.
        ((((value | 1).leading_zeros() ^ 63) * 9 + 73) / 64) as usize
    }

    /// How many bytes a length-delimited field `field` of `len` bytes takes.
    #[inline]
    pub(super) const fn field_len(field: u32, len: usize) -> usize {
        varint_len((field << 3) as u64) + varint_len(len as u64) + len
    }

    #[inline]
    pub(super) fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push(value as u8 | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    #[inline]
    fn tag(out: &mut Vec<u8>, field: u32, wire_type: u32) {
        varint(out, u64::from(field << 3 | wire_type));
    }

    /// An `int32`, `int64`, `uint*` or `bool` field (negative numbers take ten bytes, as in
    /// protobuf).
    #[inline]
    pub(super) fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
        tag(out, field, VARINT);
        varint(out, value);
    }

    #[inline]
    pub(super) fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
        tag(out, field, I64);
        out.extend_from_slice(&value.to_le_bytes());
    }

    #[inline]
    pub(super) fn fixed32(out: &mut Vec<u8>, field: u32, value: u32) {
        tag(out, field, I32);
        out.extend_from_slice(&value.to_le_bytes());
    }

    /// The tag and length of a length-delimited field; the caller writes exactly `len` bytes.
    #[inline]
    pub(super) fn header(out: &mut Vec<u8>, field: u32, len: usize) {
        tag(out, field, LEN);
        varint(out, len as u64);
    }

    #[inline]
    pub(super) fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
        header(out, field, value.len());
        out.extend_from_slice(value);
    }

    #[inline]
    pub(super) fn string(out: &mut Vec<u8>, field: u32, value: &str) {
        bytes(out, field, value.as_bytes());
    }

    /// Starts a message field whose length is not known yet; [`close`] it with what this returns.
    #[inline]
    pub(super) fn open(out: &mut Vec<u8>, field: u32) -> usize {
        tag(out, field, LEN);
        out.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
        out.len()
    }

    /// Writes the length of the message [`open`]ed at `start` as a padded 5-byte varint.
    #[inline]
    pub(super) fn close(out: &mut [u8], start: usize) {
        let len = (out.len() - start) as u64;
        assert!(len < 1 << 35, "protobuf message of {len} bytes");
        let reserved = &mut out[start - RESERVED..start];
        for (i, byte) in reserved[..4].iter_mut().enumerate() {
            *byte = (len >> (7 * i)) as u8 | 0x80;
        }
        reserved[4] = (len >> 28) as u8;
    }
}

use wire::{bytes, close, field_len, fixed32, fixed64, header, open, string, uint};

// Field numbers of the official .proto files.
/// `ExportTraceServiceRequest.resource_spans`.
const REQUEST_RESOURCE_SPANS: u32 = 1;
/// `ResourceSpans.resource`, `.scope_spans`.
const RESOURCE_SPANS_RESOURCE: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
/// `Resource.attributes`.
const RESOURCE_ATTRIBUTES: u32 = 1;
/// `ScopeSpans.scope`, `.spans`.
const SCOPE_SPANS_SCOPE: u32 = 1;
const SCOPE_SPANS_SPANS: u32 = 2;
/// `InstrumentationScope.name`, `.version`.
const SCOPE_NAME_FIELD: u32 = 1;
const SCOPE_VERSION_FIELD: u32 = 2;
/// `Span` fields.
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START_TIME: u32 = 7;
const SPAN_END_TIME: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_STATUS: u32 = 15;
const SPAN_FLAGS: u32 = 16;
/// `Status.message`, `.code`.
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
/// `KeyValue.key`, `.value`.
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
/// `AnyValue` oneof: `string_value`, `bool_value`, `int_value`, `array_value`.
const ANY_STRING: u32 = 1;
const ANY_BOOL: u32 = 2;
const ANY_INT: u32 = 3;
const ANY_ARRAY: u32 = 5;
/// `ArrayValue.values`.
const ARRAY_VALUES: u32 = 1;

const SPAN_KIND_INTERNAL: i32 = 1;
const STATUS_CODE_ERROR: i32 = 2;
/// W3C trace flags: sampled. Bit 8 (0x100) says the "is remote" bit below is known.
const FLAGS_SAMPLED: u32 = 0x01 | 0x100;
const FLAGS_PARENT_IS_REMOTE: u32 = 0x200;

/// The instrumentation scope name of the official SDKs.
pub(crate) const SCOPE_NAME: &str = "langfuse-sdk";
/// This crate's version, sent as the scope version and `x-langfuse-sdk-version`.
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The length of the `InstrumentationScope` message.
const SCOPE_LEN: usize = field_len(SCOPE_NAME_FIELD, SCOPE_NAME.len())
    + field_len(SCOPE_VERSION_FIELD, SDK_VERSION.len());

/// An attribute value (`AnyValue`).
#[derive(Clone, Copy)]
enum Value<'a> {
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
fn array_len(items: &[String]) -> usize {
    items
        .iter()
        .map(|item| field_len(ARRAY_VALUES, field_len(ANY_STRING, item.len())))
        .sum()
}

/// A `KeyValue` as field `field`, its key `prefix` followed by `key`.
#[inline]
fn key_value(out: &mut Vec<u8>, field: u32, prefix: &str, key: &str, value: Value<'_>) {
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
    resource_attributes: Vec<(String, String)>,
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
fn attribute(out: &mut Vec<u8>, key: &str, value: Value<'_>) {
    key_value(out, SPAN_ATTRIBUTES, "", key, value);
}

/// A string span attribute when the value is set.
#[inline]
fn optional(out: &mut Vec<u8>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        attribute(out, key, Value::Str(value));
    }
}

/// The attributes of a finished observation, every Langfuse attribute it has, in this order.
fn attributes(out: &mut Vec<u8>, record: &FinishedSpan, envelope: &Envelope) {
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
const EXPERIMENT_ENVIRONMENT: &str = "sdk-experiment";

/// The experiment attributes of the Python SDK 5.x, on every span of an item's trace; the run's
/// description and the item's expected output only on its run and task observations.
fn experiment_attributes(out: &mut Vec<u8>, experiment: &ExperimentAttributes, item_span: bool) {
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
fn span(out: &mut Vec<u8>, record: &FinishedSpan, envelope: &Envelope) {
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
fn trace_attributes_size(trace: &crate::record::TraceAttributes) -> usize {
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

/// Gzip at level 1, as the official SDKs send, into `out` (its allocation reused).
fn gzip(body: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    use std::io::Write as _;
    let mut buffer = std::mem::take(out);
    buffer.clear();
    let mut encoder = flate2::write::GzEncoder::new(buffer, flate2::Compression::fast());
    encoder.write_all(body).map_err(|e| format!("gzip: {e}"))?;
    *out = encoder.finish().map_err(|e| format!("gzip: {e}"))?;
    Ok(())
}

use super::auth::{AuthCheck, AuthError};
use super::scores;
use super::sink::{Failure, ScoresSent, Sink};
use super::spool::{Sent, Spool};
use super::transport::{Delivery, Transport};
use super::waiter::Waiter;
use crate::record::FinishedScore;

/// The OTLP/HTTP sink: encode, gzip, post; with a spool, what cannot be delivered is kept on disk.
pub(crate) struct OtlpSink {
    transport: Transport,
    /// Uploads the media of each batch before it is sent.
    media: MediaUploader,
    envelope: Envelope,
    /// The protobuf of the current request; kept between requests.
    body: Vec<u8>,
    /// The gzipped body of the current request; kept between requests.
    gzip_buffer: Vec<u8>,
    spool: Option<Spool>,
    /// The media of the last batch sent that were registered (and uploaded, or known), by
    /// observation and media id: a batch the deadline then leaves to the spool goes without them.
    media_done: HashSet<(String, String)>,
}

impl OtlpSink {
    pub(crate) fn new(transport: Transport, envelope: Envelope, spool: Option<Spool>) -> Self {
        Self {
            media: MediaUploader::new(transport.counters()),
            transport,
            envelope,
            body: Vec::new(),
            gzip_buffer: Vec::new(),
            spool,
            media_done: HashSet::new(),
        }
    }

    /// Uploads the media of `batch`; returns those to try again later.
    fn upload_media(&mut self, batch: &[FinishedSpan], waiter: &mut Waiter) -> Vec<Upload> {
        self.media_done.clear();
        let uploads = uploads_of(batch);
        if uploads.is_empty() {
            return uploads;
        }
        let keys: Vec<(String, String)> = uploads
            .iter()
            .map(|u| (u.observation_id.clone(), u.media.media_id.clone()))
            .collect();
        let later = self.media.upload(&self.transport, uploads, waiter);
        self.media_done.extend(keys);
        for upload in &later {
            self.media_done
                .remove(&(upload.observation_id.clone(), upload.media.media_id.clone()));
        }
        later
    }
}

impl Sink for OtlpSink {
    fn export(&mut self, batch: Vec<FinishedSpan>, waiter: &mut Waiter) -> Result<(), Failure> {
        self.resume(waiter);
        let media_later = self.upload_media(&batch, waiter);
        encode(&mut self.body, &batch, &self.envelope);
        gzip(&self.body, &mut self.gzip_buffer).map_err(Failure::Lost)?;
        match self.transport.post(&self.gzip_buffer, waiter) {
            Ok(()) => Ok(()),
            Err(Delivery::Lost(reason)) => Err(Failure::Lost(reason)),
            Err(Delivery::GaveUp(reason)) => match self.spool.as_mut() {
                Some(spool) => match spool.keep(&self.gzip_buffer, batch.len(), &media_later) {
                    Ok(()) => Err(Failure::Spooled(reason)),
                    Err(problem) => Err(Failure::Lost(format!("{reason}; {problem}"))),
                },
                None => Err(Failure::Lost(reason)),
            },
            Err(Delivery::Deadline(reason)) => Err(Failure::Deadline(reason, batch)),
            Err(Delivery::Unanswered(reason)) => Err(Failure::Unanswered(reason)),
        }
    }

    fn resume(&mut self, waiter: &mut Waiter) {
        let (Some(spool), transport, media) =
            (self.spool.as_mut(), &mut self.transport, &mut self.media)
        else {
            return;
        };
        if spool.due() {
            spool.send_waiting(|batch| {
                // As a live batch: its media first, then its spans.
                let failures = media.try_upload(transport, batch.media, waiter);
                let sent = match transport.post_once(&batch.body, waiter) {
                    Ok(()) => Sent::Delivered,
                    Err(Delivery::Lost(reason)) => Sent::Refused(reason),
                    // An unanswered copy may have been stored: sent again later, a duplicate rather
                    // than a loss.
                    Err(
                        Delivery::GaveUp(reason)
                        | Delivery::Deadline(reason)
                        | Delivery::Unanswered(reason),
                    ) => Sent::Later(reason),
                };
                // A batch that stays in the spool keeps its media and tries them again: their
                // failures count once the batch leaves it.
                if !matches!(sent, Sent::Later(_)) {
                    media.settle(failures);
                }
                sent
            });
        }
    }

    fn keep(&mut self, batch: Vec<FinishedSpan>) -> Option<Result<usize, String>> {
        let spool = self.spool.as_mut()?;
        let done = &self.media_done;
        let media: Vec<Upload> = uploads_of(&batch)
            .into_iter()
            .filter(|u| !done.contains(&(u.observation_id.clone(), u.media.media_id.clone())))
            .collect();
        encode(&mut self.body, &batch, &self.envelope);
        let kept = gzip(&self.body, &mut self.gzip_buffer)
            .and_then(|()| spool.keep(&self.gzip_buffer, batch.len(), &media));
        Some(kept.map(|()| batch.len()))
    }

    fn export_scores(&mut self, batch: Vec<FinishedScore>, waiter: &mut Waiter) -> ScoresSent {
        if !self.transport.takes_scores() {
            return ScoresSent {
                unsupported: batch.len(),
                ..ScoresSent::default()
            };
        }
        scores::deliver(&mut self.transport, batch, waiter)
    }

    fn auth_check(&mut self, waiter: &mut Waiter) -> Result<AuthCheck, AuthError> {
        self.transport.projects(waiter)
    }
}

/// The exporter benchmark: `spans` typical spans encoded into one request body (gzipped or
/// not); returns its length. The buffers are kept between calls, as the sink keeps them between
/// requests.
pub(crate) fn bench_encode(spans: usize, gzipped: bool) -> usize {
    thread_local! {
        static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = Default::default();
    }
    let (batch, envelope) = bench_batch(spans);
    BUFFERS.with_borrow_mut(|(body, gzip_buffer)| {
        encode(body, &batch, &envelope);
        if gzipped {
            gzip(body, gzip_buffer).map_or(0, |()| gzip_buffer.len())
        } else {
            body.len()
        }
    })
}

/// The typical batch of the benchmark: `spans` spans of one trace, each with a 40-byte input and
/// output and two metadata keys.
fn bench_batch(spans: usize) -> (Vec<FinishedSpan>, Envelope) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use prost::Message as _;

    use super::prost_reference::{self, ExportTraceServiceRequest};
    use super::*;
    use crate::ids::{ObservationId, TraceId};
    use crate::record::{Cost, PromptLink, TraceAttributes, Usage};

    fn plain(name: &'static str) -> FinishedSpan {
        FinishedSpan {
            trace_id: TraceId::from_seed(name),
            span_id: ObservationId::from_bytes(*b"\x00\x00\x00\x00\x00\x00\x00\x07").unwrap(),
            parent_span_id: ObservationId::from_bytes(*b"\x00\x00\x00\x00\x00\x00\x01\x00"),
            is_local_root: false,
            name: name.into(),
            kind: ObservationType::Span,
            start_unix_nanos: 1_764_081_844_123_456_789,
            end_unix_nanos: 1_764_081_844_223_456_789,
            input: None,
            output: None,
            level: Level::Default,
            status_message: None,
            model: None,
            model_parameters: None,
            usage: None,
            cost: None,
            completion_start_unix_nanos: None,
            prompt: None,
            metadata: Vec::new(),
            trace: Arc::new(TraceAttributes::default()),
            experiment_item: false,
            media: Vec::new(),
        }
    }

    /// Spans that between them set every field, and none.
    fn varied_spans() -> Vec<FinishedSpan> {
        let everything = FinishedSpan {
            kind: ObservationType::Generation,
            input: Some(r#"{"messages":[{"role":"user","content":"hi"}]}"#.into()),
            output: Some(r#""hello""#.into()),
            level: Level::Warning,
            status_message: Some("slow".into()),
            model: Some("gpt-4o".into()),
            model_parameters: Some(r#"{"temperature":0.2}"#.into()),
            usage: Some(Usage {
                input: 10,
                output: 25,
                total: None,
                details: BTreeMap::from([("cache_read_input_tokens".into(), 4)]),
            }),
            cost: Some(Cost {
                input: Some(0.001),
                output: Some(0.002),
                total: None,
                details: BTreeMap::new(),
            }),
            completion_start_unix_nanos: Some(1_764_081_844_150_000_000),
            prompt: Some(PromptLink {
                name: "greeting".into(),
                version: 3,
            }),
            metadata: vec![
                ("step".into(), "3".into()),
                ("source".into(), "\"wiki\"".into()),
            ],
            trace: Arc::new(TraceAttributes {
                name: Some("chat".into()),
                user_id: Some("user-7".into()),
                session_id: Some("session-42".into()),
                tags: vec!["a".into(), "beta".into(), String::new()],
                metadata: vec![("tenant".into(), "\"acme\"".into())],
                release: Some("v2".into()),
                version: Some("1.2.3".into()),
                public: Some(false),
                input: Some("\"the question\"".into()),
                output: Some("{\"answer\":42}".into()),
                prompt: None,
                experiment: None,
            }),
            ..plain("everything")
        };
        let nothing = FinishedSpan {
            parent_span_id: None,
            is_local_root: true,
            name: "".into(),
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            ..plain("nothing")
        };
        let prompt_not_generation = FinishedSpan {
            prompt: Some(PromptLink {
                name: "ignored".into(),
                version: 1,
            }),
            trace: Arc::new(TraceAttributes {
                public: Some(true),
                tags: vec!["only".into()],
                ..Default::default()
            }),
            ..plain("prompt on a span")
        };
        let error = FinishedSpan {
            level: Level::Error,
            status_message: Some("boom: connection refused".into()),
            kind: ObservationType::Tool,
            ..plain("error")
        };
        let error_without_message = FinishedSpan {
            level: Level::Error,
            ..plain("error without message")
        };
        let remote_root = FinishedSpan {
            is_local_root: true,
            level: Level::Debug,
            ..plain("remote root")
        };
        let local_root = FinishedSpan {
            is_local_root: true,
            parent_span_id: None,
            ..plain("local root")
        };
        let non_ascii = FinishedSpan {
            name: "résumé 検索".into(),
            input: Some("\"héllo wörld, 你好, 🎉\"".into()),
            metadata: vec![("clé".into(), "\"valeur ünïcode\"".into())],
            trace: Arc::new(TraceAttributes {
                name: Some("трасса".into()),
                metadata: vec![("ключ".into(), "\"значение\"".into())],
                ..Default::default()
            }),
            ..plain("non-ASCII")
        };
        let empty_strings = FinishedSpan {
            kind: ObservationType::Generation,
            input: Some(String::new()),
            output: Some(String::new()),
            status_message: Some(String::new()),
            model: Some(String::new()),
            prompt: Some(PromptLink {
                name: String::new(),
                version: 0,
            }),
            metadata: vec![(String::new(), String::new())],
            trace: Arc::new(TraceAttributes {
                name: Some(String::new()),
                user_id: Some(String::new()),
                tags: vec![String::new()],
                metadata: vec![(String::new(), String::new())],
                release: Some(String::new()),
                version: Some(String::new()),
                ..Default::default()
            }),
            ..plain("empty strings")
        };
        let long = FinishedSpan {
            // Lengths that take two and three varint bytes.
            input: Some("x".repeat(200)),
            output: Some("y".repeat(20_000)),
            metadata: vec![("big".into(), "z".repeat(130))],
            ..plain("long")
        };
        let experiment = Arc::new(crate::record::ExperimentAttributes {
            id: "c44fdad8f2839b02".into(),
            name: "nightly é/run".into(),
            description: Some("every question".into()),
            metadata: Some("{\"model\": \"gpt-4o\"}".into()),
            dataset_id: Some("ds-123".into()),
            item_id: "item-1".into(),
            item_metadata: None,
            item_expected_output: Some("4".into()),
            item_root_observation_id: Some("0000000000000007".into()),
        });
        let experiment_task = FinishedSpan {
            experiment_item: true,
            trace: Arc::new(TraceAttributes {
                experiment: Some(experiment.clone()),
                ..Default::default()
            }),
            ..plain("experiment-item-task")
        };
        let experiment_child = FinishedSpan {
            trace: Arc::new(TraceAttributes {
                experiment: Some(experiment),
                ..Default::default()
            }),
            ..plain("inside the task")
        };
        vec![
            everything,
            experiment_task,
            experiment_child,
            nothing,
            prompt_not_generation,
            error,
            error_without_message,
            remote_root,
            local_root,
            non_ascii,
            empty_strings,
            long,
        ]
    }

    #[test]
    fn writer_matches_prost() {
        let envelopes = [
            Envelope::new(
                "service",
                &[
                    ("host.name".into(), "box".into()),
                    ("service.name".into(), "shadowed".into()),
                    (String::new(), String::new()),
                ],
                Some("production".into()),
                Some("v1".into()),
            ),
            Envelope::new("", &[], None, None),
        ];
        let spans = varied_spans();
        let mut body = vec![0xff; 7]; // encode clears what was there
        for envelope in &envelopes {
            let batches = [&spans[..], &spans[..1], &spans[1..2], &[]];
            for batch in batches {
                let expected = prost_reference::encode(batch, envelope);
                encode(&mut body, batch, envelope);
                let want = ExportTraceServiceRequest::decode(&expected[..]).unwrap();
                let got = ExportTraceServiceRequest::decode(&body[..]).unwrap();
                assert_eq!(got, want);
                // The same fields are present (an empty string attribute, a `false`), not only
                // equal after decoding: re-encoded, the bytes are prost's.
                assert_eq!(got.encode_to_vec(), expected);
                // Each span on its own, for a readable failure.
                for (got, want) in got.resource_spans[0].scope_spans[0]
                    .spans
                    .iter()
                    .zip(&want.resource_spans[0].scope_spans[0].spans)
                {
                    assert_eq!(got, want, "span {:?}", want.name);
                }
            }
        }
    }

    #[test]
    fn padded_lengths_read_back() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 2_097_152, 300_000_000] {
            let mut out = vec![0u8; 3];
            let start = open(&mut out, 2);
            out.resize(start + len, 0);
            close(&mut out, start);
            assert_eq!(out[3], 2 << 3 | 2);
            let mut slice = &out[4..9];
            assert_eq!(
                prost::encoding::decode_varint(&mut slice).unwrap(),
                len as u64
            );
        }
    }

    #[test]
    fn varint_lengths() {
        for value in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            wire::varint(&mut out, value);
            assert_eq!(out.len(), wire::varint_len(value), "{value}");
            assert_eq!(out.len(), prost::encoding::encoded_len_varint(value));
        }
    }

    #[test]
    fn gzip_reuses_its_buffer() {
        let (batch, envelope) = bench_batch(64);
        let mut body = Vec::new();
        let mut gzipped = Vec::new();
        encode(&mut body, &batch, &envelope);
        for _ in 0..3 {
            gzip(&body, &mut gzipped).unwrap();
            let mut unzipped = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&gzipped[..]),
                &mut unzipped,
            )
            .unwrap();
            assert_eq!(unzipped, body);
        }
    }

    /// Runs `f` repeatedly for about `seconds`, returns the best per-call time of 5 rounds.
    fn best_time(seconds: f64, mut f: impl FnMut() -> usize) -> Duration {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let mut calls = 0u32;
            let mut sink = 0usize;
            while start.elapsed().as_secs_f64() < seconds / 5.0 {
                sink = sink.wrapping_add(f());
                calls += 1;
            }
            std::hint::black_box(sink);
            best = best.min(start.elapsed() / calls);
        }
        best
    }

    /// The benchmark batch with inputs and outputs of varied words, about 200 bytes each: closer
    /// to real text for gzip than the benchmark's identical spans.
    fn varied_batch(spans: usize) -> (Vec<FinishedSpan>, Envelope) {
        const WORDS: [&str; 16] = [
            "the",
            "capital",
            "of",
            "France",
            "is",
            "Paris",
            "which",
            "river",
            "Seine",
            "city",
            "population",
            "museum",
            "Louvre",
            "tower",
            "Eiffel",
            "history",
        ];
        let (mut batch, envelope) = bench_batch(spans);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut text = |n: usize| {
            let mut out = String::from("\"");
            for _ in 0..n {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                out.push_str(WORDS[(state % 16) as usize]);
                out.push(' ');
                out.push_str(&(state % 1000).to_string());
                out.push(' ');
            }
            out.push('"');
            out
        };
        for span in &mut batch {
            span.input = Some(text(20));
            span.output = Some(text(20));
        }
        (batch, envelope)
    }

    /// Encoder throughput on one core. Run with
    /// `cargo test --release -p observe-runtime --lib throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn encode_throughput() {
        const SPANS: usize = 512;
        let per_second = |t: Duration| SPANS as f64 / t.as_secs_f64();
        let t = best_time(2.0, || bench_encode(SPANS, false));
        println!(
            "bench_encode({SPANS}, false): {:>10.0} spans/s",
            per_second(t)
        );
        let t = best_time(2.0, || bench_encode(SPANS, true));
        println!(
            "bench_encode({SPANS}, true):  {:>10.0} spans/s",
            per_second(t)
        );
        let (batch, envelope) = bench_batch(SPANS);
        let t = best_time(2.0, || bench_batch(SPANS).0.len());
        println!(
            "building the batch alone:     {:>10.0} spans/s",
            per_second(t)
        );
        let mut body = Vec::new();
        let t = best_time(2.0, || {
            encode(&mut body, &batch, &envelope);
            body.len()
        });
        println!(
            "encode alone:                 {:>10.0} spans/s",
            per_second(t)
        );
        let t = best_time(2.0, || prost_reference::encode(&batch, &envelope).len());
        println!(
            "encode alone, prost structs:  {:>10.0} spans/s",
            per_second(t)
        );
        let mut gzipped = Vec::new();
        for (what, (batch, envelope)) in [
            ("benchmark", (batch, envelope)),
            ("varied text", varied_batch(SPANS)),
        ] {
            encode(&mut body, &batch, &envelope);
            let t = best_time(2.0, || {
                gzip(&body, &mut gzipped).unwrap();
                gzipped.len()
            });
            println!(
                "gzip alone, {what:<12}:     {:>10.0} spans/s, {:.0} MB/s ({} -> {} bytes)",
                per_second(t),
                body.len() as f64 / t.as_secs_f64() / 1e6,
                body.len(),
                gzipped.len()
            );
        }
    }

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(&iso8601(0), b"1970-01-01T00:00:00.000000Z");
        assert_eq!(
            &iso8601(1_764_081_844_123_456_789),
            b"2025-11-25T14:44:04.123456Z"
        );
        assert_eq!(
            &iso8601(951_782_400_000_000_000),
            b"2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(&iso8601(u64::MAX), b"2554-07-21T23:34:33.709551Z");
    }
}

/// The encoder this file had before the writer: prost message structs, then `encode_to_vec`. Kept
/// only to check the writer against it.
#[cfg(test)]
mod prost_reference {
    use prost::Message;

    use super::{
        iso8601, Envelope, FLAGS_PARENT_IS_REMOTE, FLAGS_SAMPLED, SCOPE_NAME, SDK_VERSION,
        SPAN_KIND_INTERNAL, STATUS_CODE_ERROR,
    };
    use crate::record::FinishedSpan;
    use crate::record::{Level, ObservationType};

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub(crate) resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub(crate) resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub(crate) scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub(crate) attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub(crate) scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub(crate) spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(string, tag = "2")]
        pub(crate) version: String,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub(crate) trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub(crate) span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub(crate) parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub(crate) name: String,
        #[prost(int32, tag = "6")]
        pub(crate) kind: i32,
        #[prost(fixed64, tag = "7")]
        pub(crate) start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub(crate) end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub(crate) attributes: Vec<KeyValue>,
        #[prost(message, optional, tag = "15")]
        pub(crate) status: Option<Status>,
        #[prost(fixed32, tag = "16")]
        pub(crate) flags: u32,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct Status {
        #[prost(string, tag = "2")]
        pub(crate) message: String,
        #[prost(int32, tag = "3")]
        pub(crate) code: i32,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct KeyValue {
        #[prost(string, tag = "1")]
        pub(crate) key: String,
        #[prost(message, optional, tag = "2")]
        pub(crate) value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5")]
        pub(crate) value: Option<Value>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Value {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(int64, tag = "3")]
        Int(i64),
        #[prost(double, tag = "4")]
        Double(f64),
        #[prost(message, tag = "5")]
        Array(ArrayValue),
    }

    #[derive(Clone, PartialEq, Message)]
    pub(crate) struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub(crate) values: Vec<AnyValue>,
    }

    fn string(key: &str, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(Value::String(value.into())),
            }),
        }
    }

    fn int(key: &str, value: i64) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(Value::Int(value)),
            }),
        }
    }

    fn boolean(key: &str, value: bool) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(Value::Bool(value)),
            }),
        }
    }

    fn string_array(key: &str, values: &[String]) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(Value::Array(ArrayValue {
                    values: values
                        .iter()
                        .map(|v| AnyValue {
                            value: Some(Value::String(v.clone())),
                        })
                        .collect(),
                })),
            }),
        }
    }

    /// The OTLP span of a finished observation, with every Langfuse attribute it has.
    pub(crate) fn span(record: &FinishedSpan, envelope: &Envelope) -> Span {
        let mut attributes = vec![string("langfuse.observation.type", record.kind.as_str())];
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(value) = value {
                attributes.push(string(key, value.as_str()));
            }
        };
        put("langfuse.observation.input", &record.input);
        put("langfuse.observation.output", &record.output);
        put(
            "langfuse.observation.status_message",
            &record.status_message,
        );
        put("langfuse.observation.model.name", &record.model);
        put(
            "langfuse.observation.model.parameters",
            &record.model_parameters,
        );
        if record.level != Level::Default {
            attributes.push(string("langfuse.observation.level", record.level.as_str()));
        }
        if let Some(usage) = &record.usage {
            attributes.push(string(
                "langfuse.observation.usage_details",
                usage.to_json(),
            ));
        }
        if let Some(cost) = &record.cost {
            attributes.push(string("langfuse.observation.cost_details", cost.to_json()));
        }
        if let Some(at) = record.completion_start_unix_nanos {
            attributes.push(string(
                "langfuse.observation.completion_start_time",
                String::from_utf8(iso8601(at).to_vec()).unwrap(),
            ));
        }
        if let (Some(prompt), ObservationType::Generation) = (&record.prompt, record.kind) {
            attributes.push(string(
                "langfuse.observation.prompt.name",
                prompt.name.as_str(),
            ));
            attributes.push(int(
                "langfuse.observation.prompt.version",
                i64::from(prompt.version),
            ));
        }
        for (key, json) in &record.metadata {
            attributes.push(string(
                &format!("langfuse.observation.metadata.{key}"),
                json.as_str(),
            ));
        }

        // Trace attributes go on every span: Langfuse keeps only what each span carries.
        let trace = &record.trace;
        if let Some(name) = &trace.name {
            attributes.push(string("langfuse.trace.name", name.as_str()));
        }
        if let Some(user) = &trace.user_id {
            attributes.push(string("user.id", user.as_str()));
        }
        if let Some(session) = &trace.session_id {
            attributes.push(string("session.id", session.as_str()));
        }
        if !trace.tags.is_empty() {
            attributes.push(string_array("langfuse.trace.tags", &trace.tags));
        }
        for (key, json) in &trace.metadata {
            attributes.push(string(
                &format!("langfuse.trace.metadata.{key}"),
                json.as_str(),
            ));
        }
        if let Some(public) = trace.public {
            attributes.push(boolean("langfuse.trace.public", public));
        }
        if let Some(input) = &trace.input {
            attributes.push(string("langfuse.trace.input", input.as_str()));
        }
        if let Some(output) = &trace.output {
            attributes.push(string("langfuse.trace.output", output.as_str()));
        }
        if let Some(release) = trace.release.as_ref().or(envelope.release.as_ref()) {
            attributes.push(string("langfuse.release", release.as_str()));
        }
        if let Some(version) = &trace.version {
            attributes.push(string("langfuse.version", version.as_str()));
        }
        if let Some(experiment) = &trace.experiment {
            let optional = |attributes: &mut Vec<KeyValue>, key: &str, value: &Option<String>| {
                if let Some(value) = value {
                    attributes.push(string(key, value.as_str()));
                }
            };
            attributes.push(string("langfuse.experiment.id", experiment.id.as_str()));
            attributes.push(string("langfuse.experiment.name", experiment.name.as_str()));
            optional(
                &mut attributes,
                "langfuse.experiment.metadata",
                &experiment.metadata,
            );
            optional(
                &mut attributes,
                "langfuse.experiment.dataset.id",
                &experiment.dataset_id,
            );
            attributes.push(string(
                "langfuse.experiment.item.id",
                experiment.item_id.as_str(),
            ));
            optional(
                &mut attributes,
                "langfuse.experiment.item.metadata",
                &experiment.item_metadata,
            );
            optional(
                &mut attributes,
                "langfuse.experiment.item.root_observation_id",
                &experiment.item_root_observation_id,
            );
            if record.experiment_item {
                optional(
                    &mut attributes,
                    "langfuse.experiment.description",
                    &experiment.description,
                );
                optional(
                    &mut attributes,
                    "langfuse.experiment.item.expected_output",
                    &experiment.item_expected_output,
                );
            }
            attributes.push(string("langfuse.environment", "sdk-experiment"));
        } else if let Some(environment) = &envelope.environment {
            attributes.push(string("langfuse.environment", environment.as_str()));
        }

        let status = (record.level == Level::Error).then(|| Status {
            message: record.status_message.clone().unwrap_or_default(),
            code: STATUS_CODE_ERROR,
        });
        let remote_parent = record.is_local_root && record.parent_span_id.is_some();
        Span {
            trace_id: record.trace_id.to_bytes().to_vec(),
            span_id: record.span_id.to_bytes().to_vec(),
            parent_span_id: record
                .parent_span_id
                .map(|id| id.to_bytes().to_vec())
                .unwrap_or_default(),
            name: record.name.to_string(),
            kind: SPAN_KIND_INTERNAL,
            start_time_unix_nano: record.start_unix_nanos,
            end_time_unix_nano: record.end_unix_nanos,
            attributes,
            status,
            flags: FLAGS_SAMPLED
                | if remote_parent {
                    FLAGS_PARENT_IS_REMOTE
                } else {
                    0
                },
        }
    }

    /// One request body: the spans under one resource and scope, as protobuf.
    pub(crate) fn encode(batch: &[FinishedSpan], envelope: &Envelope) -> Vec<u8> {
        let resource = Resource {
            attributes: envelope
                .resource_attributes
                .iter()
                .map(|(key, value)| string(key, value.as_str()))
                .collect(),
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_string(),
                        version: SDK_VERSION.to_string(),
                    }),
                    spans: batch.iter().map(|record| span(record, envelope)).collect(),
                }],
            }],
        };
        request.encode_to_vec()
    }
}
