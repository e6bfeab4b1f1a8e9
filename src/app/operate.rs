//! Operators' commands about one book, from the command line: `approve`, `reject`, `edit`,
//! `cancel`, `pause`, `resume` and `rewrite`. Each is sent to the coordinator, which applies or
//! refuses it and records it in the book's record; the command waits for that and says which.

use super::{connect_tool, report};
use anyhow::Context as _;
use clap::Subcommand;
use scriptorium_coordinator::client;
use scriptorium_coordinator::control::Action;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where and how long an operator's command is sent.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The book's id.
    pub book: String,
    /// NATS server URL.
    #[arg(long, env = "SCRIPTORIUM_NATS", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Seconds to wait for the coordinator to apply the command.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Who gives the command, as the book's record keeps it (default: $SCRIPTORIUM_OPERATOR,
    /// else user@host).
    #[arg(long)]
    pub by: Option<String>,
}

/// Operators' commands about one book.
#[derive(Subcommand, Debug)]
pub enum Operate {
    /// Let a book waiting at an approval gate go on.
    Approve {
        #[command(flatten)]
        target: Target,
        /// The step to approve (default: every step waiting).
        #[arg(long)]
        step: Option<String>,
    },
    /// Send the answer waiting at a gate back: a new attempt with the note in its prompt.
    Reject {
        #[command(flatten)]
        target: Target,
        /// What is wrong with it, for the model.
        #[arg(long)]
        note: String,
        /// The step (default: the one waiting).
        #[arg(long)]
        step: Option<String>,
    },
    /// Replace the answer waiting at a gate with your own (JSON of the step's kind, checked
    /// by the same rules as a model's).
    Edit {
        #[command(flatten)]
        target: Target,
        /// The step whose answer is replaced (as `status BOOK` lists it: concept, outline...).
        #[arg(long)]
        step: String,
        /// The answer, a JSON file.
        #[arg(long)]
        file: PathBuf,
        /// Approve the step once its answer is replaced.
        #[arg(long)]
        approve: bool,
    },
    /// Stop a book for good: nothing more is dispatched, running attempts are cancelled.
    Cancel {
        #[command(flatten)]
        target: Target,
    },
    /// Hold a book: running attempts finish, nothing new is dispatched until `resume`.
    Pause {
        #[command(flatten)]
        target: Target,
    },
    /// Release a paused book.
    Resume {
        #[command(flatten)]
        target: Target,
    },
    /// Draft a done book again from chapter N: chapters before it stay as they are, chapter N
    /// becomes your text (--file) or a new draft, the chapters after it are drafted again.
    Rewrite {
        #[command(flatten)]
        target: Target,
        /// The first chapter drafted again (or replaced by --file).
        #[arg(long)]
        from_chapter: u32,
        /// Your own text of that chapter (Markdown: an optional `# Title` line, scenes separated
        /// by `* * *`).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Wait for the book to end and print its summary.
        #[arg(long)]
        wait: bool,
    },
}

/// Largest file an operator's command carries (an answer or a chapter).
const MAX_FILE_BYTES: u64 = 512 * 1024;

fn read(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    if len > MAX_FILE_BYTES {
        anyhow::bail!("{} is larger than {MAX_FILE_BYTES} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Runs one operator's command; the exit code (0: applied and, with `--wait`, done).
pub async fn run(op: Operate) -> anyhow::Result<u8> {
    let (target, action, wait) = match op {
        Operate::Approve { target, step } => (target, Action::Approve { step }, false),
        Operate::Reject { target, note, step } => {
            if note.trim().is_empty() {
                anyhow::bail!(
                    "--note: must say what is wrong (it goes into the new attempt's prompt)"
                );
            }
            (target, Action::Reject { step, note }, false)
        }
        Operate::Edit { target, step, file, approve } => {
            let answer = read(&file)?;
            serde_json::from_str::<serde_json::Value>(&answer)
                .with_context(|| format!("--file {}: not JSON", file.display()))?;
            (target, Action::Edit { step, answer, approve }, false)
        }
        Operate::Cancel { target } => (target, Action::Cancel, false),
        Operate::Pause { target } => (target, Action::Pause, false),
        Operate::Resume { target } => (target, Action::Resume, false),
        Operate::Rewrite { target, from_chapter, file, wait } => {
            let text = file.as_deref().map(read).transpose()?;
            (target, Action::Rewrite { from_chapter, text }, wait)
        }
    };
    let bus = connect_tool(&target.nats, "scriptorium-operate").await?;
    let name = action.name();
    if client::load(&bus, &target.book).await?.is_none() {
        anyhow::bail!("no book with id {}", target.book);
    }
    let by = target.by.clone().unwrap_or_else(client::operator);
    let timeout = Duration::from_secs(target.timeout.max(1));
    let done = client::run_command(&bus, &target.book, action, &by, timeout).await?;
    let what = if done.step.is_empty() { String::new() } else { format!(" {}", done.step) };
    println!("{name}{what} of book {}: applied by {}", target.book, done.by);
    if !wait {
        return Ok(0);
    }
    let mut progress = report::Progress::new(1);
    let rec =
        client::wait(&bus, std::slice::from_ref(&target.book), None, |ev| progress.on_event(ev))
            .await?
            .remove(0);
    report::print_summary(std::slice::from_ref(&rec));
    Ok(super::exit_code(std::slice::from_ref(&rec)) as u8)
}
