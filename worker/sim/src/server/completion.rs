//! Answering one completion request: the checks a real server makes (key, format, window), then
//! an injected fault or the simulated model's answer, cut where `max_tokens` or the window stops
//! it, in the shape asked.

use super::ask::{Shape, count_prompt, read_ask};
use super::errors::{context_exceeded, error_response, llama_cpp_python_refusal};
use super::{Fault, Inner, Overgrow, RejectFormat};
use crate::tokens::{count_tokens, cut_to_tokens};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use scriptorium_contracts::sim;
use scriptorium_proto::kind;
use scriptorium_proto::v1::AgentKind;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The answer to request number `n`: the key, format and window checks, then a fault or the
/// simulated answer, cut at `max_tokens` or where the window fills up.
pub(super) async fn answer(
    inner: &Inner,
    n: u64,
    shape: Shape,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let cfg = &inner.cfg;
    let error = |status: u16, kind: &str, message: &str| {
        error_response(shape, status, kind, message, cfg.echo_headers.then_some(headers), None)
    };
    if let Some(key) = &cfg.require_key {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let sent = match shape {
            Shape::OpenAi => header("authorization").strip_prefix("Bearer ").unwrap_or(""),
            Shape::Anthropic => header("x-api-key"),
        };
        if sent != key {
            return error(401, "authentication_error", "invalid api key");
        }
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(400, "invalid_request_error", "the body is not JSON");
    };
    let ask = read_ask(shape, headers, &v);
    inner.log(kind::name(ask.kind), &ask.user);
    inner.record(|s| {
        *s.by_kind.entry(kind::name(ask.kind).to_string()).or_default() += 1;
        *s.by_format.entry(ask.format.clone()).or_default() += 1;
    });
    let refused = match cfg.reject_response_format {
        RejectFormat::None => false,
        RejectFormat::JsonSchema => ask.format == "json_schema",
        RejectFormat::Any => ask.format != "none",
        RejectFormat::LikeLlamaCppPython => false,
    };
    if cfg.reject_response_format == RejectFormat::LikeLlamaCppPython && ask.format == "json_schema"
    {
        return llama_cpp_python_refusal();
    }
    if refused {
        let message = format!("response_format type {} is not supported", ask.format);
        let param = Some("response_format");
        return error_response(shape, 400, "invalid_request_error", &message, None, param);
    }
    let prompt_tokens = count_prompt(&ask.system, &ask.user);
    let requested = prompt_tokens + ask.max_tokens.unwrap_or(0);
    let over_room = match (&ask.schema, ask.max_tokens) {
        (Some(schema), Some(max)) => {
            scriptorium_contracts::schema::max_chars(schema).is_none_or(|c| c > max * 4)
        }
        _ => false,
    };
    inner.record(|s| {
        s.largest_prompt = s.largest_prompt.max(prompt_tokens);
        s.largest_request = s.largest_request.max(requested);
        s.schema_over_room += u64::from(over_room);
    });
    if let Some(n_ctx) = cfg.context_window {
        if requested > n_ctx {
            inner.record(|s| s.over_window += 1);
        }
        if prompt_tokens >= n_ctx {
            inner.record(|s| s.context_exceeded += 1);
            return context_exceeded(shape, prompt_tokens, n_ctx);
        }
    }
    let admitted = inner.admitted.fetch_add(1, Ordering::Relaxed);
    let mut rng = sim::Rng::from_parts(&[&cfg.seed.to_le_bytes(), &admitted.to_le_bytes()]);
    let fault = inner.fault(admitted, &mut rng);
    if fault != Fault::Ok {
        inner.record(|s| *s.faults.entry(fault.name()).or_default() += 1);
        tracing::debug!(request = n, fault = %fault.name(), "injecting a fault");
    }
    let delay = cfg.latency_ms + if cfg.jitter_ms > 0 { rng.next_u64() % cfg.jitter_ms } else { 0 };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let bad = cfg.bad_rate > 0.0 && rng.chance(cfg.bad_rate);
    let mut how = if bad { sim::Misbehave::Any } else { sim::Misbehave::No };
    if ask.kind == AgentKind::Outline {
        let n = inner.outlines.fetch_add(1, Ordering::Relaxed);
        if let Some(o) = usize::try_from(n).ok().and_then(|i| cfg.overgrow.get(i)) {
            inner.record(|s| s.overgrown += 1);
            how = match o {
                Overgrow::Chapters => sim::Misbehave::ExtraChapters,
                Overgrow::Scenes => sim::Misbehave::ThirtyScenes,
            };
        }
    }
    let full = if how == sim::Misbehave::No && !cfg.mistakes.is_none() {
        if let Some(m) = sim::mistake(ask.kind, &ask.user, ask.seed, cfg.mistakes) {
            inner.record(|s| *s.mistakes.entry(m.name().to_string()).or_default() += 1);
        }
        sim::answer_mistaken(ask.kind, &ask.user, ask.seed, false, cfg.mistakes)
    } else {
        sim::answer_with(ask.kind, &ask.user, ask.seed, how)
    };
    let (text, truncated) = match fault {
        Fault::Status(429) => {
            let mut r = error(429, "rate_limit_error", "rate limit reached, slow down");
            if cfg.retry_after_secs > 0 {
                r.headers_mut().insert(header::RETRY_AFTER, cfg.retry_after_secs.into());
            }
            return r;
        }
        Fault::Status(s) => return error(s, "api_error", "simulated server failure"),
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(cfg.hang_secs)).await;
            (full, false)
        }
        Fault::Malformed => {
            let cut: String = full.chars().take(full.len() / 3).collect();
            (format!("Here is the JSON you asked for: {}", cut.replace('{', "[")), false)
        }
        Fault::Truncated => (full.chars().take(full.chars().count() / 2).collect(), true),
        Fault::Prose => (format!("Sure! Here it is:\n```json\n{full}\n```\nAnything else?"), false),
        Fault::Ok => (full, false),
    };
    // Generation stops at max_tokens, or when the window is full (no context shift).
    let by_request = ask.max_tokens.unwrap_or(u64::MAX);
    let by_window = cfg.context_window.map_or(u64::MAX, |n| n.saturating_sub(prompt_tokens + 1));
    let room = by_request.min(by_window);
    let (text, truncated) = if count_tokens(&text) > room {
        inner.record(|s| {
            if by_window < by_request { s.window_full += 1 } else { s.max_tokens_reached += 1 }
        });
        (cut_to_tokens(&text, room).to_string(), true)
    } else {
        (text, truncated)
    };
    let completion_tokens = count_tokens(&text);
    inner.record(|s| {
        s.completions += 1;
        s.prompt_tokens += prompt_tokens;
        s.completion_tokens += completion_tokens;
    });
    let body = match shape {
        Shape::OpenAi => json!({
            "id": format!("chatcmpl-sim-{n}"),
            "object": "chat.completion",
            "model": ask.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": if truncated { "length" } else { "stop" },
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }),
        Shape::Anthropic => json!({
            "id": format!("msg_sim_{n}"),
            "type": "message",
            "role": "assistant",
            "model": ask.model,
            // Asked through a tool, the answer is the tool call's input, as Anthropic gives it.
            "content": match (ask.tool.as_deref(), serde_json::from_str::<Value>(&text)) {
                (Some(name), Ok(input)) if !truncated => json!([{"type": "tool_use", "id": format!("toolu_sim_{n}"), "name": name, "input": input}]),
                _ => json!([{"type": "text", "text": text}]),
            },
            "stop_reason": if truncated { "max_tokens" } else if ask.tool.is_some() { "tool_use" } else { "end_turn" },
            "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
        }),
    };
    axum::Json(body).into_response()
}
