//! `scriptorium sim-server`: the simulated model behind an OpenAI-compatible HTTP API (and a
//! minimal Anthropic-shaped one), with latency and fault injection, for tests and benchmarks.
//!
//! Endpoints: `POST /v1/chat/completions` (also `/chat/completions`), `POST /v1/messages`
//! (also `/messages`), `GET /stats` (counters as JSON), `GET /requests` (the latest
//! [`LOGGED_REQUESTS`] requests' kind and user message, oldest first, so a test can see what was
//! asked) and, with a context window, llama.cpp's `GET /props`. The agent kind is read from `response_format.json_schema.name` or the
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
//!
//! # Layout
//! - `config`: what the server is told to do ([`SimServerConfig`], [`Fault`]).
//! - `ask`: reading a request of either shape, and counting its prompt.
//! - `completion`: answering one request, from the checks to the completion body.
//! - `errors`: the error answers, as each server family words them.

mod ask;
mod completion;
mod config;
mod errors;

pub use config::{Fault, Overgrow, RejectFormat, SimServerConfig};

use ask::Shape;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use scriptorium_contracts::sim;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// How many of the latest requests `GET /requests` keeps.
pub const LOGGED_REQUESTS: usize = 2048;

/// One request as `GET /requests` lists it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Logged {
    /// The agent kind.
    pub kind: String,
    /// The user message.
    pub user: String,
}

struct Inner {
    cfg: SimServerConfig,
    log: Mutex<std::collections::VecDeque<Logged>>,
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
            log: Mutex::default(),
            next: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            outlines: AtomicU64::new(0),
            stats: Mutex::new(stats),
        }
    }

    fn log(&self, kind: &str, user: &str) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == LOGGED_REQUESTS {
            log.pop_front();
        }
        log.push_back(Logged { kind: kind.into(), user: user.into() });
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

    /// The latest requests, oldest first.
    pub fn requests(&self) -> Vec<Logged> {
        self.inner.log.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
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
        .route("/requests", get(requests))
        .route("/props", get(props))
        .with_state(inner)
}

async fn stats(State(inner): State<Arc<Inner>>) -> Response {
    let s = inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
    axum::Json(s).into_response()
}

async fn requests(State(inner): State<Arc<Inner>>) -> Response {
    let log: Vec<Logged> =
        inner.log.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
    axum::Json(log).into_response()
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

async fn chat(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(&inner, Shape::OpenAi, &headers, &body).await
}

async fn messages(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(&inner, Shape::Anthropic, &headers, &body).await
}

async fn serve(inner: &Inner, shape: Shape, headers: &HeaderMap, body: &[u8]) -> Response {
    let n = inner.next.fetch_add(1, Ordering::Relaxed);
    inner.record(|s| s.requests += 1);
    let response = completion::answer(inner, n, shape, headers, body).await;
    let status = response.status().as_u16().to_string();
    inner.record(|s| *s.by_status.entry(status).or_default() += 1);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
