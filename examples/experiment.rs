//! An experiment: a task run over a dataset, each answer evaluated, the run summarised, and all
//! of it recorded in Langfuse's Experiments view (one trace per item, evaluations as scores).
//!
//! `cargo run --example experiment` runs over a small local dataset and needs no keys: without
//! `LANGFUSE_*` variables the traces are printed as trees, then the summary table.
//! `cargo run --example experiment -- <dataset name>` with `LANGFUSE_PUBLIC_KEY`,
//! `LANGFUSE_SECRET_KEY` (and `LANGFUSE_BASE_URL`) runs over that Langfuse dataset instead; its
//! items' inputs are sums such as `"2+3"`.

use observe_runtime::{
    get_dataset, observe, DatasetItem, Evaluation, EvaluatorInput, Experiment, ItemResult,
};

/// A stand-in for an LLM call: adds the numbers of a sum, and gets sums over 10 wrong.
#[observe(as_type = "generation")]
fn solve(question: &str) -> Result<String, String> {
    observe_runtime::current_observation().model("adder-v1");
    let total: i64 = question
        .split('+')
        .map(|n| {
            n.trim()
                .parse::<i64>()
                .map_err(|_| format!("not a sum: {question:?}"))
        })
        .sum::<Result<_, _>>()?;
    Ok(if total > 10 { total + 1 } else { total }.to_string())
}

/// 1 when the answer is the expected one.
fn exact(input: &EvaluatorInput<'_>) -> Evaluation {
    let correct = Some(input.output) == input.expected_output;
    Evaluation::new("exact", if correct { 1.0 } else { 0.0 })
}

/// The share of items answered exactly.
fn accuracy(items: &[ItemResult]) -> Evaluation {
    let correct = items
        .iter()
        .flat_map(|item| &item.evaluations)
        .filter(|e| e.name == "exact" && e.value == 1.0.into())
        .count();
    Evaluation::new("accuracy", correct as f64 / items.len().max(1) as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = observe_runtime::init()?;
    let items = match std::env::args().nth(1) {
        Some(name) => get_dataset(name.as_str())?.items,
        None => vec![
            DatasetItem::local("2+2", "4"),
            DatasetItem::local("3+4", "7"),
            DatasetItem::local("5+6", "11"),
            DatasetItem::local("two+two", "4"),
        ],
    };
    let result = Experiment::new("adder")
        .description("sums answered by adder-v1")
        .metadata(serde_json::json!({"model": "adder-v1"}))
        .max_concurrency(2)
        .evaluator(exact)
        .run_evaluator(accuracy)
        .run_blocking(&items, |item| {
            let question = item.input.as_str().ok_or("the input is not text")?;
            solve(question)
        })?;
    print!("{result}");
    Ok(())
}
