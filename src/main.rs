//! The `scriptorium` command line: parses arguments and calls the libraries.

use clap::{Parser, Subcommand, ValueEnum};
use scriptorium_coordinator::app::{self, AppConfig, WriteOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Scriptorium: a distributed book-writing engine.
///
/// `write` runs everything in this process; `coordinator` and `worker` run the same actors
/// distributed over NATS JetStream, fed by `submit` and watched with `status`.
#[derive(Parser, Debug)]
#[command(name = "scriptorium", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML): [coordinator], [worker] and [models] sections.
    #[arg(long, global = true, env = "SCRIPTORIUM_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SCRIPTORIUM_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write books in this process (embedded bus, no server needed).
    Write {
        /// Brief files (TOML); see examples/.
        #[arg(required = true)]
        briefs: Vec<PathBuf>,
        /// Output directory.
        #[arg(long, default_value = "books")]
        out: PathBuf,
        /// Books per brief, written in parallel (seeds count up from --seed).
        #[arg(long, default_value_t = 1)]
        books: u32,
        /// Seed of the first book.
        #[arg(long)]
        seed: Option<u64>,
        /// Number of chapters (overrides the briefs).
        #[arg(long)]
        chapters: Option<u32>,
        /// Model provider (sim, openai, anthropic, ollama, llamacpp, vllm, openrouter, deepseek, mistral).
        #[arg(long, requires = "model")]
        provider: Option<String>,
        /// Model name at the provider.
        #[arg(long, requires = "provider")]
        model: Option<String>,
        /// Do not use the response cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Run the coordinator over NATS until SIGINT/SIGTERM.
    Coordinator {
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Output directory for finished books.
        #[arg(long, env = "SCRIPTORIUM_OUT")]
        out: Option<PathBuf>,
    },
    /// Run a worker process over NATS until SIGINT/SIGTERM.
    Worker {
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Pool size per agent kind, as KIND=SIZE (kinds: all, concept, outline, characters, world, chapter, review, edit).
        #[arg(long = "pool")]
        pools: Vec<String>,
        /// Worker id (default: generated).
        #[arg(long, env = "SCRIPTORIUM_WORKER_ID")]
        id: Option<String>,
    },
    /// Submit a brief to a running coordinator; prints the book id.
    Submit {
        /// Brief file (TOML).
        brief: PathBuf,
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Seed of the book.
        #[arg(long)]
        seed: Option<u64>,
        /// Number of chapters (overrides the brief).
        #[arg(long)]
        chapters: Option<u32>,
        /// Wait until the book is done (exit 0) or failed (exit 1).
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 2).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Benchmark: steps per second over real NATS beside raw JetStream round trips.
    Bench {
        /// NATS server URL (default: start a private nats-server on a free port).
        #[arg(long)]
        nats: Option<String>,
        /// Books written in parallel.
        #[arg(long, default_value_t = 100)]
        books: u32,
        /// Chapters per book.
        #[arg(long, default_value_t = 10)]
        chapters: u32,
        /// Books written one at a time for the unloaded latency.
        #[arg(long, default_value_t = 20)]
        latency_books: u32,
        /// Round trips in flight in the raw baseline.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Show books: all of them, or one in detail.
    Status {
        /// Book id.
        book: Option<String>,
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn init_logs(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread exists: read .env into the environment (keys live only there).
    scriptorium_worker::dotenv::load(std::path::Path::new(".env"));
    let default_log = match cli.command {
        Command::Write { .. }
        | Command::Submit { .. }
        | Command::Status { .. }
        | Command::Bench { .. } => "warn",
        _ => "info",
    };
    init_logs(cli.log_format, default_log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", scriptorium_worker::redact::redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let cfg = AppConfig::load(cli.config.as_deref())?;
    match cli.command {
        Command::Write { briefs, out, books, seed, chapters, provider, model, no_cache } => {
            let route = provider.zip(model).map(|(p, m)| format!("{p}/{m}"));
            let opts = WriteOptions { briefs, out, books, seed, chapters, route, no_cache };
            let records = app::write(cfg, opts).await?;
            Ok(app::exit_code(&records) as u8)
        }
        Command::Coordinator { nats, out } => {
            app::run_coordinator(&nats, cfg, out).await.map(|_| 0)
        }
        Command::Worker { nats, pools, id } => {
            app::run_worker(&nats, cfg, id, &pools).await.map(|_| 0)
        }
        Command::Submit { brief, nats, seed, chapters, wait, timeout } => {
            let timeout = timeout.map(Duration::from_secs);
            match app::submit(&nats, &brief, seed, chapters, wait, timeout).await? {
                Some(rec) => Ok(app::exit_code(std::slice::from_ref(&rec)) as u8),
                None => Ok(0),
            }
        }
        Command::Bench { nats, books, chapters, latency_books, concurrency } => {
            let opts =
                app::bench::BenchOptions { nats, books, chapters, latency_books, concurrency };
            app::bench::run(cfg, opts).await.map(|_| 0)
        }
        Command::Status { book, nats, json } => {
            app::status(&nats, book.as_deref(), json).await.map(|_| 0)
        }
    }
}
