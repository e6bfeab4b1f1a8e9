//! Model providers and routes: the simulated model, OpenAI-compatible servers and Anthropic.
//!
//! A route is `provider/model` (the model part may itself contain `/`, as OpenRouter's do).
//! [`Models::call_route`] makes one call on one route: it waits for the provider's rate limits,
//! retries transient failures inside the provider, and records tokens, latency, retries and
//! cost. [`first_route`] tries a task's routes in order until one answers with a readable
//! JSON object, sending one repair request per route when an answer cannot be read.
//!
//! # Layout
//! - `error`: [`ModelError`] and its typed cause for the coordinator.
//! - `json`: one route's readable JSON answer (extraction, one repair, context cut-offs).
//! - `routes`: [`first_route`], the route loop (primary, then fallbacks).
//! - `http`: the shared retry loop (timeouts, backoff with jitter, `Retry-After`).
//! - `openai`, `anthropic`: the two wire protocols.
//! - `limits`: requests and tokens per minute, per provider.
//! - [`LocalModel`]: a model in this process (the binary links the simulated one in, and the
//!   embedded GGUF model when one is loaded).

mod anthropic;
pub mod dialect;
mod error;
mod http;
mod json;
mod limits;
mod openai;
mod routes;

use crate::redact::redact;
use scriptorium_contracts::tokens::estimate_tokens;
use scriptorium_proto::kind;
use scriptorium_proto::v1::{AgentKind, Failure};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use anthropic::{ANTHROPIC_VERSION, Anthropic};
pub use error::ModelError;
pub use openai::{AGENT_HEADER, OpenAiCompat};
pub use routes::first_route;

/// One request to a model.
#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    /// Which agent asks (the simulated model answers by kind).
    pub kind: AgentKind,
    /// System message.
    pub system: String,
    /// User message.
    pub user: String,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus sampling.
    pub top_p: f32,
    /// Upper bound of completion tokens.
    pub max_tokens: u32,
    /// The book's seed (another for each re-ask): part of the request, so two seeds give two
    /// books.
    pub seed: u64,
    /// The JSON Schema the answer must match (sent in the provider's structured-output
    /// dialect); `None` asks for any JSON object.
    pub schema: Option<serde_json::Value>,
}

/// A model's answer to one call, with what the call cost.
#[derive(Debug, Clone, Default)]
pub struct ModelAnswer {
    /// The text of the answer.
    pub text: String,
    /// The route that answered (`provider/model`, the model resolved).
    pub route: String,
    /// Prompt tokens as reported (estimated when the server reports none).
    pub prompt_tokens: u64,
    /// Completion tokens as reported (or estimated).
    pub completion_tokens: u64,
    /// Retries made before this answer.
    pub retries: u32,
    /// Time from the first attempt to the answer, rate-limit waits excluded.
    pub latency_ms: u64,
    /// Cost in US dollars from the provider's prices (0 without prices).
    pub cost_usd: f64,
    /// The answer stopped at the token limit (`finish_reason` "length"): it is unreadable.
    pub truncated: bool,
    /// The server reported no usage: the token counts are estimates.
    pub estimated: bool,
    /// The structured-output dialect the request was asked in (empty for in-process models).
    pub dialect: String,
}

/// A route, `provider/model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Provider name.
    pub provider: String,
    /// Model name at that provider.
    pub model: String,
}

impl Route {
    /// Parses `provider/model`; a bare provider name means its default model.
    pub fn parse(s: &str) -> Route {
        match s.split_once('/') {
            Some((p, m)) => Route { provider: p.trim().into(), model: m.trim().into() },
            None => Route { provider: s.trim().into(), model: String::new() },
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

mod config;

pub use config::{ModelsConfig, Price, Protocol, ProviderConfig, SimConfig, builtin_providers};

pub use scriptorium_common::model::{LocalAnswer, LocalModel, LocalRequest};

/// The window a local server that reports none is planned against (llama-cpp-python reports
/// no window anywhere; 4,096 is the smallest common one).
pub const LOCAL_DEFAULT_WINDOW: u64 = 4096;

/// Whether a provider serves from this machine or a private network: a built-in local
/// provider (`llamacpp`, `ollama`, `vllm`) or a loopback, private or `.local` host.
pub fn is_local(provider: &str, base_url: &str) -> bool {
    if matches!(provider, "llamacpp" | "ollama" | "vllm") {
        return true;
    }
    let host = base_url.split("://").nth(1).unwrap_or(base_url);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(['/', ':']).next().unwrap_or(""),
    };
    if host == "localhost" || host.ends_with(".local") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_unspecified(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Err(_) => false,
    }
}

enum Backend {
    Local(Arc<dyn LocalModel>),
    OpenAi(OpenAiCompat),
    Anthropic(Anthropic),
}

struct Provider {
    config: ProviderConfig,
    backend: Backend,
    limits: limits::Limits,
    /// Context windows the server reported, by model (asked once per model).
    windows: tokio::sync::Mutex<BTreeMap<String, Option<u64>>>,
    /// Windows smaller than planned that context-exceeded answers revealed, by model.
    learned: std::sync::Mutex<BTreeMap<String, u64>>,
}

/// The limits of one route: its context window and its output limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteLimits {
    /// Context window in tokens (configured, or reported by the server), if known.
    pub window: Option<u64>,
    /// Largest answer in tokens, if limited.
    pub max_output: Option<u64>,
}

/// What a context-exceeded answer told about the server's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextHint {
    /// The server's window, in its own tokens.
    pub window: Option<u64>,
    /// The prompt in the server's tokens.
    pub server_prompt: Option<u64>,
    /// The prompt by our estimate.
    pub estimated_prompt: u64,
}

/// One route gave no readable answer.
#[derive(Debug, Clone)]
pub struct RouteFailure {
    /// What went wrong, typed, its message redacted.
    pub failure: Failure,
    /// Set when the request did not fit the server's context: a smaller request may succeed.
    pub context: Option<ContextHint>,
    /// Every call that got an answer (texts emptied).
    pub calls: Vec<ModelAnswer>,
}

/// Every provider of a worker, ready to call. Clones share connections and rate limits.
#[derive(Clone)]
pub struct Models {
    providers: Arc<BTreeMap<String, Result<Arc<Provider>, ModelError>>>,
}

/// A readable JSON answer from a route.
#[derive(Debug, Clone)]
pub struct JsonAnswer {
    /// The JSON object read from the answer.
    pub value: Value,
    /// The route that answered.
    pub route: String,
    /// Every call made for it, its repair's included (texts emptied).
    pub calls: Vec<ModelAnswer>,
}

impl Models {
    /// Builds the providers; a provider whose key is missing or whose settings break a rule
    /// fails only when a route uses it.
    pub fn new(config: &ModelsConfig) -> Models {
        Self::with_local(config, None)
    }

    /// Builds the providers, `local` answering for providers of the `sim` protocol.
    pub fn with_local(config: &ModelsConfig, local: Option<Arc<dyn LocalModel>>) -> Models {
        Self::with_locals(config, local, None)
    }

    /// Builds the providers, `local` answering for providers of the `sim` protocol and
    /// `embedded` (the GGUF model this process holds) for those of the `embedded` protocol.
    pub fn with_locals(
        config: &ModelsConfig,
        local: Option<Arc<dyn LocalModel>>,
        embedded: Option<Arc<dyn LocalModel>>,
    ) -> Models {
        let mut all = builtin_providers();
        all.extend(config.providers.clone());
        let providers = all
            .into_iter()
            .map(|(name, pc)| {
                let model = match pc.protocol {
                    Protocol::Embedded => embedded.as_ref(),
                    _ => local.as_ref(),
                };
                let p = Self::provider(&name, pc, model).map_err(ModelError::redacted);
                if let Err(e) = &p
                    && config.providers.contains_key(&name)
                {
                    tracing::warn!(provider = %name, error = %e, "provider unusable");
                }
                (name, p)
            })
            .collect();
        Models { providers: Arc::new(providers) }
    }

    fn provider(
        name: &str,
        pc: ProviderConfig,
        local: Option<&Arc<dyn LocalModel>>,
    ) -> Result<Arc<Provider>, ModelError> {
        pc.validate(name).map_err(ModelError::InvalidConfig)?;
        let backend = match pc.protocol {
            Protocol::Sim => Backend::Local(local.cloned().ok_or_else(|| {
                ModelError::InvalidConfig(format!(
                    "models.providers.{name}: the simulated model is not linked into this process"
                ))
            })?),
            Protocol::Embedded => Backend::Local(local.cloned().ok_or_else(|| {
                ModelError::InvalidConfig(format!(
                    "models.providers.{name}: no embedded model is loaded in this process (a \
                     worker loads the one its [models.providers.{name}] names at start; `write` \
                     the one its route names)"
                ))
            })?),
            Protocol::Openai => Backend::OpenAi(OpenAiCompat::new(name, &pc)?),
            Protocol::Anthropic => Backend::Anthropic(Anthropic::new(name, &pc)?),
        };
        let limits = limits::Limits::new(pc.requests_per_minute, pc.tokens_per_minute);
        Ok(Arc::new(Provider {
            config: pc,
            backend,
            limits,
            windows: Default::default(),
            learned: Default::default(),
        }))
    }

    /// The context window and output limit of `route`: configured, else (with
    /// `discover_context_window`) asked of the server once per model and remembered.
    pub async fn route_limits(&self, route: &str) -> RouteLimits {
        let mut r = Route::parse(route);
        let Some(Ok(provider)) = self.providers.get(&r.provider) else {
            return RouteLimits::default();
        };
        if r.model.is_empty() {
            r.model = provider.config.default_model.clone();
        }
        let max_output = provider.config.max_output_tokens;
        let learned =
            provider.learned.lock().unwrap_or_else(|p| p.into_inner()).get(&r.model).copied();
        let limits = Self::configured_limits(provider, &r).await;
        let window = match (limits.window, learned) {
            (Some(w), Some(l)) => Some(w.min(l)),
            (w, l) => w.or(l),
        };
        RouteLimits { window, max_output }
    }

    /// Remembers that `route`'s server has a context window of `window` tokens, smaller than
    /// planned: later requests on the route are planned against it.
    pub fn learn_window(&self, route: &str, window: u64) {
        let mut r = Route::parse(route);
        let Some(Ok(provider)) = self.providers.get(&r.provider) else { return };
        if r.model.is_empty() {
            r.model = provider.config.default_model.clone();
        }
        let mut learned = provider.learned.lock().unwrap_or_else(|p| p.into_inner());
        let entry = learned.entry(r.model).or_insert(window);
        *entry = (*entry).min(window);
    }

    /// The configured window, else the one the server reports (asked once per model); a
    /// local server (loopback or private address, or a built-in local provider) that reports
    /// none is planned against [`LOCAL_DEFAULT_WINDOW`], said once in the log.
    async fn configured_limits(provider: &Provider, r: &Route) -> RouteLimits {
        let max_output = provider.config.max_output_tokens;
        if let Some(window) = provider.config.context_window {
            return RouteLimits { window: Some(window), max_output };
        }
        if let Backend::Local(m) = &provider.backend {
            return RouteLimits { window: m.context_window(), max_output };
        }
        let Backend::OpenAi(p) = &provider.backend else {
            return RouteLimits { window: None, max_output };
        };
        let local = is_local(&r.provider, provider.config.effective_base_url());
        if !provider.config.discover_context_window && !local {
            return RouteLimits { window: None, max_output };
        }
        let mut known = provider.windows.lock().await;
        let window = match known.get(&r.model) {
            Some(w) => *w,
            None => match p.discover_window(&r.model).await {
                Ok(w) => {
                    let w = match w {
                        Some(w) => {
                            tracing::info!(route = %r, context_window = w, "context window reported by the server");
                            Some(w)
                        }
                        None if local => {
                            tracing::warn!(route = %r, context_window = LOCAL_DEFAULT_WINDOW, "the local server reports no context window; planning prompts for a conservative one (set context_window to change it)");
                            Some(LOCAL_DEFAULT_WINDOW)
                        }
                        None => {
                            tracing::warn!(route = %r, "the server reports no context window; prompts are not condensed (set context_window)");
                            None
                        }
                    };
                    known.insert(r.model.clone(), w);
                    w
                }
                // Unreachable now: asked again by the next step.
                Err(()) => None,
            },
        };
        RouteLimits { window, max_output }
    }

    /// The exact tokens of a prompt of `system` and `user` on `route`, when its model is in
    /// this process and counts with its own tokenizer (`None`: estimate).
    pub fn count_prompt(&self, route: &str, system: &str, user: &str) -> Option<u64> {
        let r = Route::parse(route);
        match self.providers.get(&r.provider) {
            Some(Ok(p)) => match &p.backend {
                Backend::Local(m) if m.serves(&r.model) => m.count_prompt(system, user),
                _ => None,
            },
            _ => None,
        }
    }

    /// Decoding rates of the in-process models that decode (the embedded one), by provider.
    pub fn tokens_per_second(&self) -> Vec<(String, f64)> {
        self.providers
            .iter()
            .filter_map(|(name, p)| match p.as_ref().ok().map(|p| &p.backend) {
                Some(Backend::Local(m)) => m.tokens_per_second().map(|t| (name.clone(), t)),
                _ => None,
            })
            .collect()
    }

    /// Whether `route` names a configured provider (used to validate briefs early).
    pub fn knows(&self, route: &str) -> bool {
        self.providers.contains_key(&Route::parse(route).provider)
    }

    /// Calls one route once (with the provider's retries), after its rate limits allow it.
    pub async fn call_route(
        &self,
        route: &str,
        req: &ModelRequest,
    ) -> Result<ModelAnswer, ModelError> {
        self.call_route_inner(route, req).await.map_err(ModelError::redacted)
    }

    async fn call_route_inner(
        &self,
        route: &str,
        req: &ModelRequest,
    ) -> Result<ModelAnswer, ModelError> {
        let mut route = Route::parse(route);
        let provider = match self.providers.get(&route.provider) {
            Some(Ok(p)) => p.clone(),
            Some(Err(e)) => return Err(e.clone()),
            None => {
                let known = self.providers.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(ModelError::UnknownProvider(route.provider, known));
            }
        };
        if route.model.is_empty() {
            route.model = provider.config.default_model.clone();
        }
        let estimate =
            estimate_tokens(&req.system) + estimate_tokens(&req.user) + u64::from(req.max_tokens);
        let waited = provider.limits.acquire(estimate).await;
        if waited >= Duration::from_millis(1) {
            tracing::debug!(route = %route, waited_ms = waited.as_millis() as u64, "rate limited");
        }
        let started = Instant::now();
        let result = match &provider.backend {
            Backend::Local(m) if !m.serves(&route.model) => Err(ModelError::InvalidConfig(
                format!("{route}: the model this process holds does not serve {:?}", route.model),
            )),
            Backend::Local(m) => {
                let a = m
                    .answer(LocalRequest {
                        kind: req.kind,
                        system: &req.system,
                        user: &req.user,
                        seed: req.seed,
                        schema: req.schema.as_ref(),
                        max_tokens: req.max_tokens,
                        temperature: req.temperature,
                        top_p: req.top_p,
                    })
                    .await;
                match a.error {
                    Some(message) => {
                        Err(ModelError::BadAnswer { route: route.to_string(), message })
                    }
                    None => Ok(ModelAnswer {
                        text: a.text,
                        prompt_tokens: a.prompt_tokens,
                        completion_tokens: a.completion_tokens,
                        truncated: a.truncated,
                        ..Default::default()
                    }),
                }
            }
            Backend::OpenAi(p) => p.call(&route.model, req).await,
            Backend::Anthropic(p) => p.call(&route.model, req).await,
        };
        let mut answer = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(
                    route = %route,
                    latency_ms = started.elapsed().as_millis() as u64,
                    error = %redact(&e.to_string()),
                    "model call failed"
                );
                return Err(e);
            }
        };
        if answer.prompt_tokens == 0 && answer.completion_tokens == 0 {
            // Servers that report no usage (some local ones) still cost time and limits.
            answer.prompt_tokens = estimate_tokens(&req.system) + estimate_tokens(&req.user);
            answer.completion_tokens = estimate_tokens(&answer.text);
            answer.estimated = true;
        }
        answer.route = route.to_string();
        answer.latency_ms = started.elapsed().as_millis() as u64;
        answer.cost_usd = provider
            .config
            .price_of(&route.model)
            .map(|p| p.cost(answer.prompt_tokens, answer.completion_tokens))
            .unwrap_or(0.0);
        tracing::info!(
            route = %answer.route,
            kind = kind::name(req.kind),
            prompt_tokens = answer.prompt_tokens,
            completion_tokens = answer.completion_tokens,
            latency_ms = answer.latency_ms,
            retries = answer.retries,
            cost_usd = answer.cost_usd,
            truncated = answer.truncated,
            "model call"
        );
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_servers_are_told_from_cloud_ones() {
        assert!(is_local("openai", "http://127.0.0.1:8080/v1"));
        assert!(is_local("x", "http://localhost:11434/v1"));
        assert!(is_local("x", "http://192.168.1.20:8000/v1"));
        assert!(is_local("x", "http://[::1]:8000/v1"));
        assert!(is_local("llamacpp", "https://models.example.com/v1"));
        assert!(!is_local("openai", "https://api.openai.com/v1"));
        assert!(!is_local("openrouter", "https://openrouter.ai/api/v1"));
    }

    #[tokio::test]
    async fn sim_route_answers_and_records_the_route() {
        let sim: Arc<dyn LocalModel> = Arc::new(scriptorium_sim::SimModel::default());
        let models = Models::with_local(&ModelsConfig::default(), Some(sim));
        let req = ModelRequest {
            kind: AgentKind::Characters,
            system: "s".into(),
            user: "- Characters: 2".into(),
            temperature: 0.5,
            top_p: 1.0,
            max_tokens: 100,
            seed: 1,
            schema: None,
        };
        let a = models.call_json_route("sim/default", &req).await.unwrap();
        assert_eq!(a.route, "sim/default");
        assert_eq!(a.value["characters"].as_array().unwrap().len(), 2);
        assert_eq!(a.calls.len(), 1);
        assert!(a.calls[0].prompt_tokens > 0);
        let missing = models.call_route("nope/x", &req).await.unwrap_err();
        assert!(matches!(missing, ModelError::UnknownProvider(..)), "{missing}");
        assert_eq!(missing.failure().cause(), scriptorium_proto::v1::FailureCause::UnknownProvider);
        // Without an in-process model the sim provider says why it cannot answer.
        let unlinked = Models::new(&ModelsConfig::default());
        let err = unlinked.call_route("sim/default", &req).await.unwrap_err().to_string();
        assert!(err.contains("not linked into this process"), "{err}");
    }
}
