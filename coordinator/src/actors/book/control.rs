//! What operators do to a book in flight: approval gates (a step of a kind the brief names in
//! `approve` holds the book once its answer is accepted, until `approve`, `reject` or `edit`),
//! and `cancel`, `pause` and `resume`. Every command, applied or refused, is kept in the record's
//! `actions` with who gave it and when.
//!
//! A held book (awaiting approval, or paused) dispatches nothing new: attempts already running
//! finish and their answers are accepted (nothing is lost), a re-ask or a timed-out attempt goes
//! back to pending, and the book goes on where it stood once released.

use super::{BookMsg, BookState};
use crate::control::{Action, Command};
use crate::record::{self, Status, StepStatus};
use ractor::{ActorProcessingErr, ActorRef};
use scriptorium_common::cache;
use scriptorium_contracts::kinds;
use scriptorium_proto::{clock, kind};

impl BookState {
    /// Applies `cmd` (once: a command handled before is answered as it was), stores the
    /// record and announces the change; `Err(reason)` when it was refused.
    pub(super) async fn command(
        &mut self,
        me: &ActorRef<BookMsg>,
        cmd: Command,
    ) -> Result<Result<(), String>, ActorProcessingErr> {
        if let Some(done) = self.rec.handled(&cmd.id) {
            return Ok(if done.refused.is_empty() { Ok(()) } else { Err(done.refused.clone()) });
        }
        let outcome = self.apply(&cmd).await?;
        let refused = outcome.clone().err().unwrap_or_default();
        if refused.is_empty() {
            tracing::info!(book_id = %self.rec.id, action = cmd.action.name(), by = %cmd.by, "operator command applied");
        } else {
            tracing::warn!(book_id = %self.rec.id, action = cmd.action.name(), by = %cmd.by, reason = %refused, "operator command refused");
        }
        let note = match &cmd.action {
            Action::Reject { note, .. } => note.clone(),
            _ => String::new(),
        };
        self.rec.actions.push(record::Action {
            id: cmd.id.clone(),
            at_ms: clock::now_ms(),
            by: cmd.by.clone(),
            action: cmd.action.name().into(),
            step: cmd.action.target(),
            note,
            refused,
        });
        if outcome.is_ok() && !self.rec.state.is_final() {
            self.advance(me).await?;
        } else {
            self.store()?;
            self.event("");
        }
        Ok(outcome)
    }

    async fn apply(&mut self, cmd: &Command) -> Result<Result<(), String>, ActorProcessingErr> {
        let state = self.rec.state;
        if state.is_final() {
            return Ok(Err(format!(
                "book {} is {}: nothing to {}",
                self.rec.id,
                state.name(),
                cmd.action.name()
            )));
        }
        match &cmd.action {
            Action::Approve { step } => Ok(self.approve(step.as_deref())),
            Action::Reject { step, note } => self.reject(step.as_deref(), note).await,
            Action::Edit { step, answer, approve } => {
                self.edit(step, answer, *approve, &cmd.by).await
            }
            Action::Cancel => {
                self.finish(Status::Cancelled, None).await?;
                Ok(Ok(()))
            }
            Action::Pause => {
                self.rec.paused = true;
                self.rec.set_state(self.rec.held_state(), clock::now_ms());
                Ok(Ok(()))
            }
            Action::Resume => {
                if !self.rec.paused {
                    return Ok(Err(format!("book {} is not paused", self.rec.id)));
                }
                self.rec.paused = false;
                self.rec.set_state(self.rec.held_state(), clock::now_ms());
                Ok(Ok(()))
            }
            Action::Rewrite { .. } | Action::Retry { .. } => Ok(Err(format!(
                "book {} is {}: {} applies to a finished book",
                self.rec.id,
                state.name(),
                cmd.action.name()
            ))),
        }
    }

    /// The step a command names among those waiting at their gate (the only one waiting when
    /// it names none).
    fn waiting(&self, step: Option<&str>) -> Result<String, String> {
        if self.rec.awaiting.is_empty() {
            return Err(format!("book {} is not waiting for approval", self.rec.id));
        }
        match step {
            Some(s) if self.rec.awaiting.iter().any(|w| w == s) => Ok(s.to_string()),
            Some(s) => Err(format!(
                "step {s} is not waiting for approval (waiting: {})",
                self.rec.awaiting.join(", ")
            )),
            None if self.rec.awaiting.len() == 1 => Ok(self.rec.awaiting[0].clone()),
            None => Err(format!(
                "several steps wait for approval ({}): name one with --step",
                self.rec.awaiting.join(", ")
            )),
        }
    }

    fn approve(&mut self, step: Option<&str>) -> Result<(), String> {
        match step {
            None if !self.rec.awaiting.is_empty() => self.rec.awaiting.clear(),
            _ => {
                let step = self.waiting(step)?;
                self.rec.awaiting.retain(|w| *w != step);
            }
        }
        self.rec.set_state(self.rec.held_state(), clock::now_ms());
        Ok(())
    }

    /// Sends a waiting step back: its answer is dropped (and evicted from the cache), and a
    /// new attempt is asked with the note as feedback, on a fresh attempt budget.
    async fn reject(
        &mut self,
        step: Option<&str>,
        note: &str,
    ) -> Result<Result<(), String>, ActorProcessingErr> {
        let step = match self.waiting(step) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if note.trim().is_empty() {
            return Ok(Err(
                "a rejection needs a note: it is the feedback of the new attempt".into()
            ));
        }
        self.rec.awaiting.retain(|w| *w != step);
        self.remove_output(&step);
        if let Some(s) = self.rec.steps.get_mut(&step) {
            s.status = StepStatus::Pending;
            s.retry_base = s.attempt;
            s.rejections.push(format!("An editor sent the previous answer back: {}", note.trim()));
            if !s.cache_key.is_empty() {
                cache::evict_rejected(&self.env.bus, &std::mem::take(&mut s.cache_key)).await;
            }
        }
        self.rec.set_state(self.rec.held_state(), clock::now_ms());
        Ok(Ok(()))
    }

    /// Replaces a waiting step's answer with the operator's, validated exactly like a model's.
    async fn edit(
        &mut self,
        step: &str,
        answer: &str,
        approve: bool,
        by: &str,
    ) -> Result<Result<(), String>, ActorProcessingErr> {
        let step = match self.waiting(Some(step)) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let Some(planned) = self.rec.plan.get(&step).cloned() else {
            return Ok(Err(format!("book {} has no step {step}", self.rec.id)));
        };
        let spec = match kinds::agent(planned.kind) {
            Ok(spec) => spec,
            Err(e) => return Ok(Err(e.to_string())),
        };
        self.unslim(super::slim::prose_inputs(&planned)).await?;
        self.prose_ready().await?;
        let doc = {
            let seen = self.prose.seen(&self.rec);
            let docs = crate::continuity::Docs::of(&self.rec, &planned, spec, Some(seen));
            scriptorium_contracts::validate(spec.kind(), answer, docs.ctx(&self.rec.brief))
        };
        let doc = match doc {
            Ok(doc) => doc,
            Err(rej) => {
                return Ok(Err(format!(
                    "the {} answer breaks a rule: {}",
                    kind::name(planned.kind),
                    rej.rule
                )));
            }
        };
        if planned.kind == scriptorium_proto::v1::AgentKind::Concept {
            self.rec.title = doc["title"].as_str().unwrap_or_default().to_string();
        }
        self.put_output(&step, doc.into());
        if let Some(s) = self.rec.steps.get_mut(&step) {
            s.route = format!("edited by {by}");
            s.dialect = String::new();
            s.cache_hit = false;
            if !s.cache_key.is_empty() {
                cache::evict_rejected(&self.env.bus, &std::mem::take(&mut s.cache_key)).await;
            }
        }
        if approve {
            self.rec.awaiting.retain(|w| *w != step);
            self.rec.set_state(self.rec.held_state(), clock::now_ms());
        }
        Ok(Ok(()))
    }

    /// Holds the book at `step`'s gate when the brief names its kind in `approve`.
    pub(super) fn gate(&mut self, step: &str) {
        let Some(planned) = self.rec.plan.get(step) else { return };
        let name = kind::name(planned.kind);
        if self.rec.brief.approve.iter().any(|k| k == name)
            && !self.rec.awaiting.iter().any(|w| w == step)
        {
            tracing::info!(book_id = %self.rec.id, step, "answer accepted; waiting for approval");
            self.rec.awaiting.push(step.to_string());
            self.rec.set_state(self.rec.held_state(), clock::now_ms());
        }
    }
}
