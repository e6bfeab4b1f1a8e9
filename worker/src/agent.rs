//! The agent actor: executes one step at a time for its agent kind.
//!
//! For each step it renders the prompt, calls the routes in order (with one JSON repair request
//! per route), publishes the [`StepResult`] and only then acknowledges the step message. Until
//! then it keeps the step alive with in-progress acknowledgements, so JetStream redelivers it
//! only when this process dies or hangs. A step whose attempt the coordinator cancels is
//! stopped (model call dropped, cache lease released) and acknowledged without a result; a
//! step still running when the process stops is handed back; a step that panics is reported
//! as a failure, and the agent lives on.

mod model_work;

use crate::cache::{self, Failed, ResponseCache, Source};
use crate::prompts::Prompts;
use crate::providers::Models;
use crate::running::{Running, Stop};
use futures::FutureExt as _;
use model_work::run_model;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::{Failure, FailureCause, StepResult, StepStatus, StepTask, Usage};
use scriptorium_proto::{Acker, Bus, names};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What every agent of a worker process shares.
pub struct AgentEnv {
    /// The transport results are published on.
    pub bus: Bus,
    /// Model providers.
    pub models: Models,
    /// Prompt templates.
    pub prompts: Prompts,
    /// This worker process's id.
    pub worker_id: String,
    /// Interval of in-progress acknowledgements during a model call.
    pub progress_every: Duration,
    /// Steps finished by this process.
    pub steps_done: AtomicU64,
    /// The response cache.
    pub cache: Arc<crate::cache::ResponseCache>,
    /// Steps running in this process, and how each is stopped early.
    pub running: Running,
}

/// The agent actor behaviour.
pub struct Agent;

/// State of one agent.
pub struct AgentState {
    env: Arc<AgentEnv>,
    idle: mpsc::UnboundedSender<ActorRef<AgentMsg>>,
}

/// Messages an agent understands.
pub enum AgentMsg {
    /// Execute one step and acknowledge its message when the result is published.
    Work {
        /// The decoded task.
        task: Box<StepTask>,
        /// Acknowledges the step message.
        acker: Acker,
    },
}

/// Arguments of an agent: the shared environment and the pool's idle queue.
pub struct AgentArgs {
    /// Shared environment.
    pub env: Arc<AgentEnv>,
    /// Where the agent announces itself idle.
    pub idle: mpsc::UnboundedSender<ActorRef<AgentMsg>>,
}

impl Actor for Agent {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AgentMsg>,
        args: AgentArgs,
    ) -> Result<AgentState, ActorProcessingErr> {
        args.idle.send(myself)?;
        Ok(AgentState { env: args.env, idle: args.idle })
    }

    async fn handle(
        &self,
        myself: ActorRef<AgentMsg>,
        msg: AgentMsg,
        state: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Work { task, acker } => {
                execute(&state.env, *task, acker).await;
                state.env.steps_done.fetch_add(1, Ordering::Relaxed);
                // The pool may be shutting down: then nobody waits for idle agents.
                let _ = state.idle.send(myself);
            }
        }
        Ok(())
    }
}

#[tracing::instrument(skip_all, fields(book_id = %task.book_id, step = %task.step_id, kind = scriptorium_proto::kind::name(task.kind()), attempt = task.attempt))]
async fn execute(env: &AgentEnv, task: StepTask, acker: Acker) {
    let started = Instant::now();
    crate::metrics::step_started(task.kind());
    let registration = env.running.start(&task);
    let mut stop = registration.stop.clone();
    let acker = Arc::new(acker);
    // In-progress acknowledgements until the step is acknowledged or handed back.
    let _keepalive = KeepAlive::start(acker.clone(), env.progress_every);
    let work = std::panic::AssertUnwindSafe(produce(env, &task)).catch_unwind();
    let outcome = tokio::select! {
        biased;
        reason = stopped(&mut stop) => Err(reason),
        done = work => Ok(done),
    };
    // Stopped or crashed, the computation is dropped here, and with it any lease it held
    // (released in the background) and its single flight in this process.
    let produced = match outcome {
        Err(reason) => return stopped_early(&task, &acker, reason).await,
        Ok(Ok(produced)) => produced,
        Ok(Err(panic)) => {
            let why = panic_message(panic.as_ref());
            tracing::error!(error = %why, "step crashed its agent; reporting it as a failure");
            let message = format!("the worker crashed on this step: {why}");
            let failed = Failed {
                failure: Failure::new(FailureCause::Crashed, message),
                usage: Usage::default(),
            };
            Produced {
                produced: cache::Produced::new(Err(failed), Source::Model, None),
                key: String::new(),
            }
        }
    };
    let Produced { produced: cache::Produced { fresh, source, lease }, key } = produced;
    let mut result = StepResult {
        book_id: task.book_id.clone(),
        step_id: task.step_id.clone(),
        attempt: task.attempt,
        worker_id: env.worker_id.clone(),
        cache_hit: source != Source::Model,
        cache_key: key,
        duration_ms: started.elapsed().as_millis() as u64,
        kind: task.kind,
        worker_version: scriptorium_proto::names::WIRE_VERSION,
        ..Default::default()
    };
    match fresh {
        Ok(a) => {
            result.status = StepStatus::Ok as i32;
            (result.output, result.route, result.dialect) = (a.output, a.route, a.dialect);
            result.usage = Some(a.usage);
        }
        Err(Failed { mut failure, usage }) => {
            failure.message = crate::redact::redact(&failure.message);
            result.status = StepStatus::Failed as i32;
            result.error = failure.message.clone();
            result.route = failure.route.clone();
            result.usage = Some(usage);
            result.failure = Some(failure);
        }
    }
    crate::metrics::step_finished(&result);
    let msg_id = names::result_msg_id(&task.book_id, &task.step_id, task.attempt);
    let published = env
        .bus
        .publish(Queue::Results, &task.book_id, &msg_id, result.encode_to_vec().into())
        .await;
    let answered = published.is_ok() && result.status == StepStatus::Ok as i32;
    // An answer on its way to the coordinator keeps the lease: the coordinator ends it once
    // the answer is cached, rejected or ignored, so identical requests wait for it instead of
    // paying. Without one, peers must not wait: release it now.
    if let Some(lease) = lease {
        if answered { lease.hand_over() } else { lease.release().await }
    }
    match published {
        Ok(()) => {
            if let Err(e) = acker.ack().await {
                tracing::warn!(error = %e, "step ack failed; the duplicate result will be ignored");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "result publish failed; handing the step back");
            crate::metrics::result_publish_failed(task.kind());
            let _ = acker.nak(Some(Duration::from_secs(1))).await;
        }
    }
}

/// The answer of a step (from the cache, an identical request in flight, or the model), with
/// its cache key (empty: not cacheable).
struct Produced {
    produced: cache::Produced,
    key: String,
}

/// Computes the answer of `task`. A kind this worker does not run is refused with a typed
/// failure, never mapped to another kind.
async fn produce(env: &AgentEnv, task: &StepTask) -> Produced {
    let spec = match scriptorium_contracts::kinds::lookup(task.kind) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(error = %e, "step of a kind this worker does not run");
            let failed = Failed {
                failure: Failure::new(FailureCause::UnknownKind, e.to_string()),
                usage: Usage::default(),
            };
            let produced = cache::Produced::new(Err(failed), Source::Model, None);
            return Produced { produced, key: String::new() };
        }
    };
    let cache = &env.cache;
    // The key is the step's whole prompt, rendered without a budget; the first request reuses
    // it where the route's budget would leave every piece of it full.
    let whole =
        (cache.enabled() && task.cache).then(|| env.prompts.render_fitted(task, spec, None, None));
    let key = match &whole {
        Some(Ok(r)) => ResponseCache::key(task, &r.system, &r.user),
        // Without a budget nothing overflows.
        Some(Err(_)) => ResponseCache::key(task, "", ""),
        None => String::new(),
    };
    let whole = whole.and_then(Result::ok);
    let compute = || run_model(env, task, spec, whole.as_ref());
    if key.is_empty() {
        let produced = cache::Produced::new(compute().await, Source::Model, None);
        return Produced { produced, key };
    }
    // Re-asks never read the cache: they must not get the rejected answer back. A peer
    // computing the same request is waited for until the step's own deadline at most.
    let produced =
        cache.get_or_compute_until(&key, task.attempt <= 1, deadline(task), compute).await;
    Produced { produced, key }
}

/// The step's deadline (set by the coordinator) as an instant; 30 minutes without one.
fn deadline(task: &StepTask) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    if task.deadline_unix_ms <= 0 {
        return now + Duration::from_secs(30 * 60);
    }
    let left = task.deadline_unix_ms.saturating_sub(scriptorium_proto::clock::now_ms());
    now + Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

/// Waits until the step must stop; never returns while it may run on.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<Option<Stop>>) -> Stop {
    let reason = stop.wait_for(Option::is_some).await.map(|r| r.unwrap_or(Stop::Cancelled));
    match reason {
        Ok(reason) => reason,
        // The registration outlives the step, so its sender cannot go first.
        Err(_) => std::future::pending().await,
    }
}

/// A step stopped before it finished: a cancelled attempt is acknowledged without a result
/// (the coordinator no longer wants it); a step of a stopping worker is handed back at once.
async fn stopped_early(task: &StepTask, acker: &Acker, reason: Stop) {
    match reason {
        Stop::Cancelled => {
            tracing::info!("attempt cancelled by the coordinator; dropped without a result");
            crate::metrics::step_stopped(task.kind(), "cancelled");
            if let Err(e) = acker.ack().await {
                tracing::debug!(error = %e, "ack of a cancelled step failed");
            }
        }
        Stop::Shutdown => {
            tracing::info!("worker stopping; step handed back");
            crate::metrics::step_stopped(task.kind(), "shutdown");
            let _ = acker.nak(None).await;
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Sends in-progress acknowledgements of a step every `every` until dropped, so JetStream
/// redelivers the step only when this process stops answering for it.
struct KeepAlive(tokio::task::JoinHandle<()>);

impl KeepAlive {
    fn start(acker: Arc<Acker>, every: Duration) -> Self {
        KeepAlive(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = acker.in_progress().await {
                    tracing::debug!(error = %e, "in-progress ack failed");
                }
            }
        }))
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl AgentEnv {
    /// The cache counters of this process, as sent in heartbeats.
    pub fn cache_counters(&self) -> scriptorium_proto::v1::CacheCounters {
        let s = &self.cache.stats;
        scriptorium_proto::v1::CacheCounters {
            hits_local: s.hits_local.load(Ordering::Relaxed),
            hits_shared: s.hits_shared.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            coalesced: s.coalesced.load(Ordering::Relaxed),
            bytes_local: self.cache.local_bytes(),
            evictions: s.evictions.load(Ordering::Relaxed),
        }
    }
}
