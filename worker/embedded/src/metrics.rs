//! The embedded model's metrics: tokens read and written, and the decoding rate.

use std::time::Duration;

/// Prompt tokens read by the embedded model.
pub const PROMPT_TOKENS: &str = "scriptorium_embedded_prompt_tokens_total";
/// Completion tokens decoded by the embedded model.
pub const COMPLETION_TOKENS: &str = "scriptorium_embedded_completion_tokens_total";
/// Tokens per second of the latest answer's decoding.
pub const TOKENS_PER_SECOND: &str = "scriptorium_embedded_tokens_per_second";

/// Records one answer: `prompt` tokens read, `completion` decoded in `took`.
pub(crate) fn decoded(prompt: u64, completion: u64, took: Duration) {
    metrics::counter!(PROMPT_TOKENS).increment(prompt);
    metrics::counter!(COMPLETION_TOKENS).increment(completion);
    if completion > 0 && !took.is_zero() {
        metrics::gauge!(TOKENS_PER_SECOND).set(completion as f64 / took.as_secs_f64());
    }
}
