//! The "Facts" block every default prompt carries, and its parser.
//!
//! Prompts state the numbers an answer must respect as `- Key: value` lines under `Facts:`,
//! so a model (and the simulated model, which reads only the prompt) sees them unambiguously.

use std::collections::BTreeMap;

/// Parsed `- Key: value` lines of a prompt, keys lowercased.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    map: BTreeMap<String, String>,
}

impl Facts {
    /// Reads every `- Key: value` line of `prompt` (the first occurrence of a key wins).
    pub fn parse(prompt: &str) -> Self {
        let mut map = BTreeMap::new();
        for line in prompt.lines() {
            let Some(rest) = line.trim_start().strip_prefix("- ") else { continue };
            let Some((k, v)) = rest.split_once(": ") else { continue };
            if k.len() > 40 || k.contains('"') {
                continue;
            }
            map.entry(k.trim().to_ascii_lowercase()).or_insert_with(|| v.trim().to_string());
        }
        Self { map }
    }

    /// The value of `key`, if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The value of `key` as a number.
    pub fn num(&self, key: &str) -> Option<u32> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// The value of `key` split on `;`.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| v.split(';').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// Renders one fact line.
pub fn line(key: &str, value: impl std::fmt::Display) -> String {
    format!("- {key}: {value}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fact_lines_and_ignores_prose() {
        let f = Facts::parse(
            "Intro\nFacts:\n- Chapters: 8\n- Cast: Ann Lee; Bo Park\n  - Words per chapter: 900\nnot - X: y\n",
        );
        assert_eq!(f.num("chapters"), Some(8));
        assert_eq!(f.list("cast"), vec!["Ann Lee", "Bo Park"]);
        assert_eq!(f.num("words per chapter"), Some(900));
        assert_eq!(f.get("x"), None);
    }
}
