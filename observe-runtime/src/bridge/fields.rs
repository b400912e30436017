//! The values of a `tracing` span's or event's fields, as recorded: at creation and by every
//! `Span::record` after it, the last value of a field winning. Text is bounded by the field limit
//! when it is recorded, so a span holds at most one limit's worth per field; media in text (a
//! chat message with a `data:` URI, an Anthropic block) are replaced by their references before
//! that, their bytes kept beside the value. Knows nothing about what the fields mean.

use std::fmt;

use tracing_core::field::{Field, Visit};

use crate::capture;
use crate::media::{MediaAttachment, MediaField};

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
    /// The media found in text values, by field (their references are in the text).
    media: Vec<(&'static str, Vec<MediaAttachment>)>,
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
        if !self.media.is_empty() {
            self.media.retain(|(key, _)| *key != name);
        }
    }

    /// The media the text of field `name` refers to, as attachments of `field`.
    pub(crate) fn media_of(&self, name: &str, field: MediaField) -> Vec<MediaAttachment> {
        self.media
            .iter()
            .filter(|(key, _)| *key == name)
            .flat_map(|(_, media)| media.iter().cloned())
            .map(|mut media| {
                media.field = field;
                media
            })
            .collect()
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
        self.media.extend(newer.media);
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

    /// Records text, its media replaced by references when it holds some.
    fn put_text(&mut self, field: &Field, whole: &str, bounded: impl FnOnce() -> String) {
        match replace_media(whole, self.limit) {
            Some((text, media)) => {
                self.put(field, FieldValue::Text(text));
                self.fields.media.push((field.name(), media));
            }
            None => self.put(field, FieldValue::Text(bounded())),
        }
    }
}

/// Whether text may hold media: a `data:…;base64,` URI, or a base64 `data` field beside a key
/// naming its type. A cheap look before any parsing.
fn may_hold_media(text: &str) -> bool {
    text.contains(";base64,")
        || (text.contains("\"data\"")
            && ["media_type", "mime_type", "mimeType", "\"format\""]
                .iter()
                .any(|key| text.contains(key)))
}

/// Text with its media replaced by references (JSON text for a JSON object or array, the
/// reference itself for a lone `data:` URI), within `limit`, and the media; `None` when media
/// upload is off or there is none.
fn replace_media(text: &str, limit: usize) -> Option<(String, Vec<MediaAttachment>)> {
    if !crate::media::enabled() || !may_hold_media(text) {
        return None;
    }
    let (text, media) = match parse_structured(text) {
        Some(value) => capture::serialize_json_with_media(&value, limit, MediaField::Input),
        None => {
            let (json, media) = capture::serialize_json_with_media(text, limit, MediaField::Input);
            (serde_json::from_str::<String>(&json).unwrap_or(json), media)
        }
    };
    (!media.is_empty()).then_some((text, media))
}

/// Whether `text` is a bounded text that was cut (it ends with the marker of its full size).
fn was_cut(text: &str) -> bool {
    text.ends_with(" bytes]") && text.contains("[truncated from ")
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
        let limit = self.limit;
        self.put_text(field, value, || capture::display_text(value, limit));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = capture::display_text(value, self.limit);
        self.put(field, FieldValue::Text(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and `format_args!` arrive here too: their `Debug` is the `Display` text.
        let text = capture::debug_text(value, self.limit);
        if crate::media::enabled() && (was_cut(&text) || may_hold_media(&text)) {
            // Media past the limit: the whole text once more, to replace them before it.
            let whole = if was_cut(&text) {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| format!("{value:?}"))).ok()
            } else {
                None
            };
            let whole = whole.as_deref().unwrap_or(&text);
            if let Some((replaced, media)) = replace_media(whole, self.limit) {
                self.put(field, FieldValue::Text(replaced));
                self.fields.media.push((field.name(), media));
                return;
            }
        }
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
