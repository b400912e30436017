//! One recorded call: the generation opened for it, what the request said, and how it ends
//! (an answer, an HTTP error, a failure, or a stream's end). The only module that writes to
//! the observation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use observe_runtime::{span, DetachedSpan, Level, ObservationFields, ObservationType, Usage};
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

/// What a call shares with the factory that makes its attempts (one allocation for both): the
/// count of attempts, and the first attempt's request, built before the call and taken by it.
pub(crate) struct Attempts {
    count: AtomicU32,
    first: Mutex<Option<reqwest::Request>>,
}

impl Attempts {
    pub(crate) fn new(first: reqwest::Request) -> Attempts {
        Attempts {
            count: AtomicU32::new(0),
            first: Mutex::new(Some(first)),
        }
    }

    /// Counts an attempt; the first one gets the request built for it.
    pub(crate) fn next(&self) -> Option<reqwest::Request> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.first
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// The attempts after the first.
    fn retries(&self) -> u32 {
        self.count.load(Ordering::Relaxed).saturating_sub(1)
    }
}

/// A call being recorded.
pub(crate) struct Call {
    generation: DetachedSpan,
    endpoint: Endpoint,
    /// The request body, read when the generation is filled in; `None` once the fill is set,
    /// or when the request was recorded at once.
    request: Option<Bytes>,
    /// The request's model, when the request was recorded at once (else the fill reads it).
    request_model: Option<String>,
    options: Arc<Options>,
    attempts: Arc<Attempts>,
    /// The fill is set (the call ended).
    ended: bool,
}

/// How a call ended, as the fill records it.
enum Ending {
    /// The call was dropped before it ended (the caller's future cancelled).
    Dropped,
    /// A complete JSON answer, to read.
    Body(Vec<u8>),
    /// An answer already read (a stream's), and a warning for a stream dropped early.
    Answer(Answer, Option<String>),
}

impl Call {
    /// Opens the generation (under what is current); `None` when the trace is not recorded.
    ///
    /// The request is read later, on the exporter's thread, when its body is within the field
    /// limit (the body is shared with the request, not copied); a larger one is read now, so
    /// that no more than a field's worth waits for export.
    pub(crate) fn open(
        endpoint: Endpoint,
        body: Option<Bytes>,
        options: Arc<Options>,
        attempts: Arc<Attempts>,
    ) -> Option<Call> {
        let kind = match endpoint {
            Endpoint::Embeddings => ObservationType::Embedding,
            Endpoint::Chat | Endpoint::Responses => ObservationType::Generation,
        };
        let generation = span(endpoint.observation_name())
            .as_type(kind)
            .start_detached();
        if !generation.is_recording() {
            return None;
        }
        let mut call = Call {
            endpoint,
            request: None,
            request_model: None,
            options,
            attempts,
            generation,
            ended: false,
        };
        match body {
            Some(body) if body.len() <= call.generation.field_limit() => call.request = Some(body),
            Some(body) => {
                let captures = call.generation.captures_io();
                call.generation.record(|fields| {
                    call.request_model = record_request(fields, endpoint, &body, captures);
                });
            }
            None => {}
        }
        Some(call)
    }

    pub(crate) fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Notes the time the first streamed chunk arrived.
    pub(crate) fn first_chunk(&mut self, at: SystemTime) {
        self.generation.record(|fields| {
            fields.completion_start_time(at);
        });
    }

    /// The call failed before an answer (a connection error, an error the retry layer gave up
    /// on).
    pub(crate) fn failed(mut self, message: String) {
        self.generation.record(|fields| {
            fields.level(Level::Error).status_message(message);
        });
        self.end(Ending::Dropped);
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

    /// A complete JSON answer: read with the request on the exporter's thread when it is within
    /// the field limit (copied, so that no buffer of the HTTP client is held), else now.
    pub(crate) fn answered(self, body: &[u8]) {
        if body.len() <= self.generation.field_limit() {
            self.end(Ending::Body(body.to_vec()));
        } else {
            let answer = read_answer(self.endpoint, body);
            self.end(Ending::Answer(answer, None));
        }
    }

    /// Ends the generation with what the answer said; `warning` marks a stream dropped early.
    pub(crate) fn finish(self, answer: Answer, warning: Option<String>) {
        self.end(Ending::Answer(answer, warning));
    }

    /// Sets the fill that records the request and the ending; the generation ends when `self`
    /// drops, right after.
    fn end(mut self, ending: Ending) {
        self.fill(ending);
    }

    fn fill(&mut self, ending: Ending) {
        self.ended = true;
        let retries = self.attempts.retries();
        let request = self.request.take();
        let mut request_model = self.request_model.take();
        let endpoint = self.endpoint;
        // The options go along only when they price: their count is shared with every call.
        let priced = (!self.options.prices.is_empty()).then(|| self.options.clone());
        let captures = self.generation.captures_io();
        self.generation.defer(move |fields| {
            if retries > 0 {
                fields.metadata("retries", retries);
            }
            if let Some(body) = request {
                request_model = record_request(fields, endpoint, &body, captures);
            }
            let answer = match ending {
                Ending::Dropped => return,
                Ending::Body(body) => read_answer(endpoint, &body),
                Ending::Answer(answer, warning) => {
                    if let Some(warning) = warning {
                        if answer.error.is_none() {
                            fields.level(Level::Warning).status_message(warning);
                        }
                    }
                    answer
                }
            };
            record_answer(fields, answer, request_model, priced.as_deref(), captures);
        });
    }
}

impl Drop for Call {
    /// A call dropped before it ended (its future cancelled) still records its request.
    fn drop(&mut self) {
        if !self.ended {
            self.fill(Ending::Dropped);
        }
    }
}

/// Records what the request says; returns its model.
fn record_request(
    fields: &mut ObservationFields<'_>,
    endpoint: Endpoint,
    body: &[u8],
    captures: bool,
) -> Option<String> {
    let facts = RequestFacts::read(endpoint, body)?;
    if let Some(model) = &facts.model {
        fields.model(model.as_str());
    }
    if !facts.parameters.is_empty() {
        fields.model_parameters(&facts.parameters);
    }
    if captures {
        if let Some(input) = &facts.input {
            fields.input(input);
        }
    }
    for (name, value) in &facts.tools {
        fields.metadata(*name, value);
    }
    facts.model
}

/// Records what the answer says: its model (else the request's), usage, cost, output and error;
/// `priced`: the layer's options, when they set prices.
fn record_answer(
    fields: &mut ObservationFields<'_>,
    answer: Answer,
    request_model: Option<String>,
    priced: Option<&Options>,
    captures: bool,
) {
    let usage = answer.usage.as_ref().map(Usage::from_value);
    let price = [answer.model.as_deref(), request_model.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|model| priced?.prices.get(model));
    if let Some(model) = answer.model.or(request_model) {
        fields.model(model);
    }
    if let (Some(price), Some(usage)) = (price, &usage) {
        fields.cost(price.cost(usage));
    }
    if let Some(usage) = usage {
        fields.usage(usage);
    }
    if captures {
        if let Some(output) = &answer.output {
            fields.output(output);
        }
    }
    if let Some(error) = answer.error {
        fields.level(Level::Error).status_message(error);
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
