//! A book's writes, in order and off its actor's path. The actor prepares each store of its
//! record (and each event) and hands it here; a task of the book's own writes them one after
//! another, so the store holds a prefix of what the actor decided, as when the actor awaited
//! each store itself. Meanwhile the actor goes on with its next message: a result that came
//! with its sibling (a book's cast and world are asked together) no longer waits for the
//! other's store.
//!
//! What must follow a write waits for it here: a result is acknowledged, and an operator's
//! command answered, only once the store that records it has landed ([`Writer::then`]). A
//! write that fails ends the task: nothing queued after it is written or acknowledged, and the
//! actor is told, fails, and is reloaded from what did land.

use scriptorium_proto::transport::Bucket;
use scriptorium_proto::{Bus, BusError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::record::Writes;

/// The writes of one book, in the order they were handed over.
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    task: JoinHandle<()>,
}

/// A book's output put, sent when the step was accepted.
pub(crate) type OutputPut = JoinHandle<Result<(), BusError>>;

enum Job {
    /// The outputs a store's record names, then the store.
    Store { outputs: Vec<OutputPut>, writes: Box<Writes> },
    /// A book event, published once what it tells of is stored.
    Event { book_id: String, payload: Vec<u8> },
    /// A write of the book's that never fails it (the response cache's entry), waited for
    /// before what follows.
    Await(JoinHandle<()>),
    /// Runs once everything before it landed; dropped unrun if a write failed.
    Then(Box<dyn FnOnce() + Send>),
}

impl Writer {
    /// Starts the task that writes through `bus`; `failed` is told the first write that fails.
    pub(crate) fn start(bus: Bus, failed: impl FnOnce(String) + Send + 'static) -> Writer {
        let (jobs, rx) = mpsc::unbounded_channel();
        Writer { jobs, task: tokio::spawn(run(bus, rx, failed)) }
    }

    /// Writes `outputs`, then `writes`.
    pub(crate) fn store(&self, outputs: Vec<OutputPut>, writes: Writes) {
        self.send(Job::Store { outputs, writes: Box::new(writes) });
    }

    /// Publishes a book event after the writes before it.
    pub(crate) fn event(&self, book_id: String, payload: Vec<u8>) {
        self.send(Job::Event { book_id, payload });
    }

    /// Makes what is handed over after it wait for `task`, already running, whose failure
    /// is its own (it logs it) and fails nothing here.
    pub(crate) fn after(&self, task: JoinHandle<()>) {
        self.send(Job::Await(task));
    }

    /// Runs `f` once the writes before it landed; never, if one failed.
    pub(crate) fn then(&self, f: impl FnOnce() + Send + 'static) {
        self.send(Job::Then(Box::new(f)));
    }

    /// Waits until the writes handed over so far landed; `Err` if one failed.
    pub(crate) async fn landed(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.then(move || {
            let _ = tx.send(());
        });
        rx.await.map_err(|_| "a write of this book failed; its later writes were dropped".into())
    }

    fn send(&self, job: Job) {
        // Refused only once the task ended on a failed write: the job is dropped unrun, as the
        // jobs queued behind that write were.
        let _ = self.jobs.send(job);
    }
}

impl Drop for Writer {
    /// A book actor that panicked drops its writer unflushed: what was not sent yet is not
    /// written after its book is reloaded.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    bus: Bus,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    failed: impl FnOnce(String) + Send + 'static,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Store { outputs, writes } => {
                if let Err(e) = store(&bus, outputs, *writes).await {
                    // The queued jobs are dropped with the receiver: no later write lands, no
                    // later result is acknowledged.
                    failed(e);
                    return;
                }
            }
            Job::Event { book_id, payload } => {
                if let Err(e) = bus.publish_event(&book_id, payload.into()).await {
                    tracing::debug!(error = %e, "event publish failed");
                }
            }
            Job::Await(task) => {
                if let Err(e) = task.await {
                    tracing::warn!(error = %e, "a book's side write ended abnormally");
                }
            }
            Job::Then(f) => f(),
        }
    }
}

async fn store(bus: &Bus, outputs: Vec<OutputPut>, writes: Writes) -> Result<(), String> {
    let mut first = None;
    for put in outputs {
        let put = put.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = put {
            first.get_or_insert(format!("output not stored: {e}"));
        }
    }
    if let Some(e) = first {
        return Err(e);
    }
    writes.land(bus).await.map_err(|e| format!("record not stored: {e}"))
}

/// The output put of `step`'s accepted `bytes`, sent now.
pub(crate) fn put_output(bus: &Bus, key: String, bytes: Vec<u8>) -> OutputPut {
    let bus = bus.clone();
    tokio::spawn(async move { bus.kv_put(Bucket::Outputs, &key, bytes.into()).await })
}

#[cfg(test)]
mod tests;
