//! What every item of a run shares: [`Run`] (names, ids, the item evaluators).

use std::sync::Arc;

use serde_json::Value;

use super::evaluation::{Evaluation, EvaluatorInput};

pub(crate) type ItemJudge =
    dyn Fn(&EvaluatorInput<'_>) -> Result<Vec<Evaluation>, String> + Send + Sync;

pub(crate) struct ItemEvaluator {
    pub(crate) name: String,
    pub(crate) judge: Arc<ItemJudge>,
}

/// What every item of a run shares.
pub(crate) struct Run {
    pub(crate) name: String,
    pub(crate) run_name: String,
    pub(crate) description: Option<String>,
    pub(crate) metadata: Option<Value>,
    pub(crate) experiment_id: String,
    pub(crate) evaluators: Vec<ItemEvaluator>,
}
