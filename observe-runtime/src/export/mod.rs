//! Everything after a span or a score is handed over: the queue and the exporter thread, OTLP
//! encoding, HTTP transport, the scores route, the disk spool, and the console and in-memory sinks. Knows nothing
//! about thread-locals or the attribute; imports only the record layer and the leaves.
//!
//! Where spans go, one word per level:
//! - [`Exporter`]: what the user chose (`Config::exporter`, or the environment).
//! - `Destination` (config): what the validated configuration resolved that to: memory, the
//!   console, or OTLP to a [`Target`](target::Target).
//! - `Handoff` (gate): how the user's threads hand records over: stored at once, or queued for
//!   the exporter thread.
//! - [`Sink`]: what the exporter thread writes batches to (the console, OTLP).
//! - [`Target`](target::Target): an OTLP endpoint with its headers and Langfuse keys.
//! - [`Undelivered`](transport::Undelivered): why a request body was not delivered, as the
//!   transport says it once for the span sink, the spool and the score route.

pub(crate) mod auth;
pub(crate) mod console;
pub(crate) mod media_upload;
pub(crate) mod memory;
pub(crate) mod otlp;
pub(crate) mod queue;
pub(crate) mod scores;
pub(crate) mod sink;
pub(crate) mod spool;
pub(crate) mod stats;
pub(crate) mod target;
pub(crate) mod transport;
pub(crate) mod waiter;
pub(crate) mod worker;

pub use auth::{AuthCheck, AuthError, Project};
pub use memory::MemoryExporter;
pub(crate) use sink::Sink;
pub(crate) use stats::Counters;
pub use stats::Stats;
pub(crate) use worker::{apply_mask, apply_score_mask};

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
