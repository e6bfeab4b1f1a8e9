//! The coordinator actor: starts one supervised book actor per book in flight and routes
//! step results to them.

use super::book::{Book, BookArgs, BookMsg};
use crate::Env;
use crate::record::{BookRecord, Status};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use scriptorium_proto::clock;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::{BookBrief, StepResult};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How often a crashed book actor is restarted from its stored record before the book fails.
const MAX_RESTARTS: u32 = 3;

/// Why a submission or a retry did not start its book.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A retry names a book that does not exist.
    #[error("no book with id {0}")]
    UnknownBook(String),
    /// The book's record could not be read or written.
    #[error("book state: {0}")]
    Bus(#[from] scriptorium_proto::BusError),
    /// The book's record could not be encoded.
    #[error("book record: {0}")]
    Encode(#[from] serde_json::Error),
    /// The book actor did not start.
    #[error("starting the book actor: {0}")]
    Spawn(String),
}

impl SubmitError {
    /// Whether the same submission may succeed later (it is handed back, not dead-lettered).
    pub fn is_transient(&self) -> bool {
        match self {
            SubmitError::Bus(_) | SubmitError::Spawn(_) => true,
            SubmitError::UnknownBook(_) | SubmitError::Encode(_) => false,
        }
    }
}

/// The coordinator actor behaviour.
pub struct Coordinator;

/// State of the coordinator.
pub struct CoordinatorState {
    env: Arc<Env>,
    books: HashMap<String, ActorRef<BookMsg>>,
    by_actor: HashMap<ActorId, String>,
    restarts: HashMap<String, u32>,
}

/// Messages the coordinator understands.
pub enum CoordinatorMsg {
    /// Start a new book (idempotent per book id); replies once its record is stored.
    Submit {
        /// The book id chosen by the submitter.
        book_id: String,
        /// The validated brief.
        brief: Box<BookBrief>,
        /// Put a failed book back: `Some("")` for every failed step, `Some(step)` for one.
        retry: Option<String>,
        /// Answered when the book is started, or with why it was not.
        reply: Option<RpcReplyPort<Result<(), SubmitError>>>,
    },
    /// Continue an unfinished book from its stored record.
    Resume {
        /// The stored record.
        record: Box<BookRecord>,
    },
    /// A step result to route to its book.
    Result {
        /// The result.
        result: Box<StepResult>,
        /// Answered once the book handled it.
        reply: RpcReplyPort<()>,
    },
    /// Number of books in flight.
    InFlight(RpcReplyPort<usize>),
}

impl Actor for Coordinator {
    type Msg = CoordinatorMsg;
    type State = CoordinatorState;
    type Arguments = Arc<Env>;

    async fn pre_start(
        &self,
        _me: ActorRef<CoordinatorMsg>,
        env: Arc<Env>,
    ) -> Result<CoordinatorState, ActorProcessingErr> {
        Ok(CoordinatorState {
            env,
            books: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<CoordinatorMsg>,
        msg: CoordinatorMsg,
        st: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CoordinatorMsg::Submit { book_id, brief, retry, reply } => {
                let outcome = match retry {
                    Some(step) => st.retry(&me, book_id, step).await,
                    None => st.submit(&me, book_id, *brief).await,
                };
                if let Err(e) = &outcome {
                    tracing::warn!(error = %e, "submission refused");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
            CoordinatorMsg::Resume { record } => {
                if !st.books.contains_key(&record.id) {
                    st.spawn(&me, record).await?;
                }
            }
            CoordinatorMsg::Result { result, reply } => match st.books.get(&result.book_id) {
                Some(book) => {
                    if let Err(e) = book.cast(BookMsg::Result { result, reply: Some(reply) }) {
                        tracing::debug!(error = %e, "book stopped before its result arrived");
                    }
                }
                None => {
                    st.env.stats.ignored.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(book_id = %result.book_id, step = %result.step_id, "result for a book not in flight ignored");
                    let _ = reply.send(());
                }
            },
            CoordinatorMsg::InFlight(reply) => {
                let _ = reply.send(st.books.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<CoordinatorMsg>,
        evt: SupervisionEvent,
        st: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                st.forget(&cell);
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = st.forget(&cell) else { return Ok(()) };
                let n = st.restarts.entry(id.clone()).or_default();
                *n += 1;
                tracing::error!(book_id = %id, error = %err, restarts = *n, "book actor crashed");
                let stored = st.env.bus.kv_get(Bucket::Books, &id).await?;
                let Some(mut rec) =
                    stored.and_then(|b| serde_json::from_slice::<BookRecord>(&b).ok())
                else {
                    return Ok(());
                };
                if *n > MAX_RESTARTS {
                    rec.state = Status::Failed;
                    rec.failure = Some(format!("book actor crashed {n} times: {err}"));
                    rec.finished_ms = clock::now_ms();
                    st.env.bus.kv_put(Bucket::Books, &id, serde_json::to_vec(&rec)?.into()).await?;
                } else if !rec.state.is_final() {
                    st.spawn(&me, Box::new(rec)).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl CoordinatorState {
    fn forget(&mut self, cell: &ActorCell) -> Option<String> {
        let id = self.by_actor.remove(&cell.get_id())?;
        self.books.remove(&id);
        Some(id)
    }

    async fn submit(
        &mut self,
        me: &ActorRef<CoordinatorMsg>,
        book_id: String,
        brief: BookBrief,
    ) -> Result<(), SubmitError> {
        if self.books.contains_key(&book_id) {
            return Ok(());
        }
        let stored = self.env.bus.kv_get(Bucket::Books, &book_id).await?;
        if let Some(rec) = stored.and_then(|b| serde_json::from_slice::<BookRecord>(&b).ok()) {
            // A repeated submission: the book exists already (finished, or resumed at start-up).
            if !rec.state.is_final() {
                self.spawn(me, Box::new(rec))
                    .await
                    .map_err(|e| SubmitError::Spawn(e.to_string()))?;
            }
            return Ok(());
        }
        let rec = BookRecord::new(book_id, brief, clock::now_ms());
        self.store_and_spawn(me, rec).await
    }

    /// Stores `rec` and starts its book actor.
    async fn store_and_spawn(
        &mut self,
        me: &ActorRef<CoordinatorMsg>,
        rec: BookRecord,
    ) -> Result<(), SubmitError> {
        let bytes = serde_json::to_vec(&rec)?;
        self.env.bus.kv_put(Bucket::Books, &rec.id, bytes.into()).await?;
        self.spawn(me, Box::new(rec)).await.map_err(|e| SubmitError::Spawn(e.to_string()))
    }

    async fn retry(
        &mut self,
        me: &ActorRef<CoordinatorMsg>,
        book_id: String,
        step: String,
    ) -> Result<(), SubmitError> {
        if self.books.contains_key(&book_id) {
            return Ok(());
        }
        let stored = self.env.bus.kv_get(Bucket::Books, &book_id).await?;
        let Some(mut rec) = stored.and_then(|b| serde_json::from_slice::<BookRecord>(&b).ok())
        else {
            return Err(SubmitError::UnknownBook(book_id));
        };
        if !rec.state.is_final() {
            return Ok(());
        }
        let mut reset: Vec<String> = Vec::new();
        // In plan order, so a step whose input runs again runs again too.
        for planned in rec.plan.steps.clone() {
            let id = planned.id.clone();
            let Some(s) = rec.steps.get_mut(&id) else { continue };
            let wanted = if step.is_empty() {
                s.status == crate::record::StepStatus::Failed
            } else {
                id == step
            };
            if wanted || planned.deps.iter().any(|d| reset.contains(d)) {
                s.status = crate::record::StepStatus::Pending;
                // A fresh budget of attempts; attempt numbers stay unique for idempotency.
                s.retry_base = s.attempt;
                reset.push(id);
            }
        }
        tracing::info!(book_id = %book_id, steps = ?reset, "book put back");
        rec.state = Status::Running;
        rec.failure = None;
        rec.finished_ms = 0;
        self.store_and_spawn(me, rec).await
    }

    async fn spawn(
        &mut self,
        me: &ActorRef<CoordinatorMsg>,
        record: Box<BookRecord>,
    ) -> Result<(), ActorProcessingErr> {
        let id = record.id.clone();
        let (book, _) = Actor::spawn_linked(
            None,
            Book,
            BookArgs { env: self.env.clone(), record },
            me.get_cell(),
        )
        .await?;
        self.by_actor.insert(book.get_id(), id.clone());
        self.books.insert(id, book);
        Ok(())
    }
}
