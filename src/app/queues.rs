//! `scriptorium queues` and `scriptorium workers`: the fleet's queues and worker processes
//! (read by [`scriptorium_coordinator::fleet`]) as tables or JSON, once or with `--watch`.

pub use scriptorium_coordinator::fleet::{QueueRow, RateWindow, WorkerRow, queues, workers};
use scriptorium_proto::{Bus, clock};
use std::fmt::Write as _;
use std::time::Duration;

fn opt_secs(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) if s < 3600.0 => format!("{:.1}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}

/// The queues as a table.
pub fn queue_table(rows: &[QueueRow]) -> String {
    let mut out = format!(
        "{:<11} {:>8} {:>10} {:>12} {:>6} {:>8} {:>8} {:>10}\n",
        "KIND", "WAITING", "IN FLIGHT", "REDELIVERED", "DEAD", "OLDEST", "WORKERS", "STEPS/MIN"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<11} {:>8} {:>10} {:>12} {:>6} {:>8} {:>8} {:>10}",
            r.kind,
            r.waiting,
            r.in_flight,
            r.redelivered,
            r.dead_lettered,
            opt_secs(r.oldest_waiting_secs),
            r.workers,
            r.steps_per_min.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
        );
    }
    out
}

/// The workers as a table.
pub fn worker_table(rows: &[WorkerRow]) -> String {
    let mut out = format!(
        "{:<20} {:<5} {:<16} {:>7} {:>9} {:>6}  {:<40} CURRENT STEPS\n",
        "WORKER", "STATE", "HOST", "PID", "LAST SEEN", "DONE", "POOLS (busy/size)"
    );
    for w in rows {
        let mut pools: Vec<String> =
            w.pools.iter().map(|p| format!("{} {}/{}", p.kind, p.busy, p.size)).collect();
        if let Some(t) = w.tokens_per_second {
            pools.push(format!("model {t:.1} tok/s"));
        }
        let _ = writeln!(
            out,
            "{:<20} {:<5} {:<16} {:>7} {:>8.1}s {:>6}  {:<40} {}",
            w.id,
            w.state,
            w.host,
            w.pid,
            w.last_seen_secs,
            w.steps_done,
            pools.join(", "),
            w.current_steps.join(", ")
        );
    }
    if rows.is_empty() {
        out += "(no workers)\n";
    }
    out
}

impl super::AppConfig {
    /// How old a heartbeat may get before its worker counts as lost: three intervals.
    pub fn lost_after(&self) -> Duration {
        Duration::from_secs(3 * self.worker.heartbeat_secs.max(1))
    }
}

/// Options of `scriptorium queues` and `scriptorium workers`.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// NATS server URL.
    pub nats: String,
    /// Refresh until interrupted.
    pub watch: bool,
    /// Print JSON (one document per refresh with `watch`).
    pub json: bool,
    /// Seconds between refreshes with `watch`; without it, the sampling window of steps per minute.
    pub interval: Duration,
    /// A heartbeat older than this marks its worker lost.
    pub lost_after: Duration,
}

async fn connect(url: &str, name: &str) -> anyhow::Result<Bus> {
    super::connect_tool(url, name).await
}

fn clear_if_terminal() {
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        print!("\x1b[2J\x1b[H");
    }
}

/// `scriptorium queues`: per agent kind, what waits, runs, was redelivered or dead-lettered.
pub async fn run_queues(opts: ViewOptions) -> anyhow::Result<()> {
    let bus = connect(&opts.nats, "scriptorium-queues").await?;
    let mut stop = stop_listener(&opts);
    let mut rates = RateWindow::new(Duration::from_secs(60));
    if !opts.watch {
        // Steps per minute needs two samples: take one, wait the interval, then report.
        queues(&bus, &[], &mut rates).await?;
        tokio::time::sleep(opts.interval).await;
    }
    loop {
        let w = workers(&bus, opts.lost_after).await?;
        let rows = queues(&bus, &w, &mut rates).await?;
        let doc = serde_json::json!({ "at_unix_ms": clock::now_ms(), "queues": rows });
        if !show(&opts, &doc, &queue_table(&rows), &mut stop).await? {
            return Ok(());
        }
    }
}

/// `scriptorium workers`: every worker process from its latest heartbeat.
pub async fn run_workers(opts: ViewOptions) -> anyhow::Result<()> {
    let bus = connect(&opts.nats, "scriptorium-workers").await?;
    let mut stop = stop_listener(&opts);
    loop {
        let rows = workers(&bus, opts.lost_after).await?;
        let doc = serde_json::json!({
            "at_unix_ms": clock::now_ms(),
            "lost_after_secs": opts.lost_after.as_secs_f64(),
            "workers": rows,
        });
        if !show(&opts, &doc, &worker_table(&rows), &mut stop).await? {
            return Ok(());
        }
    }
}

/// With `--watch`, SIGINT and SIGTERM listened for from the start of the view: a signal that
/// comes while a frame is being read ends the view at the next wait instead of being lost (a
/// listener made only for each wait missed it, and the view ran on for good).
fn stop_listener(opts: &ViewOptions) -> Option<super::StopListener> {
    opts.watch.then(super::stop_listener)
}

/// Prints one frame of a view (JSON, or the table on a cleared terminal); with `--watch`, waits
/// the interval or until `stop` fires. Whether to show another frame.
async fn show(
    opts: &ViewOptions,
    doc: &serde_json::Value,
    table: &str,
    stop: &mut Option<super::StopListener>,
) -> anyhow::Result<bool> {
    if opts.json {
        println!(
            "{}",
            if opts.watch { doc.to_string() } else { serde_json::to_string_pretty(doc)? }
        );
    } else {
        clear_if_terminal();
        print!("{table}");
    }
    let Some(stop) = stop else { return Ok(false) };
    tokio::select! {
        _ = tokio::time::sleep(opts.interval) => Ok(true),
        _ = stop => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_missing_values_as_dashes() {
        let row = QueueRow {
            kind: "chapter".into(),
            waiting: 3,
            in_flight: 2,
            redelivered: 1,
            dead_lettered: 0,
            oldest_waiting_secs: Some(75.0),
            workers: 2,
            completed: 9,
            steps_per_min: None,
        };
        let t = queue_table(&[row]);
        let line = t.lines().nth(1).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols, ["chapter", "3", "2", "1", "0", "1.2m", "2", "-"]);
        assert!(worker_table(&[]).contains("(no workers)"));
    }
}
