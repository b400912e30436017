//! Shutting down without losing data or hanging: the [`FlushGuard`] returned by `init`, the global
//! [`flush`], and a hook that flushes when the process exits through `std::process::exit`.

use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::client::{self, Client};
use crate::export::Stats;

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
    /// Spans were sent but not delivered.
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
            Self::ExportFailed { reason } => write!(f, "spans were not delivered: {reason}"),
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

/// Keeps the pipeline running; dropping it flushes and shuts down within the shutdown timeout,
/// even when the backend is down. Hold it in `main` for the whole program.
///
/// ```
/// fn main() -> Result<(), observe_runtime::ConfigError> {
///     let _guard = observe_runtime::init()?;
///     // ... the program ...
///     Ok(())
/// } // flushed here
/// ```
#[must_use = "dropping the guard shuts tracing down; keep it alive in main"]
pub struct FlushGuard {
    client: Option<Arc<Client>>,
}

impl fmt::Debug for FlushGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushGuard")
            .field("running", &self.client.is_some())
            .finish()
    }
}

impl FlushGuard {
    pub(crate) fn new(client: Arc<Client>) -> Self {
        Self {
            client: Some(client),
        }
    }

    pub(crate) fn disabled() -> Self {
        Self { client: None }
    }

    /// Whether tracing is on under this guard (`false` when disabled by configuration).
    pub fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    /// Sends everything finished so far and waits for it, within the shutdown timeout; tracing
    /// goes on.
    pub fn flush(&self) -> Result<(), FlushError> {
        match &self.client {
            Some(client) => client.flush(),
            None => Ok(()),
        }
    }

    /// Flushes and stops the exporter, within the shutdown timeout.
    pub fn shutdown(mut self) -> Result<ShutdownReport, FlushError> {
        match self.client.take() {
            Some(client) => client.shutdown(),
            None => Ok(ShutdownReport {
                stats: Stats::default(),
                elapsed: Duration::ZERO,
            }),
        }
    }

    /// What the exporter has done so far.
    pub fn stats(&self) -> Stats {
        self.client
            .as_ref()
            .map(|c| c.counters.snapshot())
            .unwrap_or_default()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.shutdown();
        }
    }
}

/// Sends everything finished so far from anywhere, within the shutdown timeout; tracing goes on.
/// `Ok` when nothing is running.
pub fn flush() -> Result<(), FlushError> {
    match client::installed() {
        Some(client) => client.flush(),
        None => Ok(()),
    }
}

static EXIT_HOOK: Once = Once::new();

/// Flushes at `std::process::exit` (and any other `exit`), bounded by the shutdown timeout.
pub(crate) fn register_exit_hook() {
    #[cfg(unix)]
    EXIT_HOOK.call_once(|| {
        extern "C" fn at_exit() {
            let _ = std::panic::catch_unwind(|| {
                if let Some(client) = client::take_for_exit() {
                    let _ = client.shutdown();
                }
            });
        }
        // SAFETY: `at_exit` is a plain `extern "C" fn` that never unwinds (panics are caught).
        unsafe {
            libc::atexit(at_exit);
        }
    });
    #[cfg(not(unix))]
    EXIT_HOOK.call_once(|| {});
}
