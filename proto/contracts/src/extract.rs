//! Tolerant extraction of one JSON object from a model answer.
//!
//! Tries, in order: the whole answer, a fenced code block, the first balanced `{...}` object
//! (string-aware, so braces inside strings do not count).

use serde_json::Value;

/// Why no JSON object could be read from an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The answer was empty or only white space.
    #[error("the answer is empty")]
    Empty,
    /// No candidate parsed as a JSON object.
    #[error("no JSON object found: {0}")]
    NoObject(String),
}

/// The first JSON object found in `text`.
pub fn json_object(text: &str) -> Result<Value, ExtractError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ExtractError::Empty);
    }
    let mut last_err = String::from("no '{' in the answer");
    for candidate in candidates(text) {
        match serde_json::from_str::<Value>(candidate) {
            Ok(v @ Value::Object(_)) => return Ok(v),
            Ok(_) => last_err = "the answer is JSON but not an object".into(),
            Err(e) => last_err = e.to_string(),
        }
    }
    Err(ExtractError::NoObject(last_err))
}

fn candidates(text: &str) -> Vec<&str> {
    let mut out = vec![text];
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
        let body = &after[body_start..];
        match body.find("```") {
            Some(end) => {
                out.push(body[..end].trim());
                rest = &body[end + 3..];
            }
            None => {
                out.push(body.trim());
                break;
            }
        }
    }
    let mut from = 0;
    while let Some(pos) = text[from..].find('{') {
        let start = from + pos;
        if let Some(end) = balanced_end(&text[start..]) {
            out.push(&text[start..start + end]);
        }
        from = start + 1;
        if out.len() > 8 {
            break;
        }
    }
    out
}

/// Length of the balanced object at the start of `s` (which begins with `{`).
fn balanced_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bare_fenced_and_embedded_objects() {
        assert_eq!(json_object(r#"{"a":1}"#).unwrap()["a"], 1);
        assert_eq!(json_object("Sure!\n```json\n{\"a\":2}\n```\nDone").unwrap()["a"], 2);
        assert_eq!(
            json_object("Here: {\"a\":\"}{\",\"b\":{\"c\":3}} trailing").unwrap()["b"]["c"],
            3
        );
    }

    #[test]
    fn rejects_empty_and_truncated_answers() {
        assert_eq!(json_object("  "), Err(ExtractError::Empty));
        assert!(matches!(json_object("{\"a\": [1, 2"), Err(ExtractError::NoObject(_))));
        assert!(matches!(json_object("[1,2]"), Err(ExtractError::NoObject(_))));
    }
}
