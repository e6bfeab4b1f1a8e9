//! Strict-schema rewriting: a JSON Schema cut down to the subset OpenAI's strict mode enforces.

use serde_json::{Map, Value, json};

/// `format` values OpenAI's strict mode takes on strings.
const STRICT_FORMATS: [&str; 9] =
    ["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"];

/// Keywords OpenAI's strict mode takes on any schema; the type-specific ones are below.
const STRICT_KEEP: [&str; 6] = ["type", "description", "title", "enum", "const", "$ref"];

/// Keywords OpenAI's strict mode takes on numbers (`number`, `integer`).
const STRICT_NUMBER: [&str; 5] =
    ["multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];

/// `schema` rewritten to the subset OpenAI's strict mode takes (the Structured Outputs guide,
/// "Supported schemas"), so that OpenAI enforces all of it instead of refusing the request:
///
/// - every object gets `additionalProperties: false` and lists every property in `required`;
///   a property that was optional becomes nullable (`type: [T, "null"]`, `null` added to its
///   `enum`, or `anyOf: [T, {type: null}]`), the way the guide emulates optional fields;
/// - kept: `type`, `description`, `title`, `enum`, `const`, `$ref`, `$defs`/`definitions`,
///   `anyOf` (and `oneOf`, rewritten as `anyOf`), `properties`, `items`; on strings `pattern` and
///   `format` (only date-time, time, date, duration, email, hostname, ipv4, ipv6, uuid); on
///   numbers `multipleOf`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`; on
///   arrays `minItems`, `maxItems`;
/// - `allOf` is merged into its parent; everything else is dropped, notably `minLength`,
///   `maxLength` (not supported on strings), `default`, `examples`, `uniqueItems`,
///   `patternProperties`, `minProperties`, `maxProperties`, `not`, `if`/`then`/`else`,
///   `dependentRequired`, `dependentSchemas`, `$schema`.
///
/// What is dropped is still checked by validation. The guide's own limits (root an object and
/// not `anyOf`, at most 5000 properties, 10 levels, 1000 enum values) are not checked here.
/// Fine-tuned models take fewer keywords; OpenAI refuses those with a 400 that
/// [`refusal`](fn@super::refusal) reads as [`Refused::Schema`](super::Refused::Schema), and the
/// next dialect sends the schema non-strict.
pub fn strict_schema(schema: &Value) -> Value {
    strict_node(schema, 0)
}

fn strict_node(schema: &Value, depth: usize) -> Value {
    let Some(src) = schema.as_object() else { return schema.clone() };
    if depth > 64 {
        return schema.clone();
    }
    // allOf: merge each part's keywords into the node itself.
    let mut merged = src.clone();
    if let Some(Value::Array(parts)) = merged.remove("allOf") {
        for part in parts {
            if let Value::Object(part) = part {
                for (k, v) in part {
                    merged.entry(k).or_insert(v);
                }
            }
        }
    }
    let types: Vec<&str> = match merged.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let has = |t: &str| types.contains(&t);
    let is_object = has("object") || merged.contains_key("properties");
    let mut out = Map::new();
    for (key, value) in &merged {
        let keep = STRICT_KEEP.contains(&key.as_str())
            || (has("string") && key == "pattern")
            || (has("string")
                && key == "format"
                && value.as_str().is_some_and(|f| STRICT_FORMATS.contains(&f)))
            || ((has("number") || has("integer")) && STRICT_NUMBER.contains(&key.as_str()))
            || (has("array") && (key == "minItems" || key == "maxItems"));
        if keep {
            out.insert(key.clone(), value.clone());
        }
    }
    for defs in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = merged.get(defs) {
            let d = d.iter().map(|(k, v)| (k.clone(), strict_node(v, depth + 1))).collect();
            out.insert(defs.into(), Value::Object(d));
        }
    }
    let any_of = merged.get("anyOf").or(merged.get("oneOf"));
    if let Some(Value::Array(alts)) = any_of {
        out.insert("anyOf".into(), alts.iter().map(|a| strict_node(a, depth + 1)).collect());
    }
    if let Some(items) = merged.get("items") {
        out.insert("items".into(), strict_node(items, depth + 1));
    }
    if is_object {
        let required: Vec<&str> = merged
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut props = Map::new();
        if let Some(Value::Object(p)) = merged.get("properties") {
            for (k, v) in p {
                let v = strict_node(v, depth + 1);
                props.insert(
                    k.clone(),
                    if required.contains(&k.as_str()) { v } else { nullable(v) },
                );
            }
        }
        out.insert("required".into(), props.keys().cloned().map(Value::String).collect());
        out.insert("properties".into(), Value::Object(props));
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// `schema` also accepting `null`: OpenAI's way to say a required field may be absent.
fn nullable(schema: Value) -> Value {
    let Value::Object(mut s) = schema else { return schema };
    let null = Value::String("null".into());
    match s.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            s.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(ts)) if !ts.contains(&null) => ts.push(null),
        Some(_) => {}
        None => return json!({"anyOf": [Value::Object(s), {"type": "null"}]}),
    }
    if let Some(Value::Array(e)) = s.get_mut("enum")
        && !e.contains(&Value::Null)
    {
        e.push(Value::Null);
    }
    Value::Object(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `schema` with every `required` list sorted: its order follows the properties' order, which
    /// depends on serde_json's `preserve_order` feature.
    fn sorted_required(mut schema: Value) -> Value {
        match &mut schema {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if let (true, Value::Array(a)) = (k == "required", &mut *v) {
                        a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                    } else {
                        *v = sorted_required(v.take());
                    }
                }
            }
            Value::Array(items) => {
                for v in items.iter_mut() {
                    *v = sorted_required(v.take());
                }
            }
            _ => {}
        }
        schema
    }

    #[test]
    fn strict_schema_closes_objects_and_requires_every_property() {
        let schema = json!({
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 80},
                "mood": {"type": "string", "enum": ["dark", "light"]},
                "scenes": {
                    "type": "array", "minItems": 3, "maxItems": 6, "uniqueItems": true,
                    "items": {"type": "object", "properties": {"summary": {"type": "string"}}},
                },
            },
            "required": ["title", "scenes"],
        });
        assert_eq!(
            sorted_required(strict_schema(&schema)),
            sorted_required(json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "mood": {"type": ["string", "null"], "enum": ["dark", "light", null]},
                    "scenes": {
                        "type": "array", "minItems": 3, "maxItems": 6,
                        "items": {
                            "type": "object",
                            "properties": {"summary": {"type": ["string", "null"]}},
                            "required": ["summary"],
                            "additionalProperties": false,
                        },
                    },
                },
                "required": ["title", "mood", "scenes"],
                "additionalProperties": false,
            }))
        );
    }

    #[test]
    fn strict_schema_keeps_the_keywords_openai_supports_and_drops_the_rest() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "title": "T",
            "properties": {
                "id": {"type": "string", "format": "uuid", "pattern": "^[a-f0-9-]+$", "default": "x"},
                "when": {"type": "string", "format": "iso-8601-ish"},
                "score": {"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 1, "examples": [5]},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "kind": {"const": "review", "description": "fixed"},
                "either": {"oneOf": [{"type": "string"}, {"$ref": "#/$defs/n"}]},
                "tags": {"type": "object", "patternProperties": {"^x": {"type": "string"}}, "minProperties": 1},
                "merged": {"allOf": [{"type": "string"}, {"description": "d", "not": {"const": ""}}]},
            },
            "required": ["id", "when", "score", "ratio", "kind", "either", "tags", "merged"],
            "$defs": {"n": {"type": "object", "properties": {"v": {"type": "number"}}, "required": ["v"]}},
        });
        assert_eq!(
            sorted_required(strict_schema(&schema)),
            sorted_required(json!({
                "type": "object",
                "title": "T",
                "properties": {
                    "id": {"type": "string", "format": "uuid", "pattern": "^[a-f0-9-]+$"},
                    "when": {"type": "string"},
                    "score": {"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 1},
                    "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    "kind": {"const": "review", "description": "fixed"},
                    "either": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/n"}]},
                    "tags": {"type": "object", "properties": {}, "required": [], "additionalProperties": false},
                    "merged": {"type": "string", "description": "d"},
                },
                "required": ["id", "when", "score", "ratio", "kind", "either", "tags", "merged"],
                "additionalProperties": false,
                "$defs": {"n": {
                    "type": "object",
                    "properties": {"v": {"type": "number"}},
                    "required": ["v"],
                    "additionalProperties": false,
                }},
            }))
        );
    }

    #[test]
    fn strict_schema_makes_optional_refs_nullable_with_any_of() {
        let schema = json!({
            "type": "object",
            "properties": {"next": {"$ref": "#/$defs/n"}, "n": {"type": ["integer", "null"]}},
            "$defs": {"n": {"type": "object", "properties": {}}},
        });
        let strict = strict_schema(&schema);
        assert_eq!(
            strict["properties"]["next"],
            json!({"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]})
        );
        assert_eq!(strict["properties"]["n"], json!({"type": ["integer", "null"]}));
        assert_eq!(sorted_required(strict)["required"], json!(["n", "next"]));
    }
}
