//! The pumps that read the coordinator's queues. Every message is checked before any I/O: its
//! size, its decoding and the ids it carries (book and step ids must be valid ids, see
//! [`names::valid_id`]); what fails is dead-lettered with the rule it broke, so it is never
//! redelivered. Results are then routed by the coordinator actor and acknowledged once handled;
//! submissions load and store their book's record here, not in the actor.

use super::Flow;
use super::control;
use super::submit::{self, SubmitError};
use crate::actors::coordinator::{Claim, CoordinatorMsg};
use crate::brief;
use crate::control::Command;
use crate::{Env, Held};
use ractor::ActorRef;
use scriptorium_proto::transport::{QueueSettings, StepLoad};
use scriptorium_proto::v1::{BookCommand, StepResult, SubmitBook};
use scriptorium_proto::{Bus, BusError, Incoming, Source, names};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Mutex;

/// Largest result or submission message the coordinator reads.
pub const MAX_MESSAGE_BYTES: usize = 768 * 1024;

/// How often a message being handled is acknowledged as in progress: a third of the ack wait
/// of the coordinator's queues (`NatsOptions::coordinator`, 10 s), so that a message is
/// delivered again only when its delivery was lost (with a server, or a coordinator), however
/// long handling it takes while NATS is slow.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Runs `work` on behalf of message `m`, acknowledging `m` as in progress meanwhile.
async fn with_progress<T>(m: &Incoming, work: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(work);
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                let _ = m.acker.in_progress().await;
            }
        }
    }
}

async fn next_or_wait(source: &mut Source, what: &str) -> Option<Incoming> {
    loop {
        match source.next().await? {
            Ok(m) => return Some(m),
            Err(e) => {
                tracing::warn!(queue = what, error = %e, "queue read failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Stores a message the coordinator cannot use in the dead-letter stream, then removes it
/// from its queue (or hands it back when the dead letter could not be stored).
async fn dead_letter(bus: &Bus, queue: &str, m: &Incoming, reason: &str) {
    match bus.dead_letter(queue, m.payload.clone(), reason).await {
        Ok(()) => {
            let _ = m.acker.term().await;
        }
        Err(e) => {
            tracing::error!(error = %e, "dead letter not stored; message handed back");
            let _ = m.acker.nak(Some(Duration::from_secs(5))).await;
        }
    }
}

/// `Err(rule)` when `id`, the `what` of a message, is not a valid id.
fn check_id(what: &str, id: &str) -> Result<(), String> {
    if names::valid_id(id) {
        return Ok(());
    }
    // From the wire: show a bounded, printable prefix only.
    let shown: String = id.chars().take(64).flat_map(char::escape_debug).collect();
    Err(format!(
        "invalid {what} \"{shown}\": ids are 1 to {} letters, digits, - or _",
        names::MAX_ID_LEN
    ))
}

/// Reads `source` until it ends or `handle` says stop: a message over [`MAX_MESSAGE_BYTES`] or
/// one that does not decode as `M` is dead-lettered with the reason; the others go to `handle`,
/// which returns `None` to go on or the flow to return.
/// `m` decoded as `M`, or `None` once it was dead-lettered for its size or its decoding.
async fn checked<M>(bus: &Bus, queue: &'static str, what: &str, m: &Incoming) -> Option<M>
where
    M: scriptorium_proto::prost::Message + Default,
{
    if m.payload.len() > MAX_MESSAGE_BYTES {
        let reason = format!("{what} of {} bytes exceeds {MAX_MESSAGE_BYTES}", m.payload.len());
        dead_letter(bus, queue, m, &reason).await;
        return None;
    }
    match M::decode(m.payload.clone()) {
        Ok(msg) => Some(msg),
        Err(e) => {
            tracing::error!(queue, error = %e, "undecodable message dead-lettered");
            dead_letter(bus, queue, m, &format!("undecodable {what}: {e}")).await;
            None
        }
    }
}

async fn pump<M, F, Fut>(
    source: Arc<Mutex<Source>>,
    bus: Bus,
    queue: &'static str,
    what: &str,
    mut handle: F,
) -> Flow
where
    M: scriptorium_proto::prost::Message + Default,
    F: FnMut(M, Incoming) -> Fut,
    Fut: std::future::Future<Output = Option<Flow>>,
{
    let mut source = source.lock().await;
    while let Some(m) = next_or_wait(&mut source, queue).await {
        let Some(msg) = checked::<M>(&bus, queue, what, &m).await else { continue };
        if let Some(flow) = handle(msg, m).await {
            return flow;
        }
    }
    Flow::Ended
}

/// The results pump: ids checked, then routed by the coordinator actor; each message is
/// acknowledged once its book (or the late-results task) has handled it, without holding up
/// the next one, so results of different books are handled in parallel. Results routed and
/// not yet handled are counted in `Stats::results_in_hand`.
pub(super) async fn results(
    source: Arc<Mutex<Source>>,
    actor: ActorRef<CoordinatorMsg>,
    env: Arc<Env>,
) -> Flow {
    pump(source, env.bus.clone(), "results", "result message", |result: StepResult, m| {
        let (actor, env) = (actor.clone(), env.clone());
        async move {
            let bus = &env.bus;
            let ids = check_id("book id", &result.book_id)
                .and_then(|()| check_id("step id", &result.step_id));
            if let Err(rule) = ids {
                tracing::error!(rule = %rule, "result with an invalid id dead-lettered");
                dead_letter(bus, "results", &m, &format!("result refused: {rule}")).await;
                return None;
            }
            let (tx, rx) = ractor::concurrency::oneshot();
            let in_hand = &env.stats.results_in_hand;
            in_hand.fetch_add(1, Ordering::Relaxed);
            if actor
                .cast(CoordinatorMsg::Result { result: Box::new(result), reply: tx.into() })
                .is_err()
            {
                in_hand.fetch_sub(1, Ordering::Relaxed);
                // Not acknowledged: redelivered to the next coordinator.
                return Some(Flow::Stop);
            }
            tokio::spawn(async move {
                let handled = with_progress(&m, rx).await;
                env.stats.results_in_hand.fetch_sub(1, Ordering::Relaxed);
                if handled.is_ok() {
                    let _ = m.acker.ack().await;
                }
            });
            None
        }
    })
    .await
}

/// The submit stream's two queues: priority submissions and the others.
pub(crate) struct Submissions {
    /// Submissions of priority books.
    pub(crate) priority: Source,
    /// Every other submission.
    pub(crate) normal: Source,
}

/// How long the admission pump waits on the normal submissions before it looks at the priority
/// ones again.
const NORMAL_WAIT: Duration = Duration::from_millis(250);

/// The submissions pump, which is also admission: a submission is taken only while fewer than
/// `coordinator.max_books_in_flight` books are in flight and, by demand, while fewer than
/// `coordinator.admission_backlog` steps and results wait (the rest wait in the stream, where
/// they are durable), priority submissions before the others and, at the cap or the backlog
/// limit, within a headroom of their own ([`priority_cap`]). A taken submission has its ids
/// and brief checked, then its book is claimed from the coordinator actor, its record loaded or
/// created here, and the book started (or the claim released).
pub(super) async fn submits(
    sources: Arc<Mutex<Submissions>>,
    actor: ActorRef<CoordinatorMsg>,
    env: Arc<Env>,
) -> Flow {
    let mut sources = sources.lock().await;
    let bus = env.bus.clone();
    let mut held = HoldLog::default();
    loop {
        let (room, free) = match admitted(&actor, &env, &mut held).await {
            Ok(room) => room,
            Err(flow) => return flow,
        };
        // The priority submissions there are first; the others only when there are none.
        let taken = match sources.priority.fetch(free, Duration::ZERO).await {
            Ok(got) if !got.is_empty() => Ok(got),
            Ok(_) if room == Room::All => sources.normal.fetch(free, NORMAL_WAIT).await,
            Ok(_) => {
                tokio::time::sleep(ROOM_POLL).await;
                continue;
            }
            Err(e) => Err(e),
        };
        let taken = match taken {
            Ok(taken) => taken,
            Err(BusError::Closed) => return Flow::Ended,
            Err(e) => {
                tracing::warn!(queue = "submit", error = %e, "queue read failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        // Started together: each takes a few round trips to the store (its claim, its record
        // read and written), which one after another held admission to a few dozen books a
        // second while the books in flight kept the server busy.
        let dispatched = env.stats.dispatched.load(Ordering::Relaxed);
        let started = futures::future::join_all(taken.iter().map(|m| {
            let (bus, actor, env) = (&bus, &actor, &env);
            async move {
                let sub = checked::<SubmitBook>(bus, "submit", "submission", m).await?;
                with_progress(m, submission(actor, env, sub, m)).await
            }
        }))
        .await;
        if let Some(flow) = started.into_iter().flatten().next() {
            return flow;
        }
        if env.cfg.admission_backlog > 0 {
            settle(&env, dispatched, taken.len()).await;
        }
    }
}

/// Longest admission waits for the books it started to dispatch their first steps.
const SETTLE_MAX: Duration = Duration::from_millis(500);

/// Waits until `started` more steps were dispatched than `dispatched` (the books just started
/// have put their first steps on the queues), for at most [`SETTLE_MAX`]: admission by demand
/// reads the queues next, and a backlog read before those steps landed would let in another
/// batch of books on top of them.
async fn settle(env: &Env, dispatched: u64, started: usize) {
    let until = tokio::time::Instant::now() + SETTLE_MAX;
    let target = dispatched + started as u64;
    while env.stats.dispatched.load(Ordering::Relaxed) < target
        && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Most submissions taken and started together.
const ADMIT_BATCH: usize = 32;

/// How often a full coordinator looks again for room (and, with room for priority books only,
/// for priority submissions).
const ROOM_POLL: Duration = Duration::from_millis(100);

/// Room for more books in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Fewer than the cap: any submission.
    All,
    /// At the cap within the priority books' headroom, or with the backlog at its limit:
    /// priority submissions only.
    Priority,
}

/// Books in flight a priority book is still admitted at: the cap and a tenth of it more (at
/// least one). A priority book behind a full coordinator starts at once instead of waiting for
/// a book to end; priority books beyond that headroom wait like the others.
fn priority_cap(cap: usize) -> usize {
    cap + (cap / 10).max(1)
}

/// Which holds of normal submissions were logged, so that each is logged when it begins (the
/// demand hold, which comes and goes with the queues, at most once a minute).
#[derive(Debug, Default)]
struct HoldLog {
    cap: bool,
    demand: Option<std::time::Instant>,
}

/// Waits until there is room for a book ([`room`]) and says how many may start now (at most
/// [`ADMIT_BATCH`]); `Err` when the coordinator actor is gone.
async fn admitted(
    actor: &ActorRef<CoordinatorMsg>,
    env: &Env,
    held: &mut HoldLog,
) -> Result<(Room, usize), Flow> {
    let (cap, limit) = (env.cfg.max_books_in_flight, env.cfg.admission_backlog);
    loop {
        let n = match cap {
            0 => 0,
            _ => ractor::call!(actor, CoordinatorMsg::InFlight).map_err(|_| Flow::Stop)?,
        };
        let at_cap = cap > 0 && n >= cap;
        let backlog = if limit == 0 || at_cap { None } else { backlog(env).await };
        if at_cap && !held.cap {
            tracing::info!(in_flight = n, cap, "books in flight at the cap; submissions wait");
        }
        held.cap = at_cap;
        let room = room(n, cap, backlog, limit);
        if let (Some((Room::Priority, _)), false, Some(load)) = (room, at_cap, backlog)
            && held.demand.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            tracing::info!(
                in_flight = n,
                steps_waiting = load.steps.waiting,
                steps_running = load.steps.running,
                results_in_hand = load.results,
                limit,
                "enough work waits for the fleet; normal submissions wait until it takes some"
            );
            held.demand = Some(std::time::Instant::now());
        }
        let now = match room {
            _ if at_cap => Held::Cap,
            Some((Room::Priority, _)) => Held::Demand,
            _ => Held::No,
        };
        env.stats.admission_held.store(now as u8, Ordering::Relaxed);
        if let Some(room) = room {
            return Ok(room);
        }
        tokio::time::sleep(ROOM_POLL).await;
    }
}

/// What admission by demand reads: the fleet's steps ([`StepLoad`]) and the results the
/// coordinator has not handled yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Load {
    steps: StepLoad,
    results: u64,
}

/// The load now; `None` when the transport cannot say: admission then goes by the cap.
async fn backlog(env: &Env) -> Option<Load> {
    match env.bus.step_load().await {
        Ok(steps) => {
            Some(Load { steps, results: env.stats.results_in_hand.load(Ordering::Relaxed) })
        }
        Err(e) => {
            tracing::debug!(error = %e, "steps waiting not known; admitting by the cap alone");
            None
        }
    }
}

/// How many more normal books the load has room for: the work waiting (steps no worker took
/// and results in hand) below `limit` or, when more steps than that are running, below as many
/// as run (a large fleet at work keeps its queues as deep as it is wide, so that its agents do
/// not idle between steps). Each book starts with one step.
fn demand(load: Load, limit: usize) -> usize {
    let room = (limit as u64).max(load.steps.running);
    let waiting = load.steps.waiting.saturating_add(load.results);
    usize::try_from(room.saturating_sub(waiting)).unwrap_or(usize::MAX)
}

/// Room for books with `in_flight` books in flight, and how many may start now (at most
/// [`ADMIT_BATCH`]): normal books below `cap` (0: no cap), priority books within their headroom
/// ([`priority_cap`]). Admission by demand ([`demand`]): with no room in the `load` for
/// `limit`, priority books only; otherwise no more normal books than it has room for.
/// `limit` 0, or a load not known: the cap alone.
fn room(in_flight: usize, cap: usize, load: Option<Load>, limit: usize) -> Option<(Room, usize)> {
    let headroom = |top: usize| top.saturating_sub(in_flight).min(ADMIT_BATCH);
    let (free, priority) = match cap {
        0 => (ADMIT_BATCH, ADMIT_BATCH),
        _ => (headroom(cap), headroom(priority_cap(cap))),
    };
    if free == 0 {
        return (priority > 0).then_some((Room::Priority, priority));
    }
    match load {
        Some(load) if limit > 0 => match demand(load, limit) {
            0 => Some((Room::Priority, priority)),
            demand => Some((Room::All, free.min(demand))),
        },
        _ => Some((Room::All, free)),
    }
}

/// The operators' commands pump: each command handled in turn (see [`super::control`]), on a
/// queue of its own so that no held submission delays it.
pub(super) async fn controls(
    source: Arc<Mutex<Source>>,
    actor: ActorRef<CoordinatorMsg>,
    env: Arc<Env>,
) -> Flow {
    let bus = env.bus.clone();
    pump(source, bus, "control", "command", |cmd: BookCommand, m| {
        let (actor, env) = (actor.clone(), env.clone());
        async move { with_progress(&m, command(&actor, &env, "control", cmd, &m)).await }
    })
    .await
}

async fn submission(
    actor: &ActorRef<CoordinatorMsg>,
    env: &Env,
    sub: SubmitBook,
    m: &Incoming,
) -> Option<Flow> {
    let bus = &env.bus;
    if let Some(cmd) = sub.command {
        // From a client that predates the control queue.
        return command(actor, env, "submit", cmd, m).await;
    }
    let mut ids = check_id("book id", &sub.book_id);
    if sub.retry && !sub.step.is_empty() {
        ids = ids.and_then(|()| check_id("step id", &sub.step));
    }
    if let Err(rule) = ids {
        tracing::error!(rule = %rule, "submission with an invalid id dead-lettered");
        dead_letter(bus, "submit", m, &format!("submission refused: {rule}")).await;
        return None;
    }
    let brief = sub.brief.unwrap_or_default();
    if let Err(e) = brief::revalidate(&brief) {
        tracing::error!(book_id = %sub.book_id, error = %e, "invalid brief refused");
        crate::client::store_refusal(bus, &sub.book_id, brief, &e.to_string()).await;
        dead_letter(bus, "submit", m, &format!("brief refused: {e}")).await;
        return None;
    }
    let book_id = sub.book_id;
    let claim =
        ractor::call!(actor, |reply| CoordinatorMsg::Claim { book_id: book_id.clone(), reply });
    match claim {
        Err(_) => return Some(Flow::Stop),
        Ok(Claim::Taken) => {
            // In flight already: a repeated submission, or a retry of a book that runs.
            let _ = m.acker.ack().await;
            return None;
        }
        Ok(Claim::Granted) => {}
    }
    let loaded = if sub.retry {
        submit::retry(bus, &book_id, &sub.step).await
    } else {
        submit::submit(bus, &book_id, brief).await
    };
    let (next, outcome) = match loaded {
        Ok(Some(rec)) => (CoordinatorMsg::Start { record: Box::new(rec) }, Ok(())),
        Ok(None) => (CoordinatorMsg::Release { book_id: book_id.clone() }, Ok(())),
        Err(e) => (CoordinatorMsg::Release { book_id: book_id.clone() }, Err(e)),
    };
    if actor.cast(next).is_err() {
        return Some(Flow::Stop);
    }
    match outcome {
        Ok(()) => {
            let _ = m.acker.ack().await;
        }
        Err(e) if e.is_transient() && !last_delivery(m) => {
            let delay = redelivery_delay(m.delivered);
            tracing::warn!(book_id = %book_id, error = %e, delivered = m.delivered, ?delay, "submission not started; will be redelivered");
            let _ = m.acker.nak(Some(delay)).await;
        }
        Err(e) => refuse(bus, m, &book_id, &e).await,
    }
    None
}

/// An operator's command: ids checked, then handled (see [`super::control`]); acknowledged
/// once the book's record lists it, handed back while its book is being loaded.
async fn command(
    actor: &ActorRef<CoordinatorMsg>,
    env: &Env,
    queue: &str,
    cmd: BookCommand,
    m: &Incoming,
) -> Option<Flow> {
    let bus = &env.bus;
    let checked = check_id("book id", &cmd.book_id)
        .and_then(|()| check_id("command id", &cmd.command_id))
        .and_then(|()| Command::try_from(cmd));
    let cmd = match checked {
        Ok(cmd) => cmd,
        Err(rule) => {
            tracing::error!(rule = %rule, "invalid command dead-lettered");
            dead_letter(bus, queue, m, &format!("command refused: {rule}")).await;
            return None;
        }
    };
    match control::handle(actor, env, cmd).await {
        control::Next::Ack => {
            let _ = m.acker.ack().await;
            None
        }
        control::Next::Later(delay) if !last_delivery(m) => {
            let _ = m.acker.nak(Some(delay)).await;
            None
        }
        control::Next::Later(_) => {
            dead_letter(bus, queue, m, "command not handled after every delivery").await;
            None
        }
        control::Next::Stop => Some(Flow::Stop),
    }
}

/// Whether `m` will not be delivered again if handed back (the coordinator's queues deliver a
/// message at most `max_deliver` times, then keep it undelivered): it is dead-lettered instead.
fn last_delivery(m: &Incoming) -> bool {
    let max = QueueSettings::default().max_deliver;
    max > 0 && i64::try_from(m.delivered).unwrap_or(i64::MAX) >= max
}

/// How long a submission that failed for a transient reason waits before its next delivery:
/// 1 s doubling per delivery up to 30 s, so the deliveries span a couple of minutes of outage.
fn redelivery_delay(delivered: u64) -> Duration {
    Duration::from_secs(1 << delivered.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

async fn refuse(bus: &Bus, m: &Incoming, book_id: &str, e: &SubmitError) {
    tracing::error!(book_id = %book_id, error = %e, delivered = m.delivered, "submission refused");
    let reason = if e.is_transient() {
        format!("submission not started after {} deliveries: {e}", m.delivered)
    } else {
        format!("submission refused: {e}")
    };
    dead_letter(bus, "submit", m, &reason).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_with_a_bounded_printable_reason() {
        assert!(check_id("book id", "b-1_x").is_ok());
        let e = check_id("book id", "a.b").unwrap_err();
        assert!(e.starts_with("invalid book id \"a.b\""), "{e}");
        let e = check_id("step id", &format!("{}\n", "x".repeat(500))).unwrap_err();
        assert!(e.len() < 200 && !e.contains('\n'), "{e}");
        assert!(check_id("book id", "").is_err());
    }

    fn load(waiting: u64, running: u64, results: u64) -> Option<Load> {
        Some(Load { steps: StepLoad { waiting, running }, results })
    }

    #[test]
    fn room_goes_by_the_cap_and_by_the_work_waiting() {
        let all = |n| Some((Room::All, n));
        let priority = |n| Some((Room::Priority, n));
        // The cap alone (no limit, or a load the transport cannot tell).
        assert_eq!(room(0, 100, None, 32), all(ADMIT_BATCH));
        assert_eq!(room(90, 100, None, 32), all(10));
        assert_eq!(room(100, 100, load(0, 0, 0), 32), priority(10), "at the cap: the headroom");
        assert_eq!(room(105, 100, None, 32), priority(5));
        assert_eq!(room(110, 100, None, 32), None);
        assert_eq!(room(5, 100, load(500, 0, 500), 0), all(ADMIT_BATCH), "limit 0: no gate");
        assert_eq!(room(5, 0, None, 0), all(ADMIT_BATCH), "no cap");
        // By demand: no more normal books than the load has room for; none when it has none,
        // while priority books keep their headroom.
        assert_eq!(room(10, 100, load(0, 0, 0), 32), all(ADMIT_BATCH));
        assert_eq!(room(10, 100, load(30, 4, 0), 32), all(2), "steps waiting");
        assert_eq!(room(10, 100, load(0, 4, 29), 32), all(3), "results in hand");
        assert_eq!(room(10, 100, load(20, 4, 10), 32), all(2), "both");
        assert_eq!(room(95, 100, load(20, 4, 0), 32), all(5), "the cap still binds");
        assert_eq!(room(10, 100, load(32, 4, 0), 32), priority(ADMIT_BATCH));
        assert_eq!(room(10, 100, load(0, 4, 32), 32), priority(ADMIT_BATCH));
        assert_eq!(room(100, 100, load(32, 0, 0), 32), priority(10));
        assert_eq!(room(10, 100, load(u64::MAX, 0, 0), 32), priority(ADMIT_BATCH));
        assert_eq!(room(10, 0, load(40, 0, 0), 32), priority(ADMIT_BATCH), "no cap, by demand");
        assert_eq!(room(10, 0, load(31, 0, 0), 32), all(1));
        // A wide fleet at work keeps a step waiting for each agent at work.
        assert_eq!(room(60, 100, load(100, 112, 0), 32), all(12));
        assert_eq!(room(60, 100, load(112, 112, 0), 32), priority(ADMIT_BATCH));
        assert_eq!(room(60, 100, load(80, 112, 32), 32), priority(ADMIT_BATCH), "with results");
    }

    #[test]
    fn transient_failures_back_off_up_to_half_a_minute() {
        let delays: Vec<u64> = (1..=9).map(|n| redelivery_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30, 30]);
    }
}
