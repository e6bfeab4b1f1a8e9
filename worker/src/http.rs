//! The operations endpoints of a process: `/metrics` (Prometheus text), `/healthz` (the process
//! is alive) and `/readyz` (it started, is connected to NATS and every stream and bucket exists).
//!
//! The worker serves them on `--metrics-addr`; the coordinator adds its dashboard to the same
//! router.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
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
            Some(Bus::Nats(nats)) => nats.check_ready().await.map_err(|e| e.to_string()),
            Some(Bus::Memory(_)) => Ok(()),
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
