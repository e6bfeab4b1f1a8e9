//! Running a coordinator on a bus: the coordinator actor plus one task per queue it reads
//! (submissions and results), and the resume of unfinished books at start-up.

use crate::actors::coordinator::{Coordinator, CoordinatorMsg};
use crate::record::BookRecord;
use crate::{CoordinatorConfig, Env, Stats, brief};
use anyhow::Context as _;
use ractor::{Actor, ActorRef};
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

/// Whether a pump goes on after a message.
enum Flow {
    /// Read the next message.
    Next,
    /// The coordinator actor is gone: stop reading.
    Stop,
}

/// Reads `source` until it ends or `handle` says stop: a message over [`MAX_MESSAGE_BYTES`] or
/// one that does not decode as `M` is dead-lettered with the reason; the others go to `handle`.
async fn pump<M, F, Fut>(
    mut source: Source,
    bus: Bus,
    queue: &'static str,
    what: &str,
    mut handle: F,
) where
    M: scriptorium_proto::prost::Message + Default,
    F: FnMut(M, scriptorium_proto::Incoming) -> Fut,
    Fut: std::future::Future<Output = Flow>,
{
    while let Some(m) = next_or_wait(&mut source, queue).await {
        if m.payload.len() > MAX_MESSAGE_BYTES {
            let reason = format!("{what} of {} bytes exceeds {MAX_MESSAGE_BYTES}", m.payload.len());
            dead_letter(&bus, queue, &m, &reason).await;
            continue;
        }
        let msg = match M::decode(m.payload.clone()) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::error!(queue, error = %e, "undecodable message dead-lettered");
                dead_letter(&bus, queue, &m, &format!("undecodable {what}: {e}")).await;
                continue;
            }
        };
        if let Flow::Stop = handle(msg, m).await {
            return;
        }
    }
}

async fn pump_results(source: Source, actor: ActorRef<CoordinatorMsg>, bus: Bus) {
    pump(source, bus, "results", "result message", |result: StepResult, m| {
        let actor = actor.clone();
        async move {
            let (tx, rx) = ractor::concurrency::oneshot();
            if actor
                .cast(CoordinatorMsg::Result { result: Box::new(result), reply: tx.into() })
                .is_err()
            {
                return Flow::Stop;
            }
            // Acknowledge once the book has handled (and stored) the result, without holding
            // up the next message: results of different books are handled in parallel.
            tokio::spawn(async move {
                if rx.await.is_ok() {
                    let _ = m.acker.ack().await;
                }
            });
            Flow::Next
        }
    })
    .await
}

async fn pump_submits(source: Source, actor: ActorRef<CoordinatorMsg>, bus: Bus) {
    let refusals = bus.clone();
    pump(source, bus, "submit", "submission", |sub: SubmitBook, m| {
        let (actor, bus) = (actor.clone(), refusals.clone());
        async move {
            let brief = sub.brief.unwrap_or_default();
            if let Err(e) = brief::revalidate(&brief) {
                tracing::error!(book_id = %sub.book_id, error = %e, "invalid brief refused");
                crate::client::store_refusal(&bus, &sub.book_id, brief, &e.to_string()).await;
                dead_letter(&bus, "submit", &m, &format!("brief refused: {e}")).await;
                return Flow::Next;
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
                    Flow::Next
                }
                Ok(Err(e)) if e.is_transient() => {
                    tracing::warn!(book_id = %sub.book_id, error = %e, "submission not started; will be redelivered");
                    let _ = m.acker.nak(Some(Duration::from_secs(1))).await;
                    Flow::Next
                }
                Ok(Err(e)) => {
                    tracing::error!(book_id = %sub.book_id, error = %e, "submission refused");
                    dead_letter(&bus, "submit", &m, &format!("submission refused: {e}")).await;
                    Flow::Next
                }
                Err(_) => Flow::Stop,
            }
        }
    })
    .await
}
