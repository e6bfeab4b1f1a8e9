//! The agent kinds, one file each: the answer type, its validation rules, the example shape a
//! prompt shows and (feature `sim`) the simulated answer. Adding a field is one file.

pub mod chapter;
pub mod characters;
pub mod concept;
pub mod edit;
pub mod outline;
pub mod review;
pub mod world;

pub use chapter::{Alias, ChapterText, Continuity, ProseScene, Whereabouts};
pub use characters::{Cast, Character};
pub use concept::Concept;
pub use outline::{Outline, OutlineChapter, SCENES, Scene};
pub use review::{Review, Scores};
pub use world::World;

use crate::rules::Ctx;
use scriptorium_proto::v1::AgentKind;
use serde_json::Value;

/// An example of the JSON object a `kind` request answers with (the shape of its schema).
pub fn example(kind: AgentKind, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> String {
    match kind {
        AgentKind::Chapter => chapter::example(ctx, scenes).to_string(),
        _ => crate::schema::example(&schema(kind, ctx, scenes)).to_string(),
    }
}

/// The fields a `kind` request answers with, as a prompt lists them (see [`crate::schema::guide`]).
pub fn guide(kind: AgentKind, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> String {
    crate::schema::guide(&schema(kind, ctx, scenes))
}

/// The JSON Schema of a `kind` request in the book `ctx` describes; `scenes` are the scene
/// numbers a request for part of a chapter writes, or an edit revises.
pub fn schema(kind: AgentKind, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
    match kind {
        AgentKind::Concept => concept::schema(ctx),
        AgentKind::Characters => characters::schema(ctx),
        AgentKind::World => world::schema(ctx),
        AgentKind::Outline => outline::schema(ctx),
        AgentKind::Chapter | AgentKind::Unspecified => chapter::schema(ctx, scenes),
        AgentKind::Edit => edit::schema(ctx, scenes),
        AgentKind::Review => review::schema(),
    }
}
