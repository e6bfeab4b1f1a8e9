//! The rules of what is not story on the documents a book is planned from (concept, cast,
//! world, outline, as `book.json` keeps them): every free-text field, the logline against the
//! title, and the cast's names; the same functions validation refuses answers with.

use scriptorium_contracts::prose::{Finding, Rule, fields, titles};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `book.json` keys of the planning documents and the kind that wrote each.
pub(super) const DOCUMENTS: &[(&str, &str)] =
    &[("concept", "concept"), ("cast", "characters"), ("world", "world"), ("outline", "outline")];

/// The findings on `documents` (keyed as in [`DOCUMENTS`]).
pub(super) fn findings(documents: &BTreeMap<String, Value>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, kind) in DOCUMENTS {
        let Some(doc) = documents.get(*key) else { continue };
        out.extend(fields::findings(kind, key, 0, doc));
    }
    if let Some(c) = documents.get("concept") {
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        out.extend(titles::logline_finding(&text("title"), &text("logline")));
    }
    let cast = documents.get("cast");
    let listed = cast.and_then(|c| c.get("characters"));
    let prefix = if listed.is_some() { "cast.characters" } else { "cast" };
    for (i, c) in listed.or(cast).and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = c.get("name").or(Some(c)).and_then(Value::as_str).unwrap_or_default();
        if let Some(why) = titles::not_a_name(name) {
            let field = format!("{prefix}[{i}].name");
            let message = format!("{field} is not a person's name ({why})");
            out.push(Finding::in_field(Rule::NotAName, 0, &field, name, message));
        }
    }
    out
}
