//! Approval gates in `write`: when a book stops at a gate (the brief's `approve`), the answer
//! waiting is shown and the person at the terminal approves it, sends it back with a note,
//! replaces it with a file of their own, or cancels the book; `--yes` approves everything.

use anyhow::Context as _;
use scriptorium_coordinator::client;
use scriptorium_coordinator::control::Action;
use scriptorium_coordinator::record::{BookRecord, Status, output_key};
use scriptorium_proto::Bus;
use scriptorium_proto::transport::Bucket;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::time::Duration;

/// How long a command waits for the in-process coordinator to apply it.
const APPLY_WITHIN: Duration = Duration::from_secs(30);

/// Most characters of an answer shown at a gate.
const SHOWN_CHARS: usize = 6_000;

/// Answers the gates of books `ids` until every one is finished: `yes` approves each at once,
/// otherwise the terminal is asked. Runs beside the wait for the books.
pub async fn answer(bus: Bus, ids: Vec<String>, yes: bool) -> anyhow::Result<()> {
    let mut asked: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let mut all_final = true;
        for id in &ids {
            let Some(rec) = client::load(&bus, id).await? else {
                all_final = false;
                continue;
            };
            all_final &= rec.state.is_final();
            if rec.state != Status::AwaitingApproval {
                continue;
            }
            for step in rec.awaiting.clone() {
                // Asked once per accepted answer: a rejected step waits again with a new attempt.
                let attempt = rec.steps.get(&step).map_or(0, |s| s.attempt);
                if !asked.insert((id.clone(), format!("{step}#{attempt}"))) {
                    continue;
                }
                let action = if yes {
                    Action::Approve { step: Some(step.clone()) }
                } else {
                    ask(&bus, &rec, &step).await?
                };
                let by = client::operator();
                if let Err(e) = client::run_command(&bus, id, action, &by, APPLY_WITHIN).await {
                    eprintln!("{e:#}");
                    asked.remove(&(id.clone(), format!("{step}#{attempt}")));
                }
            }
        }
        if all_final {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Shows the answer of `step` waiting in `rec` and asks what to do with it.
async fn ask(bus: &Bus, rec: &BookRecord, step: &str) -> anyhow::Result<Action> {
    let stored = bus.kv_get(Bucket::Outputs, &output_key(&rec.id, step)).await?;
    let answer = stored
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| "(the answer could not be read)".into());
    let mut shown: String = answer.chars().take(SHOWN_CHARS).collect();
    if shown.len() < answer.len() {
        shown.push_str("\n[...]");
    }
    let title = if rec.title.is_empty() { rec.brief.project.clone() } else { rec.title.clone() };
    let header =
        format!("\nBook {} ({title}) waits for your approval of its {step}:\n{shown}\n", rec.id);
    let step = step.to_string();
    tokio::task::spawn_blocking(move || prompt(&header, &step))
        .await
        .context("reading the terminal")?
}

fn line(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        anyhow::bail!(
            "the terminal closed while a book waits for approval (use --yes to approve everything)"
        );
    }
    Ok(answer.trim().to_string())
}

fn prompt(header: &str, step: &str) -> anyhow::Result<Action> {
    eprint!("{header}");
    loop {
        let choice =
            line("[a]pprove, [r]eject with a note, [e]dit from a JSON file, [c]ancel the book? ")?;
        match choice.to_lowercase().as_str() {
            "a" | "approve" => return Ok(Action::Approve { step: Some(step.into()) }),
            "r" | "reject" => {
                let note = line("What should change? ")?;
                if !note.is_empty() {
                    return Ok(Action::Reject { step: Some(step.into()), note });
                }
            }
            "e" | "edit" => {
                let path = line("JSON file with your answer: ")?;
                match std::fs::read_to_string(&path) {
                    Ok(answer) => {
                        return Ok(Action::Edit { step: step.into(), answer, approve: true });
                    }
                    Err(e) => eprintln!("cannot read {path}: {e}"),
                }
            }
            "c" | "cancel" => return Ok(Action::Cancel),
            _ => eprintln!("answer a, r, e or c"),
        }
    }
}
