//! The instruction part of every prompt the engine sends, as word sequences: the templates'
//! own text (`worker/prompts/*.md` without their `{{slots}}`, which hold the story context),
//! the field guide of every kind's request schema, and the sentences the worker adds around a
//! part of a chapter and a re-ask. Prose that shares these sequences copied its instructions.
//!
//! The templates are the embedded defaults: a prompt directory an operator installs is not
//! seen here (its echoes are still caught when they talk about the task or hold machine text).

use super::text::normalise;
use foldhash::fast::FixedState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

type HashSet<K> = std::collections::HashSet<K, FixedState>;

/// Words per compared sequence.
pub const ECHO_WORDS: usize = 5;

/// The embedded default templates, the instruction text of every prompt.
const TEMPLATES: &[&str] = &[
    include_str!("../../../../worker/prompts/chapter.system.md"),
    include_str!("../../../../worker/prompts/chapter.user.md"),
    include_str!("../../../../worker/prompts/characters.system.md"),
    include_str!("../../../../worker/prompts/characters.user.md"),
    include_str!("../../../../worker/prompts/concept.system.md"),
    include_str!("../../../../worker/prompts/concept.user.md"),
    include_str!("../../../../worker/prompts/edit.system.md"),
    include_str!("../../../../worker/prompts/edit.user.md"),
    include_str!("../../../../worker/prompts/outline.system.md"),
    include_str!("../../../../worker/prompts/outline.user.md"),
    include_str!("../../../../worker/prompts/review.system.md"),
    include_str!("../../../../worker/prompts/review.user.md"),
    include_str!("../../../../worker/prompts/world.system.md"),
    include_str!("../../../../worker/prompts/world.user.md"),
];

/// The sentences the worker writes around a request for part of a chapter and around a re-ask's
/// feedback (`worker/src/prompts/context.rs`; a test there keeps the two in step).
pub const WORKER_SENTENCES: &[&str] = &[
    "This request writes only scenes 1 to 2 of the 3 planned scenes, about 300 words in all; the other \
     scenes are written in separate requests and joined with yours. Head your scenes as in the \
     plan.",
    "The chapter so far:",
    "It ends with: Continue from there without repeating it.",
    "Your \"summary\" tells the whole chapter so far, up to the end of your scenes.",
    "Your previous answer (attempt 1) was rejected: Correct exactly this and answer again.",
    "Fix these problems in the chapter's prose:",
    "give only the prose, with no notes, headings, word counts, code fences or JSON",
    "write only the story's prose",
];

/// The instruction text as compared: its sequences and its short lines, each kept as the hash
/// of its words' hashes (a fixed 64-bit hash: a sentence taken for an echo by a collision is
/// about one in 10^15 of the lookups), so a sentence is compared without a string per word.
pub struct Corpus {
    sequences: HashSet<u64>,
    lines: HashSet<u64>,
}

/// The words of `text` as compared (normalised, numbers left out: a prompt's counts change),
/// each as its hash.
fn words(text: &str) -> Vec<u64> {
    normalised_words(&normalise(text))
}

/// [`words`] of a text already normalised.
fn normalised_words(norm: &str) -> Vec<u64> {
    let hasher = FixedState::default();
    norm.split(' ')
        .filter(|w| !w.is_empty() && !w.bytes().all(|c| c.is_ascii_digit()))
        .map(|w| hasher.hash_one(w))
        .collect()
}

/// The hash of a sequence of words' hashes.
fn sequence(words: &[u64]) -> u64 {
    FixedState::default().hash_one(words)
}

impl Corpus {
    /// A corpus of `texts`: each text's lines, `{{slots}}` cut out (a sequence never spans one).
    pub fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Corpus {
        let mut c = Corpus { sequences: HashSet::default(), lines: HashSet::default() };
        for text in texts {
            for line in text.lines() {
                for piece in line.split("{{").map(|p| p.split_once("}}").map_or(p, |(_, r)| r)) {
                    for part in piece.split([':', '*']) {
                        let w = words(part);
                        if w.len() >= 2 {
                            c.lines.insert(sequence(&w));
                        }
                    }
                    let w = words(piece);
                    for s in w.windows(ECHO_WORDS) {
                        c.sequences.insert(sequence(s));
                    }
                }
            }
        }
        c
    }

    /// Whether `text` copies the instructions: it is one of their short lines (a field's
    /// description, `the scene's prose`), or at least 8 of its words, or half of them and at
    /// least 5, lie in sequences the instructions hold.
    pub fn echoes(&self, text: &str) -> bool {
        self.echoes_normalised(&normalise(text))
    }

    /// [`Corpus::echoes`] of a text already normalised.
    pub(crate) fn echoes_normalised(&self, norm: &str) -> bool {
        let w = normalised_words(norm);
        if w.len() >= 2 && self.lines.contains(&sequence(&w)) {
            return true;
        }
        let mut covered = vec![false; w.len()];
        for (i, s) in w.windows(ECHO_WORDS).enumerate() {
            if self.sequences.contains(&sequence(s)) {
                covered[i..i + ECHO_WORDS].iter_mut().for_each(|c| *c = true);
            }
        }
        let n = covered.iter().filter(|c| **c).count();
        n >= 8 || (n >= ECHO_WORDS && n * 2 >= w.len())
    }
}

/// The engine's instruction text: templates, every kind's field guide, the worker's sentences.
pub fn instructions() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let brief = scriptorium_proto::v1::BookBrief::default();
        let ctx = crate::rules::Ctx::new(&brief);
        let mut texts: Vec<String> = TEMPLATES.iter().map(|t| t.to_string()).collect();
        texts.extend(WORKER_SENTENCES.iter().map(|s| s.to_string()));
        for kind in crate::kinds::REGISTRY {
            texts.extend(crate::schema::example_values(&kind.schema(ctx, None)));
        }
        Corpus::of(texts.iter().map(String::as_str))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_instructions_echo_and_story_does_not() {
        let c = instructions();
        for text in [
            "the scene's prose.",
            "Write only the story: no title, notes or comments.",
            "Use only characters from the cast, by their names or the aliases the continuity gives.",
            "what they look like, in one sentence",
            "Correct exactly this and answer again.",
        ] {
            assert!(c.echoes(text), "{text}");
        }
        for text in [
            "Mara wrote only the story of the flood, and no one read it.",
            "The scene was quiet; the prose of the old letters was not.",
            "She continued from there, without a word, and the tide went on rising.",
        ] {
            assert!(!c.echoes(text), "{text}");
        }
    }
}
