//! `scriptorium bench`: steps per second through coordinator and workers over real NATS with a
//! zero-latency simulated model, beside raw JetStream round trips measured in the same run.
//!
//! The raw baseline ([`Bus::raw_round_trips`]) does what one step costs at the transport level
//! and nothing else: publish a step to a work-queue stream, pull it, publish a result to a
//! second stream, pull that, and acknowledge both. Scriptorium adds decoding, prompt rendering,
//! the simulated model, validation and a KV write of the book record per accepted step.

use super::{AppConfig, connect};
use anyhow::Context as _;
use scriptorium_coordinator::record::BookRecord;
use scriptorium_coordinator::{CoordinatorHandle, client};
use scriptorium_proto::Bus;
use scriptorium_proto::v1::BookBrief;
use scriptorium_worker::Worker;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of the benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// NATS URL; `None` starts a private nats-server on a free port.
    pub nats: Option<String>,
    /// Books written in parallel for the throughput figure.
    pub books: u32,
    /// Chapters per book.
    pub chapters: u32,
    /// Books written one at a time for the unloaded latency figure.
    pub latency_books: u32,
    /// Messages in flight in the raw baseline.
    pub concurrency: usize,
    /// Books written twice for the cache figure (0 skips it).
    pub cache_books: u32,
}

/// A private nats-server for one run without `--nats`: JetStream on a free loopback port with a
/// temporary store, killed on drop.
///
/// Not the tests' launcher (`scriptorium-test-support`, which no product crate depends on): the
/// bench needs no config file, cluster, restart or health endpoint. It waits for the client port
/// to accept connections (a single server enables JetStream before that), and `Bus::connect`
/// retries whatever is not ready yet.
struct PrivateNats {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl PrivateNats {
    async fn start() -> anyhow::Result<Self> {
        let store = tempfile::Builder::new()
            .prefix("scriptorium-bench-nats-")
            .tempdir()
            .context("creating a store for the private nats-server")?;
        // Free now; another process taking it before the server does shows as a failed connect.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for the private nats-server")?
            .port();
        let spawn = |binary: &str| {
            Command::new(binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(store.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        // Debian and Ubuntu install it in /usr/sbin, which a user's PATH often lacks.
        let child = spawn("nats-server")
            .or_else(|_| spawn("/usr/sbin/nats-server"))
            .context("starting nats-server (install the nats-server package, or pass --nats)")?;
        let mut server = Self { child, url: format!("nats://127.0.0.1:{port}"), _store: store };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("the private nats-server exited while starting ({status})");
            }
            if started.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("the private nats-server took over 30 s to open port {port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench_brief(chapters: u32, seed: u64) -> BookBrief {
    BookBrief {
        project: "bench".into(),
        title: "Bench".into(),
        category: "fiction".into(),
        genre: "fantasy".into(),
        language: "English".into(),
        description: "A benchmark book.".into(),
        length: "short".into(),
        chapters,
        words_per_chapter: 120,
        characters: 2,
        worldbuilding: true,
        review_mode: "ai".into(),
        tone: "plain".into(),
        audience: "machines".into(),
        author: "Bench".into(),
        seed,
        ..Default::default()
    }
}

async fn write_books(bus: &Bus, briefs: Vec<BookBrief>) -> anyhow::Result<Vec<BookRecord>> {
    let mut ids = Vec::new();
    for b in briefs {
        ids.push(client::submit(bus, b).await?);
    }
    let recs = client::wait(bus, &ids, Some(Duration::from_secs(600)), |_| {}).await?;
    if let Some(failed) = recs.iter().find(|r| r.failure.is_some()) {
        anyhow::bail!("bench book {} failed: {:?}", failed.id, failed.failure);
    }
    Ok(recs)
}

/// Runs the benchmark and prints its figures.
pub async fn run(cfg: AppConfig, opts: BenchOptions) -> anyhow::Result<()> {
    let (_server, url) = match &opts.nats {
        Some(u) => (None, u.clone()),
        None => {
            let server = PrivateNats::start().await?;
            let url = server.url.clone();
            (Some(server), url)
        }
    };
    let out = tempfile::tempdir()?;
    let mut cfg = cfg;
    cfg.models.sim = Default::default();
    cfg.coordinator.out_dir = PathBuf::from(out.path());
    cfg.coordinator.cache = false;
    let steps_per_book = 4 + 3 * opts.chapters as usize;
    let total_steps = steps_per_book * opts.books as usize;
    println!(
        "scriptorium bench: NATS {url}, zero-latency sim model, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    let raw_bus = connect(&url, "bench-raw", &cfg).await?;
    let raw = raw_bus.raw_round_trips(total_steps, opts.concurrency).await?;
    let (raw_rate, raw_p50) = (raw.per_sec, raw.p50_us);
    println!(
        "raw JetStream round trip (publish step, pull, publish result, pull, ack both; 2 KiB): {raw_rate:.0} round trips/s with {} in flight; sequential p50 {raw_p50:.0} us",
        opts.concurrency
    );

    let coord_bus = connect(&url, "bench-coordinator", &cfg).await?;
    let worker_bus = connect(&url, "bench-worker", &cfg).await?;
    let worker =
        Worker::start(worker_bus, cfg.worker_config("bench-worker".into(), &["all=16".into()])?)
            .await?;
    let coordinator = CoordinatorHandle::start(coord_bus.clone(), cfg.coordinator.clone()).await?;

    // Unloaded: one book at a time, so each step is alone in the system.
    let mut lat = Vec::new();
    for i in 0..opts.latency_books {
        let recs = write_books(&coord_bus, vec![bench_brief(1, 1_000 + u64::from(i))]).await?;
        for s in recs[0].steps.values().filter(|s| {
            s.dispatched_us > 0
                && s.finished_us > s.dispatched_us
                && s.attempt > 0
                && !s.route.is_empty()
        }) {
            lat.push((s.finished_us - s.dispatched_us) as f64);
        }
    }
    lat.sort_by(f64::total_cmp);

    // Loaded: many books in parallel.
    let briefs = (0..opts.books).map(|i| bench_brief(opts.chapters, u64::from(i))).collect();
    let started = Instant::now();
    let recs = write_books(&coord_bus, briefs).await?;
    let secs = started.elapsed().as_secs_f64();
    let steps: usize =
        recs.iter().map(|r| r.steps.values().filter(|s| !s.route.is_empty()).count()).sum();
    let rate = steps as f64 / secs;
    println!(
        "scriptorium: {} books x {} chapters = {steps} model steps in {secs:.2}s: {rate:.0} steps/s = {:.0}% of raw",
        opts.books,
        opts.chapters,
        100.0 * rate / raw_rate
    );
    println!(
        "per-step latency unloaded (dispatch to acceptance, {} steps): p50 {:.0} us, p90 {:.0} us, p99 {:.0} us (raw round trip p50 {raw_p50:.0} us)",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99)
    );
    println!(
        "per-step overhead over the raw round trip: p50 {:.0} us",
        percentile(&lat, 0.5) - raw_p50
    );
    let stats = coordinator.stats();
    println!(
        "coordinator counters: dispatched {}, accepted {}, rejected {}, ignored {}",
        stats.dispatched.load(std::sync::atomic::Ordering::Relaxed),
        stats.accepted.load(std::sync::atomic::Ordering::Relaxed),
        stats.rejected.load(std::sync::atomic::Ordering::Relaxed),
        stats.ignored.load(std::sync::atomic::Ordering::Relaxed)
    );
    coordinator.shutdown().await;
    worker.shutdown(Duration::from_secs(1)).await;
    if opts.cache_books > 0 {
        cache_runs(&url, cfg, opts.cache_books).await?;
    }
    Ok(())
}

/// The same books written twice through the HTTP provider against an in-process sim server
/// (20 ms per answer) with the response cache on: time and model calls of each run.
async fn cache_runs(url: &str, mut cfg: AppConfig, books: u32) -> anyhow::Result<()> {
    use scriptorium_sim::server::{self as sim_server, SimServerConfig};
    let sim = sim_server::start(SimServerConfig { latency_ms: 20, ..Default::default() }).await?;
    let provider = format!("protocol = \"openai\"\nbase_url = \"{}\"\n", sim.base_url());
    cfg.models.providers.insert("benchsim".into(), toml::from_str(&provider)?);
    cfg.coordinator.routes.default = "benchsim/sim".into();
    cfg.coordinator.cache = true;
    cfg.cache.enabled = true;
    let coord_bus = connect(url, "bench-cache-coordinator", &cfg).await?;
    let worker_bus = connect(url, "bench-cache-worker", &cfg).await?;
    let worker = Worker::start(
        worker_bus,
        cfg.worker_config("bench-cache-worker".into(), &["all=16".into()])?,
    )
    .await?;
    let coordinator = CoordinatorHandle::start(coord_bus.clone(), cfg.coordinator.clone()).await?;
    let briefs = || (0..books).map(|i| bench_brief(3, 50_000 + u64::from(i))).collect::<Vec<_>>();
    let mut calls_before = 0;
    for run in ["first run", "second run"] {
        let started = Instant::now();
        let recs = write_books(&coord_bus, briefs()).await?;
        let secs = started.elapsed().as_secs_f64();
        let calls = sim.stats().completions;
        let hits: u64 = recs.iter().map(|r| u64::from(r.usage.cache_hits)).sum();
        println!(
            "cache, {books} books x 3 chapters, {run}: {secs:.2}s, {} model calls, {hits} cache hits",
            calls - calls_before
        );
        calls_before = calls;
    }
    coordinator.shutdown().await;
    worker.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
