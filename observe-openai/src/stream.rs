//! A streamed answer read on the side: [`ObservedBody`] passes the body's bytes through
//! untouched, cuts them into SSE `data:` lines, and folds the events into the answer (chat
//! deltas concatenated, tool-call deltas merged, the usage of the last chunk; the Responses
//! API's final response). The generation ends at `data: [DONE]` (or the final event, or the end
//! of the body), with ERROR on a broken body and WARNING when dropped before the end.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_core::Stream;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::call::{Answer, Call};
use crate::endpoint::Endpoint;
use crate::json::Json;

/// Cuts bytes into lines and hands on the payload of each `data:` line.
#[derive(Debug, Default)]
struct SseLines {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
}

impl SseLines {
    fn feed(&mut self, mut chunk: &[u8], mut on_data: impl FnMut(&[u8])) {
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            let (line, rest) = chunk.split_at(end);
            chunk = &rest[1..];
            if self.partial.is_empty() {
                data_of(line).map(&mut on_data);
            } else {
                self.partial.extend_from_slice(line);
                let line = std::mem::take(&mut self.partial);
                data_of(&line).map(&mut on_data);
            }
        }
        self.partial.extend_from_slice(chunk);
    }
}

fn data_of(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let data = line.strip_prefix(b"data:")?;
    Some(data.strip_prefix(b" ").unwrap_or(data))
}

/// One chunk of a streamed chat completion (what is read of it).
#[derive(Deserialize)]
struct ChatChunk<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

/// The assistant message of one choice, put together from its deltas.
#[derive(Debug, Default)]
struct Message {
    role: Option<String>,
    content: String,
    refusal: String,
    tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Default)]
struct ToolCall {
    id: String,
    kind: String,
    name: String,
    arguments: String,
}

impl Message {
    fn to_value(&self) -> Value {
        let mut message = Map::new();
        message.insert(
            "role".into(),
            Value::String(self.role.clone().unwrap_or_else(|| "assistant".into())),
        );
        message.insert(
            "content".into(),
            if self.content.is_empty() && !self.tool_calls.is_empty() {
                Value::Null
            } else {
                Value::String(self.content.clone())
            },
        );
        if !self.refusal.is_empty() {
            message.insert("refusal".into(), Value::String(self.refusal.clone()));
        }
        if !self.tool_calls.is_empty() {
            let calls = self
                .tool_calls
                .iter()
                .map(|call| {
                    serde_json::json!({
                        "id": call.id,
                        "type": if call.kind.is_empty() { "function" } else { call.kind.as_str() },
                        "function": {"name": call.name, "arguments": call.arguments},
                    })
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        Value::Object(message)
    }
}

/// A streamed chat completion so far.
#[derive(Debug, Default)]
struct ChatState {
    model: Option<String>,
    choices: Vec<Message>,
    usage: Option<Value>,
    error: Option<String>,
}

impl ChatState {
    fn event(&mut self, data: &[u8]) {
        match crate::chunk::scan(data) {
            Some(scanned) => self.scanned(scanned),
            None => self.parsed(data),
        }
    }

    /// A chunk the scan read (no tool-call deltas).
    fn scanned(&mut self, chunk: crate::chunk::Scanned<'_>) {
        if let Some(error) = chunk.error {
            if let Ok(error) = serde_json::from_slice::<Value>(error) {
                self.error = Some(error_message(&error));
            }
        }
        if self.model.is_none() {
            self.model = chunk.model.map(Cow::into_owned);
        }
        if let Some(usage) = chunk.usage.and_then(|u| serde_json::from_slice(u).ok()) {
            self.usage = Some(usage);
        }
        for choice in chunk.choices.into_iter().flatten() {
            let message = self.message(choice.index);
            if let Some(role) = choice.role {
                message.role.get_or_insert_with(|| role.into_owned());
            }
            if let Some(content) = choice.content {
                message.content.push_str(&content);
            }
            if let Some(refusal) = choice.refusal {
                message.refusal.push_str(&refusal);
            }
        }
    }

    /// The message of choice `index`, made when it is the first delta of that choice.
    fn message(&mut self, index: usize) -> &mut Message {
        if self.choices.len() <= index {
            self.choices.resize_with(index + 1, Message::default);
        }
        &mut self.choices[index]
    }

    /// A chunk the scan left to the typed parse.
    fn parsed(&mut self, data: &[u8]) {
        let Ok(chunk) = serde_json::from_slice::<ChatChunk<'_>>(data) else {
            return;
        };
        if let Some(error) = chunk.error {
            self.error = Some(error_message(&error));
        }
        if self.model.is_none() {
            self.model = chunk.model.map(Cow::into_owned);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices {
            let Some(delta) = choice.delta else { continue };
            let message = self.message(choice.index);
            if let Some(role) = delta.role {
                message.role.get_or_insert_with(|| role.into_owned());
            }
            if let Some(content) = delta.content {
                message.content.push_str(&content);
            }
            if let Some(refusal) = delta.refusal {
                message.refusal.push_str(&refusal);
            }
            for call in delta.tool_calls.into_iter().flatten() {
                if message.tool_calls.len() <= call.index {
                    message
                        .tool_calls
                        .resize_with(call.index + 1, ToolCall::default);
                }
                let merged = &mut message.tool_calls[call.index];
                if let Some(id) = call.id {
                    merged.id.push_str(&id);
                }
                if let Some(kind) = call.kind {
                    merged.kind = kind.into_owned();
                }
                if let Some(function) = call.function {
                    if let Some(name) = function.name {
                        merged.name.push_str(&name);
                    }
                    if let Some(arguments) = function.arguments {
                        merged.arguments.push_str(&arguments);
                    }
                }
            }
        }
    }

    fn answer(self) -> Answer {
        let output = match self.choices.len() {
            0 => None,
            1 => Some(Json::Parsed(self.choices[0].to_value())),
            _ => Some(Json::Parsed(Value::Array(
                self.choices.iter().map(Message::to_value).collect(),
            ))),
        };
        Answer {
            model: self.model,
            output,
            usage: self.usage,
            error: self.error,
        }
    }
}

/// One event of a streamed Responses API call (what is read of it).
#[derive(Deserialize)]
struct ResponseEvent<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
    #[serde(default)]
    message: Option<String>,
}

/// A streamed Responses API call so far.
#[derive(Debug, Default)]
struct ResponsesState {
    text: String,
    /// The response of the final event (`response.completed`, `.incomplete` or `.failed`).
    last: Option<Box<RawValue>>,
    error: Option<String>,
}

impl ResponsesState {
    /// Reads one event; true when it is the final one.
    fn event(&mut self, data: &[u8]) -> bool {
        let Ok(event) = serde_json::from_slice::<ResponseEvent<'_>>(data) else {
            return false;
        };
        match event.kind.as_ref() {
            "response.output_text.delta" => {
                if let Some(delta) = event.delta {
                    self.text.push_str(&delta);
                }
                false
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.last = event.response.map(RawValue::to_owned);
                true
            }
            "error" => {
                self.error = Some(event.message.unwrap_or_else(|| "error event".into()));
                true
            }
            _ => false,
        }
    }

    fn answer(self) -> Answer {
        match self.last {
            Some(response) => {
                let mut answer =
                    crate::call::read_answer(Endpoint::Responses, response.get().as_bytes());
                answer.error = answer.error.or(self.error);
                answer
            }
            None => Answer {
                output: (!self.text.is_empty()).then_some(Json::Parsed(Value::String(self.text))),
                error: self.error,
                ..Answer::default()
            },
        }
    }
}

/// An error and its sources, `: `-separated (reqwest's own text says little on its own).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn error_message(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| error.to_string())
}

enum State {
    Chat(ChatState),
    Responses(ResponsesState),
}

/// What a stream's watcher keeps until the generation ends.
struct Watch {
    call: Call,
    lines: SseLines,
    state: State,
    chunks: u64,
}

impl Watch {
    /// Reads a piece of the body; true when the stream is complete (`[DONE]` or a final event).
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut complete = false;
        let Watch {
            call,
            lines,
            state,
            chunks,
        } = self;
        lines.feed(bytes, |data| {
            if complete {
                return;
            }
            if data == b"[DONE]" {
                complete = true;
                return;
            }
            if *chunks == 0 {
                call.first_chunk(SystemTime::now());
            }
            *chunks += 1;
            match state {
                State::Chat(chat) => chat.event(data),
                State::Responses(responses) => complete = responses.event(data),
            }
        });
        complete
    }

    fn finish(self, warning: Option<String>, broken: Option<String>) {
        let mut answer = match self.state {
            State::Chat(chat) => chat.answer(),
            State::Responses(responses) => responses.answer(),
        };
        if let Some(broken) = broken {
            answer.error = Some(broken);
        }
        self.call.finish(answer, warning);
    }
}

pin_project_lite::pin_project! {
    /// A response body read on the side for its call's generation; the bytes go on untouched.
    pub(crate) struct ObservedBody<S> {
        #[pin]
        inner: S,
        watch: Option<Watch>,
    }

    impl<S> PinnedDrop for ObservedBody<S> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(watch) = this.project().watch.take() {
                let chunks = watch.chunks;
                let note = format!(
                    "dropped before the end, after {chunks} chunk{}",
                    if chunks == 1 { "" } else { "s" }
                );
                watch.finish(Some(note), None);
            }
        }
    }
}

impl<S> ObservedBody<S> {
    pub(crate) fn new(inner: S, call: Call) -> Self {
        let state = match call.endpoint() {
            Endpoint::Responses => State::Responses(ResponsesState::default()),
            Endpoint::Chat | Endpoint::Embeddings => State::Chat(ChatState::default()),
        };
        ObservedBody {
            inner,
            watch: Some(Watch {
                call,
                lines: SseLines::default(),
                state,
                chunks: 0,
            }),
        }
    }
}

impl<S, E> Stream for ObservedBody<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = std::task::ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(bytes)) => {
                if let Some(watch) = this.watch.as_mut() {
                    if watch.feed(bytes) {
                        if let Some(watch) = this.watch.take() {
                            watch.finish(None, None);
                        }
                    }
                }
            }
            Some(Err(error)) => {
                if let Some(watch) = this.watch.take() {
                    watch.finish(None, Some(format!("stream broken: {}", chain(error))));
                }
            }
            None => {
                if let Some(watch) = this.watch.take() {
                    watch.finish(None, None);
                }
            }
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events(pieces: &[&str]) -> Vec<String> {
        let mut lines = SseLines::default();
        let mut seen = Vec::new();
        for piece in pieces {
            lines.feed(piece.as_bytes(), |data| {
                seen.push(String::from_utf8(data.to_vec()).unwrap())
            });
        }
        seen
    }

    #[test]
    fn data_lines_are_found_across_chunk_boundaries() {
        assert_eq!(
            events(&[
                "data: {\"a\"",
                ":1}\r\n\r\n: keep-alive\n",
                "event: x\ndata:[DONE]\n\n"
            ]),
            ["{\"a\":1}", "[DONE]"]
        );
    }

    #[test]
    fn chat_deltas_and_tool_call_deltas_are_merged() {
        let mut chat = ChatState::default();
        for chunk in [
            json!({"model": "m-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"model": "m-1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "lo", "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": ":1}"}}]}}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
        ] {
            chat.event(chunk.to_string().as_bytes());
        }
        let answer = chat.answer();
        assert_eq!(answer.model.as_deref(), Some("m-1"));
        assert_eq!(
            serde_json::to_value(answer.output).unwrap(),
            json!({"role": "assistant", "content": "Hello", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\":1}"}}]})
        );
        assert_eq!(
            answer.usage,
            Some(json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}))
        );
    }
}
