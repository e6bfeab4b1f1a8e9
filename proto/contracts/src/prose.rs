//! Checks on the prose itself, pure and judge-free: length score, repeated paragraphs,
//! placeholder and meta text, names outside the cast, dead characters acting, titles and
//! plan coverage. Used by answer validation (a finding's message is a rule the model can act
//! on when re-asked) and by the book's quality report.
//!
//! # Layout
//! - [`text`]: paragraphs, sentences, word tokens, normalisation.
//! - [`repeats`]: verbatim and near-duplicate paragraphs, repeated sentences.
//! - [`seen`]: the book's other chapters, prepared once for the comparisons.
//! - [`mod@leaks`]: placeholder and model meta text.
//! - [`story`]: what is not story, by kind of defect: instruction echo ([`echo`]: the
//!   instruction text of every prompt), talk about the task, machine text ([`machine`]); the
//!   one judgement validation cleans answers with and `check` reports.
//! - [`clean`]: a chapter's scenes without what is not story, and the rule when too little stays.
//! - [`fields`]: the same rules on every free-text field of every kind, the field named.
//! - [`titles`]: loglines that are the title, chapter titles repeated, names that are no names.
//! - [`names`]: names outside the cast, dead characters acting, plan coverage (heuristics,
//!   documented there with their limits).
//!
//! # Example
//! ```
//! use scriptorium_contracts::prose::{Canon, Chapter, Person, Plan, Rule, Seen, check_chapter};
//!
//! let canon = Canon::new(vec![Person::new("Mara Vell"), Person::new("Tobin Thorne")]);
//! let planned = vec!["Mara Vell".to_string()];
//! let plan = Plan { title: Some("The Gate"), target_words: Some(14), characters: &planned };
//! let chapter = Chapter {
//!     number: 1,
//!     title: "The Gate",
//!     text: "Here is the chapter:\n\n\"Open it,\" Mara said, and Jorin Vask opened the gate.",
//! };
//! let findings = check_chapter(&chapter, &plan, &Seen::default(), &canon);
//! let rules: Vec<Rule> = findings.iter().map(|f| f.rule).collect();
//! assert_eq!(rules, vec![Rule::MetaText, Rule::UnknownName]);
//! assert!(findings[0].message.starts_with("paragraph 1 is not story prose"));
//! ```

pub mod clean;
pub mod echo;
pub mod fields;
mod index;
pub mod leaks;
pub mod machine;
pub mod names;
pub mod repeats;
pub mod seen;
pub mod story;
pub mod text;
pub mod titles;

pub use leaks::{leaks, strip_headings, strip_labelled};
pub use names::{dead_acting, plan_missing, unknown_names};
pub use repeats::{repeated_paragraphs, repeated_sentence_share};
pub use seen::Seen;
pub use story::{Scope, judge, not_story};
pub use text::{normalise, paragraphs, sentences, word_count};

use serde::{Deserialize, Serialize};

/// The lowest length score accepted (LongWriter's scale: 100 at the target; 80 is about
/// 0.71x to 1.6x the target).
pub const MIN_LENGTH_SCORE: f64 = 80.0;
/// Longest snippet of offending text kept in a finding, in characters.
pub const SNIPPET_CHARS: usize = 80;

/// LongWriter's length score of `actual` words against a `target`: 100 at the target, falling
/// linearly to 0 at 4x the target above it, `100*max(0, 1-(y/x-1)/3)`, and as
/// `100*max(0, 1-(x/y-1)/2)` below it (0 at a third of the target). 100 without a target.
pub fn length_score(target: usize, actual: usize) -> f64 {
    if target == 0 {
        return 100.0;
    }
    if actual == 0 {
        return 0.0;
    }
    let (x, y) = (target as f64, actual as f64);
    let s = if y > x { 1.0 - (y / x - 1.0) / 3.0 } else { 1.0 - (x / y - 1.0) / 2.0 };
    100.0 * s.max(0.0)
}

/// The word counts (inclusive) whose length score against `target` is at least `min_score`:
/// `x/(1+2f)` to `x*(1+3f)` with `f = 1 - min_score/100` (1429 to 3200 for 2,000 at 80).
pub fn length_window(target: usize, min_score: f64) -> (usize, usize) {
    let f = (1.0 - min_score / 100.0).clamp(0.0, 1.0);
    let x = target as f64;
    let lo = (x / (1.0 + 2.0 * f) - 1e-9).ceil().max(0.0) as usize;
    let hi = (x * (1.0 + 3.0 * f) + 1e-9).floor() as usize;
    (lo, hi)
}

/// The rule a finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Length score below [`MIN_LENGTH_SCORE`].
    Length,
    /// A paragraph repeated word for word (after normalising) from this or an earlier chapter.
    RepeatedParagraph,
    /// A paragraph that mostly repeats an earlier one: most of its 5-word sequences are shared.
    NearDuplicateParagraph,
    /// Placeholder text: an ellipsis alone, lorem ipsum, `[insert ...]`, `TODO`.
    Placeholder,
    /// Model meta text: announcements, notes, word counts, headings, code fences, JSON.
    MetaText,
    /// A name that looks like a character's but is not in the cast (or mixes two cast names).
    UnknownName,
    /// A character who is dead by this chapter speaks or acts.
    DeadCharacterActs,
    /// A character the chapter's plan lists never appears in it.
    PlanCharacterMissing,
    /// The chapter's title differs from the outline's.
    TitleMismatch,
    /// The chapter's title is an earlier chapter's too.
    RepeatedTitle,
    /// Text that copies the instruction part of the prompt (field guide, rules, format notes).
    InstructionEcho,
    /// Sentences about the task: JSON, objects, fields, schemas, answers, prompts, "this" text.
    TaskTalk,
    /// Machine text: URLs, e-mail addresses, identifiers, markup, braces, `key: value` lines,
    /// lines mostly of punctuation.
    MachineText,
    /// A logline that is the book's title, or little more.
    LoglineIsTitle,
    /// A character's name that is not a name (`Elara the most skilled mn`).
    NotAName,
}

impl Rule {
    /// The rule's name, as serialised (`repeated_paragraph`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Length => "length",
            Rule::RepeatedParagraph => "repeated_paragraph",
            Rule::NearDuplicateParagraph => "near_duplicate_paragraph",
            Rule::Placeholder => "placeholder",
            Rule::MetaText => "meta_text",
            Rule::UnknownName => "unknown_name",
            Rule::DeadCharacterActs => "dead_character_acts",
            Rule::PlanCharacterMissing => "plan_character_missing",
            Rule::TitleMismatch => "title_mismatch",
            Rule::RepeatedTitle => "repeated_title",
            Rule::InstructionEcho => "instruction_echo",
            Rule::TaskTalk => "task_talk",
            Rule::MachineText => "machine_text",
            Rule::LoglineIsTitle => "logline_is_title",
            Rule::NotAName => "not_a_name",
        }
    }

    /// Whether breaking the rule fails a book's quality report. Hard: what a reader sees as a
    /// defect and the checks find with few false alarms (length, verbatim and near copies,
    /// placeholder and meta text, instruction echo, talk about the task, machine text, a dead
    /// character acting: that check only fires on narration with no memory cue, chapter titles
    /// repeated, a logline that is the title, a name that is none). Soft (reported, not
    /// failing): the heuristics that can misfire on good prose (names outside the cast, plan
    /// coverage) and title changes.
    pub fn is_hard(self) -> bool {
        !matches!(self, Rule::UnknownName | Rule::PlanCharacterMissing | Rule::TitleMismatch)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A paragraph of a chapter (1-based both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Place {
    /// Chapter number.
    pub chapter: u32,
    /// Paragraph number in the chapter, scene breaks not counted.
    pub paragraph: usize,
}

/// One broken rule, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule broken.
    pub rule: Rule,
    /// Chapter number.
    pub chapter: u32,
    /// Paragraph number (1-based, scene breaks not counted); none for chapter-wide findings.
    pub paragraph: Option<usize>,
    /// The offending text, cut to [`SNIPPET_CHARS`] characters.
    pub snippet: String,
    /// What is wrong and what to do, addressed to the model that wrote the chapter.
    pub message: String,
    /// The earlier paragraph a repeat copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<Place>,
    /// The field of a document the finding is about (`concept.logline`,
    /// `cast.characters[1].role`); none for a chapter's prose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Finding {
    /// A finding about one paragraph.
    pub fn new(rule: Rule, place: Place, text: &str, message: String) -> Self {
        Finding {
            rule,
            chapter: place.chapter,
            paragraph: Some(place.paragraph),
            snippet: text::snippet(text, SNIPPET_CHARS),
            message,
            other: None,
            field: None,
        }
    }

    /// A finding about a field of a document (chapter 0 for the documents a book is planned
    /// from: concept, cast, world, outline).
    pub fn in_field(rule: Rule, chapter: u32, field: &str, text: &str, message: String) -> Self {
        Finding {
            field: Some(field.to_string()),
            ..Self::chapter_wide(rule, chapter, text, message)
        }
    }

    /// A finding about a whole chapter.
    pub fn chapter_wide(rule: Rule, chapter: u32, text: &str, message: String) -> Self {
        Finding {
            rule,
            chapter,
            paragraph: None,
            snippet: text::snippet(text, SNIPPET_CHARS),
            message,
            other: None,
            field: None,
        }
    }

    /// The finding with the earlier paragraph it refers to.
    pub fn with_other(mut self, other: Place) -> Self {
        self.other = Some(other);
        self
    }
}

/// A chapter's prose as checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chapter<'a> {
    /// 1-based chapter number.
    pub number: u32,
    /// Its title.
    pub title: &'a str,
    /// The prose: paragraphs separated by blank lines, scene breaks (`* * *`) allowed.
    pub text: &'a str,
}

/// What the outline asked of a chapter; every part is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The outline's title of the chapter.
    pub title: Option<&'a str>,
    /// The target length in words.
    pub target_words: Option<usize>,
    /// The characters its scenes list.
    pub characters: &'a [String],
}

/// A character as the checks know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Full name as in the cast.
    pub name: String,
    /// Other names the prose may use (`the tide-reader`, `Old Wren`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// False once the character has died.
    #[serde(default = "yes")]
    pub alive: bool,
    /// The chapter in which the character died, when known.
    #[serde(default)]
    pub died_in_chapter: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Person {
    /// A living character without aliases.
    pub fn new(name: impl Into<String>) -> Self {
        Person { name: name.into(), aliases: Vec::new(), alive: true, died_in_chapter: None }
    }

    /// The character with `aliases`.
    pub fn with_aliases(mut self, aliases: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.aliases = aliases.into_iter().map(Into::into).collect();
        self
    }

    /// The character, dead since chapter `died_in_chapter` (or since before any chapter checked).
    pub fn died(mut self, died_in_chapter: Option<u32>) -> Self {
        self.alive = false;
        self.died_in_chapter = died_in_chapter;
        self
    }

    /// Whether the character is dead throughout `chapter`: dead and died in an earlier chapter.
    /// A dead character without a chapter of death counts as dead before every chapter (the
    /// ledger a chapter is validated against is the one from before it).
    pub fn is_dead_in(&self, chapter: u32) -> bool {
        !self.alive && self.died_in_chapter.is_none_or(|d| chapter > d)
    }
}

/// What a book knows: its characters, and the words of its own texts (world, outline, concept,
/// cast descriptions) that the prose may capitalise without being character names.
#[derive(Debug, Clone, Default)]
pub struct Canon {
    /// The cast, with aliases and whether they live.
    pub people: Vec<Person>,
    known: std::sync::Arc<KnownWords>,
}

/// The words a book's own texts use, lower-case (see [`Canon`]); shared, so a caller that keeps
/// them per book hands them to each check without a copy. Each word is kept as its fixed 64-bit
/// hash, not as a string (9 bytes a slot instead of 25 plus the word's own allocation): a
/// coordinator keeps a set or two per book in flight. A word taken for known by a collision is
/// about one lookup in 10^15.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownWords(std::collections::HashSet<u64, foldhash::fast::FixedState>);

impl KnownWords {
    fn hash(word: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::default(), word)
    }

    /// Adds `word`.
    pub fn insert(&mut self, word: &str) {
        self.0.insert(Self::hash(word));
    }

    /// Whether `word` was added.
    pub fn contains(&self, word: &str) -> bool {
        self.0.contains(&Self::hash(word))
    }
}

impl Canon {
    /// A canon of `people` and no other known words.
    pub fn new(people: Vec<Person>) -> Self {
        Canon { people, known: Default::default() }
    }

    /// A canon of `people` knowing `known` (copied only if more is learnt).
    pub fn with_known(people: Vec<Person>, known: std::sync::Arc<KnownWords>) -> Self {
        Canon { people, known }
    }

    /// Adds every word of `text` to the known words.
    pub fn learn(&mut self, text: &str) {
        let known = std::sync::Arc::make_mut(&mut self.known);
        for w in normalise(text).split(' ').filter(|w| !w.is_empty()) {
            known.insert(w);
        }
    }

    /// The words this canon knows.
    pub fn known(&self) -> std::sync::Arc<KnownWords> {
        self.known.clone()
    }

    /// The canon with every word of `text` known.
    pub fn with_text(mut self, text: &str) -> Self {
        self.learn(text);
        self
    }

    /// Whether the book's own texts use `word` (lowercase).
    pub fn knows_word(&self, word: &str) -> bool {
        self.known.contains(word)
            || normalise(word).split(' ').all(|w| !w.is_empty() && self.known.contains(w))
    }
}

/// The chapter's length against `target` words, when the length score is below
/// [`MIN_LENGTH_SCORE`].
pub fn length(chapter: &Chapter<'_>, target: usize) -> Option<Finding> {
    if target == 0 {
        return None;
    }
    let words = word_count(chapter.text);
    let (lo, hi) = length_window(target, MIN_LENGTH_SCORE);
    if (lo..=hi).contains(&words) {
        return None;
    }
    let score = length_score(target, words);
    let verb = if words < lo { "too short" } else { "too long" };
    Some(Finding::chapter_wide(
        Rule::Length,
        chapter.number,
        &format!("{words} words"),
        format!(
            "chapter {} has {words} words for a target of {target} (length score {score:.0}, \
             {verb}); write between {lo} and {hi} words",
            chapter.number
        ),
    ))
}

/// The chapter's title when it differs (after normalising) from the outline's `planned` title.
pub fn title_mismatch(chapter: &Chapter<'_>, planned: &str) -> Option<Finding> {
    if normalise(planned).is_empty() || normalise(planned) == normalise(chapter.title) {
        return None;
    }
    Some(Finding::chapter_wide(
        Rule::TitleMismatch,
        chapter.number,
        chapter.title,
        format!(
            "the title \"{}\" differs from the outline's \"{}\"; use the outline's title",
            chapter.title.trim(),
            planned.trim()
        ),
    ))
}

/// The chapter's title when another chapter in `seen` has it too (after normalising).
pub fn repeated_title(chapter: &Chapter<'_>, seen: &Seen) -> Option<Finding> {
    let first = seen.title(&normalise(chapter.title), chapter.number)?;
    Some(Finding::chapter_wide(
        Rule::RepeatedTitle,
        chapter.number,
        chapter.title,
        format!(
            "the title \"{}\" is chapter {}'s too; give each chapter a title of its own",
            chapter.title.trim(),
            first
        ),
    ))
}

/// Every check on one chapter, given the book's other chapters (`seen`) and what the book
/// knows: placeholder and meta text, instruction echo, talk about the task, machine text,
/// repeated paragraphs (within it and against `seen`), length and
/// title against the `plan`, a title an earlier chapter has, names outside the cast, dead
/// characters acting, and characters the plan lists who never appear.
pub fn check_chapter(
    chapter: &Chapter<'_>,
    plan: &Plan<'_>,
    seen: &Seen,
    canon: &Canon,
) -> Vec<Finding> {
    let mut out = leaks(chapter);
    // A paragraph that is placeholder or meta text as a whole is reported once, as such.
    let leaked: Vec<Option<usize>> = out.iter().map(|f| f.paragraph).collect();
    out.extend(not_story(chapter).into_iter().filter(|f| !leaked.contains(&f.paragraph)));
    out.extend(repeated_paragraphs(chapter, seen));
    out.extend(plan.target_words.and_then(|t| length(chapter, t)));
    out.extend(plan.title.and_then(|t| title_mismatch(chapter, t)));
    out.extend(repeated_title(chapter, seen));
    if !canon.people.is_empty() {
        out.extend(unknown_names(chapter, seen, canon));
    }
    out.extend(dead_acting(chapter, canon));
    out.extend(plan_missing(chapter, plan.characters, canon));
    out
}

/// The findings as one instruction for a re-ask: the numbered messages, hard rules first.
pub fn rule_text(findings: &[Finding]) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| !f.rule.is_hard());
    let mut out = String::from("Fix these problems in the chapter's prose:\n");
    for (i, f) in sorted.iter().enumerate() {
        out += &format!("{}. {}\n", i + 1, f.message);
    }
    out
}

#[cfg(test)]
mod tests;
