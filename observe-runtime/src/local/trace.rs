//! The trace running on this thread: [`current_trace`] and its setters.

use std::sync::Arc;

use serde::Serialize;

use super::stack;
use crate::capture;
use crate::diagnostics;
use crate::ids::TraceId;
use crate::prompt::Prompt;
use crate::record::{ExperimentAttributes, TraceAttributes, TraceState};

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
        trace: stack::current_trace_state().filter(|trace| trace.is_recording()),
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
        let limit = trace.options.field_limit;
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

    /// Makes the trace an experiment item's (every span that ends from now on carries it).
    pub(crate) fn experiment(&self, experiment: Arc<ExperimentAttributes>) -> &Self {
        self.update(|a| a.experiment = Some(experiment))
    }

    /// Links every generation of this trace that ends from now on to `prompt`, unless it links
    /// one itself ([`ObservationHandle::link_prompt`](crate::ObservationHandle::link_prompt)):
    /// on every thread and task of the trace, in `tracing` spans the bridge makes generations
    /// (rig, genai), and in other processes and services through baggage
    /// (`langfuse_prompt_name`, `langfuse_prompt_version`) where propagation is on. Linking
    /// another prompt replaces it for what ends after. A fallback prompt is never linked: the call
    /// then does nothing.
    ///
    /// ```no_run
    /// use observe_runtime::{current_trace, get_prompt, observe};
    ///
    /// #[observe(as_type = "agent")]
    /// fn agent(question: &str) -> Result<String, observe_runtime::PromptError> {
    ///     let prompt = get_prompt("agent/system").fetch()?;
    ///     current_trace().link_prompt(&prompt); // every LLM call below carries it
    ///     Ok(format!("{} {question}", prompt.text().unwrap_or_default()))
    /// }
    /// ```
    pub fn link_prompt(&self, prompt: &Prompt) -> &Self {
        match prompt.link() {
            Some(link) => self.update(|a| a.prompt = Some(link)),
            None => {
                diagnostics::debug(|| {
                    format!("prompt {:?} is a fallback: it is not linked", prompt.name())
                });
                self
            }
        }
    }
}
