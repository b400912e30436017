//! The hooks `init` puts in place: at `std::process::exit` (and any other `exit`), the exiting
//! thread's open observations are ended and everything is flushed; a panic hook remembers each
//! thread's panic message for the observations it unwinds, and under `panic = "abort"` ends the
//! panicking thread's open observations and flushes before the process aborts.

use std::sync::Once;

use super::flush;
use crate::export::worker::THREAD_NAME as EXPORTER_THREAD;
use crate::gate;
use crate::local::exit::{end_open_observations, Ending};
use crate::local::span;

static EXIT_HOOK: Once = Once::new();

/// Flushes at `std::process::exit` (and any other `exit`), bounded by the shutdown timeout.
pub(crate) fn register_exit_hook() {
    #[cfg(unix)]
    EXIT_HOOK.call_once(|| {
        extern "C" fn at_exit() {
            let _ = std::panic::catch_unwind(|| {
                if let Some(client) = gate::installed_ignoring_gate() {
                    end_open_observations(&Ending::Exit);
                    let _ = flush::shutdown(&client);
                }
            });
        }
        // SAFETY: `at_exit` is a plain `extern "C" fn` that never unwinds (panics are caught).
        #[allow(unsafe_code)]
        unsafe {
            libc::atexit(at_exit);
        }
    });
    #[cfg(not(unix))]
    EXIT_HOOK.call_once(|| {});
}

/// Installs (once) a panic hook that remembers each thread's panic message for the observations
/// the panic unwinds through, then calls the hook that was there before.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = span::payload_text(info.payload());
            if cfg!(panic = "abort") {
                previous(info);
                let _ = std::panic::catch_unwind(|| flush_before_abort(message));
            } else {
                span::remember_panic(message);
                previous(info);
            }
        }));
    });
}

/// The process aborts when this hook returns: end the panicking thread's open observations and
/// flush, bounded by the shutdown timeout.
fn flush_before_abort(message: String) {
    // The exporter thread never waits for itself.
    if std::thread::current().name() == Some(EXPORTER_THREAD) {
        return;
    }
    if let Some(client) = gate::installed_ignoring_gate() {
        end_open_observations(&Ending::Abort(message));
        let _ = flush::shutdown(&client);
    }
}
