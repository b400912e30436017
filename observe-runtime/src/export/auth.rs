//! The credential check's answers: the project the keys belong to, why a check failed, and the
//! one clear message an auth failure gets (naming the host and, on Langfuse Cloud, the regions).

use std::fmt;

use super::target::region_hint;

/// The project the keys belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The project id.
    pub id: String,
    /// The project name.
    pub name: String,
}

/// A successful credential check: the keys are valid for this host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthCheck {
    /// The project(s) the keys belong to.
    pub projects: Vec<Project>,
}

/// Why the credential check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// `init` has not been called, or the guard was shut down.
    NotInitialized,
    /// The exporter does not send to Langfuse (console, memory, or a generic collector).
    NotLangfuse,
    /// The server refused the keys (401 or 403).
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The base URL asked.
        base_url: String,
    },
    /// Another answer than 200.
    Http {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The base URL asked.
        base_url: String,
    },
    /// No answer: connection refused, DNS, TLS or timeout.
    Network {
        /// What failed.
        reason: String,
        /// The base URL asked.
        base_url: String,
    },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInitialized => f.write_str(
                "observe_runtime is not initialized: call observe_runtime::init() first and keep \
                 its guard",
            ),
            Self::NotLangfuse => f.write_str(
                "the exporter does not send to Langfuse (console, memory or a generic OTLP \
                 collector): there are no Langfuse keys to check",
            ),
            Self::Unauthorized {
                status,
                message,
                base_url,
            } => f.write_str(&auth_failure_text(*status, message, base_url)),
            Self::Http {
                status,
                message,
                base_url,
            } => write!(
                f,
                "the credential check at {base_url} answered HTTP {status}: {message:?}"
            ),
            Self::Network { reason, base_url } => write!(
                f,
                "could not reach Langfuse at {base_url}: {reason}; check LANGFUSE_BASE_URL and \
                 the network"
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// The one message a user needs after a 401 or 403.
pub(crate) fn auth_failure_text(status: u16, server_message: &str, base_url: &str) -> String {
    let mut text = format!(
        "Langfuse rejected the credentials with HTTP {status}: {server_message:?} (base URL \
         {base_url}). Check that LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are the API keys of \
         a project on this host."
    );
    if let Some(hint) = region_hint(base_url) {
        text.push(' ');
        text.push_str(&hint);
        text.push('.');
    }
    text
}

/// The message after a 401 or 403 from a generic OTLP collector: there are no Langfuse keys to
/// check, the headers the user configured are what was refused.
pub(crate) fn collector_auth_failure_text(
    status: u16,
    server_message: &str,
    endpoint: &str,
) -> String {
    format!(
        "The OTLP endpoint {endpoint} rejected the request with HTTP {status}: \
         {server_message:?}. Check the headers in OTEL_EXPORTER_OTLP_HEADERS (values \
         percent-encoded; for Langfuse: Authorization=Basic%20<base64 of public_key:secret_key> \
         and x-langfuse-ingestion-version=4)."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_auth_failures_name_the_other_regions() {
        assert_eq!(
            auth_failure_text(
                401,
                "Invalid credentials. Confirm that you've configured the correct host.",
                "https://cloud.langfuse.com"
            ),
            "Langfuse rejected the credentials with HTTP 401: \"Invalid credentials. Confirm that \
             you've configured the correct host.\" (base URL https://cloud.langfuse.com). Check \
             that LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are the API keys of a project on \
             this host. Langfuse Cloud keys belong to one region and this is the EU region; if \
             the project lives in another, set LANGFUSE_BASE_URL to \
             https://us.cloud.langfuse.com (US), https://jp.cloud.langfuse.com (JP), \
             https://hipaa.cloud.langfuse.com (HIPAA)."
        );
    }

    #[test]
    fn collector_auth_failures_point_at_the_otlp_headers() {
        assert_eq!(
            collector_auth_failure_text(
                401,
                "No authorization header",
                "http://localhost:4318/v1/traces"
            ),
            "The OTLP endpoint http://localhost:4318/v1/traces rejected the request with HTTP \
             401: \"No authorization header\". Check the headers in OTEL_EXPORTER_OTLP_HEADERS \
             (values percent-encoded; for Langfuse: Authorization=Basic%20<base64 of \
             public_key:secret_key> and x-langfuse-ingestion-version=4)."
        );
    }

    #[test]
    fn self_hosted_auth_failures_have_no_region_hint() {
        let text = auth_failure_text(401, "No authorization header", "https://lf.example.com");
        assert!(!text.contains("region"), "{text}");
    }
}
