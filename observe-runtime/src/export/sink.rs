//! What a destination of batches is ([`Sink`]) and how a delivery can fail ([`Failure`]).

use super::auth::{AuthCheck, AuthError};
use super::waiter::Waiter;
use crate::record::FinishedSpan;

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
    fn export(&mut self, batch: Vec<FinishedSpan>, waiter: &mut Waiter) -> Result<(), Failure>;

    /// Asks the server whether the keys are valid.
    fn auth_check(&mut self, _waiter: &mut Waiter) -> Result<AuthCheck, AuthError> {
        Err(AuthError::NotLangfuse)
    }

    /// Called once when the pipeline stops, after the last batch.
    fn close(&mut self) {}
}
