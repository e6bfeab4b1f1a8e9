//! Prometheus metrics of a worker process, and the process-wide recorder both crates share.
//!
//! Every metric of the worker is named in [`NAMES`] and recorded through one helper here, so
//! the agent and the pull loop hold one-line calls, not metric literals. Without
//! [`install`] the helpers record nothing (the `metrics` facade has no recorder).

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use scriptorium_proto::kind;
use scriptorium_proto::v1::{AgentKind, StepResult, StepStatus};
use std::time::Duration;

/// Steps a worker finished, by `kind` and `outcome` (`ok`, `failed`).
pub const STEPS: &str = "scriptorium_worker_steps_total";
/// Time a worker spent on a step (prompt, model calls, repairs), by `kind` and `outcome`.
pub const STEP_SECONDS: &str = "scriptorium_worker_step_duration_seconds";
/// Steps being worked on right now, by `kind`.
pub const STEPS_IN_PROGRESS: &str = "scriptorium_worker_steps_in_progress";
/// Agents per pool, by `kind`.
pub const POOL_SIZE: &str = "scriptorium_worker_pool_size";
/// Step messages received again after an earlier delivery, by `kind`.
pub const REDELIVERIES: &str = "scriptorium_worker_redeliveries_total";
/// Steps left on the queue because they need a newer worker, by kind.
pub const LEFT_FOR_NEWER: &str = "scriptorium_worker_steps_left_for_newer_total";
/// Results that could not be published (the step is handed back), by `kind`.
pub const PUBLISH_FAILURES: &str = "scriptorium_worker_result_publish_failures_total";
/// Steps stopped before they finished, by `kind` and `reason` (`cancelled`: the coordinator
/// superseded the attempt; `shutdown`: handed back by a stopping worker).
pub const STEPS_STOPPED: &str = "scriptorium_worker_steps_stopped_total";
/// Model calls, by `kind` and `route` (`provider/model`).
pub const MODEL_CALLS: &str = "scriptorium_model_calls_total";
/// Model tokens, by `kind` and `direction` (`prompt`, `completion`).
pub const MODEL_TOKENS: &str = "scriptorium_model_tokens_total";
/// Model cost in millionths of a US dollar, by `kind` and `route`.
pub const MODEL_COST: &str = "scriptorium_model_cost_microdollars_total";
/// Retries of model calls (timeouts, 429, 5xx), by `kind`.
pub const MODEL_RETRIES: &str = "scriptorium_model_retries_total";
/// Response cache events, by `event` (`hit_local`, `hit_shared`, `miss`, `coalesced`,
/// `eviction`), copied from the cache's own counters at every heartbeat.
pub const CACHE_EVENTS: &str = "scriptorium_cache_events_total";
/// Bytes held by the in-process cache tier.
pub const CACHE_BYTES: &str = "scriptorium_cache_local_bytes";
/// Steps answered from the response cache, by `kind`.
pub const CACHE_ANSWERS: &str = "scriptorium_worker_cached_steps_total";

/// Every metric name of the worker.
pub const NAMES: &[&str] = &[
    STEPS,
    STEP_SECONDS,
    STEPS_IN_PROGRESS,
    POOL_SIZE,
    REDELIVERIES,
    LEFT_FOR_NEWER,
    PUBLISH_FAILURES,
    STEPS_STOPPED,
    MODEL_CALLS,
    MODEL_TOKENS,
    MODEL_COST,
    MODEL_RETRIES,
    CACHE_EVENTS,
    CACHE_BYTES,
    CACHE_ANSWERS,
];

/// Installs the process-wide Prometheus recorder (once) with the worker's metric help texts
/// and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    let handle = scriptorium_common::ops::install();
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
    handle
}

/// Registers the help text of every worker metric.
pub fn describe() {
    describe_counter!(STEPS, "Steps a worker finished, by kind and outcome.");
    describe_histogram!(
        STEP_SECONDS,
        metrics::Unit::Seconds,
        "Time a worker spent on one step, by kind and outcome."
    );
    describe_gauge!(STEPS_IN_PROGRESS, "Steps being worked on, by kind.");
    describe_gauge!(POOL_SIZE, "Agents in the pool of each kind.");
    describe_counter!(REDELIVERIES, "Step messages delivered more than once, by kind.");
    describe_counter!(
        LEFT_FOR_NEWER,
        "Step messages left on the queue for a newer worker (a rolling upgrade), by kind."
    );
    describe_counter!(PUBLISH_FAILURES, "Results that could not be published, by kind.");
    describe_counter!(STEPS_STOPPED, "Steps stopped before they finished, by kind and reason.");
    describe_counter!(MODEL_CALLS, "Model calls, by kind and route.");
    describe_counter!(MODEL_TOKENS, "Model tokens, by kind and direction.");
    describe_counter!(MODEL_COST, "Model cost in millionths of a US dollar, by kind and route.");
    describe_counter!(MODEL_RETRIES, "Retried model calls, by kind.");
    describe_counter!(CACHE_EVENTS, "Response cache events, by event.");
    describe_gauge!(CACHE_BYTES, metrics::Unit::Bytes, "Bytes held by the in-process cache tier.");
    describe_counter!(CACHE_ANSWERS, "Steps answered from the response cache, by kind.");
}

/// A response cache event the cache's counters do not hold (e.g. `store`); the counted ones
/// come from [`cache_counters`].
pub fn cache_event(event: &str) {
    counter!(CACHE_EVENTS, "event" => event.to_string()).increment(1);
}

/// Copies the cache's own counters (as sent in the heartbeat) into the cache metrics.
pub fn cache_counters(c: Option<&scriptorium_proto::v1::CacheCounters>) {
    let Some(c) = c else { return };
    for (event, n) in [
        ("hit_local", c.hits_local),
        ("hit_shared", c.hits_shared),
        ("miss", c.misses),
        ("coalesced", c.coalesced),
        ("eviction", c.evictions),
    ] {
        counter!(CACHE_EVENTS, "event" => event).absolute(n);
    }
    gauge!(CACHE_BYTES).set(c.bytes_local as f64);
}

/// A pool of `size` agents of `kind` started.
pub fn pool_started(kind: AgentKind, size: usize) {
    gauge!(POOL_SIZE, "kind" => kind::name(kind)).set(size as f64);
}

/// A step message of `kind` arrived for the `delivered`-th time.
pub fn step_received(kind: AgentKind, delivered: u64) {
    if delivered > 1 {
        counter!(REDELIVERIES, "kind" => kind::name(kind)).increment(1);
    }
}

/// A step of `kind` was left on the queue for a newer worker.
pub fn step_left_for_newer(kind: AgentKind) {
    counter!(LEFT_FOR_NEWER, "kind" => kind::name(kind)).increment(1);
}

/// An agent started on a step of `kind`.
pub fn step_started(kind: AgentKind) {
    gauge!(STEPS_IN_PROGRESS, "kind" => kind::name(kind)).increment(1.0);
}

/// An agent finished a step: its outcome, time and model usage.
pub fn step_finished(result: &StepResult) {
    let name = kind::name(result.kind());
    let outcome = if result.status == StepStatus::Ok as i32 { "ok" } else { "failed" };
    gauge!(STEPS_IN_PROGRESS, "kind" => name).decrement(1.0);
    counter!(STEPS, "kind" => name, "outcome" => outcome).increment(1);
    histogram!(STEP_SECONDS, "kind" => name, "outcome" => outcome)
        .record(Duration::from_millis(result.duration_ms).as_secs_f64());
    if result.cache_hit {
        counter!(CACHE_ANSWERS, "kind" => name).increment(1);
    }
    let Some(usage) = result.usage else { return };
    let route = result.route.clone();
    counter!(MODEL_CALLS, "kind" => name, "route" => route.clone()).increment(usage.calls.into());
    counter!(MODEL_TOKENS, "kind" => name, "direction" => "prompt").increment(usage.prompt_tokens);
    counter!(MODEL_TOKENS, "kind" => name, "direction" => "completion")
        .increment(usage.completion_tokens);
    counter!(MODEL_RETRIES, "kind" => name).increment(usage.retries.into());
    counter!(MODEL_COST, "kind" => name, "route" => route)
        .increment((usage.cost_usd * 1e6).round().max(0.0) as u64);
}

/// A step of `kind` was stopped before it finished, for `reason` (`cancelled`, `shutdown`).
pub fn step_stopped(kind: AgentKind, reason: &'static str) {
    let name = kind::name(kind);
    gauge!(STEPS_IN_PROGRESS, "kind" => name).decrement(1.0);
    counter!(STEPS_STOPPED, "kind" => name, "reason" => reason).increment(1);
}

/// The result of a step of `kind` could not be published.
pub fn result_publish_failed(kind: AgentKind) {
    counter!(PUBLISH_FAILURES, "kind" => kind::name(kind)).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::Usage;

    #[test]
    fn a_finished_step_is_counted_timed_and_costed() {
        let recorder = scriptorium_common::ops::recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            step_started(AgentKind::Chapter);
            step_received(AgentKind::Chapter, 2);
            step_received(AgentKind::Chapter, 1);
            step_finished(&StepResult {
                kind: AgentKind::Chapter as i32,
                status: StepStatus::Ok as i32,
                duration_ms: 1500,
                route: "sim/default".into(),
                usage: Some(Usage {
                    prompt_tokens: 100,
                    completion_tokens: 40,
                    calls: 2,
                    retries: 1,
                    cost_usd: 0.0025,
                    cache_hits: 0,
                }),
                ..Default::default()
            });
            cache_event("store");
            cache_counters(Some(&scriptorium_proto::v1::CacheCounters {
                hits_local: 3,
                hits_shared: 1,
                misses: 2,
                ..Default::default()
            }));
        });
        let text = handle.render();
        for line in [
            "scriptorium_worker_steps_total{kind=\"chapter\",outcome=\"ok\"} 1",
            "scriptorium_worker_redeliveries_total{kind=\"chapter\"} 1",
            "scriptorium_worker_steps_in_progress{kind=\"chapter\"} 0",
            "scriptorium_model_calls_total{kind=\"chapter\",route=\"sim/default\"} 2",
            "scriptorium_model_tokens_total{kind=\"chapter\",direction=\"completion\"} 40",
            "scriptorium_model_cost_microdollars_total{kind=\"chapter\",route=\"sim/default\"} 2500",
            "scriptorium_model_retries_total{kind=\"chapter\"} 1",
            "scriptorium_cache_events_total{event=\"miss\"} 2",
            "scriptorium_cache_events_total{event=\"hit_local\"} 3",
            "scriptorium_cache_events_total{event=\"store\"} 1",
            "scriptorium_worker_step_duration_seconds_bucket{kind=\"chapter\",outcome=\"ok\",le=\"2.5\"} 1",
            "scriptorium_worker_step_duration_seconds_bucket{kind=\"chapter\",outcome=\"ok\",le=\"1\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
