//! Dead letters: messages given up, kept with the reason in the dead-letter stream
//! (`SCRIPTORIUM_DEAD`, on `scriptorium.dead.<queue>`), listed, purged and replayed by operators.
//!
//! Storing and listing work in both modes. Purging and replaying need the stream's sequence
//! numbers and a server to put the message back on: the in-process bus answers them with
//! [`BusError::OnlyOverNats`].

use super::{Bus, BusError, Queue};
use bytes::Bytes;

/// A message that could not be processed.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Sequence in the dead-letter stream (in process: position).
    pub seq: u64,
    /// The queue it came from: an agent kind name, `results` or `submit`.
    pub queue: String,
    /// Why it was given up.
    pub reason: String,
    /// The original payload.
    pub payload: Bytes,
}

impl Queue {
    /// The name the dead letters of this queue are stored under: the agent kind's name,
    /// `results`, `submit` or `control`.
    pub fn dead_letter_name(self) -> &'static str {
        match self {
            Queue::Steps(kind) | Queue::PrioritySteps(kind) => crate::kind::name(kind),
            Queue::Results => "results",
            Queue::Submit | Queue::PrioritySubmit => "submit",
            Queue::Control => "control",
        }
    }

    /// The queue whose dead letters are stored under `name`, when this build knows it.
    pub fn from_dead_letter_name(name: &str) -> Option<Queue> {
        match name {
            "results" => Some(Queue::Results),
            "submit" => Some(Queue::Submit),
            "control" => Some(Queue::Control),
            kind => crate::kind::parse_agent(kind).map(Queue::Steps),
        }
    }
}

impl Bus {
    /// Stores a message that could not be processed, with the reason, in the dead-letter stream.
    pub async fn dead_letter(
        &self,
        queue: &str,
        payload: Bytes,
        reason: &str,
    ) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.dead_letter(queue, payload, reason).await,
            Bus::Memory(b) => {
                b.dead_letter(queue, payload, reason);
                Ok(())
            }
        }
    }

    /// Every dead letter stored so far, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        match self {
            Bus::Nats(b) => b.dead_letters().await,
            Bus::Memory(b) => Ok(b.dead_letters()),
        }
    }

    /// The dead letter with sequence `seq`; `None` when there is none (never stored, purged or
    /// replayed).
    pub async fn dead_letter_at(&self, seq: u64) -> Result<Option<DeadLetter>, BusError> {
        match self {
            Bus::Nats(b) => b.dead_letter_at(seq).await,
            Bus::Memory(b) => Ok(b.dead_letters().into_iter().find(|d| d.seq == seq)),
        }
    }

    /// Removes the dead letters of `queue` (a name as [`Queue::dead_letter_name`] gives), or
    /// all of them; returns how many were removed.
    pub async fn purge_dead_letters(&self, queue: Option<&str>) -> Result<u64, BusError> {
        if let Some(q) = queue
            && !crate::names::valid_id(q)
        {
            return Err(BusError::invalid_key("purge dead letters", q));
        }
        match self {
            Bus::Nats(b) => b.purge_dead_letters(queue).await,
            Bus::Memory(_) => Err(BusError::OnlyOverNats { op: "purging dead letters".into() }),
        }
    }

    /// Puts dead letter `seq` back on `queue` (on `subject_key`, the book id for results) with
    /// its original payload, then removes it from the dead-letter stream. Publishing it again is
    /// deduplicated by `replay.<seq>` for JetStream's duplicate window, so a replay repeated
    /// after a failure between the two steps enqueues it once. Checking that the message is
    /// worth replaying is the caller's (it knows what the queues carry).
    pub async fn replay_dead_letter(
        &self,
        seq: u64,
        queue: Queue,
        subject_key: &str,
    ) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.replay_dead_letter(seq, queue, subject_key).await,
            Bus::Memory(_) => Err(BusError::OnlyOverNats { op: "replaying dead letters".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::AgentKind;

    #[test]
    fn every_queue_is_found_again_by_its_dead_letter_name() {
        for q in [Queue::Results, Queue::Submit, Queue::Steps(AgentKind::Chapter)] {
            assert_eq!(Queue::from_dead_letter_name(q.dead_letter_name()), Some(q));
        }
        assert_eq!(Queue::from_dead_letter_name("painter"), None);
    }

    #[tokio::test]
    async fn in_process_dead_letters_are_kept_and_listed_but_not_purged_or_replayed() {
        let bus = Bus::memory();
        bus.dead_letter("chapter", Bytes::from_static(b"x"), "why").await.unwrap();
        let all = bus.dead_letters().await.unwrap();
        assert_eq!((all.len(), all[0].seq, all[0].reason.as_str()), (1, 1, "why"));
        assert_eq!(bus.dead_letter_at(1).await.unwrap().map(|d| d.queue), Some("chapter".into()));
        assert!(bus.dead_letter_at(2).await.unwrap().is_none());
        let e = bus.purge_dead_letters(None).await.unwrap_err();
        assert!(matches!(e, BusError::OnlyOverNats { .. }), "{e:?}");
        let e = bus.replay_dead_letter(1, Queue::Submit, "").await.unwrap_err();
        assert!(matches!(e, BusError::OnlyOverNats { .. }), "{e:?}");
        let e = bus.purge_dead_letters(Some("a.>")).await.unwrap_err();
        assert_eq!(e.rejection(), Some(super::super::Rejection::InvalidKey));
    }
}
