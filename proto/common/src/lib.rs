//! Plumbing shared by the coordinator and the worker.
#![warn(missing_docs, unreachable_pub)]

pub mod nats_server;
