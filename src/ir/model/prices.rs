//! Model prices: USD per million tokens, a built-in table of a handful of
//! current OpenAI and Anthropic models, and the cost of a number of tokens.
//!
//! Users extend or override the table with a top-level `prices:` section
//! or `models.<name>.price`. A model with no known price costs 0, and its
//! usage says so (`cost_usd: 0`); nothing is guessed.

use serde::{Deserialize, Serialize};

/// A model's price, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    /// The cost of `input` and `output` tokens.
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_per_mtok + output as f64 * self.output_per_mtok) / 1_000_000.0
    }
}

/// List prices as the providers published them (standard tier, no caching
/// or batch discounts). Override with `prices:` when they change.
const BUILT_IN: &[(&str, f64, f64)] = &[
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4o", 2.50, 10.0),
    ("gpt-4o-mini", 0.15, 0.60),
    ("o3", 2.0, 8.0),
    ("o4-mini", 1.10, 4.40),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-5-haiku", 0.80, 4.0),
];

/// The built-in price of a model id: an exact entry, or the entry the id
/// extends with a date or version suffix (`gpt-4o-2024-08-06`,
/// `claude-haiku-4-5-20251001`).
pub fn built_in_price(model: &str) -> Option<Price> {
    BUILT_IN
        .iter()
        .filter(|(id, ..)| {
            model == *id
                || model
                    .strip_prefix(id)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|suffix| !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_digit() || c == '-'))
        })
        .max_by_key(|(id, ..)| id.len())
        .map(|&(_, input_per_mtok, output_per_mtok)| Price { input_per_mtok, output_per_mtok })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_prices_match_ids_and_dated_ids_only() {
        assert_eq!(built_in_price("gpt-4o").unwrap().input_per_mtok, 2.5);
        assert_eq!(built_in_price("gpt-4o-mini").unwrap().input_per_mtok, 0.15);
        assert_eq!(built_in_price("gpt-4o-2024-08-06").unwrap().input_per_mtok, 2.5);
        assert_eq!(built_in_price("claude-haiku-4-5-20251001").unwrap().output_per_mtok, 5.0);
        assert_eq!(built_in_price("gpt-4o-audio-preview"), None);
        assert_eq!(built_in_price("llama3.2"), None);
        let p = Price { input_per_mtok: 1.0, output_per_mtok: 5.0 };
        assert!((p.cost(1_000_000, 200_000) - 2.0).abs() < 1e-12);
    }
}
