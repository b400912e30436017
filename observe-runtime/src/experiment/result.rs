//! What a run returns: [`ItemResult`] per item and [`ExperimentResult`], whose `Display` is the
//! summary table (items, failures, the mean of each numeric score, the counts of each category)
//! and whose `assert_mean` fails a test or a CI step.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::Evaluation;
use crate::dataset::DatasetItem;
use crate::ids::TraceId;
use crate::record::ScoreValue;

/// What became of one item: the task's output or error, its evaluations, and its trace.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ItemResult {
    /// The item.
    pub item: DatasetItem,
    /// The task's output (as JSON); `None` when the task failed.
    pub output: Option<Value>,
    /// Why the task failed (its error's text, or the panic's message); the item then has no
    /// evaluations.
    pub error: Option<String>,
    /// The evaluations of its evaluators.
    pub evaluations: Vec<Evaluation>,
    /// The item's trace.
    pub trace_id: TraceId,
}

/// What a run did: every item's result in the order of the data, and the run evaluations.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExperimentResult {
    /// The experiment's id (`langfuse.experiment.id`; run scores carry it as `datasetRunId`).
    pub experiment_id: String,
    /// The experiment's name.
    pub name: String,
    /// The run's name.
    pub run_name: String,
    /// Every item, failed ones with `error: Some` and no evaluations.
    pub items: Vec<ItemResult>,
    /// The evaluations of the run evaluators.
    pub run_evaluations: Vec<Evaluation>,
    pub(crate) url: Option<String>,
}

/// A score's values across items.
enum Column {
    Numbers(Vec<f64>),
    Categories(BTreeMap<String, usize>),
}

impl ExperimentResult {
    /// The run's page in Langfuse (its Experiments view), when the project is known.
    pub fn url(&self) -> Option<String> {
        self.url.clone()
    }

    /// How many items failed.
    pub fn failed(&self) -> usize {
        self.items
            .iter()
            .filter(|item| item.error.is_some())
            .count()
    }

    /// The mean of the numeric or boolean evaluations named `name` over the items (`true` is 1);
    /// `None` when no item has one.
    pub fn mean(&self, name: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .items
            .iter()
            .flat_map(|item| &item.evaluations)
            .filter(|evaluation| evaluation.name == name)
            .filter_map(|evaluation| number(&evaluation.value))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Panics, with the summary table, unless the mean of `name` is at least `minimum` (and no
    /// item failed): one line to fail a `#[test]` or a CI step on a regression.
    ///
    /// ```no_run
    /// # fn demo(result: observe_runtime::ExperimentResult) {
    /// result.assert_mean("exact", 0.8);
    /// # }
    /// ```
    #[track_caller]
    pub fn assert_mean(&self, name: &str, minimum: f64) {
        match self.mean(name) {
            Some(mean) if mean >= minimum && self.failed() == 0 => {}
            Some(mean) if mean >= minimum => panic!(
                "{} item(s) failed in the experiment run {:?}\n{self}",
                self.failed(),
                self.run_name
            ),
            Some(mean) => panic!("the mean of {name:?} is {mean:.3}, below {minimum}\n{self}"),
            None => panic!("no item has a numeric evaluation named {name:?}\n{self}"),
        }
    }

    fn columns(&self) -> BTreeMap<&str, Column> {
        let mut columns: BTreeMap<&str, Column> = BTreeMap::new();
        for evaluation in self.items.iter().flat_map(|item| &item.evaluations) {
            match &evaluation.value {
                ScoreValue::Categorical(category) => {
                    let column = columns
                        .entry(&evaluation.name)
                        .or_insert_with(|| Column::Categories(BTreeMap::new()));
                    if let Column::Categories(counts) = column {
                        *counts.entry(category.clone()).or_default() += 1;
                    }
                }
                value => {
                    let column = columns
                        .entry(&evaluation.name)
                        .or_insert_with(|| Column::Numbers(Vec::new()));
                    if let (Column::Numbers(values), Some(number)) = (column, number(value)) {
                        values.push(number);
                    }
                }
            }
        }
        columns
    }
}

fn number(value: &ScoreValue) -> Option<f64> {
    match value {
        ScoreValue::Numeric(number) => Some(*number),
        ScoreValue::Boolean(flag) => Some(f64::from(u8::from(*flag))),
        ScoreValue::Categorical(_) => None,
    }
}

fn shown(value: &ScoreValue) -> String {
    match value {
        ScoreValue::Numeric(number) => format!("{number:.3}"),
        ScoreValue::Boolean(flag) => flag.to_string(),
        ScoreValue::Categorical(text) => text.clone(),
    }
}

impl fmt::Display for ExperimentResult {
    /// The summary table:
    ///
    /// ```text
    /// experiment "qa" · run "qa - 2026-12-03T10:00:00.000000Z" · id 3f2a…
    /// 10 items, 1 failed
    /// score   n   mean / counts
    /// exact   9   0.778
    /// tone    9   friendly 6, neutral 3
    /// run: average_exact 0.778
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "experiment {:?} · run {:?} · id {}",
            self.name, self.run_name, self.experiment_id
        )?;
        writeln!(f, "{} items, {} failed", self.items.len(), self.failed())?;
        let columns = self.columns();
        if !columns.is_empty() {
            let width = columns
                .keys()
                .map(|name| name.len())
                .max()
                .unwrap_or(0)
                .max(5);
            writeln!(f, "{:width$}  {:>4}  mean / counts", "score", "n")?;
            for (name, column) in &columns {
                match column {
                    Column::Numbers(values) => {
                        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
                        writeln!(f, "{name:width$}  {:>4}  {mean:.3}", values.len())?;
                    }
                    Column::Categories(counts) => {
                        let total: usize = counts.values().sum();
                        let text: Vec<String> = counts
                            .iter()
                            .map(|(category, count)| format!("{category} {count}"))
                            .collect();
                        writeln!(f, "{name:width$}  {total:>4}  {}", text.join(", "))?;
                    }
                }
            }
        }
        for evaluation in &self.run_evaluations {
            writeln!(f, "run: {} {}", evaluation.name, shown(&evaluation.value))?;
        }
        for item in self.items.iter().filter(|item| item.error.is_some()) {
            writeln!(
                f,
                "failed: item {} (trace {}): {}",
                item.item.id,
                item.trace_id,
                item.error.as_deref().unwrap_or_default()
            )?;
        }
        if let Some(url) = &self.url {
            writeln!(f, "{url}")?;
        }
        Ok(())
    }
}
