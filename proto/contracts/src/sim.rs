//! The simulated answers: deterministic, schema-valid answers for every agent kind, read only
//! from the prompt (its `Facts:` block), so the in-process model and the HTTP sim server agree.
//! Each kind's answer is in its own file; this module holds the generator and word lists.
//!
//! Its prose is placeholder text assembled from word lists. It is labelled as simulated in
//! every manuscript; it exists for demos, tests and benchmarks, never for real books.

use crate::facts::Facts;
use crate::mistake::{Mistake, Mistakes};
use scriptorium_proto::kind;
use scriptorium_proto::v1::AgentKind;

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `parts`.
    pub fn from_parts(parts: &[&[u8]]) -> Self {
        // FNV-1a over the parts: stable across platforms and releases.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for p in parts {
            for b in p.iter().chain(std::iter::once(&0xffu8)) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Rng(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }

    /// A probability draw.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// One element of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

pub(crate) const FIRST: &[&str] = &[
    "Mara", "Tobin", "Elspeth", "Ravi", "Iona", "Caspian", "Wren", "Dario", "Leocadia", "Fenn",
    "Sabine", "Okoro", "Juno", "Alaric", "Nadia", "Bram", "Tamsin", "Yusuf", "Greer", "Ilse",
];
pub(crate) const LAST: &[&str] = &[
    "Vell",
    "Ashdown",
    "Quill",
    "Marrow",
    "Okafor",
    "Lindqvist",
    "Thorne",
    "Castellan",
    "Reyes",
    "Halloran",
    "Ibarra",
    "Kestrel",
    "Moreau",
    "Penhallow",
    "Sato",
    "Varga",
];
pub(crate) const ROLES: &[&str] =
    &["protagonist", "mentor", "rival", "ally", "antagonist", "confidant"];
pub(crate) const ADJ: &[&str] = &[
    "Silent", "Broken", "Hidden", "Burning", "Last", "Glass", "Iron", "Hollow", "Winter", "Salt",
    "Ninth", "Lantern", "Crooked", "Distant", "Patient", "Quiet",
];
pub(crate) const NOUN: &[&str] = &[
    "Harbour", "Archive", "Crown", "River", "Ledger", "Gate", "Orchard", "Signal", "Bridge", "Map",
    "Tower", "Covenant", "Market", "Compass", "Well", "Garden",
];
pub(crate) const PLACES: &[&str] = &[
    "the lower docks",
    "the old observatory",
    "a rain-dark square",
    "the salt marshes",
    "the council hall",
    "a cramped attic",
    "the northern road",
    "the flooded library",
    "the night market",
    "a ruined chapel",
    "the ferry crossing",
    "the glasshouse",
];
pub(crate) const FEELINGS: &[&str] = &[
    "dread",
    "hope",
    "resolve",
    "grief",
    "suspicion",
    "relief",
    "wonder",
    "anger",
    "doubt",
    "tenderness",
];
pub(crate) const OBJECTS: &[&str] = &[
    "a sealed letter",
    "the brass key",
    "a torn map",
    "the ledger",
    "a silver compass",
    "an unlit lantern",
    "the signet ring",
    "a bundle of notes",
];
pub(crate) const ACTIONS: &[&str] = &[
    "crossed",
    "searched",
    "watched",
    "returned to",
    "argued in",
    "waited in",
    "fled",
    "slipped into",
];
pub(crate) const MOMENTS: &[&str] = &[
    "the light failed",
    "the tide turned",
    "the lamps were lit",
    "the rain began",
    "the bells fell silent",
    "the fog lifted",
    "the ferry docked",
    "the fires burned low",
    "dawn broke",
    "the wind rose",
];
pub(crate) const DELAYS: &[&str] =
    &["wait", "stay", "linger", "hide", "turn back", "rest", "delay", "hesitate"];
pub(crate) const TOPICS: &[&str] = &[
    "incentives",
    "feedback loops",
    "trade-offs",
    "evidence",
    "habits",
    "constraints",
    "measurement",
    "trust",
    "risk",
    "priorities",
    "systems",
    "communication",
];

/// How the simulated model misbehaves in one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Misbehave {
    /// A correct answer.
    #[default]
    No,
    /// An answer that breaks a rule of its kind (a cast one too large, 30 scenes in an
    /// outline's first chapter, a chapter without prose, an edit without scenes).
    Any,
    /// An outline with three chapters more than asked.
    ExtraChapters,
    /// An outline whose first chapter has 30 scenes.
    ThirtyScenes,
}

/// What a simulated chapter does besides answering: the mistake of its first attempt, and
/// whether chapter 1 kills someone (so that the resurrect mistake has a dead character).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Story {
    pub(crate) mistake: Option<Mistake>,
    pub(crate) kill: bool,
}

/// Answers the request for `kind` with `user` as prompt; `bad` asks for an answer that breaks a rule.
pub fn answer(kind: AgentKind, user: &str, seed: u64, bad: bool) -> String {
    answer_with(kind, user, seed, if bad { Misbehave::Any } else { Misbehave::No })
}

/// Answers the request for `kind` with `user` as prompt, misbehaving as `how` says.
pub fn answer_with(kind: AgentKind, user: &str, seed: u64, how: Misbehave) -> String {
    respond(kind, user, seed, how, Story::default())
}

/// Answers like [`answer`], making one of `mistakes` when [`mistake`] says so (and, with the
/// resurrect mistake enabled, killing a character in chapter 1).
pub fn answer_mistaken(
    kind: AgentKind,
    user: &str,
    seed: u64,
    bad: bool,
    mistakes: Mistakes,
) -> String {
    let how = if bad { Misbehave::Any } else { Misbehave::No };
    let story = Story {
        mistake: mistake(kind, user, seed, mistakes),
        kill: kind == AgentKind::Chapter && mistakes.has(Mistake::Resurrect),
    };
    respond(kind, user, seed, how, story)
}

/// Whether `user` is a re-ask: it carries the rejection of the previous answer.
pub fn is_reask(user: &str) -> bool {
    user.contains("Your previous answer (attempt") && user.contains("was rejected")
}

/// The mistake the answer to a chapter request `user` makes: none on a re-ask or for other
/// kinds; otherwise, drawn per prompt and seed at `mistakes.rate`, one of those enabled.
pub fn mistake(kind: AgentKind, user: &str, seed: u64, mistakes: Mistakes) -> Option<Mistake> {
    if kind != AgentKind::Chapter || mistakes.is_none() || is_reask(user) {
        return None;
    }
    let mut rng = Rng::from_parts(&[b"mistake", &seed.to_le_bytes(), user.as_bytes()]);
    if !rng.chance(mistakes.rate) {
        return None;
    }
    let list = mistakes.list();
    Some(list[(rng.next_u64() % list.len() as u64) as usize])
}

fn respond(kind: AgentKind, user: &str, seed: u64, how: Misbehave, story: Story) -> String {
    // A request for a kind no agent answers (assembly, or one the sim cannot tell) gets an
    // empty object, as a model that did not understand would give: validation refuses it.
    let Ok(spec) = crate::kinds::agent(kind) else { return "{}".into() };
    let facts = Facts::parse(user);
    let mut rng =
        Rng::from_parts(&[kind::name(kind).as_bytes(), &seed.to_le_bytes(), user.as_bytes()]);
    let mut call = SimCall { facts: &facts, user, rng: &mut rng, how, story };
    spec.simulate(&mut call).to_string()
}

/// One request to the simulated model, as a kind's `simulate` reads it.
pub struct SimCall<'a> {
    /// The prompt's `Facts:` block.
    pub facts: &'a Facts,
    /// The whole user message.
    pub user: &'a str,
    /// The generator, seeded from the kind, the seed and the prompt.
    pub rng: &'a mut Rng,
    /// How this answer misbehaves.
    pub how: Misbehave,
    pub(crate) story: Story,
}

impl SimCall<'_> {
    /// Whether this answer breaks a rule of its kind on purpose.
    pub fn bad(&self) -> bool {
        self.how == Misbehave::Any
    }
}

pub(crate) fn title(rng: &mut Rng) -> String {
    format!("The {} {}", rng.pick(ADJ), rng.pick(NOUN))
}

pub(crate) fn topic(facts: &Facts) -> String {
    facts.get("genre").or(facts.get("category")).unwrap_or("this subject").to_lowercase()
}

pub(crate) fn sentence(rng: &mut Rng, names: &[&str], topic: &str) -> String {
    if names.is_empty() {
        let t = rng.pick(TOPICS);
        return match rng.range(0, 3) {
            0 => format!("Consider how {t} shapes every decision in {topic}, often unseen."),
            1 => format!("The evidence on {t} is clearer than most people expect."),
            2 => format!("A simple test shows where {t} helps and where it misleads."),
            _ => format!("Teams that name their {t} early avoid costly surprises later."),
        };
    }
    let a = names[(rng.next_u64() % names.len() as u64) as usize];
    // Every template has a slot in each run of five words, so that two paragraphs of a long
    // book share few 5-word sequences by chance: a simulated book of ten chapters must pass
    // the near-copy rule as a real one does (issue 24's thousand books).
    match rng.range(0, 6) {
        0 => format!(
            "{a} {} {}, carrying {}.",
            rng.pick(ACTIONS),
            rng.pick(PLACES),
            rng.pick(OBJECTS)
        ),
        1 => format!("A slow {} settled over {a} as {}.", rng.pick(FEELINGS), rng.pick(MOMENTS)),
        2 => format!(
            "\"We cannot {},\" {a} said, and {} went still.",
            rng.pick(DELAYS),
            rng.pick(PLACES)
        ),
        3 => {
            format!("Somewhere beyond {}, a bell rang as {}.", rng.pick(PLACES), rng.pick(MOMENTS))
        }
        4 => format!("{a} remembered {} and felt {} again.", rng.pick(OBJECTS), rng.pick(FEELINGS)),
        5 => format!(
            "When {}, {a} {} {} alone.",
            rng.pick(MOMENTS),
            rng.pick(ACTIONS),
            rng.pick(PLACES)
        ),
        _ => format!("Nobody in {} spoke of the {} anymore.", rng.pick(PLACES), rng.pick(TOPICS)),
    }
}

/// Sentences until at least `words` words, five to a paragraph.
pub(crate) fn prose(rng: &mut Rng, names: &[&str], topic: &str, words: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut in_para = 0;
    while count < words {
        let s = sentence(rng, names, topic);
        count += s.split_whitespace().count();
        if in_para == 5 {
            out.push_str("\n\n");
            in_para = 0;
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&s);
        in_para += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Cast, ChapterText, Outline, Review};
    use serde_json::Value;

    #[test]
    fn same_prompt_and_seed_give_the_same_answer_and_another_seed_does_not() {
        let p = "Facts:\n- Characters: 3\n";
        assert_eq!(
            answer(AgentKind::Characters, p, 1, false),
            answer(AgentKind::Characters, p, 1, false)
        );
        assert_ne!(
            answer(AgentKind::Characters, p, 1, false),
            answer(AgentKind::Characters, p, 2, false)
        );
    }

    #[test]
    fn answers_respect_the_facts() {
        let cast: Cast =
            serde_json::from_str(&answer(AgentKind::Characters, "- Characters: 4", 7, false))
                .unwrap();
        assert_eq!(cast.characters.len(), 4);
        let outline: Outline = serde_json::from_str(&answer(
            AgentKind::Outline,
            "- Chapters: 5\n- Cast: A B; C D",
            7,
            false,
        ))
        .unwrap();
        assert_eq!(outline.chapters.len(), 5);
        assert!(outline.chapters.iter().all(|c| (3..=6).contains(&c.scenes.len())));
        let ch: ChapterText = serde_json::from_str(&answer(
            AgentKind::Chapter,
            "- Chapter: 2\n- Scenes in this chapter: 4\n- Words per chapter: 500\n- Cast: A B",
            7,
            false,
        ))
        .unwrap();
        // The chapter's number is the engine's: the answer leaves it out.
        assert_eq!((ch.number, ch.scenes.len()), (0, 4));
        assert!((500..700).contains(&ch.word_count()), "{}", ch.word_count());
    }

    #[test]
    fn bad_answers_break_a_rule() {
        let outline: Outline =
            serde_json::from_str(&answer(AgentKind::Outline, "- Chapters: 2", 7, true)).unwrap();
        assert_eq!(outline.chapters[0].scenes.len(), 30);
        let extra = answer_with(AgentKind::Outline, "- Chapters: 2", 7, Misbehave::ExtraChapters);
        let outline: Outline = serde_json::from_str(&extra).unwrap();
        assert_eq!(outline.chapters.len(), 5);
    }

    #[test]
    fn chapter_parts_write_their_scenes_and_words() {
        let p = "- Chapter: 2\n- Scenes in this chapter: 5\n- Words per chapter: 900\n\
                 - Scenes in this part: 2\n- First scene of this part: 3\n- Words in this part: 360";
        let ch: ChapterText =
            serde_json::from_str(&answer(AgentKind::Chapter, p, 7, false)).unwrap();
        assert_eq!(ch.scenes.len(), 2);
        assert!((360..460).contains(&ch.word_count()), "{}", ch.word_count());
    }

    #[test]
    fn edits_of_numbered_drafts_answer_with_the_revised_scene_only() {
        let p = "- Chapter: 1\nDraft:\n{\"number\": 1, \"title\": \"T\", \"scenes\": [{\"number\": 2, \"heading\": \"Scene 2\", \"text\": \"Old text.\"}]}";
        let v: Value = serde_json::from_str(&answer(AgentKind::Edit, p, 7, false)).unwrap();
        let scenes = v["scenes"].as_array().unwrap();
        assert_eq!(scenes.len(), 1);
        assert_eq!(scenes[0]["number"], 2);
        // The closing sentence is rewritten, the rest kept.
        let text = scenes[0]["text"].as_str().unwrap();
        assert!(!text.contains("Old text.") && text.ends_with('.'), "{text}");
        let p = p.replace("Old text.", "Kept. Old text.");
        let v: Value = serde_json::from_str(&answer(AgentKind::Edit, &p, 7, false)).unwrap();
        let text = v["scenes"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("Kept. ") && !text.contains("Old text."), "{text}");
    }

    #[test]
    fn reviews_name_the_scene_they_concern() {
        let r: Review = serde_json::from_str(&answer(
            AgentKind::Review,
            "- Scenes in this chapter: 5",
            7,
            false,
        ))
        .unwrap();
        assert!(r.issues[0].starts_with("Scene 3: "), "{:?}", r.issues);
    }
}
