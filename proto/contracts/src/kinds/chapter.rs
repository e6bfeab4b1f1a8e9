//! The chapter agent: a chapter's prose, scene by scene as planned, with a summary for the
//! chapters after it.

use crate::rules::{Ctx, Rejection, known_names, non_empty, reject, typed};
use crate::schema::{array, object, one_of, text, text_sized};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Words a chapter of `brief` may have: 40% to 250% of the target.
pub fn words(brief: &scriptorium_proto::v1::BookBrief) -> (usize, usize) {
    let target = brief.words_per_chapter.max(1) as usize;
    ((target * 2 / 5).max(50), target * 5 / 2)
}

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    read(output, ctx, "chapter").map(|c| crate::rules::to_value(&c))
}

/// Reads and checks a chapter (or an edited chapter, `what`).
pub(crate) fn read(output: &str, ctx: Ctx<'_>, what: &str) -> Result<ChapterText, Rejection> {
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
        if c.title.trim().is_empty() {
            c.title = plan.title.clone();
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
    // Headings are the engine's too: a scene's place in the chapter.
    for (i, s) in c.scenes.iter_mut().enumerate() {
        if s.heading.trim().is_empty() {
            s.heading = format!("Scene {}", i + 1);
        }
    }
    if c.scenes.is_empty() {
        return reject(format!("chapter {n} has no prose"));
    }
    if let Some(i) = c.scenes.iter().position(|s| s.text.trim().is_empty()) {
        return reject(format!("chapter {n} scene {} has empty prose", i + 1));
    }
    let (lo, hi) = words(ctx.brief);
    let count = c.word_count();
    if count < lo || count > hi {
        return reject(format!("chapter {n} must have between {lo} and {hi} words (got {count})"));
    }
    known_names(ctx, &c.characters, &format!("chapter {n}"))?;
    non_empty(&format!("chapter {n} summary"), &c.summary)?;
    Ok(c)
}

/// The schema of a chapter request (or of a part of one, `scenes` its scene numbers): the
/// planned number of scenes, characters named from the cast. The chapter's number and title
/// are the engine's, not asked for.
pub(crate) fn schema(ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
    let planned = ctx.outline.and_then(|o| o.chapter(ctx.chapter)).map(|p| p.scenes.len());
    let k = scenes.map(<[u32]>::len).or(planned).unwrap_or(1).max(1);
    let names = ctx.cast.map(|c| c.names()).unwrap_or_default();
    let who = if names.is_empty() {
        array(text("a character's name"), 0, 12)
    } else {
        array(one_of(&names), 0, names.len())
    };
    // Each scene's share of the chapter's word window, in characters (about 5.5 a word with
    // its space): a grammar then holds a small model to the length it cannot count.
    let (lo, hi) = words(ctx.brief);
    let share = |w: usize| w * 11 / 2 / planned.unwrap_or(k).max(1);
    let prose = text_sized("the scene's prose", share(lo), share(hi));
    object(vec![
        ("scenes", array(object(vec![("text", prose)]), k, k)),
        ("summary", text("what happened, in a few sentences")),
        ("characters", who),
    ])
}

/// The simulated chapter (or part of one), in its request schema's shape: scenes of prose,
/// a summary and the characters present.
#[cfg(feature = "sim")]
pub(crate) fn simulate(facts: &crate::facts::Facts, rng: &mut crate::sim::Rng, bad: bool) -> Value {
    use crate::sim::{OBJECTS, prose, topic};
    let number = facts.num("chapter").unwrap_or(1);
    // A request for part of a chapter writes only its scenes and words.
    let (scenes, words) = match facts.num("scenes in this part") {
        Some(k) => (k.clamp(1, 6), facts.num("words in this part").unwrap_or(300) as usize),
        None => (
            facts.num("scenes in this chapter").unwrap_or(3).clamp(1, 6),
            facts.num("words per chapter").unwrap_or(800) as usize,
        ),
    };
    let mut cast = facts.list("chapter cast");
    if cast.is_empty() {
        cast = facts.list("cast");
    }
    let names: Vec<&str> = cast.iter().map(String::as_str).collect();
    let topic = topic(facts);
    let per_scene = words / scenes as usize + 1;
    let scenes: Vec<Value> = (0..scenes)
        .map(|_| {
            let text = if bad { String::new() } else { prose(rng, &names, &topic, per_scene) };
            serde_json::json!({ "text": text })
        })
        .collect();
    serde_json::json!({
        "scenes": scenes,
        "summary": format!("In chapter {number}, {} changes everything.", rng.pick(OBJECTS)),
        "characters": cast,
    })
}
