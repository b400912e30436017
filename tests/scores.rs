//! Scores as Langfuse sees them: what arrives at the fake server's scores route (both server
//! generations), exactly once under retries, never for a sampled-out trace or a collector, and
//! what the user is told when a score cannot be sent.
//!
//! The client is global to the process: every test holds [`support::serial`] and shuts its
//! client down before it ends.

mod support;

use std::time::{Duration, Instant};

use observe_runtime::{
    current_trace_id, score_current_observation, score_current_trace, score_trace, span, stats,
    Config, Exporter, FlushError, MemoryExporter, ObservationId, ObservationType, Score,
    ScoreValue, Stats, TraceContext, TraceId,
};
use serde_json::{json, Value};

use support::server::{INVALID_CREDENTIALS, MAX_SCORES_BODY, SCORES_PATH, SINGLE_SCORE_EXPECTED};
use support::{basic_auth, FakeLangfuse, Fault, RecordedRequest, ScoreApi};

use support::sdk::{PUBLIC_KEY, SECRET_KEY};
/// How long to wait for something that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);

/// A client for `server` that exports only when asked (or when 512 items wait).
fn config(server: &FakeLangfuse) -> Config {
    support::sdk::config_for(server).environment("test")
}

/// The score counters of `Stats`, for one exact comparison.
#[derive(Debug, Default, PartialEq, Eq)]
struct ScoreCounts {
    created: u64,
    queued: u64,
    exported: u64,
    invalid: u64,
    queue_full: u64,
    rejected: u64,
    export_failed: u64,
    shutdown_deadline: u64,
    after_shutdown: u64,
    unsupported: u64,
}

fn score_counts(stats: &Stats) -> ScoreCounts {
    let counts = ScoreCounts {
        created: stats.scores_created,
        queued: stats.scores_queued,
        exported: stats.scores_exported,
        invalid: stats.scores_dropped_invalid,
        queue_full: stats.scores_dropped_queue_full,
        rejected: stats.scores_dropped_rejected,
        export_failed: stats.scores_dropped_export_failed,
        shutdown_deadline: stats.scores_dropped_shutdown_deadline,
        after_shutdown: stats.scores_dropped_after_shutdown,
        unsupported: stats.scores_dropped_unsupported,
    };
    assert_eq!(
        stats.scores_created,
        stats.scores_exported + stats.scores_dropped(),
        "every score is accounted for: {counts:?}"
    );
    counts
}

fn trace_id(hex: &str) -> TraceId {
    hex.parse().expect("a valid trace id")
}

fn statuses(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|request| format!("{:?}", request.answer))
        .collect()
}

/// A random version 4 UUID in lowercase text, as the SDK makes score ids.
fn is_uuid_v4(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && text
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && groups[2].starts_with('4')
        && matches!(groups[3].chars().next(), Some('8' | '9' | 'a' | 'b'))
}

/// Replaces a generated id by `<uuid>` after checking it is one.
fn with_generated_id(mut score: Value) -> Value {
    let id = score["id"].as_str().unwrap_or_default().to_owned();
    if id.contains('-') && id.len() == 36 {
        assert!(is_uuid_v4(&id), "generated id {id:?} is a version 4 UUID");
        score["id"] = json!("<uuid>");
    }
    score
}

#[test]
fn every_kind_arrives_once_with_the_exact_fields() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");

    let root = span("answer").start();
    score_current_trace("helpful", true);
    let child = span("generate")
        .as_type(ObservationType::Generation)
        .start();
    score_current_observation("accuracy", 0.75);
    score_current_observation("tone", "neutral");
    let trace = current_trace_id().expect("a recorded trace");
    let root_id = root.id().expect("a recorded root");
    let child_id = child.id().expect("a recorded child");
    child.end();
    root.end();
    score_trace(trace, "thumbs-up", false);
    Score::new("stars", 4_u8)
        .trace(trace)
        .comment("four of five")
        .metadata("source", json!({"ui": "web", "version": 2}))
        .metadata("reviewed", true)
        .id("feedback-7")
        .environment("staging")
        .send();
    Score::new("session-quality", "good")
        .session("chat-42")
        .send();
    Score::new("exact-match", 1_i32).dataset_run("run-1").send();
    guard.flush().expect("flush");

    let (trace, root_id, child_id) = (trace.to_string(), root_id.to_string(), child_id.to_string());
    let scores: Vec<Value> = server
        .accepted_scores()
        .into_iter()
        .map(with_generated_id)
        .collect();
    assert_eq!(
        scores,
        vec![
            json!({"id": "<uuid>", "traceId": trace, "name": "helpful", "value": 1,
                   "dataType": "BOOLEAN", "environment": "test"}),
            json!({"id": "<uuid>", "traceId": trace, "observationId": child_id,
                   "name": "accuracy", "value": 0.75, "dataType": "NUMERIC",
                   "environment": "test"}),
            json!({"id": "<uuid>", "traceId": trace, "observationId": child_id, "name": "tone",
                   "value": "neutral", "dataType": "CATEGORICAL", "environment": "test"}),
            json!({"id": "<uuid>", "traceId": trace, "name": "thumbs-up", "value": 0,
                   "dataType": "BOOLEAN", "environment": "test"}),
            json!({"id": "feedback-7", "traceId": trace, "name": "stars", "value": 4.0,
                   "dataType": "NUMERIC", "comment": "four of five",
                   "metadata": {"source": {"ui": "web", "version": 2}, "reviewed": true},
                   "environment": "staging"}),
            json!({"id": "<uuid>", "sessionId": "chat-42", "name": "session-quality",
                   "value": "good", "dataType": "CATEGORICAL", "environment": "test"}),
            json!({"id": "<uuid>", "datasetRunId": "run-1", "name": "exact-match", "value": 1.0,
                   "dataType": "NUMERIC", "environment": "test"}),
        ]
    );
    let ids: std::collections::BTreeSet<String> = server
        .accepted_scores()
        .iter()
        .map(|score| score["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 7, "every score has its own id");

    // The scores point at the spans that arrived.
    let spans = server.wait_for_spans(2, WAIT);
    let answer = spans.iter().find(|s| s.name() == "answer").expect("root");
    let generate = spans
        .iter()
        .find(|s| s.name() == "generate")
        .expect("child");
    assert_eq!(
        (answer.trace_id(), answer.span_id()),
        (trace.clone(), root_id)
    );
    assert_eq!((generate.trace_id(), generate.span_id()), (trace, child_id));

    // One request, as Langfuse's scores route takes it.
    let requests = server.score_requests();
    assert_eq!(statuses(&requests), ["Status(202)"]);
    let request = &requests[0];
    assert_eq!(request.path, SCORES_PATH);
    assert_eq!(
        request.header("authorization"),
        Some(basic_auth(PUBLIC_KEY, SECRET_KEY).as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-langfuse-public-key"), Some(PUBLIC_KEY));
    assert_eq!(request.header("content-encoding"), None);
    assert!(!request.body_is_gzip);

    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 7,
            queued: 7,
            exported: 7,
            ..ScoreCounts::default()
        }
    );
}

#[test]
fn outside_a_trace_the_current_scores_do_nothing() {
    let _serial = support::serial();
    // Before init: nothing to send to.
    score_trace(trace_id("0af7651916cd43dd8448eb211c80319c"), "early", 1);
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    score_current_trace("nothing-runs", 1);
    score_current_observation("nothing-runs", 1);
    Score::new("nothing-runs", 1).current_trace().send();
    Score::new("nothing-runs", 1).current_observation().send();
    {
        // An attached context is a trace but not one of our observations.
        let _context =
            TraceContext::for_trace(trace_id("0af7651916cd43dd8448eb211c80319c")).attach();
        score_current_observation("no-observation", 1);
    }
    guard.flush().expect("flush");
    assert_eq!(statuses(&server.score_requests()), Vec::<String>::new());
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(score_counts(&report.stats), ScoreCounts::default());
}

/// One score through a scores route that first answers with `fault`.
fn one_score_through(fault: Fault) -> (Vec<RecordedRequest>, Vec<Value>, Stats) {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.script_scores([fault]);
    let guard = config(&server).init().expect("init");
    score_trace(trace_id("0af7651916cd43dd8448eb211c80319c"), "retried", 0.5);
    guard.flush().expect("flush succeeds after one retry");
    let requests = server.score_requests();
    let scores = server.accepted_scores();
    let report = guard.shutdown().expect("shutdown");
    (requests, scores, report.stats)
}

fn assert_delivered_once_after_a_retry(
    requests: &[RecordedRequest],
    scores: &[Value],
    stats: &Stats,
    first: &str,
) {
    assert_eq!(statuses(requests), [first, "Status(202)"]);
    assert_eq!(
        requests[0].score_ids(),
        requests[1].score_ids(),
        "the retry resends the same score with the same id"
    );
    assert_eq!(scores.len(), 1, "accepted exactly once: {scores:?}");
    assert_eq!(scores[0]["id"], json!(requests[0].score_ids()[0]));
    assert_eq!(scores[0]["name"], json!("retried"));
    assert_eq!(stats.requests_retried, 1, "{stats:?}");
    assert_eq!(
        score_counts(stats),
        ScoreCounts {
            created: 1,
            queued: 1,
            exported: 1,
            ..ScoreCounts::default()
        }
    );
}

#[test]
fn a_500_is_retried_and_the_score_arrives_once() {
    let _serial = support::serial();
    let (requests, scores, stats) = one_score_through(Fault::respond(
        500,
        r#"{"message":"Internal Server Error"}"#,
    ));
    assert_delivered_once_after_a_retry(&requests, &scores, &stats, "Status(500)");
}

#[test]
fn a_429_waits_for_retry_after_and_the_score_arrives_once() {
    let _serial = support::serial();
    let (requests, scores, stats) = one_score_through(Fault::too_many_requests(1));
    assert_delivered_once_after_a_retry(&requests, &scores, &stats, "Status(429)");
    let gap = requests[1].arrived.duration_since(requests[0].arrived);
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
        "Retry-After: 1 waits about a second, waited {gap:?}"
    );
}

#[test]
fn a_dropped_connection_is_retried_and_the_score_arrives_once() {
    let _serial = support::serial();
    let (requests, scores, stats) = one_score_through(Fault::DropConnection);
    assert_delivered_once_after_a_retry(&requests, &scores, &stats, "Dropped");
}

#[test]
fn a_v4_16_server_gets_one_score_per_request_and_that_is_remembered() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_score_api(ScoreApi::Single);
    let guard = config(&server).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    for name in ["first", "second", "third"] {
        score_trace(trace, name, true);
    }
    guard.flush().expect("flush");

    let requests = server.score_requests();
    assert_eq!(
        statuses(&requests),
        ["Status(400)", "Status(200)", "Status(200)", "Status(200)"]
    );
    assert!(
        matches!(&requests[0].json, Some(Value::Array(items)) if items.len() == 3),
        "the array form goes first: {:?}",
        requests[0].json
    );
    let resent: Vec<String> = requests[1..]
        .iter()
        .flat_map(|request| {
            assert!(
                matches!(request.json, Some(Value::Object(_))),
                "one object per request: {:?}",
                request.json
            );
            request.score_ids()
        })
        .collect();
    assert_eq!(resent, requests[0].score_ids(), "the same scores, same ids");
    let names: Vec<Value> = server
        .accepted_scores()
        .iter()
        .map(|score| score["name"].clone())
        .collect();
    assert_eq!(names, [json!("first"), json!("second"), json!("third")]);

    // Remembered: no second 400 in this client...
    score_trace(trace, "fourth", false);
    score_trace(trace, "fifth", false);
    guard.flush().expect("second flush");
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 5,
            queued: 5,
            exported: 5,
            ..ScoreCounts::default()
        }
    );
    assert_eq!(report.stats.requests_failed, 1, "the one 400");
    assert_eq!(report.stats.requests_retried, 0);

    // ...nor in the next one of this process.
    let guard = config(&server).init().expect("second init");
    score_trace(trace, "sixth", 1);
    guard.flush().expect("flush of the second client");
    guard.shutdown().expect("shutdown of the second client");
    let requests = server.score_requests();
    assert_eq!(requests.len(), 7, "{:?}", statuses(&requests));
    let refusals: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|request| request.status() == Some(400))
        .collect();
    assert_eq!(refusals.len(), 1, "{:?}", statuses(&requests));
    assert_eq!(server.accepted_scores().len(), 6);
}

#[test]
fn the_v4_16_answer_is_the_documented_validation_issue() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_score_api(ScoreApi::Single);
    let auth = basic_auth(PUBLIC_KEY, SECRET_KEY);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let score = json!({"traceId": "0af7651916cd43dd8448eb211c80319c", "name": "n", "value": 1});
    let array = json!([score]).to_string();
    assert_eq!(
        support::raw_request(
            &server.base_url(),
            "POST",
            SCORES_PATH,
            &headers,
            array.as_bytes()
        ),
        (400, SINGLE_SCORE_EXPECTED.to_owned())
    );
    let (status, body) = support::raw_request(
        &server.base_url(),
        "POST",
        SCORES_PATH,
        &headers,
        score.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"id":"server-chosen-id"}"#);
    let (status, _) = support::raw_request(
        &server.base_url(),
        "POST",
        SCORES_PATH,
        &[("content-type", "application/json")],
        score.to_string().as_bytes(),
    );
    assert_eq!(status, 401, "the scores route checks Basic auth");
}

#[test]
fn a_server_upgraded_while_running_gets_arrays_again() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_score_api(ScoreApi::Single);
    let guard = config(&server).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    score_trace(trace, "before-upgrade", 1);
    guard.flush().expect("flush");
    server.set_score_api(ScoreApi::Batch);
    score_trace(trace, "after-upgrade", 1);
    score_trace(trace, "after-upgrade-too", 1);
    guard.flush().expect("flush after the upgrade");
    let requests = server.score_requests();
    assert_eq!(
        statuses(&requests),
        ["Status(400)", "Status(200)", "Status(400)", "Status(202)"]
    );
    assert!(matches!(&requests[3].json, Some(Value::Array(items)) if items.len() == 2));
    assert_eq!(server.accepted_scores().len(), 3);
    guard.shutdown().expect("shutdown");
}

/// The child's part of `a_207_is_not_retried_and_its_errors_are_reported_once`.
fn partial_failure_in_child() {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.script_scores([Fault::respond(
        207,
        json!({"accepted": 1, "rejected": 1,
               "errors": [{"message": "Score config cfg-9 not found"}]})
        .to_string(),
    )]);
    let guard = config(&server).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    score_trace(trace, "kept", 1);
    score_trace(trace, "refused", 1);
    let flushed = guard.flush();
    // A retry would come before the server is quiet.
    support::wait_until_quiet(&server, || guard.flush().expect("nothing left to send"));
    println!("child flush: {flushed:?}");
    let requests = server.score_requests();
    assert_eq!(statuses(&requests), ["Status(207)"], "a 207 is not retried");
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 2,
            queued: 2,
            exported: 1,
            rejected: 1,
            ..ScoreCounts::default()
        }
    );
    assert_eq!(report.stats.requests_retried, 0);
    assert_eq!(
        report.stats.last_error.as_deref(),
        Some(
            "Langfuse rejected 1 of 2 score(s) (HTTP 207; rejected scores are not retried): \
             \"Score config cfg-9 not found\""
        )
    );
}

#[test]
fn a_207_is_not_retried_and_its_errors_are_reported_once() {
    if support::child_mode().as_deref() == Some("partial") {
        partial_failure_in_child();
        return;
    }
    let _serial = support::serial();
    let output = child_test!("partial", &[], Duration::from_secs(60),);
    output.assert_success();
    let reported: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.starts_with("[langfuse] error") && line.contains("cfg-9"))
        .collect();
    assert_eq!(
        reported,
        [
            "[langfuse] error: Langfuse rejected 1 of 2 score(s) (HTTP 207; rejected scores are \
             not retried): \"Score config cfg-9 not found\""
        ],
        "stderr:\n{}",
        output.stderr
    );
    assert!(
        output.stdout.contains(
            "child flush: Err(ExportFailed { reason: \"Langfuse rejected 1 of 2 score(s) (HTTP \
             207; rejected scores are not retried): \\\"Score config cfg-9 not found\\\"\" })"
        ),
        "the flush tells the caller: {}",
        output.stdout
    );
}

#[test]
fn scores_of_a_sampled_out_trace_never_arrive() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).sample_rate(0.5).init().expect("init");
    // The low 64 bits decide: 0 is below half of 2^64, all ones is not.
    let kept = trace_id("0af7651916cd43dd0000000000000001");
    let dropped = trace_id("0af7651916cd43ddffffffffffffffff");
    let observation: ObservationId = "00f067aa0ba902b7".parse().expect("observation id");

    score_trace(kept, "kept-later", 1);
    score_trace(dropped, "dropped-later", 1);
    Score::new("dropped-observation", 1)
        .observation(dropped, observation)
        .send();
    for (trace, name) in [(kept, "kept-current"), (dropped, "dropped-current")] {
        let _context = TraceContext::for_trace(trace).attach();
        let work = span("work").start();
        score_current_trace(name, true);
        score_current_observation(name, true);
        work.end();
    }
    guard.flush().expect("flush");

    let names: Vec<Value> = server
        .accepted_scores()
        .iter()
        .map(|score| json!([score["name"], score["traceId"]]))
        .collect();
    let kept_hex = kept.to_string();
    assert_eq!(
        names,
        [
            json!(["kept-later", kept_hex]),
            json!(["kept-current", kept_hex]),
            json!(["kept-current", kept_hex]),
        ]
    );
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 3,
            queued: 3,
            exported: 3,
            ..ScoreCounts::default()
        },
        "scores of sampled-out traces are not recorded, as their spans are not"
    );
}

/// The child's part of `a_collector_target_sends_no_scores_and_says_so_once`.
fn collector_in_child() {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = Config::default()
        .otlp_endpoint(format!("{}/v1/traces", server.base_url()))
        .flush_interval(Duration::from_secs(60))
        .init()
        .expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    score_trace(trace, "first", 1);
    score_trace(trace, "second", "good");
    guard.flush().expect("flush");
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 2,
            unsupported: 2,
            ..ScoreCounts::default()
        }
    );
    assert_eq!(server.requests().len(), 0, "nothing was sent at all");
}

#[test]
fn a_collector_target_sends_no_scores_and_says_so_once() {
    if support::child_mode().as_deref() == Some("collector") {
        collector_in_child();
        return;
    }
    let _serial = support::serial();
    let output = child_test!("collector", &[], Duration::from_secs(60),);
    output.assert_success();
    let said: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.contains("scores are not sent"))
        .collect();
    assert_eq!(
        said,
        [
            "[langfuse] warning: scores are not sent: the exporter sends to an OpenTelemetry \
             collector (OTEL_EXPORTER_OTLP_ENDPOINT), which has no scores API; set \
             LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to send traces and scores to Langfuse. \
             Scores are dropped and counted in stats().scores_dropped_unsupported (said once)"
        ],
        "stderr:\n{}",
        output.stderr
    );
}

#[test]
fn flush_and_shutdown_deliver_queued_scores() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    score_trace(trace, "waits-for-flush", 1);
    score_trace(trace, "waits-too", 2);
    assert_eq!(
        support::wait_until_quiet(&server, || {}),
        0,
        "nothing goes before the timer or a flush"
    );
    guard.flush().expect("flush");
    let requests = server.score_requests();
    assert_eq!(statuses(&requests), ["Status(202)"]);
    assert_eq!(requests[0].scores().len(), 2);

    score_trace(trace, "waits-for-shutdown", 3);
    let report = guard.shutdown().expect("shutdown");
    let names: Vec<Value> = server
        .accepted_scores()
        .iter()
        .map(|score| score["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            json!("waits-for-flush"),
            json!("waits-too"),
            json!("waits-for-shutdown")
        ]
    );
    assert_eq!(report.stats.scores_exported, 3);
}

#[test]
fn a_batch_of_scores_goes_without_a_flush() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).flush_at(3).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    for value in [1, 2, 3] {
        score_trace(trace, "batched", value);
    }
    let scores = server.wait_for_scores(3, WAIT);
    assert_eq!(scores.len(), 3, "a batch's worth wakes the exporter");
    assert_eq!(statuses(&server.score_requests()), ["Status(202)"]);
    guard.shutdown().expect("shutdown");
}

#[test]
fn the_timer_sends_scores() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .flush_interval(Duration::from_millis(200))
        .init()
        .expect("init");
    score_trace(trace_id("0af7651916cd43dd8448eb211c80319c"), "timed", 1);
    let scores = server.wait_for_scores(1, WAIT);
    assert_eq!(scores.len(), 1);
    guard.shutdown().expect("shutdown");
}

/// Shuts a client for `base_url` down with one score waiting; checks the time and the counts and
/// returns the reason the shutdown reports (it must be an export failure).
fn shutdown_ends_within_its_timeout(base_url: &str) -> String {
    let guard = Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(base_url)
        .flush_interval(Duration::from_secs(60))
        .timeout(Duration::from_secs(5))
        .shutdown_timeout(Duration::from_secs(1))
        .init()
        .expect("init");
    score_trace(trace_id("0af7651916cd43dd8448eb211c80319c"), "lost", 1);
    let started = Instant::now();
    let result = support::within(Duration::from_secs(30), "shutdown", move || {
        guard.shutdown()
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown_timeout 1 s: shutdown took {took:?}"
    );
    let reason = match result {
        Err(FlushError::ExportFailed { reason }) => reason,
        other => panic!("the caller learns of the loss as ExportFailed: {other:?}"),
    };
    assert_eq!(
        score_counts(&stats()),
        ScoreCounts {
            created: 1,
            queued: 1,
            shutdown_deadline: 1,
            ..ScoreCounts::default()
        }
    );
    reason
}

#[test]
fn shutdown_with_refused_connections_ends_within_its_timeout() {
    let _serial = support::serial();
    let base_url = support::refusing_base_url();
    let reason = shutdown_ends_within_its_timeout(&base_url);
    // Refused at once, retried once after 500-750 ms; the next backoff (at least 1 s) passes the
    // 1 s deadline.
    let url = format!("{base_url}{SCORES_PATH}");
    assert_eq!(
        reason,
        format!(
            "export to {url} failed after 2 attempt(s): error sending request for url ({url}): \
             client error (Connect): tcp connect error: Connection refused (os error 111); the \
             flush or shutdown deadline came first"
        )
    );
}

#[test]
fn shutdown_with_a_hanging_scores_route_ends_within_its_timeout() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    server.set_default_score_fault(Some(Fault::Hang));
    let reason = shutdown_ends_within_its_timeout(&server.base_url());
    // The one attempt is cut by the shutdown deadline (its time allowance is what was left).
    let prefix = format!(
        "export to {}{SCORES_PATH} got no answer to 1 of 1 attempt(s) (the server may have \
         stored them): no answer within ",
        server.base_url()
    );
    assert!(
        reason.starts_with(&prefix)
            && reason.ends_with("ms; the flush or shutdown deadline came first"),
        "{reason}"
    );
    assert_eq!(statuses(&server.score_requests()), ["Hung"]);
}

#[test]
fn refused_credentials_are_not_retried() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server)
        .secret_key("sk-lf-wrong")
        .init()
        .expect("init");
    score_trace(
        trace_id("0af7651916cd43dd8448eb211c80319c"),
        "unauthorized",
        1,
    );
    assert_eq!(
        guard.flush(),
        Err(FlushError::ExportFailed {
            reason: format!(
                "Langfuse rejected the credentials with HTTP 401: {INVALID_CREDENTIALS:?} (base \
                 URL {}). Check that LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are the API keys \
                 of a project on this host.",
                server.base_url()
            )
        })
    );
    assert_eq!(statuses(&server.score_requests()), ["Status(401)"]);
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(report.stats.auth_failures, 1);
    assert_eq!(report.stats.requests_retried, 0);
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 1,
            queued: 1,
            export_failed: 1,
            ..ScoreCounts::default()
        }
    );
}

#[test]
fn requests_stay_under_one_mebibyte() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    for name in ["big-1", "big-2", "big-3"] {
        Score::new(name, 1)
            .trace(trace)
            .comment("x".repeat(400_000))
            .send();
    }
    Score::new("too-big", 1)
        .trace(trace)
        .comment("x".repeat(MAX_SCORES_BODY))
        .send();
    let _ = guard.flush();
    let requests = server.score_requests();
    assert_eq!(statuses(&requests), ["Status(202)", "Status(202)"]);
    assert_eq!(
        requests
            .iter()
            .map(|request| request.scores().len())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    for request in &requests {
        assert!(request.body_len <= MAX_SCORES_BODY, "{}", request.body_len);
    }
    let names: Vec<Value> = server
        .accepted_scores()
        .iter()
        .map(|score| score["name"].clone())
        .collect();
    assert_eq!(names, [json!("big-1"), json!("big-2"), json!("big-3")]);
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 4,
            queued: 4,
            exported: 3,
            export_failed: 1,
            ..ScoreCounts::default()
        }
    );
}

#[test]
fn a_full_score_queue_drops_and_counts() {
    let _serial = support::serial();
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).max_queue(2).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    for name in ["one", "two", "three"] {
        score_trace(trace, name, 1);
    }
    guard.flush().expect("flush");
    score_trace(trace, "after-room", 1);
    guard.flush().expect("second flush");
    let names: Vec<Value> = server
        .accepted_scores()
        .iter()
        .map(|score| score["name"].clone())
        .collect();
    assert_eq!(names, [json!("one"), json!("two"), json!("after-room")]);
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 4,
            queued: 3,
            exported: 3,
            queue_full: 1,
            ..ScoreCounts::default()
        }
    );
}

/// The child's part of `bad_scores_are_dropped_with_one_warning_each`.
fn bad_scores_in_child() {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = config(&server).init().expect("init");
    let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
    score_trace(trace, "", 1);
    score_trace(trace, "latency", f64::NAN);
    score_trace(trace, "latency", f64::INFINITY); // the same problem: not said again
    Score::new("orphan", 1).send();
    Score::new("everywhere", 1)
        .trace(trace)
        .session("chat-42")
        .send();
    Score::new("shouting", 1)
        .trace(trace)
        .environment("PROD")
        .send();
    Score::new("nameless-id", 1).trace(trace).id("").send();
    guard.flush().expect("flush");
    assert_eq!(server.score_requests().len(), 0, "nothing was sent");
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 7,
            invalid: 7,
            ..ScoreCounts::default()
        }
    );
}

#[test]
fn bad_scores_are_dropped_with_one_warning_each() {
    if support::child_mode().as_deref() == Some("bad") {
        bad_scores_in_child();
        return;
    }
    let _serial = support::serial();
    let output = child_test!("bad", &[], Duration::from_secs(60),);
    output.assert_success();
    let warnings: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.starts_with("[langfuse] warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "[langfuse] warning: a score with an empty name was dropped: give it the name it has \
             in Langfuse, such as \"accuracy\"",
            "[langfuse] warning: score \"latency\" was dropped: its value NaN is not a finite \
             number, which Langfuse cannot store; send a finite number, a bool or a category \
             string",
            "[langfuse] warning: score \"orphan\" was dropped: it belongs to nothing; call \
             .trace(id), .observation(trace_id, observation_id), .session(id) or \
             .dataset_run(id) on the Score before .send()",
            "[langfuse] warning: score \"everywhere\" was dropped: it names trace \
             0af7651916cd43dd8448eb211c80319c and session \"chat-42\"; a score belongs to \
             exactly one trace, session or dataset run, so send one score for each",
            "[langfuse] warning: score \"shouting\" was dropped: its environment \"PROD\" is not \
             one Langfuse accepts (it would be stored as \"default\"); use at most 40 lowercase \
             letters, digits, '-' and '_', not starting with \"langfuse\"",
            "[langfuse] warning: score \"nameless-id\" was dropped: its id is empty; give a \
             non-empty id or leave it out",
        ],
        "stderr:\n{}",
        output.stderr
    );
}

#[test]
fn the_memory_exporter_keeps_masked_scores() {
    let _serial = support::serial();
    let memory = MemoryExporter::new();
    let guard = Config::default()
        .exporter(Exporter::Memory(memory.clone()))
        .environment("test")
        .mask(|value| match value {
            Value::String(text) if text.contains("4111") => json!("<card>"),
            other => other,
        })
        .init()
        .expect("init");
    let root = span("checkout").start();
    score_current_observation("fraud-risk", 0.1);
    let (trace, observation) = (
        current_trace_id().expect("trace"),
        root.id().expect("observation"),
    );
    root.end();
    Score::new("review", "suspicious")
        .trace(trace)
        .comment("card 4111 used twice")
        .metadata("card", "4111 1111")
        .metadata("attempts", 2)
        .id("review-1")
        .send();

    let scores = memory.scores();
    assert_eq!(scores.len(), 2);
    let first = &scores[0];
    assert!(is_uuid_v4(&first.id), "{}", first.id);
    assert_eq!(
        (
            first.trace_id,
            first.observation_id,
            first.name.as_str(),
            &first.value
        ),
        (
            Some(trace),
            Some(observation),
            "fraud-risk",
            &ScoreValue::Numeric(0.1)
        )
    );
    assert_eq!(first.environment.as_deref(), Some("test"));
    let second = &scores[1];
    assert_eq!(second.id, "review-1");
    assert_eq!(
        second.value,
        ScoreValue::Categorical("suspicious".to_owned())
    );
    assert_eq!(second.comment.as_deref(), Some("<card>"));
    assert_eq!(
        second.metadata,
        [
            ("card".to_owned(), "\"<card>\"".to_owned()),
            ("attempts".to_owned(), "2".to_owned())
        ]
    );
    assert_eq!(
        (second.session_id.clone(), second.observation_id),
        (None, None)
    );
    let report = guard.shutdown().expect("shutdown");
    assert_eq!(
        score_counts(&report.stats),
        ScoreCounts {
            created: 2,
            queued: 2,
            exported: 2,
            ..ScoreCounts::default()
        }
    );
}

#[test]
fn the_console_prints_one_line_per_score() {
    if support::child_mode().as_deref() == Some("console") {
        let guard = Config::default()
            .exporter(Exporter::Console)
            .init()
            .expect("init");
        let trace = trace_id("0af7651916cd43dd8448eb211c80319c");
        let observation: ObservationId = "00f067aa0ba902b7".parse().expect("observation id");
        score_trace(trace, "stars", 4);
        Score::new("tone", "friendly")
            .observation(trace, observation)
            .comment("polite")
            .send();
        Score::new("resolved", true).session("chat-42").send();
        drop(guard);
        return;
    }
    let _serial = support::serial();
    let output = child_test!("console", &[], Duration::from_secs(60),);
    output.assert_success();
    let lines: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.starts_with("score "))
        .collect();
    assert_eq!(
        lines,
        [
            "score \"stars\" = 4 [NUMERIC] on trace 0af7651916cd43dd8448eb211c80319c",
            "score \"tone\" = \"friendly\" [CATEGORICAL] on observation 00f067aa0ba902b7 of \
             trace 0af7651916cd43dd8448eb211c80319c comment=\"polite\"",
            "score \"resolved\" = true [BOOLEAN] on session \"chat-42\"",
        ],
        "stderr:\n{}",
        output.stderr
    );
}
