//! The seam between a worker and a model that runs in its own process (the binary's built-in
//! simulated model): the worker calls it, the sim crate implements it, neither knows the other.

use scriptorium_proto::v1::AgentKind;
use std::future::Future;
use std::pin::Pin;

/// One request to an in-process model.
#[derive(Debug, Clone, Copy)]
pub struct LocalRequest<'a> {
    /// The agent kind asking.
    pub kind: AgentKind,
    /// System message.
    pub system: &'a str,
    /// User message.
    pub user: &'a str,
    /// The book's seed.
    pub seed: u64,
    /// The JSON Schema the answer must match (a model that decodes under a grammar holds
    /// to it).
    pub schema: Option<&'a serde_json::Value>,
    /// Upper bound of completion tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus sampling.
    pub top_p: f32,
}

/// An in-process model's answer with its token counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalAnswer {
    /// The answer text.
    pub text: String,
    /// Prompt tokens, as the model counts them.
    pub prompt_tokens: u64,
    /// Completion tokens, as the model counts them.
    pub completion_tokens: u64,
    /// The answer stopped at its token limit.
    pub truncated: bool,
    /// Why the model could not answer, if it could not.
    pub error: Option<String>,
}

/// A model that answers in this process.
pub trait LocalModel: Send + Sync + std::fmt::Debug {
    /// Answers `req`.
    fn answer<'a>(
        &'a self,
        req: LocalRequest<'a>,
    ) -> Pin<Box<dyn Future<Output = LocalAnswer> + Send + 'a>>;

    /// Whether this model answers for `model`, the model part of a route (an in-process model
    /// holds one model; the simulated one answers for any name).
    fn serves(&self, _model: &str) -> bool {
        true
    }

    /// The exact tokens of a prompt of `system` and `user` as the model reads it (chat template
    /// included), when the model can count them.
    fn count_prompt(&self, _system: &str, _user: &str) -> Option<u64> {
        None
    }

    /// The context window the model is planned against, when it has one.
    fn context_window(&self) -> Option<u64> {
        None
    }

    /// The model's decoding rate so far, tokens per second, when it decodes.
    fn tokens_per_second(&self) -> Option<f64> {
        None
    }
}
