//! The contract of every agent kind: what the model is asked for and what is accepted.
//!
//! # Layout
//! - [`kinds`]: one file per agent kind (concept, characters, world, outline, chapter, review,
//!   edit), each behind the [`Kind`] trait (answer type, request schema, validation rules,
//!   example shape, simulated answer, expected answer size, task type, how its work is split,
//!   the inputs it needs from the book), and [`REGISTRY`](kinds::REGISTRY), the one list of them
//!   that coordinator and worker ask instead of matching on kinds.
//! - [`ledger`]: the continuity ledger folded from the accepted chapters, and its rendering.
//! - [`mistake`]: the deliberate mistakes the simulated model makes on request.
//! - [`rules`]: the validation entry point (through the registry), [`Rejection`](rules::Rejection)
//!   and its context.
//! - [`schema`]: request schemas in the subset every structured-output dialect enforces.
//! - [`prose`]: judge-free checks on prose (length, repeats, leaks, names, continuity).
//! - [`facts`]: the `Facts:` block prompts carry and the simulated model reads.
//! - [`extract`]: tolerant extraction of one JSON object from a model's answer.
//! - [`task`]: the task types (creative, analytical, factual) that pick a step's sampling.
//! - [`tokens`]: the token estimate prompts are planned and steps reserved with.
//! - `sim` (feature `sim`): the deterministic generator behind the simulated answers.
#![warn(missing_docs, unreachable_pub)]

pub mod extract;
pub mod facts;
pub mod kinds;
pub mod ledger;
pub mod mistake;
pub mod prose;
pub mod rules;
pub mod schema;
#[cfg(feature = "sim")]
pub mod sim;
pub mod task;
pub mod tokens;

pub use kinds::*;
pub use ledger::Ledger;
pub use rules::{Ctx, Rejection, validate};
pub use task::TaskType;
