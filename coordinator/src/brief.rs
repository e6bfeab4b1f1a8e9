//! Reading and validating briefs: the TOML a user writes becomes a checked [`BookBrief`].
//!
//! Every rule names its field; nothing is enqueued for a brief that breaks one.

use scriptorium_proto::v1::BookBrief;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest brief file accepted, in bytes.
pub const MAX_BRIEF_BYTES: u64 = 256 * 1024;
/// Categories a brief may name.
pub const CATEGORIES: &[&str] = &["fiction", "non-fiction", "business", "research"];
/// Length labels and the chapters and words per chapter they imply.
pub const LENGTHS: &[(&str, u32, u32)] =
    &[("short", 3, 1000), ("novella", 8, 1500), ("novel", 20, 2500), ("epic", 40, 3000)];
/// How a brief may have its chapters drafted: `sequential` (the default: each chapter after the
/// previous one's accepted draft, with the continuity ledger) or `parallel` (all at once).
pub const DRAFTING: &[&str] = &["sequential", "parallel"];
/// A brief's priorities: `normal` (the default) and `priority`, admitted before every normal
/// book and its steps taken before theirs.
pub const PRIORITIES: &[&str] = &["normal", "priority"];
/// The words a chapter may ask for (`words_per_chapter`).
pub const WORDS_PER_CHAPTER: std::ops::RangeInclusive<u32> = 100..=20_000;

/// Whether `brief` asks to go before normal books.
pub fn is_priority(brief: &BookBrief) -> bool {
    brief.priority == "priority"
}

/// The keys a brief's `[models]` may have: `default` and every agent kind's name.
pub fn model_keys() -> Vec<&'static str> {
    std::iter::once("default")
        .chain(scriptorium_proto::kind::agents().map(scriptorium_proto::kind::name))
        .collect()
}

/// A brief that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("brief field `{field}`: {rule}")]
pub struct BriefError {
    /// The field.
    pub field: String,
    /// The rule it breaks, with the offending value where useful.
    pub rule: String,
}

fn err(field: &str, rule: impl Into<String>) -> BriefError {
    BriefError { field: field.into(), rule: rule.into() }
}

/// A brief as written in TOML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BriefFile {
    /// Project name (defaults to the title or the file name).
    #[serde(default)]
    pub project: String,
    /// Title; empty lets the concept step propose one.
    #[serde(default)]
    pub title: String,
    /// fiction, non-fiction, business or research.
    pub category: String,
    /// Genre (fantasy, thriller, self-help...).
    #[serde(default)]
    pub genre: String,
    /// Language of the book.
    #[serde(default)]
    pub language: Option<String>,
    /// What the book is about.
    pub description: String,
    /// short, novella, novel or epic: default chapter count and chapter length.
    #[serde(default)]
    pub length: Option<String>,
    /// Number of chapters (overrides the length label).
    #[serde(default)]
    pub chapters: Option<u32>,
    /// Target words per chapter (overrides the length label).
    #[serde(default)]
    pub words_per_chapter: Option<u32>,
    /// Number of characters (0 for none; defaults to 3 for fiction, 0 otherwise).
    #[serde(default)]
    pub characters: Option<u32>,
    /// Whether to build a world (defaults to true for fiction).
    #[serde(default)]
    pub worldbuilding: Option<bool>,
    /// `ai` (review and edit every chapter) or `human` (drafts only, review left to people).
    #[serde(default)]
    pub review: Option<String>,
    /// Tone of voice.
    #[serde(default)]
    pub tone: String,
    /// Intended readers.
    #[serde(default)]
    pub audience: String,
    /// Author shown on the title page.
    #[serde(default)]
    pub author: String,
    /// Seed for deterministic runs.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Model route per agent kind (`default` for all), as `provider/model`.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Fallback routes, tried in order.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Largest model spend allowed for the book, in US dollars (0 or absent: no limit).
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// `sequential` (default) or `parallel` chapter drafting.
    #[serde(default)]
    pub drafting: Option<String>,
    /// Agent kinds whose accepted answers wait for a person's approval (`["concept",
    /// "outline"]`); empty or absent: the whole book runs through.
    #[serde(default)]
    pub approve: Vec<String>,
    /// `normal` (default) or `priority`: admitted before normal books, steps taken first.
    #[serde(default)]
    pub priority: Option<String>,
}

/// Reads and validates a brief file.
pub fn load(path: &Path) -> Result<BookBrief, BriefError> {
    let file = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| err("file", format!("cannot read {file}: {e}")))?;
    if meta.len() > MAX_BRIEF_BYTES {
        return Err(err("file", format!("{file} is larger than {MAX_BRIEF_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("file", format!("cannot read {file}: {e}")))?;
    let mut brief = parse(&text)?;
    if brief.project.is_empty() {
        brief.project =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    }
    Ok(brief)
}

/// Parses and validates brief TOML.
pub fn parse(text: &str) -> Result<BookBrief, BriefError> {
    let file: BriefFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_string();
        let field = msg
            .split('`')
            .nth(1)
            .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or("toml")
            .to_string();
        let at = e
            .span()
            .map(|s| line_col(text, s.start))
            .map_or_else(String::new, |(l, c)| format!(" at line {l}, column {c}"));
        err(&field, format!("invalid TOML{at}: {}", msg.trim()))
    })?;
    from_file(file)
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), BriefError> {
    if required && value.trim().is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(err(
            field,
            format!("must be at most {max} characters (got {})", value.chars().count()),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\n' && *c != '\t') {
        return Err(err(
            field,
            format!("must not contain control characters (found U+{:04X})", c as u32),
        ));
    }
    Ok(())
}

/// Checks a `provider/model` route's syntax.
pub fn check_route(field: &str, route: &str) -> Result<(), BriefError> {
    let ok = route.split_once('/').is_some_and(|(p, m)| {
        !p.is_empty()
            && !m.trim().is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if ok {
        Ok(())
    } else {
        Err(err(field, format!("must be a route `provider/model` (got {route:?})")))
    }
}

/// Validates a parsed brief file and fills in defaults.
pub fn from_file(f: BriefFile) -> Result<BookBrief, BriefError> {
    check_text("project", &f.project, 200, false)?;
    check_text("title", &f.title, 200, false)?;
    if f.title.contains('\n') {
        return Err(err("title", "must be a single line"));
    }
    let category = f.category.trim().to_lowercase();
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(err(
            "category",
            format!("must be one of {} (got {:?})", CATEGORIES.join(", "), f.category),
        ));
    }
    check_text("genre", &f.genre, 100, false)?;
    let language = f.language.unwrap_or_else(|| "English".into());
    check_text("language", &language, 50, true)?;
    check_text("description", &f.description, 10_000, true)?;
    check_text("tone", &f.tone, 300, false)?;
    check_text("audience", &f.audience, 300, false)?;
    check_text("author", &f.author, 200, false)?;
    let length = f.length.unwrap_or_else(|| "short".into()).to_lowercase();
    let Some(&(_, default_chapters, default_words)) = LENGTHS.iter().find(|(l, _, _)| *l == length)
    else {
        let names: Vec<&str> = LENGTHS.iter().map(|l| l.0).collect();
        return Err(err("length", format!("must be one of {} (got {length:?})", names.join(", "))));
    };
    let chapters = f.chapters.unwrap_or(default_chapters);
    if !(1..=100).contains(&chapters) {
        return Err(err("chapters", format!("must be between 1 and 100 (got {chapters})")));
    }
    let words = f.words_per_chapter.unwrap_or(default_words);
    if !WORDS_PER_CHAPTER.contains(&words) {
        let (lo, hi) = (WORDS_PER_CHAPTER.start(), WORDS_PER_CHAPTER.end());
        return Err(err(
            "words_per_chapter",
            format!("must be between {lo} and {hi} (got {words})"),
        ));
    }
    let fiction = category == "fiction";
    let characters = f.characters.unwrap_or(if fiction { 3 } else { 0 });
    if characters > 30 {
        return Err(err("characters", format!("must be between 0 and 30 (got {characters})")));
    }
    let review = f.review.unwrap_or_else(|| "ai".into()).to_lowercase();
    if review != "ai" && review != "human" {
        return Err(err("review", format!("must be `ai` or `human` (got {review:?})")));
    }
    for (k, route) in &f.models {
        if !model_keys().contains(&k.as_str()) {
            return Err(err(
                &format!("models.{k}"),
                format!("unknown agent kind (known: {})", model_keys().join(", ")),
            ));
        }
        check_route(&format!("models.{k}"), route)?;
    }
    if f.fallbacks.len() > 8 {
        return Err(err("fallbacks", "must list at most 8 routes"));
    }
    for (i, route) in f.fallbacks.iter().enumerate() {
        check_route(&format!("fallbacks[{i}]"), route)?;
    }
    let drafting = f.drafting.as_deref().map(str::trim).filter(|d| !d.is_empty());
    let drafting = drafting.unwrap_or("sequential").to_lowercase();
    if !DRAFTING.contains(&drafting.as_str()) {
        return Err(err(
            "drafting",
            format!("must be `sequential` or `parallel` (got {drafting:?})"),
        ));
    }
    let mut approve: Vec<String> = Vec::new();
    for (i, k) in f.approve.iter().enumerate() {
        let name = k.trim().to_lowercase();
        if scriptorium_proto::kind::parse_agent(&name).is_none() {
            return Err(err(
                &format!("approve[{i}]"),
                format!(
                    "must name an agent kind (known: {}; got {k:?})",
                    scriptorium_proto::kind::agent_names()
                ),
            ));
        }
        if !approve.contains(&name) {
            approve.push(name);
        }
    }
    let priority = f.priority.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let priority = priority.unwrap_or("normal").to_lowercase();
    if !PRIORITIES.contains(&priority.as_str()) {
        return Err(err("priority", format!("must be `normal` or `priority` (got {priority:?})")));
    }
    let budget = f.budget_usd.unwrap_or(0.0);
    if !budget.is_finite() || budget < 0.0 {
        return Err(err(
            "budget_usd",
            format!("must be a positive number of dollars (got {budget})"),
        ));
    }
    Ok(BookBrief {
        project: if f.project.is_empty() { f.title.clone() } else { f.project },
        title: f.title.trim().to_string(),
        category,
        genre: f.genre,
        language,
        description: f.description.trim().to_string(),
        length,
        chapters,
        words_per_chapter: words,
        characters,
        worldbuilding: f.worldbuilding.unwrap_or(fiction),
        review_mode: review,
        tone: if f.tone.is_empty() { "engaging".into() } else { f.tone },
        audience: if f.audience.is_empty() { "general readers".into() } else { f.audience },
        author: if f.author.is_empty() { "Anonymous".into() } else { f.author },
        models: f.models.into_iter().collect(),
        fallbacks: f.fallbacks,
        seed: f.seed.unwrap_or(0),
        budget_usd: budget,
        drafting,
        approve,
        priority,
    })
}

/// Re-checks a brief that arrived over the wire (from `submit`): same rules as a file.
pub fn revalidate(b: &BookBrief) -> Result<(), BriefError> {
    let file = BriefFile {
        project: b.project.clone(),
        title: b.title.clone(),
        category: b.category.clone(),
        genre: b.genre.clone(),
        language: Some(b.language.clone()),
        description: b.description.clone(),
        length: Some(b.length.clone()),
        chapters: Some(b.chapters),
        words_per_chapter: Some(b.words_per_chapter),
        characters: Some(b.characters),
        worldbuilding: Some(b.worldbuilding),
        review: Some(b.review_mode.clone()),
        tone: b.tone.clone(),
        audience: b.audience.clone(),
        author: b.author.clone(),
        seed: Some(b.seed),
        models: b.models.clone().into_iter().collect(),
        fallbacks: b.fallbacks.clone(),
        budget_usd: Some(b.budget_usd),
        drafting: Some(b.drafting.clone()),
        approve: b.approve.clone(),
        priority: Some(b.priority.clone()),
    };
    from_file(file).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_line_and_column_and_approve_names_agent_kinds() {
        let e = parse("category = \"fiction\"\ndescription = \"x\"\nchapters = = 3\n").unwrap_err();
        assert!(e.rule.contains("at line 3, column"), "{e}");
        assert_eq!(line_col("ab\ncdé", 6), (2, 3), "inside é: the character it is in");
        assert_eq!(line_col("ab\ncdé", 7), (2, 4));
        let b = parse(&format!("{OK}approve = [\"concept\", \"Outline\", \"concept\"]\n")).unwrap();
        assert_eq!(b.approve, ["concept", "outline"]);
        let e = parse(&format!("{OK}approve = [\"assembly\"]\n")).unwrap_err();
        assert_eq!(e.field, "approve[0]");
        assert!(e.rule.contains("must name an agent kind"), "{e}");
    }

    const OK: &str = "category = \"fiction\"\ndescription = \"A heist in a drowned city.\"\n";

    fn field_of(text: &str) -> String {
        parse(text).unwrap_err().field
    }

    #[test]
    fn defaults_follow_category_and_length() {
        let b = parse(OK).unwrap();
        assert_eq!(
            (b.chapters, b.words_per_chapter, b.characters, b.worldbuilding),
            (3, 1000, 3, true)
        );
        assert_eq!(b.drafting, "sequential");
        assert_eq!(parse(&format!("{OK}drafting = \"Parallel\"")).unwrap().drafting, "parallel");
        let b =
            parse("category = \"Business\"\ndescription = \"x\"\nlength = \"novella\"").unwrap();
        assert_eq!(
            (b.category.as_str(), b.chapters, b.characters, b.worldbuilding),
            ("business", 8, 0, false)
        );
    }

    #[test]
    fn every_rule_names_its_field() {
        assert_eq!(field_of("category = \"poetry\"\ndescription = \"x\""), "category");
        assert_eq!(field_of("category = \"fiction\"\ndescription = \"  \""), "description");
        assert_eq!(field_of(&format!("{OK}chapters = 0")), "chapters");
        assert_eq!(field_of(&format!("{OK}chapters = 500")), "chapters");
        assert_eq!(field_of(&format!("{OK}characters = 31")), "characters");
        assert_eq!(field_of(&format!("{OK}words_per_chapter = 5")), "words_per_chapter");
        assert_eq!(field_of(&format!("{OK}title = \"{}\"", "x".repeat(201))), "title");
        assert_eq!(field_of(&format!("{OK}title = \"bad\\u0007bell\"")), "title");
        assert_eq!(field_of(&format!("{OK}length = \"huge\"")), "length");
        assert_eq!(field_of(&format!("{OK}review = \"robot\"")), "review");
        assert_eq!(field_of(&format!("{OK}[models]\nchapter = \"nomodel\"")), "models.chapter");
        assert_eq!(field_of(&format!("{OK}[models]\npainter = \"a/b\"")), "models.painter");
        assert_eq!(field_of(&format!("{OK}fallbacks = [\"ok/m\", \"/m\"]")), "fallbacks[1]");
        assert_eq!(field_of(&format!("{OK}colour = \"red\"")), "colour");
        assert_eq!(field_of("description = \"x\""), "category");
        assert_eq!(field_of(&format!("{OK}budget_usd = -1.0")), "budget_usd");
        assert_eq!(field_of(&format!("{OK}drafting = \"eager\"")), "drafting");
    }

    #[test]
    fn unreadable_file_is_a_field_error() {
        let e = load(Path::new("/nonexistent/brief.toml")).unwrap_err();
        assert_eq!(e.field, "file");
    }

    #[test]
    fn wire_briefs_are_checked_like_files() {
        let mut b = parse(OK).unwrap();
        assert!(revalidate(&b).is_ok());
        b.chapters = 0;
        assert_eq!(revalidate(&b).unwrap_err().field, "chapters");
    }
}
