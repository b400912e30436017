//! What an observation is and what can be set on it while it runs: its type, level, usage and cost,
//! and the [`ObservationHandle`] returned by [`current_observation`]. Knows nothing about export.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

use crate::capture;
use crate::context;
use crate::ids::ObservationId;
use crate::span::{FinishedSpan, PromptLink};

/// The kind of an observation, as Langfuse shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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

/// Token counts of a generation.
///
/// ```
/// use observe_runtime::Usage;
/// let usage = Usage { input: 10, output: 25, ..Default::default() };
/// assert_eq!(usage.to_json(), r#"{"input":10,"output":25,"total":35}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// The total; `None` means `input + output`.
    pub total: Option<u64>,
    /// Further named counts, such as `"cache_read_input_tokens"`.
    pub details: BTreeMap<String, u64>,
}

impl Usage {
    /// The `usage_details` JSON object Langfuse reads.
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert("input".into(), self.input.into());
        map.insert("output".into(), self.output.into());
        map.insert(
            "total".into(),
            self.total
                .unwrap_or(self.input.saturating_add(self.output))
                .into(),
        );
        for (key, value) in &self.details {
            map.insert(key.clone(), (*value).into());
        }
        serde_json::Value::Object(map).to_string()
    }
}

/// Costs of a generation in USD.
///
/// ```
/// use observe_runtime::Cost;
/// let cost = Cost { total: Some(0.0012), ..Default::default() };
/// assert_eq!(cost.to_json(), r#"{"total":0.0012}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Cost of the prompt.
    pub input: Option<f64>,
    /// Cost of the completion.
    pub output: Option<f64>,
    /// The total; `None` means the sum of `input` and `output` when either is set.
    pub total: Option<f64>,
    /// Further named costs.
    pub details: BTreeMap<String, f64>,
}

impl Cost {
    /// The `cost_details` JSON object Langfuse reads (negative and non-finite numbers are left out).
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        let mut put = |key: &str, value: f64| {
            if value.is_finite() && value >= 0.0 {
                if let Some(number) = serde_json::Number::from_f64(value) {
                    map.insert(key.to_string(), serde_json::Value::Number(number));
                }
            }
        };
        if let Some(v) = self.input {
            put("input", v);
        }
        if let Some(v) = self.output {
            put("output", v);
        }
        let total = self.total.or(match (self.input, self.output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0.0) + o.unwrap_or(0.0)),
        });
        if let Some(v) = total {
            put("total", v);
        }
        for (key, value) in &self.details {
            put(key, *value);
        }
        serde_json::Value::Object(map).to_string()
    }
}

/// The observation running on this thread now; see [`current_observation`].
///
/// Every setter returns `&Self` for chaining and does nothing outside an observation, or when the
/// trace is not recorded (no client, tracing disabled, sampled out): values are then not even
/// serialized. A value set explicitly wins over what `#[observe]` captures automatically.
#[derive(Debug, Clone, Copy)]
pub struct ObservationHandle {
    span_id: Option<ObservationId>,
}

/// A handle on the observation running on this thread now.
///
/// ```
/// use observe_runtime::{current_observation, Level, Usage};
/// current_observation()
///     .model("gpt-4o")
///     .usage(Usage { input: 12, output: 30, ..Default::default() })
///     .level(Level::Warning)
///     .status_message("retried once");
/// ```
pub fn current_observation() -> ObservationHandle {
    ObservationHandle {
        span_id: context::current_recording_span_id(),
    }
}

impl ObservationHandle {
    /// The id of the observation, if one is running and recorded.
    pub fn id(&self) -> Option<ObservationId> {
        self.span_id
    }

    fn apply(&self, change: impl FnOnce(&mut FinishedSpan)) -> &Self {
        if let Some(id) = self.span_id {
            context::with_span_data(id, change);
        }
        self
    }

    fn limit(&self) -> Option<usize> {
        self.span_id.and_then(|_| context::current_field_limit())
    }

    fn apply_json(
        &self,
        value: &impl Serialize,
        change: impl FnOnce(&mut FinishedSpan, String),
    ) -> &Self {
        if let Some(limit) = self.limit() {
            let json = capture::serialize_json(value, limit);
            self.apply(|span| change(span, json));
        }
        self
    }

    /// Sets the input (any `Serialize` value, sent as JSON).
    pub fn input(&self, value: impl Serialize) -> &Self {
        self.apply_json(&value, |span, json| {
            span.input = Some(json);
            span.explicit_input = true;
        })
    }

    /// Sets the output (any `Serialize` value, sent as JSON).
    pub fn output(&self, value: impl Serialize) -> &Self {
        self.apply_json(&value, |span, json| {
            span.output = Some(json);
            span.explicit_output = true;
        })
    }

    /// Adds a metadata key (filterable in Langfuse); the value is sent as JSON.
    pub fn metadata(&self, key: impl Into<String>, value: impl Serialize) -> &Self {
        let key = key.into();
        self.apply_json(&value, move |span, json| {
            span.metadata.retain(|(k, _)| *k != key);
            span.metadata.push((key, json));
        })
    }

    /// Sets the level.
    pub fn level(&self, level: Level) -> &Self {
        self.apply(|span| span.level = level)
    }

    /// Sets the status message (shown beside the level, e.g. an error text).
    pub fn status_message(&self, message: impl Into<String>) -> &Self {
        let message = message.into();
        self.apply(|span| span.status_message = Some(message))
    }

    /// Sets the model name of a generation.
    pub fn model(&self, model: impl Into<String>) -> &Self {
        let model = model.into();
        self.apply(|span| span.model = Some(model))
    }

    /// Sets the model parameters (a JSON object such as `{"temperature": 0.2}`).
    pub fn model_parameters(&self, parameters: impl Serialize) -> &Self {
        self.apply_json(&parameters, |span, json| span.model_parameters = Some(json))
    }

    /// Sets the token counts.
    pub fn usage(&self, usage: Usage) -> &Self {
        self.apply(|span| span.usage = Some(usage))
    }

    /// Sets the costs in USD.
    pub fn cost(&self, cost: Cost) -> &Self {
        self.apply(|span| span.cost = Some(cost))
    }

    /// Records when the first token of a streamed completion arrived (time to first token).
    pub fn completion_start_time(&self, at: SystemTime) -> &Self {
        let nanos = crate::span::unix_nanos(at);
        self.apply(|span| span.completion_start_unix_nanos = Some(nanos))
    }

    /// Links a generation to a Langfuse prompt by name and version.
    pub fn prompt(&self, name: impl Into<String>, version: u32) -> &Self {
        let link = PromptLink {
            name: name.into(),
            version,
        };
        self.apply(|span| span.prompt = Some(link))
    }
}
