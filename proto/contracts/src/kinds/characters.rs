//! The characters agent: the cast, exactly as many members as the brief asks for.

use crate::kinds::{Input, Kind};
use crate::rules::{Ctx, Rejection, non_empty, reject, to_value, typed};
use crate::schema::{array, object, text};
use crate::task::TaskType;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One member of the cast.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Character {
    /// Full name, unique in the cast.
    pub name: String,
    /// Age, free text ("34", "ancient").
    pub age: String,
    /// Role in the story (protagonist, mentor...).
    pub role: String,
    /// Physical description.
    pub physical: String,
    /// Personality traits.
    pub personality: String,
    /// Background.
    pub background: String,
    /// Motivations.
    pub motivations: String,
    /// Relationships to others in the cast.
    pub relationships: String,
    /// Internal conflict.
    pub internal_conflict: String,
    /// External conflict.
    pub external_conflict: String,
    /// How the character changes.
    pub arc: String,
}

/// Answer of the characters agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cast {
    /// Exactly the requested number of characters.
    pub characters: Vec<Character>,
}

impl Cast {
    /// Whether `name` is a member of the cast (case-insensitive, or a first name of one).
    pub fn knows(&self, name: &str) -> bool {
        self.member(name).is_some()
    }

    /// The member `name` names: by full name (case-insensitive), else by first name.
    pub fn member(&self, name: &str) -> Option<&Character> {
        let name = name.trim();
        self.characters.iter().find(|c| c.name.eq_ignore_ascii_case(name)).or_else(|| {
            self.characters.iter().find(|c| {
                c.name.split_whitespace().next().is_some_and(|f| f.eq_ignore_ascii_case(name))
            })
        })
    }

    /// The names of the cast, in order.
    pub fn names(&self) -> Vec<&str> {
        self.characters.iter().map(|c| c.name.as_str()).collect()
    }
}

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    let c: Cast = typed("characters", output)?;
    let want = ctx.brief.characters as usize;
    if c.characters.len() != want {
        return reject(format!(
            "the cast must have exactly {want} characters (got {})",
            c.characters.len()
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, ch) in c.characters.iter().enumerate() {
        non_empty(&format!("character {} name", i + 1), &ch.name)?;
        non_empty(&format!("character {} role", i + 1), &ch.role)?;
        if let Some(why) = crate::prose::titles::not_a_name(&ch.name) {
            return reject(format!(
                "character {} name is not a person's name ({why}): give a first and last name, \
                 each word capitalised, and nothing else",
                i + 1
            ));
        }
        let key = ch.name.trim().to_lowercase();
        let title = ctx.brief.title.trim().to_lowercase();
        if !title.is_empty() && (key == title || key == title.trim_start_matches("the ")) {
            // The title is not quoted: a small model re-asked with it in the feedback copies it.
            return reject(format!(
                "character {} is named after the book's title: give every character a person's \
                 first and last name, never the title or a place",
                i + 1
            ));
        }
        if seen.contains(&key) {
            return reject(format!("character names must be unique ({:?} appears twice)", ch.name));
        }
        seen.push(key);
    }
    Ok(to_value(&c))
}

/// The schema of a cast request: exactly the brief's number of characters, every field filled.
pub(crate) fn schema(ctx: Ctx<'_>) -> Value {
    let n = ctx.brief.characters as usize;
    // Each description asks for something specific: small models copy a bare noun ("age",
    // "background") as the value, which is refused as a placeholder.
    let character = object(vec![
        ("name", text("the character's first and last name, unique in the cast")),
        ("age", text("their age in years, or an age group")),
        ("role", text("their part in the story, such as hero, rival or mentor")),
        ("physical", text("what they look like, in one sentence")),
        ("personality", text("their temperament and habits, in one sentence")),
        ("background", text("where they come from and what shaped them")),
        ("motivations", text("what they want most, and why")),
        ("relationships", text("how they stand with the other characters")),
        ("internal_conflict", text("the struggle inside them")),
        ("external_conflict", text("what or who stands in their way")),
        ("arc", text("who they have become by the last chapter")),
    ]);
    object(vec![("characters", array(character, n, n))])
}

#[cfg(feature = "sim")]
pub(crate) fn simulate(facts: &crate::facts::Facts, rng: &mut crate::sim::Rng, bad: bool) -> Value {
    use crate::sim::{FEELINGS, FIRST, LAST, OBJECTS, PLACES, ROLES};
    let n = facts.num("characters").unwrap_or(3) + u32::from(bad);
    let mut names: Vec<String> = Vec::new();
    while names.len() < n as usize {
        let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
        let first = name.split(' ').next().unwrap_or_default().to_string();
        if !names.iter().any(|n| n.starts_with(&format!("{first} "))) {
            names.push(name);
        }
    }
    let characters = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Character {
            age: rng.range(17, 71).to_string(),
            role: if i == 0 { "protagonist".into() } else { rng.pick(ROLES).to_string() },
            physical: format!("Weathered hands, a habit of standing near {}", rng.pick(PLACES)),
            personality: format!("Driven by {}, hiding {}", rng.pick(FEELINGS), rng.pick(FEELINGS)),
            background: format!(
                "Grew up near {} and still keeps {}",
                rng.pick(PLACES),
                rng.pick(OBJECTS)
            ),
            motivations: format!("To protect {}", rng.pick(OBJECTS)),
            relationships: "Owes an old debt to someone in the cast".into(),
            internal_conflict: format!("{} against {}", rng.pick(FEELINGS), rng.pick(FEELINGS)),
            external_conflict: format!("A rival claim on {}", rng.pick(PLACES)),
            arc: format!("From {} to {}", rng.pick(FEELINGS), rng.pick(FEELINGS)),
            name,
        })
        .collect();
    to_value(&Cast { characters })
}

/// The characters kind.
pub struct CharactersKind;

impl Kind for CharactersKind {
    fn kind(&self) -> AgentKind {
        AgentKind::Characters
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Concept]
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

    fn answer_tokens(&self, brief: &BookBrief) -> u64 {
        100 + 200 * u64::from(brief.characters)
    }

    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value {
        let bad = call.bad();
        simulate(call.facts, call.rng, bad)
    }
}
