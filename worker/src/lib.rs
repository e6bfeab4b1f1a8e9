//! The worker side of Scriptorium: agent actors that execute steps with a model.
//!
//! # Layout
//! - [`agent`]: the agent actor (one per pool slot) that renders a prompt, calls the model,
//!   publishes the result and only then acknowledges the step.
//! - [`runtime`]: a worker process: one pool of agents per agent kind fed by one puller task
//!   per kind, plus heartbeats and graceful shutdown.
//! - [`cache`]: the two-tier response cache (in-process moka, shared JetStream KV), its single
//!   flight and the leases that hold identical requests across processes.
//! - [`running`]: the steps running in a process and how each is stopped early (cancelled
//!   attempts, shutdown).
//! - [`prompts`]: system messages and templates per agent kind, embedded or from a directory.
//! - [`budget`]: the token estimate and context budgets: prompt pieces condensed by priority.
//! - [`parts`]: long answers in parts (a chapter scene by scene), joined without seams.
//! - [`providers`]: OpenAI-compatible servers, Anthropic and in-process models; routes and retries.
//! - [`metrics`]: Prometheus metrics of the worker.
//! - [`redact`], [`tls`]: secret scrubbing and the TLS provider.
#![warn(missing_docs, unreachable_pub)]

pub mod agent;
pub mod budget;
pub mod cache;
pub mod dotenv;
pub mod metrics;
pub mod parts;
pub mod prompts;
pub mod providers;
pub mod redact;
pub mod running;
pub mod runtime;
pub mod tls;

pub use runtime::{Worker, WorkerConfig};

/// Nanoseconds of the wall clock, used only as jitter entropy.
pub(crate) fn clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
