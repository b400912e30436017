//! Captured JSON text as a record keeps it: short text inline, so that capturing a small value
//! (a number, an id, a short string) allocates nothing on the thread that captures it; longer
//! text on the heap, at its exact size. A leaf: plain data, made a `String` where the record is
//! prepared for export.

/// The longest text kept inline, in bytes.
const INLINE: usize = 22;

/// JSON text held by a record.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    /// The text `text`, inline when it is short.
    pub(crate) fn new(text: &str) -> Text {
        match Text::inline(text) {
            Some(inline) => inline,
            None => Text::Heap(text.into()),
        }
    }

    fn inline(text: &str) -> Option<Text> {
        if text.len() > INLINE {
            return None;
        }
        let mut bytes = [0; INLINE];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(Text::Inline {
            len: text.len() as u8,
            bytes,
        })
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole, so always UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(text) => text,
        }
    }

    /// The text as a `String` (an allocation for inline text).
    pub(crate) fn into_string(self) -> String {
        match self {
            Text::Inline { .. } => self.as_str().to_string(),
            Text::Heap(text) => text.into_string(),
        }
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::inline(&text).unwrap_or_else(|| Text::Heap(text.into_boxed_str()))
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_inline_and_every_text_comes_back_whole() {
        assert_eq!(std::mem::size_of::<Option<Text>>(), 24);
        for text in [
            "",
            "7",
            r#"{"x":7}"#,
            "é…22 bytes of text!!",
            &"y".repeat(23),
        ] {
            let kept = Text::new(text);
            assert_eq!(matches!(kept, Text::Inline { .. }), text.len() <= INLINE);
            assert_eq!(kept.as_str(), text);
            assert_eq!(Text::from(text.to_string()), kept);
            assert_eq!(kept.into_string(), text);
        }
    }
}
