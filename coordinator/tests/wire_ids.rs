//! Ids from the wire on a real nats-server: a submission or a result whose book or step id is
//! not a valid id is dead-lettered once with the rule it broke (never handed back and
//! redelivered), and the books around it go on.

use async_nats::jetstream::consumer::PullConsumer;
use scriptorium_coordinator::record::{Status, StepStatus};
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, brief, client};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{NatsOptions, Queue};
use scriptorium_proto::v1::{
    AgentKind, StepResult, StepStatus as WireStatus, StepTask, SubmitBook,
};
use scriptorium_proto::{Bus, Source, names};
use scriptorium_test_support::nats_server::NatsServer;
use std::time::Duration;

/// How long anything may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(60);

const BRIEF: &str = "title = \"Ids\"\ncategory = \"fiction\"\ndescription = \"A test.\"\n\
                     chapters = 2\ncharacters = 2\nworldbuilding = false\nwords_per_chapter = 200\n";

async fn next_task(source: &mut Source) -> StepTask {
    let m = tokio::time::timeout(WITHIN, source.next()).await.expect("a step is dispatched");
    let m = m.unwrap().unwrap();
    m.acker.ack().await.unwrap();
    StepTask::decode(m.payload).unwrap()
}

fn sim(task: &StepTask) -> String {
    let prompts = scriptorium_worker::prompts::Prompts::load(None).unwrap();
    let (_, user) = prompts.render(task).unwrap();
    scriptorium_contracts::sim::answer(task.kind(), &user, 1, false)
}

fn result(book_id: &str, step_id: &str, attempt: u32, output: String) -> StepResult {
    StepResult {
        book_id: book_id.into(),
        step_id: step_id.into(),
        attempt,
        worker_id: "test".into(),
        status: WireStatus::Ok as i32,
        output,
        ..Default::default()
    }
}

async fn publish(bus: &Bus, queue: Queue, msg_id: &str, payload: Vec<u8>) {
    // Results go on `scriptorium.results.<key>`: a valid token, whatever the id inside.
    bus.publish(queue, "k", msg_id, payload.into()).await.unwrap();
}

async fn consumer(bus: &Bus, stream: &str, name: &str) -> PullConsumer {
    let Bus::Nats(nats) = bus else { unreachable!("a NATS bus") };
    nats.jetstream().get_stream(stream).await.unwrap().get_consumer(name).await.unwrap()
}

/// Waits until the coordinator's consumer `name` has nothing left to deliver or acknowledge,
/// and returns how many deliveries it made again.
async fn drained(bus: &Bus, stream: &str, name: &str) -> u64 {
    let mut c = consumer(bus, stream, name).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let info = c.info().await.unwrap().clone();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return info.num_redelivered as u64;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never drained: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_on_the_wire_are_dead_lettered_once_and_other_books_go_on() {
    let nats = NatsServer::start().unwrap();
    let bus = Bus::connect(&nats.url(), NatsOptions::default()).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let cfg = CoordinatorConfig { out_dir: out.path().into(), ..Default::default() };
    let coordinator = CoordinatorHandle::start(bus.clone(), cfg).await.unwrap();
    let mut concepts = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut casts = bus.source(Queue::Steps(AgentKind::Characters), 1).await.unwrap();
    let mut outlines = bus.source(Queue::Steps(AgentKind::Outline), 1).await.unwrap();

    let good = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let concept = next_task(&mut concepts).await;
    assert_eq!(concept.book_id, good);

    // Book ids NATS refuses as keys (or that are not one subject token), on submissions.
    let long = "x".repeat(names::MAX_ID_LEN + 1);
    let bad_books = ["bad.id", "bad id", "", "a*", "../etc", long.as_str()];
    for (i, bad) in bad_books.iter().enumerate() {
        let sub = SubmitBook {
            book_id: bad.to_string(),
            brief: Some(brief::parse(BRIEF).unwrap()),
            ..Default::default()
        };
        publish(&bus, Queue::Submit, &format!("bad-submit-{i}"), sub.encode_to_vec()).await;
    }
    // A retry of the good book naming a step id that is not one.
    let retry = SubmitBook {
        book_id: good.clone(),
        brief: Some(brief::parse(BRIEF).unwrap()),
        retry: true,
        step: "concept.1".into(),
        ..Default::default()
    };
    publish(&bus, Queue::Submit, "bad-retry", retry.encode_to_vec()).await;
    // Results with a bad book id, and with a bad step id for the good book.
    let bad_result = result("bad.id", "concept", 1, "{}".into());
    publish(&bus, Queue::Results, "bad-result-book", bad_result.encode_to_vec()).await;
    let bad_step = result(&good, "con cept", 1, "{}".into());
    publish(&bus, Queue::Results, "bad-result-step", bad_step.encode_to_vec()).await;

    // The good book goes on: its results are accepted and its next steps dispatched.
    let ok = result(&good, "concept", concept.attempt, sim(&concept));
    publish(&bus, Queue::Results, "good-concept", ok.encode_to_vec()).await;
    let cast = next_task(&mut casts).await;
    assert_eq!(cast.book_id, good);
    let ok = result(&good, "characters", cast.attempt, sim(&cast));
    publish(&bus, Queue::Results, "good-cast", ok.encode_to_vec()).await;
    let outline = next_task(&mut outlines).await;
    assert_eq!(outline.book_id, good);

    // Every bad message is dead-lettered once, with the rule.
    let expected = bad_books.len() + 3;
    let deadline = tokio::time::Instant::now() + WITHIN;
    let letters = loop {
        let letters = bus.dead_letters().await.unwrap();
        if letters.len() >= expected {
            break letters;
        }
        assert!(tokio::time::Instant::now() < deadline, "dead letters: {letters:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(letters.len(), expected, "{letters:?}");
    let count = |queue: &str, rule: &str| {
        letters.iter().filter(|d| d.queue == queue && d.reason.contains(rule)).count()
    };
    assert_eq!(count("submit", "submission refused: invalid book id"), bad_books.len());
    assert_eq!(count("submit", "submission refused: invalid step id \"concept.1\""), 1);
    assert_eq!(count("results", "result refused: invalid book id \"bad.id\""), 1);
    assert_eq!(count("results", "result refused: invalid step id \"con cept\""), 1);
    for d in &letters {
        assert!(d.reason.contains("letters, digits, - or _"), "{}", d.reason);
        assert!(d.reason.len() < 256, "a bounded reason: {}", d.reason);
    }

    // Nothing was handed back for redelivery, and no record was written for a bad id.
    assert_eq!(drained(&bus, names::SUBMIT_STREAM, names::SUBMIT_CONSUMER).await, 0);
    assert_eq!(drained(&bus, names::RESULTS_STREAM, names::RESULTS_CONSUMER).await, 0);
    let stored = client::list(&bus).await.unwrap();
    assert_eq!(stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [good.as_str()]);
    let rec = &client::load(&bus, &good).await.unwrap().unwrap();
    assert_eq!(rec.state, Status::Running);
    assert_eq!(rec.steps["characters"].status, StepStatus::Done);
    assert_eq!(rec.ignored_results, 0, "the bad results never reached the book");
    coordinator.shutdown().await;
}
