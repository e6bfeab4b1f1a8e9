//! What crosses the wire in Scriptorium, and the one boundary it crosses.
//!
//! # Layout
//! - [`v1`]: the protobuf messages (compiled from `proto/scriptorium/v1/*.proto` by prost).
//! - [`names`]: every subject, stream, consumer and bucket name, in one place.
//! - [`kind`]: helpers on [`v1::AgentKind`] (names, parsing), derived from the wire enum.
//! - [`failure`]: what a typed [`v1::Failure`] means (permanent or worth another attempt).
//! - [`transport`]: the transport boundary, with a NATS JetStream and an in-process implementation.
//! - [`clock`]: wall-clock helpers shared by both sides.
#![warn(missing_docs, unreachable_pub)]

pub mod clock;
pub mod failure;
pub mod kind;
pub mod names;
pub mod transport;

/// Protobuf messages of package `scriptorium.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/scriptorium.v1.rs"));
}

pub use prost;
pub use transport::{Acker, Bus, BusError, Cancel, Cancellations, Incoming, Pull, Source};
