//! Validation of every agent answer before it is accepted: the free-text fields cleaned of what
//! is not story ([`crate::prose::fields`]), a typed JSON parse, then the semantic rules of its
//! kind (in the kind's own file). A rejection names the rule, and is sent back as feedback.

use crate::kinds::{Cast, ChapterText, Outline, Review, World};
use crate::ledger::Ledger;
use scriptorium_proto::v1::{AgentKind, BookBrief};
use serde_json::Value;

/// Why an answer was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}")]
pub struct Rejection {
    /// The rule broken, in words a model can act on.
    pub rule: String,
}

pub(crate) fn reject<T>(rule: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection { rule: rule.into() })
}

/// What validation needs to know besides the answer.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The book's brief.
    pub brief: &'a BookBrief,
    /// The accepted cast, if any.
    pub cast: Option<&'a Cast>,
    /// The accepted outline, if any.
    pub outline: Option<&'a Outline>,
    /// The accepted draft, for edits.
    pub draft: Option<&'a ChapterText>,
    /// The chapter number of chapter, review and edit steps.
    pub chapter: u32,
    /// The continuity ledger as it stands before this chapter, if the book keeps one.
    pub ledger: Option<&'a Ledger>,
    /// The accepted texts (drafts and edits) of the book's other chapters: a chapter may not
    /// repeat their paragraphs.
    pub earlier: &'a [ChapterText],
    /// The same texts prepared for the prose checks, when the caller keeps them (a
    /// coordinator, per book); without it, the checks prepare `earlier` for each call.
    pub seen: Option<&'a crate::prose::Seen>,
    /// The accepted world, if any (its words are no strangers' names).
    pub world: Option<&'a World>,
    /// The accepted review, for edits (it names the scenes an edit must change).
    pub review: Option<&'a Review>,
    /// The words of the outline, cast and world (`kinds::chapter::known_words` of this
    /// context), when the caller keeps them (a coordinator, per book); without it, the checks
    /// gather them for each call.
    pub known: Option<&'a std::sync::Arc<crate::prose::KnownWords>>,
}

impl<'a> Ctx<'a> {
    /// The context of a book with `brief` and nothing accepted yet; set the other fields with
    /// struct update syntax (`Ctx { cast: Some(&cast), ..Ctx::new(&brief) }`).
    pub fn new(brief: &'a BookBrief) -> Ctx<'a> {
        Ctx {
            brief,
            cast: None,
            outline: None,
            draft: None,
            chapter: 0,
            ledger: None,
            earlier: &[],
            seen: None,
            world: None,
            review: None,
            known: None,
        }
    }
}

pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    kind: &str,
    output: &str,
) -> Result<T, Rejection> {
    serde_json::from_str(output).or_else(|e| {
        reject(format!("the {kind} answer is not valid JSON of the expected shape: {e}"))
    })
}

pub(crate) fn non_empty(what: &str, s: &str) -> Result<(), Rejection> {
    if s.trim().is_empty() { reject(format!("{what} must not be empty")) } else { Ok(()) }
}

pub(crate) fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub(crate) fn known_names(ctx: Ctx<'_>, names: &[String], what: &str) -> Result<(), Rejection> {
    let Some(cast) = ctx.cast else { return Ok(()) };
    if let Some(unknown) = names.iter().find(|n| !cast.knows(n)) {
        return reject(format!(
            "{what} names {unknown:?}, who is not in the cast ({})",
            cast.names().join(", ")
        ));
    }
    Ok(())
}

/// Validates `output` of a `kind` step; the accepted, normalised document on success. A kind
/// no agent answers (assembly, or a value this build does not know) is refused with the reason.
pub fn validate(kind: AgentKind, output: &str, ctx: Ctx<'_>) -> Result<Value, Rejection> {
    let spec = crate::kinds::agent(kind).or_else(|e| reject(e.to_string()))?;
    // Brackets copied from the example come off; a value the example shows is no answer.
    let mut cleaned = serde_json::from_str::<Value>(output).ok().map(|mut v| {
        crate::schema::unwrap_slots(&mut v);
        v
    });
    if let Some(v) = &cleaned {
        let examples = examples(kind);
        if let Some((path, text)) = crate::schema::find_placeholder(v, "answer", examples) {
            return reject(format!(
                "{path} is a placeholder ({text:?}), not content: write the real text"
            ));
        }
    }
    // What is not story comes off every free-text field; a field left with nothing is refused.
    if let Some(v) = &mut cleaned {
        crate::prose::fields::clean(spec.name(), v)?;
    }
    let cleaned = cleaned.map(|v| v.to_string());
    spec.validate(cleaned.as_deref().unwrap_or(output), ctx)
}

/// Every value an example of a `kind` request can show ([`crate::schema::example_values`]),
/// gathered once from its schema in each context that changes which fields it describes (a
/// brief with and without a title, each category's world sections, a book with and without a
/// cast): validating an answer does not build its request's schema to learn them. A value one
/// of these contexts shows is no answer in any of them.
fn examples(kind: AgentKind) -> &'static [String] {
    static ALL: std::sync::OnceLock<Vec<(AgentKind, Vec<String>)>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        let cast = Cast { characters: vec![crate::kinds::Character::default()] };
        let mut briefs = Vec::new();
        for category in ["fiction", "business", "research", "non-fiction"] {
            for title in ["", "A Title"] {
                let (category, title) = (category.to_string(), title.to_string());
                briefs.push(BookBrief { category, title, chapters: 1, ..Default::default() });
            }
        }
        crate::kinds::REGISTRY
            .iter()
            .map(|spec| {
                let mut values: Vec<String> = Vec::new();
                for brief in &briefs {
                    for cast in [None, Some(&cast)] {
                        let ctx = Ctx { cast, ..Ctx::new(brief) };
                        for v in crate::schema::example_values(&spec.schema(ctx, None)) {
                            if !values.contains(&v) {
                                values.push(v);
                            }
                        }
                    }
                }
                (spec.kind(), values)
            })
            .collect()
    });
    all.iter().find(|(k, _)| *k == kind).map_or(&[], |(_, v)| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Character, OutlineChapter, ProseScene, Scene};
    use serde_json::json;

    fn brief() -> BookBrief {
        BookBrief {
            title: String::new(),
            category: "fiction".into(),
            chapters: 2,
            characters: 2,
            words_per_chapter: 100,
            ..Default::default()
        }
    }

    fn cast() -> Cast {
        let c = |n: &str| Character { name: n.into(), role: "r".into(), ..Default::default() };
        Cast { characters: vec![c("Ann Lee"), c("Bo Park")] }
    }

    fn outline(scenes: usize) -> Outline {
        let ch = |n| OutlineChapter {
            number: n,
            title: format!("T{n}"),
            summary: "s".into(),
            scenes: (0..scenes)
                .map(|_| Scene {
                    summary: "x".into(),
                    characters: vec!["Ann".into()],
                    ..Default::default()
                })
                .collect(),
        };
        Outline { summary: "s".into(), chapters: vec![ch(1), ch(2)] }
    }

    fn ctx<'a>(b: &'a BookBrief, c: &'a Cast, o: &'a Outline) -> Ctx<'a> {
        Ctx { cast: Some(c), outline: Some(o), chapter: 1, ..Ctx::new(b) }
    }

    /// `words` distinct lowercase words (no paragraph repeats another).
    fn prose(words: usize, salt: &str) -> String {
        (0..words)
            .map(|i| crate::prose::text::letters(format!("w{salt}x{i}")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn chapter_json(scenes: usize, words_each: usize, chars: &[&str]) -> String {
        salted_chapter(scenes, words_each, chars, "")
    }

    fn salted_chapter(scenes: usize, words_each: usize, chars: &[&str], salt: &str) -> String {
        let c = ChapterText {
            number: 1,
            title: "T1".into(),
            scenes: (0..scenes)
                .map(|i| ProseScene {
                    heading: String::new(),
                    text: prose(words_each, &format!("{salt}{i}")),
                })
                .collect(),
            summary: "s".into(),
            characters: chars.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        serde_json::to_string(&c).unwrap()
    }

    fn rule(r: Result<Value, Rejection>) -> String {
        r.unwrap_err().rule
    }

    #[test]
    fn concept_keeps_the_brief_title_and_needs_its_fields() {
        let mut b = brief();
        b.title = "Mine".into();
        let (c, o) = (cast(), outline(3));
        let v = validate(
            AgentKind::Concept,
            r#"{"title":"Other","logline":"l","description":"d"}"#,
            ctx(&b, &c, &o),
        )
        .unwrap();
        assert_eq!(v["title"], "Mine");
        assert!(
            rule(validate(
                AgentKind::Concept,
                r#"{"title":"x","logline":"","description":"d"}"#,
                ctx(&b, &c, &o)
            ))
            .contains("logline")
        );
        assert!(
            rule(validate(AgentKind::Concept, "not json", ctx(&b, &c, &o)))
                .contains("not valid JSON")
        );
    }

    #[test]
    fn cast_size_and_unique_names() {
        let (b, c, o) = (brief(), cast(), outline(3));
        let ok = json!({"characters": [{"name": "A", "role": "r"}, {"name": "B", "role": "r"}]})
            .to_string();
        assert!(validate(AgentKind::Characters, &ok, ctx(&b, &c, &o)).is_ok());
        let three = json!({"characters": [{"name": "A", "role": "r"}, {"name": "B", "role": "r"}, {"name": "C", "role": "r"}]}).to_string();
        assert!(
            rule(validate(AgentKind::Characters, &three, ctx(&b, &c, &o)))
                .contains("exactly 2 characters")
        );
        let dup =
            json!({"characters": [{"name": "Ann", "role": "r"}, {"name": "ANN", "role": "r"}]})
                .to_string();
        assert!(rule(validate(AgentKind::Characters, &dup, ctx(&b, &c, &o))).contains("unique"));
        // A character named after the book is refused, and the title is not repeated back to
        // the model in the feedback.
        let titled = BookBrief { title: "The Salt Harbour".into(), ..brief() };
        for name in ["The Salt Harbour", "Salt Harbour"] {
            let cast =
                json!({"characters": [{"name": "A", "role": "r"}, {"name": name, "role": "r"}]})
                    .to_string();
            let r = rule(validate(AgentKind::Characters, &cast, ctx(&titled, &c, &o)));
            assert!(r.contains("character 2 is named after the book's title"), "{r}");
            assert!(!r.to_lowercase().contains("salt"), "{r}");
        }
    }

    #[test]
    fn world_needs_the_category_sections() {
        let (b, c, o) = (brief(), cast(), outline(3));
        let w = json!({"sections": {"geography": "g", "cultures": "c", "magic_or_technology": "m", "history": "h"}}).to_string();
        assert!(rule(validate(AgentKind::World, &w, ctx(&b, &c, &o))).contains("conflicts"));
    }

    #[test]
    fn outline_bounds_chapters_scenes_and_names() {
        let (b, c) = (brief(), cast());
        let o = outline(3);
        let good = serde_json::to_string(&o).unwrap();
        assert!(validate(AgentKind::Outline, &good, ctx(&b, &c, &o)).is_ok());
        let mut three = o.clone();
        three.chapters.push(OutlineChapter { number: 3, ..o.chapters[0].clone() });
        assert!(
            rule(validate(
                AgentKind::Outline,
                &serde_json::to_string(&three).unwrap(),
                ctx(&b, &c, &o)
            ))
            .contains("exactly 2 chapters")
        );
        let many = serde_json::to_string(&outline(30)).unwrap();
        assert!(
            rule(validate(AgentKind::Outline, &many, ctx(&b, &c, &o)))
                .contains("3 to 6 scenes (got 30)")
        );
        let two = serde_json::to_string(&outline(2)).unwrap();
        assert!(
            rule(validate(AgentKind::Outline, &two, ctx(&b, &c, &o)))
                .contains("3 to 6 scenes (got 2)")
        );
        let mut swapped = o.clone();
        swapped.chapters.swap(0, 1);
        assert!(
            rule(validate(
                AgentKind::Outline,
                &serde_json::to_string(&swapped).unwrap(),
                ctx(&b, &c, &o)
            ))
            .contains("numbered")
        );
        let mut stranger = o.clone();
        stranger.chapters[1].scenes[0].characters = vec!["Zed".into()];
        assert!(
            rule(validate(
                AgentKind::Outline,
                &serde_json::to_string(&stranger).unwrap(),
                ctx(&b, &c, &o)
            ))
            .contains("\"Zed\"")
        );
        // A title the model ran on into JSON keeps its words; one of JSON only is refused.
        let mut run_on = o.clone();
        run_on.chapters[0].title = "The Lamp }, { 2018 }]\n}".into();
        let text = serde_json::to_string(&run_on).unwrap();
        let accepted = validate(AgentKind::Outline, &text, ctx(&b, &c, &o)).unwrap();
        assert_eq!(accepted["chapters"][0]["title"], "The Lamp");
        run_on.chapters[0].title = "}]".into();
        let text = serde_json::to_string(&run_on).unwrap();
        assert!(rule(validate(AgentKind::Outline, &text, ctx(&b, &c, &o))).contains("title"));
    }

    #[test]
    fn chapter_rules() {
        let (b, c, o) = (brief(), cast(), outline(3));
        assert!(
            validate(AgentKind::Chapter, &chapter_json(3, 40, &["Ann Lee"]), ctx(&b, &c, &o))
                .is_ok()
        );
        assert!(
            rule(validate(AgentKind::Chapter, &chapter_json(3, 0, &[]), ctx(&b, &c, &o)))
                .contains("empty prose")
        );
        // LongWriter's length score of 80 or more: 72 to 160 words for a target of 100.
        assert!(
            rule(validate(AgentKind::Chapter, &chapter_json(3, 5, &[]), ctx(&b, &c, &o)))
                .contains("15 words for a target of 100 (length score 0, too short)")
        );
        assert!(
            rule(validate(AgentKind::Chapter, &chapter_json(3, 54, &[]), ctx(&b, &c, &o)))
                .contains("write between 72 and 160 words")
        );
        assert!(validate(AgentKind::Chapter, &chapter_json(3, 24, &[]), ctx(&b, &c, &o)).is_ok());
        assert!(validate(AgentKind::Chapter, &chapter_json(4, 40, &[]), ctx(&b, &c, &o)).is_err());
        assert!(
            rule(validate(AgentKind::Chapter, &chapter_json(4, 20, &[]), ctx(&b, &c, &o)))
                .contains("exactly 3 scenes")
        );
        assert!(
            rule(validate(AgentKind::Chapter, &chapter_json(3, 40, &["Ghost"]), ctx(&b, &c, &o)))
                .contains("not in the cast")
        );
        let mut x = ctx(&b, &c, &o);
        x.chapter = 2;
        assert!(
            rule(validate(AgentKind::Chapter, &chapter_json(3, 40, &[]), x))
                .contains("chapter number 2")
        );
    }

    #[test]
    fn review_rules() {
        let (b, c, o) = (brief(), cast(), outline(3));
        let s = json!({"consistency": 5, "clarity": 5, "plot_holes": 5, "redundancy": 5, "flow": 5, "engagement": 5});
        let ok = json!({"verdict": "Accept", "scores": s}).to_string();
        assert_eq!(validate(AgentKind::Review, &ok, ctx(&b, &c, &o)).unwrap()["verdict"], "accept");
        let bad = json!({"verdict": "maybe", "scores": s}).to_string();
        assert!(rule(validate(AgentKind::Review, &bad, ctx(&b, &c, &o))).contains("verdict"));
        let mut s0 = s.clone();
        s0["flow"] = json!(0);
        assert!(
            rule(validate(
                AgentKind::Review,
                &json!({"verdict": "accept", "scores": s0}).to_string(),
                ctx(&b, &c, &o)
            ))
            .contains("flow")
        );
        assert!(
            rule(validate(
                AgentKind::Review,
                &json!({"verdict": "revise", "scores": s}).to_string(),
                ctx(&b, &c, &o)
            ))
            .contains("issues")
        );
    }

    #[test]
    fn edit_keeps_the_draft_scenes() {
        let (b, c, o) = (brief(), cast(), outline(3));
        let draft: ChapterText = serde_json::from_str(&chapter_json(3, 40, &[])).unwrap();
        let mut x = ctx(&b, &c, &o);
        x.draft = Some(&draft);
        assert!(validate(AgentKind::Edit, &salted_chapter(3, 40, &[], "r"), x).is_ok());
        let mut o4 = o.clone();
        let extra = o4.chapters[0].scenes[0].clone();
        o4.chapters[0].scenes.push(extra);
        x.outline = Some(&o4);
        assert!(
            rule(validate(AgentKind::Edit, &chapter_json(4, 30, &[]), x))
                .contains("keep the draft's 3 scenes")
        );
    }

    #[test]
    fn the_gathered_examples_hold_every_value_a_request_shows() {
        let (c, o) = (cast(), outline(3));
        let draft: ChapterText = serde_json::from_str(&chapter_json(3, 20, &["Ann Lee"])).unwrap();
        let review = Review { verdict: "revise".into(), ..Default::default() };
        for category in ["fiction", "business", "research", "poetry"] {
            for title in ["", "Mine"] {
                let b = BookBrief { category: category.into(), title: title.into(), ..brief() };
                let plain = Ctx::new(&b);
                let full = Ctx { draft: Some(&draft), review: Some(&review), ..ctx(&b, &c, &o) };
                for spec in crate::kinds::REGISTRY {
                    let gathered = examples(spec.kind());
                    for ctx in [plain, full] {
                        for scenes in [None, Some(&[1u32][..])] {
                            for v in crate::schema::example_values(&spec.schema(ctx, scenes)) {
                                assert!(gathered.contains(&v), "{}: {v:?}", spec.name());
                            }
                        }
                    }
                }
            }
        }
        let section = "a placeholder section";
        let w = json!({"sections": {"geography": "geography", "cultures": section}});
        let r = rule(validate(AgentKind::World, &w.to_string(), Ctx::new(&brief())));
        assert!(r.contains("placeholder") && r.contains("geography"), "{r}");
    }
}
