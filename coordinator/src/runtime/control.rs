//! Operators' commands as the submissions pump handles them: a command for a book in flight
//! goes to its actor (which applies or refuses it, and records it); a command for a book not in
//! flight is handled here under the book's claim: `retry` and `rewrite` put a finished book
//! back and start it, anything else is refused. Either way the record lists the command, applied
//! or refused, by its id, so the CLI learns what became of it and a redelivered command is
//! never applied twice.

use super::submit::{self, SubmitError};
use crate::Env;
use crate::actors::coordinator::{Claim, CoordinatorMsg, Routed};
use crate::control::{Action, Command};
use crate::record::{self, BookRecord};
use ractor::ActorRef;
use scriptorium_proto::clock;
use scriptorium_proto::transport::Bucket;
use std::time::Duration;

/// What the pump does with the command's message once handled.
pub(super) enum Next {
    /// Acknowledge it.
    Ack,
    /// Hand it back to be delivered again after a pause (the book is being loaded, or its
    /// record could not be read).
    Later(Duration),
    /// The coordinator actor is gone.
    Stop,
}

/// Handles one command (ids already checked).
pub(super) async fn handle(actor: &ActorRef<CoordinatorMsg>, env: &Env, cmd: Command) -> Next {
    let (answer_tx, answer_rx) = ractor::concurrency::oneshot();
    let routed = ractor::call!(actor, |routed| CoordinatorMsg::Command {
        command: Box::new(cmd.clone()),
        answer: answer_tx.into(),
        routed,
    });
    match routed {
        Err(_) => Next::Stop,
        Ok(Routed::Delivered) => match answer_rx.await {
            Ok(_) => Next::Ack,
            // The book actor stopped before answering (it crashed, or finished): ask again.
            Err(_) => Next::Later(Duration::from_millis(200)),
        },
        Ok(Routed::Loading) => Next::Later(Duration::from_millis(200)),
        Ok(Routed::NotInFlight) => not_in_flight(actor, env, cmd).await,
    }
}

/// A command for a book not in flight, under the book's claim.
async fn not_in_flight(actor: &ActorRef<CoordinatorMsg>, env: &Env, cmd: Command) -> Next {
    let book_id = cmd.book_id.clone();
    let claim =
        ractor::call!(actor, |reply| CoordinatorMsg::Claim { book_id: book_id.clone(), reply });
    match claim {
        Err(_) => return Next::Stop,
        // It started meanwhile: route it again.
        Ok(Claim::Taken) => return Next::Later(Duration::from_millis(100)),
        Ok(Claim::Granted) => {}
    }
    let (next, msg) = match offline(env, &cmd).await {
        Ok(Some(rec)) => (Next::Ack, CoordinatorMsg::Start { record: Box::new(rec) }),
        Ok(None) => (Next::Ack, CoordinatorMsg::Release { book_id }),
        Err(e) => {
            tracing::warn!(book_id = %cmd.book_id, error = %e, "command not handled yet; handed back");
            (Next::Later(Duration::from_secs(1)), CoordinatorMsg::Release { book_id })
        }
    };
    if actor.cast(msg).is_err() {
        return Next::Stop;
    }
    next
}

/// Applies `cmd` to the stored record of a book not in flight: the record to start (a retry or
/// a rewrite put it back), or `None` (refused, or the command was handled before).
async fn offline(env: &Env, cmd: &Command) -> Result<Option<BookRecord>, SubmitError> {
    let bus = &env.bus;
    let Some(mut rec) = record::load_book(bus, &cmd.book_id).await? else {
        tracing::warn!(book_id = %cmd.book_id, action = cmd.action.name(), "command for an unknown book dropped");
        return Ok(None);
    };
    if rec.handled(&cmd.id).is_some() {
        return Ok(None);
    }
    let outcome = match &cmd.action {
        Action::Retry { step } => {
            submit::put_back_checked(&mut rec, step.as_deref().unwrap_or("")).map(|()| Vec::new())
        }
        Action::Rewrite { from_chapter, text } => {
            submit::rewrite(&mut rec, *from_chapter, text.as_deref(), &cmd.by)
        }
        other if !rec.state.is_final() => {
            // Not in flight yet unfinished: the coordinator resumes it at start; ask again then.
            Err(format!("book {} is not in flight: {} it once it resumes", rec.id, other.name()))
        }
        other => {
            Err(format!("book {} is {}: nothing to {}", rec.id, rec.state.name(), other.name()))
        }
    };
    let refused = outcome.clone().err().unwrap_or_default();
    rec.actions.push(record::Action {
        id: cmd.id.clone(),
        at_ms: clock::now_ms(),
        by: cmd.by.clone(),
        action: cmd.action.name().into(),
        step: cmd.action.target(),
        note: String::new(),
        refused: refused.clone(),
    });
    if let Ok(written) = outcome {
        tracing::info!(book_id = %rec.id, action = cmd.action.name(), by = %cmd.by, "operator command applied");
        for step in written {
            if let Some(doc) = rec.outputs.get(&step) {
                let key = record::output_key(&rec.id, &step);
                bus.kv_put(Bucket::Outputs, &key, doc.to_vec().into())
                    .await
                    .map_err(record::LoadError::from)?;
            }
        }
        record::store(bus, &mut rec).await?;
        Ok(Some(rec))
    } else {
        tracing::warn!(book_id = %rec.id, action = cmd.action.name(), by = %cmd.by, reason = %refused, "operator command refused");
        record::store(bus, &mut rec).await?;
        Ok(None)
    }
}
