//! The simulated model: deterministic, schema-valid answers for every agent kind, read only
//! from the prompt (its `Facts:` block), so the in-process model and the HTTP sim server agree.
//!
//! Its prose is placeholder text assembled from word lists. It is labelled as simulated in
//! every manuscript; it exists for demos, tests and benchmarks, never for real books.

use crate::facts::Facts;
use scriptorium_proto::book::{
    Cast, ChapterText, Character, Concept, Outline, OutlineChapter, ProseScene, Review, Scene,
    Scores, World,
};
use scriptorium_proto::kind;
use scriptorium_proto::v1::AgentKind;
use serde_json::Value;

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

const FIRST: &[&str] = &[
    "Mara", "Tobin", "Elspeth", "Ravi", "Iona", "Caspian", "Wren", "Dario", "Leocadia", "Fenn",
    "Sabine", "Okoro", "Juno", "Alaric", "Nadia", "Bram", "Tamsin", "Yusuf", "Greer", "Ilse",
];
const LAST: &[&str] = &[
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
const ROLES: &[&str] = &["protagonist", "mentor", "rival", "ally", "antagonist", "confidant"];
const ADJ: &[&str] = &[
    "Silent", "Broken", "Hidden", "Burning", "Last", "Glass", "Iron", "Hollow", "Winter", "Salt",
    "Ninth", "Lantern", "Crooked", "Distant", "Patient", "Quiet",
];
const NOUN: &[&str] = &[
    "Harbour", "Archive", "Crown", "River", "Ledger", "Gate", "Orchard", "Signal", "Bridge", "Map",
    "Tower", "Covenant", "Market", "Compass", "Well", "Garden",
];
const PLACES: &[&str] = &[
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
const FEELINGS: &[&str] = &[
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
const OBJECTS: &[&str] = &[
    "a sealed letter",
    "the brass key",
    "a torn map",
    "the ledger",
    "a silver compass",
    "an unlit lantern",
    "the signet ring",
    "a bundle of notes",
];
const ACTIONS: &[&str] = &[
    "crossed",
    "searched",
    "watched",
    "returned to",
    "argued in",
    "waited in",
    "fled",
    "slipped into",
];
const TOPICS: &[&str] = &[
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

/// Answers the request for `kind` with `user` as prompt; `bad` asks for an answer that breaks a rule.
pub fn answer(kind: AgentKind, user: &str, seed: u64, bad: bool) -> String {
    answer_with(kind, user, seed, if bad { Misbehave::Any } else { Misbehave::No })
}

/// Answers the request for `kind` with `user` as prompt, misbehaving as `how` says.
pub fn answer_with(kind: AgentKind, user: &str, seed: u64, how: Misbehave) -> String {
    let facts = Facts::parse(user);
    let bad = how == Misbehave::Any;
    let mut rng =
        Rng::from_parts(&[kind::name(kind).as_bytes(), &seed.to_le_bytes(), user.as_bytes()]);
    let value: Value = match kind {
        AgentKind::Concept => to_value(concept(&facts, &mut rng)),
        AgentKind::Outline => to_value(outline(&facts, &mut rng, how)),
        AgentKind::Characters => to_value(cast(&facts, &mut rng, bad)),
        AgentKind::World => to_value(world(&facts, &mut rng)),
        AgentKind::Chapter => to_value(chapter(&facts, &mut rng, bad)),
        AgentKind::Review => to_value(review(&facts, &mut rng)),
        AgentKind::Edit => edit(&facts, user, &mut rng, bad),
        AgentKind::Unspecified => Value::Object(Default::default()),
    };
    value.to_string()
}

fn to_value<T: serde::Serialize>(t: T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn title(rng: &mut Rng) -> String {
    format!("The {} {}", rng.pick(ADJ), rng.pick(NOUN))
}

fn topic(facts: &Facts) -> String {
    facts.get("genre").or(facts.get("category")).unwrap_or("this subject").to_lowercase()
}

fn concept(facts: &Facts, rng: &mut Rng) -> Concept {
    let title = facts.get("title").map(str::to_string).unwrap_or_else(|| title(rng));
    let topic = topic(facts);
    Concept {
        logline: format!(
            "When {} is lost, a reluctant keeper of {} must choose between {} and {}.",
            rng.pick(OBJECTS),
            rng.pick(PLACES),
            rng.pick(FEELINGS),
            rng.pick(FEELINGS)
        ),
        description: format!(
            "{title} is a {topic} book about {} and {}, told with patience and a clear line \
             from the first page to the last.",
            rng.pick(TOPICS),
            rng.pick(TOPICS)
        ),
        tone: facts.get("tone").unwrap_or("measured").to_string(),
        audience: facts.get("audience").unwrap_or("general readers").to_string(),
        themes: (0..3).map(|_| rng.pick(TOPICS).to_string()).collect(),
        title,
    }
}

fn cast(facts: &Facts, rng: &mut Rng, bad: bool) -> Cast {
    let n = facts.num("characters").unwrap_or(3) + u32::from(bad);
    let mut names: Vec<String> = Vec::new();
    while names.len() < n as usize {
        let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
        let first = name.split(' ').next().unwrap_or_default().to_string();
        if !names.iter().any(|n| n.starts_with(&format!("{first} "))) {
            names.push(name);
        }
    }
    let characters = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Character {
            age: rng.range(17, 71).to_string(),
            role: if i == 0 { "protagonist".into() } else { rng.pick(ROLES).to_string() },
            physical: format!("Weathered hands, a habit of standing near {}", rng.pick(PLACES)),
            personality: format!("Driven by {}, hiding {}", rng.pick(FEELINGS), rng.pick(FEELINGS)),
            background: format!(
                "Grew up near {} and still keeps {}",
                rng.pick(PLACES),
                rng.pick(OBJECTS)
            ),
            motivations: format!("To protect {}", rng.pick(OBJECTS)),
            relationships: "Owes an old debt to someone in the cast".into(),
            internal_conflict: format!("{} against {}", rng.pick(FEELINGS), rng.pick(FEELINGS)),
            external_conflict: format!("A rival claim on {}", rng.pick(PLACES)),
            arc: format!("From {} to {}", rng.pick(FEELINGS), rng.pick(FEELINGS)),
            name,
        })
        .collect();
    Cast { characters }
}

fn world(facts: &Facts, rng: &mut Rng) -> World {
    let category = facts.get("category").unwrap_or("fiction");
    let sections = World::required_sections(category)
        .iter()
        .map(|s| {
            let text = format!(
                "{} shaped by {} and {}; it is felt most around {}.",
                s.replace('_', " "),
                rng.pick(TOPICS),
                rng.pick(TOPICS),
                rng.pick(PLACES)
            );
            (s.to_string(), text)
        })
        .collect();
    World { sections }
}

fn outline(facts: &Facts, rng: &mut Rng, how: Misbehave) -> Outline {
    let asked = facts.num("chapters").unwrap_or(3);
    let n = if how == Misbehave::ExtraChapters { asked + 3 } else { asked };
    let thirty = matches!(how, Misbehave::Any | Misbehave::ThirtyScenes);
    let cast = facts.list("cast");
    let chapters = (1..=n)
        .map(|number| {
            let scenes = if thirty && number == 1 { 30 } else { rng.range(3, 6) };
            OutlineChapter {
                number,
                title: title(rng),
                summary: format!(
                    "Chapter {number} turns on {} at {}.",
                    rng.pick(OBJECTS),
                    rng.pick(PLACES)
                ),
                scenes: (0..scenes)
                    .map(|_| Scene {
                        summary: format!("A confrontation over {}", rng.pick(OBJECTS)),
                        characters: pick_some(&cast, rng),
                        setting: rng.pick(PLACES).to_string(),
                        goal: format!("Reveal the {}", rng.pick(TOPICS)),
                        emotional_beat: rng.pick(FEELINGS).to_string(),
                    })
                    .collect(),
            }
        })
        .collect();
    Outline { summary: format!("A book in {n} chapters about {}.", rng.pick(TOPICS)), chapters }
}

fn pick_some(cast: &[String], rng: &mut Rng) -> Vec<String> {
    if cast.is_empty() {
        return Vec::new();
    }
    let k = rng.range(1, cast.len().min(2) as u32) as usize;
    let start = (rng.next_u64() % cast.len() as u64) as usize;
    (0..k).map(|i| cast[(start + i) % cast.len()].clone()).collect()
}

fn sentence(rng: &mut Rng, names: &[&str], topic: &str) -> String {
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
    match rng.range(0, 5) {
        0 => format!(
            "{a} {} {}, carrying {}.",
            rng.pick(ACTIONS),
            rng.pick(PLACES),
            rng.pick(OBJECTS)
        ),
        1 => format!("A slow {} settled over {a} as the light failed.", rng.pick(FEELINGS)),
        2 => format!("\"We cannot wait,\" {a} said, and the room went still."),
        3 => format!("Somewhere beyond {}, a bell rang twice.", rng.pick(PLACES)),
        4 => format!("{a} remembered {} and felt {} again.", rng.pick(OBJECTS), rng.pick(FEELINGS)),
        _ => format!("Nobody in {} spoke of the {} anymore.", rng.pick(PLACES), rng.pick(TOPICS)),
    }
}

fn prose(rng: &mut Rng, names: &[&str], topic: &str, words: usize) -> String {
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

fn chapter(facts: &Facts, rng: &mut Rng, bad: bool) -> ChapterText {
    let number = facts.num("chapter").unwrap_or(1);
    // A request for part of a chapter writes only its scenes and words.
    let (first, scenes, words) = match facts.num("scenes in this part") {
        Some(k) => (
            facts.num("first scene of this part").unwrap_or(1),
            k.clamp(1, 6),
            facts.num("words in this part").unwrap_or(300) as usize,
        ),
        None => (
            1,
            facts.num("scenes in this chapter").unwrap_or(3).clamp(1, 6),
            facts.num("words per chapter").unwrap_or(800) as usize,
        ),
    };
    let mut cast = facts.list("chapter cast");
    if cast.is_empty() {
        cast = facts.list("cast");
    }
    let names: Vec<&str> = cast.iter().map(String::as_str).collect();
    let topic = topic(facts);
    let per_scene = words / scenes as usize + 1;
    ChapterText {
        number,
        title: facts.get("chapter title").map(str::to_string).unwrap_or_else(|| title(rng)),
        scenes: (0..scenes)
            .map(|i| ProseScene {
                heading: format!("Scene {}", first + i),
                text: if bad { String::new() } else { prose(rng, &names, &topic, per_scene) },
            })
            .collect(),
        summary: format!("In chapter {number}, {} changes everything.", rng.pick(OBJECTS)),
        characters: cast,
        changes: Vec::new(),
    }
}

fn review(facts: &Facts, rng: &mut Rng) -> Review {
    // The middle scene, named as the review prompt asks.
    let at = facts
        .num("scenes in this chapter")
        .map(|n| format!("Scene {}: ", n.div_ceil(2)))
        .unwrap_or_default();
    let mut score = || rng.range(5, 9) as u8;
    let scores = Scores {
        consistency: score(),
        clarity: score(),
        plot_holes: score(),
        redundancy: score(),
        flow: score(),
        engagement: score(),
    };
    Review {
        verdict: if rng.chance(0.5) { "accept".into() } else { "revise".into() },
        scores,
        issues: vec![format!(
            "{at}The middle scene leans on {} without setting it up",
            rng.pick(OBJECTS)
        )],
        suggestions: vec![format!(
            "{at}Plant {} earlier and sharpen the final beat",
            rng.pick(OBJECTS)
        )],
    }
}

/// An edit: with numbered draft scenes (the default prompt), only the revised scene (the last
/// one shown) with its number; with an unnumbered draft, the whole revised chapter.
fn edit(facts: &Facts, user: &str, rng: &mut Rng, bad: bool) -> Value {
    let doc = user.find("Draft:").and_then(|i| crate::extract::json_object(&user[i..]).ok());
    let topic = topic(facts);
    let changes = vec!["Sharpened the closing beat as the review asked".to_string()];
    let numbered = doc
        .as_ref()
        .and_then(|d| d["scenes"].as_array())
        .and_then(|scenes| scenes.last().filter(|s| s["number"].is_u64()).cloned());
    if let (Some(mut scene), Some(doc)) = (numbered, &doc) {
        let cast = facts.list("chapter cast");
        let names: Vec<&str> = cast.iter().map(String::as_str).collect();
        let text = format!(
            "{}\n\n{}",
            scene["text"].as_str().unwrap_or_default(),
            sentence(rng, &names, &topic)
        );
        // A bad edit empties the scene it revises.
        scene["text"] = Value::String(if bad { String::new() } else { text });
        let scenes = vec![scene];
        return serde_json::json!({
            "scenes": scenes,
            "summary": format!("In chapter {}, {} changes everything.", doc["number"], rng.pick(OBJECTS)),
            "changes": changes,
        });
    }
    let draft = doc.and_then(|v| serde_json::from_value::<ChapterText>(v).ok());
    let Some(mut draft) = draft else { return to_value(chapter(facts, rng, bad)) };
    let cast = draft.characters.clone();
    let names: Vec<&str> = cast.iter().map(String::as_str).collect();
    if let Some(last) = draft.scenes.last_mut() {
        last.text.push_str("\n\n");
        last.text.push_str(&sentence(rng, &names, &topic));
    }
    if bad {
        draft.scenes.clear();
    }
    draft.changes = changes;
    to_value(draft)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!((ch.number, ch.scenes.len()), (2, 4));
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
        assert_eq!(
            (ch.scenes[0].heading.as_str(), ch.scenes[1].heading.as_str()),
            ("Scene 3", "Scene 4")
        );
        assert!((360..460).contains(&ch.word_count()), "{}", ch.word_count());
    }

    #[test]
    fn edits_of_numbered_drafts_answer_with_the_revised_scene_only() {
        let p = "- Chapter: 1\nDraft:\n{\"number\": 1, \"title\": \"T\", \"scenes\": [{\"number\": 2, \"heading\": \"Scene 2\", \"text\": \"Old text.\"}]}";
        let v: Value = serde_json::from_str(&answer(AgentKind::Edit, p, 7, false)).unwrap();
        let scenes = v["scenes"].as_array().unwrap();
        assert_eq!(scenes.len(), 1);
        assert_eq!(scenes[0]["number"], 2);
        assert!(scenes[0]["text"].as_str().unwrap().starts_with("Old text.\n\n"));
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
