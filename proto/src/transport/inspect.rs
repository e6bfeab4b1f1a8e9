//! What the transport tells operators about itself: whether it can serve (`/readyz`), the state
//! of each step queue (`scriptorium queues`, `workers`, the dashboard), the submissions waiting
//! for a coordinator (`scriptorium status`) and raw JetStream round trips (the yardstick of
//! `scriptorium bench`).
//!
//! The in-process bus is always ready; it keeps no consumer state and has no server to measure,
//! so it answers the other two with [`BusError::OnlyOverNats`].

use super::{Bus, BusError, Queue};
use crate::v1::AgentKind;

/// One agent kind's step queue, as JetStream holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepQueue {
    /// The agent kind.
    pub kind: AgentKind,
    /// Messages not yet delivered to any worker: before any worker created the kind's consumer,
    /// every message on its subject.
    pub waiting: u64,
    /// Messages delivered and not yet acknowledged.
    pub in_flight: u64,
    /// Unacknowledged messages delivered more than once.
    pub redelivered: u64,
    /// Deliveries completed since the consumer was created.
    pub completed: u64,
    /// Messages of this kind in the dead-letter stream.
    pub dead_lettered: u64,
    /// When the oldest waiting message was stored, in Unix milliseconds.
    pub oldest_waiting_unix_ms: Option<i64>,
}

/// The steps of every step queue ([`Bus::step_load`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepLoad {
    /// Steps no worker took yet.
    pub waiting: u64,
    /// Steps taken by a worker and not yet done (acknowledged, handed back or, in process,
    /// let go): with workers that take steps only for idle agents, the agents at work.
    pub running: u64,
}

/// Raw JetStream round trips, measured by [`Bus::raw_round_trips`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundTrips {
    /// Round trips per second with the asked number in flight.
    pub per_sec: f64,
    /// Median of the sequential round trips, in microseconds.
    pub p50_us: f64,
}

impl Bus {
    /// Read-only readiness: over NATS, connected and every stream and bucket exists and has a
    /// leader (nothing is created here; `connect` did that); in process, always ready.
    pub async fn check_ready(&self) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.check_ready().await,
            Bus::Memory(_) => Ok(()),
        }
    }

    /// The step queue of each of `kinds`, in that order.
    pub async fn step_queues(&self, kinds: &[AgentKind]) -> Result<Vec<StepQueue>, BusError> {
        match self {
            Bus::Nats(b) => b.step_queues(kinds).await,
            Bus::Memory(_) => Err(BusError::OnlyOverNats { op: "queue state".into() }),
        }
    }

    /// The fleet's load, over every step queue (each kind's normal and priority queue): steps
    /// no worker took yet, and steps taken and not yet done. The coordinator admits books by it.
    pub async fn step_load(&self) -> Result<StepLoad, BusError> {
        match self {
            Bus::Nats(b) => b.step_load().await,
            Bus::Memory(b) => Ok(crate::kind::agents()
                .flat_map(|k| [Queue::Steps(k), Queue::PrioritySteps(k)])
                .map(|q| b.counts(q))
                .fold(StepLoad::default(), |load, (waiting, running)| StepLoad {
                    waiting: load.waiting + waiting,
                    running: load.running + running,
                })),
        }
    }

    /// Submissions (and operators' commands) waiting in the submit queue, not yet delivered to
    /// a coordinator. Only over NATS: the in-process queue is read as soon as it is written.
    pub async fn submissions_waiting(&self) -> Result<u64, BusError> {
        match self {
            Bus::Nats(b) => b.submissions_waiting().await,
            Bus::Memory(_) => Err(BusError::OnlyOverNats { op: "submissions waiting".into() }),
        }
    }

    /// What one step costs at the transport level and nothing else, on streams of its own:
    /// publish a 2 KiB step to a work-queue stream, pull it, publish a result to a second
    /// stream, pull that, and acknowledge both. 200 sequential round trips give the median,
    /// then `messages` with `concurrency` in flight give the rate: the pipelined floor, PubAcks
    /// awaited together and four pullers on each stream.
    pub async fn raw_round_trips(
        &self,
        messages: usize,
        concurrency: usize,
    ) -> Result<RoundTrips, BusError> {
        match self {
            Bus::Nats(b) => b.raw_round_trips(messages, concurrency).await,
            Bus::Memory(_) => Err(BusError::OnlyOverNats { op: "raw round trips".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn in_process_the_bus_is_ready_and_says_what_needs_nats() {
        let bus = Bus::memory();
        assert!(bus.check_ready().await.is_ok());
        let e = bus.step_queues(&[AgentKind::Chapter]).await.unwrap_err();
        assert!(matches!(e, BusError::OnlyOverNats { .. }), "{e:?}");
        assert_eq!(e.to_string(), "queue state is only available over NATS");
        assert!(!e.is_transient());
        let e = bus.raw_round_trips(1, 1).await.unwrap_err();
        assert!(matches!(e, BusError::OnlyOverNats { .. }), "{e:?}");
        let e = bus.submissions_waiting().await.unwrap_err();
        assert!(matches!(e, BusError::OnlyOverNats { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn in_process_the_step_load_counts_steps_waiting_and_steps_held() {
        let bus = Bus::memory();
        let mut chapters = bus.source(Queue::Steps(AgentKind::Chapter), 1).await.unwrap();
        for (queue, n) in [
            (Queue::Steps(AgentKind::Chapter), 3),
            (Queue::PrioritySteps(AgentKind::Concept), 2),
            (Queue::Results, 5),
        ] {
            for i in 0..n {
                let id = format!("m{i}");
                bus.publish(queue, "b", &id, bytes::Bytes::from_static(b"x")).await.unwrap();
            }
        }
        let load = |waiting, running| StepLoad { waiting, running };
        assert_eq!(bus.step_load().await.unwrap(), load(5, 0), "results are not steps");
        let first = chapters.next().await.unwrap().unwrap();
        let two = chapters.fetch(5, Duration::ZERO).await.unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(bus.step_load().await.unwrap(), load(2, 3));
        drop(two);
        first.acker.ack().await.unwrap();
        assert_eq!(bus.step_load().await.unwrap(), load(2, 1), "held until let go");
        drop(first);
        let mut concepts = bus.source(Queue::PrioritySteps(AgentKind::Concept), 1).await.unwrap();
        let mut pull = concepts.pull(1, Duration::ZERO).await.unwrap();
        let taken = pull.next().await.unwrap().unwrap();
        assert_eq!(bus.step_load().await.unwrap(), load(1, 1));
        drop(taken);
        assert_eq!(bus.step_load().await.unwrap(), load(1, 0));
    }
}
