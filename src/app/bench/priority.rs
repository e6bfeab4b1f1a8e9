//! The priority figure: a priority book submitted behind many normal ones, beside the same book
//! written alone.

use super::{Fleet, bench_brief, submit_all, wait_done, write_books};
use crate::app::AppConfig;
use std::time::Instant;

/// Options of the priority run.
#[derive(Debug, Clone, Copy)]
pub struct PriorityOptions {
    /// Normal books submitted before the priority one.
    pub behind: u32,
    /// Chapters per book.
    pub chapters: u32,
    /// Mean model time per answer, in milliseconds.
    pub latency_ms: u64,
    /// Spread of the model time (plus or minus).
    pub jitter_ms: u64,
    /// Agents per agent kind.
    pub agents: usize,
}

/// Runs the priority figure against `url` and prints it.
pub(super) async fn run(
    url: &str,
    mut cfg: AppConfig,
    opts: PriorityOptions,
) -> anyhow::Result<()> {
    cfg.models.sim.latency_ms = opts.latency_ms.saturating_sub(opts.jitter_ms);
    cfg.models.sim.jitter_ms = 2 * opts.jitter_ms;
    let fleet = Fleet::start(url, &cfg, "bench-priority", opts.agents).await?;
    let urgent = |seed| {
        let mut b = bench_brief(opts.chapters, seed);
        b.priority = "priority".into();
        b
    };
    let started = Instant::now();
    write_books(&fleet.bus, vec![urgent(90_001)]).await?;
    let alone = started.elapsed().as_secs_f64();
    let normal = (0..opts.behind).map(|i| bench_brief(opts.chapters, 80_000 + u64::from(i)));
    let others = submit_all(&fleet.bus, normal.collect()).await?;
    let started = Instant::now();
    let ids = submit_all(&fleet.bus, vec![urgent(90_002)]).await?;
    wait_done(&fleet.bus, &ids).await?;
    let behind = started.elapsed().as_secs_f64();
    let recs = wait_done(&fleet.bus, &others).await?;
    let all = started.elapsed().as_secs_f64();
    fleet.stop().await;
    println!(
        "priority: {} chapters, model {} ms +/- {} ms, {} agents per kind, books in flight at most {}",
        opts.chapters,
        opts.latency_ms,
        opts.jitter_ms,
        opts.agents,
        cfg.coordinator.max_books_in_flight
    );
    println!(
        "a priority book alone: {alone:.2}s; submitted after {} normal books: {behind:.2}s = {:.2}x alone (target at most 1.5x); the {} others all done {all:.2}s after it was submitted",
        opts.behind,
        behind / alone.max(1e-3),
        recs.len()
    );
    Ok(())
}
