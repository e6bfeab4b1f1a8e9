//! The NATS JetStream transport: work-queue streams with durable pull consumers, KV buckets
//! and core subjects for events.
//!
//! Beside the connection and its operations here: [`options`] (how to connect), [`source`]
//! (reading a queue), [`dead`] (the dead-letter stream), [`inspect`] (readiness and the queues'
//! state, read-only), [`publish`] (pipelined publishing: PubAcks awaited together, in a bounded
//! window) and [`baseline`] (raw JetStream round trips, the bench's yardstick).

pub mod auth;
mod baseline;
mod dead;
mod inspect;
mod options;
mod publish;
mod source;

pub use auth::{NatsAuth, Role, Secret, redact};
pub use options::NatsOptions;
pub(crate) use source::{NatsPull, NatsSource};

use super::settings::{self, Drift, Reconcile};
use super::{
    Bucket, BusError, Cancel, Cancellations, CancellationsInner, Events, EventsInner, Published,
    Queue, Rejection, Source, SourceInner,
};
use crate::names;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// A connection to NATS with the JetStream context, streams and buckets ready.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    /// The buckets this process's role opened, in the order of [`BUCKETS`].
    stores: Arc<[Option<kv::Store>; BUCKETS.len()]>,
    opts: NatsOptions,
    drift: Arc<[Drift]>,
    /// Room for publishes whose PubAck is awaited (see [`publish`]).
    window: Arc<tokio::sync::Semaphore>,
    /// Bytes of the values this connection put or created in KV buckets (the bench's figure).
    kv_written: Arc<std::sync::atomic::AtomicU64>,
}

impl NatsBus {
    /// Connects (retrying for `opts.connect_timeout`), creates what is missing and reconciles
    /// the settings of what exists (see [`Reconcile`]) as far as its role goes. `url` may list
    /// several servers of a cluster, comma separated; credentials in it (`nats://user:pass@h`)
    /// are used when `opts.auth` gives none. Wrong credentials, a refused TLS handshake or a
    /// permission the role needs and the server refuses fail at once, naming the problem.
    pub async fn connect(url: &str, opts: NatsOptions) -> Result<Self, BusError> {
        let shown = redact(url);
        opts.validate().map_err(|e| {
            BusError::rejected(format!("connect to {shown}"), Rejection::ConfigConflict, e)
        })?;
        // A comma-separated list names several servers of one cluster: any one will do.
        let (servers, from_url) = auth::split_url(url);
        let refusals = auth::Refusals::new();
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        // One attempt never outlasts the budget (a host that drops packets would hold it for
        // the whole attempt), nor takes less than a second.
        let attempt_timeout = opts.connect_timeout.clamp(Duration::from_secs(1), CONNECT_ATTEMPT);
        let client = loop {
            let seen = refusals.clone();
            let base = async_nats::ConnectOptions::new()
                .name(&opts.name)
                .connection_timeout(attempt_timeout)
                .custom_inbox_prefix(opts.role.inbox_prefix())
                .event_callback(move |event| {
                    let seen = seen.clone();
                    async move {
                        if let async_nats::Event::ServerError(e) = event {
                            seen.record(&e.to_string());
                        }
                    }
                });
            let op = || format!("connect to {shown}");
            let attempt = match opts.auth.apply(base, from_url.as_ref()).await {
                Ok(o) => o.connect(servers.as_slice()).await.map_err(|e| BusError::nats(op(), &e)),
                Err(e) => Err(e),
            };
            match attempt {
                Ok(c) => break c,
                Err(e) => {
                    let waited = started.elapsed();
                    if !e.is_transient() || waited + delay > opts.connect_timeout {
                        return Err(e);
                    }
                    // A server still starting is normal for a few seconds: said only after.
                    if waited >= QUIET_CONNECT {
                        tracing::warn!(error = %e, "nats not reachable yet, retrying");
                    } else {
                        tracing::debug!(error = %e, "nats not reachable yet, retrying");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        };
        let js = jetstream::new(client.clone());
        // Setting up is retried as a whole: on a loaded machine, a server still starting or a
        // cluster electing leaders, JetStream API calls time out or answer 503. A permission
        // the server refuses ends it at once.
        let (stores, drift) = retrying(opts.connect_timeout, "stream and bucket setup", || {
            auth::unless_refused(&refusals, opts.role, Self::setup(&js, &opts))
        })
        .await?;
        Ok(Self {
            client,
            js,
            stores: Arc::new(stores),
            opts,
            drift: drift.into(),
            window: publish::window(),
            kv_written: Default::default(),
        })
    }

    /// Creates or looks up the streams, buckets and consumers of this process's role.
    async fn setup(
        js: &jetstream::Context,
        opts: &NatsOptions,
    ) -> Result<([Option<kv::Store>; BUCKETS.len()], Vec<Drift>), BusError> {
        let mut drift = Vec::new();
        let worker = opts.role == Role::Worker;
        for wanted in settings::streams(opts) {
            let its_bucket = WORKER_BUCKETS.iter().any(|b| settings::kv_stream(b) == wanted.name);
            if worker && !WORKER_STREAMS.contains(&wanted.name.as_str()) && !its_bucket {
                continue;
            }
            // Only the coordinator owns the streams' settings.
            let policy =
                if opts.role == Role::Coordinator { opts.reconcile } else { Reconcile::Leave };
            drift.extend(settings::ensure_stream(js, &wanted, policy).await?);
        }
        let mut stores: [Option<kv::Store>; BUCKETS.len()] = Default::default();
        for (slot, bucket) in stores.iter_mut().zip(BUCKETS) {
            if worker && !WORKER_BUCKETS.contains(&bucket) {
                continue;
            }
            let store = js
                .get_key_value(bucket)
                .await
                .map_err(|e| BusError::nats(format!("bucket {bucket}"), &e))?;
            *slot = Some(store);
        }
        if opts.reconcile != Reconcile::Leave && opts.role != Role::Tool {
            for queue in settings::queues() {
                // A worker reconciles the step consumers it reads, nothing else.
                if worker && !matches!(queue, Queue::Steps(_) | Queue::PrioritySteps(_)) {
                    continue;
                }
                drift.extend(settings::reconcile_consumer(js, queue, opts).await?);
            }
        }
        Ok((stores, drift))
    }

    /// The settings that differed from the configuration on connect, and what was done.
    pub fn drift(&self) -> &[Drift] {
        &self.drift
    }

    /// The JetStream context, for tests that look at server state directly (operators' views go
    /// through [`Bus`](super::Bus) methods).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    fn subject(queue: Queue, key: &str) -> String {
        match queue {
            Queue::Steps(kind) => names::step_subject(kind),
            Queue::Results => names::result_subject(key),
            Queue::Submit => names::SUBMIT_SUBJECT.to_string(),
            Queue::PrioritySteps(kind) => names::priority_step_subject(kind),
            Queue::PrioritySubmit => names::SUBMIT_PRIORITY_SUBJECT.to_string(),
            Queue::Control => names::control_subject(key),
        }
    }

    /// Publishes and waits for the PubAck (see [`publish`]: other publishes of the connection
    /// wait for theirs meanwhile).
    pub(crate) async fn publish(
        &self,
        queue: Queue,
        key: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.publish_pipelined(Self::subject(queue, key), msg_id, payload).await?.confirmed().await
    }

    /// Hands the message to the connection and returns what reports its PubAck; a PubAck that
    /// fails is retried with the same message id (see [`publish`]).
    pub(crate) async fn enqueue(
        &self,
        queue: Queue,
        key: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        self.publish_pipelined(Self::subject(queue, key), msg_id, payload).await
    }

    pub(crate) async fn source(&self, queue: Queue, batch: usize) -> Result<Source, BusError> {
        let (stream_name, config) = settings::consumer(queue, &self.opts);
        let source = NatsSource::open(self.js.clone(), stream_name, config, batch).await;
        Ok(Source { inner: SourceInner::Nats(Box::new(source)) })
    }

    pub(crate) async fn publish_event(
        &self,
        book_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.client
            .publish(names::event_subject(book_id), payload)
            .await
            .map_err(|e| BusError::nats("publish event", &e))
    }

    pub(crate) async fn announce_eviction(&self, key: &str) -> Result<(), BusError> {
        self.client
            .publish(names::CACHE_EVICTED_SUBJECT, Bytes::copy_from_slice(key.as_bytes()))
            .await
            .map_err(|e| BusError::nats("announce eviction", &e))
    }

    pub(crate) async fn evictions(&self) -> Result<Events, BusError> {
        let sub = self
            .client
            .subscribe(names::CACHE_EVICTED_SUBJECT)
            .await
            .map_err(|e| BusError::nats("subscribe to evictions", &e))?;
        Ok(Events { inner: EventsInner::Nats(sub) })
    }

    pub(crate) async fn announce_cancel(&self, cancel: &Cancel) -> Result<(), BusError> {
        let payload = names::cancel_payload(&cancel.step_id, cancel.attempt);
        self.client
            .publish(names::cancel_subject(&cancel.book_id), Bytes::from(payload))
            .await
            .map_err(|e| BusError::nats("announce cancel", &e))
    }

    pub(crate) async fn cancellations(&self) -> Result<Cancellations, BusError> {
        let sub = self
            .client
            .subscribe(names::CANCEL_ALL)
            .await
            .map_err(|e| BusError::nats("subscribe to cancellations", &e))?;
        Ok(Cancellations { inner: CancellationsInner::Nats(sub) })
    }

    pub(crate) async fn events(&self, book_id: Option<&str>) -> Result<Events, BusError> {
        let subject = match book_id {
            Some(id) => names::event_subject(id),
            None => format!("{}.*", names::EVENTS_PREFIX),
        };
        let sub = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| BusError::nats(format!("subscribe to {subject}"), &e))?;
        Ok(Events { inner: EventsInner::Nats(sub) })
    }

    /// The bucket's store, when this process's role opened it.
    fn store(&self, bucket: Bucket) -> Result<&kv::Store, BusError> {
        let i = BUCKETS.iter().position(|b| *b == bucket_name(bucket)).unwrap_or(0);
        self.stores[i].as_ref().ok_or_else(|| {
            BusError::rejected(
                format!("bucket {}", bucket_name(bucket)),
                Rejection::Permission,
                format!("not opened by the {} role", self.opts.role.name()),
            )
        })
    }

    /// Refuses a key NATS would refuse, before any I/O.
    fn check_key(op: &str, bucket: Bucket, key: &str) -> Result<(), BusError> {
        if names::valid_key(key) {
            Ok(())
        } else {
            Err(BusError::invalid_key(format!("{op} {}", bucket_name(bucket)), key))
        }
    }

    pub(crate) async fn kv_put(
        &self,
        bucket: Bucket,
        key: &str,
        value: Bytes,
    ) -> Result<(), BusError> {
        Self::check_key("kv put", bucket, key)?;
        let op = || format!("kv put {}", bucket_name(bucket));
        let len = value.len() as u64;
        retrying(self.opts.publish_retry, "kv put", || async {
            self.store(bucket)?
                .put(key, value.clone())
                .await
                .map(|_| ())
                .map_err(|e| BusError::nats(op(), &e))
        })
        .await?;
        self.kv_written.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Bytes of the values this connection (and its clones) put or created in KV buckets.
    pub(crate) fn kv_bytes_written(&self) -> u64 {
        self.kv_written.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) async fn kv_get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<Bytes>, BusError> {
        Self::check_key("kv get", bucket, key)?;
        let op = || format!("kv get {}", bucket_name(bucket));
        retrying(self.opts.publish_retry, "kv get", || async {
            self.store(bucket)?.get(key).await.map_err(|e| BusError::nats(op(), &e))
        })
        .await
    }

    pub(crate) async fn kv_create(
        &self,
        bucket: Bucket,
        key: &str,
        value: Bytes,
    ) -> Result<bool, BusError> {
        Self::check_key("kv create", bucket, key)?;
        // Retried while the bucket's leader is being elected. A create whose answer was lost
        // may have landed: a retry that finds the key holding exactly this value takes it as
        // its own (a lease's value names its holder, so nobody else writes the same bytes).
        let len = value.len() as u64;
        let store = self.store(bucket)?;
        let tried = std::sync::atomic::AtomicBool::new(false);
        let created = retrying(self.opts.publish_retry, "kv create", || async {
            let retry = tried.swap(true, std::sync::atomic::Ordering::Relaxed);
            match store.create(key, value.clone()).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if retry && matches!(store.get(key).await, Ok(Some(v)) if v == value) {
                        return Ok(true);
                    }
                    Ok(false)
                }
                Err(e) => Err(BusError::nats(format!("kv create {}", bucket_name(bucket)), &e)),
            }
        })
        .await?;
        if created {
            self.kv_written.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(created)
    }

    pub(crate) async fn kv_delete(&self, bucket: Bucket, key: &str) -> Result<(), BusError> {
        Self::check_key("kv delete", bucket, key)?;
        self.store(bucket)?
            .delete(key)
            .await
            .map_err(|e| BusError::nats(format!("kv delete {}", bucket_name(bucket)), &e))
    }

    pub(crate) async fn kv_keys(&self, bucket: Bucket) -> Result<Vec<String>, BusError> {
        retrying(self.opts.publish_retry, "kv keys", || self.kv_keys_once(bucket)).await
    }

    /// The keys of `bucket`, from the subjects its stream holds a message on, as the server
    /// counts them in one answer. The KV key listing of async-nats is a consumer that follows
    /// the bucket while it lists: a key updated meanwhile comes again, and one updated before
    /// its turn can be missed (its older message is gone, the newer one comes after the listing
    /// ended). A deleted key keeps its delete marker until it expires, so it may be listed:
    /// every caller reads the value next, and finds none.
    async fn kv_keys_once(&self, bucket: Bucket) -> Result<Vec<String>, BusError> {
        let store = self.store(bucket)?;
        let listing = async {
            let counts =
                inspect::subject_counts(&store.stream, format!("{}>", store.prefix)).await?;
            let mut keys: Vec<String> = counts
                .into_keys()
                .filter_map(|subject| subject.strip_prefix(&store.prefix).map(str::to_string))
                .collect();
            keys.sort();
            Ok(keys)
        };
        // Bounded, then listed again, as every JetStream request on a loaded server.
        tokio::time::timeout(KEYS_TIMEOUT, listing).await.unwrap_or_else(|_| {
            Err(BusError::Unavailable {
                op: format!("kv keys {}", bucket_name(bucket)),
                detail: "key listing timed out".into(),
            })
        })
    }

    pub(crate) async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(|e| BusError::nats("flush", &e))
    }
}

/// Runs `op` until it succeeds, fails for good, or `budget` has passed, backing off between
/// tries. Only transient failures are retried.
async fn retrying<T, F, Fut>(budget: Duration, what: &str, mut op: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && start.elapsed() < budget => {
                tracing::warn!(error = %e, what, "nats operation failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Longest one connection attempt may take.
const CONNECT_ATTEMPT: Duration = Duration::from_secs(5);

/// How long failed connection attempts are retried without a warning.
const QUIET_CONNECT: Duration = Duration::from_secs(3);

/// Longest one listing of a bucket's keys may take before it is started again.
const KEYS_TIMEOUT: Duration = Duration::from_secs(10);

/// The buckets, in the order of `NatsBus`'s stores.
const BUCKETS: [&str; 7] = [
    names::BOOKS_BUCKET,
    names::OUTPUTS_BUCKET,
    names::STEP_STATES_BUCKET,
    names::WORKERS_BUCKET,
    names::COORDINATORS_BUCKET,
    names::CACHE_BUCKET,
    names::LEASES_BUCKET,
];

fn bucket_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Books => names::BOOKS_BUCKET,
        Bucket::Outputs => names::OUTPUTS_BUCKET,
        Bucket::StepStates => names::STEP_STATES_BUCKET,
        Bucket::Workers => names::WORKERS_BUCKET,
        Bucket::Coordinators => names::COORDINATORS_BUCKET,
        Bucket::Cache => names::CACHE_BUCKET,
        Bucket::Leases => names::LEASES_BUCKET,
    }
}

/// The streams a worker uses: it takes steps, answers them and dead-letters what it gives up.
const WORKER_STREAMS: [&str; 3] = [names::STEPS_STREAM, names::RESULTS_STREAM, names::DEAD_STREAM];

/// The buckets a worker uses: its heartbeat, the shared cache and its leases (never the books'
/// records or outputs).
const WORKER_BUCKETS: [&str; 3] =
    [names::WORKERS_BUCKET, names::CACHE_BUCKET, names::LEASES_BUCKET];

/// The streams a process of `role` sets up and needs (readiness checks these).
pub(crate) fn role_streams(role: Role) -> Vec<String> {
    match role {
        Role::Worker => WORKER_STREAMS
            .iter()
            .map(|s| s.to_string())
            .chain(WORKER_BUCKETS.iter().map(|b| settings::kv_stream(b)))
            .collect(),
        Role::Coordinator | Role::Tool => stream_names(),
    }
}

/// Every stream Scriptorium uses: the queues' and the buckets'.
pub(crate) fn stream_names() -> Vec<String> {
    [
        names::STEPS_STREAM,
        names::RESULTS_STREAM,
        names::SUBMIT_STREAM,
        names::CONTROL_STREAM,
        names::DEAD_STREAM,
    ]
    .into_iter()
    .map(String::from)
    .chain(BUCKETS.iter().map(|b| settings::kv_stream(b)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_streams_back_the_queues_and_buckets() {
        let all = stream_names();
        assert_eq!(all.len(), 12);
        let configured: Vec<_> =
            settings::streams(&NatsOptions::default()).into_iter().map(|s| s.name).collect();
        assert_eq!(all, configured, "readiness checks every stream connect sets up");
    }
}
