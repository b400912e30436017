//! The in-memory exporter: finished spans kept in a list that users' tests read.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::ids::TraceId;
use crate::span::FinishedSpan;

/// Keeps finished spans in memory, for tests. Spans are stored as they end, on the thread that
/// ends them, so they can be read right after the observed code returns.
///
/// ```
/// use observe_runtime::{Config, Exporter, MemoryExporter, span};
/// let memory = MemoryExporter::new();
/// let guard = Config::default().exporter(Exporter::Memory(memory.clone())).init().unwrap();
/// span("work").start().end();
/// assert_eq!(memory.spans()[0].name, "work");
/// guard.shutdown().unwrap();
/// ```
#[derive(Clone, Default)]
pub struct MemoryExporter {
    spans: Arc<Mutex<Vec<FinishedSpan>>>,
}

impl std::fmt::Debug for MemoryExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryExporter")
            .field("spans", &self.lock().len())
            .finish()
    }
}

impl MemoryExporter {
    /// An empty exporter.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FinishedSpan>> {
        match self.spans.lock() {
            Ok(spans) => spans,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn push(&self, span: FinishedSpan) {
        self.lock().push(span);
    }

    /// The finished spans, in the order they ended.
    pub fn spans(&self) -> Vec<FinishedSpan> {
        self.lock().clone()
    }

    /// The finished spans of one trace, in the order they ended.
    pub fn trace(&self, trace_id: TraceId) -> Vec<FinishedSpan> {
        self.lock()
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Forgets every span kept so far.
    pub fn clear(&self) {
        self.lock().clear();
    }
}
