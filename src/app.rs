//! The process modes behind the CLI: embedded `write`, `coordinator`, `worker`, `submit`,
//! `status`, and the one configuration file they all read.

pub mod bench;
mod check;
pub mod export;
mod gates;
pub mod http;
pub mod operate;
pub mod queues;
pub mod report;
pub mod tokens;

pub(crate) use check::check;

use anyhow::Context as _;
use scriptorium_coordinator::client;
use scriptorium_coordinator::record::{BookRecord, Status};
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, brief};
use scriptorium_proto::transport::NatsOptions;
use scriptorium_proto::{Bus, kind};
use scriptorium_worker::cache::CacheConfig;
use scriptorium_worker::providers::ModelsConfig;
use scriptorium_worker::{Worker, WorkerConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Worker settings of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSection {
    /// Pool size per agent kind name.
    pub pools: BTreeMap<String, usize>,
    /// Directory of prompt template overrides.
    pub prompts_dir: Option<PathBuf>,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
    /// Seconds a stopping worker waits for its in-flight steps.
    pub shutdown_grace_secs: u64,
    /// Seconds a delivered step may go without any acknowledgement before JetStream
    /// redelivers it: how long a step of a worker that died waits for another worker. A
    /// running step is acknowledged in progress every `progress_secs`, so this bounds the
    /// silence of a live worker, not the length of a model call.
    pub ack_wait_secs: u64,
    /// Seconds between in-progress acknowledgements of a running step (below `ack_wait_secs`).
    pub progress_secs: u64,
    /// Deliveries of a step after which it is dead-lettered. Failures a worker survives are
    /// reported as results and counted by `coordinator.max_attempts`; only deliveries that
    /// ended with their worker dead or silent count here.
    pub max_deliver: u64,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            pools: BTreeMap::new(),
            prompts_dir: None,
            heartbeat_secs: 5,
            shutdown_grace_secs: 30,
            ack_wait_secs: 10,
            progress_secs: 3,
            max_deliver: 10,
        }
    }
}

/// NATS settings of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSection {
    /// Replicas of every stream, key-value bucket and consumer: 1 on a single server, 3 on a
    /// 3-node JetStream cluster (1 to 5, at most the cluster's size).
    pub replicas: usize,
}

impl Default for NatsSection {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// The configuration file (`scriptorium.toml`): every section optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Coordinator settings.
    pub coordinator: CoordinatorConfig,
    /// Worker settings.
    pub worker: WorkerSection,
    /// Model providers and the simulated model.
    pub models: ModelsConfig,
    /// The response cache.
    pub cache: CacheConfig,
    /// NATS JetStream.
    pub nats: NatsSection,
}

impl AppConfig {
    /// Reads the file at `path`, or the defaults without one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default().with_prices()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut cfg: AppConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config {}: {}", path.display(), e.message()))?;
        cfg.coordinator.validate().map_err(anyhow::Error::msg)?;
        cfg.models.validate().map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        if !(1..=5).contains(&cfg.nats.replicas) {
            anyhow::bail!(
                "config {}: nats.replicas: must be between 1 and 5 (got {})",
                path.display(),
                cfg.nats.replicas
            );
        }
        // `[cache] enabled = false` turns the cache off for the whole fleet.
        cfg.coordinator.cache &= cfg.cache.enabled;
        Ok(cfg.with_prices())
    }

    /// The configuration with the coordinator's route prices taken from the providers of
    /// `[models]` (built-in and configured), the prices workers charge: budgets reserve by them.
    pub fn with_prices(mut self) -> Self {
        use scriptorium_coordinator::config::RoutePrice;
        let mut providers = scriptorium_worker::providers::builtin_providers();
        providers.extend(self.models.providers.clone());
        let price = |p: scriptorium_worker::providers::Price| RoutePrice {
            input: p.input,
            output: p.output,
        };
        let prices = &mut self.coordinator.prices;
        for (name, provider) in &providers {
            for (model, p) in &provider.prices {
                prices.set(&format!("{name}/{model}"), price(*p));
            }
            if let Some(p) = provider.price {
                prices.set(&format!("{name}/*"), price(p));
            }
            if let Some(p) = provider.price_of(&provider.default_model) {
                prices.set(name, price(p));
            }
        }
        self
    }

    /// The worker settings with `pools` (`KIND=SIZE`) applied on top of the file's.
    pub fn worker_config(&self, id: String, pools: &[String]) -> anyhow::Result<WorkerConfig> {
        let mut cfg = WorkerConfig::new(id);
        cfg.prompts_dir = self.worker.prompts_dir.clone();
        cfg.models = self.models.clone();
        cfg.local_model = Some(crate::sim_model(&self.models.sim));
        cfg.heartbeat_every = Duration::from_secs(self.worker.heartbeat_secs.max(1));
        cfg.cache = self.cache.clone();
        cfg.max_deliver = self.worker.max_deliver;
        cfg.progress_every = Duration::from_secs(self.worker.progress_secs.max(1));
        if self.worker.progress_secs >= self.worker.ack_wait_secs {
            anyhow::bail!(
                "worker.progress_secs: must be below worker.ack_wait_secs ({} >= {})",
                self.worker.progress_secs,
                self.worker.ack_wait_secs
            );
        }
        if !(2..=1000).contains(&self.worker.max_deliver) {
            anyhow::bail!(
                "worker.max_deliver: must be between 2 and 1000 (got {})",
                self.worker.max_deliver
            );
        }
        let mut set = |k: &str, size: usize, field: &str| -> anyhow::Result<()> {
            let kinds: Vec<_> = if k == "all" {
                kind::agents().collect()
            } else {
                vec![kind::parse_agent(k).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{field}: unknown agent kind {k:?} (known: all, {})",
                        kind::agent_names()
                    )
                })?]
            };
            if size > 256 {
                anyhow::bail!("{field}: pool size must be at most 256 (got {size})");
            }
            for k in kinds {
                cfg.pools.insert(k, size);
            }
            Ok(())
        };
        for (k, size) in &self.worker.pools {
            set(k, *size, &format!("worker.pools.{k}"))?;
        }
        for p in pools {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--pool: expected KIND=SIZE (got {p:?})"))?;
            let size =
                v.parse().map_err(|_| anyhow::anyhow!("--pool {p}: size must be a number"))?;
            set(k.trim(), size, "--pool")?;
        }
        Ok(cfg)
    }
}

/// Options of `scriptorium write`.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Brief files.
    pub briefs: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Books per brief.
    pub books: u32,
    /// Seed of the first book (the next ones count up).
    pub seed: Option<u64>,
    /// Chapter count override.
    pub chapters: Option<u32>,
    /// Model route override (`provider/model`).
    pub route: Option<String>,
    /// Disable the response cache.
    pub no_cache: bool,
    /// Approve every approval gate without asking.
    pub yes: bool,
}

/// Loads briefs and applies command-line overrides; fails before anything is enqueued.
pub fn load_briefs(
    paths: &[PathBuf],
    copies: u32,
    seed: Option<u64>,
    chapters: Option<u32>,
) -> anyhow::Result<Vec<scriptorium_proto::v1::BookBrief>> {
    if paths.is_empty() {
        anyhow::bail!("no brief given: name at least one brief file (see examples/)");
    }
    let mut out = Vec::new();
    for path in paths {
        let mut b = brief::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(n) = chapters {
            b.chapters = n;
        }
        if let Some(s) = seed {
            b.seed = s;
        }
        brief::revalidate(&b).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for i in 0..copies.max(1) {
            let mut copy = b.clone();
            copy.seed = b.seed.wrapping_add(u64::from(i));
            out.push(copy);
        }
    }
    Ok(out)
}

/// `scriptorium write`: coordinator and worker pools in this process on the in-process bus.
pub async fn write(mut cfg: AppConfig, opts: WriteOptions) -> anyhow::Result<Vec<BookRecord>> {
    let briefs = load_briefs(&opts.briefs, opts.books, opts.seed, opts.chapters)?;
    let gated = briefs.iter().any(|b| !b.approve.is_empty());
    if gated && !opts.yes && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!(
            "brief field `approve`: the book waits for your approval at its gates, and nobody is at a terminal to give it: run `write` in a terminal, or pass --yes to approve everything"
        );
    }
    if let Some(route) = &opts.route {
        brief::check_route("--provider/--model", route).map_err(anyhow::Error::msg)?;
        cfg.coordinator.routes.default = route.clone();
    }
    cfg.coordinator.out_dir = opts.out.clone();
    cfg.coordinator.cache &= !opts.no_cache;
    // The shared cache tier of the embedded mode lives beside the books, so writing the same
    // brief and seed into the same directory again costs nothing.
    let bus = if cfg.coordinator.cache {
        Bus::memory_with_cache_file(opts.out.join(".cache").join("responses.jsonl"))
            .with_context(|| format!("opening the response cache in {}", opts.out.display()))?
    } else {
        Bus::memory()
    };
    let worker = Worker::start(bus.clone(), cfg.worker_config("embedded".into(), &[])?).await?;
    let coordinator = CoordinatorHandle::start(bus.clone(), cfg.coordinator.clone()).await?;
    let mut ids = Vec::new();
    for b in briefs {
        ids.push(client::submit(&bus, b).await?);
    }
    // A person answers the gates at the terminal: plain progress lines, no bars redrawn over
    // the question.
    let ask = gated && !opts.yes;
    let mut progress =
        if ask { report::Progress::lines(ids.len()) } else { report::Progress::new(ids.len()) };
    let wait = client::wait(&bus, &ids, None, |ev| progress.on_event(ev));
    let records = if gated {
        let gates = gates::answer(bus.clone(), ids.clone(), opts.yes);
        tokio::pin!(gates);
        tokio::select! {
            records = wait => records?,
            Err(e) = &mut gates => return Err(e),
        }
    } else {
        wait.await?
    };
    coordinator.shutdown().await;
    worker.shutdown(Duration::from_secs(1)).await;
    report::print_summary(&records);
    Ok(records)
}

/// Connects a tool (`submit`, `status`, `retry`, `dead-letters`): it creates what is missing
/// with the defaults but never changes the settings the coordinator and the workers run with
/// (as the `queues` and `workers` views do not).
pub async fn connect_tool(url: &str, name: &str) -> anyhow::Result<Bus> {
    let mut opts = nats_options(name, &AppConfig::default());
    opts.reconcile = scriptorium_proto::transport::Reconcile::Leave;
    Ok(Bus::connect(url, opts).await?)
}

/// Connects to NATS, retrying while the server comes up.
pub async fn connect(url: &str, name: &str, cfg: &AppConfig) -> anyhow::Result<Bus> {
    Ok(Bus::connect(url, nats_options(name, cfg)).await?)
}

fn nats_options(name: &str, cfg: &AppConfig) -> NatsOptions {
    let cache = &cfg.cache;
    NatsOptions {
        name: name.into(),
        steps: scriptorium_proto::transport::QueueSettings {
            ack_wait: Duration::from_secs(cfg.worker.ack_wait_secs.max(1)),
            max_deliver: i64::try_from(cfg.worker.max_deliver).unwrap_or(10),
            ..Default::default()
        },
        cache_ttl: Duration::from_secs(cache.shared_ttl_secs.max(1)),
        cache_max_bytes: i64::try_from(cache.shared_max_mb.saturating_mul(1 << 20))
            .unwrap_or(i64::MAX),
        lease_ttl: Duration::from_secs(cache.lease_secs.max(1)),
        replicas: cfg.nats.replicas,
        ..Default::default()
    }
}

pub use scriptorium_common::ops::stop_signal;

/// `scriptorium coordinator`: runs until SIGINT/SIGTERM.
pub async fn run_coordinator(
    url: &str,
    mut cfg: AppConfig,
    out: Option<PathBuf>,
    endpoints: &http::HttpOptions,
) -> anyhow::Result<()> {
    if let Some(out) = out {
        cfg.coordinator.out_dir = out;
    }
    let servers = http::Servers::start(endpoints).await?;
    let bus = connect(url, "scriptorium-coordinator", &cfg).await?;
    let handle = CoordinatorHandle::start(bus.clone(), cfg.coordinator.clone()).await?;
    let _monitor = servers.as_ref().map(|s| s.started(bus, cfg.lost_after()));
    stop_signal().await;
    tracing::info!("stopping coordinator");
    handle.shutdown().await;
    Ok(())
}

/// `scriptorium worker`: runs until SIGINT/SIGTERM, then drains within the grace period.
pub async fn run_worker(
    url: &str,
    cfg: AppConfig,
    id: Option<String>,
    pools: &[String],
    metrics_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let id = id.unwrap_or_else(|| format!("worker-{}", scriptorium_proto::clock::new_id()));
    let wcfg = cfg.worker_config(id, pools)?;
    let health = scriptorium_common::ops::Health::new();
    if let Some(addr) = metrics_addr {
        let metrics = scriptorium_worker::metrics::install();
        let router = scriptorium_common::ops::router(health.clone(), metrics);
        scriptorium_common::ops::serve(addr, router).await?;
    }
    let bus = connect(url, &format!("scriptorium-{}", wcfg.id), &cfg).await?;
    let worker = Worker::start(bus.clone(), wcfg).await?;
    health.started(bus);
    stop_signal().await;
    tracing::info!("stopping worker");
    worker.shutdown(Duration::from_secs(cfg.worker.shutdown_grace_secs)).await;
    Ok(())
}

/// `scriptorium submit`: enqueues one brief; with `wait`, returns its final record.
pub async fn submit(
    url: &str,
    path: &Path,
    seed: Option<u64>,
    chapters: Option<u32>,
    wait: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<Option<BookRecord>> {
    let brief = load_briefs(&[path.to_path_buf()], 1, seed, chapters)?.remove(0);
    let bus = connect_tool(url, "scriptorium-submit").await?;
    let id = client::submit(&bus, brief).await?;
    println!("{id}");
    if !wait {
        return Ok(None);
    }
    let mut progress = report::Progress::new(1);
    let rec = client::wait(&bus, std::slice::from_ref(&id), timeout, |ev| progress.on_event(ev))
        .await?
        .remove(0);
    report::print_summary(std::slice::from_ref(&rec));
    Ok(Some(rec))
}

/// `scriptorium status`: prints books (or one book in detail), as a table or JSON.
pub async fn status(url: &str, book: Option<&str>, json: bool) -> anyhow::Result<()> {
    let bus = connect_tool(url, "scriptorium-status").await?;
    match book {
        Some(id) => {
            let rec = client::load(&bus, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no book with id {id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report::book_json(&rec))?);
            } else {
                print!("{}", report::book_detail(&rec));
            }
        }
        None => {
            let recs = client::list(&bus).await?;
            if json {
                let all: Vec<_> = recs.iter().map(report::book_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", report::book_table(&recs));
            }
        }
    }
    Ok(())
}

/// Exit code for a set of finished books: 0 when all are done.
pub fn exit_code(records: &[BookRecord]) -> i32 {
    if records.iter().all(|r| r.state == Status::Done) { 0 } else { 1 }
}

/// `scriptorium retry`: puts a failed book (or one step of a book) back.
pub async fn retry(
    url: &str,
    book: &str,
    step: Option<&str>,
    wait: bool,
) -> anyhow::Result<Option<BookRecord>> {
    let bus = connect_tool(url, "scriptorium-retry").await?;
    let id = client::retry(&bus, book, step).await?;
    // Applied (the book runs again) or refused, as the coordinator recorded it.
    let done = client::outcome(&bus, book, &id, Duration::from_secs(30)).await?;
    if !done.refused.is_empty() {
        anyhow::bail!("retry refused: {}", done.refused);
    }
    println!("{book}");
    if !wait {
        return Ok(None);
    }
    let mut progress = report::Progress::new(1);
    let rec =
        client::wait(&bus, &[book.to_string()], None, |ev| progress.on_event(ev)).await?.remove(0);
    report::print_summary(std::slice::from_ref(&rec));
    Ok(Some(rec))
}

/// `scriptorium dead-letters`: what was given up, and why.
pub async fn dead_letters(url: &str, json: bool) -> anyhow::Result<()> {
    use scriptorium_proto::prost::Message as _;
    let bus = connect_tool(url, "scriptorium-dead-letters").await?;
    let letters = bus.dead_letters().await?;
    let rows: Vec<serde_json::Value> = letters
        .iter()
        .map(|d| {
            let task = scriptorium_proto::v1::StepTask::decode(d.payload.clone()).ok();
            serde_json::json!({
                "seq": d.seq,
                "queue": d.queue,
                "reason": d.reason,
                "bytes": d.payload.len(),
                "book_id": task.as_ref().map(|t| t.book_id.clone()),
                "step_id": task.as_ref().map(|t| t.step_id.clone()),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("(no dead letters)");
    } else {
        println!("{:>6} {:<12} {:<16} {:<12} REASON", "SEQ", "QUEUE", "BOOK", "STEP");
        for r in &rows {
            println!(
                "{:>6} {:<12} {:<16} {:<12} {}",
                r["seq"],
                r["queue"].as_str().unwrap_or(""),
                r["book_id"].as_str().unwrap_or("-"),
                r["step_id"].as_str().unwrap_or("-"),
                r["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
