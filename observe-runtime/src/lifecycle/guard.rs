//! The [`FlushGuard`] returned by `init`: flushes and shuts down when dropped, within the
//! shutdown timeout, even with the backend down.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::flush::{self, FlushError, ShutdownReport};
use crate::api::{self, ApiClient};
use crate::export::Stats;
use crate::gate::Client;

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
    /// The REST client of this `init` (prompts, datasets), uninstalled with the guard.
    api: Option<Arc<ApiClient>>,
}

impl fmt::Debug for FlushGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushGuard")
            .field("running", &self.client.is_some())
            .finish()
    }
}

impl FlushGuard {
    pub(crate) fn new(client: Arc<Client>, api: Option<Arc<ApiClient>>) -> Self {
        Self {
            client: Some(client),
            api,
        }
    }

    pub(crate) fn disabled(api: Option<Arc<ApiClient>>) -> Self {
        Self { client: None, api }
    }

    /// The REST client ends with the guard.
    fn release_api(&mut self) {
        if let Some(api) = self.api.take() {
            api::uninstall(&api);
        }
    }

    /// Whether tracing is on under this guard (`false` when disabled by configuration).
    pub fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    /// Sends everything finished so far and waits for it, within the shutdown timeout; tracing
    /// goes on.
    pub fn flush(&self) -> Result<(), FlushError> {
        match &self.client {
            Some(client) => flush::flush_client(client),
            None => Ok(()),
        }
    }

    /// Flushes and stops the exporter, within the shutdown timeout.
    pub fn shutdown(mut self) -> Result<ShutdownReport, FlushError> {
        self.release_api();
        match self.client.take() {
            Some(client) => flush::shutdown(&client),
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
        self.release_api();
        if let Some(client) = self.client.take() {
            let _ = flush::shutdown(&client);
        }
    }
}
