//! OpenAI-compatible chat completions (OpenAI, OpenRouter, DeepSeek, Mistral, Ollama, vLLM,
//! llama.cpp's server, LM Studio), with timeouts and retries with backoff.

use super::{ModelAnswer, ModelError, ModelRequest, ProviderConfig};
use serde_json::{Value, json};
use std::time::Duration;

/// One OpenAI-compatible server.
pub struct OpenAiCompat {
    name: String,
    base_url: String,
    key: Option<String>,
    default_model: String,
    max_retries: u32,
    http: reqwest::Client,
}

impl OpenAiCompat {
    /// Reads the key from the environment and builds the HTTP client.
    pub(crate) fn new(name: &str, cfg: &ProviderConfig) -> Result<Self, ModelError> {
        let key = if cfg.key_env.is_empty() {
            None
        } else {
            match std::env::var(&cfg.key_env) {
                Ok(k) if !k.trim().is_empty() => {
                    crate::redact::register_secret(&k);
                    Some(k.trim().to_string())
                }
                _ => {
                    return Err(ModelError::MissingKey {
                        provider: name.into(),
                        var: cfg.key_env.clone(),
                    });
                }
            }
        };
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ModelError::BadAnswer { route: name.into(), message: e.to_string() })?;
        Ok(Self {
            name: name.into(),
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            key,
            default_model: cfg.default_model.clone(),
            max_retries: cfg.max_retries,
            http,
        })
    }

    pub(crate) async fn call(
        &self,
        model: &str,
        req: &ModelRequest,
    ) -> Result<ModelAnswer, ModelError> {
        let model = if model.is_empty() { self.default_model.as_str() } else { model };
        let route = format!("{}/{}", self.name, model);
        let body = json!({
            "model": model,
            "messages": [
                {"role": "system", "content": req.system},
                {"role": "user", "content": req.user},
            ],
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
            "response_format": {"type": "json_object"},
        });
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut rb = self.http.post(format!("{}/chat/completions", self.base_url)).json(&body);
            if let Some(key) = &self.key {
                rb = rb.bearer_auth(key);
            }
            let failure = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        return parse_answer(&route, &text, attempt - 1);
                    }
                    let message = crate::redact::redact(&server_message(&text));
                    if !(status == 408 || status == 409 || status == 429 || status >= 500) {
                        return Err(ModelError::Rejected { route, status, message });
                    }
                    (format!("HTTP {status}: {message}"), retry_after)
                }
                Err(e) => (crate::redact::redact(&e.to_string()), None),
            };
            if attempt > self.max_retries {
                return Err(ModelError::Exhausted { route, attempts: attempt, last: failure.0 });
            }
            let backoff = failure.1.unwrap_or_else(|| backoff(attempt));
            tracing::warn!(route = %route, attempt, error = %failure.0, "model call failed, retrying");
            tokio::time::sleep(backoff.min(Duration::from_secs(60))).await;
        }
    }
}

/// Exponential backoff with full jitter: up to 0.5s, 1s, 2s... capped at 20s.
fn backoff(attempt: u32) -> Duration {
    let cap = 500u64.saturating_mul(1 << attempt.min(6)).min(20_000);
    let jitter = super::sim::Rng::from_parts(&[&crate::clock_nanos().to_le_bytes()]).next_u64();
    Duration::from_millis(cap / 2 + jitter % (cap / 2 + 1))
}

fn server_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let msg = v["error"]["message"].as_str().or(v["message"].as_str()).or(v["error"].as_str());
    let msg = msg.map(str::to_string).unwrap_or_else(|| body.chars().take(300).collect());
    msg.chars().take(500).collect()
}

fn parse_answer(route: &str, body: &str, retries: u32) -> Result<ModelAnswer, ModelError> {
    let bad = |message: String| ModelError::BadAnswer { route: route.into(), message };
    let v: Value =
        serde_json::from_str(body).map_err(|e| bad(format!("response is not JSON: {e}")))?;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return Err(bad("the answer has no content".into()));
    }
    Ok(ModelAnswer {
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        text,
        retries,
    })
}
