//! OpenAI-compatible chat completions (OpenAI, OpenRouter, DeepSeek, Mistral, Groq, Ollama,
//! vLLM, llama.cpp's server, LM Studio) with structured output where the server offers it.
//!
//! A provider asks for a JSON schema first; a server that answers 400 about `response_format`
//! is asked again with `json_object`, then without `response_format`, and the provider keeps
//! the mode that worked for its later calls.

use super::http::{self, Reply, RetryPolicy};
use super::{ModelAnswer, ModelError, ModelRequest, ProviderConfig, StructuredOutput};
use scriptorium_proto::kind;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU8, Ordering};

pub use scriptorium_proto::names::AGENT_HEADER;

/// One OpenAI-compatible server.
pub struct OpenAiCompat {
    name: String,
    base_url: String,
    key: Option<String>,
    policy: RetryPolicy,
    http: reqwest::Client,
    /// The structured-output mode that works, as `mode_index`.
    mode: AtomicU8,
}

fn mode_index(m: StructuredOutput) -> u8 {
    match m {
        StructuredOutput::JsonSchema => 0,
        StructuredOutput::JsonObject => 1,
        StructuredOutput::Text => 2,
    }
}

fn mode_of(i: u8) -> StructuredOutput {
    match i {
        0 => StructuredOutput::JsonSchema,
        1 => StructuredOutput::JsonObject,
        _ => StructuredOutput::Text,
    }
}

/// Reads the key named by `cfg.key_env` (registering it for redaction); `None` without one.
pub(crate) fn read_key(name: &str, cfg: &ProviderConfig) -> Result<Option<String>, ModelError> {
    if cfg.key_env.is_empty() {
        return Ok(None);
    }
    match std::env::var(&cfg.key_env) {
        Ok(k) if !k.trim().is_empty() => {
            crate::redact::register_secret(&k);
            Ok(Some(k.trim().to_string()))
        }
        _ => Err(ModelError::MissingKey { provider: name.into(), var: cfg.key_env.clone() }),
    }
}

impl OpenAiCompat {
    /// Reads the key from the environment and builds the HTTP client.
    pub(crate) fn new(name: &str, cfg: &ProviderConfig) -> Result<Self, ModelError> {
        let key = read_key(name, cfg)?;
        let policy = RetryPolicy::from_config(cfg);
        Ok(Self {
            name: name.into(),
            base_url: cfg.effective_base_url().trim_end_matches('/').to_string(),
            key,
            http: http::client(name, &policy)?,
            policy,
            mode: AtomicU8::new(mode_index(cfg.structured_output)),
        })
    }

    /// The structured-output mode the next call starts with.
    pub fn structured_output(&self) -> StructuredOutput {
        mode_of(self.mode.load(Ordering::Relaxed))
    }

    pub(crate) async fn call(
        &self,
        model: &str,
        req: &ModelRequest,
    ) -> Result<ModelAnswer, ModelError> {
        let route = format!("{}/{}", self.name, model);
        let url = format!("{}/chat/completions", self.base_url);
        let agent = kind::name(req.kind);
        let mut retries = 0;
        loop {
            let mode = self.structured_output();
            let body = request_body(model, req, mode);
            let reply = http::send(&self.policy, &route, || {
                let rb = self.http.post(&url).header(AGENT_HEADER, agent).json(&body);
                match &self.key {
                    Some(key) => rb.bearer_auth(key),
                    None => rb,
                }
            })
            .await?;
            retries += reply.retries;
            let Reply { status, body, .. } = reply;
            if (200..300).contains(&status) {
                let mut answer = parse_answer(&route, &body)?;
                answer.retries = retries;
                return Ok(answer);
            }
            if mode != StructuredOutput::Text && rejects_response_format(status, &body) {
                let next = mode_index(mode) + 1;
                // Another agent may have stepped down already: never step back up.
                self.mode.fetch_max(next, Ordering::Relaxed);
                tracing::warn!(
                    route = %route,
                    from = ?mode,
                    to = ?mode_of(next),
                    "server refuses this response_format, falling back"
                );
                continue;
            }
            if let Some((prompt_tokens, window)) = context_exceeded(status, &body) {
                return Err(ModelError::ContextExceeded {
                    provider: self.name.clone(),
                    route,
                    prompt_tokens,
                    window,
                    message: http::server_message(&body),
                });
            }
            return Err(ModelError::Rejected {
                provider: self.name.clone(),
                route,
                status,
                message: http::server_message(&body),
            });
        }
    }

    /// The context window the server reports for `model`: llama.cpp's `GET /props`
    /// (`default_generation_settings.n_ctx`, the window of one slot), else vLLM's
    /// `GET /v1/models` (`max_model_len` of the model). `Ok(None)` when the server answers
    /// without saying; `Err` when it cannot be reached (ask again later).
    pub(crate) async fn discover_window(&self, model: &str) -> Result<Option<u64>, ()> {
        let root = self.base_url.strip_suffix("/v1").unwrap_or(&self.base_url);
        let get = |url: String| {
            let rb = self.http.get(url).timeout(std::time::Duration::from_secs(5));
            match &self.key {
                Some(key) => rb.bearer_auth(key),
                None => rb,
            }
        };
        let json = |resp: reqwest::Response| async move {
            if !resp.status().is_success() {
                return None;
            }
            resp.json::<Value>().await.ok()
        };
        let props = get(format!("{root}/props")).send().await.map_err(|_| ())?;
        if let Some(v) = json(props).await
            && let Some(n) = v["default_generation_settings"]["n_ctx"].as_u64().filter(|n| *n > 0)
        {
            return Ok(Some(n));
        }
        let Ok(resp) = get(format!("{}/models", self.base_url)).send().await else {
            return Ok(None);
        };
        let Some(v) = json(resp).await else { return Ok(None) };
        let models = v["data"].as_array().cloned().unwrap_or_default();
        let entry = models
            .iter()
            .find(|m| m["id"].as_str() == Some(model))
            .or(if models.len() == 1 { models.first() } else { None });
        Ok(entry.and_then(|e| e["max_model_len"].as_u64()).filter(|n| *n > 0))
    }
}

/// Whether an error answer says the request exceeds the server's context window, with the
/// prompt tokens and the window when the body gives them as fields.
///
/// Read from the status and the body's structure only: llama.cpp's 400 with
/// `error.type` `exceed_context_size_error` (and `n_prompt_tokens`, `n_ctx`), OpenAI's
/// `error.code` `context_length_exceeded`. The message text is never searched.
fn context_exceeded(status: u16, body: &str) -> Option<(Option<u64>, Option<u64>)> {
    if !matches!(status, 400 | 413) {
        return None;
    }
    let v: Value = serde_json::from_str(body).ok()?;
    let err = if v["error"].is_object() { &v["error"] } else { &v };
    let named = err["type"].as_str() == Some("exceed_context_size_error")
        || err["code"].as_str() == Some("context_length_exceeded");
    let counted = err["n_ctx"].is_u64() && err["n_prompt_tokens"].is_u64();
    (named || counted).then(|| (err["n_prompt_tokens"].as_u64(), err["n_ctx"].as_u64()))
}

fn request_body(model: &str, req: &ModelRequest, mode: StructuredOutput) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": req.system},
            {"role": "user", "content": req.user},
        ],
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens,
        "seed": req.seed,
    });
    let format = match mode {
        StructuredOutput::JsonSchema => Some(json!({
            "type": "json_schema",
            "json_schema": {
                "name": kind::name(req.kind),
                "schema": {"type": "object"},
                "strict": false,
            },
        })),
        StructuredOutput::JsonObject => Some(json!({"type": "json_object"})),
        StructuredOutput::Text => None,
    };
    if let Some(f) = format {
        body["response_format"] = f;
    }
    body
}

/// Whether a 400/422 answer says the server does not support the `response_format` sent.
///
/// Read from the error body's structure: OpenAI-style `error.param`, `error.code` or
/// `error.type` naming it, or the error message of servers that set only a message
/// (llama.cpp, vLLM, FastAPI's `detail`) mentioning `response_format` or `json_schema`.
fn rejects_response_format(status: u16, body: &str) -> bool {
    if !matches!(status, 400 | 422) {
        return false;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else { return false };
    let about = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("response_format") || s.contains("json_schema")
    };
    let err = if v["error"].is_object() { &v["error"] } else { &v };
    if err["param"].as_str().is_some_and(about)
        || err["code"].as_str().is_some_and(about)
        || err["type"].as_str().is_some_and(about)
    {
        return true;
    }
    let message = err["message"].as_str().or(v["error"].as_str()).or(v["detail"].as_str());
    message.is_some_and(about)
}

fn parse_answer(route: &str, body: &str) -> Result<ModelAnswer, ModelError> {
    let bad = |message: String| ModelError::BadAnswer { route: route.into(), message };
    let v: Value =
        serde_json::from_str(body).map_err(|e| bad(format!("response is not JSON: {e}")))?;
    let choice = &v["choices"][0];
    let text = choice["message"]["content"].as_str().unwrap_or_default().to_string();
    let truncated = choice["finish_reason"].as_str() == Some("length");
    if text.trim().is_empty() && !truncated {
        let why = choice["message"]["refusal"]
            .as_str()
            .map(|r| format!("the model refused: {r}"))
            .unwrap_or_else(|| {
                format!("the answer has no content (finish_reason {})", choice["finish_reason"])
            });
        return Err(bad(why));
    }
    Ok(ModelAnswer {
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        text,
        truncated,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::AgentKind;

    #[test]
    fn response_format_errors_are_read_from_the_body_structure() {
        let openai = r#"{"error":{"message":"Invalid parameter","type":"invalid_request_error","param":"response_format","code":null}}"#;
        assert!(rejects_response_format(400, openai));
        let llamacpp = r#"{"error":{"code":400,"message":"Unsupported response_format type: json_schema","type":"invalid_request_error"}}"#;
        assert!(rejects_response_format(400, llamacpp));
        let fastapi = r#"{"detail":"json_schema is not supported"}"#;
        assert!(rejects_response_format(422, fastapi));
        let other = r#"{"error":{"message":"max_tokens is too large","param":"max_tokens"}}"#;
        assert!(!rejects_response_format(400, other));
        assert!(!rejects_response_format(401, openai));
        assert!(!rejects_response_format(400, "response_format is bad (not JSON)"));
    }

    #[test]
    fn context_exceeded_is_read_from_the_status_and_the_body_fields() {
        let llamacpp = r#"{"error":{"code":400,"message":"request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#;
        assert_eq!(context_exceeded(400, llamacpp), Some((Some(5000), Some(4096))));
        let openai = r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(context_exceeded(400, openai), Some((None, None)));
        // Digits and words in a message decide nothing.
        let text_only = r#"{"error":{"message":"request (5000 tokens) exceeds the available context size (4096 tokens)","type":"invalid_request_error"}}"#;
        assert_eq!(context_exceeded(400, text_only), None);
        assert_eq!(context_exceeded(500, llamacpp), None);
        assert_eq!(context_exceeded(400, "exceed_context_size_error"), None);
    }

    #[test]
    fn request_names_the_schema_after_the_agent_kind() {
        let req = ModelRequest {
            kind: AgentKind::Chapter,
            system: "s".into(),
            user: "u".into(),
            temperature: 0.7,
            top_p: 0.9,
            max_tokens: 10,
            seed: 3,
            schema: None,
        };
        let b = request_body("m", &req, StructuredOutput::JsonSchema);
        assert_eq!(b["response_format"]["json_schema"]["name"], "chapter");
        let b = request_body("m", &req, StructuredOutput::JsonObject);
        assert_eq!(b["response_format"]["type"], "json_object");
        let b = request_body("m", &req, StructuredOutput::Text);
        assert!(b.get("response_format").is_none());
    }

    #[test]
    fn parse_answer_reads_usage_and_truncation() {
        let a = parse_answer(
            "p/m",
            r#"{"choices":[{"message":{"content":"{\"a\":"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
        )
        .unwrap();
        assert!(a.truncated);
        assert_eq!((a.prompt_tokens, a.completion_tokens), (7, 3));
        let empty = r#"{"choices":[{"message":{"content":""},"finish_reason":"stop"}]}"#;
        assert!(parse_answer("p/m", empty).is_err());
        assert!(parse_answer("p/m", "<html>").is_err());
    }
}
