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
//!   others wait and are counted as coalesced). A leader that is cancelled leaves no entry
//!   behind (a drop guard removes it) and its waiters elect a new leader among themselves.
//! - Across processes the first worker takes a lease in `scriptorium_leases` (an atomic KV
//!   create). A lease lives only as long as its holder: the bucket's TTL (`lease_secs`) is
//!   short and the holder renews the lease every third of it while it computes, so the lease
//!   of a dead holder lapses within `lease_secs`. The holder releases it on every path where
//!   no answer reaches the coordinator (failure, publish failure, cancellation; a drop guard
//!   covers a cancelled computation); an answer on its way keeps it, and the coordinator ends
//!   it when it accepts, rejects or ignores that answer. Waiters poll tier 2 with backoff while
//!   the lease lives and take the lease over when it is gone: one model call per identical
//!   request while the holder lives, and an unvalidated answer is never served.

use scriptorium_proto::Bus;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::{Failure, StepTask, Usage};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub use scriptorium_common::cache::{
    CacheConfig, CachedAnswer, evict_rejected, release_lease, store_accepted,
};

/// First pause of a waiter between looks at the shared tier and the lease; it doubles up to
/// [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(100);
/// Longest pause of a waiter between looks.
const POLL_MAX: Duration = Duration::from_secs(1);
/// How long a waiter waits for a live holder when the caller names no deadline.
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30 * 60);

/// An answer to a step, from the model or the cache.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The answer document.
    pub output: String,
    /// The route that answered.
    pub route: String,
    /// Usage of the calls made for it (a cache hit: none, `cache_hits` 1).
    pub usage: Usage,
    /// The structured-output dialect the answer was asked in.
    pub dialect: String,
}

/// A step's computation that gave no answer: why, typed, and what its calls cost.
#[derive(Debug, Clone)]
pub struct Failed {
    /// Why (its `route` the last route tried).
    pub failure: Failure,
    /// Usage of the calls made.
    pub usage: Usage,
}

/// What a computation produced, shared with coalesced waiters.
pub type Fresh = Result<Answer, Failed>;

/// What [`ResponseCache::get_or_compute_until`] gives back.
#[must_use]
pub struct Produced {
    /// The answer or the failure.
    pub fresh: Fresh,
    /// Where it came from.
    pub source: Source,
    /// The lease of the key when this call computed the answer under one.
    pub lease: Option<Lease>,
}

impl Produced {
    pub(crate) fn new(fresh: Fresh, source: Source, lease: Option<Lease>) -> Produced {
        Produced { fresh, source, lease }
    }
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
    /// Leases taken over after their holder stopped renewing or released them.
    pub takeovers: AtomicU64,
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

/// The lease of a cache key held by this process after computing its answer.
///
/// Dropped without [`Lease::hand_over`] or [`Lease::release`] (a cancelled step), it is
/// released in the background, so peers do not wait for it to lapse.
#[must_use = "a lease is released when dropped; hand it over once the answer is on its way"]
pub struct Lease {
    bus: Bus,
    key: String,
    armed: bool,
}

impl Lease {
    /// The key it leases.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The answer is on its way to the coordinator, which ends the lease when it accepts,
    /// rejects or ignores it; until then (at most `lease_secs`, as it is no longer renewed)
    /// peers wait for that answer instead of paying for it again.
    pub fn hand_over(mut self) {
        self.armed = false;
    }

    /// No answer of it will reach the coordinator: end it now.
    pub async fn release(mut self) {
        self.armed = false;
        release_lease(&self.bus, &self.key).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (bus, key) = (self.bus.clone(), std::mem::take(&mut self.key));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { release_lease(&bus, &key).await });
            }
            // No runtime left (the process is ending): the lease lapses on its own.
            Err(_) => tracing::debug!("lease not released: no runtime"),
        }
    }
}

/// The in-process single flight of one key: whoever leads it (the first request) announces
/// the outcome to the others through the channel.
type Flight = watch::Receiver<Option<Arc<Fresh>>>;

/// Removes a leader's in-process flight when the leader finishes or is cancelled, so the
/// key never stays occupied by a computation that no longer runs.
struct FlightGuard<'a> {
    inflight: &'a dashmap::DashMap<String, Flight>,
    key: &'a str,
    rx: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        // Only our own flight: a new leader may already have replaced it.
        self.inflight.remove_if(self.key, |_, rx| rx.same_channel(&self.rx));
    }
}

/// The two-tier cache of one worker process.
pub struct ResponseCache {
    cfg: CacheConfig,
    bus: Bus,
    owner: String,
    local: moka::future::Cache<String, Arc<CachedAnswer>>,
    inflight: dashmap::DashMap<String, Flight>,
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

    /// How often a holder renews its lease: a third of the lease's lifetime.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis(self.cfg.lease_secs.max(1) * 1000 / 3).max(Duration::from_millis(300))
    }

    /// Looks `key` up in the in-process tier, then the shared one (filling the first).
    pub async fn lookup(&self, key: &str) -> Option<(Arc<CachedAnswer>, Source)> {
        if let Some(hit) = self.local.get(key).await {
            self.stats.hits_local.fetch_add(1, Ordering::Relaxed);
            return Some((hit, Source::Local));
        }
        let hit = self.shared_get(key).await?;
        Some((self.keep_shared(key, hit).await, Source::Shared))
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

    /// [`ResponseCache::get_or_compute_until`] with a waiter's default patience (30 minutes).
    pub async fn get_or_compute<F, Fut>(&self, key: &str, read: bool, compute: F) -> Produced
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Fresh>,
    {
        self.get_or_compute_until(key, read, Instant::now() + DEFAULT_MAX_WAIT, compute).await
    }

    /// Answers `key` from the cache (`read`), from an identical request in flight, or by running
    /// `compute` once; a peer process computing the same request is waited for until
    /// `deadline` at most. Returns where the answer came from, and the lease of `key` when this
    /// call computed it under one: hand it over once the answer is on its way to the
    /// coordinator, release it otherwise (dropping it releases it too).
    pub async fn get_or_compute_until<F, Fut>(
        &self,
        key: &str,
        read: bool,
        deadline: Instant,
        compute: F,
    ) -> Produced
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Fresh>,
    {
        if !self.cfg.enabled || !read {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            return Produced::new(compute().await, Source::Model, None);
        }
        loop {
            // Tier 1 here; tier 2 is read by the flight's leader, together with its lease.
            if let Some(hit) = self.local.get(key).await {
                self.stats.hits_local.fetch_add(1, Ordering::Relaxed);
                return Produced::new(Ok(from_cached(&hit)), Source::Local, None);
            }
            // Single flight in this process.
            let (tx, rx) = match self.inflight.entry(key.to_string()) {
                dashmap::Entry::Occupied(e) => (None, e.get().clone()),
                dashmap::Entry::Vacant(e) => {
                    let (tx, rx) = watch::channel(None);
                    e.insert(rx.clone());
                    (Some(tx), rx)
                }
            };
            let Some(tx) = tx else {
                match follow(rx.clone()).await {
                    Some(f) if f.is_ok() => {
                        self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
                        let fresh = (*f).clone().map(|a| Answer {
                            usage: Usage { cache_hits: 1, ..Default::default() },
                            ..a
                        });
                        return Produced::new(fresh, Source::Coalesced, None);
                    }
                    // The leader failed: try ourselves rather than repeat its error.
                    Some(_) => {
                        self.stats.misses.fetch_add(1, Ordering::Relaxed);
                        return Produced::new(compute().await, Source::Model, None);
                    }
                    // The leader was cancelled: its guard removed its flight (and, should it
                    // not have, so do we); lead or follow anew.
                    None => {
                        self.inflight.remove_if(key, |_, r| r.same_channel(&rx));
                        continue;
                    }
                }
            };
            let _guard = FlightGuard { inflight: &self.inflight, key, rx };
            let produced = self.lead(key, deadline, compute).await;
            let _ = tx.send(Some(Arc::new(produced.fresh.clone())));
            return produced;
        }
    }

    /// The leader of this process's flight: waits for a peer process computing the same
    /// request, or computes under the lease (renewing it meanwhile).
    async fn lead<F, Fut>(&self, key: &str, deadline: Instant, compute: F) -> Produced
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Fresh>,
    {
        match self.wait_for_peer(key, deadline).await {
            Peer::Answered(hit) => Produced::new(Ok(from_cached(&hit)), Source::Shared, None),
            Peer::LeaseTaken(lease) => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                let fresh = tokio::select! {
                    fresh = compute() => fresh,
                    never = self.keep_renewing(key) => match never {},
                };
                Produced::new(fresh, Source::Model, Some(lease))
            }
            Peer::GaveUp => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                Produced::new(compute().await, Source::Model, None)
            }
        }
    }

    /// Renews the lease of `key` every [`ResponseCache::renew_every`], for as long as it is
    /// polled (the computation's life).
    async fn keep_renewing(&self, key: &str) -> std::convert::Infallible {
        let every = self.renew_every();
        loop {
            tokio::time::sleep(every).await;
            let owner = self.owner.clone().into_bytes().into();
            if let Err(e) = self.bus.kv_put(Bucket::Leases, key, owner).await {
                tracing::debug!(error = %e, "lease renewal failed");
            }
        }
    }

    /// Takes the lease of `key`, or waits while another process holds it (looking at the
    /// shared tier with backoff) and returns its accepted answer if one appears; takes the
    /// lease over when its holder released it or stopped renewing it.
    async fn wait_for_peer(&self, key: &str, deadline: Instant) -> Peer {
        let mut pause = POLL_FIRST;
        let mut waited = false;
        // The first look reads tier 2 and asks for the lease together: a miss costs two round
        // trips on the step's path (this one and the read after the lease), not three. A hit
        // found with a lease taken for nothing lets it go in the background (`Lease`'s drop).
        let lease = || Lease { bus: self.bus.clone(), key: key.to_string(), armed: true };
        let (hit, mut created) = tokio::join!(self.shared_get(key), self.create_lease(key));
        if let Some(hit) = hit {
            if matches!(created, Ok(true)) {
                drop(lease());
            }
            return Peer::Answered(self.keep_shared(key, hit).await);
        }
        loop {
            match created {
                Ok(true) => {
                    let lease = lease();
                    // The previous holder may have finished between our lookup and the lease.
                    if let Some(hit) = self.shared_get(key).await {
                        lease.release().await;
                        return Peer::Answered(self.keep_shared(key, hit).await);
                    }
                    if waited {
                        self.stats.takeovers.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(key, "lease taken over from a holder that is gone");
                    }
                    return Peer::LeaseTaken(lease);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "no lease service; computing without one");
                    return Peer::GaveUp;
                }
            }
            if Instant::now() + pause >= deadline {
                tracing::warn!(key, "the lease holder took too long; computing beside it");
                return Peer::GaveUp;
            }
            waited = true;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
            if let Some(hit) = self.shared_get(key).await {
                return Peer::Answered(self.keep_shared(key, hit).await);
            }
            created = self.create_lease(key).await;
        }
    }

    /// Creates the lease of `key` for this process: `Ok(false)` when another holds it.
    async fn create_lease(&self, key: &str) -> Result<bool, scriptorium_proto::BusError> {
        self.bus.kv_create(Bucket::Leases, key, self.owner.clone().into_bytes().into()).await
    }

    /// A tier-2 hit: kept in tier 1 too, and counted.
    async fn keep_shared(&self, key: &str, hit: Arc<CachedAnswer>) -> Arc<CachedAnswer> {
        self.local.insert(key.to_string(), hit.clone()).await;
        self.stats.hits_shared.fetch_add(1, Ordering::Relaxed);
        hit
    }
}

/// Waits for the outcome of a flight led by another request of this process; `None` when the
/// leader went away without one.
async fn follow(mut rx: Flight) -> Option<Arc<Fresh>> {
    loop {
        if let Some(f) = rx.borrow_and_update().clone() {
            return Some(f);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

enum Peer {
    /// This process holds the lease: compute.
    LeaseTaken(Lease),
    /// Another process answered and its answer was accepted.
    Answered(Arc<CachedAnswer>),
    /// No lease service, or the holder outlived the caller's deadline: compute anyway.
    GaveUp,
}

fn from_cached(hit: &CachedAnswer) -> Answer {
    Answer {
        output: hit.output.clone(),
        route: hit.route.clone(),
        usage: Usage { cache_hits: 1, ..Default::default() },
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
mod tests;
