//! Re-running one test of the current test binary in a child process, for what only a process
//! boundary shows: what reaches stderr, and what survives `std::process::exit`.
//!
//! The parent calls [`run_child`] with the test's own name and a mode; the child finds the mode
//! with [`child_mode`] and does the child's part instead of the parent's.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The name of the test function this is used in, as the test harness knows it (`module::test`
/// or `test`): what [`run_child`] takes.
#[macro_export]
macro_rules! this_test {
    () => {{
        fn here() {}
        let path = std::any::type_name_of_val(&here);
        // `crate::module::test::here`, maybe with `::{{closure}}` parts for async tests.
        let path = path.trim_end_matches("::here");
        let mut parts: Vec<&str> = path.split("::").filter(|p| *p != "{{closure}}").collect();
        parts.remove(0);
        parts.join("::")
    }};
}

/// Runs the test this is used in again, alone, in a child process started with
/// `OBSERVE_TEST_CHILD_MODE=mode` and `env`, and returns its output (see [`run_child`]).
#[macro_export]
macro_rules! child_test {
    ($mode:expr, $env:expr, $timeout:expr $(,)?) => {
        $crate::support::run_child(&$crate::this_test!(), $mode, $env, $timeout)
    };
}

/// The environment variable that selects the child's part of a test.
pub const CHILD_MODE_ENV: &str = "OBSERVE_TEST_CHILD_MODE";

/// The mode this process was started in, if it is a child.
pub fn child_mode() -> Option<String> {
    std::env::var(CHILD_MODE_ENV).ok()
}

#[derive(Debug)]
pub struct ChildOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ChildOutput {
    /// Panics with both outputs unless the child exited with status 0.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "child process failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `test_name` of the current test binary alone in a child process with
/// `OBSERVE_TEST_CHILD_MODE=mode` and `env`; kills it and panics after `timeout`.
/// Configuration variables of the SDK and of OpenTelemetry are removed from its environment.
pub fn run_child(
    test_name: &str,
    mode: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> ChildOutput {
    run_child_with(test_name, mode, timeout, |command| {
        command.envs(env.iter().copied());
    })
}

/// Like [`run_child`], with `prepare` free to change the command (after the SDK's variables were
/// removed), for example to pass a trace context with `TraceContext::apply_to`.
pub fn run_child_with(
    test_name: &str,
    mode: &str,
    timeout: Duration,
    prepare: impl FnOnce(&mut Command),
) -> ChildOutput {
    let mut command = child_command(test_name, mode);
    prepare(&mut command);
    let mut child = command.spawn().expect("spawn the child test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let stdout_reader = thread::spawn(move || read_all(stdout));
    let stderr_reader = thread::spawn(move || read_all(stderr));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = stdout_reader.join().unwrap_or_default();
    let stderr = stderr_reader.join().unwrap_or_default();
    match status {
        Some(status) => ChildOutput {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "child process for {test_name} did not end within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}

/// The command that runs `test_name` of the current test binary alone with
/// `OBSERVE_TEST_CHILD_MODE=mode`: piped output, no stdin, the SDK's variables removed. For a
/// test that must act while the child runs (signal it, start two at once); else [`run_child`].
pub fn child_command(test_name: &str, mode: &str) -> Command {
    let executable = std::env::current_exe().expect("path of the running test binary");
    let mut command = Command::new(executable);
    command
        // A child's entry point is `#[ignore]`d, so that a plain `cargo test` lists it as
        // skipped instead of passing it without doing anything.
        .args([
            "--exact",
            test_name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clear_sdk_environment(&mut command);
    command
}

/// Removes the configuration variables of the SDK, of OpenTelemetry and of OpenAI (and the trace context
/// carriers) that this process has from `command`'s environment.
pub fn clear_sdk_environment(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("LANGFUSE_")
            || text.starts_with("OTEL_")
            || text.starts_with("OPENAI_")
            || matches!(text.as_ref(), "TRACEPARENT" | "TRACESTATE" | "BAGGAGE")
        {
            command.env_remove(&name);
        }
    }
}

/// A command that runs the example `name`, built next to this test binary (`cargo test` builds
/// examples; when only this test was built, it is built here), with piped output, no stdin and
/// the SDK's variables (and `OPENAI_*`) removed from its environment.
pub fn example_command(name: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in <target>/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --example");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(binary.exists(), "{} was not built", binary.display());
    let mut command = Command::new(binary);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    clear_sdk_environment(&mut command);
    command
}

fn read_all(mut source: impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = source.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
