//! The pipeline's counters ([`Counters`], live atomics) and their snapshot ([`Stats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What the pipeline has done so far. Once every thread has handed over what it holds (after a
/// flush or a shutdown), every span is accounted for:
/// `spans_created == spans_exported + spans_spooled + spans_unanswered + spans_dropped()`
/// plus what a failed flush kept for later (spans sent from the spool are counted apart, in
/// `spans_exported_from_spool`),
/// and every score likewise: `scores_created == scores_exported + scores_dropped()` plus what a
/// failed flush kept for later. The request counters cover span and score requests alike.
///
/// ```
/// use observe_runtime::{span, Config, Exporter, MemoryExporter};
/// let memory = MemoryExporter::new();
/// let guard = Config::default().exporter(Exporter::Memory(memory.clone())).init().unwrap();
/// span("work").start().end();
/// let stats = guard.shutdown().unwrap().stats;
/// assert_eq!((stats.spans_created, stats.spans_exported, stats.spans_dropped()), (1, 1, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Recorded spans that ended (sampled-out traces are not recorded and not counted).
    pub spans_created: u64,
    /// Spans accepted into the queue (or the in-memory exporter).
    pub spans_queued: u64,
    /// Spans delivered (the server answered 2xx, or the console printed them).
    pub spans_exported: u64,
    /// Child spans dropped because the queue was full (roots, and parents of spans already
    /// admitted, are never dropped for this).
    pub spans_dropped_queue_full: u64,
    /// Spans dropped because their request failed for good (after retries, or refused).
    pub spans_dropped_export_failed: u64,
    /// Spans the shutdown deadline left undelivered (the oldest go first).
    pub spans_dropped_shutdown_deadline: u64,
    /// Spans that ended after shutdown and were not sent.
    pub spans_dropped_after_shutdown: u64,
    /// Spans sent without an answer: their request went out, the server did not answer within
    /// the timeout (after retries with longer timeouts), and they were given up. A slow server
    /// may have stored them, once or more, so they are not counted as dropped: neither
    /// delivered nor known to be lost.
    pub spans_unanswered: u64,
    /// Spans written to the spool directory (`LANGFUSE_SPOOL_DIR`) because they could not be
    /// delivered: the retries ran out, or the shutdown deadline came. They are sent by a later
    /// round or the next process that uses the directory.
    pub spans_spooled: u64,
    /// Spans delivered from the spool directory (written by this process or an earlier one).
    pub spans_exported_from_spool: u64,
    /// Spooled spans deleted unsent because the spool reached `LANGFUSE_SPOOL_MAX_BYTES` (the
    /// oldest go first).
    pub spans_spool_evicted: u64,
    /// Spool files that could not be read back (corrupt, truncated) and were moved aside.
    pub spool_files_corrupt: u64,
    /// Scores sent on a recorded target (scores of sampled-out traces are not counted), valid or
    /// not.
    pub scores_created: u64,
    /// Scores accepted into the queue (or the in-memory exporter).
    pub scores_queued: u64,
    /// Scores delivered (the server accepted them, or the console printed them).
    pub scores_exported: u64,
    /// Scores refused before sending: an empty name, a number that is not finite, nothing or more
    /// than one thing to belong to, an empty id, a bad environment (each kind said in a warning
    /// at most once a minute).
    pub scores_dropped_invalid: u64,
    /// Scores dropped because the score queue held `LANGFUSE_MAX_QUEUE` scores already.
    pub scores_dropped_queue_full: u64,
    /// Scores the server rejected one by one (in a 207 answer, or a 400 to a single score); not
    /// retried.
    pub scores_dropped_rejected: u64,
    /// Scores dropped because their request failed for good (after retries, or refused).
    pub scores_dropped_export_failed: u64,
    /// Scores the shutdown deadline left undelivered.
    pub scores_dropped_shutdown_deadline: u64,
    /// Scores still in the exporter's queue when it stopped (sent during or after shutdown).
    pub scores_dropped_after_shutdown: u64,
    /// Scores not sent because the exporter sends to a generic OpenTelemetry collector, which has
    /// no scores API.
    pub scores_dropped_unsupported: u64,
    /// Requests the server accepted.
    pub requests_ok: u64,
    /// Retries made (each attempt after the first).
    pub requests_retried: u64,
    /// Attempts that failed (status or network error), retried or not.
    pub requests_failed: u64,
    /// Attempts sent that got no answer within their timeout, retried or not; not counted in
    /// `requests_failed`, since the server may have taken them.
    pub requests_unanswered: u64,
    /// Requests refused with 401 or 403.
    pub auth_failures: u64,
    /// Media uploaded to Langfuse (images, audio, documents found in captured values).
    pub media_uploaded: u64,
    /// Media not uploaded again: sent earlier by this process, or already stored by Langfuse.
    pub media_deduplicated: u64,
    /// Media whose upload failed (its reference stays in the value), counted once per process
    /// that tried: a spooled batch's media are counted when they fail, and again only if they
    /// fail when the batch leaves the spool; media left out of a spooled batch for its cap too.
    pub media_failed: u64,
    /// Bytes of media uploaded.
    pub media_bytes_uploaded: u64,
    /// Media left out of captured values because the pending media filled their memory budget.
    pub media_dropped_over_budget: u64,
    /// The last error, as logged.
    pub last_error: Option<String>,
}

impl Stats {
    /// Every span dropped, whatever the reason.
    pub fn spans_dropped(&self) -> u64 {
        self.spans_dropped_queue_full
            + self.spans_dropped_export_failed
            + self.spans_dropped_shutdown_deadline
            + self.spans_dropped_after_shutdown
    }

    /// Every score dropped, whatever the reason.
    pub fn scores_dropped(&self) -> u64 {
        self.scores_dropped_invalid
            + self.scores_dropped_queue_full
            + self.scores_dropped_rejected
            + self.scores_dropped_export_failed
            + self.scores_dropped_shutdown_deadline
            + self.scores_dropped_after_shutdown
            + self.scores_dropped_unsupported
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spans_created: AtomicU64,
    pub(crate) spans_queued: AtomicU64,
    pub(crate) spans_exported: AtomicU64,
    pub(crate) spans_dropped_queue_full: AtomicU64,
    pub(crate) spans_dropped_export_failed: AtomicU64,
    pub(crate) spans_dropped_shutdown_deadline: AtomicU64,
    pub(crate) spans_dropped_after_shutdown: AtomicU64,
    pub(crate) spans_unanswered: AtomicU64,
    pub(crate) spans_spooled: AtomicU64,
    pub(crate) spans_exported_from_spool: AtomicU64,
    pub(crate) spans_spool_evicted: AtomicU64,
    pub(crate) spool_files_corrupt: AtomicU64,
    pub(crate) scores_created: AtomicU64,
    pub(crate) scores_queued: AtomicU64,
    pub(crate) scores_exported: AtomicU64,
    pub(crate) scores_dropped_invalid: AtomicU64,
    pub(crate) scores_dropped_queue_full: AtomicU64,
    pub(crate) scores_dropped_rejected: AtomicU64,
    pub(crate) scores_dropped_export_failed: AtomicU64,
    pub(crate) scores_dropped_shutdown_deadline: AtomicU64,
    pub(crate) scores_dropped_after_shutdown: AtomicU64,
    pub(crate) scores_dropped_unsupported: AtomicU64,
    pub(crate) requests_ok: AtomicU64,
    pub(crate) requests_retried: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) requests_unanswered: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) media_uploaded: AtomicU64,
    pub(crate) media_deduplicated: AtomicU64,
    pub(crate) media_failed: AtomicU64,
    pub(crate) media_bytes_uploaded: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_last_error(&self, message: impl Into<String>) {
        let mut last = crate::sync::lock(&self.last_error);
        *last = Some(message.into());
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            spans_created: get(&self.spans_created),
            spans_queued: get(&self.spans_queued),
            spans_exported: get(&self.spans_exported),
            spans_dropped_queue_full: get(&self.spans_dropped_queue_full),
            spans_dropped_export_failed: get(&self.spans_dropped_export_failed),
            spans_dropped_shutdown_deadline: get(&self.spans_dropped_shutdown_deadline),
            spans_dropped_after_shutdown: get(&self.spans_dropped_after_shutdown),
            spans_unanswered: get(&self.spans_unanswered),
            spans_spooled: get(&self.spans_spooled),
            spans_exported_from_spool: get(&self.spans_exported_from_spool),
            spans_spool_evicted: get(&self.spans_spool_evicted),
            spool_files_corrupt: get(&self.spool_files_corrupt),
            scores_created: get(&self.scores_created),
            scores_queued: get(&self.scores_queued),
            scores_exported: get(&self.scores_exported),
            scores_dropped_invalid: get(&self.scores_dropped_invalid),
            scores_dropped_queue_full: get(&self.scores_dropped_queue_full),
            scores_dropped_rejected: get(&self.scores_dropped_rejected),
            scores_dropped_export_failed: get(&self.scores_dropped_export_failed),
            scores_dropped_shutdown_deadline: get(&self.scores_dropped_shutdown_deadline),
            scores_dropped_after_shutdown: get(&self.scores_dropped_after_shutdown),
            scores_dropped_unsupported: get(&self.scores_dropped_unsupported),
            requests_ok: get(&self.requests_ok),
            requests_retried: get(&self.requests_retried),
            requests_failed: get(&self.requests_failed),
            requests_unanswered: get(&self.requests_unanswered),
            auth_failures: get(&self.auth_failures),
            media_uploaded: get(&self.media_uploaded),
            media_deduplicated: get(&self.media_deduplicated),
            media_failed: get(&self.media_failed),
            media_bytes_uploaded: get(&self.media_bytes_uploaded),
            media_dropped_over_budget: crate::media::over_budget(),
            last_error: crate::sync::lock(&self.last_error).clone(),
        }
    }
}
