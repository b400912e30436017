//! Finished spans → an OTLP `ExportTraceServiceRequest` in protobuf. The Langfuse attribute names
//! live here and nowhere else (the wire doc, section 2).

use prost::Message;

use crate::record::FinishedSpan;
use crate::record::{Level, ObservationType};

// The OTLP messages this exporter writes (opentelemetry-proto, trace/v1 and common/v1), with the
// field numbers of the official .proto files.

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

const SPAN_KIND_INTERNAL: i32 = 1;
const STATUS_CODE_ERROR: i32 = 2;
/// W3C trace flags: sampled. Bit 8 (0x100) says the "is remote" bit below is known.
const FLAGS_SAMPLED: u32 = 0x01 | 0x100;
const FLAGS_PARENT_IS_REMOTE: u32 = 0x200;

/// The instrumentation scope name of the official SDKs.
pub(crate) const SCOPE_NAME: &str = "langfuse-sdk";
/// This crate's version, sent as the scope version and `x-langfuse-sdk-version`.
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// What every span and the resource carry from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) resource: Resource,
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
        let mut attributes = vec![
            string("service.name", service_name),
            string("telemetry.sdk.language", "rust"),
            string("telemetry.sdk.name", "observe"),
            string("telemetry.sdk.version", SDK_VERSION),
        ];
        if let Some(environment) = &environment {
            attributes.push(string("deployment.environment.name", environment.as_str()));
        }
        if let Some(release) = &release {
            attributes.push(string("langfuse.release", release.as_str()));
        }
        for (key, value) in extra {
            if !attributes.iter().any(|a| a.key == *key) {
                attributes.push(string(key, value.as_str()));
            }
        }
        Self {
            resource: Resource { attributes },
            environment,
            release,
        }
    }
}

/// A Unix time in nanoseconds as ISO-8601 UTC (`2026-11-25T14:44:04.123456Z`).
pub(crate) fn iso8601(unix_nanos: u64) -> String {
    let seconds = unix_nanos / 1_000_000_000;
    let micros = (unix_nanos % 1_000_000_000) / 1_000;
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
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
            iso8601(at),
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
    if let Some(release) = trace.release.as_ref().or(envelope.release.as_ref()) {
        attributes.push(string("langfuse.release", release.as_str()));
    }
    if let Some(version) = &trace.version {
        attributes.push(string("langfuse.version", version.as_str()));
    }
    if let Some(environment) = &envelope.environment {
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
        + record
            .trace
            .metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum::<usize>()
}

/// One request body: the spans under one resource and scope, as protobuf.
pub(crate) fn encode(batch: &[FinishedSpan], envelope: &Envelope) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(envelope.resource.clone()),
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

/// Gzip, as the official SDKs send.
fn gzip(body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .and_then(|_| encoder.finish())
        .map_err(|e| format!("gzip: {e}"))
}

use super::auth::{AuthCheck, AuthError};
use super::sink::{Failure, Sink};
use super::transport::{Delivery, Transport};
use super::waiter::Waiter;

/// The OTLP/HTTP sink: encode, gzip, post.
pub(crate) struct OtlpSink {
    pub(crate) transport: Transport,
    pub(crate) envelope: Envelope,
}

impl Sink for OtlpSink {
    fn export(&mut self, batch: Vec<FinishedSpan>, waiter: &mut Waiter) -> Result<(), Failure> {
        let body = gzip(&encode(&batch, &self.envelope)).map_err(Failure::Lost)?;
        match self.transport.post(&body, waiter) {
            Ok(()) => Ok(()),
            Err(Delivery::Lost(reason)) => Err(Failure::Lost(reason)),
            Err(Delivery::Deadline(reason)) => Err(Failure::Deadline(reason, batch)),
        }
    }

    fn auth_check(&mut self, waiter: &mut Waiter) -> Result<AuthCheck, AuthError> {
        self.transport.projects(waiter)
    }
}

/// The exporter benchmark: `spans` typical spans encoded into one request body (gzipped or
/// not); returns its length.
pub(crate) fn bench_encode(spans: usize, gzipped: bool) -> usize {
    let (batch, envelope) = bench_batch(spans);
    let body = encode(&batch, &envelope);
    if gzipped {
        gzip(&body).map(|b| b.len()).unwrap_or(0)
    } else {
        body.len()
    }
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
            }
        })
        .collect();
    (batch, envelope)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

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
        let t = best_time(2.0, || encode(&batch, &envelope).len());
        println!(
            "encode alone:                 {:>10.0} spans/s",
            per_second(t)
        );
        let body = encode(&batch, &envelope);
        let t = best_time(2.0, || gzip(&body).map_or(0, |b| b.len()));
        println!(
            "gzip alone:                   {:>10.0} spans/s, {:.0} MB/s ({} -> {} bytes)",
            per_second(t),
            body.len() as f64 / t.as_secs_f64() / 1e6,
            body.len(),
            gzip(&body).map_or(0, |b| b.len())
        );
    }

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            iso8601(1_764_081_844_123_456_789),
            "2025-11-25T14:44:04.123456Z"
        );
        assert_eq!(
            iso8601(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
