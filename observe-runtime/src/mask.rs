//! The user's mask hook: the [`Mask`] type and running it over one captured JSON text, with
//! nothing observed meanwhile. A leaf: it imports only the `unobserved` leaf and knows nothing
//! about spans, configuration or export.

use std::sync::Arc;

use crate::unobserved;

/// A hook that rewrites captured values (input, output, metadata) before anything leaves the
/// process, for example to remove personal data.
pub type Mask = Arc<dyn Fn(serde_json::Value) -> serde_json::Value + Send + Sync>;

/// Runs the mask over one captured JSON text, in place. Text that is not JSON is given to the mask
/// as a JSON string. A mask that panics replaces the value with a placeholder.
pub(crate) fn mask_json(mask: &Mask, json: &mut String) {
    let value =
        serde_json::from_str(json).unwrap_or_else(|_| serde_json::Value::String(json.clone()));
    // What the mask itself observes (an `#[observe]` function it calls) is not recorded: it would
    // be masked again, and again.
    let masked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        unobserved::run(|| mask(value))
    }));
    *json = match masked {
        Ok(value) => value.to_string(),
        // A mask that panics must not let the unmasked value out.
        Err(_) => "\"<masked: the mask function panicked>\"".to_string(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_sees_json_or_a_string_and_a_panic_hides_the_value() {
        let redact: Mask = Arc::new(|value| match value {
            serde_json::Value::String(text) => serde_json::Value::String(text.to_uppercase()),
            mut other => {
                if let Some(object) = other.as_object_mut() {
                    object.remove("password");
                }
                other
            }
        });
        let mut json = r#"{"user":"a","password":"b"}"#.to_string();
        mask_json(&redact, &mut json);
        assert_eq!(json, r#"{"user":"a"}"#);
        let mut text = "not json".to_string();
        mask_json(&redact, &mut text);
        assert_eq!(text, r#""NOT JSON""#);

        let panics: Mask = Arc::new(|_| panic!("mask bug"));
        let mut secret = r#""card 4111""#.to_string();
        mask_json(&panics, &mut secret);
        assert_eq!(secret, r#""<masked: the mask function panicked>""#);
    }
}
