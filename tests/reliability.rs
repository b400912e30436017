//! The reliability table: every exit path, backend fault, outage plus restart, load, bad input and
//! the secret key, each run as its own process against the fake Langfuse server, with what is
//! checked and the figures measured (spans recorded, received, duplicates, time to exit).
//!
//! Every run checks its row and fails on a regression. The table is written to
//! `<target>/tmp/RELIABILITY.md`; `OBSERVE_WRITE_RELIABILITY=1 cargo test --test reliability`
//! writes it to `RELIABILITY.md` at the repository root.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use observe_runtime::{span, stats, Config};
use support::{child_mode, run_child_with, ChildOutput, FakeLangfuse, Fault};

const PUBLIC_KEY: &str = "pk-lf-reliability";
/// The secret every case runs with; it must never appear in what a child prints.
const SECRET_KEY: &str = "sk-lf-reliability-5ecret-d0-not-print";
const BASE_URL_ENV: &str = "OBSERVE_TEST_BASE_URL";
const SPOOL_ENV: &str = "OBSERVE_TEST_SPOOL_DIR";
const CHILD: &str = "reliability_child";
/// Spans of the one trace most cases record: a root and nine children.
const TRACE_SPANS: usize = 10;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);
const LOAD_THREADS: usize = 8;
const LOAD_SPANS_PER_THREAD: usize = 20_000;

// ------------------------------------------------------------------------------ the child

/// Records the one trace and returns its id.
fn one_trace() -> String {
    let _root = span("root").start();
    for i in 0..TRACE_SPANS - 1 {
        span(format!("child-{i}")).start().end();
    }
    observe_runtime::current_trace_id()
        .expect("the root is recorded")
        .to_string()
}

/// Peak resident memory of this process in KiB (Linux), else 0.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn report() {
    let s = stats();
    eprintln!(
        "reliability-stats created={} exported={} dropped={} dropped_queue_full={} spooled={} \
         unanswered={} from_spool={} peak_rss_kib={}",
        s.spans_created,
        s.spans_exported,
        s.spans_dropped(),
        s.spans_dropped_queue_full,
        s.spans_spooled,
        s.spans_unanswered,
        s.spans_exported_from_spool,
        peak_rss_kib()
    );
}

/// The child's part: one scenario, chosen by the mode. Run by `reliability_table` in a child
/// process, never alone.
#[test]
#[ignore = "the child process of reliability_table; it runs it"]
fn reliability_child() {
    let mode = child_mode().expect("run by reliability_table, with OBSERVE_TEST_CHILD_MODE set");
    let var = |name: &str| std::env::var(name).ok();
    let mut config = Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(var(BASE_URL_ENV).expect("the parent passes the server URL"))
        .flush_interval(Duration::from_secs(60))
        .timeout(Duration::from_secs(1))
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .debug(mode == "secrets");
    if let Some(dir) = var(SPOOL_ENV) {
        config = config.spool_dir(dir);
    }
    let guard = config.init().expect("init");
    match mode.as_str() {
        "exit-inside" => {
            let _root = span("root").start();
            for i in 0..TRACE_SPANS - 1 {
                span(format!("child-{i}")).start().end();
            }
            std::process::exit(0);
        }
        "panic-main" => {
            let _root = span("root").start();
            for i in 0..TRACE_SPANS - 1 {
                span(format!("child-{i}")).start().end();
            }
            panic!("the program failed");
        }
        "thread-panic" => {
            let worker = std::thread::spawn(|| {
                let _root = span("root").start();
                for i in 0..TRACE_SPANS - 1 {
                    span(format!("child-{i}")).start().end();
                }
                panic!("the worker failed");
            });
            assert!(worker.join().is_err());
            drop(guard);
            report();
        }
        "forgotten-guard" => {
            one_trace();
            std::mem::forget(guard); // the exit hook flushes when the process ends
        }
        "load" => {
            let threads: Vec<_> = (0..LOAD_THREADS)
                .map(|t| {
                    std::thread::spawn(move || {
                        for i in 0..LOAD_SPANS_PER_THREAD / 10 {
                            let _root = span(format!("load-{t}-{i}")).start();
                            for _ in 0..9 {
                                span("work").start().end();
                            }
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            drop(guard);
            report();
        }
        "big-field" => {
            {
                let _root = span("root").input("x\"y\\".repeat(1_500_000)).start();
            }
            drop(guard);
            report();
        }
        _ => {
            let trace = one_trace();
            drop(guard);
            report();
            eprintln!("reliability-trace {trace}");
        }
    }
}

// ----------------------------------------------------------------------------- the parent

struct Run {
    output: ChildOutput,
    took: Duration,
    stats: BTreeMap<String, u64>,
}

impl Run {
    /// The id of the one trace the child recorded (the modes that end normally).
    fn trace_id(&self) -> String {
        self.output
            .stderr
            .lines()
            .find_map(|line| line.strip_prefix("reliability-trace "))
            .unwrap_or_else(|| panic!("no trace id in:\n{}", self.output.stderr))
            .to_string()
    }

    fn stat(&self, key: &str) -> u64 {
        *self
            .stats
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in:\n{}", self.output.stderr))
    }
}

fn run(mode: &str, base_url: &str, spool: Option<&Path>) -> Run {
    let started = Instant::now();
    let output = run_child_with(CHILD, mode, Duration::from_secs(120), |command| {
        command.env(BASE_URL_ENV, base_url);
        if let Some(dir) = spool {
            command.env(SPOOL_ENV, dir);
        }
    });
    let took = started.elapsed();
    let stats = output
        .stderr
        .lines()
        .find_map(|line| line.strip_prefix("reliability-stats "))
        .map(|line| {
            line.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !output.stderr.contains(SECRET_KEY) && !output.stdout.contains(SECRET_KEY),
        "{mode}: the secret key was printed:\n{}",
        output.stderr
    );
    Run {
        output,
        took,
        stats,
    }
}

/// Distinct spans accepted, and copies beyond the first.
fn received(server: &FakeLangfuse) -> (usize, usize) {
    let spans = server.accepted_spans();
    let mut ids: Vec<String> = spans.iter().map(|s| s.span_id()).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    (ids.len(), total - ids.len())
}

/// Waits until `count` spans arrived (or a few seconds passed) and nothing more comes.
fn settle(server: &FakeLangfuse, count: usize) -> (usize, usize) {
    server.wait_for_spans(count, Duration::from_secs(10));
    support::wait_until_quiet(server, || {});
    received(server)
}

/// The "checked" text of a row: a template whose `{}` are measured figures (free to vary between
/// runs), and the figures.
struct Checked {
    template: String,
    figures: Vec<String>,
}

impl Checked {
    /// A claim with no measured figure in it.
    fn fixed(text: impl Into<String>) -> Self {
        Self {
            template: text.into(),
            figures: Vec::new(),
        }
    }

    fn measured(template: impl Into<String>, figures: &[&dyn std::fmt::Display]) -> Self {
        let template = template.into();
        assert_eq!(template.matches("{}").count(), figures.len(), "{template}");
        Self {
            template,
            figures: figures.iter().map(ToString::to_string).collect(),
        }
    }

    fn text(&self) -> String {
        let mut parts = self.template.split("{}");
        let mut text = parts.next().unwrap_or_default().to_string();
        for (figure, part) in self.figures.iter().zip(parts) {
            text.push_str(figure);
            text.push_str(part);
        }
        text
    }
}

/// Whether `text` is `template` with each `{}` replaced by a figure (digits, `.` and `,`).
fn fits_template(template: &str, text: &str) -> bool {
    let mut parts = template.split("{}");
    let Some(rest) = text.strip_prefix(parts.next().unwrap_or_default()) else {
        return false;
    };
    let mut rest = rest;
    for part in parts {
        let figure = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .unwrap_or(rest.len());
        if figure == 0 {
            return false;
        }
        match rest[figure..].strip_prefix(part) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

struct Row {
    area: &'static str,
    case: String,
    checked: Checked,
    recorded: String,
    received: usize,
    duplicates: usize,
    took: Duration,
}

impl Row {
    fn line(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {:.2} s |",
            self.area,
            self.case,
            self.checked.text(),
            self.recorded,
            self.received,
            self.duplicates,
            self.took.as_secs_f64()
        )
    }
}

const TABLE_HEAD: &str = "| area | case | checked | spans recorded | received | duplicates | \
                          time to exit |\n|---|---|---|---|---|---|---|\n";

/// The document: a fixed introduction, the table, and what is not in it.
fn document(rows: &[Row]) -> String {
    let mut text = String::from(
        "# Reliability\n\n\
         Each row is one process run against a fake Langfuse server on 127.0.0.1 (a real HTTP \
         server that decodes with the official OpenTelemetry messages). The figures are those of \
         the last run of `OBSERVE_WRITE_RELIABILITY=1 cargo test --test reliability`, which \
         regenerates this file. Every `cargo test` run asserts each claim of the \"checked\" \
         column, and compares this file with what it measured: a row, a case or a \"checked\" \
         text that differs fails the run (the measured figures may vary). The secret key of \
         every run is checked to appear nowhere in its output.\n\n\
         Time to exit is the child process's wall time, start-up included (a debug build).\n\n",
    );
    text.push_str(TABLE_HEAD);
    for row in rows {
        text.push_str(&row.line());
        text.push('\n');
    }
    text.push_str(
        "\nNot in the table, and why:\n\n\
         - Observations open on other threads at `exit` or at an abort are not reachable (the \
         stack of open observations is per thread); what finished under them is sent \
         (`tests/exit_paths.rs`).\n\
         - A panic under `panic = \"abort\"` is covered by `tests/exit_paths.rs`, which builds a \
         probe with the workspace's `abort` profile.\n\
         - SIGTERM and SIGINT with `LANGFUSE_FLUSH_ON_SIGNALS` are covered by `tests/signals.rs`.\n",
    );
    text
}

/// Where the committed document differs from this run: every line outside the table must be
/// the same; each row must have the same area, case and spans recorded, and a "checked" text
/// that fits this run's template (figures may vary); received, duplicates and time are figures.
fn differences(committed: &str, rows: &[Row]) -> Vec<String> {
    let expected = document(rows);
    let is_row = |line: &str| line.starts_with("| ") && !line.starts_with("| area |");
    let committed_rows: Vec<&str> = committed.lines().filter(|l| is_row(l)).collect();
    let mut found = Vec::new();
    let prose = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !is_row(l))
            .map(str::to_owned)
            .collect()
    };
    if prose(committed) != prose(&expected) {
        found.push("the text around the table differs".to_string());
    }
    if committed_rows.len() != rows.len() {
        found.push(format!(
            "{} rows committed, {} measured",
            committed_rows.len(),
            rows.len()
        ));
    }
    for (row, line) in rows.iter().zip(&committed_rows) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let fits = cells.len() == 7
            && cells[0] == row.area
            && cells[1] == row.case
            && fits_template(&row.checked.template, cells[2])
            && cells[3] == row.recorded
            && fits_template("{}", cells[4])
            && fits_template("{}", cells[5])
            && fits_template("{} s", cells[6]);
        if !fits {
            found.push(format!("committed: {line}\n measured: {}", row.line()));
        }
    }
    found
}

fn spool_dir() -> PathBuf {
    support::temp_dir("reliability-spool")
}

fn statuses(server: &FakeLangfuse) -> Vec<String> {
    server
        .trace_requests()
        .iter()
        .map(|request| format!("{:?}", request.answer))
        .collect()
}

#[test]
fn reliability_table() {
    if child_mode().is_some() {
        return;
    }
    let _serial = support::serial();
    let mut rows = Vec::new();
    let trace = TRACE_SPANS.to_string();

    // Exit paths: the one trace arrives whole, once, however the process ends.
    for (mode, case, checked) in [
        (
            "normal",
            "guard dropped at the end of `main`",
            "all spans, once",
        ),
        (
            "exit-inside",
            "`std::process::exit` inside the open root",
            "all spans once; the open root ended with WARNING",
        ),
        (
            "panic-main",
            "panic in `main` (unwinding) inside the root",
            "all spans once; the root is ERROR with the panic message",
        ),
        (
            "thread-panic",
            "a thread panics inside its root",
            "all spans once; the root is ERROR with the panic message",
        ),
        (
            "forgotten-guard",
            "`mem::forget(guard)`, then `main` returns",
            "all spans once (the exit hook flushes)",
        ),
    ] {
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        let run = run(mode, &server.base_url(), None);
        let (unique, duplicates) = settle(&server, TRACE_SPANS);
        assert_eq!((unique, duplicates), (TRACE_SPANS, 0), "{mode}");
        let root = support::by_name(&server.accepted_spans(), "root").clone();
        let level = root
            .str_attr("langfuse.observation.level")
            .map(str::to_owned);
        let message = root
            .str_attr("langfuse.observation.status_message")
            .map(str::to_owned);
        match mode {
            "exit-inside" => assert_eq!(level.as_deref(), Some("WARNING")),
            "panic-main" => {
                assert_eq!(level.as_deref(), Some("ERROR"));
                assert_eq!(message.as_deref(), Some("the program failed"), "{mode}");
            }
            "thread-panic" => {
                assert_eq!(level.as_deref(), Some("ERROR"));
                assert_eq!(message.as_deref(), Some("the worker failed"), "{mode}");
            }
            _ => assert_eq!((level, message), (None, None), "{mode}"),
        }
        rows.push(Row {
            area: "exit",
            case: case.into(),
            checked: Checked::fixed(checked),
            recorded: trace.clone(),
            received: unique,
            duplicates,
            took: run.took,
        });
    }

    // Backend faults: what a retry can fix arrives once; what it cannot ends within the
    // shutdown timeout, counted.
    for (case, faults, answers, checked) in [
        (
            "503 once, then healthy",
            vec![Fault::service_unavailable()],
            ["Status(503)", "Status(200)"],
            "all spans once after one retry",
        ),
        (
            "429 with `Retry-After: 1`",
            vec![Fault::too_many_requests(1)],
            ["Status(429)", "Status(200)"],
            "all spans once, after the server's wait",
        ),
        (
            "connection dropped without an answer, once",
            vec![Fault::DropConnection],
            ["Dropped", "Status(200)"],
            "all spans once",
        ),
    ] {
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        server.script(faults);
        let run = run("normal", &server.base_url(), None);
        let (unique, duplicates) = settle(&server, TRACE_SPANS);
        assert_eq!((unique, duplicates), (TRACE_SPANS, 0), "{case}");
        assert_eq!(run.stat("exported"), TRACE_SPANS as u64, "{case}");
        assert_eq!(statuses(&server), answers, "{case}: one retry");
        if answers[0] == "Status(429)" {
            let requests = server.trace_requests();
            let wait = requests[1].arrived.duration_since(requests[0].arrived);
            // A lower bound only (the retry came no sooner than asked, less clock rounding).
            assert!(
                wait >= Duration::from_millis(900),
                "Retry-After: 1 is waited for: the retry came after {wait:?}"
            );
        }
        rows.push(Row {
            area: "backend",
            case: case.into(),
            checked: Checked::fixed(checked),
            recorded: trace.clone(),
            received: unique,
            duplicates,
            took: run.took,
        });
    }
    let bound = SHUTDOWN_TIMEOUT + Duration::from_secs(10);
    {
        let down = support::refusing_base_url();
        let run = run("normal", &down, None);
        assert_eq!(
            (run.stat("dropped"), run.stat("exported")),
            (TRACE_SPANS as u64, 0)
        );
        assert!(run.took < bound, "backend down: {:?}", run.took);
        rows.push(Row {
            area: "backend",
            case: "backend down (connection refused) for the whole run".into(),
            checked: Checked::fixed(format!(
                "exit within the shutdown timeout ({}s) plus start-up; all {TRACE_SPANS} counted \
                 as dropped",
                SHUTDOWN_TIMEOUT.as_secs()
            )),
            recorded: trace.clone(),
            received: 0,
            duplicates: 0,
            took: run.took,
        });
    }
    {
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        server.set_default_fault(Some(Fault::Hang));
        let run = run("normal", &server.base_url(), None);
        let copies = server
            .trace_requests()
            .iter()
            .map(|request| request.spans().len())
            .sum::<usize>();
        assert!(run.took < bound, "a hanging server: {:?}", run.took);
        assert_eq!(run.stat("exported"), 0, "never counted as sent");
        assert_eq!(
            run.stat("unanswered") + run.stat("dropped"),
            TRACE_SPANS as u64
        );
        assert!(
            (1..=3 * TRACE_SPANS).contains(&copies),
            "at least one copy, at most 3 per span: {copies}"
        );
        rows.push(Row {
            area: "backend",
            case: "server that never answers".into(),
            checked: Checked::measured(
                "exit bounded; spans counted as unanswered or dropped, never as sent; {} copies \
                 reached the server (at most 3 per span)",
                &[&copies],
            ),
            recorded: trace.clone(),
            received: 0,
            duplicates: 0,
            took: run.took,
        });
    }
    {
        let server = FakeLangfuse::start(PUBLIC_KEY, "sk-lf-another-project");
        let run = run("secrets", &server.base_url(), None);
        let messages: Vec<&str> = run
            .output
            .stderr
            .lines()
            .filter(|line| {
                line.starts_with("[langfuse] error")
                    && line.contains("rejected the credentials with HTTP 401")
            })
            .collect();
        // One error (the shutdown's summary of what was lost quotes it as the last error).
        assert_eq!(messages.len(), 1, "one message:\n{}", run.output.stderr);
        assert!(
            messages[0].contains(&format!("(base URL {})", server.base_url())),
            "the message names the base URL: {}",
            messages[0]
        );
        rows.push(Row {
            area: "backend",
            case: "wrong keys (401), with `LANGFUSE_DEBUG=true`".into(),
            checked: Checked::fixed(
                "one clear message naming the base URL; the secret key appears nowhere in stderr \
                 or stdout",
            ),
            recorded: trace.clone(),
            received: 0,
            duplicates: 0,
            took: run.took,
        });
    }

    // Outage, then restart with the spool.
    {
        let dir = spool_dir();
        let down = run("normal", &support::refusing_base_url(), Some(&dir));
        assert_eq!(down.stat("spooled"), TRACE_SPANS as u64);
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        let up = run("normal", &server.base_url(), Some(&dir));
        let (unique, duplicates) = settle(&server, 2 * TRACE_SPANS);
        assert_eq!((unique, duplicates), (2 * TRACE_SPANS, 0));
        assert_eq!(up.stat("from_spool"), TRACE_SPANS as u64);
        // Sent first: every request with a span of the first run comes before any with a span
        // of the second.
        let (first, second) = (down.trace_id(), up.trace_id());
        let traces: Vec<Vec<String>> = server
            .trace_requests()
            .iter()
            .map(|request| request.spans().iter().map(|s| s.trace_id()).collect())
            .collect();
        let last_first = traces.iter().rposition(|ids| ids.contains(&first));
        let first_second = traces.iter().position(|ids| ids.contains(&second));
        assert!(
            matches!((last_first, first_second), (Some(a), Some(b)) if a < b),
            "the spooled trace {first} is sent before the new one {second}: {traces:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        rows.push(Row {
            area: "outage",
            case: "backend down for one run, up for the next (`LANGFUSE_SPOOL_DIR`)".into(),
            checked: Checked::fixed(
                "the first run's spans are spooled at its shutdown and sent first by the second, \
                 once",
            ),
            recorded: format!("{TRACE_SPANS} + {TRACE_SPANS}"),
            received: unique,
            duplicates,
            took: down.took + up.took,
        });
    }

    // Load: eight threads flat out against the default queue.
    {
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        let run = run("load", &server.base_url(), None);
        let created = run.stat("created");
        let exported = run.stat("exported");
        let dropped = run.stat("dropped");
        let (unique, duplicates) = received(&server);
        assert_eq!(created, (LOAD_THREADS * LOAD_SPANS_PER_THREAD) as u64);
        assert_eq!(run.stat("unanswered"), 0);
        assert_eq!(created, exported + dropped, "every span is sent or dropped");
        assert_eq!(
            run.stat("dropped_queue_full"),
            dropped,
            "dropped only for a full queue"
        );
        assert_eq!(
            unique as u64, exported,
            "received is what was counted as sent"
        );
        assert_eq!(duplicates, 0);
        // Whole traces: no span arrives without its parent.
        let spans = server.accepted_spans();
        let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id()).collect();
        let orphans = spans
            .iter()
            .filter(|s| !s.parent_span_id().is_empty() && !ids.contains(&s.parent_span_id()))
            .count();
        assert_eq!(orphans, 0, "spans without their parent");
        // Something arrives. The queue admits 8192 spans before it drops a child, so the first
        // traces arrive whole: at least one per thread's worth. Once it is full, children are
        // dropped first and roots still pass: every thread's roots arrive.
        let mut per_trace: BTreeMap<String, usize> = BTreeMap::new();
        for span in &spans {
            *per_trace.entry(span.trace_id()).or_insert(0) += 1;
        }
        let whole = per_trace.values().filter(|&&n| n == TRACE_SPANS).count();
        let partial = per_trace.len() - whole;
        assert!(
            whole >= LOAD_THREADS,
            "at least {LOAD_THREADS} whole traces arrive: {whole}"
        );
        for thread in 0..LOAD_THREADS {
            let prefix = format!("load-{thread}-");
            assert!(
                spans.iter().any(|s| s.name().starts_with(&prefix)),
                "no root of thread {thread} arrived"
            );
        }
        let peak = run.stat("peak_rss_kib");
        assert!(peak < 512 * 1024, "memory stays bounded: peak {peak} KiB");
        rows.push(Row {
            area: "load",
            case: format!(
                "{LOAD_THREADS} threads flat out, {LOAD_SPANS_PER_THREAD} spans each, default \
                 queue"
            ),
            checked: Checked::measured(
                format!(
                    "created = exported + dropped exactly ({{}} + {{}} dropped for a full queue); \
                     received = exported, no span without its parent; {{}} traces arrived whole \
                     (at least {LOAD_THREADS}), {{}} without some of their children (children are \
                     dropped first once the queue is full); a root of every thread arrived; peak \
                     memory {{}} MiB"
                ),
                &[&exported, &dropped, &whole, &partial, &(peak / 1024)],
            ),
            recorded: created.to_string(),
            received: unique,
            duplicates,
            took: run.took,
        });
    }

    // Bad input: a field far over the limit, with characters that need escaping.
    {
        let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
        let run = run("big-field", &server.base_url(), None);
        let (unique, duplicates) = settle(&server, 1);
        let spans = server.accepted_spans();
        let input = support::by_name(&spans, "root")
            .str_attr("langfuse.observation.input")
            .expect("the input")
            .to_string();
        assert!(input.len() <= 1_000_000, "{}", input.len());
        let parsed = serde_json::from_str::<serde_json::Value>(&input);
        assert!(parsed.is_ok(), "not JSON: {parsed:?}");
        rows.push(Row {
            area: "bad input",
            case: "a 6 MB input of quotes and backslashes".into(),
            checked: Checked::measured(
                "sent as valid JSON of {} bytes, within the 1,000,000-byte field limit after \
                 escaping",
                &[&input.len()],
            ),
            recorded: run.stat("created").to_string(),
            received: unique,
            duplicates,
            took: run.took,
        });
    }

    let table = document(&rows);
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("RELIABILITY.md");
    std::fs::write(&out, &table).expect("write the table");
    eprintln!("{table}");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("RELIABILITY.md");
    if std::env::var("OBSERVE_WRITE_RELIABILITY").as_deref() == Ok("1") {
        std::fs::write(&repo, &table).expect("write RELIABILITY.md");
    }
    let committed = std::fs::read_to_string(&repo).expect("read the committed RELIABILITY.md");
    let found = differences(&committed, &rows);
    assert!(
        found.is_empty(),
        "RELIABILITY.md does not match this run (regenerate it with \
         `OBSERVE_WRITE_RELIABILITY=1 cargo test --test reliability` if the change is meant):\n{}",
        found.join("\n")
    );
}

/// The comparison itself: a changed claim, a changed constant, a lost row or a changed text
/// around the table is a difference; other figures are not.
#[test]
fn the_comparison_with_the_committed_table_catches_changes() {
    let row = |checked: Checked, received: usize| Row {
        area: "backend",
        case: "server that never answers".into(),
        checked,
        recorded: "10".into(),
        received,
        duplicates: 0,
        took: Duration::from_millis(3060),
    };
    let template = "spans never sent; {} copies reached the server (at most 3 per span)";
    let measured = [row(Checked::measured(template, &[&20]), 0)];
    let committed = document(&measured);
    assert_eq!(differences(&committed, &measured), Vec::<String>::new());
    // Other figures: not a difference.
    let other_run = [row(Checked::measured(template, &[&1_234]), 7)];
    assert_eq!(differences(&committed, &other_run), Vec::<String>::new());
    // A claim or a constant changed, a row lost, the text around changed: differences.
    let reworded = [row(
        Checked::measured(
            "spans never sent; {} copies reached the server (at most 4 per span)",
            &[&20],
        ),
        0,
    )];
    assert_eq!(differences(&committed, &reworded).len(), 1);
    assert_eq!(differences(&committed, &[]).len(), 1);
    let edited = committed.replace("Not in the table", "Not in this table");
    assert_eq!(differences(&edited, &measured).len(), 1);
    let figure_for_text = committed.replace("20 copies", "many copies");
    assert_eq!(differences(&figure_for_text, &measured).len(), 1);
    assert!(!fits_template("{} s", "s"));
    assert!(fits_template("{} s", "3.06 s"));
}
