//! Turning the user's values into JSON text: `Serialize` → `Debug` (unless
//! `LANGFUSE_CAPTURE_DEBUG=false`) → a placeholder naming the type, picked without bounds on the user's function (autoref specialization), bounded in size,
//! and never panicking into the user's program. Runs only for recorded observations.

use std::fmt::{self, Write as _};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::text::{Scratch, Text};

/// The default size limit of one captured field (input, output, a metadata value): 1 MB.
pub const DEFAULT_FIELD_LIMIT: usize = 1_000_000;

/// Keeps the first `limit` bytes written and counts them all.
struct Bounded {
    kept: Vec<u8>,
    limit: usize,
    total: usize,
}

impl Bounded {
    fn new(limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            limit,
            total: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The text kept, cut at a character boundary, and how many bytes were cut.
    fn finish(self) -> (String, usize) {
        let total = self.total;
        // The cut may split a character: keep the valid prefix, without copying the bytes.
        let text = String::from_utf8(self.kept).unwrap_or_else(|error| {
            let valid = error.utf8_error().valid_up_to();
            let mut bytes = error.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        });
        let cut = total - text.len();
        (text, cut)
    }
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// The end of a value that was cut: the size of the whole value.
fn marker(total: usize) -> String {
    format!("… [truncated from {total} bytes]")
}

const MARKER_HEAD: &str = "… [truncated from ";
const MARKER_TAIL: &str = " bytes]";

/// Text that ends with a marker: the text before it and the total the marker gives.
fn split_marker(text: &str) -> Option<(&str, usize)> {
    let rest = text.strip_suffix(MARKER_TAIL)?;
    let head = rest.rfind(MARKER_HEAD)?;
    let total = rest[head + MARKER_HEAD.len()..].parse().ok()?;
    Some((&text[..head], total))
}

/// The bytes `c` takes inside a JSON string, escaped as `serde_json` writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if u32::from(c) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The longest beginning of `text` (whole characters) that takes at most `room` bytes, each
/// character counted by `width`.
fn prefix_within(text: &str, room: usize, width: impl Fn(char) -> usize) -> &str {
    let mut used = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        used += width(c);
        if used > room {
            break;
        }
        end = index + c.len_utf8();
    }
    &text[..end]
}

/// A JSON string of at most `limit` bytes as written (escapes included): the beginning of `text`
/// and the marker giving `total`, the size of the whole value. Limits below about 40 bytes cannot
/// hold the marker; the configuration accepts none below 256.
fn cut_json_string(text: &str, total: usize, limit: usize) -> String {
    let marker = marker(total);
    let room = limit.saturating_sub(2 + marker.len());
    let kept = prefix_within(text, room, escaped_len);
    json_string(&format!("{kept}{marker}"))
}

/// Plain text of at most `limit` bytes: the beginning of `text` and the marker giving `total`.
fn cut_text(text: &str, total: usize, limit: usize) -> String {
    let marker = marker(total);
    let room = limit.saturating_sub(marker.len());
    format!("{}{marker}", prefix_within(text, room, char::len_utf8))
}

/// The text of a JSON string whose end may be missing (`"abc\"de`), decoded up to the last
/// complete character; `None` when `json` is not a JSON string.
fn decode_string_prefix(json: &str) -> Option<String> {
    let body = json.strip_prefix('"')?;
    let mut text = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        let decoded = match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('"') => '"',
                Some('\\') => '\\',
                Some('/') => '/',
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    // A cut escape, or half of a surrogate pair (`serde_json` writes neither
                    // for text it escapes itself): the text ends before it.
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(c) if hex.len() == 4 => c,
                        _ => break,
                    }
                }
                _ => break,
            },
            c => c,
        };
        text.push(decoded);
    }
    Some(text)
}

/// JSON text of at most `limit` bytes for a value whose JSON text begins with `json` and takes
/// `total` bytes in all: `json` itself when it is complete and fits, else a JSON string holding
/// its beginning (the text itself for a string, decoded, so nothing is escaped twice) and the
/// marker. A string cut before keeps the total its marker gives, and a single marker.
pub(crate) fn fit_json(json: &str, total: usize, limit: usize) -> String {
    if total <= limit && json.len() == total {
        return json.to_string();
    }
    match decode_string_prefix(json) {
        Some(text) => match split_marker(&text) {
            Some((before, earlier_total)) => cut_json_string(before, earlier_total, limit),
            None => cut_json_string(&text, total, limit),
        },
        None => cut_json_string(json, total, limit),
    }
}

/// A complete captured field (JSON text) within `limit` bytes as sent. An object that is too
/// large keeps its keys: its largest members are cut until it fits (the input object of a
/// function, each argument bounded on its own); anything else becomes a cut JSON string.
pub(crate) fn bound_field(json: String, limit: usize) -> String {
    if json.len() <= limit {
        return json;
    }
    if json.starts_with('{') {
        if let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(&json) {
            for _ in 0..object.len() {
                let size = serde_json::Value::Object(object.clone()).to_string().len();
                if size <= limit {
                    break;
                }
                let largest = object
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_string()))
                    .max_by_key(|(_, value)| value.len());
                let Some((key, value)) = largest else { break };
                let room = value.len().saturating_sub(size - limit);
                let cut = fit_json(&value, value.len(), room);
                if cut.len() >= value.len() {
                    break;
                }
                let cut = serde_json::from_str(&cut).unwrap_or(serde_json::Value::Null);
                object.insert(key, cut);
            }
            let shrunk = serde_json::Value::Object(object).to_string();
            if shrunk.len() <= limit {
                return shrunk;
            }
        }
    }
    fit_json(&json, json.len(), limit)
}

pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// A JSON string naming the type of a value that could not be captured.
pub(crate) fn placeholder<T: ?Sized>(why: &str) -> String {
    json_string(&format!("<{}{why}>", std::any::type_name::<T>()))
}

/// A value as JSON text, at most `limit` bytes, with the media found in it (as attachments of
/// `field`).
pub(crate) fn serialize_json_with_media<T: Serialize + ?Sized>(
    value: &T,
    limit: usize,
    field: crate::media::MediaField,
) -> (String, Vec<crate::media::MediaAttachment>) {
    let mut out = JsonOut::new(limit);
    out.write_serialize(value);
    let media = out.take_media(field);
    (out.take_text(), media)
}

/// A value as JSON text, at most `limit` bytes: a larger value becomes a JSON string holding its
/// beginning and a marker giving its size.
pub(crate) fn serialize_json<T: Serialize + ?Sized>(value: &T, limit: usize) -> String {
    let mut out = JsonOut::new(limit);
    out.detect_media = false;
    out.write_serialize(value);
    out.take_text()
}

/// Where the attribute writes captured JSON: a short field in place, a longer one in a reusable
/// per-thread buffer, copied once into text of the exact size when the field is complete. Each
/// value written is bounded by the field limit on its own.
pub struct JsonOut {
    buffer: Scratch,
    limit: usize,
    /// Media found in what was written (its references are in the text). Dropped by hand:
    /// usually it holds nothing, and its drop glue was a call per captured field.
    media: std::mem::ManuallyDrop<crate::media::Found>,
    /// Whether media is looked for (only where its attachments are kept).
    detect_media: bool,
}

impl Drop for JsonOut {
    #[inline]
    fn drop(&mut self) {
        if !self.media.holds_nothing() {
            drop(std::mem::take(&mut *self.media));
        }
    }
}

impl JsonOut {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buffer: Scratch::new(),
            limit,
            media: std::mem::ManuallyDrop::default(),
            detect_media: true,
        }
    }

    /// The media found in what was written so far, as attachments of `field`.
    pub(crate) fn take_media(
        &mut self,
        field: crate::media::MediaField,
    ) -> Vec<crate::media::MediaAttachment> {
        if self.media.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut *self.media).into_attachments(field)
    }

    /// Whether media was found in what was written.
    #[inline]
    pub(crate) fn has_media(&self) -> bool {
        !self.media.is_empty()
    }

    pub(crate) fn push_byte(&mut self, byte: u8) {
        self.buffer.push(byte);
    }

    pub(crate) fn push_str(&mut self, text: &str) {
        self.buffer.extend(text.as_bytes());
    }

    /// What was written, as a record keeps a captured field (leaving the buffer empty): inline
    /// when short (no allocation), else bounded by the field limit as a whole.
    ///
    /// Inlined where the record takes the text, so that the short text's words go there from
    /// registers, not through a return value stored in pieces and read back at once.
    #[inline(always)]
    pub(crate) fn take_field(&mut self) -> Text {
        match self.buffer.take_inline(self.limit) {
            Some(text) => text,
            None => self.take_long_field(),
        }
    }

    #[inline(never)]
    fn take_long_field(&mut self) -> Text {
        bound_field(self.take_text(), self.limit).into()
    }

    /// The text written so far, leaving the buffer empty.
    pub(crate) fn take_text(&mut self) -> String {
        let written = self.buffer.as_bytes();
        let text = match std::str::from_utf8(written) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(written).into_owned(),
        };
        self.buffer.clear();
        text
    }

    /// Writes `value` as JSON; a value over the limit becomes a JSON string holding its beginning
    /// and a marker, one that fails or panics a placeholder naming its type.
    pub(crate) fn write_serialize<T: Serialize + ?Sized>(&mut self, value: &T) {
        let start = self.buffer.len();
        let mut out = Appending {
            buffer: &mut self.buffer,
            start,
            limit: self.limit,
            total: 0,
        };
        let media = &mut self.media;
        let found_before = media.len();
        let detect_media = self.detect_media;
        let result = catch_unwind(AssertUnwindSafe(|| {
            if detect_media && crate::media::enabled() {
                // Media is replaced by its reference as it is written, before any limit.
                let result = crate::media::collecting(media, |found| {
                    let formatter = crate::media::MediaFormatter::new(found, Vec::new());
                    let mut serializer =
                        serde_json::Serializer::with_formatter(&mut out, formatter);
                    value.serialize(&mut serializer)
                });
                if media.hints.is_empty() {
                    return result;
                }
                // A `data` field came before the field naming its type (the sorted keys of a
                // `serde_json::Value`): once more, knowing which.
                let hints = std::mem::take(&mut media.hints);
                media.truncate(found_before);
                out.buffer.truncate(out.start);
                out.total = 0;
                crate::media::collecting(media, |found| {
                    let formatter = crate::media::MediaFormatter::new(found, hints);
                    let mut serializer =
                        serde_json::Serializer::with_formatter(&mut out, formatter);
                    value.serialize(&mut serializer)
                })
            } else {
                serde_json::to_writer(&mut out, value)
            }
        }));
        let total = out.total;
        match result {
            Ok(Ok(())) if total <= self.limit => {}
            Ok(Ok(())) => {
                let kept = &self.buffer.as_bytes()[start..];
                let valid = match std::str::from_utf8(kept) {
                    Ok(text) => text.len(),
                    Err(error) => error.valid_up_to(),
                };
                let text = String::from_utf8_lossy(&kept[..valid]);
                let marked = fit_json(&text, total, self.limit);
                self.buffer.truncate(start);
                self.push_str(&marked);
            }
            Ok(Err(error)) => {
                self.buffer.truncate(start);
                self.push_str(&placeholder::<T>(&format!(": not serializable: {error}")));
            }
            Err(_) => {
                self.buffer.truncate(start);
                self.push_str(&placeholder::<T>(": its Serialize impl panicked"));
            }
        }
    }
}

/// Appends to a buffer, keeping at most `limit` bytes after `start` and counting them all.
struct Appending<'a> {
    buffer: &'a mut Scratch,
    start: usize,
    limit: usize,
    total: usize,
}

impl io::Write for Appending<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.total += bytes.len();
        let room = (self.start + self.limit).saturating_sub(self.buffer.len());
        self.buffer.extend(&bytes[..bytes.len().min(room)]);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Formats a value with `Debug` or `Display`, keeping its first `limit` bytes: the text kept, and
/// the size of the whole text when it was cut.
fn format_bounded(
    limit: usize,
    what: &str,
    write: impl FnOnce(&mut Bounded) -> fmt::Result,
) -> Result<(String, Option<usize>), String> {
    let mut out = Bounded::new(limit);
    match catch_unwind(AssertUnwindSafe(|| write(&mut out))) {
        Ok(Ok(())) => {
            let total = out.total;
            let (text, cut) = out.finish();
            Ok((text, (cut > 0).then_some(total)))
        }
        Ok(Err(_)) => Err(format!(": its {what} impl failed")),
        Err(_) => Err(format!(": its {what} impl panicked")),
    }
}

/// Plain text of at most `limit` bytes, from [`format_bounded`].
fn bounded_text(formatted: (String, Option<usize>), limit: usize) -> String {
    match formatted {
        (text, None) if text.len() <= limit => text,
        (text, total) => {
            let total = total.unwrap_or(text.len());
            cut_text(&text, total, limit)
        }
    }
}

/// Whether a value that is not `Serialize` is captured through its `Debug` text
/// (`LANGFUSE_CAPTURE_DEBUG`, on by default); off, it is a placeholder naming its type, since
/// `Debug` can print secrets (a client's headers, a configuration struct).
static CAPTURE_DEBUG: AtomicBool = AtomicBool::new(true);

/// Sets [`CAPTURE_DEBUG`] (at `init`).
pub(crate) fn set_capture_debug(on: bool) {
    CAPTURE_DEBUG.store(on, Ordering::Relaxed);
}

/// A captured value through its `Debug` text, as a JSON string (a placeholder when Debug
/// capture is off).
pub(crate) fn debug_json<T: fmt::Debug + ?Sized>(value: &T, limit: usize) -> String {
    if !CAPTURE_DEBUG.load(Ordering::Relaxed) {
        return placeholder::<T>(": not Serialize, and Debug capture is off");
    }
    match format_bounded(limit, "Debug", |out| write!(out, "{value:?}")) {
        Ok((text, total)) => {
            let json = json_string(&text);
            match total {
                None if json.len() <= limit => json,
                total => cut_json_string(&text, total.unwrap_or(text.len()), limit),
            }
        }
        Err(why) => placeholder::<T>(&why),
    }
}

pub(crate) fn display_text<T: fmt::Display + ?Sized>(value: &T, limit: usize) -> String {
    format_bounded(limit, "Display", |out| write!(out, "{value}"))
        .map(|formatted| bounded_text(formatted, limit))
        .unwrap_or_else(|why| format!("<{}{why}>", std::any::type_name::<T>()))
}

pub(crate) fn debug_text<T: fmt::Debug + ?Sized>(value: &T, limit: usize) -> String {
    format_bounded(limit, "Debug", |out| write!(out, "{value:?}"))
        .map(|formatted| bounded_text(formatted, limit))
        .unwrap_or_else(|why| format!("<{}{why}>", std::any::type_name::<T>()))
}

/// Wraps a reference to a value for capture: `(&&&&Wrap(&value)).__observe_write(out)` picks
/// [`Scalar`], else `Serialize`, else `Debug`, else a placeholder, by method resolution alone.
pub struct Wrap<'a, T: ?Sized>(pub &'a T);

/// Values written as JSON straight into the buffer, without the general path: their `Serialize`
/// cannot fail or panic, no media can be in them, and their text (at most 40 bytes) is far below
/// any field limit (the configuration accepts none below 256).
pub trait Scalar: Serialize {
    /// Writes the value as JSON text into `out` (as `serde_json` writes it).
    #[doc(hidden)]
    fn __observe_scalar(&self, out: &mut JsonOut) {
        // Writing into a `Vec` cannot fail, nor can these values' `Serialize`.
        let _ = serde_json::to_writer(&mut out.buffer, self);
    }
}

/// Integers are written with `itoa` straight into the buffer, as `serde_json` does, without its
/// serializer and its `Result` around the write.
macro_rules! integers {
    ($($t:ty)*) => { $(
        impl Scalar for $t {
            #[inline]
            fn __observe_scalar(&self, out: &mut JsonOut) {
                out.buffer.extend(itoa::Buffer::new().format(*self).as_bytes());
            }
        }
    )* };
}
integers!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

impl Scalar for bool {
    #[inline]
    fn __observe_scalar(&self, out: &mut JsonOut) {
        out.buffer
            .extend(if *self { b"true".as_slice() } else { b"false" });
    }
}

impl Scalar for f32 {}
impl Scalar for f64 {}
impl Scalar for char {}

impl<T: Scalar + ?Sized> Scalar for &T {
    #[inline]
    fn __observe_scalar(&self, out: &mut JsonOut) {
        (**self).__observe_scalar(out);
    }
}

impl<T: Scalar + ?Sized> Scalar for &mut T {
    #[inline]
    fn __observe_scalar(&self, out: &mut JsonOut) {
        (**self).__observe_scalar(out);
    }
}

/// Capture of a [`Scalar`] (first choice).
pub trait ViaScalar {
    /// Writes the value as JSON.
    fn __observe_write(&self, out: &mut JsonOut);
}

/// Capture through `Serialize` (second choice).
pub trait ViaSerialize {
    /// Writes the value as JSON.
    fn __observe_write(&self, out: &mut JsonOut);
}

/// Capture through `Debug` (third choice): a JSON string of the `Debug` text.
pub trait ViaDebug {
    /// Writes the value as JSON.
    fn __observe_write(&self, out: &mut JsonOut);
}

/// Capture of a value that is neither `Serialize` nor `Debug`: a JSON string naming its type.
pub trait ViaPlaceholder {
    /// Writes the value as JSON.
    fn __observe_write(&self, out: &mut JsonOut);
}

impl<T: Scalar + ?Sized> ViaScalar for &&&Wrap<'_, T> {
    #[inline]
    fn __observe_write(&self, out: &mut JsonOut) {
        self.0.__observe_scalar(out);
    }
}

impl<T: Serialize + ?Sized> ViaSerialize for &&Wrap<'_, T> {
    #[inline]
    fn __observe_write(&self, out: &mut JsonOut) {
        out.write_serialize(self.0);
    }
}

impl<T: fmt::Debug + ?Sized> ViaDebug for &Wrap<'_, T> {
    fn __observe_write(&self, out: &mut JsonOut) {
        let json = debug_json(self.0, out.limit);
        out.push_str(&json);
    }
}

impl<T: ?Sized> ViaPlaceholder for Wrap<'_, T> {
    fn __observe_write(&self, out: &mut JsonOut) {
        out.push_str(&placeholder::<T>(""));
    }
}

/// Wraps a reference to an error for its message: `Display`, else `Debug`, else a placeholder.
pub struct ErrWrap<'a, T: ?Sized>(pub &'a T);

/// Error message through `Display` (first choice).
pub trait ErrViaDisplay {
    /// The message as plain text.
    fn __observe_error(&self, limit: usize) -> String;
}

/// Error message through `Debug` (second choice).
pub trait ErrViaDebug {
    /// The message as plain text.
    fn __observe_error(&self, limit: usize) -> String;
}

/// Error message of a type that is neither `Display` nor `Debug`.
pub trait ErrViaPlaceholder {
    /// The message as plain text.
    fn __observe_error(&self, limit: usize) -> String;
}

impl<T: fmt::Display + ?Sized> ErrViaDisplay for &&ErrWrap<'_, T> {
    fn __observe_error(&self, limit: usize) -> String {
        display_text(self.0, limit)
    }
}

impl<T: fmt::Debug + ?Sized> ErrViaDebug for &ErrWrap<'_, T> {
    fn __observe_error(&self, limit: usize) -> String {
        debug_text(self.0, limit)
    }
}

impl<T: ?Sized> ErrViaPlaceholder for ErrWrap<'_, T> {
    fn __observe_error(&self, _limit: usize) -> String {
        format!("<{}>", std::any::type_name::<T>())
    }
}

#[cfg(test)]
#[allow(clippy::needless_borrow, clippy::needless_borrows_for_generic_args)] // the references are the point
mod tests {
    use super::*;

    struct Opaque;
    #[derive(Debug)]
    struct OnlyDebug {
        #[allow(dead_code)]
        k: u8,
    }
    struct Panicky;
    impl Serialize for Panicky {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("boom")
        }
    }

    fn written(write: impl FnOnce(&mut JsonOut), limit: usize) -> String {
        let mut out = JsonOut::new(limit);
        write(&mut out);
        out.take_text()
    }

    #[test]
    fn picks_scalar_then_serialize_then_debug_then_placeholder() {
        // Scalars take the direct path, and write what serde_json writes.
        fn same_as_serde<T: Scalar + fmt::Debug>(value: T) {
            let direct = written(|o| (&&&&Wrap(&value)).__observe_write(o), 256);
            assert_eq!(direct, serde_json::to_string(&value).unwrap(), "{value:?}");
        }
        same_as_serde(u64::MAX);
        same_as_serde(i128::MIN);
        same_as_serde(-0.1f64);
        same_as_serde(f64::NAN);
        same_as_serde(f32::INFINITY);
        same_as_serde(true);
        same_as_serde('"');
        same_as_serde('\u{1}');
        same_as_serde(&&7u8);
        assert_eq!(written(|o| (&&&&Wrap(&7u64)).__observe_write(o), 256), "7");
        assert_eq!(
            written(|o| (&&&&Wrap(&vec![1, 2])).__observe_write(o), 100),
            "[1,2]"
        );
        assert_eq!(
            written(|o| (&&&&Wrap(&OnlyDebug { k: 3 })).__observe_write(o), 100),
            "\"OnlyDebug { k: 3 }\""
        );
        assert_eq!(
            written(|o| (&&&&Wrap(&Opaque)).__observe_write(o), 100),
            "\"<observe_runtime::capture::tests::Opaque>\""
        );
    }

    #[test]
    fn a_panicking_serialize_gives_a_placeholder() {
        let json = written(|o| (&&&&Wrap(&Panicky)).__observe_write(o), 100);
        assert_eq!(
            json,
            "\"<observe_runtime::capture::tests::Panicky: its Serialize impl panicked>\""
        );
    }

    #[test]
    fn scalars_are_written_as_serde_json_writes_them() {
        fn check<T: Scalar>(value: T) {
            let text = written(
                |out| (&&&Wrap(&value)).__observe_write(out),
                DEFAULT_FIELD_LIMIT,
            );
            let expected = serde_json::to_string(&value).expect("a scalar serializes");
            assert_eq!(text, expected);
        }
        check(0u8);
        check(u64::MAX);
        check(u128::MAX);
        check(i64::MIN);
        check(i128::MIN);
        check(-1isize);
        check(true);
        check(false);
        check(1.5f64);
        check(f32::NAN);
        check('"');
        check(&&7u16);
    }

    #[test]
    fn large_values_are_cut_within_the_limit_as_written() {
        let json = serialize_json(&"é".repeat(40), 64);
        assert_eq!(
            json,
            format!("\"{}… [truncated from 82 bytes]\"", "é".repeat(16))
        );
        assert_eq!(json.len(), 63, "a whole é would pass the limit");
        assert_eq!(serialize_json(&"short", 64), "\"short\"");
        // Text that needs escaping: decoded once, escaped once, the escapes within the limit.
        let json = serialize_json(&"\"\\\n\u{1}".repeat(50), 64);
        assert_eq!(
            json,
            r#""\"\\\n\u0001\"\\\n\u0001\"\\\n… [truncated from 602 bytes]""#
        );
        assert!(json.len() <= 64);
        // An object cut becomes a string of its beginning.
        let json = serialize_json(&serde_json::json!({"k": "v".repeat(100)}), 64);
        assert_eq!(
            json,
            format!(
                r#""{{\"k\":\"{}… [truncated from 108 bytes]""#,
                "v".repeat(23)
            )
        );
        assert!(json.len() <= 64);
    }

    #[test]
    fn a_string_cut_again_keeps_one_marker_and_the_first_total() {
        let once = serialize_json(&"x".repeat(500), 100);
        assert_eq!(once.len(), 100);
        let twice = fit_json(&once, once.len(), 80);
        assert_eq!(twice.len(), 80);
        assert!(
            twice.ends_with("x… [truncated from 502 bytes]\""),
            "{twice}"
        );
        assert_eq!(twice.matches("truncated").count(), 1);
    }

    #[test]
    fn an_object_too_large_keeps_its_keys_and_cuts_its_largest_member() {
        let object = format!(
            "{{\"a\":1,\"b\":{}}}",
            serialize_json(&"y".repeat(300), 120)
        );
        let bounded = bound_field(object, 120);
        assert_eq!(bounded.len(), 120);
        let value: serde_json::Value = serde_json::from_str(&bounded).unwrap();
        assert_eq!(value["a"], 1);
        assert!(value["b"]
            .as_str()
            .unwrap()
            .ends_with("y… [truncated from 302 bytes]"));
    }

    #[test]
    fn debug_and_display_text_hold_the_limit() {
        let json = debug_json(&"\"q\"".repeat(100), 64);
        assert!(json.len() <= 64, "{json}");
        assert!(serde_json::from_str::<String>(&json).is_ok());
        let text = display_text(&"z".repeat(100), 64);
        assert_eq!(text.len(), 64);
        assert!(text.ends_with("z… [truncated from 100 bytes]"));
    }

    #[test]
    fn errors_use_display_then_debug() {
        let io = std::io::Error::other("disk full");
        assert_eq!((&&&ErrWrap(&io)).__observe_error(100), "disk full");
        assert_eq!(
            (&&&ErrWrap(&OnlyDebug { k: 1 })).__observe_error(100),
            "OnlyDebug { k: 1 }"
        );
    }
}
