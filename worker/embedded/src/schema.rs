//! A request's JSON Schema made safe for a small model under a grammar: whitespace between
//! tokens bounded (unbounded, a model can write newlines until its token limit) and every
//! string at least one character long (without it a field can come back as `"]["` or empty).

use serde_json::{Value, json};

/// Whitespace allowed between two JSON tokens: at most two spaces or newlines.
const WHITESPACE: &str = r"[\x20\x0A]{1,2}";

/// `schema` with llguidance's bounded whitespace and a `minLength` of 1 on every string.
pub fn prepare(schema: &Value) -> Value {
    let mut out = schema.clone();
    floor_strings(&mut out);
    if let Some(map) = out.as_object_mut() {
        map.insert(
            "x-guidance".into(),
            json!({"whitespace_flexible": false, "whitespace_pattern": WHITESPACE}),
        );
    }
    out
}

fn floor_strings(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_string = map.get("type").and_then(Value::as_str) == Some("string");
            if is_string && !map.contains_key("enum") && !map.contains_key("const") {
                let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                map.insert("minLength".into(), json!(min.max(1)));
            }
            map.values_mut().for_each(floor_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(floor_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_get_a_floor_and_whitespace_a_bound() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "minLength": 5},
            "c": {"type": "string", "enum": ["x"]},
            "d": {"type": "array", "items": {"type": "string", "minLength": 0}}}});
        let p = prepare(&s);
        assert_eq!(p["properties"]["a"]["minLength"], 1);
        assert_eq!(p["properties"]["b"]["minLength"], 5);
        assert!(p["properties"]["c"].get("minLength").is_none());
        assert_eq!(p["properties"]["d"]["items"]["minLength"], 1);
        assert_eq!(p["x-guidance"]["whitespace_pattern"], WHITESPACE);
    }
}
