//! What a step's message carries: the context each agent kind needs from the book's accepted
//! outputs, with the routes, sampling and deadline of its attempt.

use crate::CoordinatorConfig;
use crate::continuity;
use crate::plan::PlannedStep;
use crate::record::BookRecord;
use scriptorium_proto::clock;
use scriptorium_proto::v1::{AgentKind, StepContext, StepTask};

/// The message of step `step_id`'s current attempt: its brief, routes, sampling, deadline
/// and the context the step's kind needs from the accepted outputs.
pub(super) fn step_task(rec: &BookRecord, cfg: &CoordinatorConfig, step_id: &str) -> StepTask {
    let p = rec.plan.get(step_id).cloned().unwrap_or_else(|| PlannedStep {
        id: step_id.into(),
        kind: AgentKind::Unspecified,
        chapter: 0,
        deps: vec![],
    });
    let s = &rec.steps[step_id];
    let out = |id: &str| rec.outputs.get(id).map(|v| v.to_string()).unwrap_or_default();
    let mut ctx = StepContext {
        chapter: p.chapter,
        feedback: s.rejections.last().cloned().unwrap_or_default(),
        ..Default::default()
    };
    match p.kind {
        AgentKind::Characters | AgentKind::World => ctx.concept_json = out("concept"),
        AgentKind::Outline => {
            ctx.concept_json = out("concept");
            ctx.cast_json = out("characters");
            ctx.world_json = out("world");
        }
        AgentKind::Chapter => {
            ctx.concept_json = out("concept");
            ctx.cast_json = out("characters");
            ctx.world_json = out("world");
            ctx.outline_json = out("outline");
            ctx.previous_summaries = continuity::previous_summaries(rec, p.chapter);
            ctx.previous_last_lines = continuity::previous_last_lines(rec, p.chapter);
            ctx.ledger_json = ledger_json(rec, p.chapter);
        }
        AgentKind::Review | AgentKind::Edit => {
            ctx.cast_json = out("characters");
            ctx.outline_json = out("outline");
            ctx.draft_json = out(&crate::plan::chapter_step(AgentKind::Chapter, p.chapter));
            ctx.ledger_json = ledger_json(rec, p.chapter);
            if p.kind == AgentKind::Review {
                ctx.world_json = out("world");
            } else {
                ctx.review_json = out(&crate::plan::chapter_step(AgentKind::Review, p.chapter));
            }
        }
        _ => {}
    }
    StepTask {
        book_id: rec.id.clone(),
        step_id: step_id.into(),
        kind: p.kind as i32,
        attempt: s.attempt,
        brief: Some(rec.brief.clone()),
        context: Some(ctx),
        routes: cfg.routes_for(p.kind, &rec.brief),
        sampling: Some(cfg.sampling_for(p.kind, &rec.brief)),
        deadline_unix_ms: clock::now_ms() + (cfg.step_timeout_secs * 1000) as i64,
        dispatched_unix_ms: clock::now_ms(),
        cache: cfg.cache,
    }
}

/// The ledger before chapter `n`, as JSON.
fn ledger_json(rec: &BookRecord, n: u32) -> String {
    serde_json::to_string(&continuity::ledger_before(rec, n)).unwrap_or_default()
}
