//! Human and JSON views of books: progress lines, summaries, status tables.

use crate::record::{BookRecord, Status};
use scriptorium_proto::clock;
use scriptorium_proto::v1::{BookEvent, BookState};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Prints one line per book whenever its progress changes.
pub struct Progress {
    last: HashMap<String, (u32, i32)>,
    books: usize,
}

impl Progress {
    /// A progress printer for `books` books.
    pub fn new(books: usize) -> Self {
        Self { last: HashMap::new(), books }
    }

    /// Handles one event.
    pub fn on_event(&mut self, ev: &BookEvent) {
        let key = (ev.steps_done, ev.state);
        if self.last.get(&ev.book_id) == Some(&key) {
            return;
        }
        self.last.insert(ev.book_id.clone(), key);
        let state = match BookState::try_from(ev.state).unwrap_or(BookState::Unspecified) {
            BookState::Done => "done",
            BookState::Failed => "failed",
            _ => "running",
        };
        let title = if ev.title.is_empty() { "(untitled yet)" } else { ev.title.as_str() };
        let mut line = format!(
            "[{}] {} {}/{} steps {}",
            ev.book_id, title, ev.steps_done, ev.steps_total, state
        );
        if !ev.message.is_empty() {
            line += &format!(": {}", ev.message);
        }
        if self.books > 0 {
            eprintln!("{line}");
        }
    }
}

fn tokens(rec: &BookRecord) -> u64 {
    rec.usage.prompt_tokens + rec.usage.completion_tokens
}

fn elapsed_secs(rec: &BookRecord) -> f64 {
    let end = if rec.finished_ms > 0 { rec.finished_ms } else { clock::now_ms() };
    (end - rec.created_ms).max(0) as f64 / 1000.0
}

/// Prints one line per finished book.
pub fn print_summary(records: &[BookRecord]) {
    for r in records {
        match r.state {
            Status::Done => println!(
                "done   {}  \"{}\"  {} calls, {} tokens, {:.1}s  -> {}/manuscript.md",
                r.id,
                r.title,
                r.usage.calls,
                tokens(r),
                elapsed_secs(r),
                r.output_dir
            ),
            _ => println!(
                "failed {}  \"{}\"  {}",
                r.id,
                r.title,
                r.failure.as_deref().unwrap_or("unknown reason")
            ),
        }
    }
}

/// The status view of a book as JSON.
pub fn book_json(r: &BookRecord) -> Value {
    let (done, total) = r.progress();
    json!({
        "id": r.id,
        "title": r.title,
        "state": r.state,
        "steps_done": done,
        "steps_total": total,
        "current_steps": r.running(),
        "usage": r.usage,
        "tokens": tokens(r),
        "elapsed_secs": elapsed_secs(r),
        "failure": r.failure,
        "output_dir": r.output_dir,
        "ignored_results": r.ignored_results,
        "accepted_results": r.accepted_results,
        "steps": r.plan.steps.iter().filter_map(|p| r.steps.get(&p.id).map(|s| json!({
            "id": p.id,
            "kind": scriptorium_proto::kind::name(p.kind),
            "status": s.status,
            "attempts": s.attempt,
            "route": s.route,
            "worker": s.worker,
            "usage": s.usage,
            "rejections": s.rejections,
        }))).collect::<Vec<_>>(),
    })
}

/// A table of books.
pub fn book_table(recs: &[BookRecord]) -> String {
    let mut out = format!(
        "{:<16} {:<8} {:>9} {:>9} {:>8} {:>9}  {}\n",
        "BOOK", "STATE", "STEPS", "TOKENS", "COST", "ELAPSED", "TITLE / FAILURE"
    );
    for r in recs {
        let (done, total) = r.progress();
        let state = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let note = match &r.failure {
            Some(f) => format!("{} ({f})", r.title),
            None => r.title.clone(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<8} {:>9} {:>9} {:>8} {:>8.1}s  {}",
            r.id,
            state,
            format!("{done}/{total}"),
            tokens(r),
            format!("${:.4}", r.usage.cost_usd),
            elapsed_secs(r),
            note
        );
    }
    if recs.is_empty() {
        out += "(no books)\n";
    }
    out
}

/// One book in detail, with its step table.
pub fn book_detail(r: &BookRecord) -> String {
    let (done, total) = r.progress();
    let mut out = format!(
        "book      {}\ntitle     {}\nstate     {:?}\nprogress  {done}/{total} steps\nrunning   {}\ntokens    {} ({} prompt, {} completion) in {} calls\ncost      ${:.4}\nelapsed   {:.1}s\n",
        r.id,
        r.title,
        r.state,
        r.running().join(", "),
        tokens(r),
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
        r.usage.calls,
        r.usage.cost_usd,
        elapsed_secs(r),
    );
    if let Some(f) = &r.failure {
        let _ = writeln!(out, "failure   {f}");
    }
    if !r.output_dir.is_empty() {
        let _ = writeln!(out, "output    {}", r.output_dir);
    }
    let _ = writeln!(
        out,
        "\n{:<12} {:<10} {:<8} {:>7} {:>8}  {:<20} LAST REJECTION",
        "STEP", "KIND", "STATUS", "ATTEMPT", "TOKENS", "ROUTE"
    );
    for p in &r.plan.steps {
        let Some(s) = r.steps.get(&p.id) else { continue };
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<8} {:>7} {:>8}  {:<20} {}",
            p.id,
            if p.kind == scriptorium_proto::v1::AgentKind::Unspecified {
                "local"
            } else {
                scriptorium_proto::kind::name(p.kind)
            },
            status,
            s.attempt,
            s.usage.prompt_tokens + s.usage.completion_tokens,
            s.route,
            s.rejections.last().map(String::as_str).unwrap_or("")
        );
    }
    out
}
