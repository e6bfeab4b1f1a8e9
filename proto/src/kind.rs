//! Names and task types of the agent kinds.

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

/// The kind of thinking a task asks for, which picks its sampling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    /// Prose and invention: high temperature, long output.
    Creative,
    /// Planning and critique: low temperature.
    Analytical,
    /// Facts and structure: lowest temperature.
    Factual,
}

impl TaskType {
    /// The lowercase name of the task type.
    pub fn name(self) -> &'static str {
        match self {
            TaskType::Creative => "creative",
            TaskType::Analytical => "analytical",
            TaskType::Factual => "factual",
        }
    }

    /// The task type of `kind` for a book of `category`: non-fiction prose is factual.
    pub fn of(kind: AgentKind, category: &str) -> TaskType {
        let fiction = category == "fiction";
        match kind {
            AgentKind::Outline | AgentKind::Review => TaskType::Analytical,
            AgentKind::Chapter | AgentKind::Edit | AgentKind::World if !fiction => {
                TaskType::Factual
            }
            _ => TaskType::Creative,
        }
    }
}
