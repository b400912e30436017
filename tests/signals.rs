//! `LANGFUSE_FLUSH_ON_SIGNALS` (`Config::flush_on_signals`): SIGTERM and SIGINT flush what finished
//! within the shutdown timeout, then end the process as the signal does. Without the opt-in, a
//! signal ends the process at once and what waited for the exporter's timer is lost.
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use observe_runtime::{span, Config};
use support::{by_name, child_mode, FakeLangfuse};

const PUBLIC_KEY: &str = "pk-lf-signals";
const SECRET_KEY: &str = "sk-lf-signals";
const BASE_URL_ENV: &str = "OBSERVE_TEST_BASE_URL";
const TEST: &str = "the_child_that_waits_for_a_signal";

/// The child's part: records a trace, says so, and waits to be signalled. Run by the tests below
/// in a child process, never alone.
#[test]
#[ignore = "the child process of the signal tests; they run it"]
fn the_child_that_waits_for_a_signal() {
    let mode = child_mode().expect("run by the signal tests, with OBSERVE_TEST_CHILD_MODE set");
    let base_url = std::env::var(BASE_URL_ENV).expect("the parent passes the server URL");
    let _guard = Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(base_url)
        .flush_interval(Duration::from_secs(600))
        .shutdown_timeout(Duration::from_secs(10))
        .flush_on_signals(mode == "opted-in")
        .init()
        .expect("init");
    {
        let _root = span("request").start();
        span("step").start().end();
    }
    println!("ready-for-a-signal");
    std::thread::sleep(Duration::from_secs(120));
    unreachable!("the parent signals this process");
}

/// Starts the child in `mode`, sends `signal` once it is ready; returns how it ended and what
/// reached the server.
fn signalled(mode: &str, signal: i32) -> (std::process::ExitStatus, usize, FakeLangfuse) {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let mut command = support::child_command(TEST, mode);
    command
        .stderr(Stdio::null())
        .env(BASE_URL_ENV, server.base_url());
    let mut child = command.spawn().expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.find(|line| {
        line.as_deref()
            .is_ok_and(|l| l.contains("ready-for-a-signal"))
    });
    assert!(ready.is_some(), "the child did not get ready");
    // SAFETY: kill only sends a signal to the child we started.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "the signal was sent");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the child did not end after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let arrived = server.accepted_spans().len();
    (status, arrived, server)
}

#[test]
fn sigterm_flushes_the_finished_trace_then_ends_the_process_by_the_signal() {
    let _serial = support::serial();
    let (status, arrived, server) = signalled("opted-in", libc::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert_eq!(
        arrived, 2,
        "both spans were flushed before the process ended"
    );
    let spans = server.accepted_spans();
    assert_eq!(
        by_name(&spans, "step").parent_span_id(),
        by_name(&spans, "request").span_id()
    );
}

#[test]
fn sigint_flushes_the_finished_trace_then_ends_the_process_by_the_signal() {
    let _serial = support::serial();
    let (status, arrived, _server) = signalled("opted-in", libc::SIGINT);
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");
    assert_eq!(arrived, 2);
}

/// The control: without the opt-in the signal's default action ends the process at once, before
/// the exporter's timer (ten minutes here) sent anything.
#[test]
fn without_the_opt_in_sigterm_ends_the_process_before_anything_is_sent() {
    let _serial = support::serial();
    let (status, arrived, _server) = signalled("default", libc::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert_eq!(arrived, 0);
}
