//! The book actor through its messages on the in-process bus, with the test playing the worker:
//! results accepted once, duplicates and superseded attempts ignored and counted, re-asks with
//! the validation error as feedback, and a clear failure after the last attempt.

mod support;

use scriptorium_coordinator::record::{Status, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, brief, client};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::{
    AgentKind, Failure, FailureCause, StepResult, StepStatus as WireStatus, StepTask,
};
use scriptorium_proto::{Bus, names};
use std::time::Duration;
use support::{answer, next_task, record_where, start_with, user};

const BRIEF: &str = r#"
title = "Test Book"
category = "fiction"
description = "A test."
chapters = 3
characters = 2
worldbuilding = false
words_per_chapter = 200
"#;

async fn start(max_attempts: u32) -> (Bus, CoordinatorHandle, tempfile::TempDir) {
    start_with(CoordinatorConfig { max_attempts, ..Default::default() }).await
}

fn sim(kind: AgentKind, task: &StepTask) -> String {
    // The simulated model answers from the rendered prompt, as a worker would.
    scriptorium_contracts::sim::answer(kind, &user(task), 1, false)
}

#[tokio::test]
async fn duplicates_and_superseded_attempts_are_ignored_and_counted() {
    let (bus, _h, _out) = start(3).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();

    let concept = next_task(&mut concepts).await;
    assert_eq!((concept.book_id.as_str(), concept.attempt), (id.as_str(), 1));
    let out = sim(AgentKind::Concept, &concept);
    answer(&bus, &concept, out.clone()).await;
    answer(&bus, &concept, out).await; // delivered twice
    let rec = record_where(&bus, &id, |r| r.ignored_results == 1).await;
    assert_eq!(rec.steps["concept"].status, StepStatus::Done);
    assert_eq!(rec.accepted_results, 1);
    assert_eq!(rec.title, "Test Book");

    // An invalid cast (3 characters for 2) is re-asked with the rule as feedback.
    let cast1 = next_task(&mut casts).await;
    let three = r#"{"characters":[{"name":"A B","role":"x"},{"name":"C D","role":"x"},{"name":"E F","role":"x"}]}"#;
    answer(&bus, &cast1, three.into()).await;
    let cast2 = next_task(&mut casts).await;
    assert_eq!(cast2.attempt, 2);
    let feedback = cast2.context.as_ref().unwrap().feedback.clone();
    assert!(feedback.contains("exactly 2 characters (got 3)"), "{feedback}");
    let (_, user) =
        scriptorium_worker::prompts::Prompts::load(None).unwrap().render(&cast2).unwrap();
    assert!(
        user.contains("exactly 2 characters (got 3)"),
        "the re-ask prompt carries the feedback"
    );

    // A late valid answer for the superseded attempt 1 is ignored; attempt 2 is accepted.
    answer(&bus, &cast1, sim(AgentKind::Characters, &cast2)).await;
    let rec = record_where(&bus, &id, |r| r.ignored_results == 2).await;
    assert_eq!(rec.steps["characters"].status, StepStatus::Running);
    answer(&bus, &cast2, sim(AgentKind::Characters, &cast2)).await;
    let rec = record_where(&bus, &id, |r| r.steps["characters"].status == StepStatus::Done).await;
    assert_eq!(rec.steps["characters"].rejections.len(), 1);
    assert_eq!(
        rec.steps["outline"].status,
        StepStatus::Running,
        "the outline is dispatched once its inputs are accepted"
    );
    assert_eq!(rec.accepted_results, 2);
}

#[tokio::test]
async fn an_answer_to_a_dispatch_never_recorded_makes_the_step_skip_that_attempt() {
    // A coordinator that stopped after publishing a step and before storing it as running left
    // it pending; the worker's answer names its next attempt. That attempt's message id is
    // spent (JetStream drops the same id again as a duplicate), so the step must go out with the
    // attempt after it, or it would never go out (seen in tests/chaos.rs).
    let (bus, _h, _out) = start(3).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let mut outlines = bus.source(Queue::Steps(AgentKind::Outline), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let concept = next_task(&mut concepts).await;
    answer(&bus, &concept, sim(AgentKind::Concept, &concept)).await;
    let cast = next_task(&mut casts).await;
    let rec =
        record_where(&bus, &id, |r| r.steps["characters"].status == StepStatus::Running).await;
    assert_eq!(
        (rec.steps["outline"].status, rec.steps["outline"].attempt),
        (StepStatus::Pending, 0)
    );
    // The outline waits for the cast; an answer to its attempt 1 comes in.
    let early =
        StepTask { step_id: "outline".into(), kind: AgentKind::Outline as i32, ..cast.clone() };
    support::publish(&bus, &support::result(&early, "{}".into())).await;
    let rec = record_where(&bus, &id, |r| r.ignored_results == 1).await;
    assert_eq!(
        (rec.steps["outline"].status, rec.steps["outline"].attempt),
        (StepStatus::Pending, 1)
    );
    assert!(bus.dead_letters().await.unwrap().is_empty(), "not dead-lettered as forged");
    // Once the cast is accepted, the outline goes out with attempt 2, which is answered.
    answer(&bus, &cast, sim(AgentKind::Characters, &cast)).await;
    let outline = next_task(&mut outlines).await;
    assert_eq!((outline.step_id.as_str(), outline.attempt), ("outline", 2));
    answer(&bus, &outline, sim(AgentKind::Outline, &outline)).await;
    let rec = record_where(&bus, &id, |r| r.steps["outline"].status == StepStatus::Done).await;
    assert_eq!(rec.steps["outline"].rejections.len(), 0, "the skipped attempt is no failure");
    // A result for a later attempt than that is still refused and dead-lettered.
    let forged = StepTask { attempt: 5, ..outline.clone() };
    support::publish(&bus, &support::result(&forged, "{}".into())).await;
    for _ in 0..300 {
        if !bus.dead_letters().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let letters = bus.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0].reason.contains("was never dispatched"), "{}", letters[0].reason);
}

#[tokio::test]
async fn a_step_that_keeps_breaking_a_rule_fails_the_book_naming_step_and_rule() {
    let (bus, _h, out) = start(2).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let mut outlines = bus.source(Queue::Steps(AgentKind::Outline), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let c = next_task(&mut concepts).await;
    answer(&bus, &c, sim(AgentKind::Concept, &c)).await;
    let c = next_task(&mut casts).await;
    answer(&bus, &c, sim(AgentKind::Characters, &c)).await;
    for attempt in 1..=2 {
        let o = next_task(&mut outlines).await;
        assert_eq!(o.attempt, attempt);
        answer(&bus, &o, r#"{"summary":"s","chapters":[]}"#.into()).await;
    }
    let rec = record_where(&bus, &id, |r| r.state == Status::Failed).await;
    let failure = rec.failure.unwrap();
    assert!(failure.contains("step outline"), "{failure}");
    assert!(failure.contains("exactly 3 chapters (got 0)"), "{failure}");
    assert!(
        std::fs::read_dir(out.path()).map(|d| d.count()).unwrap_or(0) == 0,
        "a failed book writes no files"
    );
}

/// Publishes a failed result for `task` with `failure`; untyped: as a worker that predates
/// typed failures sends it, with the text only.
async fn fail(bus: &Bus, task: &StepTask, failure: Failure, typed: bool) {
    let r = StepResult {
        book_id: task.book_id.clone(),
        step_id: task.step_id.clone(),
        attempt: task.attempt,
        status: WireStatus::Failed as i32,
        error: failure.message.clone(),
        failure: typed.then_some(failure),
        ..Default::default()
    };
    let mid = names::result_msg_id(&r.book_id, &r.step_id, r.attempt);
    bus.publish(Queue::Results, &r.book_id, &mid, r.encode_to_vec().into()).await.unwrap();
}

#[tokio::test]
async fn transient_worker_failures_are_retried_and_count_as_attempts() {
    let (bus, _h, _out) = start(3).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let c = next_task(&mut concepts).await;
    let timeout = Failure::new(FailureCause::Timeout, "openai/gpt: gave up after 3 attempts");
    fail(&bus, &c, timeout.clone(), true).await;
    let c = next_task(&mut concepts).await;
    assert_eq!(c.attempt, 2);
    // A worker that predates typed failures sends its text only: retried, as before, whatever
    // the text says.
    fail(&bus, &c, Failure::new(FailureCause::Auth, "openai/gpt: HTTP 401"), false).await;
    let c = next_task(&mut concepts).await;
    assert_eq!(c.attempt, 3);
    fail(&bus, &c, timeout, true).await;
    let rec = record_where(&bus, &id, |r| r.state == Status::Failed).await;
    let failure = rec.failure.unwrap();
    assert!(failure.contains("step concept failed after 3 attempts: worker error"), "{failure}");
}

#[tokio::test]
async fn a_permanent_failure_fails_the_step_at_once_and_retry_after_the_fix_works() {
    let (bus, _h, _out) = start(5).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 4).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let c = next_task(&mut concepts).await;
    let auth = Failure {
        http_status: 401,
        ..Failure::new(
            FailureCause::Auth,
            "provider 'openai' rejected openai/gpt: HTTP 401: bad key",
        )
    };
    fail(&bus, &c, auth, true).await;
    let rec = record_where(&bus, &id, |r| r.state == Status::Failed).await;
    let failure = rec.failure.clone().unwrap();
    assert!(failure.contains("step concept failed (auth, not retried)"), "{failure}");
    assert!(failure.contains("HTTP 401: bad key"), "the provider's own message: {failure}");
    assert_eq!(rec.steps["concept"].attempt, 1, "one attempt, not max_attempts");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), concepts.next()).await.is_err(),
        "no further attempt is dispatched"
    );
    // The key is fixed: retry asks again and the book goes on.
    client::retry(&bus, &id, None).await.unwrap();
    let again = next_task(&mut concepts).await;
    assert_eq!(again.attempt, 2);
    answer(&bus, &again, sim(AgentKind::Concept, &again)).await;
    assert_eq!(next_task(&mut casts).await.book_id, id);
}

#[tokio::test]
async fn a_rejected_cached_answer_is_evicted_and_never_served_again() {
    use scriptorium_proto::transport::Bucket;
    use scriptorium_worker::cache::{
        self, CacheConfig, CachedAnswer, ResponseCache, Source as From,
    };
    let (bus, _h, _out) = start(3).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let task = next_task(&mut concepts).await;
    let (system, user) =
        scriptorium_worker::prompts::Prompts::load(None).unwrap().render(&task).unwrap();
    let key = ResponseCache::key(&task, &system, &user);
    // A bad answer sits in the shared tier (say, cached before a validation rule was added).
    let bad = CachedAnswer {
        output: r#"{"title":"T","logline":"","description":""}"#.into(),
        route: "sim/x".into(),
        prompt_tokens: 1,
        completion_tokens: 1,
        dialect: String::new(),
    };
    cache::store_accepted(&bus, &key, &bad).await;
    let worker_cache =
        std::sync::Arc::new(ResponseCache::new(CacheConfig::default(), bus.clone(), "w".into()));
    tokio::spawn(worker_cache.clone().follow_evictions());
    tokio::task::yield_now().await;
    let scriptorium_worker::cache::Produced { fresh, source, .. } = worker_cache
        .get_or_compute(&key, true, || async { unreachable!("served from the cache") })
        .await;
    assert_eq!(source, From::Shared);
    let r = StepResult {
        book_id: task.book_id.clone(),
        step_id: task.step_id.clone(),
        attempt: 1,
        status: WireStatus::Ok as i32,
        output: fresh.expect("served from the cache").output,
        cache_hit: true,
        cache_key: key.clone(),
        kind: task.kind,
        ..Default::default()
    };
    let mid = names::result_msg_id(&r.book_id, &r.step_id, 1);
    bus.publish(Queue::Results, &r.book_id, &mid, r.encode_to_vec().into()).await.unwrap();
    // The coordinator rejects it, evicts it, and re-asks.
    let again = next_task(&mut concepts).await;
    assert_eq!(again.attempt, 2);
    assert!(
        bus.kv_get(Bucket::Cache, &key).await.unwrap().is_none(),
        "the rejected answer is evicted"
    );
    let other = ResponseCache::new(CacheConfig::default(), bus.clone(), "w2".into());
    assert!(other.lookup(&key).await.is_none());
    // The worker that served it dropped it from its local tier too.
    for _ in 0..100 {
        if worker_cache.stats.evictions.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(worker_cache.lookup(&key).await.is_none(), "evicted from the local tier");
    let rec = record_where(&bus, &id, |r| r.steps["concept"].rejections.len() == 1).await;
    assert!(rec.steps["concept"].rejections[0].contains("logline"));
}

#[tokio::test]
async fn retry_puts_a_failed_book_back_with_a_fresh_attempt_budget() {
    let (bus, _h, _out) = start(1).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let c = next_task(&mut concepts).await;
    answer(&bus, &c, r#"{"title":"x"}"#.into()).await;
    let rec = record_where(&bus, &id, |r| r.state == Status::Failed).await;
    assert!(rec.failure.unwrap().contains("step concept failed after 1 attempts"));

    client::retry(&bus, &id, None).await.unwrap();
    let again = next_task(&mut concepts).await;
    assert_eq!(again.attempt, 2, "attempt numbers stay unique across retries");
    answer(&bus, &again, sim(AgentKind::Concept, &again)).await;
    let cast = next_task(&mut casts).await;
    assert_eq!(cast.book_id, id);
    let rec = record_where(&bus, &id, |r| {
        r.state == Status::Running && r.steps["concept"].status == StepStatus::Done
    })
    .await;
    assert!(rec.failure.is_none());
    // A book that is running cannot be retried.
    assert!(client::retry(&bus, &id, None).await.is_err());
}

/// The queues of every kind a book without a world asks, read as a worker would.
async fn worker_sources(bus: &Bus) -> Vec<scriptorium_proto::Source> {
    let mut sources = Vec::new();
    for kind in [
        AgentKind::Concept,
        AgentKind::Characters,
        AgentKind::Outline,
        AgentKind::Chapter,
        AgentKind::Review,
        AgentKind::Edit,
    ] {
        sources.push(bus.source(Queue::Steps(kind), 1).await.unwrap());
    }
    sources
}

/// Plays the worker for every kind until book `id` is done.
async fn write_through(bus: &Bus, sources: &mut [scriptorium_proto::Source], id: &str) {
    for _ in 0..500 {
        if client::load(bus, id).await.unwrap().is_some_and(|r| r.state == Status::Done) {
            return;
        }
        for source in sources.iter_mut() {
            if let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_millis(5), source.next()).await
            {
                let task = StepTask::decode(m.payload).unwrap();
                answer(bus, &task, support::sim(&task)).await;
            }
        }
    }
    panic!("book {id} was not written");
}

#[tokio::test]
async fn a_finished_book_leaves_no_deadline_timer_behind() {
    // The default step timeout (15 minutes): each step's deadline timer must go when the step
    // is done, not sleep on with the book's actor cell.
    let (bus, _h, _out) = start_with(CoordinatorConfig::default()).await;
    let mut sources = worker_sources(&bus).await;
    let brief = |seed: u64| {
        let text = BRIEF.replace("chapters = 3", "chapters = 2");
        brief::parse(&format!("{text}review = \"ai\"\nseed = {seed}\n")).unwrap()
    };
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let settled = async |at_most: usize| {
        for _ in 0..100 {
            if alive() <= at_most {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        alive()
    };
    let first = client::submit(&bus, brief(1)).await.unwrap();
    write_through(&bus, &mut sources, &first).await;
    let after_one = settled(0).await;
    let second = client::submit(&bus, brief(2)).await.unwrap();
    write_through(&bus, &mut sources, &second).await;
    let rec = client::load(&bus, &second).await.unwrap().unwrap();
    let dispatched = rec.steps.values().filter(|s| s.attempt > 0).count();
    assert!(dispatched >= 6, "{dispatched} steps dispatched");
    let after_two = settled(after_one).await;
    assert!(
        after_two <= after_one,
        "{after_two} tasks alive after the second book, {after_one} after the first: the \
         second's {dispatched} steps left timers behind"
    );
}

#[tokio::test]
async fn prose_dropped_in_flight_is_read_back_for_assembly() {
    // Each chapter text's prose leaves the book's memory once no step reads it (all of them by
    // the end); the manuscript must still carry every scene of every edited chapter.
    let (bus, _h, _out) = start_with(CoordinatorConfig::default()).await;
    let mut sources = worker_sources(&bus).await;
    let text = format!("{BRIEF}review = \"ai\"\nseed = 5\n");
    let id = client::submit(&bus, brief::parse(&text).unwrap()).await.unwrap();
    write_through(&bus, &mut sources, &id).await;
    let rec = client::load(&bus, &id).await.unwrap().unwrap();
    let manuscript =
        std::fs::read_to_string(std::path::Path::new(&rec.output_dir).join("manuscript.md"))
            .unwrap();
    for n in 1..=3 {
        let key = format!("{id}.edit-0{n}");
        let stored = bus.kv_get(scriptorium_proto::transport::Bucket::Outputs, &key).await;
        let edit: scriptorium_contracts::ChapterText =
            serde_json::from_slice(&stored.unwrap().unwrap()).unwrap();
        assert!(!edit.scenes.is_empty());
        for scene in &edit.scenes {
            let first = scene.text.split("\n\n").next().unwrap().trim();
            assert!(!first.is_empty() && manuscript.contains(first), "chapter {n}: {first}");
        }
    }
}

#[tokio::test]
async fn every_accepted_answer_is_cached_and_its_lease_ended_when_the_book_is_done() {
    // The coordinator writes accepted answers to the shared cache beside the book's next steps;
    // none may be lost when the book ends right after its last one.
    use scriptorium_proto::transport::Bucket;
    let (bus, _h, _out) = start_with(CoordinatorConfig::default()).await;
    let mut sources = worker_sources(&bus).await;
    let text =
        format!("{}review = \"ai\"\nseed = 9\n", BRIEF.replace("chapters = 3", "chapters = 2"));
    let id = client::submit(&bus, brief::parse(&text).unwrap()).await.unwrap();
    let mut keys = Vec::new();
    for _ in 0..500 {
        if client::load(&bus, &id).await.unwrap().is_some_and(|r| r.state == Status::Done) {
            break;
        }
        for source in sources.iter_mut() {
            let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_millis(5), source.next()).await
            else {
                continue;
            };
            let task = StepTask::decode(m.payload).unwrap();
            // As a worker computing under a lease does.
            let key = format!("k-{}-{}", task.step_id, task.attempt);
            assert!(bus.kv_create(Bucket::Leases, &key, b"w".to_vec().into()).await.unwrap());
            let r = StepResult {
                cache_key: key.clone(),
                ..support::result(&task, support::sim(&task))
            };
            support::publish(&bus, &r).await;
            keys.push(key);
        }
    }
    let rec = client::load(&bus, &id).await.unwrap().unwrap();
    assert_eq!(rec.state, Status::Done);
    assert_eq!(keys.len() as u64, rec.accepted_results, "one answer per step, all accepted");
    for key in &keys {
        assert!(bus.kv_get(Bucket::Cache, key).await.unwrap().is_some(), "{key} cached");
        assert!(bus.kv_get(Bucket::Leases, key).await.unwrap().is_none(), "{key}'s lease ended");
    }
}

/// Over a real nats-server, as a coordinator restart needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_stopped_between_its_assembly_and_its_end_is_assembled_again_on_resume() {
    let real = support::RealNats::start().await;
    let bus = real.connect().await;
    let handle = real.coordinator().await;
    let mut sources = worker_sources(&bus).await;
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    write_through(&bus, &mut sources, &id).await;
    handle.shutdown().await;
    // The coordinator stored the assembly as done, then stopped before the store that ends the
    // book: every step is done and the book still running.
    let mut rec = client::load(&bus, &id).await.unwrap().unwrap();
    assert_eq!(rec.steps["assembly"].status, StepStatus::Done);
    let first = std::mem::take(&mut rec.output_dir);
    std::fs::remove_dir_all(&first).unwrap();
    rec.state = Status::Running;
    scriptorium_coordinator::record::store(&bus, &mut rec).await.unwrap();

    let handle = real.coordinator().await;
    let done = record_where(&bus, &id, |r| r.state.is_final()).await;
    assert_eq!(done.state, Status::Done, "{:?}", done.failure);
    assert_eq!(done.output_dir, first, "the same book, written again");
    assert!(std::path::Path::new(&done.output_dir).join("manuscript.md").is_file());
    handle.shutdown().await;
}
