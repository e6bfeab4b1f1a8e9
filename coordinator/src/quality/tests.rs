//! Book directories with planted defects, clean books, and books of earlier versions.

use super::*;
use crate::assembly;
use crate::record::BookRecord;
use scriptorium_proto::v1::BookBrief;
use serde_json::json;

const CH1: &str = "\
The rain had stopped by the time Mara Vell reached the harbour wall. She stood there a long \
while, watching the grey water climb the steps one by one, as if it meant to come up and fetch her.

\"You're late,\" Tobin said. He did not turn around. \"The tide won't wait for you, and neither \
will I.\"

\"Sure,\" she said. \"Here is the ledger, if you still want it.\" She held it out to him. Mother \
had told her never to trust a man who counted tides for money, but Mother had never met Tobin \
Thorne.

On Monday the council would meet in the old hall at Harrowgate, and by Tuesday half the lower \
town would be under water. Everyone knew it. Nobody said it aloud.

* * *

Tobin took the ledger without a word and opened it to the last page. Rain fell again, softly, on \
the paper. \"Certainly not what I expected,\" he said at last.";

const CH2: &str = "\
Iona Quill kept the lamp-room at the top of the Crooked Stair, and she did not like visitors. She \
liked them less when they came at midnight, soaked through, carrying a book that half the city \
wanted burned.

\"Sit,\" Wren said, and poured Mara a cup of something that smelled of smoke and cloves. \"Tell \
me everything, and then tell me the truth.\"

Mara told her about the wall, and the water, and the man who had not turned around. Iona \
listened without once looking away from the fire.

\"Thorne is a careful man,\" she said when it was done. \"Careful men are the ones who drown. \
They wait too long to run.\"

Outside, the bells of Saint Anselm began to ring the hour, and somewhere below them the sea went \
on rising.";

/// The paragraph of chapter 1 that the defective chapter 2 copies.
const COPIED: &str = "On Monday the council would meet in the old hall at Harrowgate, and by \
Tuesday half the lower town would be under water. Everyone knew it. Nobody said it aloud.";

fn target() -> u32 {
    ((prose::word_count(CH1) + prose::word_count(CH2)) / 2) as u32
}

/// A `book.json` as assembly writes it today (plus optional cast aliases and a ledger).
fn book_json(
    asked: u32,
    words: u32,
    plan: &[(u32, &str, &[&str])],
    ledger: Option<Value>,
) -> Value {
    let outline: Vec<Value> = plan
        .iter()
        .map(|(n, title, cast)| {
            json!({"number": n, "title": title, "summary": "", "scenes": [
                {"summary": "", "characters": cast, "setting": "the lower docks", "goal": "", "emotional_beat": ""}
            ]})
        })
        .collect();
    let mut book = json!({
        "id": "b1",
        "title": "The Salt Harbour",
        "brief": {"title": "The Salt Harbour", "chapters": asked, "words_per_chapter": words, "characters": 3},
        "concept": {"title": "The Salt Harbour", "logline": "A drowned port city where tides are sold."},
        "cast": [
            {"name": "Mara Vell", "role": "protagonist"},
            {"name": "Tobin Thorne", "role": "rival"},
            {"name": "Iona Quill", "role": "mentor", "aliases": ["Wren"]},
        ],
        "world": {"sections": {"geography": "Harrowgate climbs from the lower docks by the Crooked Stair."}},
        "outline": {"summary": "", "chapters": outline},
        "chapters": [],
    });
    if let Some(l) = ledger {
        book["ledger"] = l;
    }
    book
}

/// Writes a book directory the way assembly lays it out.
fn write_book(
    root: &Path,
    book: Option<&Value>,
    chapters: &[(u32, &str, &str)],
    files: bool,
    manuscript: bool,
) -> PathBuf {
    let dir = root.join("the-salt-harbour-b1");
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(b) = book {
        std::fs::write(dir.join("book.json"), serde_json::to_vec_pretty(b).unwrap()).unwrap();
    }
    if files {
        std::fs::create_dir_all(dir.join("chapters")).unwrap();
        for (n, title, text) in chapters {
            let name = format!("{n:02}-{}.md", assembly::slug(title));
            let body = format!("## Chapter {n}: {title}\n\n{text}\n");
            std::fs::write(dir.join("chapters").join(name), body).unwrap();
        }
    }
    if manuscript {
        let mut m =
            "# The Salt Harbour\n\n*by A. N. Writer*\n\n*Written by Scriptorium's simulated \
                     model (`sim`): placeholder prose for demos and tests, not a real book.*\n\n\
                     ## Contents\n\n"
                .to_string();
        for (n, title, _) in chapters {
            m += &format!("{n}. [{title}](#chapter-{n})\n");
        }
        for (n, title, text) in chapters {
            m += &format!(
                "\n---\n\n<a id=\"chapter-{n}\"></a>\n\n## Chapter {n}: {title}\n\n{text}\n"
            );
        }
        std::fs::write(dir.join("manuscript.md"), m).unwrap();
    }
    dir
}

const PLAN: &[(u32, &str, &[&str])] = &[
    (1, "The Harbour Wall", &["Mara Vell", "Tobin Thorne"]),
    (2, "The Lamp-Room", &["Mara Vell", "Iona Quill"]),
];

#[test]
fn a_clean_book_passes_with_every_check_run() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = json!({"characters": [{"name": "Tobin Thorne", "alive": true}]});
    let book = book_json(2, target(), PLAN, Some(ledger));
    let chapters = [(1, "The Harbour Wall", CH1), (2, "The Lamp-Room", CH2)];
    let dir = write_book(tmp.path(), Some(&book), &chapters, true, true);
    let r = QualityReport::from_book_dir(&dir).unwrap();
    assert!(r.passed(), "{}", render_text(&r));
    assert_eq!(r.sources, vec!["book.json", "chapters/"]);
    assert_eq!((r.chapters_asked, r.chapters_present.clone()), (Some(2), vec![1, 2]));
    let findings = r.length_failures.len()
        + r.repeated_paragraphs.len()
        + r.near_duplicates.len()
        + r.leaks.len()
        + r.unknown_names.len()
        + r.dead_acting.len()
        + r.plan_missing.len()
        + r.title_mismatches.len()
        + r.repeated_titles.len();
    assert_eq!(findings, 0, "{}", render_text(&r));
    assert!(r.not_checked.is_empty(), "{:?}", r.not_checked);
    assert_eq!(r.words, prose::word_count(CH1) + prose::word_count(CH2));
    assert!(r.chapters.iter().all(|c| c.length_score.is_some_and(|s| s >= 80.0)));
    assert!(render_text(&r).ends_with("result: PASS (no hard rule failed)\n"));
}

#[test]
fn planted_defects_are_each_reported_and_the_hard_ones_fail_the_book() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = json!({"characters": [
        {"name": "Tobin Thorne", "aliases": [], "alive": false, "died_in_chapter": 1},
    ]});
    let plan: &[(u32, &str, &[&str])] = &[
        (1, "The Harbour Wall", &["Mara Vell", "Tobin Thorne"]),
        (2, "The Lamp-Room", &["Mara Vell", "Iona Quill"]),
        (3, "The Flood", &["Mara Vell"]),
        (4, "The Spring Tide", &["Mara Vell", "Iona Quill"]),
    ];
    let book = book_json(4, target(), plan, Some(ledger));
    let ch2 = format!(
        "Here is the chapter:\n\n{CH2}\n\n{COPIED}\n\n\"We cannot wait,\" Mira said, and the room \
         went still.\n\n\"Run,\" said Tobin, and pulled her into the dark."
    );
    let ch4 = "Mara slept until the water reached the door, and then she woke.";
    let chapters = [
        (1, "The Harbour Wall", CH1),
        (2, "The Lamp-Room", ch2.as_str()),
        (4, "The Spring Tide", ch4),
    ];
    let dir = write_book(tmp.path(), Some(&book), &chapters, true, true);
    let r = QualityReport::from_book_dir(&dir).unwrap();
    let text = render_text(&r);
    assert!(!r.passed());
    // A chapter missing.
    assert_eq!(r.missing_chapters, vec![3]);
    // "Here is the chapter:" left in the prose.
    assert_eq!(r.leaks.len(), 1, "{text}");
    assert_eq!((r.leaks[0].chapter, r.leaks[0].paragraph), (2, Some(1)));
    // A paragraph of chapter 1 repeated in chapter 2.
    assert_eq!(r.repeated_paragraphs.len(), 1, "{text}");
    assert_eq!(r.repeated_paragraphs[0].other.map(|p| p.chapter), Some(1));
    // A renamed character.
    assert_eq!(r.unknown_names.len(), 1, "{text}");
    assert!(r.unknown_names[0].message.starts_with("\"Mira\""));
    // Tobin died in chapter 1 and speaks in chapter 2 (he may act in chapter 1).
    assert_eq!(r.dead_acting.len(), 1, "{text}");
    assert_eq!(r.dead_acting[0].chapter, 2);
    // Chapter 4 is far too short, and Iona never appears in it.
    assert_eq!(r.length_failures.len(), 1, "{text}");
    assert_eq!(r.length_failures[0].chapter, 4);
    let plan_missing: Vec<(u32, &str)> =
        r.plan_missing.iter().map(|f| (f.chapter, f.snippet.as_str())).collect();
    assert_eq!(plan_missing, vec![(4, "Iona Quill")]);
    let mut hard: Vec<(&str, Option<u32>)> =
        r.hard_failures.iter().map(|h| (h.rule.as_str(), h.chapter)).collect();
    hard.sort();
    assert_eq!(
        hard,
        vec![
            ("dead_character_acts", Some(2)),
            ("length", Some(4)),
            ("meta_text", Some(2)),
            ("missing_chapter", Some(3)),
            ("repeated_paragraph", Some(2)),
        ]
    );
    assert!(text.contains("result: FAIL (5 hard failures)"), "{text}");
    assert!(text.contains("chapter 3 is missing"), "{text}");
    // The report is JSON for quality.json.
    let back: QualityReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn a_300_word_chapter_for_a_2000_word_target_fails_on_length() {
    let tmp = tempfile::tempdir().unwrap();
    let words: Vec<String> = (0..300)
        .map(|i| {
            // Letters, not digits: `w123` would be an identifier, machine text.
            let digits = i.to_string();
            format!(
                "w{}",
                digits.chars().map(|c| (c as u8 - b'0' + b'k') as char).collect::<String>()
            )
        })
        .collect();
    let text = words.join(" ");
    let book = book_json(1, 2000, &[(1, "Short", &[])], None);
    let dir = write_book(tmp.path(), Some(&book), &[(1, "Short", &text)], true, false);
    let r = QualityReport::from_book_dir(&dir).unwrap();
    assert_eq!(r.chapters[0].words, 300);
    assert_eq!(r.chapters[0].length_score, Some(0.0));
    assert_eq!(r.hard_failures.len(), 1);
    assert_eq!(r.hard_failures[0].rule, "length");
    assert!(r.hard_failures[0].message.contains("write between 1429 and 3200 words"));
}

#[test]
fn without_a_ledger_the_dead_are_not_checked_and_the_report_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let book = book_json(2, target(), PLAN, None);
    let ch2 = format!("{CH2}\n\n\"Run,\" said Tobin, and pulled her into the dark.");
    let dir = write_book(
        tmp.path(),
        Some(&book),
        &[(1, "The Harbour Wall", CH1), (2, "The Lamp-Room", &ch2)],
        true,
        true,
    );
    let r = QualityReport::from_book_dir(&dir).unwrap();
    assert!(r.passed(), "{}", render_text(&r));
    assert!(r.dead_acting.is_empty());
    assert_eq!(r.not_checked, vec!["characters acting after death: no continuity ledger"]);
}

#[test]
fn a_manuscript_alone_is_measured_without_its_front_matter() {
    let tmp = tempfile::tempdir().unwrap();
    let ch2 = format!("{CH2}\n\n{COPIED}");
    let chapters = [(1, "The Harbour Wall", CH1), (3, "The Lamp-Room", ch2.as_str())];
    let dir = write_book(tmp.path(), None, &chapters, false, true);
    let r = QualityReport::from_book_dir(&dir).unwrap();
    assert_eq!(r.sources, vec!["manuscript.md"]);
    assert_eq!(r.title, "The Salt Harbour");
    assert_eq!(r.chapters_present, vec![1, 3]);
    assert_eq!(r.chapters[1].title, "The Lamp-Room");
    // The sim's "placeholder prose" notice in the front matter is not prose; the separators
    // and anchors between chapters are not paragraphs.
    assert!(r.leaks.is_empty(), "{}", render_text(&r));
    assert_eq!(r.words, prose::word_count(CH1) + prose::word_count(&ch2));
    assert_eq!(r.repeated_paragraphs.len(), 1);
    assert_eq!(r.missing_chapters, vec![2]);
    assert_eq!(r.chapters_asked, None);
    assert!(r.chapters[0].length_score.is_none());
    for skipped in ["length: no target", "names: no cast", "no continuity ledger", "no outline"] {
        assert!(
            r.not_checked.iter().any(|n| n.contains(skipped)),
            "{skipped}: {:?}",
            r.not_checked
        );
    }
    assert!(!r.passed());
}

#[test]
fn chapter_files_alone_are_a_book() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_book(
        tmp.path(),
        None,
        &[(1, "The Harbour Wall", CH1), (2, "The Lamp-Room", CH2)],
        true,
        false,
    );
    let r = QualityReport::from_book_dir(&dir).unwrap();
    assert_eq!(r.sources, vec!["chapters/"]);
    assert_eq!(r.chapters_present, vec![1, 2]);
    assert_eq!(r.chapters[0].title, "The Harbour Wall");
    assert!(r.passed(), "{}", render_text(&r));
}

#[test]
fn an_old_book_json_with_chapters_inside_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("old");
    std::fs::create_dir_all(&dir).unwrap();
    // An early book.json: no cast aliases, no world, no outline, no ledger, no chapter files.
    let book = json!({
        "title": "Old Book",
        "brief": {"chapters": 2, "words_per_chapter": 40},
        "cast": [{"name": "Mara Vell"}],
        "chapters": [
            {"number": 1, "title": "One", "scenes": [
                {"heading": "Scene 1", "text": "Here is the chapter:\n\nMara Vell waited on the quay."},
                {"heading": "Scene 2", "text": "The boats came in one by one."},
            ]},
        ],
    });
    std::fs::write(dir.join("book.json"), book.to_string()).unwrap();
    let r = QualityReport::from_book_dir(&dir).unwrap();
    assert_eq!((r.title.as_str(), r.chapters_asked), ("Old Book", Some(2)));
    assert_eq!(r.missing_chapters, vec![2]);
    assert_eq!(r.leaks.len(), 1);
    assert_eq!(r.chapters[0].words, 17);
    let rules: BTreeSet<&str> = r.hard_failures.iter().map(|h| h.rule.as_str()).collect();
    assert_eq!(rules, BTreeSet::from(["length", "meta_text", "missing_chapter"]));
}

#[test]
fn directories_that_are_not_books_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = QualityReport::from_book_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, QualityError::NotABook { .. }), "{err}");
    std::fs::write(tmp.path().join("book.json"), "{not json").unwrap();
    let err = QualityReport::from_book_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, QualityError::BookJson { .. }), "{err}");
}

#[test]
fn a_book_assembled_by_scriptorium_is_read_whole() {
    let brief = BookBrief {
        title: "The Salt Harbour".into(),
        author: "A. N. Writer".into(),
        chapters: 2,
        words_per_chapter: target(),
        characters: 3,
        review_mode: "human".into(),
        ..BookBrief::default()
    };
    let mut rec = BookRecord::new("b7".into(), brief, 0);
    rec.outputs
        .insert("concept".into(), json!({"title": "The Salt Harbour", "logline": "Tides."}).into());
    rec.outputs.insert(
        "characters".into(),
        json!({"characters": [{"name": "Mara Vell"}, {"name": "Tobin Thorne"}, {"name": "Iona Quill"}]}).into(),
    );
    rec.outputs
        .insert("outline".into(), book_json(2, target(), PLAN, None)["outline"].clone().into());
    // Chapter 2 calls Iona by an alias the cast does not know, and leaks a word count.
    let ch2 = format!("{CH2}\n\n(Word count: 180)");
    for (n, title, text) in [(1, "The Harbour Wall", CH1), (2, "The Lamp-Room", ch2.as_str())] {
        let id = rec.plan.final_chapter_step(n).unwrap().id.clone();
        let (a, b) = text.split_at(text.find("\n\n").unwrap());
        let scenes = json!([{"heading": "Scene 1", "text": a}, {"heading": "Scene 2", "text": b}]);
        rec.outputs.insert(id, json!({"number": n, "title": title, "scenes": scenes}).into());
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = assembly::assemble(&rec, tmp.path()).unwrap();
    let r = QualityReport::from_book_dir(&dir).unwrap();
    assert_eq!(r.sources, vec!["book.json", "chapters/"]);
    assert_eq!(r.chapters_present, vec![1, 2]);
    assert_eq!(r.words, prose::word_count(CH1) + prose::word_count(&ch2));
    let leaks: Vec<(u32, &str)> = r.leaks.iter().map(|f| (f.chapter, f.snippet.as_str())).collect();
    assert_eq!(leaks, vec![(2, "(Word count: 180)")]);
    let names: Vec<&str> = r.unknown_names.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("\"Wren\""));
    assert!(r.title_mismatches.is_empty() && r.plan_missing.is_empty());
    assert_eq!(r.hard_failures.len(), 1);
}
