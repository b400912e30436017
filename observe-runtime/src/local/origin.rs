//! Where a trace comes from when an observation starts one here: a new trace, or the process's
//! parent (`TRACEPARENT`, with the attributes of `BAGGAGE`), with its sampling and capture decided
//! from the installed client; and binding a trace again when the client has changed since.

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::capture;
use crate::gate::{self, Client};
use crate::ids::{ObservationId, TraceId};
use crate::record::baggage;
use crate::record::{TraceOptions, TraceState};

/// The gate epoch, and the client a trace starting here records to with its capture scope (see
/// [`gate::client_here`]), read after the epoch: a client installed in between makes the trace
/// look older than it is, and it is bound again, never the other way round.
struct Here {
    epoch: u64,
    client: Option<(Arc<Client>, Option<NonZeroU64>)>,
}

fn here_now() -> Here {
    let epoch = gate::epoch();
    Here {
        epoch,
        client: gate::client_here(),
    }
}

/// How a trace is recorded under `here`.
fn options_under(here: Here, trace_id: TraceId, upstream_sampled: Option<bool>) -> TraceOptions {
    let epoch = here.epoch;
    match here.client {
        Some((client, scope)) => TraceOptions {
            scope,
            ..client.trace_options(trace_id, upstream_sampled, epoch)
        },
        None => TraceOptions {
            sampled: upstream_sampled.unwrap_or(true),
            recording: false,
            capture_io: false,
            field_limit: capture::DEFAULT_FIELD_LIMIT,
            epoch,
            scope: None,
        },
    }
}

/// A trace that starts (or continues) here: `upstream_sampled` is a remote parent's decision.
pub(crate) fn new_trace(
    trace_id: TraceId,
    remote_parent: Option<ObservationId>,
    upstream_sampled: Option<bool>,
) -> Arc<TraceState> {
    new_trace_under(here_now(), trace_id, remote_parent, upstream_sampled)
}

fn new_trace_under(
    here: Here,
    trace_id: TraceId,
    remote_parent: Option<ObservationId>,
    upstream_sampled: Option<bool>,
) -> Arc<TraceState> {
    let options = options_under(here, trace_id, upstream_sampled);
    TraceState::new(trace_id, remote_parent, upstream_sampled, options)
}

/// `trace` bound to the client installed now, when it was bound under another one (or none):
/// a context made before `init`, or under a client that has stopped since.
pub(crate) fn rebound(trace: &TraceState) -> Option<Arc<TraceState>> {
    // A trace of a capture scope stays in it.
    (trace.options.scope.is_none() && trace.options.epoch != gate::epoch()).then(|| {
        let options = options_under(here_now(), trace.trace_id, trace.upstream_sampled);
        trace.rebound(options)
    })
}

/// A new trace for an observation opened with nothing current: a child of the process's
/// `TRACEPARENT` (with the attributes of its `BAGGAGE`) when there is one, else a fresh random
/// trace (always inside a capture scope).
pub(crate) fn new_root_trace() -> (Arc<TraceState>, Option<ObservationId>) {
    let here = here_now();
    // The client is looked up once, for the parent and for the trace's options.
    // (Its count is touched only when there is a parent.)
    let client = match &here.client {
        Some((client, None)) if client.process_parent.is_some() => Some(Arc::clone(client)),
        _ => None,
    };
    let Some(parent) = client
        .as_deref()
        .and_then(|client| client.process_parent.as_ref())
    else {
        return (new_trace_under(here, TraceId::random(), None, None), None);
    };
    let trace = new_trace_under(
        here,
        parent.trace_id,
        Some(parent.span_id),
        Some(parent.sampled),
    );
    if let Some(attributes) = &parent.attributes {
        trace.update(|a| baggage::adopt(a, attributes));
    }
    (trace, Some(parent.span_id))
}
