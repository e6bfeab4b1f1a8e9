//! The edit a book skips: when a chapter's review accepts the draft with no issue, its edit is
//! done without a model call, with the draft as its output.

use super::BookState;
use crate::continuity;
use crate::plan::chapter_step;
use crate::record::{StepStatus, output_key};
use ractor::ActorProcessingErr;
use scriptorium_proto::clock;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::AgentKind;

impl BookState {
    /// Marks chapter `n`'s pending edit done with the draft as its output when its review
    /// accepts the draft with no issue.
    pub(super) async fn skip_needless_edit(&mut self, n: u32) -> Result<(), ActorProcessingErr> {
        let edit = chapter_step(AgentKind::Edit, n);
        let pending = self.rec.steps.get(&edit).is_some_and(|s| s.status == StepStatus::Pending);
        if !pending || !continuity::edit_needless(&self.rec, n) {
            return Ok(());
        }
        let Some(draft) = self.rec.outputs.get(&chapter_step(AgentKind::Chapter, n)).cloned()
        else {
            return Ok(());
        };
        let key = output_key(&self.rec.id, &edit);
        self.env.bus.kv_put(Bucket::Outputs, &key, serde_json::to_vec(&draft)?.into()).await?;
        self.rec.outputs.insert(edit.clone(), draft);
        if let Some(s) = self.rec.steps.get_mut(&edit) {
            s.status = StepStatus::Done;
            s.skipped = true;
            s.dispatched_us = clock::now_us();
            s.finished_us = s.dispatched_us;
        }
        tracing::info!(book_id = %self.rec.id, step = %edit, "edit skipped: the review accepts the draft with no issue");
        Ok(())
    }
}
