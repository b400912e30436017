//! Fan-out in one call: every child observation of a thread, scoped thread, rayon item, tokio task
//! or blocking task lands under the observation that started it. One in-memory client for the
//! whole binary.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use observe_runtime::{
    bind, bind_each, current_observation_id, current_trace_id, observe, task, thread, Config,
    Exporter, FinishedSpan, FlushGuard, MemoryExporter, ObservationId, TraceId,
};
use rayon::prelude::*;

fn memory() -> &'static MemoryExporter {
    static CLIENT: OnceLock<(MemoryExporter, FlushGuard)> = OnceLock::new();
    &CLIENT
        .get_or_init(|| {
            let memory = MemoryExporter::new();
            let guard = Config::default()
                .exporter(Exporter::Memory(memory.clone()))
                .init()
                .expect("init");
            (memory, guard)
        })
        .0
}

/// What a fan-out root returns: its trace and its own observation.
fn here() -> (TraceId, ObservationId) {
    (
        current_trace_id().expect("a recorded trace"),
        current_observation_id().expect("a recorded observation"),
    )
}

#[observe]
fn tool(n: u64) -> u64 {
    n * 2
}

/// How many spans of each name hang under `parent` in `trace`, and how many spans the trace has.
fn children_of(
    memory: &MemoryExporter,
    trace: TraceId,
    parent: ObservationId,
) -> (BTreeMap<String, usize>, usize) {
    let spans: Vec<FinishedSpan> = memory.trace(trace);
    let mut names = BTreeMap::new();
    for span in spans.iter().filter(|s| s.parent_span_id == Some(parent)) {
        *names.entry(span.name.to_string()).or_insert(0) += 1;
    }
    (names, spans.len())
}

fn expect(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn threads_spawned_with_the_helper_land_under_their_parent() {
    let memory = memory();
    #[observe]
    fn dispatch() -> (TraceId, ObservationId) {
        let handles: Vec<_> = (0..4).map(|n| thread::spawn(move || tool(n))).collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 12);
        here()
    }
    let (trace, root) = dispatch();
    assert_eq!(
        children_of(memory, trace, root),
        (expect(&[("tool", 4)]), 5),
        "four tool calls under dispatch, nothing else in the trace"
    );
}

#[test]
fn a_plain_thread_starts_its_own_trace() {
    // The control: without the helper, the thread has nothing current.
    let memory = memory();
    #[observe]
    fn dispatch_plain() -> (TraceId, ObservationId) {
        std::thread::spawn(|| tool(1)).join().unwrap();
        here()
    }
    let (trace, root) = dispatch_plain();
    assert_eq!(children_of(memory, trace, root), (expect(&[]), 1));
}

#[test]
fn scoped_threads_land_under_their_parent() {
    let memory = memory();
    #[observe]
    fn split(words: Vec<String>) -> (TraceId, ObservationId) {
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for half in words.chunks(2) {
                handles.push(thread::spawn_scoped(scope, move || count(half)));
                handles.push(scope.spawn(bind(move || count(half))));
            }
            for handle in handles {
                assert_eq!(handle.join().unwrap(), 2);
            }
        });
        here()
    }
    #[observe]
    fn count(words: &[String]) -> usize {
        words.len()
    }
    let words = ["a", "b", "c", "d"].map(String::from).to_vec();
    let (trace, root) = split(words);
    assert_eq!(
        children_of(memory, trace, root),
        (expect(&[("count", 4)]), 5)
    );
}

#[test]
fn rayon_items_land_under_their_parent() {
    let memory = memory();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .expect("a rayon pool");
    #[observe]
    fn score_all(items: Vec<u64>) -> (TraceId, ObservationId) {
        let scores: Vec<u64> = items
            .par_iter()
            .map(bind_each(|n: &u64| tool(*n)))
            .collect();
        assert_eq!(scores.len(), 200);
        here()
    }
    let (trace, root) = pool.install(|| score_all((0..200).collect()));
    assert_eq!(
        children_of(memory, trace, root),
        (expect(&[("tool", 200)]), 201)
    );
}

#[test]
fn tokio_tasks_and_blocking_tasks_land_under_their_parent() {
    let memory = memory();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    #[observe(as_type = "tool")]
    async fn search(query: String) -> usize {
        tokio::task::yield_now().await;
        query.len()
    }

    #[observe(as_type = "agent")]
    async fn agent() -> (TraceId, ObservationId) {
        let tasks: Vec<_> = ["rust", "tokio", "rayon"]
            .into_iter()
            .map(|q| task::spawn(search(q.to_string())))
            .collect();
        let blocking = task::spawn_blocking(|| tool(21));
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 14);
        assert_eq!(blocking.await.unwrap(), 42);
        here()
    }

    let (trace, root) = runtime.block_on(agent());
    assert_eq!(
        children_of(memory, trace, root),
        (expect(&[("search", 3), ("tool", 1)]), 5)
    );
}
