//! The operations endpoints of a process: `/metrics` (Prometheus text), `/healthz` (the process
//! is alive) and `/readyz` (it started, is connected to NATS and every stream and bucket exists).
//!
//! The worker serves them on `--metrics-addr`; the coordinator adds its dashboard to the same
//! router. Both record into one process-wide Prometheus recorder ([`install`]).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use scriptorium_proto::Bus;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// Whether the process is ready: set once its components started on a bus.
#[derive(Default)]
pub struct Health {
    bus: OnceLock<Bus>,
}

impl Health {
    /// Not ready yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The process started on `bus`; from now on readiness follows the bus.
    pub fn started(&self, bus: Bus) {
        let _ = self.bus.set(bus);
    }

    /// `Ok` when started and the bus can serve; otherwise why not.
    pub async fn check(&self) -> Result<(), String> {
        match self.bus.get() {
            None => Err("starting: not connected to nats yet".into()),
            Some(bus) => bus.check_ready().await.map_err(|e| e.to_string()),
        }
    }
}

#[derive(Clone)]
struct Ops {
    health: Arc<Health>,
    metrics: PrometheusHandle,
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn router(health: Arc<Health>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Ops { health, metrics })
}

async fn render_metrics(State(ops): State<Ops>) -> impl IntoResponse {
    // Upkeep drains histogram buffers; a scrape is a natural moment for it.
    ops.metrics.run_upkeep();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], ops.metrics.render())
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    match ops.health.check().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

/// Binds `addr` and serves `router` in a background task; returns the bound address.
pub async fn serve(addr: SocketAddr, router: Router) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    tracing::info!(addr = %bound, "http endpoints listening");
    Ok(bound)
}

/// Histogram buckets of every `*_seconds` metric: from a cached answer to a long chapter.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// A recorder with the buckets above, not installed: for [`install`] and for tests that use
/// `metrics::with_local_recorder`.
pub fn recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .expect("static buckets are not empty")
        .build_recorder()
}

/// Installs the process-wide Prometheus recorder once and returns the handle that renders it.
///
/// The worker and the coordinator both record into it; a second call returns the same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            // Histogram samples wait in the recorder until a scrape or an upkeep drains them
            // into the buckets: with nobody scraping /metrics they would grow with every step.
            let upkeep = handle.clone();
            let spawned =
                std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            handle
        })
        .clone()
}

/// Resolves when the process is asked to stop (SIGINT, or SIGTERM on Unix), from the first
/// poll on. A process that must clean up after a stop asked for while it starts listens with
/// [`stop_listener`] before it starts.
pub async fn stop_signal() {
    stop_listener().await
}

/// A listener for SIGINT and SIGTERM ([`stop_listener`]); poll it by `&mut` in a loop.
pub type StopListener = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Listens for SIGINT and SIGTERM from now on (before the first poll: a signal that comes while
/// the process is still starting ends the returned future instead of killing the process, so a
/// worker still deletes the heartbeat it already wrote). Needs a Tokio runtime.
pub fn stop_listener() -> StopListener {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        {
            return Box::pin(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
        }
    }
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// The host name a process reports in its heartbeat: `$HOSTNAME`, else `localhost`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "localhost".into())
}
