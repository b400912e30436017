//! What a score is, as plain data: its value and data type ([`ScoreValue`]), the finished score
//! exporters receive ([`FinishedScore`]), and the checks a score passes before it is handed over
//! ([`ScoreDraft::finish`], with the [`ScoreProblem`] that says what to fix). Knows nothing about
//! thread-locals, the client or HTTP; the wire form lives in the export layer.

use std::borrow::Cow;
use std::fmt;

use super::trace::valid_environment;
use crate::ids::{ObservationId, TraceId};

/// The value of a score; its variant is the score's data type in Langfuse.
///
/// Made with `From` (or `.into()`): numbers give [`Numeric`](Self::Numeric), `bool` gives
/// [`Boolean`](Self::Boolean) (sent as `1` or `0`), text gives
/// [`Categorical`](Self::Categorical).
///
/// ```
/// use observe_runtime::ScoreValue;
/// assert_eq!(ScoreValue::from(0.5), ScoreValue::Numeric(0.5));
/// assert_eq!(ScoreValue::from(4_u8), ScoreValue::Numeric(4.0));
/// assert_eq!(ScoreValue::from(true), ScoreValue::Boolean(true));
/// assert_eq!(ScoreValue::from("relevant"), ScoreValue::Categorical("relevant".into()));
/// assert_eq!(ScoreValue::from(true).data_type(), "BOOLEAN");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ScoreValue {
    /// A number (`NUMERIC`). NaN and infinities are refused when the score is sent.
    Numeric(f64),
    /// Yes or no (`BOOLEAN`), sent as `1` or `0`.
    Boolean(bool),
    /// One of a set of categories (`CATEGORICAL`).
    Categorical(String),
}

impl ScoreValue {
    /// The Langfuse data type: `NUMERIC`, `BOOLEAN` or `CATEGORICAL`.
    pub fn data_type(&self) -> &'static str {
        match self {
            Self::Numeric(_) => "NUMERIC",
            Self::Boolean(_) => "BOOLEAN",
            Self::Categorical(_) => "CATEGORICAL",
        }
    }
}

impl fmt::Display for ScoreValue {
    /// A number as Rust prints it, a boolean as `true` / `false`, a category as quoted JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Numeric(number) => write!(f, "{number}"),
            Self::Boolean(yes) => write!(f, "{yes}"),
            Self::Categorical(text) => write!(f, "{text:?}"),
        }
    }
}

macro_rules! numeric_from {
    ($($number:ty),*) => {$(
        impl From<$number> for ScoreValue {
            fn from(value: $number) -> Self {
                Self::Numeric(value as f64)
            }
        }
    )*};
}

numeric_from!(f64, f32, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl From<bool> for ScoreValue {
    fn from(value: bool) -> Self {
        Self::Boolean(value)
    }
}

impl From<&str> for ScoreValue {
    fn from(value: &str) -> Self {
        Self::Categorical(value.to_string())
    }
}

impl From<String> for ScoreValue {
    fn from(value: String) -> Self {
        Self::Categorical(value)
    }
}

impl From<&String> for ScoreValue {
    fn from(value: &String) -> Self {
        Self::Categorical(value.clone())
    }
}

impl From<Cow<'_, str>> for ScoreValue {
    fn from(value: Cow<'_, str>) -> Self {
        Self::Categorical(value.into_owned())
    }
}

/// A score as exporters receive it (and [`MemoryExporter::scores`](crate::MemoryExporter::scores)
/// returns it): one of a trace (optionally one of its observations), a session or a dataset run.
///
/// ```
/// use observe_runtime::{Config, Exporter, MemoryExporter, Score, ScoreValue};
/// let memory = MemoryExporter::new();
/// let guard = Config::default()
///     .environment("staging")
///     .exporter(Exporter::Memory(memory.clone()))
///     .init()
///     .unwrap();
/// Score::new("resolved", "yes").session("chat-42").comment("closed by the user").send();
/// let score = &memory.scores()[0];
/// assert_eq!(score.session_id.as_deref(), Some("chat-42"));
/// assert_eq!(score.value, ScoreValue::Categorical("yes".into()));
/// assert_eq!(score.comment.as_deref(), Some("closed by the user"));
/// assert_eq!(score.environment.as_deref(), Some("staging"));
/// assert_eq!(score.id.len(), 36); // a random UUID
/// guard.shutdown().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FinishedScore {
    /// The score's id: the one given with `Score::id`, else a random UUID. Sending the same id
    /// again updates the score instead of adding one.
    pub id: String,
    /// The trace it belongs to.
    pub trace_id: Option<TraceId>,
    /// The observation (of that trace) it belongs to.
    pub observation_id: Option<ObservationId>,
    /// The session it belongs to.
    pub session_id: Option<String>,
    /// The dataset run it belongs to.
    pub dataset_run_id: Option<String>,
    /// Its name, such as `accuracy`.
    pub name: String,
    /// Its value, and so its data type.
    pub value: ScoreValue,
    /// A free-text comment.
    pub comment: Option<String>,
    /// Metadata: key and JSON text of the value, in the order first set.
    pub metadata: Vec<(String, String)>,
    /// The environment (the client's `LANGFUSE_TRACING_ENVIRONMENT` unless overridden).
    pub environment: Option<String>,
}

/// A score as the user's code builds it, before its checks.
#[derive(Debug, Clone)]
pub(crate) struct ScoreDraft {
    pub(crate) id: Option<String>,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) observation_id: Option<ObservationId>,
    pub(crate) session_id: Option<String>,
    pub(crate) dataset_run_id: Option<String>,
    pub(crate) name: String,
    pub(crate) value: ScoreValue,
    pub(crate) comment: Option<String>,
    pub(crate) metadata: Vec<(String, String)>,
    pub(crate) environment: Option<String>,
}

/// Why a score was not sent: each says what was wrong, the value seen, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScoreProblem {
    EmptyName,
    NotFinite {
        name: String,
        value: f64,
    },
    NoTarget {
        name: String,
    },
    ObservationWithoutTrace {
        name: String,
        observation_id: ObservationId,
    },
    SeveralTargets {
        name: String,
        targets: Vec<String>,
    },
    EmptyId {
        name: String,
        what: &'static str,
    },
    InvalidEnvironment {
        name: String,
        environment: String,
    },
}

impl ScoreProblem {
    /// The diagnostics subject: each kind of problem is said at most once a minute.
    pub(crate) fn subject(&self) -> &'static str {
        match self {
            Self::EmptyName => "score-empty-name",
            Self::NotFinite { .. } => "score-not-finite",
            Self::NoTarget { .. } => "score-no-target",
            Self::ObservationWithoutTrace { .. } => "score-observation-without-trace",
            Self::SeveralTargets { .. } => "score-several-targets",
            Self::EmptyId { .. } => "score-empty-id",
            Self::InvalidEnvironment { .. } => "score-environment",
        }
    }
}

impl fmt::Display for ScoreProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str(
                "a score with an empty name was dropped: give it the name it has in Langfuse, \
                 such as \"accuracy\"",
            ),
            Self::NotFinite { name, value } => write!(
                f,
                "score {name:?} was dropped: its value {value} is not a finite number, which \
                 Langfuse cannot store; send a finite number, a bool or a category string"
            ),
            Self::NoTarget { name } => write!(
                f,
                "score {name:?} was dropped: it belongs to nothing; call .trace(id), \
                 .observation(trace_id, observation_id), .session(id) or .dataset_run(id) on \
                 the Score before .send()"
            ),
            Self::ObservationWithoutTrace {
                name,
                observation_id,
            } => write!(
                f,
                "score {name:?} was dropped: observation {observation_id} is given without its \
                 trace; use .observation(trace_id, observation_id)"
            ),
            Self::SeveralTargets { name, targets } => write!(
                f,
                "score {name:?} was dropped: it names {}; a score belongs to exactly one trace, \
                 session or dataset run, so send one score for each",
                targets.join(" and ")
            ),
            Self::EmptyId { name, what } => write!(
                f,
                "score {name:?} was dropped: its {what} is empty; give a non-empty {what} or \
                 leave it out"
            ),
            Self::InvalidEnvironment { name, environment } => write!(
                f,
                "score {name:?} was dropped: its environment {environment:?} is not one Langfuse \
                 accepts (it would be stored as \"default\"); use at most 40 lowercase letters, \
                 digits, '-' and '_', not starting with \"langfuse\""
            ),
        }
    }
}

impl ScoreDraft {
    /// A score with a name and a value, belonging to nothing yet.
    pub(crate) fn new(name: String, value: ScoreValue) -> Self {
        Self {
            id: None,
            trace_id: None,
            observation_id: None,
            session_id: None,
            dataset_run_id: None,
            name,
            value,
            comment: None,
            metadata: Vec::new(),
            environment: None,
        }
    }

    /// The score as exporters receive it, with `id` unless one was given, or why it cannot be
    /// sent.
    pub(crate) fn finish(self, id: impl FnOnce() -> String) -> Result<FinishedScore, ScoreProblem> {
        let name = self.name;
        if name.trim().is_empty() {
            return Err(ScoreProblem::EmptyName);
        }
        let value = self.value;
        if let ScoreValue::Numeric(number) = value {
            if !number.is_finite() {
                return Err(ScoreProblem::NotFinite {
                    name,
                    value: number,
                });
            }
        }
        if let (None, Some(observation_id)) = (self.trace_id, self.observation_id) {
            return Err(ScoreProblem::ObservationWithoutTrace {
                name,
                observation_id,
            });
        }
        for (what, text) in [
            ("id", &self.id),
            ("session id", &self.session_id),
            ("dataset run id", &self.dataset_run_id),
        ] {
            if text.as_deref().is_some_and(|text| text.trim().is_empty()) {
                return Err(ScoreProblem::EmptyId { name, what });
            }
        }
        let mut targets = Vec::new();
        if let Some(trace_id) = self.trace_id {
            targets.push(format!("trace {trace_id}"));
        }
        if let Some(session_id) = &self.session_id {
            targets.push(format!("session {session_id:?}"));
        }
        if let Some(run_id) = &self.dataset_run_id {
            targets.push(format!("dataset run {run_id:?}"));
        }
        match targets.len() {
            0 => return Err(ScoreProblem::NoTarget { name }),
            1 => {}
            _ => return Err(ScoreProblem::SeveralTargets { name, targets }),
        }
        if let Some(environment) = &self.environment {
            if !valid_environment(environment) {
                return Err(ScoreProblem::InvalidEnvironment {
                    name,
                    environment: environment.clone(),
                });
            }
        }
        Ok(FinishedScore {
            id: self.id.unwrap_or_else(id),
            trace_id: self.trace_id,
            observation_id: self.observation_id,
            session_id: self.session_id,
            dataset_run_id: self.dataset_run_id,
            name,
            value,
            comment: self.comment,
            metadata: self.metadata,
            environment: self.environment,
        })
    }
}

/// A random UUID (version 4) as text: the id of a score when none was given, so that a resend of
/// the same score updates it instead of adding a second one.
pub(crate) fn random_score_id(high: u64, low: u64) -> String {
    let high = (high & !0xf000) | 0x4000; // version 4
    let low = (low & !(0xc << 60)) | (0x8 << 60); // variant 10
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> TraceId {
        "0af7651916cd43dd8448eb211c80319c".parse().unwrap()
    }

    fn draft(name: &str, value: impl Into<ScoreValue>) -> ScoreDraft {
        let mut draft = ScoreDraft::new(name.into(), value.into());
        draft.trace_id = Some(trace());
        draft
    }

    fn problem(draft: ScoreDraft) -> String {
        match draft.finish(|| "id".into()) {
            Err(problem) => problem.to_string(),
            Ok(score) => panic!("accepted {score:?}"),
        }
    }

    #[test]
    fn values_take_their_data_type_from_their_rust_type() {
        assert_eq!(ScoreValue::from(3_i64), ScoreValue::Numeric(3.0));
        assert_eq!(ScoreValue::from(0.25_f32), ScoreValue::Numeric(0.25));
        assert_eq!(ScoreValue::from(7_usize).data_type(), "NUMERIC");
        assert_eq!(ScoreValue::from(false).data_type(), "BOOLEAN");
        assert_eq!(
            ScoreValue::from(String::from("good")),
            ScoreValue::Categorical("good".into())
        );
        assert_eq!(ScoreValue::from("good").data_type(), "CATEGORICAL");
        assert_eq!(ScoreValue::from(0.5).to_string(), "0.5");
        assert_eq!(ScoreValue::from(true).to_string(), "true");
        assert_eq!(ScoreValue::from("a\"b").to_string(), "\"a\\\"b\"");
    }

    #[test]
    fn a_valid_draft_keeps_its_id_or_gets_the_generated_one() {
        let score = draft("accuracy", 0.5)
            .finish(|| "generated".into())
            .unwrap();
        assert_eq!(score.id, "generated");
        assert_eq!(score.trace_id, Some(trace()));
        let mut given = draft("accuracy", 0.5);
        given.id = Some("mine".into());
        assert_eq!(given.finish(|| "generated".into()).unwrap().id, "mine");
    }

    #[test]
    fn bad_drafts_say_what_was_wrong_and_what_to_do() {
        assert_eq!(
            problem(draft(" ", 1)),
            "a score with an empty name was dropped: give it the name it has in Langfuse, such \
             as \"accuracy\""
        );
        assert_eq!(
            problem(draft("accuracy", f64::NAN)),
            "score \"accuracy\" was dropped: its value NaN is not a finite number, which \
             Langfuse cannot store; send a finite number, a bool or a category string"
        );
        assert_eq!(
            problem(draft("accuracy", f64::NEG_INFINITY)),
            "score \"accuracy\" was dropped: its value -inf is not a finite number, which \
             Langfuse cannot store; send a finite number, a bool or a category string"
        );
        let mut nothing = draft("accuracy", 1);
        nothing.trace_id = None;
        assert_eq!(
            problem(nothing),
            "score \"accuracy\" was dropped: it belongs to nothing; call .trace(id), \
             .observation(trace_id, observation_id), .session(id) or .dataset_run(id) on the \
             Score before .send()"
        );
        let mut orphan = draft("accuracy", 1);
        orphan.trace_id = None;
        orphan.observation_id = Some("00f067aa0ba902b7".parse().unwrap());
        assert_eq!(
            problem(orphan),
            "score \"accuracy\" was dropped: observation 00f067aa0ba902b7 is given without its \
             trace; use .observation(trace_id, observation_id)"
        );
        let mut several = draft("accuracy", 1);
        several.session_id = Some("chat-42".into());
        several.dataset_run_id = Some("run-1".into());
        assert_eq!(
            problem(several),
            "score \"accuracy\" was dropped: it names trace 0af7651916cd43dd8448eb211c80319c and \
             session \"chat-42\" and dataset run \"run-1\"; a score belongs to exactly one trace, \
             session or dataset run, so send one score for each"
        );
        let mut empty_session = draft("accuracy", 1);
        empty_session.trace_id = None;
        empty_session.session_id = Some(String::new());
        let mut environment = draft("accuracy", 1);
        environment.environment = Some("Production".into());
        assert_eq!(
            problem(environment),
            "score \"accuracy\" was dropped: its environment \"Production\" is not one Langfuse \
             accepts (it would be stored as \"default\"); use at most 40 lowercase letters, \
             digits, '-' and '_', not starting with \"langfuse\""
        );
        assert_eq!(
            problem(empty_session),
            "score \"accuracy\" was dropped: its session id is empty; give a non-empty session \
             id or leave it out"
        );
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = random_score_id(u64::MAX, 0);
        assert_eq!(id, "ffffffff-ffff-4fff-8000-000000000000");
        let id = random_score_id(0, u64::MAX);
        assert_eq!(id, "00000000-0000-4000-bfff-ffffffffffff");
    }
}
