//! Books on a 3-node JetStream cluster: the built coordinator and two worker processes, every
//! stream and bucket at 3 replicas (`[nats] replicas = 3`), and the server leading the steps
//! stream killed mid-run. Every book completes, and no book goes 30 s without progress.
//! (The transport-level cluster tests are in `tests/cluster.rs`.)

mod common;

use common::*;
use scriptorium_coordinator::client;
use scriptorium_coordinator::record::{BookRecord, Status};
use scriptorium_proto::Bus;
use scriptorium_proto::names;
use scriptorium_proto::transport::{NatsOptions, Reconcile};
use scriptorium_test_support::nats_server::Cluster;
use std::time::{Duration, Instant};

const BOOKS: usize = 6;

/// The longest a book may go without a step dispatched or finished, leader kill included
/// (the bar: a few ack waits of the defaults would be minutes).
const MAX_STALL: Duration = Duration::from_secs(30);

/// The longest time in `rec`'s life without progress: the largest gap between its creation,
/// the dispatch and finish of its steps (latest attempts) and its finish, with what ended it.
fn longest_stall(rec: &BookRecord) -> (Duration, String) {
    let mut times: Vec<(i64, String)> = vec![
        (rec.created_ms * 1000, "created".into()),
        (rec.finished_ms * 1000, "finished".into()),
    ];
    for (id, s) in &rec.steps {
        let attempt = s.attempt;
        if s.dispatched_us > 0 {
            times.push((s.dispatched_us, format!("{id} attempt {attempt} dispatched")));
        }
        if s.finished_us > 0 {
            times.push((s.finished_us, format!("{id} accepted")));
        }
    }
    times.sort();
    times
        .windows(2)
        .map(|w| {
            (
                Duration::from_micros((w[1].0 - w[0].0).max(0) as u64),
                format!("{} -> {}", w[0].1, w[1].1),
            )
        })
        .max()
        .unwrap_or_default()
}

fn list(rt: &tokio::runtime::Runtime, bus: &Bus) -> Vec<BookRecord> {
    rt.block_on(client::list(bus)).unwrap_or_default()
}

#[test]
fn every_book_completes_when_the_server_leading_the_steps_stream_dies() {
    let mut cluster = Cluster::start(3).expect("a 3-node nats cluster (is nats-server installed?)");
    let urls = cluster.urls();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("scriptorium.toml");
    // A step whose delivery died with the server waits one ack wait: 10 s (the worker's
    // default once workers fetch only for idle agents), plus the election.
    std::fs::write(
        &cfg,
        "[nats]\nreplicas = 3\n\n[models.sim]\nlatency_ms = 150\njitter_ms = 150\n\n\
         [worker]\nheartbeat_secs = 1\nshutdown_grace_secs = 2\nack_wait_secs = 10\nprogress_secs = 3\n",
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let out = tmp.path().join("out");
    let outs = out.display().to_string();
    let env = [("SCRIPTORIUM_CONFIG", cfg.as_str())];
    let log = |name: &str| tmp.path().join(format!("{name}.log"));
    let _coordinator =
        Proc::start(&["coordinator", "--nats", &urls, "--out", &outs], &log("coordinator"), &env);
    let _workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|id| Proc::start(&["worker", "--nats", &urls, "--id", id], &log(id), &env))
        .collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = NatsOptions {
        name: "cluster-books-test".into(),
        replicas: 3,
        reconcile: Reconcile::Leave,
        connect_timeout: Duration::from_secs(60),
        publish_retry: Duration::from_secs(60),
        ..Default::default()
    };
    let bus = rt.block_on(Bus::connect(&urls, opts)).expect("the test connects");
    let briefs = ["fantasy.toml", "nonfiction.toml", "business.toml"];
    let mut ids = Vec::new();
    for i in 0..BOOKS {
        let brief = example(briefs[i % briefs.len()]).display().to_string();
        let seed = (i + 1).to_string();
        let o = run(&["submit", &brief, "--nats", &urls, "--seed", &seed, "--chapters", "3"], &env);
        assert!(o.status.success(), "submit: {}", String::from_utf8_lossy(&o.stderr));
        ids.push(String::from_utf8_lossy(&o.stdout).lines().next().unwrap().to_string());
    }

    // Mid-run: some book has made progress, some book is not finished.
    wait_until(Duration::from_secs(120), "a book three steps in", || {
        list(&rt, &bus).iter().any(|r| r.progress().0 >= 3)
    });
    let leader = cluster
        .wait_for_stream_leader(names::STEPS_STREAM, Duration::from_secs(30))
        .expect("the steps stream has a leader");
    let before = list(&rt, &bus);
    let unfinished = before.iter().filter(|r| !r.state.is_final()).count();
    assert!(unfinished > 0, "the kill comes mid-run: {} books final", before.len());
    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = cluster
        .wait_for_stream_leader(names::STEPS_STREAM, Duration::from_secs(60))
        .expect("a new leader among the servers left");
    assert_ne!(new_leader, leader);

    wait_until(Duration::from_secs(300), "every book finished", || {
        let recs = list(&rt, &bus);
        recs.len() == BOOKS && recs.iter().all(|r| r.state.is_final())
    });
    // With their steps: a listing reads headers only, whose one span (created to finished)
    // is the whole book, not its longest stall.
    let recs = rt.block_on(client::list_records(&bus)).expect("the records with their steps");
    assert_eq!(recs.len(), BOOKS);
    assert!(recs.iter().all(|r| !r.steps.is_empty()), "records read without their steps");
    for r in &recs {
        assert_eq!(r.state, Status::Done, "book {} failed: {:?}", r.id, r.failure);
        assert!(ids.contains(&r.id));
    }
    assert_eq!(book_dirs(&out).len(), BOOKS);
    for dir in book_dirs(&out) {
        assert_book(&dir);
    }
    let mut stalls: Vec<(Duration, String, &str)> = recs
        .iter()
        .map(|r| {
            let (gap, what) = longest_stall(r);
            (gap, what, r.id.as_str())
        })
        .collect();
    stalls.sort();
    let (worst, what, worst_id) = stalls[stalls.len() - 1].clone();
    println!(
        "steps leader {} killed; books done {:?} later; longest stall {worst:?} (book \
         {worst_id}: {what}), median {:?}",
        cluster.server_name(leader),
        killed_at.elapsed(),
        stalls[stalls.len() / 2].0
    );
    if worst > MAX_STALL || std::env::var_os("KEEP_LOGS").is_some() {
        let kept = tmp.keep();
        panic!(
            "book {worst_id} made no progress for {worst:?} ({what}); logs in {}",
            kept.display()
        );
    }
}
