//! The coordinator side of Scriptorium: it plans books, dispatches their steps to agent
//! workers, validates every result and writes the finished books.
//!
//! # Layout
//! - [`brief`]: reading and validating briefs (TOML) into [`BookBrief`](scriptorium_proto::v1::BookBrief).
//! - [`plan`]: the DAG of steps a brief calls for.
//! - [`actors`]: the coordinator actor and one book actor per book in flight.
//! - [`continuity`]: the continuity ledger and the other chapters a step is checked against.
//! - [`record`]: the durable book record (header, step states, accepted outputs) kept in KV,
//!   written per step (layout 2), older layouts read.
//! - [`retention`]: deleting finished books past `keep_finished_hours`.
//! - [`assembly`]: the local assembly step (manuscript, chapters, `book.json`, `book.epub`).
//! - [`quality`]: the quality report of a written book (`scriptorium check`, `quality.json`).
//! - [`runtime`]: starting a coordinator on a bus: queue pumps, resume, shutdown.
//! - [`client`]: what the CLI does against a running system: submit, wait, status, commands.
//! - [`dead_letters`]: replaying a dead letter, once checked to be worth it.
//! - [`control`]: operators' commands about a book (approve, reject, edit, cancel, pause, resume,
//!   rewrite, retry) and what became of one.
//! - [`fleet`]: the step queues and worker processes as operators see them.
//! - [`heartbeat`]: the coordinator's heartbeat: whether one is alive, what waits for it.
//! - [`config`]: coordinator settings (attempts, timeouts, routes, sampling).
//! - [`metrics`]: Prometheus metrics of the coordinator and the recent failures it keeps.
//!
//! Every answer is validated by its agent kind's contract (`scriptorium_contracts`); the process
//! modes that compose coordinator and workers (`write`, `bench`, the dashboard) live in the
//! `scriptorium` binary.
#![warn(missing_docs, unreachable_pub)]

pub mod actors;
pub mod assembly;
pub mod brief;
pub mod client;
pub mod config;
pub mod continuity;
pub mod control;
pub mod dead_letters;
pub mod fleet;
pub mod heartbeat;
pub mod metrics;
pub mod plan;
pub mod quality;
pub mod record;
pub mod retention;
pub mod runtime;

pub use config::CoordinatorConfig;
pub use runtime::CoordinatorHandle;

use std::sync::atomic::AtomicU64;

/// Why the coordinator takes no normal submission now (its heartbeat says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Held {
    /// It takes them.
    No = 0,
    /// `max_books_in_flight` books are in flight.
    Cap = 1,
    /// The fleet has `admission_backlog` work waiting (admission by demand).
    Demand = 2,
}

impl Held {
    /// As stored in [`Stats::admission_held`].
    pub fn from_u8(v: u8) -> Held {
        match v {
            1 => Held::Cap,
            2 => Held::Demand,
            _ => Held::No,
        }
    }

    /// As the heartbeat carries it: empty, `cap` or `demand`.
    pub fn name(self) -> &'static str {
        match self {
            Held::No => "",
            Held::Cap => "cap",
            Held::Demand => "demand",
        }
    }
}

/// Counters of the coordinator.
#[derive(Debug, Default)]
pub struct Stats {
    /// Step attempts dispatched.
    pub dispatched: AtomicU64,
    /// Results accepted.
    pub accepted: AtomicU64,
    /// Results rejected by validation.
    pub rejected: AtomicU64,
    /// Results reporting a worker failure.
    pub failed: AtomicU64,
    /// Results ignored (duplicate, late, superseded or unknown).
    pub ignored: AtomicU64,
    /// Results read from the results queue and not yet handled by their book: the
    /// coordinator's own backlog, which admission by demand reads.
    pub results_in_hand: AtomicU64,
    /// Why admission takes no normal submission now ([`Held`] as a number).
    pub admission_held: std::sync::atomic::AtomicU8,
    /// Bytes the book actors wrote to the books and step-states buckets (headers, plans and
    /// changed steps; outputs not included).
    pub stored_bytes: AtomicU64,
}

/// What the coordinator's actors share.
pub struct Env {
    /// The transport.
    pub bus: scriptorium_proto::Bus,
    /// Settings.
    pub cfg: CoordinatorConfig,
    /// Counters.
    pub stats: Stats,
    /// Books being assembled at once: at most one per core. Assembly is CPU work on a blocking
    /// thread (files, EPUB, quality report); more at once than cores finish no sooner, and each
    /// held its own buffers (and, past the first, a thread), so a fast run peaked higher.
    pub assemblies: tokio::sync::Semaphore,
}

impl Env {
    /// The environment of a coordinator on `bus` with `cfg`.
    pub fn new(bus: scriptorium_proto::Bus, cfg: CoordinatorConfig) -> Env {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Env { bus, cfg, stats: Stats::default(), assemblies: tokio::sync::Semaphore::new(cores) }
    }
}
