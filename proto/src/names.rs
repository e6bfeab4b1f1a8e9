//! Every NATS subject, stream, consumer and key-value bucket name Scriptorium uses.
//!
//! | name | kind | what it carries |
//! |---|---|---|
//! | `SCRIPTORIUM_STEPS` | stream, work-queue retention | [`StepTask`](crate::v1::StepTask) on `scriptorium.steps.<kind>` |
//! | `steps-<kind>` | durable pull consumer per agent kind | shared by every worker process (competing consumers) |
//! | `steps-<kind>-priority` | durable pull consumer per agent kind | the steps of priority books, on `scriptorium.steps.<kind>.priority`, taken first |
//! | `SCRIPTORIUM_RESULTS` | stream, work-queue retention | [`StepResult`](crate::v1::StepResult) on `scriptorium.results.<book>` |
//! | `coordinator-results` | durable pull consumer | read by the coordinator |
//! | `SCRIPTORIUM_SUBMIT` | stream, work-queue retention | [`SubmitBook`](crate::v1::SubmitBook) on `scriptorium.submit` |
//! | `SCRIPTORIUM_CONTROL` | stream, work-queue retention | [`BookCommand`](crate::v1::BookCommand) on `scriptorium.control.<book>` (operators' commands) |
//! | `coordinator-control` | durable pull consumer | read by the coordinator |
//! | `coordinator-submit` | durable pull consumer | read by the coordinator |
//! | `scriptorium.events.<book>` | core subject | [`BookEvent`](crate::v1::BookEvent) progress for watchers |
//! | `scriptorium_books` | KV bucket | one JSON book header per book id (brief, state, totals, progress; record layout 2) |
//! | `scriptorium_step_states` | KV bucket | each step's state, keyed `<book>.<step>`, and the book's plan under `<book>._plan` |
//! | `scriptorium_outputs` | KV bucket | accepted output of each step, keyed `<book>.<step>` |
//! | `scriptorium_workers` | KV bucket with a TTL | the latest [`WorkerHeartbeat`](crate::v1::WorkerHeartbeat) per worker |
//! | `scriptorium_coordinators` | KV bucket with a TTL | the latest [`CoordinatorHeartbeat`](crate::v1::CoordinatorHeartbeat) per coordinator process |
//! | `scriptorium_cache` | KV bucket with a TTL and a size limit | accepted model answers by request hash (the shared cache tier) |
//! | `scriptorium.cache.evicted` | core subject | cache keys the coordinator rejected, so workers drop them from their local tier |
//! | `scriptorium_leases` | KV bucket with a short TTL | which worker is computing a cache key right now |
//! | `scriptorium.cancel.<book>` | core subject | attempts the coordinator no longer wants, payload `<step>.<attempt>` |
//! | `SCRIPTORIUM_DEAD` | stream, limits retention | dead letters on `scriptorium.dead.<kind>` (steps) and `scriptorium.dead.results` / `scriptorium.dead.submit` |
//!
//! Step messages carry `Nats-Msg-Id: <book>.<step>.<attempt>` and results
//! `Nats-Msg-Id: result.<book>.<step>.<attempt>`, so a re-publish after a crash is
//! deduplicated by JetStream within [`DUPLICATE_WINDOW_SECS`].

use crate::v1::AgentKind;

/// The wire version of this build: what its workers can do and its results say. Version 1
/// is every build before versions existed (no version fields); 2 added
/// `StepTask.min_worker_version` and `StepResult.worker_version`. Raised when a step needs a
/// worker to understand something new; a coordinator then stamps that step with it.
pub const WIRE_VERSION: u32 = 2;

/// The worker wire version every step of this build needs: any worker that reads today's
/// fields can do them.
pub const STEP_MIN_WORKER_VERSION: u32 = 1;

/// Stream holding step tasks until a worker acknowledges them.
pub const STEPS_STREAM: &str = "SCRIPTORIUM_STEPS";
/// Subject prefix of step tasks; the agent kind follows.
pub const STEPS_PREFIX: &str = "scriptorium.steps";
/// Stream holding step results until the coordinator acknowledges them.
pub const RESULTS_STREAM: &str = "SCRIPTORIUM_RESULTS";
/// Subject prefix of step results; the book id follows.
pub const RESULTS_PREFIX: &str = "scriptorium.results";
/// Durable consumer of the coordinator on the results stream.
pub const RESULTS_CONSUMER: &str = "coordinator-results";
/// Stream holding submitted books until the coordinator takes them.
pub const SUBMIT_STREAM: &str = "SCRIPTORIUM_SUBMIT";
/// Subject of book submissions.
pub const SUBMIT_SUBJECT: &str = "scriptorium.submit";
/// Durable consumer of the coordinator on the submit stream.
pub const SUBMIT_CONSUMER: &str = "coordinator-submit";
/// Subject of priority submissions (briefs with `priority = "priority"`), in the submit stream:
/// the coordinator admits them before the normal ones.
pub const SUBMIT_PRIORITY_SUBJECT: &str = "scriptorium.submit.priority";
/// Durable consumer of the coordinator on the priority submissions.
pub const SUBMIT_PRIORITY_CONSUMER: &str = "coordinator-submit-priority";

/// Stream holding operators' commands until the coordinator takes them: a stream and a subject
/// of their own, so that commands never wait behind submissions held for admission, and so that
/// a server's permissions can let a role submit books without steering them.
pub const CONTROL_STREAM: &str = "SCRIPTORIUM_CONTROL";
/// Subject prefix of operators' commands; the book id follows.
pub const CONTROL_PREFIX: &str = "scriptorium.control";
/// Durable consumer of the coordinator on the control stream.
pub const CONTROL_CONSUMER: &str = "coordinator-control";

/// Subject an operator's command about `book_id` is published on.
pub fn control_subject(book_id: &str) -> String {
    format!("{CONTROL_PREFIX}.{book_id}")
}
/// Subject prefix of book progress events; the book id follows.
pub const EVENTS_PREFIX: &str = "scriptorium.events";
/// Key-value bucket of book records.
pub const BOOKS_BUCKET: &str = "scriptorium_books";
/// Key-value bucket of worker heartbeats.
pub const WORKERS_BUCKET: &str = "scriptorium_workers";
/// Key-value bucket of coordinator heartbeats: a bucket of its own, so that the workers view
/// never mistakes a coordinator for a worker and no worker id is reserved.
pub const COORDINATORS_BUCKET: &str = "scriptorium_coordinators";
/// Key-value bucket of accepted step outputs, keyed `<book>.<step>` (large texts live here,
/// not in the book record).
pub const OUTPUTS_BUCKET: &str = "scriptorium_outputs";
/// Key-value bucket of the shared response cache tier.
pub const CACHE_BUCKET: &str = "scriptorium_cache";
/// Core subject on which the coordinator announces evicted cache keys to every worker.
pub const CACHE_EVICTED_SUBJECT: &str = "scriptorium.cache.evicted";
/// Key-value bucket of step states: each step of a book under `<book>.<step>` and its plan
/// under `<book>._plan`, beside the small book header in the books bucket (record layout 2).
pub const STEP_STATES_BUCKET: &str = "scriptorium_step_states";
/// Key-value bucket of cache computation leases.
pub const LEASES_BUCKET: &str = "scriptorium_leases";
/// Stream of dead letters.
pub const DEAD_STREAM: &str = "SCRIPTORIUM_DEAD";
/// Subject prefix of dead letters; the agent kind (or `results`, `submit`) follows.
pub const DEAD_PREFIX: &str = "scriptorium.dead";

/// Subject of dead letters from the queue named `queue` (an agent kind, `results` or `submit`).
pub fn dead_subject(queue: &str) -> String {
    format!("{DEAD_PREFIX}.{queue}")
}

/// Subject prefix of cancellation announcements; the book id follows.
pub const CANCEL_PREFIX: &str = "scriptorium.cancel";
/// Every cancellation announcement (what a worker subscribes to).
pub const CANCEL_ALL: &str = "scriptorium.cancel.>";

/// Subject on which the coordinator cancels attempts of steps of `book_id`.
pub fn cancel_subject(book_id: &str) -> String {
    format!("{CANCEL_PREFIX}.{book_id}")
}

/// Payload of a cancellation: `<step_id>.<attempt>` (UTF-8).
pub fn cancel_payload(step_id: &str, attempt: u32) -> String {
    format!("{step_id}.{attempt}")
}

/// The book id, step id and attempt of a cancellation read from its subject and payload;
/// `None` when either is malformed (ids are checked with [`valid_id`]).
pub fn parse_cancel(subject: &str, payload: &[u8]) -> Option<(String, String, u32)> {
    let book_id = subject.strip_prefix(CANCEL_PREFIX)?.strip_prefix('.')?;
    let (step_id, attempt) = std::str::from_utf8(payload).ok()?.rsplit_once('.')?;
    let attempt = attempt.parse().ok()?;
    (valid_id(book_id) && valid_id(step_id))
        .then(|| (book_id.to_string(), step_id.to_string(), attempt))
}

/// How long JetStream remembers message ids for de-duplication.
pub const DUPLICATE_WINDOW_SECS: u64 = 120;

/// Subject a step task for `kind` is published on.
pub fn step_subject(kind: AgentKind) -> String {
    format!("{STEPS_PREFIX}.{}", crate::kind::name(kind))
}

/// Subject the steps of priority books are published on for `kind`: workers take them before
/// the steps on [`step_subject`].
pub fn priority_step_subject(kind: AgentKind) -> String {
    format!("{}.priority", step_subject(kind))
}

/// Durable consumer name of the pool for `kind`'s priority steps.
pub fn priority_step_consumer(kind: AgentKind) -> String {
    format!("{}-priority", step_consumer(kind))
}

/// Durable consumer name of the pool for `kind`.
pub fn step_consumer(kind: AgentKind) -> String {
    format!("steps-{}", crate::kind::name(kind))
}

/// Subject the result of a step of `book_id` is published on.
pub fn result_subject(book_id: &str) -> String {
    format!("{RESULTS_PREFIX}.{book_id}")
}

/// Subject progress events of `book_id` are published on.
pub fn event_subject(book_id: &str) -> String {
    format!("{EVENTS_PREFIX}.{book_id}")
}

/// Idempotency id of a step task.
pub fn step_msg_id(book_id: &str, step_id: &str, attempt: u32) -> String {
    format!("{book_id}.{step_id}.{attempt}")
}

/// Idempotency id of a step result.
pub fn result_msg_id(book_id: &str, step_id: &str, attempt: u32) -> String {
    format!("result.{book_id}.{step_id}.{attempt}")
}

/// HTTP header naming the agent kind of a model request (read by the simulated model server).
pub const AGENT_HEADER: &str = "x-scriptorium-agent";

/// Largest step message a worker accepts (a larger one is dead-lettered, and never replayed).
pub const MAX_STEP_BYTES: usize = 512 * 1024;

/// Longest id accepted from the wire (book, step and worker ids).
pub const MAX_ID_LEN: usize = 128;

/// Whether NATS accepts `key` as a key-value key: dot-separated tokens of letters, digits and
/// `-_=/`, no empty token (so no leading, trailing or double dot). Check ids from the wire with
/// [`valid_id`] before any I/O; this is the rule for composed keys such as `<book>.<step>`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|token| {
            !token.is_empty()
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=/".contains(&b))
        })
}

/// Whether `id` (a book, step or worker id from the wire) can be used everywhere Scriptorium
/// puts ids: as one subject token (`scriptorium.results.<book>`), inside KV keys
/// (`<book>.<step>`) and file names. Letters, digits, `-` and `_`, at most [`MAX_ID_LEN`].
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_nats_rules() {
        for ok in ["b1", "book-1.concept", "a_b=c/d", "x.y.z", &crate::clock::new_id()] {
            assert!(valid_key(ok), "{ok:?} is a valid key");
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a>", "é", "a\nb", "a.*"] {
            assert!(!valid_key(bad), "{bad:?} is not a valid key");
        }
    }

    #[test]
    fn cancellations_read_back_what_was_announced() {
        let subject = cancel_subject("b-1");
        assert!(subject.starts_with(CANCEL_ALL.trim_end_matches('>')));
        let payload = cancel_payload("chapter-2", 3);
        assert_eq!(
            parse_cancel(&subject, payload.as_bytes()),
            Some(("b-1".into(), "chapter-2".into(), 3))
        );
        for (subject, payload) in [
            ("scriptorium.cancel.b-1", "chapter-2"),
            ("scriptorium.cancel.b-1", "chapter-2.x"),
            ("scriptorium.cancel.b.1", "chapter-2.3"),
            ("scriptorium.cancel.", "chapter-2.3"),
            ("scriptorium.events.b-1", "chapter-2.3"),
            ("scriptorium.cancel.b-1", "chap ter.3"),
        ] {
            assert_eq!(parse_cancel(subject, payload.as_bytes()), None, "{subject} {payload}");
        }
    }

    #[test]
    fn ids_are_single_tokens_usable_in_keys_and_subjects() {
        let generated = crate::clock::new_id();
        for ok in [generated.as_str(), "chapter-3", "b_1", "concept"] {
            assert!(valid_id(ok), "{ok:?} is a valid id");
            assert!(valid_key(&format!("{ok}.concept")), "{ok:?} composes a valid key");
        }
        for bad in ["", "a.b", "a/b", "a b", "*", ">", "a=b", "../x"] {
            assert!(!valid_id(bad), "{bad:?} is not a valid id");
        }
        assert!(valid_id(&"a".repeat(MAX_ID_LEN)));
        assert!(!valid_id(&"a".repeat(MAX_ID_LEN + 1)));
    }
}
