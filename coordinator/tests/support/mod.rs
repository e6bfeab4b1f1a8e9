//! What the coordinator's tests share: a coordinator on the in-process bus, the test playing
//! the worker (steps read from their queues, results published back), and waits on the stored
//! record.
#![allow(dead_code)]

use scriptorium_coordinator::record::BookRecord;
use scriptorium_coordinator::{CoordinatorConfig, CoordinatorHandle, client};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::{StepResult, StepStatus as WireStatus, StepTask, Usage};
use scriptorium_proto::{Bus, Source, names};
use std::time::Duration;

/// A coordinator with `cfg` (its out dir a temporary one) on a new in-process bus.
pub async fn start_with(cfg: CoordinatorConfig) -> (Bus, CoordinatorHandle, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let bus = Bus::memory();
    let cfg = CoordinatorConfig { out_dir: out.path().into(), ..cfg };
    let handle = CoordinatorHandle::start(bus.clone(), cfg).await.unwrap();
    (bus, handle, out)
}

/// A coordinator with `cfg` (its out dir a temporary one) on `bus`, which may hold books
/// already.
pub async fn start_on(bus: Bus, cfg: CoordinatorConfig) -> (CoordinatorHandle, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let cfg = CoordinatorConfig { out_dir: out.path().into(), ..cfg };
    let handle = CoordinatorHandle::start(bus, cfg).await.unwrap();
    (handle, out)
}

/// A real nats-server, for what the in-process bus cannot show (a coordinator started anew on
/// the same store), with a coordinator configuration writing books into a temporary directory.
pub struct RealNats {
    pub nats: scriptorium_test_support::nats_server::NatsServer,
    pub out: tempfile::TempDir,
    pub cfg: CoordinatorConfig,
}

impl RealNats {
    pub async fn start() -> RealNats {
        let start = scriptorium_test_support::nats_server::NatsServer::start;
        let nats = tokio::task::spawn_blocking(start).await.unwrap().unwrap();
        let out = tempfile::tempdir().unwrap();
        let cfg = CoordinatorConfig { out_dir: out.path().into(), ..Default::default() };
        RealNats { nats, out, cfg }
    }

    /// A new connection to the server.
    pub async fn connect(&self) -> Bus {
        let options = scriptorium_proto::transport::NatsOptions::default();
        Bus::connect(&self.nats.url(), options).await.unwrap()
    }

    /// A coordinator on a connection of its own.
    pub async fn coordinator(&self) -> CoordinatorHandle {
        CoordinatorHandle::start(self.connect().await, self.cfg.clone()).await.unwrap()
    }
}

/// The next step dispatched on `source` (within 5 s).
pub async fn next_task(source: &mut Source) -> StepTask {
    let m = tokio::time::timeout(Duration::from_secs(5), source.next())
        .await
        .expect("a step is dispatched");
    StepTask::decode(m.unwrap().unwrap().payload).unwrap()
}

/// Whether `source` stays silent for `wait`: no step is dispatched.
pub async fn nothing_on(source: &mut Source, wait: Duration) -> bool {
    tokio::time::timeout(wait, source.next()).await.is_err()
}

/// Publishes `output` as the answer of `task`, as a worker would.
pub async fn answer(bus: &Bus, task: &StepTask, output: String) {
    publish(bus, &result(task, output)).await;
}

/// What a worker answers to `task` with `output`.
pub fn result(task: &StepTask, output: String) -> StepResult {
    StepResult {
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
            ..Default::default()
        }),
        route: "sim/test".into(),
        kind: task.kind,
        ..Default::default()
    }
}

/// Publishes `r` on the results queue, as a worker would.
pub async fn publish(bus: &Bus, r: &StepResult) {
    let id = names::result_msg_id(&r.book_id, &r.step_id, r.attempt);
    bus.publish(Queue::Results, &r.book_id, &id, r.encode_to_vec().into()).await.unwrap();
}

/// Waits (up to 6 s) until the stored record of `id` satisfies `cond`.
pub async fn record_where(bus: &Bus, id: &str, cond: impl Fn(&BookRecord) -> bool) -> BookRecord {
    for _ in 0..600 {
        if let Some(r) = client::load(bus, id).await.unwrap()
            && cond(&r)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "book record never reached the expected state: {:?}",
        client::load(bus, id).await.unwrap().map(|r| (r.state, r.failure, r.ignored_results))
    );
}

/// The user message a worker renders for `task`.
pub fn user(task: &StepTask) -> String {
    scriptorium_worker::prompts::Prompts::load(None).unwrap().render(task).unwrap().1
}

/// The simulated model's answer to `task`'s rendered prompt.
pub fn sim(task: &StepTask) -> String {
    scriptorium_contracts::sim::answer(task.kind(), &user(task), 1, false)
}
