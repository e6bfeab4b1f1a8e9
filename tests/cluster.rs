//! The transport against real nats-servers: settings drift reconciled on connect (one server),
//! and a 3-node JetStream cluster at 3 replicas that loses the server leading the steps stream.
//!
//! [`start_cluster`] and [`connect`] are the harness of the product test across a leader kill
//! (books completing while the steps leader dies): start the cluster, hand `urls` to the
//! coordinator and workers with `replicas = 3`, then kill `cluster.wait_for_stream_leader(...)`.

use bytes::Bytes;
use scriptorium_proto::names;
use scriptorium_proto::transport::{
    Bucket, Bus, DriftOutcome, NatsBus, NatsOptions, Queue, QueueSettings, Rejection,
};
use scriptorium_test_support::nats_server::{Cluster, NatsServer};
use std::time::{Duration, Instant};

/// How long a test waits for anything the cluster must recover within (polling, never a bare
/// sleep); generous because the machine may be loaded.
const RECOVERY: Duration = Duration::from_secs(60);

/// A 3-node cluster on loopback and the comma-separated client URLs of its servers.
pub fn start_cluster() -> (Cluster, String) {
    let cluster = Cluster::start(3).expect("a 3-node nats cluster (is nats-server installed?)");
    let urls = cluster.urls();
    (cluster, urls)
}

/// Options for a bus on a cluster of `replicas` servers, retrying long enough to ride out a
/// leader election on a loaded machine.
pub fn options(name: &str, replicas: usize) -> NatsOptions {
    NatsOptions {
        name: name.into(),
        replicas,
        connect_timeout: RECOVERY,
        publish_retry: RECOVERY,
        ..Default::default()
    }
}

/// Connects a bus and returns it.
pub async fn connect(urls: &str, opts: NatsOptions) -> Bus {
    Bus::connect(urls, opts).await.expect("bus connects")
}

fn nats(bus: &Bus) -> &NatsBus {
    match bus {
        Bus::Nats(b) => b,
        Bus::Memory(_) => unreachable!("a NATS bus"),
    }
}

fn steps() -> Queue {
    Queue::Steps(scriptorium_proto::v1::AgentKind::Concept)
}

fn step_consumer() -> String {
    names::step_consumer(scriptorium_proto::v1::AgentKind::Concept)
}

async fn consumer_info(
    bus: &Bus,
    stream: &str,
    consumer: &str,
) -> async_nats::jetstream::consumer::Info {
    let stream = nats(bus).jetstream().get_stream(stream).await.unwrap();
    stream.consumer_info(consumer).await.unwrap()
}

/// Reads one message of `source` through its continuous pull (`next`), acknowledging it.
async fn next_one(source: &mut scriptorium_proto::Source, within: Duration) -> Bytes {
    let m = tokio::time::timeout(within, source.next())
        .await
        .expect("a message in time")
        .expect("the source is open")
        .expect("a message");
    m.acker.ack().await.expect("ack");
    m.payload
}

/// Reads one message of `source`, polling until `within`.
async fn receive_one(source: &mut scriptorium_proto::Source, within: Duration) -> Bytes {
    let start = Instant::now();
    loop {
        match source.fetch(1, Duration::from_secs(2)).await {
            Ok(mut got) if !got.is_empty() => {
                let m = got.remove(0);
                m.acker.ack().await.expect("ack");
                return m.payload;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("{:>6.1?} fetch failed: {e}", start.elapsed());
                assert!(e.is_transient(), "only transient failures while recovering: {e}")
            }
        }
        assert!(start.elapsed() < within, "no message within {within:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_and_bucket_settings_follow_the_configuration_on_connect() {
    let server = NatsServer::start().unwrap();
    let first = connect(&server.url(), options("first", 1)).await;
    assert!(nats(&first).drift().is_empty(), "a fresh server has nothing to reconcile");
    // The first reader creates the consumer with the first process's settings.
    let _source = first.source(steps(), 1).await.unwrap();
    let info = consumer_info(&first, names::STEPS_STREAM, &step_consumer()).await;
    assert_eq!(info.config.ack_wait, Duration::from_secs(30));

    // A later process configured otherwise.
    let backoff = vec![Duration::from_secs(7), Duration::from_secs(20)];
    let steps_settings = QueueSettings {
        ack_wait: Duration::from_secs(7),
        max_deliver: 25,
        backoff: backoff.clone(),
    };
    let second = connect(
        &server.url(),
        NatsOptions {
            steps: steps_settings,
            lease_ttl: Duration::from_secs(9),
            ..options("second", 1)
        },
    )
    .await;
    let info = consumer_info(&second, names::STEPS_STREAM, &step_consumer()).await;
    assert_eq!(info.config.ack_wait, Duration::from_secs(7), "ack wait updated in place");
    assert_eq!(info.config.max_deliver, 25);
    assert_eq!(info.config.backoff, backoff);
    let leases = nats(&second).jetstream().get_stream("KV_scriptorium_leases").await.unwrap();
    assert_eq!(leases.cached_info().config.max_age, Duration::from_secs(9), "bucket TTL updated");
    let drift = nats(&second).drift();
    for field in ["ack_wait", "max_deliver", "backoff", "max_age"] {
        assert!(
            drift.iter().any(|d| d.field == field && d.outcome == DriftOutcome::Updated),
            "{field} reported as updated: {drift:?}"
        );
    }
    // The consumer of the first process keeps working with the new settings.
    second.publish(steps(), "", "m1", Bytes::from_static(b"step")).await.unwrap();
    let mut source = second.source(steps(), 1).await.unwrap();
    assert_eq!(receive_one(&mut source, RECOVERY).await, Bytes::from_static(b"step"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_jetstream_cannot_change_are_reported_and_left_alone() {
    let server = NatsServer::start().unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    // Someone created the leases bucket in memory.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KV_scriptorium_leases".into(),
        subjects: vec!["$KV.scriptorium_leases.>".into()],
        max_messages_per_subject: 1,
        storage: async_nats::jetstream::stream::StorageType::Memory,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .unwrap();
    let bus = connect(&server.url(), options("reader", 1)).await;
    let storage: Vec<_> = nats(&bus).drift().iter().filter(|d| d.field == "storage").collect();
    assert_eq!(storage.len(), 1, "{:?}", nats(&bus).drift());
    assert_eq!(storage[0].what, "KV_scriptorium_leases");
    assert_eq!(storage[0].outcome, DriftOutcome::Immutable);
    let leases = js.get_stream("KV_scriptorium_leases").await.unwrap();
    assert_eq!(
        leases.cached_info().config.storage,
        async_nats::jetstream::stream::StorageType::Memory,
        "left as found"
    );
    assert!(bus.kv_create(Bucket::Leases, "k", Bytes::from_static(b"me")).await.unwrap());

    // Replicas a single server cannot have: refused, reported, and the bus still runs.
    let three = connect(&server.url(), NatsOptions { replicas: 3, ..options("r3", 1) }).await;
    let replicas: Vec<_> =
        nats(&three).drift().iter().filter(|d| d.field == "num_replicas").collect();
    assert_eq!(replicas.len(), 12, "every stream and bucket: {:?}", nats(&three).drift());
    assert!(replicas.iter().all(|d| matches!(d.outcome, DriftOutcome::Refused(_))), "{replicas:?}");
    assert_eq!(three.kv_get(Bucket::Leases, "k").await.unwrap(), Some(Bytes::from_static(b"me")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_keys_and_bad_settings_fail_at_once() {
    let server = NatsServer::start().unwrap();
    // Retried for an hour if they were retried at all: the guard below would fire first.
    let patient = NatsOptions { publish_retry: Duration::from_secs(3600), ..options("keys", 1) };
    let bus = connect(&server.url(), patient).await;
    let refused = async {
        let e = bus.kv_get(Bucket::Books, "not a key").await.unwrap_err();
        assert_eq!(e.rejection(), Some(Rejection::InvalidKey), "{e}");
        let e = bus.kv_put(Bucket::Books, "a..b", Bytes::new()).await.unwrap_err();
        assert_eq!(e.rejection(), Some(Rejection::InvalidKey), "{e}");
        let too_large = Bytes::from(vec![b'x'; 2 << 20]);
        let e = bus.kv_put(Bucket::Books, "big", too_large).await.unwrap_err();
        assert_eq!(e.rejection(), Some(Rejection::TooLarge), "{e}");
    };
    tokio::time::timeout(RECOVERY, refused).await.expect("refusals are not retried");
    let bad = QueueSettings {
        max_deliver: 2,
        backoff: vec![Duration::from_secs(1); 2],
        ..Default::default()
    };
    let e = Bus::connect(&server.url(), NatsOptions { steps: bad, ..options("bad", 1) })
        .await
        .unwrap_err();
    assert_eq!(e.rejection(), Some(Rejection::ConfigConflict), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_node_cluster_survives_the_loss_of_the_steps_leader() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let (mut cluster, urls) = tokio::task::block_in_place(start_cluster);
    let bus = connect(&urls, options("cluster", 3)).await;
    let js = nats(&bus).jetstream().clone();

    // Every stream and bucket at 3 replicas, each with two followers.
    let streams = [
        names::STEPS_STREAM.to_string(),
        names::RESULTS_STREAM.into(),
        names::SUBMIT_STREAM.into(),
        names::DEAD_STREAM.into(),
    ]
    .into_iter()
    .chain(
        [
            names::BOOKS_BUCKET,
            names::OUTPUTS_BUCKET,
            names::WORKERS_BUCKET,
            names::CACHE_BUCKET,
            names::LEASES_BUCKET,
        ]
        .map(|b| format!("KV_{b}")),
    );
    for name in streams {
        let mut stream = js.get_stream(&name).await.unwrap();
        let info = stream.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{name}");
        let followers = info.cluster.as_ref().map_or(0, |c| c.replicas.len());
        assert_eq!(followers, 2, "{name} has two followers");
    }
    nats(&bus).check_ready().await.expect("ready with every stream led");

    // Traffic through every kind of operation.
    let mut source = bus.source(steps(), 1).await.unwrap();
    let info = consumer_info(&bus, names::STEPS_STREAM, &step_consumer()).await;
    assert_eq!(info.config.num_replicas, 3, "the consumer is replicated too");
    bus.publish(steps(), "", "before", Bytes::from_static(b"before")).await.unwrap();
    assert_eq!(receive_one(&mut source, RECOVERY).await, Bytes::from_static(b"before"));
    bus.kv_put(Bucket::Books, "b1", Bytes::from_static(b"v1")).await.unwrap();
    // The coordinator's way of reading: a continuous pull.
    let mut results = bus.source(Queue::Results, 4).await.unwrap();
    bus.publish(Queue::Results, "b1", "r1", Bytes::from_static(b"r1")).await.unwrap();
    assert_eq!(next_one(&mut results, RECOVERY).await, Bytes::from_static(b"r1"));

    // Kill the server leading the steps stream.
    let leader = tokio::task::block_in_place(|| {
        cluster.wait_for_stream_leader(names::STEPS_STREAM, RECOVERY).unwrap()
    });
    cluster.kill(leader);
    let killed_at = Instant::now();

    // Publishing, consuming and KV writes recover through the transport's retries.
    let step = |what: &str| eprintln!("{:>6.1?} {what}", killed_at.elapsed());
    tokio::time::timeout(RECOVERY, async {
        bus.publish(steps(), "", "after", Bytes::from_static(b"after")).await.unwrap();
        step("published");
        assert_eq!(receive_one(&mut source, RECOVERY).await, Bytes::from_static(b"after"));
        step("consumed");
        bus.kv_put(Bucket::Books, "b1", Bytes::from_static(b"v2")).await.unwrap();
        step("kv put");
        assert_eq!(bus.kv_get(Bucket::Books, "b1").await.unwrap(), Some(Bytes::from_static(b"v2")));
        step("kv get");
        assert!(bus.kv_create(Bucket::Leases, "l1", Bytes::from_static(b"me")).await.unwrap());
        step("kv create");
        bus.publish(Queue::Results, "b1", "r2", Bytes::from_static(b"r2")).await.unwrap();
        assert_eq!(next_one(&mut results, RECOVERY).await, Bytes::from_static(b"r2"));
        step("continuous pull");
    })
    .await
    .expect("the bus recovers from the loss of the steps leader");
    eprintln!("recovered {:?} after the steps leader was killed", killed_at.elapsed());
    let new_leader = tokio::task::block_in_place(|| {
        cluster.wait_for_stream_leader(names::STEPS_STREAM, RECOVERY).unwrap()
    });
    assert_ne!(new_leader, leader, "another server leads the steps stream");

    // The server comes back and the cluster serves as before.
    tokio::task::block_in_place(|| cluster.restart(leader)).unwrap();
    bus.publish(steps(), "", "back", Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(receive_one(&mut source, RECOVERY).await, Bytes::from_static(b"back"));
    let ready = async {
        while nats(&bus).check_ready().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(RECOVERY, ready).await.expect("ready again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_takes_only_what_it_returns() {
    let server = NatsServer::start().unwrap();
    let bus = connect(&server.url(), options("fetch", 1)).await;
    let mut source = bus.source(steps(), 8).await.unwrap();
    for id in ["a", "b", "c"] {
        bus.publish(steps(), "", id, Bytes::from(id)).await.unwrap();
    }
    let first = source.fetch(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.len(), 1);
    let info = consumer_info(&bus, names::STEPS_STREAM, &step_consumer()).await;
    assert_eq!(info.num_ack_pending, 1, "nothing delivered beyond what was asked for");
    assert_eq!(info.num_pending, 2);
    let rest = source.fetch(5, Duration::from_secs(5)).await.unwrap();
    assert_eq!(rest.len(), 2, "what is there, without waiting for five");
    for m in first.iter().chain(&rest) {
        m.acker.ack().await.unwrap();
    }
    let none = source.fetch(1, Duration::from_millis(200)).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naks_and_expired_ack_waits_count_as_deliveries_progress_does_not() {
    let server = NatsServer::start().unwrap();
    let short = QueueSettings { ack_wait: Duration::from_secs(1), ..Default::default() };
    let bus = connect(&server.url(), NatsOptions { steps: short, ..options("acks", 1) }).await;
    let mut source = bus.source(steps(), 1).await.unwrap();
    bus.publish(steps(), "", "s1", Bytes::from_static(b"s1")).await.unwrap();
    let one = |got: Vec<scriptorium_proto::Incoming>| {
        assert_eq!(got.len(), 1, "one delivery");
        got.into_iter().next().unwrap()
    };
    let m = one(source.fetch(1, RECOVERY).await.unwrap());
    assert_eq!(m.delivered, 1);
    // In-progress acks hold it well past its one-second ack wait, and never count.
    for _ in 0..6 {
        m.acker.in_progress().await.unwrap();
        let again = source.fetch(1, Duration::from_millis(400)).await.unwrap();
        assert!(again.is_empty(), "not redelivered while in progress");
    }
    m.acker.nak(Some(Duration::from_millis(100))).await.unwrap();
    let m = one(source.fetch(1, RECOVERY).await.unwrap());
    assert_eq!(m.delivered, 2, "a nak counts");
    // Not answered: redelivered once the one-second ack wait expires (a worker that died).
    drop(m);
    let m = one(source.fetch(1, RECOVERY).await.unwrap());
    assert_eq!(m.delivered, 3, "an expired ack wait counts like a nak");
    m.acker.term().await.unwrap();
    // The server applies the term on its own time: wait for it (a loaded machine is slow).
    let mut counts = (u64::MAX, u64::MAX);
    for _ in 0..50 {
        let info = consumer_info(&bus, names::STEPS_STREAM, &step_consumer()).await;
        counts = (info.num_ack_pending as u64, info.num_pending);
        if counts == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counts, (0, 0), "term removes it for good");
    let none = source.fetch(1, Duration::from_millis(1500)).await.unwrap();
    assert!(none.is_empty(), "never delivered again");
}
