//! `scriptorium bench-tokens`: calls, prompt and completion tokens per complete book, written
//! through the OpenAI-compatible HTTP provider against an in-process sim server with a small
//! context window (as a small local model behind llama.cpp's server has), beside the figures
//! of the original Python tool on the same briefs.
//!
//! The provider reads the window from the server's `/props`, as it does from llama.cpp's.
//! Tokens are the sim server's own accounting, not the client's estimate: its stand-in for a
//! tokenizer over each message (words, digits and punctuation marks, see
//! [`scriptorium_sim::tokens`]) plus the chat template's tokens.

use super::AppConfig;
use scriptorium_coordinator::record::{BookRecord, Status};
use scriptorium_coordinator::{CoordinatorHandle, client};
use scriptorium_proto::Bus;
use scriptorium_sim::server::{self as sim_server, SimServerConfig, Stats};
use scriptorium_worker::Worker;
use scriptorium_worker::providers::{Protocol, ProviderConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of the token benchmark.
#[derive(Debug, Clone)]
pub struct TokenBenchOptions {
    /// Brief files; none: `examples/fantasy.toml` and `examples/fantasy-8.toml`.
    pub briefs: Vec<PathBuf>,
    /// Context window of the sim server, in tokens.
    pub context_window: u64,
}

/// What the original tool spent on the same brief, measured with SmolLM2-135M behind
/// llama.cpp's server, one request at a time.
struct Original {
    chapters: u32,
    calls: u64,
    /// About 37,000 tokens for the 3-chapter book.
    tokens: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    outcome: &'static str,
}

const ORIGINAL: &[Original] = &[
    Original {
        chapters: 3,
        calls: 27,
        tokens: 37_000,
        prompt_tokens: 19_800,
        completion_tokens: 17_400,
        outcome: "finished in 13 minutes",
    },
    Original {
        chapters: 8,
        calls: 109,
        tokens: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        outcome: "overflowed the context (HTTP 400), never finished",
    },
];

/// One book's figures.
#[derive(Debug, Clone)]
pub struct BookTokens {
    /// The brief file.
    pub brief: String,
    /// Chapters of the book.
    pub chapters: u32,
    /// Whether the book finished with every chapter.
    pub done: bool,
    /// Model calls recorded in the book's `book.json`.
    pub calls: u64,
    /// Prompt tokens recorded in `book.json`.
    pub prompt_tokens: u64,
    /// Completion tokens recorded in `book.json`.
    pub completion_tokens: u64,
    /// The sim server's counters for this book.
    pub server: Stats,
    /// Wall time of the book.
    pub secs: f64,
}

/// Writes one book of `brief` against a fresh sim server with `window` tokens.
async fn one_book(
    cfg: &AppConfig,
    brief_path: &std::path::Path,
    window: u64,
) -> anyhow::Result<BookTokens> {
    let brief = super::load_briefs(&[brief_path.to_path_buf()], 1, None, None, None)?.remove(0);
    let server =
        sim_server::start(SimServerConfig { context_window: Some(window), ..Default::default() })
            .await?;
    let mut cfg = cfg.clone();
    let mut local = ProviderConfig::new(Protocol::Openai, &server.base_url(), "", "sim");
    local.discover_context_window = true;
    cfg.models.providers.insert("local".into(), local);
    cfg.coordinator.routes.default = "local/sim".into();
    cfg.coordinator.cache = false;
    let out = tempfile::tempdir()?;
    cfg.coordinator.out_dir = out.path().to_path_buf();
    let bus = Bus::memory();
    let worker = Worker::start(bus.clone(), cfg.worker_config("bench-tokens".into(), &[])?).await?;
    let coordinator = CoordinatorHandle::start(bus.clone(), cfg.coordinator.clone()).await?;
    let chapters = brief.chapters;
    let started = Instant::now();
    let id = client::submit(&bus, brief).await?;
    let rec: BookRecord =
        client::wait(&bus, &[id], Some(Duration::from_secs(600)), |_| {}).await?.remove(0);
    let secs = started.elapsed().as_secs_f64();
    coordinator.shutdown().await;
    worker.shutdown(Duration::from_secs(1)).await;
    Ok(BookTokens {
        brief: brief_path.display().to_string(),
        chapters,
        done: rec.state == Status::Done,
        calls: u64::from(rec.usage.calls),
        prompt_tokens: rec.usage.prompt_tokens,
        completion_tokens: rec.usage.completion_tokens,
        server: server.stats(),
        secs,
    })
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs the benchmark and prints one line per book beside the original's figures.
pub async fn run(cfg: AppConfig, opts: TokenBenchOptions) -> anyhow::Result<Vec<BookTokens>> {
    let briefs = if opts.briefs.is_empty() {
        vec![PathBuf::from("examples/fantasy.toml"), PathBuf::from("examples/fantasy-8.toml")]
    } else {
        opts.briefs.clone()
    };
    let mut cfg = cfg;
    cfg.models.sim = Default::default();
    println!(
        "scriptorium bench-tokens: OpenAI-compatible HTTP provider -> in-process sim server with a {}-token context window (read from its /props); tokens as the server counts them",
        thousands(opts.context_window)
    );
    println!(
        "{:<26} {:>3} {:>6} {:>8} {:>11} {:>8}  {:<12}  original (SmolLM2-135M, llama.cpp server)",
        "brief", "ch", "calls", "prompt", "completion", "total", "result"
    );
    let mut all = Vec::new();
    for path in &briefs {
        let b = one_book(&cfg, path, opts.context_window).await?;
        let total = b.prompt_tokens + b.completion_tokens;
        let original = ORIGINAL.iter().find(|o| o.chapters == b.chapters);
        let versus = match original {
            Some(o) if o.tokens > 0 => format!(
                "{} calls, ~{} tokens ({:.1}k + {:.1}k), {}: {:.2}x its tokens",
                o.calls,
                thousands(o.tokens),
                o.prompt_tokens as f64 / 1000.0,
                o.completion_tokens as f64 / 1000.0,
                o.outcome,
                total as f64 / o.tokens as f64
            ),
            Some(o) => format!("{} calls, {}", o.calls, o.outcome),
            None => "(not measured)".into(),
        };
        println!(
            "{:<26} {:>3} {:>6} {:>8} {:>11} {:>8}  {:<12}  {versus}",
            path.display().to_string(),
            b.chapters,
            b.calls,
            thousands(b.prompt_tokens),
            thousands(b.completion_tokens),
            thousands(total),
            if b.done { "done" } else { "FAILED" },
        );
        let s = &b.server;
        println!(
            "{:<26} server: {} requests, {} answered ({} + {} tokens), largest request {} of {} (prompt + max_tokens), over the window {}, context exceeded {}, answers cut by the window {}; {:.1}s",
            "",
            s.requests,
            s.completions,
            thousands(s.prompt_tokens),
            thousands(s.completion_tokens),
            thousands(s.largest_request),
            thousands(opts.context_window),
            s.over_window,
            s.context_exceeded,
            s.window_full,
            b.secs
        );
        all.push(b);
    }
    if let Some(failed) = all.iter().find(|b| !b.done) {
        anyhow::bail!("the book of {} did not finish", failed.brief);
    }
    Ok(all)
}
