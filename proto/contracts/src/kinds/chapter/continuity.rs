//! What a chapter reports about the story's continuity (deaths, aliases, whereabouts, threads
//! opened and closed): its type, its part of the request schema and its rules. Every list is
//! short and may be empty, so a small model copes; the book folds the reports into its
//! [`Ledger`](crate::ledger::Ledger).

use crate::rules::{Ctx, Rejection, reject};
use crate::schema::{array, cast_name, object};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most deaths one chapter reports.
pub const MAX_DEATHS: usize = 3;
/// Most aliases one chapter reports.
pub const MAX_ALIASES: usize = 3;
/// Most whereabouts one chapter reports.
pub const MAX_WHEREABOUTS: usize = 4;
/// Most threads one chapter opens, and most it closes.
pub const MAX_THREADS: usize = 3;
/// Longest alias, in words.
pub(crate) const ALIAS_WORDS: usize = 6;
/// Longest place, object or thread, in characters.
pub(crate) const NOTE_CHARS: usize = 200;

/// Another name the prose gives a cast member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Alias {
    /// The cast member's name.
    pub name: String,
    /// The other name (`the tide-reader`, `Old Wren`).
    pub alias: String,
}

/// Where a cast member is at the end of the chapter, and what they carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Whereabouts {
    /// The cast member's name.
    pub name: String,
    /// Where they are.
    pub place: String,
    /// What they carry (`nothing` when nothing matters).
    pub carries: String,
}

/// A chapter's continuity report; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Continuity {
    /// Cast members who die in this chapter.
    pub deaths: Vec<String>,
    /// Other names the prose gives cast members.
    pub aliases: Vec<Alias>,
    /// Where cast members are at the chapter's end.
    pub whereabouts: Vec<Whereabouts>,
    /// Questions or promises to the reader this chapter opens.
    pub threads_opened: Vec<String>,
    /// Open threads this chapter resolves, worded as the ledger words them.
    pub threads_closed: Vec<String>,
}

impl Continuity {
    /// Whether the report says nothing.
    pub fn is_empty(&self) -> bool {
        self.deaths.is_empty()
            && self.aliases.is_empty()
            && self.whereabouts.is_empty()
            && self.threads_opened.is_empty()
            && self.threads_closed.is_empty()
    }

    /// Adds the report of a later part of the same chapter: its deaths, aliases and threads,
    /// and its whereabouts replacing earlier ones of the same character. The caps stay.
    pub fn merge(&mut self, later: Continuity) {
        for d in later.deaths {
            if !self.deaths.iter().any(|x| x.eq_ignore_ascii_case(&d)) {
                self.deaths.push(d);
            }
        }
        for a in later.aliases {
            if !self.aliases.contains(&a) {
                self.aliases.push(a);
            }
        }
        for w in later.whereabouts {
            self.whereabouts.retain(|x| !x.name.eq_ignore_ascii_case(&w.name));
            self.whereabouts.push(w);
        }
        self.threads_opened.extend(later.threads_opened);
        self.threads_closed.extend(later.threads_closed);
        self.deaths.truncate(MAX_DEATHS);
        self.aliases.truncate(MAX_ALIASES);
        let extra = self.whereabouts.len().saturating_sub(MAX_WHEREABOUTS);
        self.whereabouts.drain(..extra);
        self.threads_opened.truncate(MAX_THREADS);
        self.threads_closed.truncate(MAX_THREADS);
    }
}

/// The names a continuity report may use: the cast members alive before this chapter.
pub(crate) fn living<'a>(ctx: Ctx<'a>) -> Vec<&'a str> {
    let Some(cast) = ctx.cast else { return Vec::new() };
    cast.names()
        .into_iter()
        .filter(|n| ctx.ledger.is_none_or(|l| !l.is_dead(n, ctx.chapter)))
        .collect()
}

/// The schema of the report: names from the living cast (a book without one reports threads
/// only), each list capped.
pub(crate) fn schema(ctx: Ctx<'_>) -> Value {
    let names = living(ctx);
    let mut props = vec![
        (
            "threads_opened",
            array(
                note_text("a question or promise to the reader this chapter opens"),
                0,
                MAX_THREADS,
            ),
        ),
        (
            "threads_closed",
            array(
                note_text("an open thread this chapter resolves, as the ledger words it"),
                0,
                MAX_THREADS,
            ),
        ),
    ];
    if !names.is_empty() {
        let who = || cast_name(&names);
        props.push(("deaths", array(who(), 0, MAX_DEATHS.min(names.len()))));
        props.push((
            "aliases",
            array(
                object(vec![
                    ("name", who()),
                    ("alias", note_text("another name the prose uses for them")),
                ]),
                0,
                MAX_ALIASES,
            ),
        ));
        props.push((
            "whereabouts",
            array(
                object(vec![
                    ("name", who()),
                    ("place", note_text("where they are at the chapter's end")),
                    ("carries", note_text("what they carry, or \"nothing\"")),
                ]),
                0,
                MAX_WHEREABOUTS.min(names.len()),
            ),
        ));
    }
    object(props)
}

/// A note of the report: held to [`NOTE_CHARS`] by the schema too (a grammar enforces it).
fn note_text(what: &str) -> Value {
    crate::schema::text_sized(what, 1, NOTE_CHARS)
}

/// Whether `s` is a usable note: filled (when `required`) and at most [`NOTE_CHARS`].
fn fits(s: &str, required: bool) -> bool {
    !(required && s.trim().is_empty()) && s.chars().count() <= NOTE_CHARS
}

/// Checks the report of chapter `ctx.chapter` and normalises its names to the cast's full
/// names. A book without a cast keeps only its threads.
///
/// The report is the chapter's account of itself, not its prose: an entry that contradicts the
/// book (a death of someone already dead, an alias that is another character's name or too
/// long, whereabouts of the dead, an empty or over-long note, more entries than a list holds) is
/// left out of the ledger rather than costing the chapter; the prose rules judge the prose.
/// Only a name outside the cast is refused, as the model has lost track of who is in the book.
pub(crate) fn check(ctx: Ctx<'_>, c: &mut Continuity) -> Result<(), Rejection> {
    let n = ctx.chapter;
    for list in [&mut c.threads_opened, &mut c.threads_closed] {
        list.retain(|t| fits(t, true));
        list.truncate(MAX_THREADS);
    }
    let Some(cast) = ctx.cast.filter(|c| !c.characters.is_empty()) else {
        c.deaths.clear();
        c.aliases.clear();
        c.whereabouts.clear();
        return Ok(());
    };
    let dead = |name: &str| ctx.ledger.is_some_and(|l| l.is_dead(name, n));
    let member = |name: &str, what: &str| -> Result<String, Rejection> {
        match cast.member(name) {
            Some(m) => Ok(m.name.clone()),
            None => reject(format!(
                "continuity: {what} names {name:?}, who is not in the cast ({})",
                cast.names().join(", ")
            )),
        }
    };
    for d in &mut c.deaths {
        *d = member(d, "a death")?;
    }
    c.deaths.retain(|d| !dead(d));
    c.deaths.dedup();
    c.deaths.truncate(MAX_DEATHS);
    for a in &mut c.aliases {
        a.name = member(&a.name, "an alias")?;
    }
    c.aliases.retain(|a| {
        fits(&a.alias, true)
            && a.alias.split_whitespace().count() <= ALIAS_WORDS
            && cast.member(&a.alias).is_none_or(|m| m.name == a.name)
    });
    c.aliases.truncate(MAX_ALIASES);
    for w in &mut c.whereabouts {
        w.name = member(&w.name, "whereabouts")?;
    }
    c.whereabouts.retain(|w| !dead(&w.name) && fits(&w.place, true) && fits(&w.carries, false));
    c.whereabouts.truncate(MAX_WHEREABOUTS);
    Ok(())
}
