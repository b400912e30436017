//! The thread's stack of what is current: our observations and attached contexts, each behind
//! the [`Token`] its push returned. No lock and no allocation on push and pop once the stack has
//! grown; user code is never called while the stack is borrowed.

use std::cell::RefCell;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ids::{ObservationId, TraceId};
use crate::record::{SpanData, TraceState};

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
    core: SpanCore,
}

/// This thread's stack of what is current, and the token the next push gets.
struct Stack {
    frames: Vec<Frame>,
    next_token: NonZeroU64,
    /// Frames that hold a recorded observation.
    recording: usize,
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

impl Drop for Stack {
    fn drop(&mut self) {
        if self.recording == 0 {
            return;
        }
        let mut left = left_open();
        for frame in self.frames.drain(..).rev() {
            if frame.core.data.is_some() && left.len() < LEFT_OPEN_LIMIT {
                left.push(frame.core);
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
        })
    };
}

/// Makes `core` current; returns the token that takes it back (none when the stack cannot be
/// reached: the thread is ending).
pub(crate) fn push(core: SpanCore) -> Option<Token> {
    push_with(move || core)
}

/// Makes what `make` builds current, building it in its place on the stack; returns the token
/// that takes it back (none when the stack cannot be reached).
#[inline]
pub(crate) fn push_with(make: impl FnOnce() -> SpanCore) -> Option<Token> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let token = Token(stack.next_token);
            stack.next_token = stack.next_token.checked_add(1).unwrap_or(NonZeroU64::MIN);
            let core = make();
            stack.recording += usize::from(core.data.is_some());
            stack.frames.push(Frame { token, core });
            Some(token)
        })
        .ok()
        .flatten()
}

/// Takes back what `push` made current (usually the top of the stack).
#[inline(always)]
pub(crate) fn remove(token: Token) -> Option<SpanCore> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let core = if stack.last().is_some_and(|f| f.token == token) {
                stack.frames.pop()?.core
            } else {
                let index = stack.iter().rposition(|f| f.token == token)?;
                #[cfg(debug_assertions)]
                warn_out_of_order();
                stack.frames.remove(index).core
            };
            stack.recording -= usize::from(core.data.is_some());
            Some(core)
        })
        .ok()
        .flatten()
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
            stack.recording = 0;
            stack.frames.drain(..).rev().map(|f| f.core).collect()
        })
        .unwrap_or_default();
    all.append(&mut left_open());
    all
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

fn with_top<R>(f: impl FnOnce(&Frame) -> R) -> Option<R> {
    STACK
        .try_with(|stack| stack.try_borrow().ok()?.last().map(f))
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
            let top = stack.last_mut()?;
            if let Some(data) = top.core.data.as_mut() {
                data.mark_shared();
            }
            Some((top.core.trace.clone(), top.core.span_id))
        })
        .ok()
        .flatten()
}

/// The trace and parent observation a new observation opened here hangs under.
pub(crate) fn current_parent() -> Option<(Arc<TraceState>, Option<ObservationId>)> {
    with_top(|f| (f.core.trace.clone(), f.core.span_id))
}

pub(crate) fn current_trace_state() -> Option<Arc<TraceState>> {
    with_top(|f| f.core.trace.clone())
}

/// The recorded trace running on this thread, and the observation running in it when that one
/// is ours and recorded (both read from the same frame).
pub(crate) fn current_recording_ids() -> Option<(TraceId, Option<ObservationId>)> {
    with_top(|f| {
        f.core.trace.is_recording().then(|| {
            (
                f.core.trace.trace_id,
                f.core.data.as_ref().map(|d| d.span_id),
            )
        })
    })
    .flatten()
}

/// The id of the current observation when it is ours and recorded.
pub(crate) fn current_recording_span_id() -> Option<ObservationId> {
    with_top(|f| f.core.data.as_ref().map(|d| d.span_id)).flatten()
}

pub(crate) fn current_field_limit() -> Option<usize> {
    with_top(|f| {
        f.core
            .trace
            .is_recording()
            .then_some(f.core.trace.options.field_limit)
    })
    .flatten()
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
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        if let Some(data) = stack
            .iter_mut()
            .rev()
            .filter_map(|f| f.core.data.as_mut())
            .find(|d| d.span_id == parent)
        {
            data.mark_child_admitted();
        }
    });
}

pub(crate) fn span_id_of(token: Token) -> Option<ObservationId> {
    with_data_of(token, |data| data.span_id)
}

/// Runs `f` on the data of the recorded observation `push` returned `token` for, if it is on
/// this thread's stack; `f` must not call user code.
pub(crate) fn with_data_of<R>(token: Token, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let frame = match stack.last_mut() {
                Some(top) if top.token == token => top,
                _ => stack.iter_mut().rev().find(|f| f.token == token)?,
            };
            frame.core.data.as_mut().map(f)
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
        let data = stack
            .iter_mut()
            .rev()
            .filter_map(|f| f.core.data.as_mut())
            .find(|d| d.span_id == id);
        if let Some(data) = data {
            change(data);
        }
    });
}
