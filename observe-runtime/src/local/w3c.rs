//! The W3C Trace Context text forms: reading and writing `traceparent`. (Baggage, the other
//! W3C header, is encoded with the trace attributes it carries, in `record/baggage.rs`.)

use std::fmt;

use crate::ids::{ObservationId, TraceId};

/// Why a `traceparent` header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceparentError {
    value: String,
    reason: String,
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid traceparent {:?}: {}; expected \"00-<32 lowercase hex trace id>-<16 lowercase hex \
             parent id>-<2 hex flags>\"",
            self.value, self.reason
        )
    }
}

impl std::error::Error for TraceparentError {}

impl TraceparentError {
    pub(crate) fn new(value: &str, reason: impl Into<String>) -> Self {
        TraceparentError {
            value: value.chars().take(100).collect(),
            reason: reason.into(),
        }
    }
}

/// Reads a `traceparent`: the trace id, the parent observation's id and the sampled flag.
pub(crate) fn parse_traceparent(
    header: &str,
) -> Result<(TraceId, ObservationId, bool), TraceparentError> {
    let error = |reason: &str| TraceparentError::new(header, reason);
    let parts: Vec<&str> = header.trim().split('-').collect();
    if parts.len() < 4 {
        return Err(error(&format!(
            "it has {} part(s) separated by '-', not 4",
            parts.len()
        )));
    }
    if parts[0].len() != 2 || !parts[0].bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(error("the version is not two hex characters"));
    }
    if parts[0] == "ff" {
        return Err(error("version ff is invalid in the W3C format"));
    }
    if parts[0] == "00" && parts.len() != 4 {
        let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        if lengths.len() >= 6 && lengths[1..6] == [8, 4, 4, 4, 12] {
            return Err(error(&format!(
                "the trace id {:?} is a UUID with dashes; write it as 32 lowercase hex \
                 characters without them (TraceId::from_external turns any id into a trace \
                 id)",
                parts[1..6].join("-")
            )));
        }
        return Err(error(&format!(
            "version 00 has exactly 4 parts separated by '-' (version, trace id, parent id, \
             flags), this one has {}",
            parts.len()
        )));
    }
    let trace_id: TraceId = parts[1]
        .parse()
        .map_err(|_| error("the trace id is not 32 lowercase hex characters, not all zero"))?;
    let parent: ObservationId = parts[2]
        .parse()
        .map_err(|_| error("the parent id is not 16 lowercase hex characters, not all zero"))?;
    let flags = u8::from_str_radix(parts[3], 16)
        .ok()
        .filter(|_| parts[3].len() == 2 && parts[3].bytes().all(|b| !b.is_ascii_uppercase()))
        .ok_or_else(|| error("the flags are not two lowercase hex characters"))?;
    Ok((trace_id, parent, flags & 1 == 1))
}

/// Writes a `traceparent` of version `00`.
pub(crate) fn traceparent(trace_id: TraceId, span_id: ObservationId, sampled: bool) -> String {
    format!(
        "00-{trace_id}-{span_id}-{}",
        if sampled { "01" } else { "00" }
    )
}
