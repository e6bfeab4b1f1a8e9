//! Running a coordinator on a bus: the coordinator actor, one supervised pump per queue it reads
//! (submissions and results), the late-results task, its heartbeat, and the resume of
//! unfinished books at start-up.
//!
//! # Layout
//! - [`pumps`]: reading the queues: size and decoding checks, ids checked before any I/O,
//!   dead letters, acknowledgements.
//! - [`submit`]: what a submission, a retry or a rewrite does to the book's record before its
//!   book starts.
//! - [`control`]: operators' commands: to the book's actor when it is in flight, else here.
//! - [`late`]: results of books not in flight (finished, unknown): usage counted, lease released.

mod control;
mod late;
mod pumps;
mod submit;

pub use pumps::MAX_MESSAGE_BYTES;
pub use submit::SubmitError;

use crate::actors::coordinator::{Coordinator, CoordinatorArgs, CoordinatorMsg};
use crate::{CoordinatorConfig, Env, Stats, record};
use anyhow::Context as _;
use ractor::{Actor, ActorRef};
use scriptorium_proto::transport::{Bucket, Queue};
use scriptorium_proto::{Bus, names};
use std::sync::Arc;
use std::time::Duration;

/// A running coordinator.
pub struct CoordinatorHandle {
    actor: ActorRef<CoordinatorMsg>,
    env: Arc<Env>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    id: String,
}

impl CoordinatorHandle {
    /// Starts the coordinator on `bus`, resumes unfinished books and starts reading queues.
    pub async fn start(bus: Bus, cfg: CoordinatorConfig) -> anyhow::Result<Self> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let env = Arc::new(Env::new(bus.clone(), cfg));
        let (late_tx, late_rx) = tokio::sync::mpsc::unbounded_channel();
        let (actor, _) =
            Actor::spawn(None, Coordinator, CoordinatorArgs { env: env.clone(), late: late_tx })
                .await
                .context("starting the coordinator actor")?;
        let mut resumed = 0;
        for key in bus.kv_keys(Bucket::Books).await.context("listing stored books")? {
            if !names::valid_id(&key) {
                tracing::error!(key = %key.escape_debug(), "stored book key is not a valid book id; left alone");
                continue;
            }
            // Headers first: a finished book's plan, steps and outputs are never read.
            let unfinished = match record::load_header(&bus, &key).await {
                Ok(Some(h)) if !h.state.is_final() => record::load_book(&bus, &key).await,
                other => other.map(|_| None),
            };
            match unfinished {
                Ok(Some(rec)) => {
                    actor.cast(CoordinatorMsg::Start { record: Box::new(rec) })?;
                    resumed += 1;
                }
                Ok(None) => {}
                Err(e) if e.is_transient() => return Err(e).context("resuming unfinished books"),
                Err(e) => {
                    tracing::error!(book_id = %key, error = %e, "stored book record unreadable; left alone")
                }
            }
        }
        if resumed > 0 {
            tracing::info!(books = resumed, "resumed unfinished books");
        }
        let results = bus.source(Queue::Results, 256).await.context("opening the results queue")?;
        let submits = pumps::Submissions {
            priority: bus
                .source(Queue::PrioritySubmit, 1)
                .await
                .context("opening the priority submit queue")?,
            normal: bus.source(Queue::Submit, 1).await.context("opening the submit queue")?,
        };
        let controls = bus.source(Queue::Control, 16).await.context("opening the control queue")?;
        let id = format!("coordinator-{}", scriptorium_proto::clock::new_id());
        let tasks = vec![
            tokio::spawn(crate::heartbeat::publish(env.clone(), actor.clone(), id.clone())),
            tokio::spawn(late::run(env.clone(), late_rx)),
            tokio::spawn(crate::retention::run(bus.clone(), env.cfg.keep_finished_hours)),
            tokio::spawn(supervise("results", results, {
                let (actor, env) = (actor.clone(), env.clone());
                move |source| pumps::results(source, actor.clone(), env.clone())
            })),
            tokio::spawn(supervise("submit", submits, {
                let (actor, env) = (actor.clone(), env.clone());
                move |source| pumps::submits(source, actor.clone(), env.clone())
            })),
            tokio::spawn(supervise("control", controls, {
                let (actor, env) = (actor.clone(), env.clone());
                move |source| pumps::controls(source, actor.clone(), env.clone())
            })),
        ];
        tracing::info!(coordinator_id = %id, distributed = bus.is_distributed(), "coordinator started");
        Ok(Self { actor, env, tasks, id })
    }

    /// The coordinator's counters.
    pub fn stats(&self) -> &Stats {
        &self.env.stats
    }

    /// Number of books in flight.
    pub async fn in_flight(&self) -> anyhow::Result<usize> {
        Ok(ractor::call!(self.actor, CoordinatorMsg::InFlight)?)
    }

    /// This coordinator's id, as its heartbeat names it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops reading queues and stops the actors; state is already stored after every change.
    /// Its heartbeat is deleted: `status` shows at once that no coordinator runs.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        // Ended, so that no heartbeat write still in the heartbeat task follows the delete.
        for t in self.tasks {
            let _ = t.await;
        }
        crate::heartbeat::remove(&self.env.bus, &self.id).await;
        let _ = self.env.bus.flush().await;
        self.actor.stop(None);
    }
}

/// What a pump reports when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Its queue ended: start it again.
    Ended,
    /// The coordinator actor is gone: stop for good.
    Stop,
}

/// First and longest pause before a pump is started again.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// A pump that ran this long before ending starts again after the shortest pause.
const STEADY: Duration = Duration::from_secs(60);

/// Runs `pump` on `source` as long as the coordinator lives: when it ends or panics it is
/// logged and started again on the same source after a backoff (doubling from 100 ms to 5 s,
/// back to 100 ms after a pump that ran a minute). Returns when the pump reports
/// [`Flow::Stop`]. Aborting this task aborts the pump.
pub(crate) async fn supervise<S, F, Fut>(queue: &'static str, source: S, pump: F)
where
    S: Send + 'static,
    F: Fn(Arc<tokio::sync::Mutex<S>>) -> Fut,
    Fut: std::future::Future<Output = Flow> + Send + 'static,
{
    // Shared so that it outlives a panicking pump (a tokio mutex is not poisoned by one).
    let source = Arc::new(tokio::sync::Mutex::new(source));
    let mut delay = RESTART_BACKOFF.0;
    loop {
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(pump(source.clone()));
        let _abort = AbortOnDrop(task.abort_handle());
        match task.await {
            Ok(Flow::Stop) => {
                tracing::info!(queue, "coordinator stopped; queue pump ends");
                return;
            }
            Ok(Flow::Ended) => tracing::warn!(queue, "queue pump ended; restarting"),
            Err(e) if e.is_panic() => tracing::error!(queue, "queue pump panicked; restarting"),
            Err(_) => return,
        }
        metrics::counter!("scriptorium_coordinator_pump_restarts_total", "queue" => queue)
            .increment(1);
        if started.elapsed() >= STEADY {
            delay = RESTART_BACKOFF.0;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RESTART_BACKOFF.1);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_pump_that_panics_or_ends_is_started_again_on_the_same_source() {
        let runs = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (r, s) = (runs.clone(), seen.clone());
        let supervisor = supervise("test", 7_u32, move |source| {
            let (runs, seen) = (r.clone(), s.clone());
            async move {
                let mut value = source.lock().await;
                *value += 1;
                seen.lock().unwrap().push(*value);
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => panic!("pump bug"),
                    1 => Flow::Ended,
                    _ => Flow::Stop,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), supervisor)
            .await
            .expect("the supervisor returns once the pump says stop");
        assert_eq!(runs.load(Ordering::SeqCst), 3, "panicked, ended, then stopped");
        assert_eq!(*seen.lock().unwrap(), [8, 9, 10], "every run had the same source");
    }

    #[tokio::test]
    async fn aborting_the_supervisor_aborts_its_pump() {
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let (alive_tx, alive) = tokio::sync::oneshot::channel::<()>();
        let handles = Arc::new(std::sync::Mutex::new(Some((started_tx, alive_tx))));
        let supervisor = tokio::spawn(supervise("test", (), move |_| {
            let taken = handles.lock().unwrap().take();
            async move {
                let (started, _alive) = taken.expect("started once");
                let _ = started.send(());
                // `_alive` is dropped, closing its channel, only when this pump is aborted.
                std::future::pending::<Flow>().await
            }
        }));
        started.await.expect("the pump starts");
        supervisor.abort();
        tokio::time::timeout(Duration::from_secs(5), alive)
            .await
            .expect("the pump is aborted with its supervisor")
            .expect_err("nothing is sent: the pump's end drops the sender");
    }
}
