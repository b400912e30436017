//! What the spans of one trace share in this process: the id, the sampling and capture decisions
//! made when the trace started here, and the trace attributes (user, session, tags, ...), stored
//! once per trace as numbered versions. A span notes the version current when it ends, one atomic
//! load; the exporter resolves it. Plain data: knows nothing of thread-locals or export.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use std::sync::LazyLock;

use super::experiment::ExperimentAttributes;
use super::prompt::PromptLink;
use crate::ids::{ObservationId, TraceId};

/// Attributes of a whole trace, copied onto every span of it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TraceAttributes {
    /// The trace name (else Langfuse uses the root observation's name).
    pub name: Option<String>,
    /// The user the trace belongs to.
    pub user_id: Option<String>,
    /// The session (conversation) the trace belongs to.
    pub session_id: Option<String>,
    /// Tags, in the order first added, without duplicates.
    pub tags: Vec<String>,
    /// Trace metadata: key and JSON text of the value.
    pub metadata: Vec<(String, String)>,
    /// The release (overrides the configured one).
    pub release: Option<String>,
    /// The version of the application logic.
    pub version: Option<String>,
    /// Whether the trace is public in Langfuse.
    pub public: Option<bool>,
    /// The trace's input as JSON text (else Langfuse shows the root observation's).
    pub input: Option<String>,
    /// The trace's output as JSON text (else Langfuse shows the root observation's).
    pub output: Option<String>,
    /// The prompt every generation of the trace is linked to, unless it links its own.
    pub prompt: Option<PromptLink>,
    /// The experiment the trace is an item of (its spans then go to the `sdk-experiment`
    /// environment).
    pub experiment: Option<Arc<ExperimentAttributes>>,
}

static EMPTY: LazyLock<Arc<TraceAttributes>> = LazyLock::new(Arc::default);

/// Past this many versions a change updates the newest one in place: a loop that sets an attribute
/// between every two spans cannot grow memory without bound (the spans that ended meanwhile then
/// carry the newer value).
const MAX_VERSIONS: usize = 64;

/// How a trace was started here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TraceOptions {
    pub(crate) sampled: bool,
    /// Whether its spans are recorded (a client is installed and the trace is sampled).
    pub(crate) recording: bool,
    pub(crate) capture_io: bool,
    pub(crate) field_limit: usize,
    /// The gate epoch these options were decided under: when it has changed, a client was
    /// installed or removed since, and the trace must be bound again before it records.
    pub(crate) epoch: u64,
    /// The capture scope (`testing::capture`) the trace was started in: its spans and scores go
    /// to that scope, never to the installed client.
    pub(crate) scope: Option<NonZeroU64>,
}

/// The state of one trace in this process.
#[derive(Debug)]
pub(crate) struct TraceState {
    pub(crate) trace_id: TraceId,
    /// The parent span in another process (from a `traceparent`), if any.
    pub(crate) remote_parent: Option<ObservationId>,
    /// The sampling decision of a remote parent, if any (kept for binding again).
    pub(crate) upstream_sampled: Option<bool>,
    pub(crate) options: TraceOptions,
    /// 0 while nothing was set; else the number of versions, the newest being current.
    version: AtomicU32,
    /// Whether a span has noted the current version: a change must then add a new one.
    noted: AtomicBool,
    versions: Mutex<Vec<Arc<TraceAttributes>>>,
}

impl TraceState {
    pub(crate) fn new(
        trace_id: TraceId,
        remote_parent: Option<ObservationId>,
        upstream_sampled: Option<bool>,
        options: TraceOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            trace_id,
            remote_parent,
            upstream_sampled,
            options,
            version: AtomicU32::new(0),
            noted: AtomicBool::new(false),
            versions: Mutex::new(Vec::new()),
        })
    }

    /// The same trace with other options (bound to another client), starting from the current
    /// attributes.
    pub(crate) fn rebound(&self, options: TraceOptions) -> Arc<Self> {
        let attributes = self.current_attributes();
        let trace = Self::new(
            self.trace_id,
            self.remote_parent,
            self.upstream_sampled,
            options,
        );
        if *attributes != TraceAttributes::default() {
            trace.update(|a| *a = TraceAttributes::clone(&attributes));
        }
        trace
    }

    pub(crate) fn is_recording(&self) -> bool {
        self.options.recording
    }

    /// The version of the attributes now, for a span that ends now (no lock).
    #[inline]
    pub(crate) fn note_version(&self) -> u32 {
        let version = self.version.load(Ordering::Acquire);
        if version != 0 && !self.noted.load(Ordering::Relaxed) {
            self.noted.store(true, Ordering::Relaxed);
        }
        version
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<TraceAttributes>>> {
        crate::sync::lock(&self.versions)
    }

    /// The attributes as they were at `version`.
    pub(crate) fn attributes_at(&self, version: u32) -> Arc<TraceAttributes> {
        if version == 0 {
            return EMPTY.clone();
        }
        let versions = self.lock();
        versions
            .get(version as usize - 1)
            .or(versions.last())
            .cloned()
            .unwrap_or_else(|| EMPTY.clone())
    }

    /// The attributes now.
    pub(crate) fn current_attributes(&self) -> Arc<TraceAttributes> {
        self.attributes_at(self.version.load(Ordering::Acquire))
    }

    /// Changes the attributes: in place while no span has noted the current version, else as a
    /// new version.
    pub(crate) fn update(&self, change: impl FnOnce(&mut TraceAttributes)) {
        let mut versions = self.lock();
        let fresh = versions.is_empty()
            || (self.noted.load(Ordering::Relaxed) && versions.len() < MAX_VERSIONS);
        if fresh {
            let next = versions
                .last()
                .map(|latest| TraceAttributes::clone(latest))
                .unwrap_or_default();
            versions.push(Arc::new(next));
        }
        if let Some(latest) = versions.last_mut() {
            change(Arc::make_mut(latest));
        }
        self.noted.store(false, Ordering::Relaxed);
        self.version.store(versions.len() as u32, Ordering::Release);
    }
}

/// Langfuse stores an environment that breaks this rule as `default`, silently.
pub(crate) fn valid_environment(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 40
        && !value.starts_with("langfuse")
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
impl TraceState {
    /// A recorded trace whose id is made from `seed`, for unit tests.
    pub(crate) fn for_tests(seed: &str) -> Arc<TraceState> {
        let options = TraceOptions {
            sampled: true,
            recording: true,
            capture_io: true,
            field_limit: 1000,
            epoch: 0,
            scope: None,
        };
        TraceState::new(TraceId::from_seed(seed), None, None, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> Arc<TraceState> {
        TraceState::for_tests("t")
    }

    #[test]
    fn a_span_keeps_the_attributes_of_when_it_ended() {
        let trace = trace();
        assert_eq!(trace.note_version(), 0);
        trace.update(|a| a.session_id = Some("s1".into()));
        let first = trace.note_version();
        trace.update(|a| a.session_id = Some("s2".into()));
        trace.update(|a| a.user_id = Some("u".into()));
        let second = trace.note_version();
        assert_eq!(trace.attributes_at(0).session_id, None);
        assert_eq!(trace.attributes_at(first).session_id.as_deref(), Some("s1"));
        assert_eq!(trace.attributes_at(first).user_id, None);
        let latest = trace.attributes_at(second);
        assert_eq!(latest.session_id.as_deref(), Some("s2"));
        assert_eq!(latest.user_id.as_deref(), Some("u"));
        // Two changes with no span in between made one version.
        assert_eq!(second, first + 1);
    }

    #[test]
    fn versions_are_bounded() {
        let trace = trace();
        for i in 0..1000 {
            trace.update(|a| a.tags.push(format!("t{i}")));
            trace.note_version();
        }
        assert_eq!(trace.lock().len(), MAX_VERSIONS);
        assert_eq!(trace.current_attributes().tags.len(), 1000);
    }
}
