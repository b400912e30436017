//! Datasets: inputs with expected outputs kept in Langfuse, fetched whole ([`get_dataset`], every
//! active item, paged with the largest page Langfuse allows, one dataset read per call) and written
//! ([`create_dataset`], [`create_dataset_item`], an upsert by id). Local data is a
//! [`DatasetItem::local`]. Imports the REST client and the leaves.

mod create;

pub use create::{create_dataset, create_dataset_item, CreateDataset, CreateDatasetItem};

use std::borrow::Cow;
use std::sync::Arc;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::{self, ApiCore, ApiError};
use crate::percent;
use crate::python_json;

/// Items asked per page: the largest page Langfuse's public API serves, so a dataset costs as
/// few requests as it can (the datasets API is rate-limited on Langfuse Cloud).
pub(crate) const ITEMS_PER_PAGE: u32 = 100;

/// A dataset and its active items, in the order Langfuse keeps them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Dataset {
    /// The dataset's id.
    pub id: String,
    /// Its name (with folders: `evals/qa`).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its metadata.
    pub metadata: Option<Value>,
    /// Its items with status `ACTIVE` (archived ones take no part in experiments).
    pub items: Vec<DatasetItem>,
}

/// One input of a dataset, with the output expected for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DatasetItem {
    /// The item's id in Langfuse; for local data, the first 16 hex characters of SHA-256 of the
    /// input as the Python SDK serializes it (so both SDKs give the same item the same id).
    pub id: String,
    /// The dataset it belongs to; `None` for local data.
    pub dataset_id: Option<String>,
    /// The input given to the task.
    pub input: Value,
    /// The output expected, for evaluators.
    pub expected_output: Option<Value>,
    /// Metadata, for evaluators.
    pub metadata: Option<Value>,
    /// The trace the item was made from, if any.
    pub source_trace_id: Option<String>,
    /// The observation the item was made from, if any.
    pub source_observation_id: Option<String>,
}

impl DatasetItem {
    /// An item of local data, not kept in Langfuse (`expected_output` may be `()` for none).
    ///
    /// ```
    /// use observe_runtime::DatasetItem;
    /// let item = DatasetItem::local("What is 2+2?", "4");
    /// // The Python SDK's id of the same item: sha256("What is 2+2?")[:16].
    /// assert_eq!(item.id, "52cb6b5e4a038af1");
    /// assert_eq!(item.expected_output, Some(serde_json::json!("4")));
    /// ```
    pub fn local(input: impl Serialize, expected_output: impl Serialize) -> DatasetItem {
        let input_value = serde_json::to_value(&input).unwrap_or(Value::Null);
        let text = python_json::serialize(&input).unwrap_or_default();
        let digest = Sha256::digest(text.as_bytes());
        let id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let expected_output = serde_json::to_value(expected_output)
            .ok()
            .filter(|v| !v.is_null());
        DatasetItem {
            id,
            dataset_id: None,
            input: input_value,
            expected_output,
            metadata: None,
            source_trace_id: None,
            source_observation_id: None,
        }
    }

    /// The item with this metadata (for evaluators).
    pub fn with_metadata(mut self, metadata: impl Serialize) -> Self {
        self.metadata = serde_json::to_value(metadata).ok().filter(|v| !v.is_null());
        self
    }
}

#[derive(Deserialize)]
struct WireDataset {
    id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireItem {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    expected_output: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    source_trace_id: Option<String>,
    #[serde(default)]
    source_observation_id: Option<String>,
    #[serde(default)]
    dataset_id: Option<String>,
}

impl WireItem {
    pub(crate) fn is_active(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "ACTIVE")
    }

    pub(crate) fn into_item(self) -> DatasetItem {
        DatasetItem {
            id: self.id,
            dataset_id: self.dataset_id,
            input: self.input,
            expected_output: self.expected_output.filter(|v| !v.is_null()),
            metadata: self.metadata.filter(|v| !v.is_null()),
            source_trace_id: self.source_trace_id,
            source_observation_id: self.source_observation_id,
        }
    }
}

#[derive(Deserialize)]
struct Page {
    data: Vec<WireItem>,
    meta: PageMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageMeta {
    total_pages: u32,
}

/// A query parameter's value, percent-encoded.
pub(crate) fn encoded(text: &str) -> String {
    let mut out = String::new();
    percent::encode_into(text, &mut out);
    out
}

/// The dataset and every page of its items; runs on the API client's runtime.
async fn fetch_dataset(core: Arc<ApiCore>, name: String) -> Result<Dataset, ApiError> {
    let response = core
        .send(core.request(
            Method::GET,
            format!("/api/public/v2/datasets/{}", encoded(&name)),
        ))
        .await?;
    let wire: WireDataset = response.json()?;
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let response = core
            .send(core.request(
                Method::GET,
                format!(
                    "/api/public/dataset-items?datasetName={}&page={page}&limit={ITEMS_PER_PAGE}",
                    encoded(&name)
                ),
            ))
            .await?;
        let answer: Page = response.json()?;
        let fetched = answer.data.len();
        items.extend(
            answer
                .data
                .into_iter()
                .filter(WireItem::is_active)
                .map(|item| {
                    let mut item = item.into_item();
                    item.dataset_id.get_or_insert_with(|| wire.id.clone());
                    item
                }),
        );
        if page >= answer.meta.total_pages || fetched == 0 {
            break;
        }
        page += 1;
    }
    Ok(Dataset {
        id: wire.id,
        name: wire.name,
        description: wire.description,
        metadata: wire.metadata.filter(|v| !v.is_null()),
        items,
    })
}

/// The dataset `name` (folders included, `evals/qa`) with all its active items, paged for you.
/// Blocks this thread (any thread, with or without a runtime); from async code use
/// [`get_dataset_async`].
///
/// ```no_run
/// # fn demo() -> Result<(), observe_runtime::ApiError> {
/// let dataset = observe_runtime::get_dataset("evals/qa")?;
/// println!("{} items", dataset.items.len());
/// # Ok(()) }
/// ```
pub fn get_dataset<'a>(name: impl Into<Cow<'a, str>>) -> Result<Dataset, ApiError> {
    let api = api::installed()?;
    api.block_on(fetch_dataset(api.core().clone(), name.into().into_owned()))
}

/// [`get_dataset`] without blocking: works on any executor.
pub async fn get_dataset_async<'a>(name: impl Into<Cow<'a, str>>) -> Result<Dataset, ApiError> {
    let api = api::installed()?;
    let name = name.into().into_owned();
    api.run(fetch_dataset(api.core().clone(), name)).await
}
