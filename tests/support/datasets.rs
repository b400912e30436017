//! Langfuse's datasets, as the fake server plays them: a store of datasets and their items and the
//! answers of the routes the SDKs use (the OpenAPI document, schemas `Dataset`, `DatasetItem`,
//! `CreateDatasetRequest`, `CreateDatasetItemRequest`, `PaginatedDatasetItems`; Langfuse v4.16's
//! `publicDatasetService`, `upsertDataset`, `upsertDatasetItem` and zod 4 texts):
//!
//! - `GET /api/public/v2/datasets/{datasetName}`: the name is one percent-encoded path segment
//!   (`team%2Fqa` is the dataset `team/qa`); unknown: 404 [`DATASET_NOT_FOUND`].
//! - `POST /api/public/v2/datasets`: a `CreateDatasetRequest`; creates the dataset, or updates
//!   the one of that name (a `description` or `metadata` absent or null is left as it was);
//!   answers the `Dataset` with 200.
//! - `GET /api/public/v2/datasets?page=…&limit=…`: every dataset, newest first.
//! - `GET /api/public/dataset-items?datasetName=…&page=…&limit=…` (also `sourceTraceId`,
//!   `sourceObservationId`, `version`): a page of items, newest first (`createdAt` descending,
//!   then `id` ascending, as Langfuse orders them), ARCHIVED items included unless
//!   [`DatasetStore::items_active_only`] is set; `page` from 1 (default 1), `limit` from 1 to
//!   [`MAX_ITEMS_LIMIT`] (default [`DEFAULT_ITEMS_LIMIT`]), anything else a 400 whose zod issue
//!   says why ([`LIMIT_TOO_BIG`], ...); without `datasetName` the items of every dataset;
//!   unknown dataset: 404 [`DATASET_NOT_FOUND`]. `version` needs `datasetName`
//!   ([`VERSION_NEEDS_DATASET_NAME`]) and is otherwise ignored (not even read as a date): the
//!   store keeps no history, items are answered as they are now.
//! - `POST /api/public/dataset-items`: a `CreateDatasetItemRequest`; upserts by `id` (a random
//!   UUID when absent): a new item gets `status` ACTIVE and null for what it was not given, an
//!   existing one keeps what the request leaves absent or null; unknown dataset: 404
//!   [`dataset_not_found_for_project`]; an id of another dataset: 409 [`item_in_other_dataset`];
//!   answers the `DatasetItem` with 200.
//!
//! Timestamps the store writes are strictly increasing (one millisecond apart at least), so the
//! newest-first order is the order of creation reversed, even within one millisecond (Langfuse
//! would break such a tie by `id`), unless a seeded item or dataset brings its own `createdAt`.
//! Authentication and faults are the server's business (`server.rs`); this module sees only
//! authenticated requests. Dataset JSON schemas (`inputSchema`, `expectedOutputSchema`) are
//! stored as sent, never applied to items; `mediaReferences` is always empty.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::prompts::{encode_segment, iso8601_millis, json_body, percent_decode, query_param};

/// The create route, and the prefix of the dataset fetch route.
pub const DATASETS_PATH: &str = "/api/public/v2/datasets";
/// The item list and item create route.
pub const DATASET_ITEMS_PATH: &str = "/api/public/dataset-items";

/// 404 to a fetch of an unknown dataset, and to an item list of one.
pub const DATASET_NOT_FOUND: &str = "Dataset not found";
/// The `message` of a 400 whose query or body failed validation; the zod issues are in `error`.
pub const INVALID_REQUEST_DATA: &str = "Invalid request data";
/// The `limit` an item list without one gets.
pub const DEFAULT_ITEMS_LIMIT: u64 = 50;
/// The largest `limit` an item list accepts.
pub const MAX_ITEMS_LIMIT: u64 = 100;
/// The zod issue of a `limit` over [`MAX_ITEMS_LIMIT`] (path `["limit"]`).
pub const LIMIT_TOO_BIG: &str = "Too big: expected number to be <=100";
/// The zod issue of a `limit` under 1 (path `["limit"]`).
pub const LIMIT_TOO_SMALL: &str = "Too small: expected number to be >=1";
/// The zod issue of a `page` under 1 (path `["page"]`).
pub const PAGE_TOO_SMALL: &str = "Too small: expected number to be >0";
/// The zod issue of a `page` or `limit` that is not an integer.
pub const EXPECTED_INT: &str = "Invalid input: expected int, received number";
/// The zod issue of a `page` or `limit` that is not a number.
pub const EXPECTED_NUMBER: &str = "Invalid input: expected number, received NaN";
/// The zod issue of an item list with `version` but no `datasetName` (path `["datasetName"]`).
pub const VERSION_NEEDS_DATASET_NAME: &str =
    "datasetName is required when version parameter is provided";
/// The zod issue of an empty item `id`.
pub const ITEM_ID_EMPTY: &str = "ID must not be empty";
/// The zod issue of an item `id` over 255 characters.
pub const ITEM_ID_TOO_LONG: &str = "ID must be at most 255 characters";
/// 400 to a dataset path whose percent-encoding is broken.
pub const INVALID_PATH_ENCODING: &str = "Invalid percent-encoding in the dataset path";
/// The item statuses Langfuse knows; the first is the default.
pub const STATUSES: [&str; 2] = ["ACTIVE", "ARCHIVED"];

/// 404 to an item create for an unknown dataset:
/// `Dataset <name> not found for project <projectId>`.
pub fn dataset_not_found_for_project(name: &str, project_id: &str) -> String {
    format!("Dataset {name} not found for project {project_id}")
}

/// 409 to an item create whose `id` belongs to an item of another dataset.
pub fn item_in_other_dataset(item_id: &str, other_dataset_id: &str) -> String {
    format!(
        "Dataset item id {item_id} already exists in another dataset (id {other_dataset_id}) in this project; item ids are unique per project across datasets. Use a different id or target dataset {other_dataset_id}."
    )
}

/// 400 to a dataset create with an invalid name: `Dataset name not valid. <reason>` (Langfuse
/// appends zod's error message, a JSON list of the issues; this fake appends the first reason).
pub fn invalid_dataset_name(reason: &str) -> String {
    format!("Dataset name not valid. {reason}")
}

/// Whether `path` (without the query) is a dataset route or below one.
pub fn is_dataset_path(path: &str) -> bool {
    is_at_or_below(path, DATASETS_PATH) || is_at_or_below(path, DATASET_ITEMS_PATH)
}

/// `/api/public/v2/datasets/<name percent-encoded as one segment>`.
pub fn dataset_path(name: &str) -> String {
    format!("{DATASETS_PATH}/{}", encode_segment(name))
}

/// `/api/public/dataset-items?datasetName=<name>&page=<page>&limit=<limit>`.
pub fn dataset_items_target(name: &str, page: u64, limit: u64) -> String {
    format!(
        "{DATASET_ITEMS_PATH}?datasetName={}&page={page}&limit={limit}",
        encode_segment(name)
    )
}

fn is_at_or_below(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Which dataset route a request is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetRoute {
    /// `GET /api/public/v2/datasets/{datasetName}` (name decoded).
    Get { name: String },
    /// `GET /api/public/v2/datasets`.
    List,
    /// `POST /api/public/v2/datasets`.
    Create,
    /// `GET /api/public/dataset-items`.
    ListItems,
    /// `POST /api/public/dataset-items`.
    CreateItem,
    /// A known path with another method.
    MethodNotAllowed,
    /// A path below the dataset routes that is none of the above (e.g. an unencoded `/` in the
    /// name, or `/api/public/dataset-items/{id}`, which this fake does not play).
    NotFound,
    /// The name segment is not valid percent-encoding.
    BadEncoding,
}

/// The route of `method` on `path` (without the query).
pub fn route(method: &str, path: &str) -> DatasetRoute {
    let on = |get: DatasetRoute, post: DatasetRoute| match method {
        "GET" => get,
        "POST" => post,
        _ => DatasetRoute::MethodNotAllowed,
    };
    if path == DATASETS_PATH {
        return on(DatasetRoute::List, DatasetRoute::Create);
    }
    if path == DATASET_ITEMS_PATH {
        return on(DatasetRoute::ListItems, DatasetRoute::CreateItem);
    }
    let Some(rest) = path
        .strip_prefix(DATASETS_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return DatasetRoute::NotFound;
    };
    if rest.is_empty() || rest.contains('/') {
        return DatasetRoute::NotFound;
    }
    let Some(name) = percent_decode(rest) else {
        return DatasetRoute::BadEncoding;
    };
    match method {
        "GET" => DatasetRoute::Get { name },
        _ => DatasetRoute::MethodNotAllowed,
    }
}

/// Every dataset and every item; each a full `Dataset` or `DatasetItem` JSON object, in the
/// order they were first stored.
#[derive(Debug)]
pub struct DatasetStore {
    datasets: Vec<Value>,
    items: Vec<Value>,
    /// The `projectId` of every stored dataset.
    project_id: String,
    /// The last timestamp the store wrote, in milliseconds since the Unix epoch.
    last_millis: u64,
    /// Whether the item list leaves ARCHIVED items out, as Langfuse does since April 2026
    /// (v3.16x, every v4); false (the default) plays older Langfuse, which lists them too.
    pub items_active_only: bool,
}

impl DatasetStore {
    /// An empty store for the project `project_id`.
    pub fn new(project_id: &str) -> Self {
        DatasetStore {
            datasets: Vec::new(),
            items: Vec::new(),
            project_id: project_id.to_owned(),
            last_millis: 0,
            items_active_only: false,
        }
    }

    /// Stores `dataset` (a `Dataset` JSON object) as given, replacing the dataset of that name if
    /// stored (and keeping its `id` when none is given; its items follow a new one). `name` (a string) is required; missing
    /// `id` (a random UUID), `description`, `metadata`, `inputSchema`, `expectedOutputSchema`
    /// (null), `projectId`, `createdAt`, `updatedAt` are filled in. Panics on a dataset without a
    /// name: this is for seeding by tests.
    pub fn put_dataset(&mut self, dataset: Value) {
        let Value::Object(mut object) = dataset else {
            panic!("put_dataset takes a JSON object, got {dataset}");
        };
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("put_dataset: `name` must be a string in {object:?}"))
            .to_owned();
        let existing = self.position_of_dataset(&name);
        let id = existing
            .map(|position| self.datasets[position]["id"].clone())
            .unwrap_or_else(|| json!(random_uuid()));
        let now = self.timestamp();
        let defaults = [
            ("id", id),
            ("description", Value::Null),
            ("metadata", Value::Null),
            ("inputSchema", Value::Null),
            ("expectedOutputSchema", Value::Null),
            ("projectId", json!(self.project_id)),
            ("createdAt", json!(now)),
            ("updatedAt", json!(now)),
        ];
        for (key, value) in defaults {
            object.entry(key).or_insert(value);
        }
        let id = object["id"].clone();
        match existing {
            Some(position) => self.datasets[position] = Value::Object(object),
            None => self.datasets.push(Value::Object(object)),
        }
        for item in &mut self.items {
            if item["datasetName"].as_str() == Some(&name) {
                item["datasetId"] = id.clone();
            }
        }
    }

    /// Stores `item` (a `DatasetItem` JSON object) as given, replacing the item of that `id` if
    /// stored. `datasetName` (a string, of a stored dataset) is required; missing `id` (a random
    /// UUID), `status` (ACTIVE), `input`, `expectedOutput`, `metadata`, `sourceTraceId`,
    /// `sourceObservationId` (null), `createdAt`, `updatedAt`, `mediaReferences` (`[]`) are
    /// filled in, and `datasetId` is the dataset's. Panics without `datasetName` or when no
    /// dataset has that name: this is for seeding by tests.
    pub fn put_item(&mut self, item: Value) {
        let Value::Object(mut object) = item else {
            panic!("put_dataset_item takes a JSON object, got {item}");
        };
        let dataset_name = object
            .get("datasetName")
            .and_then(Value::as_str)
            .unwrap_or_else(|| {
                panic!("put_dataset_item: `datasetName` must be a string in {object:?}")
            })
            .to_owned();
        let dataset_id = self
            .dataset(&dataset_name)
            .map(|dataset| dataset["id"].clone())
            .unwrap_or_else(|| {
                panic!("put_dataset_item: no dataset {dataset_name:?}; put_dataset it first")
            });
        object.insert("datasetId".into(), dataset_id);
        let now = self.timestamp();
        let defaults = [
            ("id", json!(random_uuid())),
            ("status", json!(STATUSES[0])),
            ("input", Value::Null),
            ("expectedOutput", Value::Null),
            ("metadata", Value::Null),
            ("sourceTraceId", Value::Null),
            ("sourceObservationId", Value::Null),
            ("createdAt", json!(now)),
            ("updatedAt", json!(now)),
            ("mediaReferences", json!([])),
        ];
        for (key, value) in defaults {
            object.entry(key).or_insert(value);
        }
        let id = object["id"].clone();
        match self.items.iter().position(|item| item["id"] == id) {
            Some(position) => self.items[position] = Value::Object(object),
            None => self.items.push(Value::Object(object)),
        }
    }

    /// The dataset `name`.
    pub fn dataset(&self, name: &str) -> Option<Value> {
        self.position_of_dataset(name)
            .map(|position| self.datasets[position].clone())
    }

    /// Every dataset, in the order `GET /api/public/v2/datasets` answers them (newest first).
    pub fn datasets(&self) -> Vec<Value> {
        let mut datasets = self.datasets.clone();
        datasets.sort_by(newest_first);
        datasets
    }

    /// Every item of the dataset `name`, ARCHIVED ones included, in the order the item list
    /// answers them (newest first).
    pub fn items(&self, name: &str) -> Vec<Value> {
        let mut items: Vec<Value> = self
            .items
            .iter()
            .filter(|item| item["datasetName"].as_str() == Some(name))
            .cloned()
            .collect();
        items.sort_by(newest_first);
        items
    }

    /// Answers an authenticated request on `route` (`Get`, `List`, `Create`, `ListItems` or
    /// `CreateItem`; the others are the server's) with a status and a JSON body. `query` is the
    /// query string without `?`; `content_type` the request's header.
    pub fn answer(
        &mut self,
        route: &DatasetRoute,
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        match route {
            DatasetRoute::Get { name } => match self.dataset(name) {
                Some(dataset) => (200, dataset),
                None => not_found(DATASET_NOT_FOUND),
            },
            DatasetRoute::List => self.answer_list(query),
            DatasetRoute::Create => match json_body(content_type, body) {
                Ok(body) => self.answer_create(&body),
                Err(answer) => answer,
            },
            DatasetRoute::ListItems => self.answer_list_items(query),
            DatasetRoute::CreateItem => match json_body(content_type, body) {
                Ok(body) => self.answer_create_item(&body),
                Err(answer) => answer,
            },
            DatasetRoute::MethodNotAllowed => message(405, "Method not allowed"),
            DatasetRoute::NotFound => message(404, "Not found"),
            DatasetRoute::BadEncoding => message(400, INVALID_PATH_ENCODING),
        }
    }

    fn answer_list(&self, query: &str) -> (u16, Value) {
        let mut issues = Vec::new();
        let (page, limit) = pagination(query, &mut issues);
        if !issues.is_empty() {
            return invalid(issues);
        }
        page_of(self.datasets(), page, limit)
    }

    fn answer_create(&mut self, body: &Value) -> (u16, Value) {
        let Some(object) = body.as_object() else {
            return invalid(vec![expected("object", Some(body), &[])]);
        };
        let mut issues = Vec::new();
        let name = match object.get("name") {
            Some(Value::String(name)) => Some(name.clone()),
            other => {
                issues.push(expected("string", other, &["name"]));
                None
            }
        };
        if let Some(other) = object.get("description").filter(|d| !d.is_null()) {
            if !other.is_string() {
                issues.push(expected("string", Some(other), &["description"]));
            }
        }
        for key in ["inputSchema", "expectedOutputSchema"] {
            if let Some(other) = object.get(key).filter(|s| !s.is_null()) {
                if !other.is_object() {
                    issues.push(expected("record", Some(other), &[key]));
                }
            }
        }
        let Some(name) = name.filter(|_| issues.is_empty()) else {
            return invalid(issues);
        };
        if let Err(reason) = check_dataset_name(&name) {
            return (
                400,
                json!({"message": invalid_dataset_name(reason), "error": "InvalidRequestError"}),
            );
        }
        let now = self.timestamp();
        let given = |key: &str| object.get(key).filter(|value| !value.is_null()).cloned();
        // Absent keeps the stored schema; null clears it.
        let schema = |key: &str| object.get(key).cloned();
        let dataset = match self.position_of_dataset(&name) {
            Some(position) => {
                let dataset = &mut self.datasets[position];
                for key in ["description", "metadata"] {
                    if let Some(value) = given(key) {
                        dataset[key] = value;
                    }
                }
                for key in ["inputSchema", "expectedOutputSchema"] {
                    if let Some(value) = schema(key) {
                        dataset[key] = value;
                    }
                }
                dataset["updatedAt"] = json!(now);
                dataset.clone()
            }
            None => {
                let dataset = json!({
                    "id": random_uuid(),
                    "name": name,
                    "description": given("description").unwrap_or(Value::Null),
                    "metadata": given("metadata").unwrap_or(Value::Null),
                    "inputSchema": schema("inputSchema").unwrap_or(Value::Null),
                    "expectedOutputSchema": schema("expectedOutputSchema").unwrap_or(Value::Null),
                    "projectId": self.project_id,
                    "createdAt": now,
                    "updatedAt": now,
                });
                self.datasets.push(dataset.clone());
                dataset
            }
        };
        (200, dataset)
    }

    fn answer_list_items(&self, query: &str) -> (u16, Value) {
        let mut issues = Vec::new();
        let (page, limit) = pagination(query, &mut issues);
        let text = |key: &str| query_param(query, key);
        let dataset_name = text("datasetName").filter(|name| !name.is_empty());
        let version = text("version").filter(|version| !version.is_empty());
        if issues.is_empty() && version.is_some() && dataset_name.is_none() {
            issues.push(json!({
                "code": "custom",
                "path": ["datasetName"],
                "message": VERSION_NEEDS_DATASET_NAME,
            }));
        }
        if !issues.is_empty() {
            return invalid(issues);
        }
        if let Some(name) = &dataset_name {
            if self.position_of_dataset(name).is_none() {
                return not_found(DATASET_NOT_FOUND);
            }
        }
        let source_trace = text("sourceTraceId");
        let source_observation = text("sourceObservationId");
        let mut items: Vec<Value> = self
            .items
            .iter()
            .filter(|item| {
                dataset_name
                    .as_deref()
                    .is_none_or(|name| item["datasetName"].as_str() == Some(name))
                    && source_trace
                        .as_deref()
                        .is_none_or(|id| item["sourceTraceId"].as_str() == Some(id))
                    && source_observation
                        .as_deref()
                        .is_none_or(|id| item["sourceObservationId"].as_str() == Some(id))
                    && (!self.items_active_only || item["status"].as_str() == Some(STATUSES[0]))
            })
            .cloned()
            .collect();
        items.sort_by(newest_first);
        page_of(items, page, limit)
    }

    fn answer_create_item(&mut self, body: &Value) -> (u16, Value) {
        let request = match ItemRequest::parse(body) {
            Ok(request) => request,
            Err(issues) => return invalid(issues),
        };
        let Some(dataset) = self.dataset(&request.dataset_name) else {
            return not_found(&dataset_not_found_for_project(
                &request.dataset_name,
                &self.project_id,
            ));
        };
        let dataset_id = dataset["id"].clone();
        let now = self.timestamp();
        let existing = request.id.as_ref().and_then(|id| {
            self.items
                .iter()
                .position(|item| item["id"].as_str() == Some(id))
        });
        let item = match existing {
            Some(position) => {
                let item = &mut self.items[position];
                if item["datasetId"] != dataset_id {
                    let other = item["datasetId"].as_str().unwrap_or("").to_owned();
                    let id = request.id.as_deref().unwrap_or("");
                    return (
                        409,
                        json!({
                            "message": item_in_other_dataset(id, &other),
                            "error": "LangfuseConflictError",
                        }),
                    );
                }
                for (key, value) in request.fields {
                    item[key] = value;
                }
                item["updatedAt"] = json!(now);
                item.clone()
            }
            None => {
                let mut item = json!({
                    "id": request.id.unwrap_or_else(random_uuid),
                    "status": STATUSES[0],
                    "input": null,
                    "expectedOutput": null,
                    "metadata": null,
                    "sourceTraceId": null,
                    "sourceObservationId": null,
                    "datasetId": dataset_id,
                    "datasetName": request.dataset_name,
                    "createdAt": now,
                    "updatedAt": now,
                    "mediaReferences": [],
                });
                for (key, value) in request.fields {
                    item[key] = value;
                }
                self.items.push(item.clone());
                item
            }
        };
        (200, item)
    }

    fn position_of_dataset(&self, name: &str) -> Option<usize> {
        self.datasets
            .iter()
            .position(|dataset| dataset["name"].as_str() == Some(name))
    }

    /// Now, or one millisecond after the last timestamp written if that is not later.
    fn timestamp(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        self.last_millis = now.max(self.last_millis + 1);
        iso8601_millis(self.last_millis)
    }
}

/// A validated `CreateDatasetItemRequest`.
struct ItemRequest {
    dataset_name: String,
    id: Option<String>,
    /// The fields given neither absent nor null, to set on the item.
    fields: Vec<(&'static str, Value)>,
}

impl ItemRequest {
    /// The checks of Langfuse's `PostDatasetItemsV1Body`; every zod issue on failure.
    fn parse(body: &Value) -> Result<Self, Vec<Value>> {
        let Some(object) = body.as_object() else {
            return Err(vec![expected("object", Some(body), &[])]);
        };
        let mut issues = Vec::new();
        let dataset_name = match object.get("datasetName") {
            Some(Value::String(name)) => name.clone(),
            other => {
                issues.push(expected("string", other, &["datasetName"]));
                String::new()
            }
        };
        let id = match object.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => {
                let length = id.encode_utf16().count();
                if length == 0 {
                    issues.push(bound(
                        "too_small",
                        "string",
                        1,
                        true,
                        &["id"],
                        ITEM_ID_EMPTY,
                    ));
                } else if length > 255 {
                    issues.push(bound(
                        "too_big",
                        "string",
                        255,
                        true,
                        &["id"],
                        ITEM_ID_TOO_LONG,
                    ));
                }
                Some(id.clone())
            }
            other => {
                issues.push(expected("string", other, &["id"]));
                None
            }
        };
        let mut fields = Vec::new();
        for key in ["input", "expectedOutput", "metadata"] {
            if let Some(value) = object.get(key).filter(|value| !value.is_null()) {
                fields.push((key, value.clone()));
            }
        }
        for key in ["sourceTraceId", "sourceObservationId"] {
            match object.get(key) {
                None | Some(Value::Null) => {}
                Some(value @ Value::String(_)) => fields.push((key, value.clone())),
                other => issues.push(expected("string", other, &[key])),
            }
        }
        match object.get("status") {
            None | Some(Value::Null) => {}
            Some(Value::String(status)) if STATUSES.contains(&status.as_str()) => {
                fields.push(("status", json!(status)));
            }
            Some(_) => issues.push(json!({
                "code": "invalid_value",
                "values": STATUSES,
                "path": ["status"],
                "message": "Invalid option: expected one of \"ACTIVE\"|\"ARCHIVED\"",
            })),
        }
        if issues.is_empty() {
            Ok(ItemRequest {
                dataset_name,
                id,
                fields,
            })
        } else {
            Err(issues)
        }
    }
}

/// Langfuse's `DatasetNameSchema`: the first reason `name` is refused.
fn check_dataset_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("Text cannot be empty");
    }
    if contains_html_tag(name) {
        return Err("Text cannot contain HTML tags");
    }
    if name.starts_with('/') {
        return Err("Name cannot start with a slash");
    }
    if name.contains("//") {
        return Err("Name cannot contain consecutive slashes");
    }
    if name.ends_with('/') {
        return Err("Name cannot end with a slash");
    }
    if name.trim().is_empty() {
        return Err("Name cannot be empty");
    }
    Ok(())
}

/// `/<[^<>]*>/`: a `<` followed by a `>` with neither `<` nor `>` between them.
fn contains_html_tag(text: &str) -> bool {
    text.split('<').skip(1).any(|after| {
        after
            .find(['<', '>'])
            .is_some_and(|end| after[end..].starts_with('>'))
    })
}

/// `page` and `limit` as Langfuse's `publicApiPaginationZod` reads them (an empty value is the
/// default); a failure adds its zod issue to `issues`.
fn pagination(query: &str, issues: &mut Vec<Value>) -> (u64, u64) {
    let mut read = |key: &'static str, default: u64| {
        let Some(text) = query_param(query, key).filter(|text| !text.is_empty()) else {
            return default;
        };
        // `z.coerce.number()`: JavaScript's `Number(text)`, where blank is 0.
        let trimmed = text.trim();
        let number = if trimmed.is_empty() {
            Some(0.0)
        } else {
            trimmed.parse::<f64>().ok().filter(|n| !n.is_nan())
        };
        let issue = match number {
            None => json!({
                "expected": "number",
                "code": "invalid_type",
                "received": "NaN",
                "path": [key],
                "message": EXPECTED_NUMBER,
            }),
            Some(n) if !n.is_finite() || n.fract() != 0.0 => json!({
                "expected": "int",
                "format": "safeint",
                "code": "invalid_type",
                "path": [key],
                "message": EXPECTED_INT,
            }),
            Some(n) if n < 1.0 && key == "page" => {
                bound("too_small", "number", 0, false, &[key], PAGE_TOO_SMALL)
            }
            Some(n) if n < 1.0 => bound("too_small", "number", 1, true, &[key], LIMIT_TOO_SMALL),
            Some(n) if key == "limit" && n > MAX_ITEMS_LIMIT as f64 => bound(
                "too_big",
                "number",
                MAX_ITEMS_LIMIT,
                true,
                &[key],
                LIMIT_TOO_BIG,
            ),
            Some(n) => return n as u64,
        };
        issues.push(issue);
        default
    };
    let page = read("page", 1);
    let limit = read("limit", DEFAULT_ITEMS_LIMIT);
    (page, limit)
}

/// `{"data": [page `page` of `all`], "meta": {"page", "limit", "totalItems", "totalPages"}}`.
fn page_of(all: Vec<Value>, page: u64, limit: u64) -> (u16, Value) {
    let total = all.len() as u64;
    let data: Vec<Value> = all
        .into_iter()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .collect();
    (
        200,
        json!({
            "data": data,
            "meta": {
                "page": page,
                "limit": limit,
                "totalItems": total,
                "totalPages": total.div_ceil(limit),
            },
        }),
    )
}

/// `createdAt` descending, then `id` ascending (the timestamps are ISO-8601 in UTC, so their
/// text sorts like their time).
fn newest_first(a: &Value, b: &Value) -> std::cmp::Ordering {
    let text = |value: &Value, key: &str| value[key].as_str().unwrap_or("").to_owned();
    text(b, "createdAt")
        .cmp(&text(a, "createdAt"))
        .then_with(|| text(a, "id").cmp(&text(b, "id")))
}

/// A zod 4 `invalid_type` issue: expected `what`, received the JSON type of `value` (or
/// `undefined`).
fn expected(what: &str, value: Option<&Value>, path: &[&str]) -> Value {
    let received = match value {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    };
    json!({
        "expected": what,
        "code": "invalid_type",
        "path": path,
        "message": format!("Invalid input: expected {what}, received {received}"),
    })
}

/// A zod 4 `too_small` (a `minimum`) or `too_big` (a `maximum`) issue.
fn bound(
    code: &str,
    origin: &str,
    limit: u64,
    inclusive: bool,
    path: &[&str],
    text: &str,
) -> Value {
    let mut issue = json!({
        "origin": origin,
        "code": code,
        "inclusive": inclusive,
        "path": path,
        "message": text,
    });
    let key = if code == "too_big" {
        "maximum"
    } else {
        "minimum"
    };
    issue[key] = json!(limit);
    issue
}

/// A 400 as Langfuse answers a query or body that fails its zod schema.
fn invalid(issues: Vec<Value>) -> (u16, Value) {
    (
        400,
        json!({"message": INVALID_REQUEST_DATA, "error": issues}),
    )
}

/// A 404 as Langfuse answers a `LangfuseNotFoundError`.
fn not_found(text: &str) -> (u16, Value) {
    (
        404,
        json!({"message": text, "error": "LangfuseNotFoundError"}),
    )
}

fn message(status: u16, text: &str) -> (u16, Value) {
    (status, json!({ "message": text }))
}

/// A random version-4 UUID, from the standard library's randomly keyed hasher.
fn random_uuid() -> String {
    let random = || RandomState::new().build_hasher().finish();
    let (high, low) = (random(), random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8000 | ((low >> 48) & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}
