//! Admission and priority through the coordinator's queues on the in-process bus, the test
//! playing the worker: no more books in flight than the cap (the rest wait, durably, in the
//! submit stream), a priority book admitted at once beyond the cap within a headroom of its own
//! and, beyond that, before every normal one that waited longer, and its steps on the priority
//! queue workers take first. By demand: no more normal books started than the fleet has work
//! waiting room for (`admission_backlog`), one more for each step an agent takes, priority
//! books regardless.

mod support;

use scriptorium_coordinator::control::Action;
use scriptorium_coordinator::record::{Status, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, Held, brief, client};
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::AgentKind;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{next_task, nothing_on, record_where, start_with};

const BRIEF: &str = r#"
category = "fiction"
description = "A test."
chapters = 1
characters = 1
worldbuilding = false
words_per_chapter = 200
"#;

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test]
async fn books_beyond_the_cap_wait_and_a_priority_book_starts_at_once() {
    let cfg = CoordinatorConfig { max_books_in_flight: 2, ..Default::default() };
    let (bus, handle, _out) = start_with(cfg).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 8).await.unwrap();
    let mut urgent = bus.source(Queue::PrioritySteps(AgentKind::Concept), 8).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let text = format!("title = \"Normal {i}\"\n{BRIEF}");
        ids.push(client::submit(&bus, brief::parse(&text).unwrap()).await.unwrap());
        // Admitted in the order they came.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let first = next_task(&mut concepts).await;
    let second = next_task(&mut concepts).await;
    assert_eq!([first.book_id.as_str(), second.book_id.as_str()], [&ids[0], &ids[1]]);
    assert!(nothing_on(&mut concepts, QUIET).await, "two books in flight at most");
    assert!(handle.in_flight().await.unwrap() == 2);
    let waiting = client::load(&bus, &ids[2]).await.unwrap();
    assert!(waiting.is_none(), "a book beyond the cap is not started (no record yet)");

    // A priority book starts at once, beyond the cap, within its headroom (one book here).
    let urgent_brief = |n: u32| {
        let text = format!("title = \"Urgent {n}\"\npriority = \"priority\"\n{BRIEF}");
        brief::parse(&text).unwrap()
    };
    let first_urgent = client::submit(&bus, urgent_brief(1)).await.unwrap();
    assert_eq!(next_task(&mut urgent).await.book_id, first_urgent, "started at once");
    assert!(nothing_on(&mut concepts, QUIET).await, "no normal book came in with it");
    assert!(handle.in_flight().await.unwrap() == 3);
    // Beyond the headroom a priority book waits too.
    let second_urgent = client::submit(&bus, urgent_brief(2)).await.unwrap();
    assert!(nothing_on(&mut urgent, QUIET).await, "the headroom is one book");

    // A book ends: the waiting priority book is admitted before the two normal ones that
    // waited longer, and its steps go on the priority queue.
    client::run_command(&bus, &ids[0], Action::Cancel, "t", Duration::from_secs(5)).await.unwrap();
    let u = next_task(&mut urgent).await;
    assert_eq!(u.book_id, second_urgent);
    assert!(nothing_on(&mut concepts, QUIET).await, "no normal book took its slot");

    // Normal books come in only below the cap itself, then in order.
    for id in [&ids[1], &first_urgent] {
        client::run_command(&bus, id, Action::Cancel, "t", Duration::from_secs(5)).await.unwrap();
    }
    assert_eq!(next_task(&mut concepts).await.book_id, ids[2], "then the normal ones, in order");
    let rec = record_where(&bus, &ids[2], |r| r.state == Status::Running).await;
    assert_eq!(rec.brief.priority, "normal");
    assert!(nothing_on(&mut concepts, QUIET).await, "two books in flight again");
    handle.shutdown().await;
}

/// Waits (up to 5 s) until `n` books are in flight, then checks that no more come in.
async fn in_flight_settles_at(handle: &scriptorium_coordinator::CoordinatorHandle, n: usize) {
    for _ in 0..500 {
        if handle.in_flight().await.unwrap() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(handle.in_flight().await.unwrap(), n);
}

#[tokio::test]
async fn books_start_by_demand_one_more_for_each_step_an_agent_takes() {
    let cfg = CoordinatorConfig { admission_backlog: 3, ..Default::default() };
    let (bus, handle, _out) = start_with(cfg).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let text = format!("title = \"Normal {i}\"\n{BRIEF}");
        ids.push(client::submit(&bus, brief::parse(&text).unwrap()).await.unwrap());
    }
    // No agent takes a step: three books start, their three first steps wait, the rest wait
    // unread in the submit stream (far below the cap of 100).
    in_flight_settles_at(&handle, 3).await;
    assert_eq!(bus.step_load().await.unwrap().waiting, 3);
    let held = || Held::from_u8(handle.stats().admission_held.load(Ordering::Relaxed));
    assert_eq!(held(), Held::Demand, "the heartbeat says why submissions wait");
    assert!(client::load(&bus, &ids[3]).await.unwrap().is_none(), "not started: no record");

    // An agent takes a step: room for one more book, the next in order.
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 8).await.unwrap();
    let taken = next_task(&mut concepts).await;
    in_flight_settles_at(&handle, 4).await;
    record_where(&bus, &ids[3], |r| r.state == Status::Running).await;
    assert!(client::load(&bus, &ids[4]).await.unwrap().is_none());

    // A priority book is not held by the backlog.
    let text = format!("title = \"Urgent\"\npriority = \"priority\"\n{BRIEF}");
    let urgent = client::submit(&bus, brief::parse(&text).unwrap()).await.unwrap();
    let mut priority = bus.source(Queue::PrioritySteps(AgentKind::Concept), 8).await.unwrap();
    assert_eq!(next_task(&mut priority).await.book_id, urgent, "started at once");
    in_flight_settles_at(&handle, 5).await;

    // The step taken is answered: its result handled, none is left counted in hand, and the
    // book's next step joins the backlog (3 concept steps and it: still no room).
    support::answer(&bus, &taken, support::sim(&taken)).await;
    record_where(&bus, &taken.book_id, |r| r.steps["concept"].status == StepStatus::Done).await;
    let in_hand = &handle.stats().results_in_hand;
    for _ in 0..100 {
        if in_hand.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(in_hand.load(Ordering::Relaxed), 0);
    in_flight_settles_at(&handle, 5).await;
    handle.shutdown().await;
}
