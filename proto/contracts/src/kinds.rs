//! The agent kinds: one file each, and [`REGISTRY`], the one list of them.
//!
//! Everything about a kind is in its file, behind the [`Kind`] trait: the answer type, the
//! request schema, the validation rules, the example a prompt shows, the simulated answer
//! (feature `sim`), the expected answer size, the task type that picks its sampling, how its work
//! is split into requests, and the inputs it needs from the book (what the coordinator sends in
//! the step's message and what validation reads). The coordinator and the worker ask the
//! registry; neither matches on kinds. Adding a kind is its file here, its prompt template
//! (`worker/prompts/<kind>.{system,user}.md`), its value in the wire enum and one line in
//! [`REGISTRY`]. Assembly is a kind of its own on the wire that no agent answers: the
//! coordinator does it (see [`lookup`]).

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

use crate::rules::{Ctx, Rejection};
use crate::task::TaskType;
use scriptorium_proto::kind;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde_json::Value;

/// Every agent kind, in plan order: one line a kind.
pub static REGISTRY: &[&dyn Kind] = &[
    &concept::ConceptKind,
    &outline::OutlineKind,
    &characters::CharactersKind,
    &world::WorldKind,
    &chapter::ChapterKind,
    &review::ReviewKind,
    &edit::EditKind,
];

/// What a step of a kind needs from its book's accepted outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The accepted concept.
    Concept,
    /// The accepted cast.
    Cast,
    /// The accepted world.
    World,
    /// The accepted outline.
    Outline,
    /// The summaries of the chapters before this one.
    PreviousSummaries,
    /// The closing lines of the previous chapter's accepted draft.
    LastLines,
    /// The continuity ledger as it stands before this chapter.
    Ledger,
    /// This chapter's accepted draft.
    Draft,
    /// This chapter's accepted review.
    Review,
    /// The other chapters' accepted texts (validation only: a chapter repeats none of them).
    OtherChapters,
}

/// How a step's model work is split into requests when one answer cannot hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// One request answers the whole step.
    Whole,
    /// A chapter: a few planned scenes per request, each told what the parts before it wrote.
    Scenes,
    /// An edit: the scenes a review names, a few per request, revised into the draft.
    Revisions,
}

/// Everything the engine knows about one agent kind.
pub trait Kind: Send + Sync {
    /// The kind's value on the wire.
    fn kind(&self) -> AgentKind;

    /// The lowercase name (subjects, config, templates, the CLI).
    fn name(&self) -> &'static str {
        kind::name(self.kind())
    }

    /// What a step of this kind needs from its book: sent in the step's message (all but
    /// [`Input::OtherChapters`]) and read by validation.
    fn inputs(&self) -> &'static [Input];

    /// The kind of thinking a step asks for in a book of `category`, which picks its sampling.
    fn task(&self, category: &str) -> TaskType;

    /// The JSON Schema of a request in the book `ctx` describes; `scenes` are the scene numbers
    /// a request for part of a step writes or revises.
    fn schema(&self, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value;

    /// The example of the answer a prompt shows (the schema's shape).
    fn example(&self, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
        crate::schema::example(&self.schema(ctx, scenes))
    }

    /// The kind's rules: the accepted, normalised document, or the rule the answer broke.
    fn validate(&self, output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection>;

    /// Estimated tokens of a whole answer for `brief` (chapters and edits: all scenes).
    fn answer_tokens(&self, brief: &BookBrief) -> u64;

    /// The least `max_tokens` a step of this kind is given, whatever its sampling profile says.
    fn min_max_tokens(&self, _brief: &BookBrief) -> u32 {
        0
    }

    /// How the step's work is split into requests.
    fn work(&self) -> Work {
        Work::Whole
    }

    /// Agents of this kind a worker process runs by default.
    fn default_pool(&self) -> usize {
        4
    }

    /// The simulated model's answer to a request of this kind.
    #[cfg(feature = "sim")]
    fn simulate(&self, call: &mut crate::sim::SimCall<'_>) -> Value;
}

/// Why no agent answers a kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// The kind is done by the coordinator itself (assembly).
    #[error("{0} is done by the coordinator, not by an agent")]
    Local(&'static str),
    /// The wire value is no kind this build knows (a newer peer, or a corrupt message).
    #[error("agent kind {0} is not known to this build (known: {1})")]
    Unknown(i32, String),
    /// No kind has this name.
    #[error("unknown agent kind {0:?} (known: {1})")]
    UnknownName(String, String),
}

/// The agent kind with wire value `kind`: assembly and values this build does not know are
/// refused with the reason, never mapped to another kind.
pub fn lookup(kind: i32) -> Result<&'static dyn Kind, KindError> {
    if kind == AgentKind::Assembly as i32 {
        return Err(KindError::Local(kind::name(AgentKind::Assembly)));
    }
    REGISTRY
        .iter()
        .copied()
        .find(|k| k.kind() as i32 == kind)
        .ok_or_else(|| KindError::Unknown(kind, kind::agent_names()))
}

/// [`lookup`] for a decoded kind.
pub fn agent(kind: AgentKind) -> Result<&'static dyn Kind, KindError> {
    lookup(kind as i32)
}

/// The agent kind named `name` (`concept`, `chapter`...).
pub fn by_name(name: &str) -> Result<&'static dyn Kind, KindError> {
    kind::parse(name)
        .map_or_else(|| Err(KindError::UnknownName(name.into(), kind::agent_names())), agent)
}

/// An example of the JSON object a `kind` request answers with, as text.
pub fn example(kind: &dyn Kind, ctx: Ctx<'_>, scenes: Option<&[u32]>) -> String {
    kind.example(ctx, scenes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_on_the_wire_has_an_agent_or_is_assembly_and_nothing_else_is_mapped() {
        for k in kind::all() {
            match agent(k) {
                Ok(spec) => assert_eq!(spec.kind(), k),
                Err(e) => assert_eq!((k, e), (AgentKind::Assembly, KindError::Local("assembly"))),
            }
        }
        let names: Vec<&str> = REGISTRY.iter().map(|k| k.name()).collect();
        assert_eq!(names, kind::agents().map(kind::name).collect::<Vec<_>>());
        let unknown = lookup(99).map(|k| k.name()).unwrap_err().to_string();
        assert!(unknown.contains("agent kind 99 is not known"), "{unknown}");
        assert!(lookup(0).is_err(), "unspecified is no kind");
        assert!(by_name("nosuch").is_err());
        assert_eq!(by_name("edit").map(|k| k.kind()), Ok(AgentKind::Edit));
    }
}
