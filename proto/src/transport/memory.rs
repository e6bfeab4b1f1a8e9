//! The in-process transport of the embedded mode: channels and maps behind the same API.

use super::{
    Acker, Bucket, BusError, Cancel, Cancellations, CancellationsInner, DeadLetter, Events,
    EventsInner, Incoming, Queue, Source, SourceInner,
};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc};

/// A queue: its sender, its reader until a [`Source`] took it, how many messages wait in it and
/// how many were read and are still held.
struct Channel {
    tx: mpsc::UnboundedSender<Bytes>,
    rx: Option<MemoryRx>,
    waiting: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
}

/// The reader of an in-process queue, which keeps its queue's counts as it reads.
pub(crate) struct MemoryRx {
    rx: mpsc::UnboundedReceiver<Bytes>,
    waiting: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
}

/// An in-process message read and not yet dropped: a step an agent is running.
pub struct Held(Arc<AtomicU64>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MemoryRx {
    fn read(&self, payload: Bytes) -> Incoming {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.held.fetch_add(1, Ordering::Relaxed);
        Incoming { payload, delivered: 1, acker: Acker::Memory(Held(self.held.clone())) }
    }

    /// The next message, waiting for one; `None` once every sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<Incoming> {
        let payload = self.rx.recv().await?;
        Some(self.read(payload))
    }

    /// The next message if there is one now.
    pub(crate) fn try_recv(&mut self) -> Result<Incoming, mpsc::error::TryRecvError> {
        let payload = self.rx.try_recv()?;
        Ok(self.read(payload))
    }
}

#[derive(Default)]
struct Inner {
    queues: HashMap<Queue, Channel>,
    kv: HashMap<Bucket, BTreeMap<String, Bytes>>,
    dead: Vec<DeadLetter>,
    /// Where the cache bucket is kept between runs (append-only JSON lines), if anywhere.
    cache_file: Option<std::path::PathBuf>,
}

/// One line of the cache file: a value, or a tombstone when `v` is absent.
#[derive(serde::Serialize, serde::Deserialize)]
struct CacheLine {
    k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
}

/// In-process queues (one reader each), key-value maps and a broadcast of events.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Bytes>,
    evictions: broadcast::Sender<Bytes>,
    cancels: broadcast::Sender<Cancel>,
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
        let (cancels, _) = broadcast::channel(1024);
        Self { inner: Arc::default(), events, evictions, cancels }
    }

    /// An empty bus whose cache bucket is loaded from and appended to `path`, so the response
    /// cache of the embedded mode survives between runs.
    pub fn with_cache_file(path: std::path::PathBuf) -> std::io::Result<Self> {
        let bus = Self::new();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        {
            let mut inner = bus.lock();
            if let Ok(text) = std::fs::read_to_string(&path) {
                if !text.is_empty() && !text.ends_with('\n') {
                    // End a torn line so the next append starts clean.
                    use std::io::Write as _;
                    std::fs::OpenOptions::new().append(true).open(&path)?.write_all(b"\n")?;
                }
                let map = inner.kv.entry(Bucket::Cache).or_default();
                // A torn last line (a crash mid-append) is skipped like any unreadable line.
                for line in text.lines().filter_map(|l| serde_json::from_str::<CacheLine>(l).ok()) {
                    match line.v {
                        Some(v) => map.insert(line.k, Bytes::from(v)),
                        None => map.remove(&line.k),
                    };
                }
            }
            inner.cache_file = Some(path);
        }
        Ok(bus)
    }

    fn persist(inner: &Inner, bucket: Bucket, key: &str, value: Option<&Bytes>) {
        let (Bucket::Cache, Some(path)) = (bucket, inner.cache_file.as_ref()) else { return };
        let line = CacheLine {
            k: key.to_string(),
            v: value.map(|v| String::from_utf8_lossy(v).into_owned()),
        };
        let Ok(mut text) = serde_json::to_string(&line) else { return };
        text.push('\n');
        use std::io::Write as _;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %path.display(), "cache file not written");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only plain maps behind: keep using them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn channel(inner: &mut Inner, queue: Queue) -> &mut Channel {
        inner.queues.entry(queue).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let (waiting, held) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let rx = MemoryRx { rx, waiting: waiting.clone(), held: held.clone() };
            Channel { tx, rx: Some(rx), waiting, held }
        })
    }

    pub(crate) fn publish(&self, queue: Queue, payload: Bytes) -> Result<(), BusError> {
        let mut inner = self.lock();
        let channel = Self::channel(&mut inner, queue);
        // Counted before the send, so that a reader never takes the count below zero.
        channel.waiting.fetch_add(1, Ordering::Relaxed);
        channel.tx.send(payload).map_err(|_| {
            channel.waiting.fetch_sub(1, Ordering::Relaxed);
            BusError::Closed
        })
    }

    pub(crate) fn source(&self, queue: Queue) -> Result<Source, BusError> {
        let mut inner = self.lock();
        let rx = Self::channel(&mut inner, queue)
            .rx
            .take()
            .ok_or_else(|| BusError::AlreadyOpen(format!("{queue:?}")))?;
        Ok(Source { inner: SourceInner::Memory(rx) })
    }

    /// Messages of `queue` published and not yet read, and read and still held.
    pub(crate) fn counts(&self, queue: Queue) -> (u64, u64) {
        let inner = self.lock();
        inner
            .queues
            .get(&queue)
            .map_or((0, 0), |c| (c.waiting.load(Ordering::Relaxed), c.held.load(Ordering::Relaxed)))
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

    pub(crate) fn announce_cancel(&self, cancel: Cancel) {
        let _ = self.cancels.send(cancel);
    }

    pub(crate) fn cancellations(&self) -> Cancellations {
        Cancellations { inner: CancellationsInner::Memory(self.cancels.subscribe()) }
    }

    pub(crate) fn kv_put(&self, bucket: Bucket, key: &str, value: Bytes) {
        let mut inner = self.lock();
        Self::persist(&inner, bucket, key, Some(&value));
        inner.kv.entry(bucket).or_default().insert(key.to_string(), value);
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
        let mut inner = self.lock();
        if inner.kv.get(&bucket).is_some_and(|m| m.contains_key(key)) {
            Self::persist(&inner, bucket, key, None);
        }
        if let Some(m) = inner.kv.get_mut(&bucket) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_file_survives_a_restart_with_deletions_and_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("scriptorium-memcache-{}", std::process::id()));
        let path = dir.join("responses.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        let bus = MemoryBus::with_cache_file(path.clone()).unwrap();
        bus.kv_put(Bucket::Cache, "a", Bytes::from_static(b"{\"x\":1}"));
        bus.kv_put(Bucket::Cache, "b", Bytes::from_static(b"{\"x\":2}"));
        bus.kv_delete(Bucket::Cache, "a");
        bus.kv_put(Bucket::Books, "not-cached", Bytes::from_static(b"{}"));
        // A crash in the middle of an append leaves half a line.
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"k\":\"c\",\"v\":\"{").unwrap();
        let again = MemoryBus::with_cache_file(path).unwrap();
        assert_eq!(again.kv_get(Bucket::Cache, "a"), None);
        assert_eq!(again.kv_get(Bucket::Cache, "b"), Some(Bytes::from_static(b"{\"x\":2}")));
        assert_eq!(again.kv_get(Bucket::Cache, "c"), None);
        assert_eq!(again.kv_get(Bucket::Books, "not-cached"), None);
        again.kv_put(Bucket::Cache, "d", Bytes::from_static(b"{}"));
        let third = MemoryBus::with_cache_file(dir.join("responses.jsonl")).unwrap();
        assert_eq!(
            third.kv_get(Bucket::Cache, "d"),
            Some(Bytes::from_static(b"{}")),
            "appends after a torn line are kept"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
