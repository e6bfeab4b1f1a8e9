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

    /// Steps on every step queue (each kind's normal and priority queue) not yet taken by any
    /// worker: work the fleet has not started. The coordinator admits books by it.
    pub async fn steps_waiting(&self) -> Result<u64, BusError> {
        match self {
            Bus::Nats(b) => b.steps_waiting().await,
            Bus::Memory(b) => Ok(crate::kind::agents()
                .flat_map(|k| [Queue::Steps(k), Queue::PrioritySteps(k)])
                .map(|q| b.depth(q))
                .sum()),
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
    async fn in_process_steps_waiting_counts_what_no_reader_took_yet() {
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
        assert_eq!(bus.steps_waiting().await.unwrap(), 5, "results are not steps");
        assert!(chapters.next().await.is_some());
        assert_eq!(chapters.fetch(5, Duration::ZERO).await.unwrap().len(), 2);
        assert_eq!(bus.steps_waiting().await.unwrap(), 2);
        let mut concepts = bus.source(Queue::PrioritySteps(AgentKind::Concept), 1).await.unwrap();
        let mut pull = concepts.pull(1, Duration::ZERO).await.unwrap();
        assert!(pull.next().await.is_some());
        assert_eq!(bus.steps_waiting().await.unwrap(), 1);
    }
}
