//! The handle on the running observation ([`current_observation`]) and its setters. Values are
//! serialized only when the observation is recorded. Knows nothing about export.

use std::time::SystemTime;

use serde::Serialize;

use super::stack;
use crate::capture;
use crate::diagnostics;
use crate::ids::ObservationId;
use crate::media::MediaField;
use crate::prompt::Prompt;
use crate::record::{Cost, Level, ObservationType, PromptLink, SpanData, Usage};

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
        span_id: stack::current_recording_span_id(),
    }
}

impl ObservationHandle {
    /// The id of the observation, if one is running and recorded.
    pub fn id(&self) -> Option<ObservationId> {
        self.span_id
    }

    fn apply(&self, change: impl FnOnce(&mut SpanData)) -> &Self {
        if let Some(id) = self.span_id {
            stack::with_span_data(id, change);
        }
        self
    }

    fn limit(&self) -> Option<usize> {
        self.span_id.and_then(|_| stack::current_field_limit())
    }

    fn apply_json(
        &self,
        value: &impl Serialize,
        field: MediaField,
        change: impl FnOnce(&mut SpanData, String),
    ) -> &Self {
        if let Some(limit) = self.limit() {
            let (json, media) = capture::serialize_json_with_media(value, limit, field);
            self.apply(|span| {
                change(span, json);
                span.add_media(field, media);
            });
        }
        self
    }

    /// Sets the input (any `Serialize` value, sent as JSON).
    pub fn input(&self, value: impl Serialize) -> &Self {
        self.apply_json(&value, MediaField::Input, SpanData::set_input)
    }

    /// Sets the output (any `Serialize` value, sent as JSON).
    pub fn output(&self, value: impl Serialize) -> &Self {
        self.apply_json(&value, MediaField::Output, SpanData::set_output)
    }

    /// Adds a metadata key (filterable in Langfuse); the value is sent as JSON.
    pub fn metadata(&self, key: impl Into<String>, value: impl Serialize) -> &Self {
        let key = key.into();
        self.apply_json(&value, MediaField::Metadata, move |span, json| {
            span.set_metadata(key, json)
        })
    }

    /// Sets the level.
    pub fn level(&self, level: Level) -> &Self {
        self.apply(|span| span.set_level(level))
    }

    /// Sets the status message (shown beside the level, e.g. an error text).
    pub fn status_message(&self, message: impl Into<String>) -> &Self {
        let message = message.into();
        self.apply(|span| *span.status_message_mut() = Some(message))
    }

    /// Sets the model name of a generation.
    pub fn model(&self, model: impl Into<String>) -> &Self {
        let model = model.into();
        self.apply(|span| span.details().model = Some(model))
    }

    /// Sets the model parameters (a JSON object such as `{"temperature": 0.2}`).
    pub fn model_parameters(&self, parameters: impl Serialize) -> &Self {
        self.apply_json(&parameters, MediaField::Metadata, |span, json| {
            span.details().model_parameters = Some(json)
        })
    }

    /// Sets the token counts.
    pub fn usage(&self, usage: Usage) -> &Self {
        self.apply(|span| span.details().usage = Some(usage))
    }

    /// Sets the costs in USD.
    pub fn cost(&self, cost: Cost) -> &Self {
        self.apply(|span| span.details().cost = Some(cost))
    }

    /// Records when the first token of a streamed completion arrived (time to first token).
    pub fn completion_start_time(&self, at: SystemTime) -> &Self {
        let nanos = crate::clock::unix_nanos(at);
        self.apply(|span| span.details().completion_start_unix_nanos = Some(nanos))
    }

    /// Links the running generation to `prompt` (its name and version), so Langfuse shows which
    /// prompt version produced it and its metrics per version. A fallback prompt
    /// ([`Prompt::is_fallback`]) is never linked: the call then does nothing.
    ///
    /// ```no_run
    /// use observe_runtime::{current_observation, get_prompt, observe};
    ///
    /// #[observe(as_type = "generation")]
    /// fn summarise(text: &str) -> String {
    ///     let prompt = get_prompt("summarise").fallback_text("Summarise: {{text}}").fetch().unwrap();
    ///     current_observation().link_prompt(&prompt).model("gpt-4o");
    ///     prompt.compile(&serde_json::json!({"text": text})).unwrap()
    /// }
    /// ```
    pub fn link_prompt(&self, prompt: &Prompt) -> &Self {
        match prompt.link() {
            Some(link) => self.prompt(link.name, link.version),
            None => {
                diagnostics::debug(|| {
                    format!("prompt {:?} is a fallback: it is not linked", prompt.name())
                });
                self
            }
        }
    }

    /// Marks an experiment item's run or task observation (it carries the run's description and
    /// the item's expected output).
    pub(crate) fn experiment_item(&self) -> &Self {
        self.apply(|span| span.details().experiment_item = true)
    }

    /// Links a generation to a Langfuse prompt by name and version.
    ///
    /// Only a generation can carry a prompt link (Langfuse drops any other observation that has
    /// one): on another type the link is left out, with one warning per process.
    pub fn prompt(&self, name: impl Into<String>, version: u32) -> &Self {
        let link = PromptLink {
            name: name.into(),
            version,
        };
        self.apply(|span| {
            if span.kind() == ObservationType::Generation {
                span.details().prompt = Some(link);
            } else {
                diagnostics::warn_once(
                    "prompt link",
                    format!(
                        "prompt {:?} version {} was not linked to the {} observation {:?}: Langfuse \
                         accepts a prompt link only on a generation and would drop the \
                         observation; use #[observe(as_type = \"generation\")]",
                        link.name,
                        link.version,
                        span.kind().as_str(),
                        span.name
                    ),
                );
            }
        })
    }
}
