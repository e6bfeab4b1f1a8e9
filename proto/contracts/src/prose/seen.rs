//! The book's chapters as the prose checks compare a new one with them, prepared once: their
//! paragraphs (normalised, with their 5-word sequences), the words they write in lower case,
//! and their titles. A coordinator keeps one per book and adds each chapter text as it is
//! accepted, so checking a result costs the same at chapter 40 as at chapter 1 instead of
//! re-reading every other chapter.
//!
//! A chapter is compared with every text of the other chapters: the ones of its own number are
//! the texts it replaces (its draft, for a redraft or an edit), and are skipped.

use super::Chapter;
use super::index::{Index, merge_sorted};
use super::names::sentences_of;
use super::text::{normalise, tokens};

/// The key of a word in [`Seen`]'s lower-case words: the high 32 bits of a 64-bit hash. Two
/// words share a key about once in 4 x 10^9 pairs; a book writes a few thousand words in lower
/// case, so a name is taken for a word another chapter writes in lower case about once in a
/// million names.
fn word_key(word: &str) -> u32 {
    use std::hash::BuildHasher;
    (foldhash::fast::FixedState::default().hash_one(word) >> 32) as u32
}

/// The chapter texts a book has accepted, prepared for the prose checks.
#[derive(Default, Clone)]
pub struct Seen {
    pub(super) index: Index,
    /// Each word written in lower case (by [`word_key`], sorted), with the first two chapters
    /// that write it so in `lower_by` (their numbers plus one; 0: none): whether a chapter
    /// other than a given one writes it needs no more. Two sorted arrays, 12 bytes a word,
    /// where a hash map took about 26 and a string and a vector per word about 100.
    lower: Vec<u32>,
    lower_by: Vec<[u32; 2]>,
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
        let mut words: Vec<u32> = sentences_of(chapter)
            .into_iter()
            .flat_map(|(_, s)| tokens(s))
            .filter(|t| t.lowercase())
            .map(|t| word_key(&t.lower))
            .collect();
        words.sort_unstable();
        words.dedup();
        self.add_lower(&words, chapter.number.saturating_add(1));
        self.titles.push((chapter.number, rank, normalise(chapter.title)));
    }

    /// Notes that chapter `n` (its number plus one) writes `words` (sorted keys) in lower case.
    fn add_lower(&mut self, words: &[u32], n: u32) {
        let note = |chapters: &mut [u32; 2]| match chapters {
            [0, _] => chapters[0] = n,
            [first, 0] if *first != n => chapters[1] = n,
            _ => {}
        };
        let mut fresh = Vec::new();
        for &w in words {
            match self.lower.binary_search(&w) {
                Ok(i) => note(&mut self.lower_by[i]),
                Err(_) => fresh.push((w, [n, 0])),
            }
        }
        merge_sorted(&mut self.lower, &mut self.lower_by, fresh);
    }

    /// Bytes held on the heap, as the arrays' and maps' capacities lay them out (what a book in
    /// flight costs its coordinator for its prose checks).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.index.heap_bytes()
            + self.lower.capacity() * size_of::<u32>()
            + self.lower_by.capacity() * size_of::<[u32; 2]>()
            + self.titles.capacity() * size_of::<(u32, u8, String)>()
            + self.titles.iter().map(|(_, _, t)| t.capacity()).sum::<usize>()
    }

    /// Texts held (drafts and edits).
    pub fn texts(&self) -> usize {
        self.titles.len()
    }

    /// Whether a chapter other than `except` writes `word` (lowercase) in lower case.
    pub(super) fn writes_lower(&self, word: &str, except: u32) -> bool {
        let Ok(i) = self.lower.binary_search(&word_key(word)) else { return false };
        self.lower_by[i].iter().any(|c| *c != 0 && *c != except.saturating_add(1))
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
