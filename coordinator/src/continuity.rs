//! A book's continuity as the coordinator derives it from the accepted outputs: the ledger
//! before a chapter (folded from the accepted drafts, so it is rebuilt exactly after a resume
//! and the same book always gets the same prompts), the previous chapter's closing lines, the
//! other chapters' accepted texts, and the documents validation reads.
//!
//! The ledger folds drafts, not edits: a chapter's prompt must not depend on whether an earlier
//! chapter's edit happened to finish first (the response cache keys on the prompt), and an edit
//! keeps its draft's continuity report anyway.

use crate::plan::{PlannedStep, chapter_step};
use crate::record::BookRecord;
use scriptorium_contracts::{Cast, ChapterText, Ctx, Input, Kind, Ledger, Outline, Review, World};
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::de::DeserializeOwned;

/// Longest closing lines passed to the next chapter, in characters.
pub const LAST_LINES_CHARS: usize = 600;

fn doc<T: DeserializeOwned>(rec: &BookRecord, step: &str) -> Option<T> {
    rec.outputs.get(step).and_then(|v| <T as serde::Deserialize>::deserialize(v).ok())
}

/// The accepted draft of chapter `n`.
pub fn draft(rec: &BookRecord, n: u32) -> Option<ChapterText> {
    doc(rec, &chapter_step(AgentKind::Chapter, n))
}

/// The accepted drafts of chapters before `n` (all of them for `n = u32::MAX`), in order.
fn drafts_before(rec: &BookRecord, n: u32) -> Vec<ChapterText> {
    (1..=rec.brief.chapters.min(n.saturating_sub(1))).filter_map(|m| draft(rec, m)).collect()
}

/// The ledger as it stands before chapter `n`: the accepted drafts of chapters 1 to `n - 1`.
pub fn ledger_before(rec: &BookRecord, n: u32) -> Ledger {
    let cast: Option<Cast> = doc(rec, "characters");
    Ledger::build(cast.as_ref(), &drafts_before(rec, n))
}

/// The ledger after every accepted draft.
pub fn ledger(rec: &BookRecord) -> Ledger {
    ledger_before(rec, u32::MAX)
}

/// The closing lines of chapter `n - 1`'s accepted draft: its last paragraph, at most
/// [`LAST_LINES_CHARS`] characters (its end).
pub fn previous_last_lines(rec: &BookRecord, n: u32) -> String {
    let Some(prev) = n.checked_sub(1).filter(|p| *p > 0).and_then(|p| draft(rec, p)) else {
        return String::new();
    };
    let last = prev
        .scenes
        .iter()
        .rev()
        .find_map(|s| s.text.rsplit("\n\n").map(str::trim).find(|p| !p.is_empty()))
        .unwrap_or_default();
    let chars = last.chars().count();
    last.chars().skip(chars.saturating_sub(LAST_LINES_CHARS)).collect()
}

/// The summaries of the chapters before `n`: the accepted draft's where it is written, else
/// the outline's plan.
pub fn previous_summaries(rec: &BookRecord, n: u32) -> Vec<String> {
    let Some(outline) = doc::<Outline>(rec, "outline") else { return Vec::new() };
    outline
        .chapters
        .iter()
        .filter(|c| c.number < n)
        .map(|c| draft(rec, c.number).map(|d| d.summary).unwrap_or_else(|| c.summary.clone()))
        .collect()
}

/// The accepted texts (drafts and edits) of every chapter but `n`.
pub fn other_chapters(rec: &BookRecord, n: u32) -> Vec<ChapterText> {
    (1..=rec.brief.chapters)
        .filter(|m| *m != n)
        .flat_map(|m| [chapter_step(AgentKind::Chapter, m), chapter_step(AgentKind::Edit, m)])
        .filter_map(|id| doc(rec, &id))
        .collect()
}

/// The documents validation of one step reads, owned; [`Docs::ctx`] lends them out.
#[derive(Debug, Default)]
pub struct Docs {
    cast: Option<Cast>,
    outline: Option<Outline>,
    world: Option<World>,
    draft: Option<ChapterText>,
    review: Option<Review>,
    ledger: Option<Ledger>,
    others: Vec<ChapterText>,
    chapter: u32,
}

impl Docs {
    /// What validating a result of `step` (of agent kind `spec`) needs from `rec`'s accepted
    /// outputs: the inputs its kind names.
    pub fn of(rec: &BookRecord, step: &PlannedStep, spec: &dyn Kind) -> Docs {
        let n = step.chapter;
        let mut docs = Docs { chapter: n, ..Docs::default() };
        for input in spec.inputs() {
            match input {
                Input::Cast => docs.cast = doc(rec, "characters"),
                Input::Outline => docs.outline = doc(rec, "outline"),
                Input::World => docs.world = doc(rec, "world"),
                Input::Draft => docs.draft = draft(rec, n),
                Input::Review => docs.review = doc(rec, &chapter_step(AgentKind::Review, n)),
                Input::Ledger => docs.ledger = Some(ledger_before(rec, n)),
                Input::OtherChapters => docs.others = other_chapters(rec, n),
                // Prompt material no rule reads.
                Input::Concept | Input::PreviousSummaries | Input::LastLines => {}
            }
        }
        docs
    }

    /// The validation context of the book with `brief`.
    pub fn ctx<'a>(&'a self, brief: &'a BookBrief) -> Ctx<'a> {
        Ctx {
            brief,
            cast: self.cast.as_ref(),
            outline: self.outline.as_ref(),
            draft: self.draft.as_ref(),
            chapter: self.chapter,
            ledger: self.ledger.as_ref(),
            earlier: &self.others,
            world: self.world.as_ref(),
            review: self.review.as_ref(),
        }
    }
}

/// Whether chapter `n`'s edit is needless: its review accepts the draft with no issue.
pub fn edit_needless(rec: &BookRecord, n: u32) -> bool {
    doc::<Review>(rec, &chapter_step(AgentKind::Review, n))
        .is_some_and(|r| r.verdict == "accept" && r.issues.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_contracts::{Continuity, ProseScene};
    use serde_json::json;

    fn record() -> BookRecord {
        let brief = BookBrief {
            chapters: 3,
            characters: 2,
            category: "fiction".into(),
            review_mode: "ai".into(),
            ..Default::default()
        };
        let mut rec = BookRecord::new("b".into(), brief, 0);
        rec.outputs.insert(
            "characters".into(),
            json!({"characters": [{"name": "Ann Lee", "role": "r"}, {"name": "Bo Park", "role": "r"}]}),
        );
        rec.outputs.insert(
            "outline".into(),
            json!({"summary": "s", "chapters": (1..=3).map(|n| json!({"number": n, "title": format!("T{n}"), "summary": format!("plan {n}")})).collect::<Vec<_>>()}),
        );
        rec
    }

    fn chapter(n: u32, last: &str, deaths: &[&str]) -> serde_json::Value {
        serde_json::to_value(ChapterText {
            number: n,
            title: format!("T{n}"),
            scenes: vec![ProseScene {
                heading: "Scene 1".into(),
                text: format!("Opening.\n\n{last}"),
            }],
            summary: format!("written {n}"),
            continuity: Continuity {
                deaths: deaths.iter().map(|d| d.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn the_ledger_and_closing_lines_come_from_earlier_accepted_drafts() {
        let mut rec = record();
        assert_eq!(previous_summaries(&rec, 3), ["plan 1", "plan 2"]);
        assert_eq!(previous_last_lines(&rec, 1), "");
        rec.outputs.insert("chapter-01".into(), chapter(1, "Bo fell.", &["Bo Park"]));
        rec.outputs.insert("chapter-02".into(), chapter(2, "The end of two.", &[]));
        rec.outputs.insert("edit-01".into(), chapter(1, "Edited end.", &[]));
        assert_eq!(previous_summaries(&rec, 3), ["written 1", "written 2"]);
        assert_eq!(previous_last_lines(&rec, 2), "Bo fell.", "the draft's, not the edit's");
        assert_eq!(previous_last_lines(&rec, 3), "The end of two.");
        assert!(!ledger_before(&rec, 1).is_dead("Bo Park", 1));
        assert!(ledger_before(&rec, 2).is_dead("Bo Park", 2));
        assert_eq!(ledger(&rec).chapters.len(), 2);
        let others: Vec<u32> = other_chapters(&rec, 2).iter().map(|c| c.number).collect();
        assert_eq!(others, [1, 1], "chapter 1's draft and edit, not chapter 2");
    }

    #[test]
    fn an_edit_is_needless_when_its_review_accepts_with_no_issue() {
        let mut rec = record();
        let review = |verdict: &str, issues: &[&str]| json!({"verdict": verdict, "issues": issues});
        assert!(!edit_needless(&rec, 1));
        rec.outputs.insert("review-01".into(), review("accept", &[]));
        assert!(edit_needless(&rec, 1));
        rec.outputs.insert("review-01".into(), review("accept", &["Scene 1: slow"]));
        assert!(!edit_needless(&rec, 1));
        rec.outputs.insert("review-01".into(), review("revise", &[]));
        assert!(!edit_needless(&rec, 1));
    }
}
