//! The transport over a real nats-server: what operators' tools read and do through it. A key
//! listing names each key once while the keys change, the submissions waiting are counted with
//! or without a coordinator's consumer, and dead letters are read, purged by queue and replayed
//! once. Pipelined publishes land every message exactly once across a server restart, and one
//! that cannot land says so. A pull request hands out each message as it arrives and never
//! more than it asked for. The steps waiting and running are counted over every step queue,
//! before and after a worker's consumer exists.

use scriptorium_proto::prost::Message as _;
use scriptorium_proto::transport::{Bucket, NatsOptions, Queue, Rejection, StepLoad};
use scriptorium_proto::v1::{AgentKind, SubmitBook};
use scriptorium_proto::{Bus, names};
use scriptorium_test_support::nats_server::NatsServer;
use std::collections::HashSet;
use std::time::Duration;

async fn bus(server: &NatsServer) -> Bus {
    Bus::connect(&server.url(), NatsOptions::default()).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_listing_names_each_key_once_while_the_keys_change() {
    let server = NatsServer::start().expect("nats-server");
    let bus = bus(&server).await;
    let keys: Vec<String> = (0..100).map(|i| format!("book-{i:03}")).collect();
    for k in &keys {
        bus.kv_put(Bucket::Books, k, "{}".into()).await.unwrap();
    }
    // Books changing state all the time, as a busy coordinator writes their records.
    let writer = {
        let (bus, keys) = (bus.clone(), keys.clone());
        tokio::spawn(async move {
            for round in 0u64.. {
                for k in &keys {
                    bus.kv_put(Bucket::Books, k, round.to_string().into()).await.unwrap();
                }
            }
        })
    };
    for listing in 0..15 {
        let listed = bus.kv_keys(Bucket::Books).await.unwrap();
        let distinct: HashSet<&String> = listed.iter().collect();
        assert_eq!(distinct.len(), listed.len(), "listing {listing} repeats keys: {listed:?}");
        assert_eq!(distinct.len(), keys.len(), "listing {listing} misses keys");
    }
    writer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_wait_until_a_coordinator_reads_them() {
    let server = NatsServer::start().expect("nats-server");
    let bus = bus(&server).await;
    assert_eq!(bus.submissions_waiting().await.unwrap(), 0);
    for i in 0..3 {
        let msg = SubmitBook { book_id: format!("b{i}"), ..Default::default() };
        bus.publish(Queue::Submit, "", &format!("s{i}"), msg.encode_to_vec().into()).await.unwrap();
    }
    assert_eq!(bus.submissions_waiting().await.unwrap(), 3, "no consumer yet: the stream");
    let mut source = bus.source(Queue::Submit, 1).await.unwrap();
    let first = source.fetch(1, Duration::from_secs(10)).await.unwrap();
    first[0].acker.ack().await.unwrap();
    let waiting = bus.submissions_waiting().await.unwrap();
    assert_eq!(waiting, 2, "the coordinator's consumer: what it has not read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_purged_by_queue_and_replayed_once_on_their_queue() {
    let server = NatsServer::start().expect("nats-server");
    let bus = bus(&server).await;
    let submission = SubmitBook { book_id: "b1".into(), ..Default::default() }.encode_to_vec();
    bus.dead_letter("submit", submission.clone().into(), "test: refused").await.unwrap();
    bus.dead_letter("chapter", "x".into(), "test: undecodable").await.unwrap();
    bus.dead_letter("review", "y".into(), "test: undecodable").await.unwrap();
    let all = bus.dead_letters().await.unwrap();
    let seqs: Vec<(u64, &str)> = all.iter().map(|d| (d.seq, d.queue.as_str())).collect();
    assert_eq!(seqs, [(1, "submit"), (2, "chapter"), (3, "review")]);
    let one = bus.dead_letter_at(1).await.unwrap().expect("stored");
    assert_eq!((one.reason.as_str(), one.payload.to_vec()), ("test: refused", submission.clone()));
    assert!(bus.dead_letter_at(9).await.unwrap().is_none());

    assert_eq!(bus.purge_dead_letters(Some("chapter")).await.unwrap(), 1);
    let left: Vec<u64> = bus.dead_letters().await.unwrap().iter().map(|d| d.seq).collect();
    assert_eq!(left, [1, 3]);

    bus.replay_dead_letter(1, Queue::Submit, "").await.unwrap();
    assert!(bus.dead_letter_at(1).await.unwrap().is_none(), "gone from the dead letters");
    assert_eq!(bus.submissions_waiting().await.unwrap(), 1, "back on its queue");
    let e = bus.replay_dead_letter(1, Queue::Submit, "").await.unwrap_err();
    assert_eq!(e.rejection(), Some(Rejection::NotFound), "{e}");
    let mut source = bus.source(Queue::Submit, 1).await.unwrap();
    let back = source.fetch(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(back[0].payload.to_vec(), submission, "the original payload");

    assert_eq!(bus.purge_dead_letters(None).await.unwrap(), 1);
    assert!(bus.dead_letters().await.unwrap().is_empty());
    let _ = (AgentKind::Chapter, names::DEAD_STREAM);
}

/// Messages in the steps stream, as the server counts them.
async fn steps_stored(bus: &Bus) -> u64 {
    let Bus::Nats(nats) = bus else { panic!("a NATS bus") };
    let mut stream = nats.jetstream().get_stream(names::STEPS_STREAM).await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_publishes_land_once_each_across_a_server_restart() {
    let mut server = NatsServer::start().expect("nats-server");
    let bus = bus(&server).await;
    let queue = Queue::Steps(AgentKind::Chapter);
    // More than the window of unacknowledged publishes, handed over without waiting for acks.
    let total = 3_000u32;
    let mut pending = Vec::new();
    for i in 0..total {
        if i == total / 2 {
            // Killed with PubAcks on their way and messages in the client's buffers, then back.
            tokio::task::block_in_place(|| server.restart()).expect("restart");
        }
        let id = format!("m{i}");
        pending.push(bus.enqueue(queue, "", &id, id.clone().into()).await.expect("enqueued"));
    }
    for (i, p) in pending.into_iter().enumerate() {
        p.confirmed().await.unwrap_or_else(|e| panic!("publish {i} not confirmed: {e}"));
    }
    // Every message once: a publish retried after a lost PubAck was a duplicate the server
    // dropped by its message id.
    assert_eq!(steps_stored(&bus).await, u64::from(total));
    let mut source = bus.source(queue, 500).await.unwrap();
    let mut seen = HashSet::new();
    while seen.len() < total as usize {
        let got = source.fetch(500, Duration::from_secs(10)).await.unwrap();
        assert!(!got.is_empty(), "only {} of {total} messages read back", seen.len());
        for m in got {
            let id = String::from_utf8(m.payload.to_vec()).unwrap();
            assert!(seen.insert(id.clone()), "{id} stored twice");
            m.acker.ack().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_that_cannot_land_reports_its_error() {
    let mut server = NatsServer::start().expect("nats-server");
    let opts = NatsOptions { publish_retry: Duration::from_secs(1), ..NatsOptions::default() };
    let bus = Bus::connect(&server.url(), opts).await.expect("connect");
    bus.enqueue(Queue::Submit, "", "before", "x".into()).await.unwrap().confirmed().await.unwrap();
    server.kill();
    let published = bus.enqueue(Queue::Submit, "", "after", "y".into()).await;
    // Handed over (the client buffers it while it reconnects) or refused at once: either way
    // the caller learns it did not land.
    let outcome = match published {
        Ok(p) => {
            tokio::time::timeout(Duration::from_secs(60), p.confirmed()).await.expect("an answer")
        }
        Err(e) => Err(e),
    };
    let e = outcome.expect_err("no server: the publish cannot be confirmed");
    assert!(e.is_transient(), "a lost server is worth trying again later: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_hands_out_each_message_as_it_arrives_and_no_more_than_asked() {
    let server = NatsServer::start().expect("nats-server");
    let bus = bus(&server).await;
    let mut source = bus.source(Queue::Steps(AgentKind::Chapter), 1).await.unwrap();
    let step = |i: u32| (format!("m{i}"), bytes::Bytes::from(format!("step {i}")));
    let (id, payload) = step(1);
    bus.publish(Queue::Steps(AgentKind::Chapter), "", &id, payload).await.unwrap();
    let mut request = source.pull(2, Duration::from_secs(30)).await.unwrap();
    let first = request.next().await.expect("the waiting step").unwrap();
    assert_eq!(first.payload, "step 1");
    // The request is still open: a step published now reaches it, long before it expires.
    let late = {
        let bus = bus.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for i in 2..=3 {
                let (id, payload) = step(i);
                bus.publish(Queue::Steps(AgentKind::Chapter), "", &id, payload).await.unwrap();
            }
        })
    };
    let second = request.next().await.expect("a step published after the request").unwrap();
    assert_eq!(second.payload, "step 2");
    assert!(request.next().await.is_none(), "two asked for, two handed out: the request is over");
    drop(request);
    late.await.unwrap();
    for m in [&first, &second] {
        m.acker.ack().await.unwrap();
    }
    // The third stayed on the queue for the next request, delivered once.
    let mut next = source.pull(5, Duration::from_millis(300)).await.unwrap();
    let third = next.next().await.expect("the step left on the queue").unwrap();
    assert_eq!((third.payload.as_ref(), third.delivered), (&b"step 3"[..], 1));
    third.acker.ack().await.unwrap();
    assert!(next.next().await.is_none(), "nothing more: the request ends when it expires");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_load_counts_steps_waiting_and_running_with_or_without_a_consumer() {
    let server = NatsServer::start().expect("nats-server");
    let bus = bus(&server).await;
    let load = |waiting, running| StepLoad { waiting, running };
    assert_eq!(bus.step_load().await.unwrap(), load(0, 0));
    let publish = |queue: Queue, n: u32| {
        let bus = bus.clone();
        async move {
            for i in 0..n {
                let id = format!("{queue:?}-{i}");
                bus.publish(queue, "b", &id, bytes::Bytes::from_static(b"step")).await.unwrap();
            }
        }
    };
    publish(Queue::Steps(AgentKind::Chapter), 3).await;
    publish(Queue::PrioritySteps(AgentKind::Concept), 2).await;
    publish(Queue::Results, 4).await;
    let no_consumer = bus.step_load().await.unwrap();
    assert_eq!(no_consumer, load(5, 0), "no consumer yet: the subjects; results are not steps");
    // A worker takes one chapter step and runs it: running until acknowledged.
    let mut chapters = bus.source(Queue::Steps(AgentKind::Chapter), 1).await.unwrap();
    let taken = chapters.fetch(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(bus.step_load().await.unwrap(), load(4, 1), "the consumer's pending counts");
    taken[0].acker.ack().await.unwrap();
    // The acknowledgement is not confirmed: the server counts it within moments.
    let mut after = bus.step_load().await.unwrap();
    for _ in 0..100 {
        if after.running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = bus.step_load().await.unwrap();
    }
    assert_eq!(after, load(4, 0));
}
