//! `scriptorium dead-letters`: the messages given up, with the reason; `--purge` removes them
//! (all, or one queue's), `--replay SEQ` puts one back on the queue it came from.

use super::connect_tool;
use scriptorium_coordinator::dead_letters;
use scriptorium_proto::kind;
use scriptorium_proto::transport::Queue;

/// What `scriptorium dead-letters` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLettersAction {
    /// List them (as JSON with `json`).
    List {
        /// Print JSON.
        json: bool,
    },
    /// Remove those of `queue`, or all of them.
    Purge {
        /// A queue name: an agent kind, `results` or `submit`.
        queue: Option<String>,
    },
    /// Put the one with this sequence back on its queue.
    Replay {
        /// Its sequence, as listed.
        seq: u64,
    },
}

/// Checks a `--queue` name: an agent kind, `results` or `submit`.
pub fn check_queue(name: &str) -> Result<String, String> {
    match Queue::from_dead_letter_name(name.trim()) {
        Some(q) => Ok(q.dead_letter_name().to_string()),
        None => Err(format!(
            "unknown queue {name:?} (queues: {}, results, submit)",
            kind::agent_names()
        )),
    }
}

/// `scriptorium dead-letters`.
pub async fn run(url: &str, action: DeadLettersAction) -> anyhow::Result<()> {
    let bus = connect_tool(url, "scriptorium-dead-letters").await?;
    match action {
        DeadLettersAction::List { json } => list(&bus, json).await,
        DeadLettersAction::Purge { queue } => {
            let n = bus.purge_dead_letters(queue.as_deref()).await?;
            let of = queue.map_or_else(String::new, |q| format!(" of queue {q}"));
            println!("{n} dead letters{of} purged");
            Ok(())
        }
        DeadLettersAction::Replay { seq } => {
            let done = dead_letters::replay(&bus, seq).await?;
            let book = if done.book_id.is_empty() {
                String::new()
            } else {
                format!(" (book {})", done.book_id)
            };
            println!("dead letter {seq} replayed on queue {}{book}", done.queue);
            Ok(())
        }
    }
}

async fn list(bus: &scriptorium_proto::Bus, json: bool) -> anyhow::Result<()> {
    let letters = bus.dead_letters().await?;
    let rows: Vec<serde_json::Value> = letters
        .iter()
        .map(|d| {
            let (book, step) = dead_letters::about(d);
            serde_json::json!({
                "seq": d.seq,
                "queue": d.queue,
                "reason": d.reason,
                "bytes": d.payload.len(),
                "book_id": book,
                "step_id": step,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("(no dead letters)");
    } else {
        println!("{:>6} {:<12} {:<16} {:<12} REASON", "SEQ", "QUEUE", "BOOK", "STEP");
        for r in &rows {
            println!(
                "{:>6} {:<12} {:<16} {:<12} {}",
                r["seq"],
                r["queue"].as_str().unwrap_or(""),
                r["book_id"].as_str().unwrap_or("-"),
                r["step_id"].as_str().unwrap_or("-"),
                r["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_agent_kinds_results_or_submit() {
        assert_eq!(check_queue("chapter"), Ok("chapter".into()));
        assert_eq!(check_queue("submit"), Ok("submit".into()));
        let e = check_queue("steps").unwrap_err();
        assert!(e.starts_with("unknown queue \"steps\" (queues: concept,"), "{e}");
    }
}
