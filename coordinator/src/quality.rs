//! The quality report of a finished book: chapters present, lengths, repetition, leaks,
//! names and continuity, measured without a judge model from the book's own files.
//!
//! [`QualityReport::from_book_dir`] reads a book directory in the layout [`crate::assembly`]
//! writes (`book.json`, `manuscript.md`, `chapters/NN-title.md`), and also older or partial
//! ones: a `book.json` without newer fields (no continuity ledger, no aliases), or no `book.json`
//! at all (then only what the prose alone shows is measured, and the report says what was not).
//! [`QualityReport::from_parts`] is the pure core, for assembly to write `quality.json`.
//!
//! Hard failures (the report fails, `scriptorium check` exits 1): a chapter missing, and every
//! finding whose [`Rule::is_hard`] is true (length score below 80, a paragraph repeated word for
//! word, placeholder or meta text, a dead character acting). Names outside the cast, near
//! duplicates, plan characters who never appear and titles that differ from the outline are
//! reported without failing: those checks are heuristics that can misfire on good prose.

use scriptorium_contracts::prose::{self, Canon, Chapter, Finding, Person, Plan, Rule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod documents;
mod read;
mod render;
pub use read::{BookFiles, read_book_dir};
pub use render::render_text;

/// Version of the report's JSON shape.
pub const FORMAT: u32 = 1;

/// Why a book directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// The directory holds none of `book.json`, `manuscript.md`, `chapters/`.
    #[error("{}: not a book directory (no book.json, manuscript.md or chapters/)", path.display())]
    NotABook {
        /// The directory.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `book.json` is not JSON.
    #[error("{} is not valid JSON: {source}", path.display())]
    BookJson {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// One chapter's prose as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookChapter {
    /// 1-based number.
    pub number: u32,
    /// Title.
    pub title: String,
    /// Prose: paragraphs separated by blank lines, scenes by `* * *`.
    pub text: String,
}

/// What the outline planned for one chapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChapter {
    /// 1-based number.
    pub number: u32,
    /// Planned title.
    pub title: String,
    /// Characters its scenes list.
    pub characters: Vec<String>,
}

/// One entry of the continuity ledger, as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCharacter {
    /// Full name.
    pub name: String,
    /// Other names the prose may use.
    pub aliases: Vec<String>,
    /// False once dead.
    pub alive: bool,
    /// The chapter of the death. A dead character without one is not checked: the final ledger
    /// cannot say from which chapter on they should be silent.
    pub died_in_chapter: Option<u32>,
}

/// Everything the report is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookParts {
    /// The book's title.
    pub title: String,
    /// Chapters the brief (or outline) asked for, when known.
    pub chapters_asked: Option<u32>,
    /// Target words per chapter, when known.
    pub words_per_chapter: Option<usize>,
    /// The chapters written, in any order.
    pub chapters: Vec<BookChapter>,
    /// The outline's chapters (empty without an outline).
    pub plan: Vec<PlannedChapter>,
    /// The cast: name and aliases (empty when unknown).
    pub cast: Vec<(String, Vec<String>)>,
    /// The continuity ledger's characters, when the book has one.
    pub ledger: Option<Vec<LedgerCharacter>>,
    /// The book's own texts (concept, world, outline, cast): words the prose may capitalise.
    pub known_text: String,
    /// What the parts were read from (`book.json`, `chapters/`...).
    pub sources: Vec<String>,
    /// The documents the book was planned from, as `book.json` keeps them: `concept`, `cast`,
    /// `world`, `outline` (those present).
    #[serde(default)]
    pub documents: BTreeMap<String, Value>,
}

/// The figures of one chapter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChapterQuality {
    /// 1-based number.
    pub number: u32,
    /// Title.
    pub title: String,
    /// Words of prose.
    pub words: usize,
    /// Paragraphs (scene breaks not counted).
    pub paragraphs: usize,
    /// Target words, when known.
    pub target: Option<usize>,
    /// LongWriter's length score against the target (0-100), when the target is known.
    pub length_score: Option<f64>,
    /// Share of the chapter's sentences that occur more than once in it.
    pub repeated_sentence_share: f64,
    /// Findings in the chapter.
    pub findings: usize,
}

/// A rule whose failure fails the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardFailure {
    /// `missing_chapter` or a [`Rule`] name.
    pub rule: String,
    /// The chapter concerned.
    pub chapter: Option<u32>,
    /// What failed.
    pub message: String,
}

/// The quality report of a book.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityReport {
    /// Version of this shape ([`FORMAT`]).
    pub format: u32,
    /// The book's title.
    pub title: String,
    /// What the report was read from.
    pub sources: Vec<String>,
    /// Chapters asked for, when known.
    pub chapters_asked: Option<u32>,
    /// Numbers of the chapters present.
    pub chapters_present: Vec<u32>,
    /// Numbers of the chapters asked for (or skipped in the numbering) but absent.
    pub missing_chapters: Vec<u32>,
    /// Words of prose in the book.
    pub words: usize,
    /// Per chapter figures.
    pub chapters: Vec<ChapterQuality>,
    /// Share of the book's sentences (5 words or more) that occur more than once.
    pub repeated_sentence_share: f64,
    /// Chapters whose length score is below 80.
    pub length_failures: Vec<Finding>,
    /// Paragraphs repeated word for word (normalised), within and across chapters.
    pub repeated_paragraphs: Vec<Finding>,
    /// Near-duplicate paragraphs (5-word shingle Jaccard), within and across chapters.
    pub near_duplicates: Vec<Finding>,
    /// Placeholder and meta text left in the prose.
    pub leaks: Vec<Finding>,
    /// What is not story in the prose: instruction echo, talk about the task, machine text.
    pub not_story: Vec<Finding>,
    /// What breaks a rule in the documents the book was planned from (concept, cast, world,
    /// outline): what is not story in a field, a logline that is the title, a name that is none.
    pub documents: Vec<Finding>,
    /// Names that look like characters but are not in the cast.
    pub unknown_names: Vec<Finding>,
    /// Characters acting after their death.
    pub dead_acting: Vec<Finding>,
    /// Characters a chapter's plan lists who never appear in it.
    pub plan_missing: Vec<Finding>,
    /// Chapter titles that differ from the outline.
    pub title_mismatches: Vec<Finding>,
    /// Chapter titles an earlier chapter has too.
    pub repeated_titles: Vec<Finding>,
    /// Checks that could not run, and why.
    pub not_checked: Vec<String>,
    /// The failures that fail the report.
    pub hard_failures: Vec<HardFailure>,
}

impl QualityReport {
    /// Whether no hard rule failed.
    pub fn passed(&self) -> bool {
        self.hard_failures.is_empty()
    }

    /// The report of the book in `dir`.
    pub fn from_book_dir(dir: &Path) -> Result<QualityReport, QualityError> {
        Ok(QualityReport::from_parts(&read_book_dir(dir)?))
    }

    /// The report of a book given as parts; pure.
    pub fn from_parts(parts: &BookParts) -> QualityReport {
        let mut chapters: Vec<&BookChapter> = Vec::new();
        for c in &parts.chapters {
            if !chapters.iter().any(|k| k.number == c.number) {
                chapters.push(c);
            }
        }
        chapters.sort_by_key(|c| c.number);
        let canon = canon(parts);
        let plans: BTreeMap<u32, &PlannedChapter> =
            parts.plan.iter().map(|p| (p.number, p)).collect();
        let views: Vec<Chapter<'_>> = chapters
            .iter()
            .map(|c| Chapter { number: c.number, title: &c.title, text: &c.text })
            .collect();
        let mut report = QualityReport {
            format: FORMAT,
            title: parts.title.clone(),
            sources: parts.sources.clone(),
            chapters_asked: parts.chapters_asked,
            chapters_present: views.iter().map(|c| c.number).collect(),
            ..QualityReport::default()
        };
        let empty = Vec::new();
        // Each chapter against the ones before it, kept as the loop goes (a book's numbers are
        // its own: each is the only text of its number).
        let mut seen = prose::Seen::default();
        for c in &views {
            let planned = plans.get(&c.number);
            let plan = Plan {
                title: planned.map(|p| p.title.as_str()).filter(|t| !t.trim().is_empty()),
                target_words: parts.words_per_chapter.filter(|w| *w > 0),
                characters: planned.map_or(&empty, |p| &p.characters),
            };
            let findings = prose::check_chapter(c, &plan, &seen, &canon);
            seen.add(c, 0);
            let words = prose::word_count(c.text);
            report.chapters.push(ChapterQuality {
                number: c.number,
                title: c.title.to_string(),
                words,
                paragraphs: prose::paragraphs(c.text).len(),
                target: plan.target_words,
                length_score: plan.target_words.map(|t| round1(prose::length_score(t, words))),
                repeated_sentence_share: round3(prose::repeated_sentence_share(&[c.text])),
                findings: findings.len(),
            });
            report.words += words;
            for f in findings {
                let list = match f.rule {
                    Rule::Length => &mut report.length_failures,
                    Rule::RepeatedParagraph => &mut report.repeated_paragraphs,
                    Rule::NearDuplicateParagraph => &mut report.near_duplicates,
                    Rule::Placeholder | Rule::MetaText => &mut report.leaks,
                    Rule::InstructionEcho | Rule::TaskTalk | Rule::MachineText => {
                        &mut report.not_story
                    }
                    Rule::LoglineIsTitle | Rule::NotAName => &mut report.documents,
                    Rule::UnknownName => &mut report.unknown_names,
                    Rule::DeadCharacterActs => &mut report.dead_acting,
                    Rule::PlanCharacterMissing => &mut report.plan_missing,
                    Rule::TitleMismatch => &mut report.title_mismatches,
                    Rule::RepeatedTitle => &mut report.repeated_titles,
                };
                list.push(f);
            }
        }
        let texts: Vec<&str> = views.iter().map(|c| c.text).collect();
        report.repeated_sentence_share = round3(prose::repeated_sentence_share(&texts));
        let present: BTreeSet<u32> = report.chapters_present.iter().copied().collect();
        let last = parts.chapters_asked.or(present.last().copied()).unwrap_or(0);
        report.missing_chapters = (1..=last).filter(|n| !present.contains(n)).collect();
        report.documents.extend(documents::findings(&parts.documents));
        report.not_checked = not_checked(parts);
        report.hard_failures = report
            .missing_chapters
            .iter()
            .map(|&n| HardFailure {
                rule: "missing_chapter".into(),
                chapter: Some(n),
                message: format!("chapter {n} is missing"),
            })
            .collect();
        if report.chapters_present.is_empty() {
            report.hard_failures.push(HardFailure {
                rule: "no_chapters".into(),
                chapter: None,
                message: "the book has no chapter at all: no chapter file in chapters/, no \
                          chapter in manuscript.md or book.json"
                    .into(),
            });
        }
        let all = [
            &report.length_failures,
            &report.repeated_paragraphs,
            &report.leaks,
            &report.not_story,
            &report.documents,
            &report.dead_acting,
            &report.near_duplicates,
            &report.unknown_names,
            &report.plan_missing,
            &report.title_mismatches,
            &report.repeated_titles,
        ];
        let hard: Vec<HardFailure> = all
            .into_iter()
            .flatten()
            .filter(|f| f.rule.is_hard())
            .map(|f| HardFailure {
                rule: f.rule.name().into(),
                chapter: Some(f.chapter).filter(|c| *c > 0),
                message: match (&f.field, f.chapter) {
                    (Some(_), 0) => f.message.clone(),
                    _ => format!("chapter {}: {}", f.chapter, f.message),
                },
            })
            .collect();
        report.hard_failures.extend(hard);
        report
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The cast, with the ledger's aliases and deaths merged in (a ledger character the cast lacks
/// is added), and the book's own words.
fn canon(parts: &BookParts) -> Canon {
    let mut people: Vec<Person> = parts
        .cast
        .iter()
        .filter(|(name, _)| !name.trim().is_empty())
        .map(|(name, aliases)| Person::new(name.trim()).with_aliases(aliases.iter().cloned()))
        .collect();
    for l in parts.ledger.iter().flatten() {
        let i = match people.iter().position(|p| p.name.eq_ignore_ascii_case(l.name.trim())) {
            Some(i) => i,
            None if l.name.trim().is_empty() => continue,
            None => {
                people.push(Person::new(l.name.trim()));
                people.len() - 1
            }
        };
        let p = &mut people[i];
        for a in &l.aliases {
            if !p.aliases.iter().any(|b| b.eq_ignore_ascii_case(a)) {
                p.aliases.push(a.clone());
            }
        }
        // Without the chapter of death the final ledger cannot say when to check.
        if !l.alive && l.died_in_chapter.is_some() {
            p.alive = false;
            p.died_in_chapter = l.died_in_chapter;
        }
    }
    Canon::new(people).with_text(&parts.known_text)
}

fn not_checked(parts: &BookParts) -> Vec<String> {
    let mut out = Vec::new();
    if parts.chapters_asked.is_none() {
        out.push(
            "chapters asked: unknown (no brief or outline); gaps in the numbering only".into(),
        );
    }
    if parts.words_per_chapter.is_none_or(|w| w == 0) {
        out.push("length: no target words per chapter".into());
    }
    if parts.cast.is_empty() && parts.ledger.as_ref().is_none_or(Vec::is_empty) {
        out.push("names: no cast".into());
    }
    if parts.ledger.is_none() {
        out.push("characters acting after death: no continuity ledger".into());
    }
    if parts.plan.is_empty() {
        out.push("plan coverage and titles: no outline".into());
    }
    out
}

#[cfg(test)]
mod tests;
