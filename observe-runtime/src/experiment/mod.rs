//! Experiments over datasets: an [`Experiment`] runs a task on every item of a [`Dataset`] (or
//! of local data), evaluates each output, and records everything as Langfuse v4 shows it in its
//! Experiments view: one trace per item with the experiment attributes on every span, the
//! evaluations as scores on the item's task observation, the run evaluations as scores on the
//! run. The top of the runtime: it uses the observation handles, the scores, the REST client and
//! the flush.

mod evaluation;
mod item;
mod result;
mod run;

pub use evaluation::{Evaluation, EvaluatorInput, IntoEvaluations};
pub use result::{ExperimentResult, ItemResult};

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt as _, StreamExt as _};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use self::evaluation::{evaluator_name, panic_text};
use self::item::{item_run, score, TaskOutcome};
use self::run::{ItemEvaluator, Run};
use crate::api;
use crate::dataset::{Dataset, DatasetItem};
use crate::diagnostics;
use crate::ids::ObservationId;

/// Items run at once by [`Experiment::run_blocking`] unless set: one thread each.
pub const DEFAULT_THREADS: usize = 8;
/// Items run at once by [`Experiment::run`] unless set.
pub const DEFAULT_TASKS: usize = 50;

type RunJudge = dyn Fn(&[ItemResult]) -> Result<Vec<Evaluation>, String> + Send + Sync;

struct RunEvaluator {
    name: String,
    judge: Arc<RunJudge>,
}

/// The data an experiment runs over: a [`Dataset`], or items (local data, or a selection).
pub trait ExperimentData {
    /// The items, in order.
    fn items(&self) -> &[DatasetItem];
}

impl ExperimentData for Dataset {
    fn items(&self) -> &[DatasetItem] {
        &self.items
    }
}

impl ExperimentData for [DatasetItem] {
    fn items(&self) -> &[DatasetItem] {
        self
    }
}

impl ExperimentData for Vec<DatasetItem> {
    fn items(&self) -> &[DatasetItem] {
        self
    }
}

impl<const N: usize> ExperimentData for [DatasetItem; N] {
    fn items(&self) -> &[DatasetItem] {
        self
    }
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExperimentError {
    /// The experiment is set up in a way that cannot run.
    Invalid {
        /// The experiment's name.
        name: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { name, reason } => write!(f, "experiment {name:?}: {reason}"),
        }
    }
}

impl std::error::Error for ExperimentError {}

/// A run over a dataset: a task on every item, evaluators on each output, run evaluators on all
/// of them. Built by value; each `evaluator` and `run_evaluator` call adds one.
///
/// ```no_run
/// use observe_runtime::{DatasetItem, Evaluation, EvaluatorInput, Experiment};
///
/// fn exact(input: &EvaluatorInput<'_>) -> Evaluation {
///     Evaluation::new("exact", Some(input.output) == input.expected_output)
/// }
///
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let data = vec![DatasetItem::local("2+2", "4"), DatasetItem::local("3+3", "6")];
/// let result = Experiment::new("arithmetic")
///     .description("small sums")
///     .evaluator(exact)
///     .run_blocking(&data, |item| -> Result<String, String> {
///         Ok(match item.input.as_str() { Some("2+2") => "4".into(), _ => "?".into() })
///     })?;
/// println!("{result}");
/// result.assert_mean("exact", 0.5);
/// # Ok(()) }
/// ```
#[must_use = "an experiment does nothing until .run_blocking(..) or .run(..)"]
pub struct Experiment {
    name: String,
    run_name: Option<String>,
    description: Option<String>,
    metadata: Option<Value>,
    max_concurrency: Option<usize>,
    experiment_id: Option<String>,
    evaluators: Vec<ItemEvaluator>,
    run_evaluators: Vec<RunEvaluator>,
}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Experiment")
            .field("name", &self.name)
            .field("run_name", &self.run_name)
            .field("max_concurrency", &self.max_concurrency)
            .field(
                "evaluators",
                &self.evaluators.iter().map(|e| &e.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Runs a future to its end on this thread (the blocking runner's items never wait on I/O of
/// ours; a task that does is woken like any future).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// The output of a task as JSON, or why it failed.
fn outcome<O: Serialize, E: fmt::Display>(result: Result<O, E>) -> TaskOutcome {
    match result {
        Ok(output) => serde_json::to_value(output)
            .map_err(|error| format!("the task's output could not be serialized: {error}")),
        Err(error) => Err(error.to_string()),
    }
}

/// The experiment id Langfuse itself derives for a dataset run: the first 16 hex characters of
/// SHA-256 of `["langfuse-experiment-v1", projectId, datasetId, runName]` as compact JSON.
pub(crate) fn dataset_run_experiment_id(
    project_id: &str,
    dataset_id: &str,
    run_name: &str,
) -> String {
    let payload =
        serde_json::to_string(&["langfuse-experiment-v1", project_id, dataset_id, run_name])
            .unwrap_or_default();
    Sha256::digest(payload.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Experiment {
    /// An experiment named `name` (runs of it are compared in Langfuse).
    pub fn new(name: impl Into<String>) -> Self {
        Experiment {
            name: name.into(),
            run_name: None,
            description: None,
            metadata: None,
            max_concurrency: None,
            experiment_id: None,
            evaluators: Vec::new(),
            run_evaluators: Vec::new(),
        }
    }

    /// The run's name (default `"<name> - <ISO time>"`). For a Langfuse dataset, the same run name
    /// gives the same experiment id, so re-runs and several workers add to one run.
    pub fn run_name(mut self, run_name: impl Into<String>) -> Self {
        self.run_name = Some(run_name.into());
        self
    }

    /// A description of the run.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Metadata of the run (model, temperature, prompt version...): a map or a struct.
    pub fn metadata(mut self, metadata: impl Serialize) -> Self {
        self.metadata = serde_json::to_value(metadata).ok().filter(|v| !v.is_null());
        self
    }

    /// Items run at once (default 8 threads for [`run_blocking`](Self::run_blocking), 50 tasks
    /// for [`run`](Self::run)).
    pub fn max_concurrency(mut self, items: usize) -> Self {
        self.max_concurrency = Some(items);
        self
    }

    /// The experiment id, for local data run by several processes into one experiment (by
    /// default local data gets a random id, a Langfuse dataset the id Langfuse derives).
    pub fn experiment_id(mut self, id: impl Into<String>) -> Self {
        self.experiment_id = Some(id.into());
        self
    }

    /// Adds an item evaluator: it judges each successful output and returns one or more
    /// [`Evaluation`]s (or an `Option`, or a `Result` whose error is reported). It is named after
    /// the function (`exact_match`); a closure is named `evaluator-<n>`: use
    /// [`named_evaluator`](Self::named_evaluator) to choose.
    pub fn evaluator<F, R>(self, evaluator: F) -> Self
    where
        F: Fn(&EvaluatorInput<'_>) -> R + Send + Sync + 'static,
        R: IntoEvaluations,
    {
        let name = evaluator_name::<F>(|| format!("evaluator-{}", self.evaluators.len() + 1));
        self.named_evaluator(name, evaluator)
    }

    /// Adds an item evaluator with this name (the name of its `evaluator` observation).
    pub fn named_evaluator<F, R>(mut self, name: impl Into<String>, evaluator: F) -> Self
    where
        F: Fn(&EvaluatorInput<'_>) -> R + Send + Sync + 'static,
        R: IntoEvaluations,
    {
        self.evaluators.push(ItemEvaluator {
            name: name.into(),
            judge: Arc::new(move |input| evaluator(input).into_evaluations()),
        });
        self
    }

    /// Adds a run evaluator: it judges all item results at once (an average, a pass rate); its
    /// evaluations become scores on the run.
    pub fn run_evaluator<F, R>(mut self, evaluator: F) -> Self
    where
        F: Fn(&[ItemResult]) -> R + Send + Sync + 'static,
        R: IntoEvaluations,
    {
        let name =
            evaluator_name::<F>(|| format!("run-evaluator-{}", self.run_evaluators.len() + 1));
        self.run_evaluators.push(RunEvaluator {
            name,
            judge: Arc::new(move |items| evaluator(items).into_evaluations()),
        });
        self
    }

    /// The shared state of a run, and the experiment's page once the project is known.
    fn prepare(
        &self,
        items: &[DatasetItem],
        project_id: Option<String>,
    ) -> Result<(Run, Option<String>), ExperimentError> {
        let invalid = |reason: &str| ExperimentError::Invalid {
            name: self.name.clone(),
            reason: reason.to_string(),
        };
        if self.name.trim().is_empty() {
            return Err(invalid("the name is empty; name the experiment"));
        }
        if self.max_concurrency == Some(0) {
            return Err(invalid(
                "max_concurrency is 0; allow at least 1 item at a time",
            ));
        }
        if let Some(id) = &self.experiment_id {
            if id.trim().is_empty() {
                return Err(invalid(
                    "the experiment id is empty; leave it out or give one",
                ));
            }
        }
        let run_name = self.run_name.clone().unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let time = crate::clock::iso8601(nanos);
            format!("{} - {}", self.name, String::from_utf8_lossy(&time))
        });
        let dataset_id = items.iter().find_map(|item| item.dataset_id.clone());
        let experiment_id = match (&self.experiment_id, &dataset_id, &project_id) {
            (Some(id), _, _) => id.clone(),
            (None, Some(dataset), Some(project)) => {
                dataset_run_experiment_id(project, dataset, &run_name)
            }
            (None, Some(_), None) => {
                diagnostics::warn(
                    "experiment-id",
                    format!(
                        "the project id could not be asked, so the run {run_name:?} gets a random \
                         experiment id: re-runs with the same run name will not add to it"
                    ),
                );
                ObservationId::random().to_string()
            }
            (None, None, _) => ObservationId::random().to_string(),
        };
        let url = api::installed().ok().zip(project_id).map(|(api, project)| {
            format!(
                "{}/project/{project}/experiments/results?baseline={}",
                api.base_url(),
                crate::dataset::encoded(&experiment_id)
            )
        });
        Ok((
            Run {
                name: self.name.clone(),
                run_name,
                description: self.description.clone(),
                metadata: self.metadata.clone(),
                experiment_id,
                evaluators: Vec::new(),
            },
            url,
        ))
    }

    /// The run evaluations, as scores on the run; then a flush; then the result.
    fn finish(&self, run: Run, url: Option<String>, items: Vec<ItemResult>) -> ExperimentResult {
        let mut run_evaluations = Vec::new();
        for evaluator in &self.run_evaluators {
            let judged = catch_unwind(AssertUnwindSafe(|| (evaluator.judge)(&items)))
                .unwrap_or_else(|panic| Err(format!("it panicked: {}", panic_text(&*panic))));
            match judged {
                Ok(found) => {
                    for evaluation in &found {
                        score(evaluation)
                            .dataset_run(run.experiment_id.clone())
                            .send();
                    }
                    run_evaluations.extend(found);
                }
                Err(error) => diagnostics::warn(
                    &format!("run evaluator {}", evaluator.name),
                    format!(
                        "the run evaluator {:?} of the experiment {:?} failed, its scores are \
                         lost: {error}",
                        evaluator.name, self.name
                    ),
                ),
            }
        }
        ExperimentResult {
            experiment_id: run.experiment_id,
            name: run.name,
            run_name: run.run_name,
            items,
            run_evaluations,
            url,
        }
    }

    fn with_evaluators(&self, mut run: Run) -> Run {
        run.evaluators = self
            .evaluators
            .iter()
            .map(|e| ItemEvaluator {
                name: e.name.clone(),
                judge: e.judge.clone(),
            })
            .collect();
        run
    }

    /// Runs `task` on every item on threads of its own (at most `max_concurrency`, default 8),
    /// evaluates, scores, flushes, and returns every item's result. A task's `Err` or panic
    /// fails that item only: its trace records the error, its evaluators are skipped, the run
    /// goes on. Blocks this thread until the run and its flush are done.
    pub fn run_blocking<D, F, O, E>(
        &self,
        data: &D,
        task: F,
    ) -> Result<ExperimentResult, ExperimentError>
    where
        D: ExperimentData + ?Sized,
        F: Fn(&DatasetItem) -> Result<O, E> + Send + Sync,
        O: Serialize,
        E: fmt::Display,
    {
        let items = data.items();
        let project_id = project_id_blocking();
        let (run, url) = self.prepare(items, project_id)?;
        let run = self.with_evaluators(run);
        let threads = self
            .max_concurrency
            .unwrap_or(DEFAULT_THREADS)
            .min(items.len())
            .max(1);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<ItemResult>>> = Mutex::new(vec![None; items.len()]);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else {
                        break;
                    };
                    let work = async {
                        catch_unwind(AssertUnwindSafe(|| task(item)))
                            .map_err(|panic| format!("the task panicked: {}", panic_text(&*panic)))
                            .and_then(outcome)
                    };
                    let result = block_on(item_run(&run, item, work));
                    let mut results = crate::sync::lock(&results);
                    results[index] = Some(result);
                });
            }
        });
        let items = results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
            .collect();
        let result = self.finish(run, url, items);
        let _ = crate::lifecycle::flush();
        Ok(result)
    }

    /// [`run_blocking`](Self::run_blocking) for async tasks: at most `max_concurrency` (default
    /// 50) items at once on the caller's executor (tokio, either flavour, or any other); the final
    /// flush waits on a thread of its own, never on the executor.
    pub async fn run<D, F, Fut, O, E>(
        &self,
        data: &D,
        task: F,
    ) -> Result<ExperimentResult, ExperimentError>
    where
        D: ExperimentData + ?Sized,
        F: Fn(&DatasetItem) -> Fut,
        Fut: Future<Output = Result<O, E>>,
        O: Serialize,
        E: fmt::Display,
    {
        let items = data.items();
        let project_id = project_id_async().await;
        let (run, url) = self.prepare(items, project_id)?;
        let run = self.with_evaluators(run);
        let limit = self.max_concurrency.unwrap_or(DEFAULT_TASKS);
        let run_ref = &run;
        let task_ref = &task;
        let mut results: Vec<(usize, ItemResult)> =
            futures_util::stream::iter(items.iter().enumerate())
                .map(|(index, item)| async move {
                    let work = async move {
                        match AssertUnwindSafe(async { task_ref(item).await })
                            .catch_unwind()
                            .await
                        {
                            Ok(result) => outcome(result),
                            Err(panic) => {
                                Err(format!("the task panicked: {}", panic_text(&*panic)))
                            }
                        }
                    };
                    (index, item_run(run_ref, item, work).await)
                })
                .buffer_unordered(limit)
                .collect()
                .await;
        results.sort_by_key(|(index, _)| *index);
        let items = results.into_iter().map(|(_, result)| result).collect();
        let result = self.finish(run, url, items);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = sender.send(crate::lifecycle::flush());
        });
        let _ = receiver.await;
        Ok(result)
    }
}

/// The project id (asked once per client): a dataset run's experiment id derives from it, and
/// the run's page needs it.
fn project_id_blocking() -> Option<String> {
    let api = api::installed().ok()?;
    api::project_id(&api).ok()
}

async fn project_id_async() -> Option<String> {
    let api = api::installed().ok()?;
    api::project_id_async(&api).await.ok()
}
