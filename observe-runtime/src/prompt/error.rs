//! [`PromptError`]: why a prompt could not be fetched, created, relabelled, compiled or read,
//! naming the prompt, the label or version asked, and the cause.

use std::fmt;

use crate::api::ApiError;

/// Why a prompt operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PromptError {
    /// The request is not one Langfuse can answer (both a label and a version, an empty name):
    /// refused before anything is sent.
    InvalidRequest {
        /// The prompt's name.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Langfuse has no such prompt, or no version with that label or number (HTTP 404).
    NotFound {
        /// The prompt's name.
        name: String,
        /// What was asked: `label "production"`, `version 3`.
        asked: String,
        /// The server's message.
        message: String,
    },
    /// The request failed: no Langfuse keys, no answer, or an answer other than 404.
    Api {
        /// The prompt's name.
        name: String,
        /// What was asked: `label "production"`, `version 3`, `a new version`, `labels of
        /// version 3`.
        asked: String,
        /// The cause, which names the request, the host and the answer.
        source: Box<ApiError>,
    },
    /// `compile` on a chat prompt or `compile_chat` on a text prompt.
    WrongType {
        /// The prompt's name.
        name: String,
        /// The type the call needs.
        expected: &'static str,
        /// The prompt's type.
        found: &'static str,
        /// The call to use instead.
        instead: &'static str,
    },
    /// The variables or placeholders given are not a map or a struct.
    InvalidArguments {
        /// The prompt's name.
        name: String,
        /// `variables` or `placeholders`.
        what: &'static str,
        /// What was given.
        reason: String,
    },
    /// A placeholder of the chat prompt was given no messages.
    MissingPlaceholder {
        /// The prompt's name.
        name: String,
        /// The placeholder's name.
        placeholder: String,
    },
    /// What was given for a placeholder is not a list of messages.
    InvalidPlaceholder {
        /// The prompt's name.
        name: String,
        /// The placeholder's name.
        placeholder: String,
        /// What is wrong.
        reason: String,
    },
    /// The prompt's config does not have the shape asked for (`config_as`).
    Config {
        /// The prompt's name.
        name: String,
        /// Its version.
        version: u32,
        /// What did not fit.
        reason: String,
    },
}

impl fmt::Display for PromptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRequest { name, reason } => write!(f, "prompt {name:?}: {reason}"),
            Self::NotFound {
                name,
                asked,
                message,
            } => write!(
                f,
                "prompt {name:?} ({asked}) was not found: Langfuse answered HTTP 404 \
                 {message:?}; check the name (with its folders), the label or the version in \
                 Langfuse's prompt management"
            ),
            Self::Api {
                name,
                asked,
                source,
            } => write!(f, "prompt {name:?} ({asked}): {source}"),
            Self::WrongType {
                name,
                expected,
                found,
                instead,
            } => write!(
                f,
                "prompt {name:?} is a {found} prompt, and this call needs a {expected} prompt; \
                 use {instead}"
            ),
            Self::InvalidArguments { name, what, reason } => write!(
                f,
                "prompt {name:?}: the {what} must be a map or a struct: {reason}"
            ),
            Self::MissingPlaceholder { name, placeholder } => write!(
                f,
                "prompt {name:?}: the placeholder {placeholder:?} was given no messages; pass \
                 them under that name in the placeholders of compile_chat (an empty list leaves \
                 it out)"
            ),
            Self::InvalidPlaceholder {
                name,
                placeholder,
                reason,
            } => write!(
                f,
                "prompt {name:?}: the messages for the placeholder {placeholder:?} are not a \
                 list of chat messages: {reason}"
            ),
            Self::Config {
                name,
                version,
                reason,
            } => write!(
                f,
                "prompt {name:?} version {version}: the config does not have the type asked \
                 for: {reason}"
            ),
        }
    }
}

impl std::error::Error for PromptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Api { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
