//! The NATS JetStream transport: work-queue streams with durable pull consumers, KV buckets
//! and core subjects for events.

use super::settings::{self, Drift, Reconcile};
use super::{
    Acker, Bucket, BusError, Cancel, Cancellations, CancellationsInner, DeadLetter, Events,
    EventsInner, Incoming, Queue, QueueSettings, Rejection, Source, SourceInner,
};
use crate::names;
use async_nats::jetstream::{self, consumer, kv};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How to connect to NATS.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Connection name shown by the server.
    pub name: String,
    /// How long to keep trying the first connection.
    pub connect_timeout: Duration,
    /// Settings of the step queues.
    pub steps: QueueSettings,
    /// Settings of the coordinator's queues (results and submissions). The coordinator sends
    /// in-progress acknowledgements while it handles a message, so a short ack wait only bounds
    /// how long a delivery lost with a server (or a coordinator) waits to be delivered again.
    pub coordinator: QueueSettings,
    /// How long a worker heartbeat stays in its bucket.
    pub heartbeat_ttl: Duration,
    /// How long a shared cache entry lives.
    pub cache_ttl: Duration,
    /// Size limit of the shared cache tier in bytes (oldest entries are dropped first).
    pub cache_max_bytes: i64,
    /// How long a cache computation lease lives.
    pub lease_ttl: Duration,
    /// How long publishes and state writes are retried while the server is unreachable (only
    /// transient failures are retried; a refusal returns at once).
    pub publish_retry: Duration,
    /// Replicas of every stream, bucket and consumer (1 on a single server, 3 on a 3-node
    /// cluster; JetStream allows 1 to 5).
    pub replicas: usize,
    /// What `connect` does when an existing stream, bucket or consumer has other settings.
    pub reconcile: Reconcile,
}

impl NatsOptions {
    /// Checks what JetStream would refuse, naming the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("replicas: must be between 1 and 5 (got {})", self.replicas));
        }
        self.steps.validate().map_err(|e| format!("steps.{e}"))?;
        self.coordinator.validate().map_err(|e| format!("coordinator.{e}"))
    }
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            name: "scriptorium".into(),
            connect_timeout: Duration::from_secs(30),
            steps: QueueSettings::default(),
            coordinator: QueueSettings {
                ack_wait: Duration::from_secs(10),
                ..QueueSettings::default()
            },
            heartbeat_ttl: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(7 * 24 * 3600),
            cache_max_bytes: 1 << 30,
            lease_ttl: Duration::from_secs(300),
            publish_retry: Duration::from_secs(60),
            replicas: 1,
            reconcile: Reconcile::Update,
        }
    }
}

/// A connection to NATS with the JetStream context, streams and buckets ready.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    books: kv::Store,
    outputs: kv::Store,
    workers: kv::Store,
    cache: kv::Store,
    leases: kv::Store,
    opts: NatsOptions,
    drift: Arc<[Drift]>,
}

impl NatsBus {
    /// Connects (retrying for `opts.connect_timeout`), creates what is missing and reconciles
    /// the settings of what exists (see [`Reconcile`]). `url` may list several servers of a
    /// cluster, comma separated.
    pub async fn connect(url: &str, opts: NatsOptions) -> Result<Self, BusError> {
        let shown = redact(url);
        opts.validate().map_err(|e| {
            BusError::rejected(format!("connect to {shown}"), Rejection::ConfigConflict, e)
        })?;
        // A comma-separated list names several servers of one cluster: any one will do.
        let servers: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        let client = loop {
            let attempt = async_nats::ConnectOptions::new()
                .name(&opts.name)
                .connection_timeout(Duration::from_secs(5))
                .connect(servers.as_slice())
                .await;
            match attempt {
                Ok(c) => break c,
                Err(e) => {
                    let e = BusError::nats(format!("connect to {shown}"), &e);
                    if !e.is_transient() || started.elapsed() >= opts.connect_timeout {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "nats not reachable yet, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        };
        let js = jetstream::new(client.clone());
        // Setting up is retried as a whole: on a loaded machine, a server still starting or a
        // cluster electing leaders, JetStream API calls time out or answer 503.
        let (stores, drift) =
            retrying(opts.connect_timeout, "stream and bucket setup", || Self::setup(&js, &opts))
                .await?;
        let [books, outputs, workers, cache, leases] = stores;
        Ok(Self { client, js, books, outputs, workers, cache, leases, opts, drift: drift.into() })
    }

    async fn setup(
        js: &jetstream::Context,
        opts: &NatsOptions,
    ) -> Result<([kv::Store; 5], Vec<Drift>), BusError> {
        let mut drift = Vec::new();
        for wanted in settings::streams(opts) {
            drift.extend(settings::ensure_stream(js, &wanted, opts.reconcile).await?);
        }
        let mut stores = Vec::with_capacity(5);
        for bucket in BUCKETS {
            let store = js
                .get_key_value(bucket)
                .await
                .map_err(|e| BusError::nats(format!("bucket {bucket}"), &e))?;
            stores.push(store);
        }
        if opts.reconcile != Reconcile::Leave {
            for queue in settings::queues() {
                drift.extend(settings::reconcile_consumer(js, queue, opts).await?);
            }
        }
        let stores: [kv::Store; 5] = stores.try_into().map_err(|_| {
            BusError::rejected("bucket setup", Rejection::Other, "a bucket is missing".into())
        })?;
        Ok((stores, drift))
    }

    /// The settings that differed from the configuration on connect, and what was done.
    pub fn drift(&self) -> &[Drift] {
        &self.drift
    }

    /// The underlying client, for tools that read server state (queues, benchmarks).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Read-only readiness check: connected, and every stream and bucket exists and has a
    /// leader (nothing is created here; `connect` did that). Backs the `/readyz` endpoints.
    pub async fn check_ready(&self) -> Result<(), BusError> {
        let state = self.client.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(BusError::Unavailable {
                op: "readiness".into(),
                detail: format!("connection {state}"),
            });
        }
        for name in stream_names() {
            let info = self
                .js
                .get_stream(&name)
                .await
                .map_err(|e| BusError::nats(format!("stream {name}"), &e))?;
            let leaderless = info
                .cached_info()
                .cluster
                .as_ref()
                .is_some_and(|c| c.leader.as_deref().unwrap_or("").is_empty());
            if leaderless {
                return Err(BusError::Unavailable {
                    op: format!("stream {name}"),
                    detail: "no leader".into(),
                });
            }
        }
        Ok(())
    }

    fn subject(queue: Queue, key: &str) -> String {
        match queue {
            Queue::Steps(kind) => names::step_subject(kind),
            Queue::Results => names::result_subject(key),
            Queue::Submit => names::SUBMIT_SUBJECT.to_string(),
        }
    }

    pub(crate) async fn publish(
        &self,
        queue: Queue,
        key: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let subject = Self::subject(queue, key);
        // While the server restarts, publishes fail: retry for a while. The message id makes
        // a retry of a publish that did land a no-op.
        let op = || format!("publish to {subject}");
        retrying(self.opts.publish_retry, "publish", || async {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(msg_id);
            let ack = self
                .js
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|e| BusError::nats(op(), &e))?;
            ack.await.map_err(|e| BusError::nats(op(), &e))?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn source(&self, queue: Queue, batch: usize) -> Result<Source, BusError> {
        let (stream_name, config) = settings::consumer(queue, &self.opts);
        let mut source = NatsSource {
            js: self.js.clone(),
            stream: stream_name,
            config,
            batch: batch.max(1),
            consumer: None,
            messages: None,
        };
        // The consumer now, so it exists with these settings before anything is published;
        // the pull starts with the first `next` or `fetch`, so nothing is fetched ahead of
        // what the reader asks for.
        if let Err(e) = source.consumer().await {
            // Not fatal: `next` and `fetch` keep trying.
            tracing::warn!(stream = stream_name, error = %e, "queue not open yet; retrying");
        }
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

    fn store(&self, bucket: Bucket) -> &kv::Store {
        match bucket {
            Bucket::Books => &self.books,
            Bucket::Outputs => &self.outputs,
            Bucket::Workers => &self.workers,
            Bucket::Cache => &self.cache,
            Bucket::Leases => &self.leases,
        }
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
        retrying(self.opts.publish_retry, "kv put", || async {
            self.store(bucket)
                .put(key, value.clone())
                .await
                .map(|_| ())
                .map_err(|e| BusError::nats(op(), &e))
        })
        .await
    }

    pub(crate) async fn kv_get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<Bytes>, BusError> {
        Self::check_key("kv get", bucket, key)?;
        let op = || format!("kv get {}", bucket_name(bucket));
        retrying(self.opts.publish_retry, "kv get", || async {
            self.store(bucket).get(key).await.map_err(|e| BusError::nats(op(), &e))
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
        // Not retried: a create whose answer was lost would then report the key as taken.
        match self.store(bucket).create(key, value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(BusError::nats(format!("kv create {}", bucket_name(bucket)), &e)),
        }
    }

    pub(crate) async fn kv_delete(&self, bucket: Bucket, key: &str) -> Result<(), BusError> {
        Self::check_key("kv delete", bucket, key)?;
        self.store(bucket)
            .delete(key)
            .await
            .map_err(|e| BusError::nats(format!("kv delete {}", bucket_name(bucket)), &e))
    }

    pub(crate) async fn dead_letter(
        &self,
        queue: &str,
        payload: Bytes,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = async_nats::HeaderMap::new();
        // Header values must be one line.
        headers.insert("Scriptorium-Reason", reason.replace(['\r', '\n'], " ").as_str());
        let op = || format!("dead letter from {queue}");
        let ack = self
            .js
            .publish_with_headers(names::dead_subject(queue), headers, payload)
            .await
            .map_err(|e| BusError::nats(op(), &e))?;
        ack.await.map_err(|e| BusError::nats(op(), &e))?;
        Ok(())
    }

    pub(crate) async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let op = "read dead letters";
        let stream =
            self.js.get_stream(names::DEAD_STREAM).await.map_err(|e| BusError::nats(op, &e))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await
            .map_err(|e| BusError::nats(op, &e))?;
        let mut out = Vec::new();
        let pending = stream.get_info().await.map_err(|e| BusError::nats(op, &e))?.state.messages;
        if pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(|e| BusError::nats(op, &e))?;
        while (out.len() as u64) < pending {
            let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await
            else {
                break;
            };
            let m = m.map_err(|e| BusError::nats(op, &e))?;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            let reason = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Scriptorium-Reason"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            let queue = m
                .subject
                .as_str()
                .trim_start_matches(names::DEAD_PREFIX)
                .trim_start_matches('.')
                .to_string();
            out.push(DeadLetter { seq, queue, reason, payload: m.payload.clone() });
        }
        Ok(out)
    }

    pub(crate) async fn kv_keys(&self, bucket: Bucket) -> Result<Vec<String>, BusError> {
        retrying(self.opts.publish_retry, "kv keys", || self.kv_keys_once(bucket)).await
    }

    async fn kv_keys_once(&self, bucket: Bucket) -> Result<Vec<String>, BusError> {
        let op = || format!("kv keys {}", bucket_name(bucket));
        let listing = async {
            let mut keys = self.store(bucket).keys().await.map_err(|e| BusError::nats(op(), &e))?;
            let mut out = Vec::new();
            while let Some(k) = keys.next().await {
                out.push(k.map_err(|e| BusError::nats(op(), &e))?);
            }
            Ok(out)
        };
        // A listing can wait forever for an entry that expired while it ran (the workers
        // bucket's heartbeats do, on nats-server 2.9): bounded, then listed again.
        tokio::time::timeout(KEYS_TIMEOUT, listing).await.unwrap_or_else(|_| {
            Err(BusError::Unavailable { op: op(), detail: "key listing timed out".into() })
        })
    }

    pub(crate) async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(|e| BusError::nats("flush", &e))
    }
}

/// Messages of one durable pull consumer; reopens itself when the server goes away and back.
pub(crate) struct NatsSource {
    js: jetstream::Context,
    stream: &'static str,
    config: consumer::pull::Config,
    batch: usize,
    consumer: Option<consumer::PullConsumer>,
    messages: Option<consumer::pull::Stream>,
}

impl NatsSource {
    fn what(&self) -> String {
        format!("consumer {}/{}", self.stream, self.config.durable_name.as_deref().unwrap_or(""))
    }

    /// The consumer, created with the configured settings when missing.
    async fn consumer(&mut self) -> Result<consumer::PullConsumer, BusError> {
        if let Some(c) = &self.consumer {
            return Ok(c.clone());
        }
        let what = self.what();
        let durable = self.config.durable_name.clone().unwrap_or_default();
        let stream = self
            .js
            .get_stream(self.stream)
            .await
            .map_err(|e| BusError::nats(format!("stream {}", self.stream), &e))?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(&durable, self.config.clone())
            .await
            .map_err(|e| BusError::nats(what, &e))?;
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    async fn open(&mut self) -> Result<(), BusError> {
        let consumer = self.consumer().await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| BusError::nats(self.what(), &e))?;
        self.messages = Some(messages);
        Ok(())
    }

    fn incoming(msg: jetstream::Message) -> Incoming {
        let delivered = msg.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
        let payload = msg.payload.clone();
        Incoming { payload, delivered, acker: Acker::Nats(Box::new(msg)) }
    }

    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, BusError>> {
        let mut delay = Duration::from_millis(100);
        loop {
            if self.messages.is_none()
                && let Err(e) = self.open().await
            {
                tracing::warn!(stream = self.stream, error = %e, "queue unavailable; retrying");
                self.consumer = None;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
            let next = match self.messages.as_mut() {
                Some(m) => m.next().await,
                None => continue,
            };
            match next {
                Some(Ok(msg)) => return Some(Ok(Self::incoming(msg))),
                Some(Err(e)) => {
                    // Missed heartbeats, a restarted server, a deleted consumer: start over.
                    tracing::warn!(stream = self.stream, error = %e, "queue read failed; reopening");
                    self.messages = None;
                    self.consumer = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                None => {
                    self.messages = None;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Pulls what is there now (up to `max`, without waiting); when nothing is, waits up to
    /// `wait` for one message. Every pull request is for no more than is returned, so no
    /// delivery is left waiting in this process with its ack clock running.
    pub(crate) async fn fetch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Incoming>, BusError> {
        // A continuous pull would fetch ahead of these requests.
        self.messages = None;
        let consumer = self.consumer().await?;
        let what = self.what();
        let mut got = Vec::new();
        let pull = async {
            let now = consumer
                .fetch()
                .max_messages(max.max(1))
                .messages()
                .await
                .map_err(|e| BusError::nats(what.clone(), &e))?;
            read_batch(now, &what, &mut got).await?;
            if !got.is_empty() || wait.is_zero() {
                return Ok(());
            }
            let one = consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
                .map_err(|e| BusError::nats(what.clone(), &e))?;
            read_batch(one, &what, &mut got).await
        };
        // A pull request can go unanswered (its consumer's leader died with it): give up on it
        // after the server's own deadline has passed, keeping what did arrive.
        let deadline = wait + Duration::from_secs(5);
        let result = match tokio::time::timeout(deadline, pull).await {
            Ok(r) => r,
            Err(_) => Err(BusError::Unavailable {
                op: what.clone(),
                detail: format!("pull request unanswered after {deadline:?}"),
            }),
        };
        let result = match result {
            Err(_) if !got.is_empty() => Ok(got),
            Err(e) => Err(e),
            Ok(()) => Ok(got),
        };
        if result.is_err() {
            // Recreated on the next call, in case the consumer or the server went away.
            self.consumer = None;
        }
        result
    }
}

/// Every message of a pull batch into `out`, until the server ends it.
async fn read_batch(
    mut batch: consumer::pull::Batch,
    what: &str,
    out: &mut Vec<Incoming>,
) -> Result<(), BusError> {
    while let Some(m) = batch.next().await {
        out.push(NatsSource::incoming(m.map_err(|e| BusError::nats(what, &*e))?));
    }
    Ok(())
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

/// Longest one listing of a bucket's keys may take before it is started again.
const KEYS_TIMEOUT: Duration = Duration::from_secs(10);

/// The buckets, in the order of `NatsBus`'s stores.
const BUCKETS: [&str; 5] = [
    names::BOOKS_BUCKET,
    names::OUTPUTS_BUCKET,
    names::WORKERS_BUCKET,
    names::CACHE_BUCKET,
    names::LEASES_BUCKET,
];

fn bucket_name(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Books => names::BOOKS_BUCKET,
        Bucket::Outputs => names::OUTPUTS_BUCKET,
        Bucket::Workers => names::WORKERS_BUCKET,
        Bucket::Cache => names::CACHE_BUCKET,
        Bucket::Leases => names::LEASES_BUCKET,
    }
}

/// Every stream Scriptorium uses: the four queues' and the five buckets'.
pub(crate) fn stream_names() -> Vec<String> {
    [names::STEPS_STREAM, names::RESULTS_STREAM, names::SUBMIT_STREAM, names::DEAD_STREAM]
        .into_iter()
        .map(String::from)
        .chain(BUCKETS.iter().map(|b| settings::kv_stream(b)))
        .collect()
}

/// `url` without credentials (`nats://user:pass@host` becomes `nats://***@host`), for errors
/// and logs.
pub(crate) fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &one[..scheme + 3], &one[at..])
            }
            (None, Some(at)) => format!("***{}", &one[at..]),
            _ => one.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("nats://u:secret@h:4222"), "nats://***@h:4222");
        assert_eq!(
            redact("nats://tok@a:1,nats://b:2,u:p@c:3"),
            "nats://***@a:1,nats://b:2,***@c:3"
        );
    }

    #[test]
    fn nine_streams_back_the_queues_and_buckets() {
        let all = stream_names();
        assert_eq!(all.len(), 9);
        let configured: Vec<_> =
            settings::streams(&NatsOptions::default()).into_iter().map(|s| s.name).collect();
        assert_eq!(all, configured, "readiness checks every stream connect sets up");
    }

    #[test]
    fn options_are_checked_before_any_io() {
        assert!(NatsOptions::default().validate().is_ok());
        let e = NatsOptions { replicas: 0, ..Default::default() }.validate().unwrap_err();
        assert!(e.starts_with("replicas"), "{e}");
        let steps = QueueSettings {
            backoff: vec![Duration::from_secs(1); 3],
            max_deliver: 3,
            ..Default::default()
        };
        let e = NatsOptions { steps, ..Default::default() }.validate().unwrap_err();
        assert!(e.starts_with("steps.max_deliver"), "{e}");
    }
}
