//! Where nothing is observed: the exporter thread, for its whole life, and the user's mask,
//! wherever it runs. Observations and scores started there are not recorded, so telemetry made
//! while exporting (a mask that calls an `#[observe]` function, a span of the HTTP client) never
//! feeds the pipeline it came from. A leaf: one thread-local flag, read only when an observation
//! or a score starts (never on the path taken while tracing is off).

use std::cell::Cell;

thread_local! {
    /// How many reasons this thread has not to record (the exporter thread, a running mask).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as one that never records, for the rest of its life.
pub(crate) fn mark_thread() {
    let _ = DEPTH.try_with(|depth| depth.set(depth.get().saturating_add(1)));
}

/// Runs `f` with nothing recorded on this thread meanwhile (also when `f` panics).
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let _ = DEPTH.try_with(|depth| depth.set(depth.get().saturating_sub(1)));
        }
    }
    mark_thread();
    let _leave = Leave;
    f()
}

/// Whether what starts on this thread now is left unrecorded.
#[inline]
pub(crate) fn active() -> bool {
    DEPTH.try_with(|depth| depth.get() > 0).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_ends_even_when_it_panics_and_a_marked_thread_stays_marked() {
        assert!(!active());
        assert!(run(active));
        let _ = std::panic::catch_unwind(|| run(|| panic!("mask bug")));
        assert!(!active());
        let marked = std::thread::spawn(|| {
            mark_thread();
            run(|| ());
            active()
        });
        assert!(marked.join().unwrap());
    }
}
