//! The process modes behind the CLI: embedded `write`, `coordinator`, `worker`, `submit`,
//! `retry`, and the one configuration file they all read; `status`, `dead-letters`, the views
//! and the operators' commands have a file each.

pub mod allocator;
pub mod bench;
mod check;
mod connect;
pub mod dead_letters;
pub mod export;
pub mod fetch;
mod gates;
pub mod http;
pub mod model;
pub mod operate;
pub mod queues;
pub mod report;
pub mod status;
pub mod tokens;

pub(crate) use check::check;
pub use connect::{connect, connect_as, connect_tool, set_nats_auth};

use anyhow::Context as _;
use scriptorium_coordinator::record::{BookRecord, Status};
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, brief};
use scriptorium_coordinator::{client, heartbeat};
use scriptorium_proto::transport::Role;
use scriptorium_proto::v1::BookBrief;
use scriptorium_proto::{Bus, kind};
use scriptorium_worker::cache::CacheConfig;
use scriptorium_worker::providers::ModelsConfig;
use scriptorium_worker::{Worker, WorkerConfig};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
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
        let mut cfg =
            Self::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
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

    /// Parses the file's text; a syntax error or an unknown key names its line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| brief::line_col(text, s.start))
                .map_or_else(String::new, |(l, c)| format!(" at line {l}, column {c}"));
            format!("invalid TOML{at}: {}", e.message().trim())
        })
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
        scriptorium_worker::runtime::check_id(&id)?;
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

/// Loads briefs and applies command-line overrides, each checked against the routes of
/// `routes` when given ([`AppConfig::check_routes`]); fails before anything is enqueued.
pub fn load_briefs(
    paths: &[PathBuf],
    copies: u32,
    seed: Option<u64>,
    chapters: Option<u32>,
    routes: Option<&AppConfig>,
) -> anyhow::Result<Vec<BookBrief>> {
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
        if let Some(cfg) = routes {
            cfg.check_routes(&b).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        for i in 0..copies.max(1) {
            let mut copy = b.clone();
            copy.seed = b.seed.wrapping_add(u64::from(i));
            out.push(copy);
        }
    }
    Ok(out)
}

impl AppConfig {
    /// Every provider a route may name: the built-in ones and the file's `[models.providers]`.
    pub fn known_providers(&self) -> BTreeSet<String> {
        let mut known: BTreeSet<String> =
            scriptorium_worker::providers::builtin_providers().into_keys().collect();
        known.extend(self.models.providers.keys().cloned());
        known
    }

    /// Refuses a brief a route of which names a provider no known configuration has: its own
    /// `[models]` and `fallbacks`, then the coordinator's routes it falls back to (`routes.default`
    /// and `per_kind` for the kinds it names no model for, the fallbacks). Such a book would fail
    /// at its first step, and again at every retry.
    pub fn check_routes(&self, b: &BookBrief) -> Result<(), String> {
        let known = self.known_providers();
        let check = |field: &str, route: &str| check_provider(&known, field, route);
        for (kind, route) in &b.models {
            check(&format!("brief field `models.{kind}`"), route)?;
        }
        for (i, route) in b.fallbacks.iter().enumerate() {
            check(&format!("brief field `fallbacks[{i}]`"), route)?;
        }
        let routes = &self.coordinator.routes;
        for kind in kind::agents().map(kind::name) {
            if b.models.contains_key(kind) || b.models.contains_key("default") {
                continue;
            }
            match routes.per_kind.get(kind) {
                Some(r) => check(&format!("coordinator.routes.per_kind.{kind}"), r)?,
                None => check("coordinator.routes.default", &routes.default)?,
            }
            for (i, r) in routes.fallbacks_per_kind.get(kind).into_iter().flatten().enumerate() {
                check(&format!("coordinator.routes.fallbacks_per_kind.{kind}[{i}]"), r)?;
            }
        }
        for (i, r) in routes.fallbacks.iter().enumerate() {
            check(&format!("coordinator.routes.fallbacks[{i}]"), r)?;
        }
        Ok(())
    }
}

/// `Err` naming `field` when the provider of `route` is not among `known`.
fn check_provider(known: &BTreeSet<String>, field: &str, route: &str) -> Result<(), String> {
    let provider = route.split_once('/').map_or(route, |(p, _)| p).trim();
    if known.contains(provider) {
        return Ok(());
    }
    Err(format!(
        "{field}: provider {provider:?} is not configured (known: {}; a config file adds one as \
         [models.providers.{provider}])",
        known.iter().cloned().collect::<Vec<_>>().join(", ")
    ))
}

/// `scriptorium write`: coordinator and worker pools in this process on the in-process bus.
pub async fn write(mut cfg: AppConfig, opts: WriteOptions) -> anyhow::Result<Vec<BookRecord>> {
    if let Some(route) = &opts.route {
        let route = &model::name_file_route(&mut cfg, route)?;
        brief::check_route("--provider/--model", route).map_err(anyhow::Error::msg)?;
        check_provider(&cfg.known_providers(), "--provider", route).map_err(anyhow::Error::msg)?;
        cfg.coordinator.routes.default = route.clone();
    }
    let briefs = load_briefs(&opts.briefs, opts.books, opts.seed, opts.chapters, Some(&cfg))?;
    let gated = briefs.iter().any(|b| !b.approve.is_empty());
    if gated && !opts.yes && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!(
            "brief field `approve`: the book waits for your approval at its gates, and nobody is at a terminal to give it: run `write` in a terminal, or pass --yes to approve everything"
        );
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
    let mut wcfg = cfg.worker_config("embedded".into(), &[])?;
    let held = model::load(&cfg, &model::routes(&cfg, &briefs)).await?;
    model::hold(&mut wcfg, held, false);
    let worker = Worker::start(bus.clone(), wcfg).await?;
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
    report::real_prose_hint(&records);
    Ok(records)
}

pub use scriptorium_common::ops::{StopListener, stop_listener};

/// `scriptorium coordinator`: runs until SIGINT/SIGTERM.
pub async fn run_coordinator(
    url: &str,
    mut cfg: AppConfig,
    out: Option<PathBuf>,
    endpoints: &http::HttpOptions,
) -> anyhow::Result<()> {
    let mut stop = scriptorium_common::ops::stop_listener();
    if let Some(out) = out {
        cfg.coordinator.out_dir = out;
    }
    let servers = http::Servers::start(endpoints).await?;
    let bus = tokio::select! {
        bus = connect(url, "scriptorium-coordinator", &cfg) => bus?,
        _ = &mut stop => return Ok(()),
    };
    let handle = CoordinatorHandle::start(bus.clone(), cfg.coordinator.clone()).await?;
    let _monitor = servers.as_ref().map(|s| s.started(bus, cfg.lost_after()));
    stop.await;
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
    // A stop asked for while the worker starts (it may have written its heartbeat already) is
    // kept for after the start, so the shutdown below still runs.
    let mut stop = scriptorium_common::ops::stop_listener();
    let id = id.unwrap_or_else(|| format!("worker-{}", scriptorium_proto::clock::new_id()));
    let mut wcfg = cfg.worker_config(id, pools)?;
    let held = model::load(&cfg, &[]).await?;
    model::hold(&mut wcfg, held, !pools.is_empty() || !cfg.worker.pools.is_empty());
    let health = scriptorium_common::ops::Health::new();
    if let Some(addr) = metrics_addr {
        let metrics = scriptorium_worker::metrics::install();
        let router = scriptorium_common::ops::router(health.clone(), metrics);
        scriptorium_common::ops::serve(addr, router).await?;
    }
    // Waiting for NATS ends at a stop; from the id's claim on, the start runs to its end.
    let name = format!("scriptorium-{}", wcfg.id);
    let bus = tokio::select! {
        bus = connect_as(url, &name, &cfg, Role::Worker) => bus?,
        _ = &mut stop => return Ok(()),
    };
    let worker = Worker::start(bus.clone(), wcfg).await?;
    health.started(bus);
    stop.await;
    tracing::info!("stopping worker");
    worker.shutdown(Duration::from_secs(cfg.worker.shutdown_grace_secs)).await;
    Ok(())
}

/// Options of `scriptorium submit`.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Brief files.
    pub briefs: Vec<PathBuf>,
    /// Books per brief (seeds count up from `seed`).
    pub books: u32,
    /// Seed of the first book of each brief.
    pub seed: Option<u64>,
    /// Chapter count override.
    pub chapters: Option<u32>,
    /// Wait until every book is finished.
    pub wait: bool,
    /// With `wait`: give up after this long.
    pub timeout: Option<Duration>,
    /// Priority override (`normal` or `priority`).
    pub priority: Option<String>,
}

/// `scriptorium submit`: enqueues every brief (`books` times each), printing one book id a line;
/// with `wait`, returns their final records. Every brief is checked, its routes included,
/// before anything is enqueued. Says on stderr when no coordinator is alive to take them.
pub async fn submit(
    cfg: &AppConfig,
    url: &str,
    opts: SubmitOptions,
) -> anyhow::Result<Option<Vec<BookRecord>>> {
    let mut briefs = load_briefs(&opts.briefs, opts.books, opts.seed, opts.chapters, Some(cfg))?;
    if let Some(p) = &opts.priority {
        for b in &mut briefs {
            b.priority = p.clone();
            brief::revalidate(b).map_err(|e| anyhow::anyhow!("--priority: {}", e.rule))?;
        }
    }
    let bus = connect_tool(url, "scriptorium-submit").await?;
    let mut ids = Vec::with_capacity(briefs.len());
    for brief in briefs {
        let id = client::submit(&bus, brief).await?;
        println!("{id}");
        ids.push(id);
    }
    // Enqueued whatever comes next: a heartbeat that cannot be read is no reason to fail.
    let alive = match heartbeat::liveness(&bus).await {
        Ok(live) if !live.alive => {
            eprintln!("{}", no_coordinator(&live));
            false
        }
        _ => true,
    };
    if !opts.wait {
        return Ok(None);
    }
    let mut progress = report::Progress::new(ids.len());
    let waited = tokio::select! {
        r = client::wait(&bus, &ids, opts.timeout, |ev| progress.on_event(ev)) => r,
        never = follow_coordinator(&bus, alive) => match never {},
    };
    let records = match waited {
        Ok(r) => r,
        Err(e) => match heartbeat::liveness(&bus).await {
            Ok(live) if !live.alive => return Err(e.context(no_coordinator(&live))),
            _ => return Err(e),
        },
    };
    report::print_summary(&records);
    Ok(Some(records))
}

/// What to say when no coordinator is alive.
fn no_coordinator(live: &heartbeat::Liveness) -> String {
    let waiting = live.submissions_waiting.map_or_else(String::new, |n| format!(" ({n} waiting)"));
    format!(
        "no coordinator is alive: what was submitted waits in the submit queue{waiting} and is \
         taken when one starts (`scriptorium coordinator`)"
    )
}

/// Says on stderr when a coordinator comes or goes, while a waiter waits; never returns.
async fn follow_coordinator(bus: &Bus, mut alive: bool) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(heartbeat::EVERY).await;
        let Ok(live) = heartbeat::liveness(bus).await else { continue };
        if live.alive != alive {
            alive = live.alive;
            if alive {
                eprintln!("a coordinator is alive: the books are being taken");
            } else {
                eprintln!("{}", no_coordinator(&live));
            }
        }
    }
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
    if heartbeat::liveness(&bus).await.is_ok_and(|live| !live.alive) {
        eprintln!("no coordinator is alive: the retry waits for one (up to 30 s)");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_syntax_errors_and_unknown_keys_name_line_and_column() {
        let e =
            AppConfig::parse("[worker]\nheartbeat_secs = 2\nprogress_secs = = 1\n").unwrap_err();
        assert!(e.starts_with("invalid TOML at line 3, column 17:"), "{e}");
        let e = AppConfig::parse("[nats]\nreplicas = 1\n\n[coordinator]\nmax_atempts = 3\n")
            .unwrap_err();
        assert!(e.starts_with("invalid TOML at line 5, column 1:"), "{e}");
        assert!(e.contains("max_atempts"), "{e}");
        assert!(AppConfig::parse("[nats]\nreplicas = 3\n").is_ok());
    }

    fn brief(models: &[(&str, &str)], fallbacks: &[&str]) -> BookBrief {
        BookBrief {
            models: models.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_route_to_a_provider_no_configuration_has_is_refused_with_its_field() {
        let cfg = AppConfig::default();
        assert!(cfg.check_routes(&brief(&[], &[])).is_ok(), "sim/default is built in");
        assert!(cfg.check_routes(&brief(&[("chapter", "openai/gpt-4o")], &["ollama/x"])).is_ok());
        let e = cfg.check_routes(&brief(&[("default", "nosuchprovider/x")], &[])).unwrap_err();
        assert!(e.starts_with("brief field `models.default`: provider \"nosuchprovider\""), "{e}");
        assert!(e.contains("known: anthropic, deepseek,") && e.contains(", sim, vllm;"), "{e}");
        let e = cfg.check_routes(&brief(&[], &["sim/x", "ghost/y"])).unwrap_err();
        assert!(e.starts_with("brief field `fallbacks[1]`: provider \"ghost\""), "{e}");
        // The config file's providers are known, and its routes are checked where the brief
        // falls back to them.
        let mut cfg = AppConfig::parse(
            "[models.providers.ghost]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
             [coordinator.routes]\ndefault = \"ghost/m\"\nper_kind = { chapter = \"nope/m\" }\n",
        )
        .unwrap();
        assert!(
            cfg.check_routes(&brief(&[], &["ghost/y"])).is_err(),
            "chapter still routes to nope"
        );
        let e = cfg.check_routes(&brief(&[], &[])).unwrap_err();
        assert!(e.starts_with("coordinator.routes.per_kind.chapter: provider \"nope\""), "{e}");
        assert!(cfg.check_routes(&brief(&[("default", "ghost/m")], &[])).is_ok(), "brief wins");
        cfg.coordinator.routes.per_kind.clear();
        assert!(cfg.check_routes(&brief(&[], &[])).is_ok());
    }
}
