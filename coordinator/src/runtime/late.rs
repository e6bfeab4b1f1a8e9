//! Results whose book is not in flight (finished, never started here, or unknown): each is
//! counted as ignored, the cache lease it was computed under is released so waiting peers go
//! on at once, and its usage is added to its finished book's record (once per attempt). One
//! task handles them in order, so two late results of a book never overwrite each other's count.

use crate::Env;
use crate::actors::book::trust;
use crate::actors::coordinator::Late;
use crate::record;
use scriptorium_common::cache;
use scriptorium_proto::v1::StepResult;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

/// Handles late results until the coordinator actor is gone.
pub(super) async fn run(env: Arc<Env>, mut rx: mpsc::UnboundedReceiver<Late>) {
    while let Some(Late { result, reply }) = rx.recv().await {
        settle(&env, &result).await;
        let _ = reply.send(());
    }
}

async fn settle(env: &Env, r: &StepResult) {
    env.stats.ignored.fetch_add(1, Ordering::Relaxed);
    crate::metrics::result_ignored(r);
    tracing::debug!(book_id = %r.book_id, step = %r.step_id, attempt = r.attempt, "result for a book not in flight ignored");
    if !r.cache_key.is_empty() && !r.cache_hit {
        cache::release_lease(&env.bus, &r.cache_key).await;
    }
    match record::load_record(&env.bus, &r.book_id).await {
        // A finished book's attempts are all known: one never dispatched is forged or broken,
        // and costs the book nothing.
        Ok(Some(rec)) if let Some(reason) = trust::never_dispatched(&rec, r) => {
            trust::refuse(&env.bus, r, &reason).await;
        }
        Ok(Some(mut rec)) if rec.state.is_final() => {
            rec.ignored_results += 1;
            record::charge(&mut rec, r);
            if let Err(e) = record::store(&env.bus, &mut rec).await {
                tracing::warn!(book_id = %r.book_id, error = %e, "usage of a late result not stored");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(book_id = %r.book_id, error = %e, "usage of a late result not counted")
        }
    }
}
