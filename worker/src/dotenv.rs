//! Reads a `.env` file into the process environment (variables already set win).

/// Loads `KEY=VALUE` lines of `path`; comments, blank lines and `export ` prefixes are allowed.
///
/// Call this before any other thread exists: it changes the process environment.
pub fn load(path: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(path) else { return };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else { continue };
        let k = k.trim();
        let v = v.trim().trim_matches('"').trim_matches('\'');
        if k.is_empty() || std::env::var_os(k).is_some() {
            continue;
        }
        // SAFETY: called from `main` before the runtime or any other thread starts, so no
        // other thread can read the environment concurrently.
        unsafe { std::env::set_var(k, v) };
        let upper = k.to_ascii_uppercase();
        if ["KEY", "TOKEN", "SECRET", "PASSWORD"].iter().any(|w| upper.contains(w)) {
            crate::redact::register_secret(v);
        }
    }
}
