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
    /// The busiest agent kind's bound, in milliseconds: the chain of steps that must finish
    /// before any step of the kind can start, plus the kind's total time divided by its agents,
    /// plus the chain that must follow its last step (each the shortest over its steps).
    pub busiest_kind_ms: u64,
    /// The kind of `busiest_kind_ms`.
    pub busiest_kind: AgentKind,
    /// The busiest kind's total time divided by its agents, alone.
    pub busiest_work_ms: u64,
    /// Every step's time divided by the agents of the kinds that had steps, in milliseconds.
    pub total_over_agents_ms: u64,
}

/// One agent kind's steps: their total time, and the shortest chains before and after them.
#[derive(Debug, Clone, Copy)]
struct KindSpan {
    work: u64,
    head: u64,
    tail: u64,
}

impl LowerBound {
    /// max(longest critical path, the busiest kind's bound), which is at least the total model
    /// time over all agents. A kind's agents can do nothing before the first of its steps can
    /// start (its ancestors done, one after another), and the book is not done until the
    /// dependents of its last step are: with the head and tail each the shortest over the
    /// kind's steps, no schedule beats head + time / agents + tail.
    pub fn ms(&self) -> u64 {
        self.critical_path_ms.max(self.busiest_kind_ms).max(self.total_over_agents_ms)
    }

    /// The bound of `recs`, each kind having `agents` agents.
    pub fn of(recs: &[BookRecord], agents: usize) -> Self {
        let agents = agents.max(1) as u64;
        let mut critical_path_ms = 0;
        let mut per_kind: BTreeMap<AgentKind, KindSpan> = BTreeMap::new();
        for rec in recs {
            let own = |id: &str| rec.steps.get(id).map_or(0, |s| s.worker_ms);
            // Plan steps come in topological order: each step's finish is known before its
            // dependents', and each step's tail after its dependents' when walked backwards.
            let mut finish: HashMap<&str, u64> = HashMap::new();
            let mut start: HashMap<&str, u64> = HashMap::new();
            for p in &rec.plan.steps {
                let at = p.deps.iter().filter_map(|d| finish.get(d.as_str())).max();
                let at = at.copied().unwrap_or(0);
                start.insert(p.id.as_str(), at);
                finish.insert(p.id.as_str(), at + own(&p.id));
                critical_path_ms = critical_path_ms.max(at + own(&p.id));
            }
            let mut tail: HashMap<&str, u64> = HashMap::new();
            for p in rec.plan.steps.iter().rev() {
                let after = tail.get(p.id.as_str()).copied().unwrap_or(0);
                for d in &p.deps {
                    let t = tail.entry(d.as_str()).or_default();
                    *t = (*t).max(own(&p.id) + after);
                }
            }
            for p in &rec.plan.steps {
                // The coordinator's own assembly step takes no agent.
                if p.kind == AgentKind::Assembly {
                    continue;
                }
                let head = start.get(p.id.as_str()).copied().unwrap_or(0);
                let after = tail.get(p.id.as_str()).copied().unwrap_or(0);
                let span = per_kind.entry(p.kind).or_insert(KindSpan {
                    work: 0,
                    head: u64::MAX,
                    tail: u64::MAX,
                });
                span.work += own(&p.id);
                span.head = span.head.min(head);
                span.tail = span.tail.min(after);
            }
        }
        let total: u64 = per_kind.values().map(|k| k.work).sum();
        let kinds = per_kind.len().max(1) as u64;
        let bound = |k: &KindSpan| k.head + k.work.div_ceil(agents) + k.tail;
        let (busiest_kind, span) =
            per_kind.iter().max_by_key(|(_, k)| bound(k)).map_or(
                (AgentKind::default(), KindSpan { work: 0, head: 0, tail: 0 }),
                |(k, s)| (*k, *s),
            );
        Self {
            critical_path_ms,
            busiest_kind_ms: bound(&span),
            busiest_kind,
            busiest_work_ms: span.work.div_ceil(agents),
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
        "lower bound {:.2}s = max(longest critical path {:.2}s, busiest kind ({}) {:.2}s = its time / its agents {:.2}s + the shortest chains before its first step and after its last {:.2}s, total model time / all agents {:.2}s): makespan = {:.3}x the bound (x{:.3} of the kind's time / agents alone)",
        bound.ms() as f64 / 1e3,
        bound.critical_path_ms as f64 / 1e3,
        scriptorium_proto::kind::name(bound.busiest_kind),
        bound.busiest_kind_ms as f64 / 1e3,
        bound.busiest_work_ms as f64 / 1e3,
        bound.busiest_kind_ms.saturating_sub(bound.busiest_work_ms) as f64 / 1e3,
        bound.total_over_agents_ms as f64 / 1e3,
        makespan.as_secs_f64() * 1e3 / bound.ms().max(1) as f64,
        makespan.as_secs_f64() * 1e3
            / bound
                .critical_path_ms
                .max(bound.busiest_work_ms)
                .max(bound.total_over_agents_ms)
                .max(1) as f64
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
        assert!(b.busiest_work_ms >= 3_000, "{b:?}");
        assert_eq!(b.ms(), b.busiest_kind_ms.max(b.critical_path_ms));
        // No agent can start the busiest kind's work before its first step's ancestors are
        // done (the concept and the outline at least), nor finish the book before its last
        // step's dependents are (the review and edit after a last chapter draft).
        assert!(b.busiest_kind_ms >= b.busiest_work_ms + 200, "{b:?}");
        // One book alone, each kind with many agents: the kind's bound is one chain of the book,
        // so never above the critical path.
        let alone = LowerBound::of(std::slice::from_ref(&one), 1000);
        assert!(alone.busiest_kind_ms <= alone.critical_path_ms, "{alone:?}");
        // A slow step lengthens the chain it is on.
        let slow = book(3, |id| if id == "outline" { 5_000 } else { 100 });
        let b = LowerBound::of(std::slice::from_ref(&slow), 1000);
        assert!(b.critical_path_ms >= 5_000 + 500, "{b:?}");
    }
}
