//! Refusal parsing: whether a server's error answer refuses the structured-output part of a
//! request, and what of it (the kind of format, or this schema), read from the body's structure
//! as each server family words it.

use super::overflow::overflows_context_fields;
use super::pyrepr;
use serde_json::Value;

/// What a server refused in a structured-output request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The kind of format: an unknown `response_format.type`, or a field it does not take.
    /// Dialects of the same kind are skipped.
    Kind,
    /// This schema, in a kind of format the server takes (keywords it cannot enforce, a grammar
    /// conversion that failed). Dialects sending the schema the same way are skipped.
    Schema,
}

/// A server's refusal of the structured-output part of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The request field the server names (`response_format.type`, `json_schema`, ...), or the
    /// format field its fixed message is about.
    pub field: String,
    /// What was refused.
    pub refused: Refused,
}

/// Top-level request fields whose refusal is a refusal of the format.
const REFUSABLE_FIELDS: [&str; 9] = [
    "response_format",
    "json_schema",
    "grammar",
    "guided_json",
    "guided_decoding_backend",
    "structured_outputs",
    "format",
    "tools",
    "tool_choice",
];

/// Fixed messages of servers whose schema refusals carry no field, matched from the message's
/// start: `(message start, field it is about)`.
const FIXED_SCHEMA_REFUSALS: [(&str, &str); 4] = [
    // Ollama: `llm/server.go`, the schema could not be turned into a grammar (HTTP 500).
    ("invalid JSON schema in format", "format"),
    ("invalid format: ", "format"),
    // vLLM: `v1/structured_output`, xgrammar's checks (HTTP 400, no `param`).
    ("The provided JSON schema contains features not supported by xgrammar", "response_format"),
    ("Failed to transform json schema into a grammar", "response_format"),
];

/// Whether an error answer refuses the structured-output part of the request, and what of it.
///
/// Only 400, 422 and 500 can be refusals (llama-cpp-python and Ollama refuse with 500, FastAPI
/// servers with 422); the decision comes from the body's structure, never from a number or a
/// word searched in free text:
/// 1. a context overflow is never a refusal (`error.code` `context_length_exceeded`,
///    `error.type` `exceed_context_size_error`, or `n_ctx` and `n_prompt_tokens` fields);
/// 2. the field the server names: OpenAI-style `error.param` (vLLM's `body.` prefix dropped);
///    the `loc` of pydantic errors, as FastAPI's 422 `detail` list or as the Python `repr` that
///    llama-cpp-python (HTTP 500) and older vLLM put in `error.message`; or a message opening
///    with the field's name, as llama-server (`response_format type must be one of ...`,
///    `"json_schema": ...`) and Anthropic (`tools.0.custom.input_schema: ...`) write them;
/// 3. failing a field, the fixed messages Ollama and vLLM give a schema they cannot convert,
///    matched from the message's start.
///
/// A plain server error (`{"error": {"message": "...", "type": "internal_server_error"}}`, an
/// HTML page, a refusal about `messages` or `max_tokens`) is `None`: it stays what it was.
pub fn refusal(status: u16, body: &str) -> Option<Refusal> {
    if !matches!(status, 400 | 422 | 500) {
        return None;
    }
    let v: Value = serde_json::from_str(body).ok()?;
    let err = if v["error"].is_object() { &v["error"] } else { &v };
    if overflows_context_fields(err) {
        return None;
    }
    let message =
        err["message"].as_str().or(v["error"].as_str()).or(v["detail"].as_str()).unwrap_or("");
    if let Some(param) = err["param"].as_str() {
        let path = param.strip_prefix("body.").unwrap_or(param);
        return format_field(path)
            .map(|field| Refusal { refused: openai_param_refusal(path, message), field });
    }
    let pydantic =
        v["detail"].as_array().cloned().or_else(|| pydantic_errors(message)).unwrap_or_default();
    if let Some(r) = pydantic.iter().find_map(pydantic_refusal) {
        return Some(r);
    }
    if let Some(r) = leading_field_refusal(message) {
        return Some(r);
    }
    FIXED_SCHEMA_REFUSALS
        .iter()
        .find(|(start, _)| message.trim_start().starts_with(start))
        .map(|(_, field)| Refusal { field: (*field).into(), refused: Refused::Schema })
}

/// The top-level field of a dotted request path when it is a format field.
fn format_field(path: &str) -> Option<String> {
    let top = path.split(['.', '[']).next().unwrap_or("");
    REFUSABLE_FIELDS.contains(&top).then(|| path.to_string())
}

/// OpenAI names `response_format` both for a kind a model lacks ("'response_format' of type
/// 'json_schema' is not supported with this model") and for a schema strict mode refuses
/// ("Invalid schema for response_format 'x': ..."); the second opens with "Invalid schema".
fn openai_param_refusal(path: &str, message: &str) -> Refused {
    let about_schema = path.contains("schema") || message.starts_with("Invalid schema");
    if about_schema { Refused::Schema } else { Refused::Kind }
}

/// The pydantic errors in a message: a Python list of error dicts, or FastAPI's and vLLM's
/// "N validation errors:" header followed by one error dict per line.
fn pydantic_errors(message: &str) -> Option<Vec<Value>> {
    if let Some(Value::Array(errors)) = pyrepr::parse(message) {
        return Some(errors);
    }
    let (head, rest) = message.split_once('\n')?;
    if !head.trim_end().ends_with(':') {
        return None;
    }
    let errors: Vec<Value> =
        rest.lines().filter(|l| !l.trim().is_empty()).filter_map(pyrepr::parse).collect();
    (!errors.is_empty()).then_some(errors)
}

/// A refusal from one pydantic error: its `loc` (`body`, then the request field's path) names
/// a format field. An error on the format's `type`, or a field the model forbids, refuses the
/// kind; one deeper inside (`response_format.json_schema.schema...`) refuses the schema.
fn pydantic_refusal(error: &Value) -> Option<Refusal> {
    let loc: Vec<String> = error["loc"]
        .as_array()?
        .iter()
        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
        .collect();
    let path: Vec<&str> = loc.iter().map(String::as_str).skip_while(|p| *p == "body").collect();
    let field = format_field(&path.join("."))?;
    let deep = path.iter().skip(1).any(|p| p.contains("schema"));
    Some(Refusal { field, refused: if deep { Refused::Schema } else { Refused::Kind } })
}

/// A refusal from a message that opens with the request field it is about: llama-server's
/// `response_format type must be one of "text" or "json_object", but got: json_schema` (the
/// kind) and `"json_schema": <why the converter failed>` (the schema), Anthropic's
/// `tools.0.custom.input_schema: JSON schema is invalid ...` (the schema).
fn leading_field_refusal(message: &str) -> Option<Refusal> {
    let m = message.trim_start();
    let quoted = m.starts_with('"');
    let m = m.trim_start_matches('"');
    let end =
        m.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(m.len());
    let (path, rest) = m.split_at(end);
    let rest = rest.strip_prefix('"').filter(|_| quoted).unwrap_or(rest);
    let top = path.split('.').next().unwrap_or("");
    // `format` opens too many unrelated messages to count here.
    if top == "format" || !REFUSABLE_FIELDS.contains(&top) {
        return None;
    }
    let refused = if rest.starts_with(':') && (path.contains("schema") || top == "json_schema") {
        Refused::Schema
    } else if rest.starts_with(':') || rest.starts_with(' ') {
        Refused::Kind
    } else {
        return None;
    };
    Some(Refusal { field: path.to_string(), refused })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::capture;
    use super::super::{Dialect, Family, escape_raw_controls, overflows_context, step_down};
    use super::*;

    #[test]
    fn llama_cpp_python_refuses_json_schema_with_a_500_pydantic_literal_error() {
        let c = capture("json_schema_refused");
        assert_eq!(c.request["response_format"]["type"], "json_schema");
        assert_eq!(c.status, 500);
        assert_eq!(
            refusal(c.status, &c.body),
            Some(Refusal { field: "response_format.type".into(), refused: Refused::Kind })
        );
        assert!(!overflows_context(c.status, &c.body));
        // The step down lands on the form it takes.
        let ladder = Family::Generic.order();
        let r = refusal(c.status, &c.body).unwrap();
        assert_eq!(step_down(ladder, Dialect::JsonSchema, &r), Some(Dialect::JsonObjectSchema));
    }

    #[test]
    fn llama_cpp_python_accepted_forms_are_not_refusals() {
        for name in
            ["json_object_schema_ok", "json_schema_field_ignored", "json_object_ok", "text_ok"]
        {
            let c = capture(name);
            assert_eq!(c.status, 200, "{name}");
            assert_eq!(refusal(c.status, &c.body), None, "{name}");
        }
    }

    #[test]
    fn llama_cpp_python_falls_back_to_any_json_on_a_schema_it_cannot_convert() {
        // A dangling `$ref`: no refusal, the grammar silently becomes plain JSON, so the required
        // key is missing. Only validation catches a schema this server cannot enforce.
        let c = capture("json_object_bad_ref");
        assert_eq!((c.status, refusal(c.status, &c.body)), (200, None));
        let v: Value = serde_json::from_str(&c.body).unwrap();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        let answer = serde_json::from_str::<Value>(&escape_raw_controls(content)).ok();
        assert!(answer.is_none_or(|a| a.get("a").is_none()), "{content}");
    }

    #[test]
    fn llama_cpp_python_refuses_strict_json_schema_the_same_way() {
        let c = capture("json_schema_strict_refused");
        assert_eq!(c.request["response_format"]["json_schema"]["strict"], true);
        assert_eq!(refusal(c.status, &c.body).map(|r| r.refused), Some(Refused::Kind));
    }

    #[test]
    fn a_plain_server_error_stays_a_server_error() {
        let bodies = [
            (
                500,
                r#"{"error":{"message":"CUDA error: out of memory","type":"internal_server_error","param":null,"code":null}}"#,
            ),
            (500, r#"{"error":{"code":500,"message":"slot unavailable","type":"server_error"}}"#),
            (500, "<html><body>Internal Server Error</body></html>"),
            (500, ""),
            (
                400,
                r#"{"error":{"message":"max_tokens is too large","type":"invalid_request_error","param":"max_tokens","code":null}}"#,
            ),
            (
                400,
                r#"{"error":{"message":"'messages' is required","type":"invalid_request_error","code":400}}"#,
            ),
            // The right words under a status that is never a refusal.
            (503, r#"{"error":{"message":"x","param":"response_format"}}"#),
            (401, r#"{"error":{"message":"x","param":"response_format"}}"#),
        ];
        for (status, body) in bodies {
            assert_eq!(refusal(status, body), None, "{status} {body}");
        }
    }

    #[test]
    fn openai_refusals_name_response_format_in_param() {
        // A model without Structured Outputs refuses the kind: json_schema is skipped entirely.
        let kind = r#"{"error":{"message":"Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.","type":"invalid_request_error","param":"response_format","code":null}}"#;
        let r = refusal(400, kind).unwrap();
        assert_eq!(r, Refusal { field: "response_format".into(), refused: Refused::Kind });
        assert_eq!(
            step_down(Family::Openai.order(), Dialect::OpenaiStrict, &r),
            Some(Dialect::JsonObject)
        );
        // A schema strict mode refuses: the same schema goes again, non-strict.
        let schema = r#"{"error":{"message":"Invalid schema for response_format 'review': In context=('properties', 'scores', 'items', 'properties', 'value'), 'minimum' is not permitted.","type":"invalid_request_error","param":"response_format","code":null}}"#;
        let r = refusal(400, schema).unwrap();
        assert_eq!(r.refused, Refused::Schema);
        assert_eq!(
            step_down(Family::Openai.order(), Dialect::OpenaiStrict, &r),
            Some(Dialect::JsonSchema)
        );
        // The context overflow names `messages`.
        let overflow = r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(refusal(400, overflow), None);
        assert!(overflows_context(400, overflow));
    }

    #[test]
    fn vllm_refusals_read_from_param_or_the_pydantic_message() {
        // Current vLLM: `param` from the error's loc, with FastAPI's `body.` prefix.
        let current = r#"{"error":{"message":"1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text', 'json_object', 'json_schema' or 'structural_tag'\", 'input': 'json_objekt'}","type":"Bad Request","param":"body.response_format.type","code":400}}"#;
        assert_eq!(
            refusal(400, current),
            Some(Refusal { field: "response_format.type".into(), refused: Refused::Kind })
        );
        // Older vLLM: a top-level error object, the pydantic errors only in the message.
        let older = r#"{"object":"error","message":"[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text', 'json_object' or 'json_schema'\", 'input': 'x', 'ctx': {'expected': \"'text', 'json_object' or 'json_schema'\"}}]","type":"BadRequestError","param":null,"code":400}"#;
        assert_eq!(refusal(400, older).map(|r| r.refused), Some(Refused::Kind));
        // xgrammar cannot take the schema: no field, a fixed message.
        let xgrammar = r#"{"error":{"message":"The provided JSON schema contains features not supported by xgrammar.","type":"BadRequestError","param":null,"code":400}}"#;
        let r = refusal(400, xgrammar).unwrap();
        assert_eq!(r.refused, Refused::Schema);
        assert_eq!(
            step_down(Family::Vllm.order(), Dialect::JsonSchema, &r),
            Some(Dialect::JsonObject)
        );
        // The same words inside another message decide nothing.
        let quoted = r#"{"error":{"message":"upstream said: The provided JSON schema contains features not supported by xgrammar.","type":"BadRequestError","param":null,"code":400}}"#;
        assert_eq!(refusal(400, quoted), None);
    }

    #[test]
    fn llama_server_refusals_open_with_the_field_name() {
        // Builds before `json_schema` was a response_format type (500 then, 400 now).
        let kind = r#"{"error":{"code":500,"message":"response_format type must be one of \"text\" or \"json_object\", but got: json_schema","type":"server_error"}}"#;
        let r = refusal(500, kind).unwrap();
        assert_eq!(r, Refusal { field: "response_format".into(), refused: Refused::Kind });
        assert_eq!(
            step_down(Family::Generic.order(), Dialect::JsonSchema, &r),
            Some(Dialect::JsonObjectSchema)
        );
        // The schema converter failed: every schema-carrying dialect would meet it again.
        let schema = r#"{"error":{"code":400,"message":"\"json_schema\": JSON schema conversion failed:\nUnrecognized schema: {\"not\":{}}","type":"invalid_request_error"}}"#;
        let r = refusal(400, schema).unwrap();
        assert_eq!(r, Refusal { field: "json_schema".into(), refused: Refused::Schema });
        assert_eq!(
            step_down(Family::LlamaCpp.order(), Dialect::JsonObjectSchema, &r),
            Some(Dialect::JsonObject)
        );
        // Its context overflow, by type and counts.
        let overflow = r#"{"error":{"code":400,"message":"request (9000 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}"#;
        assert_eq!(refusal(400, overflow), None);
        assert!(overflows_context(400, overflow));
    }

    #[test]
    fn ollama_refuses_an_unconvertible_schema_with_a_500() {
        // Through `/v1` (the OpenAI error shape) and `/api/chat` (a bare string).
        let v1 = r#"{"error":{"message":"invalid JSON schema in format","type":"api_error","param":null,"code":null}}"#;
        let native = r#"{"error":"invalid JSON schema in format"}"#;
        for body in [v1, native] {
            let r = refusal(500, body).unwrap();
            assert_eq!(r, Refusal { field: "format".into(), refused: Refused::Schema });
            assert_eq!(
                step_down(Family::Ollama.order(), Dialect::JsonSchema, &r),
                Some(Dialect::JsonObject)
            );
        }
        // Any other Ollama 500 stays a server error.
        assert_eq!(refusal(500, r#"{"error":"model runner has unexpectedly stopped"}"#), None);
    }

    #[test]
    fn fastapi_422_detail_names_the_field_in_loc() {
        let body = r#"{"detail":[{"type":"literal_error","loc":["body","response_format","type"],"msg":"Input should be 'text' or 'json_object'","input":"json_schema"}]}"#;
        assert_eq!(
            refusal(422, body),
            Some(Refusal { field: "response_format.type".into(), refused: Refused::Kind })
        );
        let schema = r#"{"detail":[{"type":"dict_type","loc":["body","response_format","json_schema","schema"],"msg":"Input should be a valid dictionary","input":"x"}]}"#;
        assert_eq!(refusal(422, schema).map(|r| r.refused), Some(Refused::Schema));
        let other = r#"{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required","input":{}}]}"#;
        assert_eq!(refusal(422, other), None);
    }

    #[test]
    fn anthropic_refuses_a_tool_schema_naming_its_path() {
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"tools.0.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft 2020-12"}}"#;
        let r = refusal(400, body).unwrap();
        assert_eq!(
            r,
            Refusal { field: "tools.0.custom.input_schema".into(), refused: Refused::Schema }
        );
        assert_eq!(
            step_down(Family::Anthropic.order(), Dialect::AnthropicTool, &r),
            Some(Dialect::Text)
        );
        let other = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(refusal(400, other), None);
    }
}
