//! How the simulated model counts tokens: its own rule, independent of the client's estimate
//! and denser than it (3.4 bytes a token against the client's 3.5), as real tokenizers often
//! are on JSON-heavy prompts, so tests exercise the client's safety margin instead of assuming it.

/// Bytes per token of the simulated model's count.
pub const BYTES_PER_TOKEN: f64 = 3.4;

/// Tokens of `text` as the simulated model counts them.
pub fn count_tokens(text: &str) -> u64 {
    (text.len() as f64 / BYTES_PER_TOKEN).ceil() as u64
}

/// The longest prefix of `text` (cut at a character boundary) of at most `tokens` tokens.
pub fn cut_to_tokens(text: &str, tokens: u64) -> &str {
    let max_bytes = (tokens as f64 * BYTES_PER_TOKEN).floor() as usize;
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
