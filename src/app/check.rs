//! `scriptorium check BOOK_DIR`: the quality report of a written book, as text or JSON.

use scriptorium_coordinator::quality::{QualityReport, render_text};
use std::path::Path;

/// Prints the report of the book in `dir`; 0 when it passes, 1 when a hard rule fails.
pub(crate) fn check(dir: &Path, json: bool) -> anyhow::Result<u8> {
    let report = QualityReport::from_book_dir(dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(if report.passed() { 0 } else { 1 })
}
