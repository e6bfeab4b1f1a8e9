//! The simulated model and its HTTP server.
#![warn(missing_docs, unreachable_pub)]
