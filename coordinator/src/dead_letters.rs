//! Replaying a dead letter: the message goes back, with its original payload, on the queue it
//! came from, once checked to be one its reader would take this time. A message that would be
//! given up again (undecodable, too large, an invalid id, a brief that breaks a rule) or that
//! nothing waits for any more (a step of a finished book, or an attempt superseded since) is
//! refused with the reason, and stays where it is.

use crate::brief;
use crate::control::Command;
use crate::record::{self, StepStatus};
use crate::runtime::MAX_MESSAGE_BYTES;
use scriptorium_proto::names::{self, MAX_STEP_BYTES};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{DeadLetter, Queue};
use scriptorium_proto::v1::{BookCommand, StepResult, StepTask, SubmitBook};
use scriptorium_proto::{Bus, BusError};

/// Why a dead letter was not replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No dead letter has this sequence (never stored, purged or replayed already).
    #[error("no dead letter with sequence {0} (`scriptorium dead-letters` lists them)")]
    NotFound(u64),
    /// The message would be given up again, or nothing waits for it: it stays.
    #[error("dead letter {seq} cannot be replayed: {reason}")]
    Refused {
        /// Its sequence.
        seq: u64,
        /// Why, naming the rule or the state in the way.
        reason: String,
    },
    /// The bus failed (or is the in-process one, which cannot replay).
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A dead letter put back on its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Its sequence in the dead-letter stream (it is gone from there now).
    pub seq: u64,
    /// The queue it went back on (as dead letters name queues).
    pub queue: String,
    /// The book it concerns, when it names one.
    pub book_id: String,
}

/// Puts dead letter `seq` back on the queue it came from, once [`check`] accepts it.
pub async fn replay(bus: &Bus, seq: u64) -> Result<Replayed, ReplayError> {
    let letter = bus.dead_letter_at(seq).await?.ok_or(ReplayError::NotFound(seq))?;
    let (queue, book_id) = match check(bus, &letter).await {
        Ok(target) => target,
        Err(reason) => return Err(ReplayError::Refused { seq, reason }),
    };
    let key = if matches!(queue, Queue::Results | Queue::Control) { book_id.as_str() } else { "" };
    bus.replay_dead_letter(seq, queue, key).await?;
    tracing::info!(seq, queue = %letter.queue, book_id = %book_id, "dead letter replayed");
    Ok(Replayed { seq, queue: letter.queue, book_id })
}

/// The queue `letter` goes back on and the book it concerns; `Err(reason)` when its reader
/// would give it up again or nothing waits for it.
pub async fn check(bus: &Bus, letter: &DeadLetter) -> Result<(Queue, String), String> {
    let queue = Queue::from_dead_letter_name(&letter.queue).ok_or_else(|| {
        format!("it came from queue {:?}, which this version does not know", letter.queue)
    })?;
    let size = letter.payload.len();
    let limit = if matches!(queue, Queue::Steps(_)) { MAX_STEP_BYTES } else { MAX_MESSAGE_BYTES };
    if size > limit {
        return Err(format!("its {size} bytes exceed the {limit} its reader accepts"));
    }
    let id = |what: &str, id: &str| {
        if names::valid_id(id) {
            Ok(())
        } else {
            Err(format!("its {what} {id:?} is not a valid id"))
        }
    };
    match queue {
        Queue::Steps(kind) | Queue::PrioritySteps(kind) => {
            let task = StepTask::decode(letter.payload.clone())
                .map_err(|e| format!("undecodable step message: {e}"))?;
            id("book id", &task.book_id)?;
            id("step id", &task.step_id)?;
            if task.kind != kind as i32 {
                return Err(format!("it is not a step of the {} queue", letter.queue));
            }
            step_awaited(bus, &task).await?;
            Ok((queue, task.book_id))
        }
        Queue::Results => {
            let result = StepResult::decode(letter.payload.clone())
                .map_err(|e| format!("undecodable result message: {e}"))?;
            id("book id", &result.book_id)?;
            id("step id", &result.step_id)?;
            Ok((queue, result.book_id))
        }
        Queue::Submit | Queue::PrioritySubmit => {
            let sub = SubmitBook::decode(letter.payload.clone())
                .map_err(|e| format!("undecodable submission: {e}"))?;
            id("book id", &sub.book_id)?;
            match sub.command {
                Some(cmd) => {
                    id("command id", &cmd.command_id)?;
                    Command::try_from(cmd).map_err(|e| format!("its command is refused: {e}"))?;
                }
                None => brief::revalidate(&sub.brief.unwrap_or_default())
                    .map_err(|e| format!("its brief is refused: {e}"))?,
            }
            Ok((queue, sub.book_id))
        }
        Queue::Control => {
            let cmd = BookCommand::decode(letter.payload.clone())
                .map_err(|e| format!("undecodable command: {e}"))?;
            id("book id", &cmd.book_id)?;
            id("command id", &cmd.command_id)?;
            let book = cmd.book_id.clone();
            Command::try_from(cmd).map_err(|e| format!("the command is refused: {e}"))?;
            Ok((queue, book))
        }
    }
}

/// `Ok` when the book of `task` is unfinished and waits for this very attempt of the step: a
/// dead-lettered step fails its book, whose `retry` is then what runs the step again.
async fn step_awaited(bus: &Bus, task: &StepTask) -> Result<(), String> {
    let rec = record::load_record(bus, &task.book_id)
        .await
        .map_err(|e| format!("book {} unreadable: {e}", task.book_id))?
        .ok_or_else(|| format!("no book with id {}", task.book_id))?;
    let retry = format!("`scriptorium retry {}` runs its failed steps again", rec.id);
    if rec.state.is_final() {
        return Err(format!("book {} is {}: {retry}", rec.id, rec.state.name()));
    }
    match rec.steps.get(&task.step_id) {
        Some(s) if s.status == StepStatus::Running && s.attempt == task.attempt => Ok(()),
        Some(s) => {
            let status = match s.status {
                StepStatus::Pending => "pending",
                StepStatus::Running => "running",
                StepStatus::Done => "done",
                StepStatus::Failed => "failed",
            };
            Err(format!(
                "step {} of book {} is {status} at attempt {}, not waiting for attempt {}",
                task.step_id, rec.id, s.attempt, task.attempt
            ))
        }
        None => Err(format!("book {} has no step {}", rec.id, task.step_id)),
    }
}

/// The book a dead letter concerns and its step, when it decodes as its queue's message.
pub fn about(letter: &DeadLetter) -> (Option<String>, Option<String>) {
    let payload = letter.payload.clone();
    match Queue::from_dead_letter_name(&letter.queue) {
        Some(Queue::Steps(_) | Queue::PrioritySteps(_)) | None => StepTask::decode(payload)
            .map(|t| (Some(t.book_id), Some(t.step_id)))
            .unwrap_or_default(),
        Some(Queue::Results) => StepResult::decode(payload)
            .map(|r| (Some(r.book_id), Some(r.step_id)))
            .unwrap_or_default(),
        Some(Queue::Submit | Queue::PrioritySubmit) => SubmitBook::decode(payload)
            .map(|s| {
                let what = s.command.map(|c| format!("command {}", c.command_id));
                (Some(s.book_id), what)
            })
            .unwrap_or_default(),
        Some(Queue::Control) => BookCommand::decode(payload)
            .map(|c| (Some(c.book_id), Some(format!("command {}", c.command_id))))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::AgentKind;

    fn b(m: &impl scriptorium_proto::prost::Message) -> Vec<u8> {
        m.encode_to_vec()
    }

    fn letter(queue: &str, payload: Vec<u8>) -> DeadLetter {
        DeadLetter { seq: 1, queue: queue.into(), reason: "test".into(), payload: payload.into() }
    }

    #[tokio::test]
    async fn what_its_reader_would_give_up_again_is_refused_with_the_reason() {
        let bus = Bus::memory();
        let garbage = vec![0xff, 0xff, 0xff];
        let e = check(&bus, &letter("submit", garbage.clone())).await.unwrap_err();
        assert!(e.starts_with("undecodable submission"), "{e}");
        let e = check(&bus, &letter("chapter", garbage)).await.unwrap_err();
        assert!(e.starts_with("undecodable step message"), "{e}");
        let e = check(&bus, &letter("painter", Vec::new())).await.unwrap_err();
        assert!(e.contains("\"painter\""), "{e}");
        let big = vec![0u8; MAX_STEP_BYTES + 1];
        assert!(check(&bus, &letter("chapter", big)).await.unwrap_err().contains("exceed"));
        let sub = SubmitBook { book_id: "a.b".into(), ..Default::default() };
        let e = check(&bus, &letter("submit", b(&sub))).await.unwrap_err();
        assert!(e.contains("not a valid id"), "{e}");
        let sub = SubmitBook { book_id: "b1".into(), ..Default::default() };
        let e = check(&bus, &letter("submit", b(&sub))).await.unwrap_err();
        assert!(e.starts_with("its brief is refused: brief field `category`"), "{e}");
    }

    #[tokio::test]
    async fn a_step_is_replayed_only_while_its_book_waits_for_that_attempt() {
        let bus = Bus::memory();
        let brief = brief::parse(
            "category = \"fiction\"\ndescription = \"x\"\nchapters = 1\ncharacters = 1\n",
        )
        .unwrap();
        let mut rec = record::BookRecord::new("b1".into(), brief, 0);
        let task = StepTask {
            book_id: "b1".into(),
            step_id: "concept".into(),
            attempt: 2,
            kind: AgentKind::Concept as i32,
            ..Default::default()
        };
        let e = check(&bus, &letter("concept", b(&task))).await.unwrap_err();
        assert_eq!(e, "no book with id b1");
        let step = rec.steps.get_mut("concept").unwrap();
        (step.status, step.attempt) = (StepStatus::Running, 2);
        rec.set_state(record::Status::Running, 1);
        record::store(&bus, &mut rec).await.unwrap();
        let (queue, book) = check(&bus, &letter("concept", b(&task))).await.unwrap();
        assert_eq!((queue, book.as_str()), (Queue::Steps(AgentKind::Concept), "b1"));
        let e = check(&bus, &letter("outline", b(&task))).await.unwrap_err();
        assert!(e.contains("not a step of the outline queue"), "{e}");
        let old = StepTask { attempt: 1, ..task.clone() };
        let e = check(&bus, &letter("concept", b(&old))).await.unwrap_err();
        assert!(e.contains("not waiting for attempt 1"), "{e}");
        rec.set_state(record::Status::Failed, 2);
        record::store(&bus, &mut rec).await.unwrap();
        let e = check(&bus, &letter("concept", b(&task))).await.unwrap_err();
        assert!(e.contains("is failed") && e.contains("scriptorium retry b1"), "{e}");
    }
}
