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
}

/// A model that answers in this process.
pub trait LocalModel: Send + Sync + std::fmt::Debug {
    /// Answers `req`.
    fn answer<'a>(
        &'a self,
        req: LocalRequest<'a>,
    ) -> Pin<Box<dyn Future<Output = LocalAnswer> + Send + 'a>>;
}
