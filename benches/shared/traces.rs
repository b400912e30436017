//! The traces both benchmarks record: a root with 100 children, for observe and for fastrace
//! (and, for `span_cost`, small ones: a root with 10 children, the size of an LLM application's
//! request with a few calls and tools).
//! Included by `benches/pipeline.rs`, `benches/memory.rs` and `benches/span_cost.rs` with
//! `#[path]`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// Children under each root.
pub const CHILDREN: u64 = 100;
/// Spans in one trace: the root and its children.
pub const SPANS_PER_ROOT: u64 = CHILDREN + 1;

/// Children under each root of the small traces.
#[allow(dead_code)]
pub const SMALL_CHILDREN: u64 = 10;
/// Spans in one small trace: the root and its children.
#[allow(dead_code)]
pub const SMALL_SPANS_PER_ROOT: u64 = SMALL_CHILDREN + 1;

/// The work every instrumented function does.
pub fn plain(x: u64) -> u64 {
    x.wrapping_mul(31).rotate_left(7)
}

#[observe_runtime::observe(capture_input = false, capture_output = false)]
pub fn observe_child(x: u64) -> u64 {
    plain(x)
}

#[observe_runtime::observe(capture_input = false, capture_output = false)]
pub fn observe_root(x: u64) -> u64 {
    (0..CHILDREN).fold(x, |acc, i| acc ^ observe_child(black_box(i)))
}

/// A root of [`SMALL_CHILDREN`] children; not every benchmark that includes this file runs it.
#[allow(dead_code)]
#[observe_runtime::observe(capture_input = false, capture_output = false)]
pub fn observe_small_root(x: u64) -> u64 {
    (0..SMALL_CHILDREN).fold(x, |acc, i| acc ^ observe_child(black_box(i)))
}

/// A child that captures its `u64` argument and return value (the default).
#[observe_runtime::observe]
pub fn observe_capture_child(x: u64) -> u64 {
    plain(x)
}

/// A root of 100 capturing children; not every benchmark that includes this file runs it.
#[allow(dead_code)]
#[observe_runtime::observe]
pub fn observe_capture_root(x: u64) -> u64 {
    (0..CHILDREN).fold(x, |acc, i| acc ^ observe_capture_child(black_box(i)))
}

#[fastrace::trace]
pub fn fastrace_child(x: u64) -> u64 {
    plain(x)
}

pub fn fastrace_root(x: u64) -> u64 {
    let root = fastrace::Span::root("fastrace_root", fastrace::collector::SpanContext::random());
    let _parent = root.set_local_parent();
    (0..CHILDREN).fold(x, |acc, i| acc ^ fastrace_child(black_box(i)))
}

/// A root of [`SMALL_CHILDREN`] children; not every benchmark that includes this file runs it.
#[allow(dead_code)]
pub fn fastrace_small_root(x: u64) -> u64 {
    let root = fastrace::Span::root(
        "fastrace_small_root",
        fastrace::collector::SpanContext::random(),
    );
    let _parent = root.set_local_parent();
    (0..SMALL_CHILDREN).fold(x, |acc, i| acc ^ fastrace_child(black_box(i)))
}

/// Spans handed to [`CountingReporter`] so far.
pub static FASTRACE_REPORTED: AtomicU64 = AtomicU64::new(0);

/// A fastrace reporter that counts the spans it is handed, and drops them.
pub struct CountingReporter;

impl fastrace::collector::Reporter for CountingReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        FASTRACE_REPORTED.fetch_add(spans.len() as u64, Ordering::Relaxed);
        drop(black_box(spans));
    }
}
