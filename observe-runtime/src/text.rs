//! Captured JSON text as a record keeps it: short text inline, so that capturing a small value
//! (a number, an id, a short string) allocates nothing on the thread that captures it; longer
//! text on the heap, at its exact size. A leaf: plain data, made a `String` where the record is
//! prepared for export. [`Scratch`] is where a field is written first.

use std::cell::Cell;
use std::io;

/// The longest text kept inline, in bytes.
const INLINE: usize = 22;

/// JSON text held by a record.
///
/// 24 bytes, aligned to 8, with no field at an odd offset, so that the record moves it as three
/// words (the inline text's length, the last byte, is also where `Heap` and `None` are told apart).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Text {
    Inline(Inline),
    Heap(Box<str>),
}

/// Text of at most [`INLINE`] bytes, the unused bytes zero.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(8))]
pub(crate) struct Inline {
    bytes: [u8; INLINE],
    len: Len,
}

/// The length of inline text: a type with only the values 0 to [`INLINE`], so that the others are
/// free to mark the other variants.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
enum Len {
    L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17, L18, L19,
    L20, L21, L22,
}

#[rustfmt::skip]
const LENS: [Len; INLINE + 1] = {
    use Len::*;
    [L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17, L18, L19,
        L20, L21, L22]
};

impl Text {
    /// The text `text`, inline when it is short.
    #[cfg(test)]
    pub(crate) fn new(text: &str) -> Text {
        match Text::inline(text.as_bytes()) {
            Some(inline) => inline,
            None => Text::Heap(text.into()),
        }
    }

    /// `text` (UTF-8) inline, when it is short enough.
    fn inline(text: &[u8]) -> Option<Text> {
        let len = *LENS.get(text.len())?;
        let mut bytes = [0; INLINE];
        bytes[..text.len()].copy_from_slice(text);
        Some(Text::Inline(Inline { bytes, len }))
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole, or from a [`Scratch`] holding JSON text: UTF-8 (checked
            // here, on the exporter's thread, rather than where it was captured).
            Text::Inline(inline) => {
                std::str::from_utf8(&inline.bytes[..inline.len as usize]).unwrap_or_default()
            }
            Text::Heap(text) => text,
        }
    }

    /// The text as a `String` (an allocation for inline text).
    pub(crate) fn into_string(self) -> String {
        match self {
            Text::Inline(_) => self.as_str().to_string(),
            Text::Heap(text) => text.into_string(),
        }
    }
}

thread_local! {
    /// The thread's reusable buffer for fields longer than [`INLINE`] bytes.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest spare buffer a thread keeps: one large value must not pin its memory there.
const SPARE_KEPT: usize = 64 * 1024;

/// The bytes of one field as it is written: the first [`INLINE`] in place, so that a short value
/// touches neither the heap nor a thread-local; beyond that, the thread's reusable buffer.
pub(crate) struct Scratch {
    len: u8,
    inline: [u8; INLINE],
    spilled: Option<Vec<u8>>,
}

impl Scratch {
    pub(crate) const fn new() -> Scratch {
        Scratch {
            len: 0,
            inline: [0; INLINE],
            spilled: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.spilled {
            Some(bytes) => bytes.len(),
            None => usize::from(self.len),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.spilled {
            Some(bytes) => bytes,
            None => &self.inline[..usize::from(self.len)],
        }
    }

    #[inline]
    pub(crate) fn extend(&mut self, more: &[u8]) {
        let len = usize::from(self.len);
        if self.spilled.is_none() {
            if let Some(room) = self.inline.get_mut(len..len + more.len()) {
                room.copy_from_slice(more);
                // At most INLINE (22): fits a `u8`.
                self.len += more.len() as u8;
                return;
            }
        }
        self.extend_spilled(more);
    }

    /// Appends beyond the inline bytes (moving them to the thread's spare buffer first).
    #[inline(never)]
    fn extend_spilled(&mut self, more: &[u8]) {
        if let Some(bytes) = &mut self.spilled {
            bytes.extend_from_slice(more);
            return;
        }
        let len = usize::from(self.len);
        let mut bytes = SPARE.try_with(Cell::take).unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(&self.inline[..len]);
        bytes.extend_from_slice(more);
        self.spilled = Some(bytes);
    }

    pub(crate) fn push(&mut self, byte: u8) {
        self.extend(&[byte]);
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        match &mut self.spilled {
            Some(bytes) => bytes.truncate(len),
            None if len < usize::from(self.len) => self.len = len as u8,
            None => {}
        }
    }

    pub(crate) fn clear(&mut self) {
        self.truncate(0);
    }

    /// What was written, inline, when it takes at most `limit` and [`INLINE`] bytes; it is then
    /// taken (this is left empty).
    pub(crate) fn take_inline(&mut self, limit: usize) -> Option<Text> {
        if self.len() > limit {
            return None;
        }
        let text = Text::inline(self.as_bytes())?;
        self.clear();
        Some(text)
    }
}

impl io::Write for Scratch {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.extend(bytes);
        Ok(bytes.len())
    }
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend(bytes);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(bytes) = self.spilled.take() {
            if bytes.capacity() <= SPARE_KEPT {
                let _ = SPARE.try_with(|spare| spare.set(bytes));
            }
        }
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::inline(text.as_bytes()).unwrap_or_else(|| Text::Heap(text.into_boxed_str()))
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
        assert_eq!(std::mem::align_of::<Text>(), 8);
        for text in [
            "",
            "7",
            r#"{"x":7}"#,
            "é…22 bytes of text!!",
            &"y".repeat(23),
        ] {
            let kept = Text::new(text);
            assert_eq!(matches!(kept, Text::Inline(_)), text.len() <= INLINE);
            assert_eq!(kept.as_str(), text);
            assert_eq!(Text::from(text.to_string()), kept);
            assert_eq!(kept.into_string(), text);
        }
    }

    #[test]
    fn scratch_keeps_short_text_in_place_and_longer_text_whole() {
        let mut scratch = Scratch::new();
        scratch.extend(br#"{"x":"#);
        scratch.push(b'7');
        scratch.push(b'}');
        assert!(scratch.spilled.is_none());
        assert_eq!(scratch.take_inline(256).unwrap().as_str(), r#"{"x":7}"#);
        assert_eq!(scratch.len(), 0);

        let long = format!(r#""{}""#, "é".repeat(30));
        for piece in long.as_bytes().chunks(5) {
            scratch.extend(piece);
        }
        assert!(scratch.spilled.is_some());
        assert_eq!(scratch.as_bytes(), long.as_bytes());
        assert!(scratch.take_inline(256).is_none());
        scratch.truncate(3);
        assert_eq!(scratch.as_bytes(), "\"é".as_bytes());
        // Short again, though spilled: inline once more when taken.
        assert_eq!(scratch.take_inline(256).unwrap().as_str(), "\"é");
        // Never inline beyond the limit.
        scratch.extend(b"12345");
        assert!(scratch.take_inline(4).is_none());
    }
}
