//! Per-thread buffers of records, and admission under pressure.
//!
//! A span that ends goes into its thread's buffer, not into a channel. A child that `#[observe]`
//! opens under the current observation is written there when it opens ([`Held::open_child_record`]),
//! its frame on the stack holding its place, and is stamped and admitted where it lies when it
//! ends ([`end_in_chunk`]): its record is written once. A collection from another thread takes
//! the finished records and leaves the open ones in their places; the places it empties are
//! closed up by the thread ([`Held::compact`]), which tells its frames where their records went.
//! Other observations (roots, manual and detached spans, `async` bodies) keep their record in
//! their frame and move it here when they end ([`admit`]). The buffer is handed to the
//! client in one piece when the thread has no recorded observation open any more (a local root
//! ended) and it holds a few records (`Client::hand_over_at`: the records of small traces are
//! gathered first), when it holds [`CHUNK`] records, when the thread exits, and whenever a flush,
//! shutdown, the exit hook or the exporter's timer collects every buffer through the registry.
//! Only such a collection reaches a buffer from another thread, so the thread uses its own
//! without a locked instruction ([`Owned`]). The thread also keeps the installed client, checked
//! against the gate's epoch, so ending a span touches no shared reference count.
//!
//! Admission keeps traces whole: while the queue is full, a span is dropped only if nothing of
//! it was admitted (no admitted child, no context handle taken on it); the parent of an admitted
//! span learns of it (from the stack's count of admissions, see `stack`, or marked when the
//! child ended off the stack) and is then admitted whatever the queue holds. A root with nothing admitted under it
//! gets twice the room of a child, and past that its whole trace is dropped.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::owned::{self, Owned};
use crate::export::Counters;
use crate::gate::{self, Client};
use crate::ids::ObservationId;
use crate::record::{EndStamp, ObservationType, Record, SpanData, TraceState};

/// A buffer is handed over when it holds this many records.
pub(crate) const CHUNK: usize = 512;

/// What a thread's buffer holds: the records of its chunk, finished ones and (written there
/// when they opened, see [`Held::open_child_record`]) the ones still open on the thread's stack.
#[derive(Default)]
pub(crate) struct Held {
    records: Vec<Record>,
    /// The address of the trace of the last record that names one (see [`Record`]): the next
    /// record of that trace leaves it out. Valid while `records` is not empty (a record there
    /// keeps that trace alive, so no other trace can have its address).
    last_trace: usize,
    /// Spans this thread dropped for a full queue since the last hand-over.
    dropped_full: u64,
    /// Records in `records` still open: each is the observation of a frame of the thread's
    /// stack, which knows it by its place; they are in the order of those frames.
    open: usize,
    /// Places in `records` that a record left before the chunk was handed over (skipped).
    gone: usize,
    /// A collection was told that this buffer has something to take ([`owned::Owner::filled`]) since
    /// the last one.
    announced: bool,
}

impl Held {
    /// Adds a record, naming its trace when the record before it is of another one, or when
    /// it comes with a reference of its own (moved into the record: dropping it here would be
    /// a locked decrement on this thread, where the exporter's drop costs the caller nothing);
    /// stamps it where it now lies.
    #[inline]
    fn push(&mut self, trace: Cow<'_, Arc<TraceState>>, data: SpanData, stamp: EndStamp) {
        let trace = match trace {
            Cow::Borrowed(trace) => self.name(trace),
            Cow::Owned(trace) => {
                self.last_trace = Arc::as_ptr(&trace) as usize;
                Some(trace)
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

    /// Takes the finished records (leaving `next` in their place when nothing is open) and the
    /// count of dropped ones. Open records stay where they are: what was taken from between
    /// them leaves a place that is skipped.
    fn take(&mut self, next: Vec<Record>) -> (Vec<Record>, u64) {
        self.announced = false;
        let records = if self.open == 0 && self.gone == 0 {
            std::mem::replace(&mut self.records, next)
        } else {
            self.take_finished()
        };
        (records, std::mem::take(&mut self.dropped_full))
    }

    /// The finished records held, not counting open ones and places left.
    #[inline(always)]
    fn finished(&self) -> usize {
        self.records.len() - self.open - self.gone
    }

    /// What a record of `trace` added now names: nothing when the last record that names one
    /// names it (see [`Record`]), else a reference to it.
    #[inline(always)]
    fn name(&mut self, trace: &Arc<TraceState>) -> Option<Arc<TraceState>> {
        let address = Arc::as_ptr(trace) as usize;
        if !self.records.is_empty() && self.last_trace == address {
            return None;
        }
        self.last_trace = address;
        Some(trace.clone())
    }

    /// Writes the record of an observation that opens now, of `trace`, at the end of the chunk;
    /// returns its place there. It is ended there ([`end_in_chunk`]) or taken out
    /// ([`Held::take_open`]). Written field by field into its place (built by a closure, its
    /// captures were gathered, then copied in pairs that the loads could not take from the
    /// stores just made).
    #[inline(always)]
    pub(crate) fn open_child_record(
        &mut self,
        trace: &Arc<TraceState>,
        (span_id, parent, is_local_root): (ObservationId, Option<ObservationId>, bool),
        name: &'static str,
        kind: ObservationType,
    ) -> usize {
        let trace = self.name(trace);
        self.records.reserve(1);
        let index = self.records.len();
        if let Some(slot) = self.records.spare_capacity_mut().first_mut() {
            let data = SpanData::start(span_id, parent, is_local_root, Cow::Borrowed(name), kind);
            slot.write(Record {
                trace,
                data: data.open_in_chunk(),
            });
            #[allow(unsafe_code)]
            // SAFETY: the place past `index` exists (`reserve`) and was just written.
            unsafe {
                self.records.set_len(index + 1);
            }
            self.open += 1;
        }
        index
    }

    /// The data of the record at `index`.
    #[inline(always)]
    pub(crate) fn data_mut(&mut self, index: usize) -> Option<&mut SpanData> {
        self.records.get_mut(index).map(|record| &mut record.data)
    }

    /// Takes the open record at `index` out of the chunk, to end elsewhere.
    pub(crate) fn take_open(&mut self, index: usize) -> Option<SpanData> {
        let mut data = self.remove(index)?;
        self.open -= 1;
        data.leave_chunk();
        Some(data)
    }

    /// Takes the record at `index` out of the chunk: the last one goes, another leaves its
    /// place (which keeps the trace it names, for the records after it).
    fn remove(&mut self, index: usize) -> Option<SpanData> {
        if index + 1 == self.records.len() {
            let record = self.records.pop()?;
            if record.trace.is_some() {
                // The trace the next record is compared with is the last one named now.
                self.last_trace = self
                    .records
                    .iter()
                    .rev()
                    .find_map(|r| r.trace.as_ref())
                    .map_or(0, |trace| Arc::as_ptr(trace) as usize);
            }
            if self.records.is_empty() {
                self.gone = 0;
            }
            Some(record.data)
        } else {
            let record = self.records.get_mut(index)?;
            self.gone += 1;
            Some(std::mem::replace(&mut record.data, SpanData::gone()))
        }
    }

    /// Takes the finished records out, named for a chunk of their own. Open records stay where
    /// they are (their frames know them by their place); a finished one leaves its place, which
    /// keeps the trace it named. Nothing open left, the chunk is emptied.
    fn take_finished(&mut self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.finished());
        let mut run: Option<Arc<TraceState>> = None;
        let mut named = 0;
        for record in &mut self.records {
            if let Some(trace) = &record.trace {
                run = Some(trace.clone());
            }
            if record.data.is_gone() || record.data.is_open() {
                continue;
            }
            let data = std::mem::replace(&mut record.data, SpanData::gone());
            self.gone += 1;
            out.push(Record {
                trace: name_run(&mut named, &run),
                data,
            });
        }
        if self.open == 0 {
            self.records.clear();
            self.gone = 0;
        }
        out
    }

    /// Removes the places records left, keeping the order of the rest; returns whether it did
    /// (the open records' places then changed: their frames are told by
    /// [`Held::open_places`]).
    #[inline(always)]
    pub(crate) fn compact(&mut self) -> bool {
        self.gone >= CHUNK / 2 && self.compact_now()
    }

    #[cold]
    fn compact_now(&mut self) -> bool {
        let mut run: Option<Arc<TraceState>> = None;
        let mut named = 0;
        let records = std::mem::take(&mut self.records);
        let mut kept = Vec::with_capacity(CHUNK.max(records.len() - self.gone));
        for Record { trace, data } in records {
            if trace.is_some() {
                run = trace;
            }
            if !data.is_gone() {
                kept.push(Record {
                    trace: name_run(&mut named, &run),
                    data,
                });
            }
        }
        self.records = kept;
        self.last_trace = named;
        self.gone = 0;
        true
    }

    /// The places of the open records, in order.
    pub(crate) fn open_places(&self) -> impl Iterator<Item = usize> + '_ {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, record)| record.data.is_open())
            .map(|(index, _)| index)
    }
}

/// The trace a record of `run` names in a chunk whose last named trace has the address `named`
/// (`None`: the same).
fn name_run(named: &mut usize, run: &Option<Arc<TraceState>>) -> Option<Arc<TraceState>> {
    let address = run.as_ref().map_or(0, |trace| Arc::as_ptr(trace) as usize);
    if *named == address {
        return None;
    }
    *named = address;
    run.clone()
}

/// A thread's buffer: used by its thread, collected by others.
pub(crate) type ThreadBuffer = Owned<Held>;

/// Takes what a buffer holds, if anything.
fn take_held(held: &mut Held) -> Option<(Vec<Record>, u64)> {
    if held.finished() == 0 && held.dropped_full == 0 {
        held.announced = false;
        return None;
    }
    Some(held.take(Vec::new()))
}

/// This thread's buffer, for its stack to write the records of observations into as they open
/// (none when the thread is ending).
pub(crate) fn this_thread() -> Option<Arc<ThreadBuffer>> {
    LOCAL.try_with(|local| local.buffer.clone()).ok()
}

/// `buffer`'s value, for this thread.
///
/// # Safety
///
/// `buffer` is this thread's (from [`this_thread`] on this thread), and no other use of it is
/// alive: the stack's uses end before it calls anything else.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) unsafe fn own(buffer: &ThreadBuffer) -> owned::Owner<'_, Held> {
    // SAFETY: the caller's promise, which is `owner`'s.
    unsafe { buffer.owner() }
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
                // (What is still open is the stack's, which ends it.)
                let (records, dropped_full) = self.owned_buffer().take(Vec::new());
                let lost = records.len() as u64;
                if let (Some(counters), true) = (gate::latest_counters(), lost + dropped_full > 0) {
                    Counters::add(&counters.spans_created, lost + dropped_full);
                    Counters::add(&counters.spans_dropped_queue_full, dropped_full);
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

impl Admission {
    /// Whether the record was admitted; one that no client took any more is counted here.
    #[inline(always)]
    pub(crate) fn admitted(self) -> bool {
        match self {
            Admission::Admitted => true,
            Admission::Dropped => false,
            Admission::NoClient => {
                count_after_shutdown();
                false
            }
        }
    }
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
        let admitted = must_pass || client.has_room(held.finished(), root);
        if admitted {
            if let Some(data) = data.take() {
                held.push(trace, data, stamp);
            }
        } else {
            held.dropped_full += 1;
        }
        let due = held.settle(client, idle);
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

impl owned::Owner<'_, Held> {
    /// After a record was admitted or dropped: tells a collection there is something to take
    /// here (once per collection), and says whether the buffer is due to be handed over: once
    /// enough is held, or at a root's end when enough for a batch of small traces is, or at
    /// once under pressure (the drops reported).
    #[inline(always)]
    fn settle(&mut self, client: &Client, idle: bool) -> bool {
        if !self.announced {
            self.announced = true;
            self.filled();
        }
        let held_now = self.finished();
        held_now >= CHUNK || (idle && (held_now >= client.hand_over_at() || self.dropped_full > 0))
    }
}

/// The installed client as of a gate epoch, kept by a thread.
pub(crate) type CachedClient = (u64, Option<Arc<Client>>);

/// The installed client, from `cache` when the gate's epoch has not changed since.
#[inline(always)]
fn client_from(cache: &mut CachedClient) -> Option<&Client> {
    let epoch = gate::epoch();
    if cache.0 != epoch {
        *cache = (epoch, gate::installed());
    }
    cache.1.as_deref()
}

/// Ends the open record at `index` of this thread's chunk (written there when it opened, and
/// stamped with `stamp`; whether it must pass and is a local root): admitted where it lies,
/// or dropped and counted when the queue is full and it may go. `idle`: no recorded
/// observation is open on this thread any more. Run the [`HandOver`] once nothing of this
/// thread is borrowed.
#[inline(always)]
pub(crate) fn end_in_chunk(
    held: &mut owned::Owner<'_, Held>,
    (index, (must_pass, root)): (usize, (bool, bool)),
    (trace, client, stamp): (&Arc<TraceState>, &mut CachedClient, EndStamp),
    idle: bool,
) -> (Admission, HandOver) {
    let outcome = client_from(client).map(
        #[inline(always)]
        |client| {
            held.open -= 1;
            // This one is counted among the finished ones now, and asks for room beside them.
            let admitted = must_pass || client.has_room(held.finished() - 1, root);
            if !admitted {
                drop(held.remove(index));
                held.dropped_full += 1;
            }
            let due = held.settle(client, idle);
            (admitted, due)
        },
    );
    match outcome {
        Some((true, due)) => (Admission::Admitted, HandOver(due)),
        Some((false, due)) => (Admission::Dropped, HandOver(due)),
        None => end_alone(held, index, trace, stamp),
    }
}

/// No client any more: the record goes alone, or nowhere.
#[cold]
fn end_alone(
    held: &mut Held,
    index: usize,
    trace: &Arc<TraceState>,
    stamp: EndStamp,
) -> (Admission, HandOver) {
    match held.take_open(index) {
        Some(data) => {
            let mut data = Some(data);
            (
                hand_over_alone(trace.clone(), &mut data, stamp),
                HandOver(false),
            )
        }
        None => (Admission::NoClient, HandOver(false)),
    }
}

/// Counts a record that ended when no client took it any more (shut down meanwhile).
#[cold]
fn count_after_shutdown() {
    if let Some(counters) = gate::latest_counters() {
        Counters::add(&counters.spans_created, 1);
        Counters::add(&counters.spans_dropped_after_shutdown, 1);
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
        let next = if held.open == 0 {
            client.chunk(capacity)
        } else {
            Vec::new()
        };
        let (records, dropped) = held.take(next);
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

    /// Opens a record of `trace` in the chunk, as `#[observe]` does.
    fn open(held: &mut Held, trace: &Arc<TraceState>) -> usize {
        let opening = (ObservationId::random(), None, true);
        held.open_child_record(trace, opening, "s", ObservationType::Span)
    }

    /// Ends the open record at `index` as `end_in_chunk` does when it is admitted.
    fn end_at(held: &mut Held, index: usize) {
        held.data_mut(index).expect("there").set_end(stamp());
        held.open -= 1;
    }

    fn trace_ids(records: &[Record]) -> Vec<Option<crate::ids::TraceId>> {
        records
            .iter()
            .map(|r| r.trace.as_ref().map(|t| t.trace_id))
            .collect()
    }

    #[test]
    fn open_records_stay_in_their_places_while_the_finished_ones_are_taken() {
        let a = TraceState::for_tests("a");
        let mut held = Held::default();
        let parent = open(&mut held, &a);
        let child = open(&mut held, &a);
        assert_eq!((parent, child, held.open), (0, 1, 2));
        assert_eq!(trace_ids(&held.records), [Some(a.trace_id), None]);
        end_at(&mut held, child);
        let (taken, _) = held.take(Vec::new());
        // The child goes, named for a chunk of its own; the parent stays where it is.
        assert_eq!(trace_ids(&taken), [Some(a.trace_id)]);
        assert_eq!((held.records.len(), held.open, held.gone), (2, 1, 1));
        assert!(held.data_mut(parent).is_some_and(|d| d.is_open()));
        drop(taken);

        // The next record of the trace leaves it out; taken, it names it again.
        let second = open(&mut held, &a);
        assert_eq!((second, trace_ids(&held.records[2..])), (2, vec![None]));
        end_at(&mut held, second);
        let (taken, _) = held.take(Vec::new());
        assert_eq!(trace_ids(&taken), [Some(a.trace_id)]);
        drop(taken);

        // The parent taken out to end elsewhere leaves its place; nothing open, the chunk
        // empties at the next take.
        let out = held.take_open(parent).expect("open");
        assert!(!out.is_open());
        assert_eq!((held.records.len(), held.open, held.finished()), (3, 0, 0));
        assert!(take_held(&mut held).is_none());
        let (taken, _) = held.take(Vec::new());
        assert!(taken.is_empty() && held.records.is_empty());
        assert_eq!((Arc::strong_count(&a), held.gone), (1, 0));
    }

    #[test]
    fn the_last_record_taken_out_goes_and_the_next_names_its_trace_again() {
        let (a, b) = (TraceState::for_tests("a"), TraceState::for_tests("b"));
        let mut held = Held::default();
        open(&mut held, &a);
        let last = open(&mut held, &b);
        assert!(held.take_open(last).is_some());
        assert_eq!((held.records.len(), held.gone), (1, 0));
        // `b` is no longer named in the chunk: a new record of it names it.
        open(&mut held, &b);
        assert_eq!(
            trace_ids(&held.records),
            [Some(a.trace_id), Some(b.trace_id)]
        );
    }

    #[test]
    fn compaction_keeps_the_open_records_in_order_with_their_traces() {
        let (a, b) = (TraceState::for_tests("a"), TraceState::for_tests("b"));
        let mut held = Held::default();
        open(&mut held, &a);
        assert!(!held.compact(), "nothing to remove");
        for _ in 0..CHUNK / 2 {
            let child = open(&mut held, &a);
            end_at(&mut held, child);
        }
        let (taken, _) = held.take(Vec::new());
        assert_eq!(taken.len(), CHUNK / 2);
        open(&mut held, &b);
        let finished = open(&mut held, &b);
        end_at(&mut held, finished);
        assert_eq!(held.gone, CHUNK / 2);
        assert!(held.compact());
        assert_eq!(held.open_places().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(
            trace_ids(&held.records),
            [Some(a.trace_id), Some(b.trace_id), None]
        );
        assert_eq!((held.gone, held.finished()), (0, 1));
        // The next record of `b` leaves it out: it is the last named.
        open(&mut held, &b);
        assert_eq!(trace_ids(&held.records[3..]), [None]);
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
