//! One recorded call: the generation opened for it, what the request said, and how it ends
//! (an answer, an HTTP error, a failure, or a stream's end). The only module that writes to
//! the observation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use observe_runtime::{current_observation, span, DetachedSpan, Level, ObservationType, Usage};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::endpoint::{Endpoint, RequestFacts};
use crate::json::Json;
use crate::price::Price;

/// The layer's options, shared by its services.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub(crate) include_usage: bool,
    pub(crate) prices: HashMap<String, Price>,
}

/// What an answer says, read from its JSON or from a stream.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) model: Option<String>,
    pub(crate) output: Option<Json<'static>>,
    pub(crate) usage: Option<Value>,
    /// An error the answer itself reports (a failed response, an `error` event).
    pub(crate) error: Option<String>,
}

/// A call being recorded.
pub(crate) struct Call {
    generation: DetachedSpan,
    endpoint: Endpoint,
    request_model: Option<String>,
    options: Arc<Options>,
    attempts: Arc<AtomicU32>,
}

impl Call {
    /// Opens the generation (under what is current) and records the request; `None` when the
    /// trace is not recorded.
    pub(crate) fn open(
        endpoint: Endpoint,
        body: Option<&[u8]>,
        options: Arc<Options>,
        attempts: Arc<AtomicU32>,
    ) -> Option<Call> {
        let kind = match endpoint {
            Endpoint::Embeddings => ObservationType::Embedding,
            Endpoint::Chat | Endpoint::Responses => ObservationType::Generation,
        };
        let mut generation = span(endpoint.observation_name())
            .as_type(kind)
            .start_detached();
        if !generation.is_recording() {
            return None;
        }
        let facts = body
            .and_then(|body| RequestFacts::read(endpoint, body))
            .unwrap_or_default();
        let captures = generation.captures_io();
        generation.in_scope(|| {
            let observation = current_observation();
            if let Some(model) = &facts.model {
                observation.model(model.as_str());
            }
            if !facts.parameters.is_empty() {
                observation.model_parameters(&facts.parameters);
            }
            if captures {
                if let Some(input) = &facts.input {
                    observation.input(input);
                }
            }
            for (name, value) in &facts.tools {
                observation.metadata(*name, value);
            }
        });
        Some(Call {
            generation,
            endpoint,
            request_model: facts.model,
            options,
            attempts,
        })
    }

    pub(crate) fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Notes the time the first streamed chunk arrived.
    pub(crate) fn first_chunk(&mut self, at: SystemTime) {
        self.generation.in_scope(|| {
            current_observation().completion_start_time(at);
        });
    }

    /// The call failed before an answer (a connection error, an error the retry layer gave up
    /// on).
    pub(crate) fn failed(mut self, message: String) {
        self.note_retries();
        self.generation.in_scope(|| {
            current_observation()
                .level(Level::Error)
                .status_message(message);
        });
    }

    /// The server answered with an error status.
    pub(crate) fn http_error(self, status: reqwest::StatusCode, body: &[u8]) {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|body| {
                body.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
        self.failed(format!("HTTP {}: {message}", status.as_u16()));
    }

    /// A complete JSON answer.
    pub(crate) fn answered(self, body: &[u8]) {
        let answer = read_answer(self.endpoint, body);
        self.finish(answer, None);
    }

    /// Ends the generation with what the answer said; `warning` marks a stream dropped early.
    pub(crate) fn finish(mut self, answer: Answer, warning: Option<String>) {
        self.note_retries();
        let captures = self.generation.captures_io();
        let model = answer.model.or_else(|| self.request_model.take());
        let usage = answer.usage.as_ref().map(Usage::from_value);
        let price = model
            .as_deref()
            .and_then(|model| self.options.prices.get(model))
            .or_else(|| {
                self.request_model
                    .as_deref()
                    .and_then(|model| self.options.prices.get(model))
            });
        let cost = price
            .zip(usage.as_ref())
            .map(|(price, usage)| price.cost(usage));
        self.generation.in_scope(|| {
            let observation = current_observation();
            if let Some(model) = model {
                observation.model(model);
            }
            if let Some(usage) = usage {
                observation.usage(usage);
            }
            if let Some(cost) = cost {
                observation.cost(cost);
            }
            if captures {
                if let Some(output) = &answer.output {
                    observation.output(output);
                }
            }
            if let Some(error) = answer.error {
                observation.level(Level::Error).status_message(error);
            } else if let Some(warning) = warning {
                observation.level(Level::Warning).status_message(warning);
            }
        });
    }

    fn note_retries(&mut self) {
        let retries = self.attempts.load(Ordering::Relaxed).saturating_sub(1);
        if retries > 0 {
            self.generation.in_scope(|| {
                current_observation().metadata("retries", retries);
            });
        }
    }
}

/// What is read of a complete answer: its parts as their own JSON text.
#[derive(Deserialize)]
struct AnswerView<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(borrow, default)]
    output: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<Vec<EmbeddingView<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EmbeddingView<'a> {
    #[serde(borrow, default)]
    embedding: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ErrorView {
    #[serde(default)]
    message: Option<String>,
}

/// Reads a complete (non-streamed) answer, or the final response of a stream.
pub(crate) fn read_answer(endpoint: Endpoint, body: &[u8]) -> Answer {
    let view = match serde_json::from_slice::<AnswerView<'_>>(body) {
        Ok(view) => view,
        Err(error) => {
            let error = match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => return Answer::default(),
                Err(_) => format!("the answer is not JSON: {error}"),
            };
            return Answer {
                error: Some(error),
                ..Answer::default()
            };
        }
    };
    let mut answer = Answer {
        model: view.model,
        usage: view
            .usage
            .and_then(|usage| serde_json::from_str(usage.get()).ok()),
        ..Answer::default()
    };
    match endpoint {
        Endpoint::Chat => {
            let mut messages: Vec<Json<'_>> = view
                .choices
                .unwrap_or_default()
                .into_iter()
                .filter_map(|choice| choice.message.map(Json::of))
                .collect();
            answer.output = match messages.len() {
                0 => None,
                1 => messages.pop().map(Json::into_owned),
                _ => Some(Json::array(messages)),
            };
        }
        Endpoint::Responses => {
            answer.error = view
                .error
                .and_then(|error| serde_json::from_str::<ErrorView>(error.get()).ok())
                .and_then(|error| error.message);
            answer.output = view.output.map(|output| Json::of(output).into_owned());
        }
        Endpoint::Embeddings => {
            if let Some(data) = view.data {
                let dimensions = data
                    .first()
                    .and_then(|first| first.embedding)
                    .and_then(|embedding| {
                        serde_json::from_str::<Vec<serde::de::IgnoredAny>>(embedding.get()).ok()
                    })
                    .map(|numbers| numbers.len());
                let mut output = serde_json::Map::new();
                output.insert("count".into(), data.len().into());
                if let Some(dimensions) = dimensions {
                    output.insert("dimensions".into(), dimensions.into());
                }
                answer.output = Some(Json::Parsed(Value::Object(output)));
            }
        }
    }
    answer
}
