//! Per-thread buffers of finished records, and admission under pressure.
//!
//! A span that ends goes into its thread's buffer, not into a channel. The buffer is handed to the
//! client in one piece when the thread has no recorded observation open any more (a local root
//! ended) and it holds a few records (`Client::hand_over_at`: the records of small traces are
//! gathered first), when it holds [`CHUNK`] records, when the thread exits, and whenever a flush,
//! shutdown, the exit hook or the exporter's timer collects every buffer through the registry. The lock
//! around a buffer is only ever contended by such a collection, so it is a spin lock whose
//! release is a plain store. The thread also keeps the installed client, checked against the
//! gate's epoch, so ending a span touches no shared reference count.
//!
//! Admission keeps traces whole: while the queue is full, a span is dropped only if nothing of
//! it was admitted (no admitted child, no context handle taken on it); an admitted span marks its
//! parent, which is then admitted whatever the queue holds. A root with nothing admitted under it
//! gets twice the room of a child, and past that its whole trace is dropped.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use spin::mutex::{SpinMutex, SpinMutexGuard};
use spin::relax::Yield;

use crate::export::Counters;
use crate::gate::{self, Client};
use crate::record::{Record, SpanData, TraceState};

/// A buffer is handed over when it holds this many records.
pub(crate) const CHUNK: usize = 512;

#[derive(Default)]
struct Held {
    records: Vec<Record>,
    /// Spans this thread dropped for a full queue since the last hand-over.
    dropped_full: u64,
}

#[derive(Default)]
struct ThreadBuffer {
    held: SpinMutex<Held, Yield>,
}

impl ThreadBuffer {
    #[inline]
    fn lock(&self) -> SpinMutexGuard<'_, Held, Yield> {
        self.held.lock()
    }

    /// Takes what the buffer holds and hands it to `client`.
    fn hand_over(&self, client: &Client) {
        let (records, dropped) = {
            let mut held = self.lock();
            if held.records.is_empty() && held.dropped_full == 0 {
                return;
            }
            (
                std::mem::take(&mut held.records),
                std::mem::take(&mut held.dropped_full),
            )
        };
        client.accept(records, dropped);
    }
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
}

impl Drop for Local {
    fn drop(&mut self) {
        match gate::installed_ignoring_gate() {
            Some(client) => self.buffer.hand_over(&client),
            None => {
                // Admitted just before a shutdown that collected the buffers: counted as lost.
                let held = std::mem::take(&mut *self.buffer.lock());
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

/// Admits a finished record into this thread's buffer (or drops and counts it when the queue is
/// full and it may go), and hands the buffer over when `idle` (no recorded observation is open on
/// this thread) and it holds enough records, or when it is full.
#[inline]
pub(crate) fn admit(trace: Arc<TraceState>, data: &mut Option<SpanData>, idle: bool) -> Admission {
    if let Some(scope) = trace.options.scope {
        return hand_to_scope(scope, trace, data);
    }
    let mut trace = Some(trace);
    let outcome = LOCAL.try_with(|local| {
        let (Some(trace), Some(must_pass), Some(root)) = (
            trace.take(),
            data.as_ref().map(SpanData::must_pass),
            data.as_ref().map(|d| d.is_local_root()),
        ) else {
            return Admission::NoClient;
        };
        let epoch = gate::epoch();
        let mut cached = match local.client.try_borrow_mut() {
            Ok(cached) => cached,
            Err(_) => return hand_over_alone(trace, data),
        };
        if cached.0 != epoch {
            *cached = (epoch, gate::installed());
        }
        let Some(client) = cached.1.as_ref() else {
            return Admission::NoClient;
        };
        let mut held = local.buffer.lock();
        let admitted = must_pass || client.has_room(held.records.len(), root);
        if admitted {
            if let Some(data) = data.take() {
                held.records.push(Record { trace, data });
            }
        } else {
            held.dropped_full += 1;
        }
        let held_now = held.records.len();
        // At a root's end: once enough is held, or at once under pressure (the drops reported).
        if held_now >= CHUNK
            || (idle && (held_now >= client.hand_over_at() || held.dropped_full > 0))
        {
            // The next chunk is likely the size of this one: one allocation, no regrowth.
            let capacity = held_now.clamp(16, CHUNK);
            let records = std::mem::replace(&mut held.records, client.chunk(capacity));
            let dropped = std::mem::take(&mut held.dropped_full);
            drop(held);
            client.accept(records, dropped);
        }
        if admitted {
            Admission::Admitted
        } else {
            Admission::Dropped
        }
    });
    match (outcome, trace) {
        (Ok(outcome), _) => outcome,
        // The thread is exiting and its buffer is gone: hand the record over alone.
        (Err(_), Some(trace)) => hand_over_alone(trace, data),
        (Err(_), None) => Admission::NoClient,
    }
}

fn hand_over_alone(trace: Arc<TraceState>, data: &mut Option<SpanData>) -> Admission {
    match (gate::installed(), data.take()) {
        (Some(client), Some(data)) => {
            client.accept(vec![Record { trace, data }], 0);
            Admission::Admitted
        }
        _ => Admission::NoClient,
    }
}

/// A record of a capture scope's trace goes to the scope at once, never into a buffer.
#[cold]
fn hand_to_scope(
    scope: std::num::NonZeroU64,
    trace: Arc<TraceState>,
    data: &mut Option<SpanData>,
) -> Admission {
    match (gate::scope_client(scope), data.take()) {
        (Some(client), Some(data)) => {
            client.accept(vec![Record { trace, data }], 0);
            Admission::Admitted
        }
        _ => Admission::NoClient,
    }
}

/// Hands every thread's buffer to `client`: what has finished anywhere is then in its pipeline.
pub(crate) fn collect_all(client: &Client) {
    let buffers: Vec<Arc<ThreadBuffer>> = registry().iter().filter_map(Weak::upgrade).collect();
    for buffer in buffers {
        buffer.hand_over(client);
    }
}

/// [`collect_all`] into the installed client, if there is one.
pub(crate) fn collect_into_installed() {
    if let Some(client) = crate::gate::installed() {
        collect_all(&client);
    }
}
