//! Operators in charge, through the coordinator's own queues on the in-process bus with the test
//! playing the worker: a book stops at its approval gates and goes on when approved, a rejected
//! answer is asked again with the note in its prompt, an edited answer is validated and used by
//! the steps after it, a gate survives a coordinator restart, and cancel and pause hold back
//! every dispatch. Every command is recorded with who gave it.

mod support;

use scriptorium_coordinator::control::Action;
use scriptorium_coordinator::record::{Status, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, brief, client};
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::{AgentKind, StepTask};
use scriptorium_proto::{Bus, Source};
use std::time::Duration;
use support::{answer, next_task, nothing_on, record_where, sim, start_with, user};

const BRIEF: &str = r#"
title = "Test Book"
category = "fiction"
description = "A test."
chapters = 2
characters = 2
worldbuilding = false
words_per_chapter = 200
approve = ["concept", "outline"]
"#;

const QUIET: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(5);

async fn source(bus: &Bus, kind: AgentKind) -> Source {
    bus.source(Queue::Steps(kind), 4).await.unwrap()
}

async fn run(bus: &Bus, id: &str, action: Action) -> Result<(), String> {
    client::run_command(bus, id, action, "ann@desk", WAIT)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Answers `task` with the simulated model.
async fn answer_sim(bus: &Bus, task: &StepTask) {
    answer(bus, task, sim(task)).await;
}

#[tokio::test]
async fn gates_hold_the_book_until_approved_and_a_reject_asks_again_with_the_note() {
    let (bus, handle, _out) = start_with(CoordinatorConfig::default()).await;
    let mut concepts = source(&bus, AgentKind::Concept).await;
    let mut casts = source(&bus, AgentKind::Characters).await;
    let mut outlines = source(&bus, AgentKind::Outline).await;
    let mut chapters = source(&bus, AgentKind::Chapter).await;
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();

    let c = next_task(&mut concepts).await;
    answer_sim(&bus, &c).await;
    let rec = record_where(&bus, &id, |r| r.state == Status::AwaitingApproval).await;
    assert_eq!(rec.awaiting, ["concept"]);
    assert!(nothing_on(&mut casts, QUIET).await, "nothing after a gate until it is approved");
    // A command that does not apply is refused, with the reason, and recorded.
    let refused = run(&bus, &id, Action::Resume).await.unwrap_err();
    assert!(refused.contains("is not paused"), "{refused}");

    run(&bus, &id, Action::Approve { step: None }).await.unwrap();
    let cast = next_task(&mut casts).await;
    answer_sim(&bus, &cast).await;
    let o = next_task(&mut outlines).await;
    answer_sim(&bus, &o).await;
    record_where(&bus, &id, |r| r.awaiting == ["outline"]).await;
    assert!(nothing_on(&mut chapters, QUIET).await);

    // Rejected with a note: asked again, the note in the new attempt's prompt, on a fresh
    // budget of attempts.
    run(&bus, &id, Action::Reject { step: None, note: "Make chapter two a storm.".into() })
        .await
        .unwrap();
    let again = next_task(&mut outlines).await;
    assert_eq!(again.attempt, o.attempt + 1);
    assert!(user(&again).contains("Make chapter two a storm."), "{}", user(&again));
    answer_sim(&bus, &again).await;
    record_where(&bus, &id, |r| r.awaiting == ["outline"]).await;
    run(&bus, &id, Action::Approve { step: Some("outline".into()) }).await.unwrap();
    let ch = next_task(&mut chapters).await;
    assert_eq!(ch.step_id, "chapter-01");

    let rec = client::load(&bus, &id).await.unwrap().unwrap();
    let log: Vec<(&str, &str, &str, bool)> = rec
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.step.as_str(), a.by.as_str(), a.refused.is_empty()))
        .collect();
    assert_eq!(
        log,
        [
            ("resume", "", "ann@desk", false),
            ("approve", "", "ann@desk", true),
            ("reject", "", "ann@desk", true),
            ("approve", "outline", "ann@desk", true),
        ]
    );
    assert_eq!(rec.actions[2].note, "Make chapter two a storm.");
    handle.shutdown().await;
}

#[tokio::test]
async fn an_edited_outline_is_checked_like_a_models_and_used_by_every_chapter() {
    let (bus, handle, _out) = start_with(CoordinatorConfig::default()).await;
    let mut concepts = source(&bus, AgentKind::Concept).await;
    let mut casts = source(&bus, AgentKind::Characters).await;
    let mut outlines = source(&bus, AgentKind::Outline).await;
    let mut chapters = source(&bus, AgentKind::Chapter).await;
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    answer_sim(&bus, &next_task(&mut concepts).await).await;
    record_where(&bus, &id, |r| r.state == Status::AwaitingApproval).await;
    run(&bus, &id, Action::Approve { step: None }).await.unwrap();
    answer_sim(&bus, &next_task(&mut casts).await).await;
    let o = next_task(&mut outlines).await;
    let mut outline: serde_json::Value = serde_json::from_str(&sim(&o)).unwrap();
    answer(&bus, &o, outline.to_string()).await;
    record_where(&bus, &id, |r| r.awaiting == ["outline"]).await;

    // An answer that breaks a rule is refused with the rule, and the gate still holds.
    let mut bad = outline.clone();
    bad["chapters"].as_array_mut().unwrap().pop();
    let refused = run(
        &bus,
        &id,
        Action::Edit { step: "outline".into(), answer: bad.to_string(), approve: true },
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains("the outline answer breaks a rule") && refused.contains("2 chapters"),
        "{refused}"
    );
    assert!(nothing_on(&mut chapters, QUIET).await);

    outline["chapters"][0]["title"] = "The Hand-Set Title".into();
    outline["chapters"][1]["title"] = "The Second Hand Title".into();
    let edit = Action::Edit { step: "outline".into(), answer: outline.to_string(), approve: true };
    run(&bus, &id, edit).await.unwrap();
    let one = next_task(&mut chapters).await;
    assert!(one.context.as_ref().unwrap().outline_json.contains("The Hand-Set Title"));
    assert!(user(&one).contains("The Hand-Set Title"), "the chapter's prompt has the edited plan");
    answer_sim(&bus, &one).await;
    let two = next_task(&mut chapters).await;
    assert!(two.context.as_ref().unwrap().outline_json.contains("The Second Hand Title"));
    let rec = client::load(&bus, &id).await.unwrap().unwrap();
    assert_eq!(rec.steps["outline"].route, "edited by ann@desk");
    handle.shutdown().await;
}

/// Over a real nats-server: the gate is in the stored record, so a coordinator started anew
/// (as after a crash or an upgrade) resumes the book still waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_waiting_at_its_gate_still_waits_after_a_coordinator_restart() {
    let real = support::RealNats::start().await;
    let bus = real.connect().await;
    let handle = real.coordinator().await;
    let mut concepts = source(&bus, AgentKind::Concept).await;
    let mut casts = source(&bus, AgentKind::Characters).await;
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let c = next_task(&mut concepts).await;
    answer_sim(&bus, &c).await;
    record_where(&bus, &id, |r| r.state == Status::AwaitingApproval).await;
    handle.shutdown().await;

    let handle = real.coordinator().await;
    assert!(nothing_on(&mut casts, Duration::from_secs(1)).await, "resumed, and still waiting");
    let rec = client::load(&bus, &id).await.unwrap().unwrap();
    assert_eq!(rec.state, Status::AwaitingApproval);
    assert_eq!(rec.awaiting, ["concept"]);
    run(&bus, &id, Action::Approve { step: None }).await.unwrap();
    assert_eq!(next_task(&mut casts).await.book_id, id);
    handle.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_every_dispatch_and_ignores_results_after_it() {
    let text = BRIEF.replace("approve = [\"concept\", \"outline\"]", "");
    let (bus, handle, _out) = start_with(CoordinatorConfig::default()).await;
    let mut concepts = source(&bus, AgentKind::Concept).await;
    let mut casts = source(&bus, AgentKind::Characters).await;
    let mut outlines = source(&bus, AgentKind::Outline).await;
    let mut chapters = source(&bus, AgentKind::Chapter).await;
    let id = client::submit(&bus, brief::parse(&text).unwrap()).await.unwrap();
    for src in [&mut concepts, &mut casts, &mut outlines] {
        let t = next_task(src).await;
        answer_sim(&bus, &t).await;
    }
    let one = next_task(&mut chapters).await;
    run(&bus, &id, Action::Cancel).await.unwrap();
    let rec = record_where(&bus, &id, |r| r.state == Status::Cancelled).await;
    assert_eq!(rec.steps["chapter-01"].status, StepStatus::Running, "stopped where it stood");
    // The running attempt's answer arrives after the cancel: ignored, its usage still counted.
    let spent = rec.usage.calls;
    answer_sim(&bus, &one).await;
    let rec = record_where(&bus, &id, |r| r.ignored_results == 1).await;
    assert_eq!(rec.state, Status::Cancelled);
    assert_eq!(rec.usage.calls, spent + 1, "spend so far is recorded");
    assert!(nothing_on(&mut chapters, QUIET).await, "nothing is dispatched after a cancel");
    let again = run(&bus, &id, Action::Pause).await.unwrap_err();
    assert!(again.contains("is cancelled"), "{again}");
    handle.shutdown().await;
}

#[tokio::test]
async fn pause_holds_new_dispatches_keeps_running_answers_and_resume_goes_on() {
    let text = BRIEF.replace("approve = [\"concept\", \"outline\"]", "");
    let (bus, handle, _out) = start_with(CoordinatorConfig::default()).await;
    let mut concepts = source(&bus, AgentKind::Concept).await;
    let mut casts = source(&bus, AgentKind::Characters).await;
    let id = client::submit(&bus, brief::parse(&text).unwrap()).await.unwrap();
    let c = next_task(&mut concepts).await;
    run(&bus, &id, Action::Pause).await.unwrap();
    record_where(&bus, &id, |r| r.state == Status::Paused).await;
    // The attempt running when the book was paused is answered and accepted.
    answer_sim(&bus, &c).await;
    record_where(&bus, &id, |r| r.steps["concept"].status == StepStatus::Done).await;
    assert!(nothing_on(&mut casts, QUIET).await, "nothing new while paused");
    run(&bus, &id, Action::Resume).await.unwrap();
    assert_eq!(next_task(&mut casts).await.book_id, id);
    let rec = client::load(&bus, &id).await.unwrap().unwrap();
    assert_eq!(rec.state, Status::Running);
    handle.shutdown().await;
}
