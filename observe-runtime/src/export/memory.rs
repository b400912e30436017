//! The in-memory exporter: finished spans and scores kept in lists that users' tests read.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::ids::TraceId;
use crate::record::{FinishedScore, FinishedSpan};

/// Keeps finished spans and scores in memory, for tests. Reading it first takes over what every thread has
/// finished and still holds, so spans can be read right after the observed code returns.
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
    scores: Arc<Mutex<Vec<FinishedScore>>>,
    /// Hands over what threads hold (set by `init`, which knows the threads' buffers).
    collect: Arc<OnceLock<fn()>>,
}

impl std::fmt::Debug for MemoryExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryExporter")
            .field("spans", &self.lock().len())
            .field("scores", &self.lock_scores().len())
            .finish()
    }
}

impl MemoryExporter {
    /// An empty exporter.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FinishedSpan>> {
        crate::sync::lock(&self.spans)
    }

    fn lock_scores(&self) -> MutexGuard<'_, Vec<FinishedScore>> {
        crate::sync::lock(&self.scores)
    }

    pub(crate) fn push_score(&self, score: FinishedScore) {
        self.lock_scores().push(score);
    }

    pub(crate) fn push_all(&self, spans: impl IntoIterator<Item = FinishedSpan>) {
        self.lock().extend(spans);
    }

    /// Sets what hands over the spans threads still hold, before every read.
    pub(crate) fn set_collect(&self, collect: fn()) {
        let _ = self.collect.set(collect);
    }

    fn collected(&self) -> MutexGuard<'_, Vec<FinishedSpan>> {
        if let Some(collect) = self.collect.get() {
            collect();
        }
        self.lock()
    }

    /// The finished spans, in the order they were handed over (per thread, the order they ended).
    pub fn spans(&self) -> Vec<FinishedSpan> {
        self.collected().clone()
    }

    /// The finished spans of one trace, in the order they ended.
    pub fn trace(&self, trace_id: TraceId) -> Vec<FinishedSpan> {
        self.collected()
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// The scores sent so far, in the order they were sent.
    ///
    /// ```
    /// use observe_runtime::{span, Config, Exporter, MemoryExporter, ScoreValue};
    /// let memory = MemoryExporter::new();
    /// let guard = Config::default().exporter(Exporter::Memory(memory.clone())).init().unwrap();
    /// let root = span("answer").start();
    /// observe_runtime::score_current_trace("helpful", true);
    /// let trace_id = observe_runtime::current_trace_id();
    /// root.end();
    /// let scores = memory.scores();
    /// assert_eq!(scores[0].name, "helpful");
    /// assert_eq!(scores[0].value, ScoreValue::Boolean(true));
    /// assert_eq!(scores[0].trace_id, trace_id);
    /// guard.shutdown().unwrap();
    /// ```
    pub fn scores(&self) -> Vec<FinishedScore> {
        self.lock_scores().clone()
    }

    /// Forgets every span and score kept so far.
    pub fn clear(&self) {
        self.collected().clear();
        self.lock_scores().clear();
    }
}
