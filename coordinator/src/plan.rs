//! A book's plan: the DAG of steps its brief calls for.
//!
//! concept → characters, world (when wanted) → outline → chapter N → review N → edit N → assembly.
//! Chapters are drafted in order by default: chapter N waits for chapter N-1's accepted draft
//! (its summary, continuity ledger and closing lines go into N's prompt), while the reviews and
//! edits of earlier chapters run beside it. A brief with `drafting = "parallel"` drafts every
//! chapter at once from the outline. Each chapter's review and edit follow its draft alone.
//! Assembly is local: no model call.

use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::{Deserialize, Serialize};

/// Id of the local assembly step.
pub const ASSEMBLY: &str = "assembly";

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// Unique id within the book (`concept`, `chapter-03`...).
    pub id: String,
    /// Agent kind; `Unspecified` for the local assembly step.
    #[serde(with = "kind_name")]
    pub kind: AgentKind,
    /// 1-based chapter number for chapter, review and edit steps; 0 otherwise.
    pub chapter: u32,
    /// Ids of the steps whose results this step needs.
    pub deps: Vec<String>,
}

/// The DAG of a book's steps, in a valid execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        step(ASSEMBLY.into(), AgentKind::Unspecified, 0, finals);
        Plan { steps }
    }

    /// The step with `id`.
    pub fn get(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Number of steps that call a model.
    pub fn model_steps(&self) -> usize {
        self.steps.iter().filter(|s| s.kind != AgentKind::Unspecified).count()
    }

    /// The step holding the final text of chapter `n` (the edit, or the draft without AI review).
    pub fn final_chapter_step(&self, n: u32) -> Option<&PlannedStep> {
        self.steps
            .iter()
            .rfind(|s| s.chapter == n && matches!(s.kind, AgentKind::Chapter | AgentKind::Edit))
    }
}

mod kind_name {
    use scriptorium_proto::{kind, v1::AgentKind};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(k: &AgentKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if *k == AgentKind::Unspecified { "local" } else { kind::name(*k) })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AgentKind, D::Error> {
        let s = String::deserialize(d)?;
        Ok(kind::parse(&s).unwrap_or(AgentKind::Unspecified))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brief(chapters: u32, characters: u32, world: bool, review: &str) -> BookBrief {
        BookBrief {
            chapters,
            characters,
            worldbuilding: world,
            review_mode: review.into(),
            drafting: "parallel".into(),
            ..Default::default()
        }
    }

    fn ids(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn fiction_plan_has_every_stage_and_parallel_chapters() {
        let p = Plan::for_brief(&brief(2, 3, true, "ai"));
        assert_eq!(
            ids(&p),
            [
                "concept",
                "characters",
                "world",
                "outline",
                "chapter-01",
                "review-01",
                "edit-01",
                "chapter-02",
                "review-02",
                "edit-02",
                "assembly"
            ]
        );
        let ch2 = p.get("chapter-02").unwrap();
        assert!(
            !ch2.deps.iter().any(|d| d.starts_with("chapter-")),
            "chapters must not wait on each other"
        );
        assert!(
            ch2.deps.contains(&"characters".to_string()) && ch2.deps.contains(&"world".to_string())
        );
        assert_eq!(p.get("edit-02").unwrap().deps, ["chapter-02", "review-02"]);
        assert_eq!(p.get("assembly").unwrap().deps, ["edit-01", "edit-02"]);
        assert_eq!(p.model_steps(), 10);
        assert_eq!(p.final_chapter_step(2).unwrap().id, "edit-02");
    }

    #[test]
    fn sequential_drafting_waits_for_the_previous_draft_only() {
        for drafting in ["sequential", ""] {
            let b = BookBrief { drafting: drafting.into(), ..brief(3, 2, false, "ai") };
            let p = Plan::for_brief(&b);
            assert!(!p.get("chapter-01").unwrap().deps.iter().any(|d| d.starts_with("chapter-")));
            assert!(p.get("chapter-02").unwrap().deps.contains(&"chapter-01".to_string()));
            let ch3 = &p.get("chapter-03").unwrap().deps;
            assert!(ch3.contains(&"chapter-02".to_string()));
            assert!(
                !ch3.iter().any(|d| d.starts_with("review-") || d.starts_with("edit-")),
                "reviews and edits of earlier chapters run beside the next draft: {ch3:?}"
            );
            assert_eq!(p.get("review-01").unwrap().deps, ["outline", "chapter-01"]);
        }
    }

    #[test]
    fn optional_stages_are_left_out() {
        let p = Plan::for_brief(&brief(3, 0, false, "human"));
        assert_eq!(
            ids(&p),
            ["concept", "outline", "chapter-01", "chapter-02", "chapter-03", "assembly"]
        );
        assert_eq!(p.get("outline").unwrap().deps, ["concept"]);
        assert_eq!(p.final_chapter_step(3).unwrap().id, "chapter-03");
    }

    #[test]
    fn deps_come_before_their_steps() {
        let p = Plan::for_brief(&brief(5, 2, true, "ai"));
        for (i, s) in p.steps.iter().enumerate() {
            for d in &s.deps {
                let j = p.steps.iter().position(|x| &x.id == d).unwrap();
                assert!(j < i, "{} depends on later {}", s.id, d);
            }
        }
    }
}
