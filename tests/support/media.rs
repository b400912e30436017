//! Langfuse's media upload protocol, as the fake server plays it: a store of media records and the
//! answers of the three steps the SDKs take (the OpenAPI document, schemas
//! `GetMediaUploadUrlRequest`, `GetMediaUploadUrlResponse`, `PatchMediaBody`, `GetMediaResponse`,
//! `MediaContentType`; Langfuse's `pages/api/public/media/index.ts` and `[mediaId].ts`, the
//! trace-context `GetMediaUploadUrlQuerySchema` with its zod 4 texts), all on the same server:
//!
//! 1. `POST /api/public/media` with `{traceId, observationId?, contentType, contentLength,
//!    sha256Hash, field}`: every zod issue in a 400 ([`INVALID_REQUEST_DATA`]): `contentType` one
//!    of [`CONTENT_TYPES`] ([`invalid_content_type`]), `contentLength` a positive integer,
//!    `sha256Hash` the standard base64 of 32 bytes ([`INVALID_SHA256_HASH`]), `field` one of
//!    [`FIELDS`] ([`INVALID_FIELD`]), `traceId` 32 lowercase hex ([`INVALID_TRACE_ID`]: stricter
//!    than Langfuse, which takes any string); a `contentLength` over [`MAX_CONTENT_LENGTH`]: 400
//!    [`file_too_large`]. The media id is [`media_id_of`] the hash. Content with that hash and
//!    content type whose upload a PATCH reported with `uploadHttpStatus` 200 is not uploaded again
//!    (Langfuse knows no more than what the PATCH said): `{"uploadUrl": null, "mediaId"}`;
//!    otherwise `{"uploadUrl": "<base URL>/upload/<mediaId>?signature=…", "mediaId"}`, a fresh
//!    presigned URL each time. Either way the trace, observation and field are registered on the
//!    record, once each (Langfuse's `ON CONFLICT DO NOTHING`). 200 by default (the OpenAPI
//!    document), see [`MediaStore::upload_url_status`].
//! 2. `PUT /upload/<mediaId>?<query as issued>` (no Basic auth: the URL is presigned), as S3
//!    answers it, with an XML `<Error>` ([`UploadError`]): a query that is not one issued for
//!    that media id: 403 [`SIGNATURE_DOES_NOT_MATCH`]; then, each a 400: `Content-Type` equal to
//!    the registered content type ([`content_type_mismatch`]), `x-amz-checksum-sha256` equal to
//!    the registered hash ([`checksum_header_mismatch`]), the body's length equal to the
//!    registered `contentLength` ([`length_mismatch`]) and its SHA-256 to the hash
//!    ([`body_hash_mismatch`]). 200 with an empty body on success; the body moves into the
//!    record (the last successful upload is kept).
//! 3. `PATCH /api/public/media/{mediaId}` with `{uploadedAt, uploadHttpStatus, uploadHttpError?,
//!    uploadTimeMs?}`: `uploadedAt` an ISO 8601 date-time text ([`parse_iso8601_millis`]; a
//!    number, which Langfuse's `z.coerce.date()` would take, is refused too), `uploadHttpStatus`
//!    a positive integer, `uploadHttpError` a string or null, `uploadTimeMs` a number or null;
//!    every zod issue in a 400, then an unknown media id: 404 [`media_not_found_in_project`];
//!    stored on the record; 204 without a body, as the OpenAPI document says.
//! 4. `GET /api/public/media/{mediaId}`: the `GetMediaResponse` of the record (`uploadedAt` as
//!    `toISOString()` writes it, `url` a download URL on this server that it does not serve,
//!    `urlExpiry` an hour later); 404 [`MEDIA_NOT_FOUND`], [`MEDIA_NOT_YET_UPLOADED`] (no PATCH
//!    yet) or [`MEDIA_UPLOAD_FAILED`] (the PATCH reported another status than 200), as Langfuse
//!    answers.
//!
//! Other methods on those paths: 405; other paths below `/api/public/media`: 404 (the fake does
//! not play the dataset-item context of newer Langfuse: a non-null `datasetId` or
//! `datasetItemId` is a zod issue, expected null). Authentication, faults and request recording
//! are the server's business (`server.rs`); this module sees only authenticated API requests.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::prompts::{iso8601_millis, json_body, percent_decode};
use super::{base64_decode, base64_encode};

/// The upload URL route, and the prefix of the media routes.
pub const MEDIA_PATH: &str = "/api/public/media";
/// The prefix of the presigned upload URLs: `/upload/<mediaId>`.
pub const UPLOAD_PATH: &str = "/upload";
/// The prefix of the download URLs `GET /api/public/media/{mediaId}` answers (not served).
pub const DOWNLOAD_PATH: &str = "/download";

/// The `message` of a 400 whose body failed validation; the zod issues are in `error`.
pub const INVALID_REQUEST_DATA: &str = "Invalid request data";
/// The zod issue of a `sha256Hash` that is not the standard base64 of 32 bytes (path
/// `["sha256Hash"]`; Langfuse checks `/^[A-Za-z0-9+/=]{44}$/` with this text).
pub const INVALID_SHA256_HASH: &str = "Must be a 44 character base64 encoded SHA-256 hash";
/// The zod issue of a `field` that is none of [`FIELDS`] (path `["field"]`).
pub const INVALID_FIELD: &str = "Invalid field. Only supporting input, output, metadata";
/// The issue of a `traceId` that is not 32 lowercase hex characters (path `["traceId"]`); the
/// fake's own check.
pub const INVALID_TRACE_ID: &str = "traceId must be 32 lowercase hexadecimal characters";
/// The zod issue of an `uploadedAt` that is not a date (path `["uploadedAt"]`).
pub const INVALID_DATE: &str = "Invalid input: expected date, received Date";
/// The largest `contentLength` a registration accepts (`LANGFUSE_S3_MEDIA_MAX_CONTENT_LENGTH`'s
/// default).
pub const MAX_CONTENT_LENGTH: u64 = 1_000_000_000;
/// 404 to a `GET` of an unknown media id.
pub const MEDIA_NOT_FOUND: &str = "Media asset not found";
/// 404 to a `GET` of a media record no PATCH reported on yet.
pub const MEDIA_NOT_YET_UPLOADED: &str = "Media not yet uploaded";
/// 404 to a `GET` of a media record whose PATCH reported another status than 200.
pub const MEDIA_UPLOAD_FAILED: &str = "Media upload failed";
/// 400 to a media path whose percent-encoding is broken.
pub const INVALID_PATH_ENCODING: &str = "Invalid percent-encoding in the media path";
/// S3's message with 403 `SignatureDoesNotMatch`: an upload to a URL that was not issued (an
/// unknown media id, a query missing or changed).
pub const SIGNATURE_DOES_NOT_MATCH: &str = "The request signature we calculated does not match the signature you provided. Check your key and signing method.";
/// How long the download URL of `GET /api/public/media/{mediaId}` is valid
/// (`LANGFUSE_S3_MEDIA_DOWNLOAD_URL_EXPIRY_SECONDS`' default).
pub const DOWNLOAD_URL_EXPIRY_SECONDS: u64 = 3600;
/// The fields a media can be registered for.
pub const FIELDS: [&str; 3] = ["input", "output", "metadata"];
/// `MediaContentType` of the OpenAPI document, in its order.
pub const CONTENT_TYPES: [&str; 52] = [
    "image/png",
    "image/jpeg",
    "image/jpg",
    "image/webp",
    "image/gif",
    "image/svg+xml",
    "image/tiff",
    "image/bmp",
    "image/avif",
    "image/heic",
    "audio/mpeg",
    "audio/mp3",
    "audio/wav",
    "audio/ogg",
    "audio/oga",
    "audio/aac",
    "audio/mp4",
    "audio/flac",
    "audio/opus",
    "audio/webm",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/mpeg",
    "video/quicktime",
    "video/x-msvideo",
    "video/x-matroska",
    "text/plain",
    "text/html",
    "text/css",
    "text/csv",
    "text/markdown",
    "text/x-python",
    "application/javascript",
    "text/x-typescript",
    "application/x-yaml",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
    "application/json",
    "application/xml",
    "application/octet-stream",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/rtf",
    "application/x-ndjson",
    "application/vnd.apache.parquet",
    "application/gzip",
    "application/x-tar",
    "application/x-7z-compressed",
];

/// The zod issue of a `contentType` that is none of [`CONTENT_TYPES`] (path `["contentType"]`):
/// `Invalid content type. Only supporting image/png, image/jpeg, …` (all of them, `, `-joined).
pub fn invalid_content_type() -> String {
    format!(
        "Invalid content type. Only supporting {}",
        CONTENT_TYPES.join(", ")
    )
}

/// 400 (an `InvalidRequestError`) to a `contentLength` over [`MAX_CONTENT_LENGTH`]:
/// `File size must be less than 1000000000 bytes`.
pub fn file_too_large() -> String {
    format!("File size must be less than {MAX_CONTENT_LENGTH} bytes")
}

/// 404 to a PATCH of an unknown media id: `Media asset <mediaId> not found in project <projectId>`.
pub fn media_not_found_in_project(media_id: &str, project_id: &str) -> String {
    format!("Media asset {media_id} not found in project {project_id}")
}

/// The upload's 400 `InvalidRequest` for its `Content-Type`: `Content-Type header "<sent>" does
/// not match the registered contentType "<registered>"`, or `Content-Type header missing; the
/// registered contentType is "<registered>"`.
pub fn content_type_mismatch(sent: Option<&str>, registered: &str) -> String {
    header_mismatch("Content-Type", sent, "contentType", registered)
}

/// The upload's 400 `BadDigest` for its `x-amz-checksum-sha256`: `x-amz-checksum-sha256 header
/// "<sent>" does not match the registered sha256Hash "<registered>"`, or `x-amz-checksum-sha256
/// header missing; the registered sha256Hash is "<registered>"`.
pub fn checksum_header_mismatch(sent: Option<&str>, registered: &str) -> String {
    header_mismatch("x-amz-checksum-sha256", sent, "sha256Hash", registered)
}

/// The upload's 400 `IncompleteBody`: `Body length <actual> does not match the registered
/// contentLength <registered>`.
pub fn length_mismatch(actual: usize, registered: u64) -> String {
    format!("Body length {actual} does not match the registered contentLength {registered}")
}

/// The upload's 400 `BadDigest` for its body: `Body SHA-256 "<actual>" does not match the
/// registered sha256Hash "<registered>"` (both standard base64).
pub fn body_hash_mismatch(actual: &str, registered: &str) -> String {
    format!("Body SHA-256 \"{actual}\" does not match the registered sha256Hash \"{registered}\"")
}

fn header_mismatch(name: &str, sent: Option<&str>, key: &str, registered: &str) -> String {
    match sent {
        Some(sent) => {
            format!("{name} header \"{sent}\" does not match the registered {key} \"{registered}\"")
        }
        None => format!("{name} header missing; the registered {key} is \"{registered}\""),
    }
}

/// Langfuse's media id: the hash made URL-safe (`+` → `-`, `/` → `_`), its first 22 characters.
pub fn media_id_of(sha256_hash: &str) -> String {
    sha256_hash
        .replace('+', "-")
        .replace('/', "_")
        .chars()
        .take(22)
        .collect()
}

/// The SHA-256 of `bytes` in standard base64 with padding, as the SDKs send `sha256Hash`.
pub fn sha256_base64(bytes: &[u8]) -> String {
    base64_encode(&sha256(bytes))
}

/// Whether `path` (without the query) is the upload URL route or below it.
pub fn is_media_path(path: &str) -> bool {
    is_at_or_below(path, MEDIA_PATH)
}

/// Whether `path` (without the query) is a presigned upload URL's path or below `/upload`.
pub fn is_upload_path(path: &str) -> bool {
    is_at_or_below(path, UPLOAD_PATH)
}

/// `/api/public/media/<mediaId>`.
pub fn media_path(media_id: &str) -> String {
    format!("{MEDIA_PATH}/{media_id}")
}

fn is_at_or_below(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Which media API route a request is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaRoute {
    /// `POST /api/public/media`.
    Register,
    /// `GET /api/public/media/{mediaId}` (decoded).
    Get { media_id: String },
    /// `PATCH /api/public/media/{mediaId}` (decoded).
    Patch { media_id: String },
    /// A known path with another method.
    MethodNotAllowed,
    /// A path below `/api/public/media` that is none of the above.
    NotFound,
    /// The media id segment is not valid percent-encoding.
    BadEncoding,
}

/// The media API route of `method` on `path` (without the query).
pub fn route(method: &str, path: &str) -> MediaRoute {
    if path == MEDIA_PATH {
        return match method {
            "POST" => MediaRoute::Register,
            _ => MediaRoute::MethodNotAllowed,
        };
    }
    let Some(rest) = path
        .strip_prefix(MEDIA_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return MediaRoute::NotFound;
    };
    if rest.is_empty() || rest.contains('/') {
        return MediaRoute::NotFound;
    }
    let Some(media_id) = percent_decode(rest) else {
        return MediaRoute::BadEncoding;
    };
    match method {
        "GET" => MediaRoute::Get { media_id },
        "PATCH" => MediaRoute::Patch { media_id },
        _ => MediaRoute::MethodNotAllowed,
    }
}

/// The media id of an upload path `/upload/<mediaId>` (taken as sent); `None` for any other
/// path.
pub fn upload_media_id(path: &str) -> Option<&str> {
    path.strip_prefix(UPLOAD_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// What the storage answers to an upload it refuses: a status and S3's XML `<Error>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadError {
    pub status: u16,
    /// S3's error code: `SignatureDoesNotMatch`, `InvalidRequest`, `BadDigest`,
    /// `IncompleteBody`, `MethodNotAllowed`, `NoSuchKey`.
    pub code: &'static str,
    pub message: String,
}

impl UploadError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        UploadError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The body S3 answers: `<?xml …?><Error><Code>…</Code><Message>…</Message></Error>`.
    pub fn xml(&self) -> String {
        s3_error_xml(self.code, &self.message)
    }
}

/// S3's error body: `<?xml version="1.0" encoding="UTF-8"?>` then
/// `<Error><Code>code</Code><Message>message</Message></Error>` (`&`, `<`, `>` of the message
/// escaped; quotes need not be in element text).
pub fn s3_error_xml(code: &str, message: &str) -> String {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{escaped}</Message></Error>"
    )
}

/// What an upload to one presigned URL must carry, taken from the record when the upload
/// arrives; [`ExpectedUpload::check`] runs without the server's lock (it hashes the body).
#[derive(Clone, Debug)]
pub struct ExpectedUpload {
    pub media_id: String,
    pub content_type: String,
    pub content_length: u64,
    pub sha256_hash: String,
}

impl ExpectedUpload {
    /// The checks of the storage, in this order: `Content-Type`, `x-amz-checksum-sha256`, the
    /// body's length, the body's SHA-256.
    pub fn check(
        &self,
        content_type: Option<&str>,
        checksum: Option<&str>,
        body: &[u8],
    ) -> Result<(), UploadError> {
        if content_type != Some(self.content_type.as_str()) {
            return Err(UploadError::new(
                400,
                "InvalidRequest",
                content_type_mismatch(content_type, &self.content_type),
            ));
        }
        if checksum != Some(self.sha256_hash.as_str()) {
            return Err(UploadError::new(
                400,
                "BadDigest",
                checksum_header_mismatch(checksum, &self.sha256_hash),
            ));
        }
        if body.len() as u64 != self.content_length {
            return Err(UploadError::new(
                400,
                "IncompleteBody",
                length_mismatch(body.len(), self.content_length),
            ));
        }
        let actual = sha256_base64(body);
        if actual != self.sha256_hash {
            return Err(UploadError::new(
                400,
                "BadDigest",
                body_hash_mismatch(&actual, &self.sha256_hash),
            ));
        }
        Ok(())
    }
}

/// One media record, per media id (Langfuse's `media` row with its `trace_media` and
/// `observation_media` rows), and what the fake storage holds for it.
#[derive(Debug)]
struct MediaRecord {
    media_id: String,
    sha256_hash: String,
    content_type: String,
    content_length: u64,
    /// Distinct `{traceId, observationId, field}`, in the order first registered.
    registrations: Vec<Value>,
    /// The query strings of the upload URLs issued for this record.
    issued_queries: Vec<String>,
    /// The body of the last successful upload.
    bytes: Option<Vec<u8>>,
    upload_count: usize,
    /// Every PATCH body accepted, as sent.
    patches: Vec<Value>,
    /// `uploadedAt` of the last PATCH, as `toISOString()` writes it.
    uploaded_at: Option<String>,
    upload_http_status: Option<i64>,
}

impl MediaRecord {
    fn to_json(&self) -> Value {
        json!({
            "mediaId": self.media_id,
            "sha256Hash": self.sha256_hash,
            "contentType": self.content_type,
            "contentLength": self.content_length,
            "registrations": self.registrations,
            "uploadUrlCount": self.issued_queries.len(),
            "uploadCount": self.upload_count,
            "uploadedLength": self.bytes.as_ref().map(Vec::len),
            "patch": self.patches.last(),
            "patches": self.patches,
        })
    }
}

/// Every media record, in the order first registered (or seeded).
#[derive(Debug)]
pub struct MediaStore {
    records: Vec<MediaRecord>,
    project_id: String,
    /// `http://127.0.0.1:PORT`: where the upload and download URLs point.
    base_url: String,
    /// The status a successful `POST /api/public/media` answers: 200 as the OpenAPI document
    /// says (the default); Langfuse's handler itself answers 201.
    pub upload_url_status: u16,
}

impl MediaStore {
    /// An empty store for the project `project_id`, on the server at `base_url`.
    pub fn new(project_id: &str, base_url: &str) -> Self {
        MediaStore {
            records: Vec::new(),
            project_id: project_id.to_owned(),
            base_url: base_url.to_owned(),
            upload_url_status: 200,
        }
    }

    /// Seeds a record of `bytes` as already uploaded (and reported with a PATCH of status 200
    /// now), so that registering the same content gets `uploadUrl: null`; returns its media id.
    /// Replaces the record of that media id if stored, keeping its registrations.
    pub fn put_uploaded(&mut self, content_type: &str, bytes: Vec<u8>) -> String {
        let hash = sha256_base64(&bytes);
        let media_id = media_id_of(&hash);
        let now = now_millis();
        let patch = json!({"uploadedAt": iso8601_millis(now), "uploadHttpStatus": 200});
        let position = self.position_or_insert(&media_id, &hash);
        let record = &mut self.records[position];
        record.content_type = content_type.to_owned();
        record.content_length = bytes.len() as u64;
        record.bytes = Some(bytes);
        record.uploaded_at = Some(iso8601_millis(now));
        record.upload_http_status = Some(200);
        record.patches.push(patch);
        media_id
    }

    /// Every record as JSON, in the order first registered: `mediaId`, `sha256Hash`,
    /// `contentType`, `contentLength` (of the last registration), `registrations` (distinct
    /// `{traceId, observationId, field}`, `observationId` null when none was given),
    /// `uploadUrlCount` (upload URLs issued), `uploadCount` (successful uploads),
    /// `uploadedLength` (of the last successful upload, or null), `patch` (the last PATCH body
    /// accepted, as sent, or null) and `patches` (all of them).
    pub fn records(&self) -> Vec<Value> {
        self.records.iter().map(MediaRecord::to_json).collect()
    }

    /// The record `media_id` as JSON (see [`Self::records`]).
    pub fn record(&self, media_id: &str) -> Option<Value> {
        self.find(media_id).map(MediaRecord::to_json)
    }

    /// The body of the last successful upload of `media_id`.
    pub fn uploaded_bytes(&self, media_id: &str) -> Option<Vec<u8>> {
        self.find(media_id).and_then(|record| record.bytes.clone())
    }

    /// Answers an authenticated request on `route` (`Register`, `Get` or `Patch`; the others are
    /// the server's) with a status and a JSON body (`Value::Null` with 204: no body).
    /// `content_type` is the request's header.
    pub fn answer(
        &mut self,
        route: &MediaRoute,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        match route {
            MediaRoute::Register => match json_body(content_type, body) {
                Ok(body) => self.answer_register(&body),
                Err(answer) => answer,
            },
            MediaRoute::Get { media_id } => self.answer_get(media_id),
            MediaRoute::Patch { media_id } => match json_body(content_type, body) {
                Ok(body) => self.answer_patch(media_id, body),
                Err(answer) => answer,
            },
            MediaRoute::MethodNotAllowed => message(405, "Method not allowed"),
            MediaRoute::NotFound => message(404, "Not found"),
            MediaRoute::BadEncoding => message(400, INVALID_PATH_ENCODING),
        }
    }

    /// What an upload on `method` and `path` with the query `query` (without `?`) must carry; the
    /// storage's refusal when the URL was not issued (or the method is not `PUT`).
    pub fn expected_upload(
        &self,
        method: &str,
        path: &str,
        query: &str,
    ) -> Result<ExpectedUpload, UploadError> {
        let Some(media_id) = upload_media_id(path) else {
            return Err(UploadError::new(
                404,
                "NoSuchKey",
                "The specified key does not exist.",
            ));
        };
        if method != "PUT" {
            return Err(UploadError::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            ));
        }
        match self.find(media_id) {
            Some(record) if record.issued_queries.iter().any(|issued| issued == query) => {
                Ok(ExpectedUpload {
                    media_id: record.media_id.clone(),
                    content_type: record.content_type.clone(),
                    content_length: record.content_length,
                    sha256_hash: record.sha256_hash.clone(),
                })
            }
            _ => Err(UploadError::new(
                403,
                "SignatureDoesNotMatch",
                SIGNATURE_DOES_NOT_MATCH,
            )),
        }
    }

    /// Keeps `body`, which passed [`ExpectedUpload::check`], as the content of its record.
    pub fn store_upload(&mut self, upload: &ExpectedUpload, body: Vec<u8>) {
        if let Some(position) = self.position(&upload.media_id) {
            let record = &mut self.records[position];
            record.bytes = Some(body);
            record.upload_count += 1;
        }
    }

    fn answer_register(&mut self, body: &Value) -> (u16, Value) {
        let request = match Registration::parse(body) {
            Ok(request) => request,
            Err(issues) => return invalid(issues),
        };
        if request.content_length > MAX_CONTENT_LENGTH {
            return (
                400,
                json!({"message": file_too_large(), "error": "InvalidRequestError"}),
            );
        }
        let media_id = media_id_of(&request.sha256_hash);
        let position = self.position_or_insert(&media_id, &request.sha256_hash);
        let record = &mut self.records[position];
        let registration = json!({
            "traceId": request.trace_id,
            "observationId": request.observation_id,
            "field": request.field,
        });
        if !record.registrations.contains(&registration) {
            record.registrations.push(registration);
        }
        let uploaded =
            record.upload_http_status == Some(200) && record.content_type == request.content_type;
        if uploaded {
            return (
                self.upload_url_status,
                json!({"uploadUrl": null, "mediaId": media_id}),
            );
        }
        record.content_type = request.content_type;
        record.content_length = request.content_length;
        let query = format!(
            "signature={}&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=fake-key%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=3600&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bx-amz-checksum-sha256",
            random_hex()
        );
        let upload_url = format!("{}{UPLOAD_PATH}/{media_id}?{query}", self.base_url);
        record.issued_queries.push(query);
        (
            self.upload_url_status,
            json!({"uploadUrl": upload_url, "mediaId": media_id}),
        )
    }

    fn answer_patch(&mut self, media_id: &str, body: Value) -> (u16, Value) {
        let uploaded_at = match check_patch(&body) {
            Ok(uploaded_at) => uploaded_at,
            Err(issues) => return invalid(issues),
        };
        let Some(position) = self.position(media_id) else {
            return not_found(&media_not_found_in_project(media_id, &self.project_id));
        };
        let record = &mut self.records[position];
        record.uploaded_at = Some(iso8601_millis(uploaded_at));
        record.upload_http_status = body["uploadHttpStatus"].as_i64();
        record.patches.push(body);
        (204, Value::Null)
    }

    fn answer_get(&self, media_id: &str) -> (u16, Value) {
        let Some(record) = self.find(media_id) else {
            return not_found(MEDIA_NOT_FOUND);
        };
        match record.upload_http_status {
            None => return not_found(MEDIA_NOT_YET_UPLOADED),
            Some(200) => {}
            Some(_) => return not_found(MEDIA_UPLOAD_FAILED),
        }
        let expiry = now_millis() + DOWNLOAD_URL_EXPIRY_SECONDS * 1000;
        (
            200,
            json!({
                "mediaId": record.media_id,
                "contentType": record.content_type,
                "contentLength": record.content_length,
                "uploadedAt": record.uploaded_at,
                "url": format!(
                    "{}{DOWNLOAD_PATH}/{}?signature={}",
                    self.base_url,
                    record.media_id,
                    random_hex()
                ),
                "urlExpiry": iso8601_millis(expiry),
            }),
        )
    }

    fn find(&self, media_id: &str) -> Option<&MediaRecord> {
        self.position(media_id)
            .map(|position| &self.records[position])
    }

    fn position(&self, media_id: &str) -> Option<usize> {
        self.records
            .iter()
            .position(|record| record.media_id == media_id)
    }

    fn position_or_insert(&mut self, media_id: &str, sha256_hash: &str) -> usize {
        if let Some(position) = self.position(media_id) {
            return position;
        }
        self.records.push(MediaRecord {
            media_id: media_id.to_owned(),
            sha256_hash: sha256_hash.to_owned(),
            content_type: String::new(),
            content_length: 0,
            registrations: Vec::new(),
            issued_queries: Vec::new(),
            bytes: None,
            upload_count: 0,
            patches: Vec::new(),
            uploaded_at: None,
            upload_http_status: None,
        });
        self.records.len() - 1
    }
}

/// A validated `GetMediaUploadUrlRequest` (trace context).
struct Registration {
    trace_id: String,
    observation_id: Option<String>,
    content_type: String,
    content_length: u64,
    sha256_hash: String,
    field: String,
}

impl Registration {
    /// The checks of Langfuse's `GetMediaUploadUrlQuerySchema`; every zod issue on failure.
    fn parse(body: &Value) -> Result<Self, Vec<Value>> {
        let Some(object) = body.as_object() else {
            return Err(vec![expected("object", Some(body), &[])]);
        };
        let mut issues = Vec::new();
        let trace_id = match object.get("traceId") {
            Some(Value::String(id)) => {
                let hex = id.len() == 32
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !hex {
                    issues.push(json!({
                        "code": "custom",
                        "path": ["traceId"],
                        "message": INVALID_TRACE_ID,
                    }));
                }
                id.clone()
            }
            other => {
                issues.push(expected("string", other, &["traceId"]));
                String::new()
            }
        };
        let observation_id = match object.get("observationId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            other => {
                issues.push(expected("string", other, &["observationId"]));
                None
            }
        };
        let content_type = match object.get("contentType") {
            Some(Value::String(text)) if CONTENT_TYPES.contains(&text.as_str()) => text.clone(),
            _ => {
                issues.push(json!({
                    "code": "invalid_value",
                    "values": CONTENT_TYPES.as_slice(),
                    "path": ["contentType"],
                    "message": invalid_content_type(),
                }));
                String::new()
            }
        };
        let content_length =
            positive_int(object.get("contentLength"), "contentLength", &mut issues);
        let sha256_hash = match object.get("sha256Hash") {
            Some(Value::String(hash)) => {
                let canonical = base64_decode(hash)
                    .is_some_and(|bytes| bytes.len() == 32 && base64_encode(&bytes) == *hash);
                if !canonical {
                    issues.push(json!({
                        "origin": "string",
                        "code": "invalid_format",
                        "format": "regex",
                        "pattern": "/^[A-Za-z0-9+/=]{44}$/",
                        "path": ["sha256Hash"],
                        "message": INVALID_SHA256_HASH,
                    }));
                }
                hash.clone()
            }
            other => {
                issues.push(expected("string", other, &["sha256Hash"]));
                String::new()
            }
        };
        let field = match object.get("field") {
            Some(Value::String(field)) if FIELDS.contains(&field.as_str()) => field.clone(),
            _ => {
                issues.push(json!({
                    "code": "invalid_value",
                    "values": FIELDS,
                    "path": ["field"],
                    "message": INVALID_FIELD,
                }));
                String::new()
            }
        };
        for key in ["datasetId", "datasetItemId"] {
            if let Some(other) = object.get(key).filter(|value| !value.is_null()) {
                issues.push(expected("null", Some(other), &[key]));
            }
        }
        if issues.is_empty() {
            Ok(Registration {
                trace_id,
                observation_id,
                content_type,
                content_length: content_length.unwrap_or(0),
                sha256_hash,
                field,
            })
        } else {
            Err(issues)
        }
    }
}

/// The checks of Langfuse's `PatchMediaBodySchema`; `uploadedAt` in milliseconds since the Unix
/// epoch, or every zod issue.
fn check_patch(body: &Value) -> Result<u64, Vec<Value>> {
    let Some(object) = body.as_object() else {
        return Err(vec![expected("object", Some(body), &[])]);
    };
    let mut issues = Vec::new();
    let uploaded_at = object
        .get("uploadedAt")
        .and_then(Value::as_str)
        .and_then(parse_iso8601_millis);
    if uploaded_at.is_none() {
        issues.push(json!({
            "expected": "date",
            "code": "invalid_type",
            "received": "Invalid Date",
            "path": ["uploadedAt"],
            "message": INVALID_DATE,
        }));
    }
    positive_int(
        object.get("uploadHttpStatus"),
        "uploadHttpStatus",
        &mut issues,
    );
    match object.get("uploadHttpError") {
        None | Some(Value::Null | Value::String(_)) => {}
        other => issues.push(expected("string", other, &["uploadHttpError"])),
    }
    match object.get("uploadTimeMs") {
        None | Some(Value::Null | Value::Number(_)) => {}
        other => issues.push(expected("number", other, &["uploadTimeMs"])),
    }
    match uploaded_at {
        Some(millis) if issues.is_empty() => Ok(millis),
        _ => Err(issues),
    }
}

/// `z.number().positive().int()`: the value, or its zod issues added to `issues`.
fn positive_int(value: Option<&Value>, key: &str, issues: &mut Vec<Value>) -> Option<u64> {
    let Some(number) = value.and_then(Value::as_f64) else {
        issues.push(expected("number", value, &[key]));
        return None;
    };
    let before = issues.len();
    if number <= 0.0 {
        issues.push(json!({
            "origin": "number",
            "code": "too_small",
            "minimum": 0,
            "inclusive": false,
            "path": [key],
            "message": "Too small: expected number to be >0",
        }));
    }
    if number.fract() != 0.0 || number.abs() > 9_007_199_254_740_991.0 {
        issues.push(json!({
            "expected": "int",
            "format": "safeint",
            "code": "invalid_type",
            "path": [key],
            "message": "Invalid input: expected int, received number",
        }));
    }
    (issues.len() == before).then_some(number as u64)
}

/// Milliseconds since the Unix epoch of an ISO 8601 date-time text:
/// `YYYY-MM-DDTHH:MM[:SS[.fraction]]` then `Z`, `±HH:MM`, `±HHMM` or nothing (UTC, as Langfuse's
/// servers read it); `None` for anything else, an impossible date or a time before 1970.
pub fn parse_iso8601_millis(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = b.get(from..to)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute) = (digits(11, 13)?, digits(14, 16)?);
    let mut at = 16;
    let mut second = 0;
    let mut millis = 0;
    if b.get(at) == Some(&b':') {
        second = digits(at + 1, at + 3)?;
        at += 3;
        if b.get(at) == Some(&b'.') {
            let end = b[at + 1..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .map_or(b.len(), |offset| at + 1 + offset);
            if end == at + 1 {
                return None;
            }
            let fraction = format!("{:0<3}", &text[at + 1..end.min(at + 4)]);
            millis = fraction.parse::<i64>().ok()?;
            at = end;
        }
    }
    let offset_minutes = match &b[at..] {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let rest = &text[at + 1..];
            let (hours, minutes) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (&rest[..2], &rest[3..]),
                4 => (&rest[..2], &rest[2..]),
                _ => return None,
            };
            if !(hours.bytes().chain(minutes.bytes())).all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (hours, minutes) = (hours.parse::<i64>().ok()?, minutes.parse::<i64>().ok()?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days since 1970-01-01 (proleptic Gregorian calendar).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).ok()
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 (FIPS 180-4), std only. Written with `while` loops and no iterator in the inner
/// rounds: the tests build without optimisation, where this hashes about 20 MB a second.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut state: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        compress(&mut state, block);
    }
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    tail[tail_len - 8..tail_len].copy_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in tail[..tail_len].chunks_exact(64) {
        compress(&mut state, block);
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// One 64-byte block into `state`.
fn compress(state: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    let mut i = 0;
    while i < 16 {
        w[i] = u32::from_be_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ]);
        i += 1;
    }
    while i < 64 {
        let (x, y) = (w[i - 15], w[i - 2]);
        let s0 = x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3);
        let s1 = y.rotate_right(17) ^ y.rotate_right(19) ^ (y >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
        i += 1;
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    i = 0;
    while i < 64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
        i += 1;
    }
    for (slot, value) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *slot = slot.wrapping_add(value);
    }
}

/// A zod 4 `invalid_type` issue: expected `what`, received the JSON type of `value` (or
/// `undefined`).
fn expected(what: &str, value: Option<&Value>, path: &[&str]) -> Value {
    let received = match value {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    };
    json!({
        "expected": what,
        "code": "invalid_type",
        "path": path,
        "message": format!("Invalid input: expected {what}, received {received}"),
    })
}

/// A 400 as Langfuse answers a body that fails its zod schema.
fn invalid(issues: Vec<Value>) -> (u16, Value) {
    (
        400,
        json!({"message": INVALID_REQUEST_DATA, "error": issues}),
    )
}

/// A 404 as Langfuse answers a `LangfuseNotFoundError`.
fn not_found(text: &str) -> (u16, Value) {
    (
        404,
        json!({"message": text, "error": "LangfuseNotFoundError"}),
    )
}

fn message(status: u16, text: &str) -> (u16, Value) {
    (status, json!({ "message": text }))
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// 32 random hex digits, from the standard library's randomly keyed hasher.
fn random_hex() -> String {
    let random = || RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", random(), random())
}
