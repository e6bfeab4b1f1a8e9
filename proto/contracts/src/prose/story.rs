//! What is not story, by kind of defect: instruction echo (a copy of the prompt's own
//! instructions, see [`super::echo`]), talk about the task (sentences about JSON, objects,
//! fields, answers, prompts, revising "this" text) and machine text (see [`super::machine`]).
//! Near copies of other paragraphs are [`super::repeats`]'.
//!
//! One judgement serves three callers: validation cleans an answer with [`judge`] (what is not
//! story comes off, line by line or sentence by sentence), the same judgement gives the
//! findings a re-ask names ([`not_story`]), and `scriptorium check` reports the same findings
//! on a written book.

use super::echo::instructions;
use super::machine::{machine_line, machine_token};
use super::text::{normalise, paragraphs, sentences};
use super::{Chapter, Finding, Place, Rule};

/// Words that only a text about data or a model's task uses.
#[rustfmt::skip]
const TASK_WORDS: &[&str] = &[
    "json", "jsonb", "schema", "schemas", "xml", "yaml", "html", "cdata", "markdown", "regex",
    "chatbot", "llm",
];

/// What a task talks about: its answer, its fields, its text.
#[rustfmt::skip]
const TASK_NOUNS: &[&str] = &[
    "answer", "answers", "response", "responses", "prompt", "prompts", "object", "objects",
    "field", "fields", "key", "keys", "value", "values", "format", "output", "input", "text",
    "texts", "file", "files", "example", "examples", "instruction", "instructions", "request",
    "string", "strings", "array", "arrays", "template", "templates", "placeholder", "sentence",
    "sentences", "paragraph", "paragraphs", "list", "item", "items", "query",
];

/// What a task does to its text, or a second thing it talks about.
#[rustfmt::skip]
const TASK_MORE: &[&str] = &[
    "answer", "answers", "response", "prompt", "prompts", "object", "objects", "field", "fields",
    "string", "strings", "array", "template", "sentence", "sentences", "format", "formatted",
    "output", "example", "revise", "revised", "revising", "rewrite", "rewriting", "reformat",
    "parse", "generate", "fill", "contain", "contains", "containing", "fit",
];

/// The parts of a book: pointed at ("this chapter's opening sentence"), they are the task's
/// text only when a sentence or an answer of theirs is spoken of.
const PARTS: &[&str] = &["chapter", "chapters", "scene", "scenes", "story"];

/// What of a part of the book only the task speaks of.
#[rustfmt::skip]
const PART_MORE: &[&str] = &[
    "sentence", "sentences", "paragraph", "paragraphs", "prompt", "prompts",
];

/// Words that point at the task's own text: "your answer", "this file", "the following fields".
const POINTERS: &[&str] = &["your", "this", "these", "following"];

/// Whether `sentence` talks about the task instead of telling the story: it names a data
/// format (JSON, XML, a schema), or points at the task's text ("your answer", "this json
/// file", "this object") and says more about it ("...can contain", "...has a list of 5
/// sentences", "revise this text").
pub fn task_talk(sentence: &str) -> bool {
    task_talk_normalised(&normalise(sentence))
}

/// [`task_talk`] of a sentence already normalised.
fn task_talk_normalised(norm: &str) -> bool {
    let w: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    if w.iter().any(|x| TASK_WORDS.contains(x)) {
        return true;
    }
    let pointed = (0..w.len()).find_map(|i| {
        let noun = |j: usize| w.get(j).filter(|x| TASK_NOUNS.contains(x)).map(|_| j);
        POINTERS.contains(&w[i]).then(|| noun(i + 1).or_else(|| noun(i + 2))).flatten()
    });
    let part = (0..w.len())
        .any(|i| POINTERS.contains(&w[i]) && w.get(i + 1).is_some_and(|x| PARTS.contains(x)));
    if part && w.iter().any(|x| PART_MORE.contains(x)) {
        return true;
    }
    let Some(at) = pointed else { return false };
    w.iter().enumerate().any(|(j, x)| j != at && x != &w[at] && TASK_MORE.contains(x))
}

/// Why a piece of text came off: the rule and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The rule the text breaks.
    pub rule: Rule,
    /// What kind of text it is ("a URL", "talk about the task"...).
    pub what: &'static str,
    /// The text taken off.
    pub text: String,
}

/// A paragraph (or field) judged: what stays of it and what came off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Judged {
    /// The text without what is not story; the text itself when nothing came off.
    pub kept: String,
    /// What came off, in order.
    pub cuts: Vec<Cut>,
}

/// Which rules a judgement applies: every rule for story and the documents it is planned
/// from; machine text only for text that is about the book's own text (a review, an edit's
/// list of changes), which may speak of "this scene" and its sentences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Instruction echo, talk about the task and machine text.
    Story,
    /// Machine text only.
    Machine,
}

/// The sentence-level verdict on `s`.
fn sentence_cut(s: &str, scope: Scope) -> Option<(Rule, &'static str)> {
    if let Some(what) = machine_token(s) {
        return Some((Rule::MachineText, what));
    }
    if scope == Scope::Machine {
        return None;
    }
    // Normalised once for both checks.
    let norm = normalise(s);
    if task_talk_normalised(&norm) {
        return Some((Rule::TaskTalk, "talk about the task"));
    }
    instructions()
        .echoes_normalised(&norm)
        .then_some((Rule::InstructionEcho, "the prompt's instructions"))
}

/// `text` judged line by line and, within a line, sentence by sentence: a line of machine
/// text (markup, braces, `key: value`, punctuation) or one that copies the instructions
/// comes off whole; otherwise each sentence holding a machine token, talking about the task or
/// copying the instructions comes off. Lines left empty go.
pub fn judge(text: &str, scope: Scope) -> Judged {
    let mut cuts = Vec::new();
    // Lines are borrowed until one loses a sentence: a text with nothing cut allocates nothing.
    let mut kept: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    for line in text.split('\n') {
        let t = line.trim();
        if t.is_empty() {
            kept.push("".into());
            continue;
        }
        if let Some(what) = machine_line(t) {
            cuts.push(Cut { rule: Rule::MachineText, what, text: t.to_string() });
            continue;
        }
        if scope == Scope::Story && instructions().echoes(t) {
            let what = "the prompt's instructions";
            cuts.push(Cut { rule: Rule::InstructionEcho, what, text: t.to_string() });
            continue;
        }
        let before = cuts.len();
        let mut stay: Vec<&str> = Vec::new();
        for s in sentences(t) {
            match sentence_cut(s, scope) {
                Some((rule, what)) => cuts.push(Cut { rule, what, text: s.to_string() }),
                None => stay.push(s),
            }
        }
        if cuts.len() == before {
            kept.push(line.into());
        } else if !stay.is_empty() {
            kept.push(stay.join(" ").into());
        }
    }
    if cuts.is_empty() {
        return Judged { kept: text.to_string(), cuts };
    }
    // Blank lines that separated removed text from the rest do not pile up.
    let joined = kept.join("\n");
    let kept = paragraphs(&joined).join("\n\n");
    Judged { kept, cuts }
}

/// The message of a cut, for the paragraph or field `place` names (`paragraph 3`,
/// `concept.logline`).
pub fn message(place: &str, cut: &Cut) -> String {
    match cut.rule {
        Rule::InstructionEcho => format!(
            "{place} is not story: it repeats the request's instructions; write the story \
             itself, never the words of the request"
        ),
        Rule::TaskTalk => format!(
            "{place} is not story: it talks about the task (JSON, fields, answers, prompts, \
             revising the text); write only the story's prose"
        ),
        _ => format!(
            "{place} is not story: it holds machine text ({}); write only words of the story, \
             with no URLs, identifiers, markup, braces or key: value lines",
            cut.what
        ),
    }
}

/// Instruction echo, talk about the task and machine text in `chapter`: one finding per
/// paragraph and rule, the first such text as its snippet.
pub fn not_story(chapter: &Chapter<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, p) in paragraphs(chapter.text).into_iter().enumerate() {
        let place = Place { chapter: chapter.number, paragraph: i + 1 };
        let judged = judge(p, Scope::Story);
        let mut seen: Vec<Rule> = Vec::new();
        for cut in &judged.cuts {
            if seen.contains(&cut.rule) {
                continue;
            }
            seen.push(cut.rule);
            let msg = message(&format!("paragraph {}", place.paragraph), cut);
            out.push(Finding::new(cut.rule, place, &cut.text, msg));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talk_about_the_task_is_found_and_story_is_not() {
        for s in [
            "This JSON object has a list of 5 sentences.",
            "Here's an example of how you could revise this json file to fit your needs.",
            "Your answer can contain any JSON object except the ones above.",
            "What is a JSON object?",
            "This object has a list of five sentences.",
            "Please revise this text so that each field is filled.",
            "This ending will have been written before this chapter's opening sentence.",
        ] {
            assert!(task_talk(s), "{s}");
        }
        for s in [
            "\"Your answer is no,\" she said, \"and mine is yes.\"",
            "He read the letter twice, then folded it into his coat.",
            "This field of barley had been her father's.",
            "Revise your plan every quarter, and keep the list short.",
            "The object in the sand was a compass, its needle still.",
            "Each field office sends its figures to the capital by Friday.",
            "This chapter explains why the harbour closed, and what it cost.",
            "In this story, every answer costs a tide.",
        ] {
            assert!(!task_talk(s), "{s}");
        }
    }

    #[test]
    fn judging_takes_off_lines_and_sentences_and_keeps_the_story() {
        let text = "Elara crossed the bridge. This JSON object has a list of 5 sentences.\n\
                    text:'soul_219544676}'\nThe river ran dark below her.";
        let j = judge(text, Scope::Story);
        assert_eq!(j.kept, "Elara crossed the bridge.\nThe river ran dark below her.");
        let rules: Vec<Rule> = j.cuts.iter().map(|c| c.rule).collect();
        assert_eq!(rules, vec![Rule::TaskTalk, Rule::MachineText]);
        let clean = "Elara crossed the bridge.\n\nThe river ran dark below her.";
        assert_eq!(judge(clean, Scope::Story), Judged { kept: clean.into(), cuts: vec![] });
    }
}
