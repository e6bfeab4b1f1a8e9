//! One planted defect per rule, each caught twice: by validation (the chapter answer is
//! rejected with the rule, so it is re-asked) and by the quality report of a book written with
//! it (what `scriptorium check` and `quality.json` show): a renamed character, a dead one who
//! speaks, a paragraph duplicated across two chapters, "Here is the chapter", and a 300-word
//! chapter for a 2,000-word target. (What is not story is cleaned off instead when the chapter
//! still meets its length without it: the copies planted here leave it too short.)

use scriptorium_contracts::{
    Cast, ChapterText, Character, Continuity, Ctx, Ledger, Outline, OutlineChapter, ProseScene,
    Scene, validate,
};
use scriptorium_coordinator::assembly;
use scriptorium_coordinator::quality::QualityReport;
use scriptorium_coordinator::record::{BookRecord, StepStatus};
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde_json::json;

const TARGET: u32 = 2000;

fn brief() -> BookBrief {
    BookBrief {
        title: "Planted".into(),
        category: "fiction".into(),
        chapters: 3,
        characters: 3,
        words_per_chapter: TARGET,
        review_mode: "human".into(),
        author: "Test".into(),
        ..Default::default()
    }
}

fn cast() -> Cast {
    let c = |n: &str| Character { name: n.into(), role: "r".into(), ..Default::default() };
    Cast { characters: vec![c("Mara Vell"), c("Tobin Thorne"), c("Iona Quill")] }
}

fn outline() -> Outline {
    let chapter = |n: u32| OutlineChapter {
        number: n,
        title: format!("Harbour {n}"),
        summary: "s".into(),
        scenes: (0..3)
            .map(|_| Scene { summary: "x".into(), characters: vec![], ..Default::default() })
            .collect(),
    };
    Outline { summary: "s".into(), chapters: (1..=3).map(chapter).collect() }
}

/// Chapter `n`: three scenes of varied lowercase prose (no names), `words` words in all, in
/// paragraphs of 50 words; `extra` paragraphs appended to its second scene.
fn chapter(n: u32, words: usize, extra: &[&str]) -> ChapterText {
    let per_scene = words / 3;
    let scene = |s: usize| {
        let paragraphs: Vec<String> = (0..per_scene)
            .collect::<Vec<_>>()
            .chunks(50)
            .map(|ws| {
                ws.iter().map(|w| letters(&format!("c{n}x{s}w{w}"))).collect::<Vec<_>>().join(" ")
            })
            .collect();
        ProseScene { heading: format!("Scene {}", s + 1), text: paragraphs.join("\n\n") }
    };
    let mut scenes: Vec<ProseScene> = (0..3).map(scene).collect();
    for e in extra {
        scenes[1].text = format!("{}\n\n{e}", scenes[1].text);
    }
    ChapterText {
        number: n,
        title: format!("Harbour {n}"),
        scenes,
        summary: format!("Chapter {n} happens."),
        characters: vec!["Mara Vell".into()],
        ..Default::default()
    }
}

/// `s` with its digits as letters (`k` for 0 to `t` for 9): filler words with digits would be
/// identifiers, machine text.
fn letters(s: &str) -> String {
    s.chars().map(|c| c.to_digit(10).map_or(c, |d| (b'k' + d as u8) as char)).collect()
}

struct Defect {
    name: &'static str,
    chapter: ChapterText,
    /// What the rejection says.
    rejected: &'static str,
    /// The report's rule name (a hard failure) or, for the soft names rule, its list.
    reported: &'static str,
}

fn defects(one: &ChapterText) -> Vec<Defect> {
    let copied = one.scenes[0].text.split("\n\n").next().unwrap().to_string();
    // "before" is a memory cue in narration; in what the dead say it excuses nothing.
    let speaks =
        "\"Close the gate before the tide turns,\" Tobin Thorne said, and the room went still.";
    let renamed = "\"Then we sail at dawn,\" Mara Quill said, and nobody in the room answered her.";
    vec![
        Defect {
            name: "a renamed character",
            chapter: chapter(2, 2000, &[renamed]),
            rejected: "\"Mara Quill\" (paragraph",
            reported: "unknown_names",
        },
        Defect {
            name: "a dead character who speaks",
            chapter: chapter(2, 2000, &[speaks]),
            rejected: "Tobin Thorne died in chapter 1 but speaks or acts",
            reported: "dead_character_acts",
        },
        Defect {
            name: "a paragraph duplicated from chapter 1",
            // Without the copy the chapter is too short (1,398 words): re-asked, not cleaned.
            chapter: chapter(2, 1400, &[&copied]),
            rejected: "repeats paragraph 1 of chapter 1 word for word",
            reported: "repeated_paragraph",
        },
        Defect {
            name: "\"Here is the chapter\"",
            chapter: chapter(2, 1425, &["Here is the chapter you asked for:"]),
            rejected: "is not story prose",
            reported: "meta_text",
        },
        Defect {
            name: "300 words for a 2,000-word target",
            chapter: chapter(2, 300, &[]),
            rejected: "300 words for a target of 2000 (length score 0, too short); write between 1429 and 3200 words",
            reported: "length",
        },
    ]
}

/// Chapter 1 reports Tobin Thorne's death.
fn first_chapter() -> ChapterText {
    let mut one = chapter(1, 2000, &["Tobin Thorne fell from the harbour wall and did not rise."]);
    one.continuity = Continuity { deaths: vec!["Tobin Thorne".into()], ..Default::default() };
    one
}

/// A book written by assembly with chapters `1`, `two` and a clean chapter 3, as the engine
/// writes it (book.json with its ledger, chapter files, manuscript, quality.json).
fn written_book(one: &ChapterText, two: &ChapterText, out: &std::path::Path) -> std::path::PathBuf {
    let mut rec = BookRecord::new("planted".into(), brief(), 0);
    rec.title = "Planted".into();
    let outputs = [
        ("concept", json!({"title": "Planted", "logline": "l", "description": "d"})),
        ("characters", serde_json::to_value(cast()).unwrap()),
        ("outline", serde_json::to_value(outline()).unwrap()),
        ("chapter-01", serde_json::to_value(one).unwrap()),
        ("chapter-02", serde_json::to_value(two).unwrap()),
        ("chapter-03", serde_json::to_value(chapter(3, 2000, &[])).unwrap()),
    ];
    for (id, v) in outputs {
        rec.outputs.insert(id.into(), v.into());
    }
    for s in rec.steps.values_mut() {
        s.status = StepStatus::Done;
    }
    assembly::assemble(&rec, out).unwrap()
}

#[test]
fn each_planted_defect_is_rejected_by_validation_and_reported_by_check() {
    let (b, cast, outline) = (brief(), cast(), outline());
    let one = first_chapter();
    let ledger = Ledger::build(Some(&cast), [&one]);
    let earlier = [one.clone()];
    let ctx = Ctx {
        cast: Some(&cast),
        outline: Some(&outline),
        chapter: 2,
        ledger: Some(&ledger),
        earlier: &earlier,
        ..Ctx::new(&b)
    };
    let clean = chapter(2, 2000, &[]);
    assert!(validate(AgentKind::Chapter, &serde_json::to_string(&clean).unwrap(), ctx).is_ok());
    let tmp = tempfile::tempdir().unwrap();
    let report =
        QualityReport::from_book_dir(&written_book(&one, &clean, &tmp.path().join("clean")))
            .unwrap();
    assert!(report.passed(), "{}", scriptorium_coordinator::quality::render_text(&report));

    for (i, d) in defects(&one).into_iter().enumerate() {
        let answer = serde_json::to_string(&d.chapter).unwrap();
        let rule = validate(AgentKind::Chapter, &answer, ctx).expect_err(d.name).rule;
        assert!(rule.contains(d.rejected), "{}: want {:?} in {rule:?}", d.name, d.rejected);

        let dir = written_book(&one, &d.chapter, &tmp.path().join(format!("book{i}")));
        let report = QualityReport::from_book_dir(&dir).unwrap();
        let written: QualityReport =
            serde_json::from_slice(&std::fs::read(dir.join("quality.json")).unwrap()).unwrap();
        assert_eq!(written, report, "{}: quality.json is the report", d.name);
        let text = scriptorium_coordinator::quality::render_text(&report);
        if d.reported == "unknown_names" {
            // Names outside the cast are reported, not failed: the check is a heuristic.
            assert_eq!(report.unknown_names.len(), 1, "{}: {text}", d.name);
            assert_eq!(report.unknown_names[0].chapter, 2);
            assert!(report.passed(), "{}: {text}", d.name);
        } else {
            let rules: Vec<(&str, Option<u32>)> =
                report.hard_failures.iter().map(|f| (f.rule.as_str(), f.chapter)).collect();
            assert_eq!(rules, [(d.reported, Some(2))], "{}: {text}", d.name);
        }
    }
}
