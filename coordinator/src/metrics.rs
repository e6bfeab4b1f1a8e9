//! Prometheus metrics of the coordinator, and the ring of recent failures the dashboard shows.
//!
//! Every metric is named in [`NAMES`] and recorded through one helper here: the book actor holds
//! one-line calls that pass its record. Queue, worker and book gauges are set by the monitor
//! (`app::http`), which polls JetStream every few seconds. The process-wide recorder is
//! [`scriptorium_worker::metrics::install`]; without it the helpers record nothing.

use crate::record::{BookRecord, Status};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use scriptorium_proto::kind;
use scriptorium_proto::v1::{AgentKind, StepResult, StepTask};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Step attempts published, by `kind`.
pub const DISPATCHED: &str = "scriptorium_steps_dispatched_total";
/// Re-dispatches after a rejection, a worker error or a timeout, by `kind`.
pub const RETRIES: &str = "scriptorium_step_retries_total";
/// Step results handled, by `kind` and `outcome` (`accepted`, `rejected`, `failed`, `ignored`).
pub const RESULTS: &str = "scriptorium_step_results_total";
/// Results that broke a validation rule, by `kind`.
pub const VALIDATION_FAILURES: &str = "scriptorium_validation_failures_total";
/// Attempts a worker reported failed, by `kind` and `cause` (`auth`, `timeout`, `refused`...:
/// the labels of [`scriptorium_proto::v1::FailureCause`]).
pub const STEP_FAILURES: &str = "scriptorium_step_failures_total";
/// Attempts without a result before their deadline, by `kind`.
pub const TIMEOUTS: &str = "scriptorium_step_timeouts_total";
/// Time from dispatching the accepted attempt to accepting its result, by `kind`.
pub const STEP_SECONDS: &str = "scriptorium_step_latency_seconds";
/// Books finished, by `state` (`done`, `failed`, `cancelled`).
pub const BOOKS_FINISHED: &str = "scriptorium_books_finished_total";
/// Books known to the coordinator, by `state` (`queued`, `running`, `awaiting_approval`,
/// `paused`, `done`, `failed`, `cancelled`).
pub const BOOKS: &str = "scriptorium_books";
/// Step messages waiting for a worker, by `kind`.
pub const QUEUE_WAITING: &str = "scriptorium_queue_waiting";
/// Step messages delivered and not yet acknowledged, by `kind`.
pub const QUEUE_IN_FLIGHT: &str = "scriptorium_queue_in_flight";
/// Unacknowledged step messages delivered more than once, by `kind`.
pub const QUEUE_REDELIVERED: &str = "scriptorium_queue_redelivered";
/// Step messages in the dead-letter stream, by `kind`.
pub const QUEUE_DEAD: &str = "scriptorium_queue_dead_lettered";
/// Age of the oldest waiting step message, by `kind` (0 when none waits).
pub const QUEUE_OLDEST: &str = "scriptorium_queue_oldest_waiting_seconds";
/// Live worker processes with a pool for the kind, by `kind`.
pub const QUEUE_CONSUMERS: &str = "scriptorium_queue_workers";
/// Steps completed per minute over the last minute, by `kind`.
pub const QUEUE_RATE: &str = "scriptorium_queue_steps_per_minute";
/// Worker processes by `state` (`up`, `lost`).
pub const WORKERS: &str = "scriptorium_workers";

/// Every metric name of the coordinator.
pub const NAMES: &[&str] = &[
    DISPATCHED,
    RETRIES,
    RESULTS,
    VALIDATION_FAILURES,
    STEP_FAILURES,
    TIMEOUTS,
    STEP_SECONDS,
    BOOKS_FINISHED,
    BOOKS,
    QUEUE_WAITING,
    QUEUE_IN_FLIGHT,
    QUEUE_REDELIVERED,
    QUEUE_DEAD,
    QUEUE_OLDEST,
    QUEUE_CONSUMERS,
    QUEUE_RATE,
    WORKERS,
];

/// Installs the process recorder (shared with the worker crate) and describes every metric.
pub fn install() -> metrics_exporter_prometheus::PrometheusHandle {
    let handle = scriptorium_common::ops::install();
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
    handle
}

/// Registers the help text of every coordinator metric.
pub fn describe() {
    describe_counter!(DISPATCHED, "Step attempts published, by kind.");
    describe_counter!(RETRIES, "Step attempts after the first, by kind.");
    describe_counter!(RESULTS, "Step results handled, by kind and outcome.");
    describe_counter!(VALIDATION_FAILURES, "Results that broke a validation rule, by kind.");
    describe_counter!(STEP_FAILURES, "Step attempts a worker reported failed, by kind and cause.");
    describe_counter!(TIMEOUTS, "Step attempts without a result before their deadline, by kind.");
    describe_histogram!(
        STEP_SECONDS,
        metrics::Unit::Seconds,
        "Dispatch of the accepted attempt to acceptance, by kind."
    );
    describe_counter!(BOOKS_FINISHED, "Books finished, by state.");
    describe_gauge!(BOOKS, "Books known to the coordinator, by state.");
    describe_gauge!(QUEUE_WAITING, "Step messages waiting for a worker, by kind.");
    describe_gauge!(QUEUE_IN_FLIGHT, "Step messages delivered and not acknowledged, by kind.");
    describe_gauge!(QUEUE_REDELIVERED, "Unacknowledged step messages delivered again, by kind.");
    describe_gauge!(QUEUE_DEAD, "Step messages in the dead-letter stream, by kind.");
    describe_gauge!(QUEUE_OLDEST, metrics::Unit::Seconds, "Age of the oldest waiting step.");
    describe_gauge!(QUEUE_CONSUMERS, "Live worker processes with a pool for the kind.");
    describe_gauge!(QUEUE_RATE, "Steps completed per minute over the last minute, by kind.");
    describe_gauge!(WORKERS, "Worker processes by state (up, lost).");
}

/// Something that went wrong with a step or a book, for the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// When (Unix ms).
    pub at_ms: i64,
    /// The book.
    pub book_id: String,
    /// The step (empty for the book itself).
    pub step: String,
    /// Agent kind of the step.
    pub kind: String,
    /// What happened (`rejected`, `worker error`, `timeout`, `book failed`).
    pub what: &'static str,
    /// Why.
    pub reason: String,
}

/// How many failures the ring keeps.
pub const RECENT_FAILURES: usize = 50;

static FAILURES: Mutex<VecDeque<Failure>> = Mutex::new(VecDeque::new());

fn remember(rec: &BookRecord, step: &str, what: &'static str, reason: &str) {
    let failure = Failure {
        at_ms: scriptorium_proto::clock::now_ms(),
        book_id: rec.id.clone(),
        step: step.to_string(),
        kind: step_kind(rec, step).map(kind::name).unwrap_or_default().to_string(),
        what,
        reason: reason.chars().take(300).collect(),
    };
    let mut ring = FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    if ring.len() == RECENT_FAILURES {
        ring.pop_front();
    }
    ring.push_back(failure);
}

/// The latest failures of this process, newest first.
pub fn recent_failures() -> Vec<Failure> {
    FAILURES.lock().unwrap_or_else(|p| p.into_inner()).iter().rev().cloned().collect()
}

fn step_kind(rec: &BookRecord, step: &str) -> Option<AgentKind> {
    rec.plan.get(step).map(|p| p.kind)
}

fn kind_label(rec: &BookRecord, step: &str) -> &'static str {
    step_kind(rec, step).map_or("unknown", kind::name)
}

/// An attempt was published.
pub fn step_dispatched(task: &StepTask) {
    let name = kind::name(task.kind());
    counter!(DISPATCHED, "kind" => name).increment(1);
    if task.attempt > 1 {
        counter!(RETRIES, "kind" => name).increment(1);
    }
}

/// A result was accepted; its latency is read from the step record.
pub fn step_accepted(rec: &BookRecord, step: &str) {
    let name = kind_label(rec, step);
    counter!(RESULTS, "kind" => name, "outcome" => "accepted").increment(1);
    if let Some(s) = rec.steps.get(step) {
        let secs = (s.finished_us - s.dispatched_us).max(0) as f64 / 1e6;
        histogram!(STEP_SECONDS, "kind" => name).record(secs);
    }
}

/// A result broke the validation rule `rule`.
pub fn step_rejected(rec: &BookRecord, step: &str, rule: &str) {
    let name = kind_label(rec, step);
    counter!(RESULTS, "kind" => name, "outcome" => "rejected").increment(1);
    counter!(VALIDATION_FAILURES, "kind" => name).increment(1);
    remember(rec, step, "rejected", rule);
}

/// A worker reported that it could not do the step, for `failure`'s cause.
pub fn step_failed(rec: &BookRecord, step: &str, failure: &scriptorium_proto::v1::Failure) {
    let name = kind_label(rec, step);
    counter!(RESULTS, "kind" => name, "outcome" => "failed").increment(1);
    counter!(STEP_FAILURES, "kind" => name, "cause" => failure.cause().label()).increment(1);
    remember(rec, step, "worker error", &failure.message);
}

/// A duplicate, late or superseded result was ignored.
pub fn result_ignored(result: &StepResult) {
    let name = kind::name(result.kind());
    counter!(RESULTS, "kind" => name, "outcome" => "ignored").increment(1);
}

/// A result for an attempt never dispatched was refused (and dead-lettered).
pub fn result_refused(result: &StepResult) {
    let name = kind::name(result.kind());
    counter!(RESULTS, "kind" => name, "outcome" => "refused").increment(1);
}

/// A result came from a worker other than the one whose answer was accepted for its attempt.
pub fn result_from_another_worker(result: &StepResult) {
    let name = kind::name(result.kind());
    counter!(RESULTS, "kind" => name, "outcome" => "other_worker").increment(1);
}

/// An attempt passed its deadline without a result.
pub fn step_timed_out(rec: &BookRecord, step: &str) {
    counter!(TIMEOUTS, "kind" => kind_label(rec, step)).increment(1);
    remember(rec, step, "timeout", "no result before the deadline");
}

/// A book reached a final state.
pub fn book_finished(rec: &BookRecord) {
    counter!(BOOKS_FINISHED, "state" => rec.state.name()).increment(1);
    if let Some(reason) = &rec.failure {
        remember(rec, "", "book failed", reason);
    }
}

/// Sets the gauges of one step queue.
pub fn set_queue(q: &crate::fleet::QueueRow) {
    let k = q.kind.clone();
    gauge!(QUEUE_WAITING, "kind" => k.clone()).set(q.waiting as f64);
    gauge!(QUEUE_IN_FLIGHT, "kind" => k.clone()).set(q.in_flight as f64);
    gauge!(QUEUE_REDELIVERED, "kind" => k.clone()).set(q.redelivered as f64);
    gauge!(QUEUE_DEAD, "kind" => k.clone()).set(q.dead_lettered as f64);
    gauge!(QUEUE_OLDEST, "kind" => k.clone()).set(q.oldest_waiting_secs.unwrap_or(0.0));
    gauge!(QUEUE_CONSUMERS, "kind" => k.clone()).set(q.workers as f64);
    gauge!(QUEUE_RATE, "kind" => k).set(q.steps_per_min.unwrap_or(0.0));
}

/// Sets the worker gauges.
pub fn set_workers(up: usize, lost: usize) {
    gauge!(WORKERS, "state" => "up").set(up as f64);
    gauge!(WORKERS, "state" => "lost").set(lost as f64);
}

/// Sets the books-by-state gauge: `count(state)` books in each state (every state is set,
/// zero included, so a state that empties reads 0).
pub fn set_books(count: impl Fn(&str) -> usize) {
    for state in Status::ALL {
        gauge!(BOOKS, "state" => state.name()).set(count(state.name()) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::StepStatus;
    use scriptorium_proto::v1::BookBrief;

    fn record() -> BookRecord {
        let brief = BookBrief {
            category: "fiction".into(),
            chapters: 2,
            words_per_chapter: 500,
            characters: 2,
            worldbuilding: true,
            review_mode: "ai".into(),
            ..Default::default()
        };
        BookRecord::new("b1".into(), brief, 0)
    }

    #[test]
    fn step_outcomes_land_in_counters_histogram_and_failure_ring() {
        let recorder = scriptorium_common::ops::recorder();
        let handle = recorder.handle();
        let mut rec = record();
        let s = rec.steps.get_mut("concept").unwrap();
        s.status = StepStatus::Done;
        s.dispatched_us = 1_000_000;
        s.finished_us = 3_000_000;
        metrics::with_local_recorder(&recorder, || {
            step_dispatched(&StepTask {
                kind: AgentKind::Concept as i32,
                attempt: 2,
                ..Default::default()
            });
            step_accepted(&rec, "concept");
            step_rejected(&rec, "outline", "outline: 3 chapters, expected 2");
            step_timed_out(&rec, "characters");
            rec.state = Status::Failed;
            rec.failure = Some("step outline failed after 3 attempts".into());
            book_finished(&rec);
        });
        let text = handle.render();
        for line in [
            "scriptorium_steps_dispatched_total{kind=\"concept\"} 1",
            "scriptorium_step_retries_total{kind=\"concept\"} 1",
            "scriptorium_step_results_total{kind=\"concept\",outcome=\"accepted\"} 1",
            "scriptorium_step_results_total{kind=\"outline\",outcome=\"rejected\"} 1",
            "scriptorium_validation_failures_total{kind=\"outline\"} 1",
            "scriptorium_step_timeouts_total{kind=\"characters\"} 1",
            "scriptorium_books_finished_total{state=\"failed\"} 1",
            "scriptorium_step_latency_seconds_bucket{kind=\"concept\",le=\"2.5\"} 1",
            "scriptorium_step_latency_seconds_bucket{kind=\"concept\",le=\"1\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let recent: Vec<_> =
            recent_failures().into_iter().filter(|f| f.book_id == "b1").map(|f| f.what).collect();
        assert_eq!(recent, ["book failed", "timeout", "rejected"]);
    }
}
