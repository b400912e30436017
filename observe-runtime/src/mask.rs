//! The user's mask hook: the [`Mask`] type and running it over one captured JSON text. A leaf: it
//! imports nothing from the crate and knows nothing about spans, configuration or export.

use std::sync::Arc;

/// A hook that rewrites captured values (input, output, metadata) before anything leaves the
/// process, for example to remove personal data.
pub type Mask = Arc<dyn Fn(serde_json::Value) -> serde_json::Value + Send + Sync>;

/// Runs the mask over one captured JSON text, in place. Text that is not JSON is given to the mask
/// as a JSON string. A mask that panics replaces the value with a placeholder.
pub(crate) fn mask_json(mask: &Mask, json: &mut String) {
    let value =
        serde_json::from_str(json).unwrap_or_else(|_| serde_json::Value::String(json.clone()));
    let masked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mask(value)));
    *json = match masked {
        Ok(value) => value.to_string(),
        // A mask that panics must not let the unmasked value out.
        Err(_) => "\"<masked: the mask function panicked>\"".to_string(),
    };
}
