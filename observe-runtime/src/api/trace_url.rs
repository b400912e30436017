//! [`trace_url`]: the page of a trace in Langfuse, built from the base URL and the id of the
//! keys' project, asked once (`GET /api/public/projects`) and kept for the client's life.

use reqwest::Method;
use serde::Deserialize;

use std::sync::Arc;

use super::{installed, ApiClient, ApiCore, ApiError};
use crate::diagnostics;
use crate::ids::TraceId;

#[derive(Deserialize)]
struct Projects {
    data: Vec<ProjectId>,
}

#[derive(Deserialize)]
struct ProjectId {
    id: String,
}

/// Asks which project the keys belong to; runs on the client's runtime.
async fn ask_project_id(core: Arc<ApiCore>) -> Result<String, ApiError> {
    let mut request = core.request(Method::GET, "/api/public/projects");
    request.attempts = 1;
    let response = core.send(request).await?;
    let projects: Projects = response.json()?;
    projects
        .data
        .into_iter()
        .next()
        .map(|project| project.id)
        .ok_or_else(|| ApiError::InvalidResponse {
            method: "GET".into(),
            url: response.url.clone(),
            reason: "the keys belong to no project".into(),
        })
}

/// The id of the keys' project, asked once per client (blocking on the first call).
pub(crate) fn project_id(api: &ApiClient) -> Result<String, ApiError> {
    if let Some(id) = api.project_id.get() {
        return Ok(id.clone());
    }
    let id = api.block_on(ask_project_id(api.core().clone()))?;
    Ok(api.project_id.get_or_init(|| id).clone())
}

/// [`project_id`] without blocking the executor.
pub(crate) async fn project_id_async(api: &ApiClient) -> Result<String, ApiError> {
    if let Some(id) = api.project_id.get() {
        return Ok(id.clone());
    }
    let id = api.run(ask_project_id(api.core().clone())).await?;
    Ok(api.project_id.get_or_init(|| id).clone())
}

/// The page of `trace_id` in Langfuse: `{base}/project/{projectId}/traces/{traceId}`.
///
/// The project id is asked once (`GET /api/public/projects`, within `LANGFUSE_TIMEOUT`) and kept,
/// so only the first call may wait. `None` without Langfuse keys, or when the server cannot say
/// (the reason is reported once on stderr); the next call asks again.
///
/// ```no_run
/// # fn demo() {
/// if let Some(id) = observe_runtime::current_trace_id() {
///     if let Some(url) = observe_runtime::trace_url(id) {
///         println!("trace: {url}");
///     }
/// }
/// # }
/// ```
pub fn trace_url(trace_id: TraceId) -> Option<String> {
    let api = installed().ok()?;
    match project_id(&api) {
        Ok(project) => Some(format!(
            "{}/project/{project}/traces/{trace_id}",
            api.base_url()
        )),
        Err(error) => {
            diagnostics::warn("trace-url", format!("the trace URL is not known: {error}"));
            None
        }
    }
}
