//! Repetition: paragraphs repeated word for word (after normalising), near copies (a paragraph
//! most of whose 5-word sequences another has: shingle Jaccard, or the share of its own
//! sequences), and the share of sentences that occur more than once.

use super::index::{Index, Match, Prepared};
use super::seen::Seen;
use super::text::{normalise, paragraphs, sentences};
use super::{Chapter, Finding, Place, Rule};
use foldhash::fast::FixedState;

pub use super::index::{
    MIN_NEAR_DUPLICATE_WORDS, MIN_REPEAT_WORDS, MIN_REPEAT_WORDS_ONE_SENTENCE, NEAR_COPY_SHARE,
    NEAR_DUPLICATE_JACCARD, SHINGLE_WORDS,
};

/// Maps of this file: a fast hash with a fixed seed (the keys are the book's own words).
type HashMap<K, V> = std::collections::HashMap<K, V, FixedState>;

/// Sentences shorter than this (in words) are left out of the repeated-sentence share.
pub const MIN_SENTENCE_WORDS: usize = 5;

fn where_(place: Place, chapter: u32) -> String {
    if place.chapter == chapter {
        format!("paragraph {}", place.paragraph)
    } else {
        format!("paragraph {} of chapter {}", place.paragraph, place.chapter)
    }
}

/// Paragraphs of `chapter` that repeat, word for word after normalising ([`Rule::RepeatedParagraph`])
/// or nearly ([`Rule::NearDuplicateParagraph`]), an earlier paragraph of the same chapter or of
/// the book's other chapters in `seen`. One finding per repeating paragraph, naming the first
/// paragraph it copies.
pub fn repeated_paragraphs(chapter: &Chapter<'_>, seen: &Seen) -> Vec<Finding> {
    let mut own = Index::default();
    let mut out = Vec::new();
    for (i, p) in paragraphs(chapter.text).into_iter().enumerate() {
        let place = Place { chapter: chapter.number, paragraph: i + 1 };
        let prepared = Prepared::of(p);
        match own.find(&seen.index, place.chapter, &prepared) {
            Some(Match::Exact(first)) => out.push(
                Finding::new(
                    Rule::RepeatedParagraph,
                    place,
                    p,
                    format!(
                        "paragraph {} repeats {} word for word; write new prose instead",
                        place.paragraph,
                        where_(first, chapter.number)
                    ),
                )
                .with_other(first),
            ),
            Some(Match::Near(first, j)) => out.push(
                Finding::new(
                    Rule::NearDuplicateParagraph,
                    place,
                    p,
                    format!(
                        "paragraph {} is a near copy of {} ({:.0}% of its 5-word sequences \
                         repeat it); rewrite it with new events and wording",
                        place.paragraph,
                        where_(first, chapter.number),
                        j * 100.0
                    ),
                )
                .with_other(first),
            ),
            None => {}
        }
        own.add(0, [(place, prepared)]);
    }
    out
}

/// The paragraphs seen so far (of the book's other chapters, then of the one being cleaned),
/// to tell whether a new one copies one of them.
pub struct Copies<'a> {
    book: &'a Seen,
    own: Index,
}

impl<'a> Copies<'a> {
    /// The paragraphs of the book's other chapters, as `seen` holds them.
    pub fn of(seen: &'a Seen) -> Copies<'a> {
        Copies { book: seen, own: Index::default() }
    }

    /// The rule paragraph `p` (at `place`) breaks by copying a paragraph seen so far
    /// ([`Rule::RepeatedParagraph`] or [`Rule::NearDuplicateParagraph`]) and the place it
    /// copies; none when it copies nothing, and then it is seen from now on.
    pub fn copies(&mut self, place: Place, p: &str) -> Option<(Rule, Place)> {
        let prepared = Prepared::of(p);
        match self.own.find(&self.book.index, place.chapter, &prepared) {
            Some(Match::Exact(first)) => Some((Rule::RepeatedParagraph, first)),
            Some(Match::Near(first, _)) => Some((Rule::NearDuplicateParagraph, first)),
            None => {
                self.own.add(0, [(place, prepared)]);
                None
            }
        }
    }
}

/// The share (0 to 1) of sentences of `texts`, taken together, whose normalised form occurs
/// more than once; sentences under [`MIN_SENTENCE_WORDS`] words are left out. 0 without sentences.
pub fn repeated_sentence_share(texts: &[&str]) -> f64 {
    let mut counts: HashMap<String, usize> = HashMap::default();
    for t in texts {
        for p in paragraphs(t) {
            for s in sentences(p) {
                let norm = normalise(s);
                if norm.split(' ').count() >= MIN_SENTENCE_WORDS {
                    *counts.entry(norm).or_default() += 1;
                }
            }
        }
    }
    let total: usize = counts.values().sum();
    if total == 0 {
        return 0.0;
    }
    let repeated: usize = counts.values().filter(|&&n| n > 1).sum();
    repeated as f64 / total as f64
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::prose) const P1: &str = "The ferry left at dawn, low in the water, its lamps still burning against \
                      a fog that had not lifted in three days and showed no sign of lifting now.";
    pub(in crate::prose) const P2: &str = "Nobody on the quay spoke of the ledger, though every one of them had come \
                      to see whether the tide-reader would dare to show her face again.";
    const P3: &str = "By noon the market had filled with rumours, each wilder than the last, and \
                      the price of dry rooms in the upper town had doubled twice.";

    fn ch(number: u32, text: &str) -> Chapter<'_> {
        Chapter { number, title: "", text }
    }

    #[test]
    fn a_paragraph_copied_from_an_earlier_chapter_is_a_verbatim_repeat() {
        let one = format!("{P1}\n\n{P2}");
        let copied = P2.to_uppercase().replace(',', "");
        let two = format!("{P3}\n\n{copied}");
        let f = repeated_paragraphs(&ch(2, &two), &Seen::of(&[ch(1, &one)]));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, Rule::RepeatedParagraph);
        assert_eq!((f[0].chapter, f[0].paragraph), (2, Some(2)));
        assert_eq!(f[0].other, Some(Place { chapter: 1, paragraph: 2 }));
        assert!(
            f[0].message.contains("paragraph 2 repeats paragraph 2 of chapter 1 word for word")
        );
    }

    #[test]
    fn a_paragraph_repeated_in_its_own_chapter_is_found() {
        let text = format!("{P1}\n\n{P2}\n\n{P1}");
        let f = repeated_paragraphs(&ch(1, &text), &Seen::default());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].other, Some(Place { chapter: 1, paragraph: 1 }));
        assert!(f[0].message.starts_with("paragraph 3 repeats paragraph 1 word"));
    }

    #[test]
    fn a_lightly_edited_copy_is_a_near_duplicate_and_short_repeats_are_allowed() {
        let edited = P1.replace("three days", "four days").replace("now.", "yet.");
        let text = format!("{P1}\n\n\"No,\" she said.\n\n{P3}\n\n\"No,\" she said.\n\n{edited}");
        let f = repeated_paragraphs(&ch(1, &text), &Seen::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, Rule::NearDuplicateParagraph);
        assert_eq!(f[0].paragraph, Some(5));
    }

    #[test]
    fn a_short_one_sentence_refrain_is_not_a_copied_paragraph() {
        let refrain = "Somewhere beyond the salt marshes, a bell rang twice.";
        let text = format!("{refrain}\n\n{P1}\n\n{refrain}\n\n{P2} {P3}\n\n{P2} {P3}");
        let f = repeated_paragraphs(&ch(1, &text), &Seen::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].rule, f[0].paragraph), (Rule::RepeatedParagraph, Some(5)));
    }

    #[test]
    fn distinct_paragraphs_do_not_repeat() {
        let text = format!("{P1}\n\n{P2}\n\n{P3}");
        assert!(
            repeated_paragraphs(&ch(2, &text), &Seen::of(&[ch(1, "Another chapter entirely.")]))
                .is_empty()
        );
    }

    #[test]
    fn the_repeated_sentence_share_counts_every_copy() {
        let a = "The bell rang twice over the water. The bell rang twice over the water.";
        let b = "She counted the boats in the harbour. He did not.";
        // Three counted sentences ("He did not." is too short), two of them copies.
        let share = repeated_sentence_share(&[a, b]);
        assert!((share - 2.0 / 3.0).abs() < 1e-9, "{share}");
        assert_eq!(repeated_sentence_share(&[""]), 0.0);
    }
}
