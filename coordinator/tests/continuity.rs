//! Continuity through the book actor's messages, the test playing the worker with the simulated
//! model on the rendered prompts: chapters drafted in order, each carrying the ledger and the
//! previous chapter's closing lines; a prose rule broken and re-asked; a needless edit skipped;
//! a failed edit leaving the draft standing; and the all-at-once drafting a brief may ask for.

use scriptorium_contracts::mistake::{Mistake, Mistakes};
use scriptorium_contracts::{ChapterText, Ledger};
mod support;

use scriptorium_coordinator::record::{Status, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, brief, client};
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::{AgentKind, StepTask};
use scriptorium_proto::{Bus, Source};
use support::{answer, next_task, record_where, start_with, user};

const BRIEF: &str = r#"
title = "Test Book"
category = "fiction"
description = "A test."
chapters = 3
characters = 3
worldbuilding = false
words_per_chapter = 300
"#;

async fn start() -> (Bus, CoordinatorHandle, tempfile::TempDir) {
    start_with(CoordinatorConfig { max_attempts: 3, ..Default::default() }).await
}

/// The simulated model's answer to `task`'s rendered prompt, with `mistakes` on.
fn sim(task: &StepTask, mistakes: Mistakes) -> String {
    scriptorium_contracts::sim::answer_mistaken(task.kind(), &user(task), 1, false, mistakes)
}

/// Streams of every kind's steps, and the book submitted.
struct Book {
    bus: Bus,
    id: String,
    concepts: Source,
    casts: Source,
    outlines: Source,
    chapters: Source,
    reviews: Source,
}

async fn submit(bus: &Bus, text: &str) -> Book {
    let source = |k| async move { bus.source(Queue::Steps(k), 1).await.unwrap() };
    let mut b = Book {
        bus: bus.clone(),
        concepts: source(AgentKind::Concept).await,
        casts: source(AgentKind::Characters).await,
        outlines: source(AgentKind::Outline).await,
        chapters: source(AgentKind::Chapter).await,
        reviews: source(AgentKind::Review).await,
        id: String::new(),
    };
    b.id = client::submit(bus, brief::parse(text).unwrap()).await.unwrap();
    for kind in [AgentKind::Concept, AgentKind::Characters, AgentKind::Outline] {
        let src = match kind {
            AgentKind::Concept => &mut b.concepts,
            AgentKind::Characters => &mut b.casts,
            _ => &mut b.outlines,
        };
        let t = next_task(src).await;
        answer(bus, &t, sim(&t, Mistakes::default())).await;
    }
    b
}

#[tokio::test]
async fn chapters_are_drafted_in_order_with_the_ledger_and_the_closing_lines_before_them() {
    let (bus, _h, _out) = start().await;
    let mut b = submit(&bus, BRIEF).await;
    let resurrect = Mistakes::new(&[Mistake::Resurrect], 1.0);

    let one = next_task(&mut b.chapters).await;
    assert_eq!(one.step_id, "chapter-01");
    let rec =
        record_where(&bus, &b.id, |r| r.steps["chapter-01"].status == StepStatus::Running).await;
    assert_eq!(rec.steps["chapter-02"].status, StepStatus::Pending, "chapter 2 waits");
    let ctx = one.context.clone().unwrap();
    assert_eq!(ctx.previous_last_lines, "");
    assert!(user(&one).contains("ends with:\n(this is the first chapter)"));
    // Chapter 1 kills a character (the setup of the resurrect mistake).
    answer(&bus, &one, sim(&one, resurrect)).await;

    let two = next_task(&mut b.chapters).await;
    assert_eq!(two.step_id, "chapter-02");
    let review = next_task(&mut b.reviews).await;
    assert_eq!(review.step_id, "review-01", "chapter 1's review runs beside chapter 2");
    let rec = client::load(&bus, &b.id).await.unwrap().unwrap();
    let draft: ChapterText =
        serde_json::from_value(rec_output(&bus, &b.id, "chapter-01").await).unwrap();
    let dead = draft.continuity.deaths.first().cloned().expect("chapter 1 reports a death");
    let ctx = two.context.clone().unwrap();
    let ledger: Ledger = serde_json::from_str(&ctx.ledger_json).unwrap();
    assert!(ledger.is_dead(&dead, 2), "{}", ctx.ledger_json);
    let last = draft.scenes.last().unwrap().text.rsplit("\n\n").next().unwrap();
    assert_eq!(ctx.previous_last_lines, last);
    assert_eq!(
        ctx.previous_summaries,
        std::slice::from_ref(&draft.summary),
        "the written summary, not the plan"
    );
    assert!(user(&two).contains(&format!("{dead}: DEAD since chapter 1")));
    assert_eq!(rec.steps["chapter-03"].status, StepStatus::Pending);
    let review_ctx = review.context.clone().unwrap();
    assert!(!review_ctx.ledger_json.is_empty(), "reviews get the ledger");

    // Chapter 2's first attempt has the dead speak; the rule comes back as feedback, and the
    // re-ask (which makes no mistake) is accepted.
    answer(&bus, &two, sim(&two, resurrect)).await;
    let again = next_task(&mut b.chapters).await;
    assert_eq!((again.step_id.as_str(), again.attempt), ("chapter-02", 2));
    let feedback = again.context.clone().unwrap().feedback;
    assert!(
        feedback.contains(&format!("{dead} died in chapter 1 but speaks or acts")),
        "{feedback}"
    );
    assert!(user(&again).contains("was rejected"));
    answer(&bus, &again, sim(&again, resurrect)).await;
    let three = next_task(&mut b.chapters).await;
    assert_eq!(three.step_id, "chapter-03");
    let rec = record_where(&bus, &b.id, |r| r.steps["chapter-02"].status == StepStatus::Done).await;
    assert_eq!(rec.steps["chapter-02"].rejections.len(), 1);
}

async fn rec_output(bus: &Bus, id: &str, step: &str) -> serde_json::Value {
    use scriptorium_proto::transport::Bucket;
    let key = scriptorium_coordinator::record::output_key(id, step);
    let bytes = bus.kv_get(Bucket::Outputs, &key).await.unwrap().expect("output stored");
    serde_json::from_slice(&bytes).unwrap()
}

/// A review answer: `verdict`, every score `score`, and `issues`.
fn review_json(verdict: &str, score: u32, issues: &[&str]) -> String {
    let names = ["consistency", "clarity", "plot_holes", "redundancy", "flow", "engagement"];
    let scores: serde_json::Map<String, serde_json::Value> =
        names.iter().map(|n| (n.to_string(), score.into())).collect();
    serde_json::json!({"verdict": verdict, "scores": scores, "issues": issues, "suggestions": []})
        .to_string()
}

#[tokio::test]
async fn an_edit_is_skipped_when_its_review_accepts_with_no_issue() {
    let (bus, _h, _out) = start().await;
    let mut b = submit(&bus, BRIEF).await;
    let mut edits = bus.source(Queue::Steps(AgentKind::Edit), 1).await.unwrap();
    let one = next_task(&mut b.chapters).await;
    answer(&bus, &one, sim(&one, Mistakes::default())).await;
    let review = next_task(&mut b.reviews).await;
    answer(&bus, &review, review_json("accept", 8, &[])).await;
    let rec = record_where(&bus, &b.id, |r| r.steps["edit-01"].status == StepStatus::Done).await;
    assert!(rec.steps["edit-01"].skipped);
    assert_eq!(rec.steps["edit-01"].attempt, 0, "no model call");
    assert_eq!(
        rec_output(&bus, &b.id, "edit-01").await,
        rec_output(&bus, &b.id, "chapter-01").await
    );

    // A review that accepts but names an issue still gets its edit.
    let two = next_task(&mut b.chapters).await;
    answer(&bus, &two, sim(&two, Mistakes::default())).await;
    let review = next_task(&mut b.reviews).await;
    answer(&bus, &review, review_json("accept", 8, &["Scene 1: slow"])).await;
    let edit = next_task(&mut edits).await;
    assert_eq!(edit.step_id, "edit-02");
    let rec = client::load(&bus, &b.id).await.unwrap().unwrap();
    assert!(!rec.steps["edit-02"].skipped);
    assert_ne!(rec.state, Status::Failed);
}

/// Chapter 1 drafted, its review asking for a revision, and each of the edit's `tries`
/// attempts refused (not JSON of the edit's shape).
async fn fail_the_first_edit(bus: &Bus, b: &mut Book, tries: u32) {
    let mut edits = bus.source(Queue::Steps(AgentKind::Edit), 1).await.unwrap();
    let one = next_task(&mut b.chapters).await;
    answer(bus, &one, sim(&one, Mistakes::default())).await;
    let review = next_task(&mut b.reviews).await;
    answer(bus, &review, review_json("revise", 5, &["Scene 1: slow"])).await;
    for attempt in 1..=tries {
        let edit = next_task(&mut edits).await;
        assert_eq!((edit.step_id.as_str(), edit.attempt), ("edit-01", attempt));
        answer(bus, &edit, "{\"scenes\": []}".into()).await;
    }
}

#[tokio::test]
async fn an_edit_refused_at_every_attempt_leaves_the_accepted_draft_standing() {
    let (bus, _h, _out) = start().await;
    let mut b = submit(&bus, BRIEF).await;
    // Every attempt of the edit is refused; an edit has its own limit, below the steps'
    // max_attempts (3 here).
    let tries = CoordinatorConfig::default().edit_attempts;
    assert!(tries < 3);
    fail_the_first_edit(&bus, &mut b, tries).await;
    let rec = record_where(&bus, &b.id, |r| r.steps["edit-01"].status == StepStatus::Done).await;
    let step = &rec.steps["edit-01"];
    let after = format!("edit-01 failed after {tries} attempts");
    assert!(step.kept_draft.contains(&after), "{}", step.kept_draft);
    assert_eq!(step.rejections.len(), tries as usize);
    assert!(!step.skipped, "the model was asked");
    assert_eq!(
        rec_output(&bus, &b.id, "edit-01").await,
        rec_output(&bus, &b.id, "chapter-01").await,
        "the draft is the chapter"
    );
    assert_ne!(rec.state, Status::Failed, "{:?}", rec.failure);
    // The book goes on: chapter 2 is drafted.
    assert_eq!(next_task(&mut b.chapters).await.step_id, "chapter-02");
}

#[tokio::test]
async fn after_max_failed_edits_a_books_later_edits_are_skipped_and_say_why() {
    let cfg = CoordinatorConfig { max_failed_edits: 1, ..Default::default() };
    let (bus, _h, _out) = start_with(cfg).await;
    let mut b = submit(&bus, BRIEF).await;
    fail_the_first_edit(&bus, &mut b, CoordinatorConfig::default().edit_attempts).await;
    // Chapter 2's review asks for a revision too; the model failed the one edit allowed.
    let two = next_task(&mut b.chapters).await;
    assert_eq!(two.step_id, "chapter-02");
    answer(&bus, &two, sim(&two, Mistakes::default())).await;
    let review = next_task(&mut b.reviews).await;
    answer(&bus, &review, review_json("revise", 4, &["Scene 2: flat"])).await;
    let rec = record_where(&bus, &b.id, |r| r.steps["edit-02"].status == StepStatus::Done).await;
    let step = &rec.steps["edit-02"];
    assert!(step.skipped && step.attempt == 0, "no model call: {step:?}");
    assert!(step.kept_draft.contains("1 earlier edits"), "{}", step.kept_draft);
    assert_eq!(
        rec_output(&bus, &b.id, "edit-02").await,
        rec_output(&bus, &b.id, "chapter-02").await,
        "the draft is the chapter"
    );
    assert!(rec.steps["edit-01"].kept_draft.contains("failed after"), "the first was asked");
    assert_eq!(next_task(&mut b.chapters).await.step_id, "chapter-03");
}

#[tokio::test]
async fn parallel_drafting_dispatches_every_chapter_at_once() {
    let (bus, _h, _out) = start().await;
    let mut b = submit(&bus, &format!("{BRIEF}drafting = \"parallel\"\n")).await;
    let mut ids: Vec<String> = Vec::new();
    for _ in 0..3 {
        ids.push(next_task(&mut b.chapters).await.step_id);
    }
    ids.sort();
    assert_eq!(ids, ["chapter-01", "chapter-02", "chapter-03"]);
    let rec = client::load(&b.bus, &b.id).await.unwrap().unwrap();
    assert_eq!(rec.brief.drafting, "parallel");
}
