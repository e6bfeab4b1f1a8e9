//! The outline agent: the book's summary and exactly the asked number of chapters, each with
//! 3 to 6 scenes whose characters come from the cast.

use crate::kinds::{Input, Kind};
use crate::rules::{Ctx, Rejection, known_names, non_empty, reject, to_value, typed};
use crate::schema::{array, cast_name, object, text, text_sized};
use crate::task::TaskType;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Scenes a chapter may have.
pub const SCENES: std::ops::RangeInclusive<usize> = 3..=6;

/// One scene of an outlined chapter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scene {
    /// What happens.
    pub summary: String,
    /// Names of the characters present (all from the cast).
    pub characters: Vec<String>,
    /// Where it happens.
    pub setting: String,
    /// What the scene must achieve.
    pub goal: String,
    /// The emotional beat it lands.
    pub emotional_beat: String,
}

/// One chapter of the outline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlineChapter {
    /// 1-based chapter number.
    pub number: u32,
    /// Chapter title.
    pub title: String,
    /// What the chapter covers.
    pub summary: String,
    /// Its scenes, 3 to 6.
    pub scenes: Vec<Scene>,
}

/// Answer of the outline agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outline {
    /// Summary of the whole book.
    pub summary: String,
    /// Exactly the requested number of chapters.
    pub chapters: Vec<OutlineChapter>,
}

impl Outline {
    /// The plan of chapter `number`.
    pub fn chapter(&self, number: u32) -> Option<&OutlineChapter> {
        self.chapters.iter().find(|c| c.number == number)
    }
}

impl OutlineChapter {
    /// The names of the characters its scenes list, in order of first appearance.
    pub fn cast(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for n in self.scenes.iter().flat_map(|s| s.characters.iter()) {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        names
    }
}

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    let mut o: Outline = typed("outline", output)?;
    // Chapters are numbered by the engine, in order; an answer may leave the numbers out.
    for (i, c) in o.chapters.iter_mut().enumerate() {
        if c.number == 0 {
            c.number = i as u32 + 1;
        }
        c.title = crate::schema::clean_title(&c.title);
    }
    let want = ctx.brief.chapters as usize;
    if o.chapters.len() != want {
        return reject(format!(
            "the outline must have exactly {want} chapters (got {})",
            o.chapters.len()
        ));
    }
    let titles: Vec<&str> = o.chapters.iter().map(|c| c.title.as_str()).collect();
    if let Some(f) = crate::prose::titles::repeated_title_findings(&titles).into_iter().next() {
        return reject(f.message);
    }
    for (i, c) in o.chapters.iter().enumerate() {
        let n = i as u32 + 1;
        if c.number != n {
            return reject(format!(
                "outline chapters must be numbered 1 to {want} in order (chapter {n} is numbered {})",
                c.number
            ));
        }
        non_empty(&format!("chapter {n} title"), &c.title)?;
        non_empty(&format!("chapter {n} summary"), &c.summary)?;
        if !SCENES.contains(&c.scenes.len()) {
            return reject(format!(
                "chapter {n} must have {} to {} scenes (got {})",
                SCENES.start(),
                SCENES.end(),
                c.scenes.len()
            ));
        }
        for (j, s) in c.scenes.iter().enumerate() {
            non_empty(&format!("chapter {n} scene {} summary", j + 1), &s.summary)?;
            known_names(ctx, &s.characters, &format!("chapter {n} scene {}", j + 1))?;
        }
    }
    Ok(to_value(&o))
}

/// How the simulated outline misbehaves.
/// The schema of an outline request: exactly the brief's number of chapters (numbered by the
/// engine, in order), 3 to 6 scenes each, scene characters named from the accepted cast.
pub(crate) fn schema(ctx: Ctx<'_>) -> Value {
    let n = ctx.brief.chapters as usize;
    let names = ctx.cast.map(|c| c.names()).unwrap_or_default();
    let who = if names.is_empty() {
        array(text("a character's name"), 0, 6)
    } else {
        array(cast_name(&names), 1, names.len())
    };
    // Each field bounded so that the whole outline, however long the book, fits one answer:
    // a grammar-enforcing server holds a model to these lengths.
    let short = |what, max| text_sized(what, 1, max);
    let scene = object(vec![
        ("summary", short("one sentence on what happens in the scene", 200)),
        ("characters", who),
        ("setting", short("where it happens, in a few words", 80)),
        ("goal", short("what the scene must achieve, in one short sentence", 150)),
        ("emotional_beat", short("the emotional beat it lands, in a few words", 80)),
    ]);
    let chapter = object(vec![
        ("title", short("a short title of its own for this chapter", 80)),
        ("summary", short("two or three sentences on what happens in this chapter", 400)),
        ("scenes", array(scene, *SCENES.start(), *SCENES.end())),
    ]);
    // The chapters come first and the book's summary after them: a small model asked for the
    // summary first copies its description ("the whole book in a paragraph") every time; after
    // the chapters it has a story to sum up.
    object(vec![
        ("chapters", array(chapter, n, n)),
        ("summary", short("the whole book in a paragraph", 800)),
    ])
}

#[cfg(feature = "sim")]
pub(crate) fn simulate(
    facts: &crate::facts::Facts,
    rng: &mut crate::sim::Rng,
    how: crate::sim::Misbehave,
) -> Value {
    use crate::sim::{FEELINGS, Misbehave, OBJECTS, PLACES, TOPICS, title};
    let asked = facts.num("chapters").unwrap_or(3);
    let n = if how == Misbehave::ExtraChapters { asked + 3 } else { asked };
    let thirty = matches!(how, Misbehave::Any | Misbehave::ThirtyScenes);
    let cast = facts.list("cast");
    let mut titles: Vec<String> = Vec::new();
    let chapters = (1..=n)
        .map(|number| {
            let scenes = if thirty && number == 1 { 30 } else { rng.range(3, 6) };
            // Every chapter a title of its own: a repeated one is refused.
            let mut t = title(rng);
            for _ in 0..32 {
                if !titles.contains(&t) {
                    break;
                }
                t = title(rng);
            }
            titles.push(t.clone());
            OutlineChapter {
                number,
                title: t,
                summary: format!(
                    "Chapter {number} turns on {} at {}.",
                    rng.pick(OBJECTS),
                    rng.pick(PLACES)
                ),
                scenes: (0..scenes)
                    .map(|_| Scene {
                        summary: format!("A confrontation over {}", rng.pick(OBJECTS)),
                        characters: pick_some(&cast, rng),
                        setting: rng.pick(PLACES).to_string(),
                        goal: format!("Reveal the {}", rng.pick(TOPICS)),
                        emotional_beat: rng.pick(FEELINGS).to_string(),
                    })
                    .collect(),
            }
        })
        .collect();
    let mut v = to_value(&Outline {
        summary: format!("A book in {n} chapters about {}.", rng.pick(TOPICS)),
        chapters,
    });
    // The shape the request's schema asks for: the engine numbers the chapters.
    for c in v["chapters"].as_array_mut().into_iter().flatten() {
        if let Some(c) = c.as_object_mut() {
            c.remove("number");
        }
    }
    v
}

#[cfg(feature = "sim")]
fn pick_some(cast: &[String], rng: &mut crate::sim::Rng) -> Vec<String> {
    if cast.is_empty() {
        return Vec::new();
    }
    let k = rng.range(1, cast.len().min(2) as u32) as usize;
    let start = (rng.next_u64() % cast.len() as u64) as usize;
    (0..k).map(|i| cast[(start + i) % cast.len()].clone()).collect()
}

/// The outline kind.
pub struct OutlineKind;

impl Kind for OutlineKind {
    fn kind(&self) -> AgentKind {
        AgentKind::Outline
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Concept, Input::Cast, Input::World]
    }

    fn task(&self, _category: &str) -> TaskType {
        TaskType::Analytical
    }

    fn schema(&self, ctx: Ctx<'_>, _scenes: Option<&[u32]>) -> Value {
        schema(ctx)
    }

    fn validate(&self, output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
        validate(output, ctx)
    }

    fn answer_tokens(&self, brief: &BookBrief) -> u64 {
        100 + 330 * u64::from(brief.chapters)
    }

    /// Room for every chapter with up to six scenes.
    fn min_max_tokens(&self, brief: &BookBrief) -> u32 {
        brief.chapters.saturating_mul(400).saturating_add(256)
    }

    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value {
        simulate(call.facts, call.rng, call.how)
    }
}
