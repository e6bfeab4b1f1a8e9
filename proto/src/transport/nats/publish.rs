//! Pipelined publishing: a publish returns once its message is handed to the connection, and a
//! task of its own awaits the PubAck, so many publishes wait for their acks together. At most
//! [`WINDOW`] publishes of one connection are unacknowledged at a time; the next waits for room.
//!
//! Nothing is lost silently: a publish whose PubAck fails or times out is published again with
//! the same message id (JetStream's duplicate window makes a copy of one that did land a no-op)
//! until it is acknowledged or the publish retry budget is spent, and only then does its
//! [`Published`] report the error, to a caller that still holds what it published (a step that
//! stays unacknowledged and is redelivered, an actor that fails and is reloaded).

use super::super::{BusError, Published};
use super::{NatsBus, retrying};
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

/// Publishes of one connection whose PubAck is awaited at a time.
pub(crate) const WINDOW: usize = 512;

/// The room for unacknowledged publishes of one connection.
pub(crate) fn window() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(WINDOW))
}

fn message(payload: &Bytes, msg_id: &str) -> PublishMessage {
    PublishMessage::build().payload(payload.clone()).message_id(msg_id)
}

/// Publishes and awaits the PubAck, again and again on transient failures for `budget`.
pub(super) async fn confirmed(
    js: &jetstream::Context,
    subject: &str,
    msg_id: &str,
    payload: &Bytes,
    budget: Duration,
) -> Result<(), BusError> {
    let op = || format!("publish to {subject}");
    retrying(budget, "publish", || async {
        let ack = js
            .send_publish(subject.to_string(), message(payload, msg_id))
            .await
            .map_err(|e| BusError::nats(op(), &e))?;
        ack.await.map_err(|e| BusError::nats(op(), &e))?;
        Ok(())
    })
    .await
}

impl NatsBus {
    /// Hands `payload` to the connection (waiting for room in the window) and returns what
    /// reports its PubAck.
    pub(crate) async fn publish_pipelined(
        &self,
        subject: String,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        let permit = self.window.clone().acquire_owned().await.map_err(|_| BusError::Closed)?;
        let first = self.js.send_publish(subject.clone(), message(&payload, msg_id)).await;
        let (js, budget, msg_id) = (self.js.clone(), self.opts.publish_retry, msg_id.to_string());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let op = || format!("publish to {subject}");
            let acked = match first {
                Ok(ack) => ack.await.map_err(|e| BusError::nats(op(), &e)),
                Err(e) => Err(BusError::nats(op(), &e)),
            };
            let outcome = match acked {
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, subject = %subject, "publish not acknowledged; publishing again");
                    confirmed(&js, &subject, &msg_id, &payload, budget).await
                }
                other => other.map(|_| ()),
            };
            drop(permit);
            // Nobody waiting is the caller's choice (it dropped its `Published`).
            let _ = tx.send(outcome);
        });
        Ok(Published::pending(rx))
    }
}
