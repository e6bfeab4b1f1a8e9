//! What the step queues and the worker processes look like right now, read from JetStream
//! consumer state and worker heartbeats: the data behind `scriptorium
//! queues`, `scriptorium workers`, the dashboard and the queue gauges.
//!
//! Per agent kind, from the durable consumer `steps-<kind>` on `SCRIPTORIUM_STEPS`:
//! waiting = `num_pending`, in flight = `num_ack_pending`, redelivered = `num_redelivered`,
//! oldest waiting = age of the first message on the kind's subject after the consumer's last
//! delivered stream sequence. Before any worker created the consumer, every message on the
//! subject is waiting. Dead-lettered = messages on `scriptorium.dead.<kind>`. Steps per minute =
//! completed deliveries (`delivered.consumer_seq - num_ack_pending`) over a sliding window.

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use futures::StreamExt;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::WorkerHeartbeat;
use scriptorium_proto::{Bus, clock, kind, names};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
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

/// The NATS side of the bus, or an error naming what needs it.
fn nats(bus: &Bus) -> anyhow::Result<&scriptorium_proto::transport::NatsBus> {
    match bus {
        Bus::Nats(n) => Ok(n),
        Bus::Memory(_) => anyhow::bail!("queue state is only available over NATS"),
    }
}

async fn subject_counts(
    stream: &async_nats::jetstream::stream::Stream,
    filter: String,
) -> anyhow::Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let mut subjects = stream.info_with_subjects(filter).await?;
    while let Some(s) = subjects.next().await {
        let (subject, n) = s?;
        out.insert(subject, n as u64);
    }
    Ok(out)
}

fn age_secs(t: async_nats::jetstream::message::StreamMessage) -> f64 {
    let ms = (t.time.unix_timestamp_nanos() / 1_000_000) as i64;
    (clock::now_ms() - ms).max(0) as f64 / 1000.0
}

/// Reads every step queue; `workers` gives the consumers per kind and `rates` the window.
pub async fn queues(
    bus: &Bus,
    workers: &[WorkerRow],
    rates: &mut RateWindow,
) -> anyhow::Result<Vec<QueueRow>> {
    let js = nats(bus)?.jetstream();
    let steps = js.get_stream(names::STEPS_STREAM).await?;
    let on_subject = subject_counts(&steps, format!("{}.*", names::STEPS_PREFIX)).await?;
    let dead = match js.get_stream(names::DEAD_STREAM).await {
        Ok(s) => subject_counts(&s, format!("{}.>", names::DEAD_PREFIX)).await?,
        Err(_) => HashMap::new(),
    };
    let mut rows = Vec::new();
    for k in kind::agents() {
        let name = kind::name(k).to_string();
        let subject = names::step_subject(k);
        let mut row = QueueRow {
            kind: name.clone(),
            waiting: on_subject.get(&subject).copied().unwrap_or(0),
            in_flight: 0,
            redelivered: 0,
            dead_lettered: dead.get(&names::dead_subject(&name)).copied().unwrap_or(0),
            oldest_waiting_secs: None,
            workers: workers
                .iter()
                .filter(|w| w.state == "up")
                .filter(|w| w.pools.iter().any(|p| p.kind == name && p.size > 0))
                .count() as u32,
            completed: 0,
            steps_per_min: None,
        };
        let mut first_waiting = 0;
        match steps.consumer_info(names::step_consumer(k)).await {
            Ok(info) => {
                row.waiting = info.num_pending;
                row.in_flight = info.num_ack_pending as u64;
                row.redelivered = info.num_redelivered as u64;
                row.completed =
                    info.delivered.consumer_sequence.saturating_sub(info.num_ack_pending as u64);
                first_waiting = info.delivered.stream_sequence + 1;
            }
            // No worker ever served this kind: everything on the subject waits.
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::anyhow!("consumer {}: {e}", names::step_consumer(k))),
        }
        if row.waiting > 0 {
            row.oldest_waiting_secs = steps
                .get_first_raw_message_by_subject(&subject, first_waiting.max(1))
                .await
                .ok()
                .map(age_secs);
        }
        rows.push(row);
    }
    let completed = rows.iter().map(|r| (r.kind.clone(), r.completed)).collect();
    let per_min = rates.observe(Instant::now(), completed);
    for r in &mut rows {
        r.steps_per_min = per_min.get(&r.kind).copied();
    }
    Ok(rows)
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
