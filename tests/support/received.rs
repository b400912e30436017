//! Views on the spans the fake server received, decoded with the official OTLP messages, and
//! accessors for their attributes. Nothing here knows how the SDK builds its spans.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

/// One span of an export request, with the resource and the instrumentation scope it came with.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub span: Span,
    pub resource: Resource,
    pub scope: InstrumentationScope,
    /// Index of the request (in [`super::FakeLangfuse::requests`]) that carried the span.
    pub request_index: usize,
}

/// Every span of `request`, flattened.
pub fn flatten(request: &ExportTraceServiceRequest, request_index: usize) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans.resource.clone().unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.clone().unwrap_or_default();
            for span in &scope_spans.spans {
                spans.push(ReceivedSpan {
                    span: span.clone(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    request_index,
                });
            }
        }
    }
    spans
}

/// A received span reduced to its name and ids (lowercase hex, the parent empty for a root): what
/// a check of a large tree needs, without a copy of every span's attributes and resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpanLink {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
}

/// The links of every span of `request`.
pub fn links(request: &ExportTraceServiceRequest) -> Vec<SpanLink> {
    request
        .resource_spans
        .iter()
        .flat_map(|resource_spans| &resource_spans.scope_spans)
        .flat_map(|scope_spans| &scope_spans.spans)
        .map(|span| SpanLink {
            name: span.name.clone(),
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: hex(&span.parent_span_id),
        })
        .collect()
}

impl ReceivedSpan {
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// Lowercase hex; 32 characters for a valid id.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// Lowercase hex; 16 characters for a valid id.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// Lowercase hex; empty for a root span.
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    pub fn kind(&self) -> i32 {
        self.span.kind
    }

    /// The OTLP status code (0 unset, 1 ok, 2 error).
    pub fn status_code(&self) -> i32 {
        self.span.status.as_ref().map_or(0, |status| status.code)
    }

    pub fn status_message(&self) -> &str {
        self.span
            .status
            .as_ref()
            .map_or("", |status| status.message.as_str())
    }

    pub fn attr(&self, key: &str) -> Option<&AnyValue> {
        find_attr(&self.span.attributes, key)
    }

    pub fn attr_keys(&self) -> Vec<&str> {
        self.span
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect()
    }

    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(as_str)
    }

    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(as_int)
    }

    pub fn bool_attr(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(as_bool)
    }

    pub fn double_attr(&self, key: &str) -> Option<f64> {
        self.attr(key).and_then(as_double)
    }

    /// A string-array attribute; `None` when absent or of another type.
    pub fn string_array_attr(&self, key: &str) -> Option<Vec<String>> {
        self.attr(key).and_then(as_string_array)
    }

    /// A string attribute parsed as JSON text; `None` when absent, not a string, or not JSON.
    pub fn json_attr(&self, key: &str) -> Option<serde_json::Value> {
        self.str_attr(key)
            .and_then(|text| serde_json::from_str(text).ok())
    }

    pub fn resource_str(&self, key: &str) -> Option<&str> {
        find_attr(&self.resource.attributes, key).and_then(as_str)
    }
}

pub fn find_attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

pub fn as_str(value: &AnyValue) -> Option<&str> {
    match &value.value {
        Some(Value::StringValue(text)) => Some(text),
        _ => None,
    }
}

pub fn as_int(value: &AnyValue) -> Option<i64> {
    match &value.value {
        Some(Value::IntValue(number)) => Some(*number),
        _ => None,
    }
}

pub fn as_bool(value: &AnyValue) -> Option<bool> {
    match &value.value {
        Some(Value::BoolValue(flag)) => Some(*flag),
        _ => None,
    }
}

pub fn as_double(value: &AnyValue) -> Option<f64> {
    match &value.value {
        Some(Value::DoubleValue(number)) => Some(*number),
        _ => None,
    }
}

/// `Some` only for an array whose every element is a string.
pub fn as_string_array(value: &AnyValue) -> Option<Vec<String>> {
    match &value.value {
        Some(Value::ArrayValue(array)) => array
            .values
            .iter()
            .map(|element| as_str(element).map(str::to_owned))
            .collect(),
        _ => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The only span called `name`; panics with the names that did arrive otherwise.
pub fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let matching: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.name() == name).collect();
    match matching.as_slice() {
        [only] => only,
        _ => panic!(
            "expected exactly one span named {name:?}, found {}; spans received: {:?}",
            matching.len(),
            spans.iter().map(ReceivedSpan::name).collect::<Vec<_>>()
        ),
    }
}
