//! Validation, run by `init`: every setting checked (ranges, URLs, keys, the environment name),
//! all problems reported together, and the [`Settings`] the client runs with, including where
//! spans go ([`Destination`]). Only decides: it starts nothing.

use std::time::Duration;

use super::bounds;
use super::error::invalid;
use super::{Config, ConfigError, Mask, DEFAULT_BASE_URL, MIN_SPOOL_MAX_BYTES};
use crate::diagnostics;
use crate::export::target::{is_loopback, mask_secret, mask_url_credentials, LangfuseKeys, Target};
use crate::export::Exporter;
use crate::record::valid_environment;

impl Config {
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
        // A bad variable left its default in place (and a problem above): what is out of range
        // here came from a builder method.
        errors.extend(
            [
                bounds::FLUSH_AT.check(self.flush_at),
                bounds::MAX_QUEUE.check(self.max_queue),
                bounds::MAX_FIELD_SIZE.check(self.max_field_bytes),
                bounds::FLUSH_INTERVAL.check(self.flush_interval),
                bounds::TIMEOUT.check(self.timeout),
                bounds::SHUTDOWN_TIMEOUT.check(self.shutdown_timeout),
            ]
            .into_iter()
            .flatten(),
        );
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
                mask_url_credentials(self.otlp_endpoint.as_deref().unwrap_or_default())
            )
            });
        }

        // The REST API (prompts, datasets) needs Langfuse keys, whatever the exporter.
        let api = target
            .as_ref()
            .filter(|target| target.langfuse.is_some())
            .cloned();
        let destination = match (&self.exporter, target) {
            (Some(Exporter::Memory(memory)), _) => Destination::Memory(memory.clone()),
            (Some(Exporter::Console), _) => Destination::Console,
            (Some(Exporter::Otlp) | None, Some(target)) => Destination::Otlp(target),
            (Some(Exporter::Otlp), None) => Destination::Console, // errors explain why
            (None, None) => Destination::ConsoleNoCredentials,
        };

        if self.spool_max_bytes < MIN_SPOOL_MAX_BYTES {
            errors.push(invalid(
                "LANGFUSE_SPOOL_MAX_BYTES",
                &self.spool_max_bytes.to_string(),
                "expected a number of bytes of at least 65536, such as 104857600 (100 MiB)",
            ));
        }
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
            flush_interval: self.flush_interval,
            timeout: self.timeout,
            max_queue: self.max_queue,
            shutdown_timeout: self.shutdown_timeout,
            capture_io: self.capture_io,
            propagate_attributes: self.propagate_attributes,
            max_field_bytes: self.max_field_bytes,
            environment: self.environment,
            release: self.release,
            service_name: resource_service,
            resource_attributes: self.resource_attributes,
            mask: self.mask,
            flush_on_signals: self.flush_on_signals,
            spool: self.spool_dir.map(|dir| (dir, self.spool_max_bytes)),
            destination,
            api,
            prompt_cache_ttl: self.prompt_cache_ttl,
            capture_debug: self.capture_debug,
            media_upload: self.media_upload,
            prefetch_prompts: self.prefetch_prompts,
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

/// A URL `init` can send to: `http(s)://host[:port][/path]`, with no credentials, query or
/// fragment; errors show it with credentials masked.
fn check_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let shown = mask_url_credentials(url);
    let Some((scheme, rest)) = ["https://", "http://"]
        .into_iter()
        .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (scheme, rest)))
    else {
        let bare = url.split("://").last().unwrap_or(url);
        return Err(invalid(
            variable,
            &shown,
            format!(
                "it must start with https:// or http://, for example https://{}",
                bare.rsplit('@').next().unwrap_or(bare)
            ),
        ));
    };
    if let Some(at) = rest.rfind('@') {
        let host = rest[at + 1..].trim_end_matches('/');
        let advice = if variable.starts_with("OTEL_") {
            "give the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS \
             (Authorization=Basic%20<base64>)"
        } else {
            "Langfuse takes the keys from LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"
        };
        return Err(invalid(
            variable,
            &shown,
            format!(
                "it holds credentials (user:password@), which would be logged and sent in the \
                 clear; remove them ({advice}), for example {scheme}{host}"
            ),
        ));
    }
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) || rest.contains(' ') {
        return Err(invalid(
            variable,
            url,
            "expected a URL such as https://cloud.langfuse.com",
        ));
    }
    if let Some(index) = rest.find(['?', '#']) {
        let without = rest[..index].trim_end_matches('/');
        return Err(invalid(
            variable,
            url,
            format!(
                "a query (?...) or fragment (#...) cannot be part of it: paths are appended to \
                 it, so the request would go to the wrong address; remove it, for example \
                 {scheme}{without}"
            ),
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

/// What the validated configuration resolved the user's [`Exporter`] to.
pub(crate) enum Destination {
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
    pub(crate) propagate_attributes: bool,
    pub(crate) max_field_bytes: usize,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) service_name: String,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) mask: Option<Mask>,
    pub(crate) flush_on_signals: bool,
    /// The spool directory and its cap in bytes, when one is set.
    pub(crate) spool: Option<(std::path::PathBuf, u64)>,
    pub(crate) destination: Destination,
    /// The Langfuse target of the REST API, when keys are set.
    pub(crate) api: Option<Target>,
    pub(crate) prompt_cache_ttl: Duration,
    pub(crate) capture_debug: bool,
    pub(crate) media_upload: bool,
    pub(crate) prefetch_prompts: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{settings, target, KEYS};
    use super::super::MAX_QUEUE_LIMIT;
    use super::*;

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
            settings(&[]).destination,
            Destination::ConsoleNoCredentials
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

    #[test]
    fn the_queue_bound_is_inclusive() {
        let limit = MAX_QUEUE_LIMIT.to_string();
        assert_eq!(
            settings(&[("LANGFUSE_MAX_QUEUE", &limit)]).max_queue,
            MAX_QUEUE_LIMIT
        );
        assert_eq!(settings(&[("LANGFUSE_MAX_QUEUE", "1")]).max_queue, 1);
        let builder = Config::default().max_queue(MAX_QUEUE_LIMIT).validate();
        assert_eq!(builder.map(|s| s.max_queue).ok(), Some(MAX_QUEUE_LIMIT));
    }
}
