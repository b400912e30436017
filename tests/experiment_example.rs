//! `examples/experiment.rs` as a user runs it, against the fake Langfuse server: over its local
//! data, and over a Langfuse dataset named on the command line.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{run_example, FakeLangfuse};

const WAIT: Duration = Duration::from_secs(30);

/// The table without its first line (the run name and id change each run).
fn table(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .skip(1)
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn the_local_run_prints_its_summary_and_records_traces_and_scores() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-experiment", "sk-lf-experiment");
    let output = run_example("experiment", &[], &server);
    let table = table(&output.stdout);
    let (summary, failed) = table.split_once("failed: item ").expect("a failed item");
    assert_eq!(
        summary,
        "4 items, 1 failed\nscore     n  mean / counts\nexact     3  0.667\nrun: accuracy 0.500\n"
    );
    let (failure, url) = failed.split_once('\n').expect("the failure, then the URL");
    assert!(failure.ends_with(": not a sum: \"two+two\""), "{failure}");
    assert!(
        url.starts_with(&format!(
            "{}/project/proj-test/experiments/results?baseline=",
            server.base_url()
        )),
        "{url}"
    );
    // 3 answered items: run, task, solve, evaluation, exact; the failed one: run, task, solve.
    let spans = server.wait_for_spans(18, WAIT);
    assert_eq!(spans.len(), 18);
    assert!(spans
        .iter()
        .all(|s| s.str_attr("langfuse.environment") == Some("sdk-experiment")));
    let scores = server.wait_for_scores(4, WAIT);
    let mut names: Vec<&str> = scores.iter().filter_map(|s| s["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["accuracy", "exact", "exact", "exact"]);
}

#[test]
fn a_dataset_named_on_the_command_line_is_run() {
    let _serial = support::serial();
    let server = FakeLangfuse::start("pk-lf-experiment", "sk-lf-experiment");
    server.put_dataset(json!({"id": "ds-sums", "name": "sums"}));
    for (input, expected) in [("1+1", "2"), ("9+9", "18")] {
        server.put_dataset_item(
            json!({"datasetName": "sums", "input": input, "expectedOutput": expected}),
        );
    }
    let output = run_example("experiment", &["sums"], &server);
    assert_eq!(
        table(&output.stdout),
        format!(
            "2 items, 0 failed\nscore     n  mean / counts\nexact     2  0.500\nrun: accuracy \
             0.500\n{}/project/proj-test/experiments/results?baseline={}\n",
            server.base_url(),
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .and_then(|line| line.rsplit("id ").next())
                .unwrap_or_default()
        )
    );
    let spans = server.wait_for_spans(10, WAIT);
    assert!(spans
        .iter()
        .all(|s| s.str_attr("langfuse.experiment.dataset.id") == Some("ds-sums")));
}
