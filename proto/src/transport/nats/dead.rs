//! The dead-letter stream over NATS: `SCRIPTORIUM_DEAD`, limits retention, one subject per
//! queue (`scriptorium.dead.<queue>`), the reason in the `Scriptorium-Reason` header.

use super::super::{BusError, DeadLetter, Queue, Rejection};
use super::{NatsBus, retrying};
use crate::names;
use async_nats::jetstream::consumer;
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;

/// Header holding why a message was given up.
const REASON: &str = "Scriptorium-Reason";

/// The queue name in a dead letter's subject.
fn queue_of(subject: &str) -> String {
    subject.trim_start_matches(names::DEAD_PREFIX).trim_start_matches('.').to_string()
}

fn reason_of(headers: Option<&async_nats::HeaderMap>) -> String {
    headers.and_then(|h| h.get(REASON)).map(|v| v.to_string()).unwrap_or_default()
}

impl NatsBus {
    async fn dead_stream(&self, op: &str) -> Result<Stream, BusError> {
        self.js.get_stream(names::DEAD_STREAM).await.map_err(|e| BusError::nats(op, &e))
    }

    pub(crate) async fn dead_letter(
        &self,
        queue: &str,
        payload: Bytes,
        reason: &str,
    ) -> Result<(), BusError> {
        let mut headers = async_nats::HeaderMap::new();
        // Header values must be one line.
        headers.insert(REASON, reason.replace(['\r', '\n'], " ").as_str());
        let op = || format!("dead letter from {queue}");
        let ack = self
            .js
            .publish_with_headers(names::dead_subject(queue), headers, payload)
            .await
            .map_err(|e| BusError::nats(op(), &e))?;
        ack.await.map_err(|e| BusError::nats(op(), &e))?;
        Ok(())
    }

    pub(crate) async fn dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        let op = "read dead letters";
        let stream = self.dead_stream(op).await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await
            .map_err(|e| BusError::nats(op, &e))?;
        let mut out = Vec::new();
        let pending = stream.get_info().await.map_err(|e| BusError::nats(op, &e))?.state.messages;
        if pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(|e| BusError::nats(op, &e))?;
        while (out.len() as u64) < pending {
            let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await
            else {
                break;
            };
            let m = m.map_err(|e| BusError::nats(op, &e))?;
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            out.push(DeadLetter {
                seq,
                queue: queue_of(m.subject.as_str()),
                reason: reason_of(m.headers.as_ref()),
                payload: m.payload.clone(),
            });
        }
        Ok(out)
    }

    pub(crate) async fn dead_letter_at(&self, seq: u64) -> Result<Option<DeadLetter>, BusError> {
        let op = format!("read dead letter {seq}");
        let stream = self.dead_stream(&op).await?;
        match stream.get_raw_message(seq).await {
            Ok(m) => Ok(Some(DeadLetter {
                seq,
                queue: queue_of(m.subject.as_str()),
                reason: reason_of(Some(&m.headers)),
                payload: m.payload,
            })),
            Err(e) => match BusError::nats(op, &e) {
                e if e.rejection() == Some(Rejection::NotFound) => Ok(None),
                e => Err(e),
            },
        }
    }

    pub(crate) async fn purge_dead_letters(&self, queue: Option<&str>) -> Result<u64, BusError> {
        let op = format!("purge dead letters of {}", queue.unwrap_or("every queue"));
        let stream = self.dead_stream(&op).await?;
        let purge = stream.purge();
        let done = match queue {
            Some(q) => purge.filter(names::dead_subject(q)).await,
            None => purge.await,
        };
        Ok(done.map_err(|e| BusError::nats(op, &e))?.purged)
    }

    pub(crate) async fn replay_dead_letter(
        &self,
        seq: u64,
        queue: Queue,
        subject_key: &str,
    ) -> Result<(), BusError> {
        let op = format!("replay dead letter {seq}");
        let Some(letter) = self.dead_letter_at(seq).await? else {
            return Err(BusError::rejected(op, Rejection::NotFound, "no such dead letter".into()));
        };
        self.publish(queue, subject_key, &format!("replay.{seq}"), letter.payload).await?;
        let stream = self.dead_stream(&op).await?;
        retrying(self.opts.publish_retry, "delete dead letter", || async {
            match stream.delete_message(seq).await {
                Ok(_) => Ok(()),
                Err(e) => match BusError::nats(op.clone(), &e) {
                    // Deleted meanwhile (by a replay or a purge running beside this one).
                    e if e.rejection() == Some(Rejection::NotFound) => Ok(()),
                    e => Err(e),
                },
            }
        })
        .await
    }
}
