//! The JSON documents agents answer with, one type per agent kind.
//!
//! Unknown fields are tolerated (models add them), missing optional fields default;
//! the coordinator's validation decides what is acceptable.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
        let name = name.trim();
        self.characters.iter().any(|c| {
            c.name.eq_ignore_ascii_case(name)
                || c.name
                    .split_whitespace()
                    .next()
                    .is_some_and(|first| first.eq_ignore_ascii_case(name))
        })
    }
}

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

/// Scores of a review, 1 (poor) to 10 (excellent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scores {
    /// Consistency with outline, cast and world.
    pub consistency: u8,
    /// Clarity of the prose.
    pub clarity: u8,
    /// Absence of plot holes (10 = none).
    pub plot_holes: u8,
    /// Absence of redundancy (10 = none).
    pub redundancy: u8,
    /// Flow between scenes.
    pub flow: u8,
    /// How engaging it is.
    pub engagement: u8,
}

impl Scores {
    /// The scores with their names, in a fixed order.
    pub fn named(&self) -> [(&'static str, u8); 6] {
        [
            ("consistency", self.consistency),
            ("clarity", self.clarity),
            ("plot_holes", self.plot_holes),
            ("redundancy", self.redundancy),
            ("flow", self.flow),
            ("engagement", self.engagement),
        ]
    }
}

/// Answer of the review agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Review {
    /// `accept` or `revise`.
    pub verdict: String,
    /// Scores per criterion.
    pub scores: Scores,
    /// Problems found.
    pub issues: Vec<String>,
    /// Concrete changes the edit should make.
    pub suggestions: Vec<String>,
}
