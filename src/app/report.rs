//! Human and JSON views of books: progress bars or lines, summaries, status tables.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use scriptorium_coordinator::record::{BookRecord, Status};
use scriptorium_proto::clock;
use scriptorium_proto::v1::{BookEvent, BookState};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Books above this count share one aggregate bar instead of a bar each.
pub const BARS_PER_BOOK_UP_TO: usize = 8;

/// Shows book progress: bars on a terminal (one per book, or one for many books), and one
/// plain line per change when stderr is not a terminal.
pub struct Progress {
    last: HashMap<String, (u32, i32)>,
    books: usize,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    per_book: HashMap<String, ProgressBar>,
    aggregate: Option<ProgressBar>,
    totals: HashMap<String, (u32, u32, BookState)>,
}

fn state_of(ev: &BookEvent) -> BookState {
    BookState::try_from(ev.state).unwrap_or(BookState::Unspecified)
}

impl Progress {
    /// A progress view for `books` books: bars when stderr is a terminal, plain lines otherwise.
    pub fn new(books: usize) -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Self::with_bars(books, ProgressDrawTarget::stderr())
        } else {
            Self { last: HashMap::new(), books, bars: None }
        }
    }

    /// Plain progress lines, whatever stderr is (a person answers questions on the terminal).
    pub fn lines(books: usize) -> Self {
        Self { last: HashMap::new(), books, bars: None }
    }

    /// Bars drawn to `target` (a terminal, or an in-memory one in tests).
    pub fn with_bars(books: usize, target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let aggregate = (books > BARS_PER_BOOK_UP_TO).then(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:40}] {pos}/{len} steps {elapsed_precise} {wide_msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{books} books"));
            bar
        });
        let bars = Bars { multi, per_book: HashMap::new(), aggregate, totals: HashMap::new() };
        Self { last: HashMap::new(), books, bars: Some(bars) }
    }

    /// Handles one event.
    pub fn on_event(&mut self, ev: &BookEvent) {
        let key = (ev.steps_done, ev.state);
        if self.last.get(&ev.book_id) == Some(&key) {
            return;
        }
        self.last.insert(ev.book_id.clone(), key);
        match &mut self.bars {
            Some(bars) => bars.update(ev),
            None => self.line(ev),
        }
    }

    fn line(&self, ev: &BookEvent) {
        let state = match state_of(ev) {
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

impl Bars {
    fn update(&mut self, ev: &BookEvent) {
        let state = state_of(ev);
        self.totals.insert(ev.book_id.clone(), (ev.steps_done, ev.steps_total, state));
        if let Some(bar) = &self.aggregate {
            let (done, total) =
                self.totals.values().fold((0, 0), |(d, t), (sd, st, _)| (d + sd, t + st));
            let finished = self.totals.values().filter(|v| v.2 == BookState::Done).count();
            let failed = self.totals.values().filter(|v| v.2 == BookState::Failed).count();
            bar.set_length(u64::from(total));
            bar.set_position(u64::from(done));
            bar.set_message(format!("{finished} done, {failed} failed"));
            return;
        }
        let multi = &self.multi;
        let bar = self.per_book.entry(ev.book_id.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(u64::from(ev.steps_total)));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:<16} [{bar:30}] {pos:>3}/{len:<3} steps {elapsed_precise} {wide_msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_prefix(ev.book_id.clone());
            bar
        });
        bar.set_length(u64::from(ev.steps_total));
        bar.set_position(u64::from(ev.steps_done));
        let title = if ev.title.is_empty() { "(untitled yet)" } else { ev.title.as_str() };
        match state {
            BookState::Done => bar.finish_with_message(format!("{title}: done")),
            BookState::Failed => {
                bar.abandon_with_message(format!("{title}: failed: {}", ev.message))
            }
            _ => bar.set_message(title.to_string()),
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
        "cost_usd": r.usage.cost_usd,
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
        "{:<16} {:<8} {:>9} {:<24} {:>9} {:>8} {:>9}  {}\n",
        "BOOK", "STATE", "STEPS", "RUNNING", "TOKENS", "COST", "ELAPSED", "TITLE / FAILURE"
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
        let running = r.running();
        let mut running = match running.len() {
            0 => "-".to_string(),
            n if n <= 3 => running.join(","),
            n => format!("{},{} +{}", running[0], running[1], n - 2),
        };
        if running.chars().count() > 24 {
            running = running.chars().take(23).collect::<String>() + "…";
        }
        let _ = writeln!(
            out,
            "{:<16} {:<8} {:>9} {:<24} {:>9} {:>8} {:>8.1}s  {}",
            r.id,
            state,
            format!("{done}/{total}"),
            running,
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
            scriptorium_proto::kind::name(p.kind),
            status,
            s.attempt,
            s.usage.prompt_tokens + s.usage.completion_tokens,
            s.route,
            s.rejections.last().map(String::as_str).unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;
    use scriptorium_proto::v1::{BookBrief, Usage};

    fn ev(id: &str, state: BookState, done: u32, title: &str) -> BookEvent {
        BookEvent {
            book_id: id.into(),
            title: title.into(),
            state: state as i32,
            steps_done: done,
            steps_total: 10,
            usage: Some(Usage::default()),
            ..Default::default()
        }
    }

    fn screen(term: &InMemoryTerm) -> String {
        // Drawing is rate limited; the last state is on screen once the bars are done.
        term.contents()
    }

    #[test]
    fn a_bar_per_book_on_a_terminal() {
        let term = InMemoryTerm::new(10, 120);
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 100);
        let mut p = Progress::with_bars(2, target);
        p.on_event(&ev("book-a", BookState::Running, 3, "Salt"));
        p.on_event(&ev("book-b", BookState::Running, 1, ""));
        p.on_event(&ev("book-a", BookState::Done, 10, "Salt"));
        p.on_event(&ev("book-b", BookState::Failed, 1, "Quiet"));
        let text = screen(&term);
        let a = text.lines().find(|l| l.starts_with("book-a")).expect(&text);
        assert!(a.contains(" 10/10  steps") && a.ends_with("Salt: done"), "{a}");
        let b = text.lines().find(|l| l.starts_with("book-b")).expect(&text);
        assert!(b.contains("  1/10  steps") && b.contains("Quiet: failed"), "{b}");
    }

    #[test]
    fn one_aggregate_bar_for_many_books() {
        let term = InMemoryTerm::new(10, 120);
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term.clone()), 100);
        let mut p = Progress::with_bars(12, target);
        for i in 0..12 {
            p.on_event(&ev(&format!("b{i}"), BookState::Running, 2, ""));
        }
        p.on_event(&ev("b0", BookState::Done, 10, "T"));
        std::thread::sleep(std::time::Duration::from_millis(30));
        p.on_event(&ev("b1", BookState::Failed, 2, "T"));
        let text = screen(&term);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].starts_with("12 books ["), "{text}");
        assert!(
            lines[0].contains("32/120 steps") && lines[0].contains("1 done, 1 failed"),
            "{text}"
        );
    }

    #[test]
    fn status_table_shows_running_steps_cost_and_elapsed() {
        let brief = BookBrief {
            category: "fiction".into(),
            chapters: 3,
            words_per_chapter: 500,
            characters: 2,
            worldbuilding: true,
            review_mode: "ai".into(),
            ..Default::default()
        };
        let mut r = BookRecord::new("b1".into(), brief, clock::now_ms() - 2000);
        r.title = "Salt".into();
        r.state = Status::Running;
        r.usage.cost_usd = 0.25;
        for id in ["chapter-01", "chapter-02"] {
            r.steps.get_mut(id).unwrap().status =
                scriptorium_coordinator::record::StepStatus::Running;
        }
        let table = book_table(&[r]);
        let row = table.lines().nth(1).unwrap();
        assert!(row.contains("chapter-01,chapter-02"), "{row}");
        assert!(row.contains("$0.2500"), "{row}");
        assert!(row.contains("0/"), "{row}");
        let secs: f64 = row
            .split_whitespace()
            .find(|c| c.ends_with('s') && c.contains('.'))
            .unwrap()
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!((2.0..10.0).contains(&secs), "{row}");
    }
}
