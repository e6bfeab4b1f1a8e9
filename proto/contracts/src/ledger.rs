//! The continuity ledger of a book: what the accepted chapters said happened (their summaries),
//! each character's state (alive or dead and since when, aliases, where they are, what they
//! carry) and the threads still open. It is folded from the chapters' own continuity reports
//! ([`Continuity`](crate::kinds::chapter::Continuity)), so it is a pure function of the accepted
//! chapters; its text rendering for prompts is bounded and condenses, oldest first.

use crate::kinds::{Cast, ChapterText};
use crate::prose::{Person, normalise};
use serde::{Deserialize, Serialize};

/// Most open threads kept; the oldest are dropped first.
pub const MAX_OPEN_THREADS: usize = 12;
/// Most aliases kept per character.
pub const MAX_ALIASES: usize = 4;

/// What one accepted chapter said happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChapterNote {
    /// 1-based chapter number.
    pub number: u32,
    /// The chapter's accepted summary.
    pub summary: String,
}

/// The state of one character after the chapters applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CharacterState {
    /// Full name, as in the cast.
    pub name: String,
    /// Other names the prose uses for them.
    pub aliases: Vec<String>,
    /// False once they died.
    pub alive: bool,
    /// The chapter they died in.
    pub died_in_chapter: Option<u32>,
    /// Where they were last reported.
    pub place: String,
    /// What they were last reported carrying.
    pub carries: String,
    /// The last chapter that reported them present.
    pub last_seen: Option<u32>,
}

impl Default for CharacterState {
    fn default() -> Self {
        CharacterState {
            name: String::new(),
            aliases: Vec::new(),
            alive: true,
            died_in_chapter: None,
            place: String::new(),
            carries: String::new(),
            last_seen: None,
        }
    }
}

/// A question or promise to the reader not yet resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thread {
    /// The thread, as the chapter that opened it worded it.
    pub text: String,
    /// The chapter that opened it.
    pub opened_in: u32,
}

/// The continuity ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ledger {
    /// The chapters applied, in order, with their accepted summaries.
    pub chapters: Vec<ChapterNote>,
    /// Every cast member's state.
    pub characters: Vec<CharacterState>,
    /// Threads still open, oldest first.
    pub threads: Vec<Thread>,
}

/// How much of the ledger a prompt shows, from everything to the deaths alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detail {
    /// Every character's state and every open thread.
    Full,
    /// The focus characters in full, the others by status; the five latest threads.
    Focused,
    /// Dead characters and aliases only; the three latest threads.
    Brief,
    /// Dead characters only.
    Deaths,
}

impl Ledger {
    /// An empty ledger of the book whose cast is `cast`.
    pub fn new(cast: Option<&Cast>) -> Ledger {
        let characters = cast
            .map(|c| {
                c.characters
                    .iter()
                    .map(|c| CharacterState { name: c.name.clone(), ..Default::default() })
                    .collect()
            })
            .unwrap_or_default();
        Ledger { characters, ..Default::default() }
    }

    /// The ledger after `chapters` (any order; each applied once, by number).
    pub fn build<'a>(
        cast: Option<&Cast>,
        chapters: impl IntoIterator<Item = &'a ChapterText>,
    ) -> Ledger {
        let mut list: Vec<&ChapterText> = chapters.into_iter().collect();
        list.sort_by_key(|c| c.number);
        list.dedup_by_key(|c| c.number);
        let mut l = Ledger::new(cast);
        for c in list {
            l.apply(c.number, c);
        }
        l
    }

    /// Applies accepted chapter `chapter`: its summary, and its continuity report (deaths,
    /// aliases, whereabouts, threads opened and closed). Apply each chapter once, in order.
    pub fn apply(&mut self, chapter: u32, text: &ChapterText) {
        self.chapters.retain(|c| c.number != chapter);
        let at = self.chapters.partition_point(|c| c.number < chapter);
        self.chapters.insert(at, ChapterNote { number: chapter, summary: text.summary.clone() });
        let report = &text.continuity;
        for name in &text.characters {
            if let Some(c) = self.find_mut(name) {
                c.last_seen = Some(c.last_seen.map_or(chapter, |s| s.max(chapter)));
            }
        }
        for name in &report.deaths {
            if let Some(c) = self.find_mut(name).filter(|c| c.alive) {
                c.alive = false;
                c.died_in_chapter = Some(chapter);
            }
        }
        for a in &report.aliases {
            if let Some(c) = self.find_mut(&a.name) {
                let alias = a.alias.trim().to_string();
                if !alias.is_empty()
                    && c.aliases.len() < MAX_ALIASES
                    && !c.aliases.iter().any(|x| x.eq_ignore_ascii_case(&alias))
                {
                    c.aliases.push(alias);
                }
            }
        }
        for w in &report.whereabouts {
            if let Some(c) = self.find_mut(&w.name) {
                c.place = w.place.trim().to_string();
                c.carries = w.carries.trim().to_string();
                c.last_seen = Some(c.last_seen.map_or(chapter, |s| s.max(chapter)));
            }
        }
        for closed in &report.threads_closed {
            if let Some(i) = self.threads.iter().position(|t| same_thread(&t.text, closed)) {
                self.threads.remove(i);
            }
        }
        for opened in &report.threads_opened {
            let text = opened.trim();
            if !text.is_empty() && !self.threads.iter().any(|t| same_thread(&t.text, text)) {
                self.threads.push(Thread { text: text.to_string(), opened_in: chapter });
            }
        }
        let extra = self.threads.len().saturating_sub(MAX_OPEN_THREADS);
        self.threads.drain(..extra);
    }

    fn find_index(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        let first = |c: &CharacterState| {
            c.name.split_whitespace().next().is_some_and(|f| f.eq_ignore_ascii_case(name))
        };
        self.characters
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .or_else(|| {
                self.characters
                    .iter()
                    .position(|c| c.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
            })
            .or_else(|| self.characters.iter().position(first))
    }

    fn find_mut(&mut self, name: &str) -> Option<&mut CharacterState> {
        self.find_index(name).map(|i| &mut self.characters[i])
    }

    /// The character `name` names: full name, alias or first name (case-insensitive).
    pub fn character(&self, name: &str) -> Option<&CharacterState> {
        self.find_index(name).map(|i| &self.characters[i])
    }

    /// Whether `name` is dead throughout chapter `chapter` (died in an earlier one).
    pub fn is_dead(&self, name: &str, chapter: u32) -> bool {
        self.character(name)
            .is_some_and(|c| !c.alive && c.died_in_chapter.is_none_or(|d| d < chapter))
    }

    /// The dead characters, in cast order.
    pub fn dead(&self) -> impl Iterator<Item = &CharacterState> {
        self.characters.iter().filter(|c| !c.alive)
    }

    /// The characters as the prose checks know them: names, aliases, deaths.
    pub fn people(&self) -> Vec<Person> {
        self.characters
            .iter()
            .map(|c| {
                let p = Person::new(c.name.clone()).with_aliases(c.aliases.clone());
                if c.alive { p } else { p.died(c.died_in_chapter) }
            })
            .collect()
    }

    /// The accepted summary of chapter `n`, if applied.
    pub fn summary(&self, n: u32) -> Option<&str> {
        self.chapters.iter().find(|c| c.number == n).map(|c| c.summary.as_str())
    }

    /// The ledger as prompt text at `detail`; `focus` are the characters the chapter at hand
    /// plans (kept in full longest). Summaries are not part of it: prompts carry them apart.
    pub fn render(&self, detail: Detail, focus: &[&str]) -> String {
        let in_focus =
            |c: &CharacterState| focus.iter().any(|f| self.character(f).is_some_and(|x| x == c));
        let mut chars = String::new();
        for c in &self.characters {
            let line = match detail {
                _ if !c.alive => Some(dead_line(c)),
                Detail::Full => Some(full_line(c)),
                Detail::Focused if in_focus(c) => Some(full_line(c)),
                Detail::Focused => Some(format!("* {}: alive\n", c.name)),
                Detail::Brief if !c.aliases.is_empty() => {
                    Some(format!("* {}: alive; {}\n", c.name, aliases(c)))
                }
                _ => None,
            };
            chars.extend(line);
        }
        let threads = match detail {
            Detail::Full => self.threads.len(),
            Detail::Focused => 5,
            Detail::Brief => 3,
            Detail::Deaths => 0,
        };
        let skip = self.threads.len().saturating_sub(threads);
        let mut out = String::new();
        if !chars.is_empty() {
            out += "Characters:\n";
            out += &chars;
        }
        if threads > 0 && !self.threads.is_empty() {
            out += "Open threads:\n";
            if skip > 0 {
                out += &format!("(the {skip} oldest left out)\n");
            }
            for t in &self.threads[skip..] {
                out += &format!("* {} (opened in chapter {})\n", t.text, t.opened_in);
            }
        }
        if out.is_empty() {
            out = if detail == Detail::Deaths {
                "(nobody has died)\n".into()
            } else {
                "(nothing recorded yet)\n".into()
            };
        }
        out
    }

    /// The most detailed rendering that fits `max_chars` (the deaths alone when none does).
    pub fn render_within(&self, max_chars: usize, focus: &[&str]) -> String {
        [Detail::Full, Detail::Focused, Detail::Brief, Detail::Deaths]
            .into_iter()
            .map(|d| self.render(d, focus))
            .find(|s| s.chars().count() <= max_chars)
            .unwrap_or_else(|| self.render(Detail::Deaths, focus))
    }
}

fn aliases(c: &CharacterState) -> String {
    let quoted: Vec<String> = c.aliases.iter().map(|a| format!("\"{a}\"")).collect();
    format!("also called {}", quoted.join(", "))
}

fn full_line(c: &CharacterState) -> String {
    let mut s = format!("* {}: alive", c.name);
    if let Some(n) = c.last_seen {
        s += &format!("; last seen in chapter {n}");
    }
    if !c.place.is_empty() {
        s += &format!(" at {}", c.place);
    }
    let carries = c.carries.trim();
    if !carries.is_empty() && !carries.eq_ignore_ascii_case("nothing") {
        s += &format!(", carrying {carries}");
    }
    if !c.aliases.is_empty() {
        s += &format!("; {}", aliases(c));
    }
    s + "\n"
}

fn dead_line(c: &CharacterState) -> String {
    let when = c.died_in_chapter.map(|d| format!(" since chapter {d}")).unwrap_or_default();
    format!("* {}: DEAD{when}: may be remembered or mourned, never act or speak\n", c.name)
}

/// Whether two wordings name the same thread: equal or one containing the other after
/// normalising, or sharing at least 60% of their words.
fn same_thread(a: &str, b: &str) -> bool {
    let (a, b) = (normalise(a), normalise(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b || a.contains(&b) || b.contains(&a) {
        return true;
    }
    let wa: std::collections::HashSet<&str> = a.split(' ').collect();
    let wb: std::collections::HashSet<&str> = b.split(' ').collect();
    let shared = wa.intersection(&wb).count();
    shared * 10 >= wa.union(&wb).count() * 6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Character;
    use crate::kinds::chapter::{Alias, Continuity, Whereabouts};

    fn cast() -> Cast {
        let c = |n: &str| Character { name: n.into(), role: "r".into(), ..Default::default() };
        Cast { characters: vec![c("Mara Vell"), c("Tobin Thorne"), c("Iona Quill")] }
    }

    fn chapter(n: u32, continuity: Continuity) -> ChapterText {
        ChapterText {
            number: n,
            summary: format!("Summary {n}."),
            characters: vec!["Mara Vell".into()],
            continuity,
            ..Default::default()
        }
    }

    #[test]
    fn chapters_fold_into_states_deaths_aliases_and_threads() {
        let one = chapter(
            1,
            Continuity {
                deaths: vec!["Tobin".into()],
                aliases: vec![Alias { name: "Mara Vell".into(), alias: "the tide-reader".into() }],
                whereabouts: vec![Whereabouts {
                    name: "Mara Vell".into(),
                    place: "the lower docks".into(),
                    carries: "the brass key".into(),
                }],
                threads_opened: vec!["Who sent the sealed letter?".into()],
                ..Default::default()
            },
        );
        let two = chapter(
            2,
            Continuity {
                threads_closed: vec!["who sent the sealed letter".into()],
                threads_opened: vec!["Why is the well dry?".into()],
                ..Default::default()
            },
        );
        // Any order in, chapter order applied.
        let l = Ledger::build(Some(&cast()), [&two, &one]);
        assert_eq!(l.chapters.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(l.summary(2), Some("Summary 2."));
        assert!(l.is_dead("Tobin Thorne", 2) && !l.is_dead("Tobin Thorne", 1));
        assert!(!l.is_dead("Mara Vell", 5));
        assert_eq!(l.character("the tide-reader").map(|c| c.name.as_str()), Some("Mara Vell"));
        let mara = l.character("Mara").unwrap();
        assert_eq!((mara.place.as_str(), mara.last_seen), ("the lower docks", Some(2)));
        assert_eq!(l.threads.len(), 1, "the letter thread is closed: {:?}", l.threads);
        assert_eq!(l.threads[0].opened_in, 2);
        let people = l.people();
        assert!(people[1].is_dead_in(2) && !people[1].is_dead_in(1));
        assert_eq!(people[0].aliases, ["the tide-reader"]);
    }

    #[test]
    fn the_rendering_is_bounded_and_condenses_oldest_first() {
        let mut l = Ledger::new(Some(&cast()));
        for n in 1..=20 {
            let mut c = Continuity {
                threads_opened: vec![format!("Thread number {n} about the {n}th bell")],
                ..Default::default()
            };
            if n == 3 {
                c.deaths = vec!["Iona Quill".into()];
            }
            l.apply(n, &chapter(n, c));
        }
        assert_eq!(l.threads.len(), MAX_OPEN_THREADS, "open threads are capped");
        assert_eq!(l.threads[0].opened_in, 9, "the oldest threads go first");
        let full = l.render(Detail::Full, &[]);
        assert!(full.contains("Iona Quill: DEAD since chapter 3"), "{full}");
        assert!(full.contains("Thread number 20") && full.contains("Thread number 9 "));
        let brief = l.render(Detail::Brief, &[]);
        assert!(brief.contains("the 9 oldest left out") && brief.contains("Thread number 20"));
        assert!(!brief.contains("Thread number 17 "), "{brief}");
        let deaths = l.render(Detail::Deaths, &[]);
        assert!(deaths.contains("Iona Quill: DEAD") && !deaths.contains("Mara"), "{deaths}");
        let mut last = usize::MAX;
        for max in [10_000, full.len() - 1, brief.len(), 10] {
            let r = l.render_within(max, &["Mara Vell"]);
            assert!(r.len() <= last, "renderings shrink with the room");
            assert!(r.contains("Iona Quill: DEAD"), "the dead are never left out");
            last = r.len();
        }
    }
}
