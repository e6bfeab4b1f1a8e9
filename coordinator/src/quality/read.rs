//! A book's files read into [`BookParts`]: from a book directory ([`read_book_dir`], as
//! `scriptorium check` reads one), or from the texts assembly is writing ([`BookFiles`]), so
//! that its `quality.json` is the report of exactly those files without reading them back.

use super::{BookChapter, BookParts, LedgerCharacter, PlannedChapter, QualityError, documents};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The files of a book the report reads: `book.json` (parsed), `manuscript.md`, and the
/// `chapters/*.md` files as (file stem, text) in file-name order.
#[derive(Debug, Default)]
pub struct BookFiles {
    /// `book.json`.
    pub book: Option<Value>,
    /// `manuscript.md`.
    pub manuscript: Option<String>,
    /// `chapters/*.md`: (file stem, text), sorted by file name.
    pub chapters: Vec<(String, String)>,
    /// The directory's name: the title of a book nothing else names.
    pub name: String,
}

impl BookFiles {
    /// Reads the files of the book in `dir`; a directory with none of them is not a book.
    pub fn read(dir: &Path) -> Result<BookFiles, QualityError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| QualityError::Io { path, source }
        };
        let book_path = dir.join("book.json");
        let manuscript_path = dir.join("manuscript.md");
        let chapters_dir = dir.join("chapters");
        let mut files = BookFiles {
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            ..BookFiles::default()
        };
        if book_path.is_file() {
            let bytes = std::fs::read(&book_path).map_err(io(&book_path))?;
            let v = serde_json::from_slice(&bytes)
                .map_err(|source| QualityError::BookJson { path: book_path.clone(), source })?;
            files.book = Some(v);
        }
        if chapters_dir.is_dir() {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&chapters_dir)
                .map_err(io(&chapters_dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "md") && p.is_file())
                .collect();
            paths.sort();
            for f in &paths {
                let text = std::fs::read_to_string(f).map_err(io(f))?;
                let stem =
                    f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                files.chapters.push((stem, text));
            }
        }
        if manuscript_path.is_file() {
            files.manuscript =
                Some(std::fs::read_to_string(&manuscript_path).map_err(io(&manuscript_path))?);
        }
        if files.book.is_none() && files.manuscript.is_none() && !chapters_dir.is_dir() {
            return Err(QualityError::NotABook { path: dir.to_path_buf() });
        }
        Ok(files)
    }

    /// The parts of the book: `book.json` when present (any version), the chapters from
    /// `chapters/*.md`, else from `manuscript.md`, else from `book.json`'s chapters.
    pub fn parts(&self) -> BookParts {
        let mut parts = BookParts::default();
        if self.book.is_some() {
            parts.sources.push("book.json".into());
        }
        for (stem, text) in &self.chapters {
            parts.chapters.push(chapter_file(stem, text));
        }
        if !self.chapters.is_empty() {
            parts.sources.push("chapters/".into());
        }
        if parts.chapters.is_empty()
            && let Some(m) = &self.manuscript
        {
            parts.chapters = manuscript_chapters(m);
            parts.sources.push("manuscript.md".into());
        }
        if parts.chapters.is_empty()
            && let Some(b) = &self.book
        {
            parts.chapters = json_chapters(b);
        }
        if let Some(b) = &self.book {
            from_book_json(b, &mut parts);
        }
        if parts.title.is_empty() {
            parts.title = self
                .manuscript
                .as_deref()
                .and_then(|m| m.lines().find_map(|l| l.strip_prefix("# ")))
                .map_or_else(|| self.name.clone(), |t| t.trim().to_string());
        }
        parts
    }
}

/// Reads the parts of the book in `dir` ([`BookFiles::read`], [`BookFiles::parts`]).
pub fn read_book_dir(dir: &Path) -> Result<BookParts, QualityError> {
    Ok(BookFiles::read(dir)?.parts())
}

/// `## Chapter 3: The Gate` as (3, "The Gate").
fn chapter_heading(line: &str) -> Option<(u32, String)> {
    let rest = line.trim().trim_start_matches('#').trim().strip_prefix("Chapter ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let number = digits.parse().ok()?;
    let title = rest[digits.len()..].trim_start_matches([':', '.', ' ', '-', '—']).trim();
    Some((number, title.to_string()))
}

/// A chapter file: its heading line gives number and title, else the file name (`03-the-gate`).
fn chapter_file(stem: &str, text: &str) -> BookChapter {
    let mut lines = text.lines();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let from_name = || {
        let digits: String = stem.chars().take_while(char::is_ascii_digit).collect();
        let title = stem[digits.len()..].trim_start_matches('-').replace('-', " ");
        (digits.parse().unwrap_or(0), title)
    };
    let ((number, title), body) = match chapter_heading(first) {
        Some(h) => {
            for l in lines.by_ref() {
                if !l.trim().is_empty() {
                    break;
                }
            }
            (h, lines.collect::<Vec<_>>().join("\n"))
        }
        None => (from_name(), text.to_string()),
    };
    // The simulated model's label is not prose.
    let notice = format!("*{}*", crate::assembly::publication::SIMULATED_NOTICE);
    let body = body.trim().strip_prefix(notice.as_str()).unwrap_or(body.trim());
    BookChapter { number, title, text: body.trim().to_string() }
}

/// The chapters of a manuscript: the text under each `## Chapter N: Title` heading, without the
/// separators and anchors assembly puts between chapters. The front matter is not prose.
fn manuscript_chapters(m: &str) -> Vec<BookChapter> {
    let mut out: Vec<BookChapter> = Vec::new();
    for line in m.lines() {
        if line.starts_with("## ")
            && let Some((number, title)) = chapter_heading(line)
        {
            out.push(BookChapter { number, title, text: String::new() });
            continue;
        }
        if let Some(c) = out.last_mut() {
            c.text.push_str(line);
            c.text.push('\n');
        }
    }
    for c in &mut out {
        let mut lines: Vec<&str> = c.text.lines().collect();
        while lines.last().is_some_and(|l| {
            let l = l.trim();
            l.is_empty() || l == "---" || (l.starts_with("<a id=") && l.ends_with("</a>"))
        }) {
            lines.pop();
        }
        c.text = lines.join("\n").trim().to_string();
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn u32_of(v: &Value, key: &str) -> Option<u32> {
    v.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The final chapters stored in `book.json`, for a book without chapter files or manuscript.
fn json_chapters(book: &Value) -> Vec<BookChapter> {
    let Some(chapters) = book.get("chapters").and_then(Value::as_array) else { return Vec::new() };
    chapters
        .iter()
        .filter_map(|c| {
            let number = u32_of(c, "number")?;
            let scenes = c.get("scenes").and_then(Value::as_array);
            let text = scenes
                .into_iter()
                .flatten()
                .map(|s| str_of(s, "text").trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n* * *\n\n");
            Some(BookChapter { number, title: str_of(c, "title").to_string(), text })
        })
        .collect()
}

/// The ledger's characters: `ledger` (or `continuity`) as an array of characters, or an object
/// whose `characters` is an array, or an object keyed by name. Tolerant: entries without a name
/// are skipped, `alive` defaults to true, `status: "dead"` counts as dead.
fn ledger(book: &Value) -> Option<Vec<LedgerCharacter>> {
    let l = book.get("ledger").or_else(|| book.get("continuity")).filter(|v| !v.is_null())?;
    let list = l.get("characters").unwrap_or(l);
    let entries: Vec<(String, &Value)> = match list {
        Value::Array(a) => a.iter().map(|c| (str_of(c, "name").to_string(), c)).collect(),
        Value::Object(o) => o
            .iter()
            .map(|(k, c)| {
                (Some(str_of(c, "name")).filter(|n| !n.is_empty()).unwrap_or(k).to_string(), c)
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(
        entries
            .into_iter()
            .filter(|(name, _)| !name.trim().is_empty())
            .map(|(name, c)| {
                let dead_status = str_of(c, "status").eq_ignore_ascii_case("dead");
                LedgerCharacter {
                    name,
                    aliases: strings(c.get("aliases")),
                    alive: c.get("alive").and_then(Value::as_bool).unwrap_or(!dead_status),
                    died_in_chapter: u32_of(c, "died_in_chapter").or_else(|| u32_of(c, "died_in")),
                }
            })
            .collect(),
    )
}

/// Fills `parts` from a `book.json` of any version; missing fields leave parts empty.
fn from_book_json(book: &Value, parts: &mut BookParts) {
    let null = Value::Null;
    let brief = book.get("brief").unwrap_or(&null);
    let outline = book.get("outline").unwrap_or(&null);
    let concept = book.get("concept").unwrap_or(&null);
    parts.title = [str_of(book, "title"), str_of(concept, "title"), str_of(brief, "title")]
        .into_iter()
        .find(|t| !t.trim().is_empty())
        .unwrap_or_default()
        .to_string();
    parts.words_per_chapter =
        u32_of(brief, "words_per_chapter").filter(|w| *w > 0).map(|w| w as usize);
    parts.plan = outline
        .get("chapters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let mut characters: Vec<String> = Vec::new();
            for s in c.get("scenes").and_then(Value::as_array).into_iter().flatten() {
                for name in strings(s.get("characters")) {
                    if !characters.contains(&name) {
                        characters.push(name);
                    }
                }
            }
            Some(PlannedChapter {
                number: u32_of(c, "number")?,
                title: str_of(c, "title").into(),
                characters,
            })
        })
        .collect();
    parts.chapters_asked = u32_of(brief, "chapters")
        .filter(|n| *n > 0)
        .or_else(|| u32::try_from(parts.plan.len()).ok().filter(|n| *n > 0));
    let cast = book.get("cast").map(|c| c.get("characters").unwrap_or(c));
    parts.cast = cast
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| match c {
            Value::String(name) => (name.clone(), Vec::new()),
            c => (str_of(c, "name").to_string(), strings(c.get("aliases"))),
        })
        .filter(|(name, _)| !name.trim().is_empty())
        .collect();
    parts.ledger = ledger(book);
    let mut known = String::new();
    for key in ["title", "brief", "concept", "cast", "world", "outline", "ledger", "continuity"] {
        if let Some(v) = book.get(key) {
            scriptorium_contracts::kinds::chapter::strings(v, &mut known);
        }
    }
    parts.known_text = known;
    for (key, _) in documents::DOCUMENTS {
        if let Some(v) = book.get(*key).filter(|v| !v.is_null()) {
            parts.documents.insert(key.to_string(), v.clone());
        }
    }
}
