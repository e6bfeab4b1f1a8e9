//! The edit agent: the scenes of a chapter its review names, rewritten; the worker merges
//! them into the draft, and the merged chapter is checked like a draft that keeps its scenes,
//! changes the scenes its review names and keeps their length. The prose rules judge the
//! revised scenes (and the chapter's length): the others are the accepted draft's, which an
//! edit is not asked to touch.

use crate::kinds::chapter::{self, ChapterText};
use crate::kinds::review::Review;
use crate::kinds::{Input, Kind, Work};
use crate::prose::{self, normalise};
use crate::rules::{Ctx, Rejection, reject, to_value};
use crate::schema::{array, object, text};
use crate::task::TaskType;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde_json::Value;

/// The scenes an edit of `draft` revises: those its review names (`Scene 2: ...`) when every
/// issue and suggestion names one, else every scene of the draft.
pub fn targets(draft: &ChapterText, review: Option<&Review>) -> Vec<u32> {
    let scenes = draft.scenes.len() as u32;
    let all: Vec<u32> = (1..=scenes).collect();
    let Some(review) = review else { return all };
    let mut named: Vec<u32> = Vec::new();
    for item in review.issues.iter().chain(&review.suggestions) {
        let refs: Vec<u32> =
            scene_refs(item).into_iter().filter(|n| (1..=scenes).contains(n)).collect();
        if refs.is_empty() {
            return all;
        }
        named.extend(refs);
    }
    named.sort_unstable();
    named.dedup();
    if named.is_empty() { all } else { named }
}

/// Scene numbers an item of a review names as `Scene N` (any case).
fn scene_refs(text: &str) -> Vec<u32> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("scene ") {
        let after = &rest[i + 6..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            out.push(n);
        }
        rest = after;
    }
    out
}

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    let Some(draft) = ctx.draft else {
        return chapter::read(output, ctx, "edited chapter", None).map(|c| to_value(&c));
    };
    let revised = targets(draft, ctx.review);
    let mut c = chapter::read(output, ctx, "edited chapter", Some(&revised))?;
    if draft.scenes.len() != c.scenes.len() {
        return reject(format!(
            "the edited chapter must keep the draft's {} scenes (got {})",
            draft.scenes.len(),
            c.scenes.len()
        ));
    }
    // A scene that came back as it was stays the draft's; an edit that changed none of the
    // scenes its review names did nothing and is asked again.
    let changed: Vec<u32> = revised
        .iter()
        .copied()
        .filter(|n| {
            let i = *n as usize - 1;
            normalise(&draft.scenes[i].text) != normalise(&c.scenes[i].text)
        })
        .collect();
    if changed.is_empty() {
        let list: Vec<String> = revised.iter().map(u32::to_string).collect();
        return reject(format!(
            "the edit must revise scene {}, which the review names (it came back unchanged)",
            list.join(", ")
        ));
    }
    for n in changed {
        let i = n as usize - 1;
        let (old, new) = (&draft.scenes[i].text, &c.scenes[i].text);
        let (was, now) = (prose::word_count(old), prose::word_count(new));
        let (lo, hi) = prose::length_window(was, prose::MIN_LENGTH_SCORE);
        if !(lo..=hi).contains(&now) {
            return reject(format!(
                "the revised scene {n} must stay about as long as the draft's ({was} words): \
                 between {lo} and {hi} words (got {now})"
            ));
        }
    }
    // The continuity report is the draft's: an edit changes the telling, not the events.
    c.continuity = draft.continuity.clone();
    Ok(to_value(&c))
}

/// The schema of an edit request revising scenes `scenes` (all of the draft's when `None`):
/// each revised scene gives its number, one of those asked for.
pub(crate) fn schema(ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
    let all: Vec<u32> = (1..=ctx.draft.map_or(1, |d| d.scenes.len().max(1)) as u32).collect();
    let targets = scenes.unwrap_or(&all);
    let scene = object(vec![
        ("number", serde_json::json!({"type": "integer", "enum": targets})),
        ("text", chapter::scene_prose("the revised scene's prose", ctx.brief, all.len())),
    ]);
    object(vec![
        ("scenes", array(scene, targets.len(), targets.len())),
        ("summary", text("what happens in the chapter, in a few sentences")),
        ("changes", array(text("what was changed and why"), 1, 8)),
    ])
}

/// `text` without the dead: every sentence naming one of `dead` (full or first name) replaced
/// by a new sentence about the living.
#[cfg(feature = "sim")]
fn without_dead(
    text: &str,
    dead: &[String],
    rng: &mut crate::sim::Rng,
    names: &[&str],
    topic: &str,
) -> String {
    let mentions = |s: &str| {
        dead.iter().any(|d| {
            s.contains(d.as_str()) || d.split_whitespace().next().is_some_and(|f| s.contains(f))
        })
    };
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| {
            let parts: Vec<&str> = p.split(". ").collect();
            let last = parts.len() - 1;
            parts
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    let sentence = if i < last { format!("{part}.") } else { part.to_string() };
                    if mentions(&sentence) {
                        crate::sim::sentence(rng, names, topic)
                    } else {
                        sentence
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    paragraphs.join("\n\n")
}

/// `text` with its last sentence replaced by a new one (a different one when the draw allows).
#[cfg(feature = "sim")]
fn revise(text: &str, rng: &mut crate::sim::Rng, names: &[&str], topic: &str) -> String {
    let text = text.trim_end();
    let keep = text
        .char_indices()
        .rev()
        .find(|(i, c)| *c == '.' && text[i + 1..].starts_with(char::is_whitespace))
        .map_or("", |(end, _)| &text[..=end]);
    let sep =
        if text[keep.len()..].trim_start_matches(' ').starts_with('\n') { "\n\n" } else { " " };
    let old = text[keep.len()..].trim();
    let mut new = crate::sim::sentence(rng, names, topic);
    for _ in 0..4 {
        if new != old {
            break;
        }
        new = crate::sim::sentence(rng, names, topic);
    }
    if keep.is_empty() { new } else { format!("{keep}{sep}{new}") }
}

/// An edit: with numbered draft scenes (the default prompt), every scene shown, revised, with
/// its number; with an unnumbered draft, the whole revised chapter. A revision rewrites the
/// scene's closing sentence, so its length stays, and every sentence in which a dead character
/// appears (a draft written before the death was known).
#[cfg(feature = "sim")]
pub(crate) fn simulate(
    facts: &crate::facts::Facts,
    user: &str,
    rng: &mut crate::sim::Rng,
    bad: bool,
) -> Value {
    use crate::sim::{OBJECTS, topic};
    let doc = user.find("Draft:").and_then(|i| crate::extract::json_object(&user[i..]).ok());
    let topic = topic(facts);
    let changes = vec!["Sharpened the closing beat as the review asked".to_string()];
    let dead = facts.list("dead");
    let alive = |names: Vec<String>| -> Vec<String> {
        names.into_iter().filter(|n| !dead.iter().any(|d| d.eq_ignore_ascii_case(n))).collect()
    };
    let shown: Vec<Value> = doc
        .as_ref()
        .and_then(|d| d["scenes"].as_array())
        .map(|scenes| scenes.iter().filter(|s| s["number"].is_u64()).cloned().collect())
        .unwrap_or_default();
    if let (false, Some(doc)) = (shown.is_empty(), &doc) {
        let cast = alive(facts.list("chapter cast"));
        let names: Vec<&str> = cast.iter().map(String::as_str).collect();
        // Every scene shown is revised; a bad edit empties them.
        let scenes: Vec<Value> = shown
            .iter()
            .map(|scene| {
                let text = scene["text"].as_str().unwrap_or_default();
                let text = without_dead(text, &dead, rng, &names, &topic);
                let text = revise(&text, rng, &names, &topic);
                serde_json::json!({
                    "number": scene["number"],
                    "text": if bad { String::new() } else { text },
                })
            })
            .collect();
        return serde_json::json!({
            "scenes": scenes,
            "summary": format!("In chapter {}, {} changes everything.", doc["number"], rng.pick(OBJECTS)),
            "changes": changes,
        });
    }
    let draft = doc.and_then(|v| serde_json::from_value::<ChapterText>(v).ok());
    let Some(mut draft) = draft else {
        return chapter::simulate(facts, user, rng, bad, Default::default());
    };
    let cast = alive(draft.characters.clone());
    let names: Vec<&str> = cast.iter().map(String::as_str).collect();
    if let Some(last) = draft.scenes.last_mut() {
        last.text = revise(&last.text, rng, &names, &topic);
    }
    if bad {
        draft.scenes.clear();
    }
    draft.changes = changes;
    to_value(&draft)
}

/// The edit kind.
pub struct EditKind;

impl Kind for EditKind {
    fn kind(&self) -> AgentKind {
        AgentKind::Edit
    }

    fn inputs(&self) -> &'static [Input] {
        &[
            Input::Cast,
            Input::World,
            Input::Outline,
            Input::Draft,
            Input::Ledger,
            Input::Review,
            Input::OtherChapters,
        ]
    }

    fn task(&self, category: &str) -> TaskType {
        TaskType::matter(category)
    }

    fn schema(&self, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
        schema(ctx, scenes)
    }

    fn validate(&self, output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
        validate(output, ctx)
    }

    fn answer_tokens(&self, brief: &BookBrief) -> u64 {
        chapter::prose_tokens(u64::from(brief.words_per_chapter), 4)
    }

    fn min_max_tokens(&self, brief: &BookBrief) -> u32 {
        chapter::prose_max_tokens(brief)
    }

    fn work(&self) -> Work {
        Work::Revisions
    }

    fn default_pool(&self) -> usize {
        16
    }

    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value {
        let bad = call.bad();
        simulate(call.facts, call.user, call.rng, bad)
    }
}
