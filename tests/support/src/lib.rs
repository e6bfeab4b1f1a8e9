//! What tests of several crates share, and nothing a product binary may depend on: every crate
//! takes this one as a dev-dependency only (`cargo tree -e normal` of any workspace crate does
//! not show it).
//!
//! # Layout
//! - [`nats_server`]: the nats-server launcher (one server or a cluster on loopback, with
//!   JetStream and temporary stores, killed on drop).
#![warn(missing_docs, unreachable_pub)]

pub mod nats_server;
