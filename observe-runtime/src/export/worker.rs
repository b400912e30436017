//! The one exporter thread: takes chunks of finished records from the queue, turns them into
//! exporters' spans (Unix times, trace attributes resolved, masked), batches them by count, time
//! and size, and hands batches to a sink. At shutdown it sends the newest spans first, so that a
//! deadline cuts children, never the parents of what was sent. Scores take the same way in
//! batches of their own (by count and time; the sink splits them by size), ahead of the spans at
//! a flush or shutdown. A small control channel carries flush, shutdown and the credential check,
//! each with a reply and a deadline. Callers never wait on the network except in flush and
//! shutdown, and those always have a deadline.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Sender};

use super::otlp;
use super::queue::QueueReceiver;
use super::sink::{Failure, ScoresSent, Sink};
use super::stats::Counters;
use super::transport::Undelivered;
use super::waiter::{Control, Waiter};
use crate::capture;
use crate::clock::UnixClock;
use crate::diagnostics;
use crate::ids::{IdMap, IdSet, ObservationId};
use crate::mask::{mask_json, Mask};
use crate::record::{FinishedScore, FinishedSpan, Record, TraceState};
use crate::unobserved;

/// At most this many awaited parents are remembered.
const MAX_AWAITED: usize = 65_536;
/// An awaited parent is forgotten after this long, once there are too many.
const AWAITED_FOR: Duration = Duration::from_secs(900);

/// Requests stay under this many (uncompressed) bytes; the server warns above 16 MB.
const MAX_BATCH_BYTES: usize = 3_500_000;

/// The name of the exporter thread.
pub(crate) const THREAD_NAME: &str = "langfuse-exporter";

/// The client's side of the exporter thread.
pub(crate) struct WorkerHandle {
    pub(crate) control: Sender<Control>,
    pub(crate) thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct WorkerSettings {
    pub(crate) flush_at: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) mask: Option<Mask>,
    /// The size limit of one captured field, held again after the mask.
    pub(crate) field_limit: usize,
    /// Hands over what other threads hold in their buffers; called on every timer round.
    pub(crate) collect: Option<Box<dyn Fn() + Send>>,
}

/// Starts the exporter thread. `make_sink` runs on that thread (the HTTP runtime is built there);
/// its error is returned here.
pub(crate) fn spawn(
    settings: WorkerSettings,
    counters: Arc<Counters>,
    data: QueueReceiver,
    make_sink: impl FnOnce() -> Result<Box<dyn Sink>, String> + Send + 'static,
) -> Result<WorkerHandle, String> {
    let (control_tx, control_rx) = bounded(64);
    let (ready_tx, ready_rx) = bounded::<Result<(), String>>(1);
    let thread = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            // What this thread does is never observed: not the mask, not the HTTP client.
            unobserved::mark_thread();
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
                data,
                clock: UnixClock::new(),
                waiter: Waiter {
                    control: control_rx,
                    pending: VecDeque::new(),
                    deadline: None,
                },
                sink,
                batch: Vec::new(),
                batch_bytes: 0,
                carry: Vec::new(),
                scores: Vec::new(),
                requests: 0,
                awaited: IdMap::default(),
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
            control: control_tx,
            thread: std::sync::Mutex::new(Some(thread)),
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err("the exporter thread stopped while starting".into()),
    }
}

struct Worker {
    data: QueueReceiver,
    clock: UnixClock,
    waiter: Waiter,
    sink: Box<dyn Sink>,
    batch: Vec<FinishedSpan>,
    batch_bytes: usize,
    /// Records of a chunk not yet batched when a control message interrupted it (oldest first).
    carry: Vec<Record>,
    /// Scores taken from the queue and not sent yet (a flush that ran out of time keeps them).
    scores: Vec<FinishedScore>,
    /// Batches handed to the sink so far.
    requests: u64,
    /// Parents of delivered spans that were not delivered yet, and since when.
    awaited: IdMap<Instant>,
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

/// What ended the exporter's wait.
enum Event {
    /// A batch's worth waits (`false`: every sender is gone).
    Woken(bool),
    /// A control message (`None`: the client is gone).
    Control(Option<Control>),
    /// The timer is due.
    Timer,
}

impl Worker {
    fn run(mut self) {
        let data = self.data.receiver.clone();
        let wake = self.data.wake.clone();
        let control = self.waiter.control.clone();
        let mut last_export = Instant::now();
        // What earlier processes left in the spool goes first.
        self.sink.resume(&mut self.waiter);
        loop {
            if let Some(message) = self.waiter.pending.pop_front() {
                if let Next::Stop = self.handle(message) {
                    return;
                }
                last_export = Instant::now();
                continue;
            }
            if !self.carry.is_empty() {
                let carried = std::mem::take(&mut self.carry);
                let _ = self.take(carried);
                continue;
            }
            let wait = self
                .settings
                .flush_interval
                .saturating_sub(last_export.elapsed());
            // Waits for a wake-up only when none is needed: a batch's worth that came while it
            // worked is taken at once (threads that hand over wake it only while it waits).
            let event = if self.data.may_wait() {
                select! {
                    recv(wake) -> woken => Event::Woken(woken.is_ok()),
                    recv(control) -> message => Event::Control(message.ok()),
                    default(wait) => Event::Timer,
                }
            } else {
                Event::Woken(true)
            };
            self.data.awake();
            match event {
                Event::Woken(woken) => {
                    // A batch's worth waits: take every chunk there is (until the timer is due).
                    while let Ok(chunk) = data.try_recv() {
                        let _ = self.take(chunk);
                        if !self.waiter.pending.is_empty()
                            || !self.carry.is_empty()
                            || last_export.elapsed() >= self.settings.flush_interval
                        {
                            break;
                        }
                    }
                    if !woken && data.is_empty() {
                        // Every sender is gone: the client was dropped without a shutdown.
                        let _ = self.send_scores(true);
                        let _ = self.export();
                        self.sink.close();
                        return;
                    }
                    if self.waiter.pending.is_empty() {
                        let _ = self.send_scores(false);
                    }
                    if self.waiter.pending.is_empty()
                        && last_export.elapsed() >= self.settings.flush_interval
                    {
                        // Due: chunks and wake-ups that keep coming would otherwise starve the
                        // timer, and with it what other threads hold.
                        self.tick();
                        last_export = Instant::now();
                    }
                }
                Event::Control(message) => match message {
                    Some(message) => {
                        if let Next::Stop = self.handle(message) {
                            return;
                        }
                        last_export = Instant::now();
                    }
                    None => {
                        self.shutting_down = true;
                        let _ = self.drain();
                        self.sink.close();
                        return;
                    }
                },
                Event::Timer => {
                    self.tick();
                    last_export = Instant::now();
                }
            }
        }
    }

    /// The timer: what other threads buffer comes over, and what is batched goes.
    fn tick(&mut self) {
        if let Some(collect) = &self.settings.collect {
            collect();
        }
        while let Ok(chunk) = self.data.receiver.try_recv() {
            let _ = self.take(chunk);
            if !self.waiter.pending.is_empty() || !self.carry.is_empty() {
                break;
            }
        }
        if self.carry.is_empty() {
            let _ = self.export();
        }
        if self.waiter.pending.is_empty() {
            let _ = self.send_scores(true);
        }
    }

    /// Adds a chunk of records to the batch, sending batches as they fill.
    ///
    /// A control message that arrives meanwhile stops it between two requests: the records not
    /// yet batched wait in `carry`, so a flush or shutdown is answered after one request at most.
    /// The emptied chunk goes back to the threads for reuse.
    fn take(&mut self, mut chunk: Vec<Record>) -> Result<(), String> {
        self.clock.refresh();
        let mut result = Ok(());
        let mut records = chunk.drain(..);
        // The trace of the records so far (a record of the same trace does not repeat it).
        let mut run = None;
        while let Some(record) = records.next() {
            let requests = self.requests;
            if self.add(record, &mut run) {
                if let Err(e) = self.export() {
                    result = Err(e);
                }
            }
            if self.requests != requests && self.control_waiting() {
                // What is carried starts a chunk of its own: its first record names its trace.
                if let Some(next) = records.next() {
                    self.carry.push(next.standalone(&run));
                    self.carry.extend(records.by_ref());
                }
                break;
            }
        }
        drop(records);
        self.data.recycle(chunk);
        result
    }

    /// Whether a control message waits (taking it in if one has just arrived).
    fn control_waiting(&mut self) -> bool {
        if !self.waiter.pending.is_empty() {
            return true;
        }
        match self.waiter.control.try_recv() {
            Ok(message) => {
                if !matches!(message, Control::AuthCheck { .. }) {
                    self.waiter.tighten(message.deadline());
                }
                self.waiter.pending.push_back(message);
                true
            }
            Err(_) => false,
        }
    }

    /// Adds a record to the batch, finished where it goes in the batch (a span is some 600
    /// bytes: finished aside and pushed, it was copied twice more); `true` when the batch is
    /// due (count or size).
    fn add(&mut self, record: Record, run: &mut Option<Arc<TraceState>>) -> bool {
        let before = self.batch.len();
        finish_into(&self.clock, &self.settings, record, run, &mut self.batch);
        self.batch.len() > before && self.count_last()
    }

    /// Adds a span to the batch; `true` when the batch is due (count or size).
    fn push(&mut self, span: FinishedSpan) -> bool {
        self.batch.push(span);
        self.count_last()
    }

    /// Counts the span last added to the batch; when it makes the request too large, the spans
    /// before it go first, in a request of their own. `true` when the batch is due.
    fn count_last(&mut self) -> bool {
        let Some(size) = self.batch.last().map(otlp::estimated_size) else {
            return false;
        };
        if self.batch.len() > 1 && self.batch_bytes + size > MAX_BATCH_BYTES {
            if let Some(span) = self.batch.pop() {
                let _ = self.export();
                self.batch.push(span);
            }
        }
        self.batch_bytes += size;
        // At shutdown, requests are as large as allowed: fewer round trips before the deadline.
        (!self.shutting_down && self.batch.len() >= self.settings.flush_at)
            || self.batch_bytes >= MAX_BATCH_BYTES
    }

    /// Sends what is batched now. Returns why spans were not delivered, if they were not.
    fn export(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.requests += 1;
        let batch = std::mem::take(&mut self.batch);
        let bytes = std::mem::take(&mut self.batch_bytes);
        let count = batch.len();
        let links: Vec<(ObservationId, Option<ObservationId>)> = batch
            .iter()
            .map(|span| {
                let parent = span.parent_span_id.filter(|_| !span.is_local_root);
                (span.span_id, parent)
            })
            .collect();
        let (why, counter) = match self.sink.export(batch, &mut self.waiter) {
            Ok(()) => {
                self.note_delivered(&links);
                Counters::add(&self.counters.spans_exported, count as u64);
                self.data.done(count);
                diagnostics::debug(|| format!("delivered {count} span(s)"));
                return Ok(());
            }
            Err(Failure::Deadline(why, batch)) if !self.shutting_down => {
                // A flush ran out of time: keep the spans for the next round.
                self.batch = batch;
                self.batch_bytes = bytes;
                return Err(why.into_reason());
            }
            Err(Failure::Deadline(why, batch)) => {
                if self.keep(batch) {
                    return Err(why.into_reason());
                }
                (why, &self.counters.spans_dropped_shutdown_deadline)
            }
            Err(Failure::Spooled(why)) => {
                let reason = why.into_reason();
                self.data.done(count);
                diagnostics::warn(
                    "spooled",
                    format!(
                        "{count} span(s) were not delivered ({reason}); they were written to the \
                         spool directory and are sent by a later round or the next start"
                    ),
                );
                return Err(reason);
            }
            Err(Failure::Dropped(why @ Undelivered::Unanswered(_))) => {
                (why, &self.counters.spans_unanswered)
            }
            Err(Failure::Dropped(why)) => (why, &self.counters.spans_dropped_export_failed),
        };
        Counters::add(counter, count as u64);
        self.data.done(count);
        if !why.already_reported() {
            diagnostics::error(
                "export",
                format!("{count} span(s) were not delivered: {why}"),
            );
        }
        Err(why.into_reason())
    }

    /// Exports everything queued when called (chunks arriving meanwhile wait for the next round).
    ///
    /// A flush goes oldest first and stops at its deadline, keeping the rest. A shutdown goes
    /// newest first: a parent ends after its children, so when the deadline cuts, what is lost
    /// are children whose parents were sent, never parents whose children were. What the
    /// deadline leaves is dropped and counted.
    fn drain(&mut self) -> Result<(), String> {
        // Scores first: few, small, and often what a user waits for (feedback at exit).
        let mut result = self.send_scores(true);
        let queued = self.data.receiver.len();
        let mut chunks: Vec<Vec<Record>> = Vec::with_capacity(queued + 1);
        if !self.carry.is_empty() {
            chunks.push(std::mem::take(&mut self.carry));
        }
        chunks.extend((0..queued).map_while(|_| self.data.receiver.try_recv().ok()));
        if !self.shutting_down {
            for chunk in chunks {
                if let Err(e) = self.take(chunk) {
                    result = Err(e);
                }
            }
            if let Err(e) = self.export() {
                result = Err(e);
            }
            return result;
        }
        // Shutdown: everything not yet delivered, in the order that keeps trees whole.
        let mut spans = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.clock.refresh();
        for chunk in chunks {
            let mut run = None;
            for record in chunk {
                finish_into(&self.clock, &self.settings, record, &mut run, &mut spans);
            }
        }
        let spans = self.delivery_order(spans);
        let mut unsent = Vec::new();
        for span in spans {
            if self.waiter.passed() {
                unsent.push(span);
                continue;
            }
            if self.push(span) {
                if let Err(e) = self.export() {
                    result = Err(e);
                }
            }
        }
        if self.waiter.passed() {
            unsent.append(&mut self.batch);
            self.batch_bytes = 0;
            let count = unsent.len();
            if count > 0 && !self.keep(unsent) {
                self.drop_at_deadline(count);
            }
            return Err(result
                .err()
                .unwrap_or_else(|| "the shutdown deadline passed".to_string()));
        }
        if let Err(e) = self.export() {
            result = Err(e);
        }
        result
    }

    /// The order a shutdown sends in, so that a deadline cuts leaves, never a parent of what
    /// arrived: first the open ancestors of spans already delivered (and their ancestors among
    /// these), then the rest, each newest first (a parent ends after its children).
    fn delivery_order(&self, mut spans: Vec<FinishedSpan>) -> Vec<FinishedSpan> {
        spans.sort_by_key(|span| span.end_unix_nanos);
        let mut required: IdSet = self.awaited.keys().copied().collect();
        // Oldest first: a parent comes after its children, so one pass reaches every ancestor.
        for span in &spans {
            if required.contains(&span.span_id) && !span.is_local_root {
                if let Some(parent) = span.parent_span_id {
                    required.insert(parent);
                }
            }
        }
        spans.reverse();
        let (mut first, rest): (Vec<_>, Vec<_>) = spans
            .into_iter()
            .partition(|span| required.contains(&span.span_id));
        first.extend(rest);
        first
    }

    /// Notes what a delivered batch leaves awaited: the parents of its spans that were not in it
    /// (still open, or queued behind it). A shutdown sends those first.
    fn note_delivered(&mut self, delivered: &[(ObservationId, Option<ObservationId>)]) {
        if delivered.is_empty() {
            return;
        }
        let now = Instant::now();
        let ids: IdSet = delivered.iter().map(|(id, _)| *id).collect();
        for (id, parent) in delivered {
            self.awaited.remove(id);
            if let Some(parent) = parent {
                if !ids.contains(parent) {
                    self.awaited.insert(*parent, now);
                }
            }
        }
        if self.awaited.len() > MAX_AWAITED {
            // Parents that never came (a detached task outlived its parent): forget the oldest.
            let horizon = now.checked_sub(AWAITED_FOR).unwrap_or(now);
            self.awaited.retain(|_, since| *since > horizon);
            if self.awaited.len() > MAX_AWAITED {
                self.awaited.clear();
            }
        }
    }

    /// Counts spans the shutdown deadline left undelivered.
    /// Writes spans the shutdown deadline left to the spool, if there is one; `true` when they
    /// were kept (and counted).
    fn keep(&mut self, spans: Vec<FinishedSpan>) -> bool {
        let count = spans.len();
        match self.sink.keep(spans) {
            Some(Ok(kept)) => {
                self.data.done(count);
                diagnostics::warn(
                    "spooled-at-shutdown",
                    format!(
                        "{kept} span(s) were not delivered before the shutdown deadline; they \
                         were written to the spool directory and are sent at the next start"
                    ),
                );
                true
            }
            Some(Err(why)) => {
                diagnostics::error(
                    "spool-write",
                    format!("{count} span(s) were not spooled: {why}"),
                );
                false
            }
            None => false,
        }
    }

    fn drop_at_deadline(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        Counters::add(&self.counters.spans_dropped_shutdown_deadline, count as u64);
        self.data.done(count);
        diagnostics::error(
            "export",
            format!("{count} span(s) were not delivered: the shutdown deadline passed"),
        );
    }

    /// Counts what still sits in the queue once the thread stops.
    fn discard_rest(&mut self) {
        let mut count = 0;
        while let Ok(chunk) = self.data.receiver.try_recv() {
            count += chunk.len();
        }
        if count > 0 {
            Counters::add(&self.counters.spans_dropped_after_shutdown, count as u64);
            self.data.done(count);
        }
        let mut scores = std::mem::take(&mut self.scores).len();
        while self.data.scores.try_recv().is_ok() {
            scores += 1;
        }
        if scores > 0 {
            Counters::add(&self.counters.scores_dropped_after_shutdown, scores as u64);
            self.data.scores_done(scores);
        }
    }

    /// Sends the scores waiting: full batches of `flush_at`, or every one when `all` (the timer,
    /// a flush, a shutdown). Returns why some were not delivered, if some were not.
    fn send_scores(&mut self, all: bool) -> Result<(), String> {
        while let Ok(mut score) = self.data.scores.try_recv() {
            if let Some(mask) = &self.settings.mask {
                apply_score_mask(mask, self.settings.field_limit, &mut score);
            }
            self.scores.push(score);
        }
        let flush_at = self.settings.flush_at.max(1);
        let mut result = Ok(());
        while !self.scores.is_empty() && (all || self.scores.len() >= flush_at) {
            // At shutdown, requests are as large as the body limit allows.
            let take = if self.shutting_down {
                self.scores.len()
            } else {
                self.scores.len().min(flush_at)
            };
            let batch: Vec<FinishedScore> = self.scores.drain(..take).collect();
            let sent = self.sink.export_scores(batch, &mut self.waiter);
            let out_of_time = !sent.unsent.is_empty();
            if let Some(error) = self.count_scores(sent) {
                result = Err(error);
            }
            if out_of_time {
                break;
            }
        }
        result
    }

    /// Counts what became of a batch of scores; keeps what a flush deadline left unsent.
    fn count_scores(&mut self, sent: ScoresSent) -> Option<String> {
        let counters = &self.counters;
        Counters::add(&counters.scores_exported, sent.exported as u64);
        Counters::add(&counters.scores_dropped_rejected, sent.rejected as u64);
        Counters::add(&counters.scores_dropped_export_failed, sent.failed as u64);
        Counters::add(
            &counters.scores_dropped_unsupported,
            sent.unsupported as u64,
        );
        let mut done = sent.exported + sent.rejected + sent.failed + sent.unsupported;
        if sent.exported > 0 {
            diagnostics::debug(|| format!("delivered {} score(s)", sent.exported));
        }
        let unsent = sent.unsent.len();
        if unsent > 0 && self.shutting_down {
            Counters::add(&counters.scores_dropped_shutdown_deadline, unsent as u64);
            done += unsent;
            diagnostics::error(
                "export-scores-deadline",
                format!("{unsent} score(s) were not delivered: the shutdown deadline passed"),
            );
        } else if unsent > 0 {
            // A flush ran out of time: the scores go first in the next round.
            self.scores.splice(0..0, sent.unsent);
        }
        self.data.scores_done(done);
        sent.error
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
                self.discard_rest();
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

/// Runs the user's mask over a score's metadata values and its comment; what it returns is held
/// to the field limit again.
pub(crate) fn apply_score_mask(mask: &Mask, limit: usize, score: &mut FinishedScore) {
    for (_, value) in &mut score.metadata {
        masked_within(mask, limit, value);
    }
    if let Some(comment) = &mut score.comment {
        let mut json = serde_json::Value::from(comment.as_str()).to_string();
        mask_json(mask, &mut json);
        *comment = match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(serde_json::Value::String(text)) => text,
            _ => json,
        };
    }
}

/// Runs the user's mask over every captured value of a span (input, output, observation and trace
/// metadata, and the status message, an error's text); what it returns is held to the field limit
/// again (a mask may make a value longer).
/// Adds the exporters' form of `record` to `into`, built in its place there: Unix times, trace
/// attributes resolved, masked. `run` is the trace of the records before it in its chunk (see
/// [`Record`]); a record with no trace (never) adds nothing.
fn finish_into(
    clock: &UnixClock,
    settings: &WorkerSettings,
    record: Record,
    run: &mut Option<Arc<TraceState>>,
    into: &mut Vec<FinishedSpan>,
) {
    let before = into.len();
    into.extend(record.finish(run, |ticks| clock.unix_nanos(ticks)));
    if let (Some(span), Some(mask)) = (into.get_mut(before), &settings.mask) {
        apply_mask(mask, settings.field_limit, span);
    }
}

pub(crate) fn apply_mask(mask: &Mask, limit: usize, span: &mut FinishedSpan) {
    if let Some(input) = &mut span.input {
        masked_within(mask, limit, input);
    }
    if let Some(output) = &mut span.output {
        masked_within(mask, limit, output);
    }
    for (_, value) in &mut span.metadata {
        masked_within(mask, limit, value);
    }
    // Status messages are error texts: they can quote what failed, secrets included.
    if let Some(message) = &mut span.status_message {
        let mut json = capture::json_string(message);
        masked_within(mask, limit, &mut json);
        *message = serde_json::from_str::<String>(&json).unwrap_or(json);
    }
    let trace = &span.trace;
    if !trace.metadata.is_empty() || trace.input.is_some() || trace.output.is_some() {
        let trace = Arc::make_mut(&mut span.trace);
        for (_, value) in &mut trace.metadata {
            masked_within(mask, limit, value);
        }
        for value in [&mut trace.input, &mut trace.output].into_iter().flatten() {
            masked_within(mask, limit, value);
        }
    }
}

fn masked_within(mask: &Mask, limit: usize, json: &mut String) {
    mask_json(mask, json);
    if json.len() > limit {
        *json = capture::bound_field(std::mem::take(json), limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_the_mask_makes_longer_is_held_to_the_limit_again() {
        let lengthen: Mask = Arc::new(|_| serde_json::Value::String("\"q\" ".repeat(200)));
        let mut json = r#"{"short":true}"#.to_string();
        masked_within(&lengthen, 256, &mut json);
        assert!(json.len() <= 256, "{} bytes", json.len());
        let text: String = serde_json::from_str(&json).expect("a JSON string");
        assert!(text.starts_with("\"q\" \"q\" "), "{text}");
        assert!(text.ends_with("… [truncated from 1202 bytes]"), "{text}");
        let mut small = r#"{"short":true}"#.to_string();
        let keep: Mask = Arc::new(|value| value);
        masked_within(&keep, 256, &mut small);
        assert_eq!(small, r#"{"short":true}"#);
    }
}
