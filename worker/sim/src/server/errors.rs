//! The error answers the server gives, in the shape of the API asked: llama.cpp's and
//! Anthropic's context overflow, a plain error (with the request headers echoed on demand) and
//! llama-cpp-python's refusal of `json_schema`.

use super::ask::Shape;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The answer of a llama.cpp server to a prompt that does not fit its window (OpenAI shape),
/// or Anthropic's to a prompt that is too long.
pub(super) fn context_exceeded(shape: Shape, n_prompt_tokens: u64, n_ctx: u64) -> Response {
    let body = match shape {
        Shape::OpenAi => json!({"error": {
            "code": 400,
            "message": format!("request ({n_prompt_tokens} tokens) exceeds the available context size ({n_ctx} tokens), try increasing it"),
            "type": "exceed_context_size_error",
            "n_prompt_tokens": n_prompt_tokens,
            "n_ctx": n_ctx,
        }}),
        Shape::Anthropic => json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": format!("prompt is too long: {n_prompt_tokens} tokens > {n_ctx} maximum"),
        }}),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// An error answer in the shape's format; `echo` adds the request headers, `param` names the
/// offending request field (OpenAI shape).
pub(super) fn error_response(
    shape: Shape,
    status: u16,
    kind: &str,
    message: &str,
    echo: Option<&HeaderMap>,
    param: Option<&str>,
) -> Response {
    let mut error = json!({"message": message, "type": kind});
    if let Some(headers) = echo {
        let echoed: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        error["message"] = json!(format!("{message}; request headers: {echoed:?}"));
        error["request_headers"] = json!(echoed);
    }
    let body = match shape {
        Shape::OpenAi => {
            error["param"] = json!(param);
            error["code"] = Value::Null;
            json!({"error": error})
        }
        Shape::Anthropic => json!({"type": "error", "error": error}),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// llama-cpp-python 0.3.36's answer to `response_format` `json_schema`, as captured.
pub(super) fn llama_cpp_python_refusal() -> Response {
    let message = "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"llama_cpp/server/app.py\", line 376, in create_chat_completion\n    POST /v1/chat/completions";
    let body = json!({"error": {"message": message, "type": "internal_server_error", "param": null, "code": null}});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}
