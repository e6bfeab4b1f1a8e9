//! Request shaping per dialect: the format fields each dialect sets on a chat body (OpenAI-style,
//! Ollama's `/api/chat` or Anthropic's Messages) and the schema name it carries.

use super::strict::strict_schema;
use super::{Dialect, grammar_safe};
use serde_json::{Map, Value, json};

/// Request fields any dialect sets; [`apply`] clears them all before setting its own.
const FORMAT_FIELDS: [&str; 7] = [
    "response_format",
    "json_schema",
    "guided_json",
    "structured_outputs",
    "format",
    "tools",
    "tool_choice",
];

/// A schema name as OpenAI and Anthropic take it: letters, digits, `_` and `-`, at most 64.
pub fn schema_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(64)
        .collect();
    if clean.is_empty() { "answer".into() } else { clean }
}

/// Shapes `body` for `dialect`: an OpenAI-style chat body (`model`, `messages`, `temperature`,
/// `top_p`, `max_tokens`, `seed`) for every dialect but [`Dialect::AnthropicTool`], which takes
/// an Anthropic Messages body. `name` names the schema (the agent kind).
///
/// Format fields left by another dialect are removed first, so one body can be re-shaped while
/// stepping down; [`Dialect::OllamaFormat`] rewrites the body for `/api/chat` and is the one
/// change that cannot be undone.
pub fn apply(dialect: Dialect, body: &mut Value, name: &str, schema: &Value) {
    let Some(obj) = body.as_object_mut() else { return };
    for field in FORMAT_FIELDS {
        obj.remove(field);
    }
    let name = schema_name(name);
    match dialect {
        Dialect::OpenaiStrict => {
            obj.insert(
                "response_format".into(),
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": name, "strict": true, "schema": strict_schema(schema)},
                }),
            );
        }
        Dialect::JsonSchema => {
            let schema = grammar_safe(schema);
            obj.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema}}),
            );
        }
        Dialect::JsonObjectSchema => {
            let schema = grammar_safe(schema);
            obj.insert("response_format".into(), json!({"type": "json_object", "schema": schema}));
        }
        Dialect::JsonSchemaField => {
            obj.insert("json_schema".into(), grammar_safe(schema));
        }
        Dialect::GuidedJson => {
            obj.insert("guided_json".into(), schema.clone());
        }
        Dialect::StructuredOutputs => {
            obj.insert("structured_outputs".into(), json!({"json": schema}));
        }
        Dialect::OllamaFormat => {
            let mut options = Map::new();
            for (from, to) in [
                ("temperature", "temperature"),
                ("top_p", "top_p"),
                ("seed", "seed"),
                ("max_tokens", "num_predict"),
            ] {
                if let Some(v) = obj.remove(from) {
                    options.insert(to.into(), v);
                }
            }
            obj.insert("options".into(), Value::Object(options));
            obj.insert("stream".into(), Value::Bool(false));
            obj.insert("format".into(), grammar_safe(schema));
        }
        Dialect::JsonObject => {
            obj.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Dialect::Text => {}
        Dialect::AnthropicTool => {
            let (tools, tool_choice) = anthropic_tool(&name, schema);
            obj.insert("tools".into(), tools);
            obj.insert("tool_choice".into(), tool_choice);
        }
    }
}

/// The `tools` and `tool_choice` fields of an Anthropic request whose answer must match
/// `schema`: one tool named `name` taking the answer as its input, and the choice forcing it.
pub fn anthropic_tool(name: &str, schema: &Value) -> (Value, Value) {
    let name = schema_name(name);
    let tools = json!([{
        "name": name,
        "description": "Give your answer as this tool's input.",
        "input_schema": schema,
    }]);
    let tool_choice = json!({"type": "tool", "name": name});
    (tools, tool_choice)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{capture, chat_body};
    use super::super::{SchemaUse, anthropic_tool_answer, ollama_chat_answer, refusal};
    use super::*;

    fn verdict_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["accept", "revise"]},
                "score": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "required": ["verdict", "score"],
            "additionalProperties": false,
        })
    }

    fn shaped(dialect: Dialect) -> Value {
        let mut body = chat_body();
        apply(dialect, &mut body, "review", &verdict_schema());
        body
    }

    /// The body without the fields every OpenAI-style dialect keeps as they were.
    fn format_part(mut body: Value) -> Value {
        let obj = body.as_object_mut().unwrap();
        for k in ["model", "messages", "temperature", "top_p", "max_tokens", "seed"] {
            assert_eq!(obj.remove(k), chat_body().get(k).cloned(), "{k} changed");
        }
        body
    }

    #[test]
    fn openai_strict_sends_the_strict_schema_named_after_the_kind() {
        assert_eq!(
            format_part(shaped(Dialect::OpenaiStrict)),
            json!({"response_format": {"type": "json_schema", "json_schema": {
                "name": "review", "strict": true, "schema": strict_schema(&verdict_schema()),
            }}})
        );
    }

    #[test]
    fn json_schema_sends_the_schema_as_written_without_strict() {
        assert_eq!(
            format_part(shaped(Dialect::JsonSchema)),
            json!({"response_format": {"type": "json_schema", "json_schema": {
                "name": "review", "schema": verdict_schema(),
            }}})
        );
    }

    #[test]
    fn json_object_schema_is_llama_cpp_pythons_form() {
        assert_eq!(
            format_part(shaped(Dialect::JsonObjectSchema)),
            json!({"response_format": {"type": "json_object", "schema": verdict_schema()}})
        );
    }

    #[test]
    fn field_dialects_set_one_top_level_field() {
        assert_eq!(
            format_part(shaped(Dialect::JsonSchemaField)),
            json!({"json_schema": verdict_schema()})
        );
        assert_eq!(
            format_part(shaped(Dialect::GuidedJson)),
            json!({"guided_json": verdict_schema()})
        );
        assert_eq!(
            format_part(shaped(Dialect::StructuredOutputs)),
            json!({"structured_outputs": {"json": verdict_schema()}})
        );
    }

    #[test]
    fn json_object_and_text_send_no_schema() {
        assert_eq!(
            format_part(shaped(Dialect::JsonObject)),
            json!({"response_format": {"type": "json_object"}})
        );
        assert_eq!(format_part(shaped(Dialect::Text)), json!({}));
        assert_eq!(Dialect::JsonObject.schema_use(), SchemaUse::None);
        assert_eq!(Dialect::Text.schema_use(), SchemaUse::None);
    }

    #[test]
    fn ollama_format_rewrites_the_body_for_api_chat() {
        assert_eq!(
            shaped(Dialect::OllamaFormat),
            json!({
                "model": "m",
                "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                "stream": false,
                "format": verdict_schema(),
                "options": {"temperature": 0.7, "top_p": 0.9, "seed": 3, "num_predict": 400},
            })
        );
        assert_eq!(Dialect::OllamaFormat.endpoint(), "api/chat");
        let answer = ollama_chat_answer(&json!({
            "message": {"role": "assistant", "content": "{\"verdict\":\"accept\",\"score\":7}"},
            "done": true, "done_reason": "stop", "prompt_eval_count": 31, "eval_count": 12,
        }))
        .unwrap();
        assert_eq!(answer.text, "{\"verdict\":\"accept\",\"score\":7}");
        assert_eq!(
            (answer.prompt_tokens, answer.completion_tokens, answer.truncated),
            (31, 12, false)
        );
    }

    #[test]
    fn anthropic_tool_forces_one_tool_and_reads_its_input() {
        let mut body = json!({"model": "c", "system": "s", "messages": [], "max_tokens": 100});
        apply(Dialect::AnthropicTool, &mut body, "review", &verdict_schema());
        assert_eq!(body["tools"][0]["name"], "review");
        assert_eq!(body["tools"][0]["input_schema"], verdict_schema());
        assert_eq!(body["tools"].as_array().unwrap().len(), 1);
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "review"}));
        assert_eq!(Dialect::AnthropicTool.endpoint(), "messages");

        let reply = json!({
            "content": [
                {"type": "text", "text": "Here is my review."},
                {"type": "tool_use", "id": "toolu_1", "name": "review", "input": {"verdict": "revise", "score": 4}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 50, "output_tokens": 20},
        });
        let answer = anthropic_tool_answer(&reply, "review").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&answer.text).unwrap(),
            json!({"verdict": "revise", "score": 4})
        );
        assert_eq!(
            (answer.prompt_tokens, answer.completion_tokens, answer.truncated),
            (50, 20, false)
        );
        // A text-only answer, or one cut before the tool call, holds no answer.
        assert_eq!(
            anthropic_tool_answer(&json!({"content": [{"type": "text", "text": "{}"}]}), "review"),
            None
        );
        assert_eq!(anthropic_tool_answer(&reply, "other"), None);
    }

    #[test]
    fn reshaping_a_body_clears_the_previous_dialects_fields() {
        let mut body = chat_body();
        for d in Dialect::ALL {
            if d != Dialect::OllamaFormat {
                apply(d, &mut body, "review", &verdict_schema());
            }
        }
        apply(Dialect::Text, &mut body, "review", &verdict_schema());
        assert_eq!(body, chat_body());
    }

    #[test]
    fn schema_names_keep_to_the_allowed_characters() {
        assert_eq!(schema_name("chapter"), "chapter");
        assert_eq!(schema_name("a b/c"), "a_b_c");
        assert_eq!(schema_name(""), "answer");
        assert_eq!(schema_name(&"x".repeat(80)).len(), 64);
    }

    #[test]
    fn llama_cpp_python_enforces_the_schema_given_as_json_object_schema() {
        let c = capture("json_object_schema_ok");
        let schema = &c.request["response_format"]["schema"];
        let v: Value = serde_json::from_str(&c.body).unwrap();
        let answer: Value =
            serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
        let allowed = schema["properties"]["verdict"]["enum"].as_array().unwrap();
        assert!(allowed.contains(&answer["verdict"]), "{answer}");
        for key in schema["required"].as_array().unwrap() {
            assert!(answer.get(key.as_str().unwrap()).is_some(), "{key} missing from {answer}");
        }
    }

    #[test]
    fn llama_cpp_python_ignores_top_level_schema_fields() {
        // The same request with the schema as `json_schema`, `guided_json` or `format`: answered,
        // unconstrained (none of the required keys), so no refusal leads anywhere.
        for name in ["json_schema_field_ignored", "guided_json_ignored", "format_field_ignored"] {
            let c = capture(name);
            assert_eq!((c.status, refusal(c.status, &c.body)), (200, None), "{name}");
            let v: Value = serde_json::from_str(&c.body).unwrap();
            let content = v["choices"][0]["message"]["content"].as_str().unwrap();
            assert!(!content.contains("\"verdict\""), "{name}: {content}");
        }
    }
}
