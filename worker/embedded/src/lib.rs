//! Scriptorium's embedded model: a GGUF model held by the worker process itself, every answer
//! decoded under its request's JSON Schema. No model server, no system packages.
//!
//! # Layout
//! - `gguf`: reading the file (formats without a kernel of their own re-quantised to Q8_0
//!   once, cached beside it), and the tokenizer rebuilt from the file's own metadata.
//! - `llama`: the forward pass, with a key and value cache that grows with the context and is
//!   kept for the next request's shared prefix.
//! - `matrix`: the Q8_0 and Q4_1 weight matrices and their vectorised products.
//! - `chat`: the chat template (the file's, recognised, or its family's).
//! - `schema`: a request's schema made safe for a small model (bounded whitespace and strings).
//! - `decode`: the one thread that runs the model, fed by a queue; the grammar mask, sampling.
//! - `metrics`: tokens and tokens per second.
//!
//! [`EmbeddedModel`] implements the worker's [`LocalModel`] seam: the worker calls it like
//! the simulated model, and neither crate knows the other.
//!
//! ```ignore
//! # async fn demo() -> anyhow::Result<()> {
//! use scriptorium_embedded::{EmbeddedModel, EmbeddedSettings};
//! let settings = EmbeddedSettings::new("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf");
//! let model = tokio::task::spawn_blocking(move || EmbeddedModel::load(settings)).await??;
//! println!("{} tokens of context", model.window());
//! # Ok(()) }
//! ```

#![cfg(feature = "model")]
#![warn(missing_docs, unreachable_pub)]

mod attention;
mod chat;
mod decode;
mod gguf;
pub mod llama;
mod matrix;
pub mod metrics;
mod schema;

use scriptorium_common::model::{LocalAnswer, LocalModel, LocalRequest};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

pub use chat::ChatTemplate;
pub use gguf::q8_cache_path;
pub use llama::{Llama, MAX_WINDOW};
pub use schema::prepare as prepare_schema;

/// How to load one embedded model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedSettings {
    /// The name routes give it (`embedded/<name>`).
    pub name: String,
    /// The GGUF file.
    pub path: PathBuf,
    /// Re-quantise weights in formats without a kernel of their own (Q8_0 and Q4_1 have
    /// one) to Q8_0: the converted file is written beside the original once and reused.
    pub requantize: bool,
    /// The context window planned against, at most the model's own (and 4,096).
    pub context_window: Option<u64>,
}

impl EmbeddedSettings {
    /// Settings for `path` under `name`: re-quantised, the largest window candle allows.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        EmbeddedSettings {
            name: name.into(),
            path: path.into(),
            requantize: true,
            context_window: None,
        }
    }
}

/// Why a model could not be loaded or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The file could not be read or is not a model this crate runs.
    #[error("embedded model {path}: {message}")]
    Load {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The model thread has stopped.
    #[error("the embedded model's thread has stopped")]
    Stopped,
}

/// A GGUF model loaded in this process, answering one request at a time on its own thread.
/// Clones share the model.
#[derive(Clone)]
pub struct EmbeddedModel {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    path: PathBuf,
    window: u64,
    template: ChatTemplate,
    tokenizer: tokenizers::Tokenizer,
    queue: std::sync::mpsc::Sender<decode::Job>,
    stats: Arc<decode::Stats>,
}

impl std::fmt::Debug for EmbeddedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedModel")
            .field("name", &self.inner.name)
            .field("path", &self.inner.path)
            .field("window", &self.inner.window)
            .finish()
    }
}

impl EmbeddedModel {
    /// Loads the model (blocking: seconds, and the one-time Q8_0 conversion) and starts its
    /// thread.
    pub fn load(settings: EmbeddedSettings) -> Result<EmbeddedModel, EmbeddedError> {
        let started = std::time::Instant::now();
        let loaded = gguf::load(&settings.path, settings.requantize, settings.context_window)
            .map_err(|e| EmbeddedError::Load {
                path: settings.path.display().to_string(),
                message: format!("{e:#}"),
            })?;
        let window = loaded.context_length;
        let tokenizer = loaded.tokenizer.clone();
        let template = loaded.template;
        let stats = Arc::new(decode::Stats::default());
        let queue = decode::start(loaded, stats.clone()).map_err(|e| EmbeddedError::Load {
            path: settings.path.display().to_string(),
            message: format!("{e:#}"),
        })?;
        tracing::info!(
            model = %settings.name,
            path = %settings.path.display(),
            window,
            load_ms = started.elapsed().as_millis() as u64,
            "embedded model loaded"
        );
        Ok(EmbeddedModel {
            inner: Arc::new(Inner {
                name: settings.name,
                path: settings.path,
                window,
                template,
                tokenizer,
                queue,
                stats,
            }),
        })
    }

    /// The context window requests are planned against, in the model's tokens.
    pub fn window(&self) -> u64 {
        self.inner.window
    }

    /// The name routes give the model.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Tokens of `system` and `user` as the model reads them, chat template included.
    pub fn count(&self, system: &str, user: &str) -> u64 {
        let prompt = self.inner.template.render(system, user);
        self.inner.tokenizer.encode(prompt, false).map_or(0, |e| e.len() as u64)
    }

    /// Completion tokens decoded so far and their average rate (tokens per second of decoding).
    pub fn tokens_per_second(&self) -> f64 {
        self.inner.stats.tokens_per_second()
    }

    /// Answers one request under its schema; waits in the model's queue first.
    pub async fn generate(
        &self,
        req: LocalRequest<'_>,
    ) -> Result<decode::Generated, EmbeddedError> {
        let prompt = self.inner.template.render(req.system, req.user);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = decode::Job {
            prompt,
            schema: req.schema.map(schema::prepare),
            max_tokens: req.max_tokens.max(1),
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed,
            sent: std::time::Instant::now(),
            reply,
        };
        self.inner.queue.send(job).map_err(|_| EmbeddedError::Stopped)?;
        answer.await.map_err(|_| EmbeddedError::Stopped)
    }
}

pub use decode::Generated;

impl LocalModel for EmbeddedModel {
    fn answer<'a>(
        &'a self,
        req: LocalRequest<'a>,
    ) -> Pin<Box<dyn Future<Output = LocalAnswer> + Send + 'a>> {
        Box::pin(async move {
            match self.generate(req).await {
                Ok(g) => LocalAnswer {
                    text: g.text,
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.completion_tokens,
                    truncated: g.truncated,
                    error: g.error,
                },
                Err(e) => LocalAnswer { error: Some(e.to_string()), ..Default::default() },
            }
        })
    }

    fn serves(&self, model: &str) -> bool {
        model.is_empty() || model == self.inner.name || Path::new(model) == self.inner.path
    }

    fn count_prompt(&self, system: &str, user: &str) -> Option<u64> {
        Some(self.count(system, user))
    }

    fn context_window(&self) -> Option<u64> {
        Some(self.inner.window)
    }

    fn tokens_per_second(&self) -> Option<f64> {
        Some(self.inner.stats.tokens_per_second())
    }
}
