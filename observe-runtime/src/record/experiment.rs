//! [`ExperimentAttributes`]: what every span of an experiment item's trace carries, so that
//! Langfuse shows the trace in its Experiments view (the Python SDK 5.x layout). Values are kept
//! as the text sent, serialized as the Python SDK does. Plain data.

/// The experiment an item's trace belongs to, carried by every span of that trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ExperimentAttributes {
    /// The experiment id (`langfuse.experiment.id`).
    pub id: String,
    /// The run name (`langfuse.experiment.name`).
    pub name: String,
    /// The run's description (on the item's run and task observations only).
    pub description: Option<String>,
    /// The run's metadata as JSON text.
    pub metadata: Option<String>,
    /// The dataset, for items of a Langfuse dataset.
    pub dataset_id: Option<String>,
    /// The dataset item's id (for local data, a hash of the input).
    pub item_id: String,
    /// The item's metadata as JSON text.
    pub item_metadata: Option<String>,
    /// The item's expected output as text (on the item's run and task observations only).
    pub item_expected_output: Option<String>,
    /// The id of the item's task observation.
    pub item_root_observation_id: Option<String>,
}
