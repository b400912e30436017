//! What evaluators return: [`Evaluation`] (a score to be), what they are given
//! ([`EvaluatorInput`]), and [`IntoEvaluations`], the return types an evaluator may have.

use std::fmt::Display;

use serde::Serialize;
use serde_json::{json, Value};

use crate::record::ScoreValue;

/// One judgement of an evaluator; it becomes a score (on the item's task observation, or, from a
/// run evaluator, on the experiment run).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Evaluation {
    /// The score's name (`exact`, `helpfulness`, ...).
    pub name: String,
    /// Its value: a number, a `bool` or a category.
    pub value: ScoreValue,
    /// Why.
    pub comment: Option<String>,
    /// Anything else worth keeping with the score (a JSON object: one score metadata key per
    /// field).
    pub metadata: Option<Value>,
}

impl Evaluation {
    /// An evaluation named `name` with `value` (a number, a `bool`, or text for a category).
    ///
    /// ```
    /// use observe_runtime::Evaluation;
    /// let exact = Evaluation::new("exact", 1.0).comment("the same text");
    /// assert_eq!(exact.comment.as_deref(), Some("the same text"));
    /// ```
    pub fn new(name: impl Into<String>, value: impl Into<ScoreValue>) -> Self {
        Evaluation {
            name: name.into(),
            value: value.into(),
            comment: None,
            metadata: None,
        }
    }

    /// The evaluation with a comment.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The evaluation with metadata (a map or a struct).
    pub fn metadata(mut self, metadata: impl Serialize) -> Self {
        self.metadata = serde_json::to_value(metadata).ok().filter(|v| !v.is_null());
        self
    }

    /// The evaluation as the evaluator observation's output shows it.
    pub(crate) fn to_json(&self) -> Value {
        let value = match &self.value {
            ScoreValue::Numeric(number) => json!(number),
            ScoreValue::Boolean(flag) => json!(flag),
            ScoreValue::Categorical(text) => json!(text),
        };
        json!({
            "name": self.name,
            "value": value,
            "comment": self.comment,
            "metadata": self.metadata,
            "data_type": self.value.data_type(),
        })
    }
}

/// What an item evaluator is given: the item's input, the task's output, and the item's expected
/// output and metadata.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EvaluatorInput<'a> {
    /// The item's input.
    pub input: &'a Value,
    /// The task's output.
    pub output: &'a Value,
    /// The item's expected output.
    pub expected_output: Option<&'a Value>,
    /// The item's metadata.
    pub metadata: Option<&'a Value>,
}

/// What an evaluator may return: one [`Evaluation`], an `Option` or a `Vec` of them, or a
/// `Result` of any of these whose error is reported (the evaluator's scores are then lost, the
/// run goes on).
pub trait IntoEvaluations {
    /// The evaluations, or why there are none.
    fn into_evaluations(self) -> Result<Vec<Evaluation>, String>;
}

impl IntoEvaluations for Evaluation {
    fn into_evaluations(self) -> Result<Vec<Evaluation>, String> {
        Ok(vec![self])
    }
}

impl IntoEvaluations for Vec<Evaluation> {
    fn into_evaluations(self) -> Result<Vec<Evaluation>, String> {
        Ok(self)
    }
}

impl IntoEvaluations for Option<Evaluation> {
    fn into_evaluations(self) -> Result<Vec<Evaluation>, String> {
        Ok(self.into_iter().collect())
    }
}

impl<T: IntoEvaluations, E: Display> IntoEvaluations for Result<T, E> {
    fn into_evaluations(self) -> Result<Vec<Evaluation>, String> {
        self.map_err(|error| error.to_string())?.into_evaluations()
    }
}

/// The name an evaluator gets from its type: a function's own name (`exact_match`), else
/// `fallback` (closures have none).
pub(crate) fn evaluator_name<F>(fallback: impl FnOnce() -> String) -> String {
    let path = std::any::type_name::<F>();
    match path.rsplit("::").next() {
        Some(last) if !last.contains('{') && !last.contains('<') && !last.is_empty() => {
            last.to_string()
        }
        _ => fallback(),
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
