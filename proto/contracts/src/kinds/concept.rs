//! The concept agent: title, logline and description of the book from the brief.

use crate::kinds::{Input, Kind};
use crate::rules::{Ctx, Rejection, non_empty, reject, to_value, typed};
use crate::schema::{array, object, text};
use crate::task::TaskType;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Answer of the concept agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Concept {
    /// Book title.
    pub title: String,
    /// One-sentence pitch.
    pub logline: String,
    /// A paragraph on what the book is.
    pub description: String,
    /// Tone of voice.
    pub tone: String,
    /// Intended readers.
    pub audience: String,
    /// Themes the book explores.
    pub themes: Vec<String>,
}

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    let mut c: Concept = typed("concept", output)?;
    if !ctx.brief.title.is_empty() {
        // The user's title is part of the brief, not the model's to change.
        c.title = ctx.brief.title.clone();
    }
    non_empty("concept title", &c.title)?;
    if c.title.chars().count() > 200 || c.title.contains('\n') {
        return reject("concept title must be one line of at most 200 characters");
    }
    non_empty("concept logline", &c.logline)?;
    if let Some(f) = crate::prose::titles::logline_finding(&c.title, &c.logline) {
        return reject(f.message);
    }
    non_empty("concept description", &c.description)?;
    Ok(to_value(&c))
}

/// The schema of a concept request: the brief's title is the engine's, not asked for.
pub(crate) fn schema(ctx: Ctx<'_>) -> Value {
    let mut props = Vec::new();
    if ctx.brief.title.trim().is_empty() {
        props.push(("title", text("the book's title")));
    }
    props.extend([
        ("logline", text("one sentence: who wants what, and what stands in the way")),
        ("description", text("a paragraph on what the book is")),
        ("tone", text("the tone of voice")),
        ("audience", text("who the book is for")),
        ("themes", array(text("a theme"), 1, 5)),
    ]);
    object(props)
}

#[cfg(feature = "sim")]
pub(crate) fn simulate(facts: &crate::facts::Facts, rng: &mut crate::sim::Rng) -> Value {
    use crate::sim::{FEELINGS, OBJECTS, PLACES, TOPICS, title, topic};
    // A title the brief gives is the engine's: the request's schema does not ask for it.
    let given = facts.get("title").is_some();
    let title = facts.get("title").map(str::to_string).unwrap_or_else(|| title(rng));
    let topic = topic(facts);
    let mut v = to_value(&Concept {
        logline: format!(
            "When {} is lost, a reluctant keeper of {} must choose between {} and {}.",
            rng.pick(OBJECTS),
            rng.pick(PLACES),
            rng.pick(FEELINGS),
            rng.pick(FEELINGS)
        ),
        description: format!(
            "{title} is a {topic} book about {} and {}, told with patience and a clear line \
             from the first page to the last.",
            rng.pick(TOPICS),
            rng.pick(TOPICS)
        ),
        tone: facts.get("tone").unwrap_or("measured").to_string(),
        audience: facts.get("audience").unwrap_or("general readers").to_string(),
        themes: (0..3).map(|_| rng.pick(TOPICS).to_string()).collect(),
        title,
    });
    if given && let Some(fields) = v.as_object_mut() {
        fields.remove("title");
    }
    v
}

/// The concept kind.
pub struct ConceptKind;

impl Kind for ConceptKind {
    fn kind(&self) -> AgentKind {
        AgentKind::Concept
    }

    fn inputs(&self) -> &'static [Input] {
        &[]
    }

    fn task(&self, _category: &str) -> TaskType {
        TaskType::Creative
    }

    fn schema(&self, ctx: Ctx<'_>, _scenes: Option<&[u32]>) -> Value {
        schema(ctx)
    }

    fn validate(&self, output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
        validate(output, ctx)
    }

    fn answer_tokens(&self, _brief: &BookBrief) -> u64 {
        400
    }

    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value {
        simulate(call.facts, call.rng)
    }
}
