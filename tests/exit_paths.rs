//! Ends of a process that do not unwind: `std::process::exit` inside nested observations (sync
//! and async), and a panic under `panic = "abort"`. The observations still open on the ending
//! thread arrive, ended then, with a level and a message that say so, and what finished under
//! them hangs under them. An observation open on another thread is not reachable; that is
//! checked too, as documented.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use observe_runtime::{current_observation, observe, span, Config};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use support::{by_name, child_mode, run_child, FakeLangfuse, ReceivedSpan};

const PUBLIC_KEY: &str = "pk-lf-exit";
const SECRET_KEY: &str = "sk-lf-exit";
const BASE_URL_ENV: &str = "OBSERVE_TEST_BASE_URL";
const WAIT: Duration = Duration::from_secs(20);
const EXITED: &str = "the process exited before this observation ended";

fn init_from_parent() -> observe_runtime::FlushGuard {
    let base_url = std::env::var(BASE_URL_ENV).expect("the parent passes the server URL");
    Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(base_url)
        .flush_interval(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(10))
        .init()
        .expect("init")
}

/// Runs `test` of this binary as a child in `mode` against a fresh server; returns what arrived.
fn spans_of_child(test: &str, mode: &str, count: usize) -> (Vec<ReceivedSpan>, String) {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let base_url = server.base_url();
    let output = run_child(
        test,
        mode,
        &[(BASE_URL_ENV, base_url.as_str())],
        Duration::from_secs(60),
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "the child exits with 3:\n{}",
        output.stderr
    );
    let spans = server.wait_for_spans(count, WAIT);
    // Nothing more comes (a duplicate, a second copy of an open one).
    support::wait_until_quiet(&server, || {});
    assert_eq!(
        server.accepted_spans().len(),
        count,
        "{:?}\n{}",
        spans.iter().map(ReceivedSpan::name).collect::<Vec<_>>(),
        output.stderr
    );
    (spans, output.stderr)
}

fn assert_ended_by_exit(span: &ReceivedSpan, message: &str) {
    assert_eq!(
        span.str_attr("langfuse.observation.level"),
        Some("WARNING"),
        "{}",
        span.name()
    );
    assert_eq!(
        span.str_attr("langfuse.observation.status_message"),
        Some(message),
        "{}",
        span.name()
    );
    assert_ne!(
        span.status_code(),
        StatusCode::Error as i32,
        "{}",
        span.name()
    );
}

#[observe]
fn summarize(text: &str) -> usize {
    text.len()
}

#[observe(as_type = "tool")]
fn fetch(url: &str) -> usize {
    summarize(url);
    current_observation().status_message("retrying");
    std::process::exit(3);
}

#[observe(as_type = "agent")]
fn agent_that_exits() -> usize {
    fetch("https://example.invalid/doc")
}

#[test]
fn process_exit_inside_nested_observations_ends_and_sends_the_open_ones() {
    const TEST: &str = "process_exit_inside_nested_observations_ends_and_sends_the_open_ones";
    if child_mode().as_deref() == Some("sync") {
        let _guard = init_from_parent();
        agent_that_exits();
        unreachable!("fetch exits the process");
    }
    let (spans, _) = spans_of_child(TEST, "sync", 3);
    let agent = by_name(&spans, "agent_that_exits");
    let fetch = by_name(&spans, "fetch");
    let summarize = by_name(&spans, "summarize");
    assert_eq!(agent.parent_span_id(), "", "the root arrives");
    assert_eq!(fetch.parent_span_id(), agent.span_id());
    assert_eq!(summarize.parent_span_id(), fetch.span_id());
    assert_ended_by_exit(agent, EXITED);
    // A message the observation had is kept, first.
    assert_ended_by_exit(fetch, &format!("retrying; {EXITED}"));
    assert_eq!(summarize.str_attr("langfuse.observation.level"), None);
    assert_eq!(
        fetch.json_attr("langfuse.observation.input"),
        Some(serde_json::json!({"url": "https://example.invalid/doc"}))
    );
    for open in [agent, fetch] {
        assert!(
            open.span.end_time_unix_nano >= summarize.span.end_time_unix_nano,
            "{} ends at the exit, after what finished under it",
            open.name()
        );
    }
}

#[observe(as_type = "retriever")]
async fn search(query: &str) -> usize {
    tokio::time::sleep(Duration::from_millis(5)).await;
    query.len()
}

#[observe(as_type = "generation")]
async fn answer(query: &str) -> usize {
    search(query).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    std::process::exit(3);
}

#[observe(as_type = "agent")]
async fn async_agent(query: &str) -> usize {
    answer(query).await
}

#[test]
fn process_exit_inside_async_observations_ends_and_sends_the_open_ones() {
    const TEST: &str = "process_exit_inside_async_observations_ends_and_sends_the_open_ones";
    if child_mode().as_deref() == Some("async") {
        let _guard = init_from_parent();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async_agent("rust"));
        unreachable!("answer exits the process");
    }
    let (spans, _) = spans_of_child(TEST, "async", 3);
    let agent = by_name(&spans, "async_agent");
    let answer = by_name(&spans, "answer");
    let search = by_name(&spans, "search");
    assert_eq!(agent.parent_span_id(), "");
    assert_eq!(answer.parent_span_id(), agent.span_id());
    assert_eq!(search.parent_span_id(), answer.span_id());
    assert_ended_by_exit(agent, EXITED);
    assert_ended_by_exit(answer, EXITED);
    assert_eq!(search.str_attr("langfuse.observation.level"), None);
}

/// Documented limit: the stack of open observations is per thread, so one open on another
/// thread at the exit does not arrive; what finished under it does (the exit hook collects every
/// thread's finished records).
#[test]
fn an_observation_open_on_another_thread_at_exit_is_not_reachable() {
    const TEST: &str = "an_observation_open_on_another_thread_at_exit_is_not_reachable";
    if child_mode().as_deref() == Some("thread") {
        let _guard = init_from_parent();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _open = span("open-elsewhere").start();
            span("finished-elsewhere").start().end();
            started_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        });
        started_rx.recv().unwrap();
        let _main = span("open-on-main").start();
        std::process::exit(3);
    }
    let (spans, _) = spans_of_child(TEST, "thread", 2);
    let mut names: Vec<&str> = spans.iter().map(ReceivedSpan::name).collect();
    names.sort_unstable();
    assert_eq!(names, ["finished-elsewhere", "open-on-main"]);
    assert_ended_by_exit(by_name(&spans, "open-on-main"), EXITED);
}

/// The workspace's target directory (this binary is `<target>/<profile>/deps/<name>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<binary>")
        .to_path_buf()
}

/// `probes/abort` built with `panic = "abort"` (the `abort` profile of the workspace).
fn abort_probe() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "observe-abort-probe",
            "--profile",
            "abort",
        ])
        .arg("--target-dir")
        .arg(target_dir())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build --profile abort");
    assert!(
        status.success(),
        "cargo build -p observe-abort-probe --profile abort failed"
    );
    let binary = target_dir().join("abort").join(format!(
        "observe-abort-probe{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

#[test]
fn a_panic_under_panic_abort_ends_and_sends_the_open_observations_as_errors() {
    let _serial = support::serial();
    let probe = abort_probe();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let mut command = Command::new(probe);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    support::clear_sdk_environment(&mut command);
    command
        .env("LANGFUSE_PUBLIC_KEY", PUBLIC_KEY)
        .env("LANGFUSE_SECRET_KEY", SECRET_KEY)
        .env("LANGFUSE_BASE_URL", server.base_url());
    let output = support::within(Duration::from_secs(60), "the abort probe", move || {
        command.output().expect("run the abort probe")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout, "panic strategy abort: true\n", "{stderr}");
    assert!(!output.status.success(), "the process aborted: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), Some(libc_sigabrt()), "{stderr}");
    }
    assert!(stderr.contains("model quota exhausted"), "{stderr}");

    let spans = server.wait_for_spans(3, WAIT);
    assert_eq!(spans.len(), 3, "{stderr}");
    let agent = by_name(&spans, "agent");
    let call = by_name(&spans, "call_model");
    let step = by_name(&spans, "finished_step");
    assert_eq!(agent.parent_span_id(), "");
    assert_eq!(call.parent_span_id(), agent.span_id());
    assert_eq!(step.parent_span_id(), agent.span_id());
    let aborted = "model quota exhausted; the process aborted (panic = \"abort\") before this \
                   observation ended";
    for open in [agent, call] {
        assert_eq!(
            open.str_attr("langfuse.observation.level"),
            Some("ERROR"),
            "{}",
            open.name()
        );
        assert_eq!(open.status_code(), StatusCode::Error as i32);
        assert_eq!(
            open.str_attr("langfuse.observation.status_message"),
            Some(aborted),
            "{}",
            open.name()
        );
    }
    assert_eq!(step.str_attr("langfuse.observation.level"), None);
}

/// SIGABRT, the signal `std::process::abort` ends the process with.
#[cfg(unix)]
fn libc_sigabrt() -> i32 {
    6
}
