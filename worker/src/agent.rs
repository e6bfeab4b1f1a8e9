//! The agent actor: executes one step at a time for its agent kind.
//!
//! For each step it renders the prompt, calls the routes in order (with one JSON repair request
//! per route), publishes the [`StepResult`] and only then acknowledges the step message. While a
//! model call runs it keeps the step alive with in-progress acknowledgements.

mod model_work;

use crate::cache::{Fresh, ResponseCache, Source};
use crate::prompts::Prompts;
use crate::providers::Models;
use model_work::run_model;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::{StepResult, StepStatus, StepTask};
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
    /// Steps in progress, by `kind:book/step#attempt`.
    pub current: dashmap::DashSet<String>,
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
                let key = format!(
                    "{}:{}/{}#{}",
                    scriptorium_proto::kind::name(task.kind()),
                    task.book_id,
                    task.step_id,
                    task.attempt
                );
                state.env.current.insert(key.clone());
                execute(&state.env, *task, acker).await;
                state.env.current.remove(&key);
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
    let acker = Arc::new(acker);
    let keepalive = {
        let acker = acker.clone();
        let every = env.progress_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = acker.in_progress().await {
                    tracing::debug!(error = %e, "in-progress ack failed");
                }
            }
        })
    };
    let cache = &env.cache;
    let key = if cache.enabled() && task.cache {
        let (system, user) = env.prompts.render(&task);
        ResponseCache::key(&task, &system, &user)
    } else {
        String::new()
    };
    let compute = || async {
        match run_model(env, &task).await {
            Ok(ok) => Fresh {
                ok: true,
                output: ok.output,
                route: ok.route,
                dialect: ok.dialect,
                usage: ok.usage,
                error: String::new(),
            },
            Err(f) => Fresh {
                ok: false,
                output: String::new(),
                route: f.route,
                usage: f.usage,
                error: f.error,
                ..Default::default()
            },
        }
    };
    // Re-asks never read the cache: they must not get the rejected answer back.
    let (fresh, source, lease) = if key.is_empty() {
        (compute().await, Source::Model, false)
    } else {
        cache.get_or_compute(&key, task.attempt <= 1, compute).await
    };
    keepalive.abort();
    let dialect = fresh.dialect.clone();
    let (status, output, error, route, usage) = if fresh.ok {
        (StepStatus::Ok, fresh.output, String::new(), fresh.route, fresh.usage)
    } else {
        (StepStatus::Failed, String::new(), fresh.error, fresh.route, fresh.usage)
    };
    let result = StepResult {
        book_id: task.book_id.clone(),
        step_id: task.step_id.clone(),
        attempt: task.attempt,
        worker_id: env.worker_id.clone(),
        status: status as i32,
        output,
        cache_hit: source != Source::Model,
        cache_key: key.clone(),
        usage: Some(usage),
        duration_ms: started.elapsed().as_millis() as u64,
        error: crate::redact::redact(&error),
        route,
        kind: task.kind,
        dialect,
    };
    crate::metrics::step_finished(&result);
    let msg_id = names::result_msg_id(&task.book_id, &task.step_id, task.attempt);
    let published = env
        .bus
        .publish(Queue::Results, &task.book_id, &msg_id, result.encode_to_vec().into())
        .await;
    let answered = published.is_ok() && result.status == StepStatus::Ok as i32;
    match published {
        Ok(()) => {
            if let Err(e) = acker.ack().await {
                tracing::warn!(book_id = %task.book_id, step = %task.step_id, error = %e, "step ack failed; the duplicate result will be ignored");
            }
        }
        Err(e) => {
            tracing::warn!(book_id = %task.book_id, step = %task.step_id, error = %e, "result publish failed; handing the step back");
            crate::metrics::result_publish_failed(task.kind());
            let _ = acker.nak(Some(Duration::from_secs(1))).await;
        }
    }
    // An answer on its way to the coordinator keeps the lease: the coordinator ends it once
    // the answer is cached or rejected, so identical requests wait for it instead of paying.
    if lease && !answered {
        cache.release(&key).await;
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
