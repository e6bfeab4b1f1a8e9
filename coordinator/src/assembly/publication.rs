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
