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

use crate::quality::{BookFiles, QualityReport};
use crate::record::BookRecord;
use scriptorium_contracts::{Cast, ChapterText, Concept, Outline, ProseScene, Review, World};
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
    rec.outputs.get(step).and_then(|d| d.parse()).unwrap_or_default()
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
                .map(|d| d.value())
        })
        .collect();
    let drafts: Vec<Value> = (1..=rec.brief.chapters)
        .filter_map(|n| {
            rec.outputs
                .get(&crate::plan::chapter_step(scriptorium_proto::v1::AgentKind::Chapter, n))
                .map(|d| d.value())
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
        "version": rec.version,
        "actions": rec.actions,
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
    // What is written is kept as the quality report reads it (`BookFiles::read` of the
    // directory would give the same), so the report is of exactly these files.
    let mut files = BookFiles { name: name.clone(), ..BookFiles::default() };
    let text = manuscript(&book);
    write(&staging.join("manuscript.md"), text.as_bytes())?;
    files.manuscript = Some(text);
    for c in &book.chapters {
        let stem = format!("{:02}-{}", c.number, slug(&c.title));
        let text = chapter_file(&book, c);
        write(&staging.join("chapters").join(format!("{stem}.md")), text.as_bytes())?;
        files.chapters.push((stem, text));
    }
    // In the order of their file names, as a directory is read.
    files.chapters.sort_by_cached_key(|(stem, _)| format!("{stem}.md"));
    let mut done = rec.clone();
    done.output_dir = target.display().to_string();
    let mut json = book_json(&done);
    label(&book, &mut json);
    write(
        &staging.join("book.json"),
        &serde_json::to_vec_pretty(&json).map_err(std::io::Error::other)?,
    )?;
    files.book = Some(json);
    let report = QualityReport::from_parts(&files.parts());
    if !report.passed() {
        let failures: Vec<&str> = report.hard_failures.iter().map(|f| f.message.as_str()).collect();
        tracing::warn!(book_id = %rec.id, failures = ?failures, "book fails its quality report");
    }
    let mut q = serde_json::to_value(&report).map_err(std::io::Error::other)?;
    label(&book, &mut q);
    let q = serde_json::to_vec_pretty(&q).map_err(std::io::Error::other)?;
    write(&staging.join("quality.json"), &q)?;
    write(&staging.join("book.epub"), &epub::render(&book)?)?;
    if target.exists() {
        let written = written_version(&target);
        if written < rec.version {
            // A rewrite: the previous version's files stay beside the new ones.
            let kept = out_dir.join(format!("{name}.v{written}"));
            if kept.exists() {
                std::fs::remove_dir_all(&kept)?;
            }
            std::fs::rename(&target, &kept)?;
        } else {
            // A complete copy from an earlier run of the same version (for example before a
            // crash between rename and state update): the new one replaces it whole.
            std::fs::remove_dir_all(&target)?;
        }
    }
    std::fs::rename(&staging, &target)?;
    Ok(target)
}

/// A chapter's own file: its heading, the simulated model's notice when it wrote the book (so
/// no file of such a book can pass for a real one), its prose.
fn chapter_file(book: &Publication, c: &ChapterText) -> String {
    let notice = if book.simulated {
        format!("*{}*\n\n", publication::SIMULATED_NOTICE)
    } else {
        String::new()
    };
    format!("## Chapter {}: {}\n\n{notice}{}\n", c.number, c.title, c.prose())
}

/// Marks a JSON file of a book the simulated model wrote (`simulated` and its notice).
fn label(book: &Publication, json: &mut Value) {
    if book.simulated
        && let Some(map) = json.as_object_mut()
    {
        map.insert("simulated".into(), json!(publication::SIMULATED_NOTICE));
    }
}

/// The version of the book written in `dir` (its `book.json`; 1 when it says none).
fn written_version(dir: &Path) -> u32 {
    std::fs::read(dir.join("book.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["version"].as_u64())
        .map_or(1, |v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// Chapter `n` of `rec` from a person's Markdown: a first heading line (`# Title`, or
/// `## Chapter 2: Title` as chapter files have it) gives the title (else the plan's); scenes are
/// separated by a line of `* * *`, `***` or `---`; the summary is the plan's; the characters are
/// the cast members the text names. `Err` names what is wrong with the text.
pub fn chapter_from_markdown(rec: &BookRecord, n: u32, text: &str) -> Result<ChapterText, String> {
    let outline: Outline = get(rec, "outline");
    let plan = outline.chapter(n);
    let mut lines = text.lines().peekable();
    while lines.peek().is_some_and(|l| l.trim().is_empty()) {
        lines.next();
    }
    let mut title = plan.map(|p| p.title.clone()).unwrap_or_else(|| format!("Chapter {n}"));
    if let Some(first) = lines.peek().map(|l| l.trim())
        && first.starts_with('#')
    {
        let heading = first.trim_start_matches('#').trim();
        let heading = match heading.split_once(':') {
            Some((head, rest)) if head.trim().to_lowercase().starts_with("chapter") => rest.trim(),
            _ => heading,
        };
        if !heading.is_empty() {
            title = heading.to_string();
        }
        lines.next();
    }
    let mut scenes = vec![String::new()];
    let notice = format!("*{}*", publication::SIMULATED_NOTICE);
    for line in lines {
        let t = line.trim();
        if t == notice {
            // The simulated model's label of a chapter file, never prose.
            continue;
        }
        if matches!(t, "* * *" | "***" | "---" | "* * * *") {
            scenes.push(String::new());
        } else if let Some(scene) = scenes.last_mut() {
            scene.push_str(line.trim_end());
            scene.push('\n');
        }
    }
    let scenes: Vec<ProseScene> = scenes
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|text| ProseScene { heading: String::new(), text })
        .collect();
    if scenes.is_empty() {
        return Err(format!("the text of chapter {n} has no prose"));
    }
    let cast: Cast = get(rec, "characters");
    let all: String = scenes.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n");
    let characters = cast
        .characters
        .iter()
        .map(|c| c.name.clone())
        .filter(|name| name.split_whitespace().next().is_some_and(|first| all.contains(first)))
        .collect();
    Ok(ChapterText {
        number: n,
        title,
        scenes,
        summary: plan.map(|p| p.summary.clone()).unwrap_or_default(),
        characters,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::BookBrief;

    #[test]
    fn a_persons_chapter_reads_its_title_scenes_and_cast() {
        let brief = BookBrief { chapters: 2, characters: 2, ..Default::default() };
        let mut rec = BookRecord::new("b".into(), brief, 0);
        rec.outputs.insert(
            "characters".into(),
            json!({"characters": [{"name": "Ann Lee", "role": "r"}, {"name": "Bo Park", "role": "r"}]}).into(),
        );
        rec.outputs.insert(
            "outline".into(),
            json!({"summary": "s", "chapters": [{"number": 1, "title": "One", "summary": "p1"}, {"number": 2, "title": "Two", "summary": "p2"}]}).into(),
        );
        let c = chapter_from_markdown(
            &rec,
            2,
            "\n## Chapter 2: The Ferry\n\nAnn waited.\n\nRain.\n\n* * *\n\nDawn came.\n",
        )
        .unwrap();
        assert_eq!((c.number, c.title.as_str(), c.summary.as_str()), (2, "The Ferry", "p2"));
        let texts: Vec<&str> = c.scenes.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["Ann waited.\n\nRain.", "Dawn came."]);
        assert_eq!(c.characters, ["Ann Lee"]);
        let labelled =
            format!("## Chapter 1: One\n\n*{}*\n\nOnly prose.\n", publication::SIMULATED_NOTICE);
        let back = chapter_from_markdown(&rec, 1, &labelled).unwrap();
        assert_eq!(back.scenes.len(), 1);
        assert_eq!(back.scenes[0].text, "Only prose.", "the label is never read as prose");
        let plain = chapter_from_markdown(&rec, 1, "Only prose.").unwrap();
        assert_eq!(plain.title, "One");
        assert!(
            chapter_from_markdown(&rec, 1, "# Title only\n\n").unwrap_err().contains("no prose")
        );
    }

    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(slug("The Salt Harbour: A Tale!"), "the-salt-harbour-a-tale");
        assert_eq!(slug("../../etc"), "etc");
        assert_eq!(slug("???"), "book");
    }
}
