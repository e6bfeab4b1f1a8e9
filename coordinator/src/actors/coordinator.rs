//! The coordinator actor: routes step results to one supervised book actor per book in flight
//! and starts books from records loaded elsewhere. It never waits on I/O itself.
//!
//! Book records are read and written by the submission pump (new books, retries), at start-up
//! (resumes) and by a task this actor spawns when a book actor crashes; each hands the loaded
//! record over with [`CoordinatorMsg::Start`]. A book being loaded is *claimed*: its results are
//! held and handed to its actor once it starts. Results for books not in flight go to the
//! late-results task (which counts their usage and releases their cache lease). So one slow or
//! bad book never holds up the results of the others.

use super::book::{Book, BookArgs, BookMsg};
use crate::Env;
use crate::record::{self, BookRecord, Status};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort,
    SupervisionEvent,
};
use scriptorium_proto::clock;
use scriptorium_proto::v1::StepResult;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a crashed book actor is restarted from its stored record before the book fails.
const MAX_RESTARTS: u32 = 3;

/// A result whose book is not in flight, for the late-results task; `reply` is answered once it
/// is handled, so that its message is acknowledged only then.
pub struct Late {
    /// The result.
    pub result: Box<StepResult>,
    /// Answered when handled.
    pub reply: RpcReplyPort<()>,
}

/// Arguments of the coordinator actor.
pub struct CoordinatorArgs {
    /// Shared coordinator environment.
    pub env: Arc<Env>,
    /// Where results of books not in flight go.
    pub late: mpsc::UnboundedSender<Late>,
}

/// The coordinator actor behaviour.
pub struct Coordinator;

/// A result waiting for its book to start.
type Held = (Box<StepResult>, RpcReplyPort<()>);

/// What the coordinator knows of one book.
enum Slot {
    /// Its actor runs.
    Running(ActorRef<BookMsg>),
    /// Its record is being loaded; results that arrive meanwhile wait here.
    Loading(Vec<Held>),
}

/// State of the coordinator.
pub struct CoordinatorState {
    env: Arc<Env>,
    books: HashMap<String, Slot>,
    by_actor: HashMap<ActorId, String>,
    restarts: HashMap<String, u32>,
    late: mpsc::UnboundedSender<Late>,
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The book is yours to load: answer with [`CoordinatorMsg::Start`] or
    /// [`CoordinatorMsg::Release`].
    Granted,
    /// The book is in flight or being loaded already: leave it alone.
    Taken,
}

/// Messages the coordinator understands.
pub enum CoordinatorMsg {
    /// Claims a book that is not in flight, to load (and maybe start) it.
    Claim {
        /// The book (a valid id).
        book_id: String,
        /// Whether the book is now the caller's to load.
        reply: RpcReplyPort<Claim>,
    },
    /// Starts a book from its loaded record (outputs included), unless it runs already; the
    /// results held while it was loaded go to its actor.
    Start {
        /// The record.
        record: Box<BookRecord>,
    },
    /// Gives up a claim without starting the book (finished, unknown, or not loadable); the
    /// results held meanwhile go to the late-results task.
    Release {
        /// The book.
        book_id: String,
    },
    /// A step result to route to its book.
    Result {
        /// The result (ids already checked).
        result: Box<StepResult>,
        /// Answered once the result is handled (and stored).
        reply: RpcReplyPort<()>,
    },
    /// An operator's command for a book in flight: handed to its actor, which answers
    /// `answer` once it is applied (or refused); `routed` says whether it was handed over.
    Command {
        /// The command.
        command: Box<crate::control::Command>,
        /// The book actor's answer (`Err`: refused, with the reason).
        answer: RpcReplyPort<Result<(), String>>,
        /// Whether the book was in flight to take it.
        routed: RpcReplyPort<Routed>,
    },
    /// Number of books in flight (running or being loaded).
    InFlight(RpcReplyPort<usize>),
}

/// Where an operator's command went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// To the book's actor, which answers it.
    Delivered,
    /// The book is not in flight: its record is the caller's to handle.
    NotInFlight,
    /// The book is being loaded: ask again shortly.
    Loading,
}

impl Actor for Coordinator {
    type Msg = CoordinatorMsg;
    type State = CoordinatorState;
    type Arguments = CoordinatorArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<CoordinatorMsg>,
        args: CoordinatorArgs,
    ) -> Result<CoordinatorState, ActorProcessingErr> {
        Ok(CoordinatorState {
            env: args.env,
            books: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
            late: args.late,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<CoordinatorMsg>,
        msg: CoordinatorMsg,
        st: &mut CoordinatorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CoordinatorMsg::Claim { book_id, reply } => {
                let claim = match st.books.entry(book_id) {
                    std::collections::hash_map::Entry::Occupied(_) => Claim::Taken,
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(Slot::Loading(Vec::new()));
                        Claim::Granted
                    }
                };
                let _ = reply.send(claim);
            }
            CoordinatorMsg::Start { record } => st.start(&me, record).await,
            CoordinatorMsg::Release { book_id } => {
                if let Some(Slot::Loading(held)) = st.books.remove(&book_id) {
                    st.to_late(held);
                } else if let Some(slot) = st.books.get(&book_id) {
                    tracing::debug!(book_id = %book_id, running = matches!(slot, Slot::Running(_)), "release of a book not claimed ignored");
                }
            }
            CoordinatorMsg::Result { result, reply } => st.route(result, reply),
            CoordinatorMsg::Command { command, answer, routed } => {
                let r = match st.books.get(&command.book_id) {
                    Some(Slot::Running(book)) => {
                        match book.cast(BookMsg::Command { command, reply: answer }) {
                            Ok(()) => Routed::Delivered,
                            Err(_) => Routed::NotInFlight,
                        }
                    }
                    Some(Slot::Loading(_)) => Routed::Loading,
                    None => Routed::NotInFlight,
                };
                let _ = routed.send(r);
            }
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
                // Reloaded from its record by a task: results wait meanwhile.
                st.books.insert(id.clone(), Slot::Loading(Vec::new()));
                tokio::spawn(reload(st.env.clone(), me, id, *n, err.to_string()));
            }
            _ => {}
        }
        Ok(())
    }
}

impl CoordinatorState {
    /// Forgets the book actor `cell`, returning its book id.
    fn forget(&mut self, cell: &ActorCell) -> Option<String> {
        let id = self.by_actor.remove(&cell.get_id())?;
        if matches!(self.books.get(&id), Some(Slot::Running(b)) if b.get_id() == cell.get_id()) {
            self.books.remove(&id);
        }
        Some(id)
    }

    fn to_late(&self, held: Vec<Held>) {
        for (result, reply) in held {
            if self.late.send(Late { result, reply }).is_err() {
                tracing::warn!("late-results task gone; result left unacknowledged");
            }
        }
    }

    fn route(&mut self, result: Box<StepResult>, reply: RpcReplyPort<()>) {
        match self.books.get_mut(&result.book_id) {
            Some(Slot::Running(book)) => {
                if let Err(e) = book.cast(BookMsg::Result { result, reply: Some(reply) }) {
                    tracing::debug!("book stopped before its result arrived");
                    if let MessagingErr::SendErr(BookMsg::Result { result, reply: Some(reply) }) = e
                    {
                        self.to_late(vec![(result, reply)]);
                    }
                }
            }
            Some(Slot::Loading(held)) => held.push((result, reply)),
            None => self.to_late(vec![(result, reply)]),
        }
    }

    async fn start(&mut self, me: &ActorRef<CoordinatorMsg>, record: Box<BookRecord>) {
        let id = record.id.clone();
        let held = match self.books.remove(&id) {
            Some(Slot::Running(book)) => {
                tracing::debug!(book_id = %id, "book in flight already; start ignored");
                self.books.insert(id, Slot::Running(book));
                return;
            }
            Some(Slot::Loading(held)) => held,
            None => Vec::new(),
        };
        // The record comes with its outputs, so the book actor's start does no I/O.
        let spawned = Actor::spawn_linked(
            None,
            Book,
            BookArgs { env: self.env.clone(), record },
            me.get_cell(),
        )
        .await;
        match spawned {
            Ok((book, _)) => {
                self.by_actor.insert(book.get_id(), id.clone());
                for (result, reply) in held {
                    let _ = book.cast(BookMsg::Result { result, reply: Some(reply) });
                }
                self.books.insert(id, Slot::Running(book));
            }
            Err(e) => {
                tracing::error!(book_id = %id, error = %e, "book actor did not start");
                self.to_late(held);
            }
        }
    }
}

/// Reloads a book whose actor crashed and starts it again, or fails it after
/// [`MAX_RESTARTS`] crashes; runs as its own task, so the coordinator keeps routing meanwhile.
async fn reload(
    env: Arc<Env>,
    me: ActorRef<CoordinatorMsg>,
    id: String,
    restarts: u32,
    err: String,
) {
    let mut delay = Duration::from_millis(100);
    let loaded = loop {
        match record::load_book(&env.bus, &id).await {
            Err(e) if e.is_transient() => {
                tracing::warn!(book_id = %id, error = %e, "crashed book not reloaded yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => break other,
        }
    };
    let next = match loaded {
        Ok(Some(mut rec)) if !rec.state.is_final() && restarts > MAX_RESTARTS => {
            for (step, attempt) in rec
                .steps
                .iter()
                .filter(|(_, s)| s.status == record::StepStatus::Running)
                .map(|(k, s)| (k.clone(), s.attempt))
                .collect::<Vec<_>>()
            {
                let _ = env.bus.announce_cancel(&id, &step, attempt).await;
            }
            rec.state = Status::Failed;
            rec.failure = Some(format!("book actor crashed {restarts} times: {err}"));
            rec.finished_ms = clock::now_ms();
            if let Err(e) = record::store(&env.bus, &mut rec).await {
                tracing::error!(book_id = %id, error = %e, "failed book not stored");
            }
            CoordinatorMsg::Release { book_id: id }
        }
        Ok(Some(rec)) if !rec.state.is_final() => CoordinatorMsg::Start { record: Box::new(rec) },
        Ok(_) => CoordinatorMsg::Release { book_id: id },
        Err(e) => {
            tracing::error!(book_id = %id, error = %e, "crashed book cannot be reloaded; left alone");
            CoordinatorMsg::Release { book_id: id }
        }
    };
    let _ = me.cast(next);
}
