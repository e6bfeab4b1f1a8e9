//! `scriptorium sim-server`: the simulated model behind an OpenAI-compatible HTTP API (and a
//! minimal Anthropic-shaped one), with latency and fault injection, for tests and benchmarks.
//!
//! Endpoints: `POST /v1/chat/completions` (also `/chat/completions`), `POST /v1/messages`
//! (also `/messages`), `GET /stats` (counters as JSON) and, with a context window, llama.cpp's
//! `GET /props`. The agent kind is read from `response_format.json_schema.name` or the
//! `x-scriptorium-agent` header.
//!
//! With a context window the server counts like a llama.cpp server without context shift: a
//! prompt (both messages counted by the server's own rule, plus 4 tokens per message and 3 for
//! the reply's start, as chat templates add) that does not fit gets llama.cpp's 400
//! `exceed_context_size_error`; an answer stops with `finish_reason` "length" when the
//! window fills up, as it does at the request's `max_tokens`.
//!
//! Faults are decided per completion request that passes the key and `response_format` checks,
//! in arrival order: the `script` first (one fault per request), then the rates, drawn from an
//! RNG seeded by `seed` and the request's number.

use crate::tokens::{count_tokens, cut_to_tokens};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scriptorium_contracts::mistake::Mistakes;
use scriptorium_contracts::sim;
use scriptorium_proto::kind;
use scriptorium_proto::names::AGENT_HEADER;
use scriptorium_proto::v1::AgentKind;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does with one completion request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    Ok,
    /// Answer with this HTTP status (429 carries `Retry-After` when configured).
    Status(u16),
    /// Wait `hang_secs` before answering, past any sensible client timeout.
    Hang,
    /// Answer 200 with text that holds no readable JSON object.
    Malformed,
    /// Answer 200 with half the answer and `finish_reason` "length".
    Truncated,
    /// Answer 200 with the JSON wrapped in prose and a code fence (extraction reads it).
    Prose,
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" => Ok(Fault::Ok),
            "hang" => Ok(Fault::Hang),
            "malformed" => Ok(Fault::Malformed),
            "truncated" => Ok(Fault::Truncated),
            "prose" => Ok(Fault::Prose),
            other => match other.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => Ok(Fault::Status(code)),
                _ => Err(format!(
                    "unknown fault {s:?} (ok, hang, malformed, truncated, prose or an HTTP status)"
                )),
            },
        }
    }
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Ok => "ok".into(),
            Fault::Status(s) => s.to_string(),
            Fault::Hang => "hang".into(),
            Fault::Malformed => "malformed".into(),
            Fault::Truncated => "truncated".into(),
            Fault::Prose => "prose".into(),
        }
    }
}

/// How the first outline answers break the brief's bounds, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overgrow {
    /// Three chapters more than asked.
    Chapters,
    /// Thirty scenes in the first chapter.
    Scenes,
}

impl std::str::FromStr for Overgrow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "chapters" => Ok(Overgrow::Chapters),
            "scenes" => Ok(Overgrow::Scenes),
            _ => Err(format!("unknown overgrowth {s:?} (chapters or scenes)")),
        }
    }
}

/// Which `response_format` requests the server refuses with a 400, like servers without
/// structured output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RejectFormat {
    /// Accept every `response_format`.
    #[default]
    None,
    /// Refuse `json_schema`.
    JsonSchema,
    /// Refuse `json_schema` and `json_object`.
    Any,
    /// Refuse `json_schema` as llama-cpp-python does: HTTP 500 with pydantic's `literal_error`
    /// on `response_format.type` in the message (captured from llama-cpp-python 0.3.36).
    LikeLlamaCppPython,
}

/// Settings of the sim server.
#[derive(Debug, Clone)]
pub struct SimServerConfig {
    /// Fixed latency of each answer, in milliseconds.
    pub latency_ms: u64,
    /// Extra random latency up to this many milliseconds.
    pub jitter_ms: u64,
    /// Seed of the fault and latency draws.
    pub seed: u64,
    /// Share (0..1) of answers that deliberately break a validation rule.
    pub bad_rate: f64,
    /// Share of requests answered 429.
    pub rate_429: f64,
    /// Share of requests answered 500.
    pub rate_500: f64,
    /// Share of requests that hang.
    pub rate_hang: f64,
    /// Share of answers that are malformed.
    pub rate_malformed: f64,
    /// Share of answers that are truncated.
    pub rate_truncated: f64,
    /// `Retry-After` seconds sent with 429 answers (0: no header).
    pub retry_after_secs: u64,
    /// How long a hanging request waits before answering.
    pub hang_secs: u64,
    /// Faults of the first admitted requests (past the key and format checks), in order.
    pub script: Vec<Fault>,
    /// Which `response_format` requests are refused.
    pub reject_response_format: RejectFormat,
    /// The key clients must send (`Authorization: Bearer` or `x-api-key`); none: no check.
    pub require_key: Option<String>,
    /// Error bodies echo the request headers (to test that clients redact them).
    pub echo_headers: bool,
    /// Context window in tokens (prompt and answer together); none: unlimited.
    pub context_window: Option<u64>,
    /// How the first outline answers break the brief's bounds, in order.
    pub overgrow: Vec<Overgrow>,
    /// The mistakes first attempts of chapters make, and how often.
    pub mistakes: Mistakes,
}

impl Default for SimServerConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            seed: 0,
            bad_rate: 0.0,
            rate_429: 0.0,
            rate_500: 0.0,
            rate_hang: 0.0,
            rate_malformed: 0.0,
            rate_truncated: 0.0,
            retry_after_secs: 1,
            hang_secs: 600,
            script: Vec::new(),
            reject_response_format: RejectFormat::None,
            require_key: None,
            echo_headers: false,
            context_window: None,
            overgrow: Vec::new(),
            mistakes: Mistakes::default(),
        }
    }
}

/// Counters served at `GET /stats`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Completion requests received.
    pub requests: u64,
    /// Requests answered 200 with a completion.
    pub completions: u64,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Completion requests by agent kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Completion requests by `response_format` type (`none` without one).
    pub by_format: BTreeMap<String, u64>,
    /// Injected faults by name.
    pub faults: BTreeMap<String, u64>,
    /// The context window, if the server has one.
    pub context_window: Option<u64>,
    /// Prompt tokens of the answered requests, as the server counts them.
    pub prompt_tokens: u64,
    /// Completion tokens of the answered requests.
    pub completion_tokens: u64,
    /// Requests refused because their prompt did not fit the window (llama.cpp's 400).
    pub context_exceeded: u64,
    /// Requests whose prompt plus `max_tokens` was larger than the window (they may overflow).
    pub over_window: u64,
    /// Answers stopped because the window filled up.
    pub window_full: u64,
    /// Answers stopped at the request's `max_tokens`.
    pub max_tokens_reached: u64,
    /// The largest prompt plus `max_tokens` of a request.
    pub largest_request: u64,
    /// The largest prompt of a request.
    pub largest_prompt: u64,
    /// Requests whose schema allows an answer longer than their `max_tokens` at 4 characters
    /// a token (or an unbounded one): a model a grammar holds could loop until cut off.
    #[serde(default)]
    pub schema_over_room: u64,
    /// Outline answers that broke the bounds on purpose (`overgrow`).
    pub overgrown: u64,
    /// Chapter answers that made a mistake on purpose, by mistake (`mistakes`).
    #[serde(default)]
    pub mistakes: BTreeMap<String, u64>,
}

struct Inner {
    cfg: SimServerConfig,
    /// Requests received (numbers each request).
    next: AtomicU64,
    /// Requests that passed the key and format checks (indexes the script).
    admitted: AtomicU64,
    /// Outline requests admitted (indexes `overgrow`).
    outlines: AtomicU64,
    stats: Mutex<Stats>,
}

impl Inner {
    fn new(cfg: SimServerConfig) -> Self {
        let stats = Stats { context_window: cfg.context_window, ..Default::default() };
        Inner {
            cfg,
            next: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            outlines: AtomicU64::new(0),
            stats: Mutex::new(stats),
        }
    }

    fn record(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn fault(&self, n: u64, rng: &mut sim::Rng) -> Fault {
        if let Some(f) = usize::try_from(n).ok().and_then(|i| self.cfg.script.get(i)) {
            return *f;
        }
        let c = &self.cfg;
        let draws = [
            (c.rate_429, Fault::Status(429)),
            (c.rate_500, Fault::Status(500)),
            (c.rate_hang, Fault::Hang),
            (c.rate_malformed, Fault::Malformed),
            (c.rate_truncated, Fault::Truncated),
        ];
        draws
            .into_iter()
            .find(|(rate, _)| *rate > 0.0 && rng.chance(*rate))
            .map_or(Fault::Ok, |d| d.1)
    }
}

/// A sim server running in this process; stopped on drop.
pub struct SimServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for an OpenAI-compatible or Anthropic provider (`http://ADDR/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a sim server on a free loopback port in this process.
pub async fn start(cfg: SimServerConfig) -> std::io::Result<SimServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let inner = Arc::new(Inner::new(cfg));
    let app = router(inner.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "sim server stopped");
        }
    });
    Ok(SimServer { addr, inner, task })
}

/// Serves on `addr` until SIGINT/SIGTERM; prints the bound address as the first stdout line.
pub async fn run(addr: &str, cfg: SimServerConfig) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the sim server to {addr}"))?;
    let bound = listener.local_addr()?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{bound}")?;
        out.flush()?;
    }
    tracing::info!(addr = %bound, "sim server listening");
    let inner = Arc::new(Inner::new(cfg));
    axum::serve(listener, router(inner))
        .with_graceful_shutdown(scriptorium_common::ops::stop_signal())
        .await?;
    Ok(())
}

fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/messages", post(messages))
        .route("/stats", get(stats))
        .route("/props", get(props))
        .with_state(inner)
}

async fn stats(State(inner): State<Arc<Inner>>) -> Response {
    let s = inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    axum::Json(s).into_response()
}

/// llama.cpp's `/props`, with the window of its one slot; 404 without a window.
async fn props(State(inner): State<Arc<Inner>>) -> Response {
    match inner.cfg.context_window {
        Some(n_ctx) => axum::Json(json!({
            "default_generation_settings": {"n_ctx": n_ctx, "params": {"n_predict": -1}},
            "total_slots": 1,
            "model_path": "sim",
        }))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Prompt tokens as the server counts them: its own count of each message (a tokenizer's, not
/// the client's estimate, see [`crate::tokens`]) plus the chat template's tokens.
fn count_prompt(system: &str, user: &str) -> u64 {
    count_tokens(system) + count_tokens(user) + 2 * 4 + 3
}

/// The two API shapes the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OpenAi,
    Anthropic,
}

/// A completion request, read from either shape.
struct Ask {
    kind: AgentKind,
    system: String,
    user: String,
    seed: u64,
    model: String,
    format: String,
    /// The tool an Anthropic request forces (`tool_choice.name`).
    tool: Option<String>,
    max_tokens: Option<u64>,
    /// The schema the request asks its answer to follow, in whichever dialect.
    schema: Option<Value>,
}

async fn chat(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(&inner, Shape::OpenAi, &headers, &body).await
}

async fn messages(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(&inner, Shape::Anthropic, &headers, &body).await
}

async fn serve(inner: &Inner, shape: Shape, headers: &HeaderMap, body: &[u8]) -> Response {
    let n = inner.next.fetch_add(1, Ordering::Relaxed);
    inner.record(|s| s.requests += 1);
    let response = answer(inner, n, shape, headers, body).await;
    let status = response.status().as_u16().to_string();
    inner.record(|s| *s.by_status.entry(status).or_default() += 1);
    response
}

async fn answer(inner: &Inner, n: u64, shape: Shape, headers: &HeaderMap, body: &[u8]) -> Response {
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

fn read_ask(shape: Shape, headers: &HeaderMap, v: &Value) -> Ask {
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

/// The answer of a llama.cpp server to a prompt that does not fit its window (OpenAI shape),
/// or Anthropic's to a prompt that is too long.
fn context_exceeded(shape: Shape, n_prompt_tokens: u64, n_ctx: u64) -> Response {
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
fn error_response(
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
fn llama_cpp_python_refusal() -> Response {
    let message = "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}\n\n  File \"llama_cpp/server/app.py\", line 376, in create_chat_completion\n    POST /v1/chat/completions";
    let body = json!({"error": {"message": message, "type": "internal_server_error", "param": null, "code": null}});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_names_and_statuses() {
        assert_eq!("429".parse::<Fault>(), Ok(Fault::Status(429)));
        assert_eq!("Hang".parse::<Fault>(), Ok(Fault::Hang));
        assert!("teapot".parse::<Fault>().is_err());
        assert!("999".parse::<Fault>().is_err());
    }

    #[test]
    fn script_comes_first_then_seeded_rates() {
        let cfg = SimServerConfig {
            script: vec![Fault::Status(503), Fault::Hang],
            rate_500: 0.5,
            seed: 9,
            ..Default::default()
        };
        let inner = Inner::new(cfg);
        let draw = |n: u64| {
            inner.fault(n, &mut sim::Rng::from_parts(&[&9u64.to_le_bytes(), &n.to_le_bytes()]))
        };
        assert_eq!(draw(0), Fault::Status(503));
        assert_eq!(draw(1), Fault::Hang);
        let later: Vec<Fault> = (2..202).map(draw).collect();
        let fails = later.iter().filter(|f| **f == Fault::Status(500)).count();
        assert!((60..140).contains(&fails), "{fails}");
        assert_eq!(later, (2..202).map(draw).collect::<Vec<_>>(), "deterministic per seed");
    }
}
