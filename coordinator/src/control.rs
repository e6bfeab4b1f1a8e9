//! Operators' commands about one book (approve, reject, edit, cancel, pause, resume, rewrite,
//! retry) as the coordinator handles them: the domain form of [`BookCommand`], converted at the
//! edge, and what became of one.

use scriptorium_proto::v1::{BookCommand, Empty, book_command};

/// What an operator asks of a book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Lets the book go on past its gate: `step`, or every step waiting.
    Approve {
        /// The step (none: every step waiting).
        step: Option<String>,
    },
    /// Sends a waiting step back for a new attempt, `note` in its prompt.
    Reject {
        /// The step (none: the one step waiting).
        step: Option<String>,
        /// Why, for the model.
        note: String,
    },
    /// Replaces a waiting step's answer with the operator's, validated like a model's.
    Edit {
        /// The step.
        step: String,
        /// The answer, JSON of the step's kind.
        answer: String,
        /// Approve the step once replaced.
        approve: bool,
    },
    /// Stops the book for good.
    Cancel,
    /// Holds the book.
    Pause,
    /// Releases a paused book.
    Resume,
    /// Drafts the chapters from `from_chapter` on again.
    Rewrite {
        /// The first chapter drafted again (or replaced by `text`).
        from_chapter: u32,
        /// The person's own text of that chapter.
        text: Option<String>,
    },
    /// Puts a failed book back.
    Retry {
        /// The step (none: every failed step).
        step: Option<String>,
    },
}

impl Action {
    /// The action's name, as `status` lists it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Approve { .. } => "approve",
            Action::Reject { .. } => "reject",
            Action::Edit { .. } => "edit",
            Action::Cancel => "cancel",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Rewrite { .. } => "rewrite",
            Action::Retry { .. } => "retry",
        }
    }

    /// The step (or `chapter N`) the action concerns, when one.
    pub fn target(&self) -> String {
        match self {
            Action::Approve { step } | Action::Reject { step, .. } | Action::Retry { step } => {
                step.clone().unwrap_or_default()
            }
            Action::Edit { step, .. } => step.clone(),
            Action::Rewrite { from_chapter, .. } => format!("chapter {from_chapter}"),
            Action::Cancel | Action::Pause | Action::Resume => String::new(),
        }
    }

    /// Whether the action applies to a book in flight (its actor does it); the others (retry,
    /// rewrite) put a finished book back.
    pub fn in_flight(&self) -> bool {
        !matches!(self, Action::Rewrite { .. } | Action::Retry { .. })
    }
}

/// One operator's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The book.
    pub book_id: String,
    /// Unique id: the book's record lists it once handled.
    pub id: String,
    /// Who gave it.
    pub by: String,
    /// What it asks.
    pub action: Action,
}

fn opt(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

impl TryFrom<BookCommand> for Command {
    type Error = String;

    fn try_from(c: BookCommand) -> Result<Self, String> {
        use book_command::Action as W;
        let action = match c.action.ok_or("a command without an action")? {
            W::Approve(s) => Action::Approve { step: opt(s.step) },
            W::Reject(r) => Action::Reject { step: opt(r.step), note: r.note },
            W::Edit(e) => Action::Edit { step: e.step, answer: e.answer_json, approve: e.approve },
            W::Cancel(_) => Action::Cancel,
            W::Pause(_) => Action::Pause,
            W::Resume(_) => Action::Resume,
            W::Rewrite(r) => {
                Action::Rewrite { from_chapter: r.from_chapter, text: opt(r.chapter_text) }
            }
            W::Retry(s) => Action::Retry { step: opt(s.step) },
        };
        Ok(Command { book_id: c.book_id, id: c.command_id, by: c.by, action })
    }
}

impl From<&Command> for BookCommand {
    fn from(c: &Command) -> BookCommand {
        use book_command::Action as W;
        use scriptorium_proto::v1::{EditAnswer, Reject, Rewrite, StepRef};
        let step = |s: &Option<String>| StepRef { step: s.clone().unwrap_or_default() };
        let action = match &c.action {
            Action::Approve { step: s } => W::Approve(step(s)),
            Action::Reject { step: s, note } => {
                W::Reject(Reject { step: s.clone().unwrap_or_default(), note: note.clone() })
            }
            Action::Edit { step, answer, approve } => W::Edit(EditAnswer {
                step: step.clone(),
                answer_json: answer.clone(),
                approve: *approve,
            }),
            Action::Cancel => W::Cancel(Empty {}),
            Action::Pause => W::Pause(Empty {}),
            Action::Resume => W::Resume(Empty {}),
            Action::Rewrite { from_chapter, text } => W::Rewrite(Rewrite {
                from_chapter: *from_chapter,
                chapter_text: text.clone().unwrap_or_default(),
            }),
            Action::Retry { step: s } => W::Retry(step(s)),
        };
        BookCommand {
            book_id: c.book_id.clone(),
            command_id: c.id.clone(),
            by: c.by.clone(),
            action: Some(action),
        }
    }
}

/// What became of a command sent to a book in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, and stored in the book's record.
    Applied,
    /// Not done, for the reason given (stored in the book's record too).
    Refused(String),
    /// The book is not in flight: its record is the pump's to handle.
    NotInFlight,
    /// The book is being loaded: ask again shortly.
    Loading,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_crosses_the_wire_and_back() {
        let actions = [
            Action::Approve { step: None },
            Action::Approve { step: Some("outline".into()) },
            Action::Reject { step: Some("concept".into()), note: "darker".into() },
            Action::Edit { step: "outline".into(), answer: "{}".into(), approve: true },
            Action::Cancel,
            Action::Pause,
            Action::Resume,
            Action::Rewrite { from_chapter: 2, text: Some("# Two\n\nText.".into()) },
            Action::Retry { step: None },
        ];
        for action in actions {
            let c = Command { book_id: "b".into(), id: "c1".into(), by: "ann@host".into(), action };
            assert_eq!(Command::try_from(BookCommand::from(&c)), Ok(c.clone()), "{c:?}");
        }
        let empty = BookCommand { book_id: "b".into(), ..Default::default() };
        assert!(Command::try_from(empty).unwrap_err().contains("without an action"));
    }
}
