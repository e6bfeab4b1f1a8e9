//! The rules of [`story`](super::story) on every free-text field of every kind's answer:
//! names, roles, loglines, titles, summaries, world sections, continuity notes. A chapter's
//! prose (`scenes[].text` of chapters and edits) is judged paragraph by paragraph by the
//! chapter checks instead. Reviews and an edit's list of changes speak about the text by
//! design: only machine text is looked for there.

use super::machine::{before_machine_token, key_value_split};
use super::story::{Cut, Scope, judge, message};
use super::{Finding, Rule};
use crate::rules::{Rejection, reject};
use serde_json::Value;

/// Most words a field has to count as short (a name, a role, a title): such a field keeps
/// its words before a machine token instead of losing the whole line.
const SHORT_FIELD_WORDS: usize = 12;

/// The rules that apply to the field at `path` of a `kind`'s answer; none for prose that the
/// chapter checks judge.
fn scope(kind: &str, path: &str) -> Option<Scope> {
    let chapter = matches!(kind, "chapter" | "edit" | "edited chapter");
    if chapter && path.starts_with("scenes[") && path.ends_with(".text") {
        return None;
    }
    if kind == "review" || (chapter && path.starts_with("changes")) {
        return Some(Scope::Machine);
    }
    Some(Scope::Story)
}

/// Every string of `v` with its path (`characters[1].role`).
fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                strings(x, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                strings(x, p, out);
            }
        }
        _ => {}
    }
}

/// Calls `f` on every string of `v` with its path, written into `path` (one buffer for the
/// whole walk: a path is only spelt out, not kept); stops at the first error.
fn each_string_mut(
    v: &mut Value,
    path: &mut String,
    f: &mut dyn FnMut(&str, &mut String) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    use std::fmt::Write;
    let len = path.len();
    match v {
        Value::String(s) => f(path, s)?,
        Value::Array(items) => {
            for (i, x) in items.iter_mut().enumerate() {
                let _ = write!(path, "[{i}]");
                each_string_mut(x, path, f)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                each_string_mut(x, path, f)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A field's text cleaned: a short one-line field loses a `key:` label written before its value
/// and whatever follows its first machine token (`heroes\tadzirak-1289_https://...` keeps
/// `heroes`); then what [`judge`] finds comes off. The cleaned text and what was found.
pub fn clean_text(text: &str, scope: Scope) -> (String, Vec<Cut>) {
    let mut s = text.trim().to_string();
    let short = !s.contains('\n') && s.split_whitespace().count() <= SHORT_FIELD_WORDS;
    if short {
        if let Some(value) = key_value_split(&s).filter(|v| v.chars().any(char::is_alphabetic)) {
            s = value.to_string();
        }
        let before = before_machine_token(&s);
        let before = before.find(['{', '}']).map_or(before, |i| before[..i].trim_end());
        if before.len() < s.len() && before.chars().any(char::is_alphabetic) {
            s = before.trim_end_matches([',', ':', ';', '-', ' ']).to_string();
        }
    }
    let judged = judge(&s, scope);
    (judged.kept.trim().to_string(), judged.cuts)
}

/// The findings on every free-text field of `doc`, an answer of `kind`, each naming its field
/// as `{prefix}.{path}`; `chapter` is the chapter the document belongs to (0 for none). One
/// finding per field and rule.
pub fn findings(kind: &str, prefix: &str, chapter: u32, doc: &Value) -> Vec<Finding> {
    let mut all = Vec::new();
    strings(doc, String::new(), &mut all);
    let mut out = Vec::new();
    for (path, text) in all {
        let Some(scope) = scope(kind, &path) else { continue };
        let field = if path.starts_with('[') {
            format!("{prefix}{path}")
        } else {
            format!("{prefix}.{path}")
        };
        let judged = judge(text, scope);
        let mut seen: Vec<Rule> = Vec::new();
        for cut in judged.cuts.iter().filter(|c| !seen.contains(&c.rule)).collect::<Vec<_>>() {
            seen.push(cut.rule);
            out.push(Finding::in_field(cut.rule, chapter, &field, &cut.text, message(&field, cut)));
        }
    }
    out
}

/// Cleans every free-text field of `doc`, an answer of `kind` ([`clean_text`]); a field that
/// held text and is left with none is refused, named as `{kind}.{path}`, with its rule.
pub fn clean(kind: &str, doc: &mut Value) -> Result<(), Rejection> {
    each_string_mut(doc, &mut String::new(), &mut |path, text| {
        let Some(scope) = scope(kind, path) else { return Ok(()) };
        if text.trim().is_empty() {
            return Ok(());
        }
        let (kept, cuts) = clean_text(text, scope);
        if let Some(cut) = cuts.first()
            && kept.is_empty()
        {
            return reject(message(&format!("the {kind} field {path}"), cut));
        }
        if kept != text.trim() {
            *text = kept;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_keeps_its_story_and_one_of_only_machine_text_is_refused() {
        let mut cast = json!({"characters": [
            {"name": "Elara Vance", "role": "heroes\tadzirak-128974565_https://github.com/x/y"},
            {"name": "title : `Tobin Thorne`", "role": "rival"},
        ]});
        clean("characters", &mut cast).unwrap();
        assert_eq!(cast["characters"][0]["role"], "heroes");
        assert_eq!(cast["characters"][1]["name"], "Tobin Thorne");
        let mut concept = json!({"logline": "https://gitter.com/Lilun//ElaraTheUnbounded_https:"});
        let r = clean("concept", &mut concept).unwrap_err().rule;
        assert!(
            r.starts_with("the concept field logline is not story: it holds machine text"),
            "{r}"
        );
        let mut concept = json!({"description": "What is a JSON object?"});
        let r = clean("concept", &mut concept).unwrap_err().rule;
        assert!(r.contains("talks about the task"), "{r}");
    }

    #[test]
    fn findings_name_the_field() {
        let doc = json!({"characters": [{"name": "Ann Lee", "role": "heroes\tadzirak-128974565_https://github.com/x"}]});
        let f = findings("characters", "cast", 0, &doc);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].field.as_deref(), Some("cast.characters[0].role"));
        assert_eq!(f[0].rule, Rule::MachineText);
        let review = json!({"issues": ["Scene 2: revise this text, the sentences are flat"]});
        assert!(findings("review", "review", 1, &review).is_empty(), "a review speaks of the text");
    }
}
