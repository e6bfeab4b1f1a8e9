//! The edits a book does without: when a chapter's review accepts the draft with no issue, its
//! edit is done without a model call; when every attempt of an edit is refused, the accepted
//! draft stands. Either way the draft is the edit's output.

use super::BookState;
use crate::continuity;
use crate::plan::chapter_step;
use crate::record::StepStatus;
use ractor::ActorProcessingErr;
use scriptorium_proto::clock;
use scriptorium_proto::v1::AgentKind;

impl BookState {
    /// Marks chapter `n`'s pending edit done with the draft as its output, without a model
    /// call, when its review accepts the draft with no issue, or when
    /// `coordinator.max_failed_edits` earlier edits of the book were refused at every attempt
    /// (a model that cannot revise is not paid to try again; the reason is its `kept_draft`).
    pub(super) async fn skip_needless_edit(&mut self, n: u32) -> Result<(), ActorProcessingErr> {
        let edit = chapter_step(AgentKind::Edit, n);
        let pending = self.rec.steps.get(&edit).is_some_and(|s| s.status == StepStatus::Pending);
        if !pending {
            return Ok(());
        }
        let reason = if continuity::edit_needless(&self.rec, n) {
            String::new()
        } else {
            match self.edits_given_up() {
                Some(why) => why,
                None => return Ok(()),
            }
        };
        if !self.draft_stands(n).await? {
            return Ok(());
        }
        if let Some(s) = self.rec.steps.get_mut(&edit) {
            s.skipped = true;
            s.dispatched_us = clock::now_us();
            s.finished_us = s.dispatched_us;
            s.kept_draft = reason.clone();
        }
        if reason.is_empty() {
            tracing::info!(book_id = %self.rec.id, step = %edit, "edit skipped: the review accepts the draft with no issue");
        } else {
            tracing::warn!(book_id = %self.rec.id, step = %edit, %reason, "edit skipped");
        }
        Ok(())
    }

    /// Why the book's edits stop being asked for: `max_failed_edits` of them (0: never) were
    /// refused at every attempt (only edits keep a draft; skipped ones were never asked).
    fn edits_given_up(&self) -> Option<String> {
        let limit = self.env.cfg.max_failed_edits;
        let failed =
            self.rec.steps.values().filter(|s| !s.skipped && !s.kept_draft.is_empty()).count()
                as u32;
        (limit > 0 && failed >= limit).then(|| {
            format!(
                "skipped: {failed} earlier edits of this book were refused at every attempt \
                 (coordinator.max_failed_edits = {limit})"
            )
        })
    }

    /// Ends chapter `n`'s edit, every attempt of which was refused, with the accepted draft as
    /// its output: the draft passed every rule, and a failed revision must not cost the book.
    /// The reason is kept on the step (`kept_draft` in book.json). False when there is no
    /// accepted draft to keep.
    pub(super) async fn keep_draft(
        &mut self,
        n: u32,
        reason: String,
    ) -> Result<bool, ActorProcessingErr> {
        if !self.draft_stands(n).await? {
            return Ok(false);
        }
        let edit = chapter_step(AgentKind::Edit, n);
        if let Some(s) = self.rec.steps.get_mut(&edit) {
            s.finished_us = clock::now_us();
            tracing::warn!(book_id = %self.rec.id, step = %edit, attempts = s.attempt, %reason, "edit failed; the accepted draft stands");
            s.kept_draft = reason;
        }
        Ok(true)
    }

    /// Makes chapter `n`'s accepted draft the output of its edit and marks the edit done;
    /// false when the draft is not accepted.
    async fn draft_stands(&mut self, n: u32) -> Result<bool, ActorProcessingErr> {
        let edit = chapter_step(AgentKind::Edit, n);
        self.unslim([chapter_step(AgentKind::Chapter, n)]).await?;
        let Some(draft) = self.rec.outputs.get(&chapter_step(AgentKind::Chapter, n)).cloned()
        else {
            return Ok(false);
        };
        self.put_output(&edit, draft);
        if let Some(s) = self.rec.steps.get_mut(&edit) {
            s.status = StepStatus::Done;
        }
        Ok(true)
    }
}
