//! Long answers in parts: a chapter written a few scenes at a time with its running summary
//! carried forward, an edit revising a few scenes at a time, and the joining of the parts into
//! one chapter without seams.

use scriptorium_contracts::{ChapterText, ProseScene};
use serde_json::Value;

/// Consecutive groups of `items` (scene number, estimated answer tokens) whose answers, with
/// `overhead` tokens each, stay within `max_answer`. A scene too large for any group gets one
/// of its own.
pub fn group(items: &[(u32, u64)], overhead: u64, max_answer: u64) -> Vec<Vec<u32>> {
    let mut groups: Vec<Vec<u32>> = Vec::new();
    let mut size = 0;
    for &(n, tokens) in items {
        match groups.last_mut() {
            Some(g) if size + tokens <= max_answer => {
                g.push(n);
                size += tokens;
            }
            _ => {
                groups.push(vec![n]);
                size = overhead + tokens;
            }
        }
    }
    groups
}

/// `words` shared among `scenes` scenes as evenly as whole words allow.
pub fn share(words: u32, scenes: u32) -> Vec<u32> {
    let scenes = scenes.max(1);
    (0..scenes).map(|i| words / scenes + u32::from(i < words % scenes)).collect()
}

/// Reads the answer to a chapter part that was asked for `expected` scenes.
pub fn read_part(value: &Value, expected: usize) -> Result<ChapterText, String> {
    let part: ChapterText = serde_json::from_value(value.clone())
        .map_err(|e| format!("the chapter part is not a chapter object: {e}"))?;
    if part.scenes.len() != expected {
        return Err(format!(
            "a chapter part asked for {expected} scenes answered with {}",
            part.scenes.len()
        ));
    }
    Ok(part)
}

/// The closing lines of `scenes`: the last paragraph, at most about 600 characters.
pub fn last_lines(scenes: &[ProseScene]) -> String {
    let last = scenes
        .iter()
        .rev()
        .find_map(|s| s.text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).last())
        .unwrap_or_default();
    let chars = last.chars().count();
    if chars <= 600 { last.to_string() } else { last.chars().skip(chars - 600).collect() }
}

/// Joins the parts of chapter `number` into one chapter: scenes in order, the repetition of
/// the previous part's closing lines a part may open with removed, the last part's running
/// summary as the chapter's, the characters and continuity reports of every part.
pub fn join(number: u32, title: &str, parts: Vec<ChapterText>) -> ChapterText {
    let mut out = ChapterText { number, title: title.to_string(), ..Default::default() };
    for part in parts {
        let seam = last_lines(&out.scenes);
        for (i, mut scene) in part.scenes.into_iter().enumerate() {
            if i == 0 && !seam.is_empty() {
                let text = scene.text.trim_start();
                if let Some(rest) = text.strip_prefix(seam.as_str()) {
                    scene.text = rest.trim_start().to_string();
                }
            }
            scene.text = scene.text.trim().to_string();
            out.scenes.push(scene);
        }
        if !part.summary.trim().is_empty() {
            out.summary = part.summary;
        }
        for c in part.characters {
            if !out.characters.contains(&c) {
                out.characters.push(c);
            }
        }
        out.continuity.merge(part.continuity);
        if out.title.is_empty() {
            out.title = part.title;
        }
    }
    out
}

/// Applies edit answers to `draft`: each numbered scene replaces the draft's scene of that
/// number; an answer of unnumbered scenes, as many as the draft has, replaces them all. The
/// last summary given replaces the draft's; the changes are gathered. A scene that cannot be
/// placed is an error; what can be placed goes on to validation as it is.
pub fn apply_edit(draft: &ChapterText, answers: &[Value]) -> Result<ChapterText, String> {
    let mut out = draft.clone();
    out.changes.clear();
    for a in answers {
        let scenes = a["scenes"].as_array().cloned().unwrap_or_default();
        let whole =
            scenes.len() == draft.scenes.len() && scenes.iter().all(|s| s["number"].is_null());
        for (i, s) in scenes.iter().enumerate() {
            let n = if whole {
                i + 1
            } else {
                let n = s["number"].as_u64().ok_or_else(|| {
                    "every revised scene must give its number (\"number\": N)".to_string()
                })?;
                usize::try_from(n).unwrap_or(usize::MAX)
            };
            let Some(target) = n.checked_sub(1).and_then(|i| out.scenes.get_mut(i)) else {
                return Err(format!(
                    "the edit revises scene {n}, but the chapter has {} scenes",
                    draft.scenes.len()
                ));
            };
            // An empty scene goes on as it is: validation names the rule it breaks.
            target.text = s["text"].as_str().unwrap_or_default().trim().to_string();
            if let Some(h) = s["heading"].as_str().filter(|h| !h.trim().is_empty()) {
                target.heading = h.trim().to_string();
            }
        }
        if let Some(summary) = a["summary"].as_str().filter(|s| !s.trim().is_empty()) {
            out.summary = summary.trim().to_string();
        }
        for c in a["changes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            out.changes.push(c.to_string());
        }
    }
    Ok(out)
}

/// The edit `merged` of `draft` with the revised scenes that break a rule given back to the
/// draft: unchanged when `passes` accepts it; else the first that passes of `merged` less one
/// revised scene, then `merged` with only one revised scene kept; else `merged` as it is (its
/// validation names the rule). A revision is kept wherever it can be, and one bad scene does
/// not cost the whole edit another attempt.
pub fn keep_passing(
    draft: &ChapterText,
    merged: ChapterText,
    passes: impl Fn(&ChapterText) -> bool,
) -> ChapterText {
    if passes(&merged) {
        return merged;
    }
    let changed: Vec<usize> = (0..draft.scenes.len().min(merged.scenes.len()))
        .filter(|i| draft.scenes[*i].text != merged.scenes[*i].text)
        .collect();
    let with = |revised: &dyn Fn(usize) -> bool| {
        let mut c = merged.clone();
        for i in &changed {
            if !revised(*i) {
                c.scenes[*i] = draft.scenes[*i].clone();
            }
        }
        c
    };
    let less_one = changed.iter().map(|gone| with(&|i| i != *gone));
    let only_one = changed.iter().map(|kept| with(&|i| i == *kept));
    let candidates: Vec<ChapterText> =
        if changed.len() > 1 { less_one.chain(only_one).collect() } else { Vec::new() };
    candidates.into_iter().find(|c| passes(c)).unwrap_or(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scene(heading: &str, text: &str) -> ProseScene {
        ProseScene { heading: heading.into(), text: text.into() }
    }

    fn chapter(scenes: Vec<ProseScene>, summary: &str, chars: &[&str]) -> ChapterText {
        ChapterText {
            number: 4,
            title: "T".into(),
            scenes,
            summary: summary.into(),
            characters: chars.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn groups_fill_up_to_the_answer_limit_in_order() {
        let items = [(1, 300), (2, 300), (3, 300), (4, 300), (5, 900)];
        assert_eq!(group(&items, 100, 800), vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!(group(&items, 100, 10_000), vec![vec![1, 2, 3, 4, 5]]);
        assert_eq!(group(&[], 100, 800), Vec::<Vec<u32>>::new());
        assert_eq!(share(10, 3), vec![4, 3, 3]);
    }

    #[test]
    fn parts_join_without_seams() {
        let mut one = chapter(
            vec![scene("Scene 1", "A first.\n\nThe door closed."), scene("Scene 2", "Rain.")],
            "So far: a door.",
            &["Ann Lee"],
        );
        let at = |place: &str| scriptorium_contracts::Whereabouts {
            name: "Ann Lee".into(),
            place: place.into(),
            carries: "a key".into(),
        };
        one.continuity.whereabouts = vec![at("the door")];
        one.continuity.threads_opened = vec!["Who rang?".into()];
        // The second part opens by repeating the first part's closing lines, as small models do.
        let mut two = chapter(
            vec![scene("Scene 3", "  Rain.\n\nThen the bell."), scene("Scene 4", "End. ")],
            "The whole chapter: a door, a bell.",
            &["Bo Park", "Ann Lee"],
        );
        two.continuity.whereabouts = vec![at("the bell tower")];
        two.continuity.deaths = vec!["Bo Park".into()];
        let joined = join(4, "The Title", vec![one, two]);
        let headings: Vec<&str> = joined.scenes.iter().map(|s| s.heading.as_str()).collect();
        assert_eq!(headings, ["Scene 1", "Scene 2", "Scene 3", "Scene 4"]);
        assert_eq!(joined.scenes[2].text, "Then the bell.");
        assert_eq!(joined.scenes[3].text, "End.");
        assert_eq!(joined.summary, "The whole chapter: a door, a bell.");
        assert_eq!(joined.characters, ["Ann Lee", "Bo Park"]);
        assert_eq!((joined.number, joined.title.as_str()), (4, "The Title"));
        assert!(!joined.prose().contains("Rain.\n\nRain."));
        // Every part's report counts; a later whereabouts replaces an earlier one.
        assert_eq!(joined.continuity.deaths, ["Bo Park"]);
        assert_eq!(joined.continuity.threads_opened, ["Who rang?"]);
        assert_eq!(joined.continuity.whereabouts, [at("the bell tower")]);
    }

    #[test]
    fn part_answers_must_hold_the_scenes_asked_for() {
        let v = serde_json::to_value(chapter(vec![scene("a", "x")], "s", &[])).unwrap();
        assert!(read_part(&v, 1).is_ok());
        assert!(read_part(&v, 2).unwrap_err().contains("asked for 2 scenes"));
        assert!(read_part(&json!([1]), 1).is_err());
    }

    #[test]
    fn last_lines_are_the_last_paragraph() {
        let s = vec![scene("a", "One.\n\nTwo."), scene("b", "Three.\n\nFour.\n\n")];
        assert_eq!(last_lines(&s), "Four.");
        let long = "x".repeat(1000);
        assert_eq!(last_lines(&[scene("a", &long)]).len(), 600);
    }

    #[test]
    fn edits_replace_numbered_scenes_and_keep_the_rest() {
        let draft = chapter(
            vec![scene("S1", "one"), scene("S2", "two"), scene("S3", "three")],
            "old",
            &["Ann Lee"],
        );
        let a = json!({"scenes": [{"number": 2, "heading": "", "text": "TWO"}], "summary": "new", "changes": ["c1"]});
        let b = json!({"scenes": [{"number": 3, "text": "THREE"}], "changes": ["c2"]});
        let out = apply_edit(&draft, &[a, b]).unwrap();
        let texts: Vec<&str> = out.scenes.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["one", "TWO", "THREE"]);
        assert_eq!(out.scenes[1].heading, "S2");
        assert_eq!(
            (out.summary.as_str(), out.changes.clone()),
            ("new", vec!["c1".into(), "c2".into()])
        );
        assert_eq!(out.characters, ["Ann Lee"]);
        // A whole chapter without numbers replaces every scene.
        let whole = json!({"scenes": [{"text": "a"}, {"text": "b"}, {"text": "c"}]});
        assert_eq!(apply_edit(&draft, &[whole]).unwrap().scenes[2].text, "c");
        // Scenes that cannot be placed are refused with the reason.
        let far = json!({"scenes": [{"number": 9, "text": "x"}]});
        assert!(apply_edit(&draft, &[far]).unwrap_err().contains("scene 9"));
        let loose = json!({"scenes": [{"text": "x"}]});
        assert!(apply_edit(&draft, &[loose]).unwrap_err().contains("number"));
        // An emptied scene is placed: validation rejects it, naming the rule.
        let empty = json!({"scenes": [{"number": 1, "text": " "}]});
        assert_eq!(apply_edit(&draft, &[empty]).unwrap().scenes[0].text, "");
    }

    #[test]
    fn an_edit_keeps_the_revised_scenes_that_pass_and_gives_the_rest_back_to_the_draft() {
        let draft = chapter(vec![scene("", "a"), scene("", "b"), scene("", "c")], "s", &[]);
        let revise = |texts: [&str; 3]| {
            let mut c = draft.clone();
            for (s, t) in c.scenes.iter_mut().zip(texts) {
                s.text = t.into();
            }
            c
        };
        let clean = |c: &ChapterText| !c.scenes.iter().any(|s| s.text.contains('{'));
        let texts = |c: &ChapterText| c.scenes.iter().map(|s| s.text.clone()).collect::<Vec<_>>();
        // All good: as it is.
        let good = revise(["A", "B", "C"]);
        assert_eq!(keep_passing(&draft, good.clone(), clean), good);
        // One bad scene: it goes back to the draft's, the other revisions stay.
        let kept = keep_passing(&draft, revise(["A", "{B", "C"]), clean);
        assert_eq!(texts(&kept), ["A", "b", "C"]);
        // Two bad: only the good one stays.
        let kept = keep_passing(&draft, revise(["{A", "{B", "C"]), clean);
        assert_eq!(texts(&kept), ["a", "b", "C"]);
        // Nothing passes: the edit as answered, for validation to refuse with its rule.
        let bad = revise(["{A", "{B", "{C"]);
        assert_eq!(keep_passing(&draft, bad.clone(), clean), bad);
        // Never the draft itself: a lone bad revision is not reverted to nothing.
        let lone = revise(["{A", "b", "c"]);
        assert_eq!(keep_passing(&draft, lone.clone(), clean), lone);
    }
}
