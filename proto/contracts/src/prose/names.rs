//! Characters in the prose: names the cast does not know, dead characters who act, and
//! characters a chapter's plan lists who never appear.
//!
//! # Names outside the cast (heuristic)
//! A capitalised word is only a candidate name when its position says "person":
//! - strong evidence: it follows a speech verb (`said Jorin`), is the subject of a speech verb
//!   in mid-sentence (`"Go," Jorin said`), follows a title (`Captain Harrow`), or forms a First
//!   Last pair with another capitalised word in mid-sentence (`met Jorin Vask`);
//! - weak evidence: it is the subject of an action verb (`Jorin walked`), or of a speech verb at
//!   a sentence start (`Silence answered.`), which counts only if the word is also capitalised
//!   somewhere in mid-sentence in the chapter (sentence starts capitalise anything).
//!
//! A candidate is reported when it is none of: a word of a cast name or alias, a word of the
//! book's own texts (world, outline, concept: [`Canon::learn`]), a common capitalised English
//! word (pronouns, determiners, titles, kinship words, days, months, nationalities), or a word the
//! book also writes in lower case (`Rain fell` when `rain` appears elsewhere). A noun after an
//! article or a possessive (`the Guild said`) is not a person; a pair after a place preposition
//! (`in New York`) or with a place word (`Hyde Park`, `New ...`, `... Street`) is a place.
//! A First Last pair whose first word is a cast first name but which is no cast name
//! (`Tobin Vell` when the cast has Tobin Thorne and Mara Vell) is reported as a renamed character.
//!
//! Limits: names only ever seen at sentence starts with no verb after them, names in vocatives
//! (`Come here, Jorin.`), and names that are also common words written in lower case elsewhere
//! are missed; a place or organisation used as the subject of a speech verb without an article
//! (`Harrowgate said no`) is reported unless the book's texts name it.
//!
//! # Dead characters acting (heuristic, conservative)
//! A character the ledger marks dead (see [`Person::is_dead_in`]) acts when, in narration (not
//! inside quotation marks), their full name, first name (when no living character shares it),
//! last name (when no other character has it) or an alias is the subject of a speech or action
//! verb, possibly after an `-ly` adverb (`Mara said`, `Mara slowly turned`), or follows a speech
//! verb (`said Mara`). Sentences with a memory or death cue (`remembered`, `memory`, `ghost`,
//! `grave`, `the late`, `once`, `would`, `if`...) and possessives (`Mara's grave`) are skipped;
//! past perfect (`Mara had said`) never matches because `had` is not an action verb.

use super::seen::Seen;
use super::text::{Token, paragraphs, sentences, tokens};
use super::{Canon, Chapter, Finding, Person, Place, Rule};
use std::collections::BTreeSet;

/// Sets of this file: a fast hash with a fixed seed (the chapter's words, not chosen keys).
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// Verbs a name follows as speaker or object of speech (`said Jorin`, `told Jorin`).
#[rustfmt::skip]
const VERBS_BEFORE_NAME: &[&str] = &[
    "said", "says", "asked", "asks", "replied", "replies", "answered", "whispered", "shouted",
    "muttered", "murmured", "cried", "snapped", "added", "continued", "insisted", "admitted",
    "explained", "growled", "hissed", "told", "tells", "thanked", "warned",
];

/// Speech verbs: a capitalised word before one is the speaker.
#[rustfmt::skip]
const SPEECH_VERBS: &[&str] = &[
    "said", "says", "asked", "asks", "replied", "replies", "answered", "answers", "whispered",
    "whispers", "shouted", "shouts", "muttered", "mutters", "murmured", "murmurs", "called",
    "calls", "cried", "snapped", "added", "insisted", "admitted", "explained", "growled", "hissed",
    "spoke", "speaks", "yelled", "screamed", "told", "tells",
];

/// Action verbs of people: a capitalised word before one is probably someone.
#[rustfmt::skip]
const ACTION_VERBS: &[&str] = &[
    "sighed", "sighs", "laughed", "laughs", "smiled", "smiles", "nodded", "nods", "shrugged",
    "shrugs", "frowned", "frowns", "grinned", "grins", "winced", "blinked", "swallowed",
    "hesitated", "paused", "walked", "walks", "ran", "runs", "stood", "stands", "sat", "sits",
    "knelt", "kneels", "reached", "reaches", "grabbed", "grabs", "took", "takes", "opened", "opens",
    "closed", "closes", "looked", "looks", "glanced", "glances", "stared", "stares", "watched",
    "watches", "waited", "waits", "turned", "turns", "stepped", "steps", "pulled", "pulls",
    "pushed", "pushes", "climbed", "climbs", "crossed", "crosses", "searched", "searches",
    "returned", "returns", "argued", "argues", "fled", "flees", "slipped", "slips", "remembered",
    "remembers", "felt", "feels", "thought", "thinks", "knew", "knows", "wanted", "wants",
    "decided", "decides", "realised", "realized", "realises", "realizes", "wondered", "wonders",
    "leaned", "leans", "lifted", "lifts", "raised", "raises", "handed", "hands", "gave", "gives",
    "wrote", "writes", "kissed", "kisses", "hugged", "hugs", "held", "holds", "carried", "carries",
    "entered", "enters", "followed", "follows", "shook", "shakes", "began", "begins", "tried",
    "tries", "gasped", "groaned", "sobbed", "wept", "touched", "pointed", "listened", "smirked",
    "sneered", "studied", "noticed", "hurried", "rushed", "drew", "picked", "led", "leads", "met",
    "meets", "found", "finds", "saw", "sees", "heard", "hears",
];

/// Words that take the place of a name without being one: an article or possessive before a
/// capitalised word makes it a thing (`the Guild`, `her Majesty`).
#[rustfmt::skip]
const DETERMINERS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "his", "her", "their", "my", "our", "your",
    "its", "every", "each", "no", "some", "any", "whose",
];

/// Prepositions after which a capitalised pair is more likely a place than a person.
#[rustfmt::skip]
const PLACE_PREPOSITIONS: &[&str] = &[
    "in", "at", "from", "into", "near", "across", "toward", "towards", "through", "beyond",
    "inside", "outside", "around", "of", "on", "to", "onto", "past", "via", "under", "over",
    "along", "within",
];

/// First words of place names (`New York`, `Port Royal`).
#[rustfmt::skip]
const PLACE_FIRST: &[&str] = &[
    "new", "north", "south", "east", "west", "upper", "lower", "great", "little", "old", "saint",
    "st", "san", "santa", "los", "las", "port", "fort", "mount", "lake", "river", "cape", "glen",
    "isle", "el", "la", "le",
];

/// Last words of place and institution names (`Hyde Park`, `Baker Street`).
#[rustfmt::skip]
const PLACE_SECOND: &[&str] = &[
    "street", "road", "lane", "avenue", "square", "park", "river", "mountain", "mountains", "mount",
    "lake", "city", "town", "hall", "bridge", "house", "castle", "tower", "gate", "harbour",
    "harbor", "bay", "sea", "ocean", "island", "isle", "isles", "islands", "forest", "wood",
    "woods", "hill", "hills", "valley", "college", "university", "school", "church", "cathedral",
    "abbey", "chapel", "station", "market", "inn", "tavern", "way", "row", "place", "court",
    "palace", "garden", "gardens", "quay", "wharf", "docks", "marsh", "marshes", "coast", "plains",
    "desert", "empire", "kingdom", "republic", "company", "guild", "council", "order", "library",
    "museum", "hospital", "hotel", "club", "bank", "day", "eve", "war", "age", "falls", "creek",
    "point", "heights", "ridge", "stair", "stairs", "cross", "green", "field", "fields", "moor",
    "common", "end", "hollow", "reach", "sound", "strait", "straits", "pass",
];

/// Titles before a name (`Captain Harrow`); also never names themselves.
#[rustfmt::skip]
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mister", "dr", "doctor", "professor", "prof", "sir", "dame", "lady",
    "lord", "king", "queen", "prince", "princess", "duke", "duchess", "earl", "count", "countess",
    "baron", "baroness", "emperor", "empress", "captain", "capt", "commander", "general", "colonel",
    "major", "lieutenant", "sergeant", "corporal", "admiral", "officer", "detective", "inspector",
    "constable", "sheriff", "judge", "master", "mistress", "saint", "reverend", "bishop", "abbot",
    "abbess", "father", "mother", "brother", "sister", "uncle", "aunt", "auntie", "cousin",
    "grandmother", "grandfather", "grandma", "grandpa", "madame", "monsieur", "senor", "señor",
    "herr", "frau", "chancellor", "minister", "president", "senator", "magistrate", "elder",
    "chief", "nurse", "coach", "old", "young", "little", "big",
];

/// Common words English capitalises at sentence starts or always, that are not character names.
#[rustfmt::skip]
const NOT_NAMES: &[&str] = &[
    // pronouns and determiners
    "i", "you", "he", "she", "it", "we", "they", "me", "him", "her", "us", "them", "my", "your",
    "his", "its", "our", "their", "mine", "yours", "hers", "ours", "theirs", "myself", "yourself",
    "himself", "herself", "itself", "ourselves", "themselves", "this", "that", "these", "those",
    "who", "whom", "whose", "which", "what", "whoever", "whatever", "a", "an", "the", "some", "any",
    "no", "none", "every", "each", "all", "both", "either", "neither", "many", "much", "few",
    "several", "most", "more", "less", "other", "others", "another", "such", "someone", "somebody",
    "something", "anyone", "anybody", "anything", "everyone", "everybody", "everything", "nobody",
    "nothing", "one", "two", "three", "people", "men", "women", "children", "folk", "guards",
    "soldiers", "villagers", "strangers", "somewhere", "nowhere", "everywhere", "anywhere",
    // conjunctions, prepositions and adverbs that open sentences
    "and", "but", "or", "nor", "so", "yet", "for", "then", "now", "when", "while", "after",
    "before", "as", "if", "though", "although", "because", "since", "until", "once", "still",
    "even", "just", "only", "also", "here", "there", "where", "why", "how", "perhaps", "maybe",
    "yes", "not", "never", "always", "sometimes", "later", "soon", "finally", "suddenly", "again",
    "instead", "meanwhile", "together", "alone", "outside", "inside", "above", "below", "behind",
    "beside", "across", "at", "by", "in", "on", "of", "to", "from", "with", "without", "into",
    "onto", "upon", "under", "over", "through", "between", "among", "around", "toward", "towards",
    "beyond", "near", "like", "unlike", "whether", "besides", "anyway", "quietly", "slowly",
    "outside", "tonight", "today", "tomorrow", "yesterday", "morning", "evening", "night",
    "afternoon", "somehow", "almost", "very", "too", "well",
    // interjections and forms of address
    "oh", "ah", "okay", "ok", "hey", "hello", "goodbye", "please", "thanks", "thank", "sorry",
    "madam", "ma'am", "dear", "darling", "love", "friend", "boy", "girl", "man", "woman", "child",
    "mom", "ma", "pa", "gran", "grandad", "granddad", "nana", "mum", "dad", "papa", "mama", "granny", "nan", "son", "daughter", "sire", "majesty",
    "highness", "lordship", "ladyship", "god", "gods", "goddess", "heaven", "christ", "jesus",
    "allah", "fate", "death", "boss", "teacher",
    // days, months, seasons, directions
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january",
    "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "spring", "summer", "autumn", "winter", "christmas", "easter", "north",
    "south", "east", "west",
    // nationalities and languages
    "english", "french", "german", "spanish", "italian", "russian", "chinese", "japanese",
    "american", "british", "european", "african", "asian", "latin", "greek", "irish", "scottish",
    "welsh", "dutch", "arabic", "indian",
    // book structure
    "chapter", "scene", "part", "book", "prologue", "epilogue",
];

/// Cues that a sentence remembers, imagines or mourns rather than narrates an act.
#[rustfmt::skip]
const MEMORY_CUES: &[&str] = &[
    "remembered", "remember", "remembers", "remembering", "recalled", "recall", "recalls", "memory",
    "memories", "remembrance", "dream", "dreams", "dreamed", "dreamt", "dreaming", "ghost",
    "ghosts", "spirit", "once", "used", "ago", "died", "death", "dead", "late", "grave", "funeral",
    "buried", "burial", "corpse", "body", "mourned", "mourning", "mourn", "portrait", "photograph",
    "photo", "painting", "letter", "letters", "diary", "journal", "imagined", "imagine", "pictured",
    "vision", "haunted", "haunting", "if", "would", "might", "before", "years", "wished", "wish",
    "missed",
];

/// `I've`, `We'll`, `Don't`: a contraction (lowercase), which no name is; `O'Brien` is not one.
fn contraction(w: &str) -> bool {
    w.rsplit_once(['\'', '’']).is_some_and(|(stem, end)| {
        !stem.is_empty() && ["ve", "m", "ll", "d", "re", "t"].contains(&end)
    })
}

fn is(list: &[&str], w: &str) -> bool {
    list.contains(&w)
}

/// The lowercase word sequences a person is written as: full name, aliases, and, when
/// `first`/`last` say so, the first and last name alone.
fn forms(p: &Person, first: bool, last: bool) -> Vec<Vec<String>> {
    let words = |s: &str| -> Vec<String> {
        let mut w = Vec::new();
        for sentence in sentences(s) {
            w.extend(tokens(sentence).into_iter().map(|t| t.lower));
        }
        w
    };
    let full = words(&p.name);
    let mut out = vec![full.clone()];
    out.extend(p.aliases.iter().map(|a| words(a)).filter(|a| !a.is_empty()));
    if full.len() > 1 {
        if first {
            out.push(vec![full[0].clone()]);
        }
        if last {
            out.push(vec![full[full.len() - 1].clone()]);
        }
    }
    out.retain(|f| !f.is_empty());
    out
}

/// Whether `toks[i..]` starts with the word sequence `form`.
fn matches_at(toks: &[Token<'_>], i: usize, form: &[String]) -> bool {
    toks.len() >= i + form.len() && form.iter().enumerate().all(|(k, w)| toks[i + k].lower == *w)
}

/// Every sentence of `chapter` with its 1-based paragraph number.
pub(super) fn sentences_of<'a>(chapter: &Chapter<'a>) -> Vec<(usize, &'a str)> {
    paragraphs(chapter.text)
        .into_iter()
        .enumerate()
        .flat_map(|(i, p)| sentences(p).into_iter().map(move |s| (i + 1, s)))
        .collect()
}

/// What the prose says about one capitalised word or pair.
struct Candidate {
    /// Its words, lowercase.
    words: Vec<String>,
    display: String,
    strong: bool,
    weak: bool,
    renamed: bool,
    paragraph: usize,
    sentence: String,
}

/// Names in `chapter` that look like characters but are neither in the cast (with aliases) nor
/// words of the book's own texts (`seen` holds its other chapters); see the module documentation
/// for the heuristic. One finding per name, at its first sight.
pub fn unknown_names(chapter: &Chapter<'_>, seen: &Seen, canon: &Canon) -> Vec<Finding> {
    let mut name_words: HashSet<String> = HashSet::default();
    let mut full_pairs: HashSet<(String, String)> = HashSet::default();
    let mut first_names: HashSet<String> = HashSet::default();
    for p in &canon.people {
        for form in forms(p, false, false) {
            name_words.extend(form.iter().cloned());
            full_pairs.extend(form.windows(2).map(|w| (w[0].clone(), w[1].clone())));
        }
        if let Some(f) = forms(p, false, false).first().and_then(|f| f.first()) {
            first_names.insert(f.clone());
        }
    }
    let mut lower_seen: HashSet<String> = HashSet::default();
    let mut mid_caps: HashSet<String> = HashSet::default();
    for (_, s) in sentences_of(chapter) {
        for t in tokens(s) {
            if t.lowercase() {
                lower_seen.insert(t.lower);
            } else if t.capitalised() && !t.start {
                mid_caps.insert(t.lower);
            }
        }
    }
    let ordinary = |w: &str| {
        contraction(w)
            || name_words.contains(w)
            || canon.knows_word(w)
            || is(NOT_NAMES, w)
            || is(TITLES, w)
            || lower_seen.contains(w)
            || seen.writes_lower(w, chapter.number)
    };
    let mut cands: Vec<Candidate> = Vec::new();
    let mut note =
        |words: Vec<String>, display: String, strong: bool, renamed: bool, at: (usize, &str)| {
            if let Some(c) = cands.iter_mut().find(|c| c.words == words) {
                c.strong |= strong;
                c.weak |= !strong;
                return;
            }
            let sentence = at.1.to_string();
            cands.push(Candidate {
                words,
                display,
                strong,
                weak: !strong,
                renamed,
                paragraph: at.0,
                sentence,
            });
        };
    for (para, s) in sentences_of(chapter) {
        let toks = tokens(s);
        for (i, t) in toks.iter().enumerate() {
            if !t.capitalised() {
                continue;
            }
            // The run of capitalised words this one belongs to: after an article, a possessive
            // or a place preposition it names a thing or a place (`the bells of Saint Anselm`).
            let mut r = i;
            while r > 0 && toks[r].adjacent && toks[r - 1].capitalised() {
                r -= 1;
            }
            let blocked = r > 0
                && toks[r].adjacent
                && (is(DETERMINERS, &toks[r - 1].lower)
                    || is(PLACE_PREPOSITIONS, &toks[r - 1].lower));
            if blocked {
                continue;
            }
            let prev = i.checked_sub(1).map(|k| &toks[k]);
            let next = toks.get(i + 1);
            let after_speech = t.adjacent && prev.is_some_and(|p| is(VERBS_BEFORE_NAME, &p.lower));
            let after_title = t.adjacent
                && !t.start
                && prev.is_some_and(|p| p.capitalised() && is(TITLES, &p.lower));
            let verb = next.filter(|n| n.adjacent && !t.possessive).map(|n| n.lower.as_str());
            let speaker = verb.is_some_and(|v| is(SPEECH_VERBS, v));
            let actor = verb.is_some_and(|v| is(ACTION_VERBS, v));
            let one = || vec![t.lower.clone()];
            // At a sentence start any noun is capitalised ("Silence answered."): there a
            // speaker is only weak evidence, like an actor.
            if after_speech || after_title || (speaker && !t.start) {
                note(one(), t.base.to_string(), true, false, (para, s));
            } else if actor || speaker {
                note(one(), t.base.to_string(), false, false, (para, s));
            }
            // A First Last pair in a person's position.
            let Some(n) = next else { continue };
            let pair = n.capitalised()
                && n.adjacent
                && !n.start
                && !t.possessive
                && !is(PLACE_FIRST, &t.lower)
                && !is(PLACE_SECOND, &n.lower)
                && !is(NOT_NAMES, &t.lower)
                && !is(TITLES, &t.lower)
                && !is(NOT_NAMES, &n.lower);
            if !pair {
                continue;
            }
            let display = format!("{} {}", t.base, n.base);
            let words = vec![t.lower.clone(), n.lower.clone()];
            if name_words.contains(&t.lower) && name_words.contains(&n.lower) {
                let known = full_pairs.contains(&(t.lower.clone(), n.lower.clone()));
                if !known && first_names.contains(&t.lower) {
                    note(words, display, true, true, (para, s));
                }
            } else {
                note(words, display, true, false, (para, s));
            }
        }
    }
    let cast: Vec<&str> = canon.people.iter().map(|p| p.name.as_str()).collect();
    let cast = if cast.is_empty() { "none".to_string() } else { cast.join(", ") };
    let accepted: Vec<Candidate> = cands
        .into_iter()
        .filter(|c| c.renamed || c.words.iter().any(|w| !ordinary(w)))
        .filter(|c| c.strong || (c.weak && c.words.iter().all(|w| mid_caps.contains(w))))
        .collect();
    // A word already reported within a pair is not reported again alone.
    let in_pairs: HashSet<&String> =
        accepted.iter().filter(|c| c.words.len() > 1).flat_map(|c| &c.words).collect();
    accepted
        .iter()
        .filter(|c| c.words.len() > 1 || !in_pairs.contains(&c.words[0]))
        .map(|c| {
            let message = if c.renamed {
                format!(
                    "\"{}\" (paragraph {}) mixes the names of different characters; the cast is: \
                     {cast}. Call each character by their cast name or an alias",
                    c.display, c.paragraph
                )
            } else {
                format!(
                    "\"{}\" (paragraph {}) is not a character of the cast ({cast}); use the cast's \
                     names or their aliases, or leave the person unnamed",
                    c.display, c.paragraph
                )
            };
            Finding::new(
                Rule::UnknownName,
                Place { chapter: chapter.number, paragraph: c.paragraph },
                &c.sentence,
                message,
            )
        })
        .collect()
}

/// Sentences of `chapter` where a character who is dead by then (see [`Person::is_dead_in`])
/// speaks or acts in narration; one finding per character and paragraph. See the module
/// documentation for the heuristic.
pub fn dead_acting(chapter: &Chapter<'_>, canon: &Canon) -> Vec<Finding> {
    let mut out = Vec::new();
    let living: Vec<&Person> =
        canon.people.iter().filter(|p| !p.is_dead_in(chapter.number)).collect();
    for dead in canon.people.iter().filter(|p| p.is_dead_in(chapter.number)) {
        let full = forms(dead, false, false).into_iter().next().unwrap_or_default();
        let others = canon.people.iter().filter(|p| !std::ptr::eq(*p, dead));
        let names_of = |p: &Person| forms(p, false, false).into_iter().next().unwrap_or_default();
        // The first name alone is this character unless a living one shares it; the last
        // name alone only if nobody else has it (families share surnames).
        let first_ok =
            full.first().is_some_and(|w| !living.iter().any(|p| names_of(p).contains(w)));
        let last_ok = full.len() > 1
            && full.last().is_some_and(|w| !others.clone().any(|p| names_of(p).contains(w)));
        let dead_forms = forms(dead, first_ok, last_ok);
        let mut seen_paragraphs = BTreeSet::new();
        for (para, s) in sentences_of(chapter) {
            if seen_paragraphs.contains(&para) {
                continue;
            }
            let toks = tokens(s);
            // A cue in narration, not in what is said: the dead who speak of memories still speak.
            if toks.iter().any(|t| !t.quoted && is(MEMORY_CUES, &t.lower)) {
                continue;
            }
            let acts = (0..toks.len()).any(|i| {
                dead_forms.iter().any(|form| {
                    if !matches_at(&toks, i, form) || !toks[i].capitalised() {
                        return false;
                    }
                    let mention = &toks[i..i + form.len()];
                    let last = &mention[mention.len() - 1];
                    if mention.iter().any(|t| t.quoted) || last.possessive {
                        return false;
                    }
                    let verb_at = |k: usize| {
                        toks.get(k).is_some_and(|n| {
                            n.adjacent && (is(SPEECH_VERBS, &n.lower) || is(ACTION_VERBS, &n.lower))
                        })
                    };
                    let after = i + form.len();
                    let adverb = toks.get(after).is_some_and(|n| {
                        n.adjacent && n.lower.ends_with("ly") && n.lower.len() > 3
                    });
                    let speaks_after = i > 0
                        && toks[i].adjacent
                        && is(VERBS_BEFORE_NAME, &toks[i - 1].lower)
                        && !toks[i - 1].quoted;
                    verb_at(after) || (adverb && verb_at(after + 1)) || speaks_after
                })
            });
            if acts {
                seen_paragraphs.insert(para);
                let when = dead
                    .died_in_chapter
                    .map(|d| format!("died in chapter {d}"))
                    .unwrap_or_else(|| "is dead".to_string());
                out.push(Finding::new(
                    Rule::DeadCharacterActs,
                    Place { chapter: chapter.number, paragraph: para },
                    s,
                    format!(
                        "{} {when} but speaks or acts in paragraph {para}; a dead character can \
                         only be remembered, mourned or spoken of",
                        dead.name
                    ),
                ));
            }
        }
    }
    out
}

/// Characters `planned` for `chapter` (the outline's scene casts) whom the chapter never
/// mentions by full name, first name, last name or alias (aliases from `canon`).
pub fn plan_missing(chapter: &Chapter<'_>, planned: &[String], canon: &Canon) -> Vec<Finding> {
    let sentences: Vec<Vec<Token<'_>>> =
        sentences_of(chapter).into_iter().map(|(_, s)| tokens(s)).collect();
    let mut seen = HashSet::default();
    let mut out = Vec::new();
    for name in planned.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !seen.insert(name.to_lowercase()) {
            continue;
        }
        let person = canon
            .people
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| Person::new(name));
        let person_forms = forms(&person, true, true);
        let mentioned = sentences.iter().any(|toks| {
            (0..toks.len()).any(|i| person_forms.iter().any(|f| matches_at(toks, i, f)))
        });
        if !mentioned {
            out.push(Finding::chapter_wide(
                Rule::PlanCharacterMissing,
                chapter.number,
                name,
                format!(
                    "the plan of chapter {} lists {name}, who never appears in it; bring {name} \
                     into the scenes the plan gives them",
                    chapter.number
                ),
            ));
        }
    }
    out
}
