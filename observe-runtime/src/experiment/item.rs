//! One item of a run, as the Python SDK 5.x records it: a trace whose root is
//! `experiment-item-run`, with the child `experiment-item-task` (the task's own observations
//! below it) and, when there are evaluators, `experiment-item-evaluation` with one `evaluator`
//! observation per evaluator. Every span of the trace carries the experiment attributes; the
//! evaluations become scores on the task observation.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::{json, Value};

use super::evaluation::panic_text;
use super::evaluation::{Evaluation, EvaluatorInput};
use super::result::ItemResult;
use super::run::Run;
use observe_macros::observe;

use crate::dataset::DatasetItem;
use crate::diagnostics;
use crate::ids::{ObservationId, TraceId};
use crate::local::handle::current_observation;
use crate::local::score::Score;
use crate::local::span::span;
use crate::local::trace::current_trace;
use crate::python_json;
use crate::record::{ExperimentAttributes, Level, ObservationType};

/// What the task gave: its output as JSON, or why it failed.
pub(crate) type TaskOutcome = Result<Value, String>;

/// The experiment attributes of `item`'s trace (the task observation's id comes later).
fn attributes(run: &Run, item: &DatasetItem) -> ExperimentAttributes {
    ExperimentAttributes {
        id: run.experiment_id.clone(),
        name: run.run_name.clone(),
        description: run.description.clone(),
        metadata: run.metadata.as_ref().and_then(python_json::serialize),
        dataset_id: item.dataset_id.clone(),
        item_id: item.id.clone(),
        item_metadata: item
            .metadata
            .as_ref()
            .filter(|m| m.is_object())
            .and_then(python_json::serialize),
        item_expected_output: item
            .expected_output
            .as_ref()
            .and_then(python_json::serialize),
        item_root_observation_id: None,
    }
}

/// The observation metadata of the run and task observations: the run's keys, then the item's
/// and the experiment's metadata, then the run's keys again (they win), as the Python SDK does.
fn observation_metadata(run: &Run, item: &DatasetItem) -> Vec<(String, Value)> {
    let mut keys = vec![
        ("experiment_name".to_string(), json!(run.name)),
        ("experiment_run_name".to_string(), json!(run.run_name)),
    ];
    if let Some(dataset_id) = &item.dataset_id {
        keys.push(("dataset_id".into(), json!(dataset_id)));
        keys.push(("dataset_item_id".into(), json!(item.id)));
    }
    let mut all = keys.clone();
    for extra in [&item.metadata, &run.metadata].into_iter().flatten() {
        if let Some(object) = extra.as_object() {
            all.extend(object.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    all.extend(keys);
    all
}

fn set_metadata(metadata: &[(String, Value)]) {
    let handle = current_observation();
    for (key, value) in metadata {
        handle.metadata(key.clone(), value);
    }
}

/// Marks the current observation failed the way the Python SDK does.
fn record_failure(error: &str) {
    current_observation()
        .output(format!("Error: {error}"))
        .level(Level::Error)
        .status_message(error);
}

/// The `experiment-item-task` observation: the task runs inside it.
#[observe(name = "experiment-item-task", crate = crate, skip_all, capture_output = false)]
async fn item_task<W: Future<Output = TaskOutcome>>(
    run: &Run,
    item: &DatasetItem,
    experiment: &mut ExperimentAttributes,
    work: W,
) -> (Option<ObservationId>, TaskOutcome) {
    let task_id = current_observation().id();
    experiment.item_root_observation_id = task_id.map(|id| id.to_string());
    current_trace().experiment(Arc::new(experiment.clone()));
    current_observation().input(&item.input).experiment_item();
    set_metadata(&observation_metadata(run, item));
    let outcome = work.await;
    match &outcome {
        Ok(output) => {
            current_observation().output(output);
        }
        Err(error) => record_failure(error),
    }
    (task_id, outcome)
}

/// The `experiment-item-evaluation` observation: one `evaluator` observation per evaluator; each
/// evaluation becomes a score on the task observation.
#[observe(name = "experiment-item-evaluation", crate = crate, skip_all, capture_output = false)]
fn item_evaluation(
    run: &Run,
    input: &EvaluatorInput<'_>,
    task: Option<(TraceId, ObservationId)>,
) -> Vec<Evaluation> {
    let mut evaluations = Vec::new();
    let mut failed = 0;
    for (index, evaluator) in run.evaluators.iter().enumerate() {
        let observation = span(evaluator.name.clone())
            .as_type(ObservationType::Evaluator)
            .input(json!({
                "input": input.input,
                "output": input.output,
                "expected_output": input.expected_output,
                "metadata": input.metadata,
            }))
            .start();
        current_observation()
            .metadata("evaluator_kind", "item")
            .metadata("evaluator_index", index);
        let judged = catch_unwind(AssertUnwindSafe(|| (evaluator.judge)(input)))
            .unwrap_or_else(|panic| Err(format!("it panicked: {}", panic_text(&*panic))));
        match judged {
            Ok(found) => {
                current_observation()
                    .output(found.iter().map(Evaluation::to_json).collect::<Vec<_>>());
                for evaluation in &found {
                    if let Some((trace_id, task_id)) = task {
                        score(evaluation).observation(trace_id, task_id).send();
                    }
                }
                evaluations.extend(found);
            }
            Err(error) => {
                failed += 1;
                current_observation()
                    .output(json!({"error": error}))
                    .level(Level::Error)
                    .status_message(error.clone());
                diagnostics::warn(
                    &format!("evaluator {}", evaluator.name),
                    format!(
                        "the evaluator {:?} of the experiment {:?} failed, its scores for this \
                         item are lost: {error}",
                        evaluator.name, run.name
                    ),
                );
            }
        }
        observation.end();
    }
    current_observation().output(json!({
        "evaluator_count": run.evaluators.len(),
        "evaluation_count": evaluations.len(),
        "failed_evaluator_count": failed,
        "skipped_evaluator_count": 0,
    }));
    evaluations
}

/// The score an evaluation becomes (its target is set by the caller).
pub(crate) fn score(evaluation: &Evaluation) -> Score {
    let mut score = Score::new(evaluation.name.clone(), evaluation.value.clone());
    if let Some(comment) = &evaluation.comment {
        score = score.comment(comment.clone());
    }
    if let Some(Value::Object(metadata)) = &evaluation.metadata {
        for (key, value) in metadata {
            score = score.metadata(key.clone(), value);
        }
    }
    score
}

/// The `experiment-item-run` trace of one item: `work` is the task, not started yet.
#[observe(name = "experiment-item-run", crate = crate, skip_all, capture_output = false)]
pub(crate) async fn item_run<W: Future<Output = TaskOutcome>>(
    run: &Run,
    item: &DatasetItem,
    work: W,
) -> ItemResult {
    let trace_id = current_trace().id().unwrap_or_else(TraceId::random);
    let mut experiment = attributes(run, item);
    current_trace().experiment(Arc::new(experiment.clone()));
    current_observation().input(&item.input).experiment_item();
    let (task_id, outcome) = item_task(run, item, &mut experiment, work).await;
    let output = match outcome {
        Ok(output) => output,
        Err(error) => {
            record_failure(&error);
            return ItemResult {
                item: item.clone(),
                output: None,
                error: Some(error),
                evaluations: Vec::new(),
                trace_id,
            };
        }
    };
    current_observation().output(&output);
    set_metadata(&observation_metadata(run, item));
    let evaluations = if run.evaluators.is_empty() {
        Vec::new()
    } else {
        let input = EvaluatorInput {
            input: &item.input,
            output: &output,
            expected_output: item.expected_output.as_ref(),
            metadata: item.metadata.as_ref(),
        };
        let task = task_id.map(|task_id| (trace_id, task_id));
        item_evaluation(run, &input, task)
    };
    ItemResult {
        item: item.clone(),
        output: Some(output),
        error: None,
        evaluations,
        trace_id,
    }
}
