//! Raw JetStream round trips, the yardstick `scriptorium bench` sets Scriptorium's steps beside:
//! what one step costs at the transport level and nothing else, on two streams of its own.

use super::super::{BusError, RoundTrips};
use super::NatsBus;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use std::time::Instant;

/// The streams (name, subject) of the steps and of the results, deleted before and after.
const STREAMS: [(&str, &str); 2] =
    [("BENCH_RAW_STEPS", "bench.raw.steps"), ("BENCH_RAW_RESULTS", "bench.raw.results")];

/// Sequential round trips measured for the median.
const SEQUENTIAL: usize = 200;

impl NatsBus {
    pub(crate) async fn raw_round_trips(
        &self,
        messages: usize,
        concurrency: usize,
    ) -> Result<RoundTrips, BusError> {
        let concurrency = concurrency.max(1);
        let js = &self.js;
        let mut steps = work_queue(js, STREAMS[0], concurrency).await?;
        let mut results = work_queue(js, STREAMS[1], concurrency).await?;
        // The "worker": pull a step, publish a result, then acknowledge the step.
        let worker_js = js.clone();
        let worker = tokio::spawn(async move {
            while let Some(Ok(m)) = steps.next().await {
                let js = worker_js.clone();
                tokio::spawn(async move {
                    if let Ok(ack) = js.publish(STREAMS[1].1, m.payload.clone()).await {
                        let _ = ack.await;
                    }
                    let _ = m.ack().await;
                });
            }
        });
        let measured = measure(js, &mut results, messages, concurrency).await;
        worker.abort();
        for (name, _) in STREAMS {
            let _ = js.delete_stream(name).await;
        }
        measured
    }
}

/// A fresh work-queue stream `(name, subject)` and the messages of its durable consumer.
async fn work_queue(
    js: &jetstream::Context,
    (name, subject): (&str, &str),
    concurrency: usize,
) -> Result<consumer::pull::Stream, BusError> {
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
    let messages = consumer.stream().max_messages_per_batch(concurrency).messages().await;
    messages.map_err(|e| BusError::nats(op(), &e))
}

/// The sequential median, then the rate of `messages` round trips with `concurrency` in flight.
async fn measure(
    js: &jetstream::Context,
    results: &mut consumer::pull::Stream,
    messages: usize,
    concurrency: usize,
) -> Result<RoundTrips, BusError> {
    let payload = Bytes::from(vec![b'x'; 2048]);
    let publish = async |js: &jetstream::Context| -> Result<(), BusError> {
        let op = "raw round trips: publish";
        let ack = js.publish(STREAMS[0].1, payload.clone()).await;
        ack.map_err(|e| BusError::nats(op, &e))?.await.map_err(|e| BusError::nats(op, &e))?;
        Ok(())
    };
    let mut pull = async || -> Result<(), BusError> {
        let op = "raw round trips: pull a result";
        match results.next().await {
            Some(m) => m
                .map_err(|e| BusError::nats(op, &e))?
                .ack()
                .await
                .map_err(|e| BusError::nats(op, &*e)),
            None => {
                Err(BusError::Unavailable { op: op.into(), detail: "results stream ended".into() })
            }
        }
    };
    let mut sequential = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        publish(js).await?;
        pull().await?;
        sequential.push(t.elapsed().as_secs_f64() * 1e6);
    }
    sequential.sort_by(f64::total_cmp);
    let p50_us = sequential[((SEQUENTIAL - 1) as f64 * 0.5).round() as usize];
    let started = Instant::now();
    let (mut sent, mut received) = (0usize, 0usize);
    while received < messages {
        while sent - received < concurrency && sent < messages {
            publish(js).await?;
            sent += 1;
        }
        pull().await?;
        received += 1;
    }
    let per_sec = messages as f64 / started.elapsed().as_secs_f64();
    Ok(RoundTrips { per_sec, p50_us })
}
