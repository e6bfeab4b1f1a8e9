//! A request's schema fitted to its answer's room: string and list bounds brought down so
//! that the longest answer a grammar allows ends before `max_tokens` cuts it off.
//!
//! A small model inside a grammar writes every field to its bound when it loops; an answer
//! the token limit cuts off is unreadable and costs its whole room. With the bounds fitted,
//! the looping answer still closes its JSON, and validation judges what it says.

use serde_json::{Value, json};

/// The most characters of an answer to `schema`, quotes, keys and separators included;
/// `None` when a string or a list in it has no upper bound.
pub fn max_chars(schema: &Value) -> Option<u64> {
    if let Some(c) = schema.get("const") {
        return Some(c.to_string().len() as u64);
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values.iter().map(|v| v.to_string().len() as u64).max().or(Some(0));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let props = schema.get("properties").and_then(Value::as_object);
            props.into_iter().flatten().try_fold(2, |sum, (key, sub)| {
                // `"key": value, `
                Some(sum + key.len() as u64 + 5 + max_chars(sub)?)
            })
        }
        Some("array") => {
            let items = schema.get("maxItems").and_then(Value::as_u64)?;
            let each = schema.get("items").map_or(Some(4), max_chars)?;
            Some(2 + items * (each + 2))
        }
        Some("string") => schema.get("maxLength").and_then(Value::as_u64).map(|m| m + 2),
        Some("integer") => Some(20),
        Some("number") => Some(24),
        Some("boolean") => Some(5),
        _ => Some(4),
    }
}

/// `schema` with its bounds brought down, never below their floors (`minLength`, `minItems`),
/// so that an answer has at most `chars` characters: every string's `maxLength` and every
/// list's `maxItems` scaled by the largest one factor that fits. Unchanged when the answer
/// already fits or has no bound; at its floors when even those do not fit.
pub fn fit_to(schema: &Value, chars: u64) -> Value {
    match max_chars(schema) {
        Some(most) if most > chars => {}
        _ => return schema.clone(),
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    // Within 2^-14 of the best factor: each bound within one character or item of its best
    // for bounds up to 16,384 (the largest is an outline's 800), at half the steps of 2^-24.
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        if max_chars_scaled(schema, mid).is_some_and(|m| m <= chars) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    scaled(schema, lo)
}

/// `max_chars(&scaled(schema, f))`, counted without building the scaled copy (the binary
/// search above asks it 14 times per fit).
fn max_chars_scaled(schema: &Value, f: f64) -> Option<u64> {
    let scale = |max: u64, floor: u64| ((max as f64 * f).floor() as u64).clamp(floor, max);
    let bound = |max_key: &str, min_key: &str| {
        let max = schema.get(max_key).and_then(Value::as_u64)?;
        let floor = schema.get(min_key).and_then(Value::as_u64).unwrap_or(0).max(1);
        Some(scale(max, floor.min(max)))
    };
    if schema.get("const").is_some() || schema.get("enum").is_some_and(Value::is_array) {
        return max_chars(schema);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let props = schema.get("properties").and_then(Value::as_object);
            props.into_iter().flatten().try_fold(2, |sum, (key, sub)| {
                Some(sum + key.len() as u64 + 5 + max_chars_scaled(sub, f)?)
            })
        }
        Some("array") => {
            let items = bound("maxItems", "minItems")?;
            let each = schema.get("items").map_or(Some(4), |i| max_chars_scaled(i, f))?;
            Some(2 + items * (each + 2))
        }
        Some("string") => bound("maxLength", "minLength").map(|m| m + 2),
        _ => max_chars(schema),
    }
}

/// `schema` with every bounded string's and list's upper bound times `f`, at least its floor.
fn scaled(schema: &Value, f: f64) -> Value {
    let Value::Object(map) = schema else { return schema.clone() };
    let mut out = map.clone();
    let scale = |max: u64, floor: u64| ((max as f64 * f).floor() as u64).clamp(floor, max);
    match map.get("type").and_then(Value::as_str) {
        Some("string") if !map.contains_key("enum") && !map.contains_key("const") => {
            if let Some(max) = map.get("maxLength").and_then(Value::as_u64) {
                let floor = map.get("minLength").and_then(Value::as_u64).unwrap_or(0).max(1);
                out.insert("maxLength".into(), json!(scale(max, floor.min(max))));
            }
        }
        Some("array") => {
            if let Some(max) = map.get("maxItems").and_then(Value::as_u64) {
                let floor = map.get("minItems").and_then(Value::as_u64).unwrap_or(0).max(1);
                out.insert("maxItems".into(), json!(scale(max, floor.min(max))));
            }
            if let Some(items) = map.get("items") {
                out.insert("items".into(), scaled(items, f));
            }
        }
        Some("object") => {
            if let Some(Value::Object(props)) = map.get("properties") {
                let props = props.iter().map(|(k, v)| (k.clone(), scaled(v, f))).collect();
                out.insert("properties".into(), Value::Object(props));
            }
        }
        _ => {}
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{array, check, object, text, text_sized};

    fn outline_like() -> Value {
        let scene =
            object(vec![("summary", text_sized("s", 1, 200)), ("setting", text_sized("w", 1, 80))]);
        object(vec![
            ("summary", text_sized("b", 10, 800)),
            ("chapters", array(array(scene, 3, 6), 8, 8)),
        ])
    }

    #[test]
    fn a_scaled_schema_is_counted_as_its_scaled_copy_is() {
        let cast = json!({"type": "string", "enum": ["Ann", "Bartholomew"]});
        let odd = json!({"type": "object", "properties": {
            "n": {"type": "integer"}, "c": {"const": "fixed"}, "who": cast,
            "l": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 7}},
            "e": {"type": "array", "maxItems": 3, "minItems": 3},
            "u": {"type": "array", "items": {"type": "string", "maxLength": 7}},
        }});
        for s in [outline_like(), odd, json!({"type": "string", "maxLength": 0}), json!(true)] {
            for f in [0.0, 0.001, 0.1, 0.37, 0.5, 0.999, 1.0] {
                assert_eq!(max_chars_scaled(&s, f), max_chars(&scaled(&s, f)), "{s} at {f}");
            }
        }
    }

    #[test]
    fn the_longest_answer_is_counted_with_its_structure() {
        let s = object(vec![("a", text_sized("a", 1, 10)), ("b", array(text("x"), 0, 2))]);
        // {"a": <12>, "b": [<1002>, <1002>]} with separators
        let longest = json!({"a": "x".repeat(10), "b": ["y".repeat(1000), "z".repeat(1000)]});
        let counted = max_chars(&s).unwrap();
        assert!(counted >= longest.to_string().len() as u64, "{counted}");
        assert!(counted <= longest.to_string().len() as u64 + 20, "{counted}");
        let unbounded = object(vec![("a", json!({"type": "string"}))]);
        assert_eq!(max_chars(&unbounded), None);
        let cast = json!({"type": "string", "enum": ["Ann", "Bartholomew"]});
        assert_eq!(max_chars(&cast), Some(13));
    }

    #[test]
    fn a_schema_too_long_for_its_room_is_brought_down_to_fit_and_keeps_its_floors() {
        let s = outline_like();
        let before = max_chars(&s).unwrap();
        let fitted = fit_to(&s, 8_000);
        let after = max_chars(&fitted).unwrap();
        assert!(before > 8_000 && after <= 8_000, "{before} -> {after}");
        assert!(after > 6_000, "fitted as close to the room as the bounds allow: {after}");
        let chapters = &fitted["properties"]["chapters"];
        assert_eq!(chapters["minItems"], 8, "an exact count is never scaled");
        assert_eq!(chapters["maxItems"], 8);
        assert_eq!(chapters["items"]["minItems"], 3, "floors stay");
        assert!(fitted["properties"]["summary"]["maxLength"].as_u64().unwrap() >= 10);
        // What the fitted schema accepts, the original accepts.
        let answer = json!({"summary": "x".repeat(10), "chapters": vec![
            vec![json!({"summary": "s", "setting": "w"}); 3]; 8]});
        check(&fitted, &answer).unwrap();
        check(&s, &answer).unwrap();
        // Room for the floors only: the floors.
        let floors = fit_to(&s, 10);
        assert_eq!(floors["properties"]["summary"]["maxLength"], 10);
        assert_eq!(floors["properties"]["chapters"]["items"]["maxItems"], 3);
        // Room enough: unchanged.
        assert_eq!(fit_to(&s, before), s);
    }
}
