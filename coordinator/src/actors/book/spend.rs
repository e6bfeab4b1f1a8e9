//! What a book spends: each attempt's expected cost reserved against the brief's `budget_usd`
//! before it is dispatched, every attempt's usage counted once (accepted, rejected, failed or
//! ignored), attempts no longer wanted cancelled, and the cache lease of a result that will not
//! be used released.
//!
//! # The reservation
//! An attempt is expected to cost, at the dearest priced route among the step's routes (primary
//! and fallbacks), `prompt` tokens in and `completion` tokens out, where
//! - `prompt` = the token estimate ([`scriptorium_contracts::tokens`], the one the worker plans
//!   prompts with) of the encoded size of the step's brief and context, plus
//!   [`PROMPT_OVERHEAD_TOKENS`] for the system prompt, the template and the answer schema;
//! - `completion` = the step's `max_tokens`: a call never answers more.
//!
//! A step whose routes have no known price reserves nothing (its cost is still counted when its
//! result arrives). The worker may make more than one call for an attempt (a chapter in parts, a
//! repair of broken JSON, a fallback route): then the attempt may cost more than it reserved.
//!
//! # The cap
//! A step is dispatched only when what is spent, plus the reservations of the running attempts,
//! plus its own reservation stays within the budget; otherwise it waits (pending) for running
//! attempts to finish, which free their reservation and usually cost less. The book fails when it
//! has spent more than its budget, or when a ready step does not fit while nothing runs that
//! could free any. A timed-out attempt is cancelled (announced to the workers) and its reservation
//! freed; if it finishes anyway, its usage is counted when its result arrives. So the spend passes
//! the budget only by what attempts cost beyond their reservation, or by a cancelled attempt that
//! finished anyway: about one step's reservation.

use super::BookState;
use crate::record::{self, StepStatus};
use ractor::ActorProcessingErr;
use scriptorium_common::cache;
use scriptorium_contracts::tokens;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::v1::{StepResult, StepTask};

/// Tokens assumed for the system prompt, the template and the answer schema around a step's
/// brief and context (the built-in templates with their schemas run 600 to 1,200 tokens).
pub(super) const PROMPT_OVERHEAD_TOKENS: u64 = 1_500;

/// The expected cost of `task` at `prices` (see the module documentation); 0 when none of its
/// routes has a known price.
pub(super) fn estimate(task: &StepTask, prices: &crate::config::RoutePrices) -> f64 {
    let bytes = task.brief.as_ref().map_or(0, |b| b.encoded_len())
        + task.context.as_ref().map_or(0, |c| c.encoded_len());
    let prompt = tokens::estimate_bytes(bytes) + PROMPT_OVERHEAD_TOKENS;
    let completion = u64::from(task.sampling.as_ref().map_or(0, |s| s.max_tokens));
    task.routes
        .iter()
        .filter_map(|r| prices.price_of(r))
        .map(|p| p.cost(prompt, completion))
        .fold(0.0, f64::max)
}

impl BookState {
    fn budget(&self) -> Option<f64> {
        let b = self.rec.brief.budget_usd;
        (b > 0.0).then_some(b)
    }

    /// Spent plus the reservations of the running attempts of steps other than `except`.
    fn committed(&self, except: &str) -> f64 {
        let reserved: f64 = self
            .rec
            .steps
            .iter()
            .filter(|(id, s)| s.status == StepStatus::Running && id.as_str() != except)
            .map(|(_, s)| s.reserved_usd)
            .sum();
        self.rec.usage.cost_usd + reserved
    }

    /// Reserves the expected cost of the next attempt of `step_id` and returns `true` when it
    /// fits the budget; otherwise the step waits, pending, and `false`.
    pub(super) fn reserve(&mut self, step_id: &str) -> bool {
        if !self.rec.steps.contains_key(step_id) {
            return false;
        }
        let Some(budget) = self.budget() else { return true };
        let need = self.task(step_id).map_or(0.0, |t| estimate(&t, &self.env.cfg.prices));
        let committed = self.committed(step_id);
        let Some(s) = self.rec.steps.get_mut(step_id) else { return false };
        if committed + need > budget {
            s.status = StepStatus::Pending;
            s.reserved_usd = 0.0;
            tracing::info!(book_id = %self.rec.id, step = %step_id, need, committed, budget, "step waits for budget");
            return false;
        }
        s.reserved_usd = need;
        true
    }

    /// Counts the usage of `r`'s attempt (once) and frees its reservation.
    pub(super) fn charge(&mut self, r: &StepResult) {
        record::charge(&mut self.rec, r);
    }

    /// Why the book must stop because it spent more than its budget.
    pub(super) fn overspent(&self) -> Option<String> {
        let budget = self.budget()?;
        let spent = self.rec.usage.cost_usd;
        (spent > budget).then(|| format!("budget exceeded: spent ${spent:.4} of ${budget:.4}"))
    }

    /// Why the book must stop because a ready step waits for budget and no attempt runs that
    /// could free any.
    pub(super) fn starved(&self) -> Option<String> {
        let budget = self.budget()?;
        if self.rec.state.is_final()
            || self.rec.state.is_held()
            || self.rec.steps.values().any(|s| s.status == StepStatus::Running)
        {
            return None;
        }
        let waiting = self.rec.plan.steps.iter().find(|p| {
            self.rec.steps.get(&p.id).is_some_and(|s| s.status == StepStatus::Pending)
                && p.deps
                    .iter()
                    .all(|d| self.rec.steps.get(d).is_some_and(|s| s.status == StepStatus::Done))
        })?;
        let need = self.task(&waiting.id).map_or(0.0, |t| estimate(&t, &self.env.cfg.prices));
        let spent = self.rec.usage.cost_usd;
        Some(format!(
            "budget exceeded: step {} needs an estimated ${need:.4} with ${spent:.4} of ${budget:.4} spent",
            waiting.id
        ))
    }

    /// Announces that attempt `attempt` of `step_id` is no longer wanted and frees its
    /// reservation (best effort: a worker that misses it finishes, and its usage is counted).
    pub(super) async fn cancel(&mut self, step_id: &str, attempt: u32) {
        if let Some(s) = self.rec.steps.get_mut(step_id)
            && s.attempt == attempt
        {
            s.reserved_usd = 0.0;
        }
        if let Err(e) = self.env.bus.announce_cancel(&self.rec.id, step_id, attempt).await {
            tracing::debug!(book_id = %self.rec.id, step = %step_id, attempt, error = %e, "cancellation not announced");
        }
    }

    /// Cancels every running attempt (the book stops).
    pub(super) async fn cancel_running(&mut self) {
        let running: Vec<(String, u32)> = self
            .rec
            .steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Running)
            .map(|(id, s)| (id.clone(), s.attempt))
            .collect();
        for (id, attempt) in running {
            self.cancel(&id, attempt).await;
        }
    }

    /// Ends the cache lease a result was computed under, when its answer will not be stored.
    pub(super) async fn release_lease(&self, r: &StepResult) {
        if !r.cache_key.is_empty() && !r.cache_hit {
            cache::release_lease(&self.env.bus, &r.cache_key).await;
        }
    }

    /// A result that changes nothing (a duplicate, a late or superseded attempt, a finished
    /// book): its usage is counted, its lease released so that peers waiting on it go on at
    /// once, and the book stops if that spent its budget.
    pub(super) async fn on_ignored(&mut self, r: &StepResult) -> Result<(), ActorProcessingErr> {
        self.rec.ignored_results += 1;
        self.charge(r);
        self.release_lease(r).await;
        if !self.rec.state.is_final()
            && let Some(reason) = self.overspent()
        {
            return self.finish(crate::record::Status::Failed, Some(reason)).await;
        }
        self.store()
    }
}
