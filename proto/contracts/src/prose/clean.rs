//! Cleaning before re-asking: a chapter's scenes without what is not story. Placeholder and
//! meta-text paragraphs, paragraphs that copy another of the chapter or of an earlier chapter,
//! and the lines and sentences [`judge`](super::judge) finds (instruction echo, talk about the
//! task, machine text) come off; every other word stays where it was. Whether what remains is
//! enough (the chapter's length window) is the caller's to decide: if not, the answer is
//! re-asked with the rules it broke.

use super::Place;
use super::leaks::not_prose;
use super::repeats::Copies;
use super::seen::Seen;
use super::story::{Scope, judge};
use super::text::paragraphs;

/// The scenes of chapter `number` cleaned; `seen` holds the book's other chapters (a paragraph
/// copying one of theirs comes off). With `only`, the scenes (0-based) that may change: the
/// others stay as they are (an edit's scenes it does not revise), though their paragraphs
/// still count as seen. A scene nothing came off is returned as it was.
pub fn clean_scenes(
    number: u32,
    scenes: &[&str],
    seen: &Seen,
    only: Option<&[usize]>,
) -> Vec<String> {
    let mut copies = Copies::of(seen);
    let mut next = 1;
    let mut out = Vec::with_capacity(scenes.len());
    for (i, scene) in scenes.iter().enumerate() {
        let may_change = only.is_none_or(|o| o.contains(&i));
        let mut kept: Vec<String> = Vec::new();
        let mut changed = false;
        for p in paragraphs(scene) {
            let place = Place { chapter: number, paragraph: next };
            next += 1;
            if !may_change {
                copies.copies(place, p);
                continue;
            }
            if not_prose(p) {
                changed = true;
                continue;
            }
            let judged = judge(p, Scope::Story);
            if !judged.cuts.is_empty() {
                changed = true;
            }
            if judged.kept.trim().is_empty() {
                continue;
            }
            if copies.copies(place, &judged.kept).is_some() {
                changed = true;
                continue;
            }
            kept.push(judged.kept);
        }
        out.push(if changed { kept.join("\n\n") } else { scene.to_string() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: &str = "The ferry left at dawn, low in the water, its lamps still burning against \
                      a fog that had not lifted in three days and showed no sign of lifting now.";
    const P2: &str = "Nobody on the quay spoke of the ledger, though every one of them had come \
                      to see whether the tide-reader would dare to show her face again.";

    #[test]
    fn what_is_not_story_comes_off_and_the_story_stays() {
        let one = format!("Here is the chapter:\n\n{P1}\n\ntext:'soul_219544676}}'\n\n...");
        let two = format!("{P2} What is a JSON object?\n\n{P1}");
        let cleaned = clean_scenes(2, &[&one, &two], &Seen::default(), None);
        assert_eq!(cleaned, vec![P1.to_string(), P2.to_string()]);
        let clean = [P1, P2];
        assert_eq!(
            clean_scenes(1, &clean, &Seen::default(), None),
            vec![P1.to_string(), P2.to_string()]
        );
    }

    #[test]
    fn an_edit_cleans_only_its_revised_scenes() {
        let earlier = Seen::of(&[super::super::Chapter { number: 1, title: "", text: P2 }]);
        let cleaned = clean_scenes(2, &[P2, P1], &earlier, Some(&[1]));
        assert_eq!(cleaned, vec![P2.to_string(), P1.to_string()], "scene 1 is not revised");
        let cleaned = clean_scenes(2, &[P1, P2], &earlier, Some(&[1]));
        assert_eq!(cleaned, vec![P1.to_string(), String::new()], "a copy of chapter 1 comes off");
    }
}
