//! Prompt templates per agent kind (embedded defaults, overridable from a directory) and the
//! rendering of a step's context into them.
//!
//! A template is plain text with `{{placeholder}}` slots; [`PLACEHOLDERS`] lists them. An override
//! directory holds `<kind>.system.md` and/or `<kind>.user.md`; a template naming an unknown
//! placeholder is refused at start-up.

mod context;
mod continuity;

pub use context::{Docs, edit_targets};

use crate::budget::{Overflow, Piece, fit};
use scriptorium_contracts::tokens::estimate_tokens;
use scriptorium_contracts::{Kind, KindError};
use scriptorium_proto::v1::StepTask;
use std::collections::BTreeMap;
use std::path::Path;

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "facts",
    "brief",
    "concept",
    "cast",
    "world",
    "outline",
    "chapter",
    "chapter_plan",
    "previous",
    "ledger",
    "last_lines",
    "draft",
    "review",
    "feedback",
    "shape",
    "part",
];

/// Why templates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A file could not be read.
    #[error("prompt template {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: String,
    },
    /// An agent kind has no embedded template (`worker/prompts/<kind>.{system,user}.md`).
    #[error(
        "no embedded prompt template {file} (every agent kind needs worker/prompts/<kind>.system.md and .user.md)"
    )]
    Missing {
        /// The missing file's name.
        file: String,
    },
    /// A template names a placeholder that does not exist.
    #[error("prompt template {file}: unknown placeholder {{{{{name}}}}} (known: {known})")]
    UnknownPlaceholder {
        /// The template file name.
        file: String,
        /// The placeholder.
        name: String,
        /// The known placeholders.
        known: String,
    },
}

/// The system message and user template of one agent kind.
#[derive(Debug, Clone)]
pub struct Template {
    /// The agent's system message.
    pub system: String,
    /// The user message template.
    pub user: String,
}

/// Templates of every agent kind.
#[derive(Debug, Clone)]
pub struct Prompts {
    templates: BTreeMap<&'static str, Template>,
}

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

/// The embedded template file `name` (`<kind>.system.md`...).
fn builtin(name: &str) -> Option<&'static str> {
    builtin::BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

impl Prompts {
    /// The embedded defaults, with any files of `dir` replacing them: two templates for every
    /// agent kind of the registry (a kind without its embedded templates is refused).
    pub fn load(dir: Option<&Path>) -> Result<Prompts, PromptError> {
        let mut templates = BTreeMap::new();
        for spec in scriptorium_contracts::kinds::REGISTRY {
            let name = spec.name();
            let file = |suffix: &str| {
                let file = format!("{name}.{suffix}.md");
                builtin(&file).ok_or(PromptError::Missing { file })
            };
            let mut t =
                Template { system: file("system")?.trim().to_string(), user: file("user")?.into() };
            if let Some(dir) = dir {
                for (suffix, slot) in [("system", &mut t.system), ("user", &mut t.user)] {
                    let path = dir.join(format!("{name}.{suffix}.md"));
                    if path.exists() {
                        *slot = std::fs::read_to_string(&path).map_err(|e| PromptError::Read {
                            path: path.display().to_string(),
                            error: e.to_string(),
                        })?;
                    }
                }
            }
            for text in [&t.system, &t.user] {
                check_placeholders(&format!("{name} template"), text)?;
            }
            templates.insert(name, t);
        }
        Ok(Prompts { templates })
    }

    /// The system and user messages for `task`, with its whole context; a step of a kind no
    /// agent answers has none.
    pub fn render(&self, task: &StepTask) -> Result<(String, String), KindError> {
        let spec = scriptorium_contracts::kinds::lookup(task.kind)?;
        Ok(match self.render_fitted(task, spec, None, None) {
            Ok(r) => (r.system, r.user),
            // Without a budget nothing overflows.
            Err(_) => (String::new(), String::new()),
        })
    }
}

fn check_placeholders(file: &str, text: &str) -> Result<(), PromptError> {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(PromptError::UnknownPlaceholder {
                file: file.into(),
                name: name.into(),
                known: PLACEHOLDERS.join(", "),
            });
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

fn fill(template: &str, values: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                out.push_str(values.get(name).map(String::as_str).unwrap_or(""));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The part of a step one request covers, when a step takes several requests: a chapter
/// written a few scenes at a time, or an edit revising some scenes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Part {
    /// 1-based numbers of the scenes this request writes or revises.
    pub scenes: Vec<u32>,
    /// Words this request writes (chapter parts).
    pub words: u32,
    /// The running summary of the chapter's earlier parts (empty for the first).
    pub so_far: String,
    /// The closing lines of the previous part, to continue from.
    pub last_lines: String,
}

/// A rendered request: the messages and their estimated size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The system message.
    pub system: String,
    /// The user message.
    pub user: String,
    /// Estimated tokens of both messages.
    pub tokens: u64,
    /// Context slots condensed or dropped to fit the budget, in that order.
    pub condensed: Vec<&'static str>,
}

/// The schema of the answer to `task` (or one `part` of it), built once per request: the prompt
/// shows its guide, and the request carries it fitted to the answer's room.
pub fn answer_schema(
    task: &StepTask,
    spec: &dyn Kind,
    docs: &Docs,
    part: Option<&Part>,
) -> serde_json::Value {
    let brief = task.brief.clone().unwrap_or_default();
    let chapter = task.context.as_ref().map_or(0, |c| c.chapter);
    spec.schema(docs.ctx(&brief, chapter), part.map(|p| p.scenes.as_slice()))
}

impl Prompts {
    /// The messages for `task` (or one `part` of it) with the context condensed, lowest
    /// priority first, until both messages fit `budget` estimated tokens (no limit: `None`).
    pub fn render_fitted(
        &self,
        task: &StepTask,
        spec: &dyn Kind,
        part: Option<&Part>,
        budget: Option<u64>,
    ) -> Result<Rendered, Overflow> {
        let docs = Docs::of(task);
        let shape = answer_schema(task, spec, &docs, part);
        self.render_counted(task, spec, &docs, part, &shape, budget, &|s, u| {
            estimate_tokens(s) + estimate_tokens(u)
        })
    }

    /// [`Prompts::render_fitted`] with the documents of `task` already parsed (`docs`, once a
    /// step however many requests it takes), the answer's schema already built (`shape`, the
    /// request's own, whose guide the prompt shows) and the prompt measured by `count` (system,
    /// user): the model's own tokenizer when it is in this process.
    #[allow(clippy::too_many_arguments)]
    pub fn render_counted(
        &self,
        task: &StepTask,
        spec: &dyn Kind,
        docs: &Docs,
        part: Option<&Part>,
        shape: &serde_json::Value,
        budget: Option<u64>,
        count: &dyn Fn(&str, &str) -> u64,
    ) -> Result<Rendered, Overflow> {
        // `spec` comes from the registry, and `load` gave every kind of it its templates.
        let t = &self.templates[spec.name()];
        let used = [placeholders(&t.system), placeholders(&t.user)].concat();
        let pieces: Vec<Piece> = context::pieces(task, spec, docs, part, shape)
            .into_iter()
            .filter(|p| used.contains(&p.slot))
            .collect();
        let measure =
            |v: &BTreeMap<&'static str, String>| count(&fill(&t.system, v), &fill(&t.user, v));
        let fitted = fit(&pieces, budget, measure)?;
        Ok(Rendered {
            system: fill(&t.system, &fitted.values),
            user: fill(&t.user, &fitted.values),
            tokens: fitted.tokens,
            condensed: fitted.condensed,
        })
    }
}

/// The placeholders a template names.
fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::AgentKind;

    #[test]
    fn every_kind_of_the_registry_has_its_embedded_templates() {
        let p = Prompts::load(None).expect("every kind has both templates");
        for spec in scriptorium_contracts::kinds::REGISTRY {
            let t = &p.templates[spec.name()];
            assert!(!t.system.is_empty() && t.user.contains("{{"), "{}", spec.name());
        }
        assert_eq!(builtin("nosuch.system.md"), None);
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        assert!(check_placeholders("x", "Hello {{facts}} {{cast}}").is_ok());
        let err = check_placeholders("x", "Hello {{nope}}").unwrap_err().to_string();
        assert!(err.contains("{{nope}}"), "{err}");
    }

    #[test]
    fn override_directory_replaces_one_template() {
        let dir = std::env::temp_dir().join(format!("scriptorium-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("review.system.md"), "Be brief.").unwrap();
        let p = Prompts::load(Some(&dir)).unwrap();
        let task = StepTask { kind: AgentKind::Review as i32, ..Default::default() };
        assert_eq!(p.render(&task).unwrap().0, "Be brief.");
        let task = StepTask { kind: AgentKind::Edit as i32, ..Default::default() };
        assert!(p.render(&task).unwrap().0.contains("line editor"));
        let assembly = StepTask { kind: AgentKind::Assembly as i32, ..Default::default() };
        assert!(p.render(&assembly).is_err(), "no agent answers assembly");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
