//! Plumbing shared by the coordinator and the worker, which do not depend on each other.
//!
//! # Layout
//! - [`ops`]: the `/metrics`, `/healthz`, `/readyz` endpoints, the process-wide Prometheus
//!   recorder, the stop signal and the host name heartbeats report.
//! - [`model`]: the interface of a model that runs in process (the simulated one).
//! - [`cache`]: the response cache's settings, request key and stored record, and the writes
//!   the coordinator makes when it accepts or rejects a cached answer.
#![warn(missing_docs, unreachable_pub)]

pub mod cache;
pub mod model;
pub mod ops;
