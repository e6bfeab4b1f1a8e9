//! What a finished book's reader-facing files (manuscript, EPUB) are rendered from, read from
//! its record at assembly or from the `book.json` it was written with (`scriptorium export`).

use crate::record::BookRecord;
use scriptorium_contracts::{ChapterText, Concept};
use scriptorium_proto::v1::BookBrief;
use serde::Deserialize;

/// The line a book written by the simulated model carries on its title page.
pub const SIMULATED_NOTICE: &str = "Written by Scriptorium's simulated model (`sim`): placeholder \
                                    prose for demos and tests, not a real book.";

/// A finished book as its readers see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Publication {
    /// Book id.
    pub id: String,
    /// Title: the brief's, or the concept's when the brief has none.
    pub title: String,
    /// Author, from the brief.
    pub author: String,
    /// Language as the brief names it (`English`); [`super::language::tag`] gives its tag.
    pub language: String,
    /// The concept's one-sentence pitch (may be empty).
    pub logline: String,
    /// Whether any step was answered by the simulated model.
    pub simulated: bool,
    /// When the book was finished (Unix ms; its creation time when unknown).
    pub finished_ms: i64,
    /// The final chapters, in order.
    pub chapters: Vec<ChapterText>,
}

/// Why a `book.json` cannot be published again.
#[derive(Debug, thiserror::Error)]
pub enum PublicationError {
    /// Not the JSON of a book.
    #[error("book.json is unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// A book without chapters (failed, or not finished).
    #[error("book {0} has no chapter")]
    NoChapter(String),
}

/// The parts of `book.json` a publication is read from; every field optional, so that books
/// written by earlier versions are read too.
#[derive(Deserialize, Default)]
#[serde(default)]
struct StoredBook {
    id: String,
    title: String,
    brief: BookBrief,
    concept: Concept,
    chapters: Vec<ChapterText>,
    steps: Vec<StoredStep>,
    created_ms: i64,
    finished_ms: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StoredStep {
    route: String,
}

impl Publication {
    /// The publication of a finished book's record.
    pub fn from_record(rec: &BookRecord) -> Self {
        let concept: Concept = super::get(rec, "concept");
        let routes = rec.steps.values().map(|s| s.route.as_str());
        Self::new(Parts {
            id: &rec.id,
            stored_title: &rec.title,
            brief: &rec.brief,
            concept,
            simulated: simulated(routes),
            created_ms: rec.created_ms,
            finished_ms: rec.finished_ms,
            chapters: super::final_chapters(rec),
        })
    }

    /// The publication of a book from the `book.json` it was written with.
    pub fn from_book_json(bytes: &[u8]) -> Result<Self, PublicationError> {
        let b: StoredBook = serde_json::from_slice(bytes)?;
        if b.chapters.is_empty() {
            return Err(PublicationError::NoChapter(b.id));
        }
        let routes = b.steps.iter().map(|s| s.route.as_str());
        Ok(Self::new(Parts {
            id: &b.id,
            stored_title: &b.title,
            brief: &b.brief,
            simulated: simulated(routes),
            concept: b.concept,
            created_ms: b.created_ms,
            finished_ms: b.finished_ms,
            chapters: b.chapters,
        }))
    }

    fn new(p: Parts<'_>) -> Self {
        let title = [p.brief.title.as_str(), p.concept.title.as_str(), p.stored_title]
            .into_iter()
            .map(str::trim)
            .find(|t| !t.is_empty())
            .unwrap_or("Untitled")
            .to_string();
        Self {
            id: p.id.to_string(),
            title,
            author: p.brief.author.clone(),
            language: p.brief.language.clone(),
            logline: p.concept.logline,
            simulated: p.simulated,
            finished_ms: if p.finished_ms > 0 { p.finished_ms } else { p.created_ms },
            chapters: p.chapters,
        }
    }
}

/// What both sources give [`Publication::new`].
struct Parts<'a> {
    id: &'a str,
    stored_title: &'a str,
    brief: &'a BookBrief,
    concept: Concept,
    simulated: bool,
    created_ms: i64,
    finished_ms: i64,
    chapters: Vec<ChapterText>,
}

/// Whether any of the routes that answered is the simulated model's.
fn simulated<'a>(mut routes: impl Iterator<Item = &'a str>) -> bool {
    routes.any(|r| r.starts_with("sim"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(title: &str, route: &str) -> BookRecord {
        let brief = BookBrief {
            title: title.into(),
            author: "A. N. Writer".into(),
            language: "English".into(),
            chapters: 2,
            review_mode: "human".into(),
            ..BookBrief::default()
        };
        let mut rec = BookRecord::new("b1".into(), brief, 1_000);
        rec.finished_ms = 2_000;
        rec.outputs
            .insert("concept".into(), json!({"title": "Proposed", "logline": "Tides."}).into());
        for n in 1..=2 {
            let id = rec.plan.final_chapter_step(n).unwrap().id.clone();
            let scenes = json!([{"heading": "a", "text": format!("Chapter {n} & more.")}]);
            rec.outputs.insert(
                id,
                json!({"number": n, "title": format!("T{n}"), "scenes": scenes}).into(),
            );
        }
        for s in rec.steps.values_mut() {
            s.route = route.into();
        }
        rec
    }

    #[test]
    fn book_json_gives_back_the_publication_of_the_record() {
        let rec = record("", "sim/sim-1");
        let from_record = Publication::from_record(&rec);
        assert_eq!(from_record.title, "Proposed", "the concept's title when the brief has none");
        assert!(from_record.simulated);
        assert_eq!((from_record.chapters.len(), from_record.finished_ms), (2, 2_000));
        let stored = serde_json::to_vec(&super::super::book_json(&rec)).unwrap();
        assert_eq!(Publication::from_book_json(&stored).unwrap(), from_record);
    }

    #[test]
    fn the_briefs_title_comes_first_and_real_models_are_not_simulated() {
        let p = Publication::from_record(&record("The Salt Harbour", "openai/gpt-4o-mini"));
        assert_eq!(p.title, "The Salt Harbour");
        assert!(!p.simulated);
    }

    #[test]
    fn a_book_json_without_chapters_is_refused() {
        let err = Publication::from_book_json(br#"{"id": "b9"}"#).unwrap_err();
        assert!(matches!(err, PublicationError::NoChapter(ref id) if id == "b9"), "{err}");
        assert!(Publication::from_book_json(b"{").is_err());
    }
}
