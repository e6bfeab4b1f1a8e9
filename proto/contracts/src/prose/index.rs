//! The paragraphs a book has written, indexed to tell whether a new one copies one of them: by
//! normalised text (a verbatim repeat) and by 5-word sequence ("shingle": a near copy).
//!
//! A coordinator keeps one per book in flight, for the book's whole life, so it is built to be
//! small: a paragraph written twice (a draft's paragraph its edit kept) is held once with both
//! places, and the shingles are one sorted array of 32-bit keys with the paragraph each is
//! of, 8 bytes a shingle, where a hash map of chains took 24 to 37 (BENCHMARKS.md, issue 24).
//! A new paragraph's shingles, sorted, are looked up by binary search from where the previous
//! one was found.

use super::text::{normalise, paragraphs, sentences};
use super::{Chapter, Place};
use foldhash::fast::FixedState;
use std::hash::BuildHasher;

/// Maps of this file: a fast hash with a fixed seed (std's SipHash, built to resist chosen
/// keys, was a tenth of validating a chapter; these keys are the book's own words).
type HashMap<K, V> = std::collections::HashMap<K, V, FixedState>;

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

/// One place a paragraph text is written.
#[derive(Clone, Copy)]
struct Seat {
    chapter: u32,
    paragraph: u32,
    /// Which text of its chapter it is in: 0 for the draft, 1 for its edit.
    rank: u8,
    /// The text's next place in [`Index::seats`], or [`END`].
    next: u32,
}

impl Seat {
    fn place(&self) -> Place {
        Place { chapter: self.chapter, paragraph: self.paragraph as usize }
    }
}

/// One distinct normalised paragraph text.
#[derive(Clone, Copy)]
struct Text {
    /// Its distinct shingles (0 under [`MIN_NEAR_DUPLICATE_WORDS`] words: not indexed by them).
    shingles: u32,
    /// Its first place in [`Index::seats`] (a chain, the latest first).
    seats: u32,
}

/// Paragraphs seen so far: those that can be copied ([`repeatable`] ones; a paragraph of 20
/// words or more is, so a short one is only compared word for word, and only where its
/// punctuation makes it repeatable).
#[derive(Default, Clone)]
pub(super) struct Index {
    texts: Vec<Text>,
    seats: Vec<Seat>,
    /// Texts by the hash and length of their normalised form: two texts with the same 64-bit
    /// hash and length are taken for the same (about one chance in 10^19 for two given texts).
    by_text: HashMap<(u64, usize), u32>,
    /// Shingle keys, sorted, with the text of each in `owners`: a text's shingle once.
    keys: Vec<u32>,
    owners: Vec<u32>,
}

/// The end of a chain of seats.
const END: u32 = u32::MAX;

fn text_key(norm: &str) -> (u64, usize) {
    (FixedState::default().hash_one(norm), norm.len())
}

/// Merges `new` (key, value) into `keys` and their `values`, sorted by key (a key's old values
/// first), rebuilt at their exact size: what a book keeps grows a chapter at a time and lives
/// as long as the book.
pub(super) fn merge_sorted<V: Copy>(
    keys: &mut Vec<u32>,
    values: &mut Vec<V>,
    mut new: Vec<(u32, V)>,
) {
    if new.is_empty() {
        return;
    }
    new.sort_by_key(|(k, _)| *k);
    let total = keys.len() + new.len();
    let (mut k2, mut v2) = (Vec::with_capacity(total), Vec::with_capacity(total));
    let mut old = keys.iter().copied().zip(values.iter().copied()).peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let next = match (old.peek(), new.peek()) {
            (Some(a), Some(b)) if a.0 <= b.0 => old.next(),
            (Some(_), Some(_)) => new.next(),
            (Some(_), None) => old.next(),
            (None, _) => new.next(),
        };
        let Some((k, v)) = next else { break };
        k2.push(k);
        v2.push(v);
    }
    (*keys, *values) = (k2, v2);
}

/// The distinct shingle keys of a normalised paragraph, sorted: the high 32 bits of a 64-bit
/// hash of the five words. Two shingles share a key about once in 4 x 10^9 pairs: against a
/// 40-chapter book (80,000 shingles) a 100-shingle paragraph counts one shingle too many about
/// once in 500 paragraphs, a 1 % error in one overlap, never a verdict of its own.
fn shingles(norm: &str) -> Vec<u32> {
    let words: Vec<&str> = norm.split(' ').collect();
    let mut keys: Vec<u32> = words
        .windows(SHINGLE_WORDS)
        .map(|w| (FixedState::default().hash_one(w) >> 32) as u32)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Whether a paragraph is long enough for a verbatim repeat of it to count.
fn repeatable(paragraph: &str, words: usize) -> bool {
    if words >= MIN_REPEAT_WORDS_ONE_SENTENCE {
        return true;
    }
    words >= MIN_REPEAT_WORDS && sentences(paragraph).len() >= 2
}

/// What an index says about one new paragraph.
pub(super) enum Match {
    Exact(Place),
    Near(Place, f64),
}

/// Where a paragraph seen stands in the order a finding names the first copy by: the book's
/// other chapters by number (a draft before its edit), then the chapter being checked.
type Order = (bool, u32, u8, u32);

/// One paragraph of a chapter, prepared for the comparisons.
pub(super) struct Prepared {
    norm: String,
    /// Empty under [`MIN_NEAR_DUPLICATE_WORDS`] words: not compared for near copies.
    shingles: Vec<u32>,
    repeatable: bool,
}

impl Prepared {
    pub(super) fn of(p: &str) -> Prepared {
        let norm = normalise(p);
        let words = norm.split(' ').count();
        let repeatable = repeatable(p, words);
        let shingles = if words >= MIN_NEAR_DUPLICATE_WORDS { shingles(&norm) } else { Vec::new() };
        Prepared { norm, shingles, repeatable }
    }
}

impl Index {
    /// The paragraph `p` (of chapter `chapter`) copies, among `book`'s paragraphs of other
    /// chapters and this index's own (the chapter's, so far): word for word, or nearly (half
    /// its sequences and the other's shared, or, within its own chapter, [`NEAR_COPY_SHARE`]
    /// of its own: a paragraph retold a page later; across chapters a book's recurring phrases
    /// make that share common in honest prose).
    pub(super) fn find(&self, book: &Index, chapter: u32, p: &Prepared) -> Option<Match> {
        let layers = [(false, book), (true, self)];
        // The book's texts of the chapter being checked are the ones it replaces.
        let visible = |own: bool, s: &Seat| own || s.chapter != chapter;
        let order = |own: bool, s: &Seat| (own, s.chapter, s.rank, s.paragraph);
        if p.repeatable {
            let first = layers
                .iter()
                .flat_map(|(own, ix)| {
                    let seats = ix.seats_of(ix.by_text.get(&text_key(&p.norm)).copied());
                    seats.map(move |s| (*own, s))
                })
                .filter(|(own, s)| visible(*own, s))
                .min_by_key(|(own, s)| order(*own, s));
            if let Some((_, s)) = first {
                return Some(Match::Exact(s.place()));
            }
        }
        if p.shingles.is_empty() {
            return None;
        }
        let mine = p.shingles.len();
        let mut best: Option<(f64, Order, Place)> = None;
        for (own, ix) in layers {
            for (t, n) in ix.shared(&p.shingles) {
                let text = ix.texts[t as usize];
                let union = mine + text.shingles as usize - n;
                let share = n as f64 / mine as f64;
                let jaccard = n as f64 / union as f64 >= NEAR_DUPLICATE_JACCARD;
                for s in ix.seats_of(Some(t)).filter(|s| visible(own, s)) {
                    let near = jaccard || (s.chapter == chapter && share >= NEAR_COPY_SHARE);
                    let key = order(own, &s);
                    if near && best.is_none_or(|(b, k, _)| share > b || (share == b && key < k)) {
                        best = Some((share, key, s.place()));
                    }
                }
            }
        }
        best.map(|(share, _, place)| Match::Near(place, share))
    }

    /// The texts sharing shingles with `probe` (sorted), with how many each shares.
    fn shared(&self, probe: &[u32]) -> HashMap<u32, usize> {
        let mut shared: HashMap<u32, usize> = HashMap::default();
        let mut at = 0;
        for &k in probe {
            at += self.keys[at..].partition_point(|&x| x < k);
            for (_, &t) in
                self.keys[at..].iter().zip(&self.owners[at..]).take_while(|(x, _)| **x == k)
            {
                *shared.entry(t).or_default() += 1;
            }
        }
        shared
    }

    /// Adds paragraphs, each at its place, of text `rank` of its chapter (0: draft, 1: edit).
    pub(super) fn add(
        &mut self,
        rank: u8,
        paragraphs: impl IntoIterator<Item = (Place, Prepared)>,
    ) {
        let mut postings: Vec<(u32, u32)> = Vec::new();
        for (place, p) in paragraphs {
            if !p.repeatable {
                continue;
            }
            let key = text_key(&p.norm);
            let t = match self.by_text.get(&key) {
                Some(t) => *t,
                None => {
                    let t = self.texts.len() as u32;
                    let shingles = p.shingles.len() as u32;
                    self.texts.push(Text { shingles, seats: END });
                    self.by_text.insert(key, t);
                    postings.extend(p.shingles.iter().map(|k| (*k, t)));
                    t
                }
            };
            let text = &mut self.texts[t as usize];
            self.seats.push(Seat {
                chapter: place.chapter,
                paragraph: u32::try_from(place.paragraph).unwrap_or(u32::MAX),
                rank,
                next: text.seats,
            });
            text.seats = (self.seats.len() - 1) as u32;
        }
        merge_sorted(&mut self.keys, &mut self.owners, postings);
    }

    /// Adds the paragraphs of `chapter`, text `rank` of its number (0: draft, 1: edit).
    pub(super) fn add_chapter(&mut self, chapter: &Chapter<'_>, rank: u8) {
        let paragraphs = paragraphs(chapter.text)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (Place { chapter: chapter.number, paragraph: i + 1 }, Prepared::of(p)));
        self.add(rank, paragraphs);
    }

    /// The places of text `t` (none for none).
    fn seats_of(&self, t: Option<u32>) -> impl Iterator<Item = Seat> + '_ {
        let mut at = t.map_or(END, |t| self.texts[t as usize].seats);
        std::iter::from_fn(move || {
            let seat = *self.seats.get(at as usize)?;
            at = seat.next;
            Some(seat)
        })
    }

    /// Paragraphs held (places of repeatable paragraphs).
    pub(super) fn len(&self) -> usize {
        self.seats.len()
    }

    /// Bytes the index holds on the heap (its arrays' capacities; a hash map's buckets counted
    /// as hashbrown lays them out: a power of two at most 7/8 full, a control byte each).
    pub(super) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let cap = self.by_text.capacity();
        let buckets = if cap == 0 { 0 } else { (cap * 8 / 7).next_power_of_two() };
        self.texts.capacity() * size_of::<Text>()
            + self.seats.capacity() * size_of::<Seat>()
            + buckets * (size_of::<((u64, usize), u32)>() + 1)
            + self.keys.capacity() * size_of::<u32>()
            + self.owners.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::super::repeats::repeated_paragraphs;
    use super::super::seen::Seen;
    use super::super::{Chapter, Rule};
    use super::*;
    use std::collections::HashSet;

    /// A splitmix64 generator: the texts below are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % n as u64) as usize
        }
    }

    /// A small vocabulary, so that paragraphs share many 5-word sequences by chance.
    const WORDS: &[&str] = &[
        "the", "tide", "ledger", "harbour", "she", "he", "said", "and", "of", "in", "lamp", "rain",
        "bell", "rang", "Mara", "Tobin", "counted", "boats", "water", "stair", "old", "night", "a",
        "to", "her", "his", "grey", "salt", "wind", "door",
    ];

    fn sentence(rng: &mut Rng) -> String {
        let n = 4 + rng.next(10);
        let words: Vec<&str> = (0..n).map(|_| WORDS[rng.next(WORDS.len())]).collect();
        format!("{}.", words.join(" "))
    }

    fn paragraph(rng: &mut Rng) -> String {
        (0..1 + rng.next(5)).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ")
    }

    /// A chapter of fresh paragraphs, verbatim copies, lightly edited copies and half copies
    /// of `earlier` paragraphs (and of its own), and short lines said twice.
    fn chapter(rng: &mut Rng, earlier: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for _ in 0..12 {
            let pool: Vec<&String> = earlier.iter().chain(&out).collect();
            let p = match rng.next(8) {
                0 | 1 if !pool.is_empty() => pool[rng.next(pool.len())].clone(),
                2 if !pool.is_empty() => {
                    let mut w: Vec<String> =
                        pool[rng.next(pool.len())].split(' ').map(str::to_string).collect();
                    let i = rng.next(w.len());
                    w[i] = "lantern".into();
                    w.join(" ")
                }
                3 if !pool.is_empty() => {
                    let src = pool[rng.next(pool.len())];
                    let half: Vec<&str> = src.split(' ').take(src.split(' ').count() / 2).collect();
                    format!("{} {}", half.join(" "), paragraph(rng))
                }
                4 => "No, she said. Never.".to_string(),
                _ => paragraph(rng),
            };
            out.push(p);
        }
        out
    }

    /// Own chapter or not, chapter, rank, paragraph: the order the first copy is named by.
    type Key = (bool, u32, u8, usize);

    /// The old index's answer, every pair compared: the paragraph `p` copies among `book`
    /// (chapter, rank, paragraphs) and the chapter's own earlier paragraphs `own`.
    fn naive(
        book: &[(u32, u8, Vec<String>)],
        own: &[String],
        chapter: u32,
        p: &str,
    ) -> Option<(Rule, Place)> {
        let set = |t: &str| -> HashSet<u64> {
            let n = normalise(t);
            let w: Vec<&str> = n.split(' ').collect();
            w.windows(SHINGLE_WORDS).map(|w| FixedState::default().hash_one(w)).collect()
        };
        let words = |t: &str| normalise(t).split(' ').count();
        let mut seen: Vec<(Key, &str)> = Vec::new();
        for (n, rank, ps) in book.iter().filter(|(n, _, _)| *n != chapter) {
            for (i, q) in ps.iter().enumerate() {
                seen.push(((false, *n, *rank, i + 1), q.as_str()));
            }
        }
        for (i, q) in own.iter().enumerate() {
            seen.push(((true, chapter, 0, i + 1), q.as_str()));
        }
        let place = |k: Key| Place { chapter: k.1, paragraph: k.3 };
        if repeatable(p, words(p)) {
            let first = seen
                .iter()
                .filter(|(_, q)| repeatable(q, words(q)) && normalise(q) == normalise(p))
                .min_by_key(|(k, _)| *k);
            if let Some((k, _)) = first {
                return Some((Rule::RepeatedParagraph, place(*k)));
            }
        }
        if words(p) < MIN_NEAR_DUPLICATE_WORDS {
            return None;
        }
        let mine = set(p);
        let mut best: Option<(f64, Key)> = None;
        for (k, q) in seen.iter().filter(|(_, q)| words(q) >= MIN_NEAR_DUPLICATE_WORDS) {
            let theirs = set(q);
            let n = mine.intersection(&theirs).count();
            if n == 0 {
                continue;
            }
            let share = n as f64 / mine.len() as f64;
            let near = n as f64 / (mine.len() + theirs.len() - n) as f64 >= NEAR_DUPLICATE_JACCARD
                || (k.1 == chapter && share >= NEAR_COPY_SHARE);
            if near && best.is_none_or(|(s, b)| share > s || (share == s && *k < b)) {
                best = Some((share, *k));
            }
        }
        best.map(|(_, k)| (Rule::NearDuplicateParagraph, place(k)))
    }

    #[test]
    fn the_index_finds_what_comparing_every_pair_finds() {
        let mut rng = Rng(7);
        let mut book: Vec<(u32, u8, Vec<String>)> = Vec::new();
        let mut seen = Seen::default();
        let (mut exact, mut near) = (0, 0);
        for n in 1..=8u32 {
            for rank in 0..2u8 {
                let earlier: Vec<String> = book.iter().flat_map(|(_, _, ps)| ps.clone()).collect();
                let ps = chapter(&mut rng, &earlier);
                let text = ps.join("\n\n");
                let c = Chapter { number: n, title: "", text: &text };
                let found: Vec<(Rule, Place)> = repeated_paragraphs(&c, &seen)
                    .into_iter()
                    .map(|f| (f.rule, f.other.unwrap_or(Place { chapter: 0, paragraph: 0 })))
                    .collect();
                let mut expected = Vec::new();
                for (i, p) in ps.iter().enumerate() {
                    if let Some(hit) = naive(&book, &ps[..i], n, p) {
                        expected.push(hit);
                    }
                }
                assert_eq!(found, expected, "chapter {n}, text {rank}");
                exact += found.iter().filter(|(r, _)| *r == Rule::RepeatedParagraph).count();
                near += found.iter().filter(|(r, _)| *r == Rule::NearDuplicateParagraph).count();
                seen.add(&c, rank);
                book.push((n, rank, ps));
            }
        }
        // The texts above plant both kinds, across chapters and within one.
        assert!(exact > 20 && near > 20, "{exact} verbatim, {near} near copies");
    }

    /// Ten chapters of 900 words, each drafted and edited (the edit keeps all but one of the
    /// draft's paragraphs): what the coordinator holds for such a book's prose checks.
    fn ten_chapter_book(rng: &mut Rng) -> Seen {
        let mut seen = Seen::default();
        for n in 1..=10u32 {
            let mut ps: Vec<String> = (0..18).map(|_| paragraph_of(rng, 50)).collect();
            let draft = ps.join("\n\n");
            seen.add(&Chapter { number: n, title: "", text: &draft }, 0);
            ps[rng.next(18)] = paragraph_of(rng, 50);
            let edit = ps.join("\n\n");
            seen.add(&Chapter { number: n, title: "", text: &edit }, 1);
        }
        seen
    }

    /// A paragraph of `words` words drawn from 3,000 (prose whose 5-word sequences all differ,
    /// as a model's mostly do, and whose vocabulary is about a novel's).
    fn paragraph_of(rng: &mut Rng, words: usize) -> String {
        (0..words).map(|_| format!("w{}", rng.next(3_000))).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_ten_chapter_book_of_900_word_chapters_is_held_in_under_130_kb() {
        let seen = ten_chapter_book(&mut Rng(1));
        // 10 chapters x 19 distinct paragraphs x 46 shingles = 8,740 shingles at 8 bytes (70
        // KB), the paragraphs and their 360 places, and about 2,900 lower-case words at 12
        // bytes (35 KB). Hash maps of chains held about 620 KB for the same book.
        let (index, all) = (seen.index.heap_bytes(), seen.heap_bytes());
        assert!(index < 90_000 && all < 130_000, "index {index} bytes, all {all}");
        assert_eq!(seen.index.len(), 10 * 18 * 2);
        assert_eq!(seen.index.texts.len(), 10 * 19);
    }
}
