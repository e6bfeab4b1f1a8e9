//! The chapter agent: a chapter's prose, scene by scene as planned, with a summary and a
//! continuity report for the chapters after it. Validation reads the prose itself (length,
//! repeats, leaks, names, the dead) with the checks of [`crate::prose`].

mod continuity;
#[cfg(feature = "sim")]
mod simulate;

pub use continuity::{Alias, Continuity, Whereabouts};
pub use continuity::{MAX_ALIASES, MAX_DEATHS, MAX_THREADS, MAX_WHEREABOUTS};
#[cfg(feature = "sim")]
pub(crate) use simulate::simulate;

use crate::kinds::{Input, Kind, Work};
use crate::prose::{self, Rule};
use crate::rules::{Ctx, Rejection, known_names, non_empty, reject, typed};
use crate::schema::{array, cast_name, object, text};
use crate::task::TaskType;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;

/// One scene of written prose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProseScene {
    /// Short heading of the scene (not printed in the manuscript).
    pub heading: String,
    /// The prose.
    pub text: String,
}

/// Answer of the chapter and edit agents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChapterText {
    /// 1-based chapter number.
    pub number: u32,
    /// Chapter title.
    pub title: String,
    /// Prose, scene by scene.
    pub scenes: Vec<ProseScene>,
    /// A few sentences on what happened, for later chapters.
    pub summary: String,
    /// Names of the cast members who appear.
    pub characters: Vec<String>,
    /// For edits: what was changed and why.
    pub changes: Vec<String>,
    /// What the chapter changed in the story's continuity (drafts report it; edits keep it).
    pub continuity: Continuity,
}

impl ChapterText {
    /// The prose of all scenes, separated by a scene break.
    pub fn prose(&self) -> String {
        self.scenes
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n* * *\n\n")
    }

    /// Number of words of prose.
    pub fn word_count(&self) -> usize {
        self.scenes.iter().map(|s| s.text.split_whitespace().count()).sum()
    }
}

/// Words a chapter of `brief` may have: the words whose length score (LongWriter's, against
/// the target) is at least 80, about 0.71x to 1.6x the target.
pub fn words(brief: &scriptorium_proto::v1::BookBrief) -> (usize, usize) {
    prose::length_window(brief.words_per_chapter.max(1) as usize, prose::MIN_LENGTH_SCORE)
}

/// The prose rules a chapter is rejected for (and so re-asked): length, verbatim and near
/// copies, placeholder and meta text, instruction echo, talk about the task, machine text,
/// names outside the cast, the dead acting. Planned characters who never appear are reported
/// by the quality report only.
pub const REJECTED: &[Rule] = &[
    Rule::Length,
    Rule::RepeatedParagraph,
    Rule::NearDuplicateParagraph,
    Rule::Placeholder,
    Rule::MetaText,
    Rule::InstructionEcho,
    Rule::TaskTalk,
    Rule::MachineText,
    Rule::UnknownName,
    Rule::DeadCharacterActs,
];

/// Most findings one rejection names.
const MAX_FINDINGS: usize = 6;

/// The schema of one scene's prose in a chapter of `scenes` planned scenes: its share of the
/// chapter's word window in characters, so a grammar holds a small model to a length it cannot
/// count. Words are taken at 6 characters for the least and 4.5 for the most, so a scene of
/// short or long words alike stays inside the window.
pub(crate) fn scene_prose(
    what: &str,
    brief: &scriptorium_proto::v1::BookBrief,
    scenes: usize,
) -> Value {
    let (lo, hi) = words(brief);
    let scenes = scenes.max(1);
    crate::schema::text_sized(what, lo * 6 / scenes, hi * 9 / 2 / scenes)
}

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    read(output, ctx, "chapter", None).map(|c| crate::rules::to_value(&c))
}

/// Reads and checks a chapter (or an edited chapter, `what`). `revised`: for an edit, the
/// scenes it revises; the prose rules then judge only their paragraphs (and the whole
/// chapter's length), since the other scenes are the accepted draft's, and the continuity
/// report is the draft's, not checked again.
pub(crate) fn read(
    output: &str,
    ctx: Ctx<'_>,
    what: &str,
    revised: Option<&[u32]>,
) -> Result<ChapterText, Rejection> {
    let mut c: ChapterText = typed(what, output)?;
    let n = ctx.chapter;
    // The engine knows the chapter's number; an answer may leave it out.
    if c.number == 0 {
        c.number = n;
    }
    if c.number != n {
        return reject(format!("the {what} must be chapter number {n} (got {})", c.number));
    }
    if let Some(plan) = ctx.outline.and_then(|o| o.chapter(n)) {
        // The title is the engine's too: an answer may leave it out, not change it.
        if c.title.trim().is_empty() {
            c.title = plan.title.clone();
        }
        let view = prose::Chapter { number: n, title: &c.title, text: "" };
        if let Some(f) = prose::title_mismatch(&view, &plan.title) {
            return reject(f.message);
        }
        if c.scenes.len() != plan.scenes.len() {
            return reject(format!(
                "chapter {n} must have exactly {} scenes as planned (got {})",
                plan.scenes.len(),
                c.scenes.len()
            ));
        }
    }
    non_empty(&format!("chapter {n} title"), &c.title)?;
    // Headings are the engine's too: a scene's place in the chapter; any the model wrote into
    // its prose come off, and so do paragraphs it labelled as its metadata (`Summary:`).
    for (i, s) in c.scenes.iter_mut().enumerate() {
        if s.heading.trim().is_empty() {
            s.heading = format!("Scene {}", i + 1);
        }
        s.text = prose::strip_labelled(&prose::strip_headings(&s.text));
    }
    if c.scenes.is_empty() {
        return reject(format!("chapter {n} has no prose"));
    }
    let seen = seen(ctx, n);
    clean(ctx, &seen, &mut c, revised);
    if let Some(i) = c.scenes.iter().position(|s| s.text.trim().is_empty()) {
        return reject(format!("chapter {n} scene {} has empty prose", i + 1));
    }
    known_names(ctx, &c.characters, &format!("chapter {n}"))?;
    if c.summary.trim().is_empty() {
        // What the chapter was planned to tell stands in for a summary the model left empty:
        // later chapters' prompts read it, and the plan is the engine's.
        if let Some(plan) = ctx.outline.and_then(|o| o.chapter(n)) {
            c.summary = plan.summary.clone();
        }
    }
    non_empty(&format!("chapter {n} summary"), &c.summary)?;
    if revised.is_none() {
        continuity::check(ctx, &mut c.continuity)?;
    }
    prose_rules(ctx, &seen, &c, revised)?;
    Ok(c)
}

/// What the book knows of its characters and words, for the prose checks: the cast with the
/// ledger's aliases and deaths (and the aliases this chapter reports), and every word of the
/// outline, the cast's descriptions and the world.
pub fn canon(ctx: Ctx<'_>, own: &Continuity) -> prose::Canon {
    let ledger = match ctx.ledger {
        Some(l) => l.clone(),
        None => crate::ledger::Ledger::new(ctx.cast),
    };
    let mut people = ledger.people();
    for a in &own.aliases {
        if let Some(p) = people.iter_mut().find(|p| p.name == a.name) {
            p.aliases.push(a.alias.clone());
        }
    }
    match ctx.known {
        Some(known) => prose::Canon::with_known(people, known.clone()),
        None => prose::Canon::with_known(people, known_words(ctx)),
    }
}

/// Every word of the outline, the cast and the world of `ctx`: what [`canon`] knows besides the
/// people, for a caller that keeps it per book ([`Ctx::known`]).
pub fn known_words(ctx: Ctx<'_>) -> std::sync::Arc<prose::KnownWords> {
    let mut canon = prose::Canon::default();
    let mut known = String::new();
    if let Some(o) = ctx.outline {
        strings(&crate::rules::to_value(o), &mut known);
    }
    if let Some(c) = ctx.cast {
        strings(&crate::rules::to_value(c), &mut known);
    }
    if let Some(w) = ctx.world {
        strings(&crate::rules::to_value(w), &mut known);
    }
    canon.learn(&known);
    canon.known()
}

/// Every string in `v`, each followed by a newline, appended to `out` (the words a book's
/// documents know).
pub fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The book's other accepted chapters as the prose checks read them: (number, title, prose).
fn other_chapters(ctx: Ctx<'_>, n: u32) -> Vec<(u32, String, String)> {
    ctx.earlier
        .iter()
        .filter(|e| e.number != n)
        .map(|e| (e.number, e.title.clone(), e.prose()))
        .collect()
}

/// The book's other accepted chapters prepared for the prose checks: the caller's, or made
/// from `ctx.earlier`.
fn seen<'a>(ctx: Ctx<'a>, n: u32) -> Cow<'a, prose::Seen> {
    if let Some(seen) = ctx.seen {
        return Cow::Borrowed(seen);
    }
    let others = other_chapters(ctx, n);
    let views: Vec<prose::Chapter<'_>> = others
        .iter()
        .map(|(number, title, text)| prose::Chapter { number: *number, title, text })
        .collect();
    Cow::Owned(prose::Seen::of(&views))
}

/// Cleaning before re-asking: the scenes of `c` (with `revised`, only those) without what is
/// not story ([`prose::clean`]), kept when every scene still has prose and the chapter still
/// meets its length window; otherwise `c` stays as it was and its rules re-ask it.
fn clean(ctx: Ctx<'_>, seen: &prose::Seen, c: &mut ChapterText, revised: Option<&[u32]>) {
    let only: Option<Vec<usize>> =
        revised.map(|r| r.iter().filter_map(|n| (*n as usize).checked_sub(1)).collect());
    let texts: Vec<&str> = c.scenes.iter().map(|s| s.text.as_str()).collect();
    let cleaned = prose::clean::clean_scenes(c.number, &texts, seen, only.as_deref());
    if cleaned.iter().zip(&texts).all(|(a, b)| a == b) {
        return;
    }
    let words: usize = cleaned.iter().map(|t| prose::word_count(t)).sum();
    let target = ctx.brief.words_per_chapter as usize;
    let (lo, hi) = prose::length_window(target, prose::MIN_LENGTH_SCORE);
    let fits = target == 0 || (lo..=hi).contains(&words);
    if fits && cleaned.iter().all(|t| !t.trim().is_empty()) {
        for (s, t) in c.scenes.iter_mut().zip(cleaned) {
            s.text = t;
        }
    }
}

/// The 1-based paragraph numbers (as the prose checks count them) of scenes `scenes` of `c`.
fn paragraphs_of(c: &ChapterText, scenes: &[u32]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut next = 1;
    for (i, s) in c.scenes.iter().enumerate() {
        let n = prose::paragraphs(&s.text).len();
        if scenes.contains(&(i as u32 + 1)) {
            out.extend(next..next + n);
        }
        next += n;
    }
    out
}

/// The prose checks of [`REJECTED`] on chapter `c`, against the book's other accepted chapters;
/// with `revised`, only the findings in those scenes (or copying a paragraph of them) and the
/// chapter-wide ones count.
fn prose_rules(
    ctx: Ctx<'_>,
    seen: &prose::Seen,
    c: &ChapterText,
    revised: Option<&[u32]>,
) -> Result<(), Rejection> {
    let text = c.prose();
    let view = prose::Chapter { number: c.number, title: &c.title, text: &text };
    let plan = prose::Plan {
        title: None,
        target_words: Some(ctx.brief.words_per_chapter as usize).filter(|w| *w > 0),
        characters: &[],
    };
    let canon = canon(ctx, &c.continuity);
    let mut findings: Vec<prose::Finding> = prose::check_chapter(&view, &plan, seen, &canon)
        .into_iter()
        .filter(|f| REJECTED.contains(&f.rule))
        .filter(|f| match (revised, f.paragraph) {
            // A finding in a revised scene counts, and so does an unrevised paragraph that now
            // copies a revised one (the edit made the copy).
            (Some(scenes), Some(p)) => {
                let ours = paragraphs_of(c, scenes);
                ours.contains(&p)
                    || f.other.is_some_and(|o| o.chapter == c.number && ours.contains(&o.paragraph))
            }
            _ => true,
        })
        .collect();
    if findings.is_empty() {
        return Ok(());
    }
    findings.truncate(MAX_FINDINGS);
    reject(prose::rule_text(&findings).trim_end().to_string())
}

/// The schema of a chapter request (or of a part of one, `scenes` its scene numbers): the
/// planned number of scenes, characters named from the cast, and the continuity report. The
/// chapter's number and title are the engine's, not asked for.
pub(crate) fn schema(ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
    let planned = ctx.outline.and_then(|o| o.chapter(ctx.chapter)).map(|p| p.scenes.len());
    let k = scenes.map(<[u32]>::len).or(planned).unwrap_or(1).max(1);
    let names = ctx.cast.map(|c| c.names()).unwrap_or_default();
    let who = if names.is_empty() {
        array(text("a character's name"), 0, 12)
    } else {
        array(cast_name(&names), 0, names.len())
    };
    let scenes_planned = planned.unwrap_or(k);
    let prose = scene_prose("the scene's prose", ctx.brief, scenes_planned);
    object(vec![
        ("scenes", array(object(vec![("text", prose)]), k, k)),
        ("summary", text("what happened, in a few sentences")),
        ("characters", who),
        ("continuity", continuity::schema(ctx)),
    ])
}

/// The example a prompt shows: the schema's shape, with no deaths (a model copying the example
/// must not kill anyone).
pub(crate) fn example(ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
    let mut v = crate::schema::example(&schema(ctx, scenes));
    if let Some(deaths) = v.pointer_mut("/continuity/deaths") {
        *deaths = Value::Array(Vec::new());
    }
    v
}

/// Estimated tokens of an answer of `words` words of prose written as JSON in `scenes` scenes.
///
/// English prose takes about 6 bytes a word with its space and punctuation (1.75 estimated
/// tokens); each scene adds its heading and JSON keys, and the answer its other fields.
pub fn prose_tokens(words: u64, scenes: u64) -> u64 {
    words * 7 / 4 + 20 * scenes + 80
}

/// Room for a whole chapter of `brief` as JSON: about 1.6 tokens per word, plus structure.
pub(crate) fn prose_max_tokens(brief: &BookBrief) -> u32 {
    brief.words_per_chapter.saturating_mul(2).saturating_add(512)
}

/// The chapter kind.
pub struct ChapterKind;

impl Kind for ChapterKind {
    fn kind(&self) -> AgentKind {
        AgentKind::Chapter
    }

    fn inputs(&self) -> &'static [Input] {
        &[
            Input::Concept,
            Input::Cast,
            Input::World,
            Input::Outline,
            Input::PreviousSummaries,
            Input::LastLines,
            Input::Ledger,
            Input::OtherChapters,
        ]
    }

    fn task(&self, category: &str) -> TaskType {
        TaskType::matter(category)
    }

    fn schema(&self, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
        schema(ctx, scenes)
    }

    fn example(&self, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
        example(ctx, scenes)
    }

    fn validate(&self, output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
        validate(output, ctx)
    }

    fn answer_tokens(&self, brief: &BookBrief) -> u64 {
        prose_tokens(u64::from(brief.words_per_chapter), 4)
    }

    fn min_max_tokens(&self, brief: &BookBrief) -> u32 {
        prose_max_tokens(brief)
    }

    fn work(&self) -> Work {
        Work::Scenes
    }

    fn default_pool(&self) -> usize {
        16
    }

    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value {
        let (bad, story) = (call.bad(), call.story);
        simulate(call.facts, call.user, call.rng, bad, story)
    }
}

#[cfg(test)]
mod tests;
