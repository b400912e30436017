//! Turning the user's values into JSON text: `Serialize` → `Debug` → a placeholder naming the
//! type, picked without bounds on the user's function (autoref specialization), bounded in size,
//! and never panicking into the user's program. Runs only for recorded observations.

use std::fmt::{self, Write as _};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;

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

fn truncated_text(text: &str, cut: usize, total: usize) -> String {
    format!("{text}… [truncated: {cut} of {total} bytes cut]")
}

pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// A JSON string naming the type of a value that could not be captured.
pub(crate) fn placeholder<T: ?Sized>(why: &str) -> String {
    json_string(&format!("<{}{why}>", std::any::type_name::<T>()))
}

/// A value as JSON text, at most about `limit` bytes: a larger value becomes a JSON string holding
/// its beginning and a marker saying how much was cut.
pub(crate) fn serialize_json<T: Serialize + ?Sized>(value: &T, limit: usize) -> String {
    let mut out = JsonOut::new(limit);
    out.write_serialize(value);
    out.take_text()
}

thread_local! {
    /// The buffer captured values are written into, reused from one call to the next.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Where the attribute writes captured JSON: a reusable per-thread buffer, copied once into text
/// of the exact size when the field is complete. Each value written is bounded by the field
/// limit on its own.
pub struct JsonOut {
    buffer: Vec<u8>,
    limit: usize,
}

impl JsonOut {
    pub(crate) fn new(limit: usize) -> Self {
        let mut buffer = SCRATCH.try_with(|s| s.take()).unwrap_or_default();
        buffer.clear();
        Self { buffer, limit }
    }

    pub(crate) fn push_byte(&mut self, byte: u8) {
        self.buffer.push(byte);
    }

    pub(crate) fn push_str(&mut self, text: &str) {
        self.buffer.extend_from_slice(text.as_bytes());
    }

    /// The text written so far, leaving the buffer empty.
    pub(crate) fn take_text(&mut self) -> String {
        let text = match std::str::from_utf8(&self.buffer) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(&self.buffer).into_owned(),
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
        let result = catch_unwind(AssertUnwindSafe(|| serde_json::to_writer(&mut out, value)));
        let total = out.total;
        match result {
            Ok(Ok(())) if total <= self.limit => {}
            Ok(Ok(())) => {
                let kept = &self.buffer[start..];
                let valid = match std::str::from_utf8(kept) {
                    Ok(text) => text.len(),
                    Err(error) => error.valid_up_to(),
                };
                let text = String::from_utf8_lossy(&kept[..valid]).into_owned();
                let marked = json_string(&truncated_text(&text, total - valid, total));
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

impl Drop for JsonOut {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        // Huge buffers are not kept: one large value must not pin its memory on the thread.
        if buffer.capacity() <= 64 * 1024 {
            let _ = SCRATCH.try_with(|s| s.set(buffer));
        }
    }
}

/// Appends to a buffer, keeping at most `limit` bytes after `start` and counting them all.
struct Appending<'a> {
    buffer: &'a mut Vec<u8>,
    start: usize,
    limit: usize,
    total: usize,
}

impl io::Write for Appending<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.total += bytes.len();
        let room = (self.start + self.limit).saturating_sub(self.buffer.len());
        self.buffer
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Formats a value with `Debug` or `Display` into text of at most about `limit` bytes.
fn format_bounded(
    limit: usize,
    what: &str,
    write: impl FnOnce(&mut Bounded) -> fmt::Result,
) -> Result<String, String> {
    let mut out = Bounded::new(limit);
    match catch_unwind(AssertUnwindSafe(|| write(&mut out))) {
        Ok(Ok(())) => {
            let total = out.total;
            let (text, cut) = out.finish();
            Ok(if cut == 0 {
                text
            } else {
                truncated_text(&text, cut, total)
            })
        }
        Ok(Err(_)) => Err(format!(": its {what} impl failed")),
        Err(_) => Err(format!(": its {what} impl panicked")),
    }
}

pub(crate) fn debug_json<T: fmt::Debug + ?Sized>(value: &T, limit: usize) -> String {
    match format_bounded(limit, "Debug", |out| write!(out, "{value:?}")) {
        Ok(text) => json_string(&text),
        Err(why) => placeholder::<T>(&why),
    }
}

pub(crate) fn display_text<T: fmt::Display + ?Sized>(value: &T, limit: usize) -> String {
    format_bounded(limit, "Display", |out| write!(out, "{value}"))
        .unwrap_or_else(|why| format!("<{}{why}>", std::any::type_name::<T>()))
}

pub(crate) fn debug_text<T: fmt::Debug + ?Sized>(value: &T, limit: usize) -> String {
    format_bounded(limit, "Debug", |out| write!(out, "{value:?}"))
        .unwrap_or_else(|why| format!("<{}{why}>", std::any::type_name::<T>()))
}

/// Wraps a reference to a value for capture: `(&&&Wrap(&value)).__observe_write(out)` picks
/// `Serialize`, else `Debug`, else a placeholder, by method resolution alone.
pub struct Wrap<'a, T: ?Sized>(pub &'a T);

/// Capture through `Serialize` (first choice).
pub trait ViaSerialize {
    /// Writes the value as JSON.
    fn __observe_write(&self, out: &mut JsonOut);
}

/// Capture through `Debug` (second choice): a JSON string of the `Debug` text.
pub trait ViaDebug {
    /// Writes the value as JSON.
    fn __observe_write(&self, out: &mut JsonOut);
}

/// Capture of a value that is neither `Serialize` nor `Debug`: a JSON string naming its type.
pub trait ViaPlaceholder {
    /// Writes the value as JSON.
    fn __observe_write(&self, out: &mut JsonOut);
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
#[allow(clippy::needless_borrow)] // the triple reference is the point
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
    fn picks_serialize_then_debug_then_placeholder() {
        assert_eq!(
            written(|o| (&&&Wrap(&vec![1, 2])).__observe_write(o), 100),
            "[1,2]"
        );
        assert_eq!(
            written(|o| (&&&Wrap(&OnlyDebug { k: 3 })).__observe_write(o), 100),
            "\"OnlyDebug { k: 3 }\""
        );
        assert_eq!(
            written(|o| (&&&Wrap(&Opaque)).__observe_write(o), 100),
            "\"<observe_runtime::capture::tests::Opaque>\""
        );
    }

    #[test]
    fn a_panicking_serialize_gives_a_placeholder() {
        let json = written(|o| (&&&Wrap(&Panicky)).__observe_write(o), 100);
        assert_eq!(
            json,
            "\"<observe_runtime::capture::tests::Panicky: its Serialize impl panicked>\""
        );
    }

    #[test]
    fn large_values_are_cut_with_a_marker() {
        let json = serialize_json(&"é".repeat(10), 8);
        assert_eq!(json, "\"\\\"ééé… [truncated: 15 of 22 bytes cut]\"");
        assert_eq!(serialize_json(&"short", 8), "\"short\"");
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
