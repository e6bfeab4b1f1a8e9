//! Anthropic's Messages API: `POST {base}/messages` with `x-api-key` and `anthropic-version`,
//! the system prompt as its own field, `max_tokens`, and usage as input/output tokens.
//!
//! A request with a schema asks for it as Anthropic enforces one: a single tool whose
//! `input_schema` is the schema, forced by `tool_choice`; the answer is the tool call's input.
//! A server that refuses the tool (or answers in text) is read as text.

use super::dialect::{self, Dialect};
use super::http::{self, RetryPolicy};
use super::openai::{AGENT_HEADER, read_key};
use super::{ModelAnswer, ModelError, ModelRequest, ProviderConfig};
use scriptorium_proto::kind;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};

/// The API version sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// One Anthropic-protocol server.
pub struct Anthropic {
    name: String,
    base_url: String,
    key: Option<String>,
    policy: RetryPolicy,
    http: reqwest::Client,
    /// The server refused a tool once: later requests ask in text.
    refuses_tools: AtomicBool,
}

impl Anthropic {
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
            refuses_tools: AtomicBool::new(false),
        })
    }

    pub(crate) async fn call(
        &self,
        model: &str,
        req: &ModelRequest,
    ) -> Result<ModelAnswer, ModelError> {
        let route = format!("{}/{}", self.name, model);
        let url = format!("{}/messages", self.base_url);
        // Only the temperature: recent models refuse temperature and top_p together.
        let mut body = json!({
            "model": model,
            "system": req.system,
            "messages": [{"role": "user", "content": req.user}],
            "max_tokens": req.max_tokens.max(1),
            "temperature": req.temperature.clamp(0.0, 1.0),
        });
        let name = kind::name(req.kind);
        let mut tool = req.schema.as_ref().filter(|_| !self.refuses_tools.load(Ordering::Relaxed));
        if let Some(schema) = tool {
            dialect::apply(Dialect::AnthropicTool, &mut body, name, schema);
        }
        loop {
            let reply = http::send(&self.policy, &route, || {
                let rb = self
                    .http
                    .post(&url)
                    .header("anthropic-version", ANTHROPIC_VERSION)
                    .header(AGENT_HEADER, kind::name(req.kind))
                    .json(&body);
                match &self.key {
                    Some(key) => rb.header("x-api-key", key),
                    None => rb,
                }
            })
            .await?;
            if tool.is_some()
                && let Some(refusal) = dialect::refusal(reply.status, &reply.body)
            {
                tracing::warn!(route = %route, refused = %refusal.field, "server refuses the tool; asking in text");
                self.refuses_tools.store(true, Ordering::Relaxed);
                tool = None;
                dialect::apply(Dialect::Text, &mut body, name, &Value::Null);
                continue;
            }
            if !(200..300).contains(&reply.status) {
                return Err(ModelError::Rejected {
                    provider: self.name.clone(),
                    route,
                    status: reply.status,
                    message: http::server_message(&reply.body),
                });
            }
            let mut answer = parse_answer(&route, &reply.body, name)?;
            answer.retries = reply.retries;
            answer.dialect =
                if tool.is_some() { Dialect::AnthropicTool } else { Dialect::Text }.name().into();
            return Ok(answer);
        }
    }
}

fn parse_answer(route: &str, body: &str, tool: &str) -> Result<ModelAnswer, ModelError> {
    let bad = |message: String| ModelError::BadAnswer { route: route.into(), message };
    let v: Value =
        serde_json::from_str(body).map_err(|e| bad(format!("response is not JSON: {e}")))?;
    if let Some(a) = dialect::anthropic_tool_answer(&v, tool) {
        return Ok(ModelAnswer {
            text: a.text,
            prompt_tokens: a.prompt_tokens,
            completion_tokens: a.completion_tokens,
            truncated: a.truncated,
            ..Default::default()
        });
    }
    let text: String = v["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default();
    let truncated = v["stop_reason"].as_str() == Some("max_tokens");
    if text.trim().is_empty() && !truncated {
        return Err(bad(format!("the answer has no text (stop_reason {})", v["stop_reason"])));
    }
    Ok(ModelAnswer {
        prompt_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        text,
        truncated,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_answer_joins_text_blocks_and_reads_usage() {
        let a = parse_answer(
            "a/m",
            r#"{"content":[{"type":"text","text":"{\"a\":"},{"type":"text","text":"1}"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":4}}"#,
            "concept",
        )
        .unwrap();
        assert_eq!(a.text, "{\"a\":1}");
        assert_eq!((a.prompt_tokens, a.completion_tokens, a.truncated), (12, 4, false));
        let cut = parse_answer(
            "a/m",
            r#"{"content":[{"type":"text","text":"{"}],"stop_reason":"max_tokens"}"#,
            "concept",
        )
        .unwrap();
        assert!(cut.truncated);
        assert!(
            parse_answer("a/m", r#"{"content":[],"stop_reason":"end_turn"}"#, "concept").is_err()
        );
    }

    #[test]
    fn a_tool_answer_is_the_tool_call_input() {
        let body = r#"{"content":[{"type":"text","text":"Here it is"},{"type":"tool_use","name":"concept","input":{"logline":"l"}}],"stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":2}}"#;
        let a = parse_answer("a/m", body, "concept").unwrap();
        assert_eq!(a.text, r#"{"logline":"l"}"#);
        assert_eq!((a.prompt_tokens, a.completion_tokens), (5, 2));
        // A tool of another name is not the answer: the text is.
        assert_eq!(parse_answer("a/m", body, "outline").unwrap().text, "Here it is");
    }
}
