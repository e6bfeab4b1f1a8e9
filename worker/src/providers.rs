//! Model providers and routes: the simulated model, OpenAI-compatible servers and Anthropic.
//!
//! A route is `provider/model` (the model part may itself contain `/`, as OpenRouter's do).
//! [`Models::call_route`] makes one call on one route: it waits for the provider's rate limits,
//! retries transient failures inside the provider, and records tokens, latency, retries and
//! cost. [`Models::call_json`] tries a task's routes in order until one answers with a readable
//! JSON object, sending one repair request per route when an answer cannot be read.
//!
//! # Layout
//! - `http`: the shared retry loop (timeouts, backoff with jitter, `Retry-After`).
//! - `openai`, `anthropic`: the two wire protocols.
//! - `limits`: requests and tokens per minute, per provider.
//! - [`sim`]: the simulated model.

mod anthropic;
pub mod dialect;
mod http;
mod limits;
mod openai;
pub mod sim;

use crate::extract;
use crate::redact::redact;
use scriptorium_proto::kind;
use scriptorium_proto::v1::AgentKind;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use anthropic::{ANTHROPIC_VERSION, Anthropic};
pub use openai::{AGENT_HEADER, OpenAiCompat};

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
}

/// Why a model call failed. Every message is redacted before it leaves [`Models`].
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
    /// The provider's configuration breaks a rule.
    #[error("{0}")]
    InvalidConfig(String),
    /// The server answered with a status that is not retried.
    #[error("provider '{provider}' rejected {route}: HTTP {status}: {message}")]
    Rejected {
        /// Provider name.
        provider: String,
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
    /// The server answered that the request does not fit its context window (read from the
    /// status and the error body's fields, never from its message text).
    #[error(
        "provider '{provider}' rejected {route}: the request exceeds the context window: {message}"
    )]
    ContextExceeded {
        /// Provider name.
        provider: String,
        /// The route.
        route: String,
        /// The prompt's tokens as the server counted them, when it says.
        prompt_tokens: Option<u64>,
        /// The server's context window, when it says.
        window: Option<u64>,
        /// Server's message, redacted.
        message: String,
    },
}

impl ModelError {
    /// The same error with every text field passed through [`redact`].
    pub fn redacted(self) -> Self {
        match self {
            ModelError::UnknownProvider(p, known) => {
                ModelError::UnknownProvider(redact(&p), redact(&known))
            }
            ModelError::MissingKey { provider, var } => {
                ModelError::MissingKey { provider: redact(&provider), var }
            }
            ModelError::InvalidConfig(m) => ModelError::InvalidConfig(redact(&m)),
            ModelError::Rejected { provider, route, status, message } => ModelError::Rejected {
                provider: redact(&provider),
                route: redact(&route),
                status,
                message: redact(&message),
            },
            ModelError::Exhausted { route, attempts, last } => {
                ModelError::Exhausted { route: redact(&route), attempts, last: redact(&last) }
            }
            ModelError::BadAnswer { route, message } => {
                ModelError::BadAnswer { route: redact(&route), message: redact(&message) }
            }
            ModelError::ContextExceeded { provider, route, prompt_tokens, window, message } => {
                ModelError::ContextExceeded {
                    provider: redact(&provider),
                    route: redact(&route),
                    prompt_tokens,
                    window,
                    message: redact(&message),
                }
            }
        }
    }
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
    /// Anthropic's Messages API.
    Anthropic,
    /// The built-in simulated model.
    Sim,
}

impl Protocol {
    /// The official base URL, used when a provider's `base_url` is empty.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Protocol::Openai => "https://api.openai.com/v1",
            Protocol::Anthropic => "https://api.anthropic.com/v1",
            Protocol::Sim => "",
        }
    }
}

/// How an OpenAI-compatible server is asked for JSON; a server that refuses one mode is asked
/// with the next, and the provider remembers the mode that worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// `response_format` with a JSON schema named after the agent kind.
    #[default]
    JsonSchema,
    /// `response_format` `{"type": "json_object"}`.
    JsonObject,
    /// No `response_format`: the prompt asks for JSON and the answer is extracted.
    Text,
}

/// Prices of a model, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Dollars per million prompt tokens.
    pub input: f64,
    /// Dollars per million completion tokens.
    pub output: f64,
}

impl Price {
    /// Cost of a call with these token counts.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input + completion_tokens as f64 * self.output) / 1e6
    }
}

/// One configured provider (`[models.providers.NAME]`). Keys never live here: `key_env` names
/// the environment variable (or `.env` entry) that holds the key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Base URL, up to and including `/v1` (empty: the protocol's official URL).
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
    /// Retries of a retryable failure (timeouts, connection errors, 429, 5xx).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff between retries in milliseconds; it doubles per retry, with jitter.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Longest backoff between retries, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Longest `Retry-After` obeyed, in seconds (longer ones are cut to this).
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_secs: u64,
    /// Requests per minute this process sends to the provider (0: no limit).
    #[serde(default)]
    pub requests_per_minute: u32,
    /// Tokens per minute (prompt estimate plus `max_tokens`) this process sends (0: no limit).
    #[serde(default)]
    pub tokens_per_minute: u32,
    /// Context window of the provider's models in tokens (prompt and answer together), when
    /// known: every prompt is assembled to fit it.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Largest answer the provider's models give, in tokens (`max_tokens` never exceeds it).
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Without `context_window`, ask the server for its window once: llama.cpp's `GET /props`
    /// (`default_generation_settings.n_ctx`), else vLLM's `GET /v1/models` (`max_model_len`).
    #[serde(default)]
    pub discover_context_window: bool,
    /// The first structured-output mode tried (OpenAI-compatible servers).
    #[serde(default)]
    pub structured_output: StructuredOutput,
    /// Prices per model name.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Price of the models not listed in `prices`.
    #[serde(default)]
    pub price: Option<Price>,
}

fn default_timeout() -> u64 {
    300
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    500
}

fn default_max_backoff_ms() -> u64 {
    20_000
}

fn default_max_retry_after() -> u64 {
    60
}

impl ProviderConfig {
    /// A provider of `protocol` with default settings.
    pub fn new(protocol: Protocol, base_url: &str, key_env: &str, default_model: &str) -> Self {
        ProviderConfig {
            protocol,
            base_url: base_url.into(),
            key_env: key_env.into(),
            default_model: default_model.into(),
            timeout_secs: default_timeout(),
            max_retries: default_retries(),
            backoff_ms: default_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            max_retry_after_secs: default_max_retry_after(),
            requests_per_minute: 0,
            tokens_per_minute: 0,
            context_window: None,
            max_output_tokens: None,
            discover_context_window: false,
            structured_output: StructuredOutput::default(),
            prices: BTreeMap::new(),
            price: None,
        }
    }

    fn openai(base_url: &str, key_env: &str, default_model: &str) -> Self {
        Self::new(Protocol::Openai, base_url, key_env, default_model)
    }

    /// The base URL to call: the configured one or the protocol's official one.
    pub fn effective_base_url(&self) -> &str {
        let url = self.base_url.trim();
        if url.is_empty() { self.protocol.default_base_url() } else { url }
    }

    /// The price of `model`: its own, else the provider's default.
    pub fn price_of(&self, model: &str) -> Option<Price> {
        self.prices.get(model).copied().or(self.price)
    }

    /// Checks every setting of provider `name`; the error names the field and the rule.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let field = |f: &str| format!("models.providers.{name}.{f}");
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "models.providers.{name:?}: a provider name uses only letters, digits, - and _"
            ));
        }
        if self.protocol != Protocol::Sim {
            let url = self.effective_base_url();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "{}: must start with http:// or https:// (got {url:?})",
                    field("base_url")
                ));
            }
        }
        let env_name = !self.key_env.is_empty()
            && !self.key_env.starts_with(|c: char| c.is_ascii_digit())
            && self.key_env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !self.key_env.is_empty() && !env_name {
            // Never echo the value: it may be a key pasted in the wrong place.
            return Err(format!(
                "{}: must name an environment variable (letters, digits, _), never hold a key",
                field("key_env")
            ));
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(format!(
                "{}: must be between 1 and 3600 (got {})",
                field("timeout_secs"),
                self.timeout_secs
            ));
        }
        if self.max_retries > 20 {
            return Err(format!(
                "{}: must be at most 20 (got {})",
                field("max_retries"),
                self.max_retries
            ));
        }
        if self.backoff_ms > self.max_backoff_ms || self.max_backoff_ms > 600_000 {
            return Err(format!(
                "{}: must be at most max_backoff_ms, itself at most 600000 (got {} and {})",
                field("backoff_ms"),
                self.backoff_ms,
                self.max_backoff_ms
            ));
        }
        if self.max_retry_after_secs > 3600 {
            return Err(format!(
                "{}: must be at most 3600 (got {})",
                field("max_retry_after_secs"),
                self.max_retry_after_secs
            ));
        }
        if let Some(w) = self.context_window
            && !(256..=10_000_000).contains(&w)
        {
            return Err(format!(
                "{}: must be between 256 and 10000000 tokens when set (got {w})",
                field("context_window")
            ));
        }
        if self.max_output_tokens == Some(0) {
            return Err(format!("{}: must be at least 1 when set", field("max_output_tokens")));
        }
        if let (Some(w), Some(o)) = (self.context_window, self.max_output_tokens)
            && o >= w
        {
            return Err(format!(
                "{}: must be below context_window ({o} >= {w})",
                field("max_output_tokens")
            ));
        }
        let bad_price = |p: &Price| {
            !(p.input.is_finite() && p.output.is_finite() && p.input >= 0.0 && p.output >= 0.0)
        };
        if let Some((model, _)) = self.prices.iter().find(|(_, p)| bad_price(p)) {
            return Err(format!(
                "{}: input and output must be dollars per million tokens, 0 or more",
                field(&format!("prices.{model}"))
            ));
        }
        if self.price.as_ref().is_some_and(bad_price) {
            return Err(format!(
                "{}: input and output must be dollars per million tokens, 0 or more",
                field("price")
            ));
        }
        Ok(())
    }
}

/// The providers known without a config file.
///
/// Base URLs of `openai`, `anthropic` and the local servers follow the conventional variables
/// (`OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL`, `OLLAMA_BASE_URL`, ...). Prices are list prices at
/// the time of writing; set `prices` in the config file to keep them current.
pub fn builtin_providers() -> BTreeMap<String, ProviderConfig> {
    let env_or = |var: &str, default: &str| {
        std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.into())
    };
    let price = |input, output| Price { input, output };
    let mut m = BTreeMap::new();
    m.insert("sim".into(), ProviderConfig::new(Protocol::Sim, "", "", "default"));
    let mut openai = ProviderConfig::openai(
        &env_or("OPENAI_BASE_URL", Protocol::Openai.default_base_url()),
        "OPENAI_API_KEY",
        "gpt-4o-mini",
    );
    openai.prices = [
        ("gpt-4o-mini".to_string(), price(0.15, 0.6)),
        ("gpt-4o".to_string(), price(2.5, 10.0)),
        ("gpt-4.1-mini".to_string(), price(0.4, 1.6)),
        ("gpt-4.1".to_string(), price(2.0, 8.0)),
    ]
    .into_iter()
    .collect();
    m.insert("openai".into(), openai);
    let mut anthropic = ProviderConfig::new(
        Protocol::Anthropic,
        &env_or("ANTHROPIC_BASE_URL", Protocol::Anthropic.default_base_url()),
        "ANTHROPIC_API_KEY",
        "claude-3-5-haiku-latest",
    );
    anthropic.prices = [
        ("claude-3-5-haiku-latest".to_string(), price(0.8, 4.0)),
        ("claude-sonnet-4-0".to_string(), price(3.0, 15.0)),
    ]
    .into_iter()
    .collect();
    m.insert("anthropic".into(), anthropic);
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
    // Ollama's OpenAI endpoint cuts an over-long prompt silently instead of refusing it, and
    // reports no window: assume its default (4096 below 24 GiB of VRAM) unless configured.
    let mut ollama =
        ProviderConfig::openai(&env_or("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1"), "", "");
    ollama.context_window = Some(4096);
    m.insert("ollama".into(), ollama);
    let mut llamacpp =
        ProviderConfig::openai(&env_or("LLAMACPP_BASE_URL", "http://127.0.0.1:8080/v1"), "", "");
    llamacpp.discover_context_window = true;
    m.insert("llamacpp".into(), llamacpp);
    let mut vllm =
        ProviderConfig::openai(&env_or("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"), "", "");
    vllm.discover_context_window = true;
    m.insert("vllm".into(), vllm);
    m
}

/// Model settings of a worker (`[models]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Providers by name, added to (or replacing) the built-in ones.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The simulated model.
    pub sim: SimConfig,
}

impl ModelsConfig {
    /// Checks every configured provider and the simulated model; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in &self.providers {
            p.validate(name)?;
        }
        if !(0.0..=1.0).contains(&self.sim.bad_rate) {
            return Err(format!(
                "models.sim.bad_rate: must be between 0 and 1 (got {})",
                self.sim.bad_rate
            ));
        }
        Ok(())
    }
}

enum Backend {
    Sim(SimConfig),
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
    /// What went wrong, redacted.
    pub error: String,
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

/// A readable JSON answer from one of a task's routes.
#[derive(Debug, Clone)]
pub struct JsonAnswer {
    /// The JSON object read from the answer.
    pub value: Value,
    /// The route that answered.
    pub route: String,
    /// Every call made for it, failed routes' and repairs' included (texts emptied).
    pub calls: Vec<ModelAnswer>,
}

/// No route gave a readable answer.
#[derive(Debug, Clone)]
pub struct JsonFailure {
    /// What went wrong on each route, redacted.
    pub error: String,
    /// The last route tried.
    pub route: String,
    /// Every call that got an answer (texts emptied).
    pub calls: Vec<ModelAnswer>,
}

impl Models {
    /// Builds the providers; a provider whose key is missing or whose settings break a rule
    /// fails only when a route uses it.
    pub fn new(config: &ModelsConfig) -> Models {
        let mut all = builtin_providers();
        all.extend(config.providers.clone());
        let providers = all
            .into_iter()
            .map(|(name, pc)| {
                let p = Self::provider(&name, pc, &config.sim).map_err(ModelError::redacted);
                if let Err(e) = &p {
                    if config.providers.contains_key(&name) {
                        tracing::warn!(provider = %name, error = %e, "provider unusable");
                    }
                }
                (name, p)
            })
            .collect();
        Models { providers: Arc::new(providers) }
    }

    fn provider(
        name: &str,
        pc: ProviderConfig,
        sim: &SimConfig,
    ) -> Result<Arc<Provider>, ModelError> {
        pc.validate(name).map_err(ModelError::InvalidConfig)?;
        let backend = match pc.protocol {
            Protocol::Sim => Backend::Sim(sim.clone()),
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

    /// The configured window, else the one the server reports (asked once per model).
    async fn configured_limits(provider: &Provider, r: &Route) -> RouteLimits {
        let max_output = provider.config.max_output_tokens;
        if let Some(window) = provider.config.context_window {
            return RouteLimits { window: Some(window), max_output };
        }
        let Backend::OpenAi(p) = &provider.backend else {
            return RouteLimits { window: None, max_output };
        };
        if !provider.config.discover_context_window {
            return RouteLimits { window: None, max_output };
        }
        let mut known = provider.windows.lock().await;
        let window = match known.get(&r.model) {
            Some(w) => *w,
            None => match p.discover_window(&r.model).await {
                Ok(w) => {
                    match w {
                        Some(w) => {
                            tracing::info!(route = %r, context_window = w, "context window reported by the server")
                        }
                        None => {
                            tracing::warn!(route = %r, "the server reports no context window; prompts are not condensed (set context_window)")
                        }
                    }
                    known.insert(r.model.clone(), w);
                    w
                }
                // Unreachable now: asked again by the next step.
                Err(()) => None,
            },
        };
        RouteLimits { window, max_output }
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
            Backend::Sim(cfg) => Ok(sim_call(cfg, req).await),
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

    /// Tries `routes` in order (`sim/default` when empty) until one answers with a readable JSON
    /// object: tolerant extraction first, then one repair request naming the parse error, then
    /// the next route. A truncated answer counts as unreadable; an empty one is never accepted.
    pub async fn call_json(
        &self,
        routes: &[String],
        req: &ModelRequest,
    ) -> Result<JsonAnswer, JsonFailure> {
        let default = ["sim/default".to_string()];
        let routes = if routes.is_empty() { &default[..] } else { routes };
        let mut calls = Vec::new();
        let mut errors = Vec::new();
        for route in routes {
            match self.call_json_route(route, req).await {
                Ok(mut a) => {
                    calls.append(&mut a.calls);
                    return Ok(JsonAnswer { value: a.value, route: a.route, calls });
                }
                Err(mut f) => {
                    calls.append(&mut f.calls);
                    errors.push(f.error);
                }
            }
        }
        Err(JsonFailure {
            error: redact(&errors.join("; ")),
            route: routes.last().cloned().unwrap_or_default(),
            calls,
        })
    }

    /// One route's readable JSON answer: the request, then one repair request if the answer
    /// cannot be read. A request that did not fit the server's context (a context-exceeded
    /// error, or an answer cut off before its `max_tokens` because the window filled up) gets
    /// no repair: the failure carries a [`ContextHint`] so the caller can send a smaller one.
    pub async fn call_json_route(
        &self,
        route: &str,
        req: &ModelRequest,
    ) -> Result<JsonAnswer, RouteFailure> {
        let estimated_prompt = estimate_tokens(&req.system) + estimate_tokens(&req.user);
        let fail = |error: String, context, calls| RouteFailure { error, context, calls };
        let mut answer = match self.call_route(route, req).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(route = %route, error = %e, "route failed");
                let context = match &e {
                    ModelError::ContextExceeded { prompt_tokens, window, .. } => {
                        Some(ContextHint {
                            window: *window,
                            server_prompt: *prompt_tokens,
                            estimated_prompt,
                        })
                    }
                    _ => None,
                };
                return Err(fail(e.to_string(), context, Vec::new()));
            }
        };
        let answered = answer.route.clone();
        let read = readable(&answer);
        answer.text.clear();
        let mut calls = vec![answer];
        let parse_error = match read {
            Ok(value) => return Ok(JsonAnswer { value, route: answered, calls }),
            Err(e) => e,
        };
        tracing::warn!(route = %answered, error = %parse_error, "unreadable answer, asking for a repair");
        let mut repair = req.clone();
        repair.user = format!(
            "{}\n\nYour previous answer could not be read: {parse_error}. Answer again with \
             only the JSON object, complete and no longer than needed.",
            req.user
        );
        // The request keeps its size: the longer prompt is paid for by the answer's room.
        let added = estimate_tokens(&repair.user).saturating_sub(estimate_tokens(&req.user));
        repair.max_tokens = req.max_tokens.saturating_sub(added as u32).max(1);
        match self.call_route(route, &repair).await {
            Ok(mut a) => {
                let read = readable(&a);
                a.text.clear();
                let full = context_full(&a, repair.max_tokens, estimated_prompt);
                calls.push(a);
                match (read, full) {
                    (Ok(value), _) => Ok(JsonAnswer { value, route: answered, calls }),
                    (Err(_), Some((hint, error))) => {
                        tracing::warn!(route = %answered, window = ?hint.window, "answers cut off by the context window");
                        Err(fail(format!("{answered}: {error}"), Some(hint), calls))
                    }
                    (Err(e), None) => Err(fail(
                        format!("{answered}: unreadable answer after repair: {e}"),
                        None,
                        calls,
                    )),
                }
            }
            Err(e) => Err(fail(e.to_string(), None, calls)),
        }
    }
}

/// Whether `answer` stopped before its `max_tokens` with `finish_reason` "length": the
/// server's context filled up (llama.cpp without context shift does this). Read from the
/// answer's reported usage, never from text; the hint's window is what the usage adds up to.
fn context_full(
    answer: &ModelAnswer,
    max_tokens: u32,
    estimated_prompt: u64,
) -> Option<(ContextHint, String)> {
    if !answer.truncated || answer.estimated || answer.completion_tokens >= u64::from(max_tokens) {
        return None;
    }
    let window = answer.prompt_tokens + answer.completion_tokens + 1;
    let hint = ContextHint {
        window: Some(window),
        server_prompt: Some(answer.prompt_tokens),
        estimated_prompt,
    };
    let error = format!(
        "the answer filled the server's context ({} prompt and {} answer tokens) before its max_tokens ({max_tokens})",
        answer.prompt_tokens, answer.completion_tokens
    );
    Some((hint, error))
}

/// The JSON object of an answer, or why there is none.
fn readable(answer: &ModelAnswer) -> Result<Value, String> {
    if answer.truncated {
        return Err("the answer was cut off at the token limit (finish_reason \"length\")".into());
    }
    extract::json_object(&answer.text).map_err(|e| e.to_string())
}

/// Conservative token estimate without a tokenizer (see [`crate::budget`]).
pub fn estimate_tokens(text: &str) -> u64 {
    crate::budget::estimate_tokens(text)
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
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<ModelsConfig, String> {
        let cfg: ModelsConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn provider_config_reads_limits_prices_and_rejects_unknown_fields() {
        let cfg = parse(
            r#"
            [providers.cheap]
            protocol = "openai"
            base_url = "http://127.0.0.1:9/v1"
            key_env = "CHEAP_KEY"
            default_model = "small"
            timeout_secs = 20
            max_retries = 2
            requests_per_minute = 60
            tokens_per_minute = 100000
            context_window = 32768
            structured_output = "json_object"
            prices = { "small" = { input = 0.15, output = 0.6 } }
            price = { input = 1.0, output = 2.0 }
            "#,
        )
        .unwrap();
        let p = &cfg.providers["cheap"];
        assert_eq!((p.timeout_secs, p.max_retries, p.requests_per_minute), (20, 2, 60));
        assert_eq!(p.structured_output, StructuredOutput::JsonObject);
        assert_eq!(p.price_of("small"), Some(Price { input: 0.15, output: 0.6 }));
        assert_eq!(p.price_of("other"), Some(Price { input: 1.0, output: 2.0 }));
        let cost = p.price_of("small").unwrap().cost(1_000_000, 500_000);
        assert!((cost - 0.45).abs() < 1e-9, "{cost}");
        assert!(parse("[providers.x]\nprotocol = \"openai\"\napi_key = \"sk-x\"\n").is_err());
    }

    #[test]
    fn validate_names_the_field_and_never_echoes_a_key() {
        let err = parse("[providers.x]\nprotocol = \"openai\"\nkey_env = \"sk-abcdefghijkl\"\n")
            .unwrap_err();
        assert!(err.contains("models.providers.x.key_env"), "{err}");
        assert!(!err.contains("abcdefghijkl"), "{err}");
        let err = parse("[providers.x]\nprotocol = \"openai\"\ntimeout_secs = 0\n").unwrap_err();
        assert!(err.contains("models.providers.x.timeout_secs"), "{err}");
        let err =
            parse("[providers.x]\nprotocol = \"anthropic\"\nbase_url = \"ftp://h\"\n").unwrap_err();
        assert!(err.contains("models.providers.x.base_url"), "{err}");
        let err =
            parse("[providers.x]\nprotocol = \"openai\"\nprice = { input = -1.0, output = 0.0 }\n")
                .unwrap_err();
        assert!(err.contains("models.providers.x.price"), "{err}");
        // An empty base URL means the protocol's official one.
        parse("[providers.x]\nprotocol = \"anthropic\"\nkey_env = \"X_KEY\"\n").unwrap();
    }

    #[test]
    fn builtin_providers_include_openai_and_anthropic_with_their_key_variables() {
        let b = builtin_providers();
        assert_eq!(b["openai"].key_env, "OPENAI_API_KEY");
        assert_eq!(b["anthropic"].key_env, "ANTHROPIC_API_KEY");
        assert_eq!(b["anthropic"].protocol, Protocol::Anthropic);
        for (name, p) in &b {
            p.validate(name).unwrap();
        }
    }

    #[tokio::test]
    async fn sim_route_answers_and_records_the_route() {
        let models = Models::new(&ModelsConfig::default());
        let req = ModelRequest {
            kind: AgentKind::Characters,
            system: "s".into(),
            user: "- Characters: 2".into(),
            temperature: 0.5,
            top_p: 1.0,
            max_tokens: 100,
            seed: 1,
        };
        let a = models.call_json(&[], &req).await.unwrap();
        assert_eq!(a.route, "sim/default");
        assert_eq!(a.value["characters"].as_array().unwrap().len(), 2);
        assert_eq!(a.calls.len(), 1);
        assert!(a.calls[0].prompt_tokens > 0);
        let missing = models.call_route("nope/x", &req).await.unwrap_err();
        assert!(matches!(missing, ModelError::UnknownProvider(..)), "{missing}");
    }
}
