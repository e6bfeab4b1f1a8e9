//! A book's plan: the DAG of steps its brief calls for.
//!
//! concept → characters, world (when wanted) → outline → chapter N → review N → edit N → assembly.
//! Chapters are drafted in order by default: chapter N waits for chapter N-1's accepted draft
//! (its summary, continuity ledger and closing lines go into N's prompt), while the reviews and
//! edits of earlier chapters run beside it. A brief with `drafting = "parallel"` drafts every
//! chapter at once from the outline. Each chapter's review and edit follow its draft alone.
//! Assembly is the coordinator's own step (kind `assembly`): no model call.

use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};

/// Id of the local assembly step.
pub const ASSEMBLY: &str = "assembly";

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// Unique id within the book (`concept`, `chapter-03`...).
    pub id: String,
    /// The step's kind: an agent kind, or `Assembly` for the coordinator's own last step.
    #[serde(with = "kind_name")]
    pub kind: AgentKind,
    /// 1-based chapter number for chapter, review and edit steps; 0 otherwise.
    pub chapter: u32,
    /// Ids of the steps whose results this step needs.
    pub deps: Vec<String>,
}

/// The DAG of a book's steps, in a valid execution order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Steps in topological order.
    pub steps: Vec<PlannedStep>,
}

/// Whether `brief` drafts its chapters in order (the default) rather than all at once.
pub fn sequential(brief: &BookBrief) -> bool {
    brief.drafting != "parallel"
}

/// Step id of a chapter-level step.
pub fn chapter_step(kind: AgentKind, n: u32) -> String {
    format!("{}-{n:02}", scriptorium_proto::kind::name(kind))
}

impl Plan {
    /// The plan a brief calls for.
    pub fn for_brief(brief: &BookBrief) -> Plan {
        let mut steps = Vec::new();
        let mut step = |id: String, kind, chapter, deps: Vec<String>| {
            steps.push(PlannedStep { id, kind, chapter, deps })
        };
        step("concept".into(), AgentKind::Concept, 0, vec![]);
        let mut outline_deps = vec!["concept".to_string()];
        if brief.characters > 0 {
            step("characters".into(), AgentKind::Characters, 0, vec!["concept".into()]);
            outline_deps.push("characters".into());
        }
        if brief.worldbuilding {
            step("world".into(), AgentKind::World, 0, vec!["concept".into()]);
            outline_deps.push("world".into());
        }
        step("outline".into(), AgentKind::Outline, 0, outline_deps.clone());
        let ai_review = brief.review_mode != "human";
        let in_order = sequential(brief);
        let mut finals = Vec::new();
        for n in 1..=brief.chapters {
            let chapter = chapter_step(AgentKind::Chapter, n);
            let mut deps = outline_deps.clone();
            deps.push("outline".into());
            if in_order && n > 1 {
                deps.push(chapter_step(AgentKind::Chapter, n - 1));
            }
            step(chapter.clone(), AgentKind::Chapter, n, deps);
            if ai_review {
                let review = chapter_step(AgentKind::Review, n);
                let edit = chapter_step(AgentKind::Edit, n);
                step(review.clone(), AgentKind::Review, n, vec!["outline".into(), chapter.clone()]);
                step(edit.clone(), AgentKind::Edit, n, vec![chapter, review]);
                finals.push(edit);
            } else {
                finals.push(chapter);
            }
        }
        step(ASSEMBLY.into(), AgentKind::Assembly, 0, finals);
        Plan { steps }
    }

    /// The step with `id`.
    pub fn get(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Number of steps that call a model.
    pub fn model_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.kind != AgentKind::Assembly).count()
    }

    /// The step holding the final text of chapter `n` (the edit, or the draft without AI review).
    pub fn final_chapter_step(&self, n: u32) -> Option<&PlannedStep> {
        self.steps
            .iter()
            .rfind(|s| s.chapter == n && matches!(s.kind, AgentKind::Chapter | AgentKind::Edit))
    }
}

/// A step's kind in a stored plan: its lowercase name. Plans stored before assembly had a kind
/// of its own name it `local`, read as assembly; any other name is refused, never mapped.
mod kind_name {
    use scriptorium_proto::{kind, v1::AgentKind};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(k: &AgentKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind::name(*k))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AgentKind, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "local" => Ok(AgentKind::Assembly),
            name => kind::parse(name).ok_or_else(|| {
                D::Error::custom(format!(
                    "unknown step kind {name:?} (known: {}, assembly)",
                    kind::agent_names()
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembly_is_a_kind_of_its_own_and_unknown_kinds_are_refused() {
        let brief = BookBrief { chapters: 2, characters: 2, ..Default::default() };
        let plan = Plan::for_brief(&brief);
        let last = plan.steps.last().cloned().unwrap();
        assert_eq!((last.id.as_str(), last.kind), (ASSEMBLY, AgentKind::Assembly));
        let text = serde_json::to_string(&plan).unwrap();
        assert!(text.contains(r#""kind":"assembly""#), "{text}");
        assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), plan);
        // Today's stored plans name assembly `local`.
        let old = text.replace(r#""kind":"assembly""#, r#""kind":"local""#);
        assert_eq!(serde_json::from_str::<Plan>(&old).unwrap(), plan);
        let bad = text.replace(r#""kind":"edit""#, r#""kind":"poetry""#);
        let err = serde_json::from_str::<Plan>(&bad).unwrap_err().to_string();
        assert!(err.contains("unknown step kind \"poetry\""), "{err}");
        assert_eq!(plan.model_steps(), plan.steps.len() - 1);
    }
}
