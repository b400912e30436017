//! Running one of the examples as its own process, sending to the fake Langfuse server.

use std::process::Output;
use std::time::Duration;

use super::child::example_command;
use super::server::FakeLangfuse;

/// Runs example `name` with `args`, configured by environment variables for `server` only, and
/// returns its output once it succeeded (panics with its stderr otherwise, or after two minutes).
pub fn run_example(name: &str, args: &[&str], server: &FakeLangfuse) -> Output {
    let mut command = example_command(name);
    command
        .args(args)
        .env("LANGFUSE_PUBLIC_KEY", server.public_key())
        .env("LANGFUSE_SECRET_KEY", server.secret_key())
        .env("LANGFUSE_BASE_URL", server.base_url());
    let what = format!("the {name} example");
    let output = super::within(Duration::from_secs(120), &what, move || {
        command.output().expect("run the example")
    });
    assert!(
        output.status.success(),
        "the {name} example failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
