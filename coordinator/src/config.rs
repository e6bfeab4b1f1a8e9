//! Coordinator settings: attempts, timeouts, model routes, sampling profiles and the prices of
//! the routes (for budgets).

use crate::brief::check_route;
use scriptorium_contracts::Kind;
use scriptorium_proto::kind;
use scriptorium_proto::v1::{AgentKind, BookBrief, Sampling};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Sampling settings of one task type.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingProfile {
    /// Temperature.
    pub temperature: f32,
    /// Nucleus sampling.
    pub top_p: f32,
    /// Completion token limit.
    pub max_tokens: u32,
}

/// Model routes: a default, one per agent kind, and fallback chains.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutesConfig {
    /// Route used when nothing more specific is set.
    pub default: String,
    /// Route per agent kind name.
    pub per_kind: BTreeMap<String, String>,
    /// Fallback routes for every kind, tried in order after the primary.
    pub fallbacks: Vec<String>,
    /// Fallback routes per agent kind, tried before the global ones.
    pub fallbacks_per_kind: BTreeMap<String, Vec<String>>,
}

impl Default for RoutesConfig {
    fn default() -> Self {
        Self {
            default: "sim/default".into(),
            per_kind: BTreeMap::new(),
            fallbacks: Vec::new(),
            fallbacks_per_kind: BTreeMap::new(),
        }
    }
}

/// Settings of the coordinator.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Where finished books are written.
    pub out_dir: PathBuf,
    /// Attempts per step (the first ask plus re-asks) before the book fails.
    pub max_attempts: u32,
    /// Attempts of a chapter's edit before its accepted draft stands instead (the draft passed
    /// every rule; a revision a model cannot make is not worth `max_attempts` answers).
    pub edit_attempts: u32,
    /// Edits of a book refused at every attempt after which its remaining edits are skipped,
    /// their drafts standing (a model that cannot revise is not paid to keep trying); 0: never.
    pub max_failed_edits: u32,
    /// Seconds without a result after which an attempt is superseded by a new one.
    pub step_timeout_secs: u64,
    /// Books in flight (running, waiting at a gate or paused) at most: the next submissions
    /// wait in the submit stream, priority books first, until one ends; 0: no limit.
    pub max_books_in_flight: usize,
    /// Admission by demand: normal books are started only while fewer than this many steps
    /// wait for an agent and results for the coordinator (a book started while the fleet has
    /// that much work waiting would only wait too, holding memory); up to
    /// `max_books_in_flight`. Priority books are not held by it. 0: admit up to the cap alone.
    pub admission_backlog: usize,
    /// Hours a finished book (done, failed or cancelled) is kept in the buckets after it ended;
    /// 0 (the default): kept until deleted by hand. The files written to `out_dir` are never
    /// touched.
    pub keep_finished_hours: u64,
    /// Model routes.
    pub routes: RoutesConfig,
    /// Sampling per task type, by name (creative, analytical, factual).
    pub sampling: BTreeMap<String, SamplingProfile>,
    /// Whether workers may answer from the response cache.
    pub cache: bool,
    /// Prices of the model routes, for the budget's reservations. Not read from `[coordinator]`:
    /// the binary fills it from the providers of `[models]`, the prices workers charge.
    #[serde(skip)]
    pub prices: RoutePrices,
}

/// Prices of a model, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RoutePrice {
    /// Dollars per million prompt tokens.
    pub input: f64,
    /// Dollars per million completion tokens.
    pub output: f64,
}

impl RoutePrice {
    /// Cost of a call with these token counts.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input + completion_tokens as f64 * self.output) / 1e6
    }
}

/// Prices of model routes (`provider/model`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutePrices {
    by_route: BTreeMap<String, RoutePrice>,
}

impl RoutePrices {
    /// Sets the price of `route`: `provider/model` for one model, `provider` for a route naming
    /// only the provider (its default model), `provider/*` for every model of the provider
    /// without a price of its own.
    pub fn set(&mut self, route: &str, price: RoutePrice) {
        self.by_route.insert(route.trim().to_string(), price);
    }

    /// The price of `route`, when known.
    pub fn price_of(&self, route: &str) -> Option<RoutePrice> {
        let route = route.trim();
        self.by_route.get(route).copied().or_else(|| {
            let provider = route.split_once('/').map_or(route, |(p, _)| p);
            self.by_route.get(&format!("{provider}/*")).copied()
        })
    }
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        let p = |temperature, top_p, max_tokens| SamplingProfile { temperature, top_p, max_tokens };
        Self {
            out_dir: PathBuf::from("books"),
            max_attempts: 5,
            edit_attempts: 2,
            max_failed_edits: 2,
            step_timeout_secs: 900,
            max_books_in_flight: 100,
            admission_backlog: 32,
            keep_finished_hours: 0,
            routes: RoutesConfig::default(),
            sampling: [
                ("creative".to_string(), p(0.9, 0.95, 4096)),
                ("analytical".to_string(), p(0.3, 0.9, 2048)),
                ("factual".to_string(), p(0.2, 0.9, 4096)),
            ]
            .into_iter()
            .collect(),
            cache: true,
            prices: RoutePrices::default(),
        }
    }
}

impl CoordinatorConfig {
    /// Checks every setting; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10).contains(&self.max_attempts) {
            return Err(format!(
                "coordinator.max_attempts: must be between 1 and 10 (got {})",
                self.max_attempts
            ));
        }
        if !(1..=10).contains(&self.edit_attempts) {
            return Err(format!(
                "coordinator.edit_attempts: must be between 1 and 10 (got {})",
                self.edit_attempts
            ));
        }
        if self.step_timeout_secs == 0 {
            return Err("coordinator.step_timeout_secs: must be at least 1".into());
        }
        let route =
            |field: String, r: &str| check_route(&field, r).map_err(|e| format!("coordinator.{e}"));
        route("routes.default".into(), &self.routes.default)?;
        for (k, r) in &self.routes.per_kind {
            if kind::parse_agent(k).is_none() {
                return Err(format!("coordinator.routes.per_kind.{k}: unknown agent kind"));
            }
            route(format!("routes.per_kind.{k}"), r)?;
        }
        for (i, r) in self.routes.fallbacks.iter().enumerate() {
            route(format!("routes.fallbacks[{i}]"), r)?;
        }
        for (name, p) in &self.sampling {
            if !["creative", "analytical", "factual"].contains(&name.as_str()) {
                return Err(format!(
                    "coordinator.sampling.{name}: unknown task type (creative, analytical, factual)"
                ));
            }
            if !(0.0..=2.0).contains(&p.temperature)
                || !(0.0..=1.0).contains(&p.top_p)
                || p.max_tokens == 0
            {
                return Err(format!(
                    "coordinator.sampling.{name}: temperature must be 0-2, top_p 0-1, max_tokens > 0"
                ));
            }
        }
        Ok(())
    }

    /// Routes for a step of `kind` in `brief`: primary first, then fallbacks, without repeats.
    pub fn routes_for(&self, kind: AgentKind, brief: &BookBrief) -> Vec<String> {
        let name = kind::name(kind);
        let primary = brief
            .models
            .get(name)
            .or_else(|| brief.models.get("default"))
            .or_else(|| self.routes.per_kind.get(name))
            .cloned()
            .unwrap_or_else(|| self.routes.default.clone());
        let mut out = vec![primary];
        let chain = brief
            .fallbacks
            .iter()
            .chain(self.routes.fallbacks_per_kind.get(name).into_iter().flatten())
            .chain(self.routes.fallbacks.iter());
        for r in chain {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }

    /// Sampling for a step of agent kind `spec` in `brief`: its task type's profile, with at
    /// least the room the kind needs for a whole answer.
    pub fn sampling_for(&self, spec: &dyn Kind, brief: &BookBrief) -> Sampling {
        let task = spec.task(&brief.category);
        let p = self.sampling.get(task.name()).copied().unwrap_or(SamplingProfile {
            temperature: 0.7,
            top_p: 0.9,
            max_tokens: 4096,
        });
        Sampling {
            profile: task.name().into(),
            temperature: p.temperature,
            top_p: p.top_p,
            max_tokens: p.max_tokens.max(spec.min_max_tokens(brief)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_contracts::kinds::agent;

    #[test]
    fn brief_routes_win_and_fallbacks_do_not_repeat() {
        let mut cfg = CoordinatorConfig::default();
        cfg.routes.per_kind.insert("review".into(), "openai/gpt-4o".into());
        cfg.routes.fallbacks = vec!["sim/default".into(), "ollama/llama3".into()];
        let mut brief = BookBrief::default();
        assert_eq!(
            cfg.routes_for(AgentKind::Review, &brief),
            ["openai/gpt-4o", "sim/default", "ollama/llama3"]
        );
        assert_eq!(cfg.routes_for(AgentKind::Chapter, &brief), ["sim/default", "ollama/llama3"]);
        brief.models.insert("chapter".into(), "deepseek/deepseek-chat".into());
        brief.fallbacks = vec!["ollama/llama3".into()];
        assert_eq!(
            cfg.routes_for(AgentKind::Chapter, &brief),
            ["deepseek/deepseek-chat", "ollama/llama3", "sim/default"]
        );
    }

    #[test]
    fn sampling_follows_task_type() {
        let cfg = CoordinatorConfig::default();
        let fiction =
            BookBrief { category: "fiction".into(), words_per_chapter: 3000, ..Default::default() };
        assert_eq!(
            cfg.sampling_for(agent(AgentKind::Chapter).unwrap(), &fiction).profile,
            "creative"
        );
        assert_eq!(cfg.sampling_for(agent(AgentKind::Chapter).unwrap(), &fiction).max_tokens, 6512);
        assert_eq!(
            cfg.sampling_for(agent(AgentKind::Review).unwrap(), &fiction).profile,
            "analytical"
        );
        let long = BookBrief { chapters: 20, ..fiction.clone() };
        assert_eq!(cfg.sampling_for(agent(AgentKind::Outline).unwrap(), &long).max_tokens, 8256);
        let business = BookBrief { category: "business".into(), ..Default::default() };
        assert_eq!(
            cfg.sampling_for(agent(AgentKind::Chapter).unwrap(), &business).profile,
            "factual"
        );
    }

    #[test]
    fn route_prices_fall_back_to_the_providers_default() {
        let mut prices = RoutePrices::default();
        let p = |input, output| RoutePrice { input, output };
        prices.set("openai/gpt-4o", p(2.5, 10.0));
        prices.set("openai", p(0.15, 0.6));
        prices.set("openai/*", p(1.0, 2.0));
        assert_eq!(prices.price_of("openai/gpt-4o"), Some(p(2.5, 10.0)));
        assert_eq!(prices.price_of("openai"), Some(p(0.15, 0.6)));
        assert_eq!(prices.price_of("openai/other"), Some(p(1.0, 2.0)));
        assert_eq!(prices.price_of("sim/default"), None);
        assert!((p(2.5, 10.0).cost(1_000_000, 100_000) - 3.5).abs() < 1e-9);
    }

    #[test]
    fn validate_names_the_field() {
        let mut cfg = CoordinatorConfig { max_attempts: 0, ..Default::default() };
        assert!(cfg.validate().unwrap_err().contains("max_attempts"));
        cfg.max_attempts = 3;
        cfg.edit_attempts = 11;
        assert!(cfg.validate().unwrap_err().contains("coordinator.edit_attempts"));
        cfg.edit_attempts = 2;
        cfg.routes.default = "nope".into();
        assert!(cfg.validate().unwrap_err().contains("routes.default"));
    }
}
