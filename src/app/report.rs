//! Human and JSON views of books: progress bars or lines, summaries, status tables, a book in
//! detail with what operators did to it, and the coordinator's liveness.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use scriptorium_coordinator::heartbeat::{CoordinatorView, Liveness};
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
        let state = Status::from_wire(state_of(ev)).name();
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

/// Time the book spent running: not the time it sat queued, awaiting approval or paused.
fn elapsed_secs(rec: &BookRecord) -> f64 {
    rec.elapsed_running_ms(clock::now_ms()) as f64 / 1000.0
}

/// `secs` for a person: hundredths under ten seconds (a simulated book takes a few hundredths,
/// which one decimal printed as "0.0s"), tenths above.
fn seconds(secs: f64) -> String {
    if secs < 10.0 { format!("{secs:.2}s") } else { format!("{secs:.1}s") }
}

/// Prints one line per finished book.
pub fn print_summary(records: &[BookRecord]) {
    for r in records {
        match r.state {
            Status::Done => println!(
                "done   {}  \"{}\"  {} calls, {} tokens, {}  -> {}/manuscript.md",
                r.id,
                r.title,
                r.usage.calls,
                tokens(r),
                seconds(elapsed_secs(r)),
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

/// The last line of `write` when the simulated model wrote a book: how to get real prose.
#[cfg(feature = "embedded")]
pub const REAL_PROSE_HINT: &str = "this is placeholder prose from the simulated model; for real \
     prose write with `--provider embedded --model <file.gguf>` (`scriptorium model fetch \
     smollm2` gets one) or a model server (docs/local-models.md)";

/// The last line of `write` when the simulated model wrote a book: how to get real prose (this
/// build has no embedded model: `--features embedded` adds it).
#[cfg(not(feature = "embedded"))]
pub const REAL_PROSE_HINT: &str = "this is placeholder prose from the simulated model; for real \
     prose write with a model server (`--provider ollama --model <name>`, or OpenAI, Anthropic, \
     llama.cpp: docs/providers.md, docs/local-models.md)";

/// Prints [`REAL_PROSE_HINT`] when any of `records` was written by the simulated model.
pub fn real_prose_hint(records: &[BookRecord]) {
    if records.iter().any(|r| r.steps.values().any(|s| s.route.starts_with("sim"))) {
        println!("{REAL_PROSE_HINT}");
    }
}

/// The status view of a book as JSON.
pub fn book_json(r: &BookRecord) -> Value {
    let (done, total) = r.progress();
    json!({
        "id": r.id,
        "title": r.title,
        "project": r.brief.project,
        "seed": r.brief.seed,
        "state": r.state,
        "steps_done": done,
        "steps_total": total,
        "current_steps": r.running(),
        "usage": r.usage,
        "tokens": tokens(r),
        "cost_usd": r.usage.cost_usd,
        "elapsed_secs": elapsed_secs(r),
        "created_unix_ms": r.created_ms,
        "finished_unix_ms": r.finished_ms,
        "failure": r.failure,
        "awaiting": r.awaiting,
        "paused": r.paused,
        "version": r.version,
        "actions": r.actions,
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
        "{:<16} {:<17} {:>9} {:<24} {:>9} {:>8} {:>9}  {}\n",
        "BOOK", "STATE", "STEPS", "RUNNING", "TOKENS", "COST", "ELAPSED", "TITLE / FAILURE"
    );
    for r in recs {
        let (done, total) = r.progress();
        let state = r.state.name();
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
            "{:<16} {:<17} {:>9} {:<24} {:>9} {:>8} {:>8.1}s  {}",
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

/// One book in detail: state, the steps waiting for approval, its step table and what
/// operators did to it.
pub fn book_detail(r: &BookRecord) -> String {
    let (done, total) = r.progress();
    let mut out = format!(
        "book      {}\ntitle     {}\nstate     {}\nprogress  {done}/{total} steps\nrunning   {}\ntokens    {} ({} prompt, {} completion) in {} calls\ncost      ${:.4}\nelapsed   {:.1}s (running)\n",
        r.id,
        r.title,
        r.state.name(),
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
    if !r.awaiting.is_empty() {
        let _ = writeln!(
            out,
            "awaiting  {} (`scriptorium approve {}`, or reject, or edit)",
            r.awaiting.join(", "),
            r.id
        );
    }
    if r.version > 1 {
        let _ = writeln!(out, "version   {}", r.version);
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
    out += &actions_table(r);
    out
}

/// What operators did to a book (or tried to), oldest first: when, who, what, on which step,
/// and the note or the reason it was refused.
fn actions_table(r: &BookRecord) -> String {
    let mut out = String::from("\nACTIONS\n");
    if r.actions.is_empty() {
        out += "(none)\n";
        return out;
    }
    let _ = writeln!(out, "{:<24} {:<24} {:<8} {:<12} NOTE", "WHEN (UTC)", "BY", "ACTION", "STEP");
    for a in &r.actions {
        let note = match (a.refused.is_empty(), a.note.is_empty()) {
            (false, _) => format!("refused: {}", a.refused),
            (true, false) => a.note.clone(),
            (true, true) => String::new(),
        };
        let step = if a.step.is_empty() { "-" } else { a.step.as_str() };
        let _ =
            writeln!(out, "{:<24} {:<24} {:<8} {:<12} {note}", utc(a.at_ms), a.by, a.action, step);
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` of Unix milliseconds, in UTC.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}")
}

/// One line on the coordinator: alive or not, and the submissions waiting for one.
pub fn coordinator_line(l: &Liveness) -> String {
    let waiting = match l.submissions_waiting {
        Some(n) if !l.alive && n > 0 => format!("; {n} submissions waiting, taken when one starts"),
        Some(n) => format!("; {n} submissions waiting"),
        None => String::new(),
    };
    let who = |c: &CoordinatorView| format!("{} on {} (pid {})", c.id, c.host, c.pid);
    match l.coordinators.first() {
        Some(c) if c.alive => {
            let held = match (c.admission_held.as_str(), l.submissions_waiting) {
                ("cap", Some(1..)) => ", held: books in flight at max_books_in_flight",
                ("demand", Some(1..)) => {
                    ", held by demand: the workers have admission_backlog work waiting"
                }
                _ => "",
            };
            let more = match l.coordinators.iter().filter(|c| c.alive).count() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            format!(
                "coordinator: alive: {}{more}, up {}, {} books in flight{waiting}{held}",
                who(c),
                duration(c.uptime_secs),
                c.books_in_flight
            )
        }
        Some(c) => format!(
            "coordinator: none alive (last heartbeat {} ago, from {}){waiting}",
            duration(c.last_seen_secs),
            who(c)
        ),
        None => format!("coordinator: none alive (no heartbeat){waiting}"),
    }
}

/// A duration in seconds as `42s`, `3m05s` or `2h07m`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
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

    #[test]
    fn a_book_of_a_few_hundredths_of_a_second_is_not_printed_as_nothing() {
        assert_eq!(seconds(0.034), "0.03s");
        assert_eq!(seconds(9.5), "9.50s");
        assert_eq!(seconds(73.25), "73.2s");
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
        let mut r = BookRecord::new("b1".into(), brief, clock::now_ms() - 60_000);
        r.title = "Salt".into();
        r.set_state(Status::Running, clock::now_ms() - 2000);
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
        assert!((2.0..10.0).contains(&secs), "running since 2 s, created a minute ago: {row}");
    }

    fn brief() -> BookBrief {
        BookBrief { category: "fiction".into(), chapters: 1, characters: 1, ..Default::default() }
    }

    #[test]
    fn elapsed_counts_running_time_not_time_held_or_queued() {
        let now = clock::now_ms();
        let mut r = BookRecord::new("b1".into(), brief(), now - 3_600_000);
        r.set_state(Status::Running, now - 600_000);
        r.set_state(Status::Paused, now - 595_000);
        assert_eq!(elapsed_secs(&r), 5.0, "paused for ten minutes after five seconds");
        r.set_state(Status::Running, now - 1_000);
        let secs = elapsed_secs(&r);
        assert!((6.0..9.0).contains(&secs), "{secs}");
        r.set_state(Status::Done, now);
        r.finished_ms = now;
        assert_eq!(elapsed_secs(&r), 6.0);
        assert_eq!(book_json(&r)["elapsed_secs"], 6.0);
    }

    #[test]
    fn a_book_in_detail_shows_its_state_what_waits_for_approval_and_what_operators_did() {
        use scriptorium_coordinator::record::Action;
        let mut r = BookRecord::new("b1".into(), brief(), 0);
        r.set_state(Status::AwaitingApproval, 0);
        r.awaiting = vec!["outline".into()];
        let action = |id: &str, what: &str, step: &str, note: &str, refused: &str| Action {
            id: id.into(),
            at_ms: 1_767_225_600_000,
            by: "ana@desk".into(),
            action: what.into(),
            step: step.into(),
            note: note.into(),
            refused: refused.into(),
        };
        r.actions = vec![
            action("c1", "reject", "concept", "darker, please", ""),
            action("c2", "cancel", "", "", "book b1 is done: nothing to cancel"),
        ];
        let text = book_detail(&r);
        assert!(text.contains("state     awaiting_approval\n"), "{text}");
        assert!(text.contains("awaiting  outline (`scriptorium approve b1`"), "{text}");
        let rows: Vec<&str> = text.lines().skip_while(|l| *l != "ACTIONS").collect();
        assert!(rows[1].starts_with("WHEN (UTC)"), "{text}");
        assert!(rows[2].starts_with("2026-01-01 00:00:00"), "{text}");
        assert!(rows[2].contains("ana@desk") && rows[2].ends_with("darker, please"), "{text}");
        assert!(rows[3].contains("cancel") && rows[3].contains(" - "), "{text}");
        assert!(rows[3].ends_with("refused: book b1 is done: nothing to cancel"), "{text}");
        let json = book_json(&r);
        assert_eq!(json["state"], "awaiting_approval");
        assert_eq!(json["awaiting"], serde_json::json!(["outline"]));
        assert_eq!(json["actions"][0]["by"], "ana@desk");
        assert_eq!(json["actions"][1]["refused"], "book b1 is done: nothing to cancel");
        assert!(
            book_detail(&BookRecord::new("b2".into(), brief(), 0)).ends_with("ACTIONS\n(none)\n")
        );
    }

    #[test]
    fn the_coordinator_line_says_whether_one_is_alive_and_what_waits() {
        let c = |alive, last_seen_secs| CoordinatorView {
            id: "coordinator-1".into(),
            host: "h".into(),
            pid: 9,
            alive,
            last_seen_secs,
            uptime_secs: 125.0,
            books_in_flight: 2,
            submissions_waiting: 0,
            admission_held: String::new(),
        };
        let l = |coordinators: Vec<CoordinatorView>, waiting| Liveness {
            alive: coordinators.first().is_some_and(|c| c.alive),
            submissions_waiting: waiting,
            coordinators,
        };
        assert_eq!(
            coordinator_line(&l(vec![c(true, 1.0)], Some(0))),
            "coordinator: alive: coordinator-1 on h (pid 9), up 2m05s, 2 books in flight; 0 submissions waiting"
        );
        assert_eq!(
            coordinator_line(&l(vec![c(false, 40.0)], Some(3))),
            "coordinator: none alive (last heartbeat 40s ago, from coordinator-1 on h (pid 9)); 3 submissions waiting, taken when one starts"
        );
        assert_eq!(coordinator_line(&l(vec![], None)), "coordinator: none alive (no heartbeat)");
        let held = |why: &str| CoordinatorView { admission_held: why.into(), ..c(true, 1.0) };
        assert_eq!(
            coordinator_line(&l(vec![held("demand")], Some(900))),
            "coordinator: alive: coordinator-1 on h (pid 9), up 2m05s, 2 books in flight; 900 submissions waiting, held by demand: the workers have admission_backlog work waiting"
        );
        assert!(
            coordinator_line(&l(vec![held("cap")], Some(5)))
                .ends_with("5 submissions waiting, held: books in flight at max_books_in_flight")
        );
        assert!(
            coordinator_line(&l(vec![held("demand")], Some(0))).ends_with("0 submissions waiting"),
            "nothing held when nothing waits"
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03");
    }
}
