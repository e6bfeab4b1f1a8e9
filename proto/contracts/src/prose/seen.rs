//! The book's chapters as the prose checks compare a new one with them, prepared once: their
//! paragraphs (normalised, with their 5-word sequences), the words they write in lower case,
//! and their titles. A coordinator keeps one per book and adds each chapter text as it is
//! accepted, so checking a result costs the same at chapter 40 as at chapter 1 instead of
//! re-reading every other chapter.
//!
//! A chapter is compared with every text of the other chapters: the ones of its own number are
//! the texts it replaces (its draft, for a redraft or an edit), and are skipped.

use super::Chapter;
use super::names::sentences_of;
use super::repeats::Index;
use super::text::{normalise, tokens};

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// The key of a word in [`Seen`]'s lower-case words: two words with the same 64-bit hash are
/// taken for the same (about one chance in 10^19 for two given words).
fn word_key(word: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(word)
}

/// The chapter texts a book has accepted, prepared for the prose checks.
#[derive(Default, Clone)]
pub struct Seen {
    pub(super) index: Index,
    /// Each word written in lower case (by its 64-bit hash), with the first two chapters that
    /// write it so (their numbers plus one; 0: none): whether a chapter other than a given one writes it needs no more,
    /// and a string and a vector per word cost about 100 bytes of each book in flight.
    lower: HashMap<u64, [u32; 2]>,
    /// Normalised titles: chapter, text of the chapter (0: draft, 1: edit), title.
    titles: Vec<(u32, u8, String)>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("texts", &self.titles.len())
            .field("paragraphs", &self.index.len())
            .field("lower_words", &self.lower.len())
            .finish()
    }
}

impl Seen {
    /// The chapters `earlier`, in order; a number seen again is that chapter's next text (its
    /// edit after its draft).
    pub fn of(earlier: &[Chapter<'_>]) -> Seen {
        let mut seen = Seen::default();
        for (i, c) in earlier.iter().enumerate() {
            let rank = earlier[..i].iter().filter(|e| e.number == c.number).count();
            seen.add(c, u8::try_from(rank).unwrap_or(u8::MAX));
        }
        seen
    }

    /// Adds `chapter`'s text `rank` (0: its draft, 1: its edit). Findings name the first copy
    /// by chapter number, then rank, whatever order texts were added in.
    pub fn add(&mut self, chapter: &Chapter<'_>, rank: u8) {
        self.index.add_chapter(chapter, rank);
        for (_, s) in sentences_of(chapter) {
            for t in tokens(s) {
                if t.lowercase() {
                    let n = chapter.number.saturating_add(1);
                    let chapters = self.lower.entry(word_key(&t.lower)).or_default();
                    match chapters {
                        [0, _] => chapters[0] = n,
                        [first, 0] if *first != n => chapters[1] = n,
                        _ => {}
                    }
                }
            }
        }
        self.titles.push((chapter.number, rank, normalise(chapter.title)));
    }

    /// Texts held (drafts and edits).
    pub fn texts(&self) -> usize {
        self.titles.len()
    }

    /// Whether a chapter other than `except` writes `word` (lowercase) in lower case.
    pub(super) fn writes_lower(&self, word: &str, except: u32) -> bool {
        self.lower
            .get(&word_key(word))
            .is_some_and(|cs| cs.iter().any(|c| *c != 0 && *c != except.saturating_add(1)))
    }

    /// The first chapter other than `except` whose title normalises to `title`.
    pub(super) fn title(&self, title: &str, except: u32) -> Option<u32> {
        self.titles
            .iter()
            .filter(|(n, _, t)| *n != except && !title.is_empty() && t == title)
            .min_by_key(|(n, rank, _)| (*n, *rank))
            .map(|(n, _, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Rule, check_chapter, repeated_paragraphs};
    use super::*;

    use super::super::repeats::tests::{P1, P2};

    fn ch<'a>(number: u32, title: &'a str, text: &'a str) -> Chapter<'a> {
        Chapter { number, title, text }
    }

    #[test]
    fn texts_added_in_any_order_name_the_same_first_copy() {
        let (one, one_edit, three) = (ch(1, "A", P1), ch(1, "A", P1), ch(3, "C", P2));
        let mut late = Seen::default();
        late.add(&three, 0);
        late.add(&one_edit, 1);
        late.add(&one, 0);
        let in_order = Seen::of(&[one, one_edit, three]);
        let text = format!("{P2}\n\n{P1}");
        let two = ch(2, "B", &text);
        let a = repeated_paragraphs(&two, &late);
        let b = repeated_paragraphs(&two, &in_order);
        assert_eq!(a, b);
        let others: Vec<_> = a.iter().map(|f| f.other.map(|p| (p.chapter, p.paragraph))).collect();
        assert_eq!(others, vec![Some((3, 1)), Some((1, 1))]);
    }

    #[test]
    fn a_lower_case_word_is_known_written_by_another_chapter_whatever_how_many_write_it() {
        let (one, one_edit) =
            (ch(1, "A", "The ferry left."), ch(1, "A", "The ferry left at dawn."));
        let seen =
            Seen::of(&[one, one_edit, ch(2, "B", "A tide came."), ch(3, "C", "The ferry sank.")]);
        // Written by chapters 1 (draft and edit) and 3: another chapter writes it for every one.
        assert!((1..=4).all(|n| seen.writes_lower("ferry", n)));
        // Written by chapter 1 alone, in both its texts: only chapter 1 itself does not count.
        assert!(!seen.writes_lower("dawn", 1) && seen.writes_lower("dawn", 2));
        assert!(!seen.writes_lower("tide", 2) && seen.writes_lower("tide", 1));
        assert!(!seen.writes_lower("harbour", 5));
    }

    #[test]
    fn the_texts_of_the_chapter_checked_are_the_ones_it_replaces() {
        // Chapter 2's earlier draft holds the same paragraph: a redraft may keep it.
        let seen = Seen::of(&[ch(1, "A", P2), ch(2, "B", P1)]);
        assert!(repeated_paragraphs(&ch(2, "B", P1), &seen).is_empty());
        let f = repeated_paragraphs(&ch(3, "C", P1), &seen);
        assert_eq!((f[0].rule, f[0].other.map(|p| p.chapter)), (Rule::RepeatedParagraph, Some(2)));
        // Its own title and its own lower-case words do not count either.
        assert_eq!(seen.title("b", 2), None);
        assert_eq!(seen.title("b", 3), Some(2));
        assert!(seen.writes_lower("ferry", 1) && !seen.writes_lower("ferry", 2));
    }

    #[test]
    fn checks_against_a_kept_index_equal_checks_against_the_texts() {
        let canon = super::super::Canon::new(vec![super::super::Person::new("Mara Vell")]);
        let plan = super::super::Plan { title: None, target_words: Some(60), characters: &[] };
        let earlier = [ch(1, "The Gate", P1), ch(2, "Tides", P2)];
        let text = format!("{P2}\n\nRain fell when Jorin said no.\n\n{P1}");
        let three = ch(3, "Tides", &text);
        let mut kept = Seen::default();
        for c in earlier.iter().rev() {
            kept.add(c, 0);
        }
        let a = check_chapter(&three, &plan, &kept, &canon);
        assert_eq!(a, check_chapter(&three, &plan, &Seen::of(&earlier), &canon));
        let rules: Vec<Rule> = a.iter().map(|f| f.rule).collect();
        for rule in [Rule::RepeatedParagraph, Rule::RepeatedTitle, Rule::UnknownName] {
            assert!(rules.contains(&rule), "{rule:?} missing from {rules:?}");
        }
    }
}
