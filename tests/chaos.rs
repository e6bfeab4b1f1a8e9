//! Losing machines at the default settings: worker processes killed with SIGKILL every 3 s
//! while the coordinator is killed twice, nats-server is restarted once and the model fails a
//! third of the time; a step that kills every worker that takes it; a waiter taking over the
//! response-cache lease of a worker that died.
//!
//! The fleets run the shipped defaults for everything that decides how losses are handled
//! (ack wait, in-progress acks, max deliver, max attempts, lease lifetime, pools): only the
//! model routes, and in the poison test the heartbeat interval the harness watches, are set.
//! The tests of this file run one at a time (each runs a fleet of processes). With
//! `SCRIPTORIUM_KEEP_LOGS` set, the chaos run keeps its process logs and the slowest book's
//! step table in a directory it names.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One fleet at a time: they compete for the same two cores otherwise.
static ONE_FLEET: Mutex<()> = Mutex::new(());

fn one_fleet() -> std::sync::MutexGuard<'static, ()> {
    ONE_FLEET.lock().unwrap_or_else(|p| p.into_inner())
}

/// `worker.max_deliver` at its default.
const MAX_DELIVER: usize = 10;

struct Fleet {
    nats: NatsServer,
    tmp: tempfile::TempDir,
    cfg: PathBuf,
    out: PathBuf,
    coordinator: Option<Proc>,
    workers: Vec<Proc>,
    started: usize,
    worker_kills: usize,
    coordinator_kills: usize,
    nats_restarts: usize,
}

impl Fleet {
    /// A nats-server, a coordinator and `workers` worker processes with `config` as the
    /// configuration file.
    fn start(config: &str, workers: usize) -> Fleet {
        let nats = NatsServer::start();
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("scriptorium.toml");
        std::fs::write(&cfg, config).unwrap();
        let out = tmp.path().join("out");
        let mut f = Fleet {
            nats,
            tmp,
            cfg,
            out,
            coordinator: None,
            workers: Vec::new(),
            started: 0,
            worker_kills: 0,
            coordinator_kills: 0,
            nats_restarts: 0,
        };
        f.start_coordinator();
        for _ in 0..workers {
            f.start_worker(&[]);
        }
        f
    }

    fn start_coordinator(&mut self) {
        let (cfg, url, out) =
            (self.cfg.display().to_string(), self.nats.url(), self.out.display().to_string());
        let log = self.tmp.path().join(format!("coordinator-{}.log", self.started));
        self.started += 1;
        self.coordinator = Some(Proc::start(
            &["--config", &cfg, "coordinator", "--nats", &url, "--out", &out],
            &log,
            &[],
        ));
    }

    fn start_worker(&mut self, extra: &[&str]) -> usize {
        let (cfg, url) = (self.cfg.display().to_string(), self.nats.url());
        let id = format!("w{}", self.started);
        let log = self.tmp.path().join(format!("{id}.log"));
        self.started += 1;
        let mut args = vec!["--config", &cfg, "worker", "--nats", &url, "--id", &id];
        args.extend_from_slice(extra);
        self.workers.push(Proc::start(&args, &log, &[]));
        self.workers.len() - 1
    }

    /// SIGKILLs worker `i` and starts a replacement at once.
    fn kill_worker(&mut self, i: usize) {
        let mut w = self.workers.remove(i);
        let _ = w.child.kill();
        let _ = w.child.wait();
        self.worker_kills += 1;
        self.start_worker(&[]);
    }

    fn kill_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
        self.coordinator_kills += 1;
        self.start_coordinator();
    }

    /// Submits with the fleet's configuration file: `submit` refuses a route to a provider
    /// that it does not know.
    fn submit(&self, brief: &Path, seed: u64) -> String {
        let (url, cfg) = (self.nats.url(), self.cfg.display().to_string());
        let seed = seed.to_string();
        let args =
            ["--config", &cfg, "submit", brief.to_str().unwrap(), "--nats", &url, "--seed", &seed];
        let o = run(&args, &[]);
        assert!(o.status.success(), "submit: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn status(&self) -> Option<Vec<Value>> {
        let o = run(&["status", "--nats", &self.nats.url(), "--json"], &[]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice::<Value>(&o.stdout).ok()?["books"].as_array().cloned()
    }

    /// The workers as their heartbeats describe them (`scriptorium workers --json`).
    fn heartbeats(&self) -> Vec<Value> {
        let o = run(&["workers", "--nats", &self.nats.url(), "--json"], &[]);
        if !o.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Value>(&o.stdout)
            .ok()
            .and_then(|v| v["workers"].as_array().cloned())
            .unwrap_or_default()
    }

    fn dead_letters(&self) -> Vec<Value> {
        let o = run(&["dead-letters", "--nats", &self.nats.url(), "--json"], &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap().as_array().cloned().unwrap()
    }

    /// Polls the books every second, running `chaos` whenever it asks to be run, until every
    /// book of `ids` is final; the books then, with how long the polling took.
    fn run_until_final(
        &mut self,
        ids: &[String],
        limit: Duration,
        mut chaos: impl FnMut(&mut Fleet, Duration),
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            if let Some(books) = self.status() {
                let final_ = books
                    .iter()
                    .filter(|b| ids.iter().any(|id| b["id"] == id.as_str()))
                    .filter(|b| b["state"] == "done" || b["state"] == "failed")
                    .count();
                if final_ == ids.len() {
                    return books;
                }
            }
            if let Some(c) = self.coordinator.as_mut()
                && let Ok(Some(status)) = c.child.try_wait()
            {
                let log = std::fs::read_to_string(&c.log).unwrap_or_default();
                panic!(
                    "the coordinator exited on its own ({status}); logs kept in {:?}\n{log}",
                    self.keep_logs()
                );
            }
            if start.elapsed() >= limit {
                let books = self.status().unwrap_or_default();
                let rows: Vec<String> = books
                    .iter()
                    .map(|b| {
                        format!(
                            "{} {} {}/{} {}",
                            b["id"],
                            b["state"],
                            b["steps_done"],
                            b["steps_total"],
                            b["current_steps"]
                        )
                    })
                    .collect();
                panic!(
                    "books not final after {limit:?}: {rows:#?}\nlogs kept in {:?}",
                    self.keep_logs()
                );
            }
            chaos(self, start.elapsed());
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Copies the logs out of the temporary directory (which goes away with a panic).
    fn keep_logs(&self) -> PathBuf {
        let keep = std::env::temp_dir().join(format!("scriptorium-chaos-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&keep);
        for e in std::fs::read_dir(self.tmp.path()).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
            }
        }
        keep
    }

    /// Redeliveries the workers logged, and the most deliveries one step had.
    fn redeliveries(&self) -> (usize, u64) {
        let mut n = 0;
        let mut most = 1;
        for e in std::fs::read_dir(self.tmp.path()).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("step redelivered")) {
                n += 1;
                let count = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("delivered="))
                    .and_then(|d| d.parse().ok());
                most = most.max(count.unwrap_or(1));
            }
        }
        (n, most)
    }

    /// Every book of `ids` done, each written with every chapter once, one accepted result per
    /// model step, and nothing dead-lettered.
    fn check_done(&self, books: &[Value], ids: &[String]) {
        for b in books {
            if b["state"] != "done" {
                let o = run(
                    &["status", b["id"].as_str().unwrap(), "--nats", &self.nats.url(), "--json"],
                    &[],
                );
                let keep = self.keep_logs();
                let _ = std::fs::write(keep.join("failed-book.json"), &o.stdout);
                panic!("book {} failed: {}\nlogs: {keep:?}", b["id"], b["failure"]);
            }
            assert_eq!(
                b["accepted_results"].as_u64(),
                Some(model_steps(b)),
                "book {}: a result accepted twice, or one missing",
                b["id"]
            );
        }
        let mut got: Vec<&str> = books.iter().map(|b| b["id"].as_str().unwrap()).collect();
        got.sort();
        let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
        want.sort();
        assert_eq!(got, want);
        let dirs = book_dirs(&self.out);
        assert_eq!(dirs.len(), ids.len(), "one directory per book");
        for d in &dirs {
            assert_book(d);
        }
        let dead = self.dead_letters();
        assert!(dead.is_empty(), "unexpected dead letters: {dead:?}");
    }
}

fn model_steps(book: &Value) -> u64 {
    book["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] != "assembly")
        // An edit skipped because its review accepted the draft calls no model.
        .filter(|s| s["skipped"] != true)
        .count() as u64
}

/// What the chaos schedule does besides killing workers.
enum Event {
    Coordinator,
    Server,
}

fn elapsed(book: &Value) -> f64 {
    book["elapsed_secs"].as_f64().unwrap_or(0.0)
}

/// The slowest book's time and the median, in seconds.
fn slowest_and_median(books: &[Value]) -> (f64, f64) {
    let mut times: Vec<f64> = books.iter().map(elapsed).collect();
    times.sort_by(f64::total_cmp);
    (times.last().copied().unwrap_or(0.0), times.get(times.len() / 2).copied().unwrap_or(0.0))
}

#[test]
fn twenty_books_outlive_killed_workers_a_killed_coordinator_and_a_restarted_server() {
    let _one = one_fleet();
    const BOOKS: u64 = 20;
    const WORKERS: usize = 3;
    let tmp = tempfile::tempdir().unwrap();
    // 150 +/- 150 ms per answer, and a third of the requests failing.
    let sim = SimServerProc::start(
        &[
            "--latency-ms",
            "0",
            "--jitter-ms",
            "300",
            "--rate-500",
            "0.2",
            "--rate-429",
            "0.1",
            "--retry-after",
            "1",
            "--rate-hang",
            "0.05",
            "--hang-secs",
            "30",
            "--rate-malformed",
            "0.1",
            "--seed",
            "5",
        ],
        &tmp.path().join("sim.log"),
    );
    let config = format!(
        "[coordinator.routes]\ndefault = \"flaky/sim\"\n\n\
         [models.providers.flaky]\nprotocol = \"openai\"\nbase_url = \"{}\"\ntimeout_secs = 2\n\
         max_retries = 8\nbackoff_ms = 50\nmax_backoff_ms = 500\n",
        sim.base_url()
    );
    let mut fleet = Fleet::start(&config, WORKERS);
    let ids: Vec<String> =
        (0..BOOKS).map(|i| fleet.submit(&example("fantasy.toml"), 100 + i)).collect();
    // Every 3 s a worker dies and is replaced; early on, while every book still runs, the
    // coordinator dies twice and the server restarts once.
    let mut kills = 0;
    let mut events = vec![(6, Event::Coordinator), (4, Event::Server), (2, Event::Coordinator)];
    let books = fleet.run_until_final(&ids, Duration::from_secs(420), |f, t| {
        if t >= Duration::from_secs(3 * (kills + 1)) {
            kills += 1;
            let victim = (kills as usize * 7 + 1) % f.workers.len();
            f.kill_worker(victim);
        }
        if events.last().is_some_and(|(at, _)| t >= Duration::from_secs(*at)) {
            match events.pop().map(|e| e.1) {
                Some(Event::Coordinator) => f.kill_coordinator(),
                Some(Event::Server) => {
                    f.nats.restart();
                    f.nats_restarts += 1;
                }
                None => {}
            }
        }
    });
    fleet.check_done(&books, &ids);
    if std::env::var_os("SCRIPTORIUM_KEEP_LOGS").is_some() {
        let slow = books.iter().max_by(|a, b| elapsed(a).total_cmp(&elapsed(b))).unwrap();
        let o = run(&["status", slow["id"].as_str().unwrap(), "--nats", &fleet.nats.url()], &[]);
        let keep = fleet.keep_logs();
        std::fs::write(keep.join("slowest-book.txt"), &o.stdout).unwrap();
        println!("logs kept in {keep:?}");
    }
    let (slowest, median) = slowest_and_median(&books);
    let (redelivered, most) = fleet.redeliveries();
    println!(
        "chaos: {} books done; {} workers, {} coordinators killed, {} server restarts; \
         {redelivered} redeliveries, at most {most} deliveries of a step (of {MAX_DELIVER}); \
         slowest book {slowest:.1}s, median {median:.1}s",
        books.len(),
        fleet.worker_kills,
        fleet.coordinator_kills,
        fleet.nats_restarts
    );
    assert_eq!(
        (fleet.coordinator_kills, fleet.nats_restarts),
        (2, 1),
        "the books finished before the schedule ran (each event happens while a book runs)"
    );
    assert!(fleet.worker_kills >= 6, "only {} workers killed", fleet.worker_kills);
    // A stall detector, not a speed check: a book waiting out a dead worker's 300 s lease, or
    // losing its steps delivery after delivery, lags the median by minutes.
    assert!(
        slowest <= median + 150.0,
        "a book stalled: slowest {slowest:.1}s against a median of {median:.1}s"
    );
    // The faults really happened, and were absorbed by retries, repairs and re-asks.
    let stats = sim.stats();
    for fault in ["500", "429"] {
        assert!(stats["by_status"][fault].as_u64().unwrap_or(0) > 0, "no {fault}: {stats}");
    }
    assert!(stats["faults"]["hang"].as_u64().unwrap_or(0) > 0, "no hang: {stats}");
    assert!(stats["faults"]["malformed"].as_u64().unwrap_or(0) > 0, "no malformed: {stats}");
}

/// Writes a copy of the fantasy brief whose concept goes to `route`.
fn brief_with_concept_route(dir: &Path, route: &str) -> PathBuf {
    let text = std::fs::read_to_string(example("fantasy.toml")).unwrap();
    let path = dir.join("poison.toml");
    std::fs::write(&path, format!("{text}\n[models]\nconcept = \"{route}\"\n")).unwrap();
    path
}

/// Worker processes of the fleet whose heartbeat lists a step of `book_id` of kind `kind`.
fn workers_running(f: &Fleet, kind: &str, book_id: &str) -> Vec<u32> {
    let prefix = format!("{kind}:{book_id}/");
    f.heartbeats()
        .iter()
        .filter(|w| {
            w["current_steps"].as_array().is_some_and(|s| {
                s.iter().any(|s| s.as_str().is_some_and(|s| s.starts_with(&prefix)))
            })
        })
        .filter_map(|w| w["pid"].as_u64().map(|p| p as u32))
        .collect()
}

#[test]
fn a_step_that_kills_every_worker_that_takes_it_is_dead_lettered_and_other_books_complete() {
    let _one = one_fleet();
    let tmp = tempfile::tempdir().unwrap();
    // The poison: a model call that never returns, in a worker the harness kills as soon as
    // its heartbeat shows it took the step, as a crash would.
    let hang = SimServerProc::start(
        &["--rate-hang", "1", "--hang-secs", "600"],
        &tmp.path().join("hang.log"),
    );
    let config = format!(
        "[worker]\nheartbeat_secs = 1\n\n[models.sim]\nlatency_ms = 50\njitter_ms = 100\n\n\
         [models.providers.poison]\nprotocol = \"openai\"\nbase_url = \"{}\"\n\
         timeout_secs = 900\nmax_retries = 0\n",
        hang.base_url()
    );
    let mut fleet = Fleet::start(&config, 2);
    let poison_brief = brief_with_concept_route(tmp.path(), "poison/sim");
    let poison = fleet.submit(&poison_brief, 1);
    let others: Vec<String> =
        (0..3).map(|i| fleet.submit(&example("fantasy.toml"), 200 + i)).collect();
    let mut ids = others.clone();
    ids.push(poison.clone());
    let books = fleet.run_until_final(&ids, Duration::from_secs(300), |f, _| {
        for pid in workers_running(f, "concept", &poison) {
            if let Some(i) = f.workers.iter().position(|w| w.child.id() == pid) {
                f.kill_worker(i);
            }
        }
    });
    let book = |id: &str| books.iter().find(|b| b["id"] == id).unwrap().clone();
    let failed = book(&poison);
    assert_eq!(failed["state"], "failed", "{failed}");
    let failure = failed["failure"].as_str().unwrap();
    assert!(
        failure.contains("step concept dead-lettered") && failure.contains("crash its workers"),
        "{failure}"
    );
    let dead = fleet.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("delivered {MAX_DELIVER} times")), "{reason}");
    println!(
        "poison: dead-lettered after {} killed workers ({} deliveries); {} other books done",
        fleet.worker_kills,
        MAX_DELIVER,
        others.len()
    );
    // Every delivery but the last went to a worker that died with it.
    assert!(fleet.worker_kills >= MAX_DELIVER / 2, "{} workers killed", fleet.worker_kills);
    for id in &others {
        let b = book(id);
        assert_eq!(b["state"], "done", "{b}");
        assert_eq!(b["accepted_results"].as_u64(), Some(model_steps(&b)));
    }
}

#[test]
fn a_dead_lease_holders_waiter_takes_over_within_seconds() {
    let _one = one_fleet();
    let tmp = tempfile::tempdir().unwrap();
    // The first model request hangs (the holder's); every later one answers.
    let sim = SimServerProc::start(
        &["--script", "hang", "--hang-secs", "600", "--latency-ms", "20"],
        &tmp.path().join("sim.log"),
    );
    let config = format!(
        "[coordinator.routes]\ndefault = \"slow/sim\"\n\n\
         [models.providers.slow]\nprotocol = \"openai\"\nbase_url = \"{}\"\ntimeout_secs = 900\n",
        sim.base_url()
    );
    let mut fleet = Fleet::start(&config, 0);
    // The holder runs one concept at a time, so the second book's identical request goes to
    // the other worker, which must wait for the holder's lease.
    fleet.start_worker(&["--pool", "concept=1"]);
    let brief = example("fantasy.toml");
    let first = fleet.submit(&brief, 7);
    wait_until(Duration::from_secs(60), "the holder to take the first concept", || {
        !workers_running(&fleet, "concept", &first).is_empty()
    });
    let holder = fleet.workers[0].child.id();
    let waiter = fleet.start_worker(&[]);
    let waiter_log = fleet.workers[waiter].log.clone();
    // Same brief, same seed: the same request, hence the same cache key and lease.
    let second = fleet.submit(&brief, 7);
    wait_until(Duration::from_secs(60), "the waiter to take the second concept", || {
        workers_running(&fleet, "concept", &second).iter().any(|p| *p != holder)
    });
    // The holder dies; nobody renews its lease from now on.
    let i = fleet.workers.iter().position(|w| w.child.id() == holder).unwrap();
    let mut dead = fleet.workers.remove(i);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let killed = Instant::now();
    // Far below the 300 s the lease used to live: it lapses within `cache.lease_secs`.
    wait_until(Duration::from_secs(60), "the waiter to take the lease over", || {
        std::fs::read_to_string(&waiter_log).unwrap_or_default().contains("lease taken over")
    });
    println!("lease: taken over {:.1}s after its holder died", killed.elapsed().as_secs_f64());
    let books = fleet.run_until_final(
        &[first.clone(), second.clone()],
        Duration::from_secs(120),
        |_, _| {},
    );
    fleet.check_done(&books, &[first, second]);
    // The holder's hung call and the waiter's one: the first book's redelivered concept found
    // the answer accepted (or in flight) rather than paying for it a third time.
    let stats = sim.stats();
    assert_eq!(stats["by_kind"]["concept"].as_u64(), Some(2), "{stats}");
}
