//! Reading one queue: the messages of a durable pull consumer, pulled continuously or fetched
//! on demand, with the consumer reopened when the server goes away and comes back.

use super::super::{Acker, BusError, Incoming};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use std::time::Duration;

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
    /// The reader of `stream` through the durable consumer `config` describes, fetching up to
    /// `batch` messages ahead when read with `next`.
    pub(crate) async fn open(
        js: jetstream::Context,
        stream: &'static str,
        config: consumer::pull::Config,
        batch: usize,
    ) -> Self {
        let mut source =
            NatsSource { js, stream, config, batch: batch.max(1), consumer: None, messages: None };
        // The consumer now, so it exists with these settings before anything is published;
        // the pull starts with the first `next` or `fetch`, so nothing is fetched ahead of
        // what the reader asks for.
        if let Err(e) = source.consumer().await {
            // Not fatal: `next` and `fetch` keep trying.
            tracing::warn!(stream, error = %e, "queue not open yet; retrying");
        }
        source
    }

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

    /// Starts the continuous pull `next` reads from.
    async fn pull(&mut self) -> Result<(), BusError> {
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

    /// `msg` as handed to a reader. Its payload is copied out and dropped from the message kept
    /// for the acknowledgement: as read, it is a slice of the connection's 64 KiB read buffer,
    /// and a message held until it is handled (a coordinator holds hundreds) would keep the
    /// whole buffer it came in alive.
    fn incoming(mut msg: jetstream::Message) -> Incoming {
        let delivered = msg.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
        let payload = bytes::Bytes::copy_from_slice(&msg.payload);
        msg.message.payload = bytes::Bytes::new();
        Incoming { payload, delivered, acker: Acker::Nats(Box::new(msg)) }
    }

    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, BusError>> {
        let mut delay = Duration::from_millis(100);
        loop {
            if self.messages.is_none()
                && let Err(e) = self.pull().await
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

/// How long past its expiry a pull request is waited for: the server ends an expired request
/// with a 408 status, but nats-server 2.9 drops one silently when a message arrives just as
/// it expires, and the client's own limit (`async-nats`: 5 s past the expiry) then held a
/// pool's agents idle for 5 s (seen in `bench`, 2026-12-05). The server delivers nothing to
/// an expired request, so the wait past it only has to cover the request's way there; a
/// request that took longer than this to reach the server and then got a message leaves that
/// message unacknowledged, delivered again after the consumer's ack wait (one delivery spent).
const PULL_GRACE: Duration = Duration::from_millis(250);

/// One pull request of a [`NatsSource`] whose messages are read as they arrive.
pub(crate) struct NatsPull<'a> {
    source: &'a mut NatsSource,
    batch: Option<consumer::pull::Batch>,
    deadline: tokio::time::Instant,
}

impl NatsSource {
    /// Sends one pull request for up to `max` messages, waiting up to `wait` for them (none:
    /// what is there now). Its messages are read with [`NatsPull::next`] as each arrives, so
    /// the first is handled while the request waits for the rest: one request serves many
    /// messages, where [`NatsSource::fetch`] sends up to three and returns only when they end.
    pub(crate) async fn pull_request(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<NatsPull<'_>, BusError> {
        // A continuous pull would fetch ahead of this request.
        self.messages = None;
        let consumer = self.consumer().await?;
        let sent = if wait.is_zero() {
            consumer.fetch().max_messages(max.max(1)).messages().await
        } else {
            consumer.batch().max_messages(max.max(1)).expires(wait).messages().await
        };
        match sent {
            Ok(batch) => Ok(NatsPull {
                source: self,
                batch: Some(batch),
                deadline: tokio::time::Instant::now() + wait + PULL_GRACE,
            }),
            Err(e) => {
                let what = self.what();
                self.consumer = None;
                Err(BusError::nats(what, &e))
            }
        }
    }
}

impl NatsPull<'_> {
    /// The request's next message as it arrives; `None` once the server ended the request.
    /// After an error there is nothing more, and the consumer is looked up again next time.
    pub(crate) async fn next(&mut self) -> Option<Result<Incoming, BusError>> {
        let batch = self.batch.as_mut()?;
        let last = match tokio::time::timeout_at(self.deadline, batch.next()).await {
            Ok(Some(Ok(m))) => return Some(Ok(NatsSource::incoming(m))),
            Ok(None) => {
                self.batch = None;
                return None;
            }
            Ok(Some(Err(e))) => Some(Err(BusError::nats(self.source.what(), &*e))),
            Err(_) => {
                // Over without its end: what an expired request gets when a message reaches
                // the consumer just as it expires (nats-server 2.9 drops it silently), or
                // when the consumer's leader died with it.
                tracing::debug!(consumer = %self.source.what(), "pull request ended unanswered");
                None
            }
        };
        // Nothing more comes of this request; the consumer is looked up again next time.
        self.batch = None;
        self.source.consumer = None;
        last
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
