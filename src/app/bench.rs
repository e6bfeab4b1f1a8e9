//! `scriptorium bench`: steps per second through coordinator and workers over real NATS with a
//! zero-latency simulated model, beside raw JetStream round trips measured in the same run.
//!
//! The raw baseline does what one step costs at the transport level and nothing else: publish
//! a step to a work-queue stream, pull it, publish a result to a second stream, pull that, and
//! acknowledge both. Scriptorium adds decoding, prompt rendering, the simulated model,
//! validation and a KV write of the book record per accepted step.

use super::{AppConfig, connect};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use scriptorium_coordinator::record::BookRecord;
use scriptorium_coordinator::{CoordinatorHandle, client};
use scriptorium_proto::Bus;
use scriptorium_proto::v1::BookBrief;
use scriptorium_worker::Worker;
use std::path::PathBuf;
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

fn start_server() -> anyhow::Result<(scriptorium_common::nats_server::NatsServer, String)> {
    let server = scriptorium_common::nats_server::NatsServer::start()
        .context("starting nats-server (install the nats-server package, or pass --nats)")?;
    let url = server.url();
    Ok((server, url))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Raw JetStream two-hop round trips: (messages per second, sequential p50 in microseconds).
async fn raw_baseline(
    url: &str,
    messages: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, f64)> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    let mut consumers = Vec::new();
    for (name, subject) in
        [("BENCH_RAW_STEPS", "bench.raw.steps"), ("BENCH_RAW_RESULTS", "bench.raw.results")]
    {
        let _ = js.delete_stream(name).await;
        let s = js
            .create_stream(stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
        let c: consumer::PullConsumer = s
            .create_consumer(consumer::pull::Config {
                durable_name: Some("bench".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: 10_000,
                ..Default::default()
            })
            .await?;
        consumers.push(c);
    }
    let results_consumer = consumers.pop().context("results consumer")?;
    let steps_consumer = consumers.pop().context("steps consumer")?;
    let payload = bytes::Bytes::from(vec![b'x'; 2048]);
    // The "worker": pull a step, publish a result, then acknowledge the step.
    let worker_js = js.clone();
    let mut steps = steps_consumer.stream().max_messages_per_batch(concurrency).messages().await?;
    let worker = tokio::spawn(async move {
        while let Some(Ok(m)) = steps.next().await {
            let js = worker_js.clone();
            tokio::spawn(async move {
                if let Ok(ack) = js.publish("bench.raw.results", m.payload.clone()).await {
                    let _ = ack.await;
                }
                let _ = m.ack().await;
            });
        }
    });
    let mut results =
        results_consumer.stream().max_messages_per_batch(concurrency).messages().await?;
    let mut one_trip = async |js: &jetstream::Context| -> anyhow::Result<()> {
        js.publish("bench.raw.steps", payload.clone()).await?.await?;
        if let Some(m) = results.next().await {
            m.map_err(anyhow::Error::msg)?.ack().await.map_err(anyhow::Error::msg)?;
        }
        Ok(())
    };
    // Sequential latency.
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        one_trip(&js).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    // Throughput with `concurrency` round trips in flight.
    let started = Instant::now();
    let mut sent = 0usize;
    let mut received = 0usize;
    let mut in_flight = 0usize;
    while received < messages {
        while in_flight < concurrency && sent < messages {
            js.publish("bench.raw.steps", payload.clone()).await?.await?;
            sent += 1;
            in_flight += 1;
        }
        match results.next().await {
            Some(Ok(m)) => {
                let _ = m.ack().await;
                received += 1;
                in_flight -= 1;
            }
            _ => anyhow::bail!("raw results stream ended"),
        }
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    worker.abort();
    for name in ["BENCH_RAW_STEPS", "BENCH_RAW_RESULTS"] {
        let _ = js.delete_stream(name).await;
    }
    Ok((rate, percentile(&lat, 0.5)))
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
            let (s, u) = start_server()?;
            (Some(s), u)
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

    let (raw_rate, raw_p50) = raw_baseline(&url, total_steps, opts.concurrency).await?;
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
