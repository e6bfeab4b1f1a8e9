//! A book in flight holds the prose of an accepted chapter text only while a step still reads
//! it: a draft until its review, its edit and the next chapter's draft are done, an edit not at
//! all once accepted. The rest of the text stays (summary, characters, continuity report: the
//! ledger and later prompts read them), and the prose is read back from the store when it is
//! wanted again: by assembly, by a step an operator sends back, and by the prose index when it
//! is rebuilt. The index itself was made from the whole texts as they were accepted.

use super::BookState;
use crate::plan::{PlannedStep, chapter_step};
use crate::record::StepStatus;
use ractor::ActorProcessingErr;
use scriptorium_contracts::{Input, kinds};
use scriptorium_proto::v1::AgentKind;
use serde_json::Value;
use std::collections::BTreeSet;

/// The accepted texts whose prose step `p` reads: the draft it reviews or edits, and the
/// previous chapter's draft whose closing lines a chapter continues from.
pub(super) fn prose_inputs(p: &PlannedStep) -> Vec<String> {
    let Ok(spec) = kinds::agent(p.kind) else { return Vec::new() };
    let n = p.chapter;
    spec.inputs()
        .iter()
        .filter_map(|input| match input {
            Input::Draft => Some(chapter_step(AgentKind::Chapter, n)),
            Input::LastLines if n > 1 => Some(chapter_step(AgentKind::Chapter, n - 1)),
            _ => None,
        })
        .collect()
}

impl BookState {
    /// Drops the prose of the accepted chapter texts no unfinished step reads. Nothing is
    /// dropped while the prose index waits to be rebuilt (it is rebuilt from the texts).
    pub(super) fn slim(&mut self) {
        if !self.prose.is_built() {
            return;
        }
        let steps = &self.rec.steps;
        let held: BTreeSet<String> = self
            .rec
            .plan
            .steps
            .iter()
            .filter(|p| steps.get(&p.id).is_none_or(|s| s.status != StepStatus::Done))
            .flat_map(prose_inputs)
            .collect();
        for p in &self.rec.plan.steps {
            if !matches!(p.kind, AgentKind::Chapter | AgentKind::Edit)
                || held.contains(&p.id)
                || self.slim.contains(&p.id)
            {
                continue;
            }
            let Some(doc) = self.rec.outputs.get_mut(&p.id) else { continue };
            if let Value::Object(mut fields) = doc.value() {
                fields.remove("scenes");
                *doc = Value::Object(fields).into();
                self.slim.insert(p.id.clone());
            }
        }
    }

    /// Reads back from the store the prose of those of `ids` that were dropped.
    pub(super) async fn unslim(
        &mut self,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<(), ActorProcessingErr> {
        let mut any = false;
        for id in ids {
            if self.slim.remove(&id) {
                self.rec.outputs.remove(&id);
                any = true;
            }
        }
        if any {
            // Whatever the store is to hold first: the outputs held, and the writes before.
            self.store()?;
            self.writer.landed().await?;
            crate::record::load_outputs(&self.env.bus, &mut self.rec).await?;
        }
        Ok(())
    }

    /// Reads back every prose dropped.
    pub(super) async fn unslim_all(&mut self) -> Result<(), ActorProcessingErr> {
        let all: Vec<String> = self.slim.iter().cloned().collect();
        self.unslim(all).await
    }

    /// The prose index, rebuilt first from whole texts when it has to be.
    pub(super) async fn prose_ready(&mut self) -> Result<(), ActorProcessingErr> {
        if !self.prose.is_built() {
            self.unslim_all().await?;
            self.prose.seen(&self.rec);
        }
        Ok(())
    }
}
