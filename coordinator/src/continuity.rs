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
use scriptorium_contracts::prose::{self, Seen};
use scriptorium_contracts::rules;
use scriptorium_contracts::{
    Cast, ChapterText, Continuity, Ctx, Input, Kind, Ledger, Outline, Review, World,
};
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Longest closing lines passed to the next chapter, in characters.
pub const LAST_LINES_CHARS: usize = 600;

fn doc<T: DeserializeOwned>(rec: &BookRecord, step: &str) -> Option<T> {
    rec.outputs.get(step).and_then(|d| d.parse())
}

/// The accepted draft of chapter `n`.
pub fn draft(rec: &BookRecord, n: u32) -> Option<ChapterText> {
    doc(rec, &chapter_step(AgentKind::Chapter, n))
}

/// What the ledger and the summaries read of an accepted chapter text: all but its prose.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Notes {
    number: u32,
    title: String,
    summary: String,
    characters: Vec<String>,
    continuity: Continuity,
}

/// The accepted draft of chapter `n` without its scenes: reading the prose of every earlier
/// chapter for each step would make a step's cost grow with its chapter's number.
fn draft_notes(rec: &BookRecord, n: u32) -> Option<ChapterText> {
    let notes: Notes = doc(rec, &chapter_step(AgentKind::Chapter, n))?;
    Some(ChapterText {
        number: notes.number,
        title: notes.title,
        summary: notes.summary,
        characters: notes.characters,
        continuity: notes.continuity,
        ..ChapterText::default()
    })
}

/// The accepted drafts of chapters before `n` (all of them for `n = u32::MAX`), in order,
/// without their scenes.
fn drafts_before(rec: &BookRecord, n: u32) -> Vec<ChapterText> {
    (1..=rec.brief.chapters.min(n.saturating_sub(1))).filter_map(|m| draft_notes(rec, m)).collect()
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
        .map(|c| draft_notes(rec, c.number).map(|d| d.summary).unwrap_or_else(|| c.summary.clone()))
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

/// The book's accepted chapter texts (drafts and edits) prepared for the prose checks, built
/// from the record at first use and then extended as each is accepted, so that validating a
/// chapter does not re-read every other chapter. The book actor tells it of every output it
/// sets or removes ([`Prose::set`], [`Prose::removed`]); a replaced text is not taken out of
/// the index but makes it rebuilt (an operator's rewrite or edit: rare).
#[derive(Debug, Default)]
pub struct Prose {
    seen: Option<Seen>,
    /// The steps whose texts `seen` holds.
    covers: BTreeSet<String>,
    /// The words of the outline, cast and world, per set of those a kind reads (a bit each), as
    /// the prose checks gather them (`known_words`); dropped when one of them changes.
    known: std::collections::HashMap<u8, std::sync::Arc<prose::KnownWords>>,
}

/// The steps whose outputs the known words come from.
const KNOWN_FROM: [&str; 3] = ["outline", "characters", "world"];

impl Prose {
    /// The index of `rec`'s accepted chapter texts.
    pub fn seen(&mut self, rec: &BookRecord) -> &Seen {
        self.seen.get_or_insert_with(|| {
            let mut seen = Seen::default();
            self.covers.clear();
            for n in 1..=rec.brief.chapters {
                for (rank, kind) in [AgentKind::Chapter, AgentKind::Edit].into_iter().enumerate() {
                    let id = chapter_step(kind, n);
                    if let Some(text) = doc::<ChapterText>(rec, &id) {
                        add(&mut seen, &text, rank as u8);
                        self.covers.insert(id);
                    }
                }
            }
            seen
        })
    }

    /// Whether the index is built (else [`Prose::seen`] builds it from the record).
    pub fn is_built(&self) -> bool {
        self.seen.is_some()
    }

    /// The words of the outline, cast and world that a result of kind `spec` is checked with
    /// (those of them it reads), gathered once per book and kept until one of them changes.
    pub fn known(&mut self, rec: &BookRecord, spec: &dyn Kind) -> Arc<prose::KnownWords> {
        let reads = |input: Input| spec.inputs().contains(&input);
        let (outline, cast, world) =
            (reads(Input::Outline), reads(Input::Cast), reads(Input::World));
        let mask = u8::from(outline) | u8::from(cast) << 1 | u8::from(world) << 2;
        self.known
            .entry(mask)
            .or_insert_with(|| {
                let outline: Option<Outline> = outline.then(|| doc(rec, "outline")).flatten();
                let cast: Option<Cast> = cast.then(|| doc(rec, "characters")).flatten();
                let world: Option<World> = world.then(|| doc(rec, "world")).flatten();
                let ctx = Ctx {
                    outline: outline.as_ref(),
                    cast: cast.as_ref(),
                    world: world.as_ref(),
                    ..Ctx::new(&rec.brief)
                };
                scriptorium_contracts::kinds::chapter::known_words(ctx)
            })
            .clone()
    }

    /// Notes that `rec`'s output of `step` was just set.
    pub fn set(&mut self, rec: &BookRecord, step: &str) {
        if KNOWN_FROM.contains(&step) {
            self.known.clear();
        }
        let Some(planned) = rec.plan.get(step) else { return };
        let rank = match planned.kind {
            AgentKind::Chapter => 0,
            AgentKind::Edit => 1,
            _ => return,
        };
        if self.covers.contains(step) {
            self.removed(step);
            return;
        }
        if let Some(seen) = &mut self.seen
            && let Some(text) = doc::<ChapterText>(rec, step)
        {
            add(seen, &text, rank);
            self.covers.insert(step.to_string());
        }
    }

    /// Notes that `step`'s output was removed: the index is rebuilt at its next use if it held
    /// that text.
    pub fn removed(&mut self, step: &str) {
        if KNOWN_FROM.contains(&step) {
            self.known.clear();
        }
        if self.covers.contains(step) {
            self.seen = None;
            self.covers.clear();
        }
    }

    /// Validates `output`, a result of `step` (of agent kind `spec`), against `rec`'s accepted
    /// outputs and the index ([`Prose::seen`]: built from `rec` when it is not, so the caller
    /// reads back any slimmed prose first). The documents it reads (the outline, the draft...)
    /// are parsed for it and dropped when it returns: a book actor that held them across its
    /// next awaits, a hundred books at once, kept a tenth of the coordinator's heap
    /// (BENCHMARKS.md, issue 24).
    pub fn validate(
        &mut self,
        rec: &BookRecord,
        step: &PlannedStep,
        spec: &dyn Kind,
        output: &str,
    ) -> Result<serde_json::Value, rules::Rejection> {
        let known = self.known(rec, spec);
        let docs = Docs::of(rec, step, spec, Some(self.seen(rec)));
        let ctx = Ctx { known: Some(&known), ..docs.ctx(&rec.brief) };
        rules::validate(spec.kind(), output, ctx)
    }
}

fn add(seen: &mut Seen, text: &ChapterText, rank: u8) {
    let prose = text.prose();
    seen.add(&prose::Chapter { number: text.number, title: &text.title, text: &prose }, rank);
}

/// The documents validation of one step reads: decoded from the record, and the book's prepared
/// chapter texts borrowed when given; [`Docs::ctx`] lends them out.
#[derive(Debug, Default)]
pub struct Docs<'a> {
    /// The book's chapter texts, prepared: when given, `others` stays empty.
    seen: Option<&'a Seen>,
    cast: Option<Cast>,
    outline: Option<Outline>,
    world: Option<World>,
    draft: Option<ChapterText>,
    review: Option<Review>,
    ledger: Option<Ledger>,
    others: Vec<ChapterText>,
    chapter: u32,
}

impl<'a> Docs<'a> {
    /// What validating a result of `step` (of agent kind `spec`) needs from `rec`'s accepted
    /// outputs: the inputs its kind names; the other chapters from `seen` when given.
    pub fn of(
        rec: &BookRecord,
        step: &PlannedStep,
        spec: &dyn Kind,
        seen: Option<&'a Seen>,
    ) -> Docs<'a> {
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
                Input::OtherChapters => match seen {
                    Some(seen) => docs.seen = Some(seen),
                    None => docs.others = other_chapters(rec, n),
                },
                // Prompt material no rule reads.
                Input::Concept | Input::PreviousSummaries | Input::LastLines => {}
            }
        }
        docs
    }

    /// The validation context of the book with `brief`.
    pub fn ctx<'b>(&'b self, brief: &'b BookBrief) -> Ctx<'b> {
        Ctx {
            brief,
            cast: self.cast.as_ref(),
            outline: self.outline.as_ref(),
            draft: self.draft.as_ref(),
            chapter: self.chapter,
            ledger: self.ledger.as_ref(),
            earlier: &self.others,
            seen: self.seen,
            world: self.world.as_ref(),
            review: self.review.as_ref(),
            known: None,
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
            json!({"characters": [{"name": "Ann Lee", "role": "r"}, {"name": "Bo Park", "role": "r"}]}).into(),
        );
        rec.outputs.insert(
            "outline".into(),
            json!({"summary": "s", "chapters": (1..=3).map(|n| json!({"number": n, "title": format!("T{n}"), "summary": format!("plan {n}")})).collect::<Vec<_>>()}).into(),
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
        rec.outputs.insert("chapter-01".into(), chapter(1, "Bo fell.", &["Bo Park"]).into());
        rec.outputs.insert("chapter-02".into(), chapter(2, "The end of two.", &[]).into());
        rec.outputs.insert("edit-01".into(), chapter(1, "Edited end.", &[]).into());
        assert_eq!(previous_summaries(&rec, 3), ["written 1", "written 2"]);
        assert_eq!(previous_last_lines(&rec, 2), "Bo fell.", "the draft's, not the edit's");
        assert_eq!(previous_last_lines(&rec, 3), "The end of two.");
        assert!(!ledger_before(&rec, 1).is_dead("Bo Park", 1));
        assert!(ledger_before(&rec, 2).is_dead("Bo Park", 2));
        assert_eq!(ledger(&rec).chapters.len(), 2);
        let others: Vec<u32> = other_chapters(&rec, 2).iter().map(|c| c.number).collect();
        assert_eq!(others, [1, 1], "chapter 1's draft and edit, not chapter 2");
    }

    /// Whether chapter 3's text `para` copies a paragraph of the other chapters, per `seen`.
    fn copied(seen: &Seen, para: &str) -> bool {
        let text = format!("{para}\n\nA line of its own that nobody wrote anywhere else at all.");
        let three = prose::Chapter { number: 3, title: "T3", text: &text };
        !prose::repeated_paragraphs(&three, seen).is_empty()
    }

    #[test]
    fn the_kept_index_follows_every_output_set_or_removed() {
        let (a, b, c) = (
            "Ann walked the long sea wall twice that night. She counted the boats that had not come home.",
            "Bo mended the nets by lamplight. The wind worked all night at the shutters of the old house.",
            "The harbour master read the tide tables aloud. He had done it every night for eleven years.",
        );
        let mut rec = record();
        rec.outputs.insert("chapter-01".into(), chapter(1, a, &[]).into());
        let mut prose = Prose::default();
        assert_eq!(prose.seen(&rec).texts(), 1);
        // A new text is added, not rebuilt.
        rec.outputs.insert("chapter-02".into(), chapter(2, b, &[]).into());
        prose.set(&rec, "chapter-02");
        assert_eq!(prose.seen.as_ref().map(Seen::texts), Some(2));
        assert!(copied(prose.seen(&rec), b));
        // A replaced text makes it rebuilt from the record: the old prose is gone.
        rec.outputs.insert("chapter-02".into(), chapter(2, c, &[]).into());
        prose.set(&rec, "chapter-02");
        assert!(prose.seen.is_none());
        assert!(!copied(prose.seen(&rec), b) && copied(prose.seen(&rec), c));
        // So does a removed one; outputs that are no chapter text change nothing.
        prose.set(&rec, "outline");
        assert!(prose.seen.is_some());
        rec.outputs.remove("chapter-02");
        prose.removed("chapter-02");
        assert!(!copied(prose.seen(&rec), c) && copied(prose.seen(&rec), a));
        // The kept index validates as the texts do (the test outline plans no scenes).
        rec.outputs.remove("outline");
        rec.outputs.insert("edit-01".into(), chapter(1, b, &[]).into());
        prose.set(&rec, "edit-01");
        let step = rec.plan.get("chapter-03").cloned().unwrap();
        let spec = scriptorium_contracts::kinds::agent(AgentKind::Chapter).unwrap();
        let kept = Docs::of(&rec, &step, spec, Some(prose.seen(&rec)));
        let read = Docs::of(&rec, &step, spec, None);
        assert!(kept.others.is_empty() && read.others.len() == 2);
        let answer = serde_json::to_string(&chapter(3, b, &[])).unwrap();
        let (x, y) = (
            scriptorium_contracts::validate(AgentKind::Chapter, &answer, kept.ctx(&rec.brief)),
            scriptorium_contracts::validate(AgentKind::Chapter, &answer, read.ctx(&rec.brief)),
        );
        // The copied paragraph comes off, the rest stays.
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x, y);
        assert_eq!(x["scenes"][0]["text"], "Opening.");
    }

    #[test]
    fn the_kept_known_words_follow_the_outline_cast_and_world() {
        use scriptorium_contracts::kinds::chapter::known_words;
        let mut rec = record();
        let mut prose = Prose::default();
        let step = rec.plan.get("chapter-02").cloned().unwrap();
        let gathered = |rec: &BookRecord, kind: AgentKind| {
            let spec = scriptorium_contracts::kinds::agent(kind).unwrap();
            known_words(Docs::of(rec, &step, spec, None).ctx(&rec.brief))
        };
        let kept = |prose: &mut Prose, rec: &BookRecord, kind: AgentKind| {
            prose.known(rec, scriptorium_contracts::kinds::agent(kind).unwrap())
        };
        for kind in [AgentKind::Chapter, AgentKind::Edit] {
            assert_eq!(kept(&mut prose, &rec, kind), gathered(&rec, kind));
        }
        let first = kept(&mut prose, &rec, AgentKind::Chapter);
        assert!(first.contains("plan") && first.contains("ann"), "{first:?}");
        // Kept: the same words, not gathered again.
        assert!(Arc::ptr_eq(&first, &kept(&mut prose, &rec, AgentKind::Chapter)));
        // A new outline (an operator's rewrite) is seen at once; so are a world set and removed.
        rec.outputs.insert(
            "outline".into(),
            json!({"summary": "s", "chapters": [{"number": 1, "title": "T", "summary": "lighthouse"}]}).into(),
        );
        prose.set(&rec, "outline");
        rec.outputs
            .insert("world".into(), json!({"sections": {"geography": "Saltmarsh tides"}}).into());
        prose.set(&rec, "world");
        for kind in [AgentKind::Chapter, AgentKind::Edit] {
            assert_eq!(kept(&mut prose, &rec, kind), gathered(&rec, kind));
        }
        assert!(kept(&mut prose, &rec, AgentKind::Chapter).contains("lighthouse"));
        assert!(!kept(&mut prose, &rec, AgentKind::Chapter).contains("plan"));
        rec.outputs.remove("characters");
        prose.removed("characters");
        assert!(!kept(&mut prose, &rec, AgentKind::Chapter).contains("ann"));
        assert_eq!(kept(&mut prose, &rec, AgentKind::Chapter), gathered(&rec, AgentKind::Chapter));
    }

    #[test]
    fn an_edit_is_needless_when_its_review_accepts_with_no_issue() {
        let mut rec = record();
        let review = |verdict: &str, issues: &[&str]| json!({"verdict": verdict, "issues": issues});
        assert!(!edit_needless(&rec, 1));
        rec.outputs.insert("review-01".into(), review("accept", &[]).into());
        assert!(edit_needless(&rec, 1));
        rec.outputs.insert("review-01".into(), review("accept", &["Scene 1: slow"]).into());
        assert!(!edit_needless(&rec, 1));
        rec.outputs.insert("review-01".into(), review("revise", &[]).into());
        assert!(!edit_needless(&rec, 1));
    }
}
