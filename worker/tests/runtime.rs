//! What a worker process does with its steps besides answering them: it fetches only for idle
//! agents, stops an attempt the coordinator cancels (model call dropped, lease released, no
//! result), reports a step that panics as a failure and keeps the agent, and hands running
//! steps back when it shuts down. The model is an in-process test double; the queues are the
//! in-process bus or a real nats-server.

use scriptorium_common::model::{LocalAnswer, LocalModel, LocalRequest};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, NatsOptions, Queue, QueueSettings};
use scriptorium_proto::v1::{AgentKind, BookBrief, FailureCause, StepResult, StepStatus, StepTask};
use scriptorium_proto::{Bus, Source, names};
use scriptorium_test_support::nats_server::NatsServer;
use scriptorium_worker::{Worker, WorkerConfig};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A model whose calls of one kind hang (the first `hangs` of them) or panic; the rest are
/// answered by the simulated model. It counts calls started and calls dropped unfinished.
#[derive(Debug)]
struct Model {
    kind: AgentKind,
    hangs: u32,
    panics: u32,
    started: AtomicU32,
    dropped: Arc<AtomicU32>,
    sim: scriptorium_sim::SimModel,
}

impl Model {
    fn new(kind: AgentKind, hangs: u32, panics: u32) -> Arc<Self> {
        Arc::new(Model {
            kind,
            hangs,
            panics,
            started: AtomicU32::new(0),
            dropped: Arc::default(),
            sim: Default::default(),
        })
    }

    fn started(&self) -> u32 {
        self.started.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> u32 {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Counts a call dropped before it finished.
struct DropCount(Arc<AtomicU32>, bool);

impl Drop for DropCount {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl LocalModel for Model {
    fn answer<'a>(
        &'a self,
        req: LocalRequest<'a>,
    ) -> Pin<Box<dyn Future<Output = LocalAnswer> + Send + 'a>> {
        Box::pin(async move {
            if req.kind != self.kind {
                return self.sim.answer(req).await;
            }
            let n = self.started.fetch_add(1, Ordering::SeqCst);
            let mut guard = DropCount(self.dropped.clone(), false);
            if n < self.panics {
                guard.1 = true;
                panic!("the model answer broke the parser");
            }
            if n < self.hangs {
                std::future::pending::<()>().await;
            }
            let answer = self.sim.answer(req).await;
            guard.1 = true;
            answer
        })
    }
}

fn config(id: &str, model: Arc<Model>, pools: &[(AgentKind, usize)]) -> WorkerConfig {
    let mut cfg = WorkerConfig::new(id);
    cfg.pools = pools.iter().copied().collect();
    cfg.local_model = Some(model);
    cfg.heartbeat_every = Duration::from_millis(100);
    cfg
}

/// A step of `book`; each book has its own seed, so its requests are its own.
fn task(book: &str, kind: AgentKind, step: &str, attempt: u32) -> StepTask {
    StepTask {
        book_id: book.into(),
        step_id: step.into(),
        kind: kind as i32,
        attempt,
        brief: Some(BookBrief {
            project: "p".into(),
            category: "fiction".into(),
            genre: "fantasy".into(),
            description: "A tide-reader steals back a ledger.".into(),
            chapters: 3,
            words_per_chapter: 600,
            characters: 3,
            worldbuilding: true,
            review_mode: "ai".into(),
            seed: book.bytes().map(u64::from).sum(),
            ..Default::default()
        }),
        routes: vec!["sim/default".into()],
        cache: true,
        ..Default::default()
    }
}

async fn publish(bus: &Bus, t: &StepTask) {
    let id = names::step_msg_id(&t.book_id, &t.step_id, t.attempt);
    bus.publish(Queue::Steps(t.kind()), "", &id, t.encode_to_vec().into()).await.unwrap();
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The results published within `wait`.
async fn results(source: &mut Source, wait: Duration) -> Vec<StepResult> {
    let mut out = Vec::new();
    for m in source.fetch(100, wait).await.unwrap() {
        out.push(StepResult::decode(m.payload.clone()).unwrap());
        m.acker.ack().await.unwrap();
    }
    out
}

fn cache_key(t: &StepTask) -> String {
    let (system, user) =
        scriptorium_worker::prompts::Prompts::load(None).unwrap().render(t).unwrap();
    scriptorium_worker::cache::ResponseCache::key(t, &system, &user)
}

#[tokio::test]
async fn a_cancelled_attempt_stops_releases_its_lease_and_reports_nothing() {
    let bus = Bus::memory();
    let mut out = bus.source(Queue::Results, 1).await.unwrap();
    let model = Model::new(AgentKind::Concept, 1, 0);
    let worker = Worker::start(bus.clone(), config("w", model.clone(), &[(AgentKind::Concept, 1)]))
        .await
        .unwrap();
    let first = task("b1", AgentKind::Concept, "concept", 1);
    let key = cache_key(&first);
    publish(&bus, &first).await;
    wait_for("the model call", async || model.started() == 1).await;
    assert!(bus.kv_get(Bucket::Leases, &key).await.unwrap().is_some(), "computing under a lease");
    // Another attempt's cancellation changes nothing.
    bus.announce_cancel("b1", "concept", 7).await.unwrap();
    bus.announce_cancel("b1", "concept", 1).await.unwrap();
    wait_for("the model call to be dropped", async || model.dropped() == 1).await;
    wait_for("the lease to be released", async || {
        bus.kv_get(Bucket::Leases, &key).await.unwrap().is_none()
    })
    .await;
    wait_for("the step to end", async || worker.steps_done() == 1).await;
    assert!(results(&mut out, Duration::from_millis(300)).await.is_empty(), "no result");
    // The agent is free: the next attempt runs and reports.
    publish(&bus, &task("b1", AgentKind::Concept, "concept", 2)).await;
    let got = results(&mut out, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].attempt, got[0].status), (2, StepStatus::Ok as i32), "{got:?}");
    // An attempt cancelled before it arrives is dropped without a model call.
    bus.announce_cancel("b2", "concept", 1).await.unwrap();
    tokio::task::yield_now().await;
    publish(&bus, &task("b2", AgentKind::Concept, "concept", 1)).await;
    wait_for("the late step to end", async || worker.steps_done() == 3).await;
    assert_eq!(model.started(), 2, "the cancelled attempt never reached the model");
    assert!(results(&mut out, Duration::from_millis(300)).await.is_empty());
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_step_that_panics_is_reported_as_a_failure_and_its_agent_lives_on() {
    let bus = Bus::memory();
    let mut out = bus.source(Queue::Results, 1).await.unwrap();
    let model = Model::new(AgentKind::Concept, 0, 1);
    let worker = Worker::start(bus.clone(), config("w", model.clone(), &[(AgentKind::Concept, 1)]))
        .await
        .unwrap();
    let first = task("b1", AgentKind::Concept, "concept", 1);
    publish(&bus, &first).await;
    let got = results(&mut out, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status, StepStatus::Failed as i32);
    assert!(got[0].error.contains("the worker crashed on this step"), "{}", got[0].error);
    assert!(got[0].error.contains("broke the parser"), "{}", got[0].error);
    let failure = got[0].failure.clone().expect("a typed failure");
    assert_eq!(failure.cause(), FailureCause::Crashed);
    // Nobody waits on a lease for an answer that will never come.
    assert!(bus.kv_get(Bucket::Leases, &cache_key(&first)).await.unwrap().is_none());
    // The pool's only agent answers the re-ask.
    publish(&bus, &task("b1", AgentKind::Concept, "concept", 2)).await;
    let got = results(&mut out, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].attempt, got[0].status), (2, StepStatus::Ok as i32));
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_step_of_a_kind_no_agent_answers_is_refused_never_mapped_to_another() {
    let bus = Bus::memory();
    let mut out = bus.source(Queue::Results, 1).await.unwrap();
    let model = Model::new(AgentKind::Edit, 0, 0);
    let worker = Worker::start(bus.clone(), config("w", model.clone(), &[(AgentKind::Concept, 1)]))
        .await
        .unwrap();
    // On the concept queue: a step of a kind a newer coordinator made (99), and one of
    // assembly, which the coordinator does itself: dead-lettered with the rule, not answered.
    for (step, kind) in [("poem", 99), ("assembly", AgentKind::Assembly as i32)] {
        let t = StepTask { kind, ..task("b1", AgentKind::Concept, step, 1) };
        let id = names::step_msg_id(&t.book_id, &t.step_id, t.attempt);
        bus.publish(Queue::Steps(AgentKind::Concept), "", &id, t.encode_to_vec().into())
            .await
            .unwrap();
        let got = results(&mut out, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].status, StepStatus::DeadLettered as i32, "{step}");
        let failure = got[0].failure.clone().expect("a typed failure");
        assert_eq!(failure.cause(), FailureCause::UnknownKind, "{step}: {failure:?}");
        assert!(failure.message.contains("on the concept queue"), "{failure:?}");
        assert_eq!(got[0].output, "", "{step}: nothing was answered");
    }
    assert_eq!(model.started(), 0, "no model call for a kind nobody answers");
    worker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_priority_step_is_taken_before_the_normal_ones_that_waited_longer() {
    let bus = Bus::memory();
    let mut out = bus.source(Queue::Results, 8).await.unwrap();
    for b in ["n1", "n2", "n3"] {
        publish(&bus, &task(b, AgentKind::Concept, "concept", 1)).await;
    }
    let urgent = task("p1", AgentKind::Concept, "concept", 1);
    let id = names::step_msg_id(&urgent.book_id, &urgent.step_id, urgent.attempt);
    bus.publish(Queue::PrioritySteps(AgentKind::Concept), "", &id, urgent.encode_to_vec().into())
        .await
        .unwrap();
    // One agent: it takes one step at a time, and the first is the priority one.
    let model = Model::new(AgentKind::Edit, 0, 0);
    let worker =
        Worker::start(bus.clone(), config("w", model, &[(AgentKind::Concept, 1)])).await.unwrap();
    let mut order = Vec::new();
    while order.len() < 4 {
        for r in results(&mut out, Duration::from_secs(10)).await {
            assert_eq!(r.status, StepStatus::Ok as i32, "{r:?}");
            order.push(r.book_id);
        }
    }
    assert_eq!(order, ["p1", "n1", "n2", "n3"]);
    worker.shutdown(Duration::from_secs(1)).await;
}

/// A bus whose steps wait a minute before an unacknowledged delivery expires: whatever
/// comes back sooner was handed back.
async fn nats_bus(server: &NatsServer, name: &str) -> Bus {
    let opts = NatsOptions {
        name: name.into(),
        steps: QueueSettings {
            ack_wait: Duration::from_secs(60),
            max_deliver: 10,
            ..Default::default()
        },
        lease_ttl: Duration::from_secs(10),
        ..Default::default()
    };
    Bus::connect(&server.url(), opts).await.unwrap()
}

/// Deliveries of the concept consumer not yet acknowledged, and messages not yet delivered.
async fn concept_queue(bus: &Bus) -> (usize, u64) {
    let Bus::Nats(nats) = bus else { unreachable!("a NATS bus") };
    let stream = nats.jetstream().get_stream(names::STEPS_STREAM).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&names::step_consumer(AgentKind::Concept)).await.unwrap();
    let info = consumer.info().await.unwrap();
    (info.num_ack_pending, info.num_pending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_fetches_only_for_idle_agents_and_hands_steps_back_when_it_stops() {
    let server = tokio::task::spawn_blocking(NatsServer::start).await.unwrap().unwrap();
    let bus = nats_bus(&server, "test").await;
    let model = Model::new(AgentKind::Concept, u32::MAX, 0);
    let pools = [(AgentKind::Concept, 2)];
    let worker = Worker::start(bus.clone(), config("w1", model.clone(), &pools)).await.unwrap();
    for b in ["b1", "b2", "b3", "b4", "b5"] {
        publish(&bus, &task(b, AgentKind::Concept, "concept", 1)).await;
    }
    wait_for("both agents busy", async || model.started() == 2).await;
    // Busy agents ask for nothing more: the other three steps stay in the queue.
    for _ in 0..10 {
        assert_eq!(concept_queue(&bus).await, (2, 3), "the worker holds only what it runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second worker takes what the first left, again no more than its idle agents.
    let other_bus = nats_bus(&server, "other").await;
    let other = Worker::start(other_bus, config("w2", model.clone(), &[(AgentKind::Concept, 1)]))
        .await
        .unwrap();
    wait_for("the second worker's agent busy", async || model.started() == 3).await;
    assert_eq!(concept_queue(&bus).await, (3, 2));
    // Stopping, the first worker hands its two running steps back at once (long before the
    // minute's ack wait), releases their leases and publishes nothing.
    worker.shutdown(Duration::from_millis(200)).await;
    assert_eq!(model.dropped(), 2, "both running calls were stopped");
    let mut steps = bus.source(Queue::Steps(AgentKind::Concept), 1).await.unwrap();
    let mut back = Vec::new();
    wait_for("the two steps handed back", async || {
        back.extend(steps.fetch(10, Duration::from_secs(1)).await.unwrap());
        back.iter().filter(|m| m.delivered == 2).count() == 2
    })
    .await;
    let mut redelivered: Vec<String> = back
        .iter()
        .filter(|m| m.delivered == 2)
        .map(|m| StepTask::decode(m.payload.clone()).unwrap().book_id)
        .collect();
    redelivered.sort();
    assert_eq!(redelivered, ["b1", "b2"]);
    for book in &redelivered {
        let t = task(book, AgentKind::Concept, "concept", 1);
        assert!(bus.kv_get(Bucket::Leases, &cache_key(&t)).await.unwrap().is_none());
    }
    for m in back {
        m.acker.ack().await.unwrap();
    }
    other.shutdown(Duration::from_millis(200)).await;
}
