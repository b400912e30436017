//! Per-model prices and the [`Cost`] they give for a call's [`Usage`].

use observe_runtime::{Cost, Usage};

/// The prices of one model in USD per million tokens; see
/// [`ObserveLayer::price`](crate::ObserveLayer::price).
///
/// ```
/// use observe_openai::Price;
/// let price = Price::new(2.50, 10.00).cached_input(1.25);
/// # let _ = price;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Input (prompt) tokens not read from the cache.
    pub input: f64,
    /// Input tokens read from the cache; `None`: priced as input.
    pub cached_input: Option<f64>,
    /// Output tokens, reasoning tokens included.
    pub output: f64,
}

impl Price {
    /// Input and output prices per million tokens.
    pub fn new(input: f64, output: f64) -> Price {
        Price {
            input,
            cached_input: None,
            output,
        }
    }

    /// The same prices with a price per million cached input tokens.
    pub fn cached_input(mut self, per_million: f64) -> Price {
        self.cached_input = Some(per_million);
        self
    }

    /// The cost of `usage` (its counts are disjoint: cached input and reasoning output are
    /// details beside `input` and `output`).
    pub(crate) fn cost(&self, usage: &Usage) -> Cost {
        const MILLION: f64 = 1_000_000.0;
        let detail = |name: &str| usage.details.get(name).copied().unwrap_or(0) as f64;
        let cached = detail("input_cached_tokens");
        let output = usage.output as f64 + detail("output_reasoning_tokens");
        let mut cost = Cost::new(
            usage.input as f64 * self.input / MILLION,
            output * self.output / MILLION,
        );
        if cached > 0.0 {
            let price = self.cached_input.unwrap_or(self.input);
            cost = cost.with_detail("input_cached_tokens", cached * price / MILLION);
        }
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_input_and_reasoning_output_are_priced_apart() {
        let usage = Usage::new(1_000, 500)
            .with_detail("input_cached_tokens", 2_000)
            .with_detail("output_reasoning_tokens", 500);
        let cost = Price::new(2.0, 8.0).cached_input(0.5).cost(&usage);
        assert_eq!(
            cost.to_json(),
            r#"{"input":0.002,"input_cached_tokens":0.001,"output":0.008,"total":0.011}"#
        );
        let uncached = Price::new(2.0, 8.0).cost(&Usage::new(1_000_000, 0));
        assert_eq!(
            uncached.to_json(),
            r#"{"input":2.0,"output":0.0,"total":2.0}"#
        );
    }
}
