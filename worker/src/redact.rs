//! Scrubs key-like strings from text bound for logs, errors and stored results.
//!
//! Three kinds of secrets are removed: values registered with [`register_secret`] (every key a
//! provider reads, every key-like `.env` entry), `sk-...` keys, and the values after
//! `Bearer`, `x-api-key`, `api-key`, `api_key` and `apikey` markers.

use std::sync::{OnceLock, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";

static KNOWN: OnceLock<RwLock<Vec<String>>> = OnceLock::new();

fn known() -> &'static RwLock<Vec<String>> {
    KNOWN.get_or_init(|| RwLock::new(Vec::new()))
}

/// Remembers a secret value so [`redact`] removes it wherever it appears.
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.len() >= 6 {
        let mut k = known().write().unwrap_or_else(|p| p.into_inner());
        if !k.iter().any(|v| v == value) {
            k.push(value.to_string());
            // Longest first, so a secret containing another is removed whole.
            k.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }
}

/// `text` with registered secrets replaced by [`MASK`]; nothing else changes.
///
/// Safe on model answers: prose that merely looks like a key is kept.
pub fn redact_secrets(text: &str) -> String {
    let mut out = text.to_string();
    for secret in known().read().unwrap_or_else(|p| p.into_inner()).iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// `text` with registered secrets, `sk-...` keys and marked tokens replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    let mut out = redact_secrets(text);
    // `sk-` must start a word: "risk-averse" is not a key.
    mask_after(&mut out, "sk-", true, 0);
    for marker in ["bearer", "x-api-key", "api-key", "api_key", "apikey"] {
        mask_after(&mut out, marker, false, 1);
    }
    out
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

/// Masks the token after each (ASCII case-insensitive) `marker`, past up to a few separator
/// characters. A token counts when it has at least 8 characters and a digit, or 24 characters.
fn mask_after(out: &mut String, marker: &str, word_start: bool, min_separators: usize) {
    let mut from = 0;
    while let Some(pos) = find_ci(&out[from..], marker) {
        let at = from + pos;
        let mut start = at + marker.len();
        from = start;
        if word_start && out[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let separators = out[start..]
            .chars()
            .take_while(|c| matches!(c, ' ' | ':' | '=' | '"' | '\'' | '\t'))
            .count();
        if separators < min_separators || separators > 4 {
            continue;
        }
        start += separators;
        let end = out[start..].find(|c: char| !token_char(c)).map_or(out.len(), |e| start + e);
        let token = &out[start..end];
        let n = token.chars().count();
        if (n >= 8 && token.chars().any(|c| c.is_ascii_digit())) || n >= 24 {
            out.replace_range(start..end, MASK);
            from = start + MASK.len();
        }
    }
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?)
        .filter(|&i| haystack.is_char_boundary(i))
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// An `io::Write` that redacts what it writes, for log sinks: a tracing subscriber writes one
/// whole event per call, so secrets are scrubbed line by line.
#[derive(Debug)]
pub struct RedactingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(redact(&String::from_utf8_lossy(buf)).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_registered_and_key_like_strings() {
        register_secret("my-very-secret-value");
        let s = redact("key my-very-secret-value, sk-abcdef1234567890 and Bearer zzzz1234zzzz ok");
        assert!(!s.contains("my-very-secret-value"));
        assert!(!s.contains("abcdef1234567890"));
        assert!(!s.contains("zzzz1234zzzz"));
        assert!(s.ends_with("ok"));
        assert_eq!(redact("sk-short"), "sk-short");
    }

    #[test]
    fn scrubs_header_echoes_in_json_and_text() {
        let s = redact(
            r#"{"headers":{"authorization":"Bearer sk-proj-Abc123456789xyz","x-api-key":"sk-ant-api03-Zz9876543210"}}"#,
        );
        assert!(!s.contains("Abc123456789xyz") && !s.contains("Zz9876543210"), "{s}");
        let s = redact("x-api-key: k3y-0123456789abcdef; api_key=abc123def456ghi");
        assert!(!s.contains("0123456789abcdef") && !s.contains("abc123def456ghi"), "{s}");
    }

    #[test]
    fn leaves_prose_alone() {
        let prose = "A risk-averse whisk-maker, the bearer of bad tidings, asked for an api-key.";
        assert_eq!(redact(prose), prose);
        register_secret("sk-test-registered-42");
        assert_eq!(redact_secrets("risk-averse sk-test-registered-42"), "risk-averse [REDACTED]");
    }

    #[test]
    fn writer_redacts_each_write() {
        let mut w = RedactingWriter(Vec::new());
        std::io::Write::write_all(&mut w, b"auth Bearer tok123456789 done\n").unwrap();
        assert_eq!(String::from_utf8(w.0).unwrap(), "auth Bearer [REDACTED] done\n");
    }
}
