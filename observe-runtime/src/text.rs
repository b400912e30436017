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
/// words (the inline text's length, in the last word, is also where `Heap` and `None` are told
/// apart).
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
#[allow(dead_code)] // Made only by `Inline::from_words`, from the length's byte.
enum Len {
    L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17, L18, L19,
    L20, L21, L22,
}

/// Up to [`INLINE`] bytes in place, in three words: where [`Scratch`] writes a short field, and
/// what [`Inline`] is made of.
#[repr(C, align(8))]
struct Words([u8; 24]);

// What `Inline::from_words` relies on, checked when the crate is built: the length at offset
// 22 of 24 bytes, the size of `Words`.
const _: () = assert!(
    std::mem::offset_of!(Inline, len) == INLINE
        && std::mem::size_of::<Inline>() == std::mem::size_of::<Words>()
);

impl Inline {
    /// The first `len` bytes of `words` (at most [`INLINE`]): read, masked and stored as three
    /// whole words, so that neither this nor the record's later copy of it reads back a word
    /// stored in pieces (which stalls until the pieces reach the cache).
    #[inline]
    fn from_words(words: &Words, len: usize) -> Option<Inline> {
        if len > INLINE {
            return None;
        }
        let word = |i: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&words.0[8 * i..8 * i + 8]);
            let kept = len.saturating_sub(8 * i).min(8);
            let mask = u64::MAX.checked_shr(64 - 8 * kept as u32).unwrap_or(0);
            u64::from_le_bytes(bytes) & mask
        };
        // `len` is at most 22: the last word's seventh byte, beyond the text, holds it.
        let last = word(2) | (len as u64) << 48;
        let mut all = Words([0; 24]);
        all.0[..8].copy_from_slice(&word(0).to_le_bytes());
        all.0[8..16].copy_from_slice(&word(1).to_le_bytes());
        all.0[16..].copy_from_slice(&last.to_le_bytes());
        // SAFETY: `Inline` is `repr(C)`: 22 bytes, `Len` (one byte) at offset 22, a byte of
        // padding; 24 bytes, as `Words` (both checked when the crate is built, above). Any bytes
        // are valid text bytes, and the byte at offset 22 is `len`, at most `INLINE`: a value of
        // `Len` (`repr(u8)`, 0 to `INLINE`).
        #[allow(unsafe_code)]
        Some(unsafe { std::mem::transmute::<Words, Inline>(all) })
    }
}

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
        let mut words = Words([0; 24]);
        words.0.get_mut(..text.len())?.copy_from_slice(text);
        Inline::from_words(&words, text.len()).map(Text::Inline)
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
    inline: Words,
    len: u8,
    spilled: Option<Vec<u8>>,
}

impl Scratch {
    pub(crate) const fn new() -> Scratch {
        Scratch {
            inline: Words([0; 24]),
            len: 0,
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
            None => &self.inline.0[..usize::from(self.len)],
        }
    }

    #[inline]
    pub(crate) fn extend(&mut self, more: &[u8]) {
        let len = usize::from(self.len);
        if self.spilled.is_none() && len + more.len() <= INLINE {
            self.inline.0[len..len + more.len()].copy_from_slice(more);
            // At most INLINE (22): fits a `u8`.
            self.len += more.len() as u8;
            return;
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
        bytes.extend_from_slice(&self.inline.0[..len]);
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
    #[inline(always)]
    pub(crate) fn take_inline(&mut self, limit: usize) -> Option<Text> {
        if self.len() > limit {
            return None;
        }
        let text = match &self.spilled {
            None => Text::Inline(Inline::from_words(&self.inline, usize::from(self.len))?),
            Some(bytes) => Text::inline(bytes)?,
        };
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
        // The bytes left past a shorter text are not taken with it (spilled, then in place).
        scratch.extend(b"[1234567890,1234567890]");
        scratch.truncate(22);
        let taken = scratch.take_inline(256).unwrap();
        assert_eq!(taken, Text::new("[1234567890,1234567890"));
        scratch.extend(b"[12345678901");
        scratch.truncate(9);
        assert_eq!(scratch.take_inline(256), Some(Text::new("[12345678")));

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
