//! The disk spool (`LANGFUSE_SPOOL_DIR`) across processes: with the backend down, a program
//! records and exits, its spans kept on disk; with the backend up again, the next start sends
//! them first, exactly once, even when two processes share the directory; a corrupt file is
//! moved aside with a warning.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use observe_runtime::{span, stats, Config, FlushError};

use support::{child_mode, run_child_with, FakeLangfuse, ReceivedSpan};

const PUBLIC_KEY: &str = "pk-lf-spool";
const SECRET_KEY: &str = "sk-lf-spool";
const SPOOL_ENV: &str = "OBSERVE_TEST_SPOOL_DIR";
const BASE_URL_ENV: &str = "OBSERVE_TEST_BASE_URL";
const NAME_ENV: &str = "OBSERVE_TEST_TRACE_NAME";
const TEST: &str = "spooled_spans_of_a_run_with_the_backend_down_arrive_once_at_the_next_starts";

fn spool_dir(name: &str) -> PathBuf {
    support::temp_dir(&format!("spool-{name}"))
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A child's configuration: the server and spool directory the parent passes, exports only when
/// asked, and this shutdown timeout.
fn child_config(shutdown_timeout: Duration) -> Config {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is passed"));
    Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(var(BASE_URL_ENV))
        .spool_dir(var(SPOOL_ENV))
        .flush_interval(Duration::from_secs(60))
        .timeout(Duration::from_secs(2))
        .shutdown_timeout(shutdown_timeout)
}

/// The child: records one trace of three spans named after `NAME_ENV`, then shuts down.
fn record_and_exit() {
    let name = std::env::var(NAME_ENV).expect("the parent passes the trace name");
    let guard = child_config(Duration::from_millis(1500))
        .init()
        .expect("init");
    {
        let _root = span(format!("{name}-root")).start();
        span(format!("{name}-a")).start().end();
        span(format!("{name}-b")).start().end();
    }
    let _ = guard.shutdown();
    let stats = stats();
    // The accounting the child can check itself: every span delivered or kept, none lost.
    assert_eq!(stats.spans_created, 3, "{stats:?}");
    assert_eq!(stats.spans_dropped(), 0, "{stats:?}");
    assert_eq!(
        stats.spans_exported + stats.spans_spooled,
        3,
        "delivered or spooled: {stats:?}"
    );
    eprintln!(
        "child stats: exported={} spooled={} from_spool={} corrupt={}",
        stats.spans_exported,
        stats.spans_spooled,
        stats.spans_exported_from_spool,
        stats.spool_files_corrupt
    );
}

fn child(name: &str, base_url: &str, dir: &Path) -> Command {
    let mut command = support::child_command(TEST, "record");
    command
        .env(NAME_ENV, name)
        .env(BASE_URL_ENV, base_url)
        .env(SPOOL_ENV, dir);
    command
}

/// Runs one child to its end; returns its stderr.
fn run(name: &str, base_url: &str, dir: &Path) -> String {
    let output = run_child_with(TEST, "record", Duration::from_secs(60), |command| {
        command
            .env(NAME_ENV, name)
            .env(BASE_URL_ENV, base_url)
            .env(SPOOL_ENV, dir);
    });
    output.assert_success();
    output.stderr
}

fn stat_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("child stats:"))
        .unwrap_or_else(|| panic!("no stats in:\n{stderr}"))
}

#[test]
fn spooled_spans_of_a_run_with_the_backend_down_arrive_once_at_the_next_starts() {
    if child_mode().as_deref() == Some("record") {
        record_and_exit();
        return;
    }
    if child_mode().is_some() {
        return;
    }
    let _serial = support::serial();
    let dir = spool_dir("once");

    // The backend is down: four runs record and exit; their spans stay in the spool.
    let down = support::refusing_base_url();
    for run_number in 1..=4 {
        let stderr = run(&format!("down{run_number}"), &down, &dir);
        assert_eq!(
            stat_line(&stderr),
            "child stats: exported=0 spooled=3 from_spool=0 corrupt=0",
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "3 span(s) were not delivered before the shutdown deadline; they were written to \
                 the spool directory and are sent at the next start"
            ),
            "{stderr}"
        );
    }
    let spooled = files(&dir);
    assert_eq!(spooled.len(), 4, "{spooled:?}");
    assert!(spooled.iter().all(|n| n.ends_with(".batch")), "{spooled:?}");

    // A corrupt file among them is moved aside, not sent, not fatal.
    std::fs::write(dir.join("00000000000000000001-1-0.batch"), b"half a batch").unwrap();

    // The backend is up: two processes start at once on the same directory.
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let base_url = server.base_url();
    let children: Vec<_> = ["up1", "up2"]
        .iter()
        .map(|name| child(name, &base_url, &dir).spawn().expect("spawn a child"))
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("the child ends"))
        .collect();
    let mut from_spool = 0;
    let mut corrupt = 0;
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let line = stat_line(&stderr).to_string();
        let field = |key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{key} in {line}"))
        };
        assert_eq!(field("exported="), 3, "{line}");
        from_spool += field("from_spool=");
        corrupt += field("corrupt=");
    }
    assert_eq!(from_spool, 12, "the two share the twelve spooled spans");
    assert_eq!(corrupt, 1, "one of them found the corrupt file");
    let all_stderr: String = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(
        all_stderr.contains(
            "is unreadable (it does not start with a spool header); it was moved aside as"
        ),
        "{all_stderr}"
    );

    let spans = server.wait_for_spans(18, Duration::from_secs(20));
    // Nothing more comes (a second copy of a spooled batch).
    support::wait_until_quiet(&server, || {});
    let accepted = server.accepted_spans();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for span in &accepted {
        *copies.entry(span.name().to_string()).or_insert(0) += 1;
    }
    let expected: BTreeMap<String, usize> = ["down1", "down2", "down3", "down4", "up1", "up2"]
        .iter()
        .flat_map(|run| ["root", "a", "b"].map(|s| (format!("{run}-{s}"), 1)))
        .collect();
    assert_eq!(copies, expected, "every span arrives exactly once");
    assert_eq!(spans.len(), 18);

    // Trees are whole: each spooled child still hangs under its root.
    for run in ["down1", "down4"] {
        let root = support::by_name(&accepted, &format!("{run}-root"));
        for child in ["a", "b"] {
            let child = support::by_name(&accepted, &format!("{run}-{child}"));
            assert_eq!(child.parent_span_id(), root.span_id(), "{}", child.name());
            assert_eq!(child.trace_id(), root.trace_id());
        }
    }
    // Spooled batches went before each process's own spans.
    let requests = server.requests();
    let first_own = requests
        .iter()
        .position(|r| r.spans().iter().any(|s| s.name().starts_with("up")))
        .expect("a request with the new spans");
    let spooled_after: usize = requests[first_own..]
        .iter()
        .flat_map(|r| r.spans())
        .filter(|s: &ReceivedSpan| s.name().starts_with("down"))
        .count();
    assert!(
        spooled_after <= 6,
        "each process sends the spool before its own spans (at most the other process's share \
         comes later): {spooled_after}"
    );

    let left = files(&dir);
    assert_eq!(left, ["00000000000000000001-1-0.batch.corrupt"], "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_spool_directory_is_an_init_error_naming_the_variable() {
    let _serial = support::serial();
    let file = spool_dir("not-a-dir").join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let dir = file.join("spool");
    let error = Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(support::refusing_base_url())
        .spool_dir(&dir)
        .init()
        .map(drop)
        .expect_err("a spool under a plain file cannot be created");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "LANGFUSE_SPOOL_DIR={:?} is not valid: the spool directory {} cannot be created: ",
            dir.display().to_string(),
            dir.display()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("; set a directory this process can write"),
        "{text}"
    );
}

#[test]
fn a_spool_cap_too_small_for_one_batch_is_refused() {
    let _serial = support::serial();
    let error = Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .spool_dir(spool_dir("cap"))
        .spool_max_bytes(1000)
        .init()
        .map(drop)
        .expect_err("a 1000-byte cap");
    assert_eq!(
        error.to_string(),
        "LANGFUSE_SPOOL_MAX_BYTES=\"1000\" is not valid: expected a number of bytes of at least \
         65536, such as 104857600 (100 MiB)"
    );
    let from_env = Config::from_vars([
        ("LANGFUSE_PUBLIC_KEY", PUBLIC_KEY),
        ("LANGFUSE_SECRET_KEY", SECRET_KEY),
        ("LANGFUSE_SPOOL_MAX_BYTES", "64k"),
    ])
    .init()
    .map(drop)
    .expect_err("not a number");
    assert_eq!(
        from_env.to_string(),
        "LANGFUSE_SPOOL_MAX_BYTES=\"64k\" is not valid: expected a number of bytes of at least \
         65536, such as 104857600 (100 MiB)"
    );
}

const RETRIES_TEST: &str = "a_batch_whose_retries_run_out_is_spooled_and_sent_by_the_next_start";

/// The child of the retries test: records a trace against a server that always answers 503,
/// flushes (the retries run out, the batch goes to the spool), then shuts down with nothing left.
fn record_until_the_retries_run_out() {
    let guard = child_config(Duration::from_secs(60)).init().expect("init");
    {
        let _root = span("retried-root").start();
        observe_runtime::current_observation()
            .input(serde_json::json!({"image": observe_runtime::Media::new(PNG, "image/png")}));
        span("retried-child").start().end();
    }
    let flushed = guard.flush();
    assert_eq!(
        flushed,
        Err(FlushError::ExportFailed {
            reason: format!(
                "export to {}/api/public/otel/v1/traces failed after 6 attempt(s): HTTP 503: \
                 Service Unavailable",
                std::env::var(BASE_URL_ENV).expect("the parent passes the server URL"),
            )
        }),
        "nothing was delivered: the retries ran out"
    );
    let stats = stats();
    assert_eq!(
        (
            stats.spans_spooled,
            stats.spans_exported,
            stats.spans_dropped()
        ),
        (2, 0, 0),
        "{stats:?}"
    );
    assert_eq!(
        stats.requests_failed, 6,
        "six attempts, each a 503: {stats:?}"
    );
    assert_eq!(
        (stats.media_uploaded, stats.media_failed),
        (0, 1),
        "the image's registration got 503 three times: {stats:?}"
    );
    guard.shutdown().expect("nothing is left to send");
}

/// The retries run out while the program runs (not at shutdown): the batch is spooled, and the
/// next start sends it once.
#[test]
fn a_batch_whose_retries_run_out_is_spooled_and_sent_by_the_next_start() {
    if child_mode().as_deref() == Some("retries") {
        record_until_the_retries_run_out();
        return;
    }
    if child_mode().is_some() {
        return;
    }
    let _serial = support::serial();
    let dir = spool_dir("retries");
    let failing = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    failing.set_default_fault(Some(support::Fault::service_unavailable()));
    failing.set_default_media_fault(Some(support::Fault::service_unavailable()));
    let output = run_child_with(
        RETRIES_TEST,
        "retries",
        Duration::from_secs(120),
        |command| {
            command
                .env(BASE_URL_ENV, failing.base_url())
                .env(SPOOL_ENV, &dir);
        },
    );
    output.assert_success();
    assert!(
        output.stderr.contains(
            "2 span(s) were not delivered (export to "
        ) && output.stderr.contains(
            "failed after 6 attempt(s): HTTP 503: Service Unavailable); they were written to the \
             spool directory and are sent by a later round or the next start"
        ),
        "{}",
        output.stderr
    );
    assert_eq!(failing.trace_requests().len(), 6);
    assert_eq!(failing.media_registration_count(), 3);
    assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));

    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let stderr = run("next", &server.base_url(), &dir);
    assert_eq!(
        stat_line(&stderr),
        "child stats: exported=3 spooled=0 from_spool=2 corrupt=0",
        "{stderr}"
    );
    let spans = server.wait_for_spans(5, Duration::from_secs(20));
    let mut names: Vec<&str> = spans.iter().map(ReceivedSpan::name).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "next-a",
            "next-b",
            "next-root",
            "retried-child",
            "retried-root"
        ]
    );
    // The image went to the spool with the batch, and was uploaded before it was sent again.
    let root = support::by_name(&spans, "retried-root");
    assert_eq!(
        root.json_attr("langfuse.observation.input"),
        Some(serde_json::json!({
            "image": format!("@@@langfuseMedia:type=image/png|id={PNG_ID}|source=base64_data_uri@@@")
        }))
    );
    let record = server.media_record(PNG_ID).expect("the image's record");
    assert_eq!(
        record["registrations"],
        serde_json::json!([{
            "traceId": root.trace_id(),
            "observationId": root.span_id(),
            "field": "input",
        }])
    );
    assert_eq!(server.uploaded_bytes(PNG_ID).as_deref(), Some(PNG));
    assert!(files(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

const MEDIA_TEST: &str = "the_media_of_a_spooled_batch_are_uploaded_when_it_is_sent_again";
/// Computed with Python's hashlib for `PNG`.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nspooled image";
const PNG_SHA256: &str = "J/sf1MfiLw3nHkz1V00Q1YfWF9OvQqhLMPW0fha97fE=";
const PNG_ID: &str = "J_sf1MfiLw3nHkz1V00Q1Y";

/// The child of the media test: with `NAME_ENV` set, records a generation with an image; then
/// shuts down and prints its media counts.
fn record_an_image_and_exit() {
    #[observe_runtime::observe(as_type = "generation")]
    fn look(image: observe_runtime::Media) -> &'static str {
        let _ = image;
        "a cat"
    }
    let guard = child_config(Duration::from_millis(1500))
        .init()
        .expect("init");
    if std::env::var(NAME_ENV).is_ok() {
        look(observe_runtime::Media::new(PNG, "image/png"));
    }
    let _ = guard.shutdown();
    let stats = stats();
    eprintln!(
        "child stats: spooled={} from_spool={} media_uploaded={} media_failed={} \
         media_bytes_uploaded={}",
        stats.spans_spooled,
        stats.spans_exported_from_spool,
        stats.media_uploaded,
        stats.media_failed,
        stats.media_bytes_uploaded
    );
}

/// The backend is down when a generation with an image ends: the batch goes to the spool with
/// the image's bytes; a start while it is still down leaves both there; the next start with the
/// backend up registers, uploads and reports the image before it sends the span that refers
/// to it.
#[test]
fn the_media_of_a_spooled_batch_are_uploaded_when_it_is_sent_again() {
    if child_mode().as_deref() == Some("media") {
        record_an_image_and_exit();
        return;
    }
    if child_mode().is_some() {
        return;
    }
    let _serial = support::serial();
    let dir = spool_dir("media");
    let down = support::refusing_base_url();
    let output = run_child_with(MEDIA_TEST, "media", Duration::from_secs(60), |command| {
        command
            .env(NAME_ENV, "down")
            .env(BASE_URL_ENV, &down)
            .env(SPOOL_ENV, &dir);
    });
    output.assert_success();
    assert_eq!(
        stat_line(&output.stderr),
        "child stats: spooled=1 from_spool=0 media_uploaded=0 media_failed=1 \
         media_bytes_uploaded=0",
        "{}",
        output.stderr
    );
    assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));

    // Still down at the next start: the batch stays with its image, whose failure is not
    // counted again.
    let output = run_child_with(MEDIA_TEST, "media", Duration::from_secs(60), |command| {
        command.env(BASE_URL_ENV, &down).env(SPOOL_ENV, &dir);
    });
    output.assert_success();
    assert_eq!(
        stat_line(&output.stderr),
        "child stats: spooled=0 from_spool=0 media_uploaded=0 media_failed=0 \
         media_bytes_uploaded=0",
        "{}",
        output.stderr
    );
    assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));

    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let output = run_child_with(MEDIA_TEST, "media", Duration::from_secs(60), |command| {
        command
            .env(BASE_URL_ENV, server.base_url())
            .env(SPOOL_ENV, &dir);
    });
    output.assert_success();
    assert_eq!(
        stat_line(&output.stderr),
        format!(
            "child stats: spooled=0 from_spool=1 media_uploaded=1 media_failed=0 \
             media_bytes_uploaded={}",
            PNG.len()
        ),
        "{}",
        output.stderr
    );
    let spans = server.wait_for_spans(1, Duration::from_secs(20));
    let span = &spans[0];
    assert_eq!(span.name(), "look");
    assert_eq!(
        span.json_attr("langfuse.observation.input"),
        Some(serde_json::json!({
            "image": format!("@@@langfuseMedia:type=image/png|id={PNG_ID}|source=bytes@@@")
        }))
    );
    // Registered, uploaded and reported, in that order, before the span was sent.
    let requests = server.requests();
    let steps: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        steps,
        [
            ("POST".to_string(), "/api/public/media".to_string()),
            ("PUT".to_string(), format!("/upload/{PNG_ID}")),
            ("PATCH".to_string(), format!("/api/public/media/{PNG_ID}")),
            ("POST".to_string(), "/api/public/otel/v1/traces".to_string()),
        ]
    );
    let record = server.media_record(PNG_ID).expect("the image's record");
    assert_eq!(record["sha256Hash"], serde_json::json!(PNG_SHA256));
    assert_eq!(record["contentType"], serde_json::json!("image/png"));
    assert_eq!(
        record["registrations"],
        serde_json::json!([{
            "traceId": span.trace_id(),
            "observationId": span.span_id(),
            "field": "input",
        }])
    );
    assert_eq!(record["patch"]["uploadHttpStatus"], serde_json::json!(200));
    assert_eq!(server.uploaded_bytes(PNG_ID).as_deref(), Some(PNG));
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}
