//! The kind of thinking a step's task asks for, which picks its sampling settings (each kind
//! says which of these its steps are: [`crate::kinds::Kind::task`]).

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

    /// Prose and invention in fiction, facts elsewhere: the task of kinds that write the book's
    /// matter (chapters, edits, the world) in a book of `category`.
    pub fn matter(category: &str) -> TaskType {
        if category == "fiction" { TaskType::Creative } else { TaskType::Factual }
    }
}
