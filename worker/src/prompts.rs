//! Prompt templates per agent kind (embedded defaults, overridable from a directory) and the
//! rendering of a step's context into them.
//!
//! A template is plain text with `{{placeholder}}` slots; [`PLACEHOLDERS`] lists them. An override
//! directory holds `<kind>.system.md` and/or `<kind>.user.md`; a template naming an unknown
//! placeholder is refused at start-up.

use crate::facts::line;
use scriptorium_proto::book::{Cast, ChapterText, Concept, Outline, Review, World};
use scriptorium_proto::kind;
use scriptorium_proto::v1::{AgentKind, StepTask};
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
    "draft",
    "review",
    "feedback",
    "shape",
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

fn builtin(kind: AgentKind) -> (&'static str, &'static str) {
    match kind {
        AgentKind::Concept => (
            include_str!("../prompts/concept.system.md"),
            include_str!("../prompts/concept.user.md"),
        ),
        AgentKind::Outline => (
            include_str!("../prompts/outline.system.md"),
            include_str!("../prompts/outline.user.md"),
        ),
        AgentKind::Characters => (
            include_str!("../prompts/characters.system.md"),
            include_str!("../prompts/characters.user.md"),
        ),
        AgentKind::World => {
            (include_str!("../prompts/world.system.md"), include_str!("../prompts/world.user.md"))
        }
        AgentKind::Chapter | AgentKind::Unspecified => (
            include_str!("../prompts/chapter.system.md"),
            include_str!("../prompts/chapter.user.md"),
        ),
        AgentKind::Review => {
            (include_str!("../prompts/review.system.md"), include_str!("../prompts/review.user.md"))
        }
        AgentKind::Edit => {
            (include_str!("../prompts/edit.system.md"), include_str!("../prompts/edit.user.md"))
        }
    }
}

impl Prompts {
    /// The embedded defaults, with any files of `dir` replacing them.
    pub fn load(dir: Option<&Path>) -> Result<Prompts, PromptError> {
        let mut templates = BTreeMap::new();
        for k in kind::ALL {
            let name = kind::name(k);
            let (system, user) = builtin(k);
            let mut t = Template { system: system.trim().to_string(), user: user.to_string() };
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

    /// The system and user messages for `task`.
    pub fn render(&self, task: &StepTask) -> (String, String) {
        let kind = task.kind();
        let t = &self.templates[kind::name(kind)];
        let values = values(task);
        (fill(&t.system, &values), fill(&t.user, &values))
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

fn parse<T: serde::de::DeserializeOwned + Default>(json: &str) -> Option<T> {
    if json.is_empty() { None } else { serde_json::from_str(json).ok() }
}

fn values(task: &StepTask) -> BTreeMap<&'static str, String> {
    let brief = task.brief.clone().unwrap_or_default();
    let ctx = task.context.clone().unwrap_or_default();
    let kind = task.kind();
    let concept: Option<Concept> = parse(&ctx.concept_json);
    let outline: Option<Outline> = parse(&ctx.outline_json);
    let cast: Option<Cast> = parse(&ctx.cast_json);
    let world: Option<World> = parse(&ctx.world_json);
    let plan = outline.as_ref().and_then(|o| o.chapters.iter().find(|c| c.number == ctx.chapter));

    let mut facts = String::new();
    let title = concept.as_ref().map(|c| c.title.clone()).unwrap_or_else(|| brief.title.clone());
    if !title.is_empty() {
        facts += &line("Title", &title);
    }
    facts += &line("Category", &brief.category);
    if !brief.genre.is_empty() {
        facts += &line("Genre", &brief.genre);
    }
    facts += &line("Language", &brief.language);
    facts += &line("Tone", &brief.tone);
    facts += &line("Audience", &brief.audience);
    facts += &line("Chapters", brief.chapters);
    facts += &line("Characters", brief.characters);
    facts += &line("Words per chapter", brief.words_per_chapter);
    if let Some(cast) = &cast {
        let names: Vec<&str> = cast.characters.iter().map(|c| c.name.as_str()).collect();
        facts += &line("Cast", names.join("; "));
    }
    if ctx.chapter > 0 {
        facts += &line("Chapter", ctx.chapter);
    }
    if let Some(p) = plan {
        facts += &line("Chapter title", &p.title);
        facts += &line("Scenes in this chapter", p.scenes.len());
        let mut names: Vec<&str> = Vec::new();
        for n in p.scenes.iter().flat_map(|s| s.characters.iter()) {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        if !names.is_empty() {
            facts += &line("Chapter cast", names.join("; "));
        }
    }

    let mut v = BTreeMap::new();
    v.insert("facts", facts);
    v.insert(
        "brief",
        format!(
            "Project: {}\nAuthor: {}\nDescription: {}\n",
            brief.project, brief.author, brief.description
        ),
    );
    v.insert(
        "concept",
        concept
            .map(|c| {
                format!(
                    "Title: {}\nLogline: {}\nDescription: {}\nThemes: {}\n",
                    c.title,
                    c.logline,
                    c.description,
                    c.themes.join(", ")
                )
            })
            .unwrap_or_else(|| "(none)\n".into()),
    );
    v.insert(
        "cast",
        match &cast {
            Some(c) if !c.characters.is_empty() => c
                .characters
                .iter()
                .map(|c| {
                    format!(
                        "* {} ({}, {}): {}. Wants: {}. Arc: {}.\n",
                        c.name, c.role, c.age, c.personality, c.motivations, c.arc
                    )
                })
                .collect(),
            _ => "(no characters)\n".into(),
        },
    );
    v.insert(
        "world",
        world
            .map(|w| w.sections.iter().map(|(k, s)| format!("* {k}: {s}\n")).collect())
            .unwrap_or_else(|| "(none)\n".into()),
    );
    v.insert(
        "outline",
        outline
            .as_ref()
            .map(|o| {
                let mut s = format!("{}\n", o.summary);
                for c in &o.chapters {
                    s += &format!("{}. {}: {}\n", c.number, c.title, c.summary);
                }
                s
            })
            .unwrap_or_default(),
    );
    v.insert("chapter", ctx.chapter.to_string());
    v.insert(
        "chapter_plan",
        plan.map(|p| {
            let mut s = format!("Chapter {}: {}. {}\n", p.number, p.title, p.summary);
            for (i, sc) in p.scenes.iter().enumerate() {
                s += &format!(
                    "Scene {}: {} (characters: {}; setting: {}; goal: {}; beat: {})\n",
                    i + 1,
                    sc.summary,
                    sc.characters.join(", "),
                    sc.setting,
                    sc.goal,
                    sc.emotional_beat
                );
            }
            s
        })
        .unwrap_or_default(),
    );
    v.insert(
        "previous",
        if ctx.previous_summaries.is_empty() {
            "(this is the first chapter)\n".into()
        } else {
            ctx.previous_summaries
                .iter()
                .enumerate()
                .map(|(i, s)| format!("Chapter {}: {s}\n", i + 1))
                .collect()
        },
    );
    v.insert(
        "draft",
        parse::<ChapterText>(&ctx.draft_json)
            .and_then(|d| serde_json::to_string(&d).ok())
            .map(|d| format!("```json\n{d}\n```\n"))
            .unwrap_or_default(),
    );
    v.insert(
        "review",
        parse::<Review>(&ctx.review_json)
            .map(|r| {
                format!(
                    "Verdict: {}\nIssues:\n{}Suggestions:\n{}",
                    r.verdict,
                    r.issues.iter().map(|i| format!("* {i}\n")).collect::<String>(),
                    r.suggestions.iter().map(|i| format!("* {i}\n")).collect::<String>()
                )
            })
            .unwrap_or_default(),
    );
    v.insert(
        "feedback",
        if ctx.feedback.is_empty() {
            String::new()
        } else {
            format!(
                "\nYour previous answer (attempt {}) was rejected: {}. Correct exactly this and answer again.\n",
                task.attempt.saturating_sub(1),
                ctx.feedback
            )
        },
    );
    v.insert("shape", shape(kind, &brief.category));
    v
}

/// An example of the JSON object `kind` answers with.
pub fn shape(kind: AgentKind, category: &str) -> String {
    match kind {
        AgentKind::Concept => r#"{"title": "...", "logline": "...", "description": "...", "tone": "...", "audience": "...", "themes": ["..."]}"#.into(),
        AgentKind::Characters => r#"{"characters": [{"name": "...", "age": "...", "role": "...", "physical": "...", "personality": "...", "background": "...", "motivations": "...", "relationships": "...", "internal_conflict": "...", "external_conflict": "...", "arc": "..."}]}"#.into(),
        AgentKind::World => {
            let fields: Vec<String> =
                World::required_sections(category).iter().map(|s| format!("\"{s}\": \"...\"")).collect();
            format!("{{\"sections\": {{{}}}}}", fields.join(", "))
        }
        AgentKind::Outline => r#"{"summary": "...", "chapters": [{"number": 1, "title": "...", "summary": "...", "scenes": [{"summary": "...", "characters": ["..."], "setting": "...", "goal": "...", "emotional_beat": "..."}]}]}"#.into(),
        AgentKind::Chapter | AgentKind::Edit | AgentKind::Unspecified => r#"{"number": 1, "title": "...", "scenes": [{"heading": "...", "text": "..."}], "summary": "...", "characters": ["..."], "changes": []}"#.into(),
        AgentKind::Review => r#"{"verdict": "accept", "scores": {"consistency": 7, "clarity": 7, "plot_holes": 7, "redundancy": 7, "flow": 7, "engagement": 7}, "issues": ["..."], "suggestions": ["..."]}"#.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(p.render(&task).0, "Be brief.");
        let task = StepTask { kind: AgentKind::Edit as i32, ..Default::default() };
        assert!(p.render(&task).0.contains("line editor"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
