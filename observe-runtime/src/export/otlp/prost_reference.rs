//! The encoder this file had before the writer: prost message structs, then `encode_to_vec`. Kept
//! only to check the writer against it.

use prost::Message;

use super::encode::{
    Envelope, FLAGS_PARENT_IS_REMOTE, FLAGS_SAMPLED, SCOPE_NAME, SDK_VERSION, SPAN_KIND_INTERNAL,
    STATUS_CODE_ERROR,
};
use crate::clock::iso8601;
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
