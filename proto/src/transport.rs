//! The transport boundary: queues, key-value state and events, over NATS JetStream or in process.
//!
//! Actors never see this type's insides: they publish encoded messages to a [`Queue`], read
//! [`Incoming`] messages from a [`Source`], and acknowledge them through their [`Acker`].
//! The in-process implementation passes the same encoded bytes, so both modes run one code path.
//! Operators ask the bus itself what they see of it: [`Bus::check_ready`],
//! [`Bus::step_queues`], [`Bus::submissions_waiting`] and [`Bus::raw_round_trips`]; and handle
//! dead letters through it ([`Bus::dead_letters`], [`Bus::purge_dead_letters`],
//! [`Bus::replay_dead_letter`]).

mod dead;
mod error;
mod inspect;
mod memory;
mod nats;
mod settings;

use async_nats::jetstream::AckKind;
use bytes::Bytes;
use std::time::Duration;

pub use dead::DeadLetter;
pub use error::{BusError, Rejection};
pub use inspect::{RoundTrips, StepLoad, StepQueue};
pub use memory::MemoryBus;
pub use nats::{NatsAuth, NatsBus, NatsOptions, Role, Secret, auth, redact};
pub use settings::{Drift, DriftOutcome, Reconcile};

/// A durable queue of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Step tasks for one agent kind.
    Steps(crate::v1::AgentKind),
    /// Step results, for the coordinator.
    Results,
    /// Book submissions, for the coordinator.
    Submit,
    /// Step tasks of priority books for one agent kind: workers take them first.
    PrioritySteps(crate::v1::AgentKind),
    /// Submissions of priority books: the coordinator admits them first.
    PrioritySubmit,
    /// Operators' commands about books (approve, cancel, retry...), for the coordinator; the
    /// publish key is the book id.
    Control,
}

/// A key-value bucket of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Book records.
    Books,
    /// Accepted step outputs.
    Outputs,
    /// Step states and plans of books (the books bucket holds each book's header).
    StepStates,
    /// Worker heartbeats (entries expire).
    Workers,
    /// Coordinator heartbeats (entries expire).
    Coordinators,
    /// The shared response cache tier (entries expire; oldest dropped when full).
    Cache,
    /// Cache computation leases (entries expire quickly).
    Leases,
}

/// Settings of the durable queues.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// How long a delivered step may stay unacknowledged before it is redelivered (each
    /// in-progress acknowledgement restarts this clock).
    pub ack_wait: Duration,
    /// How many times a message is delivered before JetStream stops delivering it (`-1`: no
    /// limit).
    pub max_deliver: i64,
    /// Ack wait of each successive delivery, instead of `ack_wait` (JetStream consumer
    /// `backoff`): delivery `n` waits `backoff[n-1]`, the last value repeating. Empty: every
    /// delivery waits `ack_wait`. JetStream then reports `ack_wait` as `backoff[0]`, and
    /// requires `max_deliver` above the number of values.
    pub backoff: Vec<Duration>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self { ack_wait: Duration::from_secs(30), max_deliver: 10, backoff: Vec::new() }
    }
}

impl QueueSettings {
    /// The ack wait of the first delivery, as JetStream will report it.
    pub fn first_ack_wait(&self) -> Duration {
        self.backoff.first().copied().unwrap_or(self.ack_wait)
    }

    /// Checks what JetStream would refuse, naming the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if self.first_ack_wait().is_zero() {
            return Err("ack_wait: must be above zero".into());
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            return Err(format!("max_deliver: must be -1 or above 0 (got {})", self.max_deliver));
        }
        if self.backoff.iter().any(Duration::is_zero) {
            return Err("backoff: every value must be above zero".into());
        }
        let values = i64::try_from(self.backoff.len()).unwrap_or(i64::MAX);
        // NATS 2.9 refuses an unlimited max_deliver with a backoff; later servers accept it.
        if !self.backoff.is_empty() && self.max_deliver <= values {
            return Err(format!(
                "max_deliver: must be above the number of backoff values ({} <= {values})",
                self.max_deliver
            ));
        }
        Ok(())
    }
}

/// The transport: NATS JetStream or in process.
#[derive(Clone)]
pub enum Bus {
    /// Distributed mode.
    Nats(Box<NatsBus>),
    /// Embedded mode.
    Memory(MemoryBus),
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Bus::Nats(_) => "Bus::Nats",
            Bus::Memory(_) => "Bus::Memory",
        })
    }
}

impl Bus {
    /// A fresh in-process bus.
    pub fn memory() -> Self {
        Bus::Memory(MemoryBus::new())
    }

    /// An in-process bus whose response-cache bucket persists in `path` between runs.
    pub fn memory_with_cache_file(path: std::path::PathBuf) -> std::io::Result<Self> {
        Ok(Bus::Memory(MemoryBus::with_cache_file(path)?))
    }

    /// Connects to NATS and makes sure every stream and bucket exists.
    pub async fn connect(url: &str, opts: NatsOptions) -> Result<Self, BusError> {
        Ok(Bus::Nats(Box::new(NatsBus::connect(url, opts).await?)))
    }

    /// Whether this is the distributed transport.
    pub fn is_distributed(&self) -> bool {
        matches!(self, Bus::Nats(_))
    }

    /// Publishes `payload` to `queue` (on `subject_key`: the book id for results), deduplicated by `msg_id`.
    pub async fn publish(
        &self,
        queue: Queue,
        subject_key: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish(queue, subject_key, msg_id, payload).await,
            Bus::Memory(b) => b.publish(queue, payload),
        }
    }

    /// Hands `payload` for `queue` to the transport and returns at once (waiting only for room
    /// in the connection's window of unacknowledged publishes): the PubAck is awaited through
    /// the [`Published`], so that several publishes wait for theirs together. A failed PubAck
    /// is retried with the same `msg_id` for the publish retry budget before the [`Published`]
    /// reports it; a caller that drops it without awaiting must have another way to notice a
    /// message that never landed (a step's deadline, a redelivery).
    pub async fn enqueue(
        &self,
        queue: Queue,
        subject_key: &str,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        match self {
            Bus::Nats(b) => b.enqueue(queue, subject_key, msg_id, payload).await,
            Bus::Memory(b) => b.publish(queue, payload).map(|()| Published::done()),
        }
    }

    /// Opens the reader of `queue`; `batch` bounds how many messages are fetched ahead.
    pub async fn source(&self, queue: Queue, batch: usize) -> Result<Source, BusError> {
        match self {
            Bus::Nats(b) => b.source(queue, batch).await,
            Bus::Memory(b) => b.source(queue),
        }
    }

    /// Publishes a progress event of `book_id` (best effort: watchers also read the book record).
    pub async fn publish_event(&self, book_id: &str, payload: Bytes) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.publish_event(book_id, payload).await,
            Bus::Memory(b) => {
                b.publish_event(payload);
                Ok(())
            }
        }
    }

    /// Announces to every worker that a cache key was evicted (best effort).
    pub async fn announce_eviction(&self, key: &str) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.announce_eviction(key).await,
            Bus::Memory(b) => {
                b.announce_eviction(key);
                Ok(())
            }
        }
    }

    /// Subscribes to evicted cache keys.
    pub async fn evictions(&self) -> Result<Events, BusError> {
        match self {
            Bus::Nats(b) => b.evictions().await,
            Bus::Memory(b) => Ok(b.evictions()),
        }
    }

    /// Announces to every worker that attempt `attempt` of step `step_id` of `book_id` is no
    /// longer wanted (superseded, timed out, or its book finished): a worker running it stops
    /// and reports nothing (best effort: a worker that misses it finishes the attempt, whose
    /// result the coordinator then ignores and whose usage it counts).
    pub async fn announce_cancel(
        &self,
        book_id: &str,
        step_id: &str,
        attempt: u32,
    ) -> Result<(), BusError> {
        if !crate::names::valid_id(book_id) || !crate::names::valid_id(step_id) {
            return Err(BusError::invalid_key("announce cancel", &format!("{book_id}.{step_id}")));
        }
        let cancel = Cancel { book_id: book_id.into(), step_id: step_id.into(), attempt };
        match self {
            Bus::Nats(b) => b.announce_cancel(&cancel).await,
            Bus::Memory(b) => {
                b.announce_cancel(cancel);
                Ok(())
            }
        }
    }

    /// Subscribes to cancellation announcements of every book.
    pub async fn cancellations(&self) -> Result<Cancellations, BusError> {
        match self {
            Bus::Nats(b) => b.cancellations().await,
            Bus::Memory(b) => Ok(b.cancellations()),
        }
    }

    /// Subscribes to progress events of one book, or of all books.
    pub async fn events(&self, book_id: Option<&str>) -> Result<Events, BusError> {
        match self {
            Bus::Nats(b) => b.events(book_id).await,
            Bus::Memory(b) => Ok(b.events()),
        }
    }

    /// Stores `value` under `key`.
    pub async fn kv_put(&self, bucket: Bucket, key: &str, value: Bytes) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.kv_put(bucket, key, value).await,
            Bus::Memory(b) => {
                b.kv_put(bucket, key, value);
                Ok(())
            }
        }
    }

    /// Reads the value under `key`.
    pub async fn kv_get(&self, bucket: Bucket, key: &str) -> Result<Option<Bytes>, BusError> {
        match self {
            Bus::Nats(b) => b.kv_get(bucket, key).await,
            Bus::Memory(b) => Ok(b.kv_get(bucket, key)),
        }
    }

    /// Stores `value` under `key` only if the key is absent; `false` when it exists. Retried
    /// through a leader election; a key found holding exactly `value` on a retry is taken as
    /// this call's own create (values that claim something must name their claimant).
    pub async fn kv_create(
        &self,
        bucket: Bucket,
        key: &str,
        value: Bytes,
    ) -> Result<bool, BusError> {
        match self {
            Bus::Nats(b) => b.kv_create(bucket, key, value).await,
            Bus::Memory(b) => Ok(b.kv_create(bucket, key, value)),
        }
    }

    /// Removes `key`.
    pub async fn kv_delete(&self, bucket: Bucket, key: &str) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.kv_delete(bucket, key).await,
            Bus::Memory(b) => {
                b.kv_delete(bucket, key);
                Ok(())
            }
        }
    }

    /// Lists the keys of a bucket, each once (however often it changes while listed).
    pub async fn kv_keys(&self, bucket: Bucket) -> Result<Vec<String>, BusError> {
        match self {
            Bus::Nats(b) => b.kv_keys(bucket).await,
            Bus::Memory(b) => Ok(b.kv_keys(bucket)),
        }
    }

    /// Bytes of the values put or created in KV buckets through this connection and its
    /// clones, over NATS (in process: 0, nothing is written anywhere).
    pub fn kv_bytes_written(&self) -> u64 {
        match self {
            Bus::Nats(b) => b.kv_bytes_written(),
            Bus::Memory(_) => 0,
        }
    }

    /// Flushes pending publishes (a no-op in process).
    pub async fn flush(&self) -> Result<(), BusError> {
        match self {
            Bus::Nats(b) => b.flush().await,
            Bus::Memory(_) => Ok(()),
        }
    }
}

/// A publish handed to the transport, whose PubAck may still be on its way.
#[must_use = "a publish is only known to have landed once `confirmed` says so"]
pub struct Published {
    ack: Option<tokio::sync::oneshot::Receiver<Result<(), BusError>>>,
}

impl Published {
    /// A publish that landed already (in process).
    pub(crate) fn done() -> Self {
        Self { ack: None }
    }

    /// A publish whose outcome comes through `ack`.
    pub(crate) fn pending(ack: tokio::sync::oneshot::Receiver<Result<(), BusError>>) -> Self {
        Self { ack: Some(ack) }
    }

    /// Waits for the PubAck: `Ok` once the stream stored the message (or had stored a copy).
    pub async fn confirmed(self) -> Result<(), BusError> {
        match self.ack {
            None => Ok(()),
            Some(ack) => ack.await.unwrap_or(Err(BusError::Closed)),
        }
    }
}

/// One message read from a queue.
pub struct Incoming {
    /// The encoded message.
    pub payload: Bytes,
    /// How many times it has been delivered (1 the first time): every redelivery counts, after
    /// an expired ack wait as after a nak.
    pub delivered: u64,
    /// Acknowledges, hands back or gives up the message.
    pub acker: Acker,
}

/// Acknowledges one message.
///
/// What JetStream does with each answer (nats-server 2.9 and later): `ack` and `term` remove the
/// message from a work queue for good (`term` also publishes a `MSG_TERMINATED` advisory);
/// `nak` redelivers at once, or after its delay; `in_progress` restarts the ack-wait clock
/// without counting a delivery. No answer within the ack wait (the worker died, hung or is too
/// slow) redelivers it, and that delivery counts like a nak's: JetStream cannot tell them apart.
pub enum Acker {
    /// A JetStream message.
    Nats(Box<async_nats::jetstream::Message>),
    /// An in-process message: nothing to acknowledge; counted as running while held.
    Memory(memory::Held),
}

impl Acker {
    /// The message is done: it will not be delivered again.
    pub async fn ack(&self) -> Result<(), BusError> {
        match self {
            Acker::Nats(m) => m.ack().await.map_err(|e| BusError::nats("ack", &*e)),
            Acker::Memory(_) => Ok(()),
        }
    }

    /// The message is still being worked on: restart its ack-wait clock.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        match self {
            Acker::Nats(m) => {
                m.ack_with(AckKind::Progress).await.map_err(|e| BusError::nats("ack progress", &*e))
            }
            Acker::Memory(_) => Ok(()),
        }
    }

    /// Hands the message back for redelivery after `delay`.
    pub async fn nak(&self, delay: Option<Duration>) -> Result<(), BusError> {
        match self {
            Acker::Nats(m) => {
                m.ack_with(AckKind::Nak(delay)).await.map_err(|e| BusError::nats("nak", &*e))
            }
            Acker::Memory(_) => Ok(()),
        }
    }

    /// Gives the message up: it will never be delivered again.
    pub async fn term(&self) -> Result<(), BusError> {
        match self {
            Acker::Nats(m) => {
                m.ack_with(AckKind::Term).await.map_err(|e| BusError::nats("term", &*e))
            }
            Acker::Memory(_) => Ok(()),
        }
    }
}

/// The reader of one queue.
pub struct Source {
    inner: SourceInner,
}

enum SourceInner {
    Nats(Box<nats::NatsSource>),
    Memory(memory::MemoryRx),
}

impl Source {
    /// The next message; `None` when the queue is closed for good.
    pub async fn next(&mut self) -> Option<Result<Incoming, BusError>> {
        match &mut self.inner {
            SourceInner::Nats(s) => s.next().await,
            SourceInner::Memory(rx) => rx.recv().await.map(Ok),
        }
    }

    /// Asks for up to `max` messages, waiting up to `wait` for them (zero: only what is there
    /// now), each read from the returned [`Pull`] as soon as it arrives: a worker with `max`
    /// idle agents starts the first step while the request waits for more, and one request
    /// serves them all. As with [`Source::fetch`], nothing is delivered beyond `max`.
    pub async fn pull(&mut self, max: usize, wait: Duration) -> Result<Pull<'_>, BusError> {
        let inner = match &mut self.inner {
            SourceInner::Nats(s) => PullInner::Nats(Box::new(s.pull_request(max, wait).await?)),
            SourceInner::Memory(rx) => {
                let until = tokio::time::Instant::now() + wait;
                PullInner::Memory { rx, left: max.max(1), until }
            }
        };
        Ok(Pull { inner })
    }

    /// Up to `max` messages that are there now; when none is, waits up to `wait` for one
    /// (an empty result then). Unlike [`Source::next`], nothing is fetched ahead of the call:
    /// a worker asks for as many steps as it has idle agents, so no delivery waits in the
    /// process with its ack clock running. Use either this or `next` on a source, not both.
    pub async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Incoming>, BusError> {
        match &mut self.inner {
            SourceInner::Nats(s) => s.fetch(max, wait).await,
            SourceInner::Memory(rx) => {
                let mut out = Vec::new();
                while out.len() < max.max(1) {
                    match rx.try_recv() {
                        Ok(m) => out.push(m),
                        Err(_) => break,
                    }
                }
                if out.is_empty() {
                    match tokio::time::timeout(wait, rx.recv()).await {
                        Ok(Some(m)) => out.push(m),
                        Ok(None) => return Err(BusError::Closed),
                        Err(_) => {}
                    }
                }
                Ok(out)
            }
        }
    }
}

/// One pull request of a [`Source`] (see [`Source::pull`]).
pub struct Pull<'a> {
    inner: PullInner<'a>,
}

enum PullInner<'a> {
    Nats(Box<nats::NatsPull<'a>>),
    Memory { rx: &'a mut memory::MemoryRx, left: usize, until: tokio::time::Instant },
}

impl Pull<'_> {
    /// The request's next message, as soon as it arrives; `None` once the request has all it
    /// asked for or its wait is over. After an error there is nothing more.
    pub async fn next(&mut self) -> Option<Result<Incoming, BusError>> {
        match &mut self.inner {
            PullInner::Nats(p) => p.next().await,
            PullInner::Memory { rx, left, until } => {
                if *left == 0 {
                    return None;
                }
                let m = match rx.try_recv() {
                    Ok(m) => m,
                    Err(_) => match tokio::time::timeout_at(*until, rx.recv()).await {
                        Ok(Some(m)) => m,
                        Ok(None) => {
                            *left = 0;
                            return Some(Err(BusError::Closed));
                        }
                        Err(_) => {
                            *left = 0;
                            return None;
                        }
                    },
                };
                *left -= 1;
                Some(Ok(m))
            }
        }
    }
}

/// An attempt of a step the coordinator no longer wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// The book.
    pub book_id: String,
    /// The step.
    pub step_id: String,
    /// The attempt cancelled (later attempts of the step are not).
    pub attempt: u32,
}

/// A subscription to cancellation announcements.
pub struct Cancellations {
    inner: CancellationsInner,
}

enum CancellationsInner {
    Nats(async_nats::Subscriber),
    Memory(tokio::sync::broadcast::Receiver<Cancel>),
}

impl Cancellations {
    /// The next cancellation; `None` when the subscription ended. Malformed announcements
    /// are skipped.
    pub async fn next(&mut self) -> Option<Cancel> {
        match &mut self.inner {
            CancellationsInner::Nats(s) => {
                use futures::StreamExt;
                loop {
                    let m = s.next().await?;
                    match crate::names::parse_cancel(m.subject.as_str(), &m.payload) {
                        Some((book_id, step_id, attempt)) => {
                            return Some(Cancel { book_id, step_id, attempt });
                        }
                        None => {
                            tracing::debug!(subject = %m.subject, "malformed cancellation skipped")
                        }
                    }
                }
            }
            CancellationsInner::Memory(rx) => loop {
                match rx.recv().await {
                    Ok(c) => return Some(c),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "cancellations missed");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            },
        }
    }
}

/// A subscription to book events.
pub struct Events {
    inner: EventsInner,
}

enum EventsInner {
    Nats(async_nats::Subscriber),
    Memory(tokio::sync::broadcast::Receiver<Bytes>),
}

impl Events {
    /// The next event payload; `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<Bytes> {
        match &mut self.inner {
            EventsInner::Nats(s) => {
                use futures::StreamExt;
                s.next().await.map(|m| m.payload)
            }
            EventsInner::Memory(rx) => loop {
                match rx.recv().await {
                    Ok(b) => return Some(b),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancellations_reach_every_subscriber_in_process_and_bad_ids_are_refused() {
        let bus = Bus::memory();
        let mut a = bus.cancellations().await.unwrap();
        let mut b = bus.cancellations().await.unwrap();
        bus.announce_cancel("book-1", "chapter-2", 3).await.unwrap();
        let want = Cancel { book_id: "book-1".into(), step_id: "chapter-2".into(), attempt: 3 };
        assert_eq!(a.next().await, Some(want.clone()));
        assert_eq!(b.next().await, Some(want));
        let e = bus.announce_cancel("book.1", "chapter-2", 3).await.unwrap_err();
        assert_eq!(e.rejection(), Some(Rejection::InvalidKey));
    }

    #[tokio::test]
    async fn an_in_process_fetch_returns_what_is_there_up_to_max() {
        let bus = Bus::memory();
        let mut source = bus.source(Queue::Submit, 1).await.unwrap();
        for p in ["a", "b", "c"] {
            bus.publish(Queue::Submit, "", p, Bytes::from(p)).await.unwrap();
        }
        let two = source.fetch(2, Duration::from_secs(5)).await.unwrap();
        assert_eq!(two.iter().map(|m| m.payload.clone()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(source.fetch(5, Duration::from_secs(5)).await.unwrap().len(), 1);
        assert!(source.fetch(5, Duration::from_millis(10)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_in_process_pull_hands_out_each_message_as_it_arrives_up_to_max() {
        let bus = Bus::memory();
        let mut source = bus.source(Queue::Submit, 1).await.unwrap();
        bus.publish(Queue::Submit, "", "a", Bytes::from("a")).await.unwrap();
        let mut pull = source.pull(2, Duration::from_secs(30)).await.unwrap();
        assert_eq!(pull.next().await.unwrap().unwrap().payload, "a");
        let later = {
            let bus = bus.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                for p in ["b", "c"] {
                    bus.publish(Queue::Submit, "", p, Bytes::from(p)).await.unwrap();
                }
            })
        };
        assert_eq!(pull.next().await.unwrap().unwrap().payload, "b");
        assert!(pull.next().await.is_none(), "two asked for: no third");
        drop(pull);
        later.await.unwrap();
        let mut rest = source.pull(5, Duration::from_millis(10)).await.unwrap();
        assert_eq!(rest.next().await.unwrap().unwrap().payload, "c");
        assert!(rest.next().await.is_none(), "the wait is over and nothing came");
    }

    #[test]
    fn queue_settings_name_the_field_jetstream_would_refuse() {
        assert!(QueueSettings::default().validate().is_ok());
        let zero = QueueSettings { ack_wait: Duration::ZERO, ..Default::default() };
        assert!(zero.validate().unwrap_err().starts_with("ack_wait"));
        let unlimited = QueueSettings {
            max_deliver: -1,
            backoff: vec![Duration::from_secs(1)],
            ..Default::default()
        };
        assert!(unlimited.validate().unwrap_err().starts_with("max_deliver"));
        let ok = QueueSettings {
            max_deliver: 4,
            backoff: vec![Duration::from_secs(5), Duration::from_secs(30)],
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.first_ack_wait(), Duration::from_secs(5));
    }
}
