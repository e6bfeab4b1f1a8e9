//! How this process's commands and services connect to NATS: the credentials and TLS set once
//! from the flags and the environment, the role of each connection, and errors that say which
//! setting to look at.

use super::AppConfig;
use scriptorium_proto::transport::{NatsAuth, NatsOptions, Role};
use scriptorium_proto::{Bus, BusError};
use std::time::Duration;

/// Credentials and TLS of this process's NATS connections, set once from the flags and the
/// environment before any connection.
static NATS_AUTH: std::sync::OnceLock<NatsAuth> = std::sync::OnceLock::new();

/// Sets the credentials and TLS every NATS connection of this process uses, and teaches the log
/// redactor their secrets (a later call changes nothing).
pub fn set_nats_auth(auth: NatsAuth) {
    for secret in auth.secrets() {
        scriptorium_worker::redact::register_secret(secret);
    }
    let _ = NATS_AUTH.set(auth);
}

/// How long a tool tries to reach NATS before it gives up: a wrong or dead URL fails fast with
/// one error, where services wait for a server to come up.
pub const TOOL_CONNECT: Duration = Duration::from_secs(2);

/// Connects a tool (`submit`, `status`, `retry`, `dead-letters`, the views and the operators'
/// commands): it tries for [`TOOL_CONNECT`] only, creates what is missing with the defaults but
/// never changes the settings the coordinator and the workers run with.
pub async fn connect_tool(url: &str, name: &str) -> anyhow::Result<Bus> {
    let mut opts = nats_options(url, name, &AppConfig::default(), Role::Tool);
    opts.reconcile = scriptorium_proto::transport::Reconcile::Leave;
    opts.connect_timeout = TOOL_CONNECT;
    Bus::connect(url, opts).await.map_err(|e| match &e {
        BusError::Unavailable { op, .. } if op.starts_with("connect") => {
            let secs = TOOL_CONNECT.as_secs();
            anyhow::Error::new(e).context(format!(
                "no NATS server answered within {secs}s (--nats, SCRIPTORIUM_NATS)"
            ))
        }
        _ => explain(e),
    })
}

/// `e` with the settings to look at when the server refused who this process is.
fn explain(e: BusError) -> anyhow::Error {
    match &e {
        BusError::Rejected {
            op,
            rejection: scriptorium_proto::transport::Rejection::Permission,
            ..
        } if op.starts_with("connect") => anyhow::Error::new(e).context(
            "the NATS server refused these credentials (--nats-creds, --nats-nkey, \
                 SCRIPTORIUM_NATS_TOKEN, SCRIPTORIUM_NATS_USER and SCRIPTORIUM_NATS_PASSWORD, or \
                 the URL)",
        ),
        _ => e.into(),
    }
}

/// Connects a service to NATS, retrying while the server comes up (`NatsOptions::connect_timeout`),
/// as the owner of the streams and buckets (the coordinator's role).
pub async fn connect(url: &str, name: &str, cfg: &AppConfig) -> anyhow::Result<Bus> {
    connect_as(url, name, cfg, Role::Coordinator).await
}

/// Connects a service with `role` (see [`connect`]).
pub async fn connect_as(url: &str, name: &str, cfg: &AppConfig, role: Role) -> anyhow::Result<Bus> {
    Bus::connect(url, nats_options(url, name, cfg, role)).await.map_err(explain)
}

fn nats_options(url: &str, name: &str, cfg: &AppConfig, role: Role) -> NatsOptions {
    // A password or token in the URL never reaches a log line either.
    for secret in scriptorium_proto::transport::auth::url_secrets(url) {
        scriptorium_worker::redact::register_secret(secret.expose());
    }
    let auth = NATS_AUTH.get().cloned().unwrap_or_else(NatsAuth::from_env);
    let cache = &cfg.cache;
    NatsOptions {
        auth,
        role,
        name: name.into(),
        steps: scriptorium_proto::transport::QueueSettings {
            ack_wait: Duration::from_secs(cfg.worker.ack_wait_secs.max(1)),
            max_deliver: i64::try_from(cfg.worker.max_deliver).unwrap_or(10),
            ..Default::default()
        },
        cache_ttl: Duration::from_secs(cache.shared_ttl_secs.max(1)),
        cache_max_bytes: i64::try_from(cache.shared_max_mb.saturating_mul(1 << 20))
            .unwrap_or(i64::MAX),
        lease_ttl: Duration::from_secs(cache.lease_secs.max(1)),
        replicas: cfg.nats.replicas,
        ..Default::default()
    }
}
