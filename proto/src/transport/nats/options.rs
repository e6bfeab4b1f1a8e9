//! How to connect to NATS: the connection name and timeouts, credentials, TLS and role, the
//! queues' and buckets' settings, replicas and what to do with settings that drifted, checked
//! before any I/O.

use super::super::QueueSettings;
use super::super::settings::Reconcile;
use super::auth::{NatsAuth, Role};
use std::time::Duration;

/// How to connect to NATS.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Connection name shown by the server.
    pub name: String,
    /// How long to keep trying the first connection (failures of the first 3 s are not
    /// logged above debug: a server may be starting). Services wait for a server to come up;
    /// tools set a few seconds, so that a wrong URL fails fast with one error.
    pub connect_timeout: Duration,
    /// Settings of the step queues.
    pub steps: QueueSettings,
    /// Settings of the coordinator's queues (results and submissions). The coordinator sends
    /// in-progress acknowledgements while it handles a message, so a short ack wait only bounds
    /// how long a delivery lost with a server (or a coordinator) waits to be delivered again.
    pub coordinator: QueueSettings,
    /// How long a worker or coordinator heartbeat stays in its bucket.
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
    /// Credentials and TLS (a user and password in the URL count when none are given here).
    pub auth: NatsAuth,
    /// What this process does on the bus: what it sets up at connect, its inbox prefix.
    pub role: Role,
}

impl NatsOptions {
    /// Checks what JetStream would refuse, naming the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("replicas: must be between 1 and 5 (got {})", self.replicas));
        }
        self.steps.validate().map_err(|e| format!("steps.{e}"))?;
        self.coordinator.validate().map_err(|e| format!("coordinator.{e}"))?;
        self.auth.validate()
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
            auth: NatsAuth::default(),
            role: Role::Coordinator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
