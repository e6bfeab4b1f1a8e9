//! What the CLI does against a running system, in either mode: submit books, wait for them,
//! read their records.

use crate::control::{Action, Command};
use crate::record::{self, BookRecord, Status};
use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, Queue};
use scriptorium_proto::v1::{BookBrief, BookCommand, BookEvent, BookState, SubmitBook};
use scriptorium_proto::{Bus, clock};
use std::collections::BTreeMap;
use std::time::Duration;

/// Enqueues a validated brief and returns the new book's id.
pub async fn submit(bus: &Bus, brief: BookBrief) -> anyhow::Result<String> {
    let book_id = clock::new_id();
    let queue =
        if crate::brief::is_priority(&brief) { Queue::PrioritySubmit } else { Queue::Submit };
    let msg = SubmitBook { book_id: book_id.clone(), brief: Some(brief), ..Default::default() };
    bus.publish(queue, "", &format!("submit.{book_id}"), msg.encode_to_vec().into())
        .await
        .context("enqueueing the book")?;
    Ok(book_id)
}

/// Puts a failed book back: its failed steps (or only `step`) run again. Checked against the
/// stored record first; the coordinator checks again and records the retry (see [`command`]).
pub async fn retry(bus: &Bus, book_id: &str, step: Option<&str>) -> anyhow::Result<String> {
    let rec =
        load(bus, book_id).await?.ok_or_else(|| anyhow::anyhow!("no book with id {book_id}"))?;
    if !rec.state.is_final() {
        anyhow::bail!("book {book_id} is {}, not failed: nothing to retry", rec.state.name());
    }
    if rec.state == Status::Done && step.is_none() {
        anyhow::bail!("book {book_id} is done: name a --step to run again");
    }
    if let Some(step) = step
        && !rec.steps.contains_key(step)
    {
        let known: Vec<&str> = rec.steps.keys().map(String::as_str).collect();
        anyhow::bail!("book {book_id} has no step {step:?} (steps: {})", known.join(", "));
    }
    let action = Action::Retry { step: step.map(str::to_string) };
    command(bus, book_id, action, &operator()).await
}

/// Who the operator is, as commands record it: `$SCRIPTORIUM_OPERATOR`, else `user@host`.
pub fn operator() -> String {
    if let Ok(name) = std::env::var("SCRIPTORIUM_OPERATOR")
        && !name.trim().is_empty()
    {
        return name.trim().chars().take(64).collect();
    }
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_default();
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let (user, host) = (user.trim(), host.trim());
    match (user.is_empty(), host.is_empty()) {
        (false, false) => format!("{user}@{host}"),
        (false, true) => user.to_string(),
        _ => "operator".into(),
    }
}

/// Sends an operator's command about `book_id` to the coordinator and returns its id; the
/// book's record lists it once handled ([`outcome`] waits for that).
pub async fn command(bus: &Bus, book_id: &str, action: Action, by: &str) -> anyhow::Result<String> {
    let id = clock::new_id();
    let cmd = Command { book_id: book_id.into(), id: id.clone(), by: by.into(), action };
    let msg = BookCommand::from(&cmd);
    let msg_id = format!("command.{book_id}.{id}");
    bus.publish(Queue::Control, book_id, &msg_id, msg.encode_to_vec().into())
        .await
        .with_context(|| format!("sending the {} command", cmd.action.name()))?;
    Ok(id)
}

/// Waits until the record of `book_id` lists command `id` (applied or refused) and returns
/// what it says; an error when no coordinator handled it within `timeout`.
pub async fn outcome(
    bus: &Bus,
    book_id: &str,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<record::Action> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(rec) = load(bus, book_id).await?
            && let Some(a) = rec.handled(id)
        {
            return Ok(a.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "no coordinator handled the command within {}s: is one running? (`scriptorium status` shows its heartbeat)",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Sends `action` about `book_id` and waits for the coordinator to apply it: `Err` with the
/// reason when it was refused.
pub async fn run_command(
    bus: &Bus,
    book_id: &str,
    action: Action,
    by: &str,
    timeout: Duration,
) -> anyhow::Result<record::Action> {
    let name = action.name();
    let id = command(bus, book_id, action, by).await?;
    let done = outcome(bus, book_id, &id, timeout).await?;
    if !done.refused.is_empty() {
        anyhow::bail!("{name} refused: {}", done.refused);
    }
    Ok(done)
}

/// Records a submission the coordinator refused, so that waiters learn why.
pub async fn store_refusal(bus: &Bus, book_id: &str, brief: BookBrief, reason: &str) {
    let mut rec = BookRecord::new(book_id.to_string(), brief, clock::now_ms());
    rec.state = Status::Failed;
    rec.failure = Some(format!("brief refused: {reason}"));
    rec.finished_ms = clock::now_ms();
    let _ = record::store(bus, &mut rec).await;
}

/// The stored record of one book, with its plan and steps.
pub async fn load(bus: &Bus, book_id: &str) -> anyhow::Result<Option<BookRecord>> {
    record::load_record(bus, book_id)
        .await
        .with_context(|| format!("book record {book_id} is unreadable"))
}

/// The stored header of one book: its plan and steps are not read (its summary gives its
/// progress).
pub async fn load_header(bus: &Bus, book_id: &str) -> anyhow::Result<Option<BookRecord>> {
    record::load_header(bus, book_id)
        .await
        .with_context(|| format!("book record {book_id} is unreadable"))
}

/// Every stored book's header, oldest first (plans and steps are not read: the headers'
/// summaries give progress).
pub async fn list(bus: &Bus) -> anyhow::Result<Vec<BookRecord>> {
    read_all(bus, false).await
}

/// Every stored book with its plan and steps (never its outputs), oldest first.
pub async fn list_records(bus: &Bus) -> anyhow::Result<Vec<BookRecord>> {
    read_all(bus, true).await
}

async fn read_all(bus: &Bus, steps: bool) -> anyhow::Result<Vec<BookRecord>> {
    let keys = bus.kv_keys(Bucket::Books).await?;
    let read: Vec<Option<BookRecord>> = futures::stream::iter(keys)
        .map(|key| {
            let bus = bus.clone();
            async move {
                if steps { load(&bus, &key).await } else { load_header(&bus, &key).await }
            }
        })
        .buffered(64)
        .try_collect()
        .await?;
    let mut out: Vec<BookRecord> = read.into_iter().flatten().collect();
    out.sort_by_key(|r| r.created_ms);
    Ok(out)
}

/// The record of book `id` with its plan and steps once it is finished; while it is not, only
/// its header is read (one read, not one a step: a waiter polls every book it waits for).
async fn finished_record(bus: &Bus, id: &str) -> anyhow::Result<Option<BookRecord>> {
    match load_header(bus, id).await? {
        // The header is stored after the steps: a final header's steps are all there.
        Some(h) if h.state.is_final() => Ok(load(bus, id).await?.filter(|r| r.state.is_final())),
        _ => Ok(None),
    }
}

/// Waits until every book in `ids` is done or failed, calling `progress` on each event,
/// and returns their records in the order of `ids`.
pub async fn wait(
    bus: &Bus,
    ids: &[String],
    timeout: Option<Duration>,
    mut progress: impl FnMut(&BookEvent),
) -> anyhow::Result<Vec<BookRecord>> {
    let mut events = bus.events(None).await?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut finished: BTreeMap<String, BookRecord> = BTreeMap::new();
    let mut poll = tokio::time::interval(Duration::from_millis(1000));
    let mut check: Vec<String> = ids.to_vec();
    loop {
        let pending: Vec<String> =
            check.drain(..).filter(|id| !finished.contains_key(id)).collect();
        let read: Vec<(String, Option<BookRecord>)> = futures::stream::iter(pending)
            .map(|id| async move { finished_record(bus, &id).await.map(|rec| (id, rec)) })
            .buffered(32)
            .try_collect()
            .await?;
        finished.extend(read.into_iter().filter_map(|(id, rec)| Some((id, rec?))));
        if finished.len() == ids.len() {
            return Ok(ids.iter().filter_map(|id| finished.remove(id)).collect());
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            anyhow::bail!("timed out waiting for {} book(s)", ids.len() - finished.len());
        }
        tokio::select! {
            ev = events.next() => {
                if let Some(ev) = ev.and_then(|b| BookEvent::decode(b).ok())
                    && ids.contains(&ev.book_id)
                {
                    progress(&ev);
                    if matches!(
                        BookState::try_from(ev.state),
                        Ok(BookState::Done | BookState::Failed | BookState::Cancelled)
                    ) {
                        check.push(ev.book_id);
                    }
                }
            }
            _ = poll.tick() => check = ids.to_vec(),
        }
    }
}
