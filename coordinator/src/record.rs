//! The durable record of one book: brief, plan, step states and accepted outputs.
//!
//! Stored as JSON in the books bucket after every change, so a restarted coordinator resumes
//! each unfinished book from it and `status` reads it without asking the coordinator.

use crate::plan::{ASSEMBLY, Plan};
use scriptorium_proto::transport::Bucket;
use scriptorium_proto::v1::{BookBrief, BookState, Usage};
use scriptorium_proto::{Bus, BusError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// State of a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, no step dispatched yet.
    Queued,
    /// Steps in flight.
    Running,
    /// Manuscript written.
    Done,
    /// Stopped for the reason in `failure`.
    Failed,
}

impl Status {
    /// The wire form.
    pub fn wire(self) -> BookState {
        match self {
            Status::Queued => BookState::Queued,
            Status::Running => BookState::Running,
            Status::Done => BookState::Done,
            Status::Failed => BookState::Failed,
        }
    }

    /// Whether the book will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Failed)
    }
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
    /// The plan.
    pub plan: Plan,
    /// State per step id.
    pub steps: BTreeMap<String, StepRecord>,
    /// Accepted outputs per step id, in memory only: each is stored on its own under
    /// `<book>.<step>` in the outputs bucket, so the record stays small whatever the book's size.
    #[serde(skip)]
    pub outputs: BTreeMap<String, Value>,
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
        }
    }

    /// Steps done and steps in all.
    pub fn progress(&self) -> (u32, u32) {
        let done = self.steps.values().filter(|s| s.status == StepStatus::Done).count();
        (done as u32, self.steps.len() as u32)
    }

    /// Ids of the steps that are running.
    pub fn running(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Running)
            .map(|(k, _)| k.as_str())
            .collect()
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

/// Reads the record of `book_id` alone (`outputs` empty). `None` when no book has this id.
pub async fn load_record(bus: &Bus, book_id: &str) -> Result<Option<BookRecord>, LoadError> {
    let Some(bytes) = bus.kv_get(Bucket::Books, book_id).await? else { return Ok(None) };
    Ok(Some(serde_json::from_slice(&bytes)?))
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
    for id in done {
        let stored = bus.kv_get(Bucket::Outputs, &output_key(&rec.id, &id)).await?;
        match stored.and_then(|b| serde_json::from_slice(&b).ok()) {
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

/// Stores `rec` in the books bucket.
pub async fn store(bus: &Bus, rec: &BookRecord) -> Result<(), LoadError> {
    bus.kv_put(Bucket::Books, &rec.id, serde_json::to_vec(rec)?.into()).await?;
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
