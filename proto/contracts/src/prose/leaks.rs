//! Placeholder text and model meta text left in prose ("Here is the chapter:", "As an AI
//! language model", word counts, headings, code fences, JSON).
//!
//! Patterns are anchored where prose could use the same words: openers and closers only at
//! the start of a paragraph in narration (a paragraph that opens with a quotation mark is
//! dialogue and is never read as meta text), "Here is the ..." only when it names the answer
//! ("chapter", "revised", "draft"...) and ends with a colon or speaks of the request.

use super::text::{normalise, paragraphs, sentences};
use super::{Chapter, Finding, Place, Rule};

/// Phrases that are placeholder text wherever they appear (lowercase).
#[rustfmt::skip]
const PLACEHOLDERS: &[&str] = &[
    "lorem ipsum", "[insert", "<insert", "{insert", "[placeholder", "(placeholder",
    "placeholder text", "placeholder prose", "placeholder content", "[todo", "[tbd", "[describe",
    "[add ", "[character name", "[name", "[your ",
];

/// Upper-case markers that are placeholders as whole words.
const MARKERS: &[&str] = &["TODO", "TBD", "FIXME", "TKTK"];

/// Phrases that are model meta text wherever they appear (lowercase).
#[rustfmt::skip]
const META_ANYWHERE: &[&str] = &[
    "as an ai language model", "as a language model", "as a large language model",
    "as an ai, i cannot", "as an ai, i can't", "as an ai, i am unable", "as an ai, i don't",
    "word count:", "(word count", "[word count",
];

/// Paragraph openers that are the model talking to its user (lowercase, narration only).
#[rustfmt::skip]
const META_OPENERS: &[&str] = &[
    "i hope you enjoy this chapter", "i hope you enjoy the chapter",
    "i hope you enjoyed this chapter", "i hope you enjoyed the chapter",
    "i hope you enjoy this story", "i hope you enjoy the story", "i hope you enjoy this scene",
    "i hope you enjoy this revision", "i hope this chapter", "i hope this revision",
    "i hope this version", "i hope this draft", "i hope this meets", "i hope this captures",
    "let me know if you'd like", "let me know if you would like", "let me know if you want",
    "let me know if any", "let me know if there", "feel free to ask", "feel free to let me know",
    "would you like me to", "if you'd like, i can", "if you would like, i can", "if you want me to",
    "do you want me to", "shall i continue", "note:", "(note:", "[note:", "notes:",
    "author's note:", "changes made:", "summary of changes", "revisions made",
    "i have made the following", "i've made the following", "i made the following",
    "the revised chapter", "this revised version", "this revised chapter", "end of chapter",
    "(end of chapter", "[end of chapter",
];

/// Labels that open a block of the model's metadata, not story (lowercase, narration only).
const LABELS: &[&str] = &[
    "note:",
    "notes:",
    "author's note:",
    "changes made:",
    "changes:",
    "title:",
    "summary:",
    "characters:",
];

/// Openers of an assistant's reply ("Certainly! Here is...").
const ASSISTANT_WORDS: &[&str] = &["certainly", "sure", "of course", "absolutely", "okay", "ok"];

/// How an answer announces itself: "Here is", "Below is", "I have revised"...
#[rustfmt::skip]
const ANNOUNCE: &[&str] = &[
    "here is", "here's", "here are", "below is", "below are", "what follows is", "the following is",
    "i have written", "i've written", "i have revised", "i've revised", "i have rewritten",
    "i've rewritten",
];

/// What an announcement names: the answer itself.
#[rustfmt::skip]
const ANSWER_NOUNS: &[&str] = &[
    "chapter", "scene", "scenes", "story", "draft", "revision", "rewrite", "version", "text",
    "prose", "continuation", "section", "excerpt", "manuscript", "edit",
];

/// Words that tie an announcement to a request ("the revised chapter", "as requested").
#[rustfmt::skip]
const REQUEST_WORDS: &[&str] = &[
    "revised", "rewritten", "edited", "updated", "requested", "you asked", "next chapter", "draft",
    "continuation", "version", "words", "in the style", "as you", "for you",
];

/// Number words a chapter heading may use.
#[rustfmt::skip]
const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty",
];

/// Placeholder and meta text in `chapter`, at most one finding per paragraph.
pub fn leaks(chapter: &Chapter<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, p) in paragraphs(chapter.text).into_iter().enumerate() {
        let place = Place { chapter: chapter.number, paragraph: i + 1 };
        let n = place.paragraph;
        if let Some(what) = placeholder(p) {
            out.push(Finding::new(
                Rule::Placeholder,
                place,
                p,
                format!(
                    "paragraph {n} is placeholder text ({what}); write the actual prose in its place"
                ),
            ));
        } else if let Some(what) = meta(p) {
            out.push(Finding::new(
                Rule::MetaText,
                place,
                p,
                format!(
                    "paragraph {n} is not story prose ({what}); give only the prose, with no \
                     notes, headings, word counts, code fences or JSON"
                ),
            ));
        }
    }
    out
}

/// Whether paragraph `p` is placeholder or meta text as a whole (what [`leaks`] finds).
pub fn not_prose(p: &str) -> bool {
    placeholder(p).is_some() || meta(p).is_some()
}

/// Why `p` is placeholder text, if it is.
fn placeholder(p: &str) -> Option<&'static str> {
    if p.chars().all(|c| matches!(c, '.' | '…' | '[' | ']' | '(' | ')') || c.is_whitespace()) {
        return Some("an ellipsis alone");
    }
    let lower = p.to_lowercase();
    if PLACEHOLDERS.iter().any(|w| lower.contains(w))
        || lower.trim_start().starts_with("placeholder")
    {
        return Some("a placeholder phrase");
    }
    if p.split(|c: char| !c.is_alphanumeric()).any(|w| MARKERS.contains(&w)) {
        return Some("a TODO marker");
    }
    None
}

/// `s` without leading markdown emphasis, quote or heading marks and whitespace.
fn strip_marks(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '_' | '#' | '>'))
}

/// Why `p` is model meta text, if it is.
fn meta(p: &str) -> Option<&'static str> {
    for line in p.lines() {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            return Some("a code fence");
        }
        if line.starts_with('#') && line.trim_start_matches('#').starts_with(' ') {
            return Some("a markdown heading");
        }
        if is_heading(strip_marks(line)) {
            return Some("a chapter or scene heading");
        }
    }
    if looks_like_json(p) {
        return Some("JSON");
    }
    let lower = p.to_lowercase();
    if META_ANYWHERE.iter().any(|w| lower.contains(w)) || has_word_count(&lower) {
        return Some("a note from the model");
    }
    let body = strip_marks(&lower);
    // Dialogue opens with a quotation mark: "Sure," she said. is prose.
    if META_OPENERS.iter().chain(LABELS).any(|w| body.starts_with(w)) {
        return Some("a note to the reader");
    }
    if assistant_opener(body) {
        return Some("an assistant's reply");
    }
    if announces_answer(body) {
        return Some("an announcement of the answer");
    }
    None
}

/// `text` (a scene's prose) without the headings a model puts in it: markdown heading marks
/// come off their line (its words stay), and a line that is a chapter, scene or part heading
/// goes (the engine titles chapters and scenes). Only lines the meta-text rule would refuse
/// change.
pub fn strip_headings(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let t = line.trim();
        if is_heading(strip_marks(t)) {
            continue;
        }
        if t.starts_with('#') && t.trim_start_matches('#').starts_with(' ') {
            out.push(t.trim_start_matches('#').trim_start());
        } else {
            out.push(line);
        }
    }
    out.join("\n").trim().to_string()
}

/// `text` (a scene's prose) without the paragraphs a model opens with a label of its own
/// metadata (`Summary:`, `Notes:`, `Changes:`...): they are not story. Every other paragraph
/// stays as it was.
pub fn strip_labelled(text: &str) -> String {
    let labelled = |p: &str| {
        let body = strip_marks(&p.to_lowercase()).to_string();
        LABELS.iter().any(|l| body.starts_with(l))
    };
    let all = paragraphs(text);
    if !all.iter().any(|p| labelled(p)) {
        return text.to_string();
    }
    let kept: Vec<&str> = all.into_iter().filter(|p| !labelled(p)).collect();
    kept.join("\n\n")
}

/// "Chapter 3: The Gate", "CHAPTER TWELVE", "Scene 2", "Part II": a heading line, not a sentence.
fn is_heading(line: &str) -> bool {
    let lower = line.to_lowercase();
    let Some(rest) = ["chapter ", "scene ", "part "].iter().find_map(|w| lower.strip_prefix(w))
    else {
        return false;
    };
    let number: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
    let after = rest[number.len()..].trim_start();
    let is_number = number.chars().all(|c| c.is_ascii_digit())
        || NUMBER_WORDS.contains(&number.as_str())
        || number.chars().all(|c| "ivxlc".contains(c));
    if number.is_empty() || !is_number {
        return false;
    }
    let words = line.split_whitespace().count();
    let ends_like_sentence = line.trim_end_matches(['*', '_']).ends_with(['.', '!', '?', '"', '”']);
    after.is_empty()
        || after.starts_with([':', '—', '–'])
        || after.starts_with("- ")
        || (words <= 8 && !ends_like_sentence)
}

/// JSON left in prose: a `"key":` pair, a paragraph that is an object or array of objects,
/// or a line of JSON's structure (a bracket alone, or a line opening one: `{jsonb} {`,
/// `scenes: [`), which a model looping inside a grammar's string writes.
fn looks_like_json(p: &str) -> bool {
    let t = p.trim();
    if (t.starts_with('{') && t.ends_with('}')) || t.starts_with("[{") {
        return true;
    }
    let structure = |l: &str| {
        !l.is_empty() && (l.chars().all(|c| "{}[],: ".contains(c)) || l.ends_with(['{', '[']))
    };
    if t.lines().map(str::trim).any(structure) {
        return true;
    }
    let b = t.as_bytes();
    let mut i = 0;
    while let Some(off) = t[i..].find('"') {
        let open = i + off;
        let key_len =
            b[open + 1..].iter().take_while(|c| c.is_ascii_lowercase() || **c == b'_').count();
        let close = open + 1 + key_len;
        if key_len >= 2 && b.get(close) == Some(&b'"') {
            let value = t[close + 1..].trim_start().strip_prefix(':').map(str::trim_start);
            let json_value = value.is_some_and(|v| {
                v.starts_with(['"', '[', '{', '-'])
                    || v.starts_with(|c: char| c.is_ascii_digit())
                    || ["true", "false", "null"].iter().any(|w| v.starts_with(w))
            });
            if json_value {
                return true;
            }
        }
        i = open + 1;
    }
    false
}

/// "(approximately 900 words)", "[1,200 words]": a word count in brackets.
fn has_word_count(lower: &str) -> bool {
    for (open, close) in [('(', ')'), ('[', ']')] {
        let mut rest = lower;
        while let Some(at) = rest.find(open) {
            let inner = &rest[at + 1..];
            let Some(end) = inner.find(close) else { break };
            let words = normalise(&inner[..end]);
            let words: Vec<&str> = words.split(' ').collect();
            let counted = words.len() >= 2
                && words.len() <= 4
                && words[words.len() - 1].starts_with("word")
                && words[words.len() - 2].chars().all(|c| c.is_ascii_digit());
            if counted {
                return true;
            }
            rest = &inner[end..];
        }
    }
    false
}

/// "Certainly! Here is...", "Sure, here's...", or a paragraph that is only "Certainly!".
fn assistant_opener(body: &str) -> bool {
    ASSISTANT_WORDS.iter().any(|w| {
        let Some(rest) = body.strip_prefix(w) else { return false };
        let Some(rest) = rest.strip_prefix(['!', ',', '.', ':']) else { return false };
        let rest = rest.trim_start();
        rest.is_empty()
            || ANNOUNCE.iter().any(|a| rest.starts_with(a))
            || rest.starts_with("i'll ")
            || rest.starts_with("i will ")
            || rest.starts_with("i can ")
    })
}

/// "Here is the chapter:", "Here's the revised chapter", "Below is Chapter 3 in 900 words."
fn announces_answer(body: &str) -> bool {
    let Some(first) = sentences(body).into_iter().next() else { return false };
    if !ANNOUNCE.iter().any(|a| first.starts_with(a)) {
        return false;
    }
    let norm = normalise(first);
    let words: Vec<&str> = norm.split(' ').collect();
    if !words.iter().take(8).any(|w| ANSWER_NOUNS.contains(w)) {
        return false;
    }
    let colon = first.trim_end().ends_with(':')
        || body.lines().next().is_some_and(|l| l.trim_end().ends_with(':'));
    let numbered = words.windows(2).any(|w| {
        w[0] == "chapter"
            && (w[1].chars().all(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&w[1]))
    });
    colon || numbered || REQUEST_WORDS.iter().any(|r| first.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<Rule> {
        leaks(&Chapter { number: 1, title: "", text }).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn here_is_the_chapter_is_meta_text() {
        let text = "Here is the chapter:\n\nThe tide came in slowly that night.";
        let f = leaks(&Chapter { number: 3, title: "", text });
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].rule, f[0].chapter, f[0].paragraph), (Rule::MetaText, 3, Some(1)));
        assert!(f[0].message.contains("paragraph 1 is not story prose"));
        assert!(f[0].rule.is_hard());
    }

    #[test]
    fn model_meta_text_is_found() {
        for text in [
            "Here's the revised chapter, with the changes you asked for.",
            "Certainly! Here is Chapter 3.",
            "Sure, here's the next scene.",
            "**Chapter 3: The Gate**",
            "## The Gate",
            "CHAPTER TWELVE",
            "Scene 2",
            "As an AI language model, I cannot write that.",
            "I hope you enjoy this chapter! Let me know what you think.",
            "Let me know if you'd like any changes.",
            "(Word count: 912)",
            "The end came quickly. (approximately 900 words)",
            "```json",
            "{\"number\": 1, \"title\": \"The Gate\"}",
            "She said \"text\": \"nothing more\".",
            "Note: this chapter sets up the twist.",
            "{jsonb} {\n  .SCEnse: [\n    [{\n      .Text: The salt shapes human imagination",
            "The tide turned.\n}],\nAnd the harbour slept.",
        ] {
            assert_eq!(rules(text), vec![Rule::MetaText], "{text}");
        }
    }

    #[test]
    fn headings_come_off_a_scene_and_its_prose_stays() {
        let text =
            "## The Gate\nThe tide came in.\n\nChapter 3: The Gate\n**Scene 2**\nShe waited.";
        let stripped = strip_headings(text);
        assert_eq!(stripped, "The Gate\nThe tide came in.\n\nShe waited.");
        assert!(rules(&stripped).is_empty(), "{stripped}");
        let prose =
            "Chapter one of her life had ended in the flood; chapter two began in the attic.";
        assert_eq!(strip_headings(prose), prose);
    }

    #[test]
    fn paragraphs_of_labelled_metadata_come_off_a_scene() {
        let text = "The tide came in.\n \nSummary:\nThe story changes its ending.\n\n**Notes:** \
                    more drama.\n\nThe note said only: come alone.";
        let stripped = strip_labelled(text);
        assert_eq!(stripped, "The tide came in.\n\nThe note said only: come alone.");
        assert!(rules(&stripped).is_empty(), "{stripped}");
        assert_eq!(rules("Summary:\nThe story changes."), vec![Rule::MetaText], "still found");
    }

    #[test]
    fn placeholders_are_found() {
        for text in [
            "...",
            "…",
            "Lorem ipsum dolor sit amet.",
            "[Insert fight scene here]",
            "TODO: write the ending",
            "Placeholder: the duel.",
        ] {
            assert_eq!(rules(text), vec![Rule::Placeholder], "{text}");
        }
    }

    #[test]
    fn prose_that_uses_the_same_words_is_not_flagged() {
        for text in [
            "\"Sure,\" she said. \"Here is the chapter you wanted, the one about the flood.\"",
            "\"Certainly!\" he cried, and bowed.",
            "Here is the chapter house, where the monks once met to read the rule.",
            "Here is the story of my father, as he told it to me.",
            "She was a placeholder in his life, nothing more.",
            "Chapter one of her life had ended in the flood; chapter two began in the attic.",
            "The note said only: come alone.",
            "Sure enough, the gate was open.",
            "I hope this letter finds you well, she had written.",
            "He had forgotten the words... all of them.",
            "The sign read [closed], and below it, in chalk: {back soon}.",
            "Part of her wanted to stay.",
            "He wrote one word on the card, \"tomorrow\": nothing else.",
        ] {
            assert!(rules(text).is_empty(), "{text}: {:?}", rules(text));
        }
    }
}
