//! The context pieces of each kind, and how they condense to fit a budget.

use super::*;

/// The registry's kind of `task`.
fn spec(task: &StepTask) -> &'static dyn scriptorium_contracts::Kind {
    scriptorium_contracts::kinds::lookup(task.kind).expect("an agent kind")
}
use crate::prompts::Prompts;
use scriptorium_contracts::facts::Facts;
use scriptorium_contracts::sim;
use scriptorium_contracts::tokens::estimate_tokens;
use scriptorium_proto::v1::{BookBrief, StepContext};

/// A task of `kind` for chapter `chapter` of an 8-chapter book, its context made by the
/// simulated model.
fn book_task(kind: AgentKind, chapter: u32) -> StepTask {
    let brief = BookBrief {
        title: "The Salt Harbour".into(),
        category: "fiction".into(),
        genre: "fantasy".into(),
        language: "English".into(),
        description: "A drowned port city where tides are bought and sold.".into(),
        chapters: 8,
        characters: 3,
        words_per_chapter: 900,
        ..Default::default()
    };
    let concept = sim::answer(AgentKind::Concept, "- Title: The Salt Harbour", 1, false);
    let cast_json = sim::answer(AgentKind::Characters, "- Characters: 3", 1, false);
    let cast: Cast = serde_json::from_str(&cast_json).unwrap();
    let names: Vec<&str> = cast.characters.iter().map(|c| c.name.as_str()).collect();
    let world = sim::answer(AgentKind::World, "- Category: fiction", 1, false);
    // The documents as the coordinator accepts (and completes) them.
    let accepted = |kind: AgentKind, text: &str, outline: Option<&Outline>, chapter: u32| {
        let ctx = Ctx { cast: Some(&cast), outline, chapter, ..Ctx::new(&brief) };
        scriptorium_contracts::validate(kind, text, ctx).unwrap().to_string()
    };
    let outline_json = accepted(
        AgentKind::Outline,
        &sim::answer(
            AgentKind::Outline,
            &format!("- Chapters: 8\n- Cast: {}", names.join("; ")),
            1,
            false,
        ),
        None,
        0,
    );
    let outline: Outline = serde_json::from_str(&outline_json).unwrap();
    let plan = &outline.chapters[chapter as usize - 1];
    let facts = format!(
        "- Chapter: {chapter}\n- Scenes in this chapter: {}\n- Words per chapter: 900\n- Cast: {}",
        plan.scenes.len(),
        names.join("; ")
    );
    let mut ctx = StepContext {
        chapter,
        concept_json: concept,
        cast_json,
        world_json: world,
        outline_json: outline_json.clone(),
        previous_summaries: outline.chapters[..chapter as usize - 1]
            .iter()
            .map(|c| c.summary.clone())
            .collect(),
        ..Default::default()
    };
    if matches!(kind, AgentKind::Review | AgentKind::Edit) {
        let draft = sim::answer(AgentKind::Chapter, &facts, 1, false);
        ctx.draft_json = accepted(AgentKind::Chapter, &draft, Some(&outline), chapter);
        ctx.review_json = sim::answer(AgentKind::Review, &facts, 1, false);
    }
    StepTask { kind: kind as i32, brief: Some(brief), context: Some(ctx), ..Default::default() }
}

const KEPT: &[&str] = &[
    "chapters",
    "characters",
    "words per chapter",
    "cast",
    "chapter",
    "chapter title",
    "scenes in this chapter",
    "chapter cast",
];

#[test]
fn prompts_fit_shrinking_budgets_and_keep_their_facts() {
    let prompts = Prompts::load(None).unwrap();
    for kind in [AgentKind::Outline, AgentKind::Chapter, AgentKind::Review, AgentKind::Edit] {
        let task = book_task(kind, 8);
        let full = prompts.render_fitted(&task, spec(&task), None, None).unwrap();
        let facts = Facts::parse(&full.user);
        let (mut fitted_once, mut overflowed) = (false, false);
        for share in [100, 90, 75, 60, 50, 40, 30, 20] {
            let budget = full.tokens * share / 100;
            match prompts.render_fitted(&task, spec(&task), None, Some(budget)) {
                Ok(r) => {
                    assert!(!overflowed, "{kind:?} {share}%: fits below a budget that did not");
                    fitted_once |= share < 100;
                    assert!(r.tokens <= budget, "{kind:?} {share}%: {} > {budget}", r.tokens);
                    let estimate = estimate_tokens(&r.system) + estimate_tokens(&r.user);
                    assert_eq!(r.tokens, estimate);
                    let got = Facts::parse(&r.user);
                    for k in KEPT {
                        assert_eq!(got.get(k), facts.get(k), "{kind:?} {share}%: fact {k}");
                    }
                    assert!(r.user.contains("Answer with one JSON object"), "{kind:?}");
                }
                Err(o) => {
                    assert!(o.need > budget && share < 100, "{kind:?} {share}%: {o}");
                    overflowed = true;
                }
            }
        }
        // An edit's draft is what it rewrites: never condensed, split into parts instead.
        assert!(fitted_once || kind == AgentKind::Edit, "{kind:?} never condensed");
    }
}

#[test]
fn oldest_summaries_go_first_then_the_world_and_the_latest_stay_longest() {
    let prompts = Prompts::load(None).unwrap();
    let task = book_task(AgentKind::Chapter, 8);
    let full = prompts.render_fitted(&task, spec(&task), None, None).unwrap();
    assert!(full.user.contains("Chapter 1: ") && full.user.contains("Chapter 7: "));
    let mut saw_partial = false;
    for budget in (full.tokens / 3..full.tokens).rev().step_by(5) {
        let Ok(r) = prompts.render_fitted(&task, spec(&task), None, Some(budget)) else {
            break;
        };
        let has = |n: u32| r.user.contains(&format!("\nChapter {n}: "));
        // Summaries leave oldest first: a kept summary means every later one is kept.
        for n in 1..7 {
            assert!(!has(n) || has(n + 1), "budget {budget}: chapter {n} kept, {} not", n + 1);
        }
        saw_partial |= !has(1) && has(7);
        // The latest summary outlives the world.
        if !has(7) {
            assert!(r.user.contains("World:\n(left out"), "budget {budget}: world kept");
        }
        assert!(r.user.contains("This chapter's plan:\nChapter 8: "));
    }
    assert!(saw_partial, "some budget drops the oldest summaries only");
}

#[test]
fn a_review_is_shown_the_worlds_gist_and_a_chapter_all_of_it() {
    let prompts = Prompts::load(None).unwrap();
    let sections = serde_json::json!({"sections": {
        "geography": "A drowned port of canals. Its tides are bought and sold.",
        "magic": "Tide-readers hear the sea. The guild licenses them.",
    }});
    let task = |kind| {
        let mut t = book_task(kind, 2);
        t.context.as_mut().unwrap().world_json = sections.to_string();
        t
    };
    let world = |kind| {
        let user = prompts.render_fitted(&task(kind), spec(&task(kind)), None, None).unwrap().user;
        let at = user.find("World:\n").expect("a world section") + 7;
        user[at..].lines().take_while(|l| l.starts_with("* ")).collect::<Vec<_>>().join("\n")
    };
    let (full, gist) = (world(AgentKind::Chapter), world(AgentKind::Review));
    assert!(!gist.is_empty() && gist.len() < full.len(), "{gist}\n---\n{full}");
    let docs = Docs::of(&task(AgentKind::Review));
    for (key, section) in &docs.world.as_ref().unwrap().sections {
        let line = format!("* {key}: {}", first_sentence(section));
        assert!(gist.contains(&line) && full.contains(&format!("* {key}: {section}")));
    }
}

#[test]
fn edit_targets_are_the_scenes_the_review_names() {
    let task = book_task(AgentKind::Edit, 2);
    let mut docs = Docs::of(&task);
    let n = docs.draft.as_ref().unwrap().scenes.len() as u32;
    let all: Vec<u32> = (1..=n).collect();
    let review = docs.review.as_mut().unwrap();
    review.issues = vec!["Scene 2: slow".into()];
    review.suggestions = vec!["scene 3: cut the bell; see Scene 2".into()];
    assert_eq!(edit_targets(&docs), [2, 3]);
    docs.review.as_mut().unwrap().suggestions.push("Tighten everything".into());
    assert_eq!(edit_targets(&docs), all, "an item naming no scene concerns them all");
    let review = docs.review.as_mut().unwrap();
    review.issues.clear();
    review.suggestions.clear();
    assert_eq!(edit_targets(&docs), all);
}

#[test]
fn parts_show_their_scenes_and_facts() {
    let prompts = Prompts::load(None).unwrap();
    let edit = book_task(AgentKind::Edit, 2);
    let part = Part { scenes: vec![2], ..Default::default() };
    let r = prompts.render_fitted(&edit, spec(&edit), Some(&part), None).unwrap();
    let draft = &r.user[r.user.find("Draft:").unwrap()..];
    let doc = scriptorium_contracts::extract::json_object(draft).unwrap();
    let numbers: Vec<u64> =
        doc["scenes"].as_array().unwrap().iter().map(|s| s["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [2]);
    assert!(r.user.contains("Scenes not shown (1, 3"), "{}", r.user);

    let chapter = book_task(AgentKind::Chapter, 2);
    let part = Part {
        scenes: vec![3, 4],
        words: 400,
        so_far: "Ann found the key.".into(),
        last_lines: "The door closed.".into(),
    };
    let r = prompts.render_fitted(&chapter, spec(&chapter), Some(&part), None).unwrap();
    let f = Facts::parse(&r.user);
    assert_eq!(f.num("scenes in this part"), Some(2));
    assert_eq!(f.num("first scene of this part"), Some(3));
    assert_eq!(f.num("words in this part"), Some(400));
    assert!(r.user.contains("only scenes 3 to 4"), "{}", r.user);
    assert!(r.user.contains("The chapter so far: Ann found the key."));
    assert!(r.user.contains("It ends with: \"The door closed.\""));
}

#[test]
fn the_sentences_the_worker_adds_are_instructions_the_prose_rules_know() {
    // A model that copies them into its prose copies its instructions: the echo rule must see
    // them (`scriptorium_contracts::prose::echo::WORKER_SENTENCES` keeps them in step).
    let echo = scriptorium_contracts::prose::echo::instructions();
    let part = Part {
        scenes: vec![2, 3],
        words: 450,
        so_far: "Mara reached the harbour.".into(),
        last_lines: "The bell rang twice.".into(),
    };
    let text = part_text(AgentKind::Chapter, Some(&part), 4);
    let task = StepTask {
        attempt: 2,
        context: Some(StepContext {
            feedback: "chapter 2 is too short".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let fb = feedback(&task);
    let lines: Vec<&str> =
        text.lines().chain(fb.lines()).filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 4, "{lines:?}");
    for line in lines {
        // The story context a line quotes is no instruction; the words around it are.
        let own = line.split(['"', ':']).next().unwrap_or(line);
        let own = if own.split_whitespace().count() >= 2 { own } else { line };
        assert!(echo.echoes(own), "not in the instruction corpus: {line:?}");
    }
}
