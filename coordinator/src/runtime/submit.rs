//! What a submission or a retry does to its book's record before the book starts: run by the
//! submissions pump once it holds the book's claim, never by the coordinator actor.

use crate::record::{self, BookRecord, LoadError, Status, StepStatus};
use scriptorium_proto::v1::BookBrief;
use scriptorium_proto::{Bus, clock};

/// Why a submission or a retry did not start its book.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A retry names a book that does not exist.
    #[error("no book with id {0}")]
    UnknownBook(String),
    /// A retry names a step the book does not have.
    #[error("book {0} has no step {1}")]
    UnknownStep(String, String),
    /// The book's record could not be read, decoded or written.
    #[error("{0}")]
    Record(#[from] LoadError),
}

impl SubmitError {
    /// Whether the same submission may succeed later (it is handed back, not dead-lettered).
    pub fn is_transient(&self) -> bool {
        matches!(self, SubmitError::Record(e) if e.is_transient())
    }
}

/// A new book: its record created and stored. A repeated submission of a book that exists
/// starts it again when it is unfinished (with its outputs), and does nothing when it is
/// finished (`None`).
pub(super) async fn submit(
    bus: &Bus,
    book_id: &str,
    brief: BookBrief,
) -> Result<Option<BookRecord>, SubmitError> {
    if let Some(mut rec) = record::load_record(bus, book_id).await? {
        if rec.state.is_final() {
            return Ok(None);
        }
        record::load_outputs(bus, &mut rec).await?;
        return Ok(Some(rec));
    }
    let rec = BookRecord::new(book_id.to_string(), brief, clock::now_ms());
    record::store(bus, &rec).await?;
    Ok(Some(rec))
}

/// A finished book put back: its failed steps (`step` empty) or `step` run again, with every
/// step that depends on one of them; stored, then returned with its outputs to start. An
/// unfinished book that is not in flight is returned as it is, to start.
pub(super) async fn retry(
    bus: &Bus,
    book_id: &str,
    step: &str,
) -> Result<Option<BookRecord>, SubmitError> {
    let Some(mut rec) = record::load_record(bus, book_id).await? else {
        return Err(SubmitError::UnknownBook(book_id.into()));
    };
    if !step.is_empty() && !rec.steps.contains_key(step) {
        return Err(SubmitError::UnknownStep(book_id.into(), step.into()));
    }
    if rec.state.is_final() {
        put_back(&mut rec, step);
        record::load_outputs(bus, &mut rec).await?;
        record::store(bus, &rec).await?;
    } else {
        record::load_outputs(bus, &mut rec).await?;
    }
    Ok(Some(rec))
}

/// Marks the steps a retry runs again as pending, with a fresh budget of attempts.
fn put_back(rec: &mut BookRecord, step: &str) {
    let mut reset: Vec<String> = Vec::new();
    // In plan order, so a step whose input runs again runs again too.
    for planned in rec.plan.steps.clone() {
        let id = planned.id.clone();
        let Some(s) = rec.steps.get_mut(&id) else { continue };
        if s.status == StepStatus::Running {
            // Abandoned or cancelled when the book stopped: asked again with a new attempt.
            s.status = StepStatus::Pending;
            s.reserved_usd = 0.0;
        }
        let wanted = if step.is_empty() { s.status == StepStatus::Failed } else { id == step };
        if wanted || planned.deps.iter().any(|d| reset.contains(d)) {
            s.status = StepStatus::Pending;
            s.reserved_usd = 0.0;
            // Attempt numbers stay unique for idempotency.
            s.retry_base = s.attempt;
            reset.push(id);
        }
    }
    tracing::info!(book_id = %rec.id, steps = ?reset, "book put back");
    rec.state = Status::Running;
    rec.failure = None;
    rec.finished_ms = 0;
}
