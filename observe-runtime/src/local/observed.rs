//! The observation `#[observe]` opens for one call ([`Observed`]): capture of arguments and return
//! value straight into a reusable buffer, errors and panics, and [`Instrumented`], the future
//! wrapper of `async` bodies. The generated code reaches these through `__private`.

use std::borrow::Cow;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::span::{self, SpanCore};
use super::stack::{self, Token};
use crate::capture::{self, JsonOut};
use crate::gate;
use crate::media::MediaField;
use crate::record::{Level, ObservationType, SpanData};
use crate::text::Text;

/// Static description of an observed function.
#[derive(Debug)]
pub struct FnMeta {
    /// The observation name.
    pub name: &'static str,
    /// The observation type.
    pub kind: ObservationType,
    /// `capture_input = ..` of the attribute; `None` follows the configuration.
    pub capture_input: Option<bool>,
    /// `capture_output = ..` of the attribute; `None` follows the configuration.
    pub capture_output: Option<bool>,
}

/// Opens an observation for a call of an observed function; `None` (after one relaxed atomic load)
/// when tracing is off.
#[inline(always)]
pub fn start(meta: &'static FnMeta) -> Option<Observed> {
    if !enabled() {
        return None;
    }
    Some(Observed::open(meta))
}

/// Whether tracing is on (one relaxed atomic load): a plain observed function runs its body
/// through [`run_observed`] when it is, alone when it is not.
#[inline(always)]
pub fn enabled() -> bool {
    gate::enabled()
}

/// An observation opened by the attribute. Dropping it ends the observation.
///
/// While the function runs it sits on the thread's stack of what is current, where it was
/// built, and this holds only its token: the record is not moved on every call. An `async`
/// body detaches it (the future may move to another thread between polls).
pub struct Observed {
    /// Its place on this thread's stack (0: not there).
    token: Option<Token>,
    /// The observation itself while it is not on the stack (boxed: the handle stays small, so
    /// that code which never opens one pays nothing for its size). Emptied when the handle
    /// drops ([`Observed::finish`]), so that the drop has nothing left to free inline.
    detached: ManuallyDrop<Detached>,
    capture_input: bool,
    capture_output: bool,
    limit: usize,
    /// The captured return value, stored into the record when the observation ends (it is
    /// written just before: this saves finding the observation on the stack once more).
    /// Emptied when the handle drops, as `detached`.
    output: ManuallyDrop<Option<Text>>,
    /// A panic unwinding when it ends did not go through it, and does not make it an error: the
    /// call returned (a future completed, a stream gave its last item) in a destructor run by
    /// that panic, or a future begun there was dropped there.
    panic_elsewhere: bool,
}

/// An observation off the stack, in a box kept for its next time off it: an `async` body's
/// observation goes onto the stack and off again at every poll, so one allocation serves them
/// all.
#[derive(Default)]
struct Detached(Option<Box<Option<SpanCore>>>);

impl Detached {
    fn is_some(&self) -> bool {
        self.0.as_ref().is_some_and(|core| core.is_some())
    }

    fn as_mut(&mut self) -> Option<&mut SpanCore> {
        self.0.as_deref_mut()?.as_mut()
    }

    fn take(&mut self) -> Option<SpanCore> {
        self.0.as_mut()?.take()
    }

    /// Makes the observation current on this thread, moved from the box in place (it stays in
    /// the box if the stack cannot be reached).
    fn push(&mut self) -> Option<Token> {
        stack::push_from(self.0.as_deref_mut()?)
    }

    /// Keeps what `take` puts in its slot, in the box (made on first use); `take` writes there
    /// in place.
    fn refill(&mut self, take: impl FnOnce(&mut Option<SpanCore>)) {
        match &mut self.0 {
            Some(kept) => take(kept),
            None => {
                // Made first, so that the observation is written into it in place.
                let mut kept = Box::new(None);
                take(&mut kept);
                if kept.is_some() {
                    self.0 = Some(kept);
                }
            }
        }
    }
}

/// Opens an observation for `meta` in any case but a recorded child of the top's observation
/// (a root, a trace not recorded, a capture scope's): out of line, so that the usual case's
/// path is short.
#[cold]
#[inline(never)]
fn open_elsewhere(meta: &'static FnMeta) -> (Option<Token>, Option<bool>, usize) {
    let (token, options) = span::open_current(Cow::Borrowed(meta.name), meta.kind);
    let capture_io = options.recording.then_some(options.capture_io);
    (token, capture_io, options.field_limit)
}

impl Observed {
    #[inline(never)]
    fn open(meta: &'static FnMeta) -> Self {
        Self::open_here(meta)
    }

    /// [`Self::open`], inline: for [`run_observed`], which opens, runs and ends a call in one
    /// frame.
    #[inline(always)]
    fn open_here(meta: &'static FnMeta) -> Self {
        let (token, capture_io, limit) = match stack::open_child(meta.name, meta.kind) {
            Some((token, capture_io, limit)) => (Some(token), Some(capture_io), limit),
            None => open_elsewhere(meta),
        };
        // (`None`: not recorded.)
        let (capture_input, capture_output) = match capture_io {
            Some(capture_io) => (
                meta.capture_input.unwrap_or(capture_io),
                meta.capture_output.unwrap_or(capture_io),
            ),
            None => (false, false),
        };
        Self {
            token,
            detached: ManuallyDrop::new(Detached::default()),
            capture_input,
            capture_output,
            limit,
            output: ManuallyDrop::new(None),
            panic_elsewhere: false,
        }
    }

    /// Notes that a panic unwinding when it ends is not its own: a stream gave its last item, or
    /// was stopped in the destructor it began in.
    pub(crate) fn mark_panic_elsewhere(&mut self) {
        self.panic_elsewhere = true;
    }

    /// Runs `f` on the observation's data, if it is recorded.
    pub(crate) fn with_data<R>(&mut self, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
        match self.detached.as_mut() {
            Some(core) => core.data.as_mut().map(f),
            None => self.token.and_then(|token| stack::with_data_of(token, f)),
        }
    }

    /// Takes the observation off the stack, for a future that may be polled elsewhere.
    fn detach(&mut self) {
        let token = self.token.take();
        self.leave(token);
    }

    /// Makes a detached observation current on this thread until [`Self::leave`] with the
    /// token returned (none: nothing was made current).
    #[inline]
    pub(crate) fn enter(&mut self) -> Option<Token> {
        self.detached.push()
    }

    /// Takes back off the stack what `token` made current ([`Self::enter`], or the open),
    /// into the kept box.
    #[inline]
    pub(crate) fn leave(&mut self, token: Option<Token>) {
        if let Some(token) = token {
            self.detached.refill(|slot| stack::remove_into(token, slot));
        }
    }

    /// Whether the return value (or a stream's items) is captured.
    pub(crate) fn captures_output(&self) -> bool {
        self.capture_output
    }

    /// The size limit of one captured field in bytes.
    pub fn field_limit(&self) -> usize {
        self.limit
    }

    /// A writer for the input object, when arguments are to be captured. Each argument is
    /// written with [`InputWriter::arg`]; the object is stored when the writer drops. Called when
    /// the observation opens, before the body could set an input of its own.
    pub fn input_writer(&mut self) -> Option<InputWriter<'_>> {
        if !self.capture_input {
            return None;
        }
        Some(InputWriter {
            out: JsonOut::new(self.limit),
            observed: self,
        })
    }

    /// A writer for the output, when the return value is to be captured; stored when the writer
    /// drops, unless the body set an output itself.
    pub fn output_writer(&mut self) -> Option<OutputWriter<'_>> {
        if !self.capture_output {
            return None;
        }
        Some(OutputWriter {
            out: JsonOut::new(self.limit),
            observed: self,
        })
    }

    /// Marks the observation failed with this message (level ERROR, status message, and output
    /// when output is captured).
    pub fn record_error(&mut self, message: String) {
        let capture_output = self.capture_output;
        let limit = self.limit;
        let output =
            capture_output.then(|| capture::bound_field(capture::json_string(&message), limit));
        self.with_data(move |data| {
            data.set_level(Level::Error);
            if let Some(output) = output {
                data.set_captured_output(output.into());
            }
            *data.status_message_mut() = Some(message);
        });
    }

    pub(crate) fn record_panic(&mut self, payload: &(dyn std::any::Any + Send)) {
        let message = span::payload_text(payload);
        self.with_data(|data| {
            data.set_level(Level::Error);
            *data.status_message_mut() = Some(message);
        });
    }

    /// Runs `f` (this observation is current on the thread); a panic is recorded and resumed.
    #[inline]
    pub fn call<R>(&mut self, f: impl FnOnce() -> R) -> R {
        // Opened on this thread's stack, it is current already (only an `async` body detaches
        // it, and that one is polled through `Instrumented`).
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => value,
            Err(payload) => {
                self.record_panic(&*payload);
                resume_unwind(payload)
            }
        }
    }

    fn cancel(&mut self) {
        self.with_data(|data| {
            if data.level() < Level::Warning {
                data.set_level(Level::Warning);
            }
            data.status_message_mut()
                .get_or_insert_with(|| "cancelled".to_string());
        });
    }
}

impl Drop for Observed {
    #[inline]
    fn drop(&mut self) {
        if self.token.is_some() || self.detached.0.is_some() || self.output.is_some() {
            self.finish();
        }
    }
}

impl Observed {
    /// Ends the observation (out of line: the handle's drop stays a test and a branch).
    #[inline(never)]
    fn finish(&mut self) {
        if self.token.is_some() || self.detached.is_some() {
            self.end();
        }
        // What the fields held is freed here (they are never dropped).
        drop(std::mem::take(&mut *self.detached));
        drop(self.output.take());
    }

    /// Ends the observation of a call that returned, inline: its usual case (on the stack) in
    /// place, any other through the handle's drop. Not an error when the thread is panicking: the
    /// call returned (it ran in a destructor while a panic unwinds), and a panic of its own was
    /// recorded where it was caught.
    #[inline(always)]
    fn end_returned(mut self) {
        if self.detached.0.is_some() {
            self.mark_panic_elsewhere();
            return;
        }
        if let Some(token) = self.token.take() {
            span::close_on_stack(token, &mut self.output);
        }
        if self.output.is_none() {
            // Nothing left for the drop to end or free.
            std::mem::forget(self);
        }
    }

    /// Ends the observation held off the stack (an `async` body's, a stream's).
    #[inline(never)]
    fn end_detached(&mut self) {
        if let Some(mut core) = self.detached.take() {
            if let (Some(output), Some(data)) = (self.output.take(), core.data.as_mut()) {
                data.set_captured_output(output);
            }
            span::close(core);
        }
    }

    #[inline(always)]
    fn end(&mut self) {
        if span::panic_went_through(self.panic_elsewhere) {
            let message = span::panic_message();
            self.with_data(|data| {
                if data.level() != Level::Error {
                    data.set_level(Level::Error);
                    *data.status_message_mut() = Some(message);
                }
            });
        }
        if self.detached.is_some() {
            self.end_detached();
        } else if let Some(token) = self.token.take() {
            span::close_on_stack(token, &mut self.output);
        }
    }
}

/// Writes the input object of an observation, one argument at a time.
pub struct InputWriter<'a> {
    observed: &'a mut Observed,
    out: JsonOut,
}

impl InputWriter<'_> {
    /// Starts the next argument: `key` is the JSON text before its value, made by the attribute
    /// at compile time: `{"name":` for the first argument, `,"name":` for the next ones. Write
    /// the value into the returned buffer.
    pub fn arg(&mut self, key: &'static str) -> &mut JsonOut {
        self.out.push_str(key);
        &mut self.out
    }
}

impl Drop for InputWriter<'_> {
    fn drop(&mut self) {
        self.out.push_byte(b'}');
        // Each argument is bounded on its own; the object as a whole is bounded too.
        let mut media = self.out.take_media(MediaField::Input);
        let (out, media) = (&mut self.out, &mut media);
        // Stored at once: an observation still open when the process exits is sent with it.
        // The text is made where the record keeps it (not made here, then moved there), and
        // the closure holds references only (a value moved into it was copied in pieces and
        // read back whole at once, which waited for those stores).
        self.observed.with_data(|data| {
            data.input = Some(out.take_field());
            if !media.is_empty() {
                data.add_media(MediaField::Input, std::mem::take(media));
            }
        });
    }
}

/// Writes the output of an observation.
pub struct OutputWriter<'a> {
    observed: &'a mut Observed,
    out: JsonOut,
}

impl OutputWriter<'_> {
    /// The buffer to write the value into.
    pub fn out(&mut self) -> &mut JsonOut {
        &mut self.out
    }
}

impl Drop for OutputWriter<'_> {
    fn drop(&mut self) {
        if !self.out.has_media() {
            // Stored when the observation ends, which comes next; made where the handle keeps
            // it.
            *self.observed.output = Some(self.out.take_field());
            return;
        }
        let text = self.out.take_field();
        let media = self.out.take_media(MediaField::Output);
        self.observed.with_data(|data| {
            if data.set_captured_output(text) {
                data.add_media(MediaField::Output, media);
            }
        });
    }
}

/// Writes the input object of an observed call, when its arguments are captured: `write` writes
/// each argument. Out of line (with the attribute's code for the arguments in `write`), so that
/// the observed function itself stays small when tracing is off: inline, that code made it set
/// up a large stack frame on every call, also when nothing was recorded.
#[inline(never)]
pub fn capture_input(observed: &mut Observed, write: impl FnOnce(&mut InputWriter<'_>)) {
    if let Some(mut input) = observed.input_writer() {
        write(&mut input);
    }
}

/// Runs an observed call of a plain function: opens its observation, runs `body` with it (the
/// body captures the arguments first, when they are captured), then `record` with the result and
/// the observation, and ends it. Out of line, with the opening and the ending inline: the observed
/// function itself stays a load, a branch and the body when tracing is off (it calls the body with
/// `None`), and an observed call is one frame here (as three, opening, running and ending, the
/// frames and the handle passed between them cost about 60 instructions a call; BENCHMARKS.md,
/// "Eleventh round"). A panic is recorded with its message and resumed.
#[inline(never)]
pub fn run_observed<R>(
    meta: &'static FnMeta,
    body: impl FnOnce(Option<&mut Observed>) -> R,
    record: impl FnOnce(&R, &mut Option<Observed>),
) -> R {
    let mut observed = Some(Observed::open_here(meta));
    let result = match catch_unwind(AssertUnwindSafe(|| body(observed.as_mut()))) {
        Ok(value) => value,
        Err(payload) => {
            if let Some(observed) = &mut observed {
                observed.record_panic(&*payload);
            }
            resume_unwind(payload)
        }
    };
    record(&result, &mut observed);
    if let Some(observed) = observed {
        observed.end_returned();
    }
    result
}

/// Runs the body of an observed function whose result is a stream or iterator: the observation
/// is not ended but handed back, detached, for the wrapper that ends it with the last item.
#[inline(never)]
pub fn run_keeping<R>(
    observed: Option<Observed>,
    body: impl FnOnce() -> R,
) -> (R, Option<Observed>) {
    match observed {
        None => (body(), None),
        Some(mut observed) => {
            let result = observed.call(body);
            observed.detach();
            (result, Some(observed))
        }
    }
}

/// Runs `future` with the observation current during every poll; completes with the future's
/// output and the observation handed back.
pub fn instrument<F: Future>(mut observed: Option<Observed>, future: F) -> Instrumented<F> {
    if let Some(observed) = &mut observed {
        observed.detach();
    }
    Instrumented {
        future: Some(future),
        observed,
        unwinding: std::thread::panicking(),
    }
}

pin_project_lite::pin_project! {
    /// A future run under an observation; see [`instrument`]. Dropped before completion, it drops
    /// the inner future while the observation is still current (so what the inner future's
    /// destructors record lands under it), then ends the observation with level WARNING and
    /// status message `cancelled`.
    pub struct Instrumented<F> {
        #[pin]
        future: Option<F>,
        observed: Option<Observed>,
        // A panic was already unwinding when it began (in a destructor): dropped unfinished,
        // it was cancelled, not failed.
        unwinding: bool,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let Some(mut observed) = this.observed.take() else {
                return;
            };
            if observed.detached.is_some() {
                let token = observed.enter();
                this.future.set(None);
                observed.leave(token);
            }
            if !span::panic_went_through(*this.unwinding) {
                observed.cancel();
                observed.mark_panic_elsewhere();
            }
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = (F::Output, Option<Observed>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            return Poll::Pending;
        };
        let Some(observed) = this.observed.as_mut() else {
            return future.poll(cx).map(|output| (output, None));
        };
        if !observed.detached.is_some() {
            return future.poll(cx).map(|output| (output, None));
        }
        let token = observed.enter();
        let result = catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        observed.leave(token);
        match result {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                observed.mark_panic_elsewhere();
                Poll::Ready((output, this.observed.take()))
            }
            Err(payload) => {
                observed.record_panic(&*payload);
                resume_unwind(payload)
            }
        }
    }
}
