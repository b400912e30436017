//! The client of Langfuse's public REST API (`/api/public/...`, Basic auth, JSON) that prompts,
//! datasets, media and trace URLs share: the configured base URL and keys, timeouts, bounded
//! retries with backoff and `Retry-After`, and errors that say what was asked of which host and
//! what came back. Requests run on a runtime of its own, started on first use, so a blocking call
//! works from any thread (also inside the user's current-thread runtime) and an async call never
//! blocks the caller's executor. Imports the export layer's target and transport helpers only.

mod client;
mod error;
mod trace_url;

pub(crate) use client::{ApiClient, ApiCore, DEFAULT_ATTEMPTS};
pub use error::ApiError;
pub use trace_url::trace_url;
pub(crate) use trace_url::{project_id, project_id_async};

use std::sync::Arc;

use arc_swap::ArcSwapOption;

/// The client of the latest `init` that had Langfuse keys.
static INSTALLED: ArcSwapOption<ApiClient> = ArcSwapOption::const_empty();

/// Makes `client` the one REST calls use (`None`: no Langfuse keys are configured).
pub(crate) fn install(client: Option<Arc<ApiClient>>) {
    INSTALLED.store(client);
}

/// Removes `client` if it is the installed one (its guard was dropped).
pub(crate) fn uninstall(client: &Arc<ApiClient>) {
    let current = INSTALLED.load();
    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
        INSTALLED.compare_and_swap(&*current, None);
    }
}

/// The REST client, or why there is none.
pub(crate) fn installed() -> Result<Arc<ApiClient>, ApiError> {
    INSTALLED.load_full().ok_or(ApiError::NotConfigured)
}
