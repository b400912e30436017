//! The thread's stack of what is current: our observations and attached contexts, each behind
//! the [`Token`] its push returned. No lock and no allocation on push and pop once the stack has
//! grown; user code is never called while the stack is borrowed.
//!
//! An observation opened under the top of the stack is of the same trace: its frame refers to
//! the frame that holds the trace rather than taking a reference of its own (a locked increment
//! on open and a decrement on the exporter's thread per observation). What leaves the stack in
//! any other way than ending on top takes its own reference.
//!
//! Such an observation's record lives in the thread's buffer from its start (see
//! [`super::buffer`]): its frame holds its place there, and it is ended there. Taken off the
//! stack any other way, its record is taken out of the buffer into the observation.

use std::borrow::Cow;
use std::cell::RefCell;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};

use super::buffer::{self, HandOver, ThreadBuffer};
use crate::clock::Ticks;
use crate::ids::{IdSequence, ObservationId, TraceId};
use crate::record::{EndStamp, ObservationType, SpanData, TraceState};
use crate::text::Text;
use crate::unobserved;

/// What takes an observation or context made current back off this thread's stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token(NonZeroU64);

/// An open observation: the trace it belongs to, its id, and (when recorded) its data.
pub(crate) struct SpanCore {
    pub(crate) trace: Arc<TraceState>,
    pub(crate) span_id: Option<ObservationId>,
    pub(crate) data: Option<SpanData>,
}

struct Frame {
    token: Token,
    /// The frame that holds this one's trace: itself when `trace` is set, else one below.
    owner: usize,
    trace: Option<Arc<TraceState>>,
    span_id: Option<ObservationId>,
    data: Option<SpanData>,
    /// The place of its record in the thread's chunk, plus one (written there when it opened;
    /// 0: it is not there, and `data` holds it if it is recorded).
    at: usize,
    /// [`Stack::admitted`] when it was pushed: when that count has moved on since, an
    /// observation ended under it was admitted, and it must be too.
    since: u64,
}

impl Frame {
    /// Whether it holds a recorded observation (here or in the chunk).
    #[inline(always)]
    fn recorded(&self) -> bool {
        self.data.is_some() || self.at != 0
    }
}

/// This thread's stack of what is current, and the token the next push gets.
struct Stack {
    frames: Vec<Frame>,
    next_token: NonZeroU64,
    /// Frames that hold a recorded observation.
    recording: usize,
    /// This thread's buffer, where observations opened under the top write their records as
    /// they open (kept here from the first such one: the stack ends them after the buffer's
    /// thread-local is gone).
    buffer: Option<Arc<ThreadBuffer>>,
    /// The installed client, for ending those.
    client: buffer::CachedClient,
    /// The ids of those (seeded with the buffer).
    ids: IdSequence,
    /// Observations ended on this stack and admitted, ever. A frame compares it with the
    /// count at its push: a parent learns that a child was admitted without the child finding
    /// it (what is admitted while a frame is on the stack ended under it; across other traces
    /// opened under it too, which admits more, never less).
    admitted: u64,
}

impl std::ops::Deref for Stack {
    type Target = Vec<Frame>;
    fn deref(&self) -> &Vec<Frame> {
        &self.frames
    }
}

impl std::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut Vec<Frame> {
        &mut self.frames
    }
}

/// Recorded observations still open on a thread when its thread-locals were destroyed: at
/// `exit`, glibc destroys the exiting thread's before the exit hooks run, and a thread may end
/// with a guard leaked. Kept for the exit hook, up to [`LEFT_OPEN_LIMIT`].
static LEFT_OPEN: Mutex<Vec<SpanCore>> = Mutex::new(Vec::new());
const LEFT_OPEN_LIMIT: usize = 4096;

fn left_open() -> MutexGuard<'static, Vec<SpanCore>> {
    crate::sync::lock(&LEFT_OPEN)
}

impl Stack {
    /// Runs `f` on the data of frame `index`'s observation, when it is recorded (here or in the
    /// chunk); `f` must not call user code.
    #[inline]
    fn with_data<R>(&mut self, index: usize, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
        let frame = self.frames.get_mut(index)?;
        if let Some(data) = frame.data.as_mut() {
            return Some(f(data));
        }
        let at = frame.at.checked_sub(1)?;
        let buffer = self.buffer.as_deref()?;
        #[allow(unsafe_code)]
        // SAFETY: the stack is this thread's, and so is its buffer; no other use of the buffer
        // is alive while the stack is borrowed (see `own`).
        let mut held = unsafe { buffer::own(buffer) };
        held.data_mut(at).map(f)
    }

    /// The trace of frame `index`, held there or by the frame it refers to.
    #[inline]
    fn trace_of(&self, index: usize) -> Option<&Arc<TraceState>> {
        let owner = self.frames.get(index)?.owner;
        self.frames.get(owner)?.trace.as_ref()
    }

    /// Takes frame `index` off the stack as an observation of its own (it takes a reference to
    /// its trace if it had none); the frames above it that referred to it refer to the first of
    /// them, which takes the trace over.
    fn take_out(&mut self, index: usize) -> Option<SpanCore> {
        let mut core = None;
        self.take_out_into(index, &mut core)?;
        core
    }

    /// [`Self::take_out`] into `slot`, written there from the frame's place (not moved through a
    /// copy of the frame).
    fn take_out_into(&mut self, index: usize, slot: &mut Option<SpanCore>) -> Option<()> {
        let trace = match self.frames.get_mut(index)?.trace.take() {
            Some(trace) => {
                let mut heir = None;
                for (i, frame) in self.frames.iter_mut().enumerate().skip(index + 1) {
                    if frame.owner == index {
                        let heir = *heir.get_or_insert(i);
                        frame.owner = heir - 1;
                        if heir == i {
                            frame.trace = Some(trace.clone());
                        }
                    } else if frame.owner > index {
                        frame.owner -= 1;
                    }
                }
                trace
            }
            None => {
                let trace = self.trace_of(index)?.clone();
                for frame in self.frames.iter_mut().skip(index + 1) {
                    if frame.owner > index {
                        frame.owner -= 1;
                    }
                }
                trace
            }
        };
        let frame = self.frames.get_mut(index)?;
        self.recording -= usize::from(frame.recorded());
        let mut data = match (frame.at.checked_sub(1), self.buffer.as_deref()) {
            (Some(at), Some(buffer)) => {
                #[allow(unsafe_code)]
                // SAFETY: as in `with_data`.
                let mut held = unsafe { buffer::own(buffer) };
                held.take_open(at)
            }
            _ => frame.data.take(),
        };
        // What it learns from the count only while on the stack is kept in its record.
        keep_learned(data.as_mut(), frame.since, self.admitted);
        *slot = Some(SpanCore {
            trace,
            span_id: frame.span_id,
            data,
        });
        if index + 1 == self.frames.len() {
            self.frames.truncate(index);
        } else {
            self.frames.remove(index);
        }
        Some(())
    }

    /// Takes every frame off, top first.
    fn take_all(&mut self) -> Vec<SpanCore> {
        let mut all = Vec::with_capacity(self.frames.len());
        while let Some(core) = self
            .frames
            .len()
            .checked_sub(1)
            .and_then(|top| self.take_out(top))
        {
            all.push(core);
        }
        // A frame whose trace could not be found (never: every frame refers to one below).
        self.frames.clear();
        self.recording = 0;
        all
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.recording == 0 {
            return;
        }
        let mut left = left_open();
        for core in self.take_all() {
            if core.data.is_some() && left.len() < LEFT_OPEN_LIMIT {
                left.push(core);
            }
        }
    }
}

thread_local! {
    static STACK: RefCell<Stack> = const {
        RefCell::new(Stack {
            frames: Vec::new(),
            next_token: NonZeroU64::MIN,
            recording: 0,
            buffer: None,
            client: (u64::MAX, None),
            ids: IdSequence::UNSEEDED,
            admitted: 0,
        })
    };
}

/// Makes `core` current; returns the token that takes it back (none when the stack cannot be
/// reached: the thread is ending).
pub(crate) fn push(core: SpanCore) -> Option<Token> {
    push_with(move || core)
}

/// Makes the observation in `slot` current, moved from there into its place on the stack (left
/// in `slot` when the stack cannot be reached); returns the token that takes it back.
#[inline]
pub(crate) fn push_from(slot: &mut Option<SpanCore>) -> Option<Token> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let core = slot.take()?;
            Some(stack.push_holding(core))
        })
        .ok()
        .flatten()
}

/// Makes what `make` builds current, building it in its place on the stack; returns the token
/// that takes it back (none when the stack cannot be reached).
#[inline]
pub(crate) fn push_with(make: impl FnOnce() -> SpanCore) -> Option<Token> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let core = make();
            Some(stack.push_holding(core))
        })
        .ok()
        .flatten()
}

impl Stack {
    /// Pushes a frame that holds its trace.
    #[inline(always)]
    fn push_holding(&mut self, core: SpanCore) -> Token {
        let token = self.next_token();
        self.recording += usize::from(core.data.is_some());
        let owner = self.frames.len();
        let since = self.admitted;
        // Written where it goes once there is room (`push` built it aside and moved it).
        push_in_place(&mut self.frames, move |slot| {
            slot.write(Frame {
                token,
                owner,
                trace: Some(core.trace),
                span_id: core.span_id,
                data: core.data,
                at: 0,
                since,
            });
        });
        token
    }
}

/// Makes an observation of the top frame's trace current, referring to the trace there: `make`
/// gets that trace and the top's observation id, and returns the observation's id, what builds
/// its data when it is recorded, and what the caller wants back, or `None` when it does not go
/// there. Its data is kept in its frame (the attribute's usual case, whose record goes into the
/// thread's chunk, is [`open_child`]). `None` also when the stack is empty or cannot be
/// reached; else the token that takes it back.
#[inline]
pub(crate) fn push_under_top<R, B: FnOnce() -> SpanData>(
    make: impl FnOnce(&TraceState, Option<ObservationId>) -> Option<(ObservationId, Option<B>, R)>,
) -> Option<(Token, R)> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let stack = &mut *stack;
            let (parent, owner) = top_link(&stack.frames)?;
            let trace = stack.frames.get(owner)?.trace.as_ref()?;
            let (span_id, build, back) = make(trace, parent)?;
            let token = advance(&mut stack.next_token);
            let data = build.map(|build| build());
            stack.recording += usize::from(data.is_some());
            let since = stack.admitted;
            push_in_place(&mut stack.frames, move |slot| {
                slot.write(Frame {
                    token,
                    owner,
                    trace: None,
                    span_id: Some(span_id),
                    data,
                    at: 0,
                    since,
                });
            });
            Some((token, back))
        })
        .ok()
        .flatten()
}

/// Opens a recorded observation of the top frame's trace under the top's, its record built in
/// the thread's chunk, and makes it current: the attribute's usual case, on one path with
/// nothing in between. `None` (and nothing done) when it is not that case: the stack is empty
/// or cannot be reached, the trace is not recorded or belongs to a capture scope, nothing is
/// recorded here now (see [`crate::unobserved`]), or the thread is ending. Returns its token,
/// and its trace's `capture_io` and field limit.
#[inline(always)]
pub(crate) fn open_child(
    name: &'static str,
    kind: ObservationType,
) -> Option<(Token, bool, usize)> {
    with_stack(
        #[inline(always)]
        |stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let stack = &mut *stack;
            let (parent, owner) = top_link(&stack.frames)?;
            let trace = stack.frames.get(owner)?.trace.as_ref()?;
            if !trace.is_recording() || trace.options.scope.is_some() || unobserved::active() {
                return None;
            }
            if stack.buffer.is_none() {
                stack.buffer = buffer::this_thread();
                stack.ids.seed();
            }
            let buffer = stack.buffer.as_deref()?;
            let span_id = stack.ids.next();
            let is_local_root = parent.is_none() || parent == trace.remote_parent;
            #[allow(unsafe_code)]
            // SAFETY: as in `Stack::with_data`.
            let mut held = unsafe { buffer::own(buffer) };
            let opening = (span_id, parent, is_local_root);
            let at = held.open_child_record(trace, opening, name, kind);
            drop(held);
            let options = (trace.options.capture_io, trace.options.field_limit);
            let token = advance(&mut stack.next_token);
            stack.recording += 1;
            let since = stack.admitted;
            push_frame(&mut stack.frames, (token, owner, span_id), (at + 1, since));
            Some((token, options.0, options.1))
        },
    )
}

/// Runs `f` on this thread's stack (`None` when the thread is ending). Inline whatever `f` is:
/// `LocalKey::try_with` around the whole of a large `f` was left out of line in a large caller,
/// a call and a frame per use; around a closure that only takes the stack's address, it is a
/// few instructions.
#[inline(always)]
fn with_stack<R>(f: impl FnOnce(&RefCell<Stack>) -> Option<R>) -> Option<R> {
    let stack: *const RefCell<Stack> = STACK.try_with(|stack| stack as *const _).ok()?;
    #[allow(unsafe_code)]
    // SAFETY: `stack` is this thread's, and it lives until this thread's thread-locals are
    // destroyed, which cannot happen while `f` runs on this thread: `f` calls no user code, and
    // destructors of thread-locals run one after the other when the thread exits (one running
    // now found `STACK` alive, so `STACK`'s own runs after it).
    f(unsafe { &*stack })
}

/// Pushes the frame of an observation opened under the top whose record is at `at` (plus one)
/// in the chunk, written in its place.
#[inline(always)]
fn push_frame(
    frames: &mut Vec<Frame>,
    (token, owner, span_id): (Token, usize, ObservationId),
    (at, since): (usize, u64),
) {
    // Written field by field where it goes (through a closure it was built aside and copied,
    // the copy's wide loads waiting on the narrow stores that had built it; `data` is written
    // as the constant it is, not passed in: passed, its 120 bytes were copied).
    frames.reserve(1);
    let len = frames.len();
    if let Some(slot) = frames.spare_capacity_mut().first_mut() {
        slot.write(Frame {
            token,
            owner,
            trace: None,
            span_id: Some(span_id),
            data: None,
            at,
            since,
        });
        #[allow(unsafe_code)]
        // SAFETY: the place past `len` exists (`reserve`) and was just written.
        unsafe {
            frames.set_len(len + 1);
        }
    }
}

impl Stack {
    fn next_token(&mut self) -> Token {
        advance(&mut self.next_token)
    }
}

/// Pushes onto `vec` what `write` writes into the place where it goes: room is made first,
/// and the value is built there (`push` and a value returned built it aside and copied it in;
/// `extend` stayed a call). `write` must write the place (it is counted in `vec` after).
#[inline(always)]
fn push_in_place<T>(vec: &mut Vec<T>, write: impl FnOnce(&mut std::mem::MaybeUninit<T>)) {
    vec.reserve(1);
    let len = vec.len();
    if let Some(slot) = vec.spare_capacity_mut().first_mut() {
        write(slot);
        #[allow(unsafe_code)]
        // SAFETY: the place past `len` exists (`reserve`) and `write` wrote it.
        unsafe {
            vec.set_len(len + 1);
        }
    }
}

/// Notes in `data`, the record of a frame pushed when the stack's count of admissions was
/// `since`, that an observation ended under it was admitted, when the count is `admitted` now.
#[inline(always)]
fn keep_learned(data: Option<&mut SpanData>, since: u64, admitted: u64) {
    if let (Some(data), true) = (data, since != admitted) {
        data.mark_child_admitted();
    }
}

/// The token `next` holds, `next` moved on.
#[inline(always)]
fn advance(next: &mut NonZeroU64) -> Token {
    let token = Token(*next);
    *next = next.checked_add(1).unwrap_or(NonZeroU64::MIN);
    token
}

/// The top frame's observation id, and where the frame that holds its trace lies.
#[inline(always)]
fn top_link(frames: &[Frame]) -> Option<(Option<ObservationId>, usize)> {
    frames.last().map(|top| (top.span_id, top.owner))
}

/// What [`end_with`] hands over of an observation taken off the stack.
pub(crate) struct Ending<'a> {
    /// Its trace: borrowed from the frame that holds it when that one stays on the stack.
    pub(crate) trace: Cow<'a, Arc<TraceState>>,
    /// Its data, where it lies (what is left there is dropped).
    pub(crate) data: &'a mut Option<SpanData>,
    /// No recorded observation is open on this thread any more.
    pub(crate) idle: bool,
}

/// Takes what `push` made current off the stack and ends it, with what `output` holds as its
/// captured output, in the same borrow of the stack (the observation's trace is not cloned for
/// it). An observation whose record is in the thread's chunk is ended there; any other is
/// handed to `end`, which sets the output itself and returns whether it was admitted (the
/// frames below then learn it from [`Stack::admitted`]). `end` must not call user code.
/// Returns the buffer's hand-over, to run once the stack is no longer borrowed.
#[inline(always)]
pub(crate) fn end_with(
    token: Token,
    output: &mut Option<Text>,
    end: impl FnOnce(Ending<'_>, &mut Option<Text>) -> (bool, HandOver),
) -> Option<HandOver> {
    with_stack(
        #[inline(always)]
        |stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            match stack.len().checked_sub(1) {
                Some(top) if stack[top].token == token && stack[top].at != 0 => {
                    stack.end_in_chunk(top, output)
                }
                _ => stack.end_elsewhere(token, output, end),
            }
        },
    )
}

impl Stack {
    /// [`end_with`] for any observation but one on top whose record is in the chunk: out of
    /// line, so that the usual case's path stays short.
    #[inline(never)]
    fn end_elsewhere(
        &mut self,
        token: Token,
        output: &mut Option<Text>,
        end: impl FnOnce(Ending<'_>, &mut Option<Text>) -> (bool, HandOver),
    ) -> Option<HandOver> {
        let admitted = self.admitted;
        let (was_admitted, back) = match self.len().checked_sub(1) {
            Some(top) if self[top].token == token => {
                // Ended where it lies: its data is moved once, into the thread's buffer.
                let recorded = self[top].data.is_some();
                self.recording -= usize::from(recorded);
                let idle = self.recording == 0;
                let owner = self[top].owner;
                let (below, top_frame) = self.frames.split_at_mut(top);
                let frame = top_frame.first_mut()?;
                keep_learned(frame.data.as_mut(), frame.since, admitted);
                let trace = match frame.trace.take() {
                    Some(trace) => Cow::Owned(trace),
                    None => match below.get(owner).and_then(|f| f.trace.as_ref()) {
                        Some(trace) => Cow::Borrowed(trace),
                        // Never: a frame refers to one below that holds its trace.
                        None => return None,
                    },
                };
                let ended = end(
                    Ending {
                        trace,
                        data: &mut frame.data,
                        idle,
                    },
                    output,
                );
                self.frames.truncate(top);
                ended
            }
            _ => {
                let index = self.below_top(token)?;
                let mut core = self.take_out(index)?;
                let idle = self.recording == 0;
                end(
                    Ending {
                        trace: Cow::Owned(core.trace),
                        data: &mut core.data,
                        idle,
                    },
                    output,
                )
            }
        };
        self.admitted += u64::from(was_admitted);
        Some(back)
    }
}

impl Stack {
    /// Ends the top frame's observation, whose record is at its place in the thread's chunk:
    /// stamped and admitted (or dropped) there; when it was admitted, the count of admissions
    /// moves on, and the frames below learn it from there.
    #[inline(always)]
    fn end_in_chunk(&mut self, top: usize, output: &mut Option<Text>) -> Option<HandOver> {
        let frame = self.frames.get_mut(top)?;
        let at = frame.at.checked_sub(1)?;
        let (owner, own_trace) = (frame.owner, frame.trace.take());
        let since = frame.since;
        self.recording -= 1;
        let idle = self.recording == 0;
        let trace = match &own_trace {
            Some(trace) => trace,
            None => self.frames.get(owner)?.trace.as_ref()?,
        };
        let buffer = self.buffer.as_deref()?;
        #[allow(unsafe_code)]
        // SAFETY: as in `Stack::with_data`.
        let mut held = unsafe { buffer::own(buffer) };
        let data = held.data_mut(at)?;
        if output.is_some() {
            if let Some(output) = output.take() {
                data.set_captured_output(output);
            }
        }
        keep_learned(Some(&mut *data), since, self.admitted);
        let stamp = EndStamp {
            at: Ticks::now(),
            version: trace.note_version(),
        };
        data.set_end(stamp);
        let passes = (data.must_pass(), data.is_local_root());
        let ending = (trace, &mut self.client, stamp);
        let (admission, hand_over) = buffer::end_in_chunk(&mut held, (at, passes), ending, idle);
        // The frames below learn it from the count.
        self.admitted += u64::from(admission.admitted());
        // Popped, not truncated: the frame holds nothing to drop (its trace was taken, its
        // data is in the chunk), and truncating ran the drop code of both.
        debug_assert!(self
            .frames
            .last()
            .is_some_and(|f| f.trace.is_none() && f.data.is_none()));
        std::mem::forget(self.frames.pop());
        if held.compact() {
            // The open records moved: each frame of the chunk learns its new place, in order.
            let mut places = held.open_places();
            for frame in self.frames.iter_mut().filter(|frame| frame.at != 0) {
                frame.at = places.next().map_or(0, |place| place + 1);
            }
        }
        drop(held);
        drop(own_trace);
        Some(hand_over)
    }
}

/// Takes back what `push` made current (usually the top of the stack).
#[inline(always)]
pub(crate) fn remove(token: Token) -> Option<SpanCore> {
    let mut core = None;
    remove_into(token, &mut core);
    core
}

/// [`remove`] into `slot` (left as it was when `token` is not on the stack).
#[inline(always)]
pub(crate) fn remove_into(token: Token, slot: &mut Option<SpanCore>) {
    let _ = STACK.try_with(|stack| {
        let mut stack = stack.try_borrow_mut().ok()?;
        let index = match stack.len().checked_sub(1) {
            Some(top) if stack[top].token == token => top,
            _ => stack.below_top(token)?,
        };
        stack.take_out_into(index, slot)
    });
}

/// Takes everything off this thread's stack, top first, then the recorded observations left
/// open by threads whose thread-locals are gone (the process is ending: the guards that would
/// have taken them back will not run, or will find nothing).
pub(crate) fn take_all() -> Vec<SpanCore> {
    let mut all = STACK
        .try_with(|stack| {
            let Ok(mut stack) = stack.try_borrow_mut() else {
                return Vec::new();
            };
            stack.take_all()
        })
        .unwrap_or_default();
    all.append(&mut left_open());
    all
}

impl Stack {
    /// Where `token`'s frame lies when it is not the top: a guard ended out of order (warned of
    /// in debug builds).
    fn below_top(&self, token: Token) -> Option<usize> {
        let index = self.iter().rposition(|f| f.token == token)?;
        #[cfg(debug_assertions)]
        warn_out_of_order();
        Some(index)
    }
}

/// A guard ended while what was made current after it still is: usually a guard held across an
/// `.await` on a thread shared by tasks.
#[cfg(debug_assertions)]
fn warn_out_of_order() {
    crate::diagnostics::warn_once(
        "guards-out-of-order",
        "an observation or attached context ended while one made current after it was still \
         current: a guard (ActiveSpan, ContextGuard) was probably held across an .await; \
         observations of other tasks may have landed under it. Use #[observe] on the async fn \
         or FutureExt::in_context instead (reported once, in debug builds only)",
    );
}

/// Runs `f` on the top frame and its trace.
fn with_top<R>(f: impl FnOnce(&Frame, &Arc<TraceState>) -> R) -> Option<R> {
    STACK
        .try_with(|stack| {
            let stack = stack.try_borrow().ok()?;
            let top = stack.len().checked_sub(1)?;
            Some(f(&stack[top], stack.trace_of(top)?))
        })
        .ok()
        .flatten()
}

/// The trace and observation on top of this thread's stack, for a context handle taken on it:
/// children may now end on other threads, so the observation is marked to be always sent (they
/// never arrive without it).
pub(crate) fn share_top() -> Option<(Arc<TraceState>, Option<ObservationId>)> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let top = stack.len().checked_sub(1)?;
            stack.with_data(top, SpanData::mark_shared);
            Some((stack.trace_of(top)?.clone(), stack[top].span_id))
        })
        .ok()
        .flatten()
}

/// The trace and parent observation a new observation opened here hangs under.
pub(crate) fn current_parent() -> Option<(Arc<TraceState>, Option<ObservationId>)> {
    with_top(|f, trace| (trace.clone(), f.span_id))
}

pub(crate) fn current_trace_state() -> Option<Arc<TraceState>> {
    with_top(|_, trace| trace.clone())
}

/// The recorded trace running on this thread, and the observation running in it when that one
/// is ours and recorded (both read from the same frame).
pub(crate) fn current_recording_ids() -> Option<(TraceId, Option<ObservationId>)> {
    with_top(|f, trace| {
        trace
            .is_recording()
            .then(|| (trace.trace_id, f.span_id.filter(|_| f.recorded())))
    })
    .flatten()
}

/// The id of the current observation when it is ours and recorded.
pub(crate) fn current_recording_span_id() -> Option<ObservationId> {
    with_top(|f, _| f.span_id.filter(|_| f.recorded())).flatten()
}

pub(crate) fn current_field_limit() -> Option<usize> {
    with_top(|_, trace| trace.is_recording().then_some(trace.options.field_limit)).flatten()
}

/// Whether a recorded observation is open on this thread (else what it buffered may go).
pub(crate) fn has_open_recording() -> bool {
    STACK
        .try_with(|stack| stack.try_borrow().map(|s| s.recording > 0).unwrap_or(true))
        .unwrap_or(false)
}

/// Notes on the open observation `parent` of this thread, if it is one, that a child of it was
/// admitted to the queue: it must then be admitted too.
pub(crate) fn mark_child_admitted(parent: ObservationId) {
    let _ = STACK.try_with(|stack| {
        if let Ok(mut stack) = stack.try_borrow_mut() {
            stack.mark_child_admitted(parent);
        }
    });
}

impl Stack {
    fn mark_child_admitted(&mut self, parent: ObservationId) {
        if let Some(index) = self.find_recorded(parent) {
            self.with_data(index, SpanData::mark_child_admitted);
        }
    }

    /// Where the recorded observation `id` lies on the stack.
    fn find_recorded(&self, id: ObservationId) -> Option<usize> {
        self.frames
            .iter()
            .rposition(|f| f.recorded() && f.span_id == Some(id))
    }
}

pub(crate) fn span_id_of(token: Token) -> Option<ObservationId> {
    with_data_of(token, |data| data.span_id)
}

/// Runs `f` on the data of the recorded observation `push` returned `token` for, if it is on
/// this thread's stack; `f` must not call user code. (Inlined: `f`, passed to a call, was
/// copied from where its captures had just been stored, and waited for those stores.)
#[inline]
pub(crate) fn with_data_of<R>(token: Token, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let index = match stack.len().checked_sub(1) {
                Some(top) if stack[top].token == token => top,
                _ => stack.iter().rposition(|f| f.token == token)?,
            };
            stack.with_data(index, f)
        })
        .ok()
        .flatten()
}

/// Changes the data of a recorded observation of this thread.
pub(crate) fn with_span_data(id: ObservationId, change: impl FnOnce(&mut SpanData)) {
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        if let Some(index) = stack.find_recorded(id) {
            stack.with_data(index, change);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(trace: &Arc<TraceState>) -> Token {
        let id = ObservationId::random();
        push(SpanCore {
            trace: trace.clone(),
            span_id: Some(id),
            data: Some(SpanData::start(
                id,
                None,
                true,
                Cow::Borrowed("root"),
                ObservationType::Span,
            )),
        })
        .expect("pushed")
    }

    fn child() -> (Token, ObservationId) {
        let (token, _, _) = open_child("c", ObservationType::Span).expect("opened under the top");
        (token, span_id_of(token).expect("recorded"))
    }

    /// Ends `token` and says whether its trace was borrowed, and which trace it was; `None` when
    /// its record was in the chunk and it ended there (with no client: dropped).
    fn end(token: Token) -> Option<(bool, TraceId, bool)> {
        let mut seen = None;
        end_with(token, &mut None, |ending, _| {
            let borrowed = matches!(ending.trace, Cow::Borrowed(_));
            ending.data.take();
            seen = Some((borrowed, ending.trace.trace_id, ending.idle));
            (false, HandOver::default())
        })
        .expect("on the stack")
        .run();
        seen
    }

    /// Ends `token` (its record in its frame) as admitted when `admitted`, else dropped.
    fn end_as(token: Token, admitted: bool) {
        end_with(token, &mut None, |ending, _| {
            ending.data.take();
            (admitted, HandOver::default())
        })
        .expect("on the stack")
        .run();
    }

    #[test]
    fn an_observation_learns_that_one_ended_under_it_was_admitted() {
        std::thread::spawn(|| {
            let trace = TraceState::for_tests("t");
            let must_pass = |token| {
                let data = remove(token).and_then(|core| core.data).expect("recorded");
                data.must_pass()
            };
            // Dropped under it: it need not pass.
            let (parent, child) = (root(&trace), root(&trace));
            end_as(child, false);
            assert!(!must_pass(parent));
            // Admitted under it, two levels down: it and the one between must pass.
            let (outer, middle, inner) = (root(&trace), root(&trace), root(&trace));
            end_as(inner, true);
            assert!(must_pass(middle));
            // Opened after that admission, it learns of none.
            let late = root(&trace);
            assert!(!must_pass(late));
            // Taken off the stack and back (an `async` body between polls), it keeps it.
            let outer = remove(outer).and_then(push).expect("back on the stack");
            assert!(must_pass(outer));
        })
        .join()
        .expect("no panic");
    }

    #[test]
    fn observations_under_the_top_take_no_reference_to_its_trace() {
        std::thread::spawn(|| {
            let trace = TraceState::for_tests("t");
            let root = root(&trace);
            let (first, first_id) = child();
            let (second, _) = child();
            assert_eq!(
                Arc::strong_count(&trace),
                3,
                "the test's, the root's and the chunk's first record's: none per frame"
            );
            assert_eq!(
                current_parent().map(|(t, _)| t.trace_id),
                Some(trace.trace_id)
            );
            assert_eq!(end(second), None, "ended in the chunk");
            assert_eq!(current_recording_span_id(), Some(first_id));
            assert_eq!(end(first), None);
            assert_eq!(end(root), Some((false, trace.trace_id, true)));
            assert_eq!(Arc::strong_count(&trace), 1);
        })
        .join()
        .expect("no panic");
    }

    #[test]
    fn the_frame_holding_a_trace_taken_out_of_order_hands_it_to_the_first_above() {
        std::thread::spawn(|| {
            let (outer, inner) = (
                TraceState::for_tests("outer"),
                TraceState::for_tests("inner"),
            );
            let below = root(&outer);
            let root = root(&inner);
            let (first, first_id) = child();
            let (second, _) = child();
            // The root leaves first (a guard held across an await): it keeps its trace, and
            // the children still find theirs.
            let taken = remove(root).expect("on the stack");
            assert_eq!(taken.trace.trace_id, inner.trace_id);
            assert_eq!(
                current_trace_state().map(|t| t.trace_id),
                Some(inner.trace_id)
            );
            assert_eq!(end(second), None);
            let first = remove(first).expect("on the stack");
            assert!(first.data.as_ref().is_some_and(|d| !d.is_open()));
            assert_eq!(
                (first.trace.trace_id, first.span_id),
                (inner.trace_id, Some(first_id))
            );
            assert_eq!(
                current_trace_state().map(|t| t.trace_id),
                Some(outer.trace_id)
            );
            assert_eq!(end(below), Some((false, outer.trace_id, true)));
            drop((taken, first));
            assert_eq!(
                (Arc::strong_count(&outer), Arc::strong_count(&inner)),
                (1, 1)
            );
        })
        .join()
        .expect("no panic");
    }

    #[test]
    fn everything_taken_off_at_once_has_its_trace() {
        std::thread::spawn(|| {
            let trace = TraceState::for_tests("t");
            root(&trace);
            child();
            child();
            let all = take_all();
            let traces: Vec<_> = all.iter().map(|core| core.trace.trace_id).collect();
            assert_eq!(traces, [trace.trace_id; 3]);
            assert!(!has_open_recording());
        })
        .join()
        .expect("no panic");
    }
}
