//! The `scriptorium` command line: parses arguments and calls the libraries.

use clap::{Parser, Subcommand, ValueEnum};
mod app;

use app::{AppConfig, WriteOptions};
use std::net::SocketAddr;
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
    /// Configuration file (TOML): [coordinator], [worker], [models] and [cache] sections.
    #[arg(long, global = true, env = "SCRIPTORIUM_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SCRIPTORIUM_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(flatten)]
    nats_auth: NatsAuthArgs,
    #[command(subcommand)]
    command: Command,
}

/// How every command connects to NATS beyond its URL: credentials files and TLS. Secrets (a
/// token, a password) come only from the environment (`SCRIPTORIUM_NATS_TOKEN`,
/// `SCRIPTORIUM_NATS_USER` and `SCRIPTORIUM_NATS_PASSWORD`) or the URL, never from a flag that
/// `ps` would show.
#[derive(clap::Args, Debug)]
struct NatsAuthArgs {
    /// NATS credentials file (`.creds`, as `nsc` writes them).
    #[arg(long, global = true, env = "SCRIPTORIUM_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// File holding an NKey seed.
    #[arg(long, global = true, env = "SCRIPTORIUM_NATS_NKEY")]
    nats_nkey: Option<PathBuf>,
    /// CA certificate(s) (PEM) to check the NATS server's certificate against (implies TLS).
    #[arg(long, global = true, env = "SCRIPTORIUM_NATS_CA")]
    nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that verify clients (with --nats-key).
    #[arg(long, global = true, env = "SCRIPTORIUM_NATS_CERT", requires = "nats_key")]
    nats_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "SCRIPTORIUM_NATS_KEY", requires = "nats_cert")]
    nats_key: Option<PathBuf>,
    /// Require TLS with `nats://` URLs too (`tls://` URLs always do).
    #[arg(long, global = true, env = "SCRIPTORIUM_NATS_TLS")]
    nats_tls: bool,
}

impl NatsAuthArgs {
    /// The flags over what the environment says (token, user and password come only from it).
    fn resolve(self) -> scriptorium_proto::transport::NatsAuth {
        let env = scriptorium_proto::transport::NatsAuth::from_env();
        scriptorium_proto::transport::NatsAuth {
            creds_file: self.nats_creds,
            nkey_file: self.nats_nkey,
            ca_file: self.nats_ca,
            cert_file: self.nats_cert,
            key_file: self.nats_key,
            require_tls: self.nats_tls || env.require_tls,
            ..env
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Options of the `queues` and `workers` views.
#[derive(clap::Args, Debug)]
struct ViewArgs {
    /// NATS server URL.
    #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Refresh until interrupted.
    #[arg(long)]
    watch: bool,
    /// Print JSON (one line per refresh with --watch).
    #[arg(long)]
    json: bool,
    /// Seconds between refreshes (for `queues` without --watch: the window steps per minute
    /// are measured over).
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
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
        /// Model provider (sim, embedded, openai, anthropic, ollama, llamacpp, vllm, openrouter, deepseek, mistral).
        #[arg(long, requires = "model")]
        provider: Option<String>,
        /// Model name at the provider (for `embedded`: a GGUF file, or a name its config gives).
        #[arg(long, requires = "provider")]
        model: Option<String>,
        /// Do not use the response cache.
        #[arg(long)]
        no_cache: bool,
        /// Approve every approval gate of the briefs (`approve = [...]`) without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Run the coordinator over NATS until SIGINT/SIGTERM.
    Coordinator {
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Output directory for finished books.
        #[arg(long, env = "SCRIPTORIUM_OUT")]
        out: Option<PathBuf>,
        /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9090).
        #[arg(long, env = "SCRIPTORIUM_METRICS_ADDR")]
        metrics_addr: Option<SocketAddr>,
        /// Serve the live dashboard on this address (may equal --metrics-addr).
        #[arg(long, env = "SCRIPTORIUM_HTTP_ADDR")]
        http_addr: Option<SocketAddr>,
    },
    /// Run a worker process over NATS until SIGINT/SIGTERM.
    Worker {
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Pool size per agent kind, as KIND=SIZE (kinds: all, concept, outline, characters, world, chapter, review, edit).
        #[arg(long = "pool", env = "SCRIPTORIUM_POOLS", value_delimiter = ',')]
        pools: Vec<String>,
        /// Worker id (default: generated).
        #[arg(long, env = "SCRIPTORIUM_WORKER_ID")]
        id: Option<String>,
        /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9091).
        #[arg(long, env = "SCRIPTORIUM_METRICS_ADDR")]
        metrics_addr: Option<SocketAddr>,
    },
    /// Submit briefs to the coordinators; prints one book id per line.
    ///
    /// Every brief is checked (its routes against the known providers too) before anything is
    /// enqueued. Says on stderr when no coordinator is alive: the books wait in the queue and
    /// are taken when one starts.
    Submit {
        /// Brief files (TOML).
        #[arg(required = true)]
        briefs: Vec<PathBuf>,
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Books per brief (seeds count up from --seed).
        #[arg(long, default_value_t = 1)]
        books: u32,
        /// Seed of the first book.
        #[arg(long)]
        seed: Option<u64>,
        /// Number of chapters (overrides the briefs).
        #[arg(long)]
        chapters: Option<u32>,
        /// Wait until every book is finished: exit 0 when all are done, 1 otherwise.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 2).
        #[arg(long)]
        timeout: Option<u64>,
        /// `priority` (admitted before normal books, its steps taken first) or `normal`;
        /// overrides the briefs' `priority`.
        #[arg(long)]
        priority: Option<String>,
    },
    /// Benchmark: steps per second over real NATS beside raw JetStream round trips.
    Bench(app::bench::BenchArgs),
    /// Tokens per book: the fantasy briefs through the HTTP provider against an in-process
    /// sim server with a small context window, beside the original tool's figures.
    BenchTokens {
        /// Brief files (default: examples/fantasy.toml and examples/fantasy-8.toml).
        briefs: Vec<PathBuf>,
        /// Context window of the sim server, in tokens.
        #[arg(long, default_value_t = 4096)]
        context_window: u64,
    },
    /// Serve the simulated model over an OpenAI-compatible HTTP API, with fault injection.
    ///
    /// Prints the bound address on the first line of stdout (use port 0 for a free port).
    SimServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        addr: String,
        /// Fixed latency of each answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Extra random latency up to this many milliseconds.
        #[arg(long, default_value_t = 0)]
        jitter_ms: u64,
        /// Seed of the fault and latency draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Share of answers that deliberately break a validation rule.
        #[arg(long, default_value_t = 0.0)]
        bad_rate: f64,
        /// Share of requests answered 429 (with Retry-After).
        #[arg(long, default_value_t = 0.0)]
        rate_429: f64,
        /// Retry-After seconds of 429 answers (0: no header).
        #[arg(long, default_value_t = 1)]
        retry_after: u64,
        /// Share of requests answered 500.
        #[arg(long, default_value_t = 0.0)]
        rate_500: f64,
        /// Share of requests that hang for --hang-secs.
        #[arg(long, default_value_t = 0.0)]
        rate_hang: f64,
        /// Seconds a hanging request waits.
        #[arg(long, default_value_t = 600)]
        hang_secs: u64,
        /// Share of answers that hold no readable JSON.
        #[arg(long, default_value_t = 0.0)]
        rate_malformed: f64,
        /// Share of answers cut in half with finish_reason "length".
        #[arg(long, default_value_t = 0.0)]
        rate_truncated: f64,
        /// Refuse response_format json_schema (like servers without it).
        #[arg(long)]
        reject_response_format: bool,
        /// Refuse response_format json_object too.
        #[arg(long)]
        reject_json_object: bool,
        /// Refuse response_format json_schema as llama-cpp-python does (HTTP 500).
        #[arg(long)]
        like_llama_cpp_python: bool,
        /// Fail the first N requests with --fail-status.
        #[arg(long, default_value_t = 0)]
        fail_first: usize,
        /// Status of the --fail-first failures.
        #[arg(long, default_value_t = 503)]
        fail_status: u16,
        /// Faults of the first requests, in order (ok, hang, malformed, truncated, prose, STATUS).
        #[arg(long, value_delimiter = ',')]
        script: Vec<scriptorium_sim::server::Fault>,
        /// The key clients must send; others get 401.
        #[arg(long)]
        require_key: Option<String>,
        /// Echo request headers in error bodies (to test redaction).
        #[arg(long)]
        echo_headers: bool,
        /// Context window in tokens, as llama.cpp's server has (a larger prompt gets its 400).
        #[arg(long)]
        context_window: Option<u64>,
        /// The first outline answers break the bounds, in order (chapters, scenes).
        #[arg(long, value_delimiter = ',')]
        overgrow: Vec<scriptorium_sim::server::Overgrow>,
        /// Mistakes the first attempt of a chapter makes (rename, resurrect, repeat, meta, short).
        #[arg(long, value_delimiter = ',')]
        mistakes: Vec<scriptorium_contracts::mistake::Mistake>,
        /// Share of chapters whose first attempt makes one of --mistakes.
        #[arg(long, default_value_t = 1.0)]
        mistake_rate: f64,
    },
    /// Show the step queues: waiting, in flight, redelivered, dead-lettered, oldest waiting
    /// age, workers consuming and steps per minute, per agent kind.
    Queues {
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Show worker processes: pools, steps done, current steps, last heartbeat (lost when stale).
    #[command(mut_arg("interval", |a| a.help("Seconds between refreshes with --watch")))]
    Workers {
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Put a failed book back (its failed steps run again), or re-run one step of a book.
    Retry {
        /// Book id.
        book: String,
        /// Only this step (and what depends on it).
        #[arg(long)]
        step: Option<String>,
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Wait until the book is done (exit 0) or failed (exit 1).
        #[arg(long)]
        wait: bool,
    },
    /// List dead letters (messages given up, with the reason), purge them or replay one.
    DeadLetters {
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Print JSON.
        #[arg(long, conflicts_with_all = ["purge", "replay"])]
        json: bool,
        /// Remove the dead letters (of --queue only, when given).
        #[arg(long, conflicts_with = "replay")]
        purge: bool,
        /// With --purge: only this queue's (an agent kind, results or submit).
        #[arg(long, requires = "purge", value_parser = app::dead_letters::check_queue)]
        queue: Option<String>,
        /// Put dead letter SEQ back on the queue it came from, with its original payload
        /// (refused, with the reason, when it would be given up again or nothing waits for it).
        #[arg(long, value_name = "SEQ")]
        replay: Option<u64>,
    },
    /// Print the quality report of a written book (length scores, repeats, leaks, names,
    /// continuity); exit 1 when a hard rule fails. Works on books of any version.
    Check {
        /// The book's directory (holding book.json, manuscript.md or chapters/).
        dir: PathBuf,
        /// Print the report as JSON (the shape of quality.json).
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a done book's EPUB (`book.epub`) or Markdown manuscript (`manuscript.md`).
    Export {
        /// The book's directory (holding book.json), or a book id in the NATS books bucket.
        book: String,
        /// What to write.
        #[arg(long, value_enum)]
        format: app::export::Format,
        /// Directory to write into (default: the book's directory; for a book id, the
        /// current directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// NATS server URL (for a book id).
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
    },
    /// Show books (all, or one in detail with what operators did to it) and whether a
    /// coordinator is alive, with the submissions waiting for one.
    Status {
        /// Book id.
        book: Option<String>,
        /// NATS server URL.
        #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// Print JSON (one line per refresh with --watch).
        #[arg(long)]
        json: bool,
        /// Only the books in this state (queued, running, awaiting_approval, paused, done,
        /// failed, cancelled).
        #[arg(long, conflicts_with = "book", value_parser = app::status::parse_state)]
        state: Option<scriptorium_coordinator::record::Status>,
        /// Refresh until interrupted.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
    },
    /// Local model files for the embedded provider.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    #[command(flatten)]
    Operate(app::operate::Operate),
}

#[derive(Subcommand, Debug)]
enum ModelAction {
    /// Download a GGUF file (a known name, or a URL such as a Hugging Face `resolve` link):
    /// resumes a partial download, checks the SHA-256, prints the file's path on stdout.
    Fetch {
        /// `smollm2`, or an http(s) URL of a .gguf file.
        what: String,
        /// Directory to write into (default: ~/.cache/scriptorium/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The file's SHA-256 (hex); without it, the one the server gives in its ETag.
        #[arg(long)]
        sha256: Option<String>,
    },
}

/// `--interval`, checked.
fn interval(secs: f64) -> anyhow::Result<Duration> {
    if !(0.1..=3600.0).contains(&secs) {
        anyhow::bail!("--interval: must be between 0.1 and 3600 seconds (got {secs})");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn view_options(cfg: &AppConfig, v: ViewArgs) -> anyhow::Result<app::queues::ViewOptions> {
    let ViewArgs { nats, watch, json, interval } = v;
    let interval = self::interval(interval)?;
    Ok(app::queues::ViewOptions { nats, watch, json, interval, lost_after: cfg.lost_after() })
}

fn init_logs(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| scriptorium_worker::redact::RedactingWriter(std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The default action of SIGPIPE (end the process), which Rust's runtime sets to "ignore" before
/// `main`. Only for the commands that print and exit: the long-running processes keep it
/// ignored, so a peer that goes away is an error they handle.
#[cfg(unix)]
fn restore_sigpipe() {
    // SAFETY: `signal` with `SIG_DFL` only changes the process's action for SIGPIPE; it is
    // called from `main` before the runtime or any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}

fn main() -> ExitCode {
    app::allocator::configure();
    let cli = Cli::parse();
    // Before any thread exists: read .env into the environment (keys live only there).
    scriptorium_worker::dotenv::load(std::path::Path::new(".env"));
    let default_log = match cli.command {
        Command::Write { .. }
        | Command::Submit { .. }
        | Command::Status { .. }
        | Command::Queues { .. }
        | Command::Workers { .. }
        | Command::Bench { .. }
        | Command::BenchTokens { .. }
        | Command::Retry { .. }
        | Command::Check { .. }
        | Command::Export { .. }
        | Command::DeadLetters { .. }
        | Command::Model { .. }
        | Command::Operate(_) => "warn",
        _ => "info",
    };
    if default_log == "warn" {
        // Before any thread exists: a command that prints and exits stops quietly when its
        // reader goes away (`scriptorium status --json | head`), as other command-line tools do,
        // instead of panicking at its next line.
        restore_sigpipe();
    }
    init_logs(cli.log_format, default_log);
    let cfg = match AppConfig::load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {}", scriptorium_worker::redact::redact(&format!("{e:#}")));
            return ExitCode::from(2);
        }
    };
    // Before any thread exists: the embedded model's threads are read from the environment.
    app::model::set_threads(&cfg);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, cfg)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", scriptorium_worker::redact::redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli, cfg: AppConfig) -> anyhow::Result<u8> {
    app::set_nats_auth(cli.nats_auth.resolve());
    match cli.command {
        Command::Write { briefs, out, books, seed, chapters, provider, model, no_cache, yes } => {
            let route = provider.zip(model).map(|(p, m)| format!("{p}/{m}"));
            let opts = WriteOptions { briefs, out, books, seed, chapters, route, no_cache, yes };
            let records = app::write(cfg, opts).await?;
            Ok(app::exit_code(&records) as u8)
        }
        Command::Coordinator { nats, out, metrics_addr, http_addr } => {
            // From the environment only: a flag would show in `ps`.
            let token = std::env::var("SCRIPTORIUM_HTTP_TOKEN").ok();
            let endpoints = app::http::HttpOptions { metrics_addr, http_addr, token };
            app::run_coordinator(&nats, cfg, out, &endpoints).await.map(|_| 0)
        }
        Command::Worker { nats, pools, id, metrics_addr } => {
            app::run_worker(&nats, cfg, id, &pools, metrics_addr).await.map(|_| 0)
        }
        Command::Queues { view } => {
            let opts = view_options(&cfg, view)?;
            app::queues::run_queues(opts).await.map(|_| 0)
        }
        Command::Workers { view } => {
            let opts = view_options(&cfg, view)?;
            app::queues::run_workers(opts).await.map(|_| 0)
        }
        Command::Submit { briefs, nats, books, seed, chapters, wait, timeout, priority } => {
            let timeout = timeout.map(Duration::from_secs);
            let opts =
                app::SubmitOptions { briefs, books, seed, chapters, wait, timeout, priority };
            match app::submit(&cfg, &nats, opts).await? {
                Some(records) => Ok(app::exit_code(&records) as u8),
                None => Ok(0),
            }
        }
        Command::Bench(args) => app::bench::run(cfg, args.options()?).await.map(|_| 0),
        Command::BenchTokens { briefs, context_window } => {
            let opts = app::tokens::TokenBenchOptions { briefs, context_window };
            app::tokens::run(cfg, opts).await.map(|_| 0)
        }
        Command::SimServer {
            addr,
            latency_ms,
            jitter_ms,
            seed,
            bad_rate,
            rate_429,
            retry_after,
            rate_500,
            rate_hang,
            hang_secs,
            rate_malformed,
            rate_truncated,
            reject_response_format,
            reject_json_object,
            like_llama_cpp_python,
            fail_first,
            fail_status,
            script,
            require_key,
            echo_headers,
            context_window,
            overgrow,
            mistakes,
            mistake_rate,
        } => {
            use scriptorium_sim::server::{
                self as sim_server, Fault, RejectFormat, SimServerConfig,
            };
            let reject = match (reject_response_format, reject_json_object) {
                _ if like_llama_cpp_python => RejectFormat::LikeLlamaCppPython,
                (_, true) => RejectFormat::Any,
                (true, false) => RejectFormat::JsonSchema,
                (false, false) => RejectFormat::None,
            };
            let mut faults = vec![Fault::Status(fail_status); fail_first];
            faults.extend(script);
            let cfg = SimServerConfig {
                latency_ms,
                jitter_ms,
                seed,
                bad_rate,
                rate_429,
                rate_500,
                rate_hang,
                rate_malformed,
                rate_truncated,
                retry_after_secs: retry_after,
                hang_secs,
                script: faults,
                reject_response_format: reject,
                require_key,
                echo_headers,
                context_window,
                overgrow,
                mistakes: scriptorium_contracts::mistake::Mistakes::new(&mistakes, mistake_rate),
            };
            sim_server::run(&addr, cfg).await.map(|_| 0)
        }
        Command::Retry { book, step, nats, wait } => {
            match app::retry(&nats, &book, step.as_deref(), wait).await? {
                Some(rec) => Ok(app::exit_code(std::slice::from_ref(&rec)) as u8),
                None => Ok(0),
            }
        }
        Command::DeadLetters { nats, json, purge, queue, replay } => {
            use app::dead_letters::DeadLettersAction as A;
            let action = match (purge, replay) {
                (true, _) => A::Purge { queue },
                (false, Some(seq)) => A::Replay { seq },
                (false, None) => A::List { json },
            };
            app::dead_letters::run(&nats, action).await.map(|_| 0)
        }
        Command::Operate(op) => app::operate::run(op).await,
        Command::Model { action: ModelAction::Fetch { what, dir, sha256 } } => {
            let dir = dir.unwrap_or_else(app::fetch::default_dir);
            let path = app::fetch::fetch(app::fetch::FetchOptions { what, dir, sha256 }).await?;
            println!("{}", path.display());
            Ok(0)
        }
        Command::Check { dir, json } => app::check(&dir, json),
        Command::Export { book, format, out, nats } => {
            let path = app::export::export(&book, format, out, &nats).await?;
            println!("{}", path.display());
            Ok(0)
        }
        Command::Status { book, nats, json, state, watch, interval } => {
            let interval = self::interval(interval)?;
            let opts = app::status::StatusOptions { nats, book, state, json, watch, interval };
            app::status::run(opts).await.map(|_| 0)
        }
    }
}

/// The binary's built-in simulated model, for providers of the `sim` protocol.
fn sim_model(
    cfg: &scriptorium_worker::providers::SimConfig,
) -> std::sync::Arc<dyn scriptorium_worker::providers::LocalModel> {
    std::sync::Arc::new(scriptorium_sim::SimModel::new(scriptorium_sim::SimSettings {
        latency_ms: cfg.latency_ms,
        jitter_ms: cfg.jitter_ms,
        bad_rate: cfg.bad_rate,
        mistakes: scriptorium_contracts::mistake::Mistakes::new(
            &cfg.mistakes,
            cfg.mistake_rate.unwrap_or(1.0),
        ),
    }))
}
