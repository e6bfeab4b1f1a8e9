//! `scriptorium status`: every book (or those in one state), or one book in detail, with whether
//! a coordinator is alive and the submissions waiting for one; once, or refreshed with `--watch`.

use super::{connect_tool, report};
use scriptorium_coordinator::client;
use scriptorium_coordinator::heartbeat::{self, Liveness};
use scriptorium_coordinator::record::{BookRecord, Status};
use scriptorium_proto::{Bus, clock};
use serde_json::{Value, json};
use std::time::Duration;

/// Options of `scriptorium status`.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// NATS server URL.
    pub nats: String,
    /// One book in detail, instead of every book.
    pub book: Option<String>,
    /// Only the books in this state.
    pub state: Option<Status>,
    /// Print JSON (one line per refresh with `watch`).
    pub json: bool,
    /// Refresh until interrupted.
    pub watch: bool,
    /// Time between refreshes with `watch`.
    pub interval: Duration,
}

/// Parses `--state`: the name of a state, or an error naming the flag and every state.
pub fn parse_state(s: &str) -> Result<Status, String> {
    Status::parse(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
        format!("must be one of {} (got {s:?})", names.join(", "))
    })
}

/// `scriptorium status`.
pub async fn run(opts: StatusOptions) -> anyhow::Result<()> {
    let bus = connect_tool(&opts.nats, "scriptorium-status").await?;
    // Listened for from the start, so a signal that comes while a frame is read is not lost.
    let mut stop = opts.watch.then(super::stop_listener);
    loop {
        let (doc, text) = frame(&bus, &opts).await?;
        if opts.json {
            let line =
                if opts.watch { doc.to_string() } else { serde_json::to_string_pretty(&doc)? };
            println!("{line}");
        } else {
            if opts.watch && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                print!("\x1b[2J\x1b[H");
            }
            print!("{text}");
        }
        let Some(stop) = &mut stop else { return Ok(()) };
        tokio::select! {
            _ = tokio::time::sleep(opts.interval) => {}
            _ = stop => return Ok(()),
        }
    }
}

/// One refresh: the JSON document and the text.
async fn frame(bus: &Bus, opts: &StatusOptions) -> anyhow::Result<(Value, String)> {
    let live = heartbeat::liveness(bus).await?;
    let footer = format!("\n{}\n", report::coordinator_line(&live));
    match &opts.book {
        Some(id) => {
            let rec = client::load(bus, id).await?.ok_or_else(|| {
                let hint = if live.alive {
                    ""
                } else {
                    " (no coordinator is alive: a book submitted meanwhile is not recorded yet)"
                };
                anyhow::anyhow!("no book with id {id}{hint}")
            })?;
            let mut doc = report::book_json(&rec);
            doc["coordinator"] = serde_json::to_value(&live)?;
            Ok((doc, report::book_detail(&rec) + &footer))
        }
        None => {
            // JSON gives each book's steps (scripts read them); the table needs headers only.
            let books = if opts.json {
                client::list_records(bus).await?
            } else {
                client::list(bus).await?
            };
            let books = filtered(books, opts.state);
            Ok((list_json(&books, &live), report::book_table(&books) + &footer))
        }
    }
}

fn filtered(mut books: Vec<BookRecord>, state: Option<Status>) -> Vec<BookRecord> {
    if let Some(state) = state {
        books.retain(|b| b.state == state);
    }
    books
}

/// Every book listed, with the coordinator's liveness: `{"at_unix_ms", "coordinator", "books"}`.
fn list_json(books: &[BookRecord], live: &Liveness) -> Value {
    json!({
        "at_unix_ms": clock::now_ms(),
        "coordinator": live,
        "books": books.iter().map(report::book_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scriptorium_proto::v1::BookBrief;

    #[test]
    fn state_names_parse_and_a_wrong_one_lists_them_all() {
        assert_eq!(parse_state("awaiting_approval"), Ok(Status::AwaitingApproval));
        let e = parse_state("finished").unwrap_err();
        assert!(e.starts_with("must be one of queued, running, awaiting_approval, paused,"), "{e}");
        assert!(e.ends_with("(got \"finished\")"), "{e}");
    }

    #[test]
    fn the_filter_keeps_the_books_of_one_state() {
        let book = |id: &str, state| {
            let mut r = BookRecord::new(id.into(), BookBrief::default(), 0);
            r.set_state(state, 0);
            r
        };
        let all = vec![book("a", Status::Done), book("b", Status::Paused), book("c", Status::Done)];
        let ids = |v: Vec<BookRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(filtered(all.clone(), Some(Status::Done))), ["a", "c"]);
        assert_eq!(ids(filtered(all.clone(), None)).len(), 3);
        let live = Liveness { alive: false, submissions_waiting: Some(2), coordinators: vec![] };
        let doc = list_json(&filtered(all, Some(Status::Paused)), &live);
        assert_eq!(doc["books"].as_array().map(Vec::len), Some(1));
        assert_eq!(doc["coordinator"]["submissions_waiting"], 2);
        assert_eq!(doc["coordinator"]["alive"], false);
    }
}
