//! What a destination of batches is ([`Sink`]), what becomes of spans not delivered ([`Failure`]),
//! and what became of a batch of scores ([`ScoresSent`]).

use super::auth::{AuthCheck, AuthError};
use super::transport::Undelivered;
use super::waiter::Waiter;
use crate::record::{FinishedScore, FinishedSpan};

/// What became of a batch that was not delivered, with the transport's reason.
pub(crate) enum Failure {
    /// Not delivered and not kept: lost (refused, keys refused, retries exhausted), or, for
    /// [`Undelivered::Unanswered`], given up without knowing (the server may have stored it).
    Dropped(Undelivered),
    /// A flush or shutdown deadline came first; the batch is handed back.
    Deadline(Undelivered, Vec<FinishedSpan>),
    /// Not delivered after the retries, and written to the spool directory (and counted) for a
    /// later round or the next process.
    Spooled(Undelivered),
}

/// What became of a batch of scores: every score is in exactly one of these.
#[derive(Default)]
pub(crate) struct ScoresSent {
    /// Accepted by the server (or printed).
    pub(crate) exported: usize,
    /// Rejected one by one by the server (reported by the sink); not retried.
    pub(crate) rejected: usize,
    /// Lost with their request (refused, or retries exhausted).
    pub(crate) failed: usize,
    /// Not sent: this destination takes no scores.
    pub(crate) unsupported: usize,
    /// Not sent because a flush or shutdown deadline came first; handed back, oldest first.
    pub(crate) unsent: Vec<FinishedScore>,
    /// Why some were not delivered, as the flush reports it.
    pub(crate) error: Option<String>,
}

/// A destination the exporter thread sends batches to.
pub(crate) trait Sink: Send {
    /// Delivers one batch, retrying as it sees fit within the waiter's deadline.
    fn export(&mut self, batch: Vec<FinishedSpan>, waiter: &mut Waiter) -> Result<(), Failure>;

    /// Delivers a batch of scores, retrying as it sees fit within the waiter's deadline.
    fn export_scores(&mut self, batch: Vec<FinishedScore>, _waiter: &mut Waiter) -> ScoresSent {
        ScoresSent {
            unsupported: batch.len(),
            ..ScoresSent::default()
        }
    }

    /// Sends what earlier rounds or processes left in the spool, if it is time; called when the
    /// exporter starts and between batches.
    fn resume(&mut self, _waiter: &mut Waiter) {}

    /// Writes a batch the shutdown deadline left to the spool; returns how many spans it kept,
    /// or why it could not (`None`: no spool, the batch is lost).
    fn keep(&mut self, _batch: Vec<FinishedSpan>) -> Option<Result<usize, String>> {
        None
    }

    /// Asks the server whether the keys are valid.
    fn auth_check(&mut self, _waiter: &mut Waiter) -> Result<AuthCheck, AuthError> {
        Err(AuthError::NotLangfuse)
    }

    /// Called once when the pipeline stops, after the last batch.
    fn close(&mut self) {}
}
