//! Scores from the user's code: on what runs now ([`score_current_trace`],
//! [`score_current_observation`]), on a trace that has ended ([`score_trace`]), and the [`Score`]
//! builder for everything else. Decides what a score belongs to, applies the sampling decision,
//! and hands the checked score to the client; never waits on the network.

use std::num::NonZeroU64;

use serde::Serialize;

use super::stack;
use crate::capture;
use crate::gate;
use crate::ids::{random_u64, ObservationId, TraceId};
use crate::record::score::{random_score_id, ScoreDraft};
use crate::record::ScoreValue;
use crate::unobserved;

/// Scores the trace running on this thread; does nothing outside a recorded trace.
///
/// `value` is a number (`NUMERIC`), a `bool` (`BOOLEAN`) or text (`CATEGORICAL`); see
/// [`ScoreValue`]. For a comment, metadata or an id of your own, use
/// `Score::new(name, value).current_trace()`.
///
/// ```
/// use observe_runtime::observe;
///
/// #[observe]
/// fn answer(question: &str) -> String {
///     let answer = format!("42 is the answer to {question}");
///     observe_runtime::score_current_trace("answered", !answer.is_empty());
///     answer
/// }
/// # answer("everything");
/// ```
pub fn score_current_trace(name: impl Into<String>, value: impl Into<ScoreValue>) {
    if gate::enabled() {
        Score::new(name, value).current_trace().send();
    }
}

/// Scores the observation running on this thread (and so its trace); does nothing outside a
/// recorded observation.
///
/// ```
/// use observe_runtime::observe;
///
/// #[observe(as_type = "generation")]
/// fn summarize(text: &str) -> String {
///     let summary: String = text.chars().take(20).collect();
///     observe_runtime::score_current_observation("compression", summary.len() as f64 / text.len() as f64);
///     observe_runtime::score_current_observation("tone", "neutral");
///     summary
/// }
/// # summarize("a long text about many things");
/// ```
pub fn score_current_observation(name: impl Into<String>, value: impl Into<ScoreValue>) {
    if gate::enabled() {
        Score::new(name, value).current_observation().send();
    }
}

/// Scores a trace by its id, typically feedback that arrives after the trace ended (a thumbs-up
/// in the UI, a later evaluation). The trace-id sampling rule decides, as it did for the trace:
/// a score on a sampled-out trace is dropped.
///
/// ```
/// use observe_runtime::{score_trace, TraceId};
///
/// // The id was kept when the answer was given, e.g. from `current_trace_id()`.
/// let trace_id: TraceId = "0af7651916cd43dd8448eb211c80319c".parse().unwrap();
/// score_trace(trace_id, "user-feedback", true);
/// ```
pub fn score_trace(trace_id: TraceId, name: impl Into<String>, value: impl Into<ScoreValue>) {
    if gate::enabled() {
        Score::new(name, value).trace(trace_id).send();
    }
}

/// A score with everything Langfuse takes: what it belongs to (one trace, optionally one of its
/// observations, or a session, or a dataset run), a comment, metadata, an id of your own and an
/// environment. Nothing happens until [`send`](Self::send).
///
/// `send` never blocks and never fails: a score that cannot be sent (an empty name, a number that
/// is not finite, nothing or more than one thing to belong to) is dropped with a warning naming
/// the problem, and counted in `stats().scores_dropped_invalid`. Outside `init`, everything is a
/// no-op.
///
/// ```
/// use observe_runtime::{Score, TraceId};
///
/// let trace_id: TraceId = "0af7651916cd43dd8448eb211c80319c".parse().unwrap();
/// Score::new("correctness", 0.9)
///     .trace(trace_id)
///     .comment("matches the reference answer")
///     .metadata("judge", serde_json::json!({"model": "gpt-4o", "prompt": 3}))
///     .id("eval-run-7-item-12") // sending it again updates this score
///     .send();
///
/// Score::new("session-rating", "good").session("chat-42").send();
/// Score::new("exact-match", false).dataset_run("run-2024-06-01").send();
/// ```
///
/// On one observation, known by id or running now, in another environment:
///
/// ```
/// use observe_runtime::{span, ObservationId, Score, TraceId};
///
/// let trace_id: TraceId = "0af7651916cd43dd8448eb211c80319c".parse().unwrap();
/// let observation_id: ObservationId = "00f067aa0ba902b7".parse().unwrap();
/// Score::new("latency-ok", true)
///     .observation(trace_id, observation_id)
///     .environment("canary")
///     .send();
///
/// let step = span("retrieve").start();
/// Score::new("recall", 0.8).current_observation().comment("8 of 10").send();
/// Score::new("turns", 3).current_trace().send();
/// step.end();
/// ```
#[must_use = "a Score is sent only by .send()"]
#[derive(Debug, Clone)]
pub struct Score {
    draft: ScoreDraft,
    /// The trace was taken from what runs now, which already decided its sampling.
    sampled_here: bool,
    /// Asked for what runs now while nothing recorded does: `send` does nothing.
    nothing_current: bool,
    /// The capture scope of the trace taken from what runs now.
    scope: Option<NonZeroU64>,
}

impl Score {
    /// A score named `name` (as in Langfuse, e.g. `accuracy`) with `value`: a number
    /// (`NUMERIC`), a `bool` (`BOOLEAN`) or text (`CATEGORICAL`).
    pub fn new(name: impl Into<String>, value: impl Into<ScoreValue>) -> Self {
        Self {
            draft: ScoreDraft::new(name.into(), value.into()),
            sampled_here: false,
            nothing_current: false,
            scope: None,
        }
    }

    fn on_trace(mut self, trace_id: TraceId, observation_id: Option<ObservationId>) -> Self {
        self.draft.trace_id = Some(trace_id);
        self.draft.observation_id = observation_id;
        self.sampled_here = false;
        self.nothing_current = false;
        self.scope = None;
        self
    }

    /// Belongs to this trace (replacing a trace or observation set before).
    pub fn trace(self, trace_id: TraceId) -> Self {
        self.on_trace(trace_id, None)
    }

    /// Belongs to this observation of this trace (replacing a trace or observation set before).
    pub fn observation(self, trace_id: TraceId, observation_id: ObservationId) -> Self {
        self.on_trace(trace_id, Some(observation_id))
    }

    /// Belongs to the trace running on this thread; with none recorded, `send` does nothing.
    pub fn current_trace(self) -> Self {
        match stack::current_recording_ids() {
            Some((trace_id, _)) => self.current(trace_id, None),
            None => self.nothing_current(),
        }
    }

    /// Belongs to the observation running on this thread; with none recorded, `send` does
    /// nothing.
    pub fn current_observation(self) -> Self {
        match stack::current_recording_ids() {
            Some((trace_id, Some(observation_id))) => self.current(trace_id, Some(observation_id)),
            _ => self.nothing_current(),
        }
    }

    fn current(self, trace_id: TraceId, observation_id: Option<ObservationId>) -> Self {
        let mut score = self.on_trace(trace_id, observation_id);
        score.sampled_here = true;
        score.scope = stack::current_trace_state().and_then(|trace| trace.options.scope);
        score
    }

    fn nothing_current(mut self) -> Self {
        self.draft.trace_id = None;
        self.draft.observation_id = None;
        self.nothing_current = true;
        self
    }

    /// Belongs to this session (instead of a trace).
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.draft.session_id = Some(session_id.into());
        self
    }

    /// Belongs to this dataset run (instead of a trace).
    pub fn dataset_run(mut self, dataset_run_id: impl Into<String>) -> Self {
        self.draft.dataset_run_id = Some(dataset_run_id.into());
        self
    }

    /// A free-text comment, shown beside the score (it goes through the mask, as a string).
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.draft.comment = Some(comment.into());
        self
    }

    /// Adds a metadata key; the value is sent as JSON (and goes through the mask, like captured
    /// values).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let Some(client) = gate::client_for(self.scope) else {
            return self;
        };
        let key = key.into();
        let json = capture::serialize_json(&value, client.field_limit);
        let metadata = &mut self.draft.metadata;
        metadata.retain(|(k, _)| *k != key);
        metadata.push((key, json));
        self
    }

    /// The score's id. Sending a score with the same id again updates it instead of adding one
    /// (for scores recomputed later). Without it, each `Score` gets a random UUID, kept across
    /// the exporter's own retries.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.draft.id = Some(id.into());
        self
    }

    /// The environment, instead of the client's `LANGFUSE_TRACING_ENVIRONMENT`.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.draft.environment = Some(environment.into());
        self
    }

    /// Hands the score to the exporter; returns at once. A score on a sampled-out trace is
    /// dropped, as its trace was.
    pub fn send(self) {
        let Some(client) = gate::client_for(self.scope) else {
            return;
        };
        // Nothing current, or on the exporter thread or inside the mask (see `unobserved`).
        if self.nothing_current || unobserved::active() {
            return;
        }
        let mut draft = self.draft;
        if let Some(trace_id) = draft.trace_id {
            if !self.sampled_here && !client.samples(trace_id) {
                return;
            }
        }
        if draft.environment.is_none() {
            draft.environment = client.environment.clone();
        }
        match draft.finish(|| random_score_id(random_u64(), random_u64())) {
            Ok(score) => client.accept_score(score),
            Err(problem) => client.refuse_score(&problem),
        }
    }
}
