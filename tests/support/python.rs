//! The official Python SDK as a test peer: a virtual environment with the pinned requirements of
//! `tests/interop/requirements.txt`, made once per build directory (and again when the
//! requirements change), and `tests/interop/peer.py` run in it against the fake server.
//!
//! When PyPI cannot be reached the peer is missing: [`python_peer`] says so on stderr, once, and
//! returns `None`, so the caller skips visibly. Any other failure to install is a test failure.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::server::FakeLangfuse;

const REQUIREMENTS: &str = include_str!("../interop/requirements.txt");

/// What pip prints when the index cannot be reached.
const UNREACHABLE: [&str; 5] = [
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "No matching distribution found",
    "Could not find a version that satisfies",
];

/// The Python SDK's virtual environment and the peer script.
pub struct PythonPeer {
    python: PathBuf,
    script: PathBuf,
}

fn venv_dir() -> PathBuf {
    let mut hasher = DefaultHasher::new();
    REQUIREMENTS.hash(&mut hasher);
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("python-sdk-{:016x}", hasher.finish()))
}

fn install() -> Result<PathBuf, String> {
    let dir = venv_dir();
    let python = dir.join("bin").join("python");
    if python.exists() {
        return Ok(python);
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&partial)
        .status()
        .map_err(|e| format!("python3 -m venv could not start: {e}"))?;
    if !status.success() {
        panic!("python3 -m venv {} failed: {status}", partial.display());
    }
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/requirements.txt");
    let output = Command::new(partial.join("bin").join("pip"))
        .args(["install", "--disable-pip-version-check", "-q", "-r"])
        .arg(&requirements)
        .output()
        .map_err(|e| format!("pip could not start: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        if UNREACHABLE.iter().any(|text| stderr.contains(text)) {
            return Err(stderr);
        }
        panic!(
            "pip install -r {} failed:\n{stderr}",
            requirements.display()
        );
    }
    std::fs::rename(&partial, &dir)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", partial.display(), dir.display()));
    Ok(python)
}

/// The peer, installed on first use; `None` (said on stderr) when PyPI is unreachable.
pub fn python_peer() -> Option<&'static PythonPeer> {
    static PEER: OnceLock<Option<PythonPeer>> = OnceLock::new();
    PEER.get_or_init(|| match install() {
        Ok(python) => Some(PythonPeer {
            python,
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/peer.py"),
        }),
        Err(why) => {
            eprintln!(
                "SKIPPED: the interop tests need the official Python SDK from PyPI, which cannot \
                 be reached from here:\n{why}"
            );
            None
        }
    })
    .as_ref()
}

impl PythonPeer {
    /// Runs `peer.py` with `args`, configured for `server`, with `env` added and `stdin` given;
    /// returns the JSON it printed (panics with its stderr when it fails).
    pub fn run(
        &self,
        server: &FakeLangfuse,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> serde_json::Value {
        let mut command = Command::new(&self.python);
        super::clear_sdk_environment(&mut command);
        command
            .arg(&self.script)
            .args(args)
            .env("LANGFUSE_PUBLIC_KEY", server.public_key())
            .env("LANGFUSE_SECRET_KEY", server.secret_key())
            .env("LANGFUSE_BASE_URL", server.base_url())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the Python peer");
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.unwrap_or_default().as_bytes())
                .expect("write the peer's stdin");
        }
        let output = child.wait_with_output().expect("wait for the Python peer");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "peer.py {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "peer.py {args:?} printed no JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}
