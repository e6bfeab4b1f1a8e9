//! The in-process transport of the embedded mode: channels and maps behind the same API.

use super::{Bucket, BusError, DeadLetter, Events, EventsInner, Queue, Source, SourceInner};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc};

type Channel = (mpsc::UnboundedSender<Bytes>, Option<mpsc::UnboundedReceiver<Bytes>>);

#[derive(Default)]
struct Inner {
    queues: HashMap<Queue, Channel>,
    kv: HashMap<Bucket, BTreeMap<String, Bytes>>,
    dead: Vec<DeadLetter>,
}

/// In-process queues (one reader each), key-value maps and a broadcast of events.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Bytes>,
    evictions: broadcast::Sender<Bytes>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        let (evictions, _) = broadcast::channel(1024);
        Self { inner: Arc::default(), events, evictions }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only plain maps behind: keep using them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn channel(inner: &mut Inner, queue: Queue) -> &mut Channel {
        inner.queues.entry(queue).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            (tx, Some(rx))
        })
    }

    pub(crate) fn publish(&self, queue: Queue, payload: Bytes) -> Result<(), BusError> {
        let mut inner = self.lock();
        Self::channel(&mut inner, queue).0.send(payload).map_err(|_| BusError::Closed)
    }

    pub(crate) fn source(&self, queue: Queue) -> Result<Source, BusError> {
        let mut inner = self.lock();
        let rx = Self::channel(&mut inner, queue)
            .1
            .take()
            .ok_or_else(|| BusError::AlreadyOpen(format!("{queue:?}")))?;
        Ok(Source { inner: SourceInner::Memory(rx) })
    }

    pub(crate) fn publish_event(&self, payload: Bytes) {
        // No subscriber is not an error: events are best effort.
        let _ = self.events.send(payload);
    }

    pub(crate) fn events(&self) -> Events {
        Events { inner: EventsInner::Memory(self.events.subscribe()) }
    }

    pub(crate) fn announce_eviction(&self, key: &str) {
        let _ = self.evictions.send(Bytes::copy_from_slice(key.as_bytes()));
    }

    pub(crate) fn evictions(&self) -> Events {
        Events { inner: EventsInner::Memory(self.evictions.subscribe()) }
    }

    pub(crate) fn kv_put(&self, bucket: Bucket, key: &str, value: Bytes) {
        self.lock().kv.entry(bucket).or_default().insert(key.to_string(), value);
    }

    pub(crate) fn kv_get(&self, bucket: Bucket, key: &str) -> Option<Bytes> {
        self.lock().kv.get(&bucket).and_then(|m| m.get(key).cloned())
    }

    pub(crate) fn kv_create(&self, bucket: Bucket, key: &str, value: Bytes) -> bool {
        let mut inner = self.lock();
        let map = inner.kv.entry(bucket).or_default();
        if map.contains_key(key) {
            return false;
        }
        map.insert(key.to_string(), value);
        true
    }

    pub(crate) fn kv_delete(&self, bucket: Bucket, key: &str) {
        if let Some(m) = self.lock().kv.get_mut(&bucket) {
            m.remove(key);
        }
    }

    pub(crate) fn dead_letter(&self, queue: &str, payload: Bytes, reason: &str) {
        let mut inner = self.lock();
        let seq = inner.dead.len() as u64 + 1;
        inner.dead.push(DeadLetter { seq, queue: queue.into(), reason: reason.into(), payload });
    }

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    pub(crate) fn kv_keys(&self, bucket: Bucket) -> Vec<String> {
        self.lock().kv.get(&bucket).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }
}
