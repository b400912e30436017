//! Everything after a span ends: the queue and the exporter thread, OTLP encoding, HTTP transport,
//! and the console and in-memory sinks. Knows nothing about thread-locals or the attribute.

pub(crate) mod console;
pub(crate) mod memory;
pub(crate) mod otlp;
pub(crate) mod transport;
pub(crate) mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use memory::MemoryExporter;
pub use transport::{AuthCheck, AuthError, Project};

use crate::span::FinishedSpan;

/// Where finished spans go.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Exporter {
    /// OTLP/HTTP to Langfuse (or to the configured OpenTelemetry collector).
    Otlp,
    /// Each finished trace printed as an indented tree on stderr.
    Console,
    /// Kept in memory, for tests; read through the handle.
    Memory(MemoryExporter),
}

/// What the exporter has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Recorded spans that ended (whatever became of them afterwards).
    pub spans_created: u64,
    /// Spans accepted into the queue (or the in-memory exporter).
    pub spans_queued: u64,
    /// Spans delivered (the server answered 2xx, or the console printed them).
    pub spans_exported: u64,
    /// Spans dropped because the queue was full.
    pub spans_dropped_queue_full: u64,
    /// Spans dropped because their request failed for good (after retries, or refused).
    pub spans_dropped_export_failed: u64,
    /// Spans still waiting when the shutdown deadline passed, not sent.
    pub spans_dropped_shutdown_deadline: u64,
    /// Spans that ended after shutdown and were not sent.
    pub spans_dropped_after_shutdown: u64,
    /// Requests the server accepted.
    pub requests_ok: u64,
    /// Retries made (each attempt after the first).
    pub requests_retried: u64,
    /// Attempts that failed (status or network error), retried or not.
    pub requests_failed: u64,
    /// Requests refused with 401 or 403.
    pub auth_failures: u64,
    /// The last error, as logged.
    pub last_error: Option<String>,
}

impl Stats {
    /// Every span not delivered, whatever the reason: after a shutdown,
    /// `spans_created == spans_exported + spans_dropped()`.
    pub fn spans_dropped(&self) -> u64 {
        self.spans_dropped_queue_full
            + self.spans_dropped_export_failed
            + self.spans_dropped_shutdown_deadline
            + self.spans_dropped_after_shutdown
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spans_queued: AtomicU64,
    pub(crate) spans_exported: AtomicU64,
    pub(crate) spans_dropped_queue_full: AtomicU64,
    pub(crate) spans_dropped_export_failed: AtomicU64,
    pub(crate) spans_dropped_after_shutdown: AtomicU64,
    pub(crate) requests_ok: AtomicU64,
    pub(crate) requests_retried: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_last_error(&self, message: impl Into<String>) {
        let mut last = match self.last_error.lock() {
            Ok(last) => last,
            Err(poisoned) => poisoned.into_inner(),
        };
        *last = Some(message.into());
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            // Counted by the new pipeline; zero until it lands.
            spans_created: 0,
            spans_queued: get(&self.spans_queued),
            spans_exported: get(&self.spans_exported),
            spans_dropped_queue_full: get(&self.spans_dropped_queue_full),
            spans_dropped_export_failed: get(&self.spans_dropped_export_failed),
            spans_dropped_shutdown_deadline: 0,
            spans_dropped_after_shutdown: get(&self.spans_dropped_after_shutdown),
            requests_ok: get(&self.requests_ok),
            requests_retried: get(&self.requests_retried),
            requests_failed: get(&self.requests_failed),
            auth_failures: get(&self.auth_failures),
            last_error: match self.last_error.lock() {
                Ok(last) => last.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            },
        }
    }
}

/// Why a batch was not delivered.
pub(crate) enum Failure {
    /// Gone for good (refused, or retries exhausted).
    Lost(String),
    /// A flush or shutdown deadline came first; the batch is handed back.
    Deadline(String, Vec<FinishedSpan>),
}

/// A destination the exporter thread sends batches to.
pub(crate) trait Sink: Send {
    /// Delivers one batch, retrying as it sees fit within the waiter's deadline.
    fn export(
        &mut self,
        batch: Vec<FinishedSpan>,
        waiter: &mut worker::Waiter,
    ) -> Result<(), Failure>;

    /// Asks the server whether the keys are valid.
    fn auth_check(&mut self, _waiter: &mut worker::Waiter) -> Result<AuthCheck, AuthError> {
        Err(AuthError::NotLangfuse)
    }

    /// Called once when the pipeline stops, after the last batch.
    fn close(&mut self) {}
}
