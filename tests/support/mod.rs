//! Support shared by the integration tests.
//!
//! - [`server`]: a fake Langfuse server on 127.0.0.1 that plays the OTLP/HTTP contract of the wire
//!   document (auth texts, required headers, gzip, protobuf decoded with the official
//!   `opentelemetry-proto` messages), records every request and injects faults on demand.
//! - [`prompts`]: the fake server's prompt management (store of versions, fetch, create, label
//!   update), as Langfuse's public API answers it.
//! - [`datasets`]: the fake server's datasets (store of datasets and items, fetch, create or
//!   update, paged item list, item upsert), as Langfuse's public API answers them.
//! - [`media`]: the fake server's media uploads (store of media records, upload URL, presigned
//!   upload checked as S3 checks it, upload report, fetch), as Langfuse and its storage answer
//!   them; a std-only SHA-256.
//! - [`openai`]: a fake OpenAI-compatible server (JSON answers, server-sent events with delays,
//!   connections cut mid-stream) for the async-openai layer.
//! - [`python`]: the official Python SDK as a peer, in a virtual environment of its own.
//! - [`received`]: views on the spans the server accepted and accessors for their attributes.
//! - [`child`]: re-running one test of the current binary in a child process (`child_test!`
//!   takes the test's name from the function it is used in).
//! - [`example`]: running one of the examples against the fake server.
//! - [`quiet`]: waiting until the fake server receives nothing more, instead of a fixed sleep.
//! - [`serial`]: the lock that serializes tests, because the client is global to the process.
//!
//! - [`sdk`]: the test keys and a client of the fake server.
//!
//! Only [`sdk`] uses the runtime crate: the rest describes Langfuse, not the SDK.
#![allow(dead_code, unused_imports)]

pub mod child;
pub mod datasets;
pub mod example;
pub mod media;
pub mod openai;
pub mod prompts;
pub mod python;
pub mod received;
pub mod sdk;
pub mod server;

pub mod quiet;

pub use child::{
    child_command, child_mode, clear_sdk_environment, example_command, run_child, run_child_with,
    ChildOutput,
};
pub use example::run_example;
pub use quiet::{wait_until_quiet, RETRY_INTERVAL};
pub use received::{by_name, hex, ReceivedSpan, SpanLink};
pub use server::{Answer, FakeLangfuse, Fault, RecordedRequest, ScoreApi};

use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes the tests of one binary: only one global client may be live at a time.
/// A test that panicked while holding the lock does not poison the following ones.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `Authorization` value the official SDKs send: `Basic base64("{public_key}:{secret_key}")`.
pub fn basic_auth(public_key: &str, secret_key: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{public_key}:{secret_key}").as_bytes())
    )
}

/// A base URL on 127.0.0.1 where nothing listens: connections are refused.
pub fn refusing_base_url() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to learn a free one");
    let port = listener
        .local_addr()
        .expect("local address of a bound listener")
        .port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64, padding optional; `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), for checking the fake
/// server itself; returns the status and the body.
pub fn raw_request(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let address = base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the fake server");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(body).expect("send the body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Runs `work` on its own thread and fails the test if it does not finish within `limit`
/// (a deadlock); a panic inside `work` is passed on.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        let result = work();
        let _ = done.send(());
        result
    });
    match finished.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {limit:?}: deadlock or unbounded wait")
        }
    }
}

/// A fresh directory under the target's temporary directory, named after `name` and unique to
/// this run.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Microseconds since the Unix epoch of `2026-11-25T14:44:04.123456Z`.
pub fn iso8601_micros(text: &str) -> u64 {
    let b = text.as_bytes();
    assert_eq!(b.len(), 27, "ISO-8601 with microseconds: {text}");
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16], b[19], b[26]),
        (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
        "{text}"
    );
    let n = |from: usize, to: usize| text[from..to].parse::<i64>().expect(text);
    let (year, month, day) = (n(0, 4), n(5, 7), n(8, 10));
    // Days since 1970-01-01 (proleptic Gregorian calendar).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    (seconds * 1_000_000 + n(20, 26)) as u64
}
