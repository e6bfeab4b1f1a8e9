//! The kind of thinking each agent kind's task asks for, which picks its sampling settings.

use scriptorium_proto::v1::AgentKind;

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
