//! The hooks `init` puts in place: a flush at `std::process::exit` (and any other `exit`), and a
//! panic hook that remembers each thread's panic message for the observations it unwinds.

use std::sync::Once;

use super::flush;
use crate::gate;
use crate::local::span;

static EXIT_HOOK: Once = Once::new();

/// Flushes at `std::process::exit` (and any other `exit`), bounded by the shutdown timeout.
pub(crate) fn register_exit_hook() {
    #[cfg(unix)]
    EXIT_HOOK.call_once(|| {
        extern "C" fn at_exit() {
            let _ = std::panic::catch_unwind(|| {
                if let Some(client) = gate::installed_ignoring_gate() {
                    let _ = flush::shutdown(&client);
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

/// Installs (once) a panic hook that remembers each thread's panic message for the observations
/// the panic unwinds through, then calls the hook that was there before.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            span::remember_panic(span::payload_text(info.payload()));
            previous(info);
        }));
    });
}
