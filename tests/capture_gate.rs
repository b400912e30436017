//! Capture happens only for recorded observations: with no client, with tracing disabled, or in a
//! sampled-out trace, `#[observe]` touches no argument and no return value.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use observe_runtime::{observe, Config, Exporter, Level, MemoryExporter};

static TOUCHED: AtomicUsize = AtomicUsize::new(0);

/// Counts every Serialize and Debug call made on it.
struct Watched(u32);

impl serde::Serialize for Watched {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TOUCHED.fetch_add(1, Ordering::SeqCst);
        serializer.serialize_u32(self.0)
    }
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        TOUCHED.fetch_add(1, Ordering::SeqCst);
        write!(f, "Watched({})", self.0)
    }
}

#[observe]
fn work(value: Watched) -> Watched {
    Watched(value.0 + 1)
}

#[observe]
fn outer(value: Watched) -> Watched {
    work(value)
}

fn touched_by(run: impl FnOnce()) -> usize {
    let before = TOUCHED.load(Ordering::SeqCst);
    run();
    TOUCHED.load(Ordering::SeqCst) - before
}

#[test]
fn only_recorded_observations_capture() {
    // No client installed.
    assert_eq!(touched_by(|| assert_eq!(outer(Watched(1)).0, 2)), 0);

    // Tracing disabled by configuration.
    let guard = Config::default().enabled(false).init().unwrap();
    assert_eq!(touched_by(|| assert_eq!(outer(Watched(1)).0, 2)), 0);
    drop(guard);

    // Every trace sampled out.
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .sample_rate(0.0)
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .unwrap();
    assert_eq!(touched_by(|| assert_eq!(outer(Watched(1)).0, 2)), 0);
    assert!(memory.spans().is_empty());
    guard.shutdown().unwrap();

    // Recorded: two inputs and two outputs, each serialized once.
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .unwrap();
    assert_eq!(touched_by(|| assert_eq!(outer(Watched(1)).0, 2)), 4);
    let spans = memory.spans();
    assert_eq!(
        spans
            .iter()
            .map(|s| (s.name.as_ref(), s.input.as_deref(), s.output.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("work", Some(r#"{"value":1}"#), Some("2")),
            ("outer", Some(r#"{"value":1}"#), Some("2")),
        ]
    );
    guard.shutdown().unwrap();

    // Capture turned off in the configuration
    // (LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED=false): observations are still recorded,
    // nothing is captured, and an `Err` still marks the observation failed.
    let memory = MemoryExporter::new();
    let guard = Config::from_vars([("LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED", "false")])
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .unwrap();
    assert_eq!(touched_by(|| assert_eq!(outer(Watched(1)).0, 2)), 0);
    assert!(failing(Watched(5)).is_err());
    let spans = memory.spans();
    assert_eq!(
        spans
            .iter()
            .map(|s| (
                s.name.as_ref(),
                s.input.as_deref(),
                s.output.as_deref(),
                s.level
            ))
            .collect::<Vec<_>>(),
        [
            ("work", None, None, Level::Default),
            ("outer", None, None, Level::Default),
            ("failing", None, None, Level::Error),
        ]
    );
    assert_eq!(spans[2].status_message.as_deref(), Some("no luck with 5"));
    guard.shutdown().unwrap();
}

#[observe]
fn failing(value: Watched) -> Result<(), String> {
    Err(format!("no luck with {}", value.0))
}
