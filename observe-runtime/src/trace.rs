//! State shared by the spans of one trace in this process: the sampling decision, the client the
//! trace reports to, and the trace attributes set through [`current_trace`]. Every span that ends
//! carries a snapshot of these attributes, because Langfuse keeps only what each span carries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;
use serde::Serialize;

use crate::capture;
use crate::client::Client;
use crate::context;
use crate::diagnostics;
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
}

static EMPTY: Lazy<Arc<TraceAttributes>> = Lazy::new(Arc::default);

/// The state of one trace in this process.
pub(crate) struct TraceState {
    pub(crate) trace_id: TraceId,
    /// The sampling decision (made here from the id, or taken from a remote parent).
    pub(crate) sampled: bool,
    /// The client spans are reported to; `None` when the trace is not recorded.
    pub(crate) client: Option<Arc<Client>>,
    /// The parent span in another process (from a `traceparent`), if any.
    pub(crate) remote_parent: Option<ObservationId>,
    attributes_set: AtomicBool,
    attributes: Mutex<Arc<TraceAttributes>>,
}

impl TraceState {
    /// A trace whose sampling is decided here from its id, reporting to the installed client.
    pub(crate) fn new(
        trace_id: TraceId,
        remote_parent: Option<ObservationId>,
        upstream_sampled: Option<bool>,
    ) -> Arc<Self> {
        let client = crate::client::installed();
        let sampled = upstream_sampled.unwrap_or_else(|| {
            client
                .as_ref()
                .is_none_or(|client| client.samples(trace_id))
        });
        let client = client.filter(|_| sampled);
        Arc::new(Self {
            trace_id,
            sampled,
            client,
            remote_parent,
            attributes_set: AtomicBool::new(false),
            attributes: Mutex::new(EMPTY.clone()),
        })
    }

    pub(crate) fn is_recording(&self) -> bool {
        self.client.is_some()
    }

    /// The attributes now; no lock while nobody has set any.
    pub(crate) fn snapshot(&self) -> Arc<TraceAttributes> {
        if !self.attributes_set.load(Ordering::Acquire) {
            return EMPTY.clone();
        }
        match self.attributes.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut TraceAttributes)) {
        let mut guard = match self.attributes.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(Arc::make_mut(&mut guard));
        self.attributes_set.store(true, Ordering::Release);
    }
}

/// The trace running on this thread now; see [`current_trace`].
///
/// Setters return `&Self` for chaining and do nothing outside a recorded trace. Every span of the
/// trace that ends after a call carries the value, and the root, which ends last, carries the final
/// values.
#[derive(Clone)]
pub struct TraceHandle {
    trace: Option<Arc<TraceState>>,
}

impl std::fmt::Debug for TraceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceHandle")
            .field("trace_id", &self.trace.as_ref().map(|t| t.trace_id))
            .finish()
    }
}

/// A handle on the trace running on this thread now.
///
/// ```
/// observe_runtime::current_trace()
///     .name("chat-turn")
///     .session_id("chat-42")
///     .user_id("user-7")
///     .tags(["prod", "beta"]);
/// ```
pub fn current_trace() -> TraceHandle {
    TraceHandle {
        trace: context::current_trace_state().filter(|trace| trace.is_recording()),
    }
}

/// Langfuse's official SDKs refuse trace attribute values over 200 characters or with non-ASCII
/// text; we keep them (nothing is lost) and say once that other tools may not.
fn check_id_value(what: &str, value: &str) {
    if value.len() > 200 || !value.is_ascii() {
        diagnostics::warn_once(
            what,
            format!(
                "{what} {:?} is longer than 200 characters or not US-ASCII; it is sent as is, \
                 but Langfuse's official SDKs refuse such values, so filters in other tools may miss it",
                value.chars().take(60).collect::<String>()
            ),
        );
    }
}

impl TraceHandle {
    /// The id of the trace, if one is running and recorded.
    pub fn id(&self) -> Option<TraceId> {
        self.trace.as_ref().map(|trace| trace.trace_id)
    }

    fn update(&self, change: impl FnOnce(&mut TraceAttributes)) -> &Self {
        if let Some(trace) = &self.trace {
            trace.update(change);
        }
        self
    }

    /// Sets the trace name.
    pub fn name(&self, name: impl Into<String>) -> &Self {
        let name = name.into();
        self.update(|a| a.name = Some(name))
    }

    /// Sets the session id (groups traces into a conversation).
    pub fn session_id(&self, session_id: impl Into<String>) -> &Self {
        let session_id = session_id.into();
        check_id_value("session id", &session_id);
        self.update(|a| a.session_id = Some(session_id))
    }

    /// Sets the user id.
    pub fn user_id(&self, user_id: impl Into<String>) -> &Self {
        let user_id = user_id.into();
        check_id_value("user id", &user_id);
        self.update(|a| a.user_id = Some(user_id))
    }

    /// Adds tags (duplicates are kept once).
    pub fn tags(&self, tags: impl IntoIterator<Item = impl Into<String>>) -> &Self {
        if self.trace.is_none() {
            return self;
        }
        let tags: Vec<String> = tags.into_iter().map(Into::into).collect();
        self.update(|a| {
            for tag in tags {
                if !a.tags.contains(&tag) {
                    a.tags.push(tag);
                }
            }
        })
    }

    /// Adds one tag.
    pub fn tag(&self, tag: impl Into<String>) -> &Self {
        self.tags([tag.into()])
    }

    /// Adds a trace metadata key; the value is sent as JSON.
    pub fn metadata(&self, key: impl Into<String>, value: impl Serialize) -> &Self {
        let Some(trace) = &self.trace else {
            return self;
        };
        let limit = trace
            .client
            .as_ref()
            .map(|c| c.field_limit())
            .unwrap_or(capture::DEFAULT_FIELD_LIMIT);
        let key = key.into();
        let json = capture::serialize_json(&value, limit);
        self.update(move |a| {
            a.metadata.retain(|(k, _)| *k != key);
            a.metadata.push((key, json));
        })
    }

    /// Sets the release (overrides `LANGFUSE_RELEASE` for this trace).
    pub fn release(&self, release: impl Into<String>) -> &Self {
        let release = release.into();
        self.update(|a| a.release = Some(release))
    }

    /// Sets the version of the application logic.
    pub fn version(&self, version: impl Into<String>) -> &Self {
        let version = version.into();
        self.update(|a| a.version = Some(version))
    }

    /// Makes the trace public (viewable by link) or not.
    pub fn public(&self, public: bool) -> &Self {
        self.update(|a| a.public = Some(public))
    }
}
