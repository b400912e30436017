//! Where a trace comes from when an observation starts one here: a new trace, or the process's
//! parent (`TRACEPARENT`), with its sampling and capture decided from the installed client.

use std::sync::Arc;

use crate::capture;
use crate::gate;
use crate::ids::{ObservationId, TraceId};
use crate::record::{TraceOptions, TraceState};

/// A trace that starts (or continues) here: `upstream_sampled` is a remote parent's decision.
pub(crate) fn new_trace(
    trace_id: TraceId,
    remote_parent: Option<ObservationId>,
    upstream_sampled: Option<bool>,
) -> Arc<TraceState> {
    let options = match gate::installed() {
        Some(client) => client.trace_options(trace_id, upstream_sampled),
        None => TraceOptions {
            sampled: upstream_sampled.unwrap_or(true),
            recording: false,
            capture_io: false,
            field_limit: capture::DEFAULT_FIELD_LIMIT,
        },
    };
    TraceState::new(trace_id, remote_parent, options)
}

/// A new trace for an observation opened with nothing current: a child of the process's
/// `TRACEPARENT` when there is one, else a fresh random trace.
pub(crate) fn new_root_trace() -> (Arc<TraceState>, Option<ObservationId>) {
    let parent = gate::installed().and_then(|c| c.process_parent);
    match parent {
        Some((trace_id, span_id, sampled)) => (
            new_trace(trace_id, Some(span_id), Some(sampled)),
            Some(span_id),
        ),
        None => (new_trace(TraceId::random(), None, None), None),
    }
}
