//! Scrubs key-like strings from text bound for logs, errors and stored results.

use std::sync::{OnceLock, RwLock};

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
        }
    }
}

/// `text` with registered secrets, `sk-...` keys and bearer tokens replaced by `[REDACTED]`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for secret in known().read().unwrap_or_else(|p| p.into_inner()).iter() {
        out = out.replace(secret.as_str(), "[REDACTED]");
    }
    for prefix in ["sk-", "Bearer ", "bearer ", "x-api-key: "] {
        let mut from = 0;
        while let Some(pos) = out[from..].find(prefix) {
            let start = from + pos + prefix.len();
            let end = out[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                .map(|e| start + e)
                .unwrap_or(out.len());
            if end - start >= 8 {
                out.replace_range(start..end, "[REDACTED]");
            }
            from = start.min(out.len());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_registered_and_key_like_strings() {
        register_secret("my-very-secret-value");
        let s = redact("key my-very-secret-value, sk-abcdef1234567890 and Bearer zzzzzzzzzzzz ok");
        assert!(!s.contains("my-very-secret-value"));
        assert!(!s.contains("abcdef1234567890"));
        assert!(!s.contains("zzzzzzzzzzzz"));
        assert!(s.ends_with("ok"));
        assert_eq!(redact("sk-short"), "sk-short");
    }
}
