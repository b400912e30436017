//! The lifecycle layer: starting the pipeline (`init`), flushing and shutting it down within a
//! deadline, the [`FlushGuard`], the statistics, the exit and panic hooks, and the opt-in flush on
//! SIGTERM and SIGINT. The top of the
//! runtime: it may import every layer below, and none imports it.

mod flush;
mod guard;
mod hooks;
mod init;
mod signals;

pub(crate) use flush::auth_check;
pub use flush::{flush, FlushError, ShutdownReport};
pub use guard::FlushGuard;
pub(crate) use init::scope_client;

use crate::export::Stats;
use crate::gate;

/// Stats of the running client, or of the latest one after its shutdown (zero before any).
pub(crate) fn stats() -> Stats {
    gate::latest_counters()
        .map(|c| c.snapshot())
        .unwrap_or_default()
}
