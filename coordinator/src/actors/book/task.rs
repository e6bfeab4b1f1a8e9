//! What a step's message carries: the inputs its kind names (see
//! [`scriptorium_contracts::Input`]) from the book's accepted outputs, with the routes, sampling
//! and deadline of its attempt.

use crate::CoordinatorConfig;
use crate::continuity;
use crate::plan::chapter_step;
use crate::record::BookRecord;
use scriptorium_contracts::{Input, Kind};
use scriptorium_proto::clock;
use scriptorium_proto::v1::{AgentKind, StepContext, StepTask};

/// The message of step `step_id`'s current attempt, a step of agent kind `spec`: its brief,
/// routes, sampling, deadline and the inputs the kind needs from the accepted outputs.
pub(super) fn step_task(
    rec: &BookRecord,
    cfg: &CoordinatorConfig,
    step_id: &str,
    spec: &dyn Kind,
) -> StepTask {
    let chapter = rec.plan.get(step_id).map_or(0, |p| p.chapter);
    let attempt = rec.steps.get(step_id).map_or(0, |s| s.attempt);
    let feedback = rec.steps.get(step_id).and_then(|s| s.rejections.last().cloned());
    // The outputs are held as their JSON text: sent as they are.
    let out = |id: &str| rec.outputs.get(id).map(|d| d.text().to_string()).unwrap_or_default();
    let mut ctx =
        StepContext { chapter, feedback: feedback.unwrap_or_default(), ..Default::default() };
    for input in spec.inputs() {
        match input {
            Input::Concept => ctx.concept_json = out("concept"),
            Input::Cast => ctx.cast_json = out("characters"),
            Input::World => ctx.world_json = out("world"),
            Input::Outline => ctx.outline_json = out("outline"),
            Input::PreviousSummaries => {
                ctx.previous_summaries = continuity::previous_summaries(rec, chapter)
            }
            Input::LastLines => {
                ctx.previous_last_lines = continuity::previous_last_lines(rec, chapter)
            }
            Input::Ledger => ctx.ledger_json = ledger_json(rec, chapter),
            Input::Draft => ctx.draft_json = out(&chapter_step(AgentKind::Chapter, chapter)),
            Input::Review => ctx.review_json = out(&chapter_step(AgentKind::Review, chapter)),
            // Validation reads them; the agent is never shown other chapters whole.
            Input::OtherChapters => {}
        }
    }
    let kind = spec.kind();
    StepTask {
        book_id: rec.id.clone(),
        step_id: step_id.into(),
        kind: kind as i32,
        attempt,
        brief: Some(rec.brief.clone()),
        context: Some(ctx),
        routes: cfg.routes_for(kind, &rec.brief),
        sampling: Some(cfg.sampling_for(spec, &rec.brief)),
        deadline_unix_ms: clock::now_ms() + (cfg.step_timeout_secs * 1000) as i64,
        dispatched_unix_ms: clock::now_ms(),
        cache: cfg.cache,
        min_worker_version: scriptorium_proto::names::STEP_MIN_WORKER_VERSION,
    }
}

/// The ledger before chapter `n`, as JSON.
fn ledger_json(rec: &BookRecord, n: u32) -> String {
    serde_json::to_string(&continuity::ledger_before(rec, n)).unwrap_or_default()
}
