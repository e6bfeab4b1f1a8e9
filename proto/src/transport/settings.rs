//! What Scriptorium asks of JetStream for each stream, bucket and consumer, and what `connect`
//! does when an existing one was set up with other settings (settings drift).
//!
//! Whichever process first creates a stream, bucket or consumer fixes its settings; a later
//! process with other settings would silently run with the old ones. So `connect` compares each
//! existing one with the configured settings, updates in place what JetStream allows (stream
//! limits, subjects and replicas; consumer ack wait, max deliver, backoff, max ack pending and
//! replicas) and warns about what it does not (storage, retention, a consumer's ack policy or
//! filter), which only recreating the stream or consumer changes.

use super::nats::NatsOptions;
use super::{BusError, Queue};
use crate::names;
use async_nats::jetstream::consumer::{self, IntoConsumerConfig as _};
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// What `connect` does with settings that differ from the configured ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reconcile {
    /// Update what JetStream allows to be updated in place; warn about the rest.
    #[default]
    Update,
    /// Only warn (tools that read the queues and do not own their settings).
    Report,
    /// Compare nothing.
    Leave,
}

/// One setting of a stream, bucket or consumer that differed from the configuration on connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The stream (`SCRIPTORIUM_STEPS`, `KV_scriptorium_cache`) or consumer
    /// (`SCRIPTORIUM_STEPS/steps-chapter`).
    pub what: String,
    /// The setting, as JetStream names it (`ack_wait`, `num_replicas`).
    pub field: &'static str,
    /// The value JetStream had.
    pub found: String,
    /// The configured value.
    pub wanted: String,
    /// What was done about it.
    pub outcome: DriftOutcome,
}

/// What `connect` did about a [`Drift`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftOutcome {
    /// Updated in place to the configured value.
    Updated,
    /// JetStream cannot change this setting in place: the stream or consumer must be recreated.
    Immutable,
    /// JetStream refused the update (the reason is kept).
    Refused(String),
    /// Only reported ([`Reconcile::Report`]).
    Reported,
}

impl std::fmt::Display for DriftOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriftOutcome::Updated => f.write_str("updated"),
            DriftOutcome::Immutable => f.write_str("cannot be updated in place"),
            DriftOutcome::Refused(why) => write!(f, "update refused: {why}"),
            DriftOutcome::Reported => f.write_str("reported only"),
        }
    }
}

/// The stream behind each bucket.
pub(crate) fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// Every stream Scriptorium uses, as configured: the four queues' streams, then the buckets'.
pub(crate) fn streams(opts: &NatsOptions) -> Vec<stream::Config> {
    let queue = |name: &str, subjects: Vec<String>| stream::Config {
        name: name.to_string(),
        subjects,
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(names::DUPLICATE_WINDOW_SECS),
        num_replicas: opts.replicas,
        ..Default::default()
    };
    let mut out = vec![
        // `<kind>` and `<kind>.priority`.
        queue(names::STEPS_STREAM, vec![format!("{}.>", names::STEPS_PREFIX)]),
        queue(names::RESULTS_STREAM, vec![format!("{}.>", names::RESULTS_PREFIX)]),
        queue(
            names::SUBMIT_STREAM,
            vec![names::SUBMIT_SUBJECT.to_string(), names::SUBMIT_PRIORITY_SUBJECT.to_string()],
        ),
        queue(names::CONTROL_STREAM, vec![format!("{}.*", names::CONTROL_PREFIX)]),
        stream::Config {
            name: names::DEAD_STREAM.to_string(),
            subjects: vec![format!("{}.>", names::DEAD_PREFIX)],
            storage: stream::StorageType::File,
            num_replicas: opts.replicas,
            ..Default::default()
        },
    ];
    for (bucket, ttl, max_bytes, drop_oldest) in [
        (names::BOOKS_BUCKET, Duration::ZERO, -1, false),
        (names::OUTPUTS_BUCKET, Duration::ZERO, -1, false),
        (names::STEP_STATES_BUCKET, Duration::ZERO, -1, false),
        (names::WORKERS_BUCKET, opts.heartbeat_ttl, -1, false),
        (names::COORDINATORS_BUCKET, opts.heartbeat_ttl, -1, false),
        (names::CACHE_BUCKET, opts.cache_ttl, opts.cache_max_bytes, true),
        (names::LEASES_BUCKET, opts.lease_ttl, -1, false),
    ] {
        // The settings `create_key_value` would use (the stream is created by hand because that
        // call first reads the account info, whose shape differs on NATS 2.9 servers), except
        // direct gets: with replicas, any follower answers a direct get, possibly before it
        // applied the latest write; without, reads go to the stream leader and see every
        // acknowledged write.
        out.push(stream::Config {
            name: kv_stream(bucket),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: ttl,
            max_bytes,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: false,
            discard: if drop_oldest {
                stream::DiscardPolicy::Old
            } else {
                stream::DiscardPolicy::New
            },
            num_replicas: opts.replicas,
            ..Default::default()
        });
    }
    out
}

/// Every durable consumer Scriptorium uses.
pub(crate) fn queues() -> impl Iterator<Item = Queue> {
    crate::kind::agents().flat_map(|k| [Queue::Steps(k), Queue::PrioritySteps(k)]).chain([
        Queue::Results,
        Queue::Submit,
        Queue::PrioritySubmit,
        Queue::Control,
    ])
}

/// The stream and the configuration of the durable consumer of `queue`.
pub(crate) fn consumer(queue: Queue, opts: &NatsOptions) -> (&'static str, consumer::pull::Config) {
    let (stream_name, durable, filter, settings) = match queue {
        Queue::Steps(kind) => (
            names::STEPS_STREAM,
            names::step_consumer(kind),
            names::step_subject(kind),
            opts.steps.clone(),
        ),
        Queue::Results => (
            names::RESULTS_STREAM,
            names::RESULTS_CONSUMER.to_string(),
            format!("{}.>", names::RESULTS_PREFIX),
            opts.coordinator.clone(),
        ),
        Queue::Submit => (
            names::SUBMIT_STREAM,
            names::SUBMIT_CONSUMER.to_string(),
            names::SUBMIT_SUBJECT.to_string(),
            opts.coordinator.clone(),
        ),
        Queue::PrioritySteps(kind) => (
            names::STEPS_STREAM,
            names::priority_step_consumer(kind),
            names::priority_step_subject(kind),
            opts.steps.clone(),
        ),
        Queue::PrioritySubmit => (
            names::SUBMIT_STREAM,
            names::SUBMIT_PRIORITY_CONSUMER.to_string(),
            names::SUBMIT_PRIORITY_SUBJECT.to_string(),
            opts.coordinator.clone(),
        ),
        Queue::Control => (
            names::CONTROL_STREAM,
            names::CONTROL_CONSUMER.to_string(),
            format!("{}.*", names::CONTROL_PREFIX),
            opts.coordinator.clone(),
        ),
    };
    let config = consumer::pull::Config {
        durable_name: Some(durable),
        filter_subject: filter,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.first_ack_wait(),
        max_deliver: settings.max_deliver,
        backoff: settings.backoff,
        max_ack_pending: 10_000,
        num_replicas: opts.replicas,
        ..Default::default()
    };
    (stream_name, config)
}

/// One compared setting: its name, the values found and wanted, whether it can be updated.
struct Diff {
    field: &'static str,
    found: String,
    wanted: String,
    updatable: bool,
}

fn diff<T: PartialEq + std::fmt::Debug>(
    out: &mut Vec<Diff>,
    field: &'static str,
    found: T,
    wanted: T,
    updatable: bool,
) {
    if found != wanted {
        out.push(Diff {
            field,
            found: format!("{found:?}"),
            wanted: format!("{wanted:?}"),
            updatable,
        });
    }
}

/// Limits where 0 and negative both mean "none".
fn limit(v: i64) -> i64 {
    if v <= 0 { -1 } else { v }
}

/// The differences between a stream's settings and the wanted ones, on the fields Scriptorium
/// sets, with JetStream's defaults made explicit.
fn stream_diffs(found: &stream::Config, wanted: &stream::Config) -> Vec<Diff> {
    let mut out = Vec::new();
    let mut subjects = (found.subjects.clone(), wanted.subjects.clone());
    subjects.0.sort();
    subjects.1.sort();
    diff(&mut out, "subjects", subjects.0, subjects.1, true);
    diff(&mut out, "retention", found.retention, wanted.retention, false);
    diff(&mut out, "storage", found.storage, wanted.storage, false);
    diff(&mut out, "num_replicas", found.num_replicas.max(1), wanted.num_replicas.max(1), true);
    diff(&mut out, "max_age", found.max_age, wanted.max_age, true);
    diff(&mut out, "max_bytes", limit(found.max_bytes), limit(wanted.max_bytes), true);
    diff(&mut out, "discard", found.discard, wanted.discard, true);
    diff(
        &mut out,
        "max_messages_per_subject",
        limit(found.max_messages_per_subject),
        limit(wanted.max_messages_per_subject),
        true,
    );
    if !wanted.duplicate_window.is_zero() {
        diff(&mut out, "duplicate_window", found.duplicate_window, wanted.duplicate_window, true);
    }
    diff(&mut out, "allow_rollup", found.allow_rollup, wanted.allow_rollup, true);
    // JetStream can set deny_delete, never lift it.
    diff(&mut out, "deny_delete", found.deny_delete, wanted.deny_delete, wanted.deny_delete);
    diff(&mut out, "allow_direct", found.allow_direct, wanted.allow_direct, true);
    out
}

/// `found` with the updatable wanted settings applied (everything else kept as found).
fn stream_update(found: &stream::Config, wanted: &stream::Config) -> stream::Config {
    stream::Config {
        subjects: wanted.subjects.clone(),
        num_replicas: wanted.num_replicas,
        max_age: wanted.max_age,
        max_bytes: wanted.max_bytes,
        discard: wanted.discard,
        max_messages_per_subject: wanted.max_messages_per_subject,
        duplicate_window: match (wanted.duplicate_window, wanted.max_age) {
            (w, _) if !w.is_zero() => w,
            // JetStream refuses a duplicate window longer than the max age; it set the window
            // from the old max age when the stream was created.
            (_, age) if !age.is_zero() && found.duplicate_window > age => age,
            _ => found.duplicate_window,
        },
        allow_rollup: wanted.allow_rollup,
        deny_delete: found.deny_delete || wanted.deny_delete,
        allow_direct: wanted.allow_direct,
        ..found.clone()
    }
}

/// The differences between a consumer's settings and the wanted ones.
fn consumer_diffs(found: &consumer::Config, wanted: &consumer::Config) -> Vec<Diff> {
    let mut out = Vec::new();
    diff(&mut out, "ack_policy", found.ack_policy, wanted.ack_policy, false);
    diff(&mut out, "deliver_policy", found.deliver_policy, wanted.deliver_policy, false);
    // Changing the filter needs NATS 2.10; recreating the consumer is the portable way.
    diff(&mut out, "filter_subject", &found.filter_subject, &wanted.filter_subject, false);
    diff(&mut out, "ack_wait", found.ack_wait, wanted.ack_wait, true);
    diff(&mut out, "max_deliver", limit(found.max_deliver), limit(wanted.max_deliver), true);
    diff(&mut out, "backoff", &found.backoff, &wanted.backoff, true);
    diff(&mut out, "max_ack_pending", found.max_ack_pending, wanted.max_ack_pending, true);
    // 0 means "as the stream"; compare only what was asked for explicitly.
    if found.num_replicas != 0 || wanted.num_replicas > 1 {
        diff(&mut out, "num_replicas", found.num_replicas.max(1), wanted.num_replicas, true);
    }
    out
}

fn consumer_update(found: &consumer::Config, wanted: &consumer::Config) -> consumer::Config {
    consumer::Config {
        ack_wait: wanted.ack_wait,
        max_deliver: wanted.max_deliver,
        backoff: wanted.backoff.clone(),
        max_ack_pending: wanted.max_ack_pending,
        num_replicas: wanted.num_replicas,
        ..found.clone()
    }
}

/// Turns compared settings into drifts, logging each; returns them with whether an update is
/// worth sending.
fn record(what: &str, diffs: Vec<Diff>, policy: Reconcile) -> (Vec<Drift>, bool) {
    let update = policy == Reconcile::Update && diffs.iter().any(|d| d.updatable);
    let drifts = diffs
        .into_iter()
        .map(|d| Drift {
            what: what.to_string(),
            field: d.field,
            found: d.found,
            wanted: d.wanted,
            outcome: match (d.updatable, policy) {
                (false, _) => DriftOutcome::Immutable,
                (true, Reconcile::Update) => DriftOutcome::Updated,
                (true, _) => DriftOutcome::Reported,
            },
        })
        .collect();
    (drifts, update)
}

/// Marks the drifts an update was meant to fix as refused.
fn refused(drifts: &mut [Drift], why: &BusError) {
    for d in drifts.iter_mut().filter(|d| d.outcome == DriftOutcome::Updated) {
        d.outcome = DriftOutcome::Refused(why.to_string());
    }
}

fn log(drifts: &[Drift]) {
    for d in drifts {
        match &d.outcome {
            DriftOutcome::Updated => tracing::info!(
                what = %d.what, field = d.field, found = %d.found, wanted = %d.wanted,
                "jetstream setting differed from the configuration; updated"
            ),
            DriftOutcome::Immutable => tracing::warn!(
                what = %d.what, field = d.field, found = %d.found, wanted = %d.wanted,
                "jetstream setting differs from the configuration and cannot be updated in \
                 place; running with the value found (delete and recreate it to apply)"
            ),
            DriftOutcome::Refused(why) => tracing::warn!(
                what = %d.what, field = d.field, found = %d.found, wanted = %d.wanted,
                error = %why,
                "jetstream setting differs from the configuration and the update was refused; \
                 running with the value found"
            ),
            DriftOutcome::Reported => tracing::warn!(
                what = %d.what, field = d.field, found = %d.found, wanted = %d.wanted,
                "jetstream setting differs from the configuration"
            ),
        }
    }
}

/// Creates the stream when missing; otherwise compares it with `wanted` and acts per `policy`.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    wanted: &stream::Config,
    policy: Reconcile,
) -> Result<Vec<Drift>, BusError> {
    let name = &wanted.name;
    let op = || format!("stream {name}");
    let stream = match js.get_or_create_stream(wanted.clone()).await {
        Ok(s) => s,
        // Another process created it between this one's look and its create (two processes
        // starting at once; the server then answers "subjects overlap"): theirs is used.
        Err(e) => js.get_stream(name).await.map_err(|_| BusError::nats(op(), &e))?,
    };
    if policy == Reconcile::Leave {
        return Ok(Vec::new());
    }
    let info = stream.cached_info();
    let found = &info.config;
    let mut diffs = stream_diffs(found, wanted);
    // A server outside a cluster accepts an update to more replicas but cannot hold them.
    let clustered = info.cluster.as_ref().is_some_and(|c| c.name.is_some());
    let single = !clustered && wanted.num_replicas > 1;
    if single {
        diffs.retain(|d| d.field != "num_replicas");
    }
    let (mut drifts, update) = record(name, diffs, policy);
    if single && found.num_replicas.max(1) != wanted.num_replicas {
        drifts.push(Drift {
            what: name.clone(),
            field: "num_replicas",
            found: found.num_replicas.max(1).to_string(),
            wanted: wanted.num_replicas.to_string(),
            outcome: DriftOutcome::Refused("the server is not part of a cluster".into()),
        });
    }
    if update {
        let config = stream::Config {
            num_replicas: if single { found.num_replicas } else { wanted.num_replicas },
            ..stream_update(found, wanted)
        };
        if let Err(e) = js.update_stream(&config).await {
            let e = BusError::nats(format!("update stream {name}"), &e);
            if e.is_transient() {
                return Err(e);
            }
            refused(&mut drifts, &e);
        }
    }
    log(&drifts);
    Ok(drifts)
}

/// Compares the consumer of `queue`, when it exists, with its configuration and acts per
/// `policy`. A missing consumer is left to be created by the first reader, with the
/// configured settings.
pub(crate) async fn reconcile_consumer(
    js: &jetstream::Context,
    queue: Queue,
    opts: &NatsOptions,
) -> Result<Vec<Drift>, BusError> {
    let (stream_name, config) = consumer(queue, opts);
    let wanted = config.into_consumer_config();
    let durable = wanted.durable_name.clone().unwrap_or_default();
    let what = format!("{stream_name}/{durable}");
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| BusError::nats(format!("stream {stream_name}"), &e))?;
    let info = match stream.consumer_info(&durable).await {
        Ok(info) => info,
        Err(e) => {
            let e = BusError::nats(format!("consumer {what}"), &e);
            return match e.rejection() {
                Some(super::Rejection::NotFound) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
    };
    let (mut drifts, update) = record(&what, consumer_diffs(&info.config, &wanted), opts.reconcile);
    if update {
        // Creating a durable consumer again with its name updates the allowed fields in place.
        let config = consumer_update(&info.config, &wanted);
        if let Err(e) = stream.create_consumer(config).await {
            let e = BusError::nats(format!("update consumer {what}"), &e);
            if e.is_transient() {
                return Err(e);
            }
            refused(&mut drifts, &e);
        }
    }
    log(&drifts);
    Ok(drifts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::QueueSettings;

    fn opts() -> NatsOptions {
        NatsOptions::default()
    }

    #[test]
    fn a_stream_as_configured_shows_no_drift() {
        for s in streams(&opts()) {
            assert!(stream_diffs(&s, &s).is_empty(), "{}", s.name);
        }
    }

    #[test]
    fn server_defaults_are_not_drift() {
        let wanted = streams(&opts()).remove(0);
        // What the server reports for settings left at zero.
        let found = stream::Config {
            max_bytes: -1,
            max_messages_per_subject: -1,
            num_replicas: 1,
            ..wanted.clone()
        };
        assert!(stream_diffs(&found, &wanted).is_empty());
        let (_, c) = consumer(Queue::Results, &opts());
        let c = c.into_consumer_config();
        let found = consumer::Config { num_replicas: 0, ..c.clone() };
        assert!(consumer_diffs(&found, &c).is_empty());
    }

    #[test]
    fn replicas_and_limits_are_updatable_storage_is_not() {
        let wanted = streams(&NatsOptions { replicas: 3, ..opts() }).remove(0);
        let found = stream::Config {
            num_replicas: 1,
            storage: stream::StorageType::Memory,
            max_age: Duration::from_secs(60),
            ..wanted.clone()
        };
        let diffs = stream_diffs(&found, &wanted);
        let fields: Vec<_> = diffs.iter().map(|d| (d.field, d.updatable)).collect();
        assert_eq!(fields, [("storage", false), ("num_replicas", true), ("max_age", true)]);
        let update = stream_update(&found, &wanted);
        assert_eq!(update.num_replicas, 3);
        assert_eq!(update.max_age, wanted.max_age);
        assert_eq!(update.storage, stream::StorageType::Memory, "immutable settings are kept");
        let (drifts, send) = record("S", diffs, Reconcile::Update);
        assert!(send);
        assert_eq!(drifts[0].outcome, DriftOutcome::Immutable);
        assert_eq!(drifts[1].outcome, DriftOutcome::Updated);
        let (drifts, send) = record("S", stream_diffs(&found, &wanted), Reconcile::Report);
        assert!(!send, "report only never updates");
        assert_eq!(drifts[1].outcome, DriftOutcome::Reported);
    }

    #[test]
    fn consumer_ack_wait_backoff_and_max_deliver_are_updatable() {
        let steps = QueueSettings {
            ack_wait: Duration::from_secs(10),
            max_deliver: 20,
            backoff: vec![Duration::from_secs(5), Duration::from_secs(30)],
        };
        let o = NatsOptions { steps, ..opts() };
        let (stream_name, wanted) = consumer(Queue::Steps(crate::v1::AgentKind::Concept), &o);
        assert_eq!(stream_name, names::STEPS_STREAM);
        let wanted = wanted.into_consumer_config();
        assert_eq!(wanted.ack_wait, Duration::from_secs(5), "JetStream's ack wait is backoff[0]");
        let found = consumer::Config {
            ack_wait: Duration::from_secs(30),
            max_deliver: 10,
            backoff: Vec::new(),
            ..wanted.clone()
        };
        let diffs = consumer_diffs(&found, &wanted);
        let fields: Vec<_> = diffs.iter().map(|d| (d.field, d.updatable)).collect();
        assert_eq!(fields, [("ack_wait", true), ("max_deliver", true), ("backoff", true)]);
        let update = consumer_update(&found, &wanted);
        assert!(consumer_diffs(&update, &wanted).is_empty());
        let other_filter = consumer::Config { filter_subject: "x".into(), ..wanted.clone() };
        assert!(!consumer_diffs(&other_filter, &wanted)[0].updatable);
    }

    #[test]
    fn every_stream_and_bucket_follows_the_replicas_setting() {
        let all = streams(&NatsOptions { replicas: 3, ..opts() });
        assert_eq!(all.len(), 12, "four queue streams, the dead letters and seven buckets");
        assert!(all.iter().all(|s| s.num_replicas == 3));
        for q in queues() {
            assert_eq!(consumer(q, &NatsOptions { replicas: 3, ..opts() }).1.num_replicas, 3);
        }
    }
}
