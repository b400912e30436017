//! The queue between the threads that end spans and the exporter thread: an unbounded channel of
//! chunks (one message per finished local root of 128 spans or more, per few smaller ones, or per
//! full per-thread buffer, never one per span) whose total is bounded by admission: `pending`
//! counts the spans handed over and not yet delivered or dropped, and a thread admits a span only
//! while `pending` plus what it holds stays under `max_queue` (a root: under twice that; a parent
//! of admitted spans always passes).
//! Memory is allocated as spans arrive, never up front.
//!
//! Handing a chunk over wakes the exporter thread only when a batch's worth (`flush_at`) is
//! waiting and the exporter waits for a wake-up: the thread otherwise sleeps until its timer, and
//! the user's threads make no system call. While it works, the threads that hand over do not
//! touch the wake-up channel at all (see [`Idle`]).
//!
//! Emptied chunks go back the other way: the exporter returns a chunk it has taken apart (a few
//! of them, of a root's size at most), and a thread that hands its buffer over takes one as its
//! next buffer instead of allocating, so neither side calls the allocator per root.
//!
//! Scores travel beside the spans in a channel of their own, one message per score, bounded the
//! same way: at most `max_queue` scores wait, beyond it a score is dropped and counted (one
//! warning), and `flush_at` waiting scores wake the exporter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::stats::Counters;
use crate::diagnostics;
use crate::record::{FinishedScore, Record};

/// Whether the exporter thread waits for a wake-up: it says so before it waits and unsays it when
/// it wakes, and a thread that hands over a batch's worth sends the wake-up only then. Sent at every
/// hand-over while the exporter was at work, the wake-up cost the handing thread about 100 ns:
/// the channel's full-barrier fence and two of its cache lines, which the exporter writes as it
/// takes its wake-ups (BENCHMARKS.md, "Thirteenth round"). On a cache line of its own, which
/// only the exporter writes, and only when it goes to wait or wakes.
#[repr(align(128))]
struct Idle(AtomicBool);

/// The senders' side, held by the client.
pub(crate) struct Queue {
    sender: Sender<Vec<Record>>,
    /// Wakes the exporter thread (a full channel of one: waking twice costs nothing).
    wake: Sender<()>,
    idle: Arc<Idle>,
    pending: Arc<AtomicUsize>,
    max: usize,
    /// A batch's worth: the exporter is woken when this many spans wait.
    wake_at: usize,
    counters: Arc<Counters>,
    /// Set at the first drop for a full queue: the warning is said once, and later drops cost only
    /// a counter.
    full_warned: AtomicBool,
    scores: Sender<FinishedScore>,
    /// Scores handed over and not yet delivered or dropped.
    scores_pending: Arc<AtomicUsize>,
    scores_full_warned: AtomicBool,
    /// Emptied chunks given back by the exporter.
    spares: Receiver<Vec<Record>>,
}

/// A thread hands over the records of small traces once it holds this many (or a batch's worth,
/// when that is fewer): a chunk and a message per trace of one span would cost more than the span.
/// Until then they wait in its buffer, as long as they would wait in the queue: the exporter's
/// timer collects every buffer. A hand-over costs the thread about 100 ns whatever it carries
/// (the queue's shared counters and channels are written by both sides); at 16, traces of 11
/// spans were handed over every second trace, at 64 every sixth (3 ns a span less), at 128 every
/// twelfth (no further gain) and traces of 101 spans every second one (about 0.5 ns a span less;
/// BENCHMARKS.md, "Thirteenth round").
const SMALL_TRACES: usize = 128;

/// Chunks kept for reuse at most, and the largest capacity kept: at most 4 × 256 records of 128
/// bytes (128 KiB) wait unused.
const SPARES: usize = 4;
const SPARE_CAPACITY: usize = 256;

/// The exporter thread's side.
pub(crate) struct QueueReceiver {
    pub(crate) receiver: Receiver<Vec<Record>>,
    pub(crate) wake: Receiver<()>,
    pending: Arc<AtomicUsize>,
    pub(crate) scores: Receiver<FinishedScore>,
    scores_pending: Arc<AtomicUsize>,
    spares: Sender<Vec<Record>>,
    idle: Arc<Idle>,
    wake_at: usize,
}

impl QueueReceiver {
    /// Says that the exporter is about to wait for a wake-up; `false` when a batch's worth of
    /// spans or scores already waits, and it goes on working instead (it says [`Self::awake`]
    /// either way once it goes on). A thread that hands over after this sees it and wakes the
    /// exporter; one that handed over before is seen here. Both sides' steps are sequentially
    /// consistent; a wake-up lost anyway would delay a batch until the exporter's timer, never
    /// lose it.
    pub(crate) fn may_wait(&self) -> bool {
        self.idle.0.store(true, Ordering::SeqCst);
        let due = (self.pending.load(Ordering::SeqCst) >= self.wake_at
            && !self.receiver.is_empty())
            || (self.scores_pending.load(Ordering::SeqCst) >= self.wake_at
                && !self.scores.is_empty());
        !due
    }

    /// Says that the exporter is at work: threads that hand over leave the wake-up channel alone.
    pub(crate) fn awake(&self) {
        self.idle.0.store(false, Ordering::Relaxed);
    }

    /// Gives an emptied chunk back for reuse (dropped when enough wait, or when it is large).
    pub(crate) fn recycle(&self, mut chunk: Vec<Record>) {
        chunk.clear();
        if (1..=SPARE_CAPACITY).contains(&chunk.capacity()) {
            let _ = self.spares.try_send(chunk);
        }
    }

    /// `count` spans left the pipeline (delivered or dropped).
    pub(crate) fn done(&self, count: usize) {
        self.pending.fetch_sub(count, Ordering::Relaxed);
    }

    /// `count` scores left the pipeline (delivered or dropped).
    pub(crate) fn scores_done(&self, count: usize) {
        self.scores_pending.fetch_sub(count, Ordering::Relaxed);
    }
}

/// A queue that admits about `max` spans and wakes its exporter when `wake_at` wait.
pub(crate) fn queue(max: usize, wake_at: usize, counters: Arc<Counters>) -> (Queue, QueueReceiver) {
    let (sender, receiver) = unbounded();
    let (wake, woken) = bounded(1);
    let pending = Arc::new(AtomicUsize::new(0));
    let (scores, scores_receiver) = unbounded();
    let scores_pending = Arc::new(AtomicUsize::new(0));
    let (give_back, spares) = bounded(SPARES);
    let idle = Arc::new(Idle(AtomicBool::new(false)));
    let wake_at = wake_at.max(1);
    (
        Queue {
            sender,
            wake,
            idle: idle.clone(),
            pending: pending.clone(),
            max,
            wake_at,
            counters,
            full_warned: AtomicBool::new(false),
            scores,
            scores_pending: scores_pending.clone(),
            scores_full_warned: AtomicBool::new(false),
            spares,
        },
        QueueReceiver {
            receiver,
            wake: woken,
            pending,
            scores: scores_receiver,
            scores_pending,
            spares: give_back,
            idle,
            wake_at,
        },
    )
}

impl Queue {
    /// Whether a thread holding `buffered` spans not yet handed over may admit one more: a child
    /// while the queue holds under `max_queue` spans, a root (which keeps its trace whole) while
    /// it holds under twice that.
    #[inline]
    pub(crate) fn has_room(&self, buffered: usize, root: bool) -> bool {
        let held = self.pending.load(Ordering::Relaxed) + buffered;
        held < self.max || (root && held < self.max.saturating_mul(2))
    }

    /// An empty chunk for at least `capacity` records: one the exporter gave back when it is
    /// large enough, else a new one.
    #[inline]
    pub(crate) fn chunk(&self, capacity: usize) -> Vec<Record> {
        match self.spares.try_recv() {
            Ok(spare) if spare.capacity() >= capacity => spare,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// How many records a thread holds before it hands them over when its outermost observation
    /// ends (see [`SMALL_TRACES`]).
    #[inline]
    pub(crate) fn hand_over_at(&self) -> usize {
        self.wake_at.min(SMALL_TRACES)
    }

    /// Hands a thread's records to the exporter, with the count it dropped for a full queue.
    pub(crate) fn push(&self, records: Vec<Record>, dropped_full: u64) {
        let count = records.len();
        Counters::add(&self.counters.spans_created, count as u64 + dropped_full);
        if dropped_full > 0 {
            Counters::add(&self.counters.spans_dropped_queue_full, dropped_full);
            if !self.full_warned.swap(true, Ordering::Relaxed) {
                diagnostics::warn_once(
                    "queue-full",
                    format!(
                        "the span queue is full ({} spans): new child spans are dropped and \
                         counted until the exporter catches up (roots, and parents of spans \
                         already sent, still pass, so every trace that arrives is whole); the \
                         backend may be slow or down (see observe_runtime::stats()), or raise \
                         LANGFUSE_MAX_QUEUE",
                        self.max
                    ),
                );
            }
        }
        if count == 0 {
            return;
        }
        let waiting = self.pending.fetch_add(count, Ordering::SeqCst) + count;
        match self.sender.send(records) {
            Ok(()) => {
                Counters::add(&self.counters.spans_queued, count as u64);
                if waiting >= self.wake_at {
                    self.wake_if_waiting();
                }
            }
            Err(_) => {
                self.pending.fetch_sub(count, Ordering::Relaxed);
                Counters::add(&self.counters.spans_dropped_after_shutdown, count as u64);
            }
        }
    }

    /// Wakes the exporter if it waits for a wake-up (see [`Idle`]).
    #[inline]
    fn wake_if_waiting(&self) {
        if self.idle.0.load(Ordering::SeqCst) {
            let _ = self.wake.try_send(());
        }
    }

    /// Hands one valid score to the exporter, or drops and counts it when `max_queue` scores wait.
    pub(crate) fn push_score(&self, score: FinishedScore) {
        Counters::add(&self.counters.scores_created, 1);
        let waiting = self.scores_pending.fetch_add(1, Ordering::SeqCst) + 1;
        if waiting > self.max {
            self.scores_pending.fetch_sub(1, Ordering::Relaxed);
            Counters::add(&self.counters.scores_dropped_queue_full, 1);
            if !self.scores_full_warned.swap(true, Ordering::Relaxed) {
                diagnostics::warn_once(
                    "score-queue-full",
                    format!(
                        "the score queue is full ({} scores): new scores are dropped and counted \
                         until the exporter catches up; the backend may be slow or down (see \
                         observe_runtime::stats()), or raise LANGFUSE_MAX_QUEUE",
                        self.max
                    ),
                );
            }
            return;
        }
        match self.scores.send(score) {
            Ok(()) => {
                Counters::add(&self.counters.scores_queued, 1);
                if waiting >= self.wake_at {
                    self.wake_if_waiting();
                }
            }
            Err(_) => {
                self.scores_pending.fetch_sub(1, Ordering::Relaxed);
                Counters::add(&self.counters.scores_dropped_after_shutdown, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_chunk_is_reused_by_the_next_buffer() {
        let (queue, receiver) = queue(100, 10, Arc::default());
        let given = Vec::with_capacity(100);
        let address = given.as_ptr();
        receiver.recycle(given);
        let next = queue.chunk(100);
        assert_eq!((next.as_ptr(), next.capacity()), (address, 100));
        // None waits now: a new one (`next` still holds the first).
        let another = queue.chunk(16);
        assert_ne!(another.as_ptr(), address);
    }

    #[test]
    fn a_spare_too_small_or_too_large_is_not_used_and_few_are_kept() {
        let (queue, receiver) = queue(100, 10, Arc::default());
        receiver.recycle(Vec::with_capacity(SPARE_CAPACITY + 1));
        assert_eq!(receiver.spares.len(), 0);
        receiver.recycle(Vec::with_capacity(16));
        assert!(queue.chunk(17).capacity() >= 17);
        assert_eq!(receiver.spares.len(), 0, "the small spare was freed");
        for _ in 0..SPARES + 2 {
            receiver.recycle(Vec::with_capacity(16));
        }
        assert_eq!(receiver.spares.len(), SPARES);
    }
}
