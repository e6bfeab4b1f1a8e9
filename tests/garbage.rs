//! Garbage on every queue of a real nats-server is dead-lettered with a reason; no actor
//! crashes and books keep being written.

use scriptorium_coordinator::record::Status;
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, brief, client};
use scriptorium_proto::Bus;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{NatsOptions, Queue};
use scriptorium_proto::v1::{AgentKind, BookBrief, StepResult, StepTask, SubmitBook};
use scriptorium_worker::{Worker, WorkerConfig};
use std::time::Duration;

const BRIEF: &str = "category = \"business\"\ndescription = \"Small bets.\"\nchapters = 2\nwords_per_chapter = 150\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_dead_lettered_with_a_reason_and_books_still_complete() {
    let nats =
        scriptorium_test_support::nats_server::NatsServer::start().expect("nats-server starts");
    let url = nats.url();
    let bus = Bus::connect(&url, NatsOptions::default()).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut wcfg = WorkerConfig::new("w-garbage");
    wcfg.local_model = Some(std::sync::Arc::new(scriptorium_sim::SimModel::default()));
    let worker = Worker::start(bus.clone(), wcfg).await.unwrap();
    let cfg = CoordinatorConfig { out_dir: out.path().into(), ..Default::default() };
    let coordinator = CoordinatorHandle::start(bus.clone(), cfg).await.unwrap();

    let garbage = bytes::Bytes::from_static(&[0xff; 24]);
    bus.publish(Queue::Steps(AgentKind::Chapter), "", "g-step", garbage.clone()).await.unwrap();
    bus.publish(Queue::Results, "nobook", "g-result", garbage.clone()).await.unwrap();
    bus.publish(Queue::Submit, "", "g-submit", garbage.clone()).await.unwrap();
    let wrong_kind = StepTask {
        book_id: "b".into(),
        step_id: "review-01".into(),
        kind: AgentKind::Review as i32,
        ..Default::default()
    };
    bus.publish(Queue::Steps(AgentKind::Chapter), "", "g-kind", wrong_kind.encode_to_vec().into())
        .await
        .unwrap();
    let oversized = StepTask {
        book_id: "b".into(),
        step_id: "chapter-01".into(),
        kind: AgentKind::Chapter as i32,
        context: Some(scriptorium_proto::v1::StepContext {
            feedback: "x".repeat(600 * 1024),
            ..Default::default()
        }),
        ..Default::default()
    };
    bus.publish(Queue::Steps(AgentKind::Chapter), "", "g-big", oversized.encode_to_vec().into())
        .await
        .unwrap();
    let unknown_book = StepResult {
        book_id: "nobody".into(),
        step_id: "concept".into(),
        attempt: 1,
        ..Default::default()
    };
    bus.publish(Queue::Results, "nobody", "g-unknown", unknown_book.encode_to_vec().into())
        .await
        .unwrap();
    let bad_brief = SubmitBook {
        book_id: "refused1".into(),
        brief: Some(BookBrief { category: "poetry".into(), ..Default::default() }),
        ..Default::default()
    };
    bus.publish(Queue::Submit, "", "g-brief", bad_brief.encode_to_vec().into()).await.unwrap();

    // Books keep being written.
    let id = client::submit(&bus, brief::parse(BRIEF).unwrap()).await.unwrap();
    let recs = client::wait(&bus, std::slice::from_ref(&id), Some(Duration::from_secs(60)), |_| {})
        .await
        .unwrap();
    assert_eq!(recs[0].state, Status::Done, "{:?}", recs[0].failure);

    // The refused brief is recorded as failed with the rule.
    let refused = client::load(&bus, "refused1").await.unwrap().expect("refusal recorded");
    assert_eq!(refused.state, Status::Failed);
    assert!(refused.failure.unwrap().contains("brief field `category`"));

    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = bus.dead_letters().await.unwrap();
        if letters.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got: Vec<(String, String)> =
        letters.iter().map(|d| (d.queue.clone(), d.reason.clone())).collect();
    got.sort();
    let expect = [
        ("chapter", "exceeds"),
        ("chapter", "step on the chapter queue"),
        ("chapter", "undecodable step message"),
        ("results", "undecodable result message"),
        ("submit", "brief refused: brief field `category`"),
        ("submit", "undecodable submission"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:?}");
    for (queue, reason) in expect {
        assert!(
            got.iter().any(|(q, r)| q == queue && r.contains(reason)),
            "missing ({queue}, {reason}) in {got:?}"
        );
    }
    // The result for an unknown book is ignored and counted, not dead-lettered.
    assert!(coordinator.stats().ignored.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    coordinator.shutdown().await;
    worker.shutdown(Duration::from_secs(1)).await;
}
