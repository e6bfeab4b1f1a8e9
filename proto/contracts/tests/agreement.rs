//! Every kind's pieces agree: the simulated answer, the example shape and the request schema
//! parse as the kind's answer type; the simulated answer fits the schema and passes validation;
//! the example fits the schema but for list lengths and is refused as a placeholder.
#![cfg(feature = "sim")]

use scriptorium_contracts::{
    Cast, ChapterText, Concept, Ctx, Outline, Review, World, facts::line, kinds, schema, sim,
    validate,
};
use scriptorium_proto::kind;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde_json::Value;

fn brief(category: &str) -> BookBrief {
    BookBrief {
        title: String::new(),
        category: category.into(),
        genre: "fantasy".into(),
        chapters: 3,
        characters: 3,
        words_per_chapter: 600,
        ..Default::default()
    }
}

/// A whole book's answers from the simulated model, as the engine would ask for them.
struct Book {
    brief: BookBrief,
    cast: Cast,
    outline: Outline,
    draft: ChapterText,
}

fn prompt_for(
    kind: AgentKind,
    b: &BookBrief,
    cast: Option<&Cast>,
    outline: Option<&Outline>,
    chapter: u32,
) -> String {
    let mut p = String::from("Facts:\n");
    p += &line("Category", &b.category);
    p += &line("Genre", &b.genre);
    p += &line("Chapters", b.chapters);
    p += &line("Characters", b.characters);
    p += &line("Words per chapter", b.words_per_chapter);
    if let Some(c) = cast {
        p += &line("Cast", c.names().join("; "));
    }
    if let Some(plan) = outline.and_then(|o| o.chapter(chapter)) {
        p += &line("Chapter", chapter);
        p += &line("Chapter title", &plan.title);
        p += &line("Scenes in this chapter", plan.scenes.len());
        p += &line("Chapter cast", plan.cast().join("; "));
    }
    let _ = kind;
    p
}

fn answer(kind: AgentKind, prompt: &str) -> String {
    sim::answer(kind, prompt, 7, false)
}

fn book(category: &str) -> Book {
    let b = brief(category);
    let cast: Cast = serde_json::from_str(&answer(
        AgentKind::Characters,
        &prompt_for(AgentKind::Characters, &b, None, None, 0),
    ))
    .unwrap();
    let outline_text =
        answer(AgentKind::Outline, &prompt_for(AgentKind::Outline, &b, Some(&cast), None, 0));
    let ctx = Ctx { cast: Some(&cast), ..Ctx::new(&b) };
    let outline: Outline =
        serde_json::from_value(validate(AgentKind::Outline, &outline_text, ctx).unwrap()).unwrap();
    let draft_text = answer(
        AgentKind::Chapter,
        &prompt_for(AgentKind::Chapter, &b, Some(&cast), Some(&outline), 2),
    );
    let ctx = Ctx { cast: Some(&cast), outline: Some(&outline), chapter: 2, ..Ctx::new(&b) };
    let draft: ChapterText =
        serde_json::from_value(validate(AgentKind::Chapter, &draft_text, ctx).unwrap()).unwrap();
    Book { brief: b, cast, outline, draft }
}

fn parses_as(kind: AgentKind, v: &Value) -> Result<(), String> {
    let text = v.to_string();
    let r = match kind {
        AgentKind::Concept => serde_json::from_str::<Concept>(&text).map(drop),
        AgentKind::Characters => serde_json::from_str::<Cast>(&text).map(drop),
        AgentKind::World => serde_json::from_str::<World>(&text).map(drop),
        AgentKind::Outline => serde_json::from_str::<Outline>(&text).map(drop),
        AgentKind::Chapter | AgentKind::Edit => {
            serde_json::from_str::<ChapterText>(&text).map(drop)
        }
        AgentKind::Review => serde_json::from_str::<Review>(&text).map(drop),
        AgentKind::Assembly | AgentKind::Unspecified => Err(serde::de::Error::custom("no answer")),
    };
    r.map_err(|e| e.to_string())
}

/// Every kind of the wire enum has its agent in the registry (assembly excepted: the
/// coordinator does it), so the loops below cover every kind a step can have.
#[test]
fn the_registry_covers_every_kind_on_the_wire() {
    for k in kind::all() {
        match kinds::agent(k) {
            Ok(spec) => assert_eq!(spec.kind(), k),
            Err(e) => assert_eq!(k, AgentKind::Assembly, "{e}"),
        }
    }
    assert_eq!(kinds::REGISTRY.len(), kind::all().count() - 1);
}

#[test]
fn every_kind_agrees_with_itself() {
    for category in ["fiction", "non-fiction", "business", "research"] {
        let bk = book(category);
        for spec in kinds::REGISTRY {
            let kind = spec.kind();
            let chapter =
                if matches!(kind, AgentKind::Chapter | AgentKind::Review | AgentKind::Edit) {
                    2
                } else {
                    0
                };
            let draft = (kind == AgentKind::Edit).then_some(&bk.draft);
            let ctx = Ctx {
                cast: Some(&bk.cast),
                outline: Some(&bk.outline),
                draft,
                chapter,
                ..Ctx::new(&bk.brief)
            };
            let schema = spec.schema(ctx, None);
            let name = spec.name();

            // The simulated answer: the schema's shape, and accepted.
            let mut prompt =
                prompt_for(kind, &bk.brief, Some(&bk.cast), Some(&bk.outline), chapter);
            if kind == AgentKind::Edit {
                let scenes: Vec<Value> = bk
                    .draft
                    .scenes
                    .iter()
                    .enumerate()
                    .map(|(i, s)| serde_json::json!({"number": i + 1, "text": s.text}))
                    .collect();
                prompt +=
                    &format!("Draft:\n{}\n", serde_json::json!({"number": 2, "scenes": scenes}));
            }
            let simulated: Value = serde_json::from_str(&answer(kind, &prompt)).unwrap();
            parses_as(kind, &simulated).unwrap_or_else(|e| panic!("{category} {name} sim: {e}"));
            schema::check(&schema, &simulated).unwrap_or_else(|e| {
                panic!("{category} {name}: simulated answer off its schema: {e}\n{simulated}")
            });
            let answer_text = if kind == AgentKind::Edit {
                // The worker merges an edit's scenes into the draft before it is validated.
                let mut merged = bk.draft.clone();
                for s in simulated["scenes"].as_array().unwrap() {
                    let n = s["number"].as_u64().unwrap() as usize;
                    merged.scenes[n - 1].text = s["text"].as_str().unwrap().to_string();
                }
                serde_json::to_string(&merged).unwrap()
            } else {
                simulated.to_string()
            };
            validate(kind, &answer_text, ctx)
                .unwrap_or_else(|e| panic!("{category} {name}: simulated answer refused: {e}"));

            // The example shape: the answer type, the schema but for list lengths, and refused
            // as a placeholder by validation.
            let example: Value = serde_json::from_str(&kinds::example(*spec, ctx, None)).unwrap();
            parses_as(kind, &example).unwrap_or_else(|e| panic!("{category} {name} example: {e}"));
            if let Err(e) = schema::check(&schema, &example) {
                assert!(
                    e.contains("items (got 1)"),
                    "{category} {name}: example off its schema: {e}"
                );
            }
            let mut copied = example.clone();
            schema::unwrap_slots(&mut copied);
            let shown = schema::example_values(&schema);
            assert!(
                schema::find_placeholder(&copied, "answer", &shown).is_some(),
                "{category} {name}: the example shows content, not placeholders"
            );
            let refused = validate(kind, &example.to_string(), ctx).unwrap_err().rule;
            assert!(refused.contains("placeholder"), "{category} {name}: {refused}");
        }
    }
}

/// The free-text strings of `schema` (no enum) without a `maxLength`: their paths.
fn unbounded(schema: &Value, path: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("string")
                && !map.contains_key("enum")
                && map.get("maxLength").and_then(Value::as_u64).is_none()
            {
                out.push(path.to_string());
            }
            for (k, v) in map {
                unbounded(v, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| unbounded(v, path, out)),
        _ => {}
    }
}

#[test]
fn every_free_text_field_is_bounded_so_a_looping_model_stops() {
    for category in ["fiction", "non-fiction", "business", "research"] {
        let bk = book(category);
        for spec in kinds::REGISTRY {
            let kind = spec.kind();
            let draft = (kind == AgentKind::Edit).then_some(&bk.draft);
            let ctx = Ctx {
                cast: Some(&bk.cast),
                outline: Some(&bk.outline),
                draft,
                chapter: 2,
                ..Ctx::new(&bk.brief)
            };
            let mut open = Vec::new();
            unbounded(&spec.schema(ctx, None), "answer", &mut open);
            assert!(open.is_empty(), "{category} {}: unbounded strings {open:?}", kind::name(kind));
        }
    }
}
