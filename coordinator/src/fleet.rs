//! What the step queues and the worker processes look like right now, read from the bus's
//! queue state ([`Bus::step_queues`]) and worker heartbeats: the data behind `scriptorium
//! queues`, `scriptorium workers`, the dashboard and the queue gauges.
//!
//! Per agent kind: what waits, runs, was redelivered or dead-lettered and how old the oldest
//! waiting step is, as the transport reads them from JetStream; the live workers with a pool
//! for the kind; steps per minute = completed deliveries over a sliding window.

use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, StepQueue};
use scriptorium_proto::v1::WorkerHeartbeat;
use scriptorium_proto::{Bus, clock, kind};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// One agent kind's step queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueRow {
    /// Agent kind name.
    pub kind: String,
    /// Messages not yet delivered to any worker.
    pub waiting: u64,
    /// Messages delivered and not yet acknowledged.
    pub in_flight: u64,
    /// Unacknowledged messages delivered more than once.
    pub redelivered: u64,
    /// Messages in the dead-letter stream for this kind.
    pub dead_lettered: u64,
    /// Age of the oldest waiting message, in seconds.
    pub oldest_waiting_secs: Option<f64>,
    /// Live worker processes with a pool for this kind.
    pub workers: u32,
    /// Deliveries completed since the consumer was created.
    pub completed: u64,
    /// Completed steps per minute over the sampling window (`None` until two samples exist).
    pub steps_per_min: Option<f64>,
}

/// One pool of a worker process.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolRow {
    /// Agent kind name.
    pub kind: String,
    /// Agents in the pool.
    pub size: u32,
    /// Agents working on a step.
    pub busy: u32,
}

/// One worker process, from its latest heartbeat.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerRow {
    /// Worker id.
    pub id: String,
    /// `up`, or `lost` when its heartbeat is older than three intervals.
    pub state: &'static str,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Seconds since the last heartbeat.
    pub last_seen_secs: f64,
    /// Seconds since the process started.
    pub uptime_secs: f64,
    /// Steps finished by the process.
    pub steps_done: u64,
    /// Pools with their sizes and busy agents.
    pub pools: Vec<PoolRow>,
    /// Steps in progress (`kind:book/step#attempt`).
    pub current_steps: Vec<String>,
    /// Response cache hits (local and shared tiers) and misses, when the worker reports them.
    pub cache_hits: u64,
    /// Response cache misses.
    pub cache_misses: u64,
    /// Decoding rate of the embedded model the process holds, tokens per second.
    pub tokens_per_second: Option<f64>,
}

/// Completed-step counters per kind over time, for steps per minute.
#[derive(Debug)]
pub struct RateWindow {
    window: Duration,
    samples: VecDeque<(Instant, BTreeMap<String, u64>)>,
}

impl RateWindow {
    /// A window of `window` (the rate is taken between the oldest kept sample and now).
    pub fn new(window: Duration) -> Self {
        Self { window, samples: VecDeque::new() }
    }

    /// Adds a sample taken at `now` and returns steps per minute per kind.
    pub fn observe(
        &mut self,
        now: Instant,
        completed: BTreeMap<String, u64>,
    ) -> BTreeMap<String, f64> {
        while self.samples.len() > 1
            && self.samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= self.window)
        {
            self.samples.pop_front();
        }
        let mut rates = BTreeMap::new();
        if let Some((then, old)) = self.samples.front() {
            let secs = now.duration_since(*then).as_secs_f64();
            if secs >= 0.5 {
                for (k, n) in &completed {
                    let before = old.get(k).copied().unwrap_or(0);
                    rates.insert(k.clone(), n.saturating_sub(before) as f64 * 60.0 / secs);
                }
            }
        }
        self.samples.push_back((now, completed));
        rates
    }
}

/// Reads every step queue; `workers` gives the consumers per kind and `rates` the window.
pub async fn queues(
    bus: &Bus,
    workers: &[WorkerRow],
    rates: &mut RateWindow,
) -> anyhow::Result<Vec<QueueRow>> {
    let kinds: Vec<_> = kind::agents().collect();
    let queues = bus.step_queues(&kinds).await?;
    let now = clock::now_ms();
    let mut rows: Vec<QueueRow> =
        queues.into_iter().map(|q| QueueRow::new(q, workers, now)).collect();
    let completed = rows.iter().map(|r| (r.kind.clone(), r.completed)).collect();
    let per_min = rates.observe(Instant::now(), completed);
    for r in &mut rows {
        r.steps_per_min = per_min.get(&r.kind).copied();
    }
    Ok(rows)
}

impl QueueRow {
    /// The row of `queue` at `now_ms`, with the live `workers` that have a pool for its kind.
    fn new(queue: StepQueue, workers: &[WorkerRow], now_ms: i64) -> Self {
        let kind = kind::name(queue.kind).to_string();
        let workers = workers
            .iter()
            .filter(|w| w.state == "up")
            .filter(|w| w.pools.iter().any(|p| p.kind == kind && p.size > 0))
            .count() as u32;
        QueueRow {
            waiting: queue.waiting,
            in_flight: queue.in_flight,
            redelivered: queue.redelivered,
            dead_lettered: queue.dead_lettered,
            oldest_waiting_secs: queue
                .oldest_waiting_unix_ms
                .map(|t| (now_ms - t).max(0) as f64 / 1000.0),
            workers,
            completed: queue.completed,
            steps_per_min: None,
            kind,
        }
    }
}

/// Reads every worker heartbeat; a heartbeat older than `lost_after` marks the worker lost.
pub async fn workers(bus: &Bus, lost_after: Duration) -> anyhow::Result<Vec<WorkerRow>> {
    let now = clock::now_ms();
    let mut rows = Vec::new();
    for key in bus.kv_keys(Bucket::Workers).await? {
        let Some(bytes) = bus.kv_get(Bucket::Workers, &key).await? else { continue };
        let Ok(hb) = WorkerHeartbeat::decode(bytes) else {
            tracing::warn!(worker_id = %key, "unreadable heartbeat skipped");
            continue;
        };
        let last_seen = (now - hb.at_unix_ms).max(0) as f64 / 1000.0;
        let cache = hb.cache.unwrap_or_default();
        rows.push(WorkerRow {
            state: if last_seen > lost_after.as_secs_f64() { "lost" } else { "up" },
            host: hb.host,
            pid: hb.pid,
            last_seen_secs: last_seen,
            uptime_secs: (now - hb.started_unix_ms).max(0) as f64 / 1000.0,
            steps_done: hb.steps_done,
            pools: hb
                .pools
                .iter()
                .map(|p| PoolRow { kind: kind::name(p.kind()).into(), size: p.size, busy: p.busy })
                .collect(),
            current_steps: hb.current_steps,
            cache_hits: cache.hits_local + cache.hits_shared,
            cache_misses: cache.misses,
            tokens_per_second: (hb.tokens_per_second > 0.0).then_some(hb.tokens_per_second),
            id: hb.worker_id,
        });
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_row_counts_the_live_workers_of_its_kind_and_ages_the_oldest_step() {
        let worker = |id: &str, state, kind: &str, size| WorkerRow {
            id: id.into(),
            state,
            host: "h".into(),
            pid: 1,
            last_seen_secs: 0.0,
            uptime_secs: 0.0,
            steps_done: 0,
            pools: vec![PoolRow { kind: kind.into(), size, busy: 0 }],
            current_steps: Vec::new(),
            cache_hits: 0,
            cache_misses: 0,
            tokens_per_second: None,
        };
        let workers = [
            worker("a", "up", "chapter", 2),
            worker("b", "lost", "chapter", 2),
            worker("c", "up", "review", 1),
            worker("d", "up", "chapter", 0),
        ];
        let queue = StepQueue {
            kind: scriptorium_proto::v1::AgentKind::Chapter,
            waiting: 3,
            in_flight: 2,
            redelivered: 1,
            completed: 9,
            dead_lettered: 4,
            oldest_waiting_unix_ms: Some(10_000),
        };
        let row = QueueRow::new(queue.clone(), &workers, 85_000);
        assert_eq!((row.kind.as_str(), row.workers), ("chapter", 1));
        assert_eq!((row.waiting, row.in_flight, row.redelivered), (3, 2, 1));
        assert_eq!((row.completed, row.dead_lettered), (9, 4));
        assert_eq!(row.oldest_waiting_secs, Some(75.0));
        // A clock behind the server's never shows a negative age.
        assert_eq!(QueueRow::new(queue, &[], 5_000).oldest_waiting_secs, Some(0.0));
    }

    #[test]
    fn rate_needs_two_samples_and_slides() {
        let mut w = RateWindow::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |n: u64| BTreeMap::from([("chapter".to_string(), n)]);
        assert!(w.observe(t0, at(10)).is_empty());
        let r = w.observe(t0 + Duration::from_secs(30), at(40));
        assert_eq!(r["chapter"], 60.0);
        // After the window the oldest sample goes: the rate is over the last 60 s only.
        let r = w.observe(t0 + Duration::from_secs(90), at(40));
        assert_eq!(r["chapter"], 0.0);
        // A recreated consumer counts from zero again: no negative rates.
        let r = w.observe(t0 + Duration::from_secs(100), at(0));
        assert_eq!(r["chapter"], 0.0);
    }
}
