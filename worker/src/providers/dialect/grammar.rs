//! Schemas as llama.cpp grammars compile them: a string longer than a grammar can bound is
//! asked as a list of paragraphs, each bounded, and the answer's paragraphs are joined back.

use serde_json::{Map, Value, json};

/// The longest `maxLength` a llama.cpp grammar compiles. Both of its schema converters expand a
/// bounded string into repetitions of a character rule, and llama.cpp refuses a grammar whose
/// repetitions reach 2,000 rules ("number of rules that are going to be repeated multiplied by
/// the new repetition exceeds sane defaults"): llama-server answers with an error, and
/// llama-cpp-python 0.3.36 crashes, taking the server down. Measured on llama-cpp-python:
/// `maxLength` 1,000 and 1,001 compile, 1,200 does not, whatever the `minLength`.
pub const GRAMMAR_MAX_LENGTH: u64 = 1000;

/// `schema` as a llama.cpp grammar compiles it (llama-server, llama-cpp-python, Ollama, and
/// any server that may be one of them): a string whose `maxLength` is over
/// [`GRAMMAR_MAX_LENGTH`] (a long scene's prose) becomes a list of exactly `n` paragraphs,
/// `n` the fewest that bring each under it, each bounded by the string's bounds over `n`. The
/// text stays bounded above and below, so a looping model still stops and a short one still
/// writes enough; [`rejoin`] makes the answer's list the string again, and validation holds it
/// to the full rule.
pub fn grammar_safe(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => match long_string(map) {
            Some((min, max)) => paragraphs(map, min, max),
            None => Value::Object(map.iter().map(|(k, v)| (k.clone(), grammar_safe(v))).collect()),
        },
        Value::Array(items) => Value::Array(items.iter().map(grammar_safe).collect()),
        other => other.clone(),
    }
}

/// The answer `value` to a request whose schema was `schema` before [`grammar_safe`]: every
/// list of paragraphs asked in place of a long string is that string again, its paragraphs
/// joined by a blank line. Anything else is left as it is (a server that ignored the grammar
/// answered with the string itself).
pub fn rejoin(schema: &Value, value: &mut Value) {
    let Value::Object(map) = schema else { return };
    if long_string(map).is_some() {
        if let Value::Array(parts) = value
            && parts.iter().all(Value::is_string)
        {
            let text: Vec<&str> = parts
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            *value = Value::String(text.join("\n\n"));
        }
        return;
    }
    match (map.get("type").and_then(Value::as_str), value) {
        (Some("object"), Value::Object(fields)) => {
            for (key, sub) in map.get("properties").and_then(Value::as_object).into_iter().flatten()
            {
                if let Some(v) = fields.get_mut(key) {
                    rejoin(sub, v);
                }
            }
        }
        (Some("array"), Value::Array(items)) => {
            if let Some(sub) = map.get("items") {
                items.iter_mut().for_each(|v| rejoin(sub, v));
            }
        }
        _ => {}
    }
}

/// The bounds of a free string too long for a grammar to bound.
fn long_string(map: &Map<String, Value>) -> Option<(u64, u64)> {
    if map.get("type").and_then(Value::as_str) != Some("string")
        || map.contains_key("enum")
        || map.contains_key("const")
    {
        return None;
    }
    let max = map.get("maxLength").and_then(Value::as_u64).filter(|m| *m > GRAMMAR_MAX_LENGTH)?;
    let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0).min(max);
    Some((min, max))
}

fn paragraphs(map: &Map<String, Value>, min: u64, max: u64) -> Value {
    let n = max.div_ceil(GRAMMAR_MAX_LENGTH);
    let what = map.get("description").and_then(Value::as_str).unwrap_or("the text");
    let paragraph = json!({
        "type": "string",
        "minLength": min.div_ceil(n).max(1),
        "maxLength": max.div_ceil(n),
        "description": format!("one paragraph of {what}"),
    });
    json!({
        "type": "array",
        "items": paragraph,
        "minItems": n,
        "maxItems": n,
        "description": format!("{what}, in {n} paragraphs"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::chat_body;
    use super::super::{Dialect, apply};
    use super::*;

    #[test]
    fn llama_cpp_dialects_ask_a_string_too_long_for_a_grammar_as_bounded_paragraphs() {
        let schema = json!({
            "type": "object",
            "properties": {
                "scenes": {"type": "array", "items": {"type": "object", "properties": {
                    "text": {"type": "string", "minLength": 1280, "maxLength": 2160,
                        "description": "the scene's prose"},
                }}},
                "summary": {"type": "string", "minLength": 1, "maxLength": 1000},
                "part": {"type": "string", "minLength": 960, "maxLength": 1620},
            },
        });
        let safe = grammar_safe(&schema);
        let text = &safe["properties"]["scenes"]["items"]["properties"]["text"];
        assert_eq!(
            (text["type"].as_str(), &text["minItems"], &text["maxItems"]),
            (Some("array"), &json!(3), &json!(3))
        );
        assert_eq!(text["items"]["minLength"], 427, "the floor is shared: 3 x 427 >= 1280");
        assert_eq!(text["items"]["maxLength"], 720, "and the bound: 3 x 720 = 2160");
        assert!(
            text["description"].as_str().unwrap().contains("the scene's prose, in 3 paragraphs")
        );
        assert_eq!(
            safe["properties"]["summary"], schema["properties"]["summary"],
            "short: as it was"
        );
        let part = &safe["properties"]["part"];
        assert_eq!(
            (&part["maxItems"], &part["items"]["minLength"], &part["items"]["maxLength"]),
            (&json!(2), &json!(480), &json!(810))
        );
        // No string in what a grammar compiles is bounded over the limit.
        let lengths = safe.to_string();
        assert!(!lengths.contains("2160") && !lengths.contains("1620"), "{safe}");

        // The answer's paragraphs are the string again; an answer that kept the string is kept.
        let mut answer = json!({
            "scenes": [{"text": ["First paragraph.", " Second. ", "Third."]}, {"text": "whole"}],
            "summary": "s",
            "part": ["a", "b"],
        });
        rejoin(&schema, &mut answer);
        assert_eq!(answer["scenes"][0]["text"], "First paragraph.\n\nSecond.\n\nThird.");
        assert_eq!(answer["scenes"][1]["text"], "whole");
        assert_eq!(answer["part"], "a\n\nb");
        assert_eq!(answer["summary"], "s");

        // Every dialect a llama.cpp grammar may enforce sends the safe schema; vLLM's and OpenAI's
        // get it whole (strict mode drops lengths anyway).
        for dialect in [
            Dialect::JsonObjectSchema,
            Dialect::JsonSchema,
            Dialect::JsonSchemaField,
            Dialect::OllamaFormat,
        ] {
            let mut body = chat_body();
            apply(dialect, &mut body, "chapter", &schema);
            assert!(!body.to_string().contains("2160"), "{dialect:?}: {body}");
            assert!(body.to_string().contains("in 3 paragraphs"), "{dialect:?}: {body}");
        }
        for dialect in [Dialect::GuidedJson, Dialect::StructuredOutputs] {
            let mut body = chat_body();
            apply(dialect, &mut body, "chapter", &schema);
            assert!(body.to_string().contains("2160"), "{dialect:?}: {body}");
        }
    }
}
