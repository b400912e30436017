//! Configuration: the `LANGFUSE_*` and `OTEL_*` environment, builder methods that override it, and
//! the validation `init` runs, with errors that name the variable, show the value (secrets masked)
//! and say what to do. Knows nothing about threads or HTTP.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::capture::DEFAULT_FIELD_LIMIT;
use crate::diagnostics;
use crate::export::target::{is_loopback, mask_secret, LangfuseKeys, Target};
use crate::export::Exporter;
pub(crate) use crate::mask::Mask;

/// The default base URL (Langfuse Cloud, EU region).
pub const DEFAULT_BASE_URL: &str = "https://cloud.langfuse.com";

/// The default size of the span queue: 8,192 spans. It absorbs sixteen batches of the default 512
/// while the backend is slow or retrying, about 8 to 16 MB of typical 1-2 KB spans, and bounds the
/// memory telemetry can take; beyond it new spans are dropped and counted.
pub const DEFAULT_MAX_QUEUE: usize = 8192;

/// CI and platform variables that hold the commit being run, read when `LANGFUSE_RELEASE` is unset.
const RELEASE_FALLBACKS: [&str; 10] = [
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "CIRCLE_SHA1",
    "BITBUCKET_COMMIT",
    "BUILD_SOURCEVERSION",
    "VERCEL_GIT_COMMIT_SHA",
    "RENDER_GIT_COMMIT",
    "RAILWAY_GIT_COMMIT_SHA",
    "HEROKU_SLUG_COMMIT",
    "SOURCE_VERSION",
];

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
            .field("base_url", &self.base_url)
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
            .field("max_field_bytes", &self.max_field_bytes)
            .field("service_name", &self.service_name)
            .field("otlp_endpoint", &self.otlp_endpoint)
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
            .finish()
    }
}

/// A setting `init` refused, with what to do about it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Only one of the two Langfuse keys is set (or the OTLP exporter was asked for with none).
    MissingCredentials {
        /// The variables that are not set.
        missing: Vec<&'static str>,
    },
    /// The public key holds a secret key and the secret key a public key.
    KeysSwapped,
    /// The public key holds a secret key (`sk-lf-...`).
    SecretKeyAsPublicKey {
        /// The value, masked.
        masked: String,
    },
    /// The secret key holds a public key (`pk-lf-...`).
    PublicKeyAsSecretKey {
        /// The value.
        value: String,
    },
    /// A value that does not parse or is out of range.
    InvalidValue {
        /// The variable (or builder method) the value came from.
        variable: &'static str,
        /// The value as given (secrets masked).
        value: String,
        /// What is expected instead.
        expected: String,
    },
    /// `init` was called while a client from an earlier `init` is still live.
    AlreadyInitialized,
    /// The exporter thread could not be started.
    Startup(String),
    /// More than one problem, each listed.
    Several(Vec<ConfigError>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCredentials { missing } => write!(
                f,
                "Langfuse credentials are incomplete: {} not set. Set both LANGFUSE_PUBLIC_KEY \
                 (pk-lf-...) and LANGFUSE_SECRET_KEY (sk-lf-...) from the project settings in \
                 Langfuse, or unset both to print traces to the console",
                match missing.as_slice() {
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(" and ")),
                }
            ),
            Self::KeysSwapped => f.write_str(
                "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are swapped: the public key holds a \
                 secret key (sk-lf-...) and the secret key a public key (pk-lf-...); exchange the \
                 two values",
            ),
            Self::SecretKeyAsPublicKey { masked } => write!(
                f,
                "LANGFUSE_PUBLIC_KEY holds a secret key ({masked}): set it to the project's \
                 public key (pk-lf-...), and never share the secret key"
            ),
            Self::PublicKeyAsSecretKey { value } => write!(
                f,
                "LANGFUSE_SECRET_KEY holds a public key ({value:?}): set it to the secret key \
                 (sk-lf-...) of the same project as LANGFUSE_PUBLIC_KEY"
            ),
            Self::InvalidValue {
                variable,
                value,
                expected,
            } => write!(f, "{variable}={value:?} is not valid: {expected}"),
            Self::AlreadyInitialized => f.write_str(
                "observe_runtime is already initialized: the FlushGuard of an earlier init() is \
                 still alive; keep that one guard for the whole program (or shut it down before \
                 calling init again)",
            ),
            Self::Startup(why) => write!(f, "could not start the exporter thread: {why}"),
            Self::Several(errors) => {
                write!(f, "{} configuration problems:", errors.len())?;
                for error in errors {
                    write!(f, "\n  - {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(variable: &'static str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        variable,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// Removes surrounding whitespace and one pair of matching quotes; notes that it did.
fn clean(variable: &str, raw: &str, notes: &mut Vec<String>) -> String {
    let trimmed = raw.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| {
            trimmed
                .strip_prefix(*q)
                .and_then(|rest| rest.strip_suffix(*q))
        })
        .unwrap_or(trimmed)
        .trim();
    if unquoted != raw {
        notes.push(format!(
            "{variable} had surrounding whitespace or quotes; they were removed"
        ));
    }
    unquoted.to_string()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.parse().ok()?;
    (0.0..1e9)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

/// Percent-decodes one value of `OTEL_EXPORTER_OTLP_HEADERS`.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,key2=value2`, values percent-encoded).
pub(crate) fn parse_otlp_headers(raw: &str) -> Result<Vec<(String, String)>, ConfigError> {
    const VARIABLE: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    let shown = |pair: &str| match pair.split_once('=') {
        Some((key, value)) => format!("{}={}", key.trim(), mask_secret(value)),
        None => pair.to_string(),
    };
    let mut headers = Vec::new();
    for (index, pair) in raw.split(',').enumerate() {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(invalid(
                VARIABLE,
                &shown(pair),
                format!(
                    "pair {} has no '=': write comma-separated key=value pairs, such as \
                     Authorization=Basic%20<base64>",
                    index + 1
                ),
            ));
        };
        let key = key.trim();
        let value = value.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                VARIABLE,
                &shown(pair),
                format!("pair {} has an empty or invalid header name", index + 1),
            ));
        }
        if value.contains(' ') {
            return Err(invalid(
                VARIABLE,
                &shown(pair),
                format!(
                    "the value of {key} contains a raw space; values are percent-encoded, so \
                     write %20 for a space (for example Authorization=Basic%20<base64>)"
                ),
            ));
        }
        let Some(decoded) = percent_decode(value) else {
            return Err(invalid(
                VARIABLE,
                &shown(pair),
                format!("the value of {key} has a malformed percent-encoding (use %XX)"),
            ));
        };
        headers.push((key.to_string(), decoded));
    }
    Ok(headers)
}

/// A source of variables: the process environment, or a list given by the caller.
fn read_from(get: &dyn Fn(&str) -> Option<String>) -> Config {
    let mut config = Config::default();
    let mut notes = Vec::new();
    let text = |name: &'static str, notes: &mut Vec<String>| {
        get(name)
            .map(|raw| clean(name, &raw, notes))
            .filter(|value| !value.is_empty())
    };

    config.public_key = text("LANGFUSE_PUBLIC_KEY", &mut notes);
    config.secret_key = text("LANGFUSE_SECRET_KEY", &mut notes);
    if let Some(url) = text("LANGFUSE_BASE_URL", &mut notes) {
        config.base_url = Some(url);
    } else if let Some(url) = text("LANGFUSE_HOST", &mut notes) {
        config.base_url = Some(url);
        config.base_url_variable = "LANGFUSE_HOST";
    }
    config.environment = text("LANGFUSE_TRACING_ENVIRONMENT", &mut notes);
    config.release = text("LANGFUSE_RELEASE", &mut notes).or_else(|| {
        RELEASE_FALLBACKS
            .iter()
            .find_map(|name| text(name, &mut notes))
    });
    config.service_name = text("OTEL_SERVICE_NAME", &mut notes);
    config.traceparent = text("TRACEPARENT", &mut notes);
    config.otlp_endpoint = text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &mut notes).or_else(|| {
        text("OTEL_EXPORTER_OTLP_ENDPOINT", &mut notes)
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    });

    let mut problems: Vec<(&'static str, ConfigError)> = Vec::new();
    macro_rules! parsed {
        ($name:literal, $parse:expr, $expected:literal, $set:expr) => {
            if let Some(value) = text($name, &mut notes) {
                match $parse(value.as_str()) {
                    Some(parsed) => $set(parsed),
                    None => problems.push(($name, invalid($name, &value, $expected))),
                }
            }
        };
    }
    parsed!(
        "LANGFUSE_SAMPLE_RATE",
        |v: &str| v.parse::<f64>().ok(),
        "expected a number from 0 to 1, the fraction of traces to keep (1 keeps all)",
        |v| config.sample_rate = v
    );
    parsed!(
        "LANGFUSE_TRACING_ENABLED",
        parse_bool,
        "expected true or false",
        |v| config.enabled = v
    );
    parsed!(
        "OTEL_SDK_DISABLED",
        parse_bool,
        "expected true or false",
        |v: bool| if v {
            config.enabled = false
        }
    );
    parsed!(
        "LANGFUSE_DEBUG",
        parse_bool,
        "expected true or false",
        |v| config.debug = v
    );
    parsed!(
        "LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED",
        parse_bool,
        "expected true or false",
        |v| config.capture_io = v
    );
    parsed!(
        "LANGFUSE_FLUSH_AT",
        |v: &str| v.parse::<usize>().ok().filter(|n| *n > 0),
        "expected a whole number of spans greater than 0, such as 512",
        |v| config.flush_at = v
    );
    parsed!(
        "LANGFUSE_MAX_QUEUE",
        |v: &str| v.parse::<usize>().ok().filter(|n| *n > 0),
        "expected a whole number of spans greater than 0, such as 8192",
        |v| config.max_queue = v
    );
    parsed!(
        "LANGFUSE_MAX_FIELD_SIZE",
        |v: &str| v.parse::<usize>().ok().filter(|n| *n > 0),
        "expected a number of bytes greater than 0, such as 1000000",
        |v| config.max_field_bytes = v
    );
    parsed!(
        "LANGFUSE_FLUSH_INTERVAL",
        parse_seconds,
        "expected seconds, such as 5 or 0.5",
        |v| config.flush_interval = v
    );
    parsed!(
        "LANGFUSE_TIMEOUT",
        parse_seconds,
        "expected seconds, such as 5 or 0.5",
        |v| config.timeout = v
    );
    parsed!(
        "LANGFUSE_SHUTDOWN_TIMEOUT",
        parse_seconds,
        "expected seconds, such as 5 or 0.5",
        |v| config.shutdown_timeout = v
    );
    if let Some(raw) = get("OTEL_EXPORTER_OTLP_HEADERS") {
        match parse_otlp_headers(&raw) {
            Ok(headers) => config.otlp_headers = headers,
            Err(error) => problems.push(("OTEL_EXPORTER_OTLP_HEADERS", error)),
        }
    }
    if let Some(raw) = get("OTEL_RESOURCE_ATTRIBUTES") {
        match parse_otlp_headers(&raw) {
            Ok(attributes) => config.resource_attributes = attributes,
            Err(_) => problems.push((
                "OTEL_RESOURCE_ATTRIBUTES",
                invalid(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    &raw,
                    "expected comma-separated key=value pairs with percent-encoded values",
                ),
            )),
        }
    }
    config.problems = problems;
    config.notes = notes;
    config
}

impl Config {
    /// Reads the environment: `LANGFUSE_*` and the `OTEL_*` variables listed in the README. Never
    /// fails; values that cannot be read are reported by [`Config::init`].
    pub fn from_env() -> Config {
        read_from(&|name| std::env::var(name).ok())
    }

    /// Reads the given variables instead of the process environment (for tests, and for programs
    /// that keep their settings elsewhere).
    ///
    /// ```
    /// let config = observe_runtime::Config::from_vars([("LANGFUSE_SAMPLE_RATE", "2")]);
    /// assert_eq!(
    ///     config.init().unwrap_err().to_string(),
    ///     "LANGFUSE_SAMPLE_RATE=\"2\" is not valid: expected a number from 0 to 1, the fraction of traces to keep (1 keeps all)"
    /// );
    /// ```
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Config {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        read_from(&|name| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

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

    /// The Langfuse host, such as `https://us.cloud.langfuse.com`; `LANGFUSE_BASE_URL`.
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

    /// Spans per export request; `LANGFUSE_FLUSH_AT`.
    pub fn flush_at(mut self, spans: usize) -> Self {
        self.flush_at = spans;
        self.overridden("LANGFUSE_FLUSH_AT")
    }

    /// The longest a finished span waits before it is sent; `LANGFUSE_FLUSH_INTERVAL`.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self.overridden("LANGFUSE_FLUSH_INTERVAL")
    }

    /// The time limit of one HTTP request; `LANGFUSE_TIMEOUT`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.overridden("LANGFUSE_TIMEOUT")
    }

    /// The most spans waiting for export; beyond it new spans are dropped and counted;
    /// `LANGFUSE_MAX_QUEUE`.
    pub fn max_queue(mut self, spans: usize) -> Self {
        self.max_queue = spans;
        self.overridden("LANGFUSE_MAX_QUEUE")
    }

    /// The longest flushing and shutting down may take, even with the backend down;
    /// `LANGFUSE_SHUTDOWN_TIMEOUT`.
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

    /// The size limit of one captured field in bytes (larger values are cut, with a marker);
    /// `LANGFUSE_MAX_FIELD_SIZE`.
    pub fn max_field_bytes(mut self, bytes: usize) -> Self {
        self.max_field_bytes = bytes;
        self.overridden("LANGFUSE_MAX_FIELD_SIZE")
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

    /// Where finished spans go (default: Langfuse when keys are set, else the console).
    pub fn exporter(mut self, exporter: Exporter) -> Self {
        self.exporter = Some(exporter);
        self
    }

    /// A hook that rewrites captured values (input, output, metadata) before they leave the
    /// process.
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

    /// Validation: the settings the client runs with, or every problem found.
    pub(crate) fn validate(self) -> Result<Settings, ConfigError> {
        let mut errors: Vec<ConfigError> = self.problems.iter().map(|(_, e)| e.clone()).collect();
        let mut warnings = Vec::new();
        let notes = self.notes.clone();

        if !(0.0..=1.0).contains(&self.sample_rate) || self.sample_rate.is_nan() {
            errors.push(invalid(
                "LANGFUSE_SAMPLE_RATE",
                &self.sample_rate.to_string(),
                "expected a number from 0 to 1, the fraction of traces to keep (1 keeps all)",
            ));
        }
        if self.flush_at == 0 {
            errors.push(invalid(
                "LANGFUSE_FLUSH_AT",
                "0",
                "expected a whole number of spans greater than 0, such as 512",
            ));
        }
        if self.max_queue == 0 {
            errors.push(invalid(
                "LANGFUSE_MAX_QUEUE",
                "0",
                "expected a whole number of spans greater than 0, such as 8192",
            ));
        }
        if let Some(environment) = &self.environment {
            if !valid_environment(environment) {
                errors.push(invalid(
                    "LANGFUSE_TRACING_ENVIRONMENT",
                    environment,
                    "Langfuse would silently store it as \"default\": use at most 40 lowercase \
                     letters, digits, '-' and '_', not starting with \"langfuse\" (for example \
                     \"production\")",
                ));
            }
        }

        let has_keys = self.public_key.is_some() || self.secret_key.is_some();
        let wants_otlp = matches!(self.exporter, Some(Exporter::Otlp));
        let target = if has_keys || (wants_otlp && self.otlp_endpoint.is_none()) {
            match self.langfuse_target(&mut warnings) {
                Ok(target) => Some(target),
                Err(mut found) => {
                    errors.append(&mut found);
                    None
                }
            }
        } else if let Some(endpoint) = &self.otlp_endpoint {
            match check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint) {
                Ok(url) => Some(Target {
                    endpoint: url.clone(),
                    base_url: url,
                    headers: self.otlp_headers.clone(),
                    langfuse: None,
                }),
                Err(error) => {
                    errors.push(error);
                    None
                }
            }
        } else {
            None
        };
        if has_keys && self.otlp_endpoint.is_some() {
            diagnostics::debug(|| {
                format!(
                "both Langfuse keys and an OTLP endpoint are configured; traces go to Langfuse \
                 and the OTLP endpoint {} is not used",
                self.otlp_endpoint.as_deref().unwrap_or_default()
            )
            });
        }

        let sink = match (&self.exporter, target) {
            (Some(Exporter::Memory(memory)), _) => SinkChoice::Memory(memory.clone()),
            (Some(Exporter::Console), _) => SinkChoice::Console,
            (Some(Exporter::Otlp) | None, Some(target)) => SinkChoice::Otlp(target),
            (Some(Exporter::Otlp), None) => SinkChoice::Console, // errors explain why
            (None, None) => SinkChoice::ConsoleNoCredentials,
        };

        match errors.len() {
            0 => {}
            1 => return Err(errors.remove(0)),
            _ => return Err(ConfigError::Several(errors)),
        }
        let resource_service = self
            .service_name
            .clone()
            .or_else(|| {
                self.resource_attributes
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "unknown_service:rust".to_string());
        Ok(Settings {
            sample_rate: self.sample_rate,
            enabled: self.enabled,
            debug: self.debug,
            flush_at: self.flush_at,
            flush_interval: self.flush_interval.max(Duration::from_millis(1)),
            timeout: self.timeout,
            max_queue: self.max_queue,
            shutdown_timeout: self.shutdown_timeout,
            capture_io: self.capture_io,
            max_field_bytes: self.max_field_bytes.max(16),
            environment: self.environment,
            release: self.release,
            service_name: resource_service,
            resource_attributes: self.resource_attributes,
            mask: self.mask,
            sink,
            warnings,
            notes,
        })
    }

    fn langfuse_target(&self, warnings: &mut Vec<String>) -> Result<Target, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let (public, secret) = (self.public_key.as_deref(), self.secret_key.as_deref());
        let missing: Vec<&'static str> = [
            ("LANGFUSE_PUBLIC_KEY", public),
            ("LANGFUSE_SECRET_KEY", secret),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            errors.push(ConfigError::MissingCredentials { missing });
        }
        if let (Some(public), Some(secret)) = (public, secret) {
            match (public.starts_with("sk-lf-"), secret.starts_with("pk-lf-")) {
                (true, true) => errors.push(ConfigError::KeysSwapped),
                (true, false) => errors.push(ConfigError::SecretKeyAsPublicKey {
                    masked: mask_secret(public),
                }),
                (false, true) => errors.push(ConfigError::PublicKeyAsSecretKey {
                    value: secret.to_string(),
                }),
                (false, false) => {}
            }
        }
        let raw_url = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let base_url = match check_url(self.base_url_variable, raw_url) {
            Ok(url) => {
                let normalized = strip_otel_path(&url);
                if normalized != url {
                    warnings.push(format!(
                        "{}={url:?} is the OTLP endpoint, not the base URL; using {normalized:?}",
                        self.base_url_variable
                    ));
                }
                Some(normalized)
            }
            Err(error) => {
                errors.push(error);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let base_url = base_url.unwrap_or_default();
        if base_url.starts_with("http://") && !is_loopback(&base_url) {
            warnings.push(format!(
                "{}={base_url:?} uses plain http: the secret key travels unencrypted to a host \
                 that is not this machine; use https://",
                self.base_url_variable
            ));
        }
        let (public, secret) = (public.unwrap_or_default(), secret.unwrap_or_default());
        Ok(Target {
            endpoint: format!("{base_url}/api/public/otel/v1/traces"),
            base_url,
            headers: Vec::new(),
            langfuse: Some(LangfuseKeys {
                public_key: public.to_string(),
                secret_key: secret.to_string(),
            }),
        })
    }
}

/// Langfuse stores an environment that breaks this rule as `default`, silently.
pub(crate) fn valid_environment(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 40
        && !value.starts_with("langfuse")
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(invalid(
            variable,
            url,
            format!(
                "it must start with https:// or http://, for example https://{}",
                url.split("://").last().unwrap_or(url)
            ),
        ));
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(' ') {
        return Err(invalid(
            variable,
            url,
            "expected a URL such as https://cloud.langfuse.com",
        ));
    }
    Ok(url.to_string())
}

/// Users paste the OTLP endpoint where the base URL belongs; accept it.
fn strip_otel_path(url: &str) -> String {
    match url.find("/api/public/otel") {
        Some(index) => url[..index].to_string(),
        None => url.to_string(),
    }
}

pub(crate) enum SinkChoice {
    Otlp(Target),
    Console,
    ConsoleNoCredentials,
    Memory(crate::export::MemoryExporter),
}

/// The validated configuration the client runs with.
pub(crate) struct Settings {
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
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) service_name: String,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) mask: Option<Mask>,
    pub(crate) sink: SinkChoice,
    pub(crate) warnings: Vec<String>,
    pub(crate) notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Config::from_vars(vars.iter().copied())
            .validate()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn target(settings: &Settings) -> &Target {
        match &settings.sink {
            SinkChoice::Otlp(target) => target,
            _ => panic!("not the OTLP exporter"),
        }
    }

    const KEYS: [(&str, &str); 2] = [
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
    ];

    #[test]
    fn a_pasted_otlp_endpoint_is_normalised_with_a_warning() {
        let s = settings(&[
            KEYS[0],
            KEYS[1],
            (
                "LANGFUSE_BASE_URL",
                "https://cloud.langfuse.com/api/public/otel/v1/traces",
            ),
        ]);
        assert_eq!(target(&s).base_url, "https://cloud.langfuse.com");
        assert_eq!(
            target(&s).endpoint,
            "https://cloud.langfuse.com/api/public/otel/v1/traces"
        );
        assert_eq!(
            s.warnings,
            ["LANGFUSE_BASE_URL=\"https://cloud.langfuse.com/api/public/otel/v1/traces\" is the \
              OTLP endpoint, not the base URL; using \"https://cloud.langfuse.com\""]
        );
    }

    #[test]
    fn plain_http_to_another_host_warns_but_loopback_does_not() {
        let s = settings(&[
            KEYS[0],
            KEYS[1],
            ("LANGFUSE_BASE_URL", "http://langfuse.internal:3000/"),
        ]);
        assert_eq!(
            s.warnings,
            ["LANGFUSE_BASE_URL=\"http://langfuse.internal:3000\" uses plain http: the secret key \
              travels unencrypted to a host that is not this machine; use https://"]
        );
        for local in [
            "http://localhost:3000",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
        ] {
            let s = settings(&[KEYS[0], KEYS[1], ("LANGFUSE_BASE_URL", local)]);
            assert!(s.warnings.is_empty(), "{local}: {:?}", s.warnings);
        }
    }

    #[test]
    fn quotes_and_whitespace_are_trimmed_with_a_note() {
        let s = settings(&[
            ("LANGFUSE_PUBLIC_KEY", " \"pk-lf-1\" "),
            ("LANGFUSE_SECRET_KEY", "'sk-lf-1'\n"),
        ]);
        let keys = target(&s).langfuse.clone().unwrap();
        assert_eq!(
            (keys.public_key.as_str(), keys.secret_key.as_str()),
            ("pk-lf-1", "sk-lf-1")
        );
        assert_eq!(
            s.notes,
            [
                "LANGFUSE_PUBLIC_KEY had surrounding whitespace or quotes; they were removed",
                "LANGFUSE_SECRET_KEY had surrounding whitespace or quotes; they were removed"
            ]
        );
    }

    #[test]
    fn the_base_url_wins_over_the_older_host_and_defaults_to_eu() {
        let s = settings(&[
            KEYS[0],
            KEYS[1],
            ("LANGFUSE_HOST", "https://old.example.com"),
            ("LANGFUSE_BASE_URL", "https://us.cloud.langfuse.com"),
        ]);
        assert_eq!(target(&s).base_url, "https://us.cloud.langfuse.com");
        let s = settings(&[
            KEYS[0],
            KEYS[1],
            ("LANGFUSE_HOST", "https://old.example.com"),
        ]);
        assert_eq!(target(&s).base_url, "https://old.example.com");
        let s = settings(&KEYS);
        assert_eq!(target(&s).base_url, DEFAULT_BASE_URL);
    }

    #[test]
    fn the_release_falls_back_to_ci_commit_variables() {
        assert_eq!(
            settings(&[("GITHUB_SHA", "abc123")]).release.as_deref(),
            Some("abc123")
        );
        assert_eq!(
            settings(&[("CI_COMMIT_SHA", "def456"), ("LANGFUSE_RELEASE", "v1.2")])
                .release
                .as_deref(),
            Some("v1.2")
        );
    }

    #[test]
    fn langfuse_keys_win_over_an_otlp_collector() {
        let s = settings(&[
            KEYS[0],
            KEYS[1],
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ]);
        assert!(target(&s).langfuse.is_some());
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Basic%20YWJj,x-team=ml",
            ),
        ]);
        assert_eq!(target(&s).endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(
            target(&s).headers,
            [
                ("Authorization".to_string(), "Basic YWJj".to_string()),
                ("x-team".to_string(), "ml".to_string())
            ]
        );
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:9999/traces",
            ),
        ]);
        assert_eq!(target(&s).endpoint, "http://127.0.0.1:9999/traces");
    }

    #[test]
    fn no_credentials_means_the_console() {
        assert!(matches!(
            settings(&[]).sink,
            SinkChoice::ConsoleNoCredentials
        ));
    }

    #[test]
    fn environment_rule_matches_langfuse() {
        for good in ["production", "staging-2", "dev_1", &"a".repeat(40)] {
            assert!(valid_environment(good), "{good}");
        }
        for bad in ["", "Prod", "langfuse", "langfuse-x", "a b", &"a".repeat(41)] {
            assert!(!valid_environment(bad), "{bad}");
        }
    }
}
