//! The errors `init` reports: [`ConfigError`] and its text, which names the variable, shows the
//! value (secrets masked) and says what to do. Only the type and its wording: no reading and no
//! checks.

use std::fmt;

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

/// A value that does not parse or is out of range.
pub(super) fn invalid(
    variable: &'static str,
    value: &str,
    expected: impl Into<String>,
) -> ConfigError {
    ConfigError::InvalidValue {
        variable,
        value: value.to_string(),
        expected: expected.into(),
    }
}
