//! The durable record of one book: brief, plan, step states and accepted outputs.
//!
//! Stored after every change, so a restarted coordinator resumes each unfinished book from it
//! and `status` reads it without asking the coordinator. Layout 2 (this code's, [`LAYOUT`])
//! writes per step, not per book: a small JSON header under `<book>` in the books bucket
//! (brief, state, totals, progress), each step's state under `<book>.<step>` and the plan once
//! under `<book>._plan` in the step-states bucket, and each accepted output under `<book>.<step>`
//! in the outputs bucket; a store writes only the steps that changed, so the bytes written per
//! result do not grow with the book. Layout 1 (before 2026-12-04: no `layout` field, the whole
//! record under `<book>`) is still read, and written in layout 2 at the book's next store.

mod doc;
mod store;

pub use doc::Doc;
pub use store::{Writes, delete, prepare, store};
use store::{hash, step_key};

use crate::plan::{ASSEMBLY, Plan};
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::{BookBrief, BookState, Usage};
use scriptorium_proto::{Bus, BusError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The record layout this code writes (see the module doc); a header with a higher one was
/// written by a newer coordinator and is left alone.
pub const LAYOUT: u32 = 2;

/// Key of a book's plan in the step-states bucket.
const PLAN_KEY: &str = "_plan";

/// State of a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted, no step dispatched yet.
    Queued,
    /// Steps in flight.
    Running,
    /// An accepted answer waits for a person's approval; nothing new is dispatched.
    AwaitingApproval,
    /// Held by an operator; nothing new is dispatched until it is resumed.
    Paused,
    /// Manuscript written.
    Done,
    /// Stopped for the reason in `failure`.
    Failed,
    /// Stopped by an operator.
    Cancelled,
}

impl Status {
    /// Every state, in the order a book may pass through them.
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Running,
        Status::AwaitingApproval,
        Status::Paused,
        Status::Done,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The wire form.
    pub fn wire(self) -> BookState {
        match self {
            Status::Queued => BookState::Queued,
            Status::Running => BookState::Running,
            Status::AwaitingApproval => BookState::AwaitingApproval,
            Status::Paused => BookState::Paused,
            Status::Done => BookState::Done,
            Status::Failed => BookState::Failed,
            Status::Cancelled => BookState::Cancelled,
        }
    }

    /// The state a wire state stands for (`Unspecified`, from an older peer: queued).
    pub fn from_wire(s: BookState) -> Status {
        match s {
            BookState::Unspecified | BookState::Queued => Status::Queued,
            BookState::Running => Status::Running,
            BookState::AwaitingApproval => Status::AwaitingApproval,
            BookState::Paused => Status::Paused,
            BookState::Done => Status::Done,
            BookState::Failed => Status::Failed,
            BookState::Cancelled => Status::Cancelled,
        }
    }

    /// The lowercase name (`awaiting_approval`...), as in `status`, filters and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Paused => "paused",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a state from its name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.name() == s)
    }

    /// Whether the book will not change any more (but for an operator's retry or rewrite).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }

    /// Whether the book is held: in flight, dispatching nothing new.
    pub fn is_held(self) -> bool {
        matches!(self, Status::AwaitingApproval | Status::Paused)
    }
}

/// What an operator did to a book (or tried to), as `status` and book.json list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The command's id (each is applied at most once).
    pub id: String,
    /// When it was handled (Unix ms).
    pub at_ms: i64,
    /// Who gave it.
    pub by: String,
    /// `approve`, `reject`, `edit`, `cancel`, `pause`, `resume`, `rewrite`, `retry`.
    pub action: String,
    /// The step or chapter it concerned, when one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
    /// The operator's note (a rejection's), when one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Why it was refused (empty: applied).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refused: String,
}

/// State of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Waiting for its inputs.
    Pending,
    /// Dispatched, waiting for a result.
    Running,
    /// Result accepted.
    Done,
    /// Gave up.
    Failed,
}

/// What is known of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// Current state.
    pub status: StepStatus,
    /// Current attempt (1 for the first dispatch; 0 before it).
    pub attempt: u32,
    /// When the current attempt was dispatched (Unix microseconds).
    pub dispatched_us: i64,
    /// When the result was accepted (Unix microseconds).
    pub finished_us: i64,
    /// Time the worker spent on the accepted attempt.
    pub worker_ms: u64,
    /// The route that answered.
    pub route: String,
    /// The structured-output dialect the accepted answer was asked in.
    #[serde(default)]
    pub dialect: String,
    /// The worker that answered.
    pub worker: String,
    /// Usage of all attempts of this step.
    pub usage: Usage,
    /// Whether the accepted answer came from the cache.
    pub cache_hit: bool,
    /// Why earlier attempts were rejected.
    pub rejections: Vec<String>,
    /// Attempts made before the last `retry`: the attempt budget counts from here.
    #[serde(default)]
    pub retry_base: u32,
    /// Done without a model call: an edit whose review accepted the draft with no issue.
    #[serde(default)]
    pub skipped: bool,
    /// Why an edit ended with the accepted draft as its output: every attempt was refused
    /// (empty for every other step).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kept_draft: String,
    /// Expected cost of the running attempt in US dollars, held against the book's budget
    /// until its result arrives or it is cancelled (0 when no attempt runs).
    #[serde(default)]
    pub reserved_usd: f64,
    /// Attempts whose usage is counted in `usage`: each once, whatever became of its result
    /// (accepted, rejected, failed or ignored).
    #[serde(default)]
    pub charged: Vec<u32>,
    /// The response-cache key of the accepted answer (evicted if an operator sends it back).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cache_key: String,
}

impl StepRecord {
    fn new() -> Self {
        Self {
            status: StepStatus::Pending,
            attempt: 0,
            dispatched_us: 0,
            finished_us: 0,
            worker_ms: 0,
            route: String::new(),
            dialect: String::new(),
            worker: String::new(),
            usage: Usage::default(),
            cache_hit: false,
            rejections: Vec::new(),
            retry_base: 0,
            skipped: false,
            kept_draft: String::new(),
            reserved_usd: 0.0,
            charged: Vec::new(),
            cache_key: String::new(),
        }
    }
}

/// Everything about one book.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookRecord {
    /// Book id.
    pub id: String,
    /// The brief.
    pub brief: BookBrief,
    /// Title (from the brief or the accepted concept).
    pub title: String,
    /// State.
    pub state: Status,
    /// Why the book failed.
    pub failure: Option<String>,
    /// The plan (empty in a record read as a header only).
    #[serde(default)]
    pub plan: Plan,
    /// State per step id (empty in a record read as a header only).
    #[serde(default)]
    pub steps: BTreeMap<String, StepRecord>,
    /// Accepted outputs per step id, in memory only: each is stored on its own under
    /// `<book>.<step>` in the outputs bucket, so the record stays small whatever the book's size.
    #[serde(skip)]
    pub outputs: BTreeMap<String, Doc>,
    /// Usage totals of the book.
    pub usage: Usage,
    /// Results ignored because they were duplicate, late or for a superseded attempt.
    pub ignored_results: u64,
    /// Results accepted (one per step at most).
    pub accepted_results: u64,
    /// Creation time (Unix ms).
    pub created_ms: i64,
    /// Finish time (Unix ms), 0 while running.
    pub finished_ms: i64,
    /// Directory the book was written to.
    pub output_dir: String,
    /// Steps whose accepted answers wait for a person's approval (the brief's `approve`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awaiting: Vec<String>,
    /// Held by an operator (`pause`) until `resume`.
    #[serde(default)]
    pub paused: bool,
    /// What operators did to the book, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// The book's version: 1, and one more for each rewrite (the previous version's files are
    /// kept beside the new ones).
    #[serde(default = "first_version")]
    pub version: u32,
    /// Time spent running (dispatching or waiting for results), in ms, before `running_since_ms`;
    /// time held (awaiting approval, paused) or queued does not count.
    #[serde(default)]
    pub running_ms: i64,
    /// When the book last started running (Unix ms; 0 while not running).
    #[serde(default)]
    pub running_since_ms: i64,
    /// The layout the record was stored in (1 when the field is absent: a record from before
    /// layouts had numbers); every store writes [`LAYOUT`].
    #[serde(default = "first_layout")]
    pub layout: u32,
    /// Progress as of the last store, kept in the header so that listings need not read steps.
    #[serde(default)]
    pub summary: Summary,
    /// What the last store (or load) left in the step-states bucket: a hash per step of its
    /// stored state, so a store writes only the steps that changed.
    #[serde(skip)]
    stored: BTreeMap<String, u64>,
    /// Whether the plan is in the step-states bucket.
    #[serde(skip)]
    plan_stored: bool,
}

/// A book's progress, as its header carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Steps done.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
    /// Ids of the steps running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<String>,
}

fn first_layout() -> u32 {
    1
}

fn first_version() -> u32 {
    1
}

impl BookRecord {
    /// A new record for `brief`.
    pub fn new(id: String, brief: BookBrief, now_ms: i64) -> Self {
        let plan = Plan::for_brief(&brief);
        let steps = plan.steps.iter().map(|s| (s.id.clone(), StepRecord::new())).collect();
        Self {
            title: brief.title.clone(),
            id,
            brief,
            state: Status::Queued,
            failure: None,
            plan,
            steps,
            outputs: BTreeMap::new(),
            usage: Usage::default(),
            ignored_results: 0,
            accepted_results: 0,
            created_ms: now_ms,
            finished_ms: 0,
            output_dir: String::new(),
            awaiting: Vec::new(),
            paused: false,
            actions: Vec::new(),
            version: 1,
            running_ms: 0,
            running_since_ms: 0,
            layout: LAYOUT,
            summary: Summary::default(),
            stored: BTreeMap::new(),
            plan_stored: false,
        }
    }

    /// Moves the book to `state`, keeping its running time: the clock runs only while the
    /// book is `running`.
    pub fn set_state(&mut self, state: Status, now_ms: i64) {
        if self.state == Status::Running && state != Status::Running && self.running_since_ms > 0 {
            self.running_ms += (now_ms - self.running_since_ms).max(0);
            self.running_since_ms = 0;
        }
        if state == Status::Running && (self.state != Status::Running || self.running_since_ms == 0)
        {
            self.running_since_ms = now_ms;
        }
        self.state = state;
    }

    /// Time the book has spent running, up to `now_ms`.
    pub fn elapsed_running_ms(&self, now_ms: i64) -> i64 {
        let current = if self.state == Status::Running && self.running_since_ms > 0 {
            (now_ms - self.running_since_ms).max(0)
        } else {
            0
        };
        self.running_ms + current
    }

    /// The state an unfinished book is in now: held while paused or awaiting approval.
    pub fn held_state(&self) -> Status {
        if self.paused {
            Status::Paused
        } else if !self.awaiting.is_empty() {
            Status::AwaitingApproval
        } else {
            Status::Running
        }
    }

    /// Whether the command `id` was handled already (applied or refused).
    pub fn handled(&self, id: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.id == id)
    }

    /// Steps done and steps in all (from the header's summary in a record read as a header).
    pub fn progress(&self) -> (u32, u32) {
        if self.steps.is_empty() {
            return (self.summary.done, self.summary.total);
        }
        let done = self.steps.values().filter(|s| s.status == StepStatus::Done).count();
        (done as u32, self.steps.len() as u32)
    }

    /// Ids of the steps that are running (from the header's summary in a record read as a
    /// header).
    pub fn running(&self) -> Vec<&str> {
        if self.steps.is_empty() {
            return self.summary.running.iter().map(String::as_str).collect();
        }
        self.steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Running)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The progress to store in the header.
    fn current_summary(&self) -> Summary {
        let (done, total) = self.progress();
        Summary { done, total, running: self.running().into_iter().map(String::from).collect() }
    }
}

/// Why a stored book could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The record or an output could not be read.
    #[error("book state: {0}")]
    Bus(#[from] BusError),
    /// The stored record is not a book record.
    #[error("book record unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// The record was written by a newer coordinator, in a layout this one does not know.
    #[error(
        "book record layout {found} is newer than this coordinator's ({LAYOUT}); a newer coordinator must handle it"
    )]
    Newer {
        /// The stored record's layout.
        found: u32,
    },
}

impl LoadError {
    /// Whether the same load may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::Bus(e) if e.is_transient())
    }
}

/// Reads the record of `book_id` with the accepted outputs of its done steps, so that
/// starting its book actor needs no I/O (see [`load_outputs`]). `None` when no book has this id.
pub async fn load_book(bus: &Bus, book_id: &str) -> Result<Option<BookRecord>, LoadError> {
    let Some(mut rec) = load_record(bus, book_id).await? else { return Ok(None) };
    load_outputs(bus, &mut rec).await?;
    Ok(Some(rec))
}

/// Reads the record of `book_id` with its plan and steps (`outputs` empty), whatever layout
/// it was stored in. `None` when no book has this id.
pub async fn load_record(bus: &Bus, book_id: &str) -> Result<Option<BookRecord>, LoadError> {
    let Some(mut rec) = load_header(bus, book_id).await? else { return Ok(None) };
    if rec.layout >= 2 {
        load_steps(bus, &mut rec).await?;
    }
    Ok(Some(rec))
}

/// Reads the header of `book_id` alone: everything but the plan and the steps (whose
/// progress the header's summary gives). A record stored in layout 1 comes whole.
pub async fn load_header(bus: &Bus, book_id: &str) -> Result<Option<BookRecord>, LoadError> {
    let Some(bytes) = bus.kv_get(Bucket::Books, book_id).await? else { return Ok(None) };
    Ok(Some(parse_header(&bytes)?))
}

/// Parses a stored header (or a whole layout-1 record).
pub fn parse_header(bytes: &[u8]) -> Result<BookRecord, LoadError> {
    #[derive(Deserialize)]
    struct Layout {
        #[serde(default = "first_layout")]
        layout: u32,
    }
    let found = serde_json::from_slice::<Layout>(bytes)?.layout;
    if found > LAYOUT {
        return Err(LoadError::Newer { found });
    }
    let mut rec: BookRecord = serde_json::from_slice(bytes)?;
    if rec.layout < 2 {
        // Layout 1 carries no summary: made from its steps, so listings show its progress.
        rec.summary = rec.current_summary();
    }
    Ok(rec)
}

/// Reads the plan and step states of a layout-2 record. A step whose state is missing (lost
/// with its store) is pending: it runs again.
async fn load_steps(bus: &Bus, rec: &mut BookRecord) -> Result<(), LoadError> {
    let plan = bus.kv_get(Bucket::StepStates, &step_key(&rec.id, PLAN_KEY)).await?;
    rec.plan = match plan {
        Some(bytes) => serde_json::from_slice(&bytes)?,
        // Written before the header ever was: missing only if the store lost it.
        None => Plan::for_brief(&rec.brief),
    };
    rec.plan_stored = true;
    let keys: Vec<(String, String)> =
        rec.plan.steps.iter().map(|p| (p.id.clone(), step_key(&rec.id, &p.id))).collect();
    let stored = futures::future::try_join_all(
        keys.iter().map(|(_, key)| bus.kv_get(Bucket::StepStates, key)),
    )
    .await?;
    rec.steps.clear();
    rec.stored.clear();
    for ((id, _), bytes) in keys.into_iter().zip(stored) {
        let step = match bytes {
            Some(bytes) => {
                rec.stored.insert(id.clone(), hash(&bytes));
                serde_json::from_slice(&bytes)?
            }
            None => StepRecord::new(),
        };
        rec.steps.insert(id, step);
    }
    catch_up(rec);
    Ok(())
}

/// The header is written after the steps, so a coordinator killed in between leaves a header
/// one result behind its steps: the totals the steps also hold are taken from them.
fn catch_up(rec: &mut BookRecord) {
    let done = rec
        .steps
        .iter()
        .filter(|(id, s)| s.status == StepStatus::Done && id.as_str() != ASSEMBLY && !s.skipped)
        .count() as u64;
    rec.accepted_results = rec.accepted_results.max(done);
    let mut sum = Usage::default();
    for s in rec.steps.values() {
        add_usage(&mut sum, &s.usage);
    }
    let u = &mut rec.usage;
    u.prompt_tokens = u.prompt_tokens.max(sum.prompt_tokens);
    u.completion_tokens = u.completion_tokens.max(sum.completion_tokens);
    u.calls = u.calls.max(sum.calls);
    u.retries = u.retries.max(sum.retries);
    u.cost_usd = u.cost_usd.max(sum.cost_usd);
    u.cache_hits = u.cache_hits.max(sum.cache_hits);
}

/// Reads the accepted outputs of `rec`'s done steps that it does not hold yet; a done step
/// whose output was lost with its store goes back to pending and runs again.
pub async fn load_outputs(bus: &Bus, rec: &mut BookRecord) -> Result<(), LoadError> {
    let done: Vec<String> = rec
        .steps
        .iter()
        .filter(|(id, s)| {
            s.status == StepStatus::Done
                && id.as_str() != ASSEMBLY
                && !rec.outputs.contains_key(*id)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let keys: Vec<String> = done.iter().map(|id| output_key(&rec.id, id)).collect();
    let stored =
        futures::future::try_join_all(keys.iter().map(|key| bus.kv_get(Bucket::Outputs, key)))
            .await?;
    for (id, stored) in done.into_iter().zip(stored) {
        match stored.and_then(|b| Doc::from_stored(&b)) {
            Some(doc) => {
                rec.outputs.insert(id, doc);
            }
            None => {
                tracing::warn!(book_id = %rec.id, step = %id, "stored output missing; step runs again");
                if let Some(s) = rec.steps.get_mut(&id) {
                    s.status = StepStatus::Pending;
                }
            }
        }
    }
    Ok(())
}

/// Key of a step's output in the outputs bucket.
pub fn output_key(book_id: &str, step_id: &str) -> String {
    format!("{book_id}.{step_id}")
}

/// Counts the usage of `r`'s attempt in its step and its book, once per attempt whatever became
/// of the result, and frees the attempt's reservation when it is the step's current one.
/// Returns whether the usage was counted (`false` for an unknown step or an attempt counted
/// before: a duplicate delivery).
pub fn charge(rec: &mut BookRecord, r: &scriptorium_proto::v1::StepResult) -> bool {
    let Some(s) = rec.steps.get_mut(&r.step_id) else { return false };
    if s.attempt == r.attempt {
        s.reserved_usd = 0.0;
    }
    if s.charged.contains(&r.attempt) {
        return false;
    }
    s.charged.push(r.attempt);
    let usage = r.usage.unwrap_or_default();
    add_usage(&mut s.usage, &usage);
    add_usage(&mut rec.usage, &usage);
    true
}

/// Adds `b` into `a`.
pub fn add_usage(a: &mut Usage, b: &Usage) {
    a.prompt_tokens += b.prompt_tokens;
    a.completion_tokens += b.completion_tokens;
    a.calls += b.calls;
    a.retries += b.retries;
    a.cost_usd += b.cost_usd;
    a.cache_hits += b.cache_hits;
}
