//! Flush and shutdown, always within a deadline: every thread's buffer is handed over first, then
//! the exporter thread is asked over its control channel and answered with a reply. Also the
//! credential check, which travels the same way.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::diagnostics;
use crate::export::waiter::Control;
use crate::export::{AuthCheck, AuthError, Stats};
use crate::gate::{self, Client, Handoff};
use crate::local::buffer;

/// Why a flush or shutdown did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// The deadline (the shutdown timeout) passed first; what was still queued may be lost.
    Timeout {
        /// How long it waited.
        waited: Duration,
    },
    /// There is no running pipeline (never initialized, disabled, or already shut down).
    NotRunning,
    /// Spans or scores were sent but not delivered.
    ExportFailed {
        /// Why, as logged.
        reason: String,
    },
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { waited } => write!(
                f,
                "the exporter did not finish within {waited:?} (LANGFUSE_SHUTDOWN_TIMEOUT); spans \
                 still queued may be lost"
            ),
            Self::NotRunning => {
                f.write_str("the exporter is not running (no init, disabled, or shut down)")
            }
            Self::ExportFailed { reason } => {
                write!(f, "spans or scores were not delivered: {reason}")
            }
        }
    }
}

impl std::error::Error for FlushError {}

/// What a shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The final counters.
    pub stats: Stats,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

/// Sends everything finished so far from anywhere, within the shutdown timeout; tracing goes on.
/// `Ok` when nothing is running.
pub fn flush() -> Result<(), FlushError> {
    match gate::installed() {
        Some(client) => flush_client(&client),
        None => Ok(()),
    }
}

fn ask<T>(
    client: &Client,
    make: impl FnOnce(Instant, crossbeam_channel::Sender<T>) -> Control,
    timeout: Duration,
) -> Result<T, FlushError> {
    let Handoff::Worker { worker, .. } = &client.handoff else {
        return Err(FlushError::NotRunning);
    };
    let deadline = Instant::now() + timeout;
    let (reply, answer) = bounded(1);
    if worker
        .control
        .send_timeout(make(deadline, reply), timeout)
        .is_err()
    {
        return Err(FlushError::NotRunning);
    }
    // A little beyond the worker's own deadline, so its answer can arrive.
    let grace = Duration::from_millis(100).min(timeout / 10);
    answer
        .recv_deadline(deadline + grace)
        .map_err(|_| FlushError::Timeout { waited: timeout })
}

/// Sends everything queued now; the pipeline keeps running.
pub(crate) fn flush_client(client: &Client) -> Result<(), FlushError> {
    if client.stopped.load(Ordering::Acquire) {
        return Err(FlushError::NotRunning);
    }
    buffer::collect_all(client);
    if let Handoff::Memory { .. } = client.handoff {
        return Ok(());
    }
    ask(
        client,
        |deadline, reply| Control::Flush { deadline, reply },
        client.shutdown_timeout,
    )?
    .map_err(|reason| FlushError::ExportFailed { reason })
}

pub(crate) fn auth_check(client: &Client) -> Result<AuthCheck, AuthError> {
    match ask(
        client,
        |deadline, reply| Control::AuthCheck { deadline, reply },
        client.shutdown_timeout,
    ) {
        Ok(answer) => answer,
        Err(FlushError::NotRunning) => match client.handoff {
            Handoff::Memory { .. } => Err(AuthError::NotLangfuse),
            Handoff::Worker { .. } => Err(AuthError::NotInitialized),
        },
        Err(error) => Err(AuthError::Network {
            reason: error.to_string(),
            base_url: String::new(),
        }),
    }
}

/// Stops recording, sends what is queued and stops the exporter thread, all within the
/// shutdown timeout.
pub(crate) fn shutdown(client: &Arc<Client>) -> Result<ShutdownReport, FlushError> {
    let started = Instant::now();
    gate::uninstall(client);
    if client.stopped.swap(true, Ordering::AcqRel) {
        return Err(FlushError::NotRunning);
    }
    // What every thread holds joins the queue before the exporter's last round.
    buffer::collect_all(client);
    let result = match &client.handoff {
        Handoff::Memory { .. } => Ok(()),
        Handoff::Worker { worker, .. } => {
            let answer = ask(
                client,
                |deadline, reply| Control::Shutdown { deadline, reply },
                client.shutdown_timeout,
            );
            if answer.is_ok() {
                let thread = crate::sync::lock(&worker.thread).take();
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
            }
            answer.and_then(|r| r.map_err(|reason| FlushError::ExportFailed { reason }))
        }
    };
    let stats = client.counters.snapshot();
    let lost = stats.spans_dropped();
    if lost > 0 {
        diagnostics::warn(
            "shutdown-loss",
            format!(
                "{lost} span(s) were not delivered ({} dropped because the queue was full, {} \
                 because their requests failed, {} at the shutdown deadline, {} after \
                 shutdown); last error: {}",
                stats.spans_dropped_queue_full,
                stats.spans_dropped_export_failed,
                stats.spans_dropped_shutdown_deadline,
                stats.spans_dropped_after_shutdown,
                stats.last_error.as_deref().unwrap_or("none")
            ),
        );
    }
    if stats.spans_unanswered > 0 {
        diagnostics::warn(
            "shutdown-unanswered",
            format!(
                "{} span(s) were sent without an answer ({} request attempt(s) timed out): the \
                 server may have stored them, once or more; raise LANGFUSE_TIMEOUT if it is \
                 slow; last error: {}",
                stats.spans_unanswered,
                stats.requests_unanswered,
                stats.last_error.as_deref().unwrap_or("none")
            ),
        );
    }
    let lost_scores = stats.scores_dropped() - stats.scores_dropped_invalid;
    if lost_scores > 0 {
        diagnostics::warn(
            "shutdown-score-loss",
            format!(
                "{lost_scores} score(s) were not delivered ({} dropped because the queue was \
                 full, {} rejected by the server, {} because their requests failed, {} at the \
                 shutdown deadline, {} after shutdown, {} because the exporter is not \
                 Langfuse); last error: {}",
                stats.scores_dropped_queue_full,
                stats.scores_dropped_rejected,
                stats.scores_dropped_export_failed,
                stats.scores_dropped_shutdown_deadline,
                stats.scores_dropped_after_shutdown,
                stats.scores_dropped_unsupported,
                stats.last_error.as_deref().unwrap_or("none")
            ),
        );
    }
    if let Err(FlushError::Timeout { waited }) = &result {
        diagnostics::warn(
            "shutdown-timeout",
            format!(
                "shutdown gave up after {waited:?} (LANGFUSE_SHUTDOWN_TIMEOUT); spans still \
                 queued were not delivered"
            ),
        );
    }
    result.map(|()| ShutdownReport {
        stats,
        elapsed: started.elapsed(),
    })
}
