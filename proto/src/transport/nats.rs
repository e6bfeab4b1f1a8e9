//! The NATS JetStream transport: work-queue streams with durable pull consumers, KV buckets
//! and core subjects for events.

use super::{
    Acker, Bucket, BusError, Events, EventsInner, Incoming, Queue, QueueSettings, Source,
    SourceInner,
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
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            name: "scriptorium".into(),
            connect_timeout: Duration::from_secs(30),
            steps: QueueSettings::default(),
            heartbeat_ttl: Duration::from_secs(30),
        }
    }
}

/// A connection to NATS with the JetStream context, streams and buckets ready.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    books: kv::Store,
    workers: kv::Store,
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
        let books = Self::bucket(&js, names::BOOKS_BUCKET, Duration::ZERO).await?;
        let workers = Self::bucket(&js, names::WORKERS_BUCKET, opts.heartbeat_ttl).await?;
        Ok(Self { client, js, books, workers, opts })
    }

    async fn bucket(
        js: &jetstream::Context,
        name: &str,
        ttl: Duration,
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
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
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
        let publish =
            jetstream::message::PublishMessage::build().payload(payload).message_id(msg_id);
        let ack = self
            .js
            .send_publish(Self::subject(queue, key), publish)
            .await
            .map_err(BusError::nats)?;
        ack.await.map_err(BusError::nats)?;
        Ok(())
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
        let stream = self.js.get_stream(stream_name).await.map_err(BusError::nats)?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: filter,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: settings.ack_wait,
                    max_deliver: settings.max_deliver,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BusError::nats(format!("consumer {durable}: {e}")))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(BusError::nats)?;
        Ok(Source { inner: SourceInner::Nats(Box::new(NatsSource { messages })) })
    }

    pub(crate) async fn publish_event(
        &self,
        book_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.client.publish(names::event_subject(book_id), payload).await.map_err(BusError::nats)
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
            Bucket::Workers => &self.workers,
        }
    }

    pub(crate) async fn kv_put(
        &self,
        bucket: Bucket,
        key: &str,
        value: Bytes,
    ) -> Result<(), BusError> {
        self.store(bucket).put(key, value).await.map(|_| ()).map_err(BusError::nats)
    }

    pub(crate) async fn kv_get(
        &self,
        bucket: Bucket,
        key: &str,
    ) -> Result<Option<Bytes>, BusError> {
        self.store(bucket).get(key).await.map_err(BusError::nats)
    }

    pub(crate) async fn kv_keys(&self, bucket: Bucket) -> Result<Vec<String>, BusError> {
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

/// Messages of one durable pull consumer.
pub(crate) struct NatsSource {
    messages: consumer::pull::Stream,
}

impl NatsSource {
    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, BusError>> {
        let msg = match self.messages.next().await? {
            Ok(m) => m,
            Err(e) => return Some(Err(BusError::nats(e))),
        };
        let delivered = msg.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
        let payload = msg.payload.clone();
        Some(Ok(Incoming { payload, delivered, acker: Acker::Nats(Box::new(msg)) }))
    }
}
