//! Model providers and routes: the simulated model and OpenAI-compatible servers.
//!
//! A route is `provider/model` (the model part may itself contain `/`, as OpenRouter's do).
//! [`Models::call`] tries each route of a task in order, with retries inside each provider.

mod openai;
pub mod sim;

use scriptorium_proto::v1::AgentKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use openai::OpenAiCompat;

/// One request to a model.
#[derive(Debug, Clone)]
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
    /// The book's seed: part of the request, so two seeds give two books.
    pub seed: u64,
}

/// A model's answer.
#[derive(Debug, Clone, Default)]
pub struct ModelAnswer {
    /// The text of the answer.
    pub text: String,
    /// Prompt tokens as reported (or estimated for the simulated model).
    pub prompt_tokens: u64,
    /// Completion tokens as reported (or estimated).
    pub completion_tokens: u64,
    /// Retries made before this answer.
    pub retries: u32,
}

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The route names a provider that is not configured.
    #[error("unknown provider '{0}' (configure it or use one of: {1})")]
    UnknownProvider(String, String),
    /// The provider's key variable is not set.
    #[error("provider '{provider}' needs the environment variable {var}")]
    MissingKey {
        /// Provider name.
        provider: String,
        /// Variable name.
        var: String,
    },
    /// The server answered with a status that is not retried.
    #[error("{route}: HTTP {status}: {message}")]
    Rejected {
        /// The route.
        route: String,
        /// HTTP status.
        status: u16,
        /// Server's message, redacted.
        message: String,
    },
    /// Retries were exhausted on a retryable failure.
    #[error("{route}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// The route.
        route: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The answer had no usable content.
    #[error("{route}: {message}")]
    BadAnswer {
        /// The route.
        route: String,
        /// What was wrong.
        message: String,
    },
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

/// Settings of the simulated model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Fixed latency of each answer, in milliseconds.
    pub latency_ms: u64,
    /// Extra random latency up to this many milliseconds.
    pub jitter_ms: u64,
    /// Share (0..1) of answers that deliberately break a validation rule.
    pub bad_rate: f64,
}

/// Wire protocol of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OpenAI-compatible chat completions.
    Openai,
    /// The built-in simulated model.
    Sim,
}

/// One configured provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Base URL, up to and including `/v1`.
    #[serde(default)]
    pub base_url: String,
    /// Name of the environment variable holding the key (empty: no key).
    #[serde(default)]
    pub key_env: String,
    /// Model used when a route names only the provider.
    #[serde(default)]
    pub default_model: String,
    /// Timeout of one HTTP request, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Retries of a retryable failure.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
}

fn default_timeout() -> u64 {
    300
}

fn default_retries() -> u32 {
    3
}

impl ProviderConfig {
    fn openai(base_url: &str, key_env: &str, default_model: &str) -> Self {
        ProviderConfig {
            protocol: Protocol::Openai,
            base_url: base_url.into(),
            key_env: key_env.into(),
            default_model: default_model.into(),
            timeout_secs: default_timeout(),
            max_retries: default_retries(),
        }
    }
}

/// The providers known without a config file.
pub fn builtin_providers() -> BTreeMap<String, ProviderConfig> {
    let env_or = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into());
    let mut m = BTreeMap::new();
    m.insert(
        "sim".into(),
        ProviderConfig { protocol: Protocol::Sim, ..ProviderConfig::openai("", "", "default") },
    );
    m.insert(
        "openai".into(),
        ProviderConfig::openai(
            &env_or("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            "OPENAI_API_KEY",
            "gpt-4o-mini",
        ),
    );
    m.insert(
        "openrouter".into(),
        ProviderConfig::openai("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", ""),
    );
    m.insert(
        "deepseek".into(),
        ProviderConfig::openai("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "deepseek-chat"),
    );
    m.insert(
        "mistral".into(),
        ProviderConfig::openai(
            "https://api.mistral.ai/v1",
            "MISTRAL_API_KEY",
            "mistral-small-latest",
        ),
    );
    m.insert(
        "ollama".into(),
        ProviderConfig::openai(&env_or("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1"), "", ""),
    );
    m.insert(
        "llamacpp".into(),
        ProviderConfig::openai(&env_or("LLAMACPP_BASE_URL", "http://127.0.0.1:8080/v1"), "", ""),
    );
    m.insert(
        "vllm".into(),
        ProviderConfig::openai(&env_or("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"), "", ""),
    );
    m
}

/// Model settings of a worker.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Providers by name, added to (or replacing) the built-in ones.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The simulated model.
    pub sim: SimConfig,
}

enum Provider {
    Sim(SimConfig),
    OpenAi(OpenAiCompat),
}

/// Every provider of a worker, ready to call.
#[derive(Clone)]
pub struct Models {
    providers: Arc<BTreeMap<String, Result<Arc<Provider>, ModelError>>>,
}

impl Models {
    /// Builds the providers; a provider whose key is missing fails only when a route uses it.
    pub fn new(config: &ModelsConfig) -> Models {
        let mut all = builtin_providers();
        all.extend(config.providers.clone());
        let providers = all
            .into_iter()
            .map(|(name, pc)| {
                let p = match pc.protocol {
                    Protocol::Sim => Ok(Arc::new(Provider::Sim(config.sim.clone()))),
                    Protocol::Openai => {
                        OpenAiCompat::new(&name, &pc).map(|p| Arc::new(Provider::OpenAi(p)))
                    }
                };
                (name, p)
            })
            .collect();
        Models { providers: Arc::new(providers) }
    }

    /// Whether `route` names a configured provider (used to validate briefs early).
    pub fn knows(&self, route: &str) -> bool {
        self.providers.contains_key(&Route::parse(route).provider)
    }

    /// Calls one route.
    pub async fn call_route(
        &self,
        route: &str,
        req: &ModelRequest,
    ) -> Result<ModelAnswer, ModelError> {
        let route = Route::parse(route);
        let provider = match self.providers.get(&route.provider) {
            Some(Ok(p)) => p.clone(),
            Some(Err(e)) => return Err(e.clone()),
            None => {
                let known = self.providers.keys().cloned().collect::<Vec<_>>().join(", ");
                return Err(ModelError::UnknownProvider(route.provider, known));
            }
        };
        match provider.as_ref() {
            Provider::Sim(cfg) => Ok(sim_call(cfg, req).await),
            Provider::OpenAi(p) => p.call(&route.model, req).await,
        }
    }
}

/// Conservative token estimate without a tokenizer: one token per 3.5 bytes, rounded up.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64 * 2).div_ceil(7)
}

async fn sim_call(cfg: &SimConfig, req: &ModelRequest) -> ModelAnswer {
    let mut rng = sim::Rng::from_parts(&[req.user.as_bytes(), &req.seed.to_le_bytes(), b"fault"]);
    let delay = cfg.latency_ms + if cfg.jitter_ms > 0 { rng.next_u64() % cfg.jitter_ms } else { 0 };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let bad = cfg.bad_rate > 0.0 && rng.chance(cfg.bad_rate);
    let text = sim::answer(req.kind, &req.user, req.seed, bad);
    ModelAnswer {
        prompt_tokens: estimate_tokens(&req.system) + estimate_tokens(&req.user),
        completion_tokens: estimate_tokens(&text),
        text,
        retries: 0,
    }
}
