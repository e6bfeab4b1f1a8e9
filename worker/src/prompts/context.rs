//! A step's context as prompt pieces: the documents it carries (concept, cast, world, outline,
//! draft, review), the `Facts:` block, and each piece's shorter forms and priorities.

use super::Part;
use super::continuity;
use crate::budget::Piece;
use scriptorium_contracts::facts::line;
use scriptorium_contracts::{
    Cast, ChapterText, Concept, Ctx, Kind, Ledger, Outline, OutlineChapter, Review, World,
};
use scriptorium_proto::v1::{AgentKind, BookBrief, StepTask};

/// The documents of a step's context, parsed once.
#[derive(Debug, Clone, Default)]
pub struct Docs {
    /// The accepted concept.
    pub concept: Option<Concept>,
    /// The accepted outline.
    pub outline: Option<Outline>,
    /// The accepted cast.
    pub cast: Option<Cast>,
    /// The accepted world.
    pub world: Option<World>,
    /// The accepted draft (review and edit steps).
    pub draft: Option<ChapterText>,
    /// The accepted review (edit steps).
    pub review: Option<Review>,
    /// The continuity ledger before this chapter (chapter, review and edit steps).
    pub ledger: Option<Ledger>,
}

impl Docs {
    /// The contract context of a request about chapter `chapter` of the book of `brief`.
    pub fn ctx<'a>(&'a self, brief: &'a BookBrief, chapter: u32) -> Ctx<'a> {
        Ctx {
            brief,
            cast: self.cast.as_ref(),
            outline: self.outline.as_ref(),
            draft: self.draft.as_ref(),
            chapter,
            ledger: self.ledger.as_ref(),
            earlier: &[],
            seen: None,
            world: self.world.as_ref(),
            review: self.review.as_ref(),
            known: None,
        }
    }

    /// Parses the documents `task` carries.
    pub fn of(task: &StepTask) -> Docs {
        let ctx = task.context.clone().unwrap_or_default();
        Docs {
            concept: parse(&ctx.concept_json),
            outline: parse(&ctx.outline_json),
            cast: parse(&ctx.cast_json),
            world: parse(&ctx.world_json),
            draft: parse(&ctx.draft_json),
            review: parse(&ctx.review_json),
            ledger: parse(&ctx.ledger_json),
        }
    }

    /// This chapter's plan.
    pub fn plan(&self, chapter: u32) -> Option<&OutlineChapter> {
        self.outline.as_ref().and_then(|o| o.chapters.iter().find(|c| c.number == chapter))
    }
}

/// The scenes an edit revises: those its review names (`Scene 2: ...`) when every issue and
/// suggestion names one, else every scene of the draft (the contract's rule, which validation
/// checks the edit against).
pub fn edit_targets(docs: &Docs) -> Vec<u32> {
    match &docs.draft {
        Some(d) => scriptorium_contracts::edit::targets(d, docs.review.as_ref()),
        None => Vec::new(),
    }
}

const LEFT_OUT: &str = "(left out to fit the context)\n";

fn first_sentence(s: &str) -> &str {
    let s = s.trim();
    match s.find(". ") {
        Some(i) => &s[..=i],
        None => s,
    }
}

fn shorten(s: &str, chars: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= chars {
        return s.to_string();
    }
    let cut: String = s.chars().take(chars).collect();
    format!("{}...", cut.trim_end())
}

fn paragraphs(text: &str) -> Vec<&str> {
    text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn character_full(c: &scriptorium_contracts::Character) -> String {
    format!(
        "* {} ({}, {}): {}. Wants: {}. Arc: {}.\n",
        c.name, c.role, c.age, c.personality, c.motivations, c.arc
    )
}

fn character_short(c: &scriptorium_contracts::Character) -> String {
    format!("* {} ({})\n", c.name, c.role)
}

/// The names of the characters this chapter's plan puts in its scenes, in order.
fn chapter_cast(plan: Option<&OutlineChapter>) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for n in plan.iter().flat_map(|p| p.scenes.iter()).flat_map(|s| s.characters.iter()) {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    names
}

fn facts(task: &StepTask, docs: &Docs, part: Option<&Part>) -> String {
    let brief = task.brief.clone().unwrap_or_default();
    let chapter = task.context.as_ref().map_or(0, |c| c.chapter);
    let plan = docs.plan(chapter);
    let mut facts = String::new();
    let title =
        docs.concept.as_ref().map(|c| c.title.clone()).unwrap_or_else(|| brief.title.clone());
    // The cast is made from the premise: shown the title, small models name a character after it.
    if !title.is_empty() && task.kind() != AgentKind::Characters {
        facts += &line("Title", &title);
    }
    facts += &line("Category", &brief.category);
    if !brief.genre.is_empty() {
        facts += &line("Genre", &brief.genre);
    }
    facts += &line("Language", &brief.language);
    facts += &line("Tone", &brief.tone);
    facts += &line("Audience", &brief.audience);
    facts += &line("Chapters", brief.chapters);
    facts += &line("Characters", brief.characters);
    facts += &line("Words per chapter", brief.words_per_chapter);
    if let Some(cast) = &docs.cast {
        let names: Vec<&str> = cast.characters.iter().map(|c| c.name.as_str()).collect();
        facts += &line("Cast", names.join("; "));
    }
    if chapter > 0 {
        facts += &line("Chapter", chapter);
    }
    if let Some(p) = plan {
        facts += &line("Chapter title", &p.title);
        facts += &line("Scenes in this chapter", p.scenes.len());
        let names = chapter_cast(plan);
        if !names.is_empty() {
            facts += &line("Chapter cast", names.join("; "));
        }
    }
    facts += &continuity::dead_fact(docs);
    if let Some(part) = part
        && task.kind() == AgentKind::Chapter
    {
        facts += &line("Scenes in this part", part.scenes.len());
        facts += &line("First scene of this part", part.scenes.first().copied().unwrap_or(1));
        facts += &line("Words in this part", part.words);
    }
    facts
}

/// Every piece of context `task` can fill its template with, each with its shorter forms and
/// the priorities of reaching them: the lower, the sooner a piece is condensed or dropped.
///
/// Never condensed: the facts, the answer's shape, the rejection feedback and the part
/// instructions. Then, from first condensed to last: earlier chapters' summaries (oldest
/// first), the world, the concept, the previous chapter's closing lines, the ledger (down to
/// its dead, who stay), the two latest summaries, the cast, this chapter's plan, the review
/// notes and the draft.
pub(super) fn pieces(
    task: &StepTask,
    spec: &dyn Kind,
    docs: &Docs,
    part: Option<&Part>,
    shape: &serde_json::Value,
) -> Vec<Piece> {
    let brief = task.brief.clone().unwrap_or_default();
    let ctx = task.context.clone().unwrap_or_default();
    let kind = spec.kind();
    let plan = docs.plan(ctx.chapter);
    let setup = matches!(kind, AgentKind::Characters | AgentKind::World | AgentKind::Outline);
    let mut out = vec![
        Piece::fixed("facts", facts(task, docs, part)),
        Piece::fixed("chapter", ctx.chapter.to_string()),
        Piece::fixed("shape", scriptorium_contracts::schema::guide(shape)),
        Piece::fixed("feedback", feedback(task)),
        Piece::fixed("part", part_text(kind, part, plan.map_or(0, |p| p.scenes.len()))),
    ];

    let description = format!(
        "Project: {}\nAuthor: {}\nDescription: {}\n",
        brief.project, brief.author, brief.description
    );
    let short_description = format!(
        "Project: {}\nAuthor: {}\nDescription: {}\n",
        brief.project,
        brief.author,
        shorten(&brief.description, 1200)
    );
    out.push(Piece::new("brief", description).or(90, short_description));

    out.push(match &docs.concept {
        Some(c) => {
            let title = if kind == AgentKind::Characters {
                String::new()
            } else {
                format!("Title: {}\n", c.title)
            };
            let full = format!(
                "{title}Logline: {}\nDescription: {}\nThemes: {}\n",
                c.logline,
                c.description,
                c.themes.join(", ")
            );
            let short = format!("{title}Logline: {}\n", c.logline);
            if setup {
                Piece::new("concept", full).or(80, short)
            } else {
                Piece::new("concept", full).or(35, short).or(45, LEFT_OUT)
            }
        }
        None => Piece::fixed("concept", "(none)\n"),
    });

    out.push(cast_piece(kind, docs, plan));

    out.push(match &docs.world {
        Some(w) => {
            let full: String = w.sections.iter().map(|(k, s)| format!("* {k}: {s}\n")).collect();
            let short: String =
                w.sections.iter().map(|(k, s)| format!("* {k}: {}\n", first_sentence(s))).collect();
            if setup {
                Piece::new("world", full).or(70, short)
            } else if kind == AgentKind::Review {
                // A review judges the chapter against the world's gist, not its full text.
                Piece::new("world", short).or(40, LEFT_OUT)
            } else {
                Piece::new("world", full).or(30, short).or(40, LEFT_OUT)
            }
        }
        None => Piece::fixed("world", "(none)\n"),
    });

    out.push(Piece::fixed(
        "outline",
        docs.outline
            .as_ref()
            .map(|o| {
                let mut s = format!("{}\n", o.summary);
                for c in &o.chapters {
                    s += &format!("{}. {}: {}\n", c.number, c.title, c.summary);
                }
                s
            })
            .unwrap_or_default(),
    ));

    out.push(previous_piece(&ctx.previous_summaries));
    out.push(continuity::ledger_piece(docs, &chapter_cast(plan)));
    out.push(continuity::last_lines_piece(task));

    if let Some(p) = plan {
        let mine = |i: usize| part.is_none_or(|pt| pt.scenes.contains(&(i as u32 + 1)));
        let head = format!("Chapter {}: {}. {}\n", p.number, p.title, p.summary);
        let detailed = |i: usize, sc: &scriptorium_contracts::Scene| {
            format!(
                "Scene {}: {} (characters: {}; setting: {}; goal: {}; beat: {})\n",
                i + 1,
                sc.summary,
                sc.characters.join(", "),
                sc.setting,
                sc.goal,
                sc.emotional_beat
            )
        };
        let brief_line = |i: usize, sc: &scriptorium_contracts::Scene| {
            format!("Scene {}: {} (characters: {})\n", i + 1, sc.summary, sc.characters.join(", "))
        };
        let mut full = head.clone();
        let mut focused = head.clone();
        let mut only = head;
        for (i, sc) in p.scenes.iter().enumerate() {
            full += &detailed(i, sc);
            if mine(i) {
                focused += &detailed(i, sc);
                only += &brief_line(i, sc);
            } else {
                focused += &brief_line(i, sc);
            }
        }
        out.push(Piece::new("chapter_plan", full).or(65, focused).or(70, only));
    }

    if let Some(d) = &docs.draft {
        out.push(draft_piece(kind, d, part));
    }

    if let Some(r) = &docs.review {
        let list = |items: &[String], chars: usize| -> String {
            items.iter().map(|i| format!("* {}\n", shorten(i, chars))).collect()
        };
        let full = format!(
            "Verdict: {}\nIssues:\n{}Suggestions:\n{}",
            r.verdict,
            list(&r.issues, usize::MAX),
            list(&r.suggestions, usize::MAX)
        );
        let short = format!(
            "Verdict: {}\nIssues:\n{}Suggestions:\n{}",
            r.verdict,
            list(&r.issues, 200),
            list(&r.suggestions, 200)
        );
        out.push(Piece::new("review", full).or(78, short));
    }
    out
}

fn feedback(task: &StepTask) -> String {
    let fb = task.context.as_ref().map(|c| c.feedback.as_str()).unwrap_or("");
    if fb.is_empty() {
        String::new()
    } else {
        format!(
            "\nYour previous answer (attempt {}) was rejected: {}. Correct exactly this and answer again.\n",
            task.attempt.saturating_sub(1),
            shorten(fb, 1500)
        )
    }
}

/// Instructions for a request that covers part of a step.
fn part_text(kind: AgentKind, part: Option<&Part>, planned: usize) -> String {
    let Some(part) = part else { return String::new() };
    if kind != AgentKind::Chapter {
        return String::new();
    }
    let first = part.scenes.first().copied().unwrap_or(1);
    let last = part.scenes.last().copied().unwrap_or(first);
    let mut s = format!(
        "\nThis request writes only scenes {first} to {last} of the {planned} planned scenes, about {} words in all; the other scenes are written in separate requests and joined with yours. Head your scenes as in the plan.\n",
        part.words
    );
    if !part.so_far.is_empty() {
        s += &format!("The chapter so far: {}\n", shorten(&part.so_far, 800));
    }
    if !part.last_lines.is_empty() {
        s += &format!(
            "It ends with: \"{}\"\nContinue from there without repeating it.\n",
            shorten(&part.last_lines, 600)
        );
    }
    s += "Your \"summary\" tells the whole chapter so far, up to the end of your scenes.\n";
    s
}

fn cast_piece(kind: AgentKind, docs: &Docs, plan: Option<&OutlineChapter>) -> Piece {
    let Some(cast) = docs.cast.as_ref().filter(|c| !c.characters.is_empty()) else {
        return Piece::fixed("cast", "(no characters)\n");
    };
    let all_full: String = cast.characters.iter().map(character_full).collect();
    let all_short: String = cast.characters.iter().map(character_short).collect();
    let names = chapter_cast(plan);
    let here = |c: &&scriptorium_contracts::Character| names.iter().any(|n| c.name == *n);
    // This chapter's characters in full, the others by name and role.
    let focused: String = cast
        .characters
        .iter()
        .map(|c| if here(&c) { character_full(c) } else { character_short(c) })
        .collect();
    let chapter_only: String = cast.characters.iter().filter(here).map(character_short).collect();
    match kind {
        // A chapter's own characters in full, the rest of the cast by name and role.
        AgentKind::Chapter | AgentKind::Review | AgentKind::Edit => {
            let p = Piece::new("cast", focused).or(60, all_short);
            if chapter_only.is_empty() { p } else { p.or(66, chapter_only) }
        }
        _ => Piece::new("cast", all_full).or(60, all_short),
    }
}

/// Earlier chapters' summaries: dropped oldest first; the two latest are kept longest.
fn previous_piece(summaries: &[String]) -> Piece {
    if summaries.is_empty() {
        return Piece::fixed("previous", "(this is the first chapter)\n");
    }
    let n = summaries.len();
    let lines = |from: usize| -> String {
        let mut s =
            if from > 0 { format!("(chapters 1-{from} left out)\n") } else { String::new() };
        for (i, text) in summaries.iter().enumerate().skip(from) {
            s += &format!("Chapter {}: {text}\n", i + 1);
        }
        s
    };
    let mut piece = Piece::new("previous", lines(0));
    for dropped in 1..n {
        // Recency of the summary this step drops: 1 for the latest chapter.
        let recency = n - dropped + 1;
        let priority = if recency <= 2 { 50 } else { 30 - recency.min(20) as u8 };
        piece = piece.or(priority, lines(dropped));
    }
    piece.or(52, "(earlier chapters left out to fit the context)\n")
}

/// The draft as a reviewer reads it (prose, condensed to excerpts when it must be) or as an
/// editor gets it (the scenes to revise, as JSON with their numbers).
fn draft_piece(kind: AgentKind, d: &ChapterText, part: Option<&Part>) -> Piece {
    if kind == AgentKind::Edit {
        let shown: Vec<u32> = match part {
            Some(p) => p.scenes.clone(),
            None => (1..=d.scenes.len() as u32).collect(),
        };
        let scenes: Vec<serde_json::Value> = d
            .scenes
            .iter()
            .enumerate()
            .filter(|(i, _)| shown.contains(&(*i as u32 + 1)))
            .map(
                |(i, s)| serde_json::json!({"number": i + 1, "heading": s.heading, "text": s.text}),
            )
            .collect();
        let doc = serde_json::json!({"number": d.number, "title": d.title, "scenes": scenes});
        let mut s = format!("```json\n{doc}\n```\n");
        let hidden: Vec<String> = (1..=d.scenes.len() as u32)
            .filter(|n| !shown.contains(n))
            .map(|n| n.to_string())
            .collect();
        if !hidden.is_empty() {
            s += &format!("Scenes not shown ({}) stay as they are.\n", hidden.join(", "));
        }
        return Piece::fixed("draft", s);
    }
    let render = |scene: &dyn Fn(&str) -> String| -> String {
        let mut s = format!("Chapter {}: {}\n", d.number, d.title);
        for (i, sc) in d.scenes.iter().enumerate() {
            s += &format!("\nScene {} ({}):\n{}\n", i + 1, sc.heading, scene(&sc.text));
        }
        s
    };
    let full = render(&|t| t.trim().to_string());
    let excerpts = render(&|t| {
        let p = paragraphs(t);
        match p.as_slice() {
            [] => String::new(),
            [one] => (*one).to_string(),
            [first, .., last] => format!("{first}\n[...]\n{last}"),
        }
    });
    let openings = render(&|t| {
        paragraphs(t).first().map(|p| format!("{}\n[...]", shorten(p, 400))).unwrap_or_default()
    });
    let outline = format!(
        "Chapter {}: {}\n{}\nSummary: {}\n",
        d.number,
        d.title,
        d.scenes
            .iter()
            .enumerate()
            .map(|(i, s)| format!("Scene {}: {}", i + 1, s.heading))
            .collect::<Vec<_>>()
            .join("\n"),
        d.summary
    );
    Piece::new("draft", full).or(75, excerpts).or(80, openings).or(85, outline)
}

fn parse<T: serde::de::DeserializeOwned + Default>(json: &str) -> Option<T> {
    if json.is_empty() { None } else { serde_json::from_str(json).ok() }
}

#[cfg(test)]
mod tests;
