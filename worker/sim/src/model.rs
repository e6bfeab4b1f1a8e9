//! The simulated model called in process: the simulated answer of a request's kind after a
//! configured latency, deliberately wrong at a configured rate, and making the configured
//! chapter mistakes on first attempts.

use crate::tokens::count_tokens;
use scriptorium_common::model::{LocalAnswer, LocalModel, LocalRequest};
use scriptorium_contracts::mistake::Mistakes;
use scriptorium_contracts::sim::{self, Rng};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Settings of the in-process simulated model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimSettings {
    /// Fixed latency of each answer, in milliseconds.
    pub latency_ms: u64,
    /// Extra random latency up to this many milliseconds.
    pub jitter_ms: u64,
    /// Share (0..1) of answers that deliberately break a validation rule.
    pub bad_rate: f64,
    /// The mistakes first attempts of chapters make on purpose, and how often.
    pub mistakes: Mistakes,
}

/// The simulated model of one process.
#[derive(Debug, Clone, Default)]
pub struct SimModel {
    settings: SimSettings,
}

impl SimModel {
    /// A model with `settings`.
    pub fn new(settings: SimSettings) -> Self {
        Self { settings }
    }

    /// Answers `req` (deterministic per prompt and seed).
    pub async fn call(&self, req: LocalRequest<'_>) -> LocalAnswer {
        let cfg = &self.settings;
        let mut rng = Rng::from_parts(&[req.user.as_bytes(), &req.seed.to_le_bytes(), b"fault"]);
        let delay =
            cfg.latency_ms + if cfg.jitter_ms > 0 { rng.next_u64() % cfg.jitter_ms } else { 0 };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let bad = cfg.bad_rate > 0.0 && rng.chance(cfg.bad_rate);
        let text = sim::answer_mistaken(req.kind, req.user, req.seed, bad, cfg.mistakes);
        LocalAnswer {
            prompt_tokens: count_tokens(req.system) + count_tokens(req.user),
            completion_tokens: count_tokens(&text),
            text,
            ..Default::default()
        }
    }
}

impl LocalModel for SimModel {
    fn answer<'a>(
        &'a self,
        req: LocalRequest<'a>,
    ) -> Pin<Box<dyn Future<Output = LocalAnswer> + Send + 'a>> {
        Box::pin(self.call(req))
    }
}
