//! Which results a book trusts: one for an attempt it dispatched. A result for an attempt never
//! dispatched (a later attempt than the step's, attempt 0, an unknown step) is forged or broken:
//! it changes nothing, costs nothing and is dead-lettered with the reason. A second result for
//! an answered attempt from a worker other than the one whose answer was accepted is counted and
//! logged (two workers claiming one attempt: one of them is not what it says).
//!
//! One result for an attempt not on record is expected: a coordinator that stopped after it
//! published a step and before it stored the step as running leaves the step pending, and the
//! worker's answer then names the step's next attempt. That attempt's message id is spent
//! (JetStream would drop the same id again as a duplicate, so the step would never go out), so
//! the step skips it instead of the result being dead-lettered ([`unrecorded_dispatch`]).

use super::BookState;
use crate::record::{BookRecord, StepStatus};
use scriptorium_proto::Bus;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::v1::StepResult;

/// Why `r` is refused, when it is for an attempt the book of `rec` never dispatched.
pub(crate) fn never_dispatched(rec: &BookRecord, r: &StepResult) -> Option<String> {
    let Some(step) = rec.steps.get(&r.step_id) else {
        return Some(format!("result refused: book {} has no step {}", r.book_id, r.step_id));
    };
    (r.attempt == 0 || r.attempt > step.attempt).then(|| {
        format!(
            "result refused: attempt {} of step {} of book {} was never dispatched (latest {})",
            r.attempt, r.step_id, r.book_id, step.attempt
        )
    })
}

/// Whether `r` answers an attempt a previous coordinator dispatched without recording it: the
/// step is pending and `r` names its next attempt.
pub(crate) fn unrecorded_dispatch(rec: &BookRecord, r: &StepResult) -> bool {
    rec.steps
        .get(&r.step_id)
        .is_some_and(|s| s.status == StepStatus::Pending && r.attempt == s.attempt + 1)
}

/// Dead-letters `r` with `reason`, counted and logged; its book is left as it was.
pub(crate) async fn refuse(bus: &Bus, r: &StepResult, reason: &str) {
    crate::metrics::result_refused(r);
    tracing::warn!(
        book_id = %r.book_id, step = %r.step_id, attempt = r.attempt,
        worker = %r.worker_id, reason, "result refused and dead-lettered"
    );
    let payload = r.encode_to_vec().into();
    if let Err(e) = bus.dead_letter("results", payload, reason).await {
        tracing::error!(book_id = %r.book_id, error = %e, "refused result not dead-lettered");
    }
}

impl BookState {
    /// Skips the attempt `r` answers (see [`unrecorded_dispatch`]): the step goes out with the
    /// attempt after it, which does not count against its attempts; `r` is ignored.
    pub(super) async fn skip_unrecorded_attempt(
        &mut self,
        r: &StepResult,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let Some(s) = self.rec.steps.get_mut(&r.step_id) {
            s.attempt += 1;
            s.retry_base += 1;
        }
        tracing::info!(
            book_id = %r.book_id, step = %r.step_id, attempt = r.attempt,
            "result for an attempt dispatched before a restart and not recorded; the step will go out with the next attempt"
        );
        self.on_ignored(r).await
    }

    /// Counts and logs `r` when its attempt was already answered by another worker.
    pub(super) fn check_worker(&self, r: &StepResult) {
        let Some(step) = self.rec.steps.get(&r.step_id) else { return };
        if step.status == StepStatus::Done
            && step.attempt == r.attempt
            && !step.worker.is_empty()
            && step.worker != r.worker_id
        {
            crate::metrics::result_from_another_worker(r);
            tracing::warn!(
                book_id = %r.book_id, step = %r.step_id, attempt = r.attempt,
                worker = %r.worker_id, answered_by = %step.worker,
                "result from a worker other than the one that answered the attempt"
            );
        }
    }
}
