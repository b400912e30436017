//! JSON recorded as it came: the request's and the answer's own text, kept as
//! [`RawValue`]s and written into the observation without being parsed into a tree and written
//! again. Text that may hold media (a `"data…` string or key: a `data:` URI, a base64 `data`
//! block) is parsed, so that the runtime finds the media in it as it writes it.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON value to record: its text as it came, or parsed when it may hold media.
#[derive(Debug)]
pub(crate) enum Json<'a> {
    Raw(Cow<'a, RawValue>),
    Parsed(Value),
}

impl<'a> Json<'a> {
    /// The value `raw`, borrowed unless it may hold media.
    pub(crate) fn of(raw: &'a RawValue) -> Json<'a> {
        if may_hold_media(raw.get()) {
            if let Ok(value) = serde_json::from_str(raw.get()) {
                return Json::Parsed(value);
            }
        }
        Json::Raw(Cow::Borrowed(raw))
    }

    /// The same value, owning its text.
    pub(crate) fn into_owned(self) -> Json<'static> {
        match self {
            Json::Raw(raw) => Json::Raw(Cow::Owned(raw.into_owned())),
            Json::Parsed(value) => Json::Parsed(value),
        }
    }

    /// The JSON text of a list of values (`[a,b]`).
    pub(crate) fn array(items: Vec<Json<'_>>) -> Json<'static> {
        let mut text = String::from("[");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            match item {
                Json::Raw(raw) => text.push_str(raw.get()),
                Json::Parsed(value) => text.push_str(&value.to_string()),
            }
        }
        text.push(']');
        match RawValue::from_string(text) {
            Ok(raw) => Json::Raw(Cow::Owned(raw)),
            Err(_) => Json::Parsed(Value::Null),
        }
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Raw(raw) => raw.serialize(serializer),
            Json::Parsed(value) => value.serialize(serializer),
        }
    }
}

/// Whether JSON text may hold media the runtime would replace: a string that starts with
/// `data` (a `data:` URI) or a `data` key (a base64 block).
fn may_hold_media(json: &str) -> bool {
    json.contains("\"data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn text_is_kept_as_it_came_unless_it_may_hold_media() {
        let plain = raw(r#"{"role":"user","content":"the data is here"}"#);
        assert!(matches!(Json::of(&plain), Json::Raw(_)));
        assert_eq!(
            serde_json::to_string(&Json::of(&plain)).unwrap(),
            r#"{"role":"user","content":"the data is here"}"#
        );
        let image =
            raw(r#"[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}]"#);
        assert!(matches!(Json::of(&image), Json::Parsed(_)));
        let audio = raw(r#"{"input_audio":{"data":"UklG","format":"wav"}}"#);
        assert!(matches!(Json::of(&audio), Json::Parsed(_)));
    }

    #[test]
    fn a_list_joins_the_texts() {
        let a = raw(r#"{"b":1,"a":2}"#);
        let list = Json::array(vec![Json::of(&a), Json::Parsed(serde_json::json!(3))]);
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"[{"b":1,"a":2},3]"#
        );
    }
}
