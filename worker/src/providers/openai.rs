//! OpenAI-compatible chat completions (OpenAI, OpenRouter, DeepSeek, Mistral, Groq, Ollama,
//! vLLM, llama.cpp's server, LM Studio) with structured output where the server offers it.
//!
//! Each request carries its kind's JSON Schema in the structured-output dialect the server
//! enforces (see [`super::dialect`]): the provider's configured dialect, else the order of its
//! server family (probed once on `GET /v1/models` for local servers). A server that refuses a
//! dialect, whatever the status it answers with (400, 422 or 500), is asked in the next one
//! down to plain text, and the provider keeps the dialect that worked for its later calls.

use super::dialect::{self, Dialect, Family};
use super::http::{self, Reply, RetryPolicy};
use super::{ModelAnswer, ModelError, ModelRequest, ProviderConfig};
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
    /// The family the provider's name and URL say; a local server's `/v1/models` may say more.
    family: Family,
    /// The dialect the provider's config names, if any.
    configured: Option<Dialect>,
    /// The dialects to try, settled on the first call.
    ladder: tokio::sync::OnceCell<Vec<Dialect>>,
    /// Index in `ladder` of the dialect that works (only ever moves down).
    current: AtomicU8,
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
            family: Family::of_provider(name, cfg.effective_base_url()),
            configured: cfg.structured_output,
            ladder: tokio::sync::OnceCell::new(),
            current: AtomicU8::new(0),
        })
    }

    /// The dialects this provider tries, in order: from its config, else from its family,
    /// refined once by a local server's `GET /v1/models` (llama-cpp-python, llama-server and
    /// vLLM say who they are there).
    async fn ladder(&self) -> &[Dialect] {
        self.ladder
            .get_or_init(|| async {
                let mut family = self.family;
                if self.configured.is_none()
                    && matches!(family, Family::Generic | Family::LlamaCpp | Family::Vllm)
                    && let Some(found) = self.probe_family().await
                {
                    family = found;
                }
                let ladder = dialect::ladder(family, self.configured);
                tracing::info!(
                    provider = %self.name,
                    family = ?family,
                    dialects = ?ladder.iter().map(|d| d.name()).collect::<Vec<_>>(),
                    "structured-output dialects"
                );
                ladder
            })
            .await
    }

    async fn probe_family(&self) -> Option<Family> {
        let rb = self
            .http
            .get(format!("{}/models", self.base_url))
            .timeout(std::time::Duration::from_secs(5));
        let rb = match &self.key {
            Some(key) => rb.bearer_auth(key),
            None => rb,
        };
        let resp = rb.send().await.ok().filter(|r| r.status().is_success())?;
        Family::from_models(&resp.json::<Value>().await.ok()?)
    }

    /// The structured-output dialect the next call starts with.
    pub async fn dialect(&self) -> Dialect {
        let ladder = self.ladder().await;
        let i = usize::from(self.current.load(Ordering::Relaxed)).min(ladder.len() - 1);
        ladder[i]
    }

    pub(crate) async fn call(
        &self,
        model: &str,
        req: &ModelRequest,
    ) -> Result<ModelAnswer, ModelError> {
        let route = format!("{}/{}", self.name, model);
        let url = format!("{}/chat/completions", self.base_url);
        let agent = kind::name(req.kind);
        let root = self.base_url.strip_suffix("/v1").unwrap_or(&self.base_url);
        let ladder = self.ladder().await;
        let mut retries = 0;
        loop {
            let at = usize::from(self.current.load(Ordering::Relaxed)).min(ladder.len() - 1);
            let dialect = ladder[at];
            let body = request_body(model, req, dialect);
            let url = match dialect {
                Dialect::OllamaFormat => format!("{root}/{}", dialect.endpoint()),
                _ => url.clone(),
            };
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
                let mut answer = parse_answer(&route, &body, dialect)?;
                answer.retries = retries;
                answer.dialect = dialect.name().to_string();
                return Ok(answer);
            }
            if let Some(refusal) = dialect::refusal(status, &body)
                && let Some(next) = dialect::step_down(ladder, dialect, &refusal)
            {
                let next_at = ladder.iter().position(|d| *d == next).unwrap_or(at + 1);
                // Another agent may have stepped down already: never step back up.
                self.current.fetch_max(next_at as u8, Ordering::Relaxed);
                tracing::warn!(
                    route = %route,
                    status,
                    refused = %refusal.field,
                    from = dialect.name(),
                    to = next.name(),
                    "server refuses this structured-output dialect, asking in the next"
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

/// The chat-completions body of `req` in `dialect`: the request's schema (any JSON object
/// without one) named after the agent kind.
fn request_body(model: &str, req: &ModelRequest, dialect: Dialect) -> Value {
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
    let any = json!({"type": "object"});
    dialect::apply(dialect, &mut body, kind::name(req.kind), req.schema.as_ref().unwrap_or(&any));
    body
}

fn parse_answer(route: &str, body: &str, dialect: Dialect) -> Result<ModelAnswer, ModelError> {
    let bad = |message: String| ModelError::BadAnswer { route: route.into(), message };
    let v: Value =
        serde_json::from_str(body).map_err(|e| bad(format!("response is not JSON: {e}")))?;
    if dialect == Dialect::OllamaFormat {
        let a = dialect::ollama_chat_answer(&v)
            .ok_or_else(|| bad("the answer has no message content".into()))?;
        return Ok(ModelAnswer {
            text: a.text,
            prompt_tokens: a.prompt_tokens,
            completion_tokens: a.completion_tokens,
            truncated: a.truncated,
            ..Default::default()
        });
    }
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
    fn the_request_carries_its_schema_in_the_dialect_named_after_the_agent_kind() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let req = ModelRequest {
            kind: AgentKind::Chapter,
            system: "s".into(),
            user: "u".into(),
            max_tokens: 10,
            schema: Some(schema.clone()),
            ..Default::default()
        };
        let b = request_body("m", &req, Dialect::JsonSchema);
        assert_eq!(b["response_format"]["json_schema"]["name"], "chapter");
        assert_eq!(b["response_format"]["json_schema"]["schema"], schema);
        let b = request_body("m", &req, Dialect::JsonObjectSchema);
        assert_eq!(b["response_format"], json!({"type": "json_object", "schema": schema}));
        let b = request_body("m", &req, Dialect::Text);
        assert!(b.get("response_format").is_none());
        assert_eq!(b["max_tokens"], 10);
    }

    #[test]
    fn parse_answer_reads_usage_and_truncation() {
        let a = parse_answer(
            "p/m",
            r#"{"choices":[{"message":{"content":"{\"a\":"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
            Dialect::JsonSchema,
        )
        .unwrap();
        assert!(a.truncated);
        assert_eq!((a.prompt_tokens, a.completion_tokens), (7, 3));
        let empty = r#"{"choices":[{"message":{"content":""},"finish_reason":"stop"}]}"#;
        assert!(parse_answer("p/m", empty, Dialect::Text).is_err());
        assert!(parse_answer("p/m", "<html>", Dialect::Text).is_err());
    }
}
