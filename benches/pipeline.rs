//! The whole span pipeline, beside the peers `tracing` and `fastrace`: what an instrumented call
//! costs with tracing off, and what a recorded span costs the caller's thread while the real
//! exporter runs (OTLP/HTTP to a local server that discards).
//!
//! `cargo bench --bench pipeline` (add `-- --warm-up-time 1 --measurement-time 3` for a short run,
//! or a filter such as `-- sustained/`). Results and how to read them: BENCHMARKS.md.
//!
//! Every recording case runs traces of one root with 100 children. Criterion's iterations are
//! spans: an iteration count `n` runs `ceil(n / 101)` roots, so the time shown is the time per
//! span (elapsed / (roots × 101)). "bursty" flushes outside the timed region every 50 roots, so
//! the exporter never falls behind; "sustained" never flushes, and what the pipeline could not
//! keep up with is dropped (observe) or buffered (fastrace): its time is the caller's cost under
//! overload, not a throughput. After each case a `delivered` line says how many spans were
//! created and how many arrived (for observe, as the local server decoded and counted them): a
//! case that drops most of its spans measures dropping.
//!
//! `sustained/fastrace` needs memory: fastrace buffers without bound what its collector has not
//! taken yet, several GB in a 5-second measurement.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use opentelemetry::trace::TracerProvider as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[path = "shared/traces.rs"]
mod traces;

#[path = "shared/server.rs"]
mod server;

use server::{DiscardServer, ServerCounts};
use traces::{
    fastrace_child, fastrace_root, observe_capture_root, observe_root, plain, CountingReporter,
    CHILDREN, FASTRACE_REPORTED, SPANS_PER_ROOT,
};

/// Roots between two flushes in the bursty cases.
const BURST: u64 = 50;

// ---------------------------------------------------------------------------------------------
// The instrumented functions

#[observe_runtime::observe]
fn observe_default(x: u64) -> u64 {
    plain(x)
}

#[tracing::instrument(skip_all)]
fn tracing_child(x: u64) -> u64 {
    plain(x)
}

#[tracing::instrument(skip_all)]
fn tracing_root(x: u64) -> u64 {
    (0..CHILDREN).fold(x, |acc, i| acc ^ tracing_child(black_box(i)))
}

#[tracing::instrument(ret)]
fn tracing_capture_child(x: u64) -> u64 {
    plain(x)
}

#[tracing::instrument(ret)]
fn tracing_capture_root(x: u64) -> u64 {
    (0..CHILDREN).fold(x, |acc, i| acc ^ tracing_capture_child(black_box(i)))
}

#[observe_runtime::observe(capture_input = false, capture_output = false)]
async fn observe_async_child(x: u64) -> u64 {
    plain(x)
}

#[observe_runtime::observe(capture_input = false, capture_output = false)]
async fn observe_async_root_fn(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..CHILDREN {
        acc ^= observe_async_child(black_box(i)).await;
    }
    acc
}

/// An async root with 100 async children, polled to completion on this thread.
fn observe_async_root(x: u64) -> u64 {
    run_ready(observe_async_root_fn(x))
}

#[fastrace::trace]
async fn fastrace_async_child(x: u64) -> u64 {
    plain(x)
}

/// fastrace's async root: the root span around the future (`in_span`), its children traced
/// with `#[fastrace::trace]`.
fn fastrace_async_root(x: u64) -> u64 {
    use fastrace::future::FutureExt as _;
    let root = fastrace::Span::root(
        "fastrace_async_root",
        fastrace::collector::SpanContext::random(),
    );
    run_ready(
        async move {
            let mut acc = x;
            for i in 0..CHILDREN {
                acc ^= fastrace_async_child(black_box(i)).await;
            }
            acc
        }
        .in_span(root),
    )
}

/// Polls a future that never waits to its output, with a waker that does nothing: what an
/// executor adds per poll is left out, for both sides.
fn run_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// A document with four text fields of about 2 KB each, as a retrieval step passes them on.
#[derive(serde::Serialize)]
struct Document {
    title: String,
    summary: String,
    body: String,
    notes: String,
}

static DOCUMENT: std::sync::LazyLock<Document> = std::sync::LazyLock::new(|| {
    let text = |word: &str| word.repeat(2048 / word.len());
    Document {
        title: text("Quarterly report on regional sales. "),
        summary: text("Sales grew in the north and fell in the south. "),
        body: text("The figures below compare each region with last year; "),
        notes: text("Checked against the ledger on the first of the month. "),
    }
});

#[observe_runtime::observe]
fn observe_text_child(document: &Document, x: u64) -> u64 {
    black_box(document);
    plain(x)
}

#[observe_runtime::observe(skip_all)]
fn observe_text_root(x: u64) -> u64 {
    let document = &*DOCUMENT;
    (0..CHILDREN).fold(x, |acc, i| acc ^ observe_text_child(document, black_box(i)))
}

// ---------------------------------------------------------------------------------------------
// The timed loop

#[derive(Clone, Copy)]
enum Mode {
    /// Flush (outside the timed region) every `BURST` roots.
    Bursty,
    /// Never flush.
    Sustained,
}

/// Runs enough roots for `spans` spans (criterion's iterations) and returns the time of those
/// iterations: elapsed × spans / (roots × 101), so criterion shows elapsed / (roots × 101) per
/// span. `flush` runs outside the timed region, every `BURST` roots in bursty mode. Adds the
/// roots run to `roots_run`.
fn time_spans(
    spans: u64,
    mode: Mode,
    roots_run: &mut u64,
    root: impl Fn(u64) -> u64,
    mut flush: impl FnMut(),
) -> Duration {
    let roots = spans.div_ceil(SPANS_PER_ROOT).max(1);
    let burst = match mode {
        Mode::Bursty => BURST,
        Mode::Sustained => roots,
    };
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < roots {
        let n = burst.min(roots - done);
        let start = Instant::now();
        for i in 0..n {
            black_box(root(black_box(i)));
        }
        elapsed += start.elapsed();
        done += n;
        if let Mode::Bursty = mode {
            flush();
        }
    }
    *roots_run += roots;
    elapsed.mul_f64(spans as f64 / (roots * SPANS_PER_ROOT) as f64)
}

/// One line that says what a case delivered.
fn delivered(case: &str, text: std::fmt::Arguments<'_>) {
    println!("delivered {case}: {text}");
}

// ---------------------------------------------------------------------------------------------
// observe

fn observe_config(server: &DiscardServer) -> observe_runtime::Config {
    observe_runtime::Config::default()
        .public_key("pk-lf-bench")
        .secret_key("sk-lf-bench")
        .base_url(server.url.clone())
}

fn observe_flush() {
    if let Err(error) = observe_runtime::flush() {
        eprintln!("observe flush: {error}");
    }
}

/// One observe case: inits a client when criterion first runs it (not when filtered out), runs,
/// then shuts the client down and prints what it delivered. One client is live at a time.
fn observe_case(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    id: &str,
    server: &DiscardServer,
    mode: Mode,
    root: fn(u64) -> u64,
) {
    observe_case_with(group, group_name, id, server, mode, root, |config| config);
}

/// [`observe_case`] with the client's configuration changed by `configure`.
fn observe_case_with(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    id: &str,
    server: &DiscardServer,
    mode: Mode,
    root: fn(u64) -> u64,
    configure: fn(observe_runtime::Config) -> observe_runtime::Config,
) {
    let mut guard = None;
    let mut roots = 0;
    let before = server.counts();
    server.take_traces();
    let mut started = None;
    group.bench_function(id, |b| {
        if guard.is_none() {
            guard = Some(
                configure(observe_config(server))
                    .init()
                    .expect("observe init"),
            );
            started = Some(Instant::now());
        }
        b.iter_custom(|spans| time_spans(spans, mode, &mut roots, root, observe_flush));
    });
    let (Some(guard), Some(started)) = (guard, started) else {
        return;
    };
    let case = format!("{group_name}/{id}");
    report_observe(
        &case,
        guard,
        server,
        roots * SPANS_PER_ROOT,
        started.elapsed(),
        before,
    );
}

/// Shuts an observe client down and prints what the server received of `created` spans
/// (decoded and counted there), then the SDK's own counts beside it; `before` are the server's
/// counts when the case started.
fn report_observe(
    case: &str,
    guard: observe_runtime::FlushGuard,
    server: &DiscardServer,
    created: u64,
    ran: Duration,
    before: ServerCounts,
) {
    let rss = rss();
    let kept = server.pending_bytes();
    let shutdown = guard.shutdown();
    let after = server.counts();
    let received = after.spans - before.spans;
    let (whole, partial) = server.take_traces();
    let verdict = if received == created {
        "all received".to_string()
    } else {
        format!("{} not received", created.saturating_sub(received))
    };
    let sdk = match &shutdown {
        Ok(report) => {
            let s = &report.stats;
            format!(
                "SDK says queued {}, exported {}, dropped {} (queue full {}, export failed {}, \
                 after shutdown {}); shutdown took {:?}",
                s.spans_queued,
                s.spans_exported,
                s.spans_dropped(),
                s.spans_dropped_queue_full,
                s.spans_dropped_export_failed,
                s.spans_dropped_after_shutdown,
                report.elapsed,
            )
        }
        Err(error) => format!("shutdown failed: {error}"),
    };
    delivered(
        case,
        format_args!(
            "created {created}, server received {received} ({verdict}; {whole} traces whole, \
             {partial} in part) in {} requests, {} bytes, {} undecodable; {sdk}; case ran \
             {ran:.1?}, {rss} ({:.0} MB of it the server's bodies kept to decode)",
            after.requests - before.requests,
            after.bytes - before.bytes,
            after.undecodable - before.undecodable,
            kept as f64 / 1e6,
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// fastrace

/// Installs the counting reporter once; fastrace cannot remove a reporter, so the case with no
/// reporter runs before any of this.
fn install_fastrace_reporter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        fastrace::set_reporter(CountingReporter, fastrace::collector::Config::default());
    });
}

/// The same roots recorded by fastrace (`id` "fastrace") and by observe (`id` "observe"), side
/// by side in `group_name`. fastrace first: after observe's case in the same process its spans
/// cost it 1.5 to 2 ns more (the vectors it grows by `realloc` no longer grow in place in the
/// heap that case leaves; BENCHMARKS.md, "Twelfth round"), while observe's case is not slowed by
/// running second. In `enabled_bursty`, the first group that records, fastrace starts on the
/// heap as the process left it; in the later groups, after the cases before them.
fn observe_and_fastrace(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    server: &DiscardServer,
    mode: Mode,
    observe_root: fn(u64) -> u64,
    fastrace_root: fn(u64) -> u64,
) {
    fastrace_case(
        group,
        &format!("{group_name}/fastrace"),
        mode,
        fastrace_root,
    );
    observe_case(group, group_name, "observe", server, mode, observe_root);
}

fn fastrace_case(
    group: &mut BenchmarkGroup<'_, WallTime>,
    case: &str,
    mode: Mode,
    root: fn(u64) -> u64,
) {
    let mut started = None;
    let mut roots = 0;
    group.bench_function("fastrace", |b| {
        if started.is_none() {
            install_fastrace_reporter();
            fastrace::flush();
            started = Some((Instant::now(), FASTRACE_REPORTED.load(Ordering::Relaxed)));
        }
        b.iter_custom(|spans| time_spans(spans, mode, &mut roots, root, fastrace::flush));
    });
    let Some((started, before)) = started else {
        return;
    };
    let ran = started.elapsed();
    let rss = rss();
    let flush_started = Instant::now();
    fastrace::flush();
    let flushed_in = flush_started.elapsed();
    let reported = FASTRACE_REPORTED.load(Ordering::Relaxed) - before;
    let created = roots * SPANS_PER_ROOT;
    // What is still missing waits in the thread's overflow queue (fastrace keeps a backlog
    // without bound and moves it on only when the thread sends its next message): drain it with
    // empty roots, one span each, for at most 60 s.
    let drain_started = Instant::now();
    let mut extra = 0;
    while FASTRACE_REPORTED.load(Ordering::Relaxed) - before < created + extra
        && drain_started.elapsed() < Duration::from_secs(60)
    {
        drop(fastrace::Span::root(
            "drain",
            fastrace::collector::SpanContext::random(),
        ));
        extra += 1;
        fastrace::flush();
    }
    let finally = FASTRACE_REPORTED.load(Ordering::Relaxed) - before - extra.min(created);
    delivered(
        case,
        format_args!(
            "created {created}, reported {reported} by the final flush ({flushed_in:?}), \
             backlog {}; after draining the backlog for {:?}: reported {finally}, lost {}; \
             case ran {ran:.1?}, {rss}",
            created.saturating_sub(reported),
            drain_started.elapsed(),
            created.saturating_sub(finally),
        ),
    );
}

/// The process's resident memory now and at its peak, from `/proc/self/status` (Linux).
fn rss() -> String {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return "RSS unknown".to_string();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------------------------------------
// tracing: a minimal recording layer, and a layer that formats every field

/// What the minimal layer keeps of a span while it is open.
struct Open {
    name: &'static str,
    parent: Option<u64>,
    start: Instant,
}

/// What the minimal layer records when a span closes.
#[allow(dead_code)] // kept, not read: what a recorder would hand on
struct SpanRecord {
    name: &'static str,
    id: u64,
    parent: Option<u64>,
    start: Instant,
    end: Instant,
}

/// Stores name, parent and start on `new_span`, and pushes a record to a Vec on close.
struct RecordingLayer {
    records: Arc<Mutex<Vec<SpanRecord>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RecordingLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().map(|p| p.id().into_u64());
        span.extensions_mut().insert(Open {
            name: attrs.metadata().name(),
            parent,
            start: Instant::now(),
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let record = SpanRecord {
            name: open.name,
            id: id.into_u64(),
            parent: open.parent,
            start: open.start,
            end: Instant::now(),
        };
        self.records.lock().expect("records").push(record);
    }
}

/// Writes `name=value` for every field, as a fmt layer would.
struct FieldWriter<'a>(&'a mut String);

impl Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

/// The formatted fields of an open span, and its start.
struct Formatted {
    fields: String,
    start: Instant,
}

/// Formats the fields of every span and event into Strings (span lines written on close, with
/// the duration), pushed to a Vec: the work of a fmt layer without the terminal.
struct FormattingLayer {
    lines: Arc<Mutex<Vec<String>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for FormattingLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = String::new();
        attrs.record(&mut FieldWriter(&mut fields));
        span.extensions_mut().insert(Formatted {
            fields,
            start: Instant::now(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(formatted) = extensions.get_mut::<Formatted>() {
            values.record(&mut FieldWriter(&mut formatted.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = String::new();
        if let Some(span) = ctx.event_span(event) {
            line.push_str(span.name());
            line.push(':');
        }
        let _ = write!(line, " {}", event.metadata().level());
        event.record(&mut FieldWriter(&mut line));
        self.lines.lock().expect("lines").push(line);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(formatted) = span.extensions_mut().remove::<Formatted>() else {
            return;
        };
        let mut line = String::with_capacity(span.name().len() + formatted.fields.len() + 24);
        line.push_str(span.name());
        line.push_str(&formatted.fields);
        let _ = write!(line, " time={:?}", formatted.start.elapsed());
        self.lines.lock().expect("lines").push(line);
    }
}

/// One tracing case: a subscriber made (and set as this thread's default) when criterion first
/// runs the case; `drain` empties what the layers recorded and returns how many items. Returns
/// `None` when the case did not run.
fn tracing_case<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    make: impl FnOnce() -> S,
    root: fn(u64) -> u64,
    mut drain: impl FnMut() -> u64,
) -> Option<TracingRun>
where
    S: Subscriber + Send + Sync + 'static,
{
    let mut make = Some(make);
    let mut default = None;
    let mut started = None;
    let mut roots = 0;
    let mut drained = 0;
    group.bench_function(id, |b| {
        if let Some(make) = make.take() {
            default = Some(tracing::subscriber::set_default(make()));
            started = Some(Instant::now());
        }
        b.iter_custom(|spans| {
            time_spans(spans, Mode::Bursty, &mut roots, root, || drained += drain())
        });
    });
    let ran = started?.elapsed();
    let rss = rss();
    drop(default);
    Some(TracingRun {
        roots,
        drained,
        ran,
        rss,
    })
}

/// What a tracing case did.
struct TracingRun {
    /// Roots run.
    roots: u64,
    /// Items the flushes took from the layer.
    drained: u64,
    /// Wall time of the case.
    ran: Duration,
    /// The process's memory at the end.
    rss: String,
}

// ---------------------------------------------------------------------------------------------
// tracing-opentelemetry with the SDK's batch span processor

/// An OpenTelemetry span exporter that counts and discards.
#[derive(Debug)]
struct CountingExporter(Arc<AtomicU64>);

impl opentelemetry_sdk::trace::SpanExporter for CountingExporter {
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(black_box(batch));
        std::future::ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------------------------
// The groups

/// Tracing off: nothing installed anywhere. Runs first: observe has no client yet, tracing no
/// subscriber, fastrace no reporter.
fn disabled(c: &mut Criterion) {
    let mut group = c.benchmark_group("disabled");
    group.bench_function("plain_fn", |b| b.iter(|| plain(black_box(7))));
    group.bench_function("observe", |b| b.iter(|| observe_default(black_box(7))));
    group.bench_function("tracing_no_subscriber", |b| {
        b.iter(|| tracing_child(black_box(7)))
    });
    group.bench_function("fastrace_no_reporter", |b| {
        b.iter(|| fastrace_child(black_box(7)))
    });
    group.finish();
}

/// Recording with capture off, flushed every 50 roots outside the timed region.
fn enabled_bursty(c: &mut Criterion, server: &DiscardServer) {
    let mut group = c.benchmark_group("enabled_bursty");
    observe_and_fastrace(
        &mut group,
        "enabled_bursty",
        server,
        Mode::Bursty,
        observe_root,
        fastrace_root,
    );

    let records = Arc::new(Mutex::new(Vec::new()));
    let layer_records = records.clone();
    let ran = tracing_case(
        &mut group,
        "tracing_registry_layer",
        || {
            tracing_subscriber::registry().with(RecordingLayer {
                records: layer_records,
            })
        },
        tracing_root,
        || std::mem::take(&mut *records.lock().expect("records")).len() as u64,
    );
    if let Some(run) = ran {
        let received = run.drained + records.lock().expect("records").len() as u64;
        let created = run.roots * SPANS_PER_ROOT;
        delivered(
            "enabled_bursty/tracing_registry_layer",
            format_args!(
                "created {created}, recorded {received}, missing {}; case ran {:.1?}, {}",
                created.saturating_sub(received),
                run.ran,
                run.rss
            ),
        );
    }
    group.finish();
}

/// `async fn`s: a root awaiting 100 children, flushed every `BURST` roots.
fn enabled_async(c: &mut Criterion, server: &DiscardServer) {
    let mut group = c.benchmark_group("enabled_async");
    observe_and_fastrace(
        &mut group,
        "enabled_async",
        server,
        Mode::Bursty,
        observe_async_root,
        fastrace_async_root,
    );
    group.finish();
}

/// Recording with capture off, flat out: never flushed in the loop.
fn sustained(c: &mut Criterion, server: &DiscardServer) {
    let mut group = c.benchmark_group("sustained");
    observe_and_fastrace(
        &mut group,
        "sustained",
        server,
        Mode::Sustained,
        observe_root,
        fastrace_root,
    );
    group.finish();
}

/// A `u64` argument and the return value captured, flushed every 50 roots.
fn capture(c: &mut Criterion, server: &DiscardServer) {
    let mut group = c.benchmark_group("capture");
    observe_case(
        &mut group,
        "capture",
        "observe_u64_arg_and_ret",
        server,
        Mode::Bursty,
        observe_capture_root,
    );

    let lines = Arc::new(Mutex::new(Vec::new()));
    let layer_lines = lines.clone();
    let ran = tracing_case(
        &mut group,
        "tracing_instrument_ret_fmt_layer",
        || tracing_subscriber::registry().with(FormattingLayer { lines: layer_lines }),
        tracing_capture_root,
        || std::mem::take(&mut *lines.lock().expect("lines")).len() as u64,
    );
    group.throughput(Throughput::Elements(1));
    let (mut input, mut output) = (Vec::new(), Vec::new());
    group.bench_function("serde_json_floor", |b| {
        b.iter(|| serialisation_floor(black_box(7), &mut input, &mut output))
    });
    if let Some(run) = ran {
        let written = run.drained + lines.lock().expect("lines").len() as u64;
        let expected = run.roots * SPANS_PER_ROOT * 2;
        delivered(
            "capture/tracing_instrument_ret_fmt_layer",
            format_args!(
                "created {} spans and as many return events, lines written {written} of \
                 {expected}; case ran {:.1?}, {}",
                run.roots * SPANS_PER_ROOT,
                run.ran,
                run.rss
            ),
        );
    }
    group.finish();
    capture_extra(server);
}

/// The argument object `#[observe]` captures for `observe_capture_child(x)`.
#[derive(serde::Serialize)]
struct Args {
    x: u64,
}

/// The serialisation floor of capture: the same argument object and return value written with
/// `serde_json` into reused buffers; returns the bytes written.
fn serialisation_floor(x: u64, input: &mut Vec<u8>, output: &mut Vec<u8>) -> usize {
    input.clear();
    output.clear();
    serde_json::to_writer(&mut *input, &Args { x }).expect("JSON");
    serde_json::to_writer(&mut *output, &plain(x)).expect("JSON");
    input.len() + output.len()
}

/// `paired capture extra` (printed): what capturing a `u64` argument and return adds to a span,
/// against the serialisation floor. 15 rounds of a block of roots with capture off
/// (`observe_root`), the same with capture on (`observe_capture_root`), in bursts of [`BURST`]
/// roots each followed by an untimed flush (as the bursty cases), and a block of the floor; the
/// medians per span, and the extra's ratio to the floor.
fn capture_extra(server: &DiscardServer) {
    const ROUNDS: usize = 15;
    const BLOCK: u64 = 10 * BURST;
    let guard = observe_config(server).init().expect("observe init");
    let before = server.counts();
    let mut roots = 0;
    let mut spans_in = |root: fn(u64) -> u64| {
        let spans = BLOCK * SPANS_PER_ROOT;
        time_spans(spans, Mode::Bursty, &mut roots, root, observe_flush).as_secs_f64()
            / spans as f64
    };
    let (mut input, mut output) = (Vec::new(), Vec::new());
    let mut floor_in = || {
        let start = Instant::now();
        for i in 0..BLOCK * SPANS_PER_ROOT {
            black_box(serialisation_floor(black_box(i), &mut input, &mut output));
        }
        start.elapsed().as_secs_f64() / (BLOCK * SPANS_PER_ROOT) as f64
    };
    let (mut off, mut on, mut floor, mut extra) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let without = spans_in(observe_root);
        let with = spans_in(observe_capture_root);
        let serialised = floor_in();
        off.push(without);
        on.push(with);
        floor.push(serialised);
        extra.push(with - without);
    }
    let _ = guard.shutdown();
    let received = server.counts().spans - before.spans;
    server.take_traces();
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2] * 1e9
    };
    let (off, on, floor, extra) = (
        median(&mut off),
        median(&mut on),
        median(&mut floor),
        median(&mut extra),
    );
    println!(
        "paired capture extra: {ROUNDS} rounds of {BLOCK} roots of {SPANS_PER_ROOT} spans each \
         way ({} spans created, {received} received); per span: capture off {off:.1} ns, on \
         {on:.1} ns, extra {extra:.1} ns; serde_json floor {floor:.1} ns; extra / floor = {:.1}",
        2 * ROUNDS as u64 * BLOCK * SPANS_PER_ROOT,
        extra / floor
    );
}

/// The media formatter's cost on text: each span captures a [`Document`] of four 2 KB text
/// fields (no media in it), with media detection on (the default with Langfuse) and off
/// (`media_upload(false)`), flushed every 50 roots. Compare the two in one run.
fn capture_text(c: &mut Criterion, server: &DiscardServer) {
    let mut group = c.benchmark_group("capture_text");
    observe_case_with(
        &mut group,
        "capture_text",
        "observe_document_media_on",
        server,
        Mode::Bursty,
        observe_text_root,
        |config| config.media_upload(true),
    );
    observe_case_with(
        &mut group,
        "capture_text",
        "observe_document_media_off",
        server,
        Mode::Bursty,
        observe_text_root,
        |config| config.media_upload(false),
    );
    group.finish();
}

/// `tracing` through `tracing-opentelemetry` into the OpenTelemetry SDK's batch span processor,
/// with an exporter that counts and discards (no network, no encoding); capture off, flushed
/// (`force_flush`) every 50 roots.
fn otel(c: &mut Criterion) {
    let mut group = c.benchmark_group("otel");
    let exported = Arc::new(AtomicU64::new(0));
    let provider = std::cell::OnceCell::new();
    let ran = tracing_case(
        &mut group,
        "tracing_opentelemetry_batch",
        || {
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(
                CountingExporter(exported.clone()),
            )
            .with_batch_config(
                // The same bound as observe's default queue.
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_max_queue_size(observe_runtime::DEFAULT_MAX_QUEUE)
                    .build(),
            )
            .build();
            let sdk = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_span_processor(processor)
                .build();
            let tracer = sdk.tracer("bench");
            let _ = provider.set(sdk);
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer))
        },
        tracing_root,
        || {
            // Reached only after the subscriber (and so the provider) was made.
            if let Some(provider) = provider.get() {
                if let Err(error) = provider.force_flush() {
                    eprintln!("otel force_flush: {error}");
                }
            }
            0
        },
    );
    if let (Some(run), Some(provider)) = (ran, provider.get()) {
        if let Err(error) = provider.shutdown() {
            eprintln!("otel shutdown: {error}");
        }
        let created = run.roots * SPANS_PER_ROOT;
        let exported = exported.load(Ordering::Relaxed);
        delivered(
            "otel/tracing_opentelemetry_batch",
            format_args!(
                "created {created}, exported {exported}, dropped {}; case ran {:.1?}, {}",
                created.saturating_sub(exported),
                run.ran,
                run.rss
            ),
        );
    }
    group.finish();
}

/// The exporter's work on one core: typical spans encoded to one OTLP protobuf request body, with
/// and without gzip.
fn encode(c: &mut Criterion) {
    const SPANS: usize = 512;
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(SPANS as u64));
    for (id, gzip) in [
        ("otlp_512_spans_gzip", true),
        ("otlp_512_spans_plain", false),
    ] {
        let mut body = None;
        group.bench_function(id, |b| {
            body.get_or_insert_with(|| observe_runtime::__private::bench_encode(SPANS, gzip));
            b.iter(|| observe_runtime::__private::bench_encode(black_box(SPANS), black_box(gzip)))
        });
        if let Some(bytes) = body {
            println!("encode/{id}: one body of {SPANS} spans is {bytes} bytes");
        }
    }
    group.finish();
}

/// The same `tracing` spans through this crate's `tracing_layer()` into the real exporter
/// (OTLP/HTTP to the local server that discards); capture off, flushed every 50 roots.
fn bridge(c: &mut Criterion, server: &DiscardServer) {
    let mut group = c.benchmark_group("otel");
    let mut guard = None;
    let before = server.counts();
    server.take_traces();
    let ran = tracing_case(
        &mut group,
        "observe_tracing_layer",
        || {
            guard = Some(
                observe_config(server)
                    .capture_io(false)
                    .init()
                    .expect("observe init"),
            );
            tracing_subscriber::registry().with(observe_runtime::tracing_layer())
        },
        tracing_root,
        || {
            observe_flush();
            0
        },
    );
    if let (Some(run), Some(guard)) = (ran, guard) {
        report_observe(
            "otel/observe_tracing_layer",
            guard,
            server,
            run.roots * SPANS_PER_ROOT,
            run.ran,
            before,
        );
    }
    group.finish();
}

/// The media formatter alone, on the caller's thread without a client: one [`Document`] written
/// as a captured field with media detection (`formatter_media_on`) and with serde_json's own
/// writer (`formatter_media_off`); then a paired run printed as `paired capture_formatter`: 15
/// rounds of a block of captures with, then the same block without, and the median of the
/// per-round ratios.
fn capture_formatter(c: &mut Criterion) {
    use observe_runtime::__private::bench_capture;
    let document = &*DOCUMENT;
    let mut group = c.benchmark_group("capture_formatter");
    let bytes = bench_capture(document, false) as u64;
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("formatter_media_on", |b| {
        b.iter(|| bench_capture(black_box(document), true))
    });
    group.bench_function("formatter_media_off", |b| {
        b.iter(|| bench_capture(black_box(document), false))
    });
    group.finish();

    const ROUNDS: usize = 15;
    const BLOCK: u32 = 2_000;
    let block = |media: bool| {
        let start = Instant::now();
        for _ in 0..BLOCK {
            black_box(bench_capture(black_box(document), media));
        }
        start.elapsed() / BLOCK
    };
    let (mut ratios, mut on_times, mut off_times) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let on = block(true);
        let off = block(false);
        ratios.push(on.as_secs_f64() / off.as_secs_f64());
        on_times.push(on);
        off_times.push(off);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    on_times.sort();
    off_times.sort();
    println!(
        "paired capture_formatter: {ROUNDS} rounds of {BLOCK} captures of a {bytes}-byte \
         document each way; media on / off = {:.2} (median of the rounds); medians on {:.2?}, \
         off {:.2?} per capture",
        median(&mut ratios),
        on_times[ROUNDS / 2],
        off_times[ROUNDS / 2]
    );
}

fn recording(c: &mut Criterion) {
    let server = DiscardServer::start();
    enabled_bursty(c, &server);
    enabled_async(c, &server);
    sustained(c, &server);
    capture(c, &server);
    capture_text(c, &server);
    otel(c);
    bridge(c, &server);
}

criterion_group!(benches, disabled, recording, encode, capture_formatter);
criterion_main!(benches);
