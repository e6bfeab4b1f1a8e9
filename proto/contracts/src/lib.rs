//! The contract of every agent kind, one file per kind.
#![warn(missing_docs, unreachable_pub)]

pub mod prose;
