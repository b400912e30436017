//! The fake Langfuse server: a real HTTP/1.1 server on 127.0.0.1 (std only, a thread per
//! connection, keep-alive, `Content-Length` or chunked bodies) that answers like Langfuse v4 does
//! on the routes the SDK uses:
//!
//! - `POST /api/public/otel/v1/traces`: Basic auth with the exact answer texts of the wire
//!   document, `x-langfuse-ingestion-version: 4`, `application/x-protobuf`, optional gzip, an
//!   `ExportTraceServiceRequest` decoded with the official `opentelemetry-proto` messages, valid
//!   ids; `200 {}` on success, `400 {"error": ...}` on a bad export.
//! - `POST /api/public/scores`: Basic auth as above, a JSON body of at most 1 MiB, each score
//!   checked as Langfuse does (name, value and data type, exactly one of `traceId`, `sessionId`,
//!   `datasetRunId`, `observationId` only with `traceId`). It plays either server generation of
//!   the wire document ([`ScoreApi`]): current Langfuse takes an array and answers 202, or 207
//!   with one error per rejected score; Langfuse v4.16 takes one object, answers 200 `{"id"}`, and
//!   refuses an array with a 400 whose validation issue says it expected an object.
//! - `GET /api/public/projects` (Basic auth) and `GET /api/public/health`.
//!
//! Every request is recorded. Faults (a scripted answer, a delay, a dropped connection, a hang)
//! apply to the traces route, and separately to the scores route: first the route's script, one
//! fault per request in order, then its default fault if one is set. Every loop is bounded and
//! the server stops when dropped.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::received::{flatten, links, ReceivedSpan, SpanLink};

pub const TRACES_PATH: &str = "/api/public/otel/v1/traces";
pub const SCORES_PATH: &str = "/api/public/scores";
pub const PROJECTS_PATH: &str = "/api/public/projects";
pub const HEALTH_PATH: &str = "/api/public/health";

pub const NO_AUTHORIZATION_HEADER: &str = "No authorization header";
pub const INVALID_AUTHORIZATION_HEADER: &str = "Invalid authorization header";
pub const INVALID_AUTHORIZATION_HEADER_HOST: &str =
    "Invalid authorization header. Confirm that you've configured the correct host.";
pub const INVALID_CREDENTIALS: &str =
    "Invalid credentials. Confirm that you've configured the correct host.";
pub const BEARER_DENIED: &str = "Access denied - insufficient permissions for this endpoint";

/// The body Langfuse v4.16 answers (with 400) to an array of scores: its zod validation issue.
pub const SINGLE_SCORE_EXPECTED: &str = r#"{"message":"Invalid request data","error":[{"code":"invalid_type","expected":"object","received":"array","path":[],"message":"Expected object, received array"}]}"#;
/// The body current Langfuse answers (with 400) to a single score object.
pub const SCORE_ARRAY_EXPECTED: &str = r#"{"message":"Invalid request data","error":[{"code":"invalid_type","expected":"array","received":"object","path":[],"message":"Expected array, received object"}]}"#;
/// The largest scores body the server reads (Next.js' default body limit).
pub const MAX_SCORES_BODY: usize = 1024 * 1024;
/// What a scores body over [`MAX_SCORES_BODY`] gets, with 413.
pub const SCORES_BODY_TOO_LARGE: &str = "Body exceeded 1mb limit";

pub const PROJECT_ID: &str = "proj-test";
pub const PROJECT_NAME: &str = "Test Project";
pub const SERVER_VERSION: &str = "4.16.0";

const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const MAX_CONNECTIONS: usize = 4096;
const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
/// A connection idle (or a request incomplete) this long is closed.
const MAX_IDLE: Duration = Duration::from_secs(120);
/// The longest a delay or a hang lasts, whatever was asked.
const MAX_STALL: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);
const READ_POLL: Duration = Duration::from_millis(100);

/// What the server does with one traces request instead of (or before) answering normally.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, these extra headers and this body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then answer normally (unless the client has gone meanwhile).
    Delay(Duration),
    /// Close the connection without answering.
    DropConnection,
    /// Never answer; the connection stays open until the server is dropped.
    Hang,
}

impl Fault {
    pub fn respond(status: u16, body: impl Into<String>) -> Self {
        Fault::Respond {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header to a `Respond` fault; other faults are returned unchanged.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Fault::Respond { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// 503 as Langfuse answers during a database outage.
    pub fn service_unavailable() -> Self {
        Self::respond(503, r#"{"message":"Service Unavailable"}"#)
    }

    /// 429 as Langfuse Cloud answers it, with `Retry-After: <seconds>`.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        let body = serde_json::json!({
            "message": "Rate limit exceeded",
            "code": "rate_limited",
            "details": {"limit": 1000, "window": "1m"},
        });
        Self::respond(429, body.to_string())
            .with_header("Retry-After", &retry_after_seconds.to_string())
            .with_header("X-RateLimit-Limit", "1000")
            .with_header("X-RateLimit-Remaining", "0")
    }

    /// 400 with a Langfuse-style `{"error": ...}` body.
    pub fn bad_request(message: &str) -> Self {
        Self::respond(400, serde_json::json!({ "error": message }).to_string())
    }
}

/// Which generation of Langfuse the scores route plays (the wire document, section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreApi {
    /// Current Langfuse: an array of scores; 202, or 207 with per-score errors.
    Batch,
    /// Langfuse v4.16: one score object per request; 200 `{"id"}`.
    Single,
}

/// What the server did with a recorded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not answered yet (a delay is running, or the request is being handled).
    Pending,
    /// Answered with this status.
    Status(u16),
    /// The connection was closed without an answer (a `DropConnection` fault).
    Dropped,
    /// Never answered (a `Hang` fault).
    Hung,
    /// The client closed the connection before the (delayed) answer was ready.
    ClientGone,
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub index: usize,
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// Header names in lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Length of the body as sent (compressed if it was).
    pub body_len: usize,
    /// The raw body starts with the gzip magic bytes.
    pub body_is_gzip: bool,
    /// The export, decoded with the official messages, if the body could be decoded (recorded
    /// even for requests that were then refused or faulted).
    pub decoded: Option<ExportTraceServiceRequest>,
    /// The body parsed as JSON (scores requests), if it was JSON.
    pub json: Option<serde_json::Value>,
    pub arrived: Instant,
    pub answer: Answer,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The status answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self.answer {
            Answer::Status(status) => Some(status),
            _ => None,
        }
    }

    pub fn is_traces(&self) -> bool {
        self.method == "POST" && self.path == TRACES_PATH
    }

    pub fn is_scores(&self) -> bool {
        self.method == "POST" && self.path == SCORES_PATH
    }

    /// The scores the request carried (an array's items, or the one object), whatever the
    /// answer.
    pub fn scores(&self) -> Vec<serde_json::Value> {
        match &self.json {
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(object @ serde_json::Value::Object(_)) => vec![object.clone()],
            _ => Vec::new(),
        }
    }

    /// The ids of the scores the request carried.
    pub fn score_ids(&self) -> Vec<String> {
        self.scores()
            .iter()
            .map(|score| score["id"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// The spans the request carried, whatever the answer.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.decoded
            .as_ref()
            .map(|decoded| flatten(decoded, self.index))
            .unwrap_or_default()
    }

    /// The span ids the request carried, whatever the answer.
    pub fn span_ids(&self) -> Vec<String> {
        self.spans().iter().map(ReceivedSpan::span_id).collect()
    }
}

/// A fake Langfuse server on 127.0.0.1; stops when dropped.
pub struct FakeLangfuse {
    shared: Arc<Shared>,
    address: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    public_key: String,
    secret_key: String,
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

struct State {
    requests: Vec<RecordedRequest>,
    script: VecDeque<Fault>,
    default_fault: Option<Fault>,
    score_api: ScoreApi,
    score_script: VecDeque<Fault>,
    default_score_fault: Option<Fault>,
    /// Every score accepted, in arrival order, as sent.
    scores: Vec<serde_json::Value>,
}

impl Default for State {
    fn default() -> Self {
        State {
            requests: Vec::new(),
            script: VecDeque::new(),
            default_fault: None,
            score_api: ScoreApi::Batch,
            score_script: VecDeque::new(),
            default_score_fault: None,
            scores: Vec::new(),
        }
    }
}

impl FakeLangfuse {
    /// Starts a server on a free port of 127.0.0.1 that accepts exactly these keys.
    pub fn start(public_key: &str, secret_key: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
        let address = listener.local_addr().expect("fake server address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            public_key: public_key.to_owned(),
            secret_key: secret_key.to_owned(),
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            connections: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("fake-langfuse-accept".into())
                .spawn(move || accept_loop(&shared, &listener))
                .expect("spawn the accept thread")
        };
        FakeLangfuse {
            shared,
            address,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn public_key(&self) -> &str {
        &self.shared.public_key
    }

    pub fn secret_key(&self) -> &str {
        &self.shared.secret_key
    }

    /// Appends faults for the next traces requests, one per request, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().script.extend(faults);
    }

    /// The fault applied to every traces request once the script is used up (`None`: answer
    /// normally).
    pub fn set_default_fault(&self, fault: Option<Fault>) {
        self.shared.lock().default_fault = fault;
    }

    /// Plays current Langfuse ([`ScoreApi::Batch`], the default) or Langfuse v4.16
    /// ([`ScoreApi::Single`]) on the scores route.
    pub fn set_score_api(&self, api: ScoreApi) {
        self.shared.lock().score_api = api;
    }

    /// Appends faults for the next scores requests, one per request, in order.
    pub fn script_scores(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().score_script.extend(faults);
    }

    /// The fault applied to every scores request once its script is used up.
    pub fn set_default_score_fault(&self, fault: Option<Fault>) {
        self.shared.lock().default_score_fault = fault;
    }

    /// The `POST /api/public/scores` requests so far, in arrival order.
    pub fn score_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_scores())
            .cloned()
            .collect()
    }

    /// Every score accepted so far (as sent), in arrival order; a score sent twice is here twice.
    pub fn accepted_scores(&self) -> Vec<serde_json::Value> {
        self.shared.lock().scores.clone()
    }

    /// Waits until at least `count` scores were accepted and every scores request so far has
    /// its answer recorded (a score is stored before its request is answered), or `timeout`
    /// passed; returns the accepted scores either way.
    pub fn wait_for_scores(&self, count: usize, timeout: Duration) -> Vec<serde_json::Value> {
        self.wait_until(timeout, |state| {
            state.scores.len() >= count
                && state
                    .requests
                    .iter()
                    .filter(|request| request.is_scores())
                    .all(|request| request.answer != Answer::Pending)
        })
        .scores
        .clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The `POST /api/public/otel/v1/traces` requests so far, in arrival order.
    pub fn trace_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_traces())
            .cloned()
            .collect()
    }

    /// The spans of every traces request answered 200, in arrival order.
    pub fn accepted_spans(&self) -> Vec<ReceivedSpan> {
        accepted(&self.shared.lock())
    }

    /// Name and ids of every span of the traces requests answered 200, in arrival order; cheaper
    /// than [`Self::accepted_spans`] for hundreds of thousands of spans.
    pub fn accepted_links(&self) -> Vec<SpanLink> {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|request| request.is_traces() && request.answer == Answer::Status(200))
            .filter_map(|request| request.decoded.as_ref())
            .flat_map(links)
            .collect()
    }

    /// How many requests (of any route) arrived so far.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Whether some request (of any route) is still waiting for its answer.
    pub fn has_pending_request(&self) -> bool {
        self.shared
            .lock()
            .requests
            .iter()
            .any(|request| request.answer == Answer::Pending)
    }

    /// Whether some traces request is still waiting for its answer (a delay running).
    pub fn has_pending_trace_request(&self) -> bool {
        self.shared
            .lock()
            .requests
            .iter()
            .any(|request| request.is_traces() && request.answer == Answer::Pending)
    }

    /// Waits until at least `count` spans were accepted or `timeout` passed; returns the
    /// accepted spans either way (the caller asserts on the count).
    pub fn wait_for_spans(&self, count: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let state = self.wait_until(timeout, |state| accepted(state).len() >= count);
        accepted(&state)
    }

    /// Waits until at least `count` traces requests arrived or `timeout` passed; returns the
    /// traces requests either way.
    pub fn wait_for_trace_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let state = self.wait_until(timeout, |state| {
            state.requests.iter().filter(|r| r.is_traces()).count() >= count
        });
        state
            .requests
            .iter()
            .filter(|request| request.is_traces())
            .cloned()
            .collect()
    }

    fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&State) -> bool,
    ) -> MutexGuard<'_, State> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            let now = Instant::now();
            if done(&state) || now >= deadline {
                return state;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl Drop for FakeLangfuse {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let connections = std::mem::take(
            &mut *self
                .shared
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for connection in connections {
            let _ = connection.join();
        }
    }
}

fn accepted(state: &State) -> Vec<ReceivedSpan> {
    state
        .requests
        .iter()
        .filter(|request| request.is_traces() && request.answer == Answer::Status(200))
        .flat_map(RecordedRequest::spans)
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut accepted = 0usize;
    while !shared.stopped() && accepted < MAX_CONNECTIONS {
        match listener.accept() {
            Ok((stream, _)) => {
                accepted += 1;
                let worker = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("fake-langfuse-conn".into())
                    .spawn(move || serve_connection(&worker, stream));
                if let Ok(handle) = spawned {
                    let mut connections = shared
                        .connections
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    connections.retain(|handle| !handle.is_finished());
                    connections.push(handle);
                }
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

struct IncomingRequest {
    method: String,
    path: String,
    http10: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl IncomingRequest {
    fn keep_alive(&self) -> bool {
        let connection = header(&self.headers, "connection")
            .unwrap_or("")
            .to_ascii_lowercase();
        if self.http10 {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        }
    }
}

enum Outcome {
    Send {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Drop,
    Hang,
}

impl Outcome {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Outcome::Send {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    fn message(status: u16, message: &str) -> Self {
        Self::json(status, serde_json::json!({ "message": message }))
    }

    fn error(status: u16, error: &str) -> Self {
        Self::json(status, serde_json::json!({ "error": error }))
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    if stream.set_read_timeout(Some(READ_POLL)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut connection = Connection {
        stream,
        buffer: Vec::new(),
        stop: &shared.stop,
    };
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let Some(request) = connection.read_request() else {
            return;
        };
        let keep_alive = request.keep_alive();
        match shared.handle(&request, &connection.stream) {
            Outcome::Send {
                status,
                headers,
                body,
            } => {
                let written =
                    write_response(&mut connection.stream, status, &headers, &body, keep_alive);
                if written.is_err() || !keep_alive {
                    return;
                }
            }
            Outcome::Drop => return,
            Outcome::Hang => {
                shared.stall(MAX_STALL);
                return;
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `duration` (at most `MAX_STALL`), waking early when the server stops.
    fn stall(&self, duration: Duration) {
        let deadline = Instant::now() + duration.min(MAX_STALL);
        while !self.stopped() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            thread::sleep(POLL.min(deadline - now));
        }
    }

    fn record(
        &self,
        request: &IncomingRequest,
        decoded: Option<ExportTraceServiceRequest>,
    ) -> usize {
        let json = (request.path == SCORES_PATH)
            .then(|| serde_json::from_slice(&request.body).ok())
            .flatten();
        let mut state = self.lock();
        let index = state.requests.len();
        state.requests.push(RecordedRequest {
            index,
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            body_len: request.body.len(),
            body_is_gzip: request.body.starts_with(&[0x1f, 0x8b]),
            decoded,
            json,
            arrived: Instant::now(),
            answer: Answer::Pending,
        });
        self.changed.notify_all();
        index
    }

    fn set_answer(&self, index: usize, answer: Answer) {
        let mut state = self.lock();
        if let Some(request) = state.requests.get_mut(index) {
            request.answer = answer;
        }
        self.changed.notify_all();
    }

    /// Records the request and decides the answer. The answer is recorded before it is written,
    /// so a client that saw a 200 always finds its spans among the accepted ones.
    fn handle(&self, request: &IncomingRequest, stream: &TcpStream) -> Outcome {
        let route = (request.method.as_str(), request.path.as_str());
        if route == ("POST", TRACES_PATH) {
            return self.handle_traces(request, stream);
        }
        if route == ("POST", SCORES_PATH) {
            return self.handle_scores(request, stream);
        }
        let index = self.record(request, None);
        let outcome = match route {
            ("GET", PROJECTS_PATH) => match self.check_auth(&request.headers) {
                Err((status, message)) => Outcome::message(status, message),
                Ok(()) => Outcome::json(
                    200,
                    serde_json::json!({
                        "data": [{"id": PROJECT_ID, "name": PROJECT_NAME}]
                    }),
                ),
            },
            ("GET", HEALTH_PATH) => Outcome::json(
                200,
                serde_json::json!({"status": "OK", "version": SERVER_VERSION}),
            ),
            (_, TRACES_PATH | SCORES_PATH | PROJECTS_PATH | HEALTH_PATH) => {
                Outcome::message(405, "Method not allowed")
            }
            _ => Outcome::message(404, "Not found"),
        };
        self.set_answer(index, answer_of(&outcome));
        outcome
    }

    fn handle_traces(&self, request: &IncomingRequest, stream: &TcpStream) -> Outcome {
        let decoded = decode_export(&request.headers, &request.body).ok();
        let index = self.record(request, decoded);
        let fault = {
            let mut state = self.lock();
            let scripted = state.script.pop_front();
            scripted.or_else(|| state.default_fault.clone())
        };
        self.apply_fault(index, fault, stream, || self.answer_traces(request))
    }

    fn handle_scores(&self, request: &IncomingRequest, stream: &TcpStream) -> Outcome {
        let index = self.record(request, None);
        let fault = {
            let mut state = self.lock();
            let scripted = state.score_script.pop_front();
            scripted.or_else(|| state.default_score_fault.clone())
        };
        self.apply_fault(index, fault, stream, || self.answer_scores(request))
    }

    /// Answers the recorded request `index` with `fault`, or normally with `answer`.
    fn apply_fault(
        &self,
        index: usize,
        fault: Option<Fault>,
        stream: &TcpStream,
        answer: impl FnOnce() -> Outcome,
    ) -> Outcome {
        let outcome = match fault {
            Some(Fault::Respond {
                status,
                headers,
                body,
            }) => Outcome::Send {
                status,
                headers,
                body,
            },
            Some(Fault::DropConnection) => Outcome::Drop,
            Some(Fault::Hang) => Outcome::Hang,
            Some(Fault::Delay(delay)) => {
                self.stall(delay);
                if self.stopped() || client_gone(stream) {
                    self.set_answer(index, Answer::ClientGone);
                    return Outcome::Drop;
                }
                answer()
            }
            None => answer(),
        };
        self.set_answer(index, answer_of(&outcome));
        outcome
    }

    /// What Langfuse answers to an export when nothing goes wrong on its side.
    fn answer_traces(&self, request: &IncomingRequest) -> Outcome {
        if let Err((status, message)) = self.check_auth(&request.headers) {
            return Outcome::message(status, message);
        }
        if let Err(error) = self.check_export_headers(&request.headers) {
            return Outcome::error(400, &error);
        }
        let export = match decode_export(&request.headers, &request.body) {
            Ok(export) => export,
            Err(error) => return Outcome::error(400, &error),
        };
        if let Err(error) = check_ids(&export) {
            return Outcome::error(400, &error);
        }
        Outcome::json(200, serde_json::json!({}))
    }

    /// What Langfuse answers to a scores request when nothing goes wrong on its side; accepted
    /// scores are kept before the answer is written.
    fn answer_scores(&self, request: &IncomingRequest) -> Outcome {
        if let Err((status, message)) = self.check_auth(&request.headers) {
            return Outcome::message(status, message);
        }
        if request.body.len() > MAX_SCORES_BODY {
            return Outcome::message(413, SCORES_BODY_TOO_LARGE);
        }
        let media_type = header(&request.headers, "content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media_type != "application/json" {
            return Outcome::message(400, "Invalid request data: expected application/json");
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
            return Outcome::message(400, "Invalid JSON body");
        };
        let api = self.lock().score_api;
        match (api, body) {
            (ScoreApi::Batch, serde_json::Value::Array(items)) => {
                let mut errors = Vec::new();
                let mut accepted = Vec::new();
                for (position, item) in items.into_iter().enumerate() {
                    match check_score(&item) {
                        Ok(()) => accepted.push(item),
                        Err(message) => errors.push(serde_json::json!({
                            "message": format!("Score at index {position}: {message}")
                        })),
                    }
                }
                let count = accepted.len();
                self.lock().scores.extend(accepted);
                if errors.is_empty() {
                    Outcome::json(202, serde_json::json!({"message": "Accepted"}))
                } else {
                    Outcome::json(
                        207,
                        serde_json::json!({
                            "accepted": count,
                            "rejected": errors.len(),
                            "errors": errors,
                        }),
                    )
                }
            }
            (ScoreApi::Batch, _) => Outcome::Send {
                status: 400,
                headers: Vec::new(),
                body: SCORE_ARRAY_EXPECTED.to_owned(),
            },
            (ScoreApi::Single, item @ serde_json::Value::Object(_)) => match check_score(&item) {
                Ok(()) => {
                    let id = item["id"].as_str().unwrap_or("server-chosen-id").to_owned();
                    self.lock().scores.push(item);
                    Outcome::json(200, serde_json::json!({ "id": id }))
                }
                Err(message) => Outcome::json(
                    400,
                    serde_json::json!({
                        "message": "Invalid request data",
                        "error": [{"code": "custom", "path": [], "message": message}],
                    }),
                ),
            },
            (ScoreApi::Single, _) => Outcome::Send {
                status: 400,
                headers: Vec::new(),
                body: SINGLE_SCORE_EXPECTED.to_owned(),
            },
        }
    }

    /// The auth answers of the wire document, in the server's order.
    fn check_auth(&self, headers: &[(String, String)]) -> Result<(), (u16, &'static str)> {
        let Some(value) = header(headers, "authorization") else {
            return Err((401, NO_AUTHORIZATION_HEADER));
        };
        if value.starts_with("Bearer ") {
            return Err((403, BEARER_DENIED));
        }
        let Some(encoded) = value.strip_prefix("Basic ") else {
            return Err((401, INVALID_AUTHORIZATION_HEADER));
        };
        let credentials = super::base64_decode(encoded.trim())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default();
        let (user, password) = credentials.split_once(':').unwrap_or((&credentials, ""));
        if user.is_empty() || password.is_empty() {
            return Err((401, INVALID_AUTHORIZATION_HEADER_HOST));
        }
        if user != self.public_key || password != self.secret_key {
            return Err((401, INVALID_CREDENTIALS));
        }
        Ok(())
    }

    fn check_export_headers(&self, headers: &[(String, String)]) -> Result<(), String> {
        match header(headers, "x-langfuse-ingestion-version").map(str::trim) {
            Some("4") => {}
            Some(other) => {
                return Err(format!(
                    "Unsupported x-langfuse-ingestion-version {other:?}: expected \"4\""
                ))
            }
            None => {
                return Err("Missing header x-langfuse-ingestion-version: expected \"4\"".into())
            }
        }
        let content_type = header(headers, "content-type").unwrap_or("");
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media_type != "application/x-protobuf" {
            return Err(format!(
                "Unsupported content-type {content_type:?}: expected \"application/x-protobuf\""
            ));
        }
        // Langfuse reads x-langfuse-sdk-name and x-langfuse-sdk-version when they are there and
        // needs neither: an OpenTelemetry Collector forwarding to Langfuse sends only the headers
        // configured in its exporter.
        match header(headers, "x-langfuse-public-key") {
            Some(key) if key != self.public_key => Err(format!(
                "Header x-langfuse-public-key {key:?} does not match the authorization public key"
            )),
            _ => Ok(()),
        }
    }
}

/// The checks Langfuse makes on one score object (the wire document, section 4).
fn check_score(score: &serde_json::Value) -> Result<(), String> {
    let Some(object) = score.as_object() else {
        return Err("Expected object".into());
    };
    let text = |key: &str| object.get(key).and_then(|value| value.as_str());
    match text("name") {
        Some(name) if !name.is_empty() => {}
        _ => return Err("name: Required, a non-empty string".into()),
    }
    let value = object.get("value").ok_or("value: Required")?;
    let data_type = text("dataType").unwrap_or(if value.is_string() {
        "CATEGORICAL"
    } else {
        "NUMERIC"
    });
    match data_type {
        "NUMERIC" if value.is_number() => {}
        "BOOLEAN" if value.as_f64() == Some(0.0) || value.as_f64() == Some(1.0) => {}
        "CATEGORICAL" if value.is_string() => {}
        "NUMERIC" | "BOOLEAN" | "CATEGORICAL" => {
            return Err(format!("value {value} does not fit data type {data_type}"))
        }
        other => return Err(format!("dataType: invalid value {other:?}")),
    }
    for key in [
        "id",
        "traceId",
        "observationId",
        "sessionId",
        "datasetRunId",
        "comment",
    ] {
        if let Some(value) = object.get(key) {
            if value.as_str().is_none_or(str::is_empty) {
                return Err(format!("{key}: Expected a non-empty string"));
            }
        }
    }
    let targets = ["traceId", "sessionId", "datasetRunId"]
        .iter()
        .filter(|key| object.contains_key(**key))
        .count();
    if targets != 1 {
        return Err("Exactly one of traceId, sessionId or datasetRunId must be provided".into());
    }
    if object.contains_key("observationId") && !object.contains_key("traceId") {
        return Err("observationId requires traceId".into());
    }
    if let Some(metadata) = object.get("metadata") {
        if !metadata.is_object() {
            return Err("metadata: Expected object".into());
        }
    }
    if let Some(environment) = object.get("environment") {
        let valid = environment.as_str().is_some_and(|name| {
            !name.is_empty()
                && name.len() <= 40
                && !name.starts_with("langfuse")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
        if !valid {
            return Err(format!("environment: invalid value {environment}"));
        }
    }
    Ok(())
}

fn answer_of(outcome: &Outcome) -> Answer {
    match outcome {
        Outcome::Send { status, .. } => Answer::Status(*status),
        Outcome::Drop => Answer::Dropped,
        Outcome::Hang => Answer::Hung,
    }
}

/// Gunzips (when `content-encoding: gzip`) and decodes with the official OTLP messages.
fn decode_export(
    headers: &[(String, String)],
    body: &[u8],
) -> Result<ExportTraceServiceRequest, String> {
    let encoding = header(headers, "content-encoding")
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let plain = match encoding.as_str() {
        "" | "identity" => body.to_vec(),
        "gzip" => gunzip(body)?,
        other => return Err(format!("Unsupported content-encoding {other:?}")),
    };
    ExportTraceServiceRequest::decode(plain.as_slice())
        .map_err(|error| format!("Failed to parse ExportTraceServiceRequest: {error}"))
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|error| format!("Invalid gzip body: {error}"))?;
    if plain.len() > MAX_BODY_BYTES {
        return Err("Decompressed body too large".into());
    }
    Ok(plain)
}

fn check_ids(export: &ExportTraceServiceRequest) -> Result<(), String> {
    for resource_spans in &export.resource_spans {
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                check_id("trace id", &span.trace_id, 16)?;
                check_id("span id", &span.span_id, 8)?;
                if !span.parent_span_id.is_empty() {
                    check_id("parent span id", &span.parent_span_id, 8)?;
                }
            }
        }
    }
    Ok(())
}

fn check_id(what: &str, id: &[u8], length: usize) -> Result<(), String> {
    if id.len() != length {
        return Err(format!(
            "Invalid {what}: {} bytes, expected {length}",
            id.len()
        ));
    }
    if id.iter().all(|&byte| byte == 0) {
        return Err(format!("Invalid {what}: all zero"));
    }
    Ok(())
}

/// True when the peer has closed its side (a read would return end of file).
fn client_gone(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut probe = [0u8; 1];
    let gone = match stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    gone
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        207 => "Multi-Status",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

struct Connection<'a> {
    stream: TcpStream,
    buffer: Vec<u8>,
    stop: &'a AtomicBool,
}

impl Connection<'_> {
    /// Reads more bytes into the buffer; false on end of file, error, idleness or stop.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let started = Instant::now();
        while started.elapsed() < MAX_IDLE {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(read) => {
                    self.buffer.extend_from_slice(&chunk[..read]);
                    return true;
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Removes and returns the next `\r\n`-terminated line (without the terminator).
    fn line(&mut self, limit: usize) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n") {
                let line = self.buffer[..end].to_vec();
                self.buffer.drain(..end + 2);
                return Some(line);
            }
            if self.buffer.len() > limit || !self.fill() {
                return None;
            }
        }
    }

    fn take(&mut self, length: usize) -> Option<Vec<u8>> {
        while self.buffer.len() < length {
            if !self.fill() {
                return None;
            }
        }
        Some(self.buffer.drain(..length).collect())
    }

    fn read_request(&mut self) -> Option<IncomingRequest> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if self.buffer.len() > MAX_HEAD_BYTES || !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8(self.buffer[..head_end].to_vec()).ok()?;
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next()?.split_whitespace();
        let method = request_line.next()?.to_owned();
        let target = request_line.next()?;
        let version = request_line.next()?;
        let path = target.split('?').next().unwrap_or(target).to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            self.read_chunked()?
        } else {
            let length: usize = match header(&headers, "content-length") {
                Some(value) => value.trim().parse().ok()?,
                None => 0,
            };
            if length > MAX_BODY_BYTES {
                return None;
            }
            self.take(length)?
        };
        Some(IncomingRequest {
            method,
            path,
            http10: version == "HTTP/1.0",
            headers,
            body,
        })
    }

    fn read_chunked(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = String::from_utf8(self.line(MAX_HEAD_BYTES)?).ok()?;
            let size_text = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                for _ in 0..1024 {
                    if self.line(MAX_HEAD_BYTES)?.is_empty() {
                        return Some(body);
                    }
                }
                return None;
            }
            if body.len() + size > MAX_BODY_BYTES {
                return None;
            }
            body.extend(self.take(size)?);
            if !self.line(2)?.is_empty() {
                return None;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
