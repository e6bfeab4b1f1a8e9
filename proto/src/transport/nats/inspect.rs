//! Read-only views of the server's state for operators: readiness (the `/readyz` endpoints),
//! each step queue from its stream and durable consumer (`scriptorium queues`, the dashboard)
//! and the submissions waiting for a coordinator (`scriptorium status`, the coordinator's
//! heartbeat).
//!
//! Per agent kind, from the durable consumer `steps-<kind>` on `SCRIPTORIUM_STEPS`: waiting =
//! `num_pending`, in flight = `num_ack_pending`, redelivered = `num_redelivered`, completed =
//! `delivered.consumer_seq - num_ack_pending`, oldest waiting = the first message on the kind's
//! subject after the consumer's last delivered stream sequence. Before any worker created the
//! consumer, every message on the subject is waiting. Dead-lettered = messages on
//! `scriptorium.dead.<kind>`.

use super::super::{BusError, StepLoad, StepQueue};
use super::{NatsBus, role_streams};
use crate::v1::AgentKind;
use crate::{kind, names};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::Stream;
use futures::StreamExt;
use std::collections::HashMap;

impl NatsBus {
    /// Read-only readiness check: connected, and every stream and bucket of this process's role
    /// exists and has a leader (nothing is created here; `connect` did that). Backs the
    /// `/readyz` endpoints.
    pub async fn check_ready(&self) -> Result<(), BusError> {
        let state = self.client.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(BusError::Unavailable {
                op: "readiness".into(),
                detail: format!("connection {state}"),
            });
        }
        // A worker needs only its own streams (the coordinator creates the others).
        for name in role_streams(self.opts.role) {
            let info = self
                .js
                .get_stream(&name)
                .await
                .map_err(|e| BusError::nats(format!("stream {name}"), &e))?;
            let leaderless = info
                .cached_info()
                .cluster
                .as_ref()
                .is_some_and(|c| c.leader.as_deref().unwrap_or("").is_empty());
            if leaderless {
                return Err(BusError::Unavailable {
                    op: format!("stream {name}"),
                    detail: "no leader".into(),
                });
            }
        }
        Ok(())
    }

    pub(crate) async fn step_queues(
        &self,
        kinds: &[AgentKind],
    ) -> Result<Vec<StepQueue>, BusError> {
        let steps = self
            .js
            .get_stream(names::STEPS_STREAM)
            .await
            .map_err(|e| BusError::nats(format!("stream {}", names::STEPS_STREAM), &e))?;
        let on_subject = subject_counts(&steps, format!("{}.*", names::STEPS_PREFIX)).await?;
        let dead = match self.js.get_stream(names::DEAD_STREAM).await {
            Ok(s) => subject_counts(&s, format!("{}.>", names::DEAD_PREFIX)).await?,
            Err(_) => HashMap::new(),
        };
        let mut queues = Vec::with_capacity(kinds.len());
        for &kind in kinds {
            let subject = names::step_subject(kind);
            let mut queue = StepQueue {
                kind,
                waiting: on_subject.get(&subject).copied().unwrap_or(0),
                in_flight: 0,
                redelivered: 0,
                completed: 0,
                dead_lettered: dead
                    .get(&names::dead_subject(kind::name(kind)))
                    .copied()
                    .unwrap_or(0),
                oldest_waiting_unix_ms: None,
            };
            let mut first_waiting = 0;
            let consumer = names::step_consumer(kind);
            match steps.consumer_info(&consumer).await {
                Ok(info) => {
                    queue.waiting = info.num_pending;
                    queue.in_flight = info.num_ack_pending as u64;
                    queue.redelivered = info.num_redelivered as u64;
                    queue.completed = info
                        .delivered
                        .consumer_sequence
                        .saturating_sub(info.num_ack_pending as u64);
                    first_waiting = info.delivered.stream_sequence + 1;
                }
                // No worker ever served this kind: everything on the subject waits.
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {}
                Err(e) => return Err(BusError::nats(format!("consumer {consumer}"), &e)),
            }
            if queue.waiting > 0 {
                queue.oldest_waiting_unix_ms = steps
                    .get_first_raw_message_by_subject(&subject, first_waiting.max(1))
                    .await
                    .ok()
                    .map(|m| (m.time.unix_timestamp_nanos() / 1_000_000) as i64);
            }
            queues.push(queue);
        }
        Ok(queues)
    }
}

impl NatsBus {
    /// Over every step consumer (each kind's normal and priority one), read together: steps not
    /// yet delivered to any worker (`num_pending`; a consumer no worker created yet: every
    /// message on its subject) and delivered and not yet acknowledged (`num_ack_pending`).
    pub(crate) async fn step_load(&self) -> Result<StepLoad, BusError> {
        // A handle without the stream's info: admission reads this every 100 ms while it waits,
        // and only the consumers' counts are needed.
        let op = || format!("stream {}", names::STEPS_STREAM);
        let steps = self
            .js
            .get_stream_no_info(names::STEPS_STREAM)
            .await
            .map_err(|e| BusError::nats(op(), &e))?;
        let queues: Vec<(String, String)> = kind::agents()
            .flat_map(|k| {
                [
                    (names::step_consumer(k), names::step_subject(k)),
                    (names::priority_step_consumer(k), names::priority_step_subject(k)),
                ]
            })
            .collect();
        let infos =
            futures::future::join_all(queues.iter().map(|(c, _)| steps.consumer_info(c))).await;
        let (mut load, mut unserved) = (StepLoad::default(), Vec::new());
        for ((consumer, subject), info) in queues.iter().zip(infos) {
            match info {
                Ok(info) => {
                    load.waiting += info.num_pending;
                    load.running += info.num_ack_pending as u64;
                }
                Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => unserved.push(subject),
                Err(e) => return Err(BusError::nats(format!("consumer {consumer}"), &e)),
            }
        }
        if !unserved.is_empty() {
            let counts = subject_counts(&steps, format!("{}.>", names::STEPS_PREFIX)).await?;
            load.waiting += unserved.iter().filter_map(|s| counts.get(*s)).sum::<u64>();
        }
        Ok(load)
    }

    /// Submissions and operators' commands not yet delivered to any coordinator: the pending
    /// count of the durable consumer `coordinator-submit`, or, before any coordinator created
    /// it, every message of the submit stream.
    pub(crate) async fn submissions_waiting(&self) -> Result<u64, BusError> {
        let op = || format!("stream {}", names::SUBMIT_STREAM);
        let submit =
            self.js.get_stream(names::SUBMIT_STREAM).await.map_err(|e| BusError::nats(op(), &e))?;
        match submit.consumer_info(names::SUBMIT_CONSUMER).await {
            Ok(info) => Ok(info.num_pending),
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
                Ok(submit.cached_info().state.messages)
            }
            Err(e) => Err(BusError::nats(format!("consumer {}", names::SUBMIT_CONSUMER), &e)),
        }
    }
}

/// Messages per subject of `stream` among the subjects `filter` matches, as the server counts
/// them in one answer (paged only beyond 100,000 subjects).
pub(super) async fn subject_counts<I>(
    stream: &Stream<I>,
    filter: String,
) -> Result<HashMap<String, u64>, BusError> {
    let op = || format!("subjects of {filter}");
    let mut out = HashMap::new();
    let mut subjects =
        stream.info_with_subjects(filter.clone()).await.map_err(|e| BusError::nats(op(), &e))?;
    while let Some(s) = subjects.next().await {
        let (subject, n) = s.map_err(|e| BusError::nats(op(), &e))?;
        out.insert(subject, n as u64);
    }
    Ok(out)
}
