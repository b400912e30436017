//! The global client: installed once by `init`, read by every new trace. Owns the gate (one
//! relaxed atomic load decides whether anything is recorded), sampling, the hand-off of finished
//! spans to the exporter, and flush / shutdown with deadlines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use arc_swap::ArcSwapOption;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, TrySendError};

use crate::config::{Config, ConfigError, Settings, SinkChoice};
use crate::diagnostics;
use crate::export::console::ConsoleSink;
use crate::export::otlp::{Envelope, OtlpSink};
use crate::export::transport::Transport;
use crate::export::worker::{self, apply_mask, Control, WorkerHandle, WorkerSettings};
use crate::export::{AuthCheck, AuthError, Counters, MemoryExporter, Sink, Stats};
use crate::guard::{FlushError, FlushGuard, ShutdownReport};
use crate::ids::{ObservationId, TraceId};
use crate::span::FinishedSpan;
use crate::trace::TraceState;

/// Is a client installed and running? The only thing the hot path reads when tracing is off.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The installed client: read without a lock when a trace starts.
static CLIENT: ArcSwapOption<Client> = ArcSwapOption::const_empty();
/// Serializes installing and removing the client (never taken on the hot path).
static INSTALL: Mutex<()> = Mutex::new(());
/// The counters of the latest client, kept after its shutdown so `stats()` still tells the loss.
static LATEST_COUNTERS: RwLock<Option<Arc<Counters>>> = RwLock::new(None);

/// Whether observations are recorded at all (one relaxed atomic load).
#[inline]
pub(crate) fn enabled() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// A copy of what a global slot holds (a poisoned lock still holds a usable value).
fn read<T: Clone>(slot: &RwLock<Option<T>>) -> Option<T> {
    match slot.read() {
        Ok(value) => value.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// The running client, if any.
pub(crate) fn installed() -> Option<Arc<Client>> {
    if !enabled() {
        return None;
    }
    CLIENT.load_full()
}

fn install_lock() -> MutexGuard<'static, ()> {
    match INSTALL.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

enum Destination {
    Memory(MemoryExporter),
    Worker(WorkerHandle),
}

pub(crate) struct Client {
    /// Traces whose sampling value is below this are kept (`None`: all are).
    sample_below: Option<u64>,
    capture_io: bool,
    field_limit: usize,
    shutdown_timeout: Duration,
    max_queue: usize,
    mask: Option<crate::config::Mask>,
    /// `LANGFUSE_*` settings handed to child processes by `TraceContext::apply_to`.
    child_environment: Vec<(&'static str, String)>,
    /// The trace this process was started in (`TRACEPARENT`), for traces that start here.
    process_parent: Option<(TraceId, ObservationId, bool)>,
    destination: Destination,
    pub(crate) counters: Arc<Counters>,
    stopped: AtomicBool,
    /// Set at the first drop for a full queue: the warning is said once, and later drops cost
    /// only a counter.
    queue_full_warned: AtomicBool,
}

impl Client {
    pub(crate) fn samples(&self, trace_id: TraceId) -> bool {
        self.sample_below
            .is_none_or(|below| trace_id.sampling_value() < below)
    }

    pub(crate) fn captures_io(&self) -> bool {
        self.capture_io
    }

    pub(crate) fn field_limit(&self) -> usize {
        self.field_limit
    }

    pub(crate) fn environment_for_children(&self) -> &[(&'static str, String)] {
        &self.child_environment
    }

    /// Hands a finished span to the exporter without ever blocking.
    pub(crate) fn submit(&self, mut span: Box<FinishedSpan>) {
        match &self.destination {
            Destination::Memory(memory) => {
                if let Some(mask) = &self.mask {
                    apply_mask(mask, &mut span);
                }
                memory.push(*span);
                Counters::add(&self.counters.spans_queued, 1);
                Counters::add(&self.counters.spans_exported, 1);
            }
            Destination::Worker(worker) => match worker.data.try_send(span) {
                Ok(()) => Counters::add(&self.counters.spans_queued, 1),
                Err(TrySendError::Full(_)) => {
                    Counters::add(&self.counters.spans_dropped_queue_full, 1);
                    if self.queue_full_warned.swap(true, Ordering::Relaxed) {
                        return;
                    }
                    diagnostics::warn_once(
                        "queue-full",
                        format!(
                            "the span queue is full ({} spans): new spans are dropped and counted \
                             until the exporter catches up; the backend may be slow or down (see \
                             observe_runtime::stats()), or raise LANGFUSE_MAX_QUEUE",
                            self.max_queue
                        ),
                    );
                }
                Err(TrySendError::Disconnected(_)) => {
                    Counters::add(&self.counters.spans_dropped_after_shutdown, 1);
                }
            },
        }
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(Instant, crossbeam_channel::Sender<T>) -> Control,
        timeout: Duration,
    ) -> Result<T, FlushError> {
        let Destination::Worker(worker) = &self.destination else {
            return Err(FlushError::NotRunning);
        };
        let deadline = Instant::now() + timeout;
        let (reply, answer) = bounded(1);
        if worker
            .control
            .send_timeout(make(deadline, reply), timeout)
            .is_err()
        {
            return Err(FlushError::NotRunning);
        }
        // A little beyond the worker's own deadline, so its answer can arrive.
        let grace = Duration::from_millis(100).min(timeout / 10);
        answer
            .recv_deadline(deadline + grace)
            .map_err(|_| FlushError::Timeout { waited: timeout })
    }

    /// Sends everything queued now; the pipeline keeps running.
    pub(crate) fn flush(&self) -> Result<(), FlushError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(FlushError::NotRunning);
        }
        if let Destination::Memory(_) = self.destination {
            return Ok(());
        }
        self.ask(
            |deadline, reply| Control::Flush { deadline, reply },
            self.shutdown_timeout,
        )?
        .map_err(|reason| FlushError::ExportFailed { reason })
    }

    pub(crate) fn auth_check(&self) -> Result<AuthCheck, AuthError> {
        match self.ask(
            |deadline, reply| Control::AuthCheck { deadline, reply },
            self.shutdown_timeout,
        ) {
            Ok(answer) => answer,
            Err(FlushError::NotRunning) => match self.destination {
                Destination::Memory(_) => Err(AuthError::NotLangfuse),
                Destination::Worker(_) => Err(AuthError::NotInitialized),
            },
            Err(error) => Err(AuthError::Network {
                reason: error.to_string(),
                base_url: String::new(),
            }),
        }
    }

    /// Stops recording, sends what is queued and stops the exporter thread, all within the
    /// shutdown timeout.
    pub(crate) fn shutdown(self: &Arc<Self>) -> Result<ShutdownReport, FlushError> {
        let started = Instant::now();
        uninstall(self);
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Err(FlushError::NotRunning);
        }
        let result = match &self.destination {
            Destination::Memory(_) => Ok(()),
            Destination::Worker(worker) => {
                let answer = self.ask(
                    |deadline, reply| Control::Shutdown { deadline, reply },
                    self.shutdown_timeout,
                );
                if answer.is_ok() {
                    let thread = match worker.thread.lock() {
                        Ok(mut thread) => thread.take(),
                        Err(poisoned) => poisoned.into_inner().take(),
                    };
                    if let Some(thread) = thread {
                        let _ = thread.join();
                    }
                }
                answer.and_then(|r| r.map_err(|reason| FlushError::ExportFailed { reason }))
            }
        };
        let stats = self.counters.snapshot();
        let lost = stats.spans_dropped_queue_full + stats.spans_dropped_export_failed;
        if lost > 0 {
            diagnostics::warn(
                "shutdown-loss",
                format!(
                    "{lost} span(s) were not delivered ({} dropped because the queue was full, {} \
                     because their requests failed); last error: {}",
                    stats.spans_dropped_queue_full,
                    stats.spans_dropped_export_failed,
                    stats.last_error.as_deref().unwrap_or("none")
                ),
            );
        }
        if let Err(FlushError::Timeout { waited }) = &result {
            diagnostics::warn(
                "shutdown-timeout",
                format!(
                    "shutdown gave up after {waited:?} (LANGFUSE_SHUTDOWN_TIMEOUT); spans still \
                     queued were not delivered"
                ),
            );
        }
        result.map(|()| ShutdownReport {
            stats,
            elapsed: started.elapsed(),
        })
    }
}

fn uninstall(client: &Arc<Client>) {
    let _install = install_lock();
    if CLIENT
        .load()
        .as_ref()
        .is_some_and(|c| Arc::ptr_eq(c, client))
    {
        ACTIVE.store(false, Ordering::Release);
        CLIENT.store(None);
    }
}

/// A new trace for an observation opened with nothing current: a child of the process's
/// `TRACEPARENT` when there is one, else a fresh random trace.
pub(crate) fn new_root_trace() -> (Arc<TraceState>, Option<ObservationId>) {
    let parent = installed().and_then(|c| c.process_parent);
    match parent {
        Some((trace_id, span_id, sampled)) => (
            TraceState::new(trace_id, Some(span_id), Some(sampled)),
            Some(span_id),
        ),
        None => (TraceState::new(TraceId::random(), None, None), None),
    }
}

/// Stats of the running client, or of the latest one after its shutdown (zero before any).
pub(crate) fn stats() -> Stats {
    read(&LATEST_COUNTERS)
        .map(|c| c.snapshot())
        .unwrap_or_default()
}

fn child_environment(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    if let SinkChoice::Otlp(target) = &settings.sink {
        if let Some(keys) = &target.langfuse {
            vars.push(("LANGFUSE_PUBLIC_KEY", keys.public_key.clone()));
            vars.push(("LANGFUSE_SECRET_KEY", keys.secret_key.clone()));
            vars.push(("LANGFUSE_BASE_URL", target.base_url.clone()));
        } else {
            vars.push((
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                target.endpoint.clone(),
            ));
        }
    }
    if let Some(environment) = &settings.environment {
        vars.push(("LANGFUSE_TRACING_ENVIRONMENT", environment.clone()));
    }
    if let Some(release) = &settings.release {
        vars.push(("LANGFUSE_RELEASE", release.clone()));
    }
    vars.push(("LANGFUSE_SAMPLE_RATE", settings.sample_rate.to_string()));
    vars
}

/// `Config::init`: validate, start the exporter, install the client.
pub(crate) fn init(config: Config) -> Result<FlushGuard, ConfigError> {
    let traceparent = config.traceparent.clone();
    let settings = config.validate()?;
    diagnostics::set_debug(settings.debug);
    for note in &settings.notes {
        diagnostics::note(note);
    }
    for warning in &settings.warnings {
        diagnostics::warn(warning, warning);
    }
    if !settings.enabled {
        diagnostics::debug(|| "tracing is disabled; nothing will be recorded".into());
        return Ok(FlushGuard::disabled());
    }
    let install = install_lock();
    if CLIENT.load().is_some() {
        return Err(ConfigError::AlreadyInitialized);
    }

    let process_parent = traceparent.and_then(|value| match crate::TraceContext::from_traceparent(
        &value,
    ) {
        Ok(context) => context
            .observation_id()
            .map(|span| (context.trace_id(), span, context.is_sampled())),
        Err(error) => {
            diagnostics::warn("TRACEPARENT", format!("TRACEPARENT ignored: {error}"));
            None
        }
    });
    let counters = Arc::new(Counters::default());
    let child_environment = child_environment(&settings);
    let envelope = Envelope::new(
        &settings.service_name,
        &settings.resource_attributes,
        settings.environment.clone(),
        settings.release.clone(),
    );
    let worker_settings = WorkerSettings {
        flush_at: settings.flush_at,
        flush_interval: settings.flush_interval,
        max_queue: settings.max_queue,
        mask: settings.mask.clone(),
    };
    let timeout = settings.timeout;
    diagnostics::debug(|| match &settings.sink {
        SinkChoice::Otlp(target) => format!(
            "sending spans to {} ({})",
            target.endpoint,
            if target.langfuse.is_some() {
                "Langfuse"
            } else {
                "OpenTelemetry collector"
            }
        ),
        SinkChoice::Memory(_) => "keeping spans in memory".to_string(),
        SinkChoice::Console | SinkChoice::ConsoleNoCredentials => {
            "printing traces to stderr".to_string()
        }
    });
    let destination = match settings.sink {
        SinkChoice::Memory(memory) => Destination::Memory(memory),
        SinkChoice::Console | SinkChoice::ConsoleNoCredentials => {
            let header = matches!(settings.sink, SinkChoice::ConsoleNoCredentials).then_some(
                "no LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY set: traces are printed here \
                 instead of being sent to Langfuse",
            );
            let spawned = worker::spawn(worker_settings, counters.clone(), move || {
                Ok(Box::new(ConsoleSink::new(header)) as Box<dyn Sink>)
            });
            Destination::Worker(spawned.map_err(ConfigError::Startup)?)
        }
        SinkChoice::Otlp(target) => {
            let sink_counters = counters.clone();
            let spawned = worker::spawn(worker_settings, counters.clone(), move || {
                let transport = Transport::new(target, timeout, sink_counters)?;
                Ok(Box::new(OtlpSink {
                    transport,
                    envelope,
                }) as Box<dyn Sink>)
            });
            Destination::Worker(spawned.map_err(ConfigError::Startup)?)
        }
    };
    let sample_below = (settings.sample_rate < 1.0)
        .then_some((settings.sample_rate * 18_446_744_073_709_551_616.0) as u64);
    let client = Arc::new(Client {
        sample_below,
        capture_io: settings.capture_io,
        field_limit: settings.max_field_bytes,
        shutdown_timeout: settings.shutdown_timeout,
        max_queue: settings.max_queue,
        mask: settings.mask,
        child_environment,
        process_parent,
        destination,
        counters,
        stopped: AtomicBool::new(false),
        queue_full_warned: AtomicBool::new(false),
    });
    CLIENT.store(Some(client.clone()));
    match LATEST_COUNTERS.write() {
        Ok(mut latest) => *latest = Some(client.counters.clone()),
        Err(poisoned) => *poisoned.into_inner() = Some(client.counters.clone()),
    }
    ACTIVE.store(true, Ordering::Release);
    drop(install);
    crate::guard::register_exit_hook();
    crate::span::install_panic_hook();
    Ok(FlushGuard::new(client))
}

/// The client as installed, for the exit hook (ignores the gate).
pub(crate) fn take_for_exit() -> Option<Arc<Client>> {
    CLIENT.load_full()
}

// `Config::init` lives here, not in config: it starts the client, and config must not import
// upward.
impl Config {
    /// Validates everything, starts the exporter thread and installs the global client.
    pub fn init(self) -> Result<crate::FlushGuard, ConfigError> {
        crate::client::init(self)
    }
}
