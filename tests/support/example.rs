//! Running one of the examples as its own process, sending to the fake Langfuse server.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::child::remove_sdk_env;
use super::server::FakeLangfuse;

/// The built example `name`, next to the test binary (`cargo test` builds examples; when only the
/// test was built, the example is built here).
pub fn example_binary(name: &str) -> PathBuf {
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
            .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// Runs example `name` with `args`, configured by environment variables for `server` only, and
/// returns its output once it succeeded (panics with its stderr otherwise, or after two minutes).
pub fn run_example(name: &str, args: &[&str], server: &FakeLangfuse) -> Output {
    let mut command = Command::new(example_binary(name));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    remove_sdk_env(&mut command);
    command
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
