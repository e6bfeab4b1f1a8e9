//! The edit agent: the scenes of a chapter its review names, rewritten; the worker merges
//! them into the draft, and the merged chapter is checked like a draft that keeps its scenes.

use crate::kinds::chapter::{self, ChapterText};
use crate::rules::{Ctx, Rejection, reject, to_value};
use crate::schema::{array, object, text};
use serde_json::Value;

pub(crate) fn validate(output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    let c = chapter::read(output, ctx, "edited chapter")?;
    if let Some(draft) = ctx.draft
        && draft.scenes.len() != c.scenes.len()
    {
        return reject(format!(
            "the edited chapter must keep the draft's {} scenes (got {})",
            draft.scenes.len(),
            c.scenes.len()
        ));
    }
    Ok(to_value(&c))
}

/// The schema of an edit request revising scenes `scenes` (all of the draft's when `None`):
/// each revised scene gives its number, one of those asked for.
pub(crate) fn schema(ctx: Ctx<'_>, scenes: Option<&[u32]>) -> Value {
    let all: Vec<u32> = (1..=ctx.draft.map_or(1, |d| d.scenes.len().max(1)) as u32).collect();
    let targets = scenes.unwrap_or(&all);
    let scene = object(vec![
        ("number", serde_json::json!({"type": "integer", "enum": targets})),
        ("text", text("the revised scene's prose")),
    ]);
    object(vec![
        ("scenes", array(scene, targets.len(), targets.len())),
        ("summary", text("what happens in the chapter, in a few sentences")),
        ("changes", array(text("what was changed and why"), 1, 8)),
    ])
}

/// An edit: with numbered draft scenes (the default prompt), every scene shown, revised, with
/// its number; with an unnumbered draft, the whole revised chapter.
#[cfg(feature = "sim")]
pub(crate) fn simulate(
    facts: &crate::facts::Facts,
    user: &str,
    rng: &mut crate::sim::Rng,
    bad: bool,
) -> Value {
    use crate::sim::{OBJECTS, sentence, topic};
    let doc = user.find("Draft:").and_then(|i| crate::extract::json_object(&user[i..]).ok());
    let topic = topic(facts);
    let changes = vec!["Sharpened the closing beat as the review asked".to_string()];
    let shown: Vec<Value> = doc
        .as_ref()
        .and_then(|d| d["scenes"].as_array())
        .map(|scenes| scenes.iter().filter(|s| s["number"].is_u64()).cloned().collect())
        .unwrap_or_default();
    if let (false, Some(doc)) = (shown.is_empty(), &doc) {
        let cast = facts.list("chapter cast");
        let names: Vec<&str> = cast.iter().map(String::as_str).collect();
        // Every scene shown is revised: a closing sentence added; a bad edit empties them.
        let scenes: Vec<Value> = shown
            .iter()
            .map(|scene| {
                let text = format!(
                    "{}\n\n{}",
                    scene["text"].as_str().unwrap_or_default(),
                    sentence(rng, &names, &topic)
                );
                serde_json::json!({
                    "number": scene["number"],
                    "text": if bad { String::new() } else { text },
                })
            })
            .collect();
        return serde_json::json!({
            "scenes": scenes,
            "summary": format!("In chapter {}, {} changes everything.", doc["number"], rng.pick(OBJECTS)),
            "changes": changes,
        });
    }
    let draft = doc.and_then(|v| serde_json::from_value::<ChapterText>(v).ok());
    let Some(mut draft) = draft else { return chapter::simulate(facts, rng, bad) };
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
    to_value(&draft)
}
