//! The book actor: owns one book's record, dispatches its ready steps, validates every result
//! and accepts each step at most once, then assembles the book.

mod control;
mod skip;
mod slim;
mod spend;
mod task;
pub(crate) mod trust;
mod writer;

use crate::Env;
use crate::assembly;
use crate::plan::{ASSEMBLY, PlannedStep};
use crate::record::{BookRecord, Status, StepStatus, output_key};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use scriptorium_common::cache::{self, CachedAnswer};
use scriptorium_contracts::kinds;
use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::Queue;
use scriptorium_proto::v1::{AgentKind, BookEvent, Failure, StepResult, StepTask};
use scriptorium_proto::{clock, names};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The book actor behaviour.
pub struct Book;

/// Arguments of a book actor.
pub struct BookArgs {
    /// Shared coordinator environment.
    pub env: Arc<Env>,
    /// The record to start from (new, or loaded for a resume).
    pub record: Box<BookRecord>,
}

/// State of a book actor.
pub struct BookState {
    env: Arc<Env>,
    rec: BookRecord,
    /// The accepted chapter texts, prepared for validation; told of every output set or
    /// removed ([`BookState::put_output`]).
    prose: crate::continuity::Prose,
    /// The deadline timer of each running step's attempt, aborted once the step stops running
    /// and when the book stops: a timer left to sleep out `step_timeout_secs` (15 minutes)
    /// kept a task and the actor's cell alive for every step dispatched in that time.
    deadlines: HashMap<String, tokio::task::AbortHandle>,
    /// Accepted chapter texts held without their prose (see `slim.rs`).
    slim: std::collections::BTreeSet<String>,
    /// Outputs accepted since the last store ([`BookState::put_output`]), sent with it and
    /// before its record's writes, so a stored record never counts an output the store lacks.
    puts: Vec<(String, crate::record::Doc)>,
    /// Writes the record's stores and the book's events in order, off this actor's path.
    writer: writer::Writer,
}

/// Messages a book actor understands.
pub enum BookMsg {
    /// A result for one of this book's steps; the reply comes once it is handled and stored.
    Result {
        /// The result.
        result: Box<StepResult>,
        /// Answered when the result is handled (accepted, rejected or ignored).
        reply: Option<RpcReplyPort<()>>,
    },
    /// An operator's command (approve, reject, edit, cancel, pause, resume).
    Command {
        /// The command.
        command: Box<crate::control::Command>,
        /// Answered once it is applied and stored (`Err`: refused, with the reason).
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// The publish of an attempt was not acknowledged by JetStream, even after the transport's
    /// retries: the step is asked again as if the attempt had failed.
    Unpublished {
        /// The step.
        step_id: String,
        /// The attempt whose message may never have reached its queue.
        attempt: u32,
        /// What the transport said.
        error: String,
    },
    /// The deadline of an attempt passed.
    Deadline {
        /// The step.
        step_id: String,
        /// The attempt that timed out.
        attempt: u32,
    },
    /// A write of the record failed (after the transport's retries): the actor fails and is
    /// reloaded from what landed.
    Unstored {
        /// What failed.
        error: String,
    },
}

impl Actor for Book {
    type Msg = BookMsg;
    type State = BookState;
    type Arguments = BookArgs;

    async fn pre_start(
        &self,
        me: ActorRef<BookMsg>,
        args: BookArgs,
    ) -> Result<BookState, ActorProcessingErr> {
        let mut rec = *args.record;
        // A resumed book: read back the outputs of its accepted steps (usually loaded already
        // by whoever started the book; this only reads what is still missing).
        crate::record::load_outputs(&args.env.bus, &mut rec).await?;
        let writer = writer::Writer::start(args.env.bus.clone(), move |error| {
            let _ = me.cast(BookMsg::Unstored { error });
        });
        Ok(BookState {
            env: args.env,
            rec,
            prose: Default::default(),
            deadlines: HashMap::new(),
            slim: Default::default(),
            puts: Vec::new(),
            writer,
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<BookMsg>,
        st: &mut BookState,
    ) -> Result<(), ActorProcessingErr> {
        let started = st.start(&me).await;
        st.settle_on_error(started).await
    }

    async fn handle(
        &self,
        me: ActorRef<BookMsg>,
        msg: BookMsg,
        st: &mut BookState,
    ) -> Result<(), ActorProcessingErr> {
        let handled = st.handle(&me, msg).await;
        st.settle_on_error(handled).await
    }

    async fn post_stop(
        &self,
        _me: ActorRef<BookMsg>,
        st: &mut BookState,
    ) -> Result<(), ActorProcessingErr> {
        st.drop_deadlines(true);
        // The book is over only once its last writes landed (whoever waits for its actor to
        // end reads them next).
        if let Err(e) = st.writer.landed().await {
            tracing::warn!(book_id = %st.rec.id, error = %e, "book stopped with writes lost");
        }
        Ok(())
    }
}

impl BookState {
    /// `outcome`, once the writes handed over before it failed landed: an actor that fails is
    /// reloaded from the store, which must not change under the reload.
    async fn settle_on_error(
        &mut self,
        outcome: Result<(), ActorProcessingErr>,
    ) -> Result<(), ActorProcessingErr> {
        if outcome.is_err() {
            let _ = self.writer.landed().await;
        }
        outcome
    }

    async fn start(&mut self, me: &ActorRef<BookMsg>) -> Result<(), ActorProcessingErr> {
        let st = self;
        let resumed = st.rec.state != Status::Queued;
        st.rec.set_state(st.rec.held_state(), clock::now_ms());
        if resumed {
            // Steps in flight when the coordinator stopped go out again with the same attempt:
            // JetStream drops the copy if the original is still within the duplicate window,
            // and a second result for the same attempt is ignored.
            let running: Vec<String> = st.rec.running().into_iter().map(str::to_string).collect();
            tracing::info!(book_id = %st.rec.id, steps = running.len(), "resuming book");
            for id in running {
                st.publish(me, &id).await?;
            }
        }
        st.advance(me).await?;
        if st.rec.state.is_final() {
            // Finished at once (nothing fits its budget, say): no message will stop it.
            me.stop(Some(format!("{:?}", st.rec.state)));
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        me: &ActorRef<BookMsg>,
        msg: BookMsg,
    ) -> Result<(), ActorProcessingErr> {
        let st = self;
        match msg {
            BookMsg::Result { result, reply } => {
                let outcome = st.on_result(me, *result).await;
                st.slim();
                // Acknowledged once the store that records it landed.
                if let Some(reply) = reply {
                    st.writer.then(move || {
                        let _ = reply.send(());
                    });
                }
                outcome?;
            }
            BookMsg::Command { command, reply } => {
                let outcome = st.command(me, *command).await?;
                st.writer.then(move || {
                    let _ = reply.send(outcome);
                });
            }
            BookMsg::Unstored { error } => {
                tracing::error!(book_id = %st.rec.id, error = %error, "book record not stored");
                return Err(error.into());
            }
            BookMsg::Unpublished { step_id, attempt, error } => {
                let current = st.rec.steps.get(&step_id).map(|s| (s.status, s.attempt));
                if current == Some((StepStatus::Running, attempt)) && !st.rec.state.is_final() {
                    tracing::warn!(book_id = %st.rec.id, step = %step_id, attempt, error = %error, "step not published");
                    st.retry_or_fail(me, &step_id, format!("step not published: {error}")).await?;
                }
            }
            BookMsg::Deadline { step_id, attempt } => {
                let current = st.rec.steps.get(&step_id).map(|s| (s.status, s.attempt));
                if current == Some((StepStatus::Running, attempt)) && !st.rec.state.is_final() {
                    tracing::warn!(book_id = %st.rec.id, step = %step_id, attempt, "step timed out");
                    crate::metrics::step_timed_out(&st.rec, &step_id);
                    st.cancel(&step_id, attempt).await;
                    st.retry_or_fail(
                        me,
                        &step_id,
                        format!("no result within {}s", st.env.cfg.step_timeout_secs),
                    )
                    .await?;
                }
            }
        }
        st.drop_deadlines(false);
        if st.rec.state.is_final() {
            me.stop(Some(format!("{:?}", st.rec.state)));
        }
        Ok(())
    }
    /// Aborts the deadline timers of steps no longer running (`all`: every timer).
    fn drop_deadlines(&mut self, all: bool) {
        let steps = &self.rec.steps;
        self.deadlines.retain(|id, timer| {
            let keep = !all && steps.get(id).is_some_and(|s| s.status == StepStatus::Running);
            if !keep {
                timer.abort();
            }
            keep
        });
    }

    /// Holds `step`'s accepted output; the record's next store sends it, after the steps it
    /// lets go are published (so their messages reach the queues first) and before the record
    /// that counts it: a coordinator that dies in between has stored neither the output nor
    /// the record, and handles the result again.
    fn put_output(&mut self, step: &str, doc: crate::record::Doc) {
        self.puts.push((step.to_string(), doc.clone()));
        self.rec.outputs.insert(step.to_string(), doc);
        self.prose.set(&self.rec, step);
    }

    /// The outputs held for the next store, sent now.
    fn send_puts(&mut self) -> Vec<writer::OutputPut> {
        let bus = &self.env.bus;
        let id = &self.rec.id;
        self.puts
            .drain(..)
            .map(|(step, doc)| writer::put_output(bus, output_key(id, &step), doc.to_vec()))
            .collect()
    }

    /// Removes `step`'s accepted output (in memory).
    fn remove_output(&mut self, step: &str) {
        self.rec.outputs.remove(step);
        self.prose.removed(step);
    }

    #[tracing::instrument(skip_all, fields(book_id = %r.book_id, step = %r.step_id, kind = scriptorium_proto::kind::name(r.kind()), attempt = r.attempt))]
    async fn on_result(
        &mut self,
        me: &ActorRef<BookMsg>,
        r: StepResult,
    ) -> Result<(), ActorProcessingErr> {
        let env = self.env.clone();
        let stats = &env.stats;
        if let Some(reason) = trust::never_dispatched(&self.rec, &r) {
            stats.ignored.fetch_add(1, Ordering::Relaxed);
            if trust::unrecorded_dispatch(&self.rec, &r) {
                return self.skip_unrecorded_attempt(&r).await;
            }
            trust::refuse(&self.env.bus, &r, &reason).await;
            return Ok(());
        }
        self.check_worker(&r);
        let Some(step) = self.rec.steps.get(&r.step_id) else {
            stats.ignored.fetch_add(1, Ordering::Relaxed);
            crate::metrics::result_ignored(&r);
            tracing::warn!(book_id = %r.book_id, step = %r.step_id, "result for an unknown step ignored");
            self.release_lease(&r).await;
            return Ok(());
        };
        if self.rec.state.is_final()
            || step.status != StepStatus::Running
            || step.attempt != r.attempt
        {
            // Duplicate, late, or for a superseded attempt.
            stats.ignored.fetch_add(1, Ordering::Relaxed);
            crate::metrics::result_ignored(&r);
            tracing::debug!(book_id = %r.book_id, step = %r.step_id, attempt = r.attempt, current = step.attempt, "result ignored");
            return self.on_ignored(&r).await;
        }
        let Some(planned) = self.rec.plan.get(&r.step_id).cloned() else { return Ok(()) };
        let usage = r.usage.unwrap_or_default();
        crate::record::charge(&mut self.rec, &r);
        if let Some(reason) = self.overspent() {
            self.release_lease(&r).await;
            let reason = format!("{reason} at step {}", r.step_id);
            return self.finish(Status::Failed, Some(reason)).await;
        }
        if r.status != scriptorium_proto::v1::StepStatus::Ok as i32 {
            self.release_lease(&r).await;
        }
        if r.status == scriptorium_proto::v1::StepStatus::DeadLettered as i32 {
            if let Some(s) = self.rec.steps.get_mut(&r.step_id) {
                s.status = StepStatus::Failed;
                s.rejections.push(r.error.clone());
            }
            let reason = format!(
                "step {} dead-lettered: {} (scriptorium retry {} puts it back)",
                r.step_id, r.error, self.rec.id
            );
            return self.finish(Status::Failed, Some(reason)).await;
        }
        if r.status != scriptorium_proto::v1::StepStatus::Ok as i32 {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            // A worker that predates typed failures sends only the text: retried, as before.
            let failure = r.failure.clone().unwrap_or_else(|| {
                Failure::new(scriptorium_proto::v1::FailureCause::Unspecified, r.error.clone())
            });
            crate::metrics::step_failed(&self.rec, &r.step_id, &failure);
            if failure.cause().is_permanent() {
                return self.fail_fast(&r.step_id, &failure).await;
            }
            return self.retry_or_fail(me, &r.step_id, format!("worker error: {failure}")).await;
        }
        let Ok(spec) = kinds::agent(planned.kind) else {
            // The plan's own assembly step is never dispatched, so no worker answers it.
            tracing::warn!(book_id = %r.book_id, step = %r.step_id, "result for the coordinator's own step ignored");
            return self.on_ignored(&r).await;
        };
        self.prose_ready().await?;
        match self.prose.validate(&self.rec, &planned, spec, &r.output) {
            Ok(doc) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                // The answer goes into the shared cache (and its lease ends) while the step is
                // marked done, the next steps go out and the actor takes its next message: off
                // the steps' path, and still finished before the record's next store lands and
                // the result is acknowledged (the writer waits for it).
                if !r.cache_key.is_empty() && !r.cache_hit {
                    let answer = CachedAnswer {
                        output: r.output.clone(),
                        route: r.route.clone(),
                        dialect: r.dialect.clone(),
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                    };
                    let (bus, key) = (self.env.bus.clone(), r.cache_key.clone());
                    self.writer.after(tokio::spawn(async move {
                        cache::store_accepted(&bus, &key, &answer).await;
                    }));
                }
                self.accept(me, &r, &planned, doc).await
            }
            Err(rej) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                crate::metrics::step_rejected(&self.rec, &r.step_id, &rej.rule);
                if !r.cache_key.is_empty() {
                    // Whether it came from the cache or not, it must never be served again.
                    cache::evict_rejected(&self.env.bus, &r.cache_key).await;
                }
                tracing::info!(book_id = %self.rec.id, step = %r.step_id, attempt = r.attempt, rule = %rej.rule, "result rejected");
                // What the model wrote, for an operator asking why (workers redacted it).
                tracing::debug!(book_id = %self.rec.id, step = %r.step_id, attempt = r.attempt, output = %r.output, "rejected output");
                self.retry_or_fail(me, &r.step_id, rej.rule).await
            }
        }
    }

    /// Accepts `r`, whose output validated as `doc`: stores the output, marks the step done and
    /// moves the book on.
    async fn accept(
        &mut self,
        me: &ActorRef<BookMsg>,
        r: &StepResult,
        planned: &PlannedStep,
        doc: serde_json::Value,
    ) -> Result<(), ActorProcessingErr> {
        self.rec.accepted_results += 1;
        if planned.kind == AgentKind::Concept {
            self.rec.title = doc["title"].as_str().unwrap_or_default().to_string();
        }
        self.put_output(&r.step_id, doc.into());
        if let Some(s) = self.rec.steps.get_mut(&r.step_id) {
            s.status = StepStatus::Done;
            s.finished_us = clock::now_us();
            s.worker_ms = r.duration_ms;
            s.route = r.route.clone();
            s.dialect = r.dialect.clone();
            s.worker = r.worker_id.clone();
            s.cache_hit = r.cache_hit;
            s.cache_key = r.cache_key.clone();
        }
        self.gate(&r.step_id);
        crate::metrics::step_accepted(&self.rec, &r.step_id);
        if planned.kind == AgentKind::Review {
            self.skip_needless_edit(planned.chapter).await?;
        }
        self.advance(me).await
    }

    /// Fails a step at once on a failure another attempt cannot mend (a refused key, an unknown
    /// model or provider): the worker already tried the step's fallback routes. The book fails
    /// with the provider's own message; `retry` after the cause is fixed puts it back.
    async fn fail_fast(
        &mut self,
        step_id: &str,
        failure: &Failure,
    ) -> Result<(), ActorProcessingErr> {
        let cause = failure.cause().label();
        let reason = format!("{cause}: {failure}");
        let Some(s) = self.rec.steps.get_mut(step_id) else { return Ok(()) };
        s.rejections.push(format!("worker error: {reason}"));
        s.status = StepStatus::Failed;
        tracing::warn!(book_id = %self.rec.id, step = %step_id, cause, "permanent failure; no further attempt");
        let failure = format!(
            "step {step_id} failed ({cause}, not retried): {failure} (fix the cause, then `scriptorium retry {}`)",
            self.rec.id
        );
        self.finish(Status::Failed, Some(failure)).await
    }

    /// Records a failed attempt; asks again with the reason as feedback, or fails the book.
    async fn retry_or_fail(
        &mut self,
        me: &ActorRef<BookMsg>,
        step_id: &str,
        reason: String,
    ) -> Result<(), ActorProcessingErr> {
        let Some(s) = self.rec.steps.get_mut(step_id) else { return Ok(()) };
        s.rejections.push(reason.clone());
        let planned = self.rec.plan.get(step_id).map(|p| (p.kind, p.chapter));
        let allowed = match planned {
            Some((AgentKind::Edit, _)) => self.env.cfg.edit_attempts,
            _ => self.env.cfg.max_attempts,
        };
        if s.attempt - s.retry_base.min(s.attempt) >= allowed {
            let failure = format!("step {step_id} failed after {} attempts: {reason}", s.attempt);
            if let Some((AgentKind::Edit, n)) = planned
                && self.keep_draft(n, failure.clone()).await?
            {
                return self.advance(me).await;
            }
            if let Some(s) = self.rec.steps.get_mut(step_id) {
                s.status = StepStatus::Failed;
            }
            return self.finish(Status::Failed, Some(failure)).await;
        }
        self.dispatch(me, step_id).await?;
        if let Some(reason) = self.starved() {
            return self.finish(Status::Failed, Some(reason)).await;
        }
        self.store()
    }

    /// Dispatches every pending step whose inputs are accepted; assembles when all are done. A
    /// held book (awaiting approval, paused) dispatches nothing.
    async fn advance(&mut self, me: &ActorRef<BookMsg>) -> Result<(), ActorProcessingErr> {
        if self.rec.state.is_held() {
            self.store()?;
            self.event("");
            return Ok(());
        }
        // Assembly recorded done in a book not finished (its coordinator stopped between the
        // two stores) is run again: the book's directory is replaced whole.
        let unfinished = !self.rec.state.is_final();
        let ready: Vec<PlannedStep> = self
            .rec
            .plan
            .steps
            .iter()
            .filter(|p| {
                self.rec.steps.get(&p.id).is_some_and(|s| {
                    s.status == StepStatus::Pending
                        || (unfinished && p.id == ASSEMBLY && s.status == StepStatus::Done)
                })
            })
            .filter(|p| {
                p.deps
                    .iter()
                    .all(|d| self.rec.steps.get(d).is_some_and(|s| s.status == StepStatus::Done))
            })
            .cloned()
            .collect();
        for p in &ready {
            if p.id == ASSEMBLY {
                return self.assemble().await;
            }
            self.dispatch(me, &p.id).await?;
        }
        if let Some(reason) = self.starved() {
            return self.finish(Status::Failed, Some(reason)).await;
        }
        self.store()?;
        self.event("");
        Ok(())
    }

    async fn dispatch(
        &mut self,
        me: &ActorRef<BookMsg>,
        step_id: &str,
    ) -> Result<(), ActorProcessingErr> {
        if self.rec.state.is_held() {
            // Asked again once the book is released.
            if let Some(s) = self.rec.steps.get_mut(step_id) {
                s.status = StepStatus::Pending;
            }
            return Ok(());
        }
        if !self.reserve(step_id) {
            return Ok(());
        }
        let Some(s) = self.rec.steps.get_mut(step_id) else { return Ok(()) };
        s.attempt += 1;
        s.status = StepStatus::Running;
        s.dispatched_us = clock::now_us();
        self.publish(me, step_id).await
    }

    /// Publishes the current attempt of `step_id` and arms its deadline.
    #[tracing::instrument(skip_all, fields(book_id = %self.rec.id, step = %step_id, kind = self.rec.plan.get(step_id).map_or("unknown", |p| scriptorium_proto::kind::name(p.kind)), attempt = self.rec.steps.get(step_id).map_or(0, |s| s.attempt)))]
    async fn publish(
        &mut self,
        me: &ActorRef<BookMsg>,
        step_id: &str,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(planned) = self.rec.plan.get(step_id) {
            let inputs = slim::prose_inputs(planned);
            self.unslim(inputs).await?;
        }
        let task = self.task(step_id)?;
        let msg_id = names::step_msg_id(&task.book_id, &task.step_id, task.attempt);
        let queue = if crate::brief::is_priority(&self.rec.brief) {
            Queue::PrioritySteps(task.kind())
        } else {
            Queue::Steps(task.kind())
        };
        // Handed to the connection without waiting for the PubAck, so the book's ready steps
        // go out together and its actor goes on; a PubAck that never comes (after the
        // transport's own retries) comes back as `Unpublished`.
        let published =
            self.env.bus.enqueue(queue, "", &msg_id, task.encode_to_vec().into()).await?;
        self.env.stats.dispatched.fetch_add(1, Ordering::Relaxed);
        crate::metrics::step_dispatched(&task);
        let (step_id, attempt) = (task.step_id.clone(), task.attempt);
        let book = me.clone();
        let unpublished = step_id.clone();
        tokio::spawn(async move {
            if let Err(e) = published.confirmed().await {
                let error = e.to_string();
                let _ = book.cast(BookMsg::Unpublished { step_id: unpublished, attempt, error });
            }
        });
        let id = step_id.clone();
        let timer = me.send_after(Duration::from_secs(self.env.cfg.step_timeout_secs), move || {
            BookMsg::Deadline { step_id, attempt }
        });
        if let Some(old) = self.deadlines.insert(id, timer.abort_handle()) {
            old.abort();
        }
        Ok(())
    }

    /// The message of `step_id`'s current attempt; only agent steps are ever dispatched.
    fn task(&self, step_id: &str) -> Result<StepTask, ActorProcessingErr> {
        let kind = self.rec.plan.get(step_id).map(|p| p.kind).unwrap_or_default();
        let spec = kinds::agent(kind).map_err(|e| format!("step {step_id}: {e}"))?;
        Ok(task::step_task(&self.rec, &self.env.cfg, step_id, spec))
    }

    async fn assemble(&mut self) -> Result<(), ActorProcessingErr> {
        // Its texts are read back and written out only when it is this book's turn.
        let env = self.env.clone();
        let permit = env.assemblies.acquire().await?;
        // book.json records the assembly as done, so mark it before writing.
        if let Some(s) = self.rec.steps.get_mut(ASSEMBLY) {
            s.status = StepStatus::Done;
            s.attempt = 1;
            s.dispatched_us = clock::now_us();
            s.finished_us = s.dispatched_us;
        }
        self.rec.finished_ms = clock::now_ms();
        self.unslim_all().await?;
        let rec = self.rec.clone();
        let out = self.env.cfg.out_dir.clone();
        let written = tokio::task::spawn_blocking(move || assembly::assemble(&rec, &out)).await?;
        drop(permit);
        match written {
            Ok(dir) => {
                self.rec.output_dir = dir.display().to_string();
                self.finish(Status::Done, None).await
            }
            Err(e) => {
                if let Some(s) = self.rec.steps.get_mut(ASSEMBLY) {
                    s.status = StepStatus::Failed;
                }
                self.finish(
                    Status::Failed,
                    Some(format!("step assembly: cannot write the book: {e}")),
                )
                .await
            }
        }
    }

    async fn finish(
        &mut self,
        state: Status,
        failure: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        if state != Status::Done {
            self.cancel_running().await;
        }
        self.rec.set_state(state, clock::now_ms());
        self.rec.failure = failure.clone();
        // A done book keeps the time its assembly stamped on the files it wrote (book.json, the
        // EPUB's modified date), so an export rebuilt from the record is the same bytes.
        if state != Status::Done || self.rec.finished_ms <= 0 {
            self.rec.finished_ms = clock::now_ms();
        }
        match state {
            Status::Done => {
                tracing::info!(book_id = %self.rec.id, dir = %self.rec.output_dir, "book done")
            }
            Status::Cancelled => tracing::warn!(book_id = %self.rec.id, "book cancelled"),
            _ => {
                tracing::warn!(book_id = %self.rec.id, reason = failure.as_deref().unwrap_or(""), "book failed")
            }
        }
        crate::metrics::book_finished(&self.rec);
        self.store()?;
        self.event(failure.as_deref().unwrap_or(""));
        Ok(())
    }

    /// Hands the record's changes (and the outputs put since the last store) to the writer.
    fn store(&mut self) -> Result<(), ActorProcessingErr> {
        let writes = crate::record::prepare(&mut self.rec)?;
        writes.mark(&mut self.rec);
        self.env.stats.stored_bytes.fetch_add(writes.bytes() as u64, Ordering::Relaxed);
        let outputs = self.send_puts();
        self.writer.store(outputs, writes);
        Ok(())
    }

    /// Tells the book's listeners where it is, once the writes before it landed.
    fn event(&self, message: &str) {
        let (done, total) = self.rec.progress();
        let ev = BookEvent {
            book_id: self.rec.id.clone(),
            title: self.rec.title.clone(),
            state: self.rec.state.wire() as i32,
            steps_done: done,
            steps_total: total,
            message: message.into(),
            at_unix_ms: clock::now_ms(),
            output_dir: self.rec.output_dir.clone(),
            usage: Some(self.rec.usage),
        };
        self.writer.event(self.rec.id.clone(), ev.encode_to_vec());
    }
}
