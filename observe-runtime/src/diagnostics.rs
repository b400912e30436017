//! The SDK's own messages: to stderr, prefixed `[langfuse]`, rate-limited per subject, with more
//! detail when `LANGFUSE_DEBUG=true`. Never panics, never prints a secret key.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::LazyLock;

static DEBUG: AtomicBool = AtomicBool::new(false);
/// The same subject is repeated at most once a minute.
const REPEAT_AFTER: Duration = Duration::from_secs(60);
static LAST: LazyLock<Mutex<HashMap<String, Option<Instant>>>> = LazyLock::new(Default::default);

pub(crate) fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub(crate) fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

fn print(level: &str, message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "[langfuse] {level}: {message}");
}

/// `once`: never repeat this subject; else repeat it at most once a minute.
fn allowed(subject: &str, once: bool) -> bool {
    let mut last = crate::sync::lock(&LAST);
    let now = Instant::now();
    match last.get(subject) {
        Some(None) => false,
        Some(Some(at)) if once || now.duration_since(*at) < REPEAT_AFTER => false,
        _ => {
            last.insert(subject.to_string(), if once { None } else { Some(now) });
            true
        }
    }
}

/// An error the user must act on, at most once a minute per subject.
pub(crate) fn error(subject: &str, message: impl AsRef<str>) {
    if allowed(subject, false) {
        print("error", message.as_ref());
    }
}

/// A warning, at most once a minute per subject.
pub(crate) fn warn(subject: &str, message: impl AsRef<str>) {
    if allowed(subject, false) {
        print("warning", message.as_ref());
    }
}

/// A warning said once per process for this subject.
pub(crate) fn warn_once(subject: &str, message: impl AsRef<str>) {
    if allowed(subject, true) {
        print("warning", message.as_ref());
    }
}

/// Information the user should see once (a setting was corrected, where traces go).
pub(crate) fn note(message: impl AsRef<str>) {
    print("note", message.as_ref());
}

/// Detail shown only with `LANGFUSE_DEBUG=true`.
pub(crate) fn debug(message: impl FnOnce() -> String) {
    if debug_enabled() {
        print("debug", &message());
    }
}
