//! The response-cache figure: the same books written twice through the HTTP provider.

use super::{bench_brief, write_books};
use crate::app::{AppConfig, connect};
use scriptorium_coordinator::CoordinatorHandle;
use scriptorium_worker::Worker;
use std::time::{Duration, Instant};

/// The same books written twice through the HTTP provider against an in-process sim server
/// (20 ms per answer) with the response cache on: time and model calls of each run.
pub(super) async fn runs(url: &str, mut cfg: AppConfig, books: u32) -> anyhow::Result<()> {
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
