//! The simulated model and its HTTP server: deterministic, schema-valid answers for demos,
//! tests and benchmarks, labelled as simulated wherever they end up.
//!
//! # Layout
//! - [`model`]: the model called in process (the built-in `sim` provider of the binary).
//! - [`server`]: an OpenAI- and Anthropic-shaped HTTP server around it, with latency, fault
//!   injection, a context window and counters (`scriptorium sim-server`).
//! - [`tokens`]: how the simulated model and server count tokens: a stand-in for a tokenizer,
//!   never the client's estimate.
//!
//! The answers themselves are part of each agent kind's contract
//! (`scriptorium_contracts::sim`).
#![warn(missing_docs, unreachable_pub)]

pub mod model;
pub mod server;
pub mod tokens;

pub use model::{SimModel, SimSettings};
