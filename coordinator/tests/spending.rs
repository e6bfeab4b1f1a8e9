//! What a book spends and what it leaves behind, on the in-process bus with the test playing
//! the workers: the cache lease of every ignored result released (superseded attempt,
//! duplicate, finished or unknown book), every attempt's usage counted once, running attempts
//! cancelled when their book stops, and a budget that is never exceeded by more than one
//! step's reservation.

use scriptorium_coordinator::config::{RoutePrice, RoutePrices};
use scriptorium_coordinator::record::{BookRecord, Status, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, brief, client};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, Queue};
use scriptorium_proto::v1::{AgentKind, StepResult, StepStatus as WireStatus, StepTask, Usage};
use scriptorium_proto::{Bus, Cancel, Cancellations, Source, names};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long anything the coordinator does in process may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(30);

fn brief_text(world: bool, budget: f64) -> String {
    format!(
        "title = \"Spending\"\ncategory = \"fiction\"\ndescription = \"A test.\"\nchapters = 3\n\
         characters = 2\nworldbuilding = {world}\nwords_per_chapter = 200\nreview = \"human\"\n\
         drafting = \"parallel\"\n\
         budget_usd = {budget}\n"
    )
}

async fn start(cfg: CoordinatorConfig) -> (Bus, CoordinatorHandle, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let bus = Bus::memory();
    let cfg = CoordinatorConfig { out_dir: out.path().into(), ..cfg };
    let handle = CoordinatorHandle::start(bus.clone(), cfg).await.unwrap();
    (bus, handle, out)
}

async fn next_task(source: &mut Source) -> StepTask {
    let m = tokio::time::timeout(WITHIN, source.next()).await.expect("a step is dispatched");
    StepTask::decode(m.unwrap().unwrap().payload).unwrap()
}

fn sim(task: &StepTask) -> String {
    // The simulated model answers from the rendered prompt, as a worker would.
    let prompts = scriptorium_worker::prompts::Prompts::load(None).unwrap();
    let (_, user) = prompts.render(task).unwrap();
    scriptorium_contracts::sim::answer(task.kind(), &user, 1, false)
}

/// Publishes the result of `task` as a worker would: `output`, one call costing `cost_usd`,
/// computed under the cache lease `cache_key` (empty: none).
async fn answer(bus: &Bus, task: &StepTask, output: String, cost_usd: f64, cache_key: &str) {
    let r = StepResult {
        book_id: task.book_id.clone(),
        step_id: task.step_id.clone(),
        attempt: task.attempt,
        worker_id: "test".into(),
        status: WireStatus::Ok as i32,
        output,
        usage: Some(Usage {
            calls: 1,
            prompt_tokens: 10,
            completion_tokens: 10,
            cost_usd,
            ..Default::default()
        }),
        route: "sim/default".into(),
        kind: task.kind,
        cache_key: cache_key.into(),
        ..Default::default()
    };
    let id = names::result_msg_id(&r.book_id, &r.step_id, r.attempt);
    // A second publish of the same attempt is a second delivery: give it its own message id.
    let id = format!("{id}.{}", scriptorium_proto::clock::new_id());
    bus.publish(Queue::Results, &r.book_id, &id, r.encode_to_vec().into()).await.unwrap();
}

/// Waits until the stored record satisfies `cond`.
async fn record_where(bus: &Bus, id: &str, cond: impl Fn(&BookRecord) -> bool) -> BookRecord {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        if let Some(r) = client::load(bus, id).await.unwrap()
            && cond(&r)
        {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "book record never reached the expected state: {:?}",
            client::load(bus, id).await.unwrap().map(|r| (r.state, r.failure, r.ignored_results))
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn take_lease(bus: &Bus, key: &str) {
    assert!(bus.kv_create(Bucket::Leases, key, b"w-late".to_vec().into()).await.unwrap());
}

async fn lease_released(bus: &Bus, key: &str) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while bus.kv_get(Bucket::Leases, key).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "lease {key} never released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next_cancel(cancels: &mut Cancellations) -> Cancel {
    tokio::time::timeout(WITHIN, cancels.next()).await.expect("a cancellation").unwrap()
}

#[tokio::test]
async fn leases_of_ignored_results_are_released_and_each_attempt_is_charged_once() {
    let (bus, _h, _out) = start(CoordinatorConfig::default()).await;
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(&brief_text(false, 0.0)).unwrap()).await.unwrap();
    let concept = next_task(&mut concepts).await;
    answer(&bus, &concept, sim(&concept), 0.01, "").await;

    // Attempt 1 of the cast breaks a rule; attempt 2 supersedes it.
    let cast1 = next_task(&mut casts).await;
    answer(&bus, &cast1, r#"{"characters":[]}"#.into(), 0.01, "").await;
    let cast2 = next_task(&mut casts).await;
    assert_eq!(cast2.attempt, 2);

    // A late answer of attempt 1, computed under a lease peers are waiting on: ignored, its
    // lease released, its usage not counted again (attempt 1 was charged when rejected).
    take_lease(&bus, "k-superseded").await;
    answer(&bus, &cast1, sim(&cast2), 0.01, "k-superseded").await;
    let rec = record_where(&bus, &id, |r| r.ignored_results == 1).await;
    lease_released(&bus, "k-superseded").await;
    assert_eq!(rec.usage.calls, 2, "concept and cast attempt 1, each once");
    assert_eq!(rec.steps["characters"].reserved_usd, 0.0, "no budget: nothing reserved");
    assert_eq!(rec.steps["characters"].status, StepStatus::Running);

    // The accepted answer of attempt 2, then the same answer delivered again: the duplicate is
    // ignored, releases its lease, and is not charged twice.
    answer(&bus, &cast2, sim(&cast2), 0.01, "").await;
    record_where(&bus, &id, |r| r.steps["characters"].status == StepStatus::Done).await;
    take_lease(&bus, "k-duplicate").await;
    answer(&bus, &cast2, sim(&cast2), 0.01, "k-duplicate").await;
    let rec = record_where(&bus, &id, |r| r.ignored_results == 2).await;
    lease_released(&bus, "k-duplicate").await;
    assert_eq!(rec.usage.calls, 3);
    assert!((rec.usage.cost_usd - 0.03).abs() < 1e-9, "{}", rec.usage.cost_usd);

    // A result for a book this coordinator never had: its lease is released too.
    take_lease(&bus, "k-unknown").await;
    let stranger = StepTask {
        book_id: "no-such-book".into(),
        step_id: "concept".into(),
        attempt: 1,
        kind: AgentKind::Concept as i32,
        ..Default::default()
    };
    answer(&bus, &stranger, "{}".into(), 0.01, "k-unknown").await;
    lease_released(&bus, "k-unknown").await;
}

#[tokio::test]
async fn a_failing_book_cancels_its_running_attempts_and_counts_what_they_spent_later() {
    let cfg = CoordinatorConfig { max_attempts: 1, ..Default::default() };
    let (bus, _h, _out) = start(cfg).await;
    let mut cancels = bus.cancellations().await.unwrap();
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let mut worlds = bus.source(Queue::Steps(AgentKind::World), 1).await.unwrap();
    let id = client::submit(&bus, brief::parse(&brief_text(true, 0.0)).unwrap()).await.unwrap();
    let concept = next_task(&mut concepts).await;
    answer(&bus, &concept, sim(&concept), 0.01, "").await;
    // Cast and world run in parallel; the cast breaks a rule with no attempt left.
    let cast = next_task(&mut casts).await;
    let world = next_task(&mut worlds).await;
    answer(&bus, &cast, r#"{"characters":[]}"#.into(), 0.01, "").await;
    let rec = record_where(&bus, &id, |r| r.state == Status::Failed).await;
    assert!(rec.failure.unwrap().contains("step characters"));
    let cancel = next_cancel(&mut cancels).await;
    assert_eq!(
        (cancel.book_id.as_str(), cancel.step_id.as_str(), cancel.attempt),
        (id.as_str(), "world", world.attempt),
        "the world attempt still running is cancelled"
    );

    // The world's worker missed the cancellation and answers after the book stopped: its
    // lease is released and its usage lands in the finished book's record.
    take_lease(&bus, "k-after-the-end").await;
    answer(&bus, &world, sim(&world), 0.02, "k-after-the-end").await;
    lease_released(&bus, "k-after-the-end").await;
    let rec = record_where(&bus, &id, |r| r.ignored_results == 1).await;
    assert_eq!(rec.state, Status::Failed);
    assert_eq!(rec.usage.calls, 3, "concept, cast and the late world");
    assert!((rec.usage.cost_usd - 0.04).abs() < 1e-9, "{}", rec.usage.cost_usd);
}

/// One model route with a price, so that every step reserves something.
fn priced() -> CoordinatorConfig {
    let mut prices = RoutePrices::default();
    prices.set("sim/default", RoutePrice { input: 1.0, output: 2.0 });
    CoordinatorConfig { prices, step_timeout_secs: 2, ..Default::default() }
}

#[tokio::test]
async fn a_book_whose_first_step_does_not_fit_its_budget_fails_without_dispatching() {
    let (bus, handle, _out) = start(priced()).await;
    let id = client::submit(&bus, brief::parse(&brief_text(false, 0.0001)).unwrap()).await.unwrap();
    let rec = record_where(&bus, &id, |r| r.state.is_final()).await;
    let failure = rec.failure.unwrap_or_default();
    assert_eq!(rec.state, Status::Failed);
    assert!(failure.contains("budget exceeded: step concept needs an estimated $"), "{failure}");
    assert_eq!(rec.steps["concept"].attempt, 0, "never dispatched");
    let deadline = tokio::time::Instant::now() + WITHIN;
    while handle.in_flight().await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the failed book leaves the coordinator");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Spent plus held: what the book has committed.
fn committed(r: &BookRecord) -> f64 {
    r.usage.cost_usd
        + r.steps
            .values()
            .filter(|s| s.status == StepStatus::Running)
            .map(|s| s.reserved_usd)
            .sum::<f64>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_is_never_exceeded_by_more_than_one_steps_reservation() {
    let (bus, _h, _out) = start(priced()).await;
    let mut cancels = bus.cancellations().await.unwrap();
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let mut outlines = bus.source(Queue::Steps(AgentKind::Outline), 1).await.unwrap();
    let mut chapters = bus.source(Queue::Steps(AgentKind::Chapter), 8).await.unwrap();

    let budget = 0.04;
    let id = client::submit(&bus, brief::parse(&brief_text(false, budget)).unwrap()).await.unwrap();
    let mut reservations: Vec<f64> = Vec::new();
    // Answers a task at exactly its reservation, the most an honest single call costs.
    let reserved = |rec: &BookRecord, t: &StepTask| {
        let s = &rec.steps[&t.step_id];
        assert_eq!((s.status, s.attempt), (StepStatus::Running, t.attempt));
        assert!(s.reserved_usd > 0.0, "step {} reserves its expected cost", t.step_id);
        s.reserved_usd
    };
    let mut late_cost = 0.0;
    for source in [&mut concepts, &mut casts, &mut outlines] {
        let t = next_task(source).await;
        let rec = record_where(&bus, &id, |r| r.steps[&t.step_id].attempt == t.attempt).await;
        assert!(committed(&rec) <= budget + 1e-12, "dispatched within the budget");
        let cost = reserved(&rec, &t);
        reservations.push(cost);
        answer(&bus, &t, sim(&t), cost, "").await;
    }

    // Chapters run in parallel, but only as many as the budget holds are dispatched.
    let first = next_task(&mut chapters).await;
    let rec = record_where(&bus, &id, |r| r.steps[&first.step_id].attempt == 1).await;
    let dispatched: BTreeSet<&str> = rec
        .steps
        .iter()
        .filter(|(_, s)| s.status == StepStatus::Running)
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(committed(&rec) <= budget + 1e-12, "{} > {budget}", committed(&rec));
    assert!(dispatched.len() < 3, "not every chapter fits: {dispatched:?}");
    let first_reservation = reserved(&rec, &first);
    reservations.push(first_reservation);

    // The first chapter's worker goes silent: its attempt times out, is cancelled, and is
    // asked again.
    let cancel = next_cancel(&mut cancels).await;
    assert_eq!((cancel.step_id.as_str(), cancel.attempt), (first.step_id.as_str(), 1));
    let again = loop {
        let t = next_task(&mut chapters).await;
        if t.step_id == first.step_id {
            break t;
        }
    };
    assert_eq!(again.attempt, 2);
    let rec = record_where(&bus, &id, |r| r.steps[&again.step_id].attempt == 2).await;
    assert!(committed(&rec) <= budget + 1e-12, "the timed-out attempt's reservation is freed");
    reservations.push(reserved(&rec, &again));

    // But it did not stop: its answer arrives late, at full cost. It is counted.
    late_cost += first_reservation;
    answer(&bus, &first, sim(&first), first_reservation, "").await;
    let rec = record_where(&bus, &id, |r| r.ignored_results == 1).await;
    assert!(committed(&rec) <= budget + late_cost + 1e-12);
    if rec.state == Status::Running {
        answer(&bus, &again, sim(&again), reservations[reservations.len() - 1], "").await;
    }

    // The book stops for its budget, with chapters never dispatched.
    let rec = record_where(&bus, &id, |r| r.state.is_final()).await;
    let failure = rec.failure.clone().unwrap_or_default();
    assert_eq!(rec.state, Status::Failed, "{failure}");
    assert!(failure.contains("budget exceeded"), "{failure}");
    let never: Vec<&String> =
        rec.steps.iter().filter(|(_, s)| s.attempt == 0).map(|(k, _)| k).collect();
    assert!(never.iter().any(|k| k.starts_with("chapter")), "{never:?}");
    let largest = reservations.iter().copied().fold(0.0, f64::max);
    assert!(
        rec.usage.cost_usd <= budget + largest + 1e-12,
        "spent ${} of ${budget}, more than one reservation (${largest}) over",
        rec.usage.cost_usd
    );
    assert!(rec.usage.cost_usd > budget - largest, "the budget was used, not left idle");
}
