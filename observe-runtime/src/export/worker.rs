//! The one exporter thread: takes finished spans from a bounded queue, batches them by count, time
//! and size, and hands batches to a sink. A small control channel carries flush, shutdown and the
//! credential check, each with a reply and a deadline. Callers never wait on the network except in
//! flush and shutdown, and those always have a deadline.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, RecvTimeoutError, Sender};

use super::{otlp, AuthCheck, AuthError, Counters, Failure, Sink};
use crate::diagnostics;
use crate::mask::{mask_json, Mask};
use crate::span::FinishedSpan;

/// Requests stay under this many (uncompressed) bytes; the server warns above 16 MB.
const MAX_BATCH_BYTES: usize = 3_500_000;

pub(crate) enum Control {
    Flush {
        deadline: Instant,
        reply: Sender<Result<(), String>>,
    },
    Shutdown {
        deadline: Instant,
        reply: Sender<Result<(), String>>,
    },
    AuthCheck {
        deadline: Instant,
        reply: Sender<Result<AuthCheck, AuthError>>,
    },
}

impl Control {
    fn deadline(&self) -> Instant {
        match self {
            Self::Flush { deadline, .. }
            | Self::Shutdown { deadline, .. }
            | Self::AuthCheck { deadline, .. } => *deadline,
        }
    }
}

/// Lets a sink wait (between retries) while control messages keep arriving: a flush or shutdown
/// that comes in tightens the deadline the sink works under.
pub(crate) struct Waiter {
    control: Receiver<Control>,
    pending: VecDeque<Control>,
    deadline: Option<Instant>,
}

impl Waiter {
    /// Time left before the current deadline, if there is one.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn tighten(&mut self, deadline: Instant) {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Waits `duration`, taking in control messages; `false` when a deadline comes first.
    pub(crate) fn sleep(&mut self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        loop {
            if self.deadline.is_some_and(|d| d < until) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            match self.control.recv_timeout(until - now) {
                Ok(message) => {
                    if !matches!(message, Control::AuthCheck { .. }) {
                        self.tighten(message.deadline());
                    }
                    self.pending.push_back(message);
                }
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    return true;
                }
            }
        }
    }
}

/// The client's side of the exporter thread.
pub(crate) struct WorkerHandle {
    pub(crate) data: Sender<Box<FinishedSpan>>,
    pub(crate) control: Sender<Control>,
    pub(crate) thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct WorkerSettings {
    pub(crate) flush_at: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) max_queue: usize,
    pub(crate) mask: Option<Mask>,
}

/// Starts the exporter thread. `make_sink` runs on that thread (the HTTP runtime is built there);
/// its error is returned here.
pub(crate) fn spawn(
    settings: WorkerSettings,
    counters: Arc<Counters>,
    make_sink: impl FnOnce() -> Result<Box<dyn Sink>, String> + Send + 'static,
) -> Result<WorkerHandle, String> {
    let (data_tx, data_rx) = bounded(settings.max_queue);
    let (control_tx, control_rx) = bounded(64);
    let (ready_tx, ready_rx) = bounded::<Result<(), String>>(1);
    let thread = std::thread::Builder::new()
        .name("langfuse-exporter".into())
        .spawn(move || {
            let sink = match make_sink() {
                Ok(sink) => {
                    let _ = ready_tx.send(Ok(()));
                    sink
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            let worker = Worker {
                data: data_rx,
                waiter: Waiter {
                    control: control_rx,
                    pending: VecDeque::new(),
                    deadline: None,
                },
                sink,
                batch: Vec::new(),
                batch_bytes: 0,
                shutting_down: false,
                settings,
                counters,
            };
            // A bug here must not take the program down; spans then pile up in the bounded
            // queue and are dropped and counted, and flush reports that nothing is running.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run())).is_err() {
                diagnostics::error(
                    "exporter-panic",
                    "the exporter thread stopped after an internal error; spans are no longer sent",
                );
            }
        })
        .map_err(|e| e.to_string())?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(WorkerHandle {
            data: data_tx,
            control: control_tx,
            thread: std::sync::Mutex::new(Some(thread)),
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err("the exporter thread stopped while starting".into()),
    }
}

struct Worker {
    data: Receiver<Box<FinishedSpan>>,
    waiter: Waiter,
    sink: Box<dyn Sink>,
    batch: Vec<FinishedSpan>,
    batch_bytes: usize,
    /// During shutdown a batch that misses the deadline is lost; during a flush it is kept for
    /// the next round.
    shutting_down: bool,
    settings: WorkerSettings,
    counters: Arc<Counters>,
}

enum Next {
    Continue,
    Stop,
}

impl Worker {
    fn run(mut self) {
        let data = self.data.clone();
        let control = self.waiter.control.clone();
        let mut last_export = Instant::now();
        loop {
            if let Some(message) = self.waiter.pending.pop_front() {
                if let Next::Stop = self.handle(message) {
                    return;
                }
                last_export = Instant::now();
                continue;
            }
            let wait = self
                .settings
                .flush_interval
                .saturating_sub(last_export.elapsed());
            select! {
                recv(data) -> span => match span {
                    Ok(span) => {
                        if self.add(span) {
                            let _ = self.export();
                            last_export = Instant::now();
                        }
                    }
                    Err(_) => {
                        // Every sender is gone: the client was dropped without a shutdown.
                        let _ = self.export();
                        self.sink.close();
                        return;
                    }
                },
                recv(control) -> message => match message {
                    Ok(message) => {
                        if let Next::Stop = self.handle(message) {
                            return;
                        }
                        last_export = Instant::now();
                    }
                    Err(_) => {
                        let _ = self.drain();
                        self.sink.close();
                        return;
                    }
                },
                default(wait) => {
                    let _ = self.export();
                    last_export = Instant::now();
                }
            }
        }
    }

    /// Adds a span to the batch; `true` when the batch is due (count or size).
    fn add(&mut self, mut span: Box<FinishedSpan>) -> bool {
        if let Some(mask) = &self.settings.mask {
            apply_mask(mask, &mut span);
        }
        let size = otlp::estimated_size(&span);
        if !self.batch.is_empty() && self.batch_bytes + size > MAX_BATCH_BYTES {
            let _ = self.export();
        }
        self.batch_bytes += size;
        self.batch.push(*span);
        self.batch.len() >= self.settings.flush_at || self.batch_bytes >= MAX_BATCH_BYTES
    }

    /// Sends what is batched now. Returns why spans were not delivered, if they were not.
    fn export(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let bytes = std::mem::take(&mut self.batch_bytes);
        let count = batch.len() as u64;
        let reason = match self.sink.export(batch, &mut self.waiter) {
            Ok(()) => {
                Counters::add(&self.counters.spans_exported, count);
                diagnostics::debug(|| format!("delivered {count} span(s)"));
                return Ok(());
            }
            Err(Failure::Deadline(reason, batch)) if !self.shutting_down => {
                // A flush ran out of time: keep the spans for the next round.
                self.batch = batch;
                self.batch_bytes = bytes;
                return Err(reason);
            }
            Err(Failure::Deadline(reason, _)) | Err(Failure::Lost(reason)) => reason,
        };
        Counters::add(&self.counters.spans_dropped_export_failed, count);
        if !reason.starts_with("HTTP 401") && !reason.starts_with("HTTP 403") {
            diagnostics::error(
                "export",
                format!("{count} span(s) were not delivered: {reason}"),
            );
        }
        Err(reason)
    }

    /// Exports everything queued when called (spans arriving meanwhile wait for the next round),
    /// until the deadline passes.
    fn drain(&mut self) -> Result<(), String> {
        let mut result = Ok(());
        let queued = self.data.len();
        for _ in 0..queued {
            if self.waiter.passed() && !self.shutting_down {
                break;
            }
            let Ok(span) = self.data.try_recv() else {
                break;
            };
            if self.add(span) {
                if let Err(e) = self.export() {
                    result = Err(e);
                }
            }
        }
        if let Err(e) = self.export() {
            result = Err(e);
        }
        result
    }

    fn handle(&mut self, message: Control) -> Next {
        match message {
            Control::Flush { deadline, reply } => {
                self.waiter.tighten(deadline);
                let result = self.drain();
                self.waiter.deadline = None;
                let _ = reply.send(result);
                Next::Continue
            }
            Control::Shutdown { deadline, reply } => {
                self.waiter.tighten(deadline);
                self.shutting_down = true;
                let result = self.drain();
                self.sink.close();
                let _ = reply.send(result);
                Next::Stop
            }
            Control::AuthCheck { deadline, reply } => {
                let saved = self.waiter.deadline;
                self.waiter.tighten(deadline);
                let _ = reply.send(self.sink.auth_check(&mut self.waiter));
                self.waiter.deadline = saved;
                Next::Continue
            }
        }
    }
}

/// Runs the user's mask over every captured value of a span.
pub(crate) fn apply_mask(mask: &Mask, span: &mut FinishedSpan) {
    if let Some(input) = &mut span.input {
        mask_json(mask, input);
    }
    if let Some(output) = &mut span.output {
        mask_json(mask, output);
    }
    for (_, value) in &mut span.metadata {
        mask_json(mask, value);
    }
}
