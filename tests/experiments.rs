//! Experiments as Langfuse v4 sees them, against the fake Langfuse server: one trace per item in
//! the Python SDK 5.x layout with the experiment attributes on every span, the evaluations as
//! scores on the task observation, the run evaluations on the run, failures kept to their item,
//! bounded concurrency, async runs on both tokio flavours, local data and Langfuse datasets.
//!
//! The client is global to the process: every test holds [`support::serial`].

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use observe_runtime::{
    create_dataset, create_dataset_item, get_dataset, observe, Config, DatasetItem, Evaluation,
    EvaluatorInput, Experiment, FlushGuard, ScoreValue, TraceId,
};
use serde_json::{json, Value};

use support::{serial, FakeLangfuse, ReceivedSpan};

const PUBLIC_KEY: &str = "pk-lf-experiments";
const SECRET_KEY: &str = "sk-lf-experiments";
const WAIT: Duration = Duration::from_secs(10);

fn start() -> (FakeLangfuse, FlushGuard) {
    let server = FakeLangfuse::start(PUBLIC_KEY, SECRET_KEY);
    let guard = Config::default()
        .public_key(PUBLIC_KEY)
        .secret_key(SECRET_KEY)
        .base_url(server.base_url())
        .environment("production")
        .flush_interval(Duration::from_secs(60))
        .shutdown_timeout(Duration::from_secs(10))
        .init()
        .expect("init");
    (server, guard)
}

fn exact(input: &EvaluatorInput<'_>) -> Evaluation {
    let same = Some(input.output) == input.expected_output;
    Evaluation::new("exact", if same { 1.0 } else { 0.0 }).comment(if same {
        "same"
    } else {
        "different"
    })
}

fn length(input: &EvaluatorInput<'_>) -> Result<Evaluation, String> {
    let text = input.output.as_str().ok_or("the output is not text")?;
    Ok(Evaluation::new(
        "length",
        if text.len() > 3 { "long" } else { "short" },
    ))
}

#[observe]
fn lookup(question: &str) -> String {
    match question {
        "2+2" => "4".into(),
        "capital of France" => "Paris".into(),
        _ => "unknown".into(),
    }
}

fn answer(item: &DatasetItem) -> Result<String, String> {
    match item.input.as_str() {
        Some("fail") => Err("no model for this".into()),
        Some(question) => Ok(lookup(question)),
        None => Err(format!("not a question: {}", item.input)),
    }
}

/// The spans of each trace, by trace id, each trace's spans by name.
fn traces(spans: &[ReceivedSpan]) -> BTreeMap<String, BTreeMap<String, ReceivedSpan>> {
    let mut traces: BTreeMap<String, BTreeMap<String, ReceivedSpan>> = BTreeMap::new();
    for span in spans {
        traces
            .entry(span.trace_id())
            .or_default()
            .insert(span.name().to_string(), span.clone());
    }
    traces
}

const EXPERIMENT_ATTRIBUTES: [&str; 4] = [
    "langfuse.experiment.id",
    "langfuse.experiment.name",
    "langfuse.experiment.item.id",
    "langfuse.experiment.item.root_observation_id",
];

#[test]
fn local_data_makes_one_trace_per_item_in_the_python_layout() {
    let _serial = serial();
    let (server, guard) = start();
    let data = vec![
        DatasetItem::local("2+2", "4").with_metadata(json!({"topic": "math"})),
        DatasetItem::local("capital of France", "Lyon"),
        DatasetItem::local("fail", ()),
    ];
    let result = Experiment::new("qa")
        .run_name("qa-run-1")
        .description("small questions")
        .metadata(json!({"model": "lookup-v1"}))
        .evaluator(exact)
        .evaluator(length)
        .named_evaluator("broken", |_: &EvaluatorInput<'_>| -> Evaluation {
            panic!("the judge fell over")
        })
        .run_evaluator(|items: &[observe_runtime::ItemResult]| {
            Evaluation::new("items", items.len() as f64)
        })
        .run_blocking(&data, answer)
        .expect("the run");

    // The result: every item in order, the failed one with its error.
    assert_eq!(result.run_name, "qa-run-1");
    assert_eq!(result.experiment_id.len(), 16);
    let outputs: Vec<Option<Value>> = result.items.iter().map(|i| i.output.clone()).collect();
    assert_eq!(outputs, [Some(json!("4")), Some(json!("Paris")), None]);
    assert_eq!(result.items[2].error.as_deref(), Some("no model for this"));
    assert!(result.items[2].evaluations.is_empty());
    assert_eq!(result.failed(), 1);
    assert_eq!(result.mean("exact"), Some(0.5));
    assert_eq!(
        result.items[0].evaluations,
        [
            Evaluation::new("exact", 1.0).comment("same"),
            Evaluation::new("length", "short"),
        ]
    );
    assert_eq!(result.run_evaluations, [Evaluation::new("items", 3.0)]);
    // The local item id is the Python SDK's: sha256("2+2")[:16].
    assert_eq!(result.items[0].item.id, "1acf86226c68c148");

    drop(guard);
    // 3 items: run, task, lookup (not for the failed one), evaluation + 3 evaluators.
    let spans = server.wait_for_spans(2 * 7 + 2, WAIT);
    let traces = traces(&spans);
    assert_eq!(traces.len(), 3);
    for (index, item) in result.items.iter().enumerate() {
        let trace = &traces[&item.trace_id.to_string()];
        let run = &trace["experiment-item-run"];
        let task = &trace["experiment-item-task"];
        assert_eq!(run.parent_span_id(), "");
        assert_eq!(task.parent_span_id(), run.span_id());
        for span in trace.values() {
            assert_eq!(
                span.str_attr("langfuse.environment"),
                Some("sdk-experiment"),
                "{}",
                span.name()
            );
            assert_eq!(
                span.str_attr("langfuse.experiment.id"),
                Some(result.experiment_id.as_str())
            );
            assert_eq!(span.str_attr("langfuse.experiment.name"), Some("qa-run-1"));
            assert_eq!(
                span.str_attr("langfuse.experiment.item.id"),
                Some(item.item.id.as_str())
            );
            assert_eq!(
                span.str_attr("langfuse.experiment.item.root_observation_id"),
                Some(task.span_id().as_str())
            );
            assert_eq!(
                span.str_attr("langfuse.experiment.metadata"),
                Some(r#"{"model": "lookup-v1"}"#)
            );
            assert_eq!(span.str_attr("langfuse.experiment.dataset.id"), None);
            let item_span = ["experiment-item-run", "experiment-item-task"].contains(&span.name());
            assert_eq!(
                span.str_attr("langfuse.experiment.description").is_some(),
                item_span,
                "{}",
                span.name()
            );
        }
        assert_eq!(
            run.str_attr("langfuse.experiment.description"),
            Some("small questions")
        );
        assert_eq!(
            task.str_attr("langfuse.experiment.item.expected_output"),
            item.item.expected_output.as_ref().and_then(Value::as_str)
        );
        assert_eq!(
            task.json_attr("langfuse.observation.input"),
            Some(item.item.input.clone())
        );
        assert_eq!(
            task.str_attr("langfuse.observation.metadata.experiment_run_name"),
            Some("\"qa-run-1\"")
        );
        if index == 2 {
            for span in [run, task] {
                assert_eq!(span.str_attr("langfuse.observation.level"), Some("ERROR"));
                assert_eq!(
                    span.json_attr("langfuse.observation.output"),
                    Some(json!("Error: no model for this"))
                );
                assert_eq!(span.status_message(), "no model for this");
            }
            assert_eq!(trace.len(), 2, "a failed item is not evaluated");
            continue;
        }
        assert_eq!(run.json_attr("langfuse.observation.output"), item.output);
        assert_eq!(
            trace["lookup"].parent_span_id(),
            task.span_id(),
            "the task's own observations nest below it"
        );
        let evaluation = &trace["experiment-item-evaluation"];
        assert_eq!(evaluation.parent_span_id(), run.span_id());
        assert_eq!(
            evaluation.json_attr("langfuse.observation.output"),
            Some(
                json!({"evaluator_count": 3, "evaluation_count": 2, "failed_evaluator_count": 1, "skipped_evaluator_count": 0})
            )
        );
        let broken = &trace["broken"];
        assert_eq!(
            broken.str_attr("langfuse.observation.type"),
            Some("evaluator")
        );
        assert_eq!(broken.str_attr("langfuse.observation.level"), Some("ERROR"));
        assert_eq!(broken.status_message(), "it panicked: the judge fell over");
        assert_eq!(trace["exact"].parent_span_id(), evaluation.span_id());
        assert_eq!(
            trace["exact"].json_attr("langfuse.observation.metadata.evaluator_index"),
            Some(json!(0))
        );
    }

    // Scores: two per evaluated item on (trace, task observation), one on the run.
    let scores = server.wait_for_scores(5, WAIT);
    assert_eq!(scores.len(), 5);
    let first = &traces[&result.items[0].trace_id.to_string()];
    let exact_first = scores
        .iter()
        .find(|s| {
            s["name"] == "exact" && s["traceId"] == json!(result.items[0].trace_id.to_string())
        })
        .expect("the exact score of the first item");
    assert_eq!(
        exact_first["observationId"],
        json!(first["experiment-item-task"].span_id())
    );
    assert_eq!(exact_first["value"], json!(1.0));
    assert_eq!(exact_first["comment"], json!("same"));
    let run_score = scores
        .iter()
        .find(|s| s["name"] == "items")
        .expect("the run score");
    assert_eq!(run_score["datasetRunId"], json!(result.experiment_id));
    assert_eq!(run_score["value"], json!(3.0));
    let length_second = scores
        .iter()
        .find(|s| {
            s["name"] == "length" && s["traceId"] == json!(result.items[1].trace_id.to_string())
        })
        .unwrap();
    assert_eq!(length_second["value"], json!("long"));
    assert_eq!(length_second["dataType"], json!("CATEGORICAL"));
}

#[test]
fn the_summary_table_and_assert_mean_say_what_a_ci_step_needs() {
    let _serial = serial();
    let data = [
        DatasetItem::local("2+2", "4"),
        DatasetItem::local("capital of France", "Lyon"),
    ];
    // No init: the run still runs and evaluates; nothing is recorded.
    let result = Experiment::new("qa")
        .run_name("local")
        .experiment_id("fixed-id")
        .evaluator(exact)
        .evaluator(length)
        .run_blocking(&data, answer)
        .unwrap();
    assert_eq!(
        result.to_string(),
        "experiment \"qa\" · run \"local\" · id fixed-id\n\
         2 items, 0 failed\n\
         score      n  mean / counts\n\
         exact      2  0.500\n\
         length     2  long 1, short 1\n"
    );
    result.assert_mean("exact", 0.5);
    let failure = std::panic::catch_unwind(|| result.assert_mean("exact", 0.8)).unwrap_err();
    assert_eq!(
        failure.downcast_ref::<String>().unwrap(),
        &format!("the mean of \"exact\" is 0.500, below 0.8\n{result}")
    );
    assert_eq!(result.url(), None);
}

#[test]
fn never_more_items_at_once_than_allowed() {
    let _serial = serial();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let data: Vec<DatasetItem> = (0..12).map(|i| DatasetItem::local(i, ())).collect();
    let task = |_: &DatasetItem| -> Result<u32, String> {
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(20));
        running.fetch_sub(1, Ordering::SeqCst);
        Ok(1)
    };
    let result = Experiment::new("bounded")
        .max_concurrency(3)
        .run_blocking(&data, task)
        .unwrap();
    assert_eq!(result.items.len(), 12);
    assert_eq!(most.load(Ordering::SeqCst), 3);
    assert_eq!(
        Experiment::new("zero")
            .max_concurrency(0)
            .run_blocking(&data, task)
            .unwrap_err()
            .to_string(),
        "experiment \"zero\": max_concurrency is 0; allow at least 1 item at a time"
    );
}

async fn async_answer(input: Value) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(format!("answer to {input}"))
}

#[test]
fn async_runs_work_on_both_tokio_flavours_with_bounded_tasks() {
    let _serial = serial();
    let (server, guard) = start();
    let data: Vec<DatasetItem> = (0..6)
        .map(|i| DatasetItem::local(format!("q{i}"), ()))
        .collect();
    for runtime in [
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ] {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let result = runtime.block_on(
            Experiment::new("async")
                .max_concurrency(2)
                .evaluator(|input: &EvaluatorInput<'_>| {
                    Evaluation::new("has-answer", input.output.is_string())
                })
                .run(&data, |item| {
                    let input = item.input.clone();
                    let (running, most) = (running.clone(), most.clone());
                    async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let answer = async_answer(input).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        answer
                    }
                }),
        );
        let result = result.unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 2);
        let outputs: Vec<Value> = result
            .items
            .iter()
            .filter_map(|i| i.output.clone())
            .collect();
        assert_eq!(outputs[0], json!("answer to \"q0\""));
        assert_eq!(outputs.len(), 6);
        assert_eq!(result.mean("has-answer"), Some(1.0));
        assert_eq!(
            result
                .items
                .iter()
                .map(|i| i.evaluations[0].value.clone())
                .collect::<Vec<_>>(),
            vec![ScoreValue::Boolean(true); 6]
        );
    }
    drop(guard);
    // Two runs of 6 items: run, task, evaluation, evaluator each.
    let spans = server.wait_for_spans(48, WAIT);
    assert_eq!(traces(&spans).len(), 12);
    assert!(spans.iter().all(|s| EXPERIMENT_ATTRIBUTES
        .iter()
        .all(|a| s.str_attr(a).is_some())));
}

#[test]
fn a_langfuse_dataset_is_paged_and_its_run_gets_the_id_langfuse_derives() {
    let _serial = serial();
    let (server, guard) = start();
    server.put_dataset(json!({"id": "ds-123", "name": "evals/qa", "description": "questions"}));
    for i in 0..230 {
        server.put_dataset_item(json!({
            "datasetName": "evals/qa", "id": format!("item-{i:03}"),
            "input": format!("q{i}"), "expectedOutput": format!("a{i}"),
            "metadata": {"index": i},
            "status": if i == 7 { "ARCHIVED" } else { "ACTIVE" },
        }));
    }
    let dataset = get_dataset("evals/qa").unwrap();
    assert_eq!(
        (dataset.id.as_str(), dataset.name.as_str()),
        ("ds-123", "evals/qa")
    );
    assert_eq!(dataset.description.as_deref(), Some("questions"));
    assert_eq!(dataset.items.len(), 229, "the archived item takes no part");
    assert!(dataset.items.iter().all(|item| item.id != "item-007"));
    assert!(dataset
        .items
        .iter()
        .all(|item| item.dataset_id.as_deref() == Some("ds-123")));
    let pages: Vec<String> = server
        .dataset_requests()
        .into_iter()
        .filter(|r| r.is_dataset_items_fetch_of("evals/qa"))
        .map(|r| r.target)
        .collect();
    assert_eq!(
        pages,
        [1, 2, 3].map(|page| format!(
            "/api/public/dataset-items?datasetName=evals%2Fqa&page={page}&limit=100"
        ))
    );

    let first_three = &dataset.items[..3];
    let result = Experiment::new("qa")
        .run_name("nightly é/run")
        .evaluator(|input: &EvaluatorInput<'_>| {
            Evaluation::new("echo", input.output == input.input)
        })
        .run_blocking(first_three, |item| -> Result<Value, String> {
            Ok(item.input.clone())
        })
        .unwrap();
    // The Python SDK's `_create_experiment_id(project_id="proj-test", dataset_id="ds-123",
    // run_name="nightly é/run")`.
    assert_eq!(result.experiment_id, "c44fdad8f2839b02");
    assert_eq!(
        result.url(),
        Some(format!(
            "{}/project/proj-test/experiments/results?baseline=c44fdad8f2839b02",
            server.base_url()
        ))
    );
    drop(guard);
    let spans = server.wait_for_spans(12, WAIT);
    let traces = traces(&spans);
    for item in &result.items {
        let trace = &traces[&item.trace_id.to_string()];
        for span in trace.values() {
            assert_eq!(
                span.str_attr("langfuse.experiment.dataset.id"),
                Some("ds-123")
            );
            assert_eq!(
                span.str_attr("langfuse.experiment.item.id"),
                Some(item.item.id.as_str())
            );
            assert_eq!(
                span.str_attr("langfuse.experiment.item.metadata"),
                Some(
                    format!(
                        "{{\"index\": {}}}",
                        item.item.metadata.as_ref().unwrap()["index"]
                    )
                    .as_str()
                )
            );
        }
        let task = &trace["experiment-item-task"];
        assert_eq!(
            task.str_attr("langfuse.experiment.item.expected_output"),
            item.item.expected_output.as_ref().and_then(Value::as_str)
        );
        assert_eq!(
            task.str_attr("langfuse.observation.metadata.dataset_item_id"),
            Some(format!("\"{}\"", item.item.id).as_str())
        );
        assert_eq!(
            task.str_attr("langfuse.observation.metadata.dataset_id"),
            Some("\"ds-123\"")
        );
    }
    assert_eq!(server.wait_for_scores(3, WAIT).len(), 3);
}

#[test]
fn a_missing_dataset_says_which_and_what_came_back() {
    let _serial = serial();
    let (server, _guard) = start();
    let error = get_dataset("nope").unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert_eq!(
        error.to_string(),
        format!(
            "GET {}/api/public/v2/datasets/nope answered HTTP 404: \"Dataset not found\"",
            server.base_url()
        )
    );
}

#[test]
fn datasets_and_items_are_created_and_read_back() {
    let _serial = serial();
    let (server, _guard) = start();
    let id = create_dataset("evals/new")
        .description("made here")
        .send()
        .unwrap();
    let trace_id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
    let item = create_dataset_item("evals/new", json!({"q": "2+2"}))
        .expected_output("4")
        .metadata(json!({"source": "prod"}))
        .id("item-1")
        .source(trace_id, None)
        .send()
        .unwrap();
    assert_eq!(item.id, "item-1");
    assert_eq!(
        item.source_trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    create_dataset_item("evals/new", "old")
        .id("item-2")
        .active(false)
        .send()
        .unwrap();
    let dataset = get_dataset("evals/new").unwrap();
    assert_eq!(dataset.id, id);
    assert_eq!(dataset.items.len(), 1);
    assert_eq!(dataset.items[0].input, json!({"q": "2+2"}));
    assert_eq!(dataset.items[0].expected_output, Some(json!("4")));
    assert_eq!(server.dataset_items("evals/new").len(), 2);
}
