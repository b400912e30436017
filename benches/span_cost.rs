//! What one span costs the calling thread, measured two ways that a shared machine's noise
//! moves less than criterion's times: the best of many timed runs, and (under valgrind) the
//! instructions executed. The traces are the pipeline benchmark's bursty ones: roots of 100
//! children, a flush every 50 roots outside the times, the real exporter sending to a local
//! server that decodes and counts what it receives.
//!
//! `cargo bench --bench span_cost` times observe, fastrace and the floor (two clock reads and a
//! record per span, nothing else: see [`floor`]): 2,000 roots per run, the best, the median and
//! the mean of 50 runs, and what each delivered; then the same for small traces (`fastrace-small`,
//! `observe-small`: roots of 10 children, 20,000 roots per run), where what a recorder pays once
//! per trace weighs ten times as much. `-- observe 2000 1` (or `fastrace`, `floor`, `capture`:
//! observe with a `u64` argument and return value captured by every span, or a small case) runs
//! one case alone:
//! under `valgrind --tool=callgrind --separate-threads=yes`, the calling thread's instructions
//! with 4,000 roots minus those with 2,000, divided by the 202,000 spans between them, are one
//! span's (`benches/span_cost.sh` does this). BENCHMARKS.md, "Eighth round", has the method and
//! the figures.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "shared/traces.rs"]
mod traces;

#[path = "shared/server.rs"]
mod server;

use server::DiscardServer;
use traces::{
    fastrace_root, fastrace_small_root, observe_capture_root, observe_root, observe_small_root,
    CountingReporter, FASTRACE_REPORTED, SMALL_SPANS_PER_ROOT, SPANS_PER_ROOT,
};

/// Roots between two flushes, as in the pipeline benchmark's bursty cases.
const BURST: u64 = 50;

/// The best and the median of the runs' times per span, in nanoseconds.
/// The runs' times per span, in nanoseconds, from the fastest.
struct Times(Vec<f64>);

impl std::fmt::Display for Times {
    /// The best run's time, then the median's and the mean of all (which a slow run moves, as it
    /// moves criterion's estimates): `SPAN_COST_ALL=1` prints every run's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Times(times) = self;
        let at = |index: usize| times.get(index).copied().unwrap_or(f64::NAN);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        write!(
            f,
            "{:.2} ns per span (median {:.2}, mean {mean:.2})",
            at(0),
            at(times.len() / 2)
        )?;
        if std::env::var_os("SPAN_COST_ALL").is_some() {
            let all: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
            write!(f, " [{}]", all.join(" "))?;
        }
        Ok(())
    }
}

/// Runs `roots` roots of `spans_per_root` spans `runs` times, flushing every [`BURST`] roots
/// outside the times, and returns each run's time per span.
fn best_per_span(
    (roots, runs, spans_per_root): (u64, u64, u64),
    root: fn(u64) -> u64,
    flush: impl Fn(),
) -> Times {
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let mut elapsed = Duration::ZERO;
        let mut done = 0;
        while done < roots {
            let n = BURST.min(roots - done);
            let start = Instant::now();
            burst(root, done, n);
            elapsed += start.elapsed();
            done += n;
            flush();
        }
        times.push(elapsed.as_secs_f64() * 1e9 / (roots * spans_per_root) as f64);
    }
    times.sort_by(f64::total_cmp);
    Times(times)
}

/// Runs the roots `from..from + n`: what is timed, and what `span_cost.sh` counts (by this
/// function's name).
#[inline(never)]
fn burst(root: fn(u64) -> u64, from: u64, n: u64) {
    for i in from..from + n {
        black_box(root(black_box(i)));
    }
}

/// Times `root` (observe's roots of `spans_per_root` spans, named `case`) and prints what
/// arrived.
fn observe_case(case: &str, root: fn(u64) -> u64, spans_per_root: u64, roots: u64, runs: u64) {
    let server = DiscardServer::start();
    let guard = observe_runtime::Config::default()
        .public_key("pk-lf-bench")
        .secret_key("sk-lf-bench")
        .base_url(server.url.clone())
        .init()
        .expect("observe init");
    let best = best_per_span((roots, runs, spans_per_root), root, || {
        if let Err(error) = observe_runtime::flush() {
            eprintln!("observe flush: {error}");
        }
    });
    let kept = server.pending_bytes();
    let shutdown = guard.shutdown();
    let created = roots * runs * spans_per_root;
    // Decoded on a thread of its own, so that the calling thread's instruction count under
    // valgrind holds the spans' cost only.
    let (counts, (whole, partial)) = std::thread::scope(|scope| {
        scope
            .spawn(|| (server.counts(), server.take_traces_of(spans_per_root)))
            .join()
            .expect("decode the server's bodies")
    });
    let sdk = match shutdown {
        Ok(report) => format!(
            "SDK says exported {}, dropped {}",
            report.stats.spans_exported,
            report.stats.spans_dropped()
        ),
        Err(error) => format!("shutdown failed: {error}"),
    };
    println!(
        "{case}: best of {runs} runs of {roots} roots: {best}; created {created}, \
         server received {} ({whole} traces whole, {partial} in part, {} undecodable) in {} \
         requests, {} bytes ({:.0} MB kept to decode after the runs); {sdk}",
        counts.spans,
        counts.undecodable,
        counts.requests,
        counts.bytes,
        kept as f64 / 1e6,
    );
}

/// What every recorder of these traces pays at least: two reads of the clock both use
/// (`minstant`) per span, and an 88-byte record (fastrace's raw span is that size) written at the
/// open and stamped at the end, in a thread-local vector emptied when the root ends. No ids, no
/// parent, no hand-over to another thread.
mod floor {
    use std::cell::RefCell;
    use std::hint::black_box;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::traces::plain;

    struct Raw {
        begin: minstant::Instant,
        end: Option<minstant::Instant>,
        name: &'static str,
        rest: [u64; 7],
    }

    thread_local! {
        static SPANS: RefCell<Vec<Raw>> = const { RefCell::new(Vec::new()) };
    }

    /// Spans recorded, counted when their root ended.
    pub static RECORDED: AtomicU64 = AtomicU64::new(0);

    #[inline(always)]
    fn open(name: &'static str) -> usize {
        SPANS.with(|spans| {
            let mut spans = spans.borrow_mut();
            spans.push(Raw {
                begin: minstant::Instant::now(),
                end: None,
                name,
                rest: [0; 7],
            });
            spans.len() - 1
        })
    }

    #[inline(always)]
    fn close(index: usize) {
        SPANS.with(|spans| {
            if let Some(raw) = spans.borrow_mut().get_mut(index) {
                raw.end = Some(minstant::Instant::now());
            }
        });
    }

    #[inline(never)]
    fn child(x: u64) -> u64 {
        let span = open("floor_child");
        let result = plain(x);
        close(span);
        result
    }

    pub fn root(x: u64) -> u64 {
        let span = open("floor_root");
        let result =
            (0..super::traces::SPANS_PER_ROOT - 1).fold(x, |acc, i| acc ^ child(black_box(i)));
        close(span);
        SPANS.with(|spans| {
            let mut spans = spans.borrow_mut();
            let ended = spans
                .iter()
                .filter(|raw| raw.end.is_some() && !raw.name.is_empty());
            RECORDED.fetch_add(ended.count() as u64, Ordering::Relaxed);
            black_box(spans.first().map(|raw| (raw.begin, raw.rest)));
            spans.clear();
        });
        result
    }
}

/// Times [`floor::root`].
fn floor_case(roots: u64, runs: u64) {
    let best = best_per_span((roots, runs, SPANS_PER_ROOT), floor::root, || {});
    println!(
        "floor: best of {runs} runs of {roots} roots: {best}; created {}, \
         recorded {}",
        roots * runs * SPANS_PER_ROOT,
        floor::RECORDED.load(Ordering::Relaxed),
    );
}

/// Times fastrace's `root` (roots of `spans_per_root` spans, named `case`) and prints what its
/// reporter was handed.
fn fastrace_case(case: &str, root: fn(u64) -> u64, spans_per_root: u64, roots: u64, runs: u64) {
    static REPORTER: std::sync::Once = std::sync::Once::new();
    REPORTER.call_once(|| {
        fastrace::set_reporter(CountingReporter, fastrace::collector::Config::default());
    });
    fastrace::flush();
    let before = FASTRACE_REPORTED.load(Ordering::Relaxed);
    let best = best_per_span((roots, runs, spans_per_root), root, fastrace::flush);
    fastrace::flush();
    let created = roots * runs * spans_per_root;
    println!(
        "{case}: best of {runs} runs of {roots} roots: {best}; created {created}, \
         reported {}",
        FASTRACE_REPORTED.load(Ordering::Relaxed) - before,
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let number = |index: usize, default: u64| {
        args.get(index).map_or(default, |arg| {
            arg.parse()
                .unwrap_or_else(|_| panic!("{arg:?} is not a number of roots or runs"))
        })
    };
    let case = args.first().map(String::as_str);
    const CASES: [&str; 6] = [
        "observe",
        "fastrace",
        "capture",
        "floor",
        "observe-small",
        "fastrace-small",
    ];
    if let Some(filter) = case.filter(|case| !CASES.contains(case)) {
        // A filter meant for another benchmark (`cargo bench -- sustained/`).
        println!(
            "span_cost: {filter:?} is none of {}; nothing run",
            CASES.map(|case| format!("`{case}`")).join(", ")
        );
        return;
    }
    // Small traces: ten times the roots (about as many spans), unless the roots are given for one
    // case.
    let (roots, runs) = (number(1, 2000), number(2, 50));
    let small_roots = if case.is_some() && args.get(1).is_some() {
        roots
    } else {
        10 * roots
    };
    let runs_case = |name: &str| case.is_none() || case == Some(name);
    // A case: its name, how it is run, its root, the spans of one root, and the roots.
    type Root = fn(u64) -> u64;
    type Run = fn(&str, Root, u64, u64, u64);
    type Case<'a> = (&'a str, Run, Root, u64, u64);
    // fastrace first: run after observe's case in the same process, its spans cost it 1.5 to 2 ns
    // more (about 25 instructions: its vectors, grown by `realloc`, no longer grow in place in
    // the heap that case leaves; BENCHMARKS.md, "Twelfth round"). Observe's case is not slowed
    // by running second.
    let cases: [Case; 4] = [
        (
            "fastrace",
            fastrace_case,
            fastrace_root,
            SPANS_PER_ROOT,
            roots,
        ),
        (
            "fastrace-small",
            fastrace_case,
            fastrace_small_root,
            SMALL_SPANS_PER_ROOT,
            small_roots,
        ),
        ("observe", observe_case, observe_root, SPANS_PER_ROOT, roots),
        (
            "observe-small",
            observe_case,
            observe_small_root,
            SMALL_SPANS_PER_ROOT,
            small_roots,
        ),
    ];
    for (name, run, root, spans_per_root, roots) in cases {
        if runs_case(name) {
            run(name, root, spans_per_root, roots, runs);
        }
    }
    if runs_case("floor") {
        floor_case(roots, runs);
    }
    // Capture on: a `u64` argument and return value captured by every span (not by default).
    if case == Some("capture") {
        observe_case("capture", observe_capture_root, SPANS_PER_ROOT, roots, runs);
    }
}
