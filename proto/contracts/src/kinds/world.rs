//! The world agent: named sections of the book's setting, which depend on its category.

use crate::kinds::{Input, Kind};
use crate::rules::{Ctx, Rejection, reject, to_value, typed};
use crate::schema::{object, text};
use crate::task::TaskType;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Answer of the world agent: named sections whose names depend on the category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct World {
    /// Section name to its content.
    pub sections: BTreeMap<String, String>,
}

impl World {
    /// The section names a world of `category` must have.
    pub fn required_sections(category: &str) -> &'static [&'static str] {
        match category {
            "fiction" => &["geography", "cultures", "magic_or_technology", "history", "conflicts"],
            "business" => &["market", "problem", "frameworks", "case_studies"],
            "research" => &["field", "prior_work", "methods", "open_questions"],
            _ => &["background", "key_concepts", "examples", "misconceptions"],
        }
    }
}

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    let w: World = typed("world", output)?;
    for s in World::required_sections(&ctx.brief.category) {
        match w.sections.get(*s) {
            Some(text) if !text.trim().is_empty() => {}
            _ => return reject(format!("the world must have a non-empty section {s:?}")),
        }
    }
    Ok(to_value(&w))
}

/// The schema of a world request: the sections of the book's category, each filled.
pub(crate) fn schema(ctx: Ctx<'_>) -> Value {
    let sections = World::required_sections(&ctx.brief.category)
        .iter()
        .map(|s| (*s, text(&s.replace('_', " "))))
        .collect();
    object(vec![("sections", object(sections))])
}

#[cfg(feature = "sim")]
pub(crate) fn simulate(facts: &crate::facts::Facts, rng: &mut crate::sim::Rng) -> Value {
    use crate::sim::{PLACES, TOPICS};
    let category = facts.get("category").unwrap_or("fiction");
    let sections = World::required_sections(category)
        .iter()
        .map(|s| {
            let text = format!(
                "{} shaped by {} and {}; it is felt most around {}.",
                s.replace('_', " "),
                rng.pick(TOPICS),
                rng.pick(TOPICS),
                rng.pick(PLACES)
            );
            (s.to_string(), text)
        })
        .collect();
    to_value(&World { sections })
}

/// The world kind.
pub struct WorldKind;

impl Kind for WorldKind {
    fn kind(&self) -> AgentKind {
        AgentKind::World
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Concept]
    }

    fn task(&self, category: &str) -> TaskType {
        TaskType::matter(category)
    }

    fn schema(&self, ctx: Ctx<'_>, _scenes: Option<&[u32]>) -> Value {
        schema(ctx)
    }

    fn validate(&self, output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
        validate(output, ctx)
    }

    fn answer_tokens(&self, brief: &BookBrief) -> u64 {
        100 + 100 * World::required_sections(&brief.category).len() as u64
    }

    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value {
        simulate(call.facts, call.rng)
    }
}
