//! The simulated chapter (or part of one), in its request schema's shape: scenes of prose near
//! the asked length, a summary, the characters present and a continuity report; and, on
//! request, the mistakes validation must catch.

use crate::facts::Facts;
use crate::mistake::Mistake;
use crate::sim::{OBJECTS, PLACES, Rng, Story, TOPICS, prose, topic};
use serde_json::{Value, json};

/// A name no simulated cast has (the sim's name lists hold neither word).
const STRANGER: &str = "Jorin Vask";

/// The closing lines of the previous chapter, as the default chapter prompt shows them.
fn previous_end(user: &str) -> Option<&str> {
    let at = user.find("The previous chapter ends with:\n")?;
    let rest = &user[at..];
    let line = rest.lines().nth(1)?.trim().trim_matches('"');
    // A short line said twice is a refrain, not a copied paragraph: copy a real one.
    (line.split_whitespace().count() >= 20).then_some(line)
}

/// The oldest open thread the prompt's ledger shows, as worded there.
fn oldest_thread(user: &str) -> Option<String> {
    user.lines().find_map(|l| {
        let l = l.trim().strip_prefix("* ")?;
        let i = l.rfind(" (opened in chapter ")?;
        Some(l[..i].to_string())
    })
}

/// A name mixing two cast members' first and last names, else a stranger's.
fn renamed(names: &[&str], cast: &[String]) -> String {
    if let [a, b, ..] = names {
        let first = a.split_whitespace().next().unwrap_or_default();
        let last = b.split_whitespace().last().unwrap_or_default();
        let mixed = format!("{first} {last}");
        if !cast.iter().any(|c| c.eq_ignore_ascii_case(&mixed)) && first != last {
            return mixed;
        }
    }
    STRANGER.to_string()
}

/// Prose for `scenes` scenes of about `words` words in all: each scene aims at what is left
/// over the scenes left, so the chapter ends within a sentence of its target.
fn scenes_prose(
    rng: &mut Rng,
    names: &[&str],
    topic: &str,
    scenes: u32,
    words: usize,
) -> Vec<String> {
    let mut written = 0;
    (0..scenes as usize)
        .map(|i| {
            let per = (words.saturating_sub(written) / (scenes as usize - i)).max(1);
            let t = prose(rng, names, topic, per);
            written += t.split_whitespace().count();
            t
        })
        .collect()
}

pub(crate) fn simulate(facts: &Facts, user: &str, rng: &mut Rng, bad: bool, story: Story) -> Value {
    let number = facts.num("chapter").unwrap_or(1);
    let planned = facts.num("scenes in this chapter").unwrap_or(3).clamp(1, 6);
    // A request for part of a chapter writes only its scenes and words.
    let (scenes, mut words, last_part) = match facts.num("scenes in this part") {
        Some(k) => {
            let first = facts.num("first scene of this part").unwrap_or(1);
            let k = k.clamp(1, 6);
            (k, facts.num("words in this part").unwrap_or(300) as usize, first + k > planned)
        }
        None => (planned, facts.num("words per chapter").unwrap_or(800) as usize, true),
    };
    let whole_cast = facts.list("cast");
    let dead = facts.list("dead");
    let mut cast = facts.list("chapter cast");
    if cast.is_empty() {
        cast = whole_cast.clone();
    }
    cast.retain(|c| !dead.iter().any(|d| d.eq_ignore_ascii_case(c)));
    let names: Vec<&str> = cast.iter().map(String::as_str).collect();
    let topic = topic(facts);
    if story.mistake == Some(Mistake::Short) {
        words /= 3;
    }
    let mut texts = scenes_prose(rng, &names, &topic, scenes, words);
    if bad {
        texts.iter_mut().for_each(String::clear);
    }

    let mut deaths: Vec<String> = Vec::new();
    // The death the resurrect mistake needs: chapter 1 kills a member of its cast who is not
    // the protagonist, at its end.
    if story.kill && number == 1 && last_part && !bad {
        let protagonist = whole_cast.first().map(String::as_str);
        if let Some(victim) = names.iter().rev().find(|n| Some(**n) != protagonist) {
            let place = rng.pick(PLACES);
            if let Some(last) = texts.last_mut() {
                last.push_str(&format!(" {victim} fell at {place} and did not rise again."));
            }
            deaths.push(victim.to_string());
        }
    }
    if !bad {
        match story.mistake {
            Some(Mistake::Rename) if !names.is_empty() => {
                let who = renamed(&names, &whole_cast);
                texts[0].push_str(&format!(
                    "\n\n\"Then we go tonight,\" {who} said, and nobody in the room answered."
                ));
            }
            Some(Mistake::Resurrect) => {
                if let Some(d) = dead.first() {
                    texts[0].push_str(&format!(
                        "\n\n\"You waited too long for me,\" {d} said, and the room went still."
                    ));
                }
            }
            Some(Mistake::Repeat) => {
                let copy = match previous_end(user) {
                    Some(p) => p.to_string(),
                    None => {
                        let paragraphs: Vec<&str> =
                            texts.iter().flat_map(|t| t.split("\n\n")).collect();
                        paragraphs
                            .iter()
                            .max_by_key(|p| p.split_whitespace().count())
                            .map(|p| p.to_string())
                            .unwrap_or_default()
                    }
                };
                if let Some(last) = texts.last_mut() {
                    last.push_str(&format!("\n\n{copy}"));
                }
            }
            Some(Mistake::Meta) => {
                texts[0] = format!("Here is the chapter you asked for:\n\n{}", texts[0]);
            }
            _ => {}
        }
    }

    let scenes: Vec<Value> = texts.into_iter().map(|t| json!({ "text": t })).collect();
    let threads_opened = vec![if names.is_empty() {
        format!("How far can {} be trusted?", rng.pick(TOPICS))
    } else {
        format!("Who will claim {}?", rng.pick(OBJECTS))
    }];
    let threads_closed: Vec<String> =
        if number > 1 { oldest_thread(user).into_iter().collect() } else { Vec::new() };
    let mut continuity = json!({
        "threads_opened": threads_opened,
        "threads_closed": threads_closed,
    });
    if !whole_cast.is_empty() {
        let whereabouts: Vec<Value> = names
            .iter()
            .filter(|n| !deaths.iter().any(|d| d == *n))
            .take(2)
            .map(|n| json!({"name": n, "place": rng.pick(PLACES), "carries": rng.pick(OBJECTS)}))
            .collect();
        continuity["deaths"] = json!(deaths);
        continuity["aliases"] = json!([]);
        continuity["whereabouts"] = json!(whereabouts);
    }
    json!({
        "scenes": scenes,
        "summary": format!("In chapter {number}, {} changes everything.", rng.pick(OBJECTS)),
        "characters": cast,
        "continuity": continuity,
    })
}
