//! The secret key never shows: not in `Debug` of the configuration, not in errors, not in what the
//! SDK writes to stderr with `LANGFUSE_DEBUG=true` while the server refuses the keys, and not when
//! it is written into a URL. A child process runs each case with a known secret; the parent reads
//! everything it printed.

mod support;

use std::time::Duration;

use observe_runtime::{span, Config};
use support::{base64_encode, child_mode, FakeLangfuse};

const PUBLIC_KEY: &str = "pk-lf-known-public";
/// The secret the child is configured with; its middle must never be printed.
const SECRET_KEY: &str = "sk-lf-MIDDLEOFTHESECRET-7a1c";
const SECRET_MIDDLE: &str = "MIDDLEOFTHESECRET";
/// A password written into a base URL.
const URL_PASSWORD: &str = "URLPASSWORD-b33f";

/// The child's part: every case prints what a user would see.
fn child() {
    let config = Config::from_env();
    eprintln!("config: {config:?}");

    // 1. The server refuses the keys (401), with debug output on.
    let guard = config.init().expect("init");
    {
        let _root = span("refused").start();
        span("child").start().end();
    }
    let flushed = guard.flush();
    eprintln!("flush: {flushed:?}");
    if let Err(error) = &flushed {
        eprintln!("flush error: {error}");
    }
    let checked = observe_runtime::auth_check();
    eprintln!("auth_check: {checked:?}");
    if let Err(error) = &checked {
        eprintln!("auth_check error: {error}");
    }
    eprintln!("stats: {:?}", observe_runtime::stats());
    let report = guard.shutdown();
    eprintln!("shutdown: {report:?}");

    // 2. Credentials in the base URL, and the secret in OTLP headers.
    let base_url = std::env::var("LANGFUSE_BASE_URL").expect("the fake server's URL");
    let with_password = base_url.replacen("://", &format!("://admin:{URL_PASSWORD}@"), 1);
    for config in [
        Config::from_env().base_url(with_password.clone()),
        Config::default().otlp_endpoint(format!("{with_password}/v1/traces")),
        Config::default()
            .otlp_endpoint(format!("{base_url}/v1/traces"))
            .otlp_header("Authorization", format!("Bearer {SECRET_KEY}")),
    ] {
        eprintln!("config: {config:?}");
        match config.init() {
            Ok(guard) => {
                eprintln!("init: accepted");
                drop(guard);
            }
            Err(error) => eprintln!("init error: {error}\ninit error (debug): {error:?}"),
        }
    }
}

#[test]
fn the_secret_key_never_appears_in_output_errors_or_debug() {
    if child_mode().as_deref() == Some("print-everything") {
        child();
        return;
    }
    let _serial = support::serial();
    // The server knows other keys: every request is refused with 401.
    let server = FakeLangfuse::start(PUBLIC_KEY, "sk-lf-the-server-knows-another");
    let base_url = server.base_url();
    let output = child_test!(
        "print-everything",
        &[
            ("LANGFUSE_PUBLIC_KEY", PUBLIC_KEY),
            ("LANGFUSE_SECRET_KEY", SECRET_KEY),
            ("LANGFUSE_BASE_URL", &base_url),
            ("LANGFUSE_DEBUG", "true"),
            ("LANGFUSE_TIMEOUT", "5"),
            ("LANGFUSE_SHUTDOWN_TIMEOUT", "10"),
        ],
        Duration::from_secs(60),
    );
    output.assert_success();
    let printed = format!("{}\n{}", output.stdout, output.stderr);

    // Every case ran and said something.
    for expected in [
        "HTTP 401",
        "auth_check error:",
        "sk-lf-…7a1c",
        "LANGFUSE_BASE_URL=\"http://***@127.0.0.1:",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=\"http://***@127.0.0.1:",
        "init: accepted",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing in:\n{printed}"
        );
    }
    assert_eq!(
        server.trace_requests().len(),
        1,
        "the refused export was sent, once"
    );
    // Nothing secret did.
    let basic = base64_encode(format!("{PUBLIC_KEY}:{SECRET_KEY}").as_bytes());
    for secret in [SECRET_KEY, SECRET_MIDDLE, URL_PASSWORD, basic.as_str()] {
        assert!(
            !printed.contains(secret),
            "{secret:?} was printed:\n{printed}"
        );
    }
}
