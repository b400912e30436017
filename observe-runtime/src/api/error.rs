//! [`ApiError`]: why a call to Langfuse's public REST API failed, naming the request, the host
//! and the answer.

use std::fmt;
use std::time::Duration;

use crate::export::auth::auth_failure_text;

/// Why a call to Langfuse's public REST API failed.
///
/// Every message names what was asked (method and URL, without secrets) and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// No Langfuse keys are configured: `init` was not called, or it found no
    /// `LANGFUSE_PUBLIC_KEY` / `LANGFUSE_SECRET_KEY` (or it sends to a generic OpenTelemetry
    /// collector).
    NotConfigured,
    /// The server answered with a status other than 2xx (after retries for 408, 429 and 5xx).
    Http {
        /// `GET`, `POST`, `PATCH`...
        method: String,
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message (its `message` or `error` field, else the body's text).
        message: String,
        /// The base URL, for the advice after a 401 or 403.
        base_url: String,
    },
    /// No answer: connection refused, DNS, TLS, or no answer within the time limit, on every
    /// attempt.
    Network {
        /// `GET`, `POST`, `PATCH`...
        method: String,
        /// The URL asked.
        url: String,
        /// What failed on the last attempt.
        reason: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The server answered 2xx with a body that is not what the API documents.
    InvalidResponse {
        /// `GET`, `POST`, `PATCH`...
        method: String,
        /// The URL asked.
        url: String,
        /// What was wrong with the body.
        reason: String,
    },
    /// The client's own runtime could not be started, or stopped before answering.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl ApiError {
    /// The HTTP status the server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn network(method: &str, url: &str, reason: String, attempts: u32) -> Self {
        Self::Network {
            method: method.to_string(),
            url: url.to_string(),
            reason,
            attempts,
        }
    }

    pub(crate) fn timed_out(method: &str, url: &str, after: Duration, attempts: u32) -> Self {
        Self::network(method, url, format!("no answer within {after:?}"), attempts)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConfigured => f.write_str(
                "no Langfuse API is configured: call observe_runtime::init() with \
                 LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_BASE_URL set (or the \
                 Config builder's keys) first",
            ),
            Self::Http {
                method,
                url,
                status,
                message,
                base_url,
            } => {
                write!(f, "{method} {url} answered HTTP {status}: {message:?}")?;
                if matches!(status, 401 | 403) {
                    write!(f, ". {}", auth_failure_text(*status, message, base_url))?;
                }
                Ok(())
            }
            Self::Network {
                method,
                url,
                reason,
                attempts,
            } => write!(
                f,
                "{method} {url} got no answer after {attempts} attempt(s): {reason}; check \
                 LANGFUSE_BASE_URL and the network"
            ),
            Self::InvalidResponse {
                method,
                url,
                reason,
            } => write!(
                f,
                "{method} {url} answered with an unexpected body: {reason}"
            ),
            Self::Unavailable { reason } => {
                write!(f, "the Langfuse API client is not available: {reason}")
            }
        }
    }
}

impl std::error::Error for ApiError {}
