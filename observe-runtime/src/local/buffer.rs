//! Per-thread buffers of finished records, and admission under pressure.
//!
//! A span that ends goes into its thread's buffer, not into a channel. The buffer is handed to the
//! client in one piece when the thread has no recorded observation open any more (a local root
//! ended), when it holds [`CHUNK`] records, when the thread exits, and whenever a flush, shutdown,
//! the exit hook or the exporter's timer collects every buffer through the registry. The lock
//! around a buffer is only ever contended by such a collection.
//!
//! Admission keeps traces whole: while the queue is full, a span is dropped only if nothing of
//! it was admitted (no admitted child, no context handle taken on it); an admitted span marks its
//! parent, which is then admitted whatever the queue holds. A root with nothing admitted under it
//! gets twice the room of a child, and past that its whole trace is dropped.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::gate::Client;
use crate::record::Record;

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
    held: Mutex<Held>,
}

impl ThreadBuffer {
    fn lock(&self) -> MutexGuard<'_, Held> {
        match self.held.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        }
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
    match REGISTRY.lock() {
        Ok(registry) => registry,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// This thread's buffer, registered on first use; handed over when the thread exits.
struct Local {
    buffer: Arc<ThreadBuffer>,
}

impl Local {
    fn new() -> Self {
        let buffer = Arc::new(ThreadBuffer::default());
        let mut registry = registry();
        registry.retain(|weak| weak.strong_count() > 0);
        registry.push(Arc::downgrade(&buffer));
        Self { buffer }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(client) = crate::gate::installed_ignoring_gate() {
            self.buffer.hand_over(&client);
        }
    }
}

thread_local! {
    static LOCAL: Local = Local::new();
}

/// Admits a finished record into this thread's buffer (or drops and counts it when the queue is
/// full and it may go), and hands the buffer over when `idle` (no recorded observation is open on
/// this thread) or when it is full. Returns whether the record was admitted.
#[inline]
pub(crate) fn admit(client: &Client, record: Record, idle: bool) -> bool {
    let mut record = Some(record);
    let admitted = LOCAL.try_with(|local| {
        let Some(record) = record.take() else {
            return false;
        };
        let mut held = local.buffer.lock();
        let admitted = record.data.must_pass()
            || client.has_room(held.records.len(), record.data.is_local_root);
        if admitted {
            held.records.push(record);
        } else {
            held.dropped_full += 1;
        }
        if idle || held.records.len() >= CHUNK {
            let records = std::mem::replace(&mut held.records, Vec::with_capacity(16));
            let dropped = std::mem::take(&mut held.dropped_full);
            drop(held);
            client.accept(records, dropped);
        }
        admitted
    });
    match (admitted, record) {
        (Ok(admitted), _) => admitted,
        // The thread is exiting and its buffer is gone: hand the record over alone.
        (Err(_), Some(record)) => {
            client.accept(vec![record], 0);
            true
        }
        (Err(_), None) => false,
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
