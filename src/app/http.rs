//! The coordinator's HTTP side: the live dashboard (`--http-addr`), `/metrics`, `/healthz` and
//! `/readyz` (`--metrics-addr`; one listener when both addresses are equal), and the monitor task
//! that polls queues, workers and book events every [`REFRESH`] to feed the dashboard and the
//! queue gauges.
//!
//! The dashboard is one static page (`dashboard.html`, embedded) that reads
//! `/api/events`, a server-sent event stream with one JSON snapshot per refresh.

mod actions;
mod gate;

use super::queues::{self, QueueRow, RateWindow, WorkerRow};
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use scriptorium_common::ops::Health;
use scriptorium_coordinator::heartbeat::{self, Liveness};
use scriptorium_coordinator::metrics::{self, Failure};
use scriptorium_coordinator::record::{BookRecord, Status};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::v1::{BookEvent, BookState};
use scriptorium_proto::{Bus, clock};
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the monitor polls JetStream and pushes a snapshot.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How many finished books the dashboard lists.
const FINISHED_SHOWN: usize = 20;

const DASHBOARD: &str = include_str!("dashboard.html");

/// Where the coordinator serves its endpoints.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: Option<SocketAddr>,
    /// The dashboard (and the same health and metrics routes).
    pub http_addr: Option<SocketAddr>,
    /// The operator token (`SCRIPTORIUM_HTTP_TOKEN`) the dashboard's actions always need, and the
    /// dashboard and its API too when it listens beyond loopback; none: the actions are off (and
    /// a dashboard beyond loopback is closed).
    pub token: Option<String>,
}

/// A book as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BookView {
    /// Book id.
    pub id: String,
    /// Title (empty until the concept is accepted).
    pub title: String,
    /// `queued`, `running`, `done`, `failed`.
    pub state: &'static str,
    /// Steps done.
    pub steps_done: u32,
    /// Steps in all.
    pub steps_total: u32,
    /// Model cost so far (US dollars).
    pub cost_usd: f64,
    /// Tokens so far.
    pub tokens: u64,
    /// Seconds since the book was first seen.
    pub elapsed_secs: f64,
    /// Failure reason, or the latest event message.
    pub message: String,
    #[serde(skip)]
    first_ms: i64,
    #[serde(skip)]
    last_ms: i64,
}

/// Every book seen by the monitor: loaded once, then kept current from book events.
#[derive(Debug, Default)]
pub struct Board {
    books: HashMap<String, BookView>,
}

fn state_name(s: BookState) -> &'static str {
    Status::from_wire(s).name()
}

fn is_final(state: &str) -> bool {
    Status::parse(state).is_some_and(Status::is_final)
}

impl Board {
    /// Adds a stored record.
    pub fn load(&mut self, r: &BookRecord) {
        let (done, total) = r.progress();
        let end = if r.finished_ms > 0 { r.finished_ms } else { clock::now_ms() };
        self.books.insert(
            r.id.clone(),
            BookView {
                id: r.id.clone(),
                title: r.title.clone(),
                state: state_name(r.state.wire()),
                steps_done: done,
                steps_total: total,
                cost_usd: r.usage.cost_usd,
                tokens: r.usage.prompt_tokens + r.usage.completion_tokens,
                elapsed_secs: (end - r.created_ms).max(0) as f64 / 1000.0,
                message: r.failure.clone().unwrap_or_default(),
                first_ms: r.created_ms,
                last_ms: end,
            },
        );
    }

    /// Applies a progress event.
    pub fn apply(&mut self, ev: &BookEvent) {
        let now = clock::now_ms();
        let b = self.books.entry(ev.book_id.clone()).or_insert_with(|| BookView {
            id: ev.book_id.clone(),
            title: String::new(),
            state: "queued",
            steps_done: 0,
            steps_total: 0,
            cost_usd: 0.0,
            tokens: 0,
            elapsed_secs: 0.0,
            message: String::new(),
            first_ms: now,
            last_ms: now,
        });
        b.title = ev.title.clone();
        b.state = state_name(ev.state());
        b.steps_done = ev.steps_done;
        b.steps_total = ev.steps_total;
        if let Some(u) = ev.usage {
            b.cost_usd = u.cost_usd;
            b.tokens = u.prompt_tokens + u.completion_tokens;
        }
        if !ev.message.is_empty() {
            b.message = ev.message.clone();
        }
        b.last_ms = now;
    }

    /// Books in flight (oldest first), then the latest finished ones; and counts by state.
    pub fn view(&self) -> (Vec<BookView>, HashMap<&'static str, usize>) {
        let now = clock::now_ms();
        let mut counts = HashMap::new();
        let mut active = Vec::new();
        let mut finished = Vec::new();
        for b in self.books.values() {
            *counts.entry(b.state).or_insert(0) += 1;
            let mut b = b.clone();
            let end = if is_final(b.state) { b.last_ms } else { now };
            b.elapsed_secs = (end - b.first_ms).max(0) as f64 / 1000.0;
            if is_final(b.state) { finished.push(b) } else { active.push(b) }
        }
        active.sort_by_key(|b| b.first_ms);
        finished.sort_by_key(|b| std::cmp::Reverse(b.last_ms));
        finished.truncate(FINISHED_SHOWN);
        active.extend(finished);
        (active, counts)
    }
}

/// What the dashboard shows at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When (Unix ms).
    pub at_unix_ms: i64,
    /// Monotonic number of this snapshot.
    pub seq: u64,
    /// Step queues per agent kind.
    pub queues: Vec<QueueRow>,
    /// Worker processes.
    pub workers: Vec<WorkerRow>,
    /// Books in flight, then recently finished.
    pub books: Vec<BookView>,
    /// Books by state.
    pub book_counts: HashMap<&'static str, usize>,
    /// Latest step and book failures.
    pub failures: Vec<Failure>,
    /// Whether a coordinator is alive (its heartbeat) and the submissions waiting for one.
    pub coordinator: Option<Liveness>,
    /// Why the latest poll failed, if it did.
    pub error: Option<String>,
}

#[derive(Clone)]
struct Dash {
    snapshots: watch::Receiver<Arc<String>>,
}

/// The running HTTP side of a coordinator.
pub struct Servers {
    health: Arc<Health>,
    bus: Arc<std::sync::OnceLock<Bus>>,
    snapshots: watch::Sender<Arc<String>>,
    /// Bound address of the metrics listener.
    pub metrics_addr: Option<SocketAddr>,
    /// Bound address of the dashboard listener.
    pub http_addr: Option<SocketAddr>,
}

impl Servers {
    /// Binds the listeners (before NATS is reached, so liveness answers at once).
    pub async fn start(opts: &HttpOptions) -> anyhow::Result<Option<Servers>> {
        if opts.metrics_addr.is_none() && opts.http_addr.is_none() {
            return Ok(None);
        }
        let handle = metrics::install();
        let health = Health::new();
        let (tx, rx) = watch::channel(Arc::new("{\"starting\":true}".to_string()));
        let ops = scriptorium_common::ops::router(health.clone(), handle);
        let bus = Arc::new(std::sync::OnceLock::new());
        let token: Option<Arc<str>> =
            opts.token.as_deref().filter(|t| !t.is_empty()).map(Arc::from);
        let acts = actions::Actions { bus: bus.clone(), token: token.clone() };
        // Beyond loopback, the dashboard and its API need the token; the ops routes stay open.
        let gate = gate::Gate::new(opts.http_addr, token);
        let dash = Router::new()
            .route("/", get(|| async { Html(DASHBOARD) }))
            .route("/api/snapshot", get(snapshot))
            .route("/api/events", get(events))
            .with_state(Dash { snapshots: rx })
            .merge(
                Router::new()
                    .route("/api/books/{id}", get(actions::book))
                    .route("/api/books/{id}/{action}", axum::routing::post(actions::act))
                    .with_state(acts),
            )
            .layer(axum::middleware::from_fn_with_state(gate, gate::guard))
            .merge(ops.clone());
        let mut servers =
            Servers { health, bus, snapshots: tx, metrics_addr: None, http_addr: None };
        match (opts.metrics_addr, opts.http_addr) {
            (Some(m), Some(h)) if m == h => {
                let bound = scriptorium_common::ops::serve(h, dash).await?;
                servers.metrics_addr = Some(bound);
                servers.http_addr = Some(bound);
            }
            (m, h) => {
                if let Some(m) = m {
                    servers.metrics_addr = Some(scriptorium_common::ops::serve(m, ops).await?);
                }
                if let Some(h) = h {
                    servers.http_addr = Some(scriptorium_common::ops::serve(h, dash).await?);
                }
            }
        }
        Ok(Some(servers))
    }

    /// The coordinator started on `bus`: readiness follows the bus, and the monitor starts.
    pub fn started(&self, bus: Bus, lost_after: Duration) -> tokio::task::JoinHandle<()> {
        self.health.started(bus.clone());
        let _ = self.bus.set(bus.clone());
        tokio::spawn(monitor(bus, lost_after, self.snapshots.clone()))
    }
}

async fn snapshot(State(d): State<Dash>) -> impl IntoResponse {
    let body = d.snapshots.borrow().as_str().to_string();
    ([(CONTENT_TYPE, "application/json")], body)
}

async fn events(
    State(d): State<Dash>,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((d.snapshots, true), |(mut rx, first)| async move {
        // The current snapshot at once, then one per change.
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let data = rx.borrow_and_update().as_str().to_string();
        Some((Ok(Event::default().event("snapshot").data(data)), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Polls queues, workers and book events; publishes a snapshot and sets gauges every [`REFRESH`].
pub async fn monitor(bus: Bus, lost_after: Duration, out: watch::Sender<Arc<String>>) {
    let mut board = Board::default();
    match scriptorium_coordinator::client::list(&bus).await {
        Ok(records) => records.iter().for_each(|r| board.load(r)),
        Err(e) => tracing::warn!(error = %e, "monitor: stored books unreadable"),
    }
    let mut events = match bus.events(None).await {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!(error = %e, "monitor: no book events; books shown as loaded");
            None
        }
    };
    let mut rates = RateWindow::new(Duration::from_secs(60));
    let mut tick = tokio::time::interval(REFRESH);
    let mut seq = 0;
    loop {
        tokio::select! {
            ev = async { match events.as_mut() { Some(e) => e.next().await, None => std::future::pending().await } } => {
                match ev.map(BookEvent::decode) {
                    Some(Ok(ev)) => board.apply(&ev),
                    Some(Err(e)) => tracing::debug!(error = %e, "undecodable book event"),
                    None => events = None,
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        seq += 1;
        let mut error = None;
        let workers = queues::workers(&bus, lost_after).await.unwrap_or_else(|e| {
            error = Some(format!("workers: {e}"));
            Vec::new()
        });
        let queue_rows = queues::queues(&bus, &workers, &mut rates).await.unwrap_or_else(|e| {
            error = Some(format!("queues: {e}"));
            Vec::new()
        });
        queue_rows.iter().for_each(metrics::set_queue);
        let lost = workers.iter().filter(|w| w.state == "lost").count();
        metrics::set_workers(workers.len() - lost, lost);
        let coordinator = heartbeat::liveness(&bus).await.map_err(|e| {
            error = Some(format!("coordinator heartbeat: {e}"));
        });
        let (books, counts) = board.view();
        metrics::set_books(|s: &str| counts.get(s).copied().unwrap_or(0));
        let snap = Snapshot {
            at_unix_ms: clock::now_ms(),
            seq,
            queues: queue_rows,
            workers,
            books,
            book_counts: counts,
            failures: metrics::recent_failures(),
            coordinator: coordinator.ok(),
            error,
        };
        match serde_json::to_string(&snap) {
            // Without a dashboard nobody reads snapshots; the gauges above still matter.
            Ok(json) => {
                out.send_replace(Arc::new(json));
            }
            Err(e) => tracing::error!(error = %e, "snapshot not serialisable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::Usage;

    fn ev(id: &str, state: BookState, done: u32, msg: &str) -> BookEvent {
        BookEvent {
            book_id: id.into(),
            title: format!("T {id}"),
            state: state as i32,
            steps_done: done,
            steps_total: 10,
            message: msg.into(),
            usage: Some(Usage {
                cost_usd: 0.5,
                prompt_tokens: 7,
                completion_tokens: 3,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn board_follows_events_and_counts_states() {
        let mut b = Board::default();
        b.apply(&ev("a", BookState::Running, 2, ""));
        b.apply(&ev("b", BookState::Running, 1, ""));
        b.apply(&ev("a", BookState::Running, 5, ""));
        b.apply(&ev("b", BookState::Failed, 1, "budget exceeded"));
        let (books, counts) = b.view();
        assert_eq!(counts.get("running"), Some(&1));
        assert_eq!(counts.get("failed"), Some(&1));
        assert_eq!(books[0].id, "a", "books in flight come first");
        assert_eq!(books[0].steps_done, 5);
        assert_eq!(books[0].tokens, 10);
        assert_eq!(books[1].message, "budget exceeded");
    }
}
