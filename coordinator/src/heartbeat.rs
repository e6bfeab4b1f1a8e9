//! The coordinator's heartbeat: a running coordinator says every [`EVERY`] that it is alive, and
//! how many submissions wait for it, under its id in the `scriptorium_coordinators` bucket
//! (entries expire; a coordinator that stops cleanly deletes its own). `status`, `submit` and
//! the dashboard read it back as [`Liveness`].
//!
//! A bucket of its own rather than a reserved key among the workers' heartbeats: the workers
//! view lists every key of its bucket as a worker, and no worker id has to be reserved.

use crate::Env;
use crate::actors::coordinator::CoordinatorMsg;
use ractor::ActorRef;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::CoordinatorHeartbeat;
use scriptorium_proto::{Bus, BusError, clock};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often a running coordinator publishes its heartbeat.
pub const EVERY: Duration = Duration::from_secs(2);

/// A coordinator whose latest heartbeat is older than this is not alive: five heartbeats
/// missed, so a loaded machine does not make a live coordinator look dead.
pub const ALIVE_WITHIN: Duration = Duration::from_secs(10);

/// Publishes the heartbeat of coordinator `id` every [`EVERY`], for as long as the task runs.
pub(crate) async fn publish(env: Arc<Env>, actor: ActorRef<CoordinatorMsg>, id: String) {
    let started = clock::now_ms();
    let (host, pid) = (scriptorium_common::ops::host_name(), std::process::id());
    loop {
        // Only over NATS is there a queue to count; in process it is read as it is written.
        let waiting = env.bus.submissions_waiting().await.unwrap_or(0);
        let in_flight = ractor::call!(actor, CoordinatorMsg::InFlight).unwrap_or(0);
        let hb = CoordinatorHeartbeat {
            coordinator_id: id.clone(),
            host: host.clone(),
            pid,
            started_unix_ms: started,
            at_unix_ms: clock::now_ms(),
            submissions_waiting: waiting,
            books_in_flight: in_flight as u64,
            admission_held: crate::Held::from_u8(env.stats.admission_held.load(Ordering::Relaxed))
                .name()
                .into(),
        };
        if let Err(e) = env.bus.kv_put(Bucket::Coordinators, &id, hb.encode_to_vec().into()).await {
            tracing::debug!(error = %e, "coordinator heartbeat failed");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Deletes the heartbeat of coordinator `id`: it stopped, and says so at once.
pub(crate) async fn remove(bus: &Bus, id: &str) {
    if let Err(e) = bus.kv_delete(Bucket::Coordinators, id).await {
        tracing::debug!(error = %e, "coordinator heartbeat not deleted; it expires");
    }
}

/// One coordinator process, from its latest heartbeat.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CoordinatorView {
    /// Its id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Whether its heartbeat is younger than [`ALIVE_WITHIN`].
    pub alive: bool,
    /// Seconds since its latest heartbeat.
    pub last_seen_secs: f64,
    /// Seconds since it started.
    pub uptime_secs: f64,
    /// Books it had in flight.
    pub books_in_flight: u64,
    /// Submissions waiting for a coordinator, as it last counted them.
    pub submissions_waiting: u64,
    /// Why it took no normal submission then: empty (it took them), `cap` or `demand`.
    pub admission_held: String,
}

impl CoordinatorView {
    /// The view of `hb` at `now_ms`.
    pub fn new(hb: CoordinatorHeartbeat, now_ms: i64) -> Self {
        let last_seen = (now_ms - hb.at_unix_ms).max(0) as f64 / 1000.0;
        CoordinatorView {
            alive: last_seen <= ALIVE_WITHIN.as_secs_f64(),
            last_seen_secs: last_seen,
            uptime_secs: (now_ms - hb.started_unix_ms).max(0) as f64 / 1000.0,
            id: hb.coordinator_id,
            host: hb.host,
            pid: hb.pid,
            books_in_flight: hb.books_in_flight,
            submissions_waiting: hb.submissions_waiting,
            admission_held: hb.admission_held,
        }
    }
}

/// Whether a coordinator is alive, and what waits for one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Liveness {
    /// Whether any coordinator's heartbeat is younger than [`ALIVE_WITHIN`].
    pub alive: bool,
    /// Submissions and operators' commands in the submit queue not yet delivered to a
    /// coordinator, counted now (`None` in process, where nothing waits).
    pub submissions_waiting: Option<u64>,
    /// Every coordinator with a heartbeat in the bucket, live ones first, then by id.
    pub coordinators: Vec<CoordinatorView>,
}

/// Every coordinator heartbeat in the bucket, live ones first.
pub async fn coordinators(bus: &Bus) -> Result<Vec<CoordinatorView>, BusError> {
    let now = clock::now_ms();
    let mut out = Vec::new();
    for key in bus.kv_keys(Bucket::Coordinators).await? {
        let Some(bytes) = bus.kv_get(Bucket::Coordinators, &key).await? else { continue };
        match CoordinatorHeartbeat::decode(bytes) {
            Ok(hb) => out.push(CoordinatorView::new(hb, now)),
            Err(_) => tracing::warn!(key = %key, "unreadable coordinator heartbeat skipped"),
        }
    }
    out.sort_by(|a, b| b.alive.cmp(&a.alive).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Whether a coordinator is alive now, and the submissions waiting for one.
pub async fn liveness(bus: &Bus) -> Result<Liveness, BusError> {
    let coordinators = coordinators(bus).await?;
    let submissions_waiting = match bus.submissions_waiting().await {
        Ok(n) => Some(n),
        Err(BusError::OnlyOverNats { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(Liveness { alive: coordinators.iter().any(|c| c.alive), submissions_waiting, coordinators })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(id: &str, at: i64) -> CoordinatorHeartbeat {
        CoordinatorHeartbeat {
            coordinator_id: id.into(),
            host: "h".into(),
            pid: 7,
            started_unix_ms: 1_000,
            at_unix_ms: at,
            submissions_waiting: 3,
            books_in_flight: 2,
            admission_held: "demand".into(),
        }
    }

    #[test]
    fn a_heartbeat_older_than_the_limit_is_not_alive_and_ages_never_go_negative() {
        let fresh = CoordinatorView::new(hb("a", 50_000), 52_000);
        assert!(fresh.alive);
        assert_eq!(fresh.admission_held, "demand");
        assert_eq!((fresh.last_seen_secs, fresh.uptime_secs), (2.0, 51.0));
        let stale = CoordinatorView::new(hb("a", 50_000), 50_000 + 10_001);
        assert!(!stale.alive);
        // A clock behind the coordinator's.
        assert_eq!(CoordinatorView::new(hb("a", 50_000), 49_000).last_seen_secs, 0.0);
    }

    #[tokio::test]
    async fn liveness_reads_every_heartbeat_live_ones_first() {
        let bus = Bus::memory();
        let none = liveness(&bus).await.unwrap();
        assert!(!none.alive && none.coordinators.is_empty());
        assert_eq!(none.submissions_waiting, None, "in process nothing waits");
        let now = clock::now_ms();
        for (id, at) in [("old", now - 60_000), ("new", now)] {
            bus.kv_put(Bucket::Coordinators, id, hb(id, at).encode_to_vec().into()).await.unwrap();
        }
        let l = liveness(&bus).await.unwrap();
        assert!(l.alive);
        let ids: Vec<_> = l.coordinators.iter().map(|c| (c.id.as_str(), c.alive)).collect();
        assert_eq!(ids, [("new", true), ("old", false)]);
        remove(&bus, "new").await;
        assert!(!liveness(&bus).await.unwrap().alive);
    }
}
