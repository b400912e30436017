//! The opt-in flush on SIGTERM and SIGINT (`LANGFUSE_FLUSH_ON_SIGNALS`). The signals are waited
//! for on a thread of its own (a signal handler may do almost nothing itself): there everything
//! finished is flushed within the shutdown timeout, then the signal's default action ends the
//! process, with the status the signal gives.
//!
//! Observations still open when the signal comes are not ended (they run on other threads);
//! what finished under them is sent.

/// Waits for SIGTERM and SIGINT from now on (once per process).
pub(crate) fn install() {
    #[cfg(unix)]
    unix::install();
    #[cfg(not(unix))]
    crate::diagnostics::note(
        "LANGFUSE_FLUSH_ON_SIGNALS is ignored on this system: only Unix signals are handled",
    );
}

#[cfg(unix)]
mod unix {
    use std::sync::Once;

    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    use super::super::flush;
    use crate::diagnostics;
    use crate::gate;

    pub(super) fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let mut signals = match Signals::new([SIGTERM, SIGINT]) {
                Ok(signals) => signals,
                Err(error) => {
                    diagnostics::warn(
                        "signals",
                        format!("SIGTERM and SIGINT will not flush: {error}"),
                    );
                    return;
                }
            };
            let started = std::thread::Builder::new()
                .name("langfuse-signals".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        let _ = std::panic::catch_unwind(|| {
                            if let Some(client) = gate::installed_ignoring_gate() {
                                let _ = flush::shutdown(&client);
                            }
                        });
                        // As if no handler had been installed: the process ends by the signal.
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                    }
                });
            if let Err(error) = started {
                diagnostics::warn(
                    "signals",
                    format!("SIGTERM and SIGINT will not flush: no thread for them: {error}"),
                );
            }
        });
    }
}
