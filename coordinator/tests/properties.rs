//! Property tests (seeded random inputs, thousands of cases): brief validation, wire decoding
//! and answer validation never panic, and every refusal names a field and a rule.

use scriptorium_contracts::rules::{self as validation, Ctx};
use scriptorium_contracts::sim::Rng;
use scriptorium_coordinator::brief;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::v1::{AgentKind, BookBrief, StepResult, StepTask, SubmitBook};

const FIELDS: &[&str] = &[
    "project",
    "title",
    "category",
    "genre",
    "language",
    "description",
    "length",
    "chapters",
    "words_per_chapter",
    "characters",
    "worldbuilding",
    "review",
    "tone",
    "audience",
    "author",
    "seed",
    "budget_usd",
    "fallbacks",
    "colour",
];

fn random_value(rng: &mut Rng) -> String {
    match rng.range(0, 9) {
        0 => rng.range(0, 200).to_string(),
        1 => format!("-{}", rng.range(0, 5)),
        2 => "true".into(),
        3 => format!(
            "\"{}\"",
            [
                "fiction",
                "non-fiction",
                "business",
                "research",
                "poetry",
                "",
                "novella",
                "ai",
                "human"
            ][rng.range(0, 8) as usize]
        ),
        4 => format!("\"{}\"", "x".repeat(rng.range(0, 400) as usize)),
        5 => "\"bad\\u0007bell\"".into(),
        6 => format!(
            "[\"{}/m\", \"{}\"]",
            ["openai", "sim", ""][rng.range(0, 2) as usize],
            ["a/b", "nomodel", ""][rng.range(0, 2) as usize]
        ),
        7 => format!("{}.5", rng.range(0, 9)),
        8 => "\"A clear description.\"".into(),
        _ => "{ x = 1 }".into(),
    }
}

#[test]
fn brief_validation_accepts_only_sound_briefs_and_names_the_field_otherwise() {
    let mut rng = Rng::from_parts(&[b"briefs"]);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..rng.range(0, 10) {
            let field = FIELDS[rng.range(0, FIELDS.len() as u32 - 1) as usize];
            text += &format!("{field} = {}\n", random_value(&mut rng));
        }
        if rng.chance(0.7) {
            text = format!("category = \"fiction\"\ndescription = \"d\"\n{text}");
        }
        match brief::parse(&text) {
            Ok(b) => {
                ok += 1;
                assert!((1..=100).contains(&b.chapters) && b.characters <= 30, "{text}");
                assert!((100..=20_000).contains(&b.words_per_chapter), "{text}");
                assert!(brief::CATEGORIES.contains(&b.category.as_str()), "{text}");
                assert!(
                    !b.description.trim().is_empty() && !b.title.chars().any(|c| c.is_control()),
                    "{text}"
                );
                assert!(
                    brief::revalidate(&b).is_ok(),
                    "a valid brief must stay valid on the wire: {text}"
                );
            }
            Err(e) => {
                refused += 1;
                assert!(!e.field.is_empty() && !e.rule.is_empty(), "{text}: {e:?}");
                assert!(e.to_string().starts_with(&format!("brief field `{}`", e.field)));
            }
        }
    }
    assert!(
        ok > 100 && refused > 100,
        "the generator must cover both outcomes ({ok} ok, {refused} refused)"
    );
}

#[test]
fn decoding_random_and_corrupted_wire_messages_never_panics() {
    let mut rng = Rng::from_parts(&[b"wire"]);
    let valid = StepTask {
        book_id: "b1".into(),
        step_id: "chapter-01".into(),
        kind: AgentKind::Chapter as i32,
        attempt: 2,
        brief: Some(BookBrief { title: "T".into(), chapters: 3, ..Default::default() }),
        routes: vec!["sim/default".into()],
        ..Default::default()
    }
    .encode_to_vec();
    for i in 0..20_000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            (0..rng.range(0, 64)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..rng.range(1, 4) {
                let at = (rng.next_u64() as usize) % b.len();
                b[at] ^= 1 << rng.range(0, 7);
            }
            if rng.chance(0.3) {
                b.truncate((rng.next_u64() as usize) % b.len());
            }
            b
        };
        let _ = StepTask::decode(bytes.as_slice());
        let _ = StepResult::decode(bytes.as_slice());
        if let Ok(s) = SubmitBook::decode(bytes.as_slice()) {
            // Whatever arrives is re-checked like a brief file.
            let _ = brief::revalidate(&s.brief.unwrap_or_default());
        }
    }
}

#[test]
fn validating_random_answers_never_panics_and_accepts_only_well_formed_ones() {
    let mut rng = Rng::from_parts(&[b"answers"]);
    let brief = BookBrief {
        category: "fiction".into(),
        chapters: 2,
        characters: 2,
        words_per_chapter: 100,
        ..Default::default()
    };
    let atoms = ["null", "1", "-3", "\"\"", "\"x\"", "[]", "{}", "[\"Ann\"]", "true", "300"];
    let keys = [
        "title",
        "logline",
        "description",
        "characters",
        "name",
        "role",
        "chapters",
        "number",
        "scenes",
        "summary",
        "text",
        "verdict",
        "scores",
        "sections",
        "flow",
    ];
    fn random_json(rng: &mut Rng, depth: u32, atoms: &[&str], keys: &[&str]) -> String {
        if depth == 0 || rng.chance(0.3) {
            return atoms[rng.range(0, atoms.len() as u32 - 1) as usize].to_string();
        }
        if rng.chance(0.5) {
            let items: Vec<String> =
                (0..rng.range(0, 4)).map(|_| random_json(rng, depth - 1, atoms, keys)).collect();
            format!("[{}]", items.join(","))
        } else {
            let items: Vec<String> = (0..rng.range(0, 5))
                .map(|_| {
                    format!(
                        "\"{}\":{}",
                        keys[rng.range(0, keys.len() as u32 - 1) as usize],
                        random_json(rng, depth - 1, atoms, keys)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
    let kinds = [
        AgentKind::Concept,
        AgentKind::Characters,
        AgentKind::World,
        AgentKind::Outline,
        AgentKind::Chapter,
        AgentKind::Review,
        AgentKind::Edit,
    ];
    for i in 0..5000 {
        let output = random_json(&mut rng, 4, &atoms, &keys);
        let kind = kinds[i % kinds.len()];
        let ctx = Ctx { chapter: 1, ..Ctx::new(&brief) };
        match validation::validate(kind, &output, ctx) {
            Ok(doc) => assert!(doc.is_object(), "{output}"),
            Err(r) => assert!(!r.rule.is_empty()),
        }
    }
}
