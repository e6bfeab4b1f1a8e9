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
    fitted(schema.clone(), chars)
}

/// [`fit_to`], in place.
pub fn fitted(mut schema: Value, chars: u64) -> Value {
    // Read once into its bounds, so the search below does not walk the JSON each step.
    let Some(shape) = Shape::of(&schema) else { return schema };
    if shape.chars(1.0) <= chars {
        return schema;
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    // Within 2^-14 of the best factor: each bound within one character or item of its best
    // for bounds up to 16,384 (the largest is an outline's 800), at half the steps of 2^-24.
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        if shape.chars(mid) <= chars {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    scale(&mut schema, lo);
    schema
}

/// The bounds of a schema, as [`max_chars`] counts them: what [`fit_to`] searches over.
enum Shape {
    /// As long whatever the factor: a constant, a choice, a number.
    Fixed(u64),
    /// A string bounded by `max` characters, scaled no lower than `floor`.
    Text { max: u64, floor: u64 },
    /// A list of at most `max` items, scaled no lower than `floor`.
    List { max: u64, floor: u64, each: Box<Shape> },
    /// An object: its braces, keys and separators, and its fields.
    Object { fixed: u64, fields: Vec<Shape> },
}

impl Shape {
    /// `None` when a string or a list in `schema` has no upper bound.
    fn of(schema: &Value) -> Option<Shape> {
        let bound = |max_key: &str, min_key: &str| {
            let max = schema.get(max_key).and_then(Value::as_u64)?;
            let floor = schema.get(min_key).and_then(Value::as_u64).unwrap_or(0).max(1);
            Some((max, floor.min(max)))
        };
        if schema.get("const").is_some() || schema.get("enum").is_some_and(Value::is_array) {
            return max_chars(schema).map(Shape::Fixed);
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => {
                let props = schema.get("properties").and_then(Value::as_object);
                let mut fixed = 2;
                let mut fields = Vec::new();
                for (key, sub) in props.into_iter().flatten() {
                    fixed += key.len() as u64 + 5;
                    fields.push(Shape::of(sub)?);
                }
                Some(Shape::Object { fixed, fields })
            }
            Some("array") => {
                let (max, floor) = bound("maxItems", "minItems")?;
                let each = match schema.get("items") {
                    Some(items) => Shape::of(items)?,
                    None => Shape::Fixed(4),
                };
                Some(Shape::List { max, floor, each: Box::new(each) })
            }
            Some("string") => {
                bound("maxLength", "minLength").map(|(max, floor)| Shape::Text { max, floor })
            }
            _ => max_chars(schema).map(Shape::Fixed),
        }
    }

    /// The most characters of an answer with every bound times `f` (at least its floor).
    fn chars(&self, f: f64) -> u64 {
        let scale = |max: u64, floor: u64| ((max as f64 * f).floor() as u64).clamp(floor, max);
        match self {
            Shape::Fixed(n) => *n,
            Shape::Text { max, floor } => scale(*max, *floor) + 2,
            Shape::List { max, floor, each } => 2 + scale(*max, *floor) * (each.chars(f) + 2),
            Shape::Object { fixed, fields } => {
                fixed + fields.iter().map(|s| s.chars(f)).sum::<u64>()
            }
        }
    }
}

/// `max_chars(&scaled(schema, f))`, counted without building the scaled copy.
#[cfg(test)]
fn max_chars_scaled(schema: &Value, f: f64) -> Option<u64> {
    Shape::of(schema).map(|s| s.chars(f))
}

/// `schema` with every bounded string's and list's upper bound times `f`, at least its floor.
#[cfg(test)]
fn scaled(schema: &Value, f: f64) -> Value {
    let mut out = schema.clone();
    scale(&mut out, f);
    out
}

/// Brings every bounded string's and list's upper bound of `schema` down to itself times `f`,
/// at least its floor.
fn scale(schema: &mut Value, f: f64) {
    let Value::Object(map) = schema else { return };
    let scaled = |map: &serde_json::Map<String, Value>, max_key: &str, min_key: &str| {
        let max = map.get(max_key).and_then(Value::as_u64)?;
        let floor = map.get(min_key).and_then(Value::as_u64).unwrap_or(0).max(1).min(max);
        Some(json!(((max as f64 * f).floor() as u64).clamp(floor, max)))
    };
    let of_type = |t: &str| map.get("type").and_then(Value::as_str) == Some(t);
    if of_type("string") && !map.contains_key("enum") && !map.contains_key("const") {
        if let Some(v) = scaled(map, "maxLength", "minLength") {
            map.insert("maxLength".into(), v);
        }
    } else if of_type("array") {
        if let Some(v) = scaled(map, "maxItems", "minItems") {
            map.insert("maxItems".into(), v);
        }
        if let Some(items) = map.get_mut("items") {
            scale(items, f);
        }
    } else if of_type("object")
        && let Some(Value::Object(props)) = map.get_mut("properties")
    {
        props.values_mut().for_each(|v| scale(v, f));
    }
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
