//! Answers read from bodies that are not an OpenAI chat completion (Anthropic's forced tool,
//! Ollama's `/api/chat`), and the raw control characters llama-cpp-python's grammar lets into
//! JSON strings.

use super::schema_name;
use serde_json::Value;
use std::borrow::Cow;

/// An answer read from a body that is not an OpenAI chat completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer's JSON text.
    pub text: String,
    /// Prompt tokens as the server counted them.
    pub prompt_tokens: u64,
    /// Completion tokens as the server counted them.
    pub completion_tokens: u64,
    /// Whether the answer was cut at `max_tokens`.
    pub truncated: bool,
}

/// The answer of an Anthropic response to a [`Dialect::AnthropicTool`] request: the `input` of
/// the `tool_use` block named `name`, as JSON text. `None` without such a block (the model
/// answered in text, or was cut before the tool call).
///
/// [`Dialect::AnthropicTool`]: super::Dialect::AnthropicTool
pub fn anthropic_tool_answer(body: &Value, name: &str) -> Option<Answer> {
    let name = schema_name(name);
    let block = body["content"]
        .as_array()?
        .iter()
        .find(|b| b["type"] == "tool_use" && b["name"].as_str() == Some(name.as_str()))?;
    let input = block.get("input").filter(|i| i.is_object())?;
    Some(Answer {
        text: input.to_string(),
        prompt_tokens: body["usage"]["input_tokens"].as_u64().unwrap_or(0),
        completion_tokens: body["usage"]["output_tokens"].as_u64().unwrap_or(0),
        truncated: body["stop_reason"] == "max_tokens",
    })
}

/// The answer of Ollama's native `POST /api/chat` (`stream: false`): `message.content`, the
/// token counts `prompt_eval_count` and `eval_count`, and `done_reason` `length` when cut.
pub fn ollama_chat_answer(body: &Value) -> Option<Answer> {
    Some(Answer {
        text: body["message"]["content"].as_str()?.to_string(),
        prompt_tokens: body["prompt_eval_count"].as_u64().unwrap_or(0),
        completion_tokens: body["eval_count"].as_u64().unwrap_or(0),
        truncated: body["done_reason"] == "length",
    })
}

/// `text` with the raw control characters inside its JSON strings escaped (`\n`, `\t`,
/// `\u001f`, ...), as strict JSON parsers (serde_json among them) require. llama-cpp-python's
/// grammar lets them in: its `char` rule is `[^"\\]`, so a long string under a schema often holds
/// a raw newline. Text outside strings is left as it is.
pub fn escape_raw_controls(text: &str) -> Cow<'_, str> {
    let mut in_string = false;
    let mut escaped = false;
    let mut out: Option<String> = None;
    for (i, c) in text.char_indices() {
        let raw_control = in_string && !escaped && (c as u32) < 0x20;
        if raw_control {
            let out = out.get_or_insert_with(|| text[..i].to_string());
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c => out.push_str(&format!("\\u{:04x}", c as u32)),
            }
        } else if let Some(out) = out.as_mut() {
            out.push(c);
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
    }
    out.map_or(Cow::Borrowed(text), Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::capture;
    use super::*;

    #[test]
    fn llama_cpp_python_enforces_enums_and_min_length() {
        let c = capture("json_object_schema_enum_min_length_ok");
        let schema = &c.request["response_format"]["schema"];
        let v: Value = serde_json::from_str(&c.body).unwrap();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        let answer: Value = serde_json::from_str(&escape_raw_controls(content)).unwrap();
        assert!(
            schema["properties"]["score"]["enum"].as_array().unwrap().contains(&answer["score"]),
            "{answer}"
        );
        let min = schema["properties"]["reason"]["minLength"].as_u64().unwrap() as usize;
        assert!(answer["reason"].as_str().unwrap().chars().count() >= min, "{answer}");
    }

    #[test]
    fn raw_control_characters_in_grammar_strings_are_escaped() {
        let c = capture("json_object_schema_raw_newline");
        let v: Value = serde_json::from_str(&c.body).unwrap();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            serde_json::from_str::<Value>(content).is_err(),
            "the capture should hold a raw newline"
        );
        let answer: Value = serde_json::from_str(&escape_raw_controls(content)).unwrap();
        assert!(answer["text"].as_str().unwrap().contains('\n'));
        assert!(answer["title"].is_string());

        assert_eq!(escape_raw_controls("{\"a\":\"x\ny\t\u{1}\"}"), "{\"a\":\"x\\ny\\t\\u0001\"}");
        // Outside strings, and after an escaped quote, nothing changes.
        let clean = "{\n  \"a\": \"q\\\"\",\n  \"b\": 1\n}";
        assert!(matches!(escape_raw_controls(clean), Cow::Borrowed(_)));
        assert_eq!(
            escape_raw_controls("{\"a\":\"\\\\\",\"b\":\"x\ny\"}"),
            "{\"a\":\"\\\\\",\"b\":\"x\\ny\"}"
        );
    }
}
