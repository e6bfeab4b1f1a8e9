//! Raw JetStream round trips, the yardstick `scriptorium bench` sets Scriptorium's steps beside:
//! what one step costs at the transport level and nothing else, on two streams of its own,
//! pipelined as well as JetStream allows. This is the floor Scriptorium's own figure is a share
//! of: steps published without waiting for each PubAck (the acks are awaited together, with the
//! asked number of round trips in flight), [`PULLERS`] pullers on each stream, and a "worker"
//! that publishes a result per step, acknowledging the step once the result's PubAck came, as
//! Scriptorium's workers do.

use super::super::{BusError, RoundTrips};
use super::NatsBus;
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// The streams (name, subject) of the steps and of the results, deleted before and after.
const STREAMS: [(&str, &str); 2] =
    [("BENCH_RAW_STEPS", "bench.raw.steps"), ("BENCH_RAW_RESULTS", "bench.raw.results")];

/// Sequential round trips measured for the median.
const SEQUENTIAL: usize = 200;

/// Pull subscriptions on each of the two streams' consumers.
pub(crate) const PULLERS: usize = 4;

/// A message with a unique id, as Scriptorium publishes (JetStream checks it for duplicates).
fn message(payload: &Bytes, id: String) -> PublishMessage {
    PublishMessage::build().payload(payload.clone()).message_id(id)
}

impl NatsBus {
    pub(crate) async fn raw_round_trips(
        &self,
        messages: usize,
        concurrency: usize,
    ) -> Result<RoundTrips, BusError> {
        let concurrency = concurrency.max(1);
        let js = &self.js;
        let batch = concurrency.div_ceil(PULLERS).max(1);
        let steps = work_queue(js, STREAMS[0], batch).await?;
        let results = work_queue(js, STREAMS[1], batch).await?;
        let mut tasks = JoinSet::new();
        // The "workers": pull a step, publish a result, acknowledge the step once the result's
        // PubAck came (each in a task of its own, so the acks are awaited together).
        for mut steps in steps {
            let js = js.clone();
            tasks.spawn(async move {
                let mut n = 0u64;
                while let Some(Ok(m)) = steps.next().await {
                    n += 1;
                    let id = format!("r{n}.{}", m.info().map_or(0, |i| i.stream_sequence));
                    let ack = js.send_publish(STREAMS[1].1, message(&m.payload, id)).await;
                    tokio::spawn(async move {
                        if let Ok(ack) = ack
                            && ack.await.is_ok()
                        {
                            let _ = m.ack().await;
                        }
                    });
                }
            });
        }
        // The "coordinator": pull and acknowledge each result, and count it.
        let (got, received) = mpsc::unbounded_channel();
        for mut results in results {
            let got = got.clone();
            tasks.spawn(async move {
                while let Some(Ok(m)) = results.next().await {
                    let _ = m.ack().await;
                    if got.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        let measured = measure(js, received, messages, concurrency).await;
        tasks.abort_all();
        for (name, _) in STREAMS {
            let _ = js.delete_stream(name).await;
        }
        measured
    }
}

/// A fresh work-queue stream `(name, subject)` and [`PULLERS`] pull subscriptions of its
/// durable consumer.
async fn work_queue(
    js: &jetstream::Context,
    (name, subject): (&str, &str),
    batch: usize,
) -> Result<Vec<consumer::pull::Stream>, BusError> {
    let op = || format!("raw round trips: stream {name}");
    let _ = js.delete_stream(name).await;
    let stream = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::nats(op(), &e))?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::nats(op(), &e))?;
    let mut pullers = Vec::with_capacity(PULLERS);
    for _ in 0..PULLERS {
        let messages = consumer.stream().max_messages_per_batch(batch).messages().await;
        pullers.push(messages.map_err(|e| BusError::nats(op(), &e))?);
    }
    Ok(pullers)
}

/// The sequential median (publish, PubAck, result back), then the rate of `messages` round
/// trips with `concurrency` in flight, their PubAcks awaited together.
async fn measure(
    js: &jetstream::Context,
    mut received: mpsc::UnboundedReceiver<()>,
    messages: usize,
    concurrency: usize,
) -> Result<RoundTrips, BusError> {
    let payload = Bytes::from(vec![b'x'; 2048]);
    let op = "raw round trips: publish";
    let ended = || BusError::Unavailable {
        op: "raw round trips: pull a result".into(),
        detail: "results stream ended".into(),
    };
    let mut sequential = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let t = Instant::now();
        let ack = js.send_publish(STREAMS[0].1, message(&payload, format!("s{i}"))).await;
        ack.map_err(|e| BusError::nats(op, &e))?.await.map_err(|e| BusError::nats(op, &e))?;
        received.recv().await.ok_or_else(ended)?;
        sequential.push(t.elapsed().as_secs_f64() * 1e6);
    }
    sequential.sort_by(f64::total_cmp);
    let p50_us = sequential[((SEQUENTIAL - 1) as f64 * 0.5).round() as usize];
    let window = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let publisher = {
        let (js, payload, window) = (js.clone(), payload.clone(), window.clone());
        tokio::spawn(async move {
            let mut acks = JoinSet::new();
            for i in 0..messages {
                let permit = window.acquire().await.map_err(|_| BusError::Closed)?;
                permit.forget();
                let ack = js.send_publish(STREAMS[0].1, message(&payload, format!("p{i}"))).await;
                let ack = ack.map_err(|e| BusError::nats(op, &e))?;
                acks.spawn(async move { ack.await.map_err(|e| BusError::nats(op, &e)) });
                // Reaped as they come, so a failed PubAck stops the run early.
                while let Some(done) = acks.try_join_next() {
                    done.map_err(|_| BusError::Closed)??;
                }
            }
            while let Some(done) = acks.join_next().await {
                done.map_err(|_| BusError::Closed)??;
            }
            Ok::<(), BusError>(())
        })
    };
    for _ in 0..messages {
        received.recv().await.ok_or_else(ended)?;
        window.add_permits(1);
    }
    let per_sec = messages as f64 / started.elapsed().as_secs_f64();
    publisher.await.map_err(|_| BusError::Closed)??;
    Ok(RoundTrips { per_sec, p50_us })
}
