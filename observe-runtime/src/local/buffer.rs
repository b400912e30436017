//! Per-thread buffers of finished records, and admission under pressure.
//!
//! A span that ends goes into its thread's buffer, not into a channel. The buffer is handed to the
//! client in one piece when the thread has no recorded observation open any more (a local root
//! ended) and it holds a few records (`Client::hand_over_at`: the records of small traces are
//! gathered first), when it holds [`CHUNK`] records, when the thread exits, and whenever a flush,
//! shutdown, the exit hook or the exporter's timer collects every buffer through the registry.
//! Only such a collection reaches a buffer from another thread, so the thread uses its own
//! without a locked instruction ([`Owned`]). The thread also keeps the installed client, checked
//! against the gate's epoch, so ending a span touches no shared reference count.
//!
//! Admission keeps traces whole: while the queue is full, a span is dropped only if nothing of
//! it was admitted (no admitted child, no context handle taken on it); an admitted span marks its
//! parent, which is then admitted whatever the queue holds. A root with nothing admitted under it
//! gets twice the room of a child, and past that its whole trace is dropped.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::owned::{self, Owned};
use crate::export::Counters;
use crate::gate::{self, Client};
use crate::record::{EndStamp, Record, SpanData, TraceState};

/// A buffer is handed over when it holds this many records.
pub(crate) const CHUNK: usize = 512;

#[derive(Default)]
struct Held {
    records: Vec<Record>,
    /// The address of the trace of the last record that names one (see [`Record`]): the next
    /// record of that trace leaves it out. Valid while `records` is not empty (a record there
    /// keeps that trace alive, so no other trace can have its address).
    last_trace: usize,
    /// Spans this thread dropped for a full queue since the last hand-over.
    dropped_full: u64,
}

impl Held {
    /// Adds a record, naming its trace when the record before it is of another one, or when
    /// it comes with a reference of its own (moved into the record: dropping it here would be
    /// a locked decrement on this thread, where the exporter's drop costs the caller nothing);
    /// stamps it where it now lies.
    #[inline]
    fn push(&mut self, trace: Cow<'_, Arc<TraceState>>, data: SpanData, stamp: EndStamp) {
        let address = Arc::as_ptr(&trace) as usize;
        let trace = match trace {
            Cow::Borrowed(_) if !self.records.is_empty() && self.last_trace == address => None,
            trace => {
                self.last_trace = address;
                Some(trace.into_owned())
            }
        };
        // (`extend` makes room first, then writes the record where it goes; `push` built it
        // aside and moved it, the move's wide loads waiting on narrower stores.)
        self.records
            .extend(std::iter::once_with(move || Record { trace, data }));
        if let Some(record) = self.records.last_mut() {
            record.data.set_end(stamp);
        }
    }

    /// Takes the records (leaving `next` in their place) and the count of dropped ones.
    fn take(&mut self, next: Vec<Record>) -> (Vec<Record>, u64) {
        (
            std::mem::replace(&mut self.records, next),
            std::mem::take(&mut self.dropped_full),
        )
    }
}

/// A thread's buffer: used by its thread, collected by others.
type ThreadBuffer = Owned<Held>;

/// Takes what a buffer holds, if anything.
fn take_held(held: &mut Held) -> Option<(Vec<Record>, u64)> {
    (!held.records.is_empty() || held.dropped_full > 0).then(|| held.take(Vec::new()))
}

/// Every thread's buffer, for the collections that must reach them all.
static REGISTRY: Mutex<Vec<Weak<ThreadBuffer>>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Weak<ThreadBuffer>>> {
    crate::sync::lock(&REGISTRY)
}

/// This thread's buffer, registered on first use; handed over when the thread exits.
struct Local {
    buffer: Arc<ThreadBuffer>,
    /// The installed client as of a gate epoch.
    client: RefCell<(u64, Option<Arc<Client>>)>,
}

impl Local {
    fn new() -> Self {
        let buffer = Arc::new(ThreadBuffer::default());
        let mut registry = registry();
        registry.retain(|weak| weak.strong_count() > 0);
        registry.push(Arc::downgrade(&buffer));
        Self {
            buffer,
            client: RefCell::new((u64::MAX, None)),
        }
    }

    /// This thread's buffer, for this thread. Each use ends before anything else is called (a
    /// client, a mask): none is alive when the next begins.
    #[inline(always)]
    fn owned_buffer(&self) -> owned::Owner<'_, Held> {
        #[allow(unsafe_code)]
        // SAFETY: `Local` is this thread's thread-local, so this is the buffer's own thread, and
        // no other use of it is alive (see above).
        unsafe {
            self.buffer.owner()
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        match gate::installed_ignoring_gate() {
            Some(client) => {
                let taken = take_held(&mut self.owned_buffer());
                if let Some((records, dropped)) = taken {
                    client.accept(records, dropped);
                }
            }
            None => {
                // Admitted just before a shutdown that collected the buffers: counted as lost.
                let held = std::mem::take(&mut *self.owned_buffer());
                let lost = held.records.len() as u64;
                if let (Some(counters), true) =
                    (gate::latest_counters(), lost + held.dropped_full > 0)
                {
                    Counters::add(&counters.spans_created, lost + held.dropped_full);
                    Counters::add(&counters.spans_dropped_queue_full, held.dropped_full);
                    Counters::add(&counters.spans_dropped_after_shutdown, lost);
                }
            }
        }
    }
}

/// What became of a finished record.
pub(crate) enum Admission {
    Admitted,
    /// Dropped for a full queue (and counted).
    Dropped,
    /// No client takes it any more (shut down meanwhile).
    NoClient,
}

thread_local! {
    static LOCAL: Local = Local::new();
}

/// Admits a finished record of `trace`, ended at `stamp`, into this thread's buffer (or drops
/// and counts it when the queue is full and it may go). `idle`: no recorded observation is open
/// on this thread any more. The [`HandOver`] returned hands the buffer over if it now holds enough records, or is
/// full: run it once nothing of this thread is borrowed (the in-memory exporter runs the user's
/// mask there).
#[inline]
pub(crate) fn admit(
    trace: Cow<'_, Arc<TraceState>>,
    data: &mut Option<SpanData>,
    idle: bool,
    stamp: EndStamp,
) -> (Admission, HandOver) {
    if let Some(scope) = trace.options.scope {
        let admission = hand_to_scope(scope, trace.into_owned(), data, stamp);
        return (admission, HandOver(false));
    }
    let mut trace = Some(trace);
    let outcome = LOCAL.try_with(|local| {
        let (Some(trace), Some(must_pass), Some(root)) = (
            trace.take(),
            data.as_ref().map(SpanData::must_pass),
            data.as_ref().map(|d| d.is_local_root()),
        ) else {
            return (Admission::NoClient, false);
        };
        let epoch = gate::epoch();
        let mut cached = match local.client.try_borrow_mut() {
            Ok(cached) => cached,
            Err(_) => return (hand_over_alone(trace.into_owned(), data, stamp), false),
        };
        if cached.0 != epoch {
            *cached = (epoch, gate::installed());
        }
        let Some(client) = cached.1.as_ref() else {
            return (Admission::NoClient, false);
        };
        let mut held = local.owned_buffer();
        let admitted = must_pass || client.has_room(held.records.len(), root);
        if admitted {
            if let Some(data) = data.take() {
                held.push(trace, data, stamp);
            }
        } else {
            held.dropped_full += 1;
        }
        let held_now = held.records.len();
        if held_now == 1 || !admitted {
            // The first record since the buffer was emptied, or a drop to report: a collection
            // now has something to take here.
            held.filled();
        }
        // At a root's end: once enough is held, or at once under pressure (the drops reported).
        let due = held_now >= CHUNK
            || (idle && (held_now >= client.hand_over_at() || held.dropped_full > 0));
        let outcome = if admitted {
            Admission::Admitted
        } else {
            Admission::Dropped
        };
        (outcome, due)
    });
    match (outcome, trace) {
        (Ok((outcome, due)), _) => (outcome, HandOver(due)),
        // The thread is exiting and its buffer is gone: hand the record over alone.
        (Err(_), Some(trace)) => {
            let admission = hand_over_alone(trace.into_owned(), data, stamp);
            (admission, HandOver(false))
        }
        (Err(_), None) => (Admission::NoClient, HandOver(false)),
    }
}

/// A hand-over of this thread's buffer that [`admit`] found due (or not).
#[must_use = "run it once nothing of this thread is borrowed"]
#[derive(Default)]
pub(crate) struct HandOver(bool);

impl HandOver {
    /// Hands the buffer over to the client, if that is due.
    #[inline]
    pub(crate) fn run(self) {
        if self.0 {
            hand_over_here();
        }
    }
}

#[cold]
fn hand_over_here() {
    let _ = LOCAL.try_with(|local| {
        let Ok(cached) = local.client.try_borrow() else {
            return;
        };
        let Some(client) = cached.1.as_ref() else {
            return;
        };
        let mut held = local.owned_buffer();
        // The next chunk is likely the size of this one: one allocation, no regrowth.
        let capacity = held.records.len().clamp(16, CHUNK);
        let (records, dropped) = held.take(client.chunk(capacity));
        drop(held);
        client.accept(records, dropped);
    });
}

fn hand_over_alone(
    trace: Arc<TraceState>,
    data: &mut Option<SpanData>,
    stamp: EndStamp,
) -> Admission {
    accept_alone(gate::installed(), trace, data, stamp)
}

/// A record of a capture scope's trace goes to the scope at once, never into a buffer.
#[cold]
fn hand_to_scope(
    scope: std::num::NonZeroU64,
    trace: Arc<TraceState>,
    data: &mut Option<SpanData>,
    stamp: EndStamp,
) -> Admission {
    accept_alone(gate::scope_client(scope), trace, data, stamp)
}

/// Hands one record to `client`, in a chunk of its own.
fn accept_alone(
    client: Option<Arc<Client>>,
    trace: Arc<TraceState>,
    data: &mut Option<SpanData>,
    stamp: EndStamp,
) -> Admission {
    match (client, data.take()) {
        (Some(client), Some(mut data)) => {
            data.set_end(stamp);
            let trace = Some(trace);
            client.accept(vec![Record { trace, data }], 0);
            Admission::Admitted
        }
        _ => Admission::NoClient,
    }
}

/// Hands every thread's buffer to `client`: what has finished anywhere is then in its pipeline.
pub(crate) fn collect_all(client: &Client) {
    let buffers: Vec<Arc<ThreadBuffer>> = registry().iter().filter_map(Weak::upgrade).collect();
    let cells: Vec<&ThreadBuffer> = buffers.iter().map(|buffer| &**buffer).collect();
    let mut taken = Vec::new();
    owned::collect(&cells, |held| taken.extend(take_held(held)));
    for (records, dropped) in taken {
        client.accept(records, dropped);
    }
}

/// [`collect_all`] into the installed client, if there is one.
pub(crate) fn collect_into_installed() {
    if let Some(client) = crate::gate::installed() {
        collect_all(&client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObservationId;
    use crate::record::ObservationType;

    fn stamp() -> EndStamp {
        EndStamp {
            at: crate::clock::Ticks::now(),
            version: 0,
        }
    }

    fn data() -> SpanData {
        let id = ObservationId::random();
        SpanData::start(id, None, true, Cow::Borrowed("s"), ObservationType::Span)
    }

    #[test]
    fn a_chunk_names_a_trace_once_per_run_of_its_records() {
        let (a, b) = (TraceState::for_tests("a"), TraceState::for_tests("b"));
        let mut held = Held::default();
        held.push(Cow::Borrowed(&a), data(), stamp());
        held.push(Cow::Borrowed(&a), data(), stamp());
        held.push(Cow::Owned(b.clone()), data(), stamp());
        held.push(Cow::Owned(a.clone()), data(), stamp());
        held.push(Cow::Borrowed(&a), data(), stamp());
        held.push(Cow::Owned(a.clone()), data(), stamp());
        let named = |records: &[Record]| -> Vec<Option<crate::ids::TraceId>> {
            records
                .iter()
                .map(|r| r.trace.as_ref().map(|t| t.trace_id))
                .collect()
        };
        let (ta, tb) = (Some(a.trace_id), Some(b.trace_id));
        // A reference of its own is kept (moved), never dropped here.
        assert_eq!(named(&held.records), [ta, None, tb, ta, None, ta]);
        // Three references to `a` in the chunk, one to `b`: none per borrowed record.
        assert_eq!((Arc::strong_count(&a), Arc::strong_count(&b)), (4, 2));

        let (chunk, dropped) = held.take(Vec::new());
        assert_eq!(dropped, 0);
        // A new chunk names its trace again, even the one the last chunk ended with.
        held.push(Cow::Borrowed(&a), data(), stamp());
        assert_eq!(named(&held.records), [ta]);

        // The exporter's side follows the runs back to each record's trace.
        let mut run = None;
        let finished: Vec<_> = chunk
            .into_iter()
            .map(|record| record.finish(&mut run, |_| 1).map(|span| span.trace_id))
            .collect();
        let (a_id, b_id) = (a.trace_id, b.trace_id);
        assert_eq!(
            finished,
            [
                Some(a_id),
                Some(a_id),
                Some(b_id),
                Some(a_id),
                Some(a_id),
                Some(a_id)
            ]
        );
    }

    #[test]
    fn a_record_carried_alone_names_the_trace_of_its_run() {
        let a = TraceState::for_tests("a");
        let mut held = Held::default();
        held.push(Cow::Borrowed(&a), data(), stamp());
        held.push(Cow::Borrowed(&a), data(), stamp());
        let (chunk, _) = held.take(Vec::new());
        let mut records = chunk.into_iter();
        let mut run = None;
        let first = records.next().and_then(|r| r.finish(&mut run, |_| 1));
        assert_eq!(first.map(|span| span.trace_id), Some(a.trace_id));
        let second = records.next().map(|r| r.standalone(&run));
        let mut fresh_run = None;
        let second = second.and_then(|r| r.finish(&mut fresh_run, |_| 1));
        assert_eq!(second.map(|span| span.trace_id), Some(a.trace_id));
    }
}
