//! Repetition: paragraphs repeated word for word (after normalising), near copies (a paragraph
//! most of whose 5-word sequences another has: shingle Jaccard, or the share of its own
//! sequences), and the share of sentences that occur more than once.

use super::seen::Seen;
use super::text::{normalise, paragraphs, sentences};
use super::{Chapter, Finding, Place, Rule};
use foldhash::fast::FixedState;
use std::hash::BuildHasher;

/// Maps and sets of this file: a fast hash with a fixed seed (std's SipHash, built to resist
/// chosen keys, was a tenth of validating a chapter; these keys are the book's own words).
type HashMap<K, V> = std::collections::HashMap<K, V, FixedState>;
type HashSet<K> = std::collections::HashSet<K, FixedState>;

/// Paragraphs of two sentences or more shorter than this (in words) may repeat:
/// `"No," she said. "Never."` twice is prose.
pub const MIN_REPEAT_WORDS: usize = 8;
/// A paragraph of one sentence is only a verbatim repeat from this many words on: a short
/// line said twice is a refrain (and counts in the repeated-sentence share), not a copied
/// paragraph.
pub const MIN_REPEAT_WORDS_ONE_SENTENCE: usize = 20;
/// Paragraphs shorter than this (in words) are not compared for near duplicates: a few shared
/// word sequences would dominate their overlap.
pub const MIN_NEAR_DUPLICATE_WORDS: usize = 20;
/// Words per shingle for near-duplicate detection.
pub const SHINGLE_WORDS: usize = 5;
/// Two paragraphs whose shingle sets overlap at least this much (Jaccard) are near duplicates.
pub const NEAR_DUPLICATE_JACCARD: f64 = 0.5;
/// A paragraph this share of whose own shingles an earlier paragraph has is a near copy of it,
/// however much longer the earlier one is.
pub const NEAR_COPY_SHARE: f64 = 0.6;
/// Sentences shorter than this (in words) are left out of the repeated-sentence share.
pub const MIN_SENTENCE_WORDS: usize = 5;

/// One paragraph already seen, for comparison with later ones.
#[derive(Clone)]
struct Entry {
    place: Place,
    /// Which text of its chapter it is in: 0 for the draft, 1 for its edit.
    rank: u8,
    shingles: usize,
}

/// Paragraphs seen so far: by normalised text and by shingle. Kept per book in flight, so
/// compact: a key maps to the first of a chain of postings instead of a vector of its own
/// (a vector per shingle cost about 70 bytes a word of prose), and texts are keyed by hash.
#[derive(Default, Clone)]
pub(super) struct Index {
    paragraphs: Vec<Entry>,
    /// Repeatable paragraphs by the hash and length of their normalised text.
    exact: HashMap<(u64, usize), u32>,
    by_shingle: HashMap<u64, u32>,
    /// Chains of paragraphs: (paragraph, next posting or [`END`]).
    postings: Vec<(u32, u32)>,
}

/// The end of a chain of postings.
const END: u32 = u32::MAX;

/// The key of a normalised paragraph in [`Index::exact`]: two texts with the same 64-bit hash
/// and length are taken for the same (about one chance in 10^19 for two given paragraphs).
fn text_key(norm: &str) -> (u64, usize) {
    (FixedState::default().hash_one(norm), norm.len())
}

fn shingles(norm: &str) -> HashSet<u64> {
    let words: Vec<&str> = norm.split(' ').collect();
    words.windows(SHINGLE_WORDS).map(|w| FixedState::default().hash_one(w)).collect()
}

/// What an index says about one new paragraph.
enum Match {
    Exact(Place),
    Near(Place, f64),
}

/// Whether a paragraph is long enough for a verbatim repeat of it to count.
fn repeatable(paragraph: &str, words: usize) -> bool {
    if words >= MIN_REPEAT_WORDS_ONE_SENTENCE {
        return true;
    }
    words >= MIN_REPEAT_WORDS && sentences(paragraph).len() >= 2
}

/// Where a paragraph seen stands in the order a finding names the first copy by: the book's
/// other chapters by number (a draft before its edit), then the chapter being checked.
type Order = (bool, u32, u8, usize);

/// One paragraph of a chapter, prepared for the comparisons.
struct Prepared {
    norm: String,
    shingles: HashSet<u64>,
    repeatable: bool,
}

impl Prepared {
    fn of(p: &str) -> Prepared {
        let norm = normalise(p);
        let shingles = shingles(&norm);
        let repeatable = repeatable(p, norm.split(' ').count());
        Prepared { norm, shingles, repeatable }
    }
}

impl Index {
    /// The paragraph `p` (of chapter `chapter`) copies, among `book`'s paragraphs of other
    /// chapters and this index's own (the chapter's, so far): word for word, or nearly (half
    /// its sequences and the other's shared, or, within its own chapter, [`NEAR_COPY_SHARE`]
    /// of its own: a paragraph retold a page later; across chapters a book's recurring phrases
    /// make that share common in honest prose).
    fn find(&self, book: &Index, chapter: u32, p: &Prepared) -> Option<Match> {
        let layers = [(false, book), (true, self)];
        // The book's texts of the chapter being checked are the ones it replaces.
        let visible = |own: bool, e: &Entry| own || e.place.chapter != chapter;
        let order = |own: bool, e: &Entry| (own, e.place.chapter, e.rank, e.place.paragraph);
        if p.repeatable {
            let first = layers
                .iter()
                .flat_map(|(own, ix)| {
                    let hits = ix.chain(ix.exact.get(&text_key(&p.norm)).copied());
                    hits.map(move |i| (*own, &ix.paragraphs[i as usize]))
                })
                .filter(|(own, e)| visible(*own, e))
                .min_by_key(|(own, e)| order(*own, e));
            if let Some((_, e)) = first {
                return Some(Match::Exact(e.place));
            }
        }
        let words = p.norm.split(' ').count();
        if words < MIN_NEAR_DUPLICATE_WORDS || p.shingles.is_empty() {
            return None;
        }
        let mut best: Option<(f64, Order, Place)> = None;
        for (own, ix) in layers {
            let mut shared: HashMap<u32, usize> = HashMap::default();
            for s in &p.shingles {
                for i in ix.chain(ix.by_shingle.get(s).copied()) {
                    *shared.entry(i).or_default() += 1;
                }
            }
            for (i, n) in shared {
                let e = &ix.paragraphs[i as usize];
                if !visible(own, e) {
                    continue;
                }
                let union = p.shingles.len() + e.shingles - n;
                let share = n as f64 / p.shingles.len() as f64;
                let near = n as f64 / union as f64 >= NEAR_DUPLICATE_JACCARD
                    || (e.place.chapter == chapter && share >= NEAR_COPY_SHARE);
                let key = order(own, e);
                if near && best.is_none_or(|(s, k, _)| share > s || (share == s && key < k)) {
                    best = Some((share, key, e.place));
                }
            }
        }
        best.map(|(share, _, place)| Match::Near(place, share))
    }

    fn add(&mut self, place: Place, rank: u8, p: Prepared) {
        let i = self.paragraphs.len() as u32;
        let words = p.norm.split(' ').count();
        self.paragraphs.push(Entry { place, rank, shingles: p.shingles.len() });
        if words >= MIN_NEAR_DUPLICATE_WORDS {
            for s in p.shingles {
                let head = self.by_shingle.entry(s).or_insert(END);
                *head = push(&mut self.postings, i, *head);
            }
        }
        if p.repeatable {
            let head = self.exact.entry(text_key(&p.norm)).or_insert(END);
            *head = push(&mut self.postings, i, *head);
        }
    }

    /// Adds the paragraphs of `chapter`, text `rank` of its number (0: draft, 1: edit).
    pub(super) fn add_chapter(&mut self, chapter: &Chapter<'_>, rank: u8) {
        for (i, p) in paragraphs(chapter.text).into_iter().enumerate() {
            self.add(Place { chapter: chapter.number, paragraph: i + 1 }, rank, Prepared::of(p));
        }
    }

    /// The paragraphs of the chain starting at posting `head`.
    fn chain(&self, head: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        let mut at = head.unwrap_or(END);
        std::iter::from_fn(move || {
            let (paragraph, next) = *self.postings.get(at as usize)?;
            at = next;
            Some(paragraph)
        })
    }

    /// Paragraphs held.
    pub(super) fn len(&self) -> usize {
        self.paragraphs.len()
    }
}

/// Adds paragraph `i` at the head of the chain at `head`; the new head.
fn push(postings: &mut Vec<(u32, u32)>, i: u32, head: u32) -> u32 {
    postings.push((i, head));
    (postings.len() - 1) as u32
}

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
        own.add(place, 0, prepared);
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
                self.own.add(place, 0, prepared);
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
