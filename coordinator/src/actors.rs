//! The coordinator's actors: the [`coordinator::Coordinator`] and one [`book::Book`] per book.

pub mod book;
pub mod coordinator;
