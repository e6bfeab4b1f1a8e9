//! Provider settings (`[models]`): the built-in providers, each provider's protocol, limits,
//! prices and structured-output mode, and the rules they must pass at start-up.

use super::dialect::Dialect;
use serde::Deserialize;
use std::collections::BTreeMap;

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
    /// Mistakes the first attempt of a chapter makes on purpose (rename, resurrect, repeat,
    /// meta, short); re-asks make none.
    pub mistakes: Vec<scriptorium_contracts::mistake::Mistake>,
    /// Share (0..1) of chapters whose first attempt makes one of `mistakes` (default 1).
    pub mistake_rate: Option<f64>,
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
    /// A GGUF model held by the worker process itself (`models` names the files).
    Embedded,
}

impl Protocol {
    /// The official base URL, used when a provider's `base_url` is empty.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Protocol::Openai => "https://api.openai.com/v1",
            Protocol::Anthropic => "https://api.anthropic.com/v1",
            Protocol::Sim | Protocol::Embedded => "",
        }
    }
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
    /// The first structured-output dialect tried (see [`Dialect`]); unset, the order of the
    /// provider's server family (probed once for local servers). A server that refuses one is
    /// asked in the next, down to plain text.
    #[serde(default)]
    pub structured_output: Option<Dialect>,
    /// Prices per model name.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Price of the models not listed in `prices`.
    #[serde(default)]
    pub price: Option<Price>,
    /// `embedded` only: the GGUF file of each model name (`models = { smollm2 = "x.gguf" }`);
    /// a route may also name a file directly (`embedded//path/to/x.gguf`).
    #[serde(default)]
    pub models: BTreeMap<String, std::path::PathBuf>,
    /// `embedded` only: threads the model computes on (unset: one per physical core).
    #[serde(default)]
    pub threads: Option<usize>,
    /// `embedded` only: re-quantise the weights to Q8_0 at load, the copy cached beside the
    /// file so the conversion happens once (default true; Q4 formats decode slowly on CPU).
    #[serde(default = "yes")]
    pub requantize: bool,
}

fn yes() -> bool {
    true
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
            structured_output: None,
            prices: BTreeMap::new(),
            price: None,
            models: BTreeMap::new(),
            threads: None,
            requantize: true,
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
        let embedded = self.protocol == Protocol::Embedded;
        if !embedded && (!self.models.is_empty() || self.threads.is_some()) {
            return Err(format!(
                "{}: models and threads belong to providers of protocol \"embedded\"",
                field("models")
            ));
        }
        if let Some(t) = self.threads
            && !(1..=256).contains(&t)
        {
            return Err(format!("{}: must be between 1 and 256 (got {t})", field("threads")));
        }
        if !matches!(self.protocol, Protocol::Sim | Protocol::Embedded) {
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
    // A GGUF file in the worker process: `embedded//path/to/model.gguf` with no config file.
    m.insert("embedded".into(), ProviderConfig::new(Protocol::Embedded, "", "", ""));
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
        if let Some(rate) = self.sim.mistake_rate.filter(|r| !(0.0..=1.0).contains(r)) {
            return Err(format!("models.sim.mistake_rate: must be between 0 and 1 (got {rate})"));
        }
        Ok(())
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
        assert_eq!(p.structured_output, Some(Dialect::JsonObject));
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
}
