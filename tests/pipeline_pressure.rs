//! The pipeline under pressure, as Langfuse sees it: whole traces (a trace that arrives at all
//! arrives with its root, and no span arrives without its parent), exact counts
//! (`spans_created == spans_exported + spans_unanswered + spans_dropped()` after shutdown, and what was exported is
//! what the server accepted), and flush, shutdown and `std::process::exit` reaching finished spans
//! still held by other threads.
//!
//! The client is global to the process: every test holds [`support::serial`] and shuts its
//! client down before it ends. Flushes and shutdowns run under [`within`], so a deadlock fails the
//! test instead of hanging the suite.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use observe_runtime::{
    observe, span, stats, Config, Exporter, FlushError, FlushGuard, MemoryExporter, ShutdownReport,
    Stats,
};

use support::within;
use support::{FakeLangfuse, Fault, SpanLink};

const PUBLIC_KEY: &str = "pk-lf-test";
const SECRET_KEY: &str = "sk-lf-test";
/// How long to wait for something that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);
const BASE_URL_ENV: &str = "OBSERVE_TEST_BASE_URL";

/// The defaults, with only the keys and the base URL set.
fn langfuse(base_url: &str) -> Config {
    Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(base_url)
}

/// `guard.shutdown()`, with how long it took; fails the test if it does not return in `limit`.
fn shutdown(guard: FlushGuard, limit: Duration) -> (Result<ShutdownReport, FlushError>, Duration) {
    within(limit, "shutdown", move || {
        let started = Instant::now();
        let result = guard.shutdown();
        (result, started.elapsed())
    })
}

/// The global `flush()`; fails the test if it does not return within 30 s.
fn flush() -> Result<(), FlushError> {
    within(Duration::from_secs(30), "flush", observe_runtime::flush)
}

/// The final counters of a shutdown: from its report, or from `stats()` when it timed out.
fn final_stats(result: Result<ShutdownReport, FlushError>) -> Stats {
    match result {
        Ok(report) => report.stats,
        Err(FlushError::NotRunning) => {
            panic!("shutdown of a live client answered NotRunning")
        }
        Err(_) => stats(),
    }
}

/// What arrived, in numbers.
#[derive(Debug)]
struct Tree {
    received: usize,
    roots: Vec<SpanLink>,
    /// Spans whose parent did not arrive.
    orphans: Vec<SpanLink>,
    /// Spans whose parent arrived in another trace.
    cross_trace: Vec<SpanLink>,
    /// Span ids that arrived more than once.
    duplicates: Vec<String>,
}

fn tree(spans: &[SpanLink]) -> Tree {
    let mut by_id: HashMap<&str, &SpanLink> = HashMap::with_capacity(spans.len());
    let mut duplicates = Vec::new();
    for span in spans {
        if by_id.insert(span.span_id.as_str(), span).is_some() {
            duplicates.push(span.span_id.clone());
        }
    }
    let mut roots = Vec::new();
    let mut orphans = Vec::new();
    let mut cross_trace = Vec::new();
    for span in spans {
        if span.parent_span_id.is_empty() {
            roots.push(span.clone());
            continue;
        }
        match by_id.get(span.parent_span_id.as_str()) {
            None => orphans.push(span.clone()),
            Some(parent) if parent.trace_id != span.trace_id => cross_trace.push(span.clone()),
            Some(_) => {}
        }
    }
    Tree {
        received: spans.len(),
        roots,
        orphans,
        cross_trace,
        duplicates,
    }
}

/// Panics unless every span id arrived once and every parent arrived, in the same trace.
fn assert_whole(tree: &Tree) {
    assert!(
        tree.duplicates.is_empty(),
        "{} span id(s) arrived more than once, e.g. {:?}",
        tree.duplicates.len(),
        &tree.duplicates[..tree.duplicates.len().min(3)]
    );
    assert!(
        tree.orphans.is_empty(),
        "{} of {} received spans arrived without their parent, e.g. {:?}",
        tree.orphans.len(),
        tree.received,
        &tree.orphans[..tree.orphans.len().min(3)]
    );
    assert!(
        tree.cross_trace.is_empty(),
        "{} span(s) have a parent of another trace, e.g. {:?}",
        tree.cross_trace.len(),
        &tree.cross_trace[..tree.cross_trace.len().min(3)]
    );
}

/// Panics unless the counters add up after a shutdown: `created` spans ended, and each was either
/// exported (and then accepted by the server: `received`), sent without an answer (a request the
/// shutdown deadline cut while the server was working on it), or dropped and counted.
fn assert_counts(stats: &Stats, created: u64, received: usize) {
    assert_eq!(
        stats.spans_created, created,
        "spans_created counts every recorded span that ended: {stats:?}"
    );
    assert_eq!(
        stats.spans_created,
        stats.spans_exported + stats.spans_unanswered + stats.spans_dropped(),
        "after shutdown every span is exported, unanswered, or dropped and counted: {stats:?}"
    );
    // An unanswered request may have been stored: the server got it, the answer came too late.
    let exported = stats.spans_exported as usize;
    assert!(
        (exported..=exported + stats.spans_unanswered as usize).contains(&received),
        "the server accepted what was exported, and perhaps what went unanswered: {received} \
         received, {stats:?}"
    );
}

fn print_counts(test: &str, stats: &Stats, tree: &Tree) {
    println!(
        "{test}: created {} exported {} dropped {} (queue full {}, export failed {}, shutdown \
         deadline {}, after shutdown {}); received {} spans, {} root(s), {} orphan(s)",
        stats.spans_created,
        stats.spans_exported,
        stats.spans_dropped(),
        stats.spans_dropped_queue_full,
        stats.spans_dropped_export_failed,
        stats.spans_dropped_shutdown_deadline,
        stats.spans_dropped_after_shutdown,
        tree.received,
        tree.roots.len(),
        tree.orphans.len()
    );
}

/// Waits until what was in flight when shutdown returned has been answered (or abandoned) and
/// nothing more comes.
fn settle(server: &FakeLangfuse) {
    support::wait_until_quiet(server, || {});
}

/// What the server accepted, as links and as a tree, with the counts printed.
fn received(server: &FakeLangfuse, test: &str, stats: &Stats) -> (Vec<SpanLink>, Tree) {
    let spans = server.accepted_links();
    let tree = tree(&spans);
    print_counts(test, stats, &tree);
    (spans, tree)
}

fn sorted_names(spans: &[SpanLink]) -> Vec<&str> {
    let mut names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    names.sort_unstable();
    names
}

// ---------------------------------------------------------------------------------------------
// Whole traces under pressure

#[test]
fn two_hundred_thousand_children_keep_their_root() {
    const CHILDREN: usize = 200_000;
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = langfuse(&server.base_url())
        .shutdown_timeout(Duration::from_secs(30))
        .init()
        .expect("init");

    let root = span("big-root").start();
    for _ in 0..CHILDREN {
        span("small-child").start().end();
    }
    root.end();
    let (result, took) = shutdown(guard, Duration::from_secs(60));
    let stats = result
        .expect("shutdown within 30 s against a healthy server")
        .stats;

    let (spans, tree) = received(&server, "200k children", &stats);
    println!("200k children: shutdown took {took:?}");
    assert_eq!(
        sorted_names(&tree.roots),
        vec!["big-root"],
        "the root arrives, exactly once"
    );
    let trace_id = &tree.roots[0].trace_id;
    let other_traces = spans.iter().filter(|s| &s.trace_id != trace_id).count();
    assert_eq!(other_traces, 0, "every span is of the root's trace");
    assert_whole(&tree);
    assert_counts(&stats, CHILDREN as u64 + 1, tree.received);
}

#[test]
fn a_slow_backend_under_pressure_still_gets_roots() {
    const ROOTS: usize = 20;
    const CHILDREN: usize = 500;
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let guard = langfuse(&server.base_url())
        .max_queue(1000)
        .shutdown_timeout(Duration::from_secs(30))
        .init()
        .expect("init");

    for r in 0..ROOTS {
        let root = span(format!("root-{r:02}")).start();
        for _ in 0..CHILDREN {
            span("child").start().end();
        }
        root.end();
    }
    let (result, took) = shutdown(guard, Duration::from_secs(60));
    let stats = result
        .expect("shutdown within 30 s against a slow server")
        .stats;

    let (_, tree) = received(&server, "slow backend", &stats);
    println!("slow backend: shutdown took {took:?}");
    let expected: Vec<String> = (0..ROOTS).map(|r| format!("root-{r:02}")).collect();
    assert_eq!(
        sorted_names(&tree.roots),
        expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "every root arrives, exactly once"
    );
    assert_whole(&tree);
    assert_counts(&stats, (ROOTS * (CHILDREN + 1)) as u64, tree.received);
    assert!(
        stats.spans_dropped_queue_full > 0,
        "10,020 spans against a queue of 1,000 and a server that takes 300 ms per request: \
         some are dropped for a full queue: {stats:?}"
    );
}

/// One observation per level, `levels` deep (this call included).
#[observe(capture_input = false, capture_output = false)]
fn descend(levels: u32) {
    if levels > 1 {
        descend(levels - 1);
    }
}

#[test]
fn deep_recursion_at_the_shutdown_deadline_keeps_the_root() {
    const DEPTH: u32 = 5_000;
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let guard = langfuse(&server.base_url())
        .flush_at(100)
        .shutdown_timeout(Duration::from_secs(1))
        .init()
        .expect("init");

    thread::Builder::new()
        .name("deep".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(|| descend(DEPTH))
        .expect("spawn the recursing thread")
        .join()
        .expect("the recursion completes");
    let (result, took) = shutdown(guard, Duration::from_secs(30));
    let at_shutdown = final_stats(result);
    assert!(
        took < Duration::from_secs(5),
        "shutdown_timeout 1 s: shutdown took {took:?}"
    );

    // Whatever was in flight when shutdown returned has been answered (or abandoned) by now.
    settle(&server);
    let after = stats();
    let (_, tree) = received(&server, "deep recursion", &after);
    println!("deep recursion: shutdown took {took:?}");
    assert_eq!(
        (
            after.spans_created,
            after.spans_exported,
            after.spans_dropped()
        ),
        (
            at_shutdown.spans_created,
            at_shutdown.spans_exported,
            at_shutdown.spans_dropped()
        ),
        "the counters do not move after shutdown returned: at shutdown {at_shutdown:?}, later \
         {after:?}"
    );
    if tree.received > 0 {
        assert_eq!(
            tree.roots.len(),
            1,
            "{} span(s) of the trace arrived, so its root must have: {:?}",
            tree.received,
            tree.roots
        );
    }
    assert_whole(&tree);
    assert_counts(&after, u64::from(DEPTH), tree.received);
}

/// A child whose input is large enough that the whole trace needs several requests.
#[observe(capture_output = false)]
fn bulky_child(text: &str) -> usize {
    text.len()
}

#[test]
fn a_shutdown_deadline_that_cuts_keeps_the_root_and_whole_subtrees() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    // The first request (children only, sent while the root is still open, because a full
    // request's worth of them is waiting) is answered at once; every later one takes 0.3 s.
    server.script([Fault::Delay(Duration::ZERO)]);
    server.set_default_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let guard = langfuse(&server.base_url())
        .flush_at(100_000)
        .flush_interval(Duration::from_secs(3600))
        .max_queue(10_000)
        .shutdown_timeout(Duration::from_millis(1500))
        .init()
        .expect("init");
    let text = "x".repeat(20_000);
    {
        let _root = span("wide-root").start();
        for _ in 0..2_000 {
            bulky_child(&text);
        }
    }
    // About 40 MB of input: a dozen requests of at most 3.5 MB, 0.3 s each, against a 1.5 s
    // deadline. The root, whose children already arrived, goes in the first one.
    let (result, took) = shutdown(guard, Duration::from_secs(30));
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    settle(&server);
    let stats = final_stats(result);
    let (_, tree) = received(&server, "deadline cut", &stats);
    assert_eq!(
        sorted_names(&tree.roots),
        ["wide-root"],
        "the root is sent first: {stats:?}"
    );
    assert_whole(&tree);
    assert!(
        stats.spans_dropped_shutdown_deadline > 0,
        "the deadline cut this shutdown short: {stats:?}"
    );
    assert_counts(&stats, 2_001, tree.received);
}

// ---------------------------------------------------------------------------------------------
// Flush, thread exit and process exit reach spans held by other threads

#[test]
fn flush_reaches_spans_finished_on_other_threads() {
    const CHILDREN: [&str; 3] = ["child-a", "child-b", "child-c"];
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    // No timer export: only the flush can deliver.
    let guard = langfuse(&server.base_url())
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");

    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let root = span("held-root").start();
        let root_id = root.id().expect("the root is recorded").to_string();
        for name in CHILDREN {
            span(name).start().end();
        }
        ready_tx.send(root_id).expect("main is waiting");
        // The root stays open until main says so (or main is gone).
        let _ = release_rx.recv();
        root.end();
    });
    let root_id = ready_rx
        .recv_timeout(WAIT)
        .expect("the thread finished its children");

    flush().expect("flush against a healthy server");
    let spans = server.accepted_links();
    assert_eq!(
        sorted_names(&spans),
        CHILDREN.to_vec(),
        "flush delivers the children finished on the other thread, and not its open root"
    );
    for child in &spans {
        assert_eq!(
            child.parent_span_id, root_id,
            "{} hangs under the open root",
            child.name
        );
    }

    release_tx.send(()).expect("the thread is waiting");
    holder.join().expect("the thread ends its root");
    let (result, _) = shutdown(guard, Duration::from_secs(30));
    let stats = result.expect("shutdown").stats;
    let spans = server.accepted_links();
    let tree = tree(&spans);
    assert_eq!(
        sorted_names(&spans),
        vec!["child-a", "child-b", "child-c", "held-root"]
    );
    assert_eq!(tree.roots.len(), 1, "{:?}", tree.roots);
    assert_eq!(tree.roots[0].name, "held-root");
    assert_eq!(tree.roots[0].span_id, root_id);
    assert_whole(&tree);
    assert_counts(&stats, 4, spans.len());
}

#[observe]
fn chunk_child(_round: usize) {}

/// Runs `rounds` rounds of `children` observed children under one observed parent, telling
/// main after each round and waiting until main has flushed.
#[observe]
fn chunk_parent(rounds: usize, children: usize, done: &mpsc::Sender<()>, go: &mpsc::Receiver<()>) {
    for round in 0..rounds {
        for _ in 0..children {
            chunk_child(round);
        }
        done.send(()).expect("main is waiting");
        go.recv().expect("main flushed");
    }
}

/// The attribute writes a child's record into its thread's buffer when the child opens, so a
/// flush from another thread finds the records of finished children beside those of their
/// open parent and root: it takes the finished ones, leaves the open ones (the holes it leaves
/// are closed up as the thread goes on), and every span arrives once.
#[test]
fn flushes_take_finished_children_from_beside_their_open_parent() {
    const ROUNDS: usize = 3;
    const CHILDREN: usize = 300;
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = langfuse(&server.base_url())
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let root = span("held-root").start();
        chunk_parent(ROUNDS, CHILDREN, &done_tx, &go_rx);
        root.end();
    });
    for round in 1..=ROUNDS {
        done_rx
            .recv_timeout(WAIT)
            .expect("the thread ended a round");
        flush().expect("flush against a healthy server");
        let spans = server.accepted_links();
        assert_eq!(
            spans.len(),
            round * CHILDREN,
            "after round {round}, the finished children and nothing open: {:?}",
            &sorted_names(&spans)[..3.min(spans.len())]
        );
        assert!(spans.iter().all(|s| s.name == "chunk_child"));
        go_tx.send(()).expect("the thread is waiting");
    }
    holder.join().expect("the thread ends its root");
    let (result, _) = shutdown(guard, Duration::from_secs(30));
    let stats = result.expect("shutdown").stats;
    let (spans, tree) = received(&server, "chunk holes", &stats);
    assert_eq!(tree.roots.len(), 1, "{:?}", tree.roots);
    assert_eq!(tree.roots[0].name, "held-root");
    assert_whole(&tree);
    let parent: Vec<&SpanLink> = spans.iter().filter(|s| s.name == "chunk_parent").collect();
    assert_eq!(parent.len(), 1);
    assert_eq!(parent[0].parent_span_id, tree.roots[0].span_id);
    let under_parent = spans
        .iter()
        .filter(|s| s.parent_span_id == parent[0].span_id)
        .count();
    assert_eq!(under_parent, ROUNDS * CHILDREN);
    // Each ended where its record lies, at its own end: inside its parent's time.
    let times: HashMap<Vec<u8>, (u64, u64)> = server
        .accepted_spans()
        .iter()
        .map(|r| {
            let span = &r.span;
            (
                span.span_id.clone(),
                (span.start_time_unix_nano, span.end_time_unix_nano),
            )
        })
        .collect();
    for r in server.accepted_spans() {
        let (start, end) = times[&r.span.span_id];
        assert!(start <= end, "{} ends before it starts", r.span.name);
        if let Some(&(parent_start, parent_end)) = times.get(&r.span.parent_span_id) {
            assert!(
                parent_start <= start && end <= parent_end,
                "{} ({start}..{end}) lies inside its parent ({parent_start}..{parent_end})",
                r.span.name
            );
        }
    }
    assert_counts(&stats, (ROUNDS * CHILDREN + 2) as u64, spans.len());
}

#[test]
fn thread_exit_hands_over_its_spans() {
    const THREADS: usize = 8;
    const CHILDREN: usize = 10;
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = langfuse(&server.base_url())
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let root = span(format!("thread-root-{t}")).start();
                for c in 0..CHILDREN {
                    span(format!("thread-{t}-child-{c}")).start().end();
                }
                root.end();
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("the thread records its trace");
    }

    flush().expect("flush against a healthy server");
    let spans = server.accepted_links();
    let tree = tree(&spans);
    assert_eq!(
        spans.len(),
        THREADS * (CHILDREN + 1),
        "every span of the ended threads arrives at the flush: {:?}",
        sorted_names(&spans)
    );
    let mut roots: Vec<&str> = tree.roots.iter().map(|r| r.name.as_str()).collect();
    roots.sort_unstable();
    let expected: Vec<String> = (0..THREADS).map(|t| format!("thread-root-{t}")).collect();
    assert_eq!(
        roots,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_whole(&tree);
    let mut children_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for span in &spans {
        if !span.parent_span_id.is_empty() {
            children_of
                .entry(span.parent_span_id.as_str())
                .or_default()
                .push(span.name.as_str());
        }
    }
    for (t, root) in tree.roots.iter().enumerate() {
        let mut children = children_of
            .remove(root.span_id.as_str())
            .unwrap_or_default();
        children.sort_unstable();
        let number = root.name.trim_start_matches("thread-root-");
        let mut expected: Vec<String> = (0..CHILDREN)
            .map(|c| format!("thread-{number}-child-{c}"))
            .collect();
        expected.sort_unstable();
        assert_eq!(
            children,
            expected.iter().map(String::as_str).collect::<Vec<_>>(),
            "children of root {t} ({})",
            root.name
        );
    }

    let (result, _) = shutdown(guard, Duration::from_secs(30));
    let stats = result.expect("shutdown").stats;
    assert_counts(
        &stats,
        (THREADS * (CHILDREN + 1)) as u64,
        server.accepted_links().len(),
    );
}

/// The child's part of `process_exit_delivers_spans_of_a_blocked_thread`: a thread ends three
/// children under a root it never ends, and main exits the process.
fn exit_while_a_thread_holds_an_open_root() {
    use std::io::Write;
    let base_url = std::env::var(BASE_URL_ENV).expect("the parent passes the server URL");
    let _guard = langfuse(&base_url)
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");
    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    thread::spawn(move || {
        let root = span("never-ends").start();
        let root_id = root.id().expect("the root is recorded").to_string();
        for name in ["exit-child-a", "exit-child-b", "exit-child-c"] {
            span(name).start().end();
        }
        ready_tx.send(root_id).expect("main is waiting");
        loop {
            thread::park();
        }
    });
    let root_id = ready_rx
        .recv_timeout(WAIT)
        .expect("the thread finished its children");
    println!("\nROOT_ID={root_id}");
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

#[test]
fn process_exit_delivers_spans_of_a_blocked_thread() {
    if support::child_mode().as_deref() == Some("exit-blocked") {
        exit_while_a_thread_holds_an_open_root();
        return;
    }
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let base_url = server.base_url();
    let output = child_test!(
        "exit-blocked",
        &[(BASE_URL_ENV, base_url.as_str())],
        Duration::from_secs(60),
    );
    output.assert_success();
    let root_id = output
        .stdout
        .lines()
        .find_map(|line| line.split_once("ROOT_ID=").map(|(_, id)| id))
        .unwrap_or_else(|| panic!("the child prints its root id; stdout:\n{}", output.stdout))
        .trim()
        .to_owned();
    let spans = server.accepted_links();
    assert_eq!(
        sorted_names(&spans),
        vec!["exit-child-a", "exit-child-b", "exit-child-c"],
        "the children ended on the blocked thread are delivered at std::process::exit; child \
         stderr:\n{}",
        output.stderr
    );
    for child in &spans {
        assert_eq!(
            child.parent_span_id, root_id,
            "{} hangs under the open root",
            child.name
        );
    }
    let trace_ids: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(trace_ids.len(), 1, "one trace: {trace_ids:?}");
}

// ---------------------------------------------------------------------------------------------
// The counters with the in-memory exporter

#[test]
fn stats_add_up_with_the_in_memory_exporter() {
    const ROOTS: usize = 3;
    const CHILDREN: usize = 4;
    let _serial = support::serial();
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .init()
        .expect("init with the in-memory exporter");

    for r in 0..ROOTS {
        let root = span(format!("memory-root-{r}")).start();
        for c in 0..CHILDREN {
            span(format!("memory-{r}-child-{c}")).start().end();
        }
        root.end();
    }
    let (result, _) = shutdown(guard, Duration::from_secs(30));
    let stats = result.expect("shutdown of the in-memory exporter").stats;

    let spans = memory.spans();
    assert_eq!(
        spans.len(),
        ROOTS * (CHILDREN + 1),
        "memory holds every span"
    );
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    assert_eq!(roots.len(), ROOTS);
    for root in roots {
        let trace = memory.trace(root.trace_id);
        assert_eq!(trace.len(), CHILDREN + 1, "the trace of {}", root.name);
        for child in trace.iter().filter(|s| s.span_id != root.span_id) {
            assert_eq!(
                child.parent_span_id,
                Some(root.span_id),
                "{} hangs under {}",
                child.name,
                root.name
            );
        }
    }
    let total = (ROOTS * (CHILDREN + 1)) as u64;
    assert_eq!(stats.spans_created, total, "spans_created: {stats:?}");
    assert_eq!(stats.spans_exported, total, "spans_exported: {stats:?}");
    assert_eq!(stats.spans_dropped(), 0, "nothing dropped: {stats:?}");
}

#[test]
fn guards_dropped_out_of_order_are_reported_once() {
    if support::child_mode().as_deref() == Some("out-of-order") {
        let memory = MemoryExporter::new();
        let guard = Config::default()
            .exporter(Exporter::Memory(memory.clone()))
            .init()
            .expect("init");
        for _ in 0..3 {
            // What holding guards across an `.await` on a shared thread amounts to.
            let outer = span("outer").start();
            let inner = span("inner").start();
            drop(outer);
            drop(inner);
        }
        guard.shutdown().expect("shutdown");
        assert_eq!(memory.spans().len(), 6, "nothing is lost");
        return;
    }
    let _serial = support::serial();
    let output = child_test!("out-of-order", &[], Duration::from_secs(60));
    output.assert_success();
    let reports = output
        .stderr
        .lines()
        .filter(|line| line.contains("was probably held across an .await"))
        .count();
    if cfg!(debug_assertions) {
        assert_eq!(reports, 1, "reported once: {}", output.stderr);
    } else {
        assert_eq!(reports, 0, "debug builds only: {}", output.stderr);
    }
}

/// A thread's small trace waits in its buffer for the exporter's timer; full batches that keep
/// waking the exporter from another thread do not hold the timer off.
#[test]
fn the_timer_collects_a_waiting_small_trace_while_batches_keep_coming() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = langfuse(&server.base_url())
        .flush_at(2)
        .max_queue(500)
        .flush_interval(Duration::from_millis(100))
        .init()
        .expect("init");

    // The small trace: one span, held by a thread that stays alive (its exit would hand it over).
    let (ended, ended_here) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        span("small").start().end();
        ended.send(()).expect("the test waits");
        let _ = released.recv();
    });
    ended_here.recv().expect("the small trace ended");

    // Traces of two spans, a batch each, as fast as they can be made, until the small one arrives.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = thread::spawn({
        let stop = stop.clone();
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let root = span("busy").start();
                span("busy child").start().end();
                drop(root);
            }
        }
    });
    let started = Instant::now();
    let arrived = loop {
        if server
            .accepted_spans()
            .iter()
            .any(|span| span.name() == "small")
        {
            break true;
        }
        if started.elapsed() > WAIT {
            break false;
        }
        thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.join().expect("the busy thread");
    let _ = release.send(());
    holder.join().expect("the holder");
    assert!(
        arrived,
        "the small trace arrived within {WAIT:?} without a flush"
    );
    let (result, _) = shutdown(guard, WAIT);
    result.expect("shutdown");
}
