//! Prose that is only story (issue 22): the lines the real small model left in its books, one
//! rule each, caught twice by the one implementation in `scriptorium_contracts::prose`: by
//! validation (cleaned off when the chapter still meets its length without them, else the
//! answer is refused with the rule) and by the quality report `scriptorium check` prints, with
//! chapter, paragraph and text. The planning documents' defects (a role holding a URL, a
//! logline that is the title, chapter titles repeated, a name that is none) are refused at
//! their step and reported by `check` from `book.json`.

use scriptorium_contracts::{
    Cast, ChapterText, Character, Ctx, Ledger, Outline, OutlineChapter, ProseScene, Scene, validate,
};
use scriptorium_coordinator::assembly;
use scriptorium_coordinator::quality::{QualityReport, render_text};
use scriptorium_coordinator::record::{BookRecord, StepStatus};
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde_json::{Value, json};

const TARGET: u32 = 300;

/// Chapter 1's opening paragraph.
const FIRST: &str = "Elara stood at the edge of the harbour and watched the salt boats come in \
                     from the grey sea, their sails torn by the long winter storms that had kept \
                     the town hungry for weeks.";
/// A paragraph of the shape the real book's chapter 1 opened with, a page after the one it
/// retells: most of its 5-word sequences are those of chapter 2's opening paragraph.
const NEAR: &str = "Tobin Thorne rowed out past the breakwater before the bells had rung for \
                    morning, and nobody on the quay called after him, though his sister watched \
                    from the harbour wall.";

/// Each rule with lines from the real books (SmolLM2-135M, `examples/fantasy.toml` and
/// `examples/fantasy-8.toml`), and the words its rejection uses.
fn fixtures() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("instruction_echo", "the scene's prose.", "repeats the request's instructions"),
        (
            "instruction_echo",
            "Write only the story: no title, notes or comments.",
            "repeats the request's instructions",
        ),
        ("task_talk", "This JSON object has a list of 5 sentences.", "talks about the task"),
        (
            "task_talk",
            "Here's an example of how you could revise this json file to fit your needs.",
            "talks about the task",
        ),
        (
            "task_talk",
            "Your answer can contain any JSON object except the ones above.",
            "talks about the task",
        ),
        ("task_talk", "What is a JSON object?", "talks about the task"),
        ("machine_text", "text:'soul_219544676}'", "machine text"),
        ("machine_text", "text:<![CDATARIA_16849-CACDA-4456]>", "machine text (markup)"),
        (
            "machine_text",
            "She left at https://gitter.com/Lilun//ElaraTheUnbounded_https:",
            "machine text (a URL)",
        ),
        ("machine_text", "content}", "machine text"),
        ("machine_text", "title : `The Salt Harbour`", "machine text (a key: value line)"),
        ("machine_text", "summary :", "machine text (a key: value line)"),
        ("near_duplicate_paragraph", NEAR, "is a near copy of paragraph 1 ("),
    ]
}

fn brief() -> BookBrief {
    BookBrief {
        title: "The Salt Harbour".into(),
        category: "fiction".into(),
        chapters: 3,
        characters: 2,
        words_per_chapter: TARGET,
        review_mode: "human".into(),
        author: "Test".into(),
        ..Default::default()
    }
}

fn cast() -> Cast {
    let c = |n: &str| Character { name: n.into(), role: "r".into(), ..Default::default() };
    Cast { characters: vec![c("Elara Vance"), c("Tobin Thorne")] }
}

fn outline() -> Outline {
    let chapter = |n: u32| OutlineChapter {
        number: n,
        title: format!("Harbour {}", ["One", "Two", "Three"][n as usize - 1]),
        summary: "s".into(),
        scenes: (0..3).map(|_| Scene { summary: "x".into(), ..Default::default() }).collect(),
    };
    Outline { summary: "s".into(), chapters: (1..=3).map(chapter).collect() }
}

/// Distinct filler words without digits (`w` and letters `k` to `t` for digits).
fn word(n: u32, s: usize, w: usize) -> String {
    format!("c{n}x{s}w{w}")
        .chars()
        .map(|c| c.to_digit(10).map_or(c, |d| (b'k' + d as u8) as char))
        .collect()
}

/// Chapter `n`: scene 1 opens with [`FIRST`]; each scene about 100 words in two paragraphs;
/// scene 3's text `last` when given (too short without it), and `extra` appended to scene 2.
fn chapter(n: u32, last: Option<&str>, extra: Option<&str>) -> ChapterText {
    let filler = |s: usize, from: usize, k: usize| -> String {
        (from..from + k).map(|w| word(n, s, w)).collect::<Vec<_>>().join(" ")
    };
    let mut scenes: Vec<ProseScene> = (0..3)
        .map(|s| {
            let opening = match n {
                1 => FIRST,
                2 => {
                    "Tobin Thorne rowed out past the breakwater before the bells had rung for \
                      morning, and nobody on the quay called after him."
                }
                _ => {
                    "By the third night the harbour lamps had all gone out, one after another, \
                      and the town slept without them."
                }
            };
            let text = if s == 0 {
                format!("{opening}\n\n{}", filler(s, 0, 66))
            } else {
                format!("{}\n\n{}", filler(s, 0, 50), filler(s, 50, 50))
            };
            ProseScene { heading: format!("Scene {}", s + 1), text }
        })
        .collect();
    if let Some(l) = last {
        scenes[2].text = l.to_string();
    }
    if let Some(e) = extra {
        scenes[1].text = format!("{}\n\n{e}", scenes[1].text);
    }
    ChapterText {
        number: n,
        title: outline().chapters[n as usize - 1].title.clone(),
        scenes,
        summary: format!("Chapter {n} happens."),
        characters: vec!["Elara Vance".into()],
        ..Default::default()
    }
}

fn written_book(two: &ChapterText, out: &std::path::Path, docs: &[(&str, Value)]) -> QualityReport {
    let mut rec = BookRecord::new("salt".into(), brief(), 0);
    rec.title = "The Salt Harbour".into();
    let mut outputs = vec![
        (
            "concept",
            json!({"title": "The Salt Harbour", "logline": "A tide-reader sells her last tide to save her brother.", "description": "d"}),
        ),
        ("characters", serde_json::to_value(cast()).unwrap()),
        ("outline", serde_json::to_value(outline()).unwrap()),
        ("chapter-01", serde_json::to_value(chapter(1, None, None)).unwrap()),
        ("chapter-02", serde_json::to_value(two).unwrap()),
        ("chapter-03", serde_json::to_value(chapter(3, None, None)).unwrap()),
    ];
    outputs.extend(docs.iter().cloned());
    for (id, v) in outputs {
        rec.outputs.insert(id.into(), v.into());
    }
    for s in rec.steps.values_mut() {
        s.status = StepStatus::Done;
    }
    let dir = assembly::assemble(&rec, out).unwrap();
    QualityReport::from_book_dir(&dir).unwrap()
}

#[test]
fn each_line_of_the_real_books_is_refused_or_cleaned_by_validation_and_failed_by_check() {
    let (b, cast, outline) = (brief(), cast(), outline());
    let one = chapter(1, None, None);
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
    let accepted =
        |c: &ChapterText| validate(AgentKind::Chapter, &serde_json::to_string(c).unwrap(), ctx);
    let own = |last: Option<&str>, extra: Option<&str>| chapter(2, last, extra);
    let clean = own(None, None);
    assert!(accepted(&clean).is_ok(), "{:?}", accepted(&clean));
    let tmp = tempfile::tempdir().unwrap();
    let report = written_book(&clean, &tmp.path().join("clean"), &[]);
    assert!(report.passed(), "{}", render_text(&report));

    for (i, (rule, line, rejected)) in fixtures().into_iter().enumerate() {
        // Too short without it: refused with the rule, so re-asked.
        let near = rule == "near_duplicate_paragraph";
        let bad = own(Some(line), None);
        let why = accepted(&bad).expect_err(line).rule;
        assert!(why.contains(rejected), "{line}: want {rejected:?} in {why:?}");
        assert!(
            !why.contains(line.trim_end_matches('.')) || near,
            "{line}: the rule quotes it back: {why}"
        );

        // Long enough without it: it comes off, the rest stays word for word.
        if !near {
            let v = accepted(&own(None, Some(line))).unwrap_or_else(|e| panic!("{line}: {e}"));
            let kept = serde_json::from_value::<ChapterText>(v).unwrap();
            assert_eq!(kept.prose(), clean.prose(), "{line}: cleaned to the story");
        }

        // Check fails a book written with it, naming chapter, paragraph and text.
        let report = written_book(&bad, &tmp.path().join(format!("book{i}")), &[]);
        let text = render_text(&report);
        let hard: Vec<(&str, Option<u32>)> =
            report.hard_failures.iter().map(|f| (f.rule.as_str(), f.chapter)).collect();
        assert!(hard.contains(&(rule, Some(2))), "{line}: {hard:?}\n{text}");
        let found = [&report.not_story, &report.near_duplicates]
            .into_iter()
            .flatten()
            .find(|f| f.rule.name() == rule)
            .unwrap_or_else(|| panic!("{line}: {text}"));
        let p = found.paragraph.expect("a paragraph");
        assert!(text.contains(&format!("chapter 2 paragraph {p}")), "{line}: {text}");
        let shown = found.snippet.chars().take(20).collect::<String>();
        assert!(text.contains(&shown), "{line}: {shown:?} not in\n{text}");
        assert!(!report.passed());
    }
}

#[test]
fn the_planning_documents_defects_are_refused_at_their_step_and_failed_by_check() {
    let b = brief();
    let ctx = Ctx::new(&b);
    let concept = json!({"logline": "The Salt Harbour.", "description": "d"});
    let why = validate(AgentKind::Concept, &concept.to_string(), ctx).unwrap_err().rule;
    assert!(why.contains("only repeats the book's title"), "{why}");

    let role = "heroes\tadzirak-128974565_https://github.com/adzirak/heroes";
    let named = |name: &str, role: &str| {
        json!({"characters": [
            {"name": "Elara Vance", "role": "hero"}, {"name": name, "role": role}
        ]})
    };
    let v = validate(AgentKind::Characters, &named("Tobin Thorne", role).to_string(), ctx).unwrap();
    assert_eq!(v["characters"][1]["role"], "heroes", "the words before the machine text stay");
    let url_only = named("Tobin Thorne", "https://github.com/adzirak/heroes");
    let why = validate(AgentKind::Characters, &url_only.to_string(), ctx).unwrap_err().rule;
    assert!(why.contains("field characters[1].role is not story"), "{why}");
    let why =
        validate(AgentKind::Characters, &named("Elara the most skilled mn", "r").to_string(), ctx)
            .unwrap_err()
            .rule;
    assert!(why.contains("character 2 name is not a person's name"), "{why}");

    let cast = cast();
    let ctx = Ctx { cast: Some(&cast), ..ctx };
    let mut o = outline();
    o.chapters[2].title = "Harbour Two".into();
    let why =
        validate(AgentKind::Outline, &serde_json::to_string(&o).unwrap(), ctx).unwrap_err().rule;
    assert!(why.contains("chapter 3's title repeats chapter 2's"), "{why}");

    // A book written before these rules, with all four: check fails it and names each field.
    let tmp = tempfile::tempdir().unwrap();
    let docs = [
        (
            "concept",
            json!({"title": "The Salt Harbour", "logline": "The Salt Harbour", "description": "d"}),
        ),
        ("characters", named("Elara the most skilled mn", role)),
    ];
    let mut two = chapter(2, None, None);
    two.title = "Harbour One".into();
    let report = written_book(&two, &tmp.path().join("old"), &docs);
    let text = render_text(&report);
    let rules: Vec<&str> = report.hard_failures.iter().map(|f| f.rule.as_str()).collect();
    for want in ["logline_is_title", "not_a_name", "machine_text", "repeated_title"] {
        assert!(rules.contains(&want), "{want}: {rules:?}\n{text}");
    }
    assert!(text.contains("cast[1].role: cast[1].role is not story"), "{text}");
    assert!(text.contains("concept.logline"), "{text}");
}

#[test]
fn a_book_directory_without_any_chapter_fails_check() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("chapters")).unwrap();
    let report = QualityReport::from_book_dir(tmp.path()).unwrap();
    assert!(!report.passed());
    assert_eq!(report.hard_failures[0].rule, "no_chapters");
    assert!(render_text(&report).contains("the book has no chapter at all"));
}
