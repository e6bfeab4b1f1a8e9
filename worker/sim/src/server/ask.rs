//! Reading a completion request of either API shape (OpenAI's chat completions, Anthropic's
//! messages): its kind, prompts, seed, format and schema, and its prompt tokens as the server
//! counts them.

use crate::tokens::count_tokens;
use axum::http::HeaderMap;
use scriptorium_proto::kind;
use scriptorium_proto::names::AGENT_HEADER;
use scriptorium_proto::v1::AgentKind;
use serde_json::Value;

/// Prompt tokens as the server counts them: its own count of each message (a tokenizer's, not
/// the client's estimate, see [`crate::tokens`]) plus the chat template's tokens.
pub(super) fn count_prompt(system: &str, user: &str) -> u64 {
    count_tokens(system) + count_tokens(user) + 2 * 4 + 3
}

/// The two API shapes the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// A completion request, read from either shape.
pub(super) struct Ask {
    pub(super) kind: AgentKind,
    pub(super) system: String,
    pub(super) user: String,
    pub(super) seed: u64,
    pub(super) model: String,
    pub(super) format: String,
    /// The tool an Anthropic request forces (`tool_choice.name`).
    pub(super) tool: Option<String>,
    pub(super) max_tokens: Option<u64>,
    /// The schema the request asks its answer to follow, in whichever dialect.
    pub(super) schema: Option<Value>,
}

/// Text of a message `content`: a string, or an array of `{type: "text", text}` parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("")
        }
        _ => String::new(),
    }
}

/// The completion request in `v`, of either shape; the kind from the schema's name or the
/// agent header.
pub(super) fn read_ask(shape: Shape, headers: &HeaderMap, v: &Value) -> Ask {
    let messages = v["messages"].as_array().cloned().unwrap_or_default();
    let by_role = |role: &str| {
        messages
            .iter()
            .filter(|m| m["role"] == role)
            .map(|m| content_text(&m["content"]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let system = match shape {
        Shape::OpenAi => by_role("system"),
        Shape::Anthropic => content_text(&v["system"]),
    };
    // The structured-output dialect of the request, as `GET /stats` counts them.
    let format = match v["response_format"]["type"].as_str() {
        Some("json_object") if v["response_format"]["schema"].is_object() => "json_object_schema",
        Some(t) => t,
        None if v["tools"].is_array() => "tools",
        None => "none",
    }
    .to_string();
    let kind = v["response_format"]["json_schema"]["name"]
        .as_str()
        .and_then(kind::parse)
        .or_else(|| headers.get(AGENT_HEADER).and_then(|h| h.to_str().ok()).and_then(kind::parse))
        .unwrap_or(AgentKind::Unspecified);
    Ask {
        kind,
        system,
        user,
        seed: v["seed"].as_u64().unwrap_or(0),
        model: v["model"].as_str().unwrap_or("sim").to_string(),
        format,
        tool: v["tool_choice"]["name"].as_str().map(str::to_string),
        max_tokens: v["max_tokens"].as_u64().or(v["max_completion_tokens"].as_u64()),
        schema: [
            &v["response_format"]["json_schema"]["schema"],
            &v["response_format"]["schema"],
            &v["json_schema"],
            &v["guided_json"],
            &v["format"],
            &v["tools"][0]["input_schema"],
        ]
        .into_iter()
        .find(|s| s.is_object())
        .cloned(),
    }
}
