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
//! - Prompt management ([`super::prompts`], Basic auth as above), on a store of prompt versions
//!   per name that tests seed with [`FakeLangfuse::put_prompt`]:
//!   - `GET /api/public/v2/prompts/{name}?label=…&version=…`: the name is one percent-encoded
//!     path segment; the `production` label by default; 400 for both `label` and `version`; 404
//!     `Prompt not found: '<name>' with label '<label>'` (or `with version <n>`).
//!   - `POST /api/public/v2/prompts`: a `CreatePromptRequest`; creates the next version.
//!   - `PATCH /api/public/v2/prompts/{name}/versions/{version}`: `{"newLabels": [...]}`.
//!
//!   `latest` always labels the newest version.
//! - Datasets ([`super::datasets`], Basic auth as above), on a store of datasets and items that
//!   tests seed with [`FakeLangfuse::put_dataset`] and [`FakeLangfuse::put_dataset_item`]:
//!   - `GET /api/public/v2/datasets/{datasetName}`: the name is one percent-encoded path
//!     segment; 404 `Dataset not found`.
//!   - `POST /api/public/v2/datasets`: a `CreateDatasetRequest`; creates, or updates the dataset
//!     of that name. `GET /api/public/v2/datasets` lists them.
//!   - `GET /api/public/dataset-items?datasetName=…&page=…&limit=…`: a page of items, newest
//!     first, ARCHIVED ones included unless [`FakeLangfuse::set_dataset_items_active_only`];
//!     `limit` 50 by default, 400 above 100; 404 `Dataset not found`.
//!   - `POST /api/public/dataset-items`: a `CreateDatasetItemRequest`; upserts by `id`.
//! - Media uploads ([`super::media`]), the three steps on this one server, on a store of media
//!   records (one per media id) that tests read with [`FakeLangfuse::media_records`]:
//!   - `POST /api/public/media` (Basic auth as above): a `GetMediaUploadUrlRequest`; 200
//!     `{"uploadUrl": "<base URL>/upload/<mediaId>?signature=…", "mediaId"}`, `uploadUrl` null
//!     when that content was uploaded already; 400 with the zod issues of a bad body.
//!   - `PUT /upload/<mediaId>?…` (no auth: a presigned URL), as S3 answers it: `Content-Type`,
//!     `x-amz-checksum-sha256`, the body's length and SHA-256 checked against the registration;
//!     200, or 400 (403 for a URL not issued) with an XML `<Error>` naming the failed check. Up
//!     to 64 MiB, kept without a copy.
//!   - `PATCH /api/public/media/{mediaId}` (Basic auth): a `PatchMediaBody`; 204; 404
//!     `Media asset <mediaId> not found in project proj-test`.
//!   - `GET /api/public/media/{mediaId}` (Basic auth): the `GetMediaResponse`; 404 as Langfuse
//!     answers before a successful upload was reported.
//!
//! Every request is recorded (prompt, dataset and media API requests with their query and body;
//! uploads with their headers and body length only). Faults (a scripted answer, a delay, a
//! dropped connection, a hang) apply to the traces route, separately to the scores route,
//! separately to the prompt routes, separately to the dataset routes, separately to the media API
//! routes and separately to the upload route: first the route's script, one fault per request in
//! order, then its default fault if one is set. Every loop is bounded and the server stops when
//! dropped.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::datasets::{self, DatasetRoute, DatasetStore};
use super::media::{self, MediaRoute, MediaStore};
use super::prompts::{self, PromptRoute, PromptStore};
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
/// The largest body read (a larger one closes the connection): media uploads reach 40 MB.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const MAX_CONNECTIONS: usize = 4096;
const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
/// A connection idle (or a request incomplete) this long is closed.
const MAX_IDLE: Duration = Duration::from_secs(120);
/// The longest a delay or a hang lasts, whatever was asked.
const MAX_STALL: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);
const READ_POLL: Duration = Duration::from_millis(100);

/// What the server does with one request (traces, scores, prompts, datasets, media API or media
/// uploads, each with its own script and default) instead of (or before) answering normally.
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

    /// An answer as S3 gives it to an upload: this status, `Content-Type: application/xml` and
    /// `<Error><Code>code</Code><Message>message</Message></Error>` (e.g. 403 `AccessDenied`
    /// `Request has expired`, 500 `InternalError`, 503 `SlowDown`).
    pub fn s3_error(status: u16, code: &str, message: &str) -> Self {
        Self::respond(status, media::s3_error_xml(code, message))
            .with_header("content-type", "application/xml")
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
    /// The path without the query string, as sent (still percent-encoded).
    pub path: String,
    /// The request target as sent: the path and, after `?`, the query string.
    pub target: String,
    /// Header names in lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Length of the body as sent (compressed if it was).
    pub body_len: usize,
    /// The raw body starts with the gzip magic bytes.
    pub body_is_gzip: bool,
    /// The export, decoded with the official messages, if the body could be decoded (recorded
    /// even for requests that were then refused or faulted).
    pub decoded: Option<ExportTraceServiceRequest>,
    /// The body parsed as JSON (scores, prompt, dataset and media API requests), if it was JSON.
    pub json: Option<serde_json::Value>,
    /// The body as text (lossy UTF-8), kept for prompt, dataset and media API requests only (an
    /// upload's body is not kept here: see [`FakeLangfuse::uploaded_bytes`]).
    pub body: Option<String>,
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

    /// Any request on `/api/public/v2/prompts` or below it, whatever the method.
    pub fn is_prompt(&self) -> bool {
        prompts::is_prompt_path(&self.path)
    }

    /// The query string (without `?`; empty when there is none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// The first value of a query parameter, decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        prompts::query_param(self.query(), key)
    }

    /// For a prompt request: the prompt name, decoded from the path (fetch, label update) or
    /// taken from the JSON body (create).
    pub fn prompt_name(&self) -> Option<String> {
        match prompts::route(&self.method, &self.path) {
            PromptRoute::Get { name } | PromptRoute::UpdateLabels { name, .. } => Some(name),
            PromptRoute::Create => self
                .json
                .as_ref()
                .and_then(|json| json["name"].as_str())
                .map(str::to_owned),
            _ => None,
        }
    }

    /// A `GET` of the prompt `name` (any label or version).
    pub fn is_prompt_fetch_of(&self, name: &str) -> bool {
        matches!(
            prompts::route(&self.method, &self.path),
            PromptRoute::Get { name: fetched } if fetched == name
        )
    }

    /// Any request on `/api/public/v2/datasets` or `/api/public/dataset-items` or below them,
    /// whatever the method.
    pub fn is_dataset(&self) -> bool {
        datasets::is_dataset_path(&self.path)
    }

    /// For a dataset request: the dataset name, decoded from the path (fetch), taken from the
    /// query (item list, `datasetName`) or from the JSON body (create: `name`; item create:
    /// `datasetName`).
    pub fn dataset_name(&self) -> Option<String> {
        let from_body = |key: &str| {
            self.json
                .as_ref()
                .and_then(|json| json[key].as_str())
                .map(str::to_owned)
        };
        match datasets::route(&self.method, &self.path) {
            DatasetRoute::Get { name } => Some(name),
            DatasetRoute::Create => from_body("name"),
            DatasetRoute::ListItems => self.query_param("datasetName"),
            DatasetRoute::CreateItem => from_body("datasetName"),
            _ => None,
        }
    }

    /// A `GET /api/public/dataset-items` (one page) for the dataset `name`.
    pub fn is_dataset_items_fetch_of(&self, name: &str) -> bool {
        datasets::route(&self.method, &self.path) == DatasetRoute::ListItems
            && self.query_param("datasetName").as_deref() == Some(name)
    }

    /// Any request on `/api/public/media` or below it (registrations, PATCHes, GETs, and any
    /// other method or sub-path).
    pub fn is_media(&self) -> bool {
        media::is_media_path(&self.path)
    }

    /// Any request on `/upload` or below it (the presigned upload URLs), whatever the method.
    pub fn is_media_upload(&self) -> bool {
        media::is_upload_path(&self.path)
    }

    /// A `POST /api/public/media`.
    pub fn is_media_registration(&self) -> bool {
        self.method == "POST" && self.path == media::MEDIA_PATH
    }

    /// For a media request: the media id, from the path (PATCH, GET, upload) or derived from the
    /// body's `sha256Hash` (registration).
    pub fn media_id(&self) -> Option<String> {
        if let Some(id) = media::upload_media_id(&self.path) {
            return Some(id.to_owned());
        }
        match media::route(&self.method, &self.path) {
            MediaRoute::Get { media_id } | MediaRoute::Patch { media_id } => Some(media_id),
            MediaRoute::Register => self
                .json
                .as_ref()
                .and_then(|json| json["sha256Hash"].as_str())
                .map(media::media_id_of),
            _ => None,
        }
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
    prompt_script: VecDeque<Fault>,
    default_prompt_fault: Option<Fault>,
    prompts: PromptStore,
    dataset_script: VecDeque<Fault>,
    default_dataset_fault: Option<Fault>,
    datasets: DatasetStore,
    media_script: VecDeque<Fault>,
    default_media_fault: Option<Fault>,
    media_upload_script: VecDeque<Fault>,
    default_media_upload_fault: Option<Fault>,
    media: MediaStore,
    /// Uploads are held until this many are in flight at once (then all go on, and the gate
    /// stays open); see [`FakeLangfuse::hold_media_uploads_until`].
    upload_gate: Option<usize>,
    uploads_in_flight: usize,
    peak_uploads_in_flight: usize,
}

impl State {
    /// The state of a fresh server at `base_url`.
    fn new(base_url: &str) -> Self {
        State {
            requests: Vec::new(),
            script: VecDeque::new(),
            default_fault: None,
            score_api: ScoreApi::Batch,
            score_script: VecDeque::new(),
            default_score_fault: None,
            scores: Vec::new(),
            prompt_script: VecDeque::new(),
            default_prompt_fault: None,
            prompts: PromptStore::new(PROJECT_ID),
            dataset_script: VecDeque::new(),
            default_dataset_fault: None,
            datasets: DatasetStore::new(PROJECT_ID),
            media_script: VecDeque::new(),
            default_media_fault: None,
            media_upload_script: VecDeque::new(),
            default_media_upload_fault: None,
            media: MediaStore::new(PROJECT_ID, base_url),
            upload_gate: None,
            uploads_in_flight: 0,
            peak_uploads_in_flight: 0,
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
            state: Mutex::new(State::new(&format!("http://{address}"))),
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

    /// Seeds the prompt store with one version: a full `Prompt` JSON object (`name`, `version`,
    /// `prompt` a string or an array of messages; optional `type`, `labels`, `tags`, `config`,
    /// `commitMessage`, ...), replacing that name and version if stored. Its labels move away
    /// from the other versions of the name; `latest` is put on the newest version. Panics without
    /// `name`, `version` or `prompt`. See [`PromptStore::put`].
    pub fn put_prompt(&self, prompt: serde_json::Value) {
        self.shared.lock().prompts.put(prompt);
    }

    /// Every stored version of the prompt `name`, oldest first (after creates and label updates).
    pub fn prompt_versions(&self, name: &str) -> Vec<serde_json::Value> {
        self.shared.lock().prompts.versions(name)
    }

    /// The stored version `version` of the prompt `name`.
    pub fn stored_prompt(&self, name: &str, version: i64) -> Option<serde_json::Value> {
        self.shared.lock().prompts.version(name, version)
    }

    /// The status a successful `POST /api/public/v2/prompts` answers: 200 (the default, as the
    /// OpenAPI document says) or 201 (what Langfuse's handler answers).
    pub fn set_prompt_create_status(&self, status: u16) {
        self.shared.lock().prompts.create_status = status;
    }

    /// Appends faults for the next prompt requests (any method), one per request, in order.
    pub fn script_prompts(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().prompt_script.extend(faults);
    }

    /// The fault applied to every prompt request once its script is used up (`None`: answer
    /// normally).
    pub fn set_default_prompt_fault(&self, fault: Option<Fault>) {
        self.shared.lock().default_prompt_fault = fault;
    }

    /// The requests on `/api/public/v2/prompts` and below (fetches, creates, label updates, and
    /// any other method or sub-path), in arrival order, with `target` (path and query) and
    /// `body`.
    pub fn prompt_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_prompt())
            .cloned()
            .collect()
    }

    /// How many prompt requests arrived so far (whatever their answer).
    pub fn prompt_request_count(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_prompt())
            .count()
    }

    /// How many `GET /api/public/v2/prompts/{name}` arrived so far for the prompt `name`
    /// (decoded), any label or version, whatever their answer.
    pub fn prompt_fetch_count(&self, name: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_prompt_fetch_of(name))
            .count()
    }

    /// Waits until at least `count` prompt requests arrived and all of them have their answer
    /// recorded, or `timeout` passed; returns the prompt requests either way.
    pub fn wait_for_prompt_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Vec<RecordedRequest> {
        let state = self.wait_until(timeout, |state| {
            let mut prompt_requests = state.requests.iter().filter(|r| r.is_prompt());
            prompt_requests.clone().count() >= count
                && prompt_requests.all(|request| request.answer != Answer::Pending)
        });
        state
            .requests
            .iter()
            .filter(|request| request.is_prompt())
            .cloned()
            .collect()
    }

    /// Seeds the dataset store with one dataset: a `Dataset` JSON object (`name`; optional `id`,
    /// `description`, `metadata`, ...), replacing the dataset of that name if stored (its `id` is
    /// kept unless one is given). Panics without `name`. See [`DatasetStore::put_dataset`].
    pub fn put_dataset(&self, dataset: serde_json::Value) {
        self.shared.lock().datasets.put_dataset(dataset);
    }

    /// Seeds the dataset store with one item: a `DatasetItem` JSON object (`datasetName` of a
    /// stored dataset; optional `id`, `status` (ACTIVE by default), `input`, `expectedOutput`,
    /// `metadata`, `createdAt`, ...), replacing the item of that `id` if stored. Panics without
    /// `datasetName` or when no dataset has that name. See [`DatasetStore::put_item`].
    pub fn put_dataset_item(&self, item: serde_json::Value) {
        self.shared.lock().datasets.put_item(item);
    }

    /// The stored dataset `name` (after creates and updates).
    pub fn stored_dataset(&self, name: &str) -> Option<serde_json::Value> {
        self.shared.lock().datasets.dataset(name)
    }

    /// Every stored dataset, newest first (the order of `GET /api/public/v2/datasets`).
    pub fn datasets(&self) -> Vec<serde_json::Value> {
        self.shared.lock().datasets.datasets()
    }

    /// Every stored item of the dataset `name`, ARCHIVED ones included, newest first (the order
    /// of `GET /api/public/dataset-items`).
    pub fn dataset_items(&self, name: &str) -> Vec<serde_json::Value> {
        self.shared.lock().datasets.items(name)
    }

    /// Whether `GET /api/public/dataset-items` leaves ARCHIVED items out, as Langfuse does since
    /// April 2026 (every v4); false (the default) lists them too, as older Langfuse does.
    pub fn set_dataset_items_active_only(&self, active_only: bool) {
        self.shared.lock().datasets.items_active_only = active_only;
    }

    /// Appends faults for the next dataset requests (any method, datasets or items), one per
    /// request, in order.
    pub fn script_datasets(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().dataset_script.extend(faults);
    }

    /// The fault applied to every dataset request once its script is used up (`None`: answer
    /// normally).
    pub fn set_default_dataset_fault(&self, fault: Option<Fault>) {
        self.shared.lock().default_dataset_fault = fault;
    }

    /// The requests on `/api/public/v2/datasets`, `/api/public/dataset-items` and below them
    /// (fetches, lists, creates, and any other method or sub-path), in arrival order, with
    /// `target` (path and query) and `body`.
    pub fn dataset_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_dataset())
            .cloned()
            .collect()
    }

    /// How many dataset requests arrived so far (whatever their answer).
    pub fn dataset_request_count(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_dataset())
            .count()
    }

    /// How many `GET /api/public/dataset-items` (pages) arrived so far for the dataset `name`
    /// (`datasetName`, decoded), whatever their answer.
    pub fn dataset_items_fetch_count(&self, name: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_dataset_items_fetch_of(name))
            .count()
    }

    /// Waits until at least `count` dataset requests arrived and all of them have their answer
    /// recorded, or `timeout` passed; returns the dataset requests either way.
    pub fn wait_for_dataset_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Vec<RecordedRequest> {
        let state = self.wait_until(timeout, |state| {
            let mut dataset_requests = state.requests.iter().filter(|r| r.is_dataset());
            dataset_requests.clone().count() >= count
                && dataset_requests.all(|request| request.answer != Answer::Pending)
        });
        state
            .requests
            .iter()
            .filter(|request| request.is_dataset())
            .cloned()
            .collect()
    }

    /// Appends faults for the next media API requests (`/api/public/media` and below: any
    /// method), one per request, in order. Uploads have their own: [`Self::script_media_uploads`].
    pub fn script_media(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().media_script.extend(faults);
    }

    /// The fault applied to every media API request once its script is used up (`None`: answer
    /// normally).
    pub fn set_default_media_fault(&self, fault: Option<Fault>) {
        self.shared.lock().default_media_fault = fault;
    }

    /// Appends faults for the next uploads (`/upload` and below: any method), one per request,
    /// in order; [`Fault::s3_error`] answers as S3 does.
    pub fn script_media_uploads(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().media_upload_script.extend(faults);
    }

    /// The fault applied to every upload once its script is used up (`None`: answer normally).
    pub fn set_default_media_upload_fault(&self, fault: Option<Fault>) {
        self.shared.lock().default_media_upload_fault = fault;
    }

    /// Holds each upload (`/upload/…`, before its answer) until `count` uploads are in flight
    /// at once; then they all go on and later ones pass. A client that never has that many at
    /// once sees each upload held for 30 seconds. [`Self::peak_media_uploads_in_flight`] tells
    /// how many were in flight at most.
    pub fn hold_media_uploads_until(&self, count: usize) {
        self.shared.lock().upload_gate = Some(count);
    }

    /// The most uploads that were in flight at once (received and not yet answered).
    pub fn peak_media_uploads_in_flight(&self) -> usize {
        self.shared.lock().peak_uploads_in_flight
    }

    /// The status a successful `POST /api/public/media` answers: 200 (the default, as the
    /// OpenAPI document says) or 201 (what Langfuse's handler answers).
    pub fn set_media_upload_url_status(&self, status: u16) {
        self.shared.lock().media.upload_url_status = status;
    }

    /// Seeds a media record of `bytes` as uploaded and reported (PATCH status 200), so that a
    /// registration of the same content gets `uploadUrl: null`; returns its media id. See
    /// [`MediaStore::put_uploaded`].
    pub fn put_uploaded_media(&self, content_type: &str, bytes: Vec<u8>) -> String {
        self.shared.lock().media.put_uploaded(content_type, bytes)
    }

    /// Every media record, in the order first registered: `mediaId`, `sha256Hash`,
    /// `contentType`, `contentLength`, `registrations` (distinct `{traceId, observationId,
    /// field}`), `uploadUrlCount`, `uploadCount` (successful uploads), `uploadedLength` (or null),
    /// `patch` (the last PATCH body accepted, as sent, or null) and `patches`. See
    /// [`MediaStore::records`].
    pub fn media_records(&self) -> Vec<serde_json::Value> {
        self.shared.lock().media.records()
    }

    /// The media record `media_id` (see [`Self::media_records`]).
    pub fn media_record(&self, media_id: &str) -> Option<serde_json::Value> {
        self.shared.lock().media.record(media_id)
    }

    /// The body of the last successful upload of `media_id`.
    pub fn uploaded_bytes(&self, media_id: &str) -> Option<Vec<u8>> {
        self.shared.lock().media.uploaded_bytes(media_id)
    }

    /// The media API requests and the uploads, in arrival order, with `target` and headers; API
    /// requests with `body` and `json`, uploads with `body_len` only.
    pub fn media_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_media() || request.is_media_upload())
            .cloned()
            .collect()
    }

    /// How many `PUT`s arrived on upload URLs so far (whatever their answer).
    pub fn media_upload_count(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_media_upload() && request.method == "PUT")
            .count()
    }

    /// How many `POST /api/public/media` arrived so far (whatever their answer).
    pub fn media_registration_count(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|request| request.is_media_registration())
            .count()
    }

    /// Waits until at least `count` media requests (API and uploads) arrived and all of them
    /// have their answer recorded, or `timeout` passed; returns the media requests either way.
    pub fn wait_for_media_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let is_media = |request: &&RecordedRequest| request.is_media() || request.is_media_upload();
        let state = self.wait_until(timeout, |state| {
            let mut media_requests = state.requests.iter().filter(is_media);
            media_requests.clone().count() >= count
                && media_requests.all(|request| request.answer != Answer::Pending)
        });
        state.requests.iter().filter(is_media).cloned().collect()
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
    /// The path and the query, as sent.
    target: String,
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
        let Some(mut request) = connection.read_request() else {
            return;
        };
        let keep_alive = request.keep_alive();
        match shared.handle(&mut request, &connection.stream) {
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
        let keeps_body = prompts::is_prompt_path(&request.path)
            || datasets::is_dataset_path(&request.path)
            || media::is_media_path(&request.path);
        let json = (request.path == SCORES_PATH || keeps_body)
            .then(|| serde_json::from_slice(&request.body).ok())
            .flatten();
        let body = keeps_body.then(|| String::from_utf8_lossy(&request.body).into_owned());
        let mut state = self.lock();
        let index = state.requests.len();
        state.requests.push(RecordedRequest {
            index,
            method: request.method.clone(),
            path: request.path.clone(),
            target: request.target.clone(),
            headers: request.headers.clone(),
            body_len: request.body.len(),
            body_is_gzip: request.body.starts_with(&[0x1f, 0x8b]),
            decoded,
            json,
            body,
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
    /// so a client that saw a 200 always finds its spans among the accepted ones. An accepted
    /// upload's body moves out of `request` into the media store.
    fn handle(&self, request: &mut IncomingRequest, stream: &TcpStream) -> Outcome {
        let route = (request.method.as_str(), request.path.as_str());
        if route == ("POST", TRACES_PATH) {
            return self.handle_traces(request, stream);
        }
        if route == ("POST", SCORES_PATH) {
            return self.handle_scores(request, stream);
        }
        if prompts::is_prompt_path(&request.path) {
            return self.handle_prompts(request, stream);
        }
        if datasets::is_dataset_path(&request.path) {
            return self.handle_datasets(request, stream);
        }
        if media::is_media_path(&request.path) {
            return self.handle_media(request, stream);
        }
        if media::is_upload_path(&request.path) {
            return self.handle_media_upload(request, stream);
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

    fn handle_prompts(&self, request: &IncomingRequest, stream: &TcpStream) -> Outcome {
        let index = self.record(request, None);
        let fault = {
            let mut state = self.lock();
            let scripted = state.prompt_script.pop_front();
            scripted.or_else(|| state.default_prompt_fault.clone())
        };
        self.apply_fault(index, fault, stream, || self.answer_prompts(request))
    }

    fn handle_datasets(&self, request: &IncomingRequest, stream: &TcpStream) -> Outcome {
        let index = self.record(request, None);
        let fault = {
            let mut state = self.lock();
            let scripted = state.dataset_script.pop_front();
            scripted.or_else(|| state.default_dataset_fault.clone())
        };
        self.apply_fault(index, fault, stream, || self.answer_datasets(request))
    }

    fn handle_media(&self, request: &IncomingRequest, stream: &TcpStream) -> Outcome {
        let index = self.record(request, None);
        let fault = {
            let mut state = self.lock();
            let scripted = state.media_script.pop_front();
            scripted.or_else(|| state.default_media_fault.clone())
        };
        self.apply_fault(index, fault, stream, || self.answer_media(request))
    }

    fn handle_media_upload(&self, request: &mut IncomingRequest, stream: &TcpStream) -> Outcome {
        let index = self.record(request, None);
        self.enter_upload();
        let fault = {
            let mut state = self.lock();
            let scripted = state.media_upload_script.pop_front();
            scripted.or_else(|| state.default_media_upload_fault.clone())
        };
        let outcome = self.apply_fault(index, fault, stream, || self.answer_media_upload(request));
        self.lock().uploads_in_flight -= 1;
        outcome
    }

    /// Counts an upload in flight, and holds it at the gate while there is one (at most 30 s).
    fn enter_upload(&self) {
        let mut state = self.lock();
        state.uploads_in_flight += 1;
        state.peak_uploads_in_flight = state.peak_uploads_in_flight.max(state.uploads_in_flight);
        if state
            .upload_gate
            .is_some_and(|count| state.uploads_in_flight >= count)
        {
            state.upload_gate = None;
        }
        self.changed.notify_all();
        let until = Instant::now() + Duration::from_secs(30);
        while state.upload_gate.is_some() && !self.stopped() {
            let now = Instant::now();
            if now >= until {
                return;
            }
            state = self
                .changed
                .wait_timeout(state, POLL.min(until - now))
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
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

    /// What Langfuse answers to a prompt request when nothing goes wrong on its side: the route
    /// (an unknown sub-path or method is answered before authentication, as Next.js does), the
    /// Basic auth of `GET /api/public/projects`, then the prompt store.
    fn answer_prompts(&self, request: &IncomingRequest) -> Outcome {
        let route = prompts::route(&request.method, &request.path);
        if matches!(
            route,
            PromptRoute::Get { .. } | PromptRoute::Create | PromptRoute::UpdateLabels { .. }
        ) {
            if let Err((status, message)) = self.check_auth(&request.headers) {
                return Outcome::message(status, message);
            }
        }
        let query = request
            .target
            .split_once('?')
            .map_or("", |(_, query)| query);
        let (status, body) = self.lock().prompts.answer(
            &route,
            query,
            header(&request.headers, "content-type"),
            &request.body,
        );
        Outcome::json(status, body)
    }

    /// What Langfuse answers to a dataset request when nothing goes wrong on its side: the route
    /// (an unknown sub-path or method is answered before authentication, as Next.js does), the
    /// Basic auth of `GET /api/public/projects`, then the dataset store.
    fn answer_datasets(&self, request: &IncomingRequest) -> Outcome {
        let route = datasets::route(&request.method, &request.path);
        if matches!(
            route,
            DatasetRoute::Get { .. }
                | DatasetRoute::List
                | DatasetRoute::Create
                | DatasetRoute::ListItems
                | DatasetRoute::CreateItem
        ) {
            if let Err((status, message)) = self.check_auth(&request.headers) {
                return Outcome::message(status, message);
            }
        }
        let query = request
            .target
            .split_once('?')
            .map_or("", |(_, query)| query);
        let (status, body) = self.lock().datasets.answer(
            &route,
            query,
            header(&request.headers, "content-type"),
            &request.body,
        );
        Outcome::json(status, body)
    }

    /// What Langfuse answers to a media API request when nothing goes wrong on its side: the
    /// route (an unknown sub-path or method is answered before authentication, as Next.js does),
    /// the Basic auth of `GET /api/public/projects`, then the media store; 204 without a body.
    fn answer_media(&self, request: &IncomingRequest) -> Outcome {
        let route = media::route(&request.method, &request.path);
        if matches!(
            route,
            MediaRoute::Register | MediaRoute::Get { .. } | MediaRoute::Patch { .. }
        ) {
            if let Err((status, message)) = self.check_auth(&request.headers) {
                return Outcome::message(status, message);
            }
        }
        let (status, body) = self.lock().media.answer(
            &route,
            header(&request.headers, "content-type"),
            &request.body,
        );
        if status == 204 {
            return Outcome::Send {
                status,
                headers: Vec::new(),
                body: String::new(),
            };
        }
        Outcome::json(status, body)
    }

    /// What the storage answers to an upload when nothing goes wrong on its side: the URL must
    /// be one issued, then [`media::ExpectedUpload::check`] runs without the lock (it hashes up
    /// to 64 MiB), then the body moves into the store without a copy.
    fn answer_media_upload(&self, request: &mut IncomingRequest) -> Outcome {
        let query = request
            .target
            .split_once('?')
            .map_or("", |(_, query)| query);
        let expected = self
            .lock()
            .media
            .expected_upload(&request.method, &request.path, query);
        let checked = expected.and_then(|expected| {
            expected
                .check(
                    header(&request.headers, "content-type"),
                    header(&request.headers, "x-amz-checksum-sha256"),
                    &request.body,
                )
                .map(|()| expected)
        });
        match checked {
            Ok(expected) => {
                let body = std::mem::take(&mut request.body);
                self.lock().media.store_upload(&expected, body);
                Outcome::Send {
                    status: 200,
                    headers: vec![
                        ("content-type".to_owned(), "application/xml".to_owned()),
                        ("etag".to_owned(), format!("\"{}\"", expected.media_id)),
                        (
                            "x-amz-checksum-sha256".to_owned(),
                            expected.sha256_hash.clone(),
                        ),
                    ],
                    body: String::new(),
                }
            }
            Err(error) => Outcome::Send {
                status: error.status,
                headers: vec![("content-type".to_owned(), "application/xml".to_owned())],
                body: error.xml(),
            },
        }
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
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        207 => "Multi-Status",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
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
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    // A 204 has neither body nor content headers; a `content-type` among `headers` replaces the
    // JSON default.
    if status != 204 {
        if header(headers, "content-type").is_none() {
            head.push_str("content-type: application/json; charset=utf-8\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str(&format!(
        "connection: {}\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    ));
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

    /// The next `length` bytes. The buffer is grown once to hold them and then becomes them:
    /// only the bytes after them (a pipelined request) are copied, never a large body.
    fn take(&mut self, length: usize) -> Option<Vec<u8>> {
        self.buffer
            .reserve(length.saturating_sub(self.buffer.len()));
        while self.buffer.len() < length {
            if !self.fill() {
                return None;
            }
        }
        let rest = self.buffer.split_off(length);
        Some(std::mem::replace(&mut self.buffer, rest))
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
        if header(&headers, "expect")
            .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
        {
            // curl asks before sending a large upload (and waits a second when not answered).
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .ok()?;
        }
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
            target: target.to_owned(),
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
