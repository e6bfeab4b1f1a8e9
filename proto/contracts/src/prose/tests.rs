//! Planted defects, one per rule, and clean prose that must pass every check.

use super::*;

/// Ordinary literary prose with dialogue, names, titles, places, days and words the meta and
/// placeholder patterns use ("Sure", "Here is", "Certainly", "I hope").
const CLEAN_ONE: &str = "\
The rain had stopped by the time Mara Vell reached the harbour wall. She stood there a long \
while, watching the grey water climb the steps one by one, as if it meant to come up and fetch her.

\"You're late,\" Tobin said. He did not turn around. \"The tide won't wait for you, and neither \
will I.\"

\"Sure,\" she said. \"Here is the ledger, if you still want it.\" She held it out to him. Mother \
had told her never to trust a man who counted tides for money, but Mother had never met Tobin \
Thorne.

On Monday the council would meet in the old hall at Harrowgate, and by Tuesday half the lower \
town would be under water. Everyone knew it. Nobody said it. Even the Guild said nothing, and the \
Guild had an opinion on everything.

Tobin took the ledger without a word and opened it to the last page. Rain fell again, softly, on \
the paper. \"Certainly not what I expected,\" he said at last. \"I hope you know what this costs.\"

* * *

Later, walking home along the Crooked Stair, she thought of her brother in New York, who wrote \
every winter and never once asked about the sea. Captain Thorne had promised to carry his \
letters. Captain Thorne promised a great many things.

At the top of the stair Old Wren was waiting with a lantern. \"Sit,\" Wren said, and poured her a \
cup of something that smelled of smoke and cloves. \"Tell me everything, and then tell me the \
truth.\"

Mara laughed, for the first time in days. Outside, the bells of Saint Anselm began to ring the \
hour, and somewhere below them the sea went on rising.
";

/// A second chapter that speaks of a character who died in chapter 1 only as the dead are
/// spoken of.
const CLEAN_TWO: &str = "\
Tobin remembered how Bram had laughed at the tide tables, that last winter, as if numbers were a \
joke only he had been told. Bram's grave lay above the flood line now, which would have amused \
him too.

\"Bram said the ledger was cursed,\" Tobin told her. \"He said it the night before he went into \
the water.\"

The late Bram Sato had left no will, only debts and a drawer of charts that nobody could read. \
Mara read them anyway, one by one, by the light of Old Wren's lantern, while the wind worried at \
the shutters.

\"Wait,\" Iona said. She pointed at a line of figures in the margin. \"Those are not tides. \
Those are names.\"
";

const NON_FICTION: &str = "\
Consider how incentives shape every decision a team makes, often without anyone noticing. In \
this chapter we look at three of them: what gets measured, what gets praised, and what gets \
ignored.

The evidence on measurement is clearer than most managers expect. When Goodhart wrote that a \
measure which becomes a target ceases to be a good measure, he was describing banks, but the \
same pattern shows up in hospitals, schools and software teams.

Here is a simple test: ask three people what the team is trying to achieve this quarter, and \
compare the answers.
";

fn cast() -> Canon {
    Canon::new(vec![
        Person::new("Mara Vell"),
        Person::new("Tobin Thorne"),
        Person::new("Iona Quill").with_aliases(["Old Wren", "Wren"]),
        Person::new("Bram Sato").died(Some(1)),
    ])
    .with_text("Harrowgate is a drowned port; the Crooked Stair climbs from the lower docks.")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn clean_literary_prose_passes_every_check() {
    let canon = cast();
    let planned = names(&["Mara Vell", "Tobin Thorne", "Iona Quill"]);
    let one = Chapter { number: 1, title: "The Harbour Wall", text: CLEAN_ONE };
    let words = word_count(CLEAN_ONE);
    let plan =
        Plan { title: Some("The harbour wall"), target_words: Some(words), characters: &planned };
    let f = check_chapter(&one, &plan, &Seen::default(), &canon);
    assert!(f.is_empty(), "{f:#?}");
    let two = Chapter { number: 2, title: "Charts", text: CLEAN_TWO };
    let planned = names(&["Mara Vell", "Tobin Thorne", "Iona Quill"]);
    let plan = Plan { title: Some("Charts"), target_words: None, characters: &planned };
    let f = check_chapter(&two, &plan, &Seen::of(&[one]), &canon);
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn clean_non_fiction_passes_with_and_without_a_cast() {
    let chapter = Chapter { number: 1, title: "Incentives", text: NON_FICTION };
    let plan = Plan { title: Some("Incentives"), target_words: Some(95), characters: &[] };
    // Named people in non-fiction are not characters: the cast is empty.
    for canon in [Canon::default(), Canon::default().with_text("incentives and measurement")] {
        let f = check_chapter(&chapter, &plan, &Seen::default(), &canon);
        assert!(f.is_empty(), "{f:#?}");
    }
}

#[test]
fn a_renamed_character_is_an_unknown_name() {
    let text = "\"We cannot wait,\" Mira said, and the room went still.\n\n\
                Later Tobin Vell crossed the square with the brass key.";
    let chapter = Chapter { number: 2, title: "", text };
    let canon = Canon::new(vec![Person::new("Mara Vell"), Person::new("Tobin Thorne")]);
    let f = unknown_names(&chapter, &Seen::default(), &canon);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f.iter().all(|f| f.rule == Rule::UnknownName && f.chapter == 2));
    assert!(f[0].message.starts_with("\"Mira\" (paragraph 1) is not a character of the cast"));
    assert!(f[0].message.contains("Mara Vell, Tobin Thorne"));
    assert_eq!(f[1].paragraph, Some(2));
    assert!(f[1].message.contains("\"Tobin Vell\" (paragraph 2) mixes the names"));
    assert!(!Rule::UnknownName.is_hard());
}

#[test]
fn unknown_names_in_person_positions_are_found_and_known_ones_are_not() {
    let canon = Canon::new(vec![Person::new("Mara Vell")]).with_text("the Orrery of Kell");
    let find = |text: &str| -> Vec<String> {
        unknown_names(&Chapter { number: 1, title: "", text }, &Seen::default(), &canon)
            .into_iter()
            .map(|f| f.snippet)
            .collect()
    };
    assert_eq!(find("\"Go,\" said Jorin.").len(), 1);
    assert_eq!(find("\"Go,\" Jorin said.").len(), 1);
    // A sentence start capitalises any noun: "Silence answered" is no one.
    assert!(find("Silence answered. Ma said nothing.").is_empty());
    assert_eq!(find("Jorin said nothing. She looked at Jorin.").len(), 1);
    assert_eq!(find("Captain Harrow drew his sword.").len(), 1);
    assert_eq!(find("She met Jorin Vask at noon.").len(), 1);
    // The subject of an action verb only counts when the word is capitalised mid-sentence too.
    assert!(find("Jorin walked home.").is_empty());
    assert_eq!(find("Jorin walked home. Later she saw Jorin again.").len(), 1);
    // Known words of the book, words also written in lower case, things after articles.
    assert!(find("Kell said nothing. The Orrery turned.").is_empty());
    assert!(find("Rain said nothing to the rain.").is_empty());
    assert!(find("Then the Council said no, and the Council turned away.").is_empty());
    assert!(find("She lived in New York, near Hyde Park, and Mara Vell visited.").is_empty());
    // Contractions are no one, at a sentence start or after a speech verb; O'Brien is someone.
    assert!(find("I've seen the tide. Then I've said nothing, and I've walked far.").is_empty());
    assert!(find("I've seen the tide. \"Go,\" I'm sure. We'll see, she said.").is_empty());
    assert!(find("\"Wait,\" she said. I’ll go. Don't. They’re here. I'd know.").is_empty());
    assert_eq!(find("\"Go,\" said O'Brien.").len(), 1);
}

#[test]
fn a_dead_character_who_speaks_is_found() {
    let canon = cast();
    let text = "\"Run,\" said Bram, and pulled him into the dark.\n\n\
                The water rose. Bram Sato turned to the window and laughed.\n\n\
                Tobin slowly counted the steps.";
    let chapter = Chapter { number: 2, title: "", text };
    let f = dead_acting(&chapter, &canon);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(
        (f[0].rule, f[0].paragraph, f[1].paragraph),
        (Rule::DeadCharacterActs, Some(1), Some(2))
    );
    assert!(
        f[0].message.starts_with("Bram Sato died in chapter 1 but speaks or acts in paragraph 1")
    );
    assert!(Rule::DeadCharacterActs.is_hard());
    // In the chapter of the death, and before it, the character may still act.
    assert!(dead_acting(&Chapter { number: 1, title: "", text }, &canon).is_empty());
    // Adverbs between name and verb do not hide the act.
    let f = dead_acting(&Chapter { number: 3, title: "", text: "Bram quietly said no." }, &canon);
    assert_eq!(f.len(), 1);
}

#[test]
fn the_dead_remembered_or_quoted_do_not_act() {
    let canon = cast();
    for text in [
        "Tobin remembered how Bram said it.",
        "Bram's grave lay under the rain.",
        "\"Bram said we should wait,\" Tobin told her.",
        "The late Bram Sato had left no will.",
        "Bram had said the tide would turn.",
        "If Bram said so, it was true once.",
        "Mara dreamed that Bram walked beside her.",
    ] {
        let f = dead_acting(&Chapter { number: 4, title: "", text }, &canon);
        assert!(f.is_empty(), "{text}: {f:#?}");
    }
}

#[test]
fn a_paragraph_duplicated_across_two_chapters_is_a_hard_finding() {
    let shared = "The ferry left at dawn, low in the water, its lamps still burning against a \
                  fog that had not lifted in three days.";
    let one_text = format!("Mara waited on the quay until the light came.\n\n{shared}");
    let two_text = format!("{shared}\n\nTobin counted the boats as they came in.");
    let one = Chapter { number: 1, title: "", text: &one_text };
    let two = Chapter { number: 2, title: "", text: &two_text };
    let f = check_chapter(&two, &Plan::default(), &Seen::of(&[one]), &Canon::default());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule, Rule::RepeatedParagraph);
    assert!(f[0].rule.is_hard());
    assert_eq!(
        f[0].message,
        "paragraph 1 repeats paragraph 2 of chapter 1 word for word; write new prose instead"
    );
    assert_eq!(f[0].other, Some(Place { chapter: 1, paragraph: 2 }));
}

#[test]
fn here_is_the_chapter_is_caught_by_check_chapter() {
    let text = "Here is the chapter:\n\nMara waited on the quay until the light came.";
    let f = check_chapter(
        &Chapter { number: 1, title: "", text },
        &Plan::default(),
        &Seen::default(),
        &cast(),
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule, Rule::MetaText);
    assert_eq!(f[0].snippet, "Here is the chapter:");
}

#[test]
fn a_300_word_chapter_for_a_2000_word_target_is_too_short() {
    let text: Vec<String> = (0..300).map(|i| text::letters(format!("w{i}"))).collect();
    let text = text.join(" ");
    let chapter = Chapter { number: 4, title: "", text: &text };
    let plan = Plan { target_words: Some(2000), ..Plan::default() };
    let f = check_chapter(&chapter, &plan, &Seen::default(), &Canon::default());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].rule, Rule::Length);
    assert_eq!(
        f[0].message,
        "chapter 4 has 300 words for a target of 2000 (length score 0, too short); write between \
         1429 and 3200 words"
    );
}

#[test]
fn the_length_score_follows_longwriter() {
    assert_eq!(length_score(2000, 2000), 100.0);
    assert!((length_score(1000, 1300) - 90.0).abs() < 1e-9);
    assert!((length_score(1000, 800) - 87.5).abs() < 1e-9);
    assert_eq!(length_score(1000, 4000), 0.0);
    assert_eq!(length_score(2000, 300), 0.0);
    assert_eq!(length_window(2000, MIN_LENGTH_SCORE), (1429, 3200));
    assert_eq!(length_window(1000, 90.0), (834, 1300));
    let (lo, hi) = length_window(900, MIN_LENGTH_SCORE);
    assert!(length_score(900, lo) >= MIN_LENGTH_SCORE - 1e-9);
    assert!(length_score(900, lo - 1) < MIN_LENGTH_SCORE);
    assert!(length_score(900, hi) >= MIN_LENGTH_SCORE - 1e-9);
    assert!(length_score(900, hi + 1) < MIN_LENGTH_SCORE);
}

#[test]
fn plan_characters_who_never_appear_are_found() {
    let planned = names(&["Mara Vell", "Tobin Thorne", "Iona Quill", "Iona Quill"]);
    let text = "Vell waited on the quay. Old Wren brought the lantern.";
    let f = plan_missing(&Chapter { number: 5, title: "", text }, &planned, &cast());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0].rule, f[0].paragraph), (Rule::PlanCharacterMissing, None));
    assert!(
        f[0].message.starts_with("the plan of chapter 5 lists Tobin Thorne, who never appears")
    );
}

#[test]
fn a_title_other_than_the_outline_is_found() {
    let chapter = Chapter { number: 1, title: "The Gate", text: "" };
    assert!(title_mismatch(&chapter, "the gate!").is_none());
    let f = title_mismatch(&chapter, "The Ledger").expect("a mismatch");
    assert_eq!(f.rule, Rule::TitleMismatch);
}

#[test]
fn a_title_an_earlier_chapter_has_is_found_and_fails_the_book() {
    let one = Chapter { number: 1, title: "Liluna", text: "" };
    let two = Chapter { number: 2, title: "The Gate", text: "" };
    let three = Chapter { number: 3, title: "liluna.", text: "" };
    assert!(repeated_title(&two, &Seen::of(&[one])).is_none());
    let f = repeated_title(&three, &Seen::of(&[one, two])).expect("a repeat");
    assert_eq!((f.rule, f.chapter), (Rule::RepeatedTitle, 3));
    assert!(f.message.contains("chapter 1's too"), "{}", f.message);
    assert!(f.rule.is_hard());
    let untitled = Chapter { number: 4, title: "", text: "" };
    assert!(
        repeated_title(&untitled, &Seen::of(&[Chapter { number: 5, title: " ", text: "" }]))
            .is_none()
    );
}

#[test]
fn rule_text_lists_hard_rules_first() {
    let soft = Finding::chapter_wide(Rule::UnknownName, 1, "x", "soft".into());
    let hard = Finding::chapter_wide(Rule::MetaText, 1, "x", "hard".into());
    assert_eq!(
        rule_text(&[soft, hard]),
        "Fix these problems in the chapter's prose:\n1. hard\n2. soft\n"
    );
}

#[test]
fn findings_serialise_with_snake_case_rules() {
    let f =
        Finding::new(Rule::DeadCharacterActs, Place { chapter: 2, paragraph: 3 }, "t", "m".into());
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(v["rule"], "dead_character_acts");
    assert_eq!(v["paragraph"], 3);
    assert!(v.get("other").is_none());
    assert_eq!(serde_json::from_value::<Finding>(v).unwrap(), f);
}
