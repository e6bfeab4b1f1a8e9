//! The chapter's rules on prose and continuity, one planted defect each, and the simulated
//! model's mistakes: each rejected on the first attempt and gone on the re-ask.

use super::*;
use crate::kinds::{Cast, Character, Outline, OutlineChapter, Scene};
use crate::ledger::Ledger;
use scriptorium_proto::v1::{AgentKind, BookBrief};

fn brief() -> BookBrief {
    BookBrief {
        category: "fiction".into(),
        chapters: 3,
        characters: 3,
        words_per_chapter: 120,
        ..Default::default()
    }
}

fn cast() -> Cast {
    let c = |n: &str| Character { name: n.into(), role: "r".into(), ..Default::default() };
    Cast { characters: vec![c("Mara Vell"), c("Tobin Thorne"), c("Iona Quill")] }
}

fn outline() -> Outline {
    let ch = |n: u32| OutlineChapter {
        number: n,
        title: format!("The Gate {n}"),
        summary: "s".into(),
        scenes: (0..3)
            .map(|_| Scene {
                summary: "x".into(),
                characters: vec!["Mara Vell".into(), "Tobin Thorne".into()],
                ..Default::default()
            })
            .collect(),
    };
    Outline { summary: "s".into(), chapters: (1..=3).map(ch).collect() }
}

/// Three scenes of plain varied prose, 40 words each, the last scene's text replaced by `last`.
fn chapter(n: u32, last: Option<&str>) -> ChapterText {
    let scene = |i: u32| {
        let words: Vec<String> =
            (0..40).map(|w| crate::prose::text::letters(format!("c{n}x{i}w{w}"))).collect();
        ProseScene { heading: String::new(), text: words.join(" ") }
    };
    let mut scenes: Vec<ProseScene> = (1..=3).map(scene).collect();
    if let Some(l) = last {
        scenes[2].text = l.to_string();
    }
    ChapterText {
        number: n,
        scenes,
        summary: "Things happened.".into(),
        characters: vec!["Mara Vell".into()],
        ..Default::default()
    }
}

fn check(c: &ChapterText, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    crate::validate(AgentKind::Chapter, &serde_json::to_string(c).unwrap(), ctx)
}

fn with_prose(n: u32, extra: &str) -> ChapterText {
    let mut c = chapter(n, None);
    c.scenes[1].text = format!("{}\n\n{extra}", c.scenes[1].text);
    c
}

#[test]
fn a_given_title_must_be_the_outlines() {
    let (b, cast, o) = (brief(), cast(), outline());
    let ctx = Ctx { cast: Some(&cast), outline: Some(&o), chapter: 1, ..Ctx::new(&b) };
    let mut c = chapter(1, None);
    let v = check(&c, ctx).unwrap();
    assert_eq!(v["title"], "The Gate 1", "the engine fills a missing title");
    c.title = "the gate 1".into();
    assert!(check(&c, ctx).is_ok(), "case and punctuation do not count");
    c.title = "A Door".into();
    let rule = check(&c, ctx).unwrap_err().rule;
    assert!(rule.contains("differs from the outline's \"The Gate 1\""), "{rule}");
    // An empty summary takes the plan's; without a plan it is refused.
    let mut c = chapter(1, None);
    c.title = "The Gate 1".into();
    c.summary = " ".into();
    let v = check(&c, ctx).unwrap();
    assert_eq!(v["summary"].as_str(), Some(o.chapters[0].summary.as_str()));
    assert!(!o.chapters[0].summary.trim().is_empty());
    let bare = Ctx { cast: Some(&cast), chapter: 1, ..Ctx::new(&b) };
    assert!(check(&c, bare).unwrap_err().rule.contains("chapter 1 summary must not be empty"));
}

#[test]
fn each_prose_defect_is_rejected_with_its_rule() {
    let (b, cast, o) = (brief(), cast(), outline());
    let one = chapter(1, None);
    let earlier = [one.clone()];
    let mut dead = Ledger::new(Some(&cast));
    let mut death = chapter(1, None);
    death.continuity.deaths = vec!["Tobin Thorne".into()];
    dead.apply(1, &death);
    let ctx = Ctx {
        cast: Some(&cast),
        outline: Some(&o),
        chapter: 2,
        earlier: &earlier,
        ledger: Some(&dead),
        ..Ctx::new(&b)
    };
    assert!(check(&chapter(2, None), ctx).is_ok());
    let cases = [
        (
            with_prose(2, "\"Then we go tonight,\" Tobin Vell said, and nobody answered him."),
            "mixes the names of different characters",
        ),
        (
            with_prose(2, "\"Open the gate,\" Jorin Vask said, and the guards obeyed him at once."),
            "\"Jorin Vask\"",
        ),
        (
            with_prose(2, "\"You waited too long,\" Tobin Thorne said, and the room went still."),
            "Tobin Thorne died in chapter 1 but speaks or acts",
        ),
        // What is not story and leaves too little when it comes off is re-asked with its rule.
        (chapter(2, Some("Here is the chapter you asked for:")), "not story prose"),
        (chapter(2, Some("[Insert a tense scene at the docks here]")), "placeholder text"),
        (chapter(2, Some(&one.scenes[0].text)), "repeats paragraph 1 of chapter 1 word for word"),
        (chapter(2, Some(&chapter(2, None).scenes[0].text)), "repeats paragraph 1 word for word"),
        (chapter(2, Some("Short.")), "too short"),
    ];
    for (c, want) in cases {
        let rule = check(&c, ctx).unwrap_err().rule;
        assert!(rule.contains(want), "want {want:?} in {rule:?}");
        assert!(rule.starts_with("Fix these problems"), "{rule}");
    }
    // Tobin's death is not before chapter 1: there he still acts.
    let mut x = ctx;
    x.chapter = 1;
    let mut c =
        with_prose(1, "\"You waited too long,\" Tobin Thorne said, and the room went still.");
    c.number = 1;
    assert!(check(&c, Ctx { earlier: &[], ..x }).is_ok());
}

#[test]
fn the_continuity_report_names_the_living_cast_within_its_caps() {
    let (b, cast, o) = (brief(), cast(), outline());
    let mut ledger = Ledger::new(Some(&cast));
    let mut death = chapter(1, None);
    death.continuity.deaths = vec!["Iona Quill".into()];
    ledger.apply(1, &death);
    let ctx = Ctx {
        cast: Some(&cast),
        outline: Some(&o),
        chapter: 2,
        ledger: Some(&ledger),
        ..Ctx::new(&b)
    };
    let mut c = chapter(2, None);
    c.continuity = Continuity {
        deaths: vec!["tobin".into()],
        aliases: vec![Alias { name: "Mara".into(), alias: "the tide-reader".into() }],
        whereabouts: vec![Whereabouts {
            name: "Mara Vell".into(),
            place: "the docks".into(),
            carries: "nothing".into(),
        }],
        threads_opened: vec!["Who rang the bell?".into()],
        threads_closed: vec![],
    };
    let v = check(&c, ctx).unwrap();
    assert_eq!(v["continuity"]["deaths"][0], "Tobin Thorne", "names become the cast's");
    assert_eq!(v["continuity"]["aliases"][0]["name"], "Mara Vell");
    let bad = |f: &dyn Fn(&mut Continuity), want: &str| {
        let mut x = c.clone();
        f(&mut x.continuity);
        let rule = check(&x, ctx).unwrap_err().rule;
        assert!(rule.contains(want), "want {want:?} in {rule:?}");
    };
    bad(&|k| k.deaths = vec!["Jorin Vask".into()], "\"Jorin Vask\", who is not in the cast");
    bad(&|k| k.aliases[0].name = "Jorin".into(), "\"Jorin\", who is not in the cast");
    // Entries that contradict the book are left out of the report, and the chapter stands.
    let dropped = |f: &dyn Fn(&mut Continuity), list: &str| {
        let mut x = c.clone();
        f(&mut x.continuity);
        let v = check(&x, ctx).unwrap_or_else(|e| panic!("{list}: {}", e.rule));
        v["continuity"][list].as_array().unwrap().len()
    };
    assert_eq!(dropped(&|k| k.deaths = vec!["Iona Quill".into()], "deaths"), 0, "died before");
    assert_eq!(dropped(&|k| k.whereabouts[0].name = "Iona".into(), "whereabouts"), 0, "dead");
    assert_eq!(dropped(&|k| k.aliases[0].alias = "Tobin Thorne".into(), "aliases"), 0);
    assert_eq!(dropped(&|k| k.aliases[0].alias = "a b c d e f g".into(), "aliases"), 0);
    assert_eq!(dropped(&|k| k.whereabouts[0].place = "x".repeat(201), "whereabouts"), 0);
    assert_eq!(dropped(&|k| k.threads_opened = vec!["t".into(); 4], "threads_opened"), 3);
    assert_eq!(dropped(&|k| k.threads_opened = vec![" ".into(), "t".into()], "threads_opened"), 1);
    // The schema offers only the living.
    let schema = schema(ctx, None);
    let names = &schema["properties"]["continuity"]["properties"]["deaths"]["items"]["enum"];
    assert_eq!(names, &serde_json::json!(["Mara Vell", "Tobin Thorne"]));
    let example = example(ctx, None);
    assert_eq!(example["continuity"]["deaths"], serde_json::json!([]), "the example kills nobody");
    // A book without a cast keeps only threads.
    let none = Ctx { cast: None, ..ctx };
    let v = check(&c, none).unwrap();
    assert_eq!(v["continuity"]["deaths"], serde_json::json!([]));
    assert!(schema_of_none_has_threads_only(none));
}

fn schema_of_none_has_threads_only(ctx: Ctx<'_>) -> bool {
    let s = schema(ctx, None);
    let props = s["properties"]["continuity"]["properties"].as_object().unwrap();
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys == ["threads_closed", "threads_opened"]
}

#[cfg(feature = "sim")]
mod mistakes {
    use super::*;
    use crate::facts::line;
    use crate::mistake::{Mistake, Mistakes};
    use crate::sim;

    fn prompt(n: u32, o: &Outline, cast: &Cast, dead: &[&str], previous_end: &str) -> String {
        let plan = o.chapter(n).unwrap();
        let mut p = String::from("Facts:\n");
        p += &line("Category", "fiction");
        p += &line("Genre", "fantasy");
        p += &line("Words per chapter", 120);
        p += &line("Cast", cast.names().join("; "));
        p += &line("Chapter", n);
        p += &line("Scenes in this chapter", plan.scenes.len());
        p += &line("Chapter cast", "Mara Vell; Tobin Thorne; Iona Quill");
        if !dead.is_empty() {
            p += &line("Dead", dead.join("; "));
        }
        if !previous_end.is_empty() {
            p += &format!("The previous chapter ends with:\n{previous_end}\n");
        }
        p
    }

    fn last_paragraph(c: &ChapterText) -> String {
        c.scenes.last().unwrap().text.split("\n\n").last().unwrap().to_string()
    }

    #[test]
    fn each_mistake_is_rejected_and_the_reask_is_clean() {
        let (b, cast, o) = (brief(), cast(), outline());
        let all = Mistakes::new(&Mistake::ALL, 1.0);
        // Chapter 1 with resurrect enabled kills Iona (not Mara, the protagonist).
        let p1 = prompt(1, &o, &cast, &[], "");
        let text = sim::answer_mistaken(
            AgentKind::Chapter,
            &p1,
            3,
            false,
            Mistakes::new(&[Mistake::Resurrect], 1.0),
        );
        let ctx1 = Ctx { cast: Some(&cast), outline: Some(&o), chapter: 1, ..Ctx::new(&b) };
        let one: ChapterText =
            serde_json::from_value(crate::validate(AgentKind::Chapter, &text, ctx1).unwrap())
                .unwrap();
        assert_eq!(one.continuity.deaths, ["Iona Quill"]);
        let ledger = Ledger::build(Some(&cast), [&one]);
        let earlier = [one.clone()];
        let ctx2 = Ctx { chapter: 2, ledger: Some(&ledger), earlier: &earlier, ..ctx1 };
        let p2 = prompt(2, &o, &cast, &["Iona Quill"], &last_paragraph(&one));
        let want = [
            (Mistake::Rename, "mixes the names"),
            (Mistake::Resurrect, "Iona Quill died in chapter 1"),
            (Mistake::Repeat, "of chapter 1 word for word"),
            (Mistake::Meta, "not story prose"),
            (Mistake::Short, "too short"),
        ];
        for (m, rule) in want {
            let only = Mistakes::new(&[m], 1.0);
            assert_eq!(sim::mistake(AgentKind::Chapter, &p2, 3, only), Some(m));
            let text = sim::answer_mistaken(AgentKind::Chapter, &p2, 3, false, only);
            let checked = crate::validate(AgentKind::Chapter, &text, ctx2);
            if matches!(m, Mistake::Repeat | Mistake::Meta) {
                // An extra paragraph that is not story comes off: the chapter keeps its length.
                let v = checked.expect("cleaned, not re-asked");
                let prose = serde_json::from_value::<ChapterText>(v).unwrap().prose();
                assert!(!prose.contains("Here is the chapter"), "{m}: {prose}");
                let copied = prose::paragraphs(&prose)
                    .iter()
                    .any(|p| prose::paragraphs(&one.prose()).contains(p));
                assert!(!copied, "{m}: {prose}");
                continue;
            }
            let got = checked.unwrap_err().rule;
            assert!(got.contains(rule), "{m}: want {rule:?} in {got:?}");
            let reask = format!(
                "{p2}\nYour previous answer (attempt 1) was rejected: {got}. Correct exactly this and answer again.\n"
            );
            assert_eq!(sim::mistake(AgentKind::Chapter, &reask, 3, all), None);
            let text = sim::answer_mistaken(AgentKind::Chapter, &reask, 3, false, all);
            let fixed = crate::validate(AgentKind::Chapter, &text, ctx2);
            assert!(fixed.is_ok(), "{m}: the re-ask is refused: {fixed:?}");
        }
        // Other kinds, and a rate of 0, make none.
        assert_eq!(sim::mistake(AgentKind::Review, &p2, 3, all), None);
        assert_eq!(
            sim::mistake(AgentKind::Chapter, &p2, 3, Mistakes::new(&Mistake::ALL, 0.0)),
            None
        );
    }
}

#[test]
fn an_edit_changes_the_scenes_its_review_names_keeps_their_length_and_answers_for_them_only() {
    use crate::kinds::{Review, Scores};
    let (b, cast, o) = (brief(), cast(), outline());
    let mut dead = Ledger::new(Some(&cast));
    let mut death = chapter(1, None);
    death.continuity.deaths = vec!["Tobin Thorne".into()];
    dead.apply(1, &death);
    // A draft accepted before the death was known (drafted in parallel): scene 1 has the dead
    // speak. The review names scene 2 only.
    let speaks = "\"Hold the line,\" Tobin Thorne said, and the room went still.";
    let mut draft = chapter(2, None);
    draft.scenes[0].text = format!("{}\n\n{speaks}", draft.scenes[0].text);
    let review = Review {
        verdict: "revise".into(),
        scores: Scores::default(),
        issues: vec!["Scene 2: slow".into()],
        suggestions: vec![],
    };
    let ctx = Ctx {
        cast: Some(&cast),
        outline: Some(&o),
        chapter: 2,
        ledger: Some(&dead),
        draft: Some(&draft),
        review: Some(&review),
        ..Ctx::new(&b)
    };
    let edit = |scene2: &str| {
        let mut e = draft.clone();
        e.scenes[1].text = scene2.to_string();
        crate::validate(AgentKind::Edit, &serde_json::to_string(&e).unwrap(), ctx)
    };
    let revised: Vec<String> = (0..40).map(|w| format!("r{w}")).collect();
    assert!(edit(&revised.join(" ")).is_ok(), "the draft's own scene 1 is not the edit's to fix");
    let unchanged = draft.scenes[1].text.clone();
    assert!(edit(&unchanged).unwrap_err().rule.contains("must revise scene 2"));
    // Of two scenes named, one revised and one as it was: the revision stands, the other
    // scene stays the draft's.
    let both =
        Review { issues: vec!["Scene 2: slow".into(), "Scene 3: flat".into()], ..review.clone() };
    let ctx2 = Ctx { review: Some(&both), ..ctx };
    let mut half = draft.clone();
    half.scenes[1].text = revised.join(" ");
    let half = serde_json::to_string(&half).unwrap();
    assert!(crate::validate(AgentKind::Edit, &half, ctx2).is_ok());
    let none = serde_json::to_string(&draft).unwrap();
    let rule = crate::validate(AgentKind::Edit, &none, ctx2).unwrap_err().rule;
    assert!(rule.contains("must revise scene 2, 3"), "{rule}");
    let long: Vec<String> = (0..80).map(|w| format!("r{w}")).collect();
    let rule = edit(&long.join(" ")).unwrap_err().rule;
    assert!(rule.contains("scene 2 must stay about as long as the draft's (40 words)"), "{rule}");
    let rule = edit(&format!("{}\n\n{speaks}", revised.join(" "))).unwrap_err().rule;
    assert!(
        rule.contains("Tobin Thorne died in chapter 1"),
        "in a revised scene it counts: {rule}"
    );
    // A revision that retells scene 3 (left as it was) makes scene 3's paragraph a copy of it:
    // the edit made the copy, so it counts although the copy sits in an unrevised scene.
    let mut words: Vec<String> =
        draft.scenes[2].text.split_whitespace().map(str::to_string).collect();
    words[..3].clone_from_slice(&["Rain".to_string(), "fell".to_string(), "again".to_string()]);
    let rule = edit(&words.join(" ")).unwrap_err().rule;
    assert!(rule.contains("near copy of paragraph"), "{rule}");
}
