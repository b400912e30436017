//! The write side of datasets: [`create_dataset`] (created, or updated by name) and
//! [`create_dataset_item`] (an upsert by id).

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{DatasetItem, WireItem};
use crate::api::{self, ApiError};
use crate::ids::{ObservationId, TraceId};

/// Sends one JSON body and returns the answer's JSON, blocking.
fn post(path: &'static str, body: Value) -> Result<Value, ApiError> {
    let api = api::installed()?;
    let core = api.core().clone();
    api.block_on(async move {
        let mut request = core.request(Method::POST, path);
        request.body = Some(body.to_string().into_bytes());
        core.send(request).await?.json::<Value>()
    })
}

/// A dataset to create (or update, when one has that name); see [`CreateDataset`].
///
/// ```no_run
/// # fn demo() -> Result<(), observe_runtime::ApiError> {
/// observe_runtime::create_dataset("evals/qa").description("questions with known answers").send()?;
/// observe_runtime::create_dataset_item("evals/qa", "What is 2+2?").expected_output("4").send()?;
/// # Ok(()) }
/// ```
pub fn create_dataset(name: impl Into<String>) -> CreateDataset {
    CreateDataset {
        body: {
            let mut body = Map::new();
            body.insert("name".into(), Value::String(name.into()));
            body
        },
    }
}

/// `POST /api/public/v2/datasets`, built by [`create_dataset`].
#[derive(Debug, Clone)]
#[must_use = "the dataset is created by .send()"]
pub struct CreateDataset {
    body: Map<String, Value>,
}

impl CreateDataset {
    /// Its description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.body
            .insert("description".into(), Value::String(description.into()));
        self
    }

    /// Its metadata (any `Serialize` value).
    pub fn metadata(mut self, metadata: impl Serialize) -> Self {
        insert_json(&mut self.body, "metadata", metadata);
        self
    }

    /// Creates (or updates) the dataset, blocking; returns its id.
    pub fn send(self) -> Result<String, ApiError> {
        let answer = post("/api/public/v2/datasets", Value::Object(self.body))?;
        Ok(answer
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }
}

/// An item to add to the dataset `dataset_name` (or to update, with `.id(..)`); see
/// [`CreateDatasetItem`].
pub fn create_dataset_item(
    dataset_name: impl Into<String>,
    input: impl Serialize,
) -> CreateDatasetItem {
    let mut body = Map::new();
    body.insert("datasetName".into(), Value::String(dataset_name.into()));
    body.insert(
        "input".into(),
        serde_json::to_value(input).unwrap_or(Value::Null),
    );
    CreateDatasetItem { body }
}

/// `POST /api/public/dataset-items`, built by [`create_dataset_item`].
#[derive(Debug, Clone)]
#[must_use = "the item is created by .send()"]
pub struct CreateDatasetItem {
    body: Map<String, Value>,
}

impl CreateDatasetItem {
    /// The output expected for the input.
    pub fn expected_output(mut self, output: impl Serialize) -> Self {
        insert_json(&mut self.body, "expectedOutput", output);
        self
    }

    /// Metadata for evaluators.
    pub fn metadata(mut self, metadata: impl Serialize) -> Self {
        insert_json(&mut self.body, "metadata", metadata);
        self
    }

    /// The item's id: sending the same id again updates the item.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.body.insert("id".into(), Value::String(id.into()));
        self
    }

    /// The trace (and observation) the item was made from, such as a production answer worth
    /// keeping as a test case.
    pub fn source(mut self, trace_id: TraceId, observation_id: Option<ObservationId>) -> Self {
        self.body
            .insert("sourceTraceId".into(), json!(trace_id.to_string()));
        if let Some(observation) = observation_id {
            self.body
                .insert("sourceObservationId".into(), json!(observation.to_string()));
        }
        self
    }

    /// Archives the item (`false`: it takes no part in experiments) or makes it active again.
    pub fn active(mut self, active: bool) -> Self {
        self.body.insert(
            "status".into(),
            json!(if active { "ACTIVE" } else { "ARCHIVED" }),
        );
        self
    }

    /// Creates (or updates) the item, blocking; returns it as Langfuse stored it.
    pub fn send(self) -> Result<DatasetItem, ApiError> {
        let answer = post("/api/public/dataset-items", Value::Object(self.body))?;
        serde_json::from_value::<WireItem>(answer)
            .map(WireItem::into_item)
            .map_err(|error| ApiError::InvalidResponse {
                method: "POST".into(),
                url: "/api/public/dataset-items".into(),
                reason: error.to_string(),
            })
    }
}

/// Sets `key` of a request body to `value` as JSON (`null` when it cannot be serialized).
fn insert_json(body: &mut Map<String, Value>, key: &str, value: impl Serialize) {
    body.insert(
        key.into(),
        serde_json::to_value(value).unwrap_or(Value::Null),
    );
}
