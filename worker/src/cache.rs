//! The response cache shared by the whole fleet, so no identical model request is paid twice.
//!
//! - Key: SHA-256 of everything that determines an answer: agent kind, routes (provider and
//!   model), system and user messages, sampling settings, output schema version and the book's
//!   seed. Two seeds give two books; the same brief and seed cost nothing the second time.
//! - Tier 1: moka in each process, bounded by bytes, with a TTL. Tier 2: the JetStream KV bucket
//!   `scriptorium_cache` shared by every worker (TTL, size limit). A tier-2 hit fills tier 1.
//! - Only validated answers are cached: the coordinator writes tier 2 when it *accepts* a
//!   result (the worker sends the key along) and deletes the key when it rejects one, announcing
//!   the eviction so every worker drops it from tier 1. Tier 1 is filled only from tier 2.
//!   Re-asks (attempt > 1) never read the cache.
//! - Single flight: concurrent identical requests in one process make one model call (the
//!   others wait and are counted as coalesced). Across processes the first worker takes a lease
//!   in `scriptorium_leases` (an atomic KV create) and keeps it until the coordinator has
//!   accepted (and cached) or rejected its answer: the coordinator deletes the lease. Others wait
//!   while the lease is held and then read tier 2. Guarantee: one model call per identical
//!   request while the lease lives (`lease_secs`, which should exceed the model timeout); if the
//!   holder dies, waiters call the model themselves when the lease expires: that costs money,
//!   but an unvalidated answer is never served.

use scriptorium_proto::Bus;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::{StepTask, Usage};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

pub use scriptorium_common::cache::{CacheConfig, CachedAnswer, evict_rejected, store_accepted};

/// What a fresh computation produced (success or failure), shared with coalesced waiters.
#[derive(Debug, Clone, Default)]
pub struct Fresh {
    /// Whether the call produced an answer.
    pub ok: bool,
    /// The answer document.
    pub output: String,
    /// The route that answered (or the last tried).
    pub route: String,
    /// Usage of the call.
    pub usage: Usage,
    /// Why it failed.
    pub error: String,
    /// The structured-output dialect the answer was asked in.
    pub dialect: String,
}

/// Counters of one process's cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Answers served from the in-process tier.
    pub hits_local: AtomicU64,
    /// Answers served from the shared tier.
    pub hits_shared: AtomicU64,
    /// Requests that had to call a model.
    pub misses: AtomicU64,
    /// Requests that waited for an identical in-flight request instead of calling.
    pub coalesced: AtomicU64,
    /// Entries evicted because the coordinator rejected them.
    pub evictions: AtomicU64,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The in-process tier.
    Local,
    /// The shared tier.
    Shared,
    /// Another request in flight in this process.
    Coalesced,
    /// A model call made by this request.
    Model,
}

/// The two-tier cache of one worker process.
pub struct ResponseCache {
    cfg: CacheConfig,
    bus: Bus,
    owner: String,
    local: moka::future::Cache<String, Arc<CachedAnswer>>,
    inflight: dashmap::DashMap<String, watch::Receiver<Option<Arc<Fresh>>>>,
    /// Counters.
    pub stats: CacheStats,
}

impl ResponseCache {
    /// A cache on `bus`; `owner` names this process in leases.
    pub fn new(cfg: CacheConfig, bus: Bus, owner: String) -> Self {
        let local = moka::future::Cache::builder()
            .max_capacity(cfg.local_max_mb.saturating_mul(1 << 20))
            .weigher(|k: &String, v: &Arc<CachedAnswer>| {
                (k.len() + v.output.len() + v.route.len()).try_into().unwrap_or(u32::MAX)
            })
            .time_to_live(Duration::from_secs(cfg.local_ttl_secs.max(1)))
            .build();
        Self { cfg, bus, owner, local, inflight: Default::default(), stats: CacheStats::default() }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Bytes held by the in-process tier.
    pub fn local_bytes(&self) -> u64 {
        self.local.weighted_size()
    }

    /// The cache key of a rendered request.
    pub fn key(task: &StepTask, system: &str, user: &str) -> String {
        scriptorium_common::cache::key(task, system, user)
    }

    /// Looks `key` up in the in-process tier, then the shared one (filling the first).
    pub async fn lookup(&self, key: &str) -> Option<(Arc<CachedAnswer>, Source)> {
        if let Some(hit) = self.local.get(key).await {
            self.stats.hits_local.fetch_add(1, Ordering::Relaxed);
            return Some((hit, Source::Local));
        }
        let hit = self.shared_get(key).await?;
        self.local.insert(key.to_string(), hit.clone()).await;
        self.stats.hits_shared.fetch_add(1, Ordering::Relaxed);
        Some((hit, Source::Shared))
    }

    async fn shared_get(&self, key: &str) -> Option<Arc<CachedAnswer>> {
        let bytes = match self.bus.kv_get(Bucket::Cache, key).await {
            Ok(b) => b?,
            Err(e) => {
                tracing::debug!(error = %e, "shared cache read failed");
                return None;
            }
        };
        serde_json::from_slice::<CachedAnswer>(&bytes).ok().map(Arc::new)
    }

    /// Answers `key` from the cache (`read`), from an identical request in flight, or by running
    /// `compute` once. Returns where the answer came from, and whether this process now holds
    /// the lease of `key` (release it with [`ResponseCache::release`] once the result is out).
    pub async fn get_or_compute<F, Fut>(
        &self,
        key: &str,
        read: bool,
        compute: F,
    ) -> (Fresh, Source, bool)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Fresh>,
    {
        if !self.cfg.enabled || !read {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return (compute().await, Source::Model, false);
        }
        if let Some((hit, source)) = self.lookup(key).await {
            return (from_cached(&hit), source, false);
        }
        // Single flight in this process.
        let (tx, mut rx) = match self.inflight.entry(key.to_string()) {
            dashmap::Entry::Occupied(e) => (None, e.get().clone()),
            dashmap::Entry::Vacant(e) => {
                let (tx, rx) = watch::channel(None);
                e.insert(rx.clone());
                (Some(tx), rx)
            }
        };
        let Some(tx) = tx else {
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
            let fresh = loop {
                if let Some(f) = rx.borrow().clone() {
                    break Some(f);
                }
                if rx.changed().await.is_err() {
                    break rx.borrow().clone();
                }
            };
            return match fresh {
                Some(f) if f.ok => {
                    let mut f = (*f).clone();
                    f.usage = Usage { cache_hits: 1, ..Default::default() };
                    (f, Source::Coalesced, false)
                }
                // The leader failed: try ourselves rather than repeat its error.
                _ => (compute().await, Source::Model, false),
            };
        };
        // Across processes: wait for a peer that is computing the same request.
        let fresh = match self.wait_for_peer(key).await {
            Peer::Answered(hit) => {
                self.stats.hits_shared.fetch_add(1, Ordering::Relaxed);
                (from_cached(&hit), Source::Shared, false)
            }
            peer => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                (compute().await, Source::Model, matches!(peer, Peer::LeaseTaken))
            }
        };
        let _ = tx.send(Some(Arc::new(fresh.0.clone())));
        self.inflight.remove(key);
        fresh
    }

    /// Takes the lease of `key`, or waits while another process holds it and returns its
    /// accepted answer if one appears.
    async fn wait_for_peer(&self, key: &str) -> Peer {
        match self.bus.kv_create(Bucket::Leases, key, self.owner.clone().into_bytes().into()).await
        {
            Ok(true) => {
                // The previous holder may have finished between our lookup and the lease.
                if let Some(hit) = self.shared_get(key).await {
                    let _ = self.bus.kv_delete(Bucket::Leases, key).await;
                    self.local.insert(key.to_string(), hit.clone()).await;
                    return Peer::Answered(hit);
                }
                return Peer::LeaseTaken;
            }
            Err(_) => return Peer::GaveUp,
            Ok(false) => {}
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.cfg.lease_secs);
        loop {
            if let Some(hit) = self.shared_get(key).await {
                self.local.insert(key.to_string(), hit.clone()).await;
                return Peer::Answered(hit);
            }
            if tokio::time::Instant::now() >= deadline {
                return Peer::GaveUp;
            }
            if matches!(self.bus.kv_get(Bucket::Leases, key).await, Ok(None)) {
                // The holder's answer was rejected (or it failed): one last look, then compute.
                return match self.shared_get(key).await {
                    Some(hit) => Peer::Answered(hit),
                    None => Peer::GaveUp,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends this process's lease of `key` when no answer of it will reach the coordinator
    /// (the call failed, or its result could not be published).
    pub async fn release(&self, key: &str) {
        let _ = self.bus.kv_delete(Bucket::Leases, key).await;
    }
}

enum Peer {
    /// This process holds the lease: compute.
    LeaseTaken,
    /// Another process answered and its answer was accepted.
    Answered(Arc<CachedAnswer>),
    /// No answer from the lease holder in time (or no lease service): compute anyway.
    GaveUp,
}

fn from_cached(hit: &CachedAnswer) -> Fresh {
    Fresh {
        ok: true,
        output: hit.output.clone(),
        route: hit.route.clone(),
        usage: Usage { cache_hits: 1, ..Default::default() },
        error: String::new(),
        dialect: hit.dialect.clone(),
    }
}

impl ResponseCache {
    /// Drops every key the coordinator announces as evicted from the in-process tier, until
    /// the bus closes. Run it as a task for the life of the worker.
    pub async fn follow_evictions(self: std::sync::Arc<Self>) {
        let mut evictions = match self.bus.evictions().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow cache evictions");
                return;
            }
        };
        while let Some(key) = evictions.next().await {
            let key = String::from_utf8_lossy(&key).into_owned();
            if self.local.remove(&key).await.is_some() {
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn cache() -> ResponseCache {
        ResponseCache::new(CacheConfig::default(), Bus::memory(), "test".into())
    }

    fn fresh(output: &str) -> Fresh {
        Fresh { ok: true, output: output.into(), route: "sim/x".into(), ..Default::default() }
    }

    #[tokio::test]
    async fn concurrent_identical_requests_make_one_call() {
        let cache = Arc::new(cache());
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("k", true, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        fresh("{\"a\":1}")
                    })
                    .await
            }));
        }
        let mut sources = Vec::new();
        for t in tasks {
            let (f, s, _) = t.await.unwrap();
            assert_eq!(f.output, "{\"a\":1}");
            sources.push(s);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(sources.iter().filter(|s| **s == Source::Model).count(), 1);
        assert_eq!(cache.stats.coalesced.load(Ordering::SeqCst), 15);
    }

    #[tokio::test]
    async fn only_stored_answers_are_served_and_evicted_ones_are_not() {
        let bus = Bus::memory();
        let c = ResponseCache::new(CacheConfig::default(), bus.clone(), "a".into());
        // A fresh answer is not cached by the worker itself: validation comes first.
        let (_, s, _) = c.get_or_compute("k", true, || async { fresh("{}") }).await;
        assert_eq!(s, Source::Model);
        c.release("k").await;
        let (_, s, _) = c.get_or_compute("k", true, || async { fresh("{}") }).await;
        assert_eq!(s, Source::Model);
        c.release("k").await;
        // Accepted by the coordinator: served from the shared tier, then locally.
        let answer = CachedAnswer {
            output: "{\"b\":2}".into(),
            route: "r".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            dialect: "json_schema".into(),
        };
        store_accepted(&bus, "k", &answer).await;
        let other = ResponseCache::new(CacheConfig::default(), bus.clone(), "b".into());
        let (f, s, _) = other.get_or_compute("k", true, || async { fresh("never") }).await;
        assert_eq!((f.output.as_str(), s), ("{\"b\":2}", Source::Shared));
        assert_eq!(f.usage.cache_hits, 1);
        assert_eq!(f.usage.calls, 0);
        let (_, s, _) = other.get_or_compute("k", true, || async { fresh("never") }).await;
        assert_eq!(s, Source::Local);
        // Evicted after a rejection: a new process does not get it back.
        evict_rejected(&bus, "k").await;
        let third = ResponseCache::new(CacheConfig::default(), bus, "c".into());
        let (f, s, _) = third.get_or_compute("k", true, || async { fresh("{\"new\":1}") }).await;
        assert_eq!((f.output.as_str(), s), ("{\"new\":1}", Source::Model));
        // A re-ask never reads the cache.
        let (_, s, _) = other.get_or_compute("k", false, || async { fresh("{}") }).await;
        assert_eq!(s, Source::Model);
    }

    #[test]
    fn the_seed_and_the_prompt_are_part_of_the_key() {
        let mut t = StepTask {
            routes: vec!["sim/default".into()],
            brief: Some(Default::default()),
            ..Default::default()
        };
        let a = ResponseCache::key(&t, "sys", "user");
        assert_eq!(a, ResponseCache::key(&t, "sys", "user"));
        assert_ne!(a, ResponseCache::key(&t, "sys", "user!"));
        if let Some(b) = t.brief.as_mut() {
            b.seed = 9;
        }
        assert_ne!(a, ResponseCache::key(&t, "sys", "user"));
        t.routes = vec!["openai/gpt-4o".into()];
        assert_ne!(a, ResponseCache::key(&t, "sys", "user"));
    }
}
