//! A step's model work: its routes in order, each request fitted to the route's context
//! budget, chapters written and edits made in parts when one answer cannot hold them.

use super::AgentEnv;
use crate::budget::Budget;
use crate::cache::{Answer, Failed};
use crate::parts;
use crate::prompts::{self, Docs, Part, Rendered};
use crate::providers::{self, ContextHint, ModelRequest};
use scriptorium_contracts::kinds::chapter::prose_tokens;
use scriptorium_contracts::prose::KnownWords;
use scriptorium_contracts::{ChapterText, Kind, OutlineChapter, Work, schema};
use scriptorium_proto::v1::{Failure, FailureCause, StepTask, Usage};
use std::sync::{Arc, LazyLock};

/// A readable answer on one route.
struct Answered {
    value: serde_json::Value,
    route: String,
    dialect: String,
}

fn add(usage: &mut Usage, a: &crate::providers::ModelAnswer) {
    usage.calls += 1;
    usage.prompt_tokens += a.prompt_tokens;
    usage.completion_tokens += a.completion_tokens;
    usage.retries += a.retries;
    usage.cost_usd += a.cost_usd;
}

/// Why a step failed on one route; `context` is set when a smaller request may succeed.
struct RouteError {
    failure: Failure,
    context: Option<ContextHint>,
}

impl RouteError {
    /// An answer that could not be used: the step is asked again with the reason.
    fn refused(message: impl Into<String>) -> Self {
        RouteError { failure: Failure::new(FailureCause::Refused, message), context: None }
    }
}

/// Runs the step's model work for a step of kind `spec`: the routes in order; on each, every
/// request is assembled against the route's budget (context window less answer and margin), a
/// step whose answer one request cannot hold is done in parts, and a request the server still
/// finds too large for its context is planned again smaller and sent once more.
pub(super) async fn run_model(
    env: &AgentEnv,
    task: &StepTask,
    spec: &dyn Kind,
    whole: Option<&Rendered>,
) -> Result<Answer, Failed> {
    let max_tokens = u64::from(task.sampling.as_ref().map_or(4096, |s| s.max_tokens).max(1));
    // Every route's calls are paid for, answered or not.
    let usage = std::sync::Mutex::new(Usage::default());
    let answered = providers::first_route(&task.routes, |route| {
        let usage = &usage;
        async move {
            let mut spent = Usage::default();
            let answered =
                on_route_fitted(env, (task, spec, whole), route, max_tokens, &mut spent).await;
            let mut total = usage.lock().unwrap_or_else(|p| p.into_inner());
            merge(&mut total, &spent);
            answered
        }
    })
    .await;
    let usage = usage.into_inner().unwrap_or_else(|p| p.into_inner());
    match answered {
        Ok(Answered { value, route, dialect }) => {
            // A key the model was shown (or guessed) never reaches a stored result.
            let output = crate::redact::redact_secrets(&value.to_string());
            Ok(Answer { output, route, dialect, usage })
        }
        Err(failure) => Err(Failed { failure, usage }),
    }
}

fn merge(total: &mut Usage, more: &Usage) {
    total.calls += more.calls;
    total.prompt_tokens += more.prompt_tokens;
    total.completion_tokens += more.completion_tokens;
    total.retries += more.retries;
    total.cost_usd += more.cost_usd;
}

/// One route's work: the step planned against the route's budget, and planned again smaller
/// once when the server finds a request too large for its context.
async fn on_route_fitted(
    env: &AgentEnv,
    (task, spec, whole): (&StepTask, &dyn Kind, Option<&Rendered>),
    route: &str,
    max_tokens: u64,
    usage: &mut Usage,
) -> Result<Answered, Failure> {
    let limits = env.models.route_limits(route).await;
    let max_output = limits.max_output.map_or(max_tokens, |m| m.min(max_tokens));
    // A model in this process counts its prompts exactly: no margin for an estimate.
    let exact = env.models.count_prompt(route, "", "").is_some();
    let mut budget = if exact {
        Budget::exact(limits.window, max_output)
    } else {
        Budget::new(limits.window, max_output)
    };
    let mut shrunk = false;
    loop {
        match on_route(env, (task, spec, whole), route, budget, usage).await {
            Ok(answered) => return Ok(answered),
            Err(RouteError { failure, context: Some(hint) }) if !shrunk => {
                shrunk = true;
                if let Some(w) = hint.window {
                    env.models.learn_window(route, w);
                }
                let window = smaller_window(budget, hint);
                tracing::warn!(
                    route = %route,
                    planned_window = ?budget.window,
                    window,
                    error = %failure,
                    "request exceeded the server's context; planning it smaller once more"
                );
                budget.window = Some(window);
            }
            Err(e) => return Err(e.failure),
        }
    }
}

/// The window to plan with after a context-exceeded answer, in estimated tokens: the window
/// the server reported (else the planned one), scaled by how much more densely the server
/// counted the prompt than the estimate, less 10%; always smaller than before.
fn smaller_window(budget: Budget, hint: ContextHint) -> u64 {
    let ratio = match hint.server_prompt {
        Some(sp) if hint.estimated_prompt > 0 => {
            (sp as f64 / hint.estimated_prompt as f64).max(1.0)
        }
        _ => 1.0,
    };
    let server = hint.window.or(budget.window).unwrap_or(hint.estimated_prompt + budget.max_output);
    let mut window = (server as f64 / ratio * 0.9) as u64;
    if let Some(planned) = budget.window {
        window = window.min(planned * 3 / 4);
    }
    window.max(256)
}

async fn on_route(
    env: &AgentEnv,
    (task, spec, whole): (&StepTask, &dyn Kind, Option<&Rendered>),
    route: &str,
    budget: Budget,
    usage: &mut Usage,
) -> Result<Answered, RouteError> {
    // Parsed once for all of the step's requests.
    let docs = Docs::of(task);
    let chapter = task.context.as_ref().map_or(0, |c| c.chapter);
    let step = Step { task, spec, docs: &docs, whole };
    // Without its plan or draft (a step asked outside a book) the work is one request.
    match spec.work() {
        Work::Scenes => {
            if let Some(plan) = docs.plan(chapter) {
                return write_chapter(env, step, route, budget, plan, usage).await;
            }
        }
        Work::Revisions => {
            if let Some(draft) = &docs.draft {
                return edit_chapter(env, step, route, budget, draft, usage).await;
            }
        }
        Work::Whole => {}
    }
    let whole = spec.answer_tokens(&task.brief.clone().unwrap_or_default());
    ask(env, step, route, budget, None, whole, usage).await
}

/// The step a request is for: its task, its kind, the documents the task carries, and its
/// whole prompt when it was rendered (without a budget) for the response cache's key.
#[derive(Clone, Copy)]
struct Step<'a> {
    task: &'a StepTask,
    spec: &'a dyn Kind,
    docs: &'a Docs,
    whole: Option<&'a Rendered>,
}

/// One request (with its repair, if the answer is unreadable) for `task` or a `part` of it,
/// assembled so that the prompt, an answer of `answer` tokens and the margin fit the budget;
/// `max_tokens` is whatever room the prompt leaves, at most the output limit.
async fn ask(
    env: &AgentEnv,
    Step { task, spec, docs, whole }: Step<'_>,
    route: &str,
    budget: Budget,
    part: Option<&Part>,
    answer: u64,
    usage: &mut Usage,
) -> Result<Answered, RouteError> {
    let count = |s: &str, u: &str| {
        env.models.count_prompt(route, s, u).unwrap_or_else(|| {
            scriptorium_contracts::tokens::estimate_tokens(s)
                + scriptorium_contracts::tokens::estimate_tokens(u)
        })
    };
    let schema = prompts::answer_schema(task, spec, docs, part);
    let room = budget.prompt_for(answer);
    let reused = whole.filter(|_| part.is_none()).and_then(|w| reuse(w, room, &count));
    let rendered = match reused {
        Some(r) => Ok(r),
        None => env.prompts.render_counted(task, spec, docs, part, &schema, room, &count),
    };
    let rendered = rendered.map_err(|o| {
        let message = format!("{route}: {o} (context window {:?})", budget.window);
        RouteError { failure: Failure::new(FailureCause::ContextExceeded, message), context: None }
    })?;
    if !rendered.condensed.is_empty() {
        tracing::debug!(
            route = %route,
            window = ?budget.window,
            prompt_tokens = rendered.tokens,
            condensed = ?rendered.condensed,
            "context condensed to fit the window"
        );
    }
    let sampling = task.sampling.clone().unwrap_or_default();
    // Room for the answer the request needs with slack, never more: a small model that loops
    // inside a grammar is cut off early, not at the window's end.
    let cap = answer.saturating_mul(2).saturating_add(256);
    let max_tokens = budget.answer_room(rendered.tokens).min(cap).min(u64::from(u32::MAX)) as u32;
    // The longest answer the grammar allows ends inside the room: a looping model's answer
    // closes its JSON instead of being cut off (and paid for, and unreadable).
    let schema = schema::fitted(schema, u64::from(max_tokens) * ANSWER_CHARS_PER_TOKEN);
    let req = ModelRequest {
        kind: spec.kind(),
        system: rendered.system,
        user: rendered.user,
        temperature: sampling.temperature,
        top_p: sampling.top_p,
        max_tokens,
        seed: attempt_seed(task.brief.as_ref().map_or(0, |b| b.seed), task.attempt),
        schema: Some(schema),
    };
    match env.models.call_json_route(route, &req).await {
        Ok(a) => {
            a.calls.iter().for_each(|c| add(usage, c));
            let dialect = a.calls.last().map(|c| c.dialect.clone()).unwrap_or_default();
            Ok(Answered { value: a.value, route: a.route, dialect })
        }
        Err(f) => {
            f.calls.iter().for_each(|c| add(usage, c));
            Err(RouteError { failure: f.failure, context: f.context })
        }
    }
}

/// The step's whole prompt as rendered without a budget (for the cache key), when it fits
/// `room` as `count` measures it: fitting it to the room would then keep every piece full and
/// render the same text, so it is not rendered again.
fn reuse(
    whole: &Rendered,
    room: Option<u64>,
    count: &dyn Fn(&str, &str) -> u64,
) -> Option<Rendered> {
    let tokens = count(&whole.system, &whole.user);
    room.is_none_or(|r| tokens <= r).then(|| Rendered {
        system: whole.system.clone(),
        user: whole.user.clone(),
        tokens,
        condensed: Vec::new(),
    })
}

/// Characters per token an answer's room is counted at when its schema is fitted to it:
/// below English prose's 4 or more (JSON's quotes and brackets take tokens of their own), so a
/// grammar-held answer ends before the room does.
const ANSWER_CHARS_PER_TOKEN: u64 = 3;

/// The sampling seed of an attempt: the book's seed for the first, another (fixed) one for each
/// re-ask, so a re-ask samples a new answer instead of the refused one again (a small model
/// given the same seed and almost the same prompt repeats its mistake), and a rerun of the
/// same book still asks the same.
fn attempt_seed(seed: u64, attempt: u32) -> u64 {
    let n = u64::from(attempt.max(1) - 1);
    seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33)
}

/// A chapter in one request when its answer fits, else a few scenes per request, each part
/// told the running summary and the closing lines of the part before it.
async fn write_chapter(
    env: &AgentEnv,
    step: Step<'_>,
    route: &str,
    budget: Budget,
    plan: &OutlineChapter,
    usage: &mut Usage,
) -> Result<Answered, RouteError> {
    let task = step.task;
    let chapter = task.context.as_ref().map_or(0, |c| c.chapter);
    let words = task.brief.as_ref().map_or(800, |b| b.words_per_chapter);
    let scenes = plan.scenes.len().max(1) as u32;
    let whole = prose_tokens(u64::from(words), u64::from(scenes));
    if whole <= budget.max_answer() {
        return ask(env, step, route, budget, None, whole, usage).await;
    }
    let shares = parts::share(words, scenes);
    let items: Vec<(u32, u64)> = shares
        .iter()
        .enumerate()
        .map(|(i, w)| (i as u32 + 1, prose_tokens(u64::from(*w), 1) - 80))
        .collect();
    let groups = parts::group(&items, 80, budget.max_answer());
    tracing::debug!(route = %route, chapter, parts = groups.len(), "writing the chapter in parts");
    let mut done = Vec::new();
    let (mut answered, mut dialect) = (String::new(), String::new());
    let (mut so_far, mut last_lines) = (String::new(), String::new());
    for scenes in groups {
        let words: u32 = scenes.iter().map(|n| shares[*n as usize - 1]).sum();
        let tokens = prose_tokens(u64::from(words), scenes.len() as u64);
        let count = scenes.len();
        let part = Part { scenes, words, so_far: so_far.clone(), last_lines: last_lines.clone() };
        let a = ask(env, step, route, budget, Some(&part), tokens, usage).await?;
        let text = parts::read_part(&a.value, count)
            .map_err(|e| RouteError::refused(format!("{route}: {e}")))?;
        so_far = text.summary.clone();
        last_lines = parts::last_lines(&text.scenes);
        (answered, dialect) = (a.route, a.dialect);
        done.push(text);
    }
    let joined = parts::join(chapter, &plan.title, done);
    let value = serde_json::to_value(joined).map_err(|e| RouteError::refused(e.to_string()))?;
    Ok(Answered { value, route: answered, dialect })
}

/// An edit: the scenes the review names (all, when it names none) shown with their numbers,
/// as many per request as fit; the answers' revised scenes replace the draft's.
async fn edit_chapter(
    env: &AgentEnv,
    step: Step<'_>,
    route: &str,
    budget: Budget,
    draft: &ChapterText,
    usage: &mut Usage,
) -> Result<Answered, RouteError> {
    let Step { task, spec, docs, .. } = step;
    let targets = prompts::edit_targets(docs);
    let items: Vec<(u32, u64)> = targets
        .iter()
        .map(|n| {
            let words = draft.scenes[*n as usize - 1].text.split_whitespace().count() as u64;
            (*n, prose_tokens(words, 1) - 80)
        })
        .collect();
    // The prompt shows what the answer rewrites: a part takes at most a third of the window.
    let per_part = budget.usable().map_or(budget.max_answer(), |u| budget.max_answer().min(u / 3));
    let groups = parts::group(&items, 100, per_part);
    let mut answers = Vec::new();
    let (mut answered, mut dialect) = (String::new(), String::new());
    for scenes in groups {
        let tokens =
            100 + items.iter().filter(|(n, _)| scenes.contains(n)).map(|(_, t)| t).sum::<u64>();
        let part = Part { scenes, ..Default::default() };
        let a = ask(env, step, route, budget, Some(&part), tokens, usage).await?;
        answers.push(a.value);
        (answered, dialect) = (a.route, a.dialect);
    }
    let merged = parts::apply_edit(draft, &answers)
        .map_err(|e| RouteError::refused(format!("{route}: {e}")))?;
    // A revised scene that breaks a rule goes back to the draft's; the coordinator still
    // validates the result (with the other chapters, which this check does not see).
    let brief = task.brief.clone().unwrap_or_default();
    let ctx = docs.ctx(&brief, task.context.as_ref().map_or(0, |c| c.chapter));
    let known = known_words(task, ctx).await;
    let ctx = scriptorium_contracts::Ctx { known: Some(&known), ..ctx };
    let passes = |c: &scriptorium_contracts::ChapterText| {
        serde_json::to_string(c)
            .is_ok_and(|text| scriptorium_contracts::validate(spec.kind(), &text, ctx).is_ok())
    };
    let merged = parts::keep_passing(draft, merged, passes);
    let value = serde_json::to_value(merged).map_err(|e| RouteError::refused(e.to_string()))?;
    Ok(Answered { value, route: answered, dialect })
}

/// The words of the outline, cast and world that an edit's check knows
/// (`kinds::chapter::known_words` of `ctx`), kept per book and documents: a book's edits share
/// them, and gathering them costs more than checking the edit. At most [`KNOWN_KEPT`] sets
/// are kept.
async fn known_words(task: &StepTask, ctx: scriptorium_contracts::Ctx<'_>) -> Arc<KnownWords> {
    use std::hash::{Hash, Hasher};
    static KEPT: LazyLock<moka::future::Cache<u64, Arc<KnownWords>>> =
        LazyLock::new(|| moka::future::Cache::new(KNOWN_KEPT));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    task.book_id.hash(&mut h);
    if let Some(c) = &task.context {
        (&c.outline_json, &c.cast_json, &c.world_json).hash(&mut h);
    }
    let gather = async { scriptorium_contracts::kinds::chapter::known_words(ctx) };
    KEPT.get_with(h.finish(), gather).await
}

/// How many books' known words [`known_words`] keeps.
const KNOWN_KEPT: u64 = 64;

#[cfg(test)]
mod tests {
    use super::{attempt_seed, known_words, reuse};
    use crate::prompts::{self, Docs, Prompts};
    use scriptorium_proto::v1::AgentKind;

    #[test]
    fn the_cache_keys_prompt_is_reused_only_where_fitting_would_leave_it_whole() {
        let prompts = Prompts::load(None).unwrap();
        let spec = scriptorium_contracts::kinds::agent(AgentKind::Outline).unwrap();
        let task = StepTask {
            kind: AgentKind::Outline as i32,
            brief: Some(BookBrief { chapters: 6, characters: 3, ..Default::default() }),
            context: Some(StepContext {
                concept_json: r#"{"title": "Salt", "logline": "A keeper of tides steals a ledger.", "description": "A long description of the book. ", "themes": ["debt", "tide"]}"#.into(),
                cast_json: r#"{"characters": [{"name": "Ann Lee", "role": "hero", "background": "A long background, told at length, of the harbour she grew up in."}]}"#.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let whole = prompts.render_fitted(&task, spec, None, None).unwrap();
        let count = |s: &str, u: &str| (s.len() + u.len()) as u64 / 4;
        let docs = Docs::of(&task);
        let schema = prompts::answer_schema(&task, spec, &docs, None);
        let fitted = |room| prompts.render_counted(&task, spec, &docs, None, &schema, room, &count);
        let full = count(&whole.system, &whole.user);
        // Where the room holds it, fitting renders exactly the key's prompt: reused as it is.
        let reused = reuse(&whole, Some(full), &count).expect("fits");
        let rendered = fitted(Some(full)).unwrap();
        assert_eq!((&reused.system, &reused.user), (&rendered.system, &rendered.user));
        assert_eq!((reused.tokens, rendered.condensed.len()), (rendered.tokens, 0));
        assert!(reuse(&whole, None, &count).is_some(), "no budget: nothing to fit");
        // One token short, fitting condenses something: rendered anew.
        assert!(reuse(&whole, Some(full - 1), &count).is_none());
        assert!(!fitted(Some(full - 1)).unwrap().condensed.is_empty());
    }
    use scriptorium_proto::v1::{BookBrief, StepContext, StepTask};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_books_edits_share_its_known_words_and_other_documents_get_their_own() {
        let task = |book: &str, world: &str| StepTask {
            book_id: book.into(),
            context: Some(StepContext {
                world_json: format!(r#"{{"sections": {{"geography": "{world}"}}}}"#),
                ..Default::default()
            }),
            ..Default::default()
        };
        let brief = BookBrief::default();
        let words = async |t: StepTask| {
            let docs = crate::prompts::Docs::of(&t);
            known_words(&t, docs.ctx(&brief, 1)).await
        };
        let a = words(task("b1", "Quarrystone harbour")).await;
        assert!(Arc::ptr_eq(&a, &words(task("b1", "Quarrystone harbour")).await), "kept");
        let b = words(task("b1", "Marrowdeep fens")).await;
        assert!(!Arc::ptr_eq(&a, &b), "a changed world is gathered anew");
        let other = words(task("b2", "Quarrystone harbour")).await;
        assert!(!Arc::ptr_eq(&a, &other), "per book");
        assert_ne!(a, b, "the words are the documents'");
    }

    #[test]
    fn a_reask_samples_with_its_own_seed_and_the_first_ask_with_the_books() {
        assert_eq!(attempt_seed(7, 1), 7);
        assert_eq!(attempt_seed(7, 0), 7, "no attempt number: the book's seed");
        let seeds: Vec<u64> = (1..=6).map(|a| attempt_seed(7, a)).collect();
        let mut distinct = seeds.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), seeds.len(), "{seeds:?}");
        assert_eq!(attempt_seed(7, 3), attempt_seed(7, 3), "a rerun asks the same");
        assert_ne!(attempt_seed(8, 2), attempt_seed(7, 2));
        assert_eq!(attempt_seed(u64::MAX, 1), u64::MAX);
        let _ = attempt_seed(u64::MAX, 2);
    }
}
