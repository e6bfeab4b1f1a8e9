//! The continuity pieces of a prompt: the book's ledger (characters' states, the dead, open
//! threads) as it stands before the chapter at hand, and the previous chapter's closing lines,
//! each with its shorter forms and the priorities of reaching them.

use super::context::Docs;
use crate::budget::Piece;
use scriptorium_contracts::ledger::Detail;
use scriptorium_proto::v1::StepTask;

const LEFT_OUT: &str = "(left out to fit the context)\n";

/// The ledger: every character's state and every open thread; condensed to the chapter's own
/// characters in full and five threads (priority 48), to the dead and aliases with three
/// threads (56), then to the dead alone (64). The dead are never left out.
pub(super) fn ledger_piece(docs: &Docs, focus: &[&str]) -> Piece {
    let Some(l) = &docs.ledger else { return Piece::fixed("ledger", "(none)\n") };
    Piece::new("ledger", l.render(Detail::Full, focus))
        .or(48, l.render(Detail::Focused, focus))
        .or(56, l.render(Detail::Brief, focus))
        .or(64, l.render(Detail::Deaths, focus))
}

/// The previous chapter's closing lines, to continue from: shortened to their last 300
/// characters (priority 46), then left out (54).
pub(super) fn last_lines_piece(task: &StepTask) -> Piece {
    let ctx = task.context.clone().unwrap_or_default();
    let lines = ctx.previous_last_lines.trim();
    if lines.is_empty() {
        let none =
            if ctx.chapter <= 1 { "(this is the first chapter)\n" } else { "(not written yet)\n" };
        return Piece::fixed("last_lines", none);
    }
    let chars = lines.chars().count();
    let tail: String = lines.chars().skip(chars.saturating_sub(300)).collect();
    let tail = if chars > 300 { format!("...{}", tail.trim_start()) } else { tail };
    Piece::new("last_lines", format!("{lines}\n")).or(46, format!("{tail}\n")).or(54, LEFT_OUT)
}

/// The `Facts:` line naming the dead, read by the simulated model; empty when nobody died.
pub(super) fn dead_fact(docs: &Docs) -> String {
    let dead: Vec<&str> =
        docs.ledger.iter().flat_map(|l| l.dead()).map(|c| c.name.as_str()).collect();
    if dead.is_empty() {
        String::new()
    } else {
        scriptorium_contracts::facts::line("Dead", dead.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use crate::prompts::Prompts;
    use scriptorium_contracts::facts::Facts;
    use scriptorium_contracts::{Cast, ChapterText, Continuity, Ledger, sim};
    use scriptorium_proto::v1::{AgentKind, BookBrief, StepContext, StepTask};

    /// The registry's kind of `task`.
    fn spec(task: &StepTask) -> &'static dyn scriptorium_contracts::Kind {
        scriptorium_contracts::kinds::lookup(task.kind).expect("an agent kind")
    }

    /// Chapter 3 of a book whose chapter 1 killed a character, the ledger full of threads.
    fn task(kind: AgentKind) -> (StepTask, String) {
        let brief = BookBrief {
            category: "fiction".into(),
            genre: "fantasy".into(),
            chapters: 3,
            characters: 3,
            words_per_chapter: 600,
            ..Default::default()
        };
        let cast_json = sim::answer(AgentKind::Characters, "- Characters: 3", 1, false);
        let cast: Cast = serde_json::from_str(&cast_json).unwrap();
        let victim = cast.characters[2].name.clone();
        let mut ledger = Ledger::new(Some(&cast));
        for n in 1..=2 {
            let continuity = Continuity {
                deaths: if n == 1 { vec![victim.clone()] } else { vec![] },
                threads_opened: (0..3).map(|i| format!("Thread {n}.{i} about the bells")).collect(),
                ..Default::default()
            };
            let summary = format!("Chapter {n} happened.");
            ledger.apply(n, &ChapterText { number: n, summary, continuity, ..Default::default() });
        }
        let ctx = StepContext {
            chapter: 3,
            cast_json,
            ledger_json: serde_json::to_string(&ledger).unwrap(),
            previous_last_lines: "The lantern guttered and the ferry pulled away from the quay."
                .into(),
            previous_summaries: vec!["Chapter 1 happened.".into(), "Chapter 2 happened.".into()],
            ..Default::default()
        };
        let task = StepTask {
            kind: kind as i32,
            brief: Some(brief),
            context: Some(ctx),
            ..Default::default()
        };
        (task, victim)
    }

    #[test]
    fn chapter_prompts_carry_the_ledger_and_the_previous_closing_lines() {
        let prompts = Prompts::load(None).unwrap();
        let (task, victim) = task(AgentKind::Chapter);
        let full = prompts.render_fitted(&task, spec(&task), None, None).unwrap();
        let u = &full.user;
        assert!(u.contains(&format!("{victim}: DEAD since chapter 1")), "{u}");
        assert_eq!(Facts::parse(u).list("dead"), std::slice::from_ref(&victim));
        assert!(u.contains("Thread 2.2 about the bells (opened in chapter 2)"), "{u}");
        assert!(u.contains("ends with:\nThe lantern guttered"), "{u}");
        // Condensed as the budget shrinks: the closing lines go before the ledger is down to
        // its dead, and the dead are never left out.
        let mut saw_lines_out = false;
        for budget in (full.tokens / 4..full.tokens).rev().step_by(7) {
            let Ok(r) = prompts.render_fitted(&task, spec(&task), None, Some(budget)) else {
                break;
            };
            assert!(r.user.contains(&format!("{victim}: DEAD")), "budget {budget}");
            assert_eq!(Facts::parse(&r.user).list("dead"), std::slice::from_ref(&victim));
            let lines_out = !r.user.contains("The lantern guttered");
            saw_lines_out |= lines_out;
            if !r.user.contains("Open threads:") {
                assert!(lines_out, "budget {budget}: the ledger condensed before the lines");
            }
        }
        assert!(saw_lines_out, "some budget leaves the closing lines out");
    }

    #[test]
    fn reviews_see_the_ledger_and_the_world() {
        let prompts = Prompts::load(None).unwrap();
        let (mut task, victim) = task(AgentKind::Review);
        let world = sim::answer(AgentKind::World, "- Category: fiction", 1, false);
        task.context.as_mut().unwrap().world_json = world;
        let r = prompts.render_fitted(&task, spec(&task), None, None).unwrap();
        assert!(r.user.contains(&format!("{victim}: DEAD")), "{}", r.user);
        assert!(r.user.contains("World:\n* conflicts: "), "{}", r.user);
    }
}
