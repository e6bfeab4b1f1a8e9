//! Running a coordinator on a bus: the coordinator actor plus one task per queue it reads
//! (submissions and results), and the resume of unfinished books at start-up.

use crate::actors::coordinator::{Coordinator, CoordinatorMsg};
use crate::record::BookRecord;
use crate::{CoordinatorConfig, Env, Stats, brief};
use anyhow::Context as _;
use ractor::{Actor, ActorRef};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, Queue};
use scriptorium_proto::v1::{StepResult, SubmitBook};
use scriptorium_proto::{Bus, Source};
use std::sync::Arc;
use std::time::Duration;

/// A running coordinator.
pub struct CoordinatorHandle {
    actor: ActorRef<CoordinatorMsg>,
    env: Arc<Env>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

impl CoordinatorHandle {
    /// Starts the coordinator on `bus`, resumes unfinished books and starts reading queues.
    pub async fn start(bus: Bus, cfg: CoordinatorConfig) -> anyhow::Result<Self> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let env = Arc::new(Env { bus: bus.clone(), cfg, stats: Stats::default() });
        let (actor, _) = Actor::spawn(None, Coordinator, env.clone())
            .await
            .context("starting the coordinator actor")?;
        let mut resumed = 0;
        for key in bus.kv_keys(Bucket::Books).await.context("listing stored books")? {
            let Some(bytes) = bus.kv_get(Bucket::Books, &key).await? else { continue };
            match serde_json::from_slice::<BookRecord>(&bytes) {
                Ok(rec) if !rec.state.is_final() => {
                    actor.cast(CoordinatorMsg::Resume { record: Box::new(rec) })?;
                    resumed += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(book_id = %key, error = %e, "stored book record unreadable; left alone")
                }
            }
        }
        if resumed > 0 {
            tracing::info!(books = resumed, "resumed unfinished books");
        }
        let results = bus.source(Queue::Results, 256).await.context("opening the results queue")?;
        let submits = bus.source(Queue::Submit, 16).await.context("opening the submit queue")?;
        let pumps = vec![
            tokio::spawn(pump_results(results, actor.clone(), bus.clone())),
            tokio::spawn(pump_submits(submits, actor.clone(), bus.clone())),
        ];
        tracing::info!(distributed = bus.is_distributed(), "coordinator started");
        Ok(Self { actor, env, pumps })
    }

    /// The coordinator's counters.
    pub fn stats(&self) -> &Stats {
        &self.env.stats
    }

    /// Number of books in flight.
    pub async fn in_flight(&self) -> anyhow::Result<usize> {
        Ok(ractor::call!(self.actor, CoordinatorMsg::InFlight)?)
    }

    /// Stops reading queues and stops the actors; state is already stored after every change.
    pub async fn shutdown(self) {
        for p in &self.pumps {
            p.abort();
        }
        let _ = self.env.bus.flush().await;
        self.actor.stop(None);
    }
}

async fn next_or_wait(source: &mut Source, what: &str) -> Option<scriptorium_proto::Incoming> {
    loop {
        match source.next().await? {
            Ok(m) => return Some(m),
            Err(e) => {
                tracing::warn!(queue = what, error = %e, "queue read failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Largest result or submission message the coordinator reads.
pub const MAX_MESSAGE_BYTES: usize = 768 * 1024;

/// Stores a message the coordinator cannot use in the dead-letter stream, then removes it
/// from its queue (or hands it back when the dead letter could not be stored).
async fn dead_letter(bus: &Bus, queue: &str, m: &scriptorium_proto::Incoming, reason: &str) {
    match bus.dead_letter(queue, m.payload.clone(), reason).await {
        Ok(()) => {
            let _ = m.acker.term().await;
        }
        Err(e) => {
            tracing::error!(error = %e, "dead letter not stored; message handed back");
            let _ = m.acker.nak(Some(Duration::from_secs(5))).await;
        }
    }
}

async fn pump_results(mut source: Source, actor: ActorRef<CoordinatorMsg>, bus: Bus) {
    while let Some(m) = next_or_wait(&mut source, "results").await {
        if m.payload.len() > MAX_MESSAGE_BYTES {
            let reason =
                format!("result message of {} bytes exceeds {MAX_MESSAGE_BYTES}", m.payload.len());
            dead_letter(&bus, "results", &m, &reason).await;
            continue;
        }
        let result = match StepResult::decode(m.payload.clone()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "undecodable result message dead-lettered");
                dead_letter(&bus, "results", &m, &format!("undecodable result message: {e}")).await;
                continue;
            }
        };
        let (tx, rx) = ractor::concurrency::oneshot();
        if actor
            .cast(CoordinatorMsg::Result { result: Box::new(result), reply: tx.into() })
            .is_err()
        {
            return;
        }
        // Acknowledge once the book has handled (and stored) the result, without holding up
        // the next message: results of different books are handled in parallel.
        tokio::spawn(async move {
            if rx.await.is_ok() {
                let _ = m.acker.ack().await;
            }
        });
    }
}

async fn pump_submits(mut source: Source, actor: ActorRef<CoordinatorMsg>, bus: Bus) {
    while let Some(m) = next_or_wait(&mut source, "submit").await {
        if m.payload.len() > MAX_MESSAGE_BYTES {
            let reason =
                format!("submission of {} bytes exceeds {MAX_MESSAGE_BYTES}", m.payload.len());
            dead_letter(&bus, "submit", &m, &reason).await;
            continue;
        }
        let sub = match SubmitBook::decode(m.payload.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "undecodable submission dead-lettered");
                dead_letter(&bus, "submit", &m, &format!("undecodable submission: {e}")).await;
                continue;
            }
        };
        let brief = sub.brief.unwrap_or_default();
        if let Err(e) = brief::revalidate(&brief) {
            tracing::error!(book_id = %sub.book_id, error = %e, "invalid brief refused");
            crate::client::store_refusal(&bus, &sub.book_id, brief, &e.to_string()).await;
            dead_letter(&bus, "submit", &m, &format!("brief refused: {e}")).await;
            continue;
        }
        let outcome = ractor::call!(actor, |reply| CoordinatorMsg::Submit {
            book_id: sub.book_id.clone(),
            brief: Box::new(brief),
            retry: sub.retry.then(|| sub.step.clone()),
            reply: Some(reply),
        });
        match outcome {
            Ok(Ok(())) => {
                let _ = m.acker.ack().await;
            }
            Ok(Err(e)) => {
                tracing::warn!(book_id = %sub.book_id, error = %e, "submission not started; will be redelivered");
                let _ = m.acker.nak(Some(Duration::from_secs(1))).await;
            }
            Err(_) => return,
        }
    }
}
