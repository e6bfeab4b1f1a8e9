//! The response cache's contract between the processes: its settings, the key of a request,
//! the record stored per accepted answer, and the coordinator's writes (store on acceptance,
//! evict on rejection, release when a result is ignored: each ends the computing worker's
//! lease, so peers waiting on it stop waiting).

use scriptorium_proto::Bus;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::StepTask;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the cached answer shape; bump to invalidate every entry.
const SCHEMA_VERSION: &str = "scriptorium-cache-v1";

/// Settings of the response cache (the `[cache]` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether workers read and the coordinator writes the cache.
    pub enabled: bool,
    /// Size of the in-process tier, in MiB.
    pub local_max_mb: u64,
    /// Lifetime of an in-process entry, in seconds.
    pub local_ttl_secs: u64,
    /// Lifetime of a shared entry, in seconds.
    pub shared_ttl_secs: u64,
    /// Size limit of the shared tier, in MiB (oldest entries are dropped first).
    pub shared_max_mb: u64,
    /// Lifetime of a computation lease without renewal, in seconds: the worker computing a
    /// request renews its lease every third of this, so the lease of a worker that died lapses
    /// within it and a waiting peer takes over.
    pub lease_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            local_max_mb: 64,
            local_ttl_secs: 600,
            shared_ttl_secs: 7 * 24 * 3600,
            shared_max_mb: 1024,
            lease_secs: 10,
        }
    }
}

/// An accepted answer, as stored in both tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    /// The answer document (JSON text).
    pub output: String,
    /// The route that produced it.
    pub route: String,
    /// Prompt tokens it cost when it was made.
    pub prompt_tokens: u64,
    /// Completion tokens it cost when it was made.
    pub completion_tokens: u64,
    /// The structured-output dialect it was asked in.
    #[serde(default)]
    pub dialect: String,
}

/// The cache key of a rendered request.
pub fn key(task: &StepTask, system: &str, user: &str) -> String {
    let s = task.sampling.clone().unwrap_or_default();
    let seed = task.brief.as_ref().map(|b| b.seed).unwrap_or(0);
    let mut h = Sha256::new();
    for part in [
        SCHEMA_VERSION,
        scriptorium_proto::kind::name(task.kind()),
        &task.routes.join(","),
        system,
        user,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(s.temperature.to_le_bytes());
    h.update(s.top_p.to_le_bytes());
    h.update(s.max_tokens.to_le_bytes());
    h.update(seed.to_le_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores an accepted answer in the shared tier and ends its lease (called by the coordinator).
pub async fn store_accepted(bus: &Bus, key: &str, answer: &CachedAnswer) {
    match serde_json::to_vec(answer) {
        Ok(bytes) => {
            if let Err(e) = bus.kv_put(Bucket::Cache, key, bytes.into()).await {
                tracing::warn!(error = %e, "shared cache write failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cache entry not serialisable"),
    }
    release_lease(bus, key).await;
}

/// Ends the lease of `key` without storing anything: the answer computed under it will not be
/// used (its result was ignored: superseded attempt, finished book, duplicate), so a waiting
/// peer computes it now instead of waiting for the lease to lapse. Keys that NATS would
/// refuse are skipped (they come from the wire).
pub async fn release_lease(bus: &Bus, key: &str) {
    if !scriptorium_proto::names::valid_key(key) {
        tracing::debug!("lease release skipped: not a valid key");
        return;
    }
    if let Err(e) = bus.kv_delete(Bucket::Leases, key).await {
        tracing::debug!(error = %e, "lease release failed; it lapses on its own");
    }
}

/// Removes a rejected answer from the shared tier and ends its lease (called by the coordinator).
pub async fn evict_rejected(bus: &Bus, key: &str) {
    if let Err(e) = bus.kv_delete(Bucket::Cache, key).await {
        tracing::debug!(error = %e, "shared cache eviction failed");
    }
    release_lease(bus, key).await;
    let _ = bus.announce_eviction(key).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_coordinator_write_ends_the_lease() {
        let bus = Bus::memory();
        let take = |k: &'static str| {
            let bus = bus.clone();
            async move {
                assert!(bus.kv_create(Bucket::Leases, k, b"w1".to_vec().into()).await.unwrap())
            }
        };
        let held = |k: &'static str| {
            let bus = bus.clone();
            async move { bus.kv_get(Bucket::Leases, k).await.unwrap().is_some() }
        };
        take("ignored").await;
        release_lease(&bus, "ignored").await;
        assert!(!held("ignored").await, "released after an ignored result");
        take("accepted").await;
        let answer = CachedAnswer {
            output: "{}".into(),
            route: "sim/default".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            dialect: String::new(),
        };
        store_accepted(&bus, "accepted", &answer).await;
        assert!(!held("accepted").await);
        assert!(bus.kv_get(Bucket::Cache, "accepted").await.unwrap().is_some());
        take("rejected").await;
        evict_rejected(&bus, "rejected").await;
        assert!(!held("rejected").await);
        // A key from the wire that NATS would refuse is skipped, not an error.
        release_lease(&bus, "not a key").await;
    }
}
