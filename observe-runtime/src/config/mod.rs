//! Configuration: the `LANGFUSE_*` and `OTEL_*` environment, builder methods that override it, and
//! the validation `init` runs, with errors that name the variable, show the value (secrets masked)
//! and say what to do. Owns [`Config`], its defaults and the public constants; split into
//! [`env`](mod@env) (reading variables), [`builder`] (the methods that override them),
//! [`bounds`] (the ranges of durations and sizes), [`validate`] (the checks, giving the `Settings` the client runs with) and [`error`]. Knows
//! nothing about threads or HTTP, and must not import the client, guard, context, span or trace
//! modules (`Config::init` lives beside the client).

mod bounds;
mod builder;
mod env;
mod error;
mod validate;

use std::fmt;
use std::time::Duration;

use crate::capture::DEFAULT_FIELD_LIMIT;
use crate::export::target::{mask_secret, mask_url_credentials};
use crate::export::Exporter;
use crate::mask::Mask;

pub use error::ConfigError;
pub(crate) use validate::{Destination, Settings};

/// The default base URL (Langfuse Cloud, EU region).
pub const DEFAULT_BASE_URL: &str = "https://cloud.langfuse.com";

/// The default size of the span queue: 8,192 spans. It absorbs sixteen batches of the default 512
/// while the backend is slow or retrying, about 8 to 16 MB of typical 1-2 KB spans, and bounds the
/// memory telemetry can take; beyond it new spans are dropped and counted.
pub const DEFAULT_MAX_QUEUE: usize = 8192;

/// The largest span queue `init` accepts: 10,000,000 spans, for `LANGFUSE_MAX_QUEUE` and
/// [`Config::max_queue`]. The queue's slots are reserved when the client starts, so a bound far
/// above what memory can hold could not be honoured; beyond this one `init` refuses the value.
pub const MAX_QUEUE_LIMIT: usize = 10_000_000;

/// The default cap on the spool directory (`LANGFUSE_SPOOL_MAX_BYTES`): 100 MiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// The smallest spool cap accepted: one batch must fit.
pub(crate) const MIN_SPOOL_MAX_BYTES: u64 = 64 * 1024;

/// Everything `init` needs, from the environment ([`Config::from_env`]) and builder methods.
///
/// ```
/// use std::time::Duration;
/// use observe_runtime::Config;
/// let config = Config::from_env()
///     .environment("staging")
///     .sample_rate(0.25)
///     .flush_interval(Duration::from_secs(2));
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) public_key: Option<String>,
    pub(crate) secret_key: Option<String>,
    pub(crate) base_url: Option<String>,
    pub(crate) base_url_variable: &'static str,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) sample_rate: f64,
    pub(crate) enabled: bool,
    pub(crate) debug: bool,
    pub(crate) flush_at: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_queue: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) capture_io: bool,
    pub(crate) max_field_bytes: usize,
    pub(crate) service_name: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) otlp_headers: Vec<(String, String)>,
    pub(crate) exporter: Option<Exporter>,
    pub(crate) mask: Option<Mask>,
    /// The trace this process runs in (`TRACEPARENT`), joined by traces that start here.
    pub(crate) traceparent: Option<String>,
    /// The trace attributes of that trace (`BAGGAGE`).
    pub(crate) baggage: Option<String>,
    /// Whether trace attributes travel in `BAGGAGE` / `baggage` and are adopted from it.
    pub(crate) propagate_attributes: bool,
    /// Whether SIGTERM and SIGINT flush before the process ends (`LANGFUSE_FLUSH_ON_SIGNALS`).
    pub(crate) flush_on_signals: bool,
    /// Where undeliverable batches are kept for the next start (`LANGFUSE_SPOOL_DIR`).
    pub(crate) spool_dir: Option<std::path::PathBuf>,
    /// The cap on what the spool holds, in bytes (`LANGFUSE_SPOOL_MAX_BYTES`).
    pub(crate) spool_max_bytes: u64,
    /// How long a fetched prompt is served before it is refreshed
    /// (`LANGFUSE_PROMPT_CACHE_DEFAULT_TTL_SECONDS`).
    pub(crate) prompt_cache_ttl: Duration,
    /// Whether media in captured values is uploaded (`LANGFUSE_MEDIA_UPLOAD_ENABLED`).
    pub(crate) media_upload: bool,
    /// Whether values that are not `Serialize` are captured by their `Debug` text
    /// (`LANGFUSE_CAPTURE_DEBUG`).
    pub(crate) capture_debug: bool,
    /// Prompts fetched in the background at `init`.
    pub(crate) prefetch_prompts: Vec<String>,
    /// Values from the environment that could not be read: reported by `init` unless a builder
    /// method set the same setting.
    pub(crate) problems: Vec<(&'static str, ConfigError)>,
    /// Corrections made while reading (trimmed quotes...), said once at `init`.
    pub(crate) notes: Vec<String>,
}

impl Default for Config {
    /// The defaults, without reading the environment.
    fn default() -> Self {
        Self {
            public_key: None,
            secret_key: None,
            base_url: None,
            base_url_variable: "LANGFUSE_BASE_URL",
            environment: None,
            release: None,
            sample_rate: 1.0,
            enabled: true,
            debug: false,
            flush_at: 512,
            flush_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            max_queue: DEFAULT_MAX_QUEUE,
            shutdown_timeout: Duration::from_secs(5),
            capture_io: true,
            max_field_bytes: DEFAULT_FIELD_LIMIT,
            service_name: None,
            resource_attributes: Vec::new(),
            otlp_endpoint: None,
            otlp_headers: Vec::new(),
            exporter: None,
            mask: None,
            traceparent: None,
            baggage: None,
            propagate_attributes: true,
            spool_dir: None,
            flush_on_signals: false,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            prompt_cache_ttl: crate::prompt::DEFAULT_PROMPT_CACHE_TTL,
            prefetch_prompts: Vec::new(),
            capture_debug: true,
            media_upload: true,
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("public_key", &self.public_key)
            .field("secret_key", &self.secret_key.as_deref().map(mask_secret))
            .field(
                "base_url",
                &self.base_url.as_deref().map(mask_url_credentials),
            )
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("sample_rate", &self.sample_rate)
            .field("enabled", &self.enabled)
            .field("debug", &self.debug)
            .field("flush_at", &self.flush_at)
            .field("flush_interval", &self.flush_interval)
            .field("timeout", &self.timeout)
            .field("max_queue", &self.max_queue)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("capture_io", &self.capture_io)
            .field("propagate_attributes", &self.propagate_attributes)
            .field("max_field_bytes", &self.max_field_bytes)
            .field("service_name", &self.service_name)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(mask_url_credentials),
            )
            .field(
                "otlp_headers",
                &self
                    .otlp_headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), mask_secret(v)))
                    .collect::<Vec<_>>(),
            )
            .field("exporter", &self.exporter)
            .field("mask", &self.mask.as_ref().map(|_| "<fn>"))
            .field("flush_on_signals", &self.flush_on_signals)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .finish()
    }
}

/// Helpers shared by the unit tests of the submodules.
#[cfg(test)]
mod test_support {
    use super::{Config, Destination, Settings};
    use crate::export::target::Target;

    pub(super) fn settings(vars: &[(&str, &str)]) -> Settings {
        Config::from_vars(vars.iter().copied())
            .validate()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(super) fn target(settings: &Settings) -> &Target {
        match &settings.destination {
            Destination::Otlp(target) => target,
            _ => panic!("not the OTLP exporter"),
        }
    }

    pub(super) const KEYS: [(&str, &str); 2] = [
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
    ];
}
