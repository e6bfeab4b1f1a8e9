//! JSON Schemas of requests, in the subset every structured-output dialect enforces (types,
//! `properties` with every key `required`, `additionalProperties: false`, `enum`, `const`,
//! `minItems`/`maxItems`, `minLength`, integer `minimum`/`maximum`), a checker for that subset
//! and the example instance a plain-text prompt shows.
//!
//! A request's schema carries the book's facts (the cast's names, the planned scene count...),
//! so a server that enforces it by grammar cannot break most rules; validation stays the last
//! word, since a server may ignore the schema.

use serde_json::{Map, Value, json};

mod fit;
pub use fit::{fit_to, fitted, max_chars};

/// An object whose every property is required and no other is allowed.
pub fn object(props: Vec<(&str, Value)>) -> Value {
    let required: Vec<Value> = props.iter().map(|(k, _)| Value::String(k.to_string())).collect();
    let properties: Map<String, Value> =
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// A non-empty string; `what` says what it holds (shown in examples).
pub fn text(what: &str) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": TEXT_MAX_CHARS, "description": what})
}

/// The most characters of a free-text field (about 170 words): room for any section a model
/// should write, and an end to a small model looping inside a grammar's string, which would
/// otherwise run to the token limit and cost the whole answer. At most the longest bound a
/// llama.cpp grammar compiles (1,000), so local servers enforce it.
pub const TEXT_MAX_CHARS: usize = 1000;

/// A string of `min..=max` characters; `what` says what it holds. Grammar-enforcing servers
/// hold a model to the length (OpenAI's strict mode does not: validation still checks it).
pub fn text_sized(what: &str, min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min.max(1), "maxLength": max.max(min.max(1)), "description": what})
}

/// One of `values`.
pub fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// One of the cast's `names` (a prompt's field list says so instead of listing them again).
pub fn cast_name(names: &[&str]) -> Value {
    json!({"type": "string", "enum": names, "description": "a name from the cast"})
}

/// An integer in `min..=max`, as the list of its values: grammar converters (llama-cpp-python's)
/// ignore `minimum` and `maximum`, every dialect enforces `enum`.
pub fn integer(min: i64, max: i64) -> Value {
    json!({"type": "integer", "enum": (min..=max).collect::<Vec<i64>>()})
}

/// An array of `items`, `min..=max` of them.
pub fn array(items: Value, min: usize, max: usize) -> Value {
    json!({"type": "array", "items": items, "minItems": min, "maxItems": max})
}

/// Checks `value` against `schema` (the subset above); the first violation, with its path.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, value, "answer")
}

fn check_at(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(c) = schema.get("const")
        && c != value
    {
        return Err(format!("{path} must be {c}"));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(format!("{path} must be one of {} (got {value})", list.join(", ")));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Value::Object(map) = value else { return Err(format!("{path} must be an object")) };
            let props = schema.get("properties").and_then(Value::as_object);
            for key in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let key = key.as_str().unwrap_or_default();
                if !map.contains_key(key) {
                    return Err(format!("{path} must have the field {key:?}"));
                }
            }
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check_at(sub, v, &format!("{path}.{k}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{path} has a field {k:?} that is not asked for"));
                    }
                    None => {}
                }
            }
        }
        Some("array") => {
            let Value::Array(items) = value else { return Err(format!("{path} must be a list")) };
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema.get("maxItems").and_then(Value::as_u64).map(|m| m as usize);
            if items.len() < min || max.is_some_and(|m| items.len() > m) {
                let want = match max {
                    Some(m) if m == min => format!("exactly {m}"),
                    Some(m) => format!("{min} to {m}"),
                    None => format!("at least {min}"),
                };
                return Err(format!("{path} must have {want} items (got {})", items.len()));
            }
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check_at(sub, v, &format!("{path}[{i}]"))?;
                }
            }
        }
        Some("string") => {
            let Value::String(s) = value else { return Err(format!("{path} must be a string")) };
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema.get("maxLength").and_then(Value::as_u64).map(|m| m as usize);
            let chars = s.trim().chars().count();
            if chars < min {
                return Err(if min <= 1 {
                    format!("{path} must not be empty")
                } else {
                    format!("{path} must have at least {min} characters (got {chars})")
                });
            }
            if let Some(max) = max.filter(|m| chars > *m) {
                return Err(format!("{path} must have at most {max} characters (got {chars})"));
            }
        }
        Some("integer") => {
            let Some(n) = value.as_i64() else { return Err(format!("{path} must be an integer")) };
            let min = schema.get("minimum").and_then(Value::as_i64).unwrap_or(i64::MIN);
            let max = schema.get("maximum").and_then(Value::as_i64).unwrap_or(i64::MAX);
            if n < min || n > max {
                return Err(format!("{path} must be between {min} and {max} (got {n})"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The example instance of `schema` a prompt shows when the server enforces no schema:
/// strings say what they hold in angle brackets, lists have one item (the prompt's facts say
/// how many), numbers their least value, choices their first.
pub fn example(schema: &Value) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let props = schema.get("properties").and_then(Value::as_object);
            Value::Object(
                props.into_iter().flatten().map(|(k, v)| (k.clone(), example(v))).collect(),
            )
        }
        Some("array") => {
            Value::Array(vec![schema.get("items").map(example).unwrap_or(Value::Null)])
        }
        Some("string") => {
            let what = schema.get("description").and_then(Value::as_str).unwrap_or("text");
            Value::String(format!("<{what}>"))
        }
        Some("integer") => schema.get("minimum").cloned().unwrap_or(json!(0)),
        _ => Value::Null,
    }
}

/// The fields of `schema` as a prompt lists them, one per line and nested by indentation:
/// `* logline: one sentence...`, lists with their number of items, choices with their values.
/// Small models copy a JSON example's values into their answers; a list of what each field
/// holds gives them nothing to copy, and a grammar-enforcing server supplies the syntax.
pub fn guide(schema: &Value) -> String {
    let mut out = String::new();
    guide_fields(schema, 0, &mut out);
    out
}

fn guide_fields(schema: &Value, depth: usize, out: &mut String) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    for (name, field) in props {
        (0..depth).for_each(|_| out.push_str("  "));
        // `*`, not `-`: `- Key: value` lines are the prompt's facts.
        out.push_str("* ");
        out.push_str(name);
        out.push_str(": ");
        out.push_str(&describe(field));
        out.push('\n');
        let items = field.get("items").unwrap_or(field);
        if items.get("type").and_then(Value::as_str) == Some("object") {
            guide_fields(items, depth + 1, out);
        }
    }
}

fn describe(field: &Value) -> String {
    let count = |min: u64, max: Option<u64>| match max {
        Some(m) if m == min => format!("exactly {m}"),
        Some(m) if min == 0 => format!("up to {m}"),
        Some(m) => format!("{min} to {m}"),
        None => format!("at least {min}"),
    };
    if let Some(values) = field.get("enum").and_then(Value::as_array) {
        // A long list the prompt gives elsewhere (the cast's names) is named, not repeated.
        if let Some(d) = field.get("description").and_then(Value::as_str)
            && values.len() > 2
        {
            return d.to_string();
        }
        let list: Vec<String> = values.iter().map(Value::to_string).collect();
        return format!("one of {}", list.join(", "));
    }
    match field.get("type").and_then(Value::as_str) {
        Some("array") => {
            let min = field.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let max = field.get("maxItems").and_then(Value::as_u64);
            let items = field.get("items").unwrap_or(&Value::Null);
            let what = match items.get("type").and_then(Value::as_str) {
                Some("object") => "each with:".to_string(),
                _ => describe(items),
            };
            format!("a list of {} ({what})", count(min, max))
                .replace(" (each with:)", ", each with:")
        }
        Some("object") if field.get("properties").is_some() => "an object with:".into(),
        Some("integer") => "a whole number".into(),
        _ => field.get("description").and_then(Value::as_str).unwrap_or("text").to_string(),
    }
}

/// Whether `s` is a value an example shows instead of content (`...`, `TODO`, or one of the
/// example's own values, `examples`); an empty string is not (rules that need content say so).
pub fn is_placeholder(s: &str, examples: &[String]) -> bool {
    let t = s.trim();
    if t.is_empty() {
        return false;
    }
    t.chars().all(|c| matches!(c, '.' | '…' | '-' | '_' | '?' | ' '))
        || ["string", "todo", "tbd", "n/a", "lorem ipsum"].iter().any(|p| t.eq_ignore_ascii_case(p))
        || examples.iter().any(|e| e.eq_ignore_ascii_case(t))
}

/// Every value the example of `schema` shows for a string (see [`example`]), without its
/// angle brackets.
pub fn example_values(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_descriptions(schema, &mut out);
    out
}

fn collect_descriptions(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("string")
                && let Some(d) = map.get("description").and_then(Value::as_str)
            {
                out.push(d.to_string());
            }
            map.values().for_each(|v| collect_descriptions(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_descriptions(v, out)),
        _ => {}
    }
}

/// Takes off the markup a model wraps around its own text, everywhere in `value`: the angle
/// brackets copied from the example (`"<A keeper finds a bottle>"`) and markdown code fences
/// (a line of ```` ``` ```` or ```` ```text ````, fence marks opening or closing a line), which
/// small models put around prose even inside a JSON string. Only the markup goes; every word
/// of the text stays.
pub fn unwrap_slots(value: &mut Value) {
    match value {
        Value::String(s) => {
            if s.contains("```") || s.contains("~~~") {
                *s = strip_fences(s);
            }
            if s.contains(['{', '}', '[', ']']) {
                *s = strip_json_marks(s);
            }
            let t = s.trim();
            if t.starts_with('<') && t.ends_with('>') {
                *s = t.trim_start_matches('<').trim_end_matches('>').trim().to_string();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_slots),
        Value::Object(map) => map.values_mut().for_each(unwrap_slots),
        _ => {}
    }
}

/// A title as a model may leave it inside its string: cut at a line break, or where JSON a
/// looping model wrote into the string begins (`The Harbour }, { 2018 }]`), and trimmed of
/// the quotes and punctuation left dangling. The words before stay; nothing left is empty.
pub fn clean_title(title: &str) -> String {
    let t = title.trim_start_matches(|c: char| c.is_whitespace() || c == '"');
    let t = match t.get(..6) {
        Some(label) if label.eq_ignore_ascii_case("title:") => t[6..].trim_start(),
        _ => t,
    };
    let cut = t.find(['\n', '{', '}', '[', ']', '"']).map_or(t, |i| &t[..i]);
    cut.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | ';' | '-'))
        .to_string()
}

/// `s` without the JSON a model looping inside a grammar's string writes into it: runs of
/// brackets, commas and colons at the start and end of a line (`] }, {`, `}}}}]`), a key label
/// after such a run (`{ text:'I Am...` keeps `I Am...`) and the string's end after it (`',`);
/// a line left empty goes. A lone opening or closing bracket stays (`[Insert a scene here]` is
/// a placeholder for the rules to find), and so does every word.
fn strip_json_marks(s: &str) -> String {
    const MARKS: &str = "{}[],:";
    let brackets = |run: &str| run.chars().filter(|c| "{}[]".contains(*c)).count();
    let mut out: Vec<&str> = Vec::new();
    for line in s.split('\n') {
        let mut t = line.trim();
        let rest = t.trim_start_matches(|c: char| MARKS.contains(c) || c.is_whitespace());
        let lead = &t[..t.len() - rest.len()];
        let unlabelled = key_label_off(rest);
        let json_line = brackets(lead) > 0
            && (lead.contains(['}', ']'])
                || brackets(lead) > 1
                || rest.is_empty()
                || unlabelled.len() < rest.len());
        if json_line {
            t = unlabelled;
        }
        let body = t.trim_end_matches(|c: char| {
            MARKS.contains(c) || c.is_whitespace() || c == '\'' || c == '"'
        });
        let tail = &t[body.len()..];
        if (json_line && !tail.is_empty())
            || (brackets(tail) > 0 && (tail.contains(['{', '[']) || brackets(tail) > 1))
        {
            t = body;
        }
        if t.len() == line.trim().len() {
            out.push(line);
        } else if !t.is_empty() {
            out.push(t);
        }
    }
    out.join("\n").trim().to_string()
}

/// `text` without a leading key label (`text:'`, `"summary": "`), as JSON written into prose
/// has it after a bracket.
fn key_label_off(text: &str) -> &str {
    let rest = text.trim_start_matches(['"', '\'']);
    let key =
        rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_').len();
    let after = rest[key..].trim_start_matches(['"', '\'']).trim_start();
    match after.strip_prefix(':') {
        Some(value) if key > 0 => value.trim_start().trim_start_matches(['"', '\'']),
        _ => text,
    }
}

/// `s` without code fences: a line that is only a fence (with or without a language word) is
/// dropped, fence marks at either end of a line come off.
fn strip_fences(s: &str) -> String {
    const FENCES: [&str; 2] = ["```", "~~~"];
    let mut out: Vec<&str> = Vec::new();
    for line in s.split('\n') {
        let t = line.trim();
        let mut rest = t;
        let mut fenced = false;
        for f in FENCES {
            if let Some(r) = rest.strip_prefix(f) {
                rest = r.trim_start_matches(&f[..1]);
                fenced = true;
            }
            if let Some(r) = rest.strip_suffix(f) {
                rest = r.trim_end_matches(&f[..1]);
                fenced = true;
            }
        }
        if !fenced {
            out.push(line);
            continue;
        }
        let rest = rest.trim();
        // "```json" or "```text": a fence naming its language, no prose.
        let language = !rest.is_empty()
            && rest.len() <= 12
            && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'));
        let opening_fence = language && t.starts_with(['`', '~']);
        if !rest.is_empty() && !opening_fence {
            out.push(rest);
        }
    }
    out.join("\n").trim().to_string()
}

/// The first string in `value` (depth first) that is a placeholder: its path and text.
pub fn find_placeholder(
    value: &Value,
    path: &str,
    examples: &[String],
) -> Option<(String, String)> {
    match value {
        Value::String(s) if is_placeholder(s, examples) => Some((path.to_string(), s.clone())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_placeholder(v, &format!("{path}[{i}]"), examples)),
        Value::Object(map) => {
            map.iter().find_map(|(k, v)| find_placeholder(v, &format!("{path}.{k}"), examples))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_marks_a_model_wrote_into_prose_come_off_and_every_word_stays() {
        let mut v = json!({"text": "First words.\n\n] }, {\n        { text:'I Am Your Dream: in my dream world',\n {\n    }}}}]\nYour answer: more."});
        unwrap_slots(&mut v);
        assert_eq!(
            v["text"],
            "First words.\n\nI Am Your Dream: in my dream world\nYour answer: more."
        );
        // Prose with brackets of its own, quotes and colons keeps them.
        for prose in [
            "The sign read [closed], and below it, in chalk: {back soon}.",
            "\"Yes,\" she said: 'the tide.'",
            "Note: the gate [north] was shut.",
        ] {
            let mut v = json!({"text": prose});
            unwrap_slots(&mut v);
            assert_eq!(v["text"], prose);
        }
        let mut v = json!({"text": "{\n  }}]"});
        unwrap_slots(&mut v);
        assert_eq!(v["text"], "", "nothing but JSON: nothing left, for the rules to refuse");
    }

    #[test]
    fn a_title_loses_the_json_a_model_wrote_into_it_and_keeps_its_words() {
        assert_eq!(clean_title("The Salt Harbour }, { 2018 }]\n}\n{\n  "), "The Salt Harbour");
        assert_eq!(clean_title("\"The Lamp\""), "The Lamp");
        assert_eq!(clean_title("  Tides, Bought and Sold  "), "Tides, Bought and Sold");
        assert_eq!(clean_title("Title: The Salt Harbour\nChapter one"), "The Salt Harbour");
        assert_eq!(clean_title("}]"), "");
    }

    fn schema() -> Value {
        object(vec![
            ("name", text("the name")),
            ("mood", one_of(&["calm", "angry"])),
            ("score", integer(1, 10)),
            ("tags", array(text("a tag"), 2, 3)),
        ])
    }

    #[test]
    fn the_checker_names_path_and_rule() {
        let s = schema();
        let ok = json!({"name": "Ann", "mood": "calm", "score": 3, "tags": ["a", "b"]});
        assert_eq!(check(&s, &ok), Ok(()));
        let cases = [
            (
                json!({"name": "", "mood": "calm", "score": 3, "tags": ["a", "b"]}),
                "answer.name must not be empty",
            ),
            (
                json!({"name": "A", "mood": "sad", "score": 3, "tags": ["a", "b"]}),
                "answer.mood must be one of",
            ),
            (
                json!({"name": "A", "mood": "calm", "score": 11, "tags": ["a", "b"]}),
                "answer.score must be one of 1, 2,",
            ),
            (
                json!({"name": "A", "mood": "calm", "score": 1, "tags": ["a"]}),
                "answer.tags must have 2 to 3 items (got 1)",
            ),
            (
                json!({"name": "A", "mood": "calm", "score": 1}),
                "answer must have the field \"tags\"",
            ),
            (
                json!({"name": "A", "mood": "calm", "score": 1, "tags": ["a", "b"], "x": 1}),
                "not asked for",
            ),
            (
                json!({"name": "A", "mood": "calm", "score": 1, "tags": ["a", ""]}),
                "answer.tags[1] must not be empty",
            ),
        ];
        for (v, want) in cases {
            let got = check(&s, &v).unwrap_err();
            assert!(got.contains(want), "{got} / {want}");
        }
    }

    #[test]
    fn the_guide_lists_every_field_with_its_rule() {
        let nested = object(vec![
            ("title", text("the chapter's title")),
            ("scenes", array(object(vec![("who", array(one_of(&["Ann", "Bo"]), 1, 2))]), 3, 6)),
        ]);
        let g = guide(&object(vec![("score", integer(1, 3)), ("chapters", array(nested, 2, 2))]));
        assert_eq!(
            g,
            "* score: one of 1, 2, 3\n* chapters: a list of exactly 2, each with:\n  * title: the chapter's title\n  * scenes: a list of 3 to 6, each with:\n    * who: a list of 1 to 2 (one of \"Ann\", \"Bo\")\n"
        );
    }

    #[test]
    fn examples_fit_their_schema_but_are_placeholders() {
        let s = schema();
        let e = example(&s);
        // One item per list: the only rule an example breaks is a list's length.
        assert_eq!(check(&s, &e).unwrap_err(), "answer.tags must have 2 to 3 items (got 1)");
        assert_eq!(e["name"], "<the name>");
        assert_eq!(e["score"], 1);
        let examples = example_values(&s);
        let mut copied = e.clone();
        unwrap_slots(&mut copied);
        assert_eq!(copied["name"], "the name");
        assert_eq!(
            find_placeholder(&copied, "answer", &examples).map(|p| p.0).as_deref(),
            Some("answer.name")
        );
        assert!(is_placeholder("...", &[]) && is_placeholder(" … ", &[]));
        assert!(!is_placeholder("Ann Lee", &examples) && is_placeholder("The Name", &examples));
        // A model's own text in the example's brackets is kept, brackets off.
        let mut v = json!({"name": "<Ann Lee>>", "tags": ["<a>", "b"]});
        unwrap_slots(&mut v);
        assert_eq!(v, json!({"name": "Ann Lee", "tags": ["a", "b"]}));
    }

    #[test]
    fn code_fences_around_prose_come_off_and_every_word_stays() {
        let mut v = json!({
            "own_lines": "```\nThe lamp burned.\n\nMara climbed.\n```",
            "language": "```text\nThe lamp burned.\n```",
            "inline": "```The lamp burned.```",
            "tilde": "~~~\nThe lamp burned.\n~~~",
            "untouched": "A fence of `ticks` and ~ tildes stays.",
        });
        unwrap_slots(&mut v);
        assert_eq!(v["own_lines"], "The lamp burned.\n\nMara climbed.");
        assert_eq!(v["language"], "The lamp burned.");
        assert_eq!(v["inline"], "The lamp burned.");
        assert_eq!(v["tilde"], "The lamp burned.");
        assert_eq!(v["untouched"], "A fence of `ticks` and ~ tildes stays.");
        // A one-word line of prose inside fences is kept when it does not open the fence.
        let mut v = json!("```\nNo.\nStay```");
        unwrap_slots(&mut v);
        assert_eq!(v, "No.\nStay");
    }
}
