//! `examples/workers.rs` against the fake Langfuse server: the coordinator and the workers it
//! starts (the same binary) make one trace, each worker's subtree under the coordinator's span,
//! with the coordinator's session, user and tags on every span.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{by_name, FakeLangfuse};

const WORKERS: usize = 3;
const CHUNKS_PER_WORKER: usize = 3;

#[test]
fn the_workers_example_makes_one_trace_with_a_subtree_per_worker() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-workers", "sk-lf-workers");
    let mut command = support::example_command("workers");
    command
        .arg(WORKERS.to_string())
        .env("LANGFUSE_PUBLIC_KEY", server.public_key())
        .env("LANGFUSE_SECRET_KEY", server.secret_key())
        .env("LANGFUSE_BASE_URL", server.base_url());
    let output = support::within(Duration::from_secs(120), "the workers example", move || {
        command.output().expect("run the example")
    });
    assert!(
        output.status.success(),
        "the example failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let expected = 1 + WORKERS * (1 + CHUNKS_PER_WORKER);
    let spans = server.wait_for_spans(expected, Duration::from_secs(30));
    assert_eq!(spans.len(), expected, "every span arrives, once");

    let coordinator = by_name(&spans, "coordinator");
    assert_eq!(
        coordinator.parent_span_id(),
        "",
        "the coordinator is the root"
    );
    for span in &spans {
        assert_eq!(
            span.trace_id(),
            coordinator.trace_id(),
            "{} is in the one trace",
            span.name()
        );
        assert_eq!(
            span.str_attr("session.id"),
            Some("nightly-index-2026-12-02"),
            "{} carries the session",
            span.name()
        );
        assert_eq!(
            span.str_attr("user.id"),
            Some("indexing-bot"),
            "{} carries the user",
            span.name()
        );
        assert_eq!(
            span.string_array_attr("langfuse.trace.tags"),
            Some(vec!["batch".to_string()]),
            "{} carries the tags",
            span.name()
        );
    }

    let workers: Vec<_> = spans.iter().filter(|s| s.name() == "worker").collect();
    assert_eq!(workers.len(), WORKERS);
    let mut shards = Vec::new();
    for worker in &workers {
        assert_eq!(
            worker.parent_span_id(),
            coordinator.span_id(),
            "each worker hangs under the coordinator's span"
        );
        let input = worker.json_attr("langfuse.observation.input");
        shards.push(input.and_then(|v| v["shard"].as_u64()).expect("the shard"));
        let chunks: BTreeMap<&str, usize> = spans
            .iter()
            .filter(|s| s.parent_span_id() == worker.span_id())
            .fold(BTreeMap::new(), |mut names, s| {
                *names.entry(s.name()).or_insert(0) += 1;
                names
            });
        assert_eq!(
            chunks,
            BTreeMap::from([("embed", CHUNKS_PER_WORKER)]),
            "each worker's own chunks under it"
        );
    }
    shards.sort_unstable();
    assert_eq!(shards, (0..WORKERS as u64).collect::<Vec<_>>());
}
