//! The gate: the installed-client slot that every new trace reads, `enabled()` (one relaxed atomic
//! load, all the hot path pays when tracing is off), the sampling decision, and the hand-off of
//! finished records and scores to the client's destination. Installing and removing the client is the
//! lifecycle's business; this module only holds it.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::clock::UnixClock;
use crate::diagnostics;
use crate::export::queue::Queue;
use crate::export::worker::WorkerHandle;
use crate::export::{apply_mask, apply_score_mask, Counters, MemoryExporter};
use crate::ids::{ObservationId, TraceId};
use crate::mask::Mask;
use crate::record::score::ScoreProblem;
use crate::record::{FinishedScore, Record, TraceAttributes, TraceOptions};

/// Is a client installed and running, or a capture scope open? The only thing the hot path
/// reads when tracing is off.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The installed client: read without a lock when a trace starts.
static CLIENT: ArcSwapOption<Client> = ArcSwapOption::const_empty();
/// Changes each time a client is installed or removed: threads that keep the client at hand
/// check it with one relaxed load.
static EPOCH: AtomicU64 = AtomicU64::new(0);
/// Serializes installing and removing the client (never taken on the hot path).
static INSTALL: Mutex<()> = Mutex::new(());
/// The counters of the latest client, kept after its shutdown so `stats()` still tells the loss.
static LATEST_COUNTERS: RwLock<Option<Arc<Counters>>> = RwLock::new(None);

/// Whether observations are recorded at all (one relaxed atomic load).
#[inline(always)]
pub(crate) fn enabled() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The gate's epoch: when it changes, what [`installed`] returns may have changed.
#[inline(always)]
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// The running client, if any.
#[inline]
pub(crate) fn installed() -> Option<Arc<Client>> {
    if !enabled() {
        return None;
    }
    CLIENT.load_full()
}

/// The client as installed, ignoring the gate (for the exit hook).
pub(crate) fn installed_ignoring_gate() -> Option<Arc<Client>> {
    CLIENT.load_full()
}

/// How the user's threads hand finished records over.
pub(crate) enum Handoff {
    /// Converted and stored at once, on the thread that hands them over.
    Memory {
        memory: MemoryExporter,
        clock: Mutex<UnixClock>,
    },
    /// Queued for the exporter thread.
    Worker { queue: Queue, worker: WorkerHandle },
}

/// The trace a process was started in: traces that start in it are children of this span, and
/// carry these attributes.
pub(crate) struct ProcessParent {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: ObservationId,
    pub(crate) sampled: bool,
    /// From `BAGGAGE`, when it carried Langfuse entries.
    pub(crate) attributes: Option<TraceAttributes>,
}

/// The running pipeline as the hot path sees it.
pub(crate) struct Client {
    /// Traces whose sampling value is below this are kept (`None`: all are).
    pub(crate) sample_below: Option<u64>,
    pub(crate) capture_io: bool,
    pub(crate) field_limit: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) mask: Option<Mask>,
    /// `LANGFUSE_*` settings handed to child processes by `TraceContext::apply_to`.
    pub(crate) child_environment: Vec<(&'static str, String)>,
    /// The trace this process was started in (`TRACEPARENT`, `BAGGAGE`), for traces that start
    /// here.
    pub(crate) process_parent: Option<ProcessParent>,
    /// Whether trace attributes travel in `BAGGAGE` / `baggage` (and are adopted from it).
    pub(crate) propagate_attributes: bool,
    pub(crate) handoff: Handoff,
    /// The environment a score gets unless it names one (`LANGFUSE_TRACING_ENVIRONMENT`).
    pub(crate) environment: Option<String>,
    /// Whether the destination takes scores (not a generic OpenTelemetry collector).
    pub(crate) takes_scores: bool,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stopped: AtomicBool,
}

impl Client {
    pub(crate) fn samples(&self, trace_id: TraceId) -> bool {
        self.sample_below
            .is_none_or(|below| trace_id.sampling_value() < below)
    }

    /// How a trace that starts now is recorded: `upstream_sampled` is a remote parent's decision.
    /// `epoch` is the gate epoch read before this client was.
    pub(crate) fn trace_options(
        &self,
        trace_id: TraceId,
        upstream: Option<bool>,
        epoch: u64,
    ) -> TraceOptions {
        let sampled = upstream.unwrap_or_else(|| self.samples(trace_id));
        TraceOptions {
            sampled,
            recording: sampled,
            capture_io: self.capture_io,
            field_limit: self.field_limit,
            epoch,
            scope: None,
        }
    }

    /// Whether one more span fits in the queue beside the `buffered` ones the calling thread
    /// holds (roots get more room, see [`Queue::has_room`]).
    #[inline]
    pub(crate) fn has_room(&self, buffered: usize, root: bool) -> bool {
        match &self.handoff {
            Handoff::Memory { .. } => true,
            Handoff::Worker { queue, .. } => queue.has_room(buffered, root),
        }
    }

    /// How many records a thread holds before it hands them over when its outermost observation
    /// ends (every record for the in-memory exporter).
    #[inline]
    pub(crate) fn hand_over_at(&self) -> usize {
        match &self.handoff {
            Handoff::Memory { .. } => 1,
            Handoff::Worker { queue, .. } => queue.hand_over_at(),
        }
    }

    /// An empty chunk for a thread's next `capacity` records (a reused one when the exporter
    /// gave one back).
    #[inline]
    pub(crate) fn chunk(&self, capacity: usize) -> Vec<Record> {
        match &self.handoff {
            Handoff::Memory { .. } => Vec::with_capacity(capacity),
            Handoff::Worker { queue, .. } => queue.chunk(capacity),
        }
    }

    /// Takes over a thread's finished records, and the number it dropped for a full queue.
    pub(crate) fn accept(&self, records: Vec<Record>, dropped_full: u64) {
        match &self.handoff {
            Handoff::Memory { memory, clock } => {
                let counters = &self.counters;
                let count = records.len() as u64;
                Counters::add(&counters.spans_created, count + dropped_full);
                Counters::add(&counters.spans_dropped_queue_full, dropped_full);
                Counters::add(&counters.spans_queued, count);
                let mut clock = crate::sync::lock(clock);
                clock.refresh();
                let mut run = None;
                let spans = records.into_iter().filter_map(|record| {
                    let mut span = record.finish(&mut run, |ticks| clock.unix_nanos(ticks))?;
                    if let Some(mask) = &self.mask {
                        apply_mask(mask, self.field_limit, &mut span);
                    }
                    Some(span)
                });
                memory.push_all(spans);
                Counters::add(&counters.spans_exported, count);
            }
            Handoff::Worker { queue, .. } => queue.push(records, dropped_full),
        }
    }
}

impl Client {
    /// Takes over a valid score from the user's thread: stored at once in memory, queued for
    /// the exporter, or dropped and counted when the destination takes no scores.
    pub(crate) fn accept_score(&self, mut score: FinishedScore) {
        let counters = &self.counters;
        match &self.handoff {
            Handoff::Memory { memory, .. } => {
                Counters::add(&counters.scores_created, 1);
                Counters::add(&counters.scores_queued, 1);
                if let Some(mask) = &self.mask {
                    apply_score_mask(mask, self.field_limit, &mut score);
                }
                memory.push_score(score);
                Counters::add(&counters.scores_exported, 1);
            }
            Handoff::Worker { .. } if !self.takes_scores => {
                Counters::add(&counters.scores_created, 1);
                Counters::add(&counters.scores_dropped_unsupported, 1);
                diagnostics::warn_once(
                    "scores-unsupported",
                    "scores are not sent: the exporter sends to an OpenTelemetry collector \
                     (OTEL_EXPORTER_OTLP_ENDPOINT), which has no scores API; set \
                     LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to send traces and scores to \
                     Langfuse. Scores are dropped and counted in stats().scores_dropped_unsupported \
                     (said once)",
                );
            }
            Handoff::Worker { queue, .. } => queue.push_score(score),
        }
    }

    /// Counts a score that cannot be sent and says why (each kind of problem at most once a
    /// minute).
    pub(crate) fn refuse_score(&self, problem: &ScoreProblem) {
        Counters::add(&self.counters.scores_created, 1);
        Counters::add(&self.counters.scores_dropped_invalid, 1);
        diagnostics::warn(problem.subject(), problem.to_string());
    }
}

fn install_lock() -> MutexGuard<'static, ()> {
    crate::sync::lock(&INSTALL)
}

/// Why a client could not be installed.
pub(crate) struct AlreadyInstalled;

/// Installs `client` unless another one is installed.
pub(crate) fn install(client: Arc<Client>) -> Result<(), AlreadyInstalled> {
    let _install = install_lock();
    if CLIENT.load().is_some() {
        return Err(AlreadyInstalled);
    }
    *crate::sync::write(&LATEST_COUNTERS) = Some(client.counters.clone());
    CLIENT.store(Some(client));
    ACTIVE.store(true, Ordering::Release);
    EPOCH.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// Whether a client is installed (running or not).
pub(crate) fn is_installed() -> bool {
    let _install = install_lock();
    CLIENT.load().is_some()
}

/// Removes `client` if it is the installed one; new spans are then no longer recorded.
pub(crate) fn uninstall(client: &Arc<Client>) {
    let _install = install_lock();
    if CLIENT
        .load()
        .as_ref()
        .is_some_and(|c| Arc::ptr_eq(c, client))
    {
        ACTIVE.store(!lock_scopes().is_empty(), Ordering::Release);
        CLIENT.store(None);
        EPOCH.fetch_add(1, Ordering::AcqRel);
    }
}

/// Whether trace attributes travel with contexts: the running client's choice, else yes.
pub(crate) fn propagates_attributes() -> bool {
    installed().is_none_or(|client| client.propagate_attributes)
}

/// The counters of the running client, or of the latest one after its shutdown.
pub(crate) fn latest_counters() -> Option<Arc<Counters>> {
    crate::sync::read(&LATEST_COUNTERS).clone()
}

/// The open capture scopes (`testing::capture`): clients that are not installed, each taking
/// the traces started on a thread inside it. Read only when such a trace starts or ends.
static SCOPES: RwLock<Vec<(NonZeroU64, Arc<Client>)>> = RwLock::new(Vec::new());
static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The capture scope this thread runs inside, if any.
    static THREAD_SCOPE: Cell<Option<NonZeroU64>> = const { Cell::new(None) };
}

fn lock_scopes() -> std::sync::RwLockReadGuard<'static, Vec<(NonZeroU64, Arc<Client>)>> {
    crate::sync::read(&SCOPES)
}

/// Opens a capture scope taking the traces started inside it; the gate is open while it is.
pub(crate) fn open_scope(client: Arc<Client>) -> NonZeroU64 {
    let _install = install_lock();
    let id = NonZeroU64::new(NEXT_SCOPE.fetch_add(1, Ordering::Relaxed)).unwrap_or(NonZeroU64::MIN);
    crate::sync::write(&SCOPES).push((id, client));
    ACTIVE.store(true, Ordering::Release);
    id
}

/// Closes a capture scope: what its traces finish afterwards is not recorded.
pub(crate) fn close_scope(id: NonZeroU64) {
    let _install = install_lock();
    let empty = {
        let mut scopes = crate::sync::write(&SCOPES);
        scopes.retain(|(scope, _)| *scope != id);
        scopes.is_empty()
    };
    ACTIVE.store(!empty || CLIENT.load().is_some(), Ordering::Release);
}

/// The client of an open capture scope.
pub(crate) fn scope_client(id: NonZeroU64) -> Option<Arc<Client>> {
    lock_scopes()
        .iter()
        .find(|(scope, _)| *scope == id)
        .map(|(_, client)| client.clone())
}

/// Makes `scope` this thread's capture scope; returns the one it replaces.
pub(crate) fn enter_scope(scope: Option<NonZeroU64>) -> Option<NonZeroU64> {
    THREAD_SCOPE
        .try_with(|current| current.replace(scope))
        .ok()
        .flatten()
}

/// The capture scope this thread runs inside, if any.
pub(crate) fn thread_scope() -> Option<NonZeroU64> {
    THREAD_SCOPE.try_with(Cell::get).ok().flatten()
}

/// The client a trace starting on this thread records to: its capture scope's when it runs
/// inside one (with the scope), else the installed one.
pub(crate) fn client_here() -> Option<(Arc<Client>, Option<NonZeroU64>)> {
    if !enabled() {
        return None;
    }
    match thread_scope() {
        Some(scope) => scope_client(scope).map(|client| (client, Some(scope))),
        None => CLIENT.load_full().map(|client| (client, None)),
    }
}

/// The client for what belongs to `scope` (a trace's), else to this thread's scope, else the
/// installed client.
pub(crate) fn client_for(scope: Option<NonZeroU64>) -> Option<Arc<Client>> {
    if !enabled() {
        return None;
    }
    match scope.or_else(thread_scope) {
        Some(scope) => scope_client(scope),
        None => CLIENT.load_full(),
    }
}
