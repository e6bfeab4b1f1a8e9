//! The token estimate every plan is made with: the worker fits prompts and answers into a
//! context window with it, the coordinator reserves a step's expected cost with it.
//!
//! # Why 3.5 bytes a token
//! No tokenizer and no network call: a client cannot hold the tokenizer of every server it
//! talks to, so it counts one token per 3.5 bytes of UTF-8, rounded up, and keeps a margin
//! for what the estimate misses (the worker's `Budget::margin`: 64 tokens for the chat
//! template plus 1/16 of the window, 320 tokens at 4,096). The byte-level BPE tokenizers of
//! current open models (Llama 3, Qwen 2.5, SmolLM2, Mistral) take 3.5 to 4.5 bytes a token on
//! English text, fewer on dense text (names, numbers, JSON) and on scripts of several bytes a
//! character; 3.5 sits at the dense end, so the estimate errs high on the engine's prompts and
//! the margin only has to cover text denser still.
//!
//! # Measured
//! Against SmolLM2-135M-Instruct's own tokenizer behind llama-cpp-python 0.3.36 (2026-12-04,
//! `tests/real_model.rs`, figures in BENCHMARKS.md), on the system and user messages the engine
//! sent, counted as the server counts a prompt (both messages and the chat template's 14
//! tokens): on the 41 prompts of the two example books (every kind of step, prompts up to 2,600
//! tokens) the server's count was 0.867 to 0.989 of the estimate, median 0.949; on the 9
//! prompts of the real model's own book 0.884 to 1.012, median 0.939. The largest excess over
//! the estimate was 15 tokens (a review holding the model's prose), against the margin of 320.
//! The coordinator's earlier 4 bytes a token would have under-counted these prompts by about 8%.
//!
//! The simulated server (`scriptorium_sim::tokens`) counts with a rule of its own, so that the
//! suite's context checks do not grade this estimate with itself.

/// Bytes per token the estimate assumes.
pub const BYTES_PER_TOKEN: f64 = 3.5;

/// Estimated tokens of `text`: one per [`BYTES_PER_TOKEN`] bytes, rounded up.
///
/// ```
/// use scriptorium_contracts::tokens::estimate_tokens;
/// assert_eq!(estimate_tokens("abcdefg"), 2);
/// assert_eq!(estimate_tokens("abcdefgh"), 3);
/// ```
pub fn estimate_tokens(text: &str) -> u64 {
    estimate_bytes(text.len())
}

/// Estimated tokens of `bytes` bytes of text (or of an encoded message that carries text).
pub fn estimate_bytes(bytes: usize) -> u64 {
    (bytes as f64 / BYTES_PER_TOKEN).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_rounds_up_and_counts_bytes_not_characters() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcdefg"), 2);
        assert_eq!(estimate_tokens("abcdefgh"), 3);
        // Four characters of two bytes each: 8 bytes, three tokens.
        assert_eq!(estimate_tokens("éééé"), 3);
        assert_eq!(estimate_bytes(7_000), 2_000);
    }
}
