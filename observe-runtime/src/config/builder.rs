//! The builder methods of [`Config`]: each overrides one setting (and drops the problem the
//! environment had with it). Only stores values: checking them is left to `validate`.

use std::sync::Arc;
use std::time::Duration;

use super::Config;
use crate::export::Exporter;

impl Config {
    fn overridden(mut self, variable: &str) -> Self {
        self.problems.retain(|(name, _)| *name != variable);
        self
    }

    /// The project's public key (`pk-lf-...`); `LANGFUSE_PUBLIC_KEY`.
    pub fn public_key(mut self, key: impl Into<String>) -> Self {
        self.public_key = Some(key.into());
        self
    }

    /// The project's secret key (`sk-lf-...`); `LANGFUSE_SECRET_KEY`. Never printed.
    pub fn secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_key = Some(key.into());
        self
    }

    /// The Langfuse host, such as `https://us.cloud.langfuse.com`; `LANGFUSE_BASE_URL`. `init`
    /// refuses a URL with a query, a fragment or credentials (`user:password@`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self.base_url_variable = "LANGFUSE_BASE_URL";
        self
    }

    /// The environment (`production`, `staging`...); `LANGFUSE_TRACING_ENVIRONMENT`.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// The release (a version or commit); `LANGFUSE_RELEASE`.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// The fraction of traces kept, from 0 to 1; `LANGFUSE_SAMPLE_RATE`.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = rate;
        self.overridden("LANGFUSE_SAMPLE_RATE")
    }

    /// Turns tracing on or off; `LANGFUSE_TRACING_ENABLED` (and `OTEL_SDK_DISABLED`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self.overridden("LANGFUSE_TRACING_ENABLED")
            .overridden("OTEL_SDK_DISABLED")
    }

    /// More diagnostics on stderr; `LANGFUSE_DEBUG`.
    pub fn debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self.overridden("LANGFUSE_DEBUG")
    }

    /// Spans per export request; `LANGFUSE_FLUSH_AT`. From 1 to 100,000; `init` refuses other
    /// values.
    pub fn flush_at(mut self, spans: usize) -> Self {
        self.flush_at = spans;
        self.overridden("LANGFUSE_FLUSH_AT")
    }

    /// The longest a finished span waits before it is sent; `LANGFUSE_FLUSH_INTERVAL`. From 1 ms to
    /// 1 hour; `init` refuses other values.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self.overridden("LANGFUSE_FLUSH_INTERVAL")
    }

    /// The time limit of one HTTP request; `LANGFUSE_TIMEOUT`. From 1 ms to 1 hour; `init` refuses
    /// other values.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.overridden("LANGFUSE_TIMEOUT")
    }

    /// The most spans waiting for export; beyond it new spans are dropped and counted;
    /// `LANGFUSE_MAX_QUEUE`. From 1 to [`MAX_QUEUE_LIMIT`](crate::MAX_QUEUE_LIMIT); `init` refuses
    /// other values.
    pub fn max_queue(mut self, spans: usize) -> Self {
        self.max_queue = spans;
        self.overridden("LANGFUSE_MAX_QUEUE")
    }

    /// The longest flushing and shutting down may take, even with the backend down;
    /// `LANGFUSE_SHUTDOWN_TIMEOUT`. From 1 ms to 1 hour; `init` refuses other values.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self.overridden("LANGFUSE_SHUTDOWN_TIMEOUT")
    }

    /// Whether `#[observe]` captures arguments and return values by default;
    /// `LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED`.
    pub fn capture_io(mut self, capture: bool) -> Self {
        self.capture_io = capture;
        self.overridden("LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED")
    }

    /// The size limit of one captured field in bytes as sent, JSON escaping and the truncation
    /// marker included (larger values are cut, with a marker); `LANGFUSE_MAX_FIELD_SIZE`. From
    /// 256 to 3,000,000; `init` refuses other values.
    pub fn max_field_bytes(mut self, bytes: usize) -> Self {
        self.max_field_bytes = bytes;
        self.overridden("LANGFUSE_MAX_FIELD_SIZE")
    }

    /// Keeps batches that cannot be delivered (the retries ran out, or the shutdown deadline
    /// came) in this directory, created if needed; the next client started with the same
    /// directory sends them first, once; `LANGFUSE_SPOOL_DIR`. Off by default.
    ///
    /// ```
    /// let config = observe_runtime::Config::default().spool_dir("/var/spool/my-app-langfuse");
    /// # drop(config);
    /// ```
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The cap on what the spool directory holds, in bytes (at least 65536; the oldest batches
    /// are evicted past it); `LANGFUSE_SPOOL_MAX_BYTES`, default 100 MiB.
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool_max_bytes = bytes;
        self.overridden("LANGFUSE_SPOOL_MAX_BYTES")
    }

    /// The `service.name` resource attribute; `OTEL_SERVICE_NAME`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute; `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.resource_attributes.retain(|(k, _)| *k != key);
        self.resource_attributes.push((key, value.into()));
        self.overridden("OTEL_RESOURCE_ATTRIBUTES")
    }

    /// Sends to a generic OpenTelemetry collector at this traces URL (used as is) instead of
    /// Langfuse; `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. Langfuse keys, when set, win.
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(url.into());
        self
    }

    /// Adds a header for the generic collector; `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp_headers.push((name.into(), value.into()));
        self.overridden("OTEL_EXPORTER_OTLP_HEADERS")
    }

    /// Makes traces that start in this process children of this W3C `traceparent` (read from
    /// `TRACEPARENT`, which [`crate::TraceContext::apply_to`] sets for child processes).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// The trace attributes (session, user, tags, ...) of the `traceparent`'s trace, as W3C
    /// baggage (read from `BAGGAGE`, which [`crate::TraceContext::apply_to`] sets): traces that
    /// start in this process carry them.
    pub fn baggage(mut self, baggage: impl Into<String>) -> Self {
        self.baggage = Some(baggage.into());
        self
    }

    /// Whether trace attributes (session, user, trace name, version, tags, metadata) travel with
    /// a trace to worker processes and services in W3C baggage, and are adopted from incoming
    /// baggage; `LANGFUSE_PROPAGATE_ATTRIBUTES`, on by default.
    ///
    /// Turn it off when user or session ids must not leave the process in headers, or when
    /// callers are not trusted to name the user: `apply_to` and `inject` then send only the
    /// `traceparent`, and incoming baggage is ignored.
    ///
    /// ```
    /// let config = observe_runtime::Config::default().propagate_attributes(false);
    /// ```
    pub fn propagate_attributes(mut self, propagate: bool) -> Self {
        self.propagate_attributes = propagate;
        self.overridden("LANGFUSE_PROPAGATE_ATTRIBUTES")
    }

    /// On SIGTERM and SIGINT, flush (within the shutdown timeout) and then end the process as the
    /// signal would have; `LANGFUSE_FLUSH_ON_SIGNALS`, off by default. Unix only (elsewhere a
    /// note says it is ignored).
    ///
    /// Leave it off when the program handles these signals itself (say with
    /// `tokio::signal::ctrl_c` for a graceful shutdown): the process then ends after the flush,
    /// whatever else waits for the signal. Drop the `FlushGuard` at the end of such a shutdown
    /// instead.
    ///
    /// ```
    /// let config = observe_runtime::Config::default().flush_on_signals(true);
    /// # drop(config);
    /// ```
    pub fn flush_on_signals(mut self, flush: bool) -> Self {
        self.flush_on_signals = flush;
        self.overridden("LANGFUSE_FLUSH_ON_SIGNALS")
    }

    /// Whether images, audio and documents in captured values (`data:` URIs, Anthropic's and
    /// Gemini's base64 blocks, [`Media`](crate::Media) values) are uploaded to Langfuse and
    /// replaced by media references (the default with Langfuse, the console and the memory
    /// exporter; never with a generic OpenTelemetry collector); `LANGFUSE_MEDIA_UPLOAD_ENABLED`.
    /// Off, they stay text within the field limit.
    ///
    /// ```
    /// let config = observe_runtime::Config::from_env().media_upload(false);
    /// # drop(config);
    /// ```
    pub fn media_upload(mut self, upload: bool) -> Self {
        self.media_upload = upload;
        self.overridden("LANGFUSE_MEDIA_UPLOAD_ENABLED")
    }

    /// Whether an argument or return value that is not `Serialize` is captured by its `Debug`
    /// text (the default) or as a placeholder naming its type; `LANGFUSE_CAPTURE_DEBUG`. `Debug`
    /// can print secrets (a client with an `Authorization` header, a settings struct): turn it off
    /// when such values pass through observed functions, or `skip(..)` them.
    ///
    /// ```
    /// let config = observe_runtime::Config::from_env().capture_debug(false);
    /// # drop(config);
    /// ```
    pub fn capture_debug(mut self, capture: bool) -> Self {
        self.capture_debug = capture;
        self.overridden("LANGFUSE_CAPTURE_DEBUG")
    }

    /// How long a prompt fetched by [`get_prompt`](crate::get_prompt) is served from the cache
    /// before it is refreshed in the background; zero turns the cache off.
    /// `LANGFUSE_PROMPT_CACHE_DEFAULT_TTL_SECONDS`, default 60 s. A request's own
    /// [`cache_ttl`](crate::PromptRequest::cache_ttl) wins.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = observe_runtime::Config::default().prompt_cache_ttl(Duration::from_secs(300));
    /// # drop(config);
    /// ```
    pub fn prompt_cache_ttl(mut self, ttl: Duration) -> Self {
        self.prompt_cache_ttl = ttl;
        self.overridden("LANGFUSE_PROMPT_CACHE_DEFAULT_TTL_SECONDS")
    }

    /// Prompts to fetch (their `production` version) in the background as soon as `init` has
    /// run, so that the first request of a service finds them cached. A prompt that cannot be
    /// fetched is reported once and fetched again on first use.
    ///
    /// ```
    /// let config = observe_runtime::Config::from_env().prefetch_prompts(["support/answer", "summarise"]);
    /// # drop(config);
    /// ```
    pub fn prefetch_prompts(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.prefetch_prompts
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Where finished spans go (default: Langfuse when keys are set, else the console).
    pub fn exporter(mut self, exporter: Exporter) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// A hook that rewrites captured values (input, output, metadata) before they leave the
    /// process. It runs on the exporter thread (with the in-memory exporter, where the span
    /// ends); what it observes itself (an `#[observe]` function it calls, a score it sends) is
    /// not recorded, like anything else on the exporter thread.
    ///
    /// ```
    /// let config = observe_runtime::Config::default().mask(|mut value| {
    ///     if let Some(object) = value.as_object_mut() {
    ///         object.remove("password");
    ///     }
    ///     value
    /// });
    /// ```
    pub fn mask(
        mut self,
        mask: impl Fn(serde_json::Value) -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.mask = Some(Arc::new(mask));
        self
    }
}
