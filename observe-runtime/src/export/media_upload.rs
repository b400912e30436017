//! Uploading the media of a batch before its spans are sent, from the exporter thread: for each
//! media item of each span, `POST /api/public/media` registers it for its trace, observation and
//! field; when Langfuse does not have the bytes yet, `PUT` to the URL it gave, then `PATCH
//! /api/public/media/{id}` with the outcome (also after an upload answered with an error). Bytes already
//! uploaded by this process are not sent again. Up to [`CONCURRENCY`] distinct contents go at
//! once, on the exporter's own runtime; the items of one content go one after the other, so that
//! it is uploaded once. 408, 429, 5xx and network errors are retried with the exporter's
//! backoff, within the flush or shutdown deadline (a flush or shutdown that comes meanwhile
//! tightens it); a failure loses only the upload (the reference stays in the span) and is
//! counted.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use futures_util::stream::{self, StreamExt as _};

use reqwest::Method;
use serde_json::{json, Value};

use super::stats::Counters;
use super::transport::{server_message, Transport, FIRST_BACKOFF};
use super::waiter::{Control, Waiter};
use crate::diagnostics;
use crate::media::MediaAttachment;
use crate::record::FinishedSpan;

/// Attempts of one registration or upload, the first included.
const ATTEMPTS: u32 = 3;
/// Media ids remembered as uploaded, at most (then forgotten, and Langfuse's own check applies).
const REMEMBERED: usize = 100_000;
/// Distinct contents uploaded at once, at most.
const CONCURRENCY: usize = 4;
/// How often control messages (a flush, a shutdown) are looked for while uploads run.
const CONTROL_POLL: Duration = Duration::from_millis(20);

/// One media item to register and upload, with the observation it belongs to.
#[derive(Clone)]
pub(crate) struct Upload {
    pub(crate) trace_id: String,
    pub(crate) observation_id: String,
    pub(crate) media: MediaAttachment,
}

/// The media of `spans`, in order.
pub(crate) fn uploads_of(spans: &[FinishedSpan]) -> Vec<Upload> {
    spans
        .iter()
        .flat_map(|span| {
            span.media.iter().map(|media| Upload {
                trace_id: span.trace_id.to_string(),
                observation_id: span.span_id.to_string(),
                media: media.clone(),
            })
        })
        .collect()
}

/// Why an upload failed, and whether trying again later may help.
pub(crate) struct Failed {
    reason: String,
    later: bool,
}

impl Failed {
    fn later(reason: String) -> Self {
        Failed {
            reason,
            later: true,
        }
    }
}

pub(crate) struct MediaUploader {
    uploaded: HashSet<String>,
    counters: Arc<Counters>,
}

fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The ISO-8601 time now.
fn now_text() -> String {
    let nanos = crate::clock::unix_nanos(std::time::SystemTime::now());
    String::from_utf8_lossy(&crate::clock::iso8601(nanos)).into_owned()
}

/// What the uploads of one round share: the deadline (tightened when a flush or shutdown
/// arrives) and the contents uploaded.
struct Round<'a> {
    transport: &'a Transport,
    deadline: Cell<Option<Instant>>,
    uploaded: RefCell<HashSet<String>>,
    counters: &'a Counters,
}

impl MediaUploader {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        MediaUploader {
            uploaded: HashSet::new(),
            counters,
        }
    }

    /// Uploads the media Langfuse does not have yet, up to [`CONCURRENCY`] contents at once;
    /// counts and reports the failures, and returns those worth trying again later (no answer,
    /// a 408, 429 or 5xx, or the deadline came), for the spool.
    pub(crate) fn upload(
        &mut self,
        transport: &Transport,
        uploads: Vec<Upload>,
        waiter: &mut Waiter,
    ) -> Vec<Upload> {
        let failures = self.try_upload(transport, uploads, waiter);
        self.settle(failures)
    }

    /// Counts and reports failed uploads; returns those worth trying again later.
    pub(crate) fn settle(&self, failures: Vec<(Upload, Failed)>) -> Vec<Upload> {
        let mut later = Vec::new();
        for (upload, failure) in failures {
            self.report(&upload, &failure);
            if failure.later {
                later.push(upload);
            }
        }
        later
    }

    /// Uploads as [`Self::upload`] does, and returns the failures without counting or
    /// reporting them (a spooled batch that stays in the spool tries them again).
    pub(crate) fn try_upload(
        &mut self,
        transport: &Transport,
        uploads: Vec<Upload>,
        waiter: &mut Waiter,
    ) -> Vec<(Upload, Failed)> {
        if uploads.is_empty() {
            return Vec::new();
        }
        // One group per content, in order of first appearance.
        let mut groups: Vec<Vec<Upload>> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        for upload in uploads {
            match group_of.get(&upload.media.media_id) {
                Some(&index) => groups[index].push(upload),
                None => {
                    group_of.insert(upload.media.media_id.clone(), groups.len());
                    groups.push(vec![upload]);
                }
            }
        }
        let round = Round {
            transport,
            deadline: Cell::new(waiter.deadline),
            uploaded: RefCell::new(std::mem::take(&mut self.uploaded)),
            counters: &self.counters,
        };
        let results = transport.block_on(async {
            let uploads = stream::iter(groups)
                .map(|group| round.group(group))
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<_>>();
            let watch = watch_control(waiter, &round.deadline);
            match select(Box::pin(uploads), Box::pin(watch)).await {
                Either::Left((results, _)) => results,
                Either::Right((never, _)) => match never {},
            }
        });
        self.uploaded = round.uploaded.into_inner();
        results
            .into_iter()
            .flatten()
            .filter_map(|(upload, result)| result.err().map(|failure| (upload, failure)))
            .collect()
    }

    /// Counts and reports a failed upload.
    fn report(&self, upload: &Upload, failure: &Failed) {
        Counters::add(&self.counters.media_failed, 1);
        let text = format!(
            "the {} of observation {} ({} bytes) could not be uploaded, its reference stays: {}",
            upload.media.content_type,
            upload.observation_id,
            upload.media.bytes.len(),
            failure.reason
        );
        self.counters.set_last_error(text.clone());
        diagnostics::warn("media upload", text);
    }
}

/// Takes in the control messages that arrive while uploads run, each tightening the deadline
/// (they are handled once the uploads are done). Never ends.
async fn watch_control(
    waiter: &mut Waiter,
    deadline: &Cell<Option<Instant>>,
) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(CONTROL_POLL).await;
        while let Ok(message) = waiter.control.try_recv() {
            if !matches!(message, Control::AuthCheck { .. }) {
                waiter.tighten(message.deadline());
                deadline.set(waiter.deadline);
            }
            waiter.pending.push_back(message);
        }
    }
}

impl Round<'_> {
    /// The items of one content, one after the other: the first uploads the bytes, the others
    /// only register them for their observations.
    async fn group(&self, group: Vec<Upload>) -> Vec<(Upload, Result<(), Failed>)> {
        let mut results = Vec::with_capacity(group.len());
        for upload in group {
            let result = self.one(&upload).await;
            results.push((upload, result));
        }
        results
    }

    /// Sends `make()`'s request until it is answered with something not worth retrying, at most
    /// [`ATTEMPTS`] times, before the deadline.
    async fn send(
        &self,
        make: impl Fn() -> Option<reqwest::RequestBuilder>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut last = Err(String::from("the flush or shutdown deadline passed"));
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let backoff = FIRST_BACKOFF.saturating_mul(1 << (attempt - 1));
                if self
                    .deadline
                    .get()
                    .is_some_and(|deadline| deadline < Instant::now() + backoff)
                {
                    break;
                }
                tokio::time::sleep(backoff).await;
            }
            let request = make().ok_or("the exporter does not send to Langfuse")?;
            match self
                .transport
                .send_before(request, self.deadline.get())
                .await
            {
                Ok((status, body)) if !retryable(status) => return Ok((status, body)),
                answer => last = answer,
            }
        }
        // The last answer (a 5xx after the retries), or why there was none.
        last
    }

    async fn one(&self, upload: &Upload) -> Result<(), Failed> {
        let transport = self.transport;
        let media = &upload.media;
        let registration = json!({
            "traceId": upload.trace_id,
            "observationId": upload.observation_id,
            "contentType": media.content_type,
            "contentLength": media.bytes.len(),
            "sha256Hash": media.sha256,
            "field": media.field.as_str(),
        });
        let (status, body) = self
            .send(|| transport.api_request(Method::POST, "/api/public/media", &registration))
            .await
            .map_err(Failed::later)?;
        if !(200..=299).contains(&status) {
            return Err(Failed {
                reason: format!(
                    "registering it answered HTTP {status}: {:?}",
                    server_message(&body)
                ),
                later: retryable(status),
            });
        }
        let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
        let media_id = answer
            .get("mediaId")
            .and_then(Value::as_str)
            .unwrap_or(&media.media_id)
            .to_string();
        let upload_url = answer.get("uploadUrl").and_then(Value::as_str);
        let known = self.uploaded.borrow().contains(&media.media_id);
        let Some(upload_url) = upload_url.filter(|_| !known) else {
            Counters::add(&self.counters.media_deduplicated, 1);
            return Ok(());
        };
        let started = Instant::now();
        let google = upload_url.contains("storage.googleapis.com");
        let uploaded = self
            .send(|| {
                let mut request = transport
                    .plain_request(Method::PUT, upload_url)
                    .header("content-type", &media.content_type)
                    .body(bytes::Bytes::from_owner(media.bytes.clone()));
                if !google {
                    request = request
                        .header("x-amz-checksum-sha256", &media.sha256)
                        .header("x-ms-blob-type", "BlockBlob");
                }
                Some(request)
            })
            .await;
        let elapsed = started.elapsed().min(Duration::from_secs(3600));
        // The outcome is reported whenever the upload got an answer, failed or not.
        let (outcome, answer) = match &uploaded {
            Ok((status, _)) if (200..=299).contains(status) => (Ok(()), Some((*status, None))),
            Ok((status, body)) => {
                let message = server_message(body);
                (
                    Err(Failed {
                        reason: format!("the upload answered HTTP {status}: {message:?}"),
                        later: retryable(*status),
                    }),
                    Some((*status, Some(format!("HTTP {status}: {message}")))),
                )
            }
            Err(reason) => (
                Err(Failed::later(format!("the upload got no answer: {reason}"))),
                None,
            ),
        };
        if let Some((status, error)) = answer {
            let mut patch = json!({
                "uploadedAt": now_text(),
                "uploadHttpStatus": status,
                "uploadTimeMs": elapsed.as_millis() as u64,
            });
            if let Some(error) = error {
                patch["uploadHttpError"] = Value::String(error);
            }
            let path = format!("/api/public/media/{media_id}");
            let _ = self
                .send(|| transport.api_request(Method::PATCH, &path, &patch))
                .await;
        }
        if outcome.is_ok() {
            let mut uploaded = self.uploaded.borrow_mut();
            if uploaded.len() >= REMEMBERED {
                uploaded.clear();
            }
            uploaded.insert(media.media_id.clone());
            Counters::add(&self.counters.media_uploaded, 1);
            Counters::add(
                &self.counters.media_bytes_uploaded,
                media.bytes.len() as u64,
            );
        }
        outcome
    }
}
