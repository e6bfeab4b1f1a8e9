//! The review agent: a structured critique of one chapter with scores and a verdict.

use crate::kinds::{Input, Kind};
use crate::rules::{Ctx, Rejection, reject, to_value, typed};
use crate::schema::{array, integer, object, one_of, text};
use crate::task::TaskType;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

pub(crate) fn validate(output: &str) -> Result<Value, Rejection> {
    let mut r: Review = typed("review", output)?;
    r.verdict = r.verdict.trim().to_lowercase();
    if r.verdict != "accept" && r.verdict != "revise" {
        return reject(format!(
            "the review verdict must be \"accept\" or \"revise\" (got {:?})",
            r.verdict
        ));
    }
    if let Some((name, score)) = r.scores.named().into_iter().find(|(_, s)| !(1..=10).contains(s)) {
        return reject(format!("review score {name} must be between 1 and 10 (got {score})"));
    }
    if r.verdict == "revise" && r.issues.is_empty() && r.suggestions.is_empty() {
        return reject("a review with verdict \"revise\" must list issues or suggestions");
    }
    Ok(to_value(&r))
}

/// The schema of a review request: a verdict of two, six integer scores from 1 to 10.
pub(crate) fn schema() -> Value {
    let scores = Scores::default().named().map(|(name, _)| (name, integer(1, 10))).to_vec();
    object(vec![
        ("verdict", one_of(&["accept", "revise"])),
        ("scores", object(scores)),
        ("issues", array(text("a problem, naming its scene (\"Scene N: ...\")"), 0, 8)),
        ("suggestions", array(text("a concrete change, naming its scene"), 0, 8)),
    ])
}

#[cfg(feature = "sim")]
pub(crate) fn simulate(facts: &crate::facts::Facts, rng: &mut crate::sim::Rng) -> Value {
    use crate::sim::OBJECTS;
    // The middle scene, named as the review prompt asks.
    let at = facts
        .num("scenes in this chapter")
        .map(|n| format!("Scene {}: ", n.div_ceil(2)))
        .unwrap_or_default();
    let mut score = || rng.range(5, 9) as u8;
    let scores = Scores {
        consistency: score(),
        clarity: score(),
        plot_holes: score(),
        redundancy: score(),
        flow: score(),
        engagement: score(),
    };
    to_value(&Review {
        verdict: if rng.chance(0.5) { "accept".into() } else { "revise".into() },
        scores,
        issues: vec![format!(
            "{at}The middle scene leans on {} without setting it up",
            rng.pick(OBJECTS)
        )],
        suggestions: vec![format!(
            "{at}Plant {} earlier and sharpen the final beat",
            rng.pick(OBJECTS)
        )],
    })
}

/// The review kind.
pub struct ReviewKind;

impl Kind for ReviewKind {
    fn kind(&self) -> AgentKind {
        AgentKind::Review
    }

    fn inputs(&self) -> &'static [Input] {
        &[Input::Cast, Input::World, Input::Outline, Input::Draft, Input::Ledger]
    }

    fn task(&self, _category: &str) -> TaskType {
        TaskType::Analytical
    }

    fn schema(&self, _ctx: Ctx<'_>, _scenes: Option<&[u32]>) -> Value {
        schema()
    }

    fn validate(&self, output: &str, _ctx: Ctx<'_>) -> Result<Value, Rejection> {
        validate(output)
    }

    fn answer_tokens(&self, _brief: &BookBrief) -> u64 {
        500
    }

    fn default_pool(&self) -> usize {
        16
    }

    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value {
        simulate(call.facts, call.rng)
    }
}
