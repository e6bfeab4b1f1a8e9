//! What a submission or a retry does to its book's record before the book starts: run by the
//! submissions pump once it holds the book's claim, never by the coordinator actor.

use crate::record::{self, BookRecord, LoadError, Status, StepStatus};
use scriptorium_proto::v1::{AgentKind, BookBrief};
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
    let mut rec = BookRecord::new(book_id.to_string(), brief, clock::now_ms());
    record::store(bus, &mut rec).await?;
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
        record::store(bus, &mut rec).await?;
    } else {
        record::load_outputs(bus, &mut rec).await?;
    }
    Ok(Some(rec))
}

/// An operator's retry of `rec` (its failed steps, or `step` and what depends on it), checked:
/// `Err(reason)` when the book is not finished, or is done and no step is named, or has no
/// such step.
pub(super) fn put_back_checked(rec: &mut BookRecord, step: &str) -> Result<(), String> {
    let id = &rec.id;
    if !rec.state.is_final() {
        return Err(format!("book {id} is {}, not finished: nothing to retry", rec.state.name()));
    }
    if rec.state == Status::Done && step.is_empty() {
        return Err(format!("book {id} is done: name a --step to run again"));
    }
    if !step.is_empty() && !rec.steps.contains_key(step) {
        let known: Vec<&str> = rec.steps.keys().map(String::as_str).collect();
        return Err(format!("book {id} has no step {step:?} (steps: {})", known.join(", ")));
    }
    put_back(rec, step);
    Ok(())
}

/// An operator's rewrite of a finished book from chapter `from`: the chapters before it stay as
/// they are; chapter `from` becomes the person's `text` (its review and edit skipped) or is
/// drafted again; every chapter after it is drafted again from the continuity ledger as it now
/// stands, reviewed and edited; the book is assembled again as its next version (the previous
/// version's files are kept beside). Returns the steps whose outputs it set, to store.
pub(super) fn rewrite(
    rec: &mut BookRecord,
    from: u32,
    text: Option<&str>,
    by: &str,
) -> Result<Vec<String>, String> {
    let id = rec.id.clone();
    if rec.state != Status::Done {
        return Err(format!(
            "book {id} is {}: only a done book is rewritten (retry a failed one)",
            rec.state.name()
        ));
    }
    let chapters = rec.brief.chapters;
    if !(1..=chapters).contains(&from) {
        return Err(format!("book {id} has chapters 1 to {chapters}: no chapter {from}"));
    }
    let mut written = Vec::new();
    let hand = match text {
        Some(t) => Some(crate::assembly::chapter_from_markdown(rec, from, t)?),
        None => None,
    };
    for planned in rec.plan.steps.clone() {
        let redo = planned.chapter > from
            || (planned.chapter == from && hand.is_none())
            || planned.id == crate::plan::ASSEMBLY;
        let by_hand = planned.chapter == from && hand.is_some();
        let Some(s) = rec.steps.get_mut(&planned.id) else { continue };
        if redo {
            s.status = StepStatus::Pending;
            s.retry_base = s.attempt;
            s.rejections.clear();
            s.skipped = false;
            s.kept_draft.clear();
            s.cache_key.clear();
            rec.outputs.remove(&planned.id);
        } else if let (true, Some(chapter)) = (by_hand, &hand) {
            // The person's text is the chapter's draft (the ledger folds it) and its final text:
            // a review or an edit would rewrite it.
            let doc = serde_json::to_value(chapter).map_err(|e| e.to_string())?;
            s.status = StepStatus::Done;
            s.route = format!("written by {by}");
            s.rejections.clear();
            s.cache_key.clear();
            if planned.kind == AgentKind::Review {
                s.skipped = true;
                rec.outputs.remove(&planned.id);
                continue;
            }
            if planned.kind == AgentKind::Edit {
                s.skipped = true;
                s.kept_draft = format!("written by hand by {by}");
            }
            rec.outputs.insert(planned.id.clone(), doc.into());
            written.push(planned.id.clone());
        }
    }
    rec.version += 1;
    rec.failure = None;
    rec.finished_ms = 0;
    rec.set_state(Status::Running, clock::now_ms());
    tracing::info!(book_id = %id, from, by_hand = hand.is_some(), version = rec.version, "book put back for a rewrite");
    Ok(written)
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
    rec.set_state(rec.held_state(), clock::now_ms());
    rec.failure = None;
    rec.finished_ms = 0;
}
