//! Context budgets: the budget of one request on a route, and prompt pieces with priorities
//! that are condensed or dropped, lowest priority first, until a prompt fits its budget.
//!
//! # The estimate and its margin
//! Prompts are measured with `estimate_tokens`, the one estimate of the workspace
//! (`scriptorium_contracts::tokens`, where its reason and its measured error are written down).
//! On top of it every request keeps a [`Budget::margin`] of 64 tokens (chat template, role
//! markers, the server's own start tokens) plus 1/16 of the window (text denser than the
//! estimate assumes): `prompt estimate + max_tokens + margin <= context window` holds for every
//! request sent. A server that still answers that its context is exceeded gets one more
//! request, planned against the window (and the token count) its answer reports.

use std::collections::BTreeMap;

/// The budget of one request on a route: its context window (when known) and the largest
/// answer it may be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The context window in estimated tokens, prompt and answer together; `None`: unknown,
    /// and prompts are not condensed.
    pub window: Option<u64>,
    /// The largest answer: the route's output limit and the task's `max_tokens`, whichever is
    /// smaller.
    pub max_output: u64,
    /// Prompts are counted with the model's own tokenizer, chat template included: no margin
    /// for an estimate's error is kept.
    pub exact: bool,
}

impl Budget {
    /// A budget for a route with `window` tokens whose answers may take `max_output` tokens.
    pub fn new(window: Option<u64>, max_output: u64) -> Budget {
        Budget { window, max_output, exact: false }
    }

    /// A budget whose prompts are counted exactly (an in-process model's tokenizer).
    pub fn exact(window: Option<u64>, max_output: u64) -> Budget {
        Budget { window, max_output, exact: true }
    }

    /// Tokens kept free in every request: 64 plus 1/16 of the window (0 without a window);
    /// 8 (the end-of-answer token and slack) when prompts are counted exactly.
    pub fn margin(&self) -> u64 {
        match self.window {
            Some(_) if self.exact => 8,
            Some(w) => 64 + w / 16,
            None => 0,
        }
    }

    /// The window less the margin: what prompt and answer may share.
    pub fn usable(&self) -> Option<u64> {
        self.window.map(|w| w.saturating_sub(self.margin()))
    }

    /// The largest answer a step that can be done in parts plans one request for: the output
    /// limit, and at most 60% of the usable window, so the prompt keeps room for context.
    pub fn max_answer(&self) -> u64 {
        self.usable().map_or(self.max_output, |u| self.max_output.min(u * 3 / 5))
    }

    /// The tokens a prompt may take when its answer needs `answer` tokens (`None`: no limit).
    pub fn prompt_for(&self, answer: u64) -> Option<u64> {
        self.usable().map(|u| u.saturating_sub(answer.min(self.max_output)))
    }

    /// `max_tokens` for a request whose prompt takes `prompt` tokens: what is left of the
    /// usable window, at most the output limit.
    pub fn answer_room(&self, prompt: u64) -> u64 {
        self.usable().map_or(self.max_output, |u| u.saturating_sub(prompt).min(self.max_output))
    }
}

/// One piece of a prompt's context: the text of a template slot, with the shorter forms it
/// can be condensed to. Each step to a shorter form has a priority; [`fit`] takes the steps
/// with the lowest priority first, so low-priority context is condensed or dropped first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The template placeholder the piece fills; pieces of one slot are joined in order.
    pub slot: &'static str,
    /// The full text.
    pub full: String,
    /// Shorter forms, in order, each with the priority of the step that reaches it.
    pub steps: Vec<(u8, String)>,
}

impl Piece {
    /// A piece that is never condensed.
    pub fn fixed(slot: &'static str, text: impl Into<String>) -> Piece {
        Piece { slot, full: text.into(), steps: Vec::new() }
    }

    /// A piece with its full text; add shorter forms with [`Piece::or`].
    pub fn new(slot: &'static str, full: impl Into<String>) -> Piece {
        Self::fixed(slot, full)
    }

    /// Adds a shorter form, reached by a step of `priority`.
    pub fn or(mut self, priority: u8, shorter: impl Into<String>) -> Piece {
        let shorter = shorter.into();
        let last = self.steps.last().map_or(&self.full, |s| &s.1);
        if shorter.len() < last.len() {
            self.steps.push((priority, shorter));
        }
        self
    }

    /// The text at `level` (0: full).
    fn at(&self, level: usize) -> &str {
        if level == 0 { &self.full } else { &self.steps[level - 1].1 }
    }
}

/// A prompt that does not fit its budget even with every piece at its shortest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the prompt needs {need} tokens at its shortest, over its budget of {budget}")]
pub struct Overflow {
    /// Estimated tokens of the shortest prompt.
    pub need: u64,
    /// The budget.
    pub budget: u64,
}

/// The slot values of a fitted prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fitted {
    /// Text per slot.
    pub values: BTreeMap<&'static str, String>,
    /// Estimated tokens of the rendered prompt.
    pub tokens: u64,
    /// Slots that were condensed or dropped, in the order it happened.
    pub condensed: Vec<&'static str>,
}

fn values(pieces: &[Piece], levels: &[usize]) -> BTreeMap<&'static str, String> {
    let mut v: BTreeMap<&'static str, String> = BTreeMap::new();
    for (p, &l) in pieces.iter().zip(levels) {
        v.entry(p.slot).or_default().push_str(p.at(l));
    }
    v
}

/// Chooses the form of every piece so that `measure` (the estimated tokens of the prompt
/// rendered from the slot values) stays within `budget`: while it does not, the pending step
/// of lowest priority is taken (ties: the earlier piece). Without a budget, every piece stays
/// full.
pub fn fit(
    pieces: &[Piece],
    budget: Option<u64>,
    measure: impl Fn(&BTreeMap<&'static str, String>) -> u64,
) -> Result<Fitted, Overflow> {
    let mut levels = vec![0usize; pieces.len()];
    let mut condensed = Vec::new();
    loop {
        let v = values(pieces, &levels);
        let tokens = measure(&v);
        let Some(budget) = budget else { return Ok(Fitted { values: v, tokens, condensed }) };
        if tokens <= budget {
            return Ok(Fitted { values: v, tokens, condensed });
        }
        let next = pieces
            .iter()
            .enumerate()
            .filter(|(i, p)| levels[*i] < p.steps.len())
            .min_by_key(|(i, p)| (p.steps[levels[*i]].0, *i))
            .map(|(i, _)| i);
        match next {
            Some(i) => {
                levels[i] += 1;
                if !condensed.contains(&pieces[i].slot) {
                    condensed.push(pieces[i].slot);
                }
            }
            None => return Err(Overflow { need: tokens, budget }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(v: &BTreeMap<&'static str, String>) -> u64 {
        v.values().map(|s| s.len() as u64).sum()
    }

    #[test]
    fn budget_keeps_a_margin_and_bounds_answers() {
        let b = Budget::new(Some(4096), 100_000);
        assert_eq!(b.margin(), 64 + 256);
        assert_eq!(b.usable(), Some(4096 - 320));
        assert_eq!(b.max_answer(), (4096 - 320) * 3 / 5);
        assert_eq!(b.prompt_for(1000).unwrap() + 1000 + b.margin(), 4096);
        assert_eq!(b.answer_room(3000), 4096 - 320 - 3000);
        assert_eq!(Budget::new(Some(4096), 500).answer_room(100), 500);
        assert_eq!(b.answer_room(5000), 0);
        // Without a window: no prompt limit, answers bounded by the output limit alone.
        let open = Budget::new(None, 2048);
        assert_eq!((open.margin(), open.prompt_for(100), open.max_answer()), (0, None, 2048));
        assert_eq!(open.answer_room(1_000_000), 2048);
    }

    #[test]
    fn lowest_priority_steps_go_first_and_fixed_pieces_stay() {
        let pieces = vec![
            Piece::fixed("facts", "F".repeat(10)),
            Piece::new("world", "W".repeat(40)).or(30, "W".repeat(10)).or(40, ""),
            Piece::new("previous", "1".repeat(20) + &"2".repeat(20))
                .or(10, "2".repeat(20))
                .or(50, ""),
        ];
        // Unbounded: everything full.
        let f = fit(&pieces, None, measure).unwrap();
        assert_eq!(f.tokens, 90);
        assert!(f.condensed.is_empty());
        // 75: the oldest summary goes first (priority 10).
        let f = fit(&pieces, Some(75), measure).unwrap();
        assert_eq!((f.values["previous"].as_str(), f.tokens), ("2".repeat(20).as_str(), 70));
        // 35: then the world is condensed (30) and dropped (40); the recent summary stays.
        let f = fit(&pieces, Some(35), measure).unwrap();
        assert_eq!(f.values["world"], "");
        assert_eq!(f.values["previous"], "2".repeat(20));
        assert_eq!(f.condensed, ["previous", "world"]);
        // Below the fixed pieces plus nothing: overflow, naming the shortest size.
        assert_eq!(fit(&pieces, Some(5), measure).unwrap_err(), Overflow { need: 10, budget: 5 });
    }

    #[test]
    fn pieces_of_one_slot_are_joined_in_order() {
        let pieces = vec![Piece::fixed("a", "x"), Piece::fixed("b", "y"), Piece::fixed("a", "z")];
        assert_eq!(fit(&pieces, None, measure).unwrap().values["a"], "xz");
    }

    #[test]
    fn a_shorter_form_that_is_not_shorter_is_ignored() {
        let p = Piece::new("s", "abc").or(1, "abcd").or(2, "ab");
        assert_eq!(p.steps, vec![(2, "ab".to_string())]);
    }
}
