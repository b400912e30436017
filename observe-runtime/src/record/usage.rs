//! Token counts and costs of a generation, and the JSON objects Langfuse reads for them.

use std::collections::BTreeMap;

/// Token counts of a generation.
///
/// ```
/// use observe_runtime::Usage;
/// let usage = Usage { input: 10, output: 25, ..Default::default() };
/// assert_eq!(usage.to_json(), r#"{"input":10,"output":25,"total":35}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// The total; `None` means `input + output`.
    pub total: Option<u64>,
    /// Further named counts, such as `"cache_read_input_tokens"`.
    pub details: BTreeMap<String, u64>,
}

impl Usage {
    /// The `usage_details` JSON object Langfuse reads.
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert("input".into(), self.input.into());
        map.insert("output".into(), self.output.into());
        map.insert(
            "total".into(),
            self.total
                .unwrap_or(self.input.saturating_add(self.output))
                .into(),
        );
        for (key, value) in &self.details {
            map.insert(key.clone(), (*value).into());
        }
        serde_json::Value::Object(map).to_string()
    }
}

/// Costs of a generation in USD.
///
/// ```
/// use observe_runtime::Cost;
/// let cost = Cost { total: Some(0.0012), ..Default::default() };
/// assert_eq!(cost.to_json(), r#"{"total":0.0012}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Cost of the prompt.
    pub input: Option<f64>,
    /// Cost of the completion.
    pub output: Option<f64>,
    /// The total; `None` means the sum of `input` and `output` when either is set.
    pub total: Option<f64>,
    /// Further named costs.
    pub details: BTreeMap<String, f64>,
}

impl Cost {
    /// The `cost_details` JSON object Langfuse reads (negative and non-finite numbers are left out).
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        let mut put = |key: &str, value: f64| {
            if value.is_finite() && value >= 0.0 {
                if let Some(number) = serde_json::Number::from_f64(value) {
                    map.insert(key.to_string(), serde_json::Value::Number(number));
                }
            }
        };
        if let Some(v) = self.input {
            put("input", v);
        }
        if let Some(v) = self.output {
            put("output", v);
        }
        let total = self.total.or(match (self.input, self.output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0.0) + o.unwrap_or(0.0)),
        });
        if let Some(v) = total {
            put("total", v);
        }
        for (key, value) in &self.details {
            put(key, *value);
        }
        serde_json::Value::Object(map).to_string()
    }
}
