//! Names of the agent kinds.

use crate::v1::AgentKind;

/// Every agent kind that runs on workers, in plan order.
pub const ALL: [AgentKind; 7] = [
    AgentKind::Concept,
    AgentKind::Outline,
    AgentKind::Characters,
    AgentKind::World,
    AgentKind::Chapter,
    AgentKind::Review,
    AgentKind::Edit,
];

/// The lowercase name of a kind, as used in subjects, config and the CLI.
pub fn name(kind: AgentKind) -> &'static str {
    match kind {
        AgentKind::Unspecified => "unspecified",
        AgentKind::Concept => "concept",
        AgentKind::Outline => "outline",
        AgentKind::Characters => "characters",
        AgentKind::World => "world",
        AgentKind::Chapter => "chapter",
        AgentKind::Review => "review",
        AgentKind::Edit => "edit",
    }
}

/// Parses a kind from its lowercase name.
pub fn parse(s: &str) -> Option<AgentKind> {
    ALL.into_iter().find(|k| name(*k) == s)
}
