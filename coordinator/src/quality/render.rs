//! The quality report as a terminal shows it (`scriptorium check`).

use super::QualityReport;
use scriptorium_contracts::prose::Finding;

/// The report for a terminal.
pub fn render_text(report: &QualityReport) -> String {
    let mut out = format!("Quality report: {}\n", report.title);
    if !report.sources.is_empty() {
        out += &format!("read from: {}\n", report.sources.join(", "));
    }
    let present = report.chapters_present.len();
    match report.chapters_asked {
        Some(asked) => out += &format!("chapters: {present} of {asked} present"),
        None => out += &format!("chapters: {present} present"),
    }
    if !report.missing_chapters.is_empty() {
        let missing: Vec<String> = report.missing_chapters.iter().map(u32::to_string).collect();
        out += &format!(" (missing: {})", missing.join(", "));
    }
    out += &format!("\nwords: {}\n\n", report.words);
    out += "  ch   words  target  score  repeated  title\n";
    for c in &report.chapters {
        let target = c.target.map_or("-".to_string(), |t| t.to_string());
        let score = c.length_score.map_or("-".to_string(), |s| format!("{s:.1}"));
        out += &format!(
            "{:>4} {:>7} {:>7} {:>6} {:>8.1}%  {}\n",
            c.number,
            c.words,
            target,
            score,
            c.repeated_sentence_share * 100.0,
            c.title
        );
    }
    out += &format!(
        "\nrepeated sentences: {:.1}% of the book's sentences occur more than once\n",
        report.repeated_sentence_share * 100.0
    );
    let sections: [(&str, &Vec<Finding>); 11] = [
        ("length score below 80", &report.length_failures),
        ("paragraphs repeated word for word", &report.repeated_paragraphs),
        ("near-duplicate paragraphs", &report.near_duplicates),
        ("placeholder or meta text", &report.leaks),
        ("not story (instruction echo, talk about the task, machine text)", &report.not_story),
        ("documents (concept, cast, world, outline)", &report.documents),
        ("names not in the cast", &report.unknown_names),
        ("characters acting after death", &report.dead_acting),
        ("plan characters never mentioned", &report.plan_missing),
        ("titles differing from the outline", &report.title_mismatches),
        ("titles repeated from an earlier chapter", &report.repeated_titles),
    ];
    for (name, findings) in sections {
        if findings.is_empty() {
            out += &format!("{name}: none\n");
            continue;
        }
        out += &format!("{name}: {}\n", findings.len());
        for f in findings {
            let at = f.paragraph.map_or(String::new(), |p| format!(" paragraph {p}"));
            match &f.field {
                Some(field) if f.chapter == 0 => out += &format!("  - {field}: {}\n", f.message),
                _ => out += &format!("  - chapter {}{at}: {}\n", f.chapter, f.message),
            }
            if f.paragraph.is_some() || f.field.is_some() {
                out += &format!("    \"{}\"\n", f.snippet);
            }
        }
    }
    if !report.not_checked.is_empty() {
        out += "not checked:\n";
        for n in &report.not_checked {
            out += &format!("  - {n}\n");
        }
    }
    if report.passed() {
        out += "\nresult: PASS (no hard rule failed)\n";
    } else {
        out += &format!("\nresult: FAIL ({} hard failures)\n", report.hard_failures.len());
        for h in &report.hard_failures {
            out += &format!("  - [{}] {}\n", h.rule, h.message);
        }
    }
    out
}
