//! The NATS JetStream transport: work-queue streams with durable pull consumers, KV buckets
//! and core subjects for events.

use super::{
    Acker, Bucket, BusError, DeadLetter, Events, EventsInner, Incoming, Queue, QueueSettings,
    Source, SourceInner,
};
use crate::names;
use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures::StreamExt;
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
    /// How long a worker heartbeat stays in its bucket.
    pub heartbeat_ttl: Duration,
    /// How long a shared cache entry lives.
    pub cache_ttl: Duration,
    /// Size limit of the shared cache tier in bytes (oldest entries are dropped first).
    pub cache_max_bytes: i64,
    /// How long a cache computation lease lives.
    pub lease_ttl: Duration,
    /// How long publishes and state writes are retried while the server is unreachable.
    pub publish_retry: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            name: "scriptorium".into(),
            connect_timeout: Duration::from_secs(30),
            steps: QueueSettings::default(),
            heartbeat_ttl: Duration::from_secs(30),
            cache_ttl: Duration::from_secs(7 * 24 * 3600),
            cache_max_bytes: 1 << 30,
            lease_ttl: Duration::from_secs(300),
            publish_retry: Duration::from_secs(60),
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
}

impl NatsBus {
    /// Connects (retrying for `opts.connect_timeout`) and creates what is missing.
    pub async fn connect(url: &str, opts: NatsOptions) -> Result<Self, BusError> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        let client = loop {
            let attempt = async_nats::ConnectOptions::new()
                .name(&opts.name)
                .connection_timeout(Duration::from_secs(5))
                .connect(url)
                .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if started.elapsed() < opts.connect_timeout => {
                    tracing::warn!(error = %e, "nats not reachable yet, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(BusError::nats(format!("connect to {url}: {e}"))),
            }
        };
        let js = jetstream::new(client.clone());
        // Setting up is retried as a whole: on a loaded machine or a server still starting,
        // JetStream API calls can time out.
        let (books, outputs, workers, cache, leases) =
            retrying(opts.connect_timeout, "stream and bucket setup", || Self::setup(&js, &opts))
                .await?;
        Ok(Self { client, js, books, outputs, workers, cache, leases, opts })
    }

    async fn setup(
        js: &jetstream::Context,
        opts: &NatsOptions,
    ) -> Result<(kv::Store, kv::Store, kv::Store, kv::Store, kv::Store), BusError> {
        for (name, subjects) in [
            (names::STEPS_STREAM, format!("{}.*", names::STEPS_PREFIX)),
            (names::RESULTS_STREAM, format!("{}.>", names::RESULTS_PREFIX)),
            (names::SUBMIT_STREAM, names::SUBMIT_SUBJECT.to_string()),
        ] {
            js.get_or_create_stream(stream::Config {
                name: name.to_string(),
                subjects: vec![subjects],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(names::DUPLICATE_WINDOW_SECS),
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::nats(format!("stream {name}: {e}")))?;
        }
        js.get_or_create_stream(stream::Config {
            name: names::DEAD_STREAM.to_string(),
            subjects: vec![format!("{}.>", names::DEAD_PREFIX)],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::nats(format!("stream {}: {e}", names::DEAD_STREAM)))?;
        let books = Self::bucket(js, names::BOOKS_BUCKET, Duration::ZERO, -1, false).await?;
        let outputs = Self::bucket(js, names::OUTPUTS_BUCKET, Duration::ZERO, -1, false).await?;
        let workers =
            Self::bucket(js, names::WORKERS_BUCKET, opts.heartbeat_ttl, -1, false).await?;
        let cache =
            Self::bucket(js, names::CACHE_BUCKET, opts.cache_ttl, opts.cache_max_bytes, true)
                .await?;
        let leases = Self::bucket(js, names::LEASES_BUCKET, opts.lease_ttl, -1, false).await?;
        Ok((books, outputs, workers, cache, leases))
    }

    async fn bucket(
        js: &jetstream::Context,
        name: &str,
        ttl: Duration,
        max_bytes: i64,
        drop_oldest: bool,
    ) -> Result<kv::Store, BusError> {
        if let Ok(store) = js.get_key_value(name).await {
            return Ok(store);
        }
        // The KV stream is created by hand with the settings `create_key_value` would use:
        // that call first reads the account info, whose shape differs on NATS 2.9 servers.
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age: ttl,
            max_bytes,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: if drop_oldest {
                stream::DiscardPolicy::Old
            } else {
                stream::DiscardPolicy::New
            },
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::nats(format!("bucket {name}: {e}")))?;
        js.get_key_value(name).await.map_err(|e| BusError::nats(format!("bucket {name}: {e}")))
    }

    /// The underlying client, for tools that read server state (queues, benchmarks).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Read-only readiness check: connected, and every stream and bucket exists (nothing is
    /// created here; `connect` did that). Backs the `/readyz` endpoints.
    pub async fn check_ready(&self) -> Result<(), BusError> {
        let state = self.client.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(BusError::Nats(format!("connection {state}")));
        }
        let buckets = [names::BOOKS_BUCKET, names::WORKERS_BUCKET].map(|b| format!("KV_{b}"));
        let streams = [names::STEPS_STREAM, names::RESULTS_STREAM, names::SUBMIT_STREAM];
        for name in streams.iter().copied().chain(buckets.iter().map(String::as_str)) {
            self.js
                .get_stream(name)
                .await
                .map_err(|e| BusError::Nats(format!("stream {name}: {e}")))?;
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
        retrying(self.opts.publish_retry, "publish", || async {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(msg_id);
            let ack =
                self.js.send_publish(subject.clone(), publish).await.map_err(BusError::nats)?;
            ack.await.map_err(BusError::nats)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn source(&self, queue: Queue, batch: usize) -> Result<Source, BusError> {
        let (stream_name, durable, filter, settings) = match queue {
            Queue::Steps(kind) => (
                names::STEPS_STREAM,
                names::step_consumer(kind),
                names::step_subject(kind),
                self.opts.steps.clone(),
            ),
            Queue::Results => (
                names::RESULTS_STREAM,
                names::RESULTS_CONSUMER.to_string(),
                format!("{}.>", names::RESULTS_PREFIX),
                QueueSettings::default(),
            ),
            Queue::Submit => (
                names::SUBMIT_STREAM,
                names::SUBMIT_CONSUMER.to_string(),
                names::SUBMIT_SUBJECT.to_string(),
                QueueSettings::default(),
            ),
        };
        let config = consumer::pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: filter,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: settings.ack_wait,
            max_deliver: settings.max_deliver,
            max_ack_pending: 10_000,
            ..Default::default()
        };
        let mut source = NatsSource {
            js: self.js.clone(),
            stream: stream_name,
            config,
            batch: batch.max(1),
            messages: None,
        };
        if let Err(e) = source.open().await {
            // Not fatal: `next` keeps trying to open it.
            tracing::warn!(stream = stream_name, error = %e, "queue not open yet; retrying");
        }
        Ok(Source { inner: SourceInner::Nats(Box::new(source)) })
    }

    pub(crate) async fn publish_event(
        &self,
        book_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.client.publish(names::event_subject(book_id), payload).await.map_err(BusError::nats)
    }

    pub(crate) async fn announce_eviction(&self, key: &str) -> Result<(), BusError> {
        self.client
            .publish(names::CACHE_EVICTED_SUBJECT, Bytes::copy_from_slice(key.as_bytes()))
            .await
            .map_err(BusError::nats)
    }

    pub(crate) async fn evictions(&self) -> Result<Events, BusError> {
        let sub =
            self.client.subscribe(names::CACHE_EVICTED_SUBJECT).await.map_err(BusError::nats)?;
        Ok(Events { inner: EventsInner::Nats(sub) })
    }

    pub(crate) async fn events(&self, book_id: Option<&str>) -> Result<Events, BusError> {
        let subject = match book_id {
            Some(id) => names::event_subject(id),
            None => format!("{}.*", names::EVENTS_PREFIX),
        };
        let sub = self.client.subscribe(subject).await.map_err(BusError::nats)?;
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

    pub(crate) async fn kv_put(
        &self,
        bucket: Bucket,
        key: &str,
        value: Bytes,
    ) -> Result<(), BusError> {
        retrying(self.opts.publish_retry, "kv put", || async {
            self.store(bucket).put(key, value.clone()).await.map(|_| ()).map_err(BusError::nats)
        })
        .await
    }

    pub(crate) async fn kv_get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<Bytes>, BusError> {
        retrying(self.opts.publish_retry, "kv get", || async {
            self.store(bucket).get(key).await.map_err(BusError::nats)
        })
        .await
    }

    pub(crate) async fn kv_create(
        &self,
        bucket: Bucket,
        key: &str,
        value: Bytes,
    ) -> Result<bool, BusError> {
        match self.store(bucket).create(key, value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(BusError::nats(e)),
        }
    }

    pub(crate) async fn kv_delete(&self, bucket: Bucket, key: &str) -> Result<(), BusError> {
        self.store(bucket).delete(key).await.map_err(BusError::nats)
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
        let ack = self
            .js
            .publish_with_headers(names::dead_subject(queue), headers, payload)
            .await
            .map_err(BusError::nats)?;
        ack.await.map_err(BusError::nats)?;
        Ok(())
    }

    pub(crate) async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let stream = self.js.get_stream(names::DEAD_STREAM).await.map_err(BusError::nats)?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await
            .map_err(BusError::nats)?;
        let mut out = Vec::new();
        let pending = stream.get_info().await.map_err(BusError::nats)?.state.messages;
        if pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(BusError::nats)?;
        while (out.len() as u64) < pending {
            let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await
            else {
                break;
            };
            let m = m.map_err(BusError::nats)?;
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
        let mut keys = match self.store(bucket).keys().await {
            Ok(k) => k,
            Err(e) => return Err(BusError::nats(e)),
        };
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            out.push(k.map_err(BusError::nats)?);
        }
        Ok(out)
    }

    pub(crate) async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(BusError::nats)
    }
}

/// Messages of one durable pull consumer; reopens itself when the server goes away and back.
pub(crate) struct NatsSource {
    js: jetstream::Context,
    stream: &'static str,
    config: consumer::pull::Config,
    batch: usize,
    messages: Option<consumer::pull::Stream>,
}

impl NatsSource {
    async fn open(&mut self) -> Result<(), BusError> {
        let durable = self.config.durable_name.clone().unwrap_or_default();
        let stream = self.js.get_stream(self.stream).await.map_err(BusError::nats)?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(&durable, self.config.clone())
            .await
            .map_err(|e| BusError::nats(format!("consumer {durable}: {e}")))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(BusError::nats)?;
        self.messages = Some(messages);
        Ok(())
    }

    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, BusError>> {
        let mut delay = Duration::from_millis(100);
        loop {
            if self.messages.is_none()
                && let Err(e) = self.open().await
            {
                tracing::warn!(stream = self.stream, error = %e, "queue unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
            let next = match self.messages.as_mut() {
                Some(m) => m.next().await,
                None => continue,
            };
            match next {
                Some(Ok(msg)) => {
                    let delivered = msg.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
                    let payload = msg.payload.clone();
                    return Some(Ok(Incoming {
                        payload,
                        delivered,
                        acker: Acker::Nats(Box::new(msg)),
                    }));
                }
                Some(Err(e)) => {
                    // Missed heartbeats, a restarted server, a deleted consumer: start over.
                    tracing::warn!(stream = self.stream, error = %e, "queue read failed; reopening");
                    self.messages = None;
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
}

/// Runs `op` until it succeeds or `budget` has passed, backing off between tries.
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
            Err(e) if start.elapsed() < budget => {
                tracing::warn!(error = %e, what, "nats operation failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
