//! The local assembly step: manuscript, chapter files, `book.json`, the quality report
//! `quality.json` and the EPUB edition `book.epub`, written atomically.
//!
//! Everything is written into a hidden staging directory beside the target, which is then
//! renamed into place: a crash leaves either no book directory or a complete one. The manuscript
//! and the EPUB are rendered from a [`Publication`], which `scriptorium export` also reads back
//! from a written `book.json`.

pub mod epub;
pub mod language;
pub mod publication;

pub use publication::Publication;

use crate::record::BookRecord;
use scriptorium_contracts::{Cast, ChapterText, Concept, Outline, Review, World};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A lowercase ASCII slug of `s` (at most 48 characters).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "book".into() } else { out }
}

fn get<T: serde::de::DeserializeOwned + Default>(rec: &BookRecord, step: &str) -> T {
    rec.outputs.get(step).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

/// The final chapters of a finished book, in order.
pub fn final_chapters(rec: &BookRecord) -> Vec<ChapterText> {
    (1..=rec.brief.chapters)
        .filter_map(|n| rec.plan.final_chapter_step(n))
        .map(|s| get::<ChapterText>(rec, &s.id))
        .collect()
}

/// The Markdown manuscript of `book`: title page, contents, chapters.
pub fn manuscript(book: &Publication) -> String {
    let mut m = format!("# {}\n\n*by {}*\n\n", book.title, book.author);
    if !book.logline.is_empty() {
        m += &format!("> {}\n\n", book.logline);
    }
    if book.simulated {
        m += &format!("*{}*\n\n", publication::SIMULATED_NOTICE);
    }
    m += "## Contents\n\n";
    for c in &book.chapters {
        m += &format!("{}. [{}](#chapter-{})\n", c.number, c.title, c.number);
    }
    for c in &book.chapters {
        m += &format!(
            "\n---\n\n<a id=\"chapter-{}\"></a>\n\n## Chapter {}: {}\n\n{}\n",
            c.number,
            c.number,
            c.title,
            c.prose()
        );
    }
    m
}

/// The knowledge base of a book, as written to `book.json`.
pub fn book_json(rec: &BookRecord) -> Value {
    let reviews: Vec<Value> = (1..=rec.brief.chapters)
        .filter_map(|n| {
            rec.outputs
                .get(&crate::plan::chapter_step(scriptorium_proto::v1::AgentKind::Review, n))
                .cloned()
        })
        .collect();
    let drafts: Vec<Value> = (1..=rec.brief.chapters)
        .filter_map(|n| {
            rec.outputs
                .get(&crate::plan::chapter_step(scriptorium_proto::v1::AgentKind::Chapter, n))
                .cloned()
        })
        .collect();
    let chapters: Vec<Value> = final_chapters(rec)
        .into_iter()
        .map(|c| {
            let words = c.word_count();
            let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
            v["words"] = json!(words);
            v
        })
        .collect();
    let steps: Vec<Value> = rec
        .plan
        .steps
        .iter()
        .filter_map(|p| rec.steps.get(&p.id).map(|s| (p, s)))
        .map(|(p, s)| {
            json!({
                "id": p.id, "kind": scriptorium_proto::kind::name(p.kind), "status": s.status,
                "attempts": s.attempt, "route": s.route, "dialect": s.dialect, "worker": s.worker, "worker_ms": s.worker_ms,
                "cache_hit": s.cache_hit, "usage": s.usage, "rejections": s.rejections,
                "skipped": s.skipped, "kept_draft": s.kept_draft,
            })
        })
        .collect();
    json!({
        "id": rec.id,
        "title": rec.title,
        "brief": rec.brief,
        "concept": get::<Concept>(rec, "concept"),
        "cast": get::<Cast>(rec, "characters").characters,
        "world": rec.outputs.get("world").map(|_| get::<World>(rec, "world")),
        "outline": get::<Outline>(rec, "outline"),
        "ledger": crate::continuity::ledger(rec),
        "chapters": chapters,
        "drafts": drafts,
        "reviews": reviews.into_iter().map(|r| serde_json::from_value::<Review>(r).unwrap_or_default()).collect::<Vec<_>>(),
        "usage": rec.usage,
        "steps": steps,
        "ignored_results": rec.ignored_results,
        "created_ms": rec.created_ms,
        "finished_ms": rec.finished_ms,
    })
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Writes the book under `out_dir` and returns its directory.
pub fn assemble(rec: &BookRecord, out_dir: &Path) -> std::io::Result<PathBuf> {
    let concept: Concept = get(rec, "concept");
    let book = Publication::from_record(rec);
    let name = format!("{}-{}", slug(&concept.title), rec.id);
    let target = out_dir.join(&name);
    let staging = out_dir.join(format!(".staging-{name}"));
    std::fs::create_dir_all(out_dir)?;
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(staging.join("chapters"))?;
    write(&staging.join("manuscript.md"), manuscript(&book).as_bytes())?;
    for c in &book.chapters {
        let file = format!("{:02}-{}.md", c.number, slug(&c.title));
        write(
            &staging.join("chapters").join(file),
            format!("## Chapter {}: {}\n\n{}\n", c.number, c.title, c.prose()).as_bytes(),
        )?;
    }
    let mut done = rec.clone();
    done.output_dir = target.display().to_string();
    let json = serde_json::to_vec_pretty(&book_json(&done)).map_err(std::io::Error::other)?;
    write(&staging.join("book.json"), &json)?;
    // The quality report, read back from the files as `scriptorium check` reads them.
    match crate::quality::QualityReport::from_book_dir(&staging) {
        Ok(report) => {
            if !report.passed() {
                let failures: Vec<&str> =
                    report.hard_failures.iter().map(|f| f.message.as_str()).collect();
                tracing::warn!(book_id = %rec.id, failures = ?failures, "book fails its quality report");
            }
            let q = serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?;
            write(&staging.join("quality.json"), &q)?;
        }
        Err(e) => tracing::warn!(book_id = %rec.id, error = %e, "no quality report"),
    }
    write(&staging.join("book.epub"), &epub::render(&book)?)?;
    if target.exists() {
        // A complete copy from an earlier run of the same book (for example before a crash
        // between rename and state update): the new one replaces it whole.
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(&staging, &target)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(slug("The Salt Harbour: A Tale!"), "the-salt-harbour-a-tale");
        assert_eq!(slug("../../etc"), "etc");
        assert_eq!(slug("???"), "book");
    }
}
