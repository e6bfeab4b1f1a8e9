//! Retention of finished books: what `coordinator.keep_finished_hours` lets go.
//!
//! The coordinator sweeps at start and every [`SWEEP_EVERY`]: a book that ended longer ago
//! than the setting loses its outputs, steps, plan and header from the buckets (its files in
//! the output directory stay). Only headers are read to decide.

use crate::record;
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::{Bus, clock, names};
use std::time::Duration;

/// How often the coordinator sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Deletes every book that ended more than `keep` before `now_ms`; returns how many.
pub async fn sweep(bus: &Bus, keep: Duration, now_ms: i64) -> Result<usize, record::LoadError> {
    let cutoff = now_ms - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let mut deleted = 0;
    for key in bus.kv_keys(Bucket::Books).await? {
        if !names::valid_id(&key) {
            continue;
        }
        let header = match record::load_header(bus, &key).await {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::warn!(book_id = %key, error = %e, "book not swept: record unreadable");
                continue;
            }
        };
        if !header.state.is_final() || header.finished_ms <= 0 || header.finished_ms > cutoff {
            continue;
        }
        // The plan names the keys to delete.
        if let Some(rec) = record::load_record(bus, &key).await? {
            record::delete(bus, &rec).await?;
            deleted += 1;
            tracing::info!(book_id = %key, "finished book past retention deleted from the buckets");
        }
    }
    Ok(deleted)
}

/// Sweeps now and every [`SWEEP_EVERY`] while the coordinator runs (`hours` 0: never).
pub(crate) async fn run(bus: Bus, hours: u64) {
    if hours == 0 {
        return;
    }
    let keep = Duration::from_secs(hours.saturating_mul(3600));
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        match sweep(&bus, keep, clock::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(books = n, "retention sweep"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; tried again later"),
        }
    }
}
