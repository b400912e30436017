//! Fetching a prompt: [`get_prompt`] and its [`PromptRequest`], served from the cache when it
//! can, fetched now on a miss (bounded attempts and time), refreshed in the background when
//! stale, with the user's fallback when the first fetch fails. Also the start-up pre-fetch.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use reqwest::Method;

use super::cache::{Key, Lookup, PromptCache, Refreshed, Report, Selector, Slot};
use super::types::{Body, ChatMessage};
use super::{Prompt, PromptError};
use crate::api::{self, ApiClient, ApiCore, ApiError};
use crate::diagnostics;
use crate::percent;

/// The TTL when neither the request nor the configuration sets one (the official SDKs' default).
pub const DEFAULT_PROMPT_CACHE_TTL: Duration = Duration::from_secs(60);

/// The label asked for when neither a label nor a version is.
const PRODUCTION: &str = "production";

pub(super) static CACHE: LazyLock<PromptCache> = LazyLock::new(PromptCache::default);
static DEFAULT_TTL_MILLIS: AtomicU64 = AtomicU64::new(60_000);

/// A new client: its default TTL, and an empty cache (the keys may be another project's).
pub(crate) fn configure(default_ttl: Duration) {
    DEFAULT_TTL_MILLIS.store(default_ttl.as_millis() as u64, Ordering::Relaxed);
    CACHE.clear();
}

fn default_ttl() -> Duration {
    Duration::from_millis(DEFAULT_TTL_MILLIS.load(Ordering::Relaxed))
}

/// `/api/public/v2/prompts/{name}`: the name is one path segment, folders included.
pub(super) fn prompt_path(name: &str) -> String {
    let mut path = String::from("/api/public/v2/prompts/");
    percent::encode_into(name, &mut path);
    path
}

/// Asks Langfuse for one prompt version; runs on the API client's runtime.
async fn fetch_from(
    core: Arc<ApiCore>,
    name: String,
    selector: Selector,
    attempts: u32,
    timeout: Duration,
) -> Result<Prompt, ApiError> {
    let mut path = prompt_path(&name);
    match &selector {
        Selector::Label(label) => {
            path.push_str("?label=");
            percent::encode_into(label, &mut path);
        }
        Selector::Version(version) => path.push_str(&format!("?version={version}")),
    }
    let mut request = core.request(Method::GET, path);
    request.attempts = attempts;
    request.timeout = timeout;
    let response = core.send(request).await?;
    Prompt::from_wire(response.json()?).map_err(|reason| ApiError::InvalidResponse {
        method: response.method.to_string(),
        url: response.url.clone(),
        reason,
    })
}

/// A prompt error for `name` and what was asked: 404 is [`PromptError::NotFound`].
pub(super) fn prompt_error(name: &str, asked: String, source: ApiError) -> PromptError {
    match source {
        ApiError::Http {
            status: 404,
            message,
            ..
        } => PromptError::NotFound {
            name: name.to_string(),
            asked,
            message,
        },
        source => PromptError::Api {
            name: name.to_string(),
            asked,
            source: Box::new(source),
        },
    }
}

/// Refreshes a stale entry in the background; the failure of a refresh is said once until the
/// prompt answers again.
fn refresh(api: &ApiClient, name: String, selector: Selector, slot: Arc<Slot>) {
    let core = api.core().clone();
    let timeout = core.timeout();
    let work_name = name.clone();
    let work_selector = selector.clone();
    let work_slot = slot.clone();
    let spawned = api.spawn(async move {
        let (name, selector, slot) = (work_name, work_selector, work_slot);
        let fetched = fetch_from(
            core,
            name.clone(),
            selector.clone(),
            api::DEFAULT_ATTEMPTS,
            timeout,
        )
        .await;
        let (outcome, error) = match fetched {
            Ok(prompt) => (Refreshed::Fetched(prompt), None),
            Err(error) if error.status() == Some(404) => (Refreshed::NotFound, Some(error)),
            Err(error) => (Refreshed::Failed, Some(error)),
        };
        let evicted = matches!(outcome, Refreshed::NotFound);
        let report = CACHE.refreshed(&name, &selector, &slot, outcome);
        let asked = selector.describe();
        match (report, error) {
            (Report::FirstFailure, Some(error)) => diagnostics::warn(
                &format!("prompt-refresh {name} {asked}"),
                format!(
                    "prompt {name:?} ({asked}) could not be refreshed; the cached version keeps \
                     being served and the refresh is retried (said once until it succeeds): \
                     {error}"
                ),
            ),
            (Report::Recovered, _) => diagnostics::note(format!(
                "prompt {name:?} ({asked}) was refreshed again after failures"
            )),
            _ if evicted => diagnostics::debug(|| {
                format!("prompt {name:?} ({asked}) is gone from Langfuse: its cache entry was removed")
            }),
            _ => {}
        }
    });
    if !spawned {
        CACHE.refreshed(&name, &selector, &slot, Refreshed::Failed);
    }
}

/// Fetches the `production` version of each name in the background and caches it, so that the
/// first request of a service does not wait; failures are said once each.
pub(crate) fn prefetch(names: &[String]) {
    let Ok(api) = api::installed() else {
        return;
    };
    let ttl = default_ttl();
    if ttl.is_zero() {
        return;
    }
    for name in names {
        let core = api.core().clone();
        let name = name.clone();
        api.spawn(async move {
            let selector = Selector::Label(PRODUCTION.into());
            let timeout = core.timeout();
            match fetch_from(
                core,
                name.clone(),
                selector.clone(),
                api::DEFAULT_ATTEMPTS,
                timeout,
            )
            .await
            {
                Ok(prompt) => CACHE.put(&name, &selector, prompt, ttl),
                Err(error) => diagnostics::warn(
                    &format!("prompt-prefetch {name}"),
                    format!("prompt {name:?} could not be pre-fetched at start-up: {error}"),
                ),
            }
        });
    }
}

/// Asks for a prompt of Langfuse's prompt management; see [`PromptRequest`].
///
/// ```no_run
/// # fn demo() -> Result<(), observe_runtime::PromptError> {
/// let prompt = observe_runtime::get_prompt("team/summarise")
///     .label("staging")
///     .fallback_text("Summarise: {{text}}")
///     .fetch()?;
/// let text = prompt.compile(&serde_json::json!({"text": "..."}))?;
/// # Ok(()) }
/// ```
pub fn get_prompt<'a>(name: impl Into<Cow<'a, str>>) -> PromptRequest<'a> {
    PromptRequest {
        name: name.into(),
        label: None,
        version: None,
        cache_ttl: None,
        fallback: None,
        attempts: api::DEFAULT_ATTEMPTS,
        timeout: None,
    }
}

/// A request for one prompt version, built by [`get_prompt`].
///
/// - By label (`.label(..)`), by number (`.version(..)`), or else the `production` label.
/// - Cached per name and label or name and version for the TTL
///   (`LANGFUSE_PROMPT_CACHE_DEFAULT_TTL_SECONDS`, [`Config::prompt_cache_ttl`], or
///   `.cache_ttl(..)`; 60 s by default, zero turns the cache off). A hit is a hash lookup.
/// - Past its TTL, the cached version is returned at once and refreshed in the background, one
///   refresh per key however many threads ask. While the server is down or slow it keeps being
///   served, and the failure is said once. A refresh answered 404 removes the entry.
/// - A miss fetches now: up to 3 attempts (`.max_retries(..)`), each within `LANGFUSE_TIMEOUT`
///   (`.fetch_timeout(..)`). If that fails, the fallback is returned when one was given
///   ([`Prompt::is_fallback`], version 0, never cached, never linked), else the error.
///
/// [`Config::prompt_cache_ttl`]: crate::Config::prompt_cache_ttl
#[derive(Debug, Clone)]
#[must_use = "a prompt request does nothing until .fetch() or .fetch_async()"]
pub struct PromptRequest<'a> {
    name: Cow<'a, str>,
    label: Option<Cow<'a, str>>,
    version: Option<u32>,
    cache_ttl: Option<Duration>,
    fallback: Option<Body>,
    attempts: u32,
    timeout: Option<Duration>,
}

/// Where a request stands after the cache was asked.
enum Start {
    Done(Prompt),
    Fetch(Arc<ApiClient>, Selector),
    Failed(Selector, ApiError),
}

impl<'a> PromptRequest<'a> {
    /// The version with this label (`production`, `staging`, `latest`, ...).
    pub fn label(mut self, label: impl Into<Cow<'a, str>>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// This version number.
    pub fn version(mut self, version: u32) -> Self {
        self.version = Some(version);
        self
    }

    /// How long this prompt is served from the cache before it is refreshed; zero fetches it on
    /// every call and caches nothing.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }

    /// The text prompt to use when the prompt cannot be fetched and nothing is cached.
    pub fn fallback_text(mut self, text: impl Into<String>) -> Self {
        self.fallback = Some(Body::Text(text.into()));
        self
    }

    /// The chat prompt to use when the prompt cannot be fetched and nothing is cached.
    pub fn fallback_chat(mut self, messages: Vec<ChatMessage>) -> Self {
        self.fallback = Some(Body::Chat(messages));
        self
    }

    /// Retries after the first attempt of a fetch on a miss (default 2): 408, 429, 5xx and
    /// network errors are retried.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.attempts = retries.saturating_add(1);
        self
    }

    /// The time limit of each attempt (default `LANGFUSE_TIMEOUT`, 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn selector(&self) -> Result<Selector, PromptError> {
        let invalid = |reason: &str| PromptError::InvalidRequest {
            name: self.name.to_string(),
            reason: reason.to_string(),
        };
        if self.name.trim().is_empty() {
            return Err(invalid(
                "the name is empty; pass the prompt's name as shown in Langfuse",
            ));
        }
        match (&self.label, self.version) {
            (Some(label), Some(version)) => Err(invalid(&format!(
                "both label {label:?} and version {version} were given, and Langfuse refuses \
                 that; ask for one of them"
            ))),
            (Some(label), None) if label.is_empty() => Err(invalid(
                "the label is empty; leave it out for \"production\"",
            )),
            (Some(label), None) => Ok(Selector::Label(label.to_string())),
            (None, Some(version)) => Ok(Selector::Version(version)),
            (None, None) => Ok(Selector::Label(PRODUCTION.into())),
        }
    }

    fn ttl(&self) -> Duration {
        self.cache_ttl.unwrap_or_else(default_ttl)
    }

    /// The cache key asked for, without allocating; `None` when the request is invalid.
    fn key(&self) -> Option<Key<'_>> {
        match (&self.label, self.version) {
            (None, None) => Some(Key::Label(PRODUCTION)),
            (Some(label), None) if !label.is_empty() => Some(Key::Label(label)),
            (None, Some(version)) => Some(Key::Version(version)),
            _ => None,
        }
    }

    fn start(&self) -> Result<Start, PromptError> {
        // Valid requests only: the key borrows the request, so a hit allocates nothing.
        let Some(key) = self.key().filter(|_| !self.name.trim().is_empty()) else {
            return Err(match self.selector() {
                Err(error) => error,
                Ok(selector) => PromptError::InvalidRequest {
                    name: self.name.to_string(),
                    reason: format!("{} cannot be asked for", selector.describe()),
                },
            });
        };
        if !self.ttl().is_zero() {
            match CACHE.get(&self.name, key) {
                Lookup::Fresh(prompt) | Lookup::Stale(prompt) => return Ok(Start::Done(prompt)),
                Lookup::Refresh(prompt, slot) => {
                    let selector = self.selector()?;
                    match api::installed() {
                        Ok(api) => refresh(&api, self.name.to_string(), selector, slot),
                        Err(_) => {
                            CACHE.refreshed(&self.name, &selector, &slot, Refreshed::Failed);
                        }
                    }
                    return Ok(Start::Done(prompt));
                }
                Lookup::Miss => {}
            }
        }
        let selector = self.selector()?;
        Ok(match api::installed() {
            Ok(api) => Start::Fetch(api, selector),
            Err(error) => Start::Failed(selector, error),
        })
    }

    fn work(
        &self,
        api: &ApiClient,
        selector: &Selector,
    ) -> impl std::future::Future<Output = Result<Prompt, ApiError>> + Send + 'static {
        let core = api.core().clone();
        let timeout = self.timeout.unwrap_or_else(|| core.timeout());
        fetch_from(
            core,
            self.name.to_string(),
            selector.clone(),
            self.attempts,
            timeout,
        )
    }

    fn finish(
        self,
        selector: Selector,
        fetched: Result<Prompt, ApiError>,
    ) -> Result<Prompt, PromptError> {
        match fetched {
            Ok(prompt) => {
                let ttl = self.ttl();
                if !ttl.is_zero() {
                    CACHE.put(&self.name, &selector, prompt.clone(), ttl);
                }
                Ok(prompt)
            }
            Err(source) => {
                let error = prompt_error(&self.name, selector.describe(), source);
                match self.fallback {
                    Some(body) => {
                        diagnostics::warn(
                            &format!("prompt-fallback {}", self.name),
                            format!("{error}; using the fallback given to get_prompt"),
                        );
                        Ok(Prompt::fallback(&self.name, body))
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// Fetches the prompt, blocking this thread on a miss (never on a hit or a stale entry).
    /// Works on any thread, with or without a tokio runtime, also inside a current-thread one:
    /// the request runs on the client's own runtime. In async code prefer
    /// [`fetch_async`](Self::fetch_async), which does not block the executor's thread.
    pub fn fetch(self) -> Result<Prompt, PromptError> {
        match self.start()? {
            Start::Done(prompt) => Ok(prompt),
            Start::Fetch(api, selector) => {
                let fetched = api.block_on(self.work(&api, &selector));
                self.finish(selector, fetched)
            }
            Start::Failed(selector, error) => self.finish(selector, Err(error)),
        }
    }

    /// Fetches the prompt without blocking: works on any executor (tokio, async-std, smol,
    /// `futures::executor`); the request runs on the client's own runtime.
    pub async fn fetch_async(self) -> Result<Prompt, PromptError> {
        match self.start()? {
            Start::Done(prompt) => Ok(prompt),
            Start::Fetch(api, selector) => {
                let fetched = api.run(self.work(&api, &selector)).await;
                self.finish(selector, fetched)
            }
            Start::Failed(selector, error) => self.finish(selector, Err(error)),
        }
    }
}
