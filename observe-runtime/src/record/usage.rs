//! Token counts and costs of a generation, the JSON objects Langfuse reads for them, and the
//! conversion from the usage objects LLM providers answer with.
//!
//! Langfuse prices each named count on its own (`input`, `output`, `input_cached_tokens`, ...), so
//! the counts are disjoint parts: a provider's prompt count that includes cached tokens is split
//! into `input` (not cached) and `input_cached_tokens`, as Langfuse's own OpenAI integration does.

use std::collections::BTreeMap;

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::{Map, Value};

/// Token counts of a generation.
///
/// The counts are disjoint: `input` and `output` do not include the named `details`, and the
/// total, when not given, is the sum of all of them.
///
/// ```
/// use observe_runtime::Usage;
/// let usage = Usage::new(10, 25);
/// assert_eq!(usage.to_json(), r#"{"input":10,"output":25,"total":35}"#);
///
/// let cached = Usage::new(118, 155).with_detail("input_cached_tokens", 1152);
/// assert_eq!(
///     cached.to_json(),
///     r#"{"input":118,"input_cached_tokens":1152,"output":155,"total":1425}"#
/// );
/// ```
///
/// It also reads the usage object of a provider's answer, either with [`Usage::from_value`] or as
/// a field of your own `Deserialize` type; see [`Usage::from_value`] for the forms understood.
///
/// ```
/// use observe_runtime::Usage;
/// #[derive(serde::Deserialize)]
/// struct ChatCompletion {
///     usage: Usage,
/// }
/// let answer: ChatCompletion = serde_json::from_str(
///     r#"{"usage": {"prompt_tokens": 1270, "completion_tokens": 155, "total_tokens": 1425,
///         "prompt_tokens_details": {"cached_tokens": 1152}}}"#,
/// )
/// .unwrap();
/// assert_eq!(answer.usage, Usage::new(118, 155).with_total(1425).with_detail("input_cached_tokens", 1152));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (without those counted in `details`, such as cached ones).
    pub input: u64,
    /// Completion tokens (without those counted in `details`, such as reasoning ones).
    pub output: u64,
    /// The total; `None` means the sum of `input`, `output` and every detail.
    pub total: Option<u64>,
    /// Further named counts, such as `"input_cached_tokens"` or `"output_reasoning_tokens"`.
    pub details: BTreeMap<String, u64>,
}

impl Usage {
    /// Input and output token counts, the total being their sum.
    pub fn new(input: u64, output: u64) -> Self {
        Usage {
            input,
            output,
            ..Default::default()
        }
    }

    /// The same counts with the total the provider reported.
    pub fn with_total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }

    /// The same counts with a named extra count (replacing one of the same name).
    ///
    /// The names `input`, `output` and `total` set those fields instead.
    pub fn with_detail(mut self, name: impl Into<String>, count: u64) -> Self {
        let name = name.into();
        match name.as_str() {
            "input" => self.input = count,
            "output" => self.output = count,
            "total" => self.total = Some(count),
            _ => {
                self.details.insert(name, count);
            }
        }
        self
    }

    /// The total as sent: the one given, else the sum of every count.
    pub fn total_tokens(&self) -> u64 {
        self.total.unwrap_or_else(|| {
            self.details
                .values()
                .fold(self.input.saturating_add(self.output), |sum, count| {
                    sum.saturating_add(*count)
                })
        })
    }

    /// Reads a provider's usage object. Understood, by the names present:
    ///
    /// | form | keys | becomes |
    /// |---|---|---|
    /// | OpenAI chat completions | `prompt_tokens`, `completion_tokens`, `total_tokens`, `prompt_tokens_details.*`, `completion_tokens_details.*` | `input`, `output`, `total`; each detail as `input_<name>` / `output_<name>`, taken out of `input` / `output` |
    /// | OpenAI responses | `input_tokens`, `output_tokens`, `total_tokens`, `input_tokens_details.*`, `output_tokens_details.*` | the same |
    /// | Anthropic | `input_tokens`, `output_tokens`, `cache_creation_input_tokens`, `cache_read_input_tokens` | `input`, `output`, the cache counts by their names (Anthropic's input already leaves them out) |
    /// | Gemini | `promptTokenCount`, `candidatesTokenCount`, `totalTokenCount`, `cachedContentTokenCount`, `thoughtsTokenCount` | `input`, `output`, `total`, `input_cached_tokens` (taken out of `input`), `output_reasoning_tokens` |
    /// | Langfuse | `input`, `output`, `total`, any other name | as they are |
    /// | camelCase (Vercel AI SDK, JavaScript tools) | `promptTokens`, `completionTokens`, `totalTokens` | `input`, `output`, `total` |
    ///
    /// Any other top-level count is kept under its own name. Values that are not non-negative
    /// integers (a `service_tier` text, a nested object not listed above) are left out, and a
    /// value that is not an object gives empty counts.
    ///
    /// ```
    /// use observe_runtime::Usage;
    /// let anthropic = serde_json::json!({
    ///     "input_tokens": 12, "output_tokens": 30,
    ///     "cache_read_input_tokens": 100, "service_tier": "standard"
    /// });
    /// assert_eq!(
    ///     Usage::from_value(&anthropic).to_json(),
    ///     r#"{"cache_read_input_tokens":100,"input":12,"output":30,"total":142}"#
    /// );
    /// ```
    pub fn from_value(value: &Value) -> Usage {
        let Some(object) = value.as_object() else {
            return Usage::default();
        };
        let mut usage = Usage::default();
        // (provider name, Langfuse name) of the main counts; the first present wins.
        const INPUT: [&str; 5] = [
            "input",
            "prompt_tokens",
            "input_tokens",
            "promptTokenCount",
            "promptTokens",
        ];
        const OUTPUT: [&str; 5] = [
            "output",
            "completion_tokens",
            "output_tokens",
            "candidatesTokenCount",
            "completionTokens",
        ];
        const TOTAL: [&str; 4] = ["total", "total_tokens", "totalTokenCount", "totalTokens"];
        let first = |names: &[&str]| names.iter().find_map(|name| count(object.get(*name)));
        usage.input = first(&INPUT).unwrap_or(0);
        usage.output = first(&OUTPUT).unwrap_or(0);
        usage.total = first(&TOTAL);

        let mut taken_from_input = 0u64;
        let mut taken_from_output = 0u64;
        for (key, value) in object {
            if INPUT.contains(&key.as_str())
                || OUTPUT.contains(&key.as_str())
                || TOTAL.contains(&key.as_str())
            {
                continue;
            }
            match key.as_str() {
                "prompt_tokens_details" | "input_tokens_details" => {
                    taken_from_input += put_details(&mut usage.details, "input_", value);
                }
                "completion_tokens_details" | "output_tokens_details" => {
                    taken_from_output += put_details(&mut usage.details, "output_", value);
                }
                "cachedContentTokenCount" => {
                    if let Some(n) = count(Some(value)) {
                        usage.details.insert("input_cached_tokens".into(), n);
                        taken_from_input += n;
                    }
                }
                "thoughtsTokenCount" => {
                    if let Some(n) = count(Some(value)) {
                        usage.details.insert("output_reasoning_tokens".into(), n);
                    }
                }
                _ => {
                    if let Some(n) = count(Some(value)) {
                        usage.details.insert(key.clone(), n);
                    }
                }
            }
        }
        usage.input = usage.input.saturating_sub(taken_from_input);
        usage.output = usage.output.saturating_sub(taken_from_output);
        if usage.total.is_none() && !usage.details.is_empty() {
            usage.total = Some(usage.total_tokens());
        }
        usage
    }

    /// The `usage_details` JSON object Langfuse reads.
    pub fn to_json(&self) -> String {
        let mut map = Map::new();
        map.insert("input".into(), self.input.into());
        map.insert("output".into(), self.output.into());
        map.insert("total".into(), self.total_tokens().into());
        for (key, value) in &self.details {
            map.insert(key.clone(), (*value).into());
        }
        Value::Object(map).to_string()
    }
}

/// Written as Langfuse's usage object (`{"input", "output", "total", <details>}`), which
/// `Deserialize` reads back to the same value.
impl serde::Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3 + self.details.len()))?;
        map.serialize_entry("input", &self.input)?;
        map.serialize_entry("output", &self.output)?;
        map.serialize_entry("total", &self.total_tokens())?;
        for (key, value) in &self.details {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A non-negative integer count (an integral float such as `12.0` too).
fn count(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// Puts each count of a details object under `prefix` + its name; returns their sum.
fn put_details(details: &mut BTreeMap<String, u64>, prefix: &str, value: &Value) -> u64 {
    let mut sum = 0u64;
    for (name, value) in value.as_object().into_iter().flatten() {
        if let Some(n) = count(Some(value)) {
            if n > 0 {
                details.insert(format!("{prefix}{name}"), n);
                sum = sum.saturating_add(n);
            }
        }
    }
    sum
}

impl<'de> Deserialize<'de> for Usage {
    /// Reads any form [`Usage::from_value`] understands; a value that is not an object is an error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(D::Error::custom(format!(
                "a token usage must be an object such as {{\"prompt_tokens\": 10, \"completion_tokens\": 25}}, not {value}"
            )));
        }
        Ok(Usage::from_value(&value))
    }
}

/// Costs of a generation in USD.
///
/// Like [`Usage`], the parts are disjoint: the total, when not given, is the sum of `input`,
/// `output` and every named detail.
///
/// ```
/// use observe_runtime::Cost;
/// let cost = Cost { total: Some(0.0012), ..Default::default() };
/// assert_eq!(cost.to_json(), r#"{"total":0.0012}"#);
///
/// let parts = Cost::new(0.25, 0.5).with_detail("input_cached_tokens", 0.125);
/// assert_eq!(
///     parts.to_json(),
///     r#"{"input":0.25,"input_cached_tokens":0.125,"output":0.5,"total":0.875}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    /// Cost of the prompt.
    pub input: Option<f64>,
    /// Cost of the completion.
    pub output: Option<f64>,
    /// The total; `None` means the sum of the other parts when any is set.
    pub total: Option<f64>,
    /// Further named costs, named like the [`Usage`] details they price.
    pub details: BTreeMap<String, f64>,
}

impl Cost {
    /// Input and output costs in USD, the total being their sum.
    pub fn new(input: f64, output: f64) -> Self {
        Cost {
            input: Some(input),
            output: Some(output),
            ..Default::default()
        }
    }

    /// Reads a cost object as Langfuse names it (`{"input": 0.001, "output": 0.002, "total":
    /// 0.003, "input_cached_tokens": 0.0001}`): `input`, `output` and `total` set those fields,
    /// any other number is a named detail; values that are not numbers are left out. `None`
    /// when `value` is not an object.
    ///
    /// ```
    /// use observe_runtime::Cost;
    /// let cost = Cost::from_value(&serde_json::json!({"input": 0.25, "output": 0.5})).unwrap();
    /// assert_eq!(cost, Cost::new(0.25, 0.5));
    /// assert_eq!(Cost::from_value(&serde_json::json!(0.75)), None);
    /// ```
    pub fn from_value(value: &Value) -> Option<Cost> {
        let object = value.as_object()?;
        Some(
            object
                .iter()
                .filter_map(|(key, amount)| Some((key, amount.as_f64()?)))
                .fold(Cost::default(), |cost, (key, amount)| {
                    cost.with_detail(key.as_str(), amount)
                }),
        )
    }

    /// Only a total in USD (what OpenRouter's `usage.cost` gives).
    pub fn total_only(total: f64) -> Self {
        Cost {
            total: Some(total),
            ..Default::default()
        }
    }

    /// The same costs with a named extra cost (replacing one of the same name).
    ///
    /// The names `input`, `output` and `total` set those fields instead.
    pub fn with_detail(mut self, name: impl Into<String>, usd: f64) -> Self {
        let name = name.into();
        match name.as_str() {
            "input" => self.input = Some(usd),
            "output" => self.output = Some(usd),
            "total" => self.total = Some(usd),
            _ => {
                self.details.insert(name, usd);
            }
        }
        self
    }

    /// The total as sent: the one given, else the sum of the valid parts; `None` when nothing
    /// valid is set.
    pub fn total_usd(&self) -> Option<f64> {
        let parts = [self.input, self.output]
            .into_iter()
            .flatten()
            .chain(self.details.values().copied())
            .filter(|v| valid_usd(*v));
        self.total
            .filter(|v| valid_usd(*v))
            .or_else(|| parts.reduce(|a, b| a + b))
    }

    /// The `cost_details` JSON object Langfuse reads (negative and non-finite numbers are left out).
    pub fn to_json(&self) -> String {
        let valid = valid_usd;
        let mut map = Map::new();
        let mut put = |key: &str, value: f64| {
            if valid(value) {
                if let Some(number) = serde_json::Number::from_f64(value) {
                    map.insert(key.to_string(), Value::Number(number));
                }
            }
        };
        if let Some(v) = self.input {
            put("input", v);
        }
        if let Some(v) = self.output {
            put("output", v);
        }
        if let Some(v) = self.total_usd() {
            put("total", v);
        }
        for (key, value) in &self.details {
            put(key, *value);
        }
        Value::Object(map).to_string()
    }
}

/// A cost Langfuse accepts: finite and not negative.
fn valid_usd(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn usage(value: Value) -> Value {
        serde_json::from_str(&Usage::from_value(&value).to_json()).unwrap()
    }

    #[test]
    fn openai_chat_completions_split_cached_and_reasoning_tokens() {
        let got = usage(json!({
            "prompt_tokens": 1270, "completion_tokens": 155, "total_tokens": 1425,
            "prompt_tokens_details": {"cached_tokens": 1152, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 64, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
            }
        }));
        assert_eq!(
            got,
            json!({"input": 118, "output": 91, "total": 1425,
                   "input_cached_tokens": 1152, "output_reasoning_tokens": 64})
        );
    }

    #[test]
    fn openai_responses_use_the_same_names() {
        let got = usage(json!({
            "input_tokens": 300, "output_tokens": 120, "total_tokens": 420,
            "input_tokens_details": {"cached_tokens": 200},
            "output_tokens_details": {"reasoning_tokens": 100}
        }));
        assert_eq!(
            got,
            json!({"input": 100, "output": 20, "total": 420,
                   "input_cached_tokens": 200, "output_reasoning_tokens": 100})
        );
    }

    #[test]
    fn anthropic_cache_counts_keep_their_names_and_add_to_the_total() {
        let got = usage(json!({
            "input_tokens": 12, "output_tokens": 30,
            "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100,
            "server_tool_use": {"web_search_requests": 1}, "service_tier": "standard"
        }));
        assert_eq!(
            got,
            json!({"input": 12, "output": 30, "total": 147,
                   "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100})
        );
    }

    #[test]
    fn gemini_usage_metadata() {
        let got = usage(json!({
            "promptTokenCount": 50, "candidatesTokenCount": 20, "totalTokenCount": 90,
            "cachedContentTokenCount": 30, "thoughtsTokenCount": 20
        }));
        assert_eq!(
            got,
            json!({"input": 20, "output": 20, "total": 90,
                   "input_cached_tokens": 30, "output_reasoning_tokens": 20})
        );
    }

    #[test]
    fn langfuse_form_and_bad_values() {
        let got = usage(json!({"input": 3, "output": 4, "audio": 2, "neg": -1, "frac": 1.5}));
        assert_eq!(
            got,
            json!({"input": 3, "output": 4, "total": 9, "audio": 2})
        );
        assert_eq!(
            usage(json!("twelve")),
            json!({"input": 0, "output": 0, "total": 0})
        );
        let err = serde_json::from_str::<Usage>("12").unwrap_err().to_string();
        assert_eq!(
            err,
            "a token usage must be an object such as {\"prompt_tokens\": 10, \"completion_tokens\": 25}, not 12"
        );
    }

    #[test]
    fn named_setters_of_the_main_counts_set_the_fields() {
        let u = Usage::new(1, 2)
            .with_detail("total", 10)
            .with_detail("input", 4);
        assert_eq!(u.to_json(), r#"{"input":4,"output":2,"total":10}"#);
        let c = Cost::total_only(0.5).with_detail("output", 0.25);
        assert_eq!(c.to_json(), r#"{"output":0.25,"total":0.5}"#);
        let bad = Cost::new(-1.0, f64::NAN).with_detail("x", 0.5);
        assert_eq!(bad.to_json(), r#"{"total":0.5,"x":0.5}"#);
    }
}
