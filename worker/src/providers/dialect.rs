//! Structured-output dialects: how each server family is asked for an answer that matches a JSON
//! Schema, how each words its refusal of such a request, and the order dialects are tried in.
//!
//! Pure: request and error bodies in, shaped bodies and decisions out; no I/O.
//!
//! # What each server takes
//! Read from the servers' sources and, for llama-cpp-python, from real answers
//! (`worker/tests/fixtures/llama_cpp_python/`).
//!
//! | server | enforces the schema | refuses | ignores silently |
//! |---|---|---|---|
//! | OpenAI | `json_schema` + `strict: true`, strict subset only | unsupported keywords, 400 `param: response_format` | - |
//! | llama.cpp `llama-server` | `json_schema`, `json_object` + `schema`, top-level `json_schema` | a schema its converter cannot read: `"json_schema": ...` | `strict` |
//! | llama-cpp-python | `json_object` + `schema` only (no `minimum`/`maximum`: use `enum`) | `json_schema`: HTTP 500, pydantic `literal_error` | top-level fields; a schema it cannot convert (any JSON instead) |
//! | Ollama `/v1` | `json_schema` (0.5+) | a schema it cannot convert: 500 `invalid JSON schema in format` | top-level `format`, `json_object`'s `schema` |
//! | Ollama `/api/chat` | `format: <schema>` | as above | - |
//! | vLLM | `json_schema`, `structured_outputs` (0.10.2+), `guided_json` (before 0.12) | a schema xgrammar cannot take (400) | `guided_json` from 0.12, `json_object`'s `schema` |
//! | Anthropic | a forced tool's `input_schema` | an invalid schema: 400 `tools.0...: ...` | - |
//!
//! A server that ignores the schema still answers; validation stays the last word. Under
//! llama-cpp-python's grammar a string may hold raw control characters: see
//! [`escape_raw_controls`].

mod grammar;
mod pyrepr;

pub use grammar::{GRAMMAR_MAX_LENGTH, grammar_safe, rejoin};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// One way of asking a server for JSON that matches a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// OpenAI Structured Outputs: `response_format: {type: json_schema, json_schema: {name,
    /// strict: true, schema}}`, the schema rewritten to OpenAI's strict subset by
    /// [`strict_schema`].
    OpenaiStrict,
    /// `response_format: {type: json_schema, json_schema: {name, schema}}` without `strict`:
    /// llama-server, vLLM, Ollama's `/v1` (0.5+), LM Studio; OpenAI treats it as a hint.
    JsonSchema,
    /// `response_format: {type: json_object, schema}`: llama-cpp-python's only schema form,
    /// taken by llama-server too.
    JsonObjectSchema,
    /// A top-level `json_schema: <schema>`: llama-server (its `/completion` parameter, passed
    /// through by `/v1/chat/completions`). llama-cpp-python ignores it.
    JsonSchemaField,
    /// vLLM before 0.12: a top-level `guided_json: <schema>` (0.12 and later ignore it).
    GuidedJson,
    /// vLLM 0.10.2 and later: `structured_outputs: {json: <schema>}`.
    StructuredOutputs,
    /// Ollama's native `POST /api/chat` (not `/v1`, which ignores a top-level `format`):
    /// `format: <schema>`, `stream: false`, sampling settings under `options`.
    OllamaFormat,
    /// `response_format: {type: json_object}`: any JSON object; the shape comes from the prompt.
    JsonObject,
    /// No format at all: the prompt carries the example shape and the answer is extracted.
    Text,
    /// Anthropic's Messages API: one tool whose `input_schema` is the schema, forced with
    /// `tool_choice: {type: tool, name}`; the answer is the `tool_use` block's `input`.
    AnthropicTool,
}

/// How much of the schema a dialect sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchemaUse {
    /// None: the server only knows the answer is JSON (or not even that).
    None,
    /// The schema as written.
    Full,
    /// The schema rewritten to OpenAI's strict subset.
    Strict,
}

impl Dialect {
    /// Every dialect, strongest first.
    pub const ALL: [Dialect; 10] = [
        Dialect::OpenaiStrict,
        Dialect::JsonSchema,
        Dialect::JsonObjectSchema,
        Dialect::JsonSchemaField,
        Dialect::GuidedJson,
        Dialect::StructuredOutputs,
        Dialect::OllamaFormat,
        Dialect::AnthropicTool,
        Dialect::JsonObject,
        Dialect::Text,
    ];

    /// The name used in config files and records (`structured_output = "json_schema"`).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::OpenaiStrict => "openai_strict",
            Dialect::JsonSchema => "json_schema",
            Dialect::JsonObjectSchema => "json_object_schema",
            Dialect::JsonSchemaField => "json_schema_field",
            Dialect::GuidedJson => "guided_json",
            Dialect::StructuredOutputs => "structured_outputs",
            Dialect::OllamaFormat => "ollama_format",
            Dialect::JsonObject => "json_object",
            Dialect::Text => "text",
            Dialect::AnthropicTool => "anthropic_tool",
        }
    }

    /// The dialect named `name` (see [`Dialect::name`]).
    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// How much of the schema this dialect sends.
    pub fn schema_use(self) -> SchemaUse {
        match self {
            Dialect::OpenaiStrict => SchemaUse::Strict,
            Dialect::JsonObject | Dialect::Text => SchemaUse::None,
            _ => SchemaUse::Full,
        }
    }

    /// The request field and format kind a server judges this dialect by: two dialects with the
    /// same key are refused together when a server does not know that kind of format.
    fn kind_key(self) -> (&'static str, &'static str) {
        match self {
            Dialect::OpenaiStrict | Dialect::JsonSchema => ("response_format", "json_schema"),
            Dialect::JsonObjectSchema | Dialect::JsonObject => ("response_format", "json_object"),
            Dialect::JsonSchemaField => ("json_schema", ""),
            Dialect::GuidedJson => ("guided_json", ""),
            Dialect::StructuredOutputs => ("structured_outputs", ""),
            Dialect::OllamaFormat => ("format", ""),
            Dialect::AnthropicTool => ("tools", ""),
            Dialect::Text => ("", ""),
        }
    }

    /// The path the request goes to: relative to the base URL (`.../v1`) for the OpenAI-style
    /// dialects and Anthropic, relative to the server root for [`Dialect::OllamaFormat`].
    pub fn endpoint(self) -> &'static str {
        match self {
            Dialect::OllamaFormat => "api/chat",
            Dialect::AnthropicTool => "messages",
            _ => "chat/completions",
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
/// [`refusal`] reads as [`Refused::Schema`], and the next dialect sends the schema non-strict.
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

/// Whether an error answer says the prompt does not fit the context window, from its fields:
/// OpenAI's and llama-cpp-python's `code` `context_length_exceeded`, llama-server's `type`
/// `exceed_context_size_error` or its `n_ctx` and `n_prompt_tokens`.
pub fn overflows_context(status: u16, body: &str) -> bool {
    if !matches!(status, 400 | 413 | 500) {
        return false;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else { return false };
    let err = if v["error"].is_object() { &v["error"] } else { &v };
    overflows_context_fields(err)
}

fn overflows_context_fields(err: &Value) -> bool {
    err["code"] == "context_length_exceeded"
        || err["type"] == "exceed_context_size_error"
        || (err["n_ctx"].is_u64() && err["n_prompt_tokens"].is_u64())
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

/// Families of servers, each with its own order of dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI's own API (`api.openai.com`).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Ollama through its OpenAI-compatible `/v1`.
    Ollama,
    /// llama.cpp's `llama-server` or llama-cpp-python, not told apart.
    LlamaCpp,
    /// llama-cpp-python, known (its `/v1/models` says `owned_by: "me"`).
    LlamaCppPython,
    /// vLLM.
    Vllm,
    /// A server known to take only `json_object` (DeepSeek).
    JsonObjectOnly,
    /// Any other OpenAI-compatible server.
    Generic,
}

impl Family {
    /// The family of a built-in provider by its name and base URL: `openai` only when the URL
    /// is OpenAI's own (the README points `OPENAI_BASE_URL` at local servers), `ollama`,
    /// `llamacpp`, `vllm`, `anthropic`, `deepseek`; any other name is [`Family::Generic`].
    pub fn of_provider(provider: &str, base_url: &str) -> Family {
        let host = base_url
            .split("://")
            .nth(1)
            .unwrap_or(base_url)
            .split(['/', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match provider {
            "openai" if host == "api.openai.com" => Family::Openai,
            "anthropic" => Family::Anthropic,
            "ollama" => Family::Ollama,
            "llamacpp" => Family::LlamaCpp,
            "vllm" => Family::Vllm,
            "deepseek" => Family::JsonObjectOnly,
            _ => Family::Generic,
        }
    }

    /// The family a server's `GET /v1/models` answer reveals, when it does: `owned_by` is
    /// `vllm` for vLLM, `llamacpp` for llama-server and `me` for llama-cpp-python.
    pub fn from_models(models: &Value) -> Option<Family> {
        let owners: Vec<&str> =
            models["data"].as_array()?.iter().filter_map(|m| m["owned_by"].as_str()).collect();
        let all = |o: &str| !owners.is_empty() && owners.iter().all(|x| *x == o);
        if all("vllm") {
            Some(Family::Vllm)
        } else if all("llamacpp") {
            Some(Family::LlamaCpp)
        } else if all("me") {
            Some(Family::LlamaCppPython)
        } else {
            None
        }
    }

    /// The dialects tried, in order; every order ends with [`Dialect::Text`].
    ///
    /// - OpenAI: strict first (the only mode OpenAI enforces), then the schema non-strict.
    /// - llama.cpp: `json_object` + `schema` first: both llama-server and llama-cpp-python
    ///   enforce it, where `json_schema` costs llama-cpp-python users a refused request.
    /// - vLLM: `response_format` `json_schema` works on every version since 0.6; `guided_json`
    ///   only helps a server older than that (0.12 and later ignore it).
    /// - Generic: the standard `json_schema` first (llama-server, vLLM, Ollama, LM Studio), then
    ///   llama-cpp-python's form, which its 500 refusal leads to.
    pub fn order(self) -> &'static [Dialect] {
        use Dialect::*;
        match self {
            Family::Openai => &[OpenaiStrict, JsonSchema, JsonObject, Text],
            Family::Anthropic => &[AnthropicTool, Text],
            Family::Ollama => &[JsonSchema, JsonObject, Text],
            Family::LlamaCpp => &[JsonObjectSchema, JsonSchema, JsonObject, Text],
            Family::LlamaCppPython => &[JsonObjectSchema, JsonObject, Text],
            Family::Vllm => &[JsonSchema, GuidedJson, JsonObject, Text],
            Family::JsonObjectOnly => &[JsonObject, Text],
            Family::Generic => &[JsonSchema, JsonObjectSchema, JsonObject, Text],
        }
    }
}

/// The dialects to try for `family`, starting from `configured` when the provider's config
/// names one: the configured dialect, then those of the family's order after it (or, when the
/// order does not hold it, those sending less of the schema), ending with [`Dialect::Text`].
pub fn ladder(family: Family, configured: Option<Dialect>) -> Vec<Dialect> {
    let order = family.order();
    let Some(first) = configured else { return order.to_vec() };
    let rest: Vec<Dialect> = match order.iter().position(|d| *d == first) {
        Some(i) => order[i + 1..].to_vec(),
        None => order.iter().copied().filter(|d| d.schema_use() < first.schema_use()).collect(),
    };
    let mut out = vec![first];
    out.extend(rest.into_iter().filter(|d| *d != first));
    if out.last() != Some(&Dialect::Text) {
        out.push(Dialect::Text);
    }
    out
}

/// The dialect to try after `current` was refused, from `ladder`: the next one, skipping those
/// the same refusal would meet again (the same kind of format after [`Refused::Kind`]; the
/// same use of the schema after [`Refused::Schema`]). `None` only once [`Dialect::Text`] itself
/// is refused, or when `current` is not in `ladder`.
pub fn step_down(ladder: &[Dialect], current: Dialect, refusal: &Refusal) -> Option<Dialect> {
    let i = ladder.iter().position(|d| *d == current)?;
    ladder[i + 1..].iter().copied().find(|d| match refusal.refused {
        Refused::Schema if current.schema_use() > SchemaUse::None => {
            d.schema_use() < current.schema_use()
        }
        // A refusal of a schema that was not sent is taken as a refusal of the kind.
        _ => d.kind_key() != current.kind_key(),
    })
}

#[cfg(test)]
mod tests;
