//! A worker process: one pool of agent actors per agent kind, each fed by one puller task that
//! owns the kind's queue, plus a heartbeat task.
//!
//! The puller asks the queue for as many steps as its pool has idle agents and no more, so a
//! process never holds a step it is not working on: the rest stay in JetStream for other
//! workers, and a process that dies takes with it only the deliveries it was running. A step
//! delivered `max_deliver` times (each time to a worker that died or hung before reporting) is
//! dead-lettered; failures a worker survives are reported as results instead.

use crate::agent::{Agent, AgentArgs, AgentEnv, AgentMsg};
use crate::prompts::Prompts;
use crate::providers::{Models, ModelsConfig};
use crate::running::Stop;
use anyhow::Context as _;
use ractor::{Actor, ActorRef};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, Queue};
use scriptorium_proto::v1::{
    AgentKind, Failure, FailureCause, PoolStatus, StepTask, WorkerHeartbeat,
};
use scriptorium_proto::{Bus, clock, kind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Settings of a worker process.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique id of this process.
    pub id: String,
    /// Pool size per agent kind (0 = this process does not serve the kind).
    pub pools: BTreeMap<AgentKind, usize>,
    /// Directory of prompt template overrides.
    pub prompts_dir: Option<PathBuf>,
    /// Model providers.
    pub models: ModelsConfig,
    /// Interval between heartbeats.
    pub heartbeat_every: Duration,
    /// Interval of in-progress acknowledgements during long model calls.
    pub progress_every: Duration,
    /// Response cache settings.
    pub cache: crate::cache::CacheConfig,
    /// Deliveries of a step message after which it is dead-lettered (the consumer's MaxDeliver).
    pub max_deliver: u64,
    /// The model that answers in this process for `sim` providers (the binary's simulated one).
    pub local_model: Option<std::sync::Arc<dyn crate::providers::LocalModel>>,
    /// The GGUF model this process holds for `embedded` providers, loaded at start.
    pub embedded_model: Option<std::sync::Arc<dyn crate::providers::LocalModel>>,
}

impl WorkerConfig {
    /// Default pools: each agent kind's own default size (four, sixteen for the kinds a book
    /// has one step a chapter of).
    pub fn default_pools() -> BTreeMap<AgentKind, usize> {
        scriptorium_contracts::kinds::REGISTRY
            .iter()
            .map(|k| (k.kind(), k.default_pool()))
            .collect()
    }

    /// A config with default pools and the given id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            pools: Self::default_pools(),
            prompts_dir: None,
            models: ModelsConfig::default(),
            heartbeat_every: Duration::from_secs(5),
            progress_every: Duration::from_secs(3),
            cache: Default::default(),
            max_deliver: 10,
            local_model: None,
            embedded_model: None,
        }
    }
}

/// A running worker process.
pub struct Worker {
    stop: watch::Sender<bool>,
    pullers: JoinSet<Vec<ActorRef<AgentMsg>>>,
    heartbeat: tokio::task::JoinHandle<()>,
    evictions: tokio::task::JoinHandle<()>,
    cancellations: tokio::task::JoinHandle<()>,
    env: Arc<AgentEnv>,
    pool_sizes: BTreeMap<AgentKind, usize>,
}

impl Worker {
    /// Starts the pools and begins pulling steps. Refused when `cfg.id` is not a valid id, or
    /// is the id of a live worker (see [`claim_id`]).
    pub async fn start(bus: Bus, cfg: WorkerConfig) -> anyhow::Result<Worker> {
        check_id(&cfg.id)?;
        let prompts = Prompts::load(cfg.prompts_dir.as_deref()).context("loading prompts")?;
        claim_id(&bus, &cfg.id, cfg.heartbeat_every).await?;
        let env = Arc::new(AgentEnv {
            bus: bus.clone(),
            models: Models::with_locals(
                &cfg.models,
                cfg.local_model.clone(),
                cfg.embedded_model.clone(),
            ),
            prompts,
            worker_id: cfg.id.clone(),
            progress_every: cfg.progress_every,
            steps_done: Default::default(),
            cache: Arc::new(crate::cache::ResponseCache::new(
                cfg.cache.clone(),
                bus.clone(),
                cfg.id.clone(),
            )),
            running: Default::default(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut pullers = JoinSet::new();
        for (&kind, &size) in cfg.pools.iter().filter(|(_, s)| **s > 0) {
            let source = Steps {
                priority: bus
                    .source(Queue::PrioritySteps(kind), size)
                    .await
                    .with_context(|| format!("opening the {} priority queue", kind::name(kind)))?,
                normal: bus
                    .source(Queue::Steps(kind), size)
                    .await
                    .with_context(|| format!("opening the {} queue", kind::name(kind)))?,
            };
            let (idle_tx, idle_rx) = mpsc::unbounded_channel();
            let mut agents = Vec::with_capacity(size);
            for _ in 0..size {
                let (agent, _) = Actor::spawn(
                    None,
                    Agent,
                    AgentArgs { env: env.clone(), idle: idle_tx.clone() },
                )
                .await
                .context("spawning an agent")?;
                agents.push(agent);
            }
            crate::metrics::pool_started(kind, size);
            let ctx = PullCtx {
                kind,
                bus: bus.clone(),
                worker_id: cfg.id.clone(),
                max_deliver: cfg.max_deliver,
                stop: stop_rx.clone(),
            };
            pullers.spawn(pull(source, idle_rx, agents, ctx));
        }
        let evictions = tokio::spawn(env.cache.clone().follow_evictions());
        let cancellations = tokio::spawn(follow_cancellations(env.clone()));
        let heartbeat = tokio::spawn(heartbeats(
            bus,
            env.clone(),
            cfg.pools.clone(),
            cfg.heartbeat_every,
            stop_rx,
        ));
        tracing::info!(worker_id = %cfg.id, "worker started");
        Ok(Worker {
            stop,
            pullers,
            heartbeat,
            evictions,
            cancellations,
            env,
            pool_sizes: cfg.pools,
        })
    }

    /// Steps finished by this process so far.
    pub fn steps_done(&self) -> u64 {
        self.env.steps_done.load(Ordering::Relaxed)
    }

    /// Stops pulling, lets in-flight steps finish for up to `grace`, then hands the steps
    /// still running back to the queue (released leases, no results) and stops the agents.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let running = &self.env.running;
        let drained = |within: Duration| async move {
            let deadline = tokio::time::Instant::now() + within;
            while !running.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        drained(grace).await;
        if !running.is_empty() {
            tracing::warn!(
                steps = running.len(),
                "shutdown grace over; handing the unfinished steps back"
            );
            running.stop_all(Stop::Shutdown);
            drained(Duration::from_secs(5)).await;
        }
        while let Some(agents) = self.pullers.join_next().await {
            for a in agents.unwrap_or_default() {
                a.stop(None);
            }
        }
        self.heartbeat.abort();
        self.evictions.abort();
        self.cancellations.abort();
        // The heartbeat task may be inside a write: once it has ended, the delete below goes out
        // after that write on the same connection, never before it.
        let _ = (&mut self.heartbeat).await;
        // Gone at once from `workers`, rather than shown up, then lost, until it expires.
        if let Err(e) = self.env.bus.kv_delete(Bucket::Workers, &self.env.worker_id).await {
            tracing::warn!(error = %e, "heartbeat not deleted; it expires");
        }
        tracing::info!(pools = ?self.pool_sizes.len(), "worker stopped");
    }
}

/// Refuses a worker id that cannot name a worker everywhere ids go (heartbeat keys, results):
/// the rule of every id ([`scriptorium_proto::names::valid_id`]).
pub fn check_id(id: &str) -> anyhow::Result<()> {
    if scriptorium_proto::names::valid_id(id) {
        return Ok(());
    }
    anyhow::bail!(
        "worker id {id:?}: ids are 1 to {} letters, digits, - or _",
        scriptorium_proto::names::MAX_ID_LEN
    )
}

/// Heartbeats of a worker live for this many intervals: a worker whose latest heartbeat is
/// older is lost (the `workers` view says so after as many).
const LIVE_HEARTBEATS: u32 = 3;

/// Takes `id` for this process: refused when a live worker's heartbeat has it (its latest
/// heartbeat younger than three intervals), unless that heartbeat is this machine's and its
/// process is gone (a worker restarted after a crash, as a container keeps its pod's name). A
/// heartbeat written at once marks the id taken for the next worker to start.
async fn claim_id(bus: &Bus, id: &str, every: Duration) -> anyhow::Result<()> {
    let host = scriptorium_common::ops::host_name();
    let mine = WorkerHeartbeat {
        worker_id: id.into(),
        host: host.clone(),
        pid: std::process::id(),
        at_unix_ms: clock::now_ms(),
        started_unix_ms: clock::now_ms(),
        ..Default::default()
    };
    if bus
        .kv_create(Bucket::Workers, id, mine.encode_to_vec().into())
        .await
        .context("claiming the worker id")?
    {
        return Ok(());
    }
    let other = bus.kv_get(Bucket::Workers, id).await.context("reading the worker's heartbeat")?;
    if let Some(hb) = other.and_then(|b| WorkerHeartbeat::decode(b).ok()) {
        let age = Duration::from_millis((clock::now_ms() - hb.at_unix_ms).max(0) as u64);
        let same_process_gone = hb.host == host && !process_alive(hb.pid);
        if age < every * LIVE_HEARTBEATS && !same_process_gone {
            anyhow::bail!(
                "worker id {id:?} is taken by a live worker (host {}, pid {}, heartbeat {:.1}s \
                 ago): give this worker another --id, or stop that one",
                hb.host,
                hb.pid,
                age.as_secs_f64()
            );
        }
    }
    // A lost worker's heartbeat, not expired yet: this worker takes the id over.
    bus.kv_put(Bucket::Workers, id, mine.encode_to_vec().into())
        .await
        .context("claiming the worker id")?;
    Ok(())
}

/// Whether process `pid` of this machine runs; a pid equal to this process's is a previous
/// process's (a restarted container's, pid 1 again). Without `/proc`, every other pid runs.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Stops the steps whose attempts the coordinator cancels, for the life of the worker.
async fn follow_cancellations(env: Arc<AgentEnv>) {
    let mut pause = Duration::from_millis(200);
    loop {
        match env.bus.cancellations().await {
            Ok(mut cancels) => {
                pause = Duration::from_millis(200);
                while let Some(c) = cancels.next().await {
                    if env.running.cancel(&c.book_id, &c.step_id, c.attempt) {
                        tracing::info!(book_id = %c.book_id, step = %c.step_id, attempt = c.attempt, "stopping a cancelled attempt");
                    }
                }
                tracing::debug!("cancellation subscription ended; subscribing again");
            }
            Err(e) => tracing::warn!(error = %e, "cannot follow cancellations; retrying"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// What a puller needs besides its queue and its agents.
struct PullCtx {
    kind: AgentKind,
    bus: Bus,
    worker_id: String,
    max_deliver: u64,
    stop: watch::Receiver<bool>,
}

/// How long one pull request waits for normal steps: a priority step arriving meanwhile waits
/// at most this long for an agent of a worker with idle ones (the priority queue is looked at
/// each time the request ends, and a request asking for as many steps as there are waiting
/// ends at once). At 1 s a priority book written alone waited up to a second per step
/// (BENCHMARKS.md, run D); 250 ms costs an idle worker eight pull requests a second per kind.
const FETCH_WAIT: Duration = Duration::from_millis(250);

/// A pool's two queues: the steps of priority books, taken first, and the others.
struct Steps {
    priority: scriptorium_proto::Source,
    normal: scriptorium_proto::Source,
}

impl Steps {
    /// Hands the `ready` agents the priority steps there are, then sends the normal queue one
    /// pull request for a step per agent left and hands each out as it arrives.
    async fn hand_out(
        &mut self,
        ready: &mut Vec<ActorRef<AgentMsg>>,
        ctx: &PullCtx,
    ) -> Result<(), scriptorium_proto::BusError> {
        for incoming in self.priority.fetch(ready.len(), Duration::ZERO).await? {
            hand_out(incoming, ready, ctx).await;
        }
        if ready.is_empty() {
            return Ok(());
        }
        let mut request = self.normal.pull(ready.len(), FETCH_WAIT).await?;
        while let Some(incoming) = request.next().await {
            hand_out(incoming?, ready, ctx).await;
        }
        Ok(())
    }
}

/// Feeds one pool: asks the queues for as many steps as the pool has idle agents, never more,
/// so no step waits in this process with its ack clock running (and a killed process takes
/// no more deliveries with it than it was running). Each time: the priority steps there now,
/// then one pull request for normal steps whose steps are handed out as each arrives.
async fn pull(
    mut source: Steps,
    mut idle: mpsc::UnboundedReceiver<ActorRef<AgentMsg>>,
    agents: Vec<ActorRef<AgentMsg>>,
    mut ctx: PullCtx,
) -> Vec<ActorRef<AgentMsg>> {
    let kind = ctx.kind;
    let mut ready: Vec<ActorRef<AgentMsg>> = Vec::new();
    let mut pause = Duration::from_millis(100);
    loop {
        while let Ok(a) = idle.try_recv() {
            ready.push(a);
        }
        if *ctx.stop.borrow() {
            break;
        }
        if ready.is_empty() {
            tokio::select! {
                a = idle.recv() => match a { Some(a) => ready.push(a), None => break },
                _ = ctx.stop.changed() => break,
            }
            continue;
        }
        // Not interrupted by a stop: a pull request dropped half-way could take a step with it.
        match source.hand_out(&mut ready, &ctx).await {
            Ok(()) => pause = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(kind = kind::name(kind), error = %e, "queue read failed");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = ctx.stop.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
    agents
}

/// Gives a delivered step to a ready agent, or leaves it for another worker, or dead-letters
/// it when it can never run.
async fn hand_out(
    incoming: scriptorium_proto::Incoming,
    ready: &mut Vec<ActorRef<AgentMsg>>,
    ctx: &PullCtx,
) {
    let kind = ctx.kind;
    if *ctx.stop.borrow() {
        // Fetched as the process stops: straight back to the queue for another worker.
        let _ = incoming.acker.nak(None).await;
        return;
    }
    let task = match check_step(kind, &incoming, ctx.max_deliver) {
        Ok(t) if t.min_worker_version > WIRE_VERSION => {
            // From a newer coordinator, for newer workers (a rolling upgrade): left on the
            // queue for one of them, never failed here.
            tracing::warn!(
                kind = kind::name(kind),
                book_id = %t.book_id,
                step = %t.step_id,
                needs = t.min_worker_version,
                version = WIRE_VERSION,
                "step needs a newer worker; left on the queue for one"
            );
            crate::metrics::step_left_for_newer(kind);
            let _ = incoming.acker.nak(Some(LEFT_FOR_NEWER)).await;
            return;
        }
        Ok(t) => t,
        Err(failure) => {
            tracing::error!(kind = kind::name(kind), cause = failure.cause().label(), reason = %failure, "step dead-lettered");
            give_up(&ctx.bus, kind, &incoming, failure, &ctx.worker_id).await;
            return;
        }
    };
    crate::metrics::step_received(kind, incoming.delivered);
    if incoming.delivered > 1 {
        tracing::info!(
            kind = kind::name(kind),
            book_id = %task.book_id,
            step = %task.step_id,
            attempt = task.attempt,
            delivered = incoming.delivered,
            "step redelivered: the worker that had it died, stopped answering or handed it back"
        );
    }
    let Some(agent) = ready.pop() else {
        // Never more messages than idle agents; hand back rather than hold one.
        let _ = incoming.acker.nak(None).await;
        return;
    };
    let work = AgentMsg::Work { task: Box::new(task), acker: incoming.acker };
    if let Err(e) = agent.cast(work) {
        tracing::error!(kind = kind::name(kind), error = %e, "agent is gone");
    }
}

pub use scriptorium_proto::names::MAX_STEP_BYTES;
use scriptorium_proto::names::WIRE_VERSION;

/// How long a step this worker is too old for waits before it is offered again (to any
/// worker: JetStream cannot pick a newer one).
const LEFT_FOR_NEWER: Duration = Duration::from_secs(1);

/// The task of a step message, or why it must be given up.
fn check_step(
    kind: AgentKind,
    m: &scriptorium_proto::Incoming,
    max_deliver: u64,
) -> Result<StepTask, Failure> {
    if m.payload.len() > MAX_STEP_BYTES {
        let why = format!("step message of {} bytes exceeds {MAX_STEP_BYTES}", m.payload.len());
        return Err(Failure::new(FailureCause::BadRequest, why));
    }
    let task = StepTask::decode(m.payload.clone()).map_err(|e| {
        Failure::new(FailureCause::BadRequest, format!("undecodable step message: {e}"))
    })?;
    if task.kind != kind as i32 {
        // Never answered as another kind: a kind this build does not know, or a step on the
        // wrong queue, is refused with the rule.
        let named = scriptorium_contracts::kinds::lookup(task.kind)
            .map_or_else(|e| e.to_string(), |k| format!("a {} step", k.name()));
        let why = format!(
            "{named} on the {} queue: no agent of this worker answers it",
            kind::name(kind)
        );
        return Err(Failure::new(FailureCause::UnknownKind, why));
    }
    // Workers report every failure they survive (as a failed result, which the coordinator
    // counts against `max_attempts`), so a step delivered this often was each time in a worker
    // that died or stopped answering before it could report: the mark of a step that kills
    // its workers. Losing workers now and then costs a step a delivery or two, not all of them.
    if max_deliver > 0 && m.delivered >= max_deliver {
        let why = format!(
            "step {} of book {} was delivered {} times and every worker that took it died or \
             stopped answering before reporting a result: it may crash its workers",
            task.step_id, task.book_id, m.delivered
        );
        return Err(Failure::new(FailureCause::Crashed, why));
    }
    Ok(task)
}

/// Dead-letters a step message with `failure` as the reason, tells its book (when it can be
/// read), and removes it from the queue.
async fn give_up(
    bus: &Bus,
    kind: AgentKind,
    m: &scriptorium_proto::Incoming,
    failure: Failure,
    worker_id: &str,
) {
    if let Err(e) = bus.dead_letter(kind::name(kind), m.payload.clone(), &failure.message).await {
        // Not stored: leave the message to be redelivered rather than lose it.
        tracing::error!(error = %e, "dead letter not stored; step handed back");
        let _ = m.acker.nak(Some(Duration::from_secs(5))).await;
        return;
    }
    if let Ok(task) = StepTask::decode(m.payload.clone())
        && !task.book_id.is_empty()
    {
        let result = scriptorium_proto::v1::StepResult {
            book_id: task.book_id.clone(),
            step_id: task.step_id.clone(),
            attempt: task.attempt,
            worker_id: worker_id.to_string(),
            status: scriptorium_proto::v1::StepStatus::DeadLettered as i32,
            error: failure.message.clone(),
            kind: task.kind,
            failure: Some(failure),
            ..Default::default()
        };
        let id = format!(
            "dead.{}",
            scriptorium_proto::names::result_msg_id(&task.book_id, &task.step_id, task.attempt)
        );
        let _ = bus
            .publish(
                scriptorium_proto::transport::Queue::Results,
                &task.book_id,
                &id,
                result.encode_to_vec().into(),
            )
            .await;
    }
    let _ = m.acker.term().await;
}

async fn heartbeats(
    bus: Bus,
    env: Arc<AgentEnv>,
    pools: BTreeMap<AgentKind, usize>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let started = clock::now_ms();
    let host = scriptorium_common::ops::host_name();
    loop {
        let current = env.running.labels();
        let hb = WorkerHeartbeat {
            worker_id: env.worker_id.clone(),
            host: host.clone(),
            pid: std::process::id(),
            pools: pools
                .iter()
                .map(|(k, s)| PoolStatus {
                    kind: *k as i32,
                    size: *s as u32,
                    busy: current
                        .iter()
                        .filter(|c| c.starts_with(&format!("{}:", kind::name(*k))))
                        .count() as u32,
                })
                .collect(),
            steps_done: env.steps_done.load(Ordering::Relaxed),
            current_steps: current,
            at_unix_ms: clock::now_ms(),
            started_unix_ms: started,
            cache: Some(env.cache_counters()),
            tokens_per_second: env.models.tokens_per_second().first().map_or(0.0, |t| t.1),
        };
        crate::metrics::cache_counters(hb.cache.as_ref());
        if let Err(e) = bus.kv_put(Bucket::Workers, &env.worker_id, hb.encode_to_vec().into()).await
        {
            tracing::debug!(error = %e, "heartbeat failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

pub use scriptorium_common::ops::stop_signal;

#[cfg(test)]
mod tests {
    use super::*;

    async fn heartbeat(bus: &Bus, id: &str, host: &str, pid: u32, age: Duration) {
        let hb = WorkerHeartbeat {
            worker_id: id.into(),
            host: host.into(),
            pid,
            at_unix_ms: clock::now_ms() - age.as_millis() as i64,
            ..Default::default()
        };
        bus.kv_put(Bucket::Workers, id, hb.encode_to_vec().into()).await.unwrap();
    }

    #[tokio::test]
    async fn an_id_is_refused_while_a_live_worker_has_it_and_taken_over_once_it_is_gone() {
        let bus = Bus::memory();
        let every = Duration::from_secs(5);
        claim_id(&bus, "w1", every).await.expect("a free id");
        let stored = bus.kv_get(Bucket::Workers, "w1").await.unwrap().unwrap();
        assert_eq!(WorkerHeartbeat::decode(stored).unwrap().pid, std::process::id());
        // Another machine's live worker.
        heartbeat(&bus, "w1", "elsewhere", 4242, Duration::from_secs(2)).await;
        let e = claim_id(&bus, "w1", every).await.unwrap_err().to_string();
        assert!(
            e.starts_with("worker id \"w1\" is taken by a live worker (host elsewhere, pid 4242"),
            "{e}"
        );
        // Lost: its heartbeat is older than three intervals.
        heartbeat(&bus, "w1", "elsewhere", 4242, Duration::from_secs(16)).await;
        claim_id(&bus, "w1", every).await.expect("a lost worker's id");
        // This machine's, from a process that is gone (this process's own pid: a restarted
        // container's previous life).
        let host = scriptorium_common::ops::host_name();
        heartbeat(&bus, "w1", &host, std::process::id(), Duration::ZERO).await;
        claim_id(&bus, "w1", every).await.expect("a restarted worker's id");
        assert!(check_id("w 1").unwrap_err().to_string().contains("letters, digits, - or _"));
        assert!(check_id("w-1_a").is_ok());
    }
}
