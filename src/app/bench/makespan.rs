//! The makespan figure: many books through a fleet of a given size with a simulated model that
//! takes a given time per answer, beside the lower bound no scheduler can beat.

use super::{Fleet, bench_brief, write_books};
use crate::app::AppConfig;
use scriptorium_coordinator::record::BookRecord;
use scriptorium_proto::v1::AgentKind;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Options of the makespan run.
#[derive(Debug, Clone, Copy)]
pub struct MakespanOptions {
    /// Books submitted at once.
    pub books: u32,
    /// Chapters per book.
    pub chapters: u32,
    /// Mean model time per answer, in milliseconds.
    pub latency_ms: u64,
    /// Spread of the model time: each answer takes `latency_ms` plus or minus up to this.
    pub jitter_ms: u64,
    /// Agents per agent kind in the one worker process.
    pub agents: usize,
}

/// The lower bound of a set of finished books' makespan, from the time each accepted step took
/// in its worker (`worker_ms`: the model's time and the worker's own around it).
#[derive(Debug, Clone, PartialEq)]
pub struct LowerBound {
    /// The longest chain of dependent steps of any book, in milliseconds.
    pub critical_path_ms: u64,
    /// The busiest agent kind's total time divided by its agents, in milliseconds, and the kind.
    pub busiest_kind_ms: u64,
    /// The kind of `busiest_kind_ms`.
    pub busiest_kind: AgentKind,
    /// Every step's time divided by the agents of the kinds that had steps, in milliseconds.
    pub total_over_agents_ms: u64,
}

impl LowerBound {
    /// max(longest critical path, busiest kind's time / its agents), which is at least the
    /// total model time over all agents.
    pub fn ms(&self) -> u64 {
        self.critical_path_ms.max(self.busiest_kind_ms).max(self.total_over_agents_ms)
    }

    /// The bound of `recs`, each kind having `agents` agents.
    pub fn of(recs: &[BookRecord], agents: usize) -> Self {
        let agents = agents.max(1) as u64;
        let mut critical_path_ms = 0;
        let mut per_kind: BTreeMap<AgentKind, u64> = BTreeMap::new();
        for rec in recs {
            // Plan steps come in topological order: each step's finish is known before its
            // dependents'.
            let mut finish: HashMap<&str, u64> = HashMap::new();
            for p in &rec.plan.steps {
                let own = rec.steps.get(&p.id).map_or(0, |s| s.worker_ms);
                let start = p.deps.iter().filter_map(|d| finish.get(d.as_str())).max();
                let end = start.copied().unwrap_or(0) + own;
                finish.insert(p.id.as_str(), end);
                critical_path_ms = critical_path_ms.max(end);
                // The coordinator's own assembly step takes no agent.
                if p.kind != AgentKind::Assembly {
                    *per_kind.entry(p.kind).or_default() += own;
                }
            }
        }
        let total: u64 = per_kind.values().sum();
        let kinds = per_kind.len().max(1) as u64;
        let (busiest_kind, busiest) = per_kind
            .iter()
            .max_by_key(|(_, ms)| **ms)
            .map_or((AgentKind::default(), 0), |(k, ms)| (*k, *ms));
        Self {
            critical_path_ms,
            busiest_kind_ms: busiest.div_ceil(agents),
            busiest_kind,
            total_over_agents_ms: total.div_ceil(agents * kinds),
        }
    }
}

/// Runs the makespan figure against `url` and prints it.
pub(super) async fn run(
    url: &str,
    mut cfg: AppConfig,
    opts: MakespanOptions,
) -> anyhow::Result<()> {
    // The sim model waits `latency_ms + uniform[0, jitter_ms)`: centred on the asked mean.
    cfg.models.sim.latency_ms = opts.latency_ms.saturating_sub(opts.jitter_ms);
    cfg.models.sim.jitter_ms = 2 * opts.jitter_ms;
    let fleet = Fleet::start(url, &cfg, "bench-makespan", opts.agents).await?;
    let briefs =
        (0..opts.books).map(|i| bench_brief(opts.chapters, 70_000 + u64::from(i))).collect();
    let started = Instant::now();
    let recs = write_books(&fleet.bus, briefs).await?;
    let makespan = started.elapsed();
    fleet.stop().await;
    let bound = LowerBound::of(&recs, opts.agents);
    let kinds = u64::try_from(scriptorium_proto::kind::agents().count()).unwrap_or(1);
    println!(
        "makespan: {} books x {} chapters, model {} ms +/- {} ms, {} agents per kind ({} in all, books in flight at most {}): {:.2}s",
        opts.books,
        opts.chapters,
        opts.latency_ms,
        opts.jitter_ms,
        opts.agents,
        opts.agents as u64 * kinds,
        cfg.coordinator.max_books_in_flight,
        makespan.as_secs_f64()
    );
    println!(
        "lower bound {:.2}s = max(longest critical path {:.2}s, busiest kind ({}) time / its agents {:.2}s, total model time / all agents {:.2}s): makespan = {:.3}x the bound",
        bound.ms() as f64 / 1e3,
        bound.critical_path_ms as f64 / 1e3,
        scriptorium_proto::kind::name(bound.busiest_kind),
        bound.busiest_kind_ms as f64 / 1e3,
        bound.total_over_agents_ms as f64 / 1e3,
        makespan.as_secs_f64() * 1e3 / bound.ms().max(1) as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::BookBrief;

    fn book(chapters: u32, ms: impl Fn(&str) -> u64) -> BookRecord {
        let brief = BookBrief { chapters, drafting: "sequential".into(), ..Default::default() };
        let mut rec = BookRecord::new("b".into(), brief, 0);
        for (id, s) in rec.steps.iter_mut() {
            s.worker_ms = ms(id);
        }
        rec
    }

    #[test]
    fn the_bound_is_the_longest_chain_or_the_busiest_kind_over_its_agents() {
        let one = book(3, |_| 100);
        let chain = LowerBound::of(std::slice::from_ref(&one), 1000).critical_path_ms;
        // concept, outline, then three chapters in order, then the last review and edit: at
        // least six dependent steps; never more than every step of the book.
        let steps = one.plan.steps.len() as u64;
        assert!((600..=100 * steps).contains(&chain), "{chain}");
        // With one agent per kind, the chapter drafts of ten such books take 10 x 3 x 100 ms.
        let many: Vec<_> = (0..10).map(|_| book(3, |_| 100)).collect();
        let b = LowerBound::of(&many, 1);
        assert!(b.busiest_kind_ms >= 3_000, "{b:?}");
        assert_eq!(b.ms(), b.busiest_kind_ms.max(b.critical_path_ms));
        // A slow step lengthens the chain it is on.
        let slow = book(3, |id| if id == "outline" { 5_000 } else { 100 });
        let b = LowerBound::of(std::slice::from_ref(&slow), 1000);
        assert!(b.critical_path_ms >= 5_000 + 500, "{b:?}");
    }
}
