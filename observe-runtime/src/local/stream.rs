//! Streamed results: the observation of a function that returns an iterator or a stream (tokens
//! of a chat completion, search hits) stays open until the last item, not until the function
//! returns. [`ObservedIter`] and [`ObservedStream`] make it current while each item is produced,
//! note the first item's time (time to first token), collect the items as the output (strings
//! concatenated, anything else a JSON array, bounded by the field limit), mark `Err` items as
//! errors, and say how many items were taken when the consumer stops early.
//!
//! Which value kinds an item has is picked where the attribute expands, by method resolution on
//! [`ItemWrap`] (a `Result` item by its trait impls, not its name).

use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::Serialize;

use super::observed::Observed;
use super::span;
use crate::capture::{self, JsonOut};
use crate::clock::Ticks;
use crate::record::Level;

/// Where the attribute's item recorder writes one item: its value as JSON, or its error.
pub struct ItemRecorder {
    out: Option<JsonOut>,
    error: Option<String>,
    limit: usize,
}

impl ItemRecorder {
    /// The buffer for the item's value as JSON, when output is captured.
    pub fn value(&mut self) -> Option<&mut JsonOut> {
        self.out.as_mut()
    }

    /// Marks the item an error with this message.
    pub fn error(&mut self, message: String) {
        self.error = Some(message);
    }

    /// The size limit of one captured field in bytes.
    pub fn field_limit(&self) -> usize {
        self.limit
    }
}

/// Wraps a reference to an item for recording: `(&&&&&&ItemWrap(item)).__observe_item(rec)`
/// picks, by method resolution alone, a `Result` with a `Serialize` value and a `Display`
/// error, else a `Result` with `Debug` parts, else any `Result`, else a `Serialize` value, else
/// a `Debug` one, else a placeholder.
pub struct ItemWrap<'a, T: ?Sized>(pub &'a T);

macro_rules! item_trait {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            pub trait $name {
                /// Records the item.
                fn __observe_item(&self, recorder: &mut ItemRecorder);
            }
        )*
    };
}

item_trait! {
    /// A `Result` item whose value is `Serialize` and error `Display` (first choice).
    ItemViaResultSerialize;
    /// A `Result` item whose parts are `Debug`.
    ItemViaResultDebug;
    /// Any `Result` item: an `Err` is an error, whatever its type.
    ItemViaResult;
    /// A `Serialize` item.
    ItemViaSerialize;
    /// A `Debug` item.
    ItemViaDebug;
    /// Any other item: a placeholder naming its type.
    ItemViaPlaceholder;
}

impl<T: Serialize, E: fmt::Display> ItemViaResultSerialize for &&&&&ItemWrap<'_, Result<T, E>> {
    fn __observe_item(&self, recorder: &mut ItemRecorder) {
        match self.0 {
            Ok(value) => {
                if let Some(out) = recorder.value() {
                    out.write_serialize(value);
                }
            }
            Err(error) => {
                let message = capture::display_text(error, recorder.limit);
                recorder.error(message);
            }
        }
    }
}

impl<T: fmt::Debug, E: fmt::Debug> ItemViaResultDebug for &&&&ItemWrap<'_, Result<T, E>> {
    fn __observe_item(&self, recorder: &mut ItemRecorder) {
        match self.0 {
            Ok(value) => {
                let limit = recorder.limit;
                if let Some(out) = recorder.value() {
                    out.push_str(&capture::debug_json(value, limit));
                }
            }
            Err(error) => {
                let message = capture::debug_text(error, recorder.limit);
                recorder.error(message);
            }
        }
    }
}

impl<T, E> ItemViaResult for &&&ItemWrap<'_, Result<T, E>> {
    fn __observe_item(&self, recorder: &mut ItemRecorder) {
        match self.0 {
            Ok(_) => {
                if let Some(out) = recorder.value() {
                    out.push_str(&capture::placeholder::<T>(""));
                }
            }
            Err(_) => recorder.error(format!("an error of type {}", std::any::type_name::<E>())),
        }
    }
}

impl<T: Serialize + ?Sized> ItemViaSerialize for &&ItemWrap<'_, T> {
    fn __observe_item(&self, recorder: &mut ItemRecorder) {
        if let Some(out) = recorder.value() {
            out.write_serialize(self.0);
        }
    }
}

impl<T: fmt::Debug + ?Sized> ItemViaDebug for &ItemWrap<'_, T> {
    fn __observe_item(&self, recorder: &mut ItemRecorder) {
        let limit = recorder.limit;
        if let Some(out) = recorder.value() {
            out.push_str(&capture::debug_json(self.0, limit));
        }
    }
}

impl<T: ?Sized> ItemViaPlaceholder for ItemWrap<'_, T> {
    fn __observe_item(&self, recorder: &mut ItemRecorder) {
        if let Some(out) = recorder.value() {
            out.push_str(&capture::placeholder::<T>(""));
        }
    }
}

/// Bytes kept free for the marker of cut items, its quotes and brackets (numbers up to 20 digits).
const MARKER_ROOM: usize = 64;

/// The items kept for the output: their JSON texts, comma-separated, within the field limit
/// (the marker and the brackets included).
#[derive(Default)]
struct Collected {
    json: String,
    kept: u64,
    cut: u64,
    all_strings: bool,
}

impl Collected {
    fn push(&mut self, item: &str, limit: usize) {
        if self.kept == 0 && self.cut == 0 {
            self.all_strings = true;
        }
        // Room is kept for the marker, so that the output with it stays within the limit.
        if self.cut > 0 || self.json.len() + item.len() + 1 + MARKER_ROOM > limit {
            self.cut += 1;
            return;
        }
        self.all_strings &= item.starts_with('"');
        if self.kept > 0 {
            self.json.push(',');
        }
        self.json.push_str(item);
        self.kept += 1;
    }

    /// The output: the strings concatenated, or a JSON array of the items.
    fn output(self) -> Option<String> {
        if self.kept == 0 && self.cut == 0 {
            return None;
        }
        let total = self.kept + self.cut;
        let marker =
            (self.cut > 0).then(|| format!("… [truncated: {} of {total} items cut]", self.cut));
        let array = format!("[{}]", self.json);
        if self.all_strings {
            if let Ok(parts) = serde_json::from_str::<Vec<String>>(&array) {
                let mut text = parts.concat();
                if let Some(marker) = marker {
                    text.push_str(&marker);
                }
                return Some(capture::json_string(&text));
            }
        }
        Some(match marker {
            Some(marker) => {
                let separator = if self.kept > 0 { "," } else { "" };
                format!(
                    "[{}{separator}{}]",
                    self.json,
                    capture::json_string(&marker)
                )
            }
            None => array,
        })
    }
}

/// What the wrappers share: the observation, the item recorder, and what was seen so far.
struct StreamState<F> {
    observed: Option<Observed>,
    record: F,
    items: u64,
    errors: u64,
    collected: Collected,
    /// A panic was already unwinding when it began (in a destructor): dropped early, it was
    /// stopped by its consumer, not failed.
    unwinding: bool,
}

impl<F> StreamState<F> {
    fn new(observed: Option<Observed>, record: F) -> Self {
        Self {
            observed,
            record,
            items: 0,
            errors: 0,
            collected: Collected::default(),
            unwinding: std::thread::panicking(),
        }
    }

    /// Runs `step` (producing an item) with the observation current; a panic is recorded and
    /// resumed.
    fn step<R>(&mut self, step: impl FnOnce() -> R) -> R {
        let Some(observed) = &mut self.observed else {
            return step();
        };
        let token = observed.enter();
        let result = catch_unwind(AssertUnwindSafe(step));
        observed.leave(token);
        match result {
            Ok(value) => value,
            Err(payload) => {
                observed.record_panic(&*payload);
                resume_unwind(payload)
            }
        }
    }

    fn on_item<T>(&mut self, item: &T)
    where
        F: FnMut(&T, &mut ItemRecorder),
    {
        let Some(observed) = &mut self.observed else {
            return;
        };
        self.items += 1;
        if self.items == 1 {
            let now = Ticks::now();
            observed.with_data(|data| {
                let details = data.details();
                if details.completion_start_unix_nanos.is_none() {
                    details.first_item = Some(now);
                }
            });
        }
        let limit = observed.field_limit();
        // Items are recorded while the observation is (even when the body set an output: their
        // errors still count).
        let recording = observed.with_data(|_| ()).is_some();
        if !recording {
            return;
        }
        let mut recorder = ItemRecorder {
            out: observed.captures_output().then(|| JsonOut::new(limit)),
            error: None,
            limit,
        };
        (self.record)(item, &mut recorder);
        if let Some(mut out) = recorder.out.take() {
            let text = out.take_text();
            if !text.is_empty() {
                self.collected.push(&text, limit);
            }
            let media = out.take_media(crate::media::MediaField::Output);
            if !media.is_empty() {
                observed.with_data(|data| data.details().media.extend(media));
            }
        }
        if let Some(message) = recorder.error {
            self.errors += 1;
            let count = self.errors;
            observed.with_data(move |data| {
                data.set_level(Level::Error);
                if count == 1 {
                    *data.status_message_mut() = Some(message);
                }
            });
        }
    }

    /// Ends the observation: `early` when the consumer stopped before the last item.
    fn finish(&mut self, early: bool) {
        let Some(mut observed) = self.observed.take() else {
            return;
        };
        // Ended by its last item, or stopped in the destructor it began in: a panic unwinding now
        // did not go through it.
        if !early || self.unwinding {
            observed.mark_panic_elsewhere();
        }
        let stopped = early && !span::panic_went_through(self.unwinding);
        let items = self.items;
        let errors = self.errors;
        let limit = observed.field_limit();
        let output = std::mem::take(&mut self.collected)
            .output()
            .map(|output| capture::bound_field(output, limit));
        observed.with_data(move |data| {
            if let Some(output) = output {
                data.set_captured_output(output.into());
            }
            if errors > 1 {
                let status = data.status_message_mut();
                let first = status.take().unwrap_or_default();
                let more = errors - 1;
                let plural = if more == 1 { "" } else { "s" };
                *status = Some(format!("{first} (and {more} more error{plural})"));
            }
            if stopped {
                if data.level() < Level::Warning {
                    data.set_level(Level::Warning);
                }
                let note = format!(
                    "dropped before the end, after {items} item{}",
                    if items == 1 { "" } else { "s" }
                );
                let status = data.status_message_mut();
                *status = Some(match status.take() {
                    Some(message) => format!("{message}; {note}"),
                    None => note,
                });
            }
        });
        drop(observed);
    }
}

/// An iterator run under the observation of the function that returned it; see the module docs.
pub struct ObservedIter<I, F> {
    inner: Option<I>,
    state: StreamState<F>,
}

/// Wraps the iterator an observed function returned: the observation ends with its last item,
/// or when it is dropped.
pub fn observe_iter<I, F>(observed: Option<Observed>, iter: I, record: F) -> ObservedIter<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item, &mut ItemRecorder),
{
    ObservedIter {
        inner: Some(iter),
        state: StreamState::new(observed, record),
    }
}

impl<I, F> ObservedIter<I, F> {
    /// Drops the inner iterator with the observation current, then ends the observation.
    fn close(&mut self, early: bool) {
        if let Some(inner) = self.inner.take() {
            self.state.step(move || drop(inner));
        }
        self.state.finish(early);
    }
}

impl<I, F> Iterator for ObservedIter<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item, &mut ItemRecorder),
{
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let inner = self.inner.as_mut()?;
        if self.state.observed.is_none() {
            return inner.next();
        }
        let item = self.state.step(|| inner.next());
        match &item {
            Some(item) => self.state.on_item(item),
            None => self.close(false),
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner
            .as_ref()
            .map_or((0, Some(0)), Iterator::size_hint)
    }
}

impl<I, F> DoubleEndedIterator for ObservedIter<I, F>
where
    I: DoubleEndedIterator,
    F: FnMut(&I::Item, &mut ItemRecorder),
{
    fn next_back(&mut self) -> Option<I::Item> {
        let inner = self.inner.as_mut()?;
        if self.state.observed.is_none() {
            return inner.next_back();
        }
        let item = self.state.step(|| inner.next_back());
        match &item {
            Some(item) => self.state.on_item(item),
            None => self.close(false),
        }
        item
    }
}

impl<I, F> ExactSizeIterator for ObservedIter<I, F>
where
    I: ExactSizeIterator,
    F: FnMut(&I::Item, &mut ItemRecorder),
{
}

impl<I, F> std::iter::FusedIterator for ObservedIter<I, F>
where
    I: Iterator,
    F: FnMut(&I::Item, &mut ItemRecorder),
{
}

impl<I, F> Drop for ObservedIter<I, F> {
    fn drop(&mut self) {
        if self.state.observed.is_some() {
            self.close(true);
        }
    }
}

impl<I, F> fmt::Debug for ObservedIter<I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedIter")
            .field("items", &self.state.items)
            .field("done", &self.inner.is_none())
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// A stream run under the observation of the function that returned it; see the module
    /// docs.
    pub struct ObservedStream<S, F> {
        #[pin]
        inner: Option<S>,
        state: StreamState<F>,
    }

    impl<S, F> PinnedDrop for ObservedStream<S, F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.state.observed.is_some() {
                if this.inner.as_mut().as_pin_mut().is_some() {
                    let mut inner = this.inner;
                    this.state.step(move || inner.set(None));
                }
                this.state.finish(true);
            }
        }
    }
}

/// Wraps the stream an observed function returned: the observation ends with its last item, or
/// when it is dropped.
pub fn observe_stream<S, F>(
    observed: Option<Observed>,
    stream: S,
    record: F,
) -> ObservedStream<S, F>
where
    S: Stream,
    F: FnMut(&S::Item, &mut ItemRecorder),
{
    ObservedStream {
        inner: Some(stream),
        state: StreamState::new(observed, record),
    }
}

impl<S, F> Stream for ObservedStream<S, F>
where
    S: Stream,
    F: FnMut(&S::Item, &mut ItemRecorder),
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if this.state.observed.is_none() {
            return inner.poll_next(cx);
        }
        let poll = this.state.step(|| inner.poll_next(cx));
        match &poll {
            Poll::Ready(Some(item)) => this.state.on_item(item),
            Poll::Ready(None) => {
                let mut inner = this.inner;
                this.state.step(move || inner.set(None));
                this.state.finish(false);
            }
            Poll::Pending => {}
        }
        poll
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), Stream::size_hint)
    }
}

impl<S, F> fmt::Debug for ObservedStream<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedStream")
            .field("items", &self.state.items)
            .field("done", &self.inner.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Collected;

    fn output(items: &[&str], limit: usize) -> Option<String> {
        let mut collected = Collected::default();
        for item in items {
            collected.push(item, limit);
        }
        collected.output()
    }

    #[test]
    fn strings_are_concatenated_and_other_items_make_an_array() {
        assert_eq!(output(&[], 100), None);
        assert_eq!(
            output(&["\"Hel\"", "\"lo \\\"w\\\"\""], 100).as_deref(),
            Some("\"Hello \\\"w\\\"\"")
        );
        assert_eq!(
            output(&["1", "{\"a\":2}"], 100).as_deref(),
            Some("[1,{\"a\":2}]")
        );
        assert_eq!(output(&["\"a\"", "2"], 100).as_deref(), Some("[\"a\",2]"));
    }

    #[test]
    fn the_output_is_bounded_by_the_field_limit() {
        let items = vec!["\"abcd\""; 10];
        assert_eq!(
            output(&items, 80).as_deref(),
            Some("\"abcdabcd… [truncated: 8 of 10 items cut]\"")
        );
        let numbers = vec!["12345"; 10];
        assert_eq!(
            output(&numbers, 80).as_deref(),
            Some("[12345,12345,\"… [truncated: 8 of 10 items cut]\"]")
        );
    }
}
