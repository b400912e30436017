//! Reading the environment: [`Config::from_env`] and [`Config::from_vars`], quotes and whitespace
//! trimmed, values parsed (booleans, seconds, numbers, the percent-encoded OTLP header list).
//! Never fails: a value that cannot be read is kept as a problem for validation to report, so a
//! builder method can still replace it. Does no cross-setting checks (those are in `validate`).

use std::time::Duration;

use super::bounds;
use super::error::invalid;
use super::{Config, ConfigError, MIN_SPOOL_MAX_BYTES};
use crate::export::target::mask_secret;

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
        let Some(decoded) = crate::percent::decode(value) else {
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
    config.baggage = text("BAGGAGE", &mut notes);
    config.otlp_endpoint = text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &mut notes).or_else(|| {
        text("OTEL_EXPORTER_OTLP_ENDPOINT", &mut notes)
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    });

    let mut problems: Vec<(&'static str, ConfigError)> = Vec::new();
    macro_rules! parsed {
        ($name:literal, $parse:expr, $expected:expr, $set:expr) => {
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
    // Switches (after the two above: `OTEL_SDK_DISABLED` only turns tracing off).
    type Switch = (&'static str, fn(&mut Config, bool));
    let switches: [Switch; 5] = [
        ("LANGFUSE_DEBUG", |c, v| c.debug = v),
        ("LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED", |c, v| {
            c.capture_io = v
        }),
        ("LANGFUSE_MEDIA_UPLOAD_ENABLED", |c, v| c.media_upload = v),
        ("LANGFUSE_CAPTURE_DEBUG", |c, v| c.capture_debug = v),
        ("LANGFUSE_PROPAGATE_ATTRIBUTES", |c, v| {
            c.propagate_attributes = v
        }),
    ];
    for (name, set) in switches {
        if let Some(value) = text(name, &mut notes) {
            match parse_bool(value.as_str()) {
                Some(on) => set(&mut config, on),
                None => problems.push((name, invalid(name, &value, "expected true or false"))),
            }
        }
    }
    // Durations and sizes: the same bounds as the builder methods' values (see `bounds`).
    macro_rules! bounded {
        ($bound:expr, $field:ident) => {
            if let Some(value) = text($bound.variable, &mut notes) {
                match $bound.parse(&value) {
                    Some(parsed) => config.$field = parsed,
                    None => problems.push((
                        $bound.variable,
                        invalid($bound.variable, &value, $bound.expected()),
                    )),
                }
            }
        };
    }
    bounded!(bounds::FLUSH_AT, flush_at);
    bounded!(bounds::MAX_QUEUE, max_queue);
    bounded!(bounds::MAX_FIELD_SIZE, max_field_bytes);
    bounded!(bounds::FLUSH_INTERVAL, flush_interval);
    bounded!(bounds::TIMEOUT, timeout);
    bounded!(bounds::SHUTDOWN_TIMEOUT, shutdown_timeout);
    parsed!(
        "LANGFUSE_FLUSH_ON_SIGNALS",
        parse_bool,
        "expected true or false",
        |v| config.flush_on_signals = v
    );
    parsed!(
        "LANGFUSE_PROMPT_CACHE_DEFAULT_TTL_SECONDS",
        |v: &str| v
            .parse::<f64>()
            .ok()
            .filter(|s| (0.0..=86_400.0).contains(s))
            .map(Duration::from_secs_f64),
        "expected seconds from 0 (no prompt cache) to 86400 (1 day), how long a fetched \
         prompt is served before it is refreshed, such as 60",
        |v| config.prompt_cache_ttl = v
    );
    if let Some(dir) = text("LANGFUSE_SPOOL_DIR", &mut notes) {
        config.spool_dir = (!dir.is_empty()).then(|| dir.into());
    }
    parsed!(
        "LANGFUSE_SPOOL_MAX_BYTES",
        |v: &str| v.parse::<u64>().ok().filter(|n| *n >= MIN_SPOOL_MAX_BYTES),
        "expected a number of bytes of at least 65536, such as 104857600 (100 MiB)",
        |v| config.spool_max_bytes = v
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{settings, target, KEYS};
    use super::super::DEFAULT_BASE_URL;

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
}
