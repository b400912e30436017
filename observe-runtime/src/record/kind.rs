//! What kind an observation is and how severe: [`ObservationType`] and [`Level`].

use std::fmt;

/// The kind of an observation, as Langfuse shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ObservationType {
    /// A unit of work (the default).
    #[default]
    Span,
    /// A call to a model: carries model, usage and cost.
    Generation,
    /// A point in time with no duration.
    Event,
    /// An agent deciding what to do next.
    Agent,
    /// A tool called by an agent.
    Tool,
    /// A link between steps.
    Chain,
    /// A retrieval step, such as a vector store query.
    Retriever,
    /// An evaluation of another observation.
    Evaluator,
    /// A call to an embedding model.
    Embedding,
    /// A guardrail check.
    Guardrail,
}

impl ObservationType {
    /// Every type, in the order of the Langfuse docs.
    pub const ALL: [ObservationType; 10] = [
        Self::Span,
        Self::Generation,
        Self::Event,
        Self::Agent,
        Self::Tool,
        Self::Chain,
        Self::Retriever,
        Self::Evaluator,
        Self::Embedding,
        Self::Guardrail,
    ];

    /// The lowercase name Langfuse uses (`"generation"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Span => "span",
            Self::Generation => "generation",
            Self::Event => "event",
            Self::Agent => "agent",
            Self::Tool => "tool",
            Self::Chain => "chain",
            Self::Retriever => "retriever",
            Self::Evaluator => "evaluator",
            Self::Embedding => "embedding",
            Self::Guardrail => "guardrail",
        }
    }
}

impl fmt::Display for ObservationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The severity of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Nothing special (the default).
    #[default]
    Default,
    /// Something went partly wrong, or the work was cancelled.
    Warning,
    /// The work failed.
    Error,
}

impl Level {
    /// The upper-case name Langfuse uses (`"ERROR"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Default => "DEFAULT",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one rule for raising a level with its message (a WARN or ERROR event, an error field):
/// a higher level replaces the level, and the message when one comes with it; the same level
/// only fills a missing message; a lower level, DEFAULT and DEBUG change nothing (a WARN after an
/// ERROR leaves the ERROR).
#[cfg(feature = "tracing")]
pub(crate) fn raise_level(
    level: &mut Level,
    message: &mut Option<String>,
    to: Level,
    with: Option<String>,
) {
    if to <= Level::Default {
        return;
    }
    if to > *level {
        *level = to;
        if with.is_some() {
            *message = with;
        }
    } else if to == *level && message.is_none() {
        *message = with;
    }
}
