//! [`ApiCore`], one REST request with its retries, and [`ApiClient`], the runtime it runs on:
//! blocking calls wait on a channel, async calls on a join handle, background work is spawned.

use std::future::Future;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::export::target::Target;
use crate::export::transport::{
    answer_of, describe, http_client, langfuse_headers, server_message, FIRST_BACKOFF, MAX_BACKOFF,
};
use crate::ids::random_u64;

/// The name of the client's runtime thread.
const THREAD_NAME: &str = "observe-api";
/// Attempts of one request unless the caller says otherwise: the first and two retries.
pub(crate) const DEFAULT_ATTEMPTS: u32 = 3;

/// One request to the public API.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    /// Path and query, already percent-encoded: `/api/public/v2/prompts/a%2Fb?label=x`.
    pub(crate) path: String,
    /// A JSON body.
    pub(crate) body: Option<Vec<u8>>,
    /// Attempts, the first included (at least 1).
    pub(crate) attempts: u32,
    /// The time limit of each attempt.
    pub(crate) timeout: Duration,
}

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) body: Vec<u8>,
}

impl ApiResponse {
    /// The body as `T`, or an error naming the request and what did not fit.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|error| ApiError::InvalidResponse {
            method: self.method.to_string(),
            url: self.url.clone(),
            reason: error.to_string(),
        })
    }
}

/// What a request needs, shared with the tasks that run it: base URL, headers, HTTP client.
pub(crate) struct ApiCore {
    base_url: String,
    headers: HeaderMap,
    timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The authorization header is marked sensitive: `HeaderMap`'s Debug hides it.
        f.debug_struct("ApiCore")
            .field("base_url", &self.base_url)
            .field("headers", &self.headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether a status is worth another attempt.
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl ApiCore {
    /// A request with the default attempts and the configured time limit.
    pub(crate) fn request(&self, method: Method, path: impl Into<String>) -> ApiRequest {
        ApiRequest {
            method,
            path: path.into(),
            body: None,
            attempts: DEFAULT_ATTEMPTS,
            timeout: self.timeout,
        }
    }

    /// The configured time limit of one attempt.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request`, retrying 408, 429 (after its `Retry-After`, at most 8 s), 5xx, timeouts
    /// and network errors up to its attempts; any other non-2xx answer is returned at once as
    /// [`ApiError::Http`]. Must run on the client's runtime (see [`ApiClient`]).
    pub(crate) async fn send(&self, request: ApiRequest) -> Result<ApiResponse, ApiError> {
        let url = format!("{}{}", self.base_url, request.path);
        let method = request.method.as_str().to_string();
        let attempts = request.attempts.max(1);
        let mut attempt = 1;
        loop {
            let mut builder = self
                .http
                .request(request.method.clone(), &url)
                .headers(self.headers.clone())
                .timeout(request.timeout);
            if let Some(body) = &request.body {
                builder = builder
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.clone());
            }
            let answer = tokio::time::timeout(request.timeout, answer_of(builder)).await;
            let (failure, retry_after) = match answer {
                Ok(Ok((status, _, body))) if (200..=299).contains(&status) => {
                    return Ok(ApiResponse {
                        method: request.method,
                        url,
                        body: body.to_vec(),
                    });
                }
                Ok(Ok((status, retry_after, body))) => {
                    let error = ApiError::Http {
                        method: method.clone(),
                        url: url.clone(),
                        status,
                        message: server_message(&body),
                        base_url: self.base_url.clone(),
                    };
                    if !retryable(status) {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Ok(Err(error)) if !error.is_timeout() || error.is_connect() => (
                    ApiError::network(&method, &url, describe(&error), attempt),
                    None,
                ),
                _ => (
                    ApiError::timed_out(&method, &url, request.timeout, attempt),
                    None,
                ),
            };
            if attempt >= attempts {
                return Err(failure);
            }
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << (attempt - 1).min(8))
                .min(MAX_BACKOFF);
            let jitter = backoff.mul_f64((random_u64() % 1000) as f64 / 2000.0);
            let delay = retry_after.unwrap_or(backoff + jitter).min(MAX_BACKOFF);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// The REST client: an [`ApiCore`] and the runtime its requests run on, a thread started on
/// first use and stopped (without waiting) when the client is dropped.
pub(crate) struct ApiClient {
    core: Arc<ApiCore>,
    runtime: OnceLock<Result<tokio::runtime::Runtime, String>>,
    /// The id of the keys' project, once asked (see `trace_url`).
    pub(crate) project_id: OnceLock<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("core", &self.core)
            .finish()
    }
}

impl Drop for ApiClient {
    fn drop(&mut self) {
        // Never waits: the user's thread may be inside an async runtime.
        if let Some(Ok(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ApiClient {
    /// A client for the Langfuse `target` (it must have keys); starts nothing yet.
    pub(crate) fn new(target: &Target, timeout: Duration) -> Result<Self, String> {
        let keys = target
            .langfuse
            .as_ref()
            .ok_or_else(|| "no Langfuse keys".to_string())?;
        Ok(Self {
            core: Arc::new(ApiCore {
                base_url: target.base_url.clone(),
                headers: langfuse_headers(keys)?,
                timeout,
                http: http_client(timeout)?,
            }),
            runtime: OnceLock::new(),
            project_id: OnceLock::new(),
        })
    }

    pub(crate) fn core(&self) -> &Arc<ApiCore> {
        &self.core
    }

    /// The base URL of the Langfuse host.
    pub(crate) fn base_url(&self) -> &str {
        &self.core.base_url
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, ApiError> {
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(THREAD_NAME)
                .enable_all()
                .build()
                .map_err(|error| format!("its runtime could not start: {error}"))
        });
        match runtime {
            Ok(runtime) => Ok(runtime.handle().clone()),
            Err(reason) => Err(ApiError::Unavailable {
                reason: reason.clone(),
            }),
        }
    }

    /// Runs `work` in the background; `false` when the runtime is not available.
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) -> bool {
        match self.handle() {
            Ok(handle) => {
                handle.spawn(work);
                true
            }
            Err(_) => false,
        }
    }

    /// Runs `work` on the client's runtime and waits for it on this thread: works with or without
    /// a runtime of the caller's, also inside a current-thread one.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<T, ApiError> {
        if std::thread::current().name() == Some(THREAD_NAME) {
            return Err(ApiError::Unavailable {
                reason: "a blocking call was made on the client's own thread; use the async call"
                    .into(),
            });
        }
        let handle = self.handle()?;
        let (sender, receiver) = mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = sender.send(work.await);
        });
        receiver.recv().unwrap_or_else(|_| {
            Err(ApiError::Unavailable {
                reason: "its runtime stopped before the answer came".into(),
            })
        })
    }

    /// Runs `work` on the client's runtime and awaits it: the caller's executor (any) is never
    /// blocked and needs no tokio reactor.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<T, ApiError> {
        let task = self.handle()?.spawn(work);
        task.await.unwrap_or_else(|error| {
            Err(ApiError::Unavailable {
                reason: format!("the request's task ended without an answer: {error}"),
            })
        })
    }
}
