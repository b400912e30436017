//! HTTP to Langfuse: the export POST (spans, and scores on their own route) with its headers,
//! retries with backoff and `Retry-After`, auth failures turned into one clear message, and the
//! credential check. Runs only on the exporter thread, on its own single-threaded tokio runtime:
//! the user's runtime is never used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::auth::{auth_failure_text, collector_auth_failure_text, AuthCheck, AuthError, Project};
use super::stats::Counters;
use super::target::{LangfuseKeys, Target};
use super::waiter::Waiter;
use crate::diagnostics;
use crate::ids::random_u64;

/// Attempts per batch, the first included.
const MAX_ATTEMPTS: u32 = 6;
/// The longest one batch is retried while the pipeline runs (a flush or shutdown deadline can cut
/// it shorter).
const RETRY_BUDGET: Duration = Duration::from_secs(60);
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Attempts of one batch that may go unanswered (sent, no answer in time) before it is given
/// up: each such copy may have been stored by a slow server, so every retry risks a duplicate.
const MAX_UNANSWERED: u32 = 3;
/// After an unanswered attempt the next one may take twice as long, up to this (or up to
/// `LANGFUSE_TIMEOUT`, if that is longer).
const MAX_ATTEMPT_TIME: Duration = Duration::from_secs(60);

/// The `message` or `error` of a JSON body, else the text itself (shortened).
pub(crate) fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|value| {
        ["message", "error"]
            .iter()
            .find_map(|key| value.get(key).and_then(|v| v.as_str()).map(str::to_string))
    });
    let message = from_json.unwrap_or_else(|| text.trim().to_string());
    message.chars().take(300).collect()
}

/// Why a request body was not delivered: made here, read by the span sink, the spool and the
/// score route, each of which maps it once.
#[derive(Debug)]
pub(crate) enum Undelivered {
    /// Refused for good: an answer other than a 2xx, 401, 403, 408, 429 or 5xx (sending it again
    /// would not help).
    Refused(String),
    /// 401 or 403: the keys do not fit this host. The text names the host and what to do; the
    /// transport says it once on stderr.
    Unauthorized(String),
    /// The server could not be reached, or kept failing, until the retries ran out: it may take
    /// the same body later.
    GaveUp(String),
    /// Given up after an attempt was sent and got no answer in time: the server may have stored
    /// it (a slow server), so it is neither delivered nor known to be lost.
    Unanswered(String),
    /// The flush or shutdown deadline came first.
    Deadline(String),
}

impl Undelivered {
    /// Why, as the flush error and the messages say it.
    pub(crate) fn into_reason(self) -> String {
        match self {
            Self::Refused(text)
            | Self::Unauthorized(text)
            | Self::GaveUp(text)
            | Self::Unanswered(text)
            | Self::Deadline(text) => text,
        }
    }

    /// Whether the transport has said it on stderr already (a refusal of the keys).
    pub(crate) fn already_reported(&self) -> bool {
        matches!(self, Self::Unauthorized(_))
    }
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(text)
            | Self::Unauthorized(text)
            | Self::GaveUp(text)
            | Self::Unanswered(text)
            | Self::Deadline(text) => f.write_str(text),
        }
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `{base}/api/public/otel/v1/traces` (or the collector's endpoint): protobuf, gzipped.
    Traces,
    /// `{base}/api/public/scores`: JSON.
    Scores,
}

impl Route {
    /// What the request carries, for messages.
    fn carries(self) -> &'static str {
        match self {
            Self::Traces => "spans",
            Self::Scores => "scores",
        }
    }
}

/// The server's answer when trying again would not help: a 2xx, or a refusal other than 401 and
/// 403 (those are reported by the transport itself).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..=299).contains(&self.status)
    }

    /// The `message` or `error` of a JSON body, else the text itself (shortened).
    pub(crate) fn message(&self) -> String {
        server_message(&self.body)
    }
}

enum Attempt {
    /// Not worth trying again: a 2xx, or a refusal other than 401 and 403.
    Answered(Reply),
    /// Worth trying again, after the server's `Retry-After` if it gave one.
    Retry(String, Option<Duration>),
    /// Sent, and no answer came in time: worth trying again, with more time, a few times only.
    Unanswered(String),
    /// 401 or 403.
    Unauthorized(u16, String),
}

pub(crate) struct Transport {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    target: Target,
    headers: HeaderMap,
    /// The scores URL and headers, with Langfuse keys only.
    scores: Option<(String, HeaderMap)>,
    timeout: Duration,
    counters: Arc<Counters>,
    auth_reported: bool,
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| format!("the value of header {name} has characters HTTP does not allow"))?;
    Ok((name, value))
}

/// The HTTP client of every request to the backend: both time limits, this crate's user agent.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("observe-runtime/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// TLS for this crate's clients: rustls with the ring provider and the platform's certificate
/// verifier (the system's roots), configured here and not installed process-wide, so the
/// program's own rustls provider (or none) stays its choice.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("TLS certificate verifier: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // The clients speak HTTP/1.1 only, as reqwest's own configuration would say.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Sends `request` and reads its answer: the status, the server's `Retry-After` in seconds (at
/// most an hour), and the body.
pub(crate) async fn answer_of(
    request: reqwest::RequestBuilder,
) -> Result<(u16, Option<Duration>, bytes::Bytes), reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    let body = response.bytes().await?;
    Ok((status, retry_after, body))
}

/// The headers every Langfuse request carries: Basic auth (marked sensitive, so it is never
/// printed), the SDK's name and version, and the public key.
pub(crate) fn langfuse_headers(keys: &LangfuseKeys) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", keys.public_key, keys.secret_key));
    let (name, mut value) = header("authorization", &format!("Basic {token}")).map_err(|_| {
        "LANGFUSE_PUBLIC_KEY or LANGFUSE_SECRET_KEY has characters HTTP does not allow".to_string()
    })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    for (name, value) in [
        ("x-langfuse-sdk-name", "rust"),
        ("x-langfuse-sdk-version", env!("CARGO_PKG_VERSION")),
    ] {
        let (name, value) = header(name, value)?;
        headers.insert(name, value);
    }
    let (name, value) = header("x-langfuse-public-key", &keys.public_key)
        .map_err(|_| "LANGFUSE_PUBLIC_KEY has characters HTTP does not allow".to_string())?;
    headers.insert(name, value);
    Ok(headers)
}

impl Transport {
    /// Builds the runtime and client; call it on the exporter thread.
    pub(crate) fn new(
        target: Target,
        timeout: Duration,
        counters: Arc<Counters>,
    ) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let http = http_client(timeout)?;
        let mut headers = HeaderMap::new();
        let add = |headers: &mut HeaderMap, name: &str, value: &str| -> Result<(), String> {
            let (name, value) = header(name, value)?;
            headers.insert(name, value);
            Ok(())
        };
        add(&mut headers, "content-type", "application/x-protobuf")?;
        add(&mut headers, "content-encoding", "gzip")?;
        if let Some(keys) = &target.langfuse {
            headers.extend(langfuse_headers(keys)?);
            add(&mut headers, "x-langfuse-ingestion-version", "4")?;
        }
        for (name, value) in &target.headers {
            let (name, mut value) =
                header(name, value).map_err(|e| format!("OTEL_EXPORTER_OTLP_HEADERS: {e}"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let scores = target.langfuse.as_ref().map(|_| {
            let mut score_headers = headers.clone();
            score_headers.remove("content-encoding");
            score_headers.remove("x-langfuse-ingestion-version");
            score_headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            (
                format!("{}/api/public/scores", target.base_url),
                score_headers,
            )
        });
        Ok(Self {
            runtime,
            http,
            target,
            headers,
            scores,
            timeout,
            counters,
            auth_reported: false,
        })
    }

    /// The time one attempt may take: `allowed`, or less when the deadline is nearer.
    fn attempt_time(&self, waiter: &Waiter, allowed: Duration) -> Option<Duration> {
        let time = match waiter.remaining() {
            Some(left) => left.min(allowed),
            None => allowed,
        };
        (!time.is_zero()).then_some(time)
    }

    /// The URL of `route` (the scores URL is there only with Langfuse keys).
    pub(crate) fn url(&self, route: Route) -> &str {
        match (route, &self.scores) {
            (Route::Scores, Some((url, _))) => url,
            _ => &self.target.endpoint,
        }
    }

    /// Whether the target takes scores (Langfuse, not a generic OpenTelemetry collector).
    pub(crate) fn takes_scores(&self) -> bool {
        self.scores.is_some()
    }

    /// The counters requests are counted in.
    pub(crate) fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Keeps `text` as the last error `stats()` shows.
    pub(crate) fn note_error(&self, text: &str) {
        self.counters.set_last_error(text);
    }

    fn attempt(&self, route: Route, body: &[u8], time: Duration) -> Attempt {
        let headers = match (route, &self.scores) {
            (Route::Scores, Some((_, headers))) => headers,
            _ => &self.headers,
        };
        let request = self
            .http
            .post(self.url(route))
            .headers(headers.clone())
            .timeout(time)
            .body(body.to_vec());
        self.runtime.block_on(async {
            let answer = tokio::time::timeout(time, answer_of(request)).await;
            match answer {
                Err(_) => Attempt::Unanswered(format!("no answer within {time:?}")),
                Ok(Err(error)) if error.is_timeout() && !error.is_connect() => {
                    Attempt::Unanswered(format!("no answer within {time:?}"))
                }
                Ok(Err(error)) => Attempt::Retry(describe(&error), None),
                Ok(Ok((status, retry_after, body))) => match status {
                    401 | 403 => Attempt::Unauthorized(status, server_message(&body)),
                    408 | 429 | 500 | 502 | 503 | 504 => Attempt::Retry(
                        format!("HTTP {status}: {}", server_message(&body)),
                        retry_after,
                    ),
                    _ => Attempt::Answered(Reply {
                        status,
                        body: body.to_vec(),
                    }),
                },
            }
        })
    }

    /// A JSON request to Langfuse's public API (`{base}{path}`), with the keys; `None` for a
    /// generic collector.
    pub(crate) fn api_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Option<reqwest::RequestBuilder> {
        let (_, headers) = self.scores.as_ref()?;
        Some(
            self.http
                .request(method, format!("{}{}", self.target.base_url, path))
                .headers(headers.clone())
                .body(body.to_string()),
        )
    }

    /// A request to a URL the API handed out (a presigned upload URL): no keys.
    pub(crate) fn plain_request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// Runs `future` to its end on the exporter's runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Sends `request` once before `deadline` (and within the configured timeout): its status
    /// and body, or why there was none. Runs inside [`Self::block_on`].
    pub(crate) async fn send_before(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Option<Instant>,
    ) -> Result<(u16, Vec<u8>), String> {
        let time = match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(self.timeout),
            None => self.timeout,
        };
        if time.is_zero() {
            return Err("the flush or shutdown deadline passed".into());
        }
        let request = request.timeout(time);
        match tokio::time::timeout(time, async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body.to_vec()))
        })
        .await
        {
            Err(_) => Err(format!("no answer within {time:?}")),
            Ok(Err(error)) => Err(describe(&error)),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Sends one gzipped OTLP request body, retrying within the budget; `Err` says why it was
    /// lost.
    pub(crate) fn post(&mut self, body: &[u8], waiter: &mut Waiter) -> Result<(), Undelivered> {
        let reply = self.exchange(Route::Traces, body, waiter)?;
        if reply.is_success() {
            return Ok(());
        }
        let text = format!(
            "{} refused the export with HTTP {}: {:?}; the request is not retried",
            self.target.endpoint,
            reply.status,
            reply.message()
        );
        self.counters.set_last_error(text.clone());
        Err(Undelivered::Refused(text))
    }

    /// Sends one gzipped OTLP request body once, without retrying: a spooled batch that cannot
    /// be delivered now waits for the next round instead. A 401 or 403 is `GaveUp` (the batch is
    /// kept for a process with the right keys).
    pub(crate) fn post_once(&mut self, body: &[u8], waiter: &Waiter) -> Result<(), Undelivered> {
        let Some(time) = self.attempt_time(waiter, self.timeout) else {
            return Err(Undelivered::Deadline("the deadline passed".into()));
        };
        let (counter, result) = match self.attempt(Route::Traces, body, time) {
            Attempt::Answered(reply) if reply.is_success() => (&self.counters.requests_ok, Ok(())),
            Attempt::Answered(reply) => (
                &self.counters.requests_failed,
                Err(Undelivered::Refused(format!(
                    "HTTP {}: {:?}",
                    reply.status,
                    reply.message()
                ))),
            ),
            Attempt::Retry(reason, _) => (
                &self.counters.requests_failed,
                Err(Undelivered::GaveUp(reason)),
            ),
            Attempt::Unanswered(reason) => (
                &self.counters.requests_unanswered,
                Err(Undelivered::Unanswered(reason)),
            ),
            // Kept in the spool for a process with the right keys (the live batches report it).
            Attempt::Unauthorized(status, message) => (
                &self.counters.requests_failed,
                Err(Undelivered::Unauthorized(format!(
                    "HTTP {status}: {message}"
                ))),
            ),
        };
        Counters::add(counter, 1);
        result
    }

    /// Sends one request body to `route`, retrying 408, 429 (after its `Retry-After`), 5xx,
    /// timeouts and network errors within the budget and the waiter's deadline. A 401 or 403 is
    /// counted, reported once, and lost; any other answer is returned for the caller to judge.
    ///
    /// An attempt sent without an answer in time may have been stored all the same (a slow
    /// server), so the next attempt gets twice the time (up to [`MAX_ATTEMPT_TIME`]), and after
    /// [`MAX_UNANSWERED`] such attempts the body is given up as [`Undelivered::Unanswered`]; it is
    /// given up that way too whenever it fails after one.
    pub(crate) fn exchange(
        &mut self,
        route: Route,
        body: &[u8],
        waiter: &mut Waiter,
    ) -> Result<Reply, Undelivered> {
        let started = Instant::now();
        let mut attempt_number = 1;
        let mut allowed = self.timeout;
        let mut unanswered = 0;
        loop {
            let Some(time) = self.attempt_time(waiter, allowed) else {
                let text = "the flush or shutdown deadline passed before the batch was sent";
                return Err(if unanswered > 0 {
                    Undelivered::Unanswered(text.into())
                } else {
                    Undelivered::Deadline(text.into())
                });
            };
            let (reason, retry_after) = match self.attempt(route, body, time) {
                Attempt::Answered(reply) => {
                    let counter = if reply.is_success() {
                        &self.counters.requests_ok
                    } else {
                        &self.counters.requests_failed
                    };
                    Counters::add(counter, 1);
                    return Ok(reply);
                }
                Attempt::Unauthorized(status, message) => {
                    Counters::add(&self.counters.requests_failed, 1);
                    Counters::add(&self.counters.auth_failures, 1);
                    let text = if self.target.langfuse.is_some() {
                        auth_failure_text(status, &message, &self.target.base_url)
                    } else {
                        collector_auth_failure_text(status, &message, &self.target.endpoint)
                    };
                    self.counters.set_last_error(text.clone());
                    if !self.auth_reported {
                        self.auth_reported = true;
                        diagnostics::error(
                            "auth",
                            format!(
                                "{text} The {} of this request were dropped; later \
                                 authentication failures are counted in stats() and not logged \
                                 again.",
                                route.carries()
                            ),
                        );
                    }
                    return Err(Undelivered::Unauthorized(text));
                }
                Attempt::Retry(reason, retry_after) => {
                    Counters::add(&self.counters.requests_failed, 1);
                    (reason, retry_after)
                }
                Attempt::Unanswered(reason) => {
                    Counters::add(&self.counters.requests_unanswered, 1);
                    unanswered += 1;
                    allowed = allowed
                        .saturating_mul(2)
                        .min(MAX_ATTEMPT_TIME.max(self.timeout));
                    (reason, None)
                }
            };
            diagnostics::debug(|| format!("attempt {attempt_number} failed: {reason}"));
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << (attempt_number - 1).min(8))
                .min(MAX_BACKOFF);
            let jitter = backoff.mul_f64((random_u64() % 1000) as f64 / 2000.0);
            let delay = retry_after.unwrap_or(backoff + jitter);
            let give_up = |why: &str, otherwise: fn(String) -> Undelivered| {
                let text = if unanswered > 0 {
                    format!(
                        "export to {} got no answer to {unanswered} of {attempt_number} \
                         attempt(s) (the server may have stored them): {reason}{why}",
                        self.url(route)
                    )
                } else {
                    format!(
                        "export to {} failed after {attempt_number} attempt(s): {reason}{why}",
                        self.url(route)
                    )
                };
                self.counters.set_last_error(text.clone());
                if unanswered > 0 {
                    Undelivered::Unanswered(text)
                } else {
                    otherwise(text)
                }
            };
            if attempt_number >= MAX_ATTEMPTS || unanswered >= MAX_UNANSWERED {
                return Err(give_up("", Undelivered::GaveUp));
            }
            if started.elapsed() + delay > RETRY_BUDGET {
                return Err(give_up(
                    "; the next retry would exceed the retry budget",
                    Undelivered::GaveUp,
                ));
            }
            if !waiter.sleep(delay) {
                return Err(give_up(
                    "; the flush or shutdown deadline came first",
                    Undelivered::Deadline,
                ));
            }
            Counters::add(&self.counters.requests_retried, 1);
            attempt_number += 1;
        }
    }

    /// `GET {base}/api/public/projects` with the export's credentials.
    pub(crate) fn projects(&mut self, waiter: &Waiter) -> Result<AuthCheck, AuthError> {
        let base_url = self.target.base_url.clone();
        if self.target.langfuse.is_none() {
            return Err(AuthError::NotLangfuse);
        }
        let time = self
            .attempt_time(waiter, self.timeout)
            .unwrap_or(self.timeout);
        let mut headers = HeaderMap::new();
        if let Some(auth) = self.headers.get("authorization") {
            headers.insert("authorization", auth.clone());
        }
        let request = self
            .http
            .get(format!("{base_url}/api/public/projects"))
            .headers(headers)
            .timeout(time);
        let answer = self.runtime.block_on(async {
            tokio::time::timeout(time, async {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await
        });
        let (status, body) = match answer {
            Err(_) => {
                return Err(AuthError::Network {
                    reason: format!("no answer within {time:?}"),
                    base_url,
                })
            }
            Ok(Err(error)) => {
                return Err(AuthError::Network {
                    reason: describe(&error),
                    base_url,
                })
            }
            Ok(Ok(answer)) => answer,
        };
        match status {
            200 => {
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let projects = value
                    .get("data")
                    .and_then(|d| d.as_array())
                    .map(|items| {
                        items
                            .iter()
                            .map(|p| Project {
                                id: p.get("id").and_then(|v| v.as_str()).unwrap_or("").into(),
                                name: p.get("name").and_then(|v| v.as_str()).unwrap_or("").into(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(AuthCheck { projects })
            }
            401 | 403 => Err(AuthError::Unauthorized {
                status,
                message: server_message(&body),
                base_url,
            }),
            _ => Err(AuthError::Http {
                status,
                message: server_message(&body),
                base_url,
            }),
        }
    }
}

/// A network error with its causes (reqwest's own text hides "connection refused").
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_client_builds_with_its_own_tls_provider() {
        // No process-wide rustls provider is installed here: building must not need one.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let client = http_client(Duration::from_secs(1));
        assert!(client.is_ok(), "{:?}", client.err());
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }

    #[test]
    fn server_messages_come_from_json_or_text() {
        assert_eq!(server_message(br#"{"message":"nope"}"#), "nope");
        assert_eq!(server_message(br#"{"error":"bad id"}"#), "bad id");
        assert_eq!(server_message(b"  plain  "), "plain");
    }
}
