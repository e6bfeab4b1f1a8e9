//! Structured-output dialects: how each server family is asked for an answer that matches a JSON
//! Schema, how each words its refusal of such a request, and the order dialects are tried in.
//!
//! Pure: request and error bodies in, shaped bodies and decisions out; no I/O.
//!
//! # Layout
//! - `request`: the format fields each dialect sets on a request body ([`apply`]).
//! - `strict`: a schema cut down to OpenAI's strict subset ([`strict_schema`]).
//! - `grammar`: long strings asked as bounded paragraphs, for llama.cpp grammars.
//! - `answer`: answers read from Anthropic's and Ollama's own bodies; raw control characters.
//! - `refusal`: whether an error answer refuses the format, and what of it ([`refusal()`]).
//! - `overflow`: an error answer that says the prompt does not fit ([`overflows_context`]).
//! - `family`: server families, the order each tries dialects in, the step down after a refusal.
//! - `pyrepr`: Python literals read as JSON (the pydantic errors some servers put in messages).
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

mod answer;
mod family;
#[cfg(test)]
mod fixtures;
mod grammar;
mod overflow;
mod pyrepr;
mod refusal;
mod request;
mod strict;

pub use answer::{Answer, anthropic_tool_answer, escape_raw_controls, ollama_chat_answer};
pub use family::{Family, ladder, step_down};
pub use grammar::{GRAMMAR_MAX_LENGTH, grammar_safe, rejoin};
pub use overflow::overflows_context;
pub use refusal::{Refusal, Refused, refusal};
pub use request::{anthropic_tool, apply, schema_name};
pub use strict::strict_schema;

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dialect_names_round_trip_through_config() {
        for d in Dialect::ALL {
            assert_eq!(Dialect::from_name(d.name()), Some(d));
            let toml_like: Dialect = serde_json::from_value(json!(d.name())).unwrap();
            assert_eq!(toml_like, d);
        }
        assert_eq!(Dialect::from_name("nope"), None);
    }
}
