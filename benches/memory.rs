//! Memory per queued span: what the pipeline holds for each span that ended but has not been
//! delivered, measured with a counting global allocator (live bytes on all threads).
//!
//! `cargo bench --bench memory`
//!
//! observe runs against a server that accepts connections and never answers, with a queue of
//! 100,000, `flush_at` above the span count and a long flush interval, so every recorded span
//! stays in the process. (The exporter still starts one request when its batch reaches its size
//! bound; that request hangs, and what it holds is counted too.) fastrace runs with a reporter
//! whose report interval is an hour, so the spans wait in its per-thread channel. Each records
//! 495 roots with 100 children (49,995 spans) of a capture-off function and prints live bytes
//! before and after, divided by the spans held.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "shared/traces.rs"]
mod traces;

use traces::{fastrace_root, observe_root, CountingReporter, FASTRACE_REPORTED, SPANS_PER_ROOT};

/// The system allocator, counting live bytes and allocations.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

const ROOTS: u64 = 495;

/// A server on 127.0.0.1 that accepts connections and never reads or answers.
fn hanging_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    url
}

/// Lets background threads take in what was just sent, so the figure is not a snapshot of a
/// hand-over in progress.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

fn per_span(bytes: i64, spans: u64) -> f64 {
    bytes as f64 / spans.max(1) as f64
}

fn observe() {
    let server = hanging_server();
    let before_init = live();
    let guard = observe_runtime::Config::default()
        .public_key("pk-lf-bench")
        .secret_key("sk-lf-bench")
        .base_url(server)
        .max_queue(100_000)
        .flush_at(100_000) // the largest batch allowed, above the 49,995 spans
        .flush_interval(Duration::from_secs(3600))
        .timeout(Duration::from_secs(600))
        .shutdown_timeout(Duration::from_secs(1))
        .init()
        .expect("observe init");
    // One trace first: thread-locals and lazily made state are not per span.
    black_box(observe_root(black_box(0)));
    settle();
    let after_init = live();
    let queued_before = observe_runtime::stats().spans_queued;
    let allocations_before = allocations();
    let before = live();
    for i in 0..ROOTS {
        black_box(observe_root(black_box(i)));
    }
    let right_after = live();
    settle();
    let after = live();
    let allocations_after = allocations();
    let stats = observe_runtime::stats();
    let queued = stats.spans_queued - queued_before;
    let created = ROOTS * SPANS_PER_ROOT;
    println!(
        "observe: init and first trace {} bytes (queue slots, exporter thread, HTTP client); \
         created {created}, queued {queued}, dropped (queue full) {}",
        after_init - before_init,
        stats.spans_dropped_queue_full,
    );
    println!(
        "observe: live bytes {} -> {} ({} right after recording): {:.0} bytes per queued span, \
         {:.2} allocations per span",
        before,
        after,
        right_after,
        per_span(after - before, queued),
        (allocations_after - allocations_before) as f64 / created as f64,
    );
    let started = Instant::now();
    match guard.shutdown() {
        Ok(report) => println!(
            "observe: shutdown in {:?}: exported {}, dropped (export failed {}, after shutdown {})",
            report.elapsed,
            report.stats.spans_exported,
            report.stats.spans_dropped_export_failed,
            report.stats.spans_dropped_after_shutdown,
        ),
        Err(error) => {
            let stats = observe_runtime::stats();
            println!(
                "observe: shutdown after {:?}: {error}; exported {}, dropped (export failed {}, \
                 after shutdown {}), requests failed {}",
                started.elapsed(),
                stats.spans_exported,
                stats.spans_dropped_export_failed,
                stats.spans_dropped_after_shutdown,
                stats.requests_failed,
            )
        }
    }
}

fn fastrace() {
    let before_init = live();
    fastrace::set_reporter(
        CountingReporter,
        fastrace::collector::Config::default().report_interval(Duration::from_secs(3600)),
    );
    black_box(fastrace_root(black_box(0)));
    fastrace::flush();
    settle();
    let after_init = live();
    let reported_before = FASTRACE_REPORTED.load(Ordering::Relaxed);
    let allocations_before = allocations();
    let before = live();
    for i in 0..ROOTS {
        black_box(fastrace_root(black_box(i)));
    }
    settle();
    let after = live();
    let allocations_after = allocations();
    let held_unreported = FASTRACE_REPORTED.load(Ordering::Relaxed) - reported_before;
    let created = ROOTS * SPANS_PER_ROOT;
    fastrace::flush();
    let reported = FASTRACE_REPORTED.load(Ordering::Relaxed) - reported_before;
    println!(
        "fastrace: init and first trace {} bytes; created {created}, reported before the final \
         flush {held_unreported}, after it {reported}",
        after_init - before_init,
    );
    println!(
        "fastrace: live bytes {} -> {}: {:.0} bytes per collected span not yet reported, {:.2} \
         allocations per span",
        before,
        after,
        per_span(after - before, created - held_unreported),
        (allocations_after - allocations_before) as f64 / created as f64,
    );
    println!(
        "fastrace: live bytes after the final flush {} ({:.0} bytes per span still held)",
        live(),
        per_span(live() - before, created)
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with `--test`: nothing to measure there.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    // fastrace first: observe's exporter is left stuck on the hanging request after its
    // shutdown gives up, holding what it had.
    fastrace();
    observe();
}
