//! The end of a program: the guard dropped inside and after tokio runtimes, `std::process::exit`,
//! a backend that hangs or refuses connections, and `flush()` that keeps the pipeline running.
//!
//! The client is global to the process: every test holds [`support::serial`] and shuts its
//! client down before it ends. Work that could deadlock runs under [`within`], so a deadlock
//! fails the test instead of hanging the suite.

mod support;

use std::time::{Duration, Instant};

use observe_runtime::{span, stats, Config, ConfigError, FlushError, Stats};

use support::server::TRACES_PATH;
use support::within;
use support::{by_name, FakeLangfuse, Fault, ReceivedSpan};

const PUBLIC_KEY: &str = "pk-lf-test";
const SECRET_KEY: &str = "sk-lf-test";
const WAIT: Duration = Duration::from_secs(10);
const BASE_URL_ENV: &str = "OBSERVE_TEST_BASE_URL";

/// A client for `base_url` that exports only when asked (or when 512 spans are waiting).
fn config(base_url: &str) -> Config {
    Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(base_url)
        .flush_at(512)
        .flush_interval(Duration::from_secs(60))
        .timeout(Duration::from_secs(5))
        .max_queue(8192)
        .shutdown_timeout(Duration::from_secs(5))
        .environment("test")
        .release("rel-1")
        .service_name("svc")
        .debug(false)
}

fn statuses(requests: &[support::RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|request| format!("{:?}", request.answer))
        .collect()
}

fn names(spans: &[ReceivedSpan]) -> Vec<&str> {
    let mut names: Vec<&str> = spans.iter().map(ReceivedSpan::name).collect();
    names.sort_unstable();
    names
}

/// A root with one child, ended; returns nothing, the spans go to the global client.
fn root_with_child(root_name: &'static str, child_name: &'static str) {
    let root = span(root_name).start();
    span(child_name).start().end();
    root.end();
}

fn guard_drop_inside_runtime(runtime: tokio::runtime::Runtime, label: &'static str) {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let base_url = server.base_url();
    let drop_took = within(Duration::from_secs(30), label, move || {
        runtime.block_on(async move {
            let guard = config(&base_url).init().expect("init");
            tokio::time::sleep(Duration::from_millis(10)).await;
            root_with_child("request", "step");
            tokio::spawn(async {
                span("spawned-task").start().end();
            })
            .await
            .expect("the spawned task ran");
            let started = Instant::now();
            drop(guard);
            started.elapsed()
        })
    });
    assert!(
        drop_took < Duration::from_secs(5),
        "dropping the guard is bounded by shutdown_timeout: {drop_took:?}"
    );
    let spans = server.wait_for_spans(3, WAIT);
    assert_eq!(names(&spans), vec!["request", "spawned-task", "step"]);
    assert_eq!(
        by_name(&spans, "step").parent_span_id(),
        by_name(&spans, "request").span_id()
    );
}

#[test]
fn guard_dropped_inside_a_multi_thread_runtime_delivers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a multi-thread runtime");
    guard_drop_inside_runtime(runtime, "dropping the guard inside a multi-thread runtime");
}

#[test]
fn guard_dropped_inside_a_current_thread_runtime_delivers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime");
    guard_drop_inside_runtime(
        runtime,
        "dropping the guard inside a current-thread runtime",
    );
}

#[test]
fn guard_dropped_after_the_runtime_is_gone_delivers() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let base_url = server.base_url();
    within(
        Duration::from_secs(30),
        "dropping the guard after the runtime",
        move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("build a multi-thread runtime");
            let guard = runtime.block_on(async move {
                let guard = config(&base_url).init().expect("init inside the runtime");
                root_with_child("inside-runtime", "inside-runtime-child");
                guard
            });
            drop(runtime);
            span("after-runtime").start().end();
            let started = Instant::now();
            drop(guard);
            let drop_took = started.elapsed();
            assert!(
                drop_took < Duration::from_secs(5),
                "dropping the guard is bounded by shutdown_timeout: {drop_took:?}"
            );
        },
    );
    let spans = server.wait_for_spans(3, WAIT);
    assert_eq!(
        names(&spans),
        vec!["after-runtime", "inside-runtime", "inside-runtime-child"]
    );
}

/// The child's part of `process_exit_still_delivers_spans`.
fn exit_without_dropping_the_guard() {
    let base_url = std::env::var(BASE_URL_ENV).expect("the parent passes the server URL");
    let _guard = config(&base_url).init().expect("init");
    root_with_child("before-exit", "before-exit-child");
    std::process::exit(0);
}

#[test]
fn process_exit_still_delivers_spans() {
    if support::child_mode().as_deref() == Some("exit") {
        exit_without_dropping_the_guard();
        return;
    }
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let base_url = server.base_url();
    let output = child_test!(
        "exit",
        &[(BASE_URL_ENV, base_url.as_str())],
        Duration::from_secs(60),
    );
    output.assert_success();
    let spans = server.wait_for_spans(2, WAIT);
    assert_eq!(
        names(&spans),
        vec!["before-exit", "before-exit-child"],
        "spans ended before std::process::exit(0) are delivered; child stderr:\n{}",
        output.stderr
    );
    assert_eq!(
        by_name(&spans, "before-exit-child").parent_span_id(),
        by_name(&spans, "before-exit").span_id()
    );
}

/// Shuts a client for `base_url` down with two spans waiting; checks the time and returns the
/// reason the shutdown reports (it must be an export failure) and the final counters.
fn shutdown_reports_loss_within_timeout(base_url: &str) -> (String, Stats) {
    let guard = config(base_url)
        .timeout(Duration::from_secs(30))
        .shutdown_timeout(Duration::from_secs(1))
        .init()
        .expect("init");
    root_with_child("lost", "lost-child");
    let (result, took) = within(Duration::from_secs(30), "shutdown", move || {
        let started = Instant::now();
        let result = guard.shutdown();
        (result, started.elapsed())
    });
    assert!(
        took < Duration::from_secs(5),
        "shutdown_timeout 1 s: shutdown took {took:?}"
    );
    let reason = match result {
        Err(FlushError::ExportFailed { reason }) => reason,
        other => panic!("a shutdown that could not deliver reports ExportFailed: {other:?}"),
    };
    let after = stats();
    assert_eq!(
        (
            after.spans_created,
            after.spans_queued,
            after.spans_exported
        ),
        (2, 2, 0),
        "stats() still tells the shut-down client's numbers: {after:?}"
    );
    (reason, after)
}

#[test]
fn shutdown_with_a_hanging_backend_ends_within_the_timeout() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_fault(Some(Fault::Hang));
    let (reason, after) = shutdown_reports_loss_within_timeout(&server.base_url());
    // The one attempt is cut by the shutdown deadline (its time allowance is what was left).
    let prefix = format!(
        "export to {}{TRACES_PATH} got no answer to 1 of 1 attempt(s) (the server may have \
         stored them): no answer within ",
        server.base_url()
    );
    assert!(
        reason.starts_with(&prefix)
            && reason.ends_with("ms; the flush or shutdown deadline came first"),
        "{reason}"
    );
    assert_eq!(after.last_error.as_deref(), Some(reason.as_str()));
    assert_eq!(
        (
            after.spans_unanswered,
            after.spans_dropped(),
            after.requests_unanswered,
            after.requests_failed,
            after.requests_retried
        ),
        (2, 0, 1, 0, 0),
        "sent without an answer: counted as unanswered, not as lost: {after:?}"
    );
    assert_eq!(statuses(&server.trace_requests()), ["Hung"]);
    assert!(server.accepted_spans().is_empty());
}

#[test]
fn shutdown_with_refused_connections_ends_within_the_timeout() {
    let _serial = support::serial();
    let base_url = support::refusing_base_url();
    let (reason, after) = shutdown_reports_loss_within_timeout(&base_url);
    // Refused at once, retried once after 500-750 ms; the next backoff (at least 1 s) passes the
    // 1 s deadline.
    let url = format!("{base_url}{TRACES_PATH}");
    assert_eq!(
        reason,
        format!(
            "export to {url} failed after 2 attempt(s): error sending request for url ({url}): \
             client error (Connect): tcp connect error: Connection refused (os error 111); the \
             flush or shutdown deadline came first"
        )
    );
    assert_eq!(after.last_error.as_deref(), Some(reason.as_str()));
    assert_eq!(
        (
            after.spans_dropped_shutdown_deadline,
            after.spans_dropped(),
            after.spans_unanswered,
            after.requests_failed,
            after.requests_retried
        ),
        (2, 2, 0, 2, 1),
        "{after:?}"
    );
}

#[test]
fn guard_drop_with_a_hanging_backend_ends_within_the_timeout() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_fault(Some(Fault::Hang));
    let guard = config(&server.base_url())
        .timeout(Duration::from_secs(30))
        .shutdown_timeout(Duration::from_secs(1))
        .init()
        .expect("init");
    root_with_child("lost", "lost-child");
    let took = within(Duration::from_secs(30), "dropping the guard", move || {
        let started = Instant::now();
        drop(guard);
        started.elapsed()
    });
    assert!(
        took < Duration::from_secs(5),
        "shutdown_timeout 1 s: dropping the guard took {took:?}"
    );
    // The client is gone: a new one can be installed.
    let again = config(&server.base_url())
        .init()
        .expect("init after the previous guard was dropped");
    server.set_default_fault(None);
    drop(again);
}

#[test]
fn global_flush_keeps_the_pipeline_running() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server.base_url()).init().expect("init");
    let before = stats();

    span("before-flush").start().end();
    observe_runtime::flush().expect("flush");
    assert_eq!(
        names(&server.accepted_spans()),
        vec!["before-flush"],
        "flush returns once the spans are delivered"
    );

    span("after-flush").start().end();
    observe_runtime::flush().expect("a second flush");
    assert_eq!(
        names(&server.accepted_spans()),
        vec!["after-flush", "before-flush"]
    );
    assert_eq!(
        stats().spans_exported.saturating_sub(before.spans_exported),
        2
    );

    span("at-shutdown").start().end();
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        report
            .stats
            .spans_exported
            .saturating_sub(before.spans_exported),
        3,
        "{:?}",
        report.stats
    );
    assert_eq!(server.accepted_spans().len(), 3);
}

#[test]
fn a_second_init_while_one_is_live_is_an_error() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let first = config(&server.base_url()).init().expect("first init");
    let second = config(&server.base_url())
        .init()
        .expect_err("a second init while one is live fails");
    assert_eq!(second, ConfigError::AlreadyInitialized);
    assert_eq!(
        second.to_string(),
        "observe_runtime is already initialized: the FlushGuard of an earlier init() is still \
         alive; keep that one guard for the whole program (or shut it down before calling init \
         again)"
    );

    span("still-first-client").start().end();
    first.shutdown().expect("shutdown");
    assert_eq!(
        names(&server.accepted_spans()),
        vec!["still-first-client"],
        "the failed init left the live client working"
    );

    let third = config(&server.base_url())
        .init()
        .expect("init after shutdown");
    drop(third);
}
