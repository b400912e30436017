//! The values of a `tracing` span's or event's fields, as recorded: at creation and by every
//! `Span::record` after it, the last value of a field winning. Text is bounded by the field limit
//! when it is recorded, so a span holds at most one limit's worth per field. Knows nothing about
//! what the fields mean.

use std::fmt;

use tracing_core::field::{Field, Visit};

use crate::capture;

/// One recorded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    Text(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

impl FieldValue {
    /// The value as text (numbers and booleans written as JSON writes them).
    pub(crate) fn text(&self) -> String {
        match self {
            FieldValue::Text(text) => text.clone(),
            other => other.to_json().to_string(),
        }
    }

    /// The value as JSON (text stays a string).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(text) => serde_json::Value::String(text.clone()),
            FieldValue::Int(n) => (*n).into(),
            FieldValue::Uint(n) => (*n).into(),
            FieldValue::Float(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            FieldValue::Bool(b) => (*b).into(),
        }
    }

    /// The value as JSON, text that holds a JSON object or array parsed.
    pub(crate) fn to_json_parsed(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(text) => {
                parse_structured(text).unwrap_or_else(|| serde_json::Value::String(text.clone()))
            }
            other => other.to_json(),
        }
    }

    /// The value as JSON text: text that holds a JSON object or array as it is (Langfuse then
    /// shows its structure), other text as a JSON string (text was bounded when recorded).
    pub(crate) fn json_text(&self) -> String {
        match self {
            FieldValue::Text(text) if parse_structured(text).is_some() => text.clone(),
            FieldValue::Text(text) => capture::json_string(text),
            other => other.to_json().to_string(),
        }
    }

    /// The value as JSON text for an input or output: text that is JSON of any type as it is
    /// (a JSON string such as `"3 documents"`, with its quotes, shows as `3 documents`), other
    /// text as a JSON string.
    pub(crate) fn io_json_text(&self) -> String {
        match self {
            FieldValue::Text(text)
                if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() =>
            {
                text.clone()
            }
            other => other.json_text(),
        }
    }

    /// A non-negative integer (a token count): integers, integral floats and numeric text.
    pub(crate) fn count(&self) -> Option<u64> {
        match self {
            FieldValue::Uint(n) => Some(*n),
            FieldValue::Int(n) => u64::try_from(*n).ok(),
            FieldValue::Float(n) if *n >= 0.0 && n.fract() == 0.0 && *n < 1e19 => Some(*n as u64),
            FieldValue::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A number: integers, floats and numeric text.
    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            FieldValue::Uint(n) => Some(*n as f64),
            FieldValue::Int(n) => Some(*n as f64),
            FieldValue::Float(n) => Some(*n),
            FieldValue::Text(text) => text.trim().parse().ok(),
            FieldValue::Bool(_) => None,
        }
    }

    /// A boolean: `true`/`false` as a boolean or as text.
    pub(crate) fn boolean(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            FieldValue::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Text holding a JSON object or array, parsed; `None` for anything else.
pub(crate) fn parse_structured(text: &str) -> Option<serde_json::Value> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The fields recorded so far, in the order first recorded.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    values: Vec<(&'static str, FieldValue)>,
}

impl Fields {
    pub(crate) fn get(&self, name: &str) -> Option<&FieldValue> {
        self.values
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &FieldValue)> {
        self.values.iter().map(|(key, value)| (*key, value))
    }

    fn set(&mut self, name: &'static str, value: FieldValue) {
        match self.values.iter_mut().find(|(key, _)| *key == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    /// The names recorded, in order.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.values.iter().map(|(key, _)| *key).collect()
    }

    /// Takes the values of `newer`, which win.
    pub(crate) fn merge(&mut self, newer: Fields) {
        for (name, value) in newer.values {
            self.set(name, value);
        }
    }

    /// A visitor that records into these fields, text bounded by `limit` bytes.
    pub(crate) fn recorder(&mut self, limit: usize) -> Recorder<'_> {
        Recorder {
            fields: self,
            limit,
        }
    }
}

/// Records the values `tracing` hands over into [`Fields`].
pub(crate) struct Recorder<'a> {
    fields: &'a mut Fields,
    limit: usize,
}

impl Recorder<'_> {
    fn put(&mut self, field: &Field, value: FieldValue) {
        self.fields.set(field.name(), value);
    }
}

impl Visit for Recorder<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, FieldValue::Float(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, FieldValue::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, FieldValue::Uint(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let text = capture::display_text(value, self.limit);
        self.put(field, FieldValue::Text(text));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = capture::display_text(value, self.limit);
        self.put(field, FieldValue::Text(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and `format_args!` arrive here too: their `Debug` is the `Display` text.
        let text = capture::debug_text(value, self.limit);
        self.put(field, FieldValue::Text(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_numbers_accept_what_crates_record() {
        assert_eq!(FieldValue::Uint(12).count(), Some(12));
        assert_eq!(FieldValue::Int(-1).count(), None);
        assert_eq!(FieldValue::Float(7.0).count(), Some(7));
        assert_eq!(FieldValue::Float(7.5).count(), None);
        assert_eq!(FieldValue::Text(" 30 ".into()).count(), Some(30));
        assert_eq!(FieldValue::Text("0.25".into()).number(), Some(0.25));
        assert_eq!(FieldValue::Text("true".into()).boolean(), Some(true));
    }

    #[test]
    fn json_text_is_parsed_only_when_structured() {
        let messages = FieldValue::Text(r#"[{"role":"user","content":"hi"}]"#.into());
        assert_eq!(
            messages.to_json_parsed().to_string(),
            r#"[{"content":"hi","role":"user"}]"#
        );
        assert_eq!(
            messages.json_text(),
            r#"[{"role":"user","content":"hi"}]"#,
            "kept as written"
        );
        assert_eq!(FieldValue::Text("hi".into()).json_text(), r#""hi""#);
        let plain = FieldValue::Text("42".into());
        assert_eq!(
            plain.to_json_parsed(),
            serde_json::Value::String("42".into())
        );
        assert_eq!(
            plain.io_json_text(),
            "42",
            "any JSON, for inputs and outputs"
        );
        let quoted = FieldValue::Text(r#""3 documents""#.into());
        assert_eq!(quoted.io_json_text(), r#""3 documents""#);
        assert_eq!(quoted.json_text(), r#""\"3 documents\"""#);
        assert_eq!(
            FieldValue::Text("3 documents".into()).io_json_text(),
            r#""3 documents""#
        );
        let broken = FieldValue::Text("[not json".into());
        assert_eq!(broken.io_json_text(), r#""[not json""#);
        assert_eq!(
            broken.to_json_parsed(),
            serde_json::Value::String("[not json".into())
        );
    }
}
