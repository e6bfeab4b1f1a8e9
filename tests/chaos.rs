//! Nothing lost: 20 books over a real nats-server with three worker processes while workers,
//! the coordinator or the server are killed, or the model fails a third of the time.
//! Each run asserts every book completes with every chapter once, no result was accepted
//! twice, and the dead-letter stream holds nothing.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BOOKS: usize = 20;
const WORKERS: usize = 3;

struct Fleet {
    nats: NatsServer,
    tmp: tempfile::TempDir,
    cfg: PathBuf,
    out: PathBuf,
    env: Vec<(String, String)>,
    coordinator: Option<Proc>,
    workers: Vec<Proc>,
    started: usize,
}

impl Fleet {
    fn start(extra_config: &str, env: Vec<(String, String)>) -> Fleet {
        let nats = NatsServer::start();
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("scriptorium.toml");
        let config = format!(
            "[coordinator]\nmax_attempts = 10\nstep_timeout_secs = 60\n\n\
             [worker]\nack_wait_secs = 3\nprogress_secs = 1\nmax_deliver = 50\nheartbeat_secs = 1\nshutdown_grace_secs = 2\npools = {{ all = 2 }}\n\n{extra_config}"
        );
        std::fs::write(&cfg, config).unwrap();
        let out = tmp.path().join("out");
        let mut f =
            Fleet { nats, tmp, cfg, out, env, coordinator: None, workers: Vec::new(), started: 0 };
        f.start_coordinator();
        for _ in 0..WORKERS {
            f.start_worker();
        }
        f
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn start_coordinator(&mut self) {
        let (cfg, url, out) =
            (self.cfg.display().to_string(), self.nats.url(), self.out.display().to_string());
        let log = self.tmp.path().join(format!("coordinator-{}.log", self.started));
        self.started += 1;
        let env = self.env();
        self.coordinator = Some(Proc::start(
            &["--config", &cfg, "coordinator", "--nats", &url, "--out", &out],
            &log,
            &env,
        ));
    }

    fn start_worker(&mut self) {
        let (cfg, url) = (self.cfg.display().to_string(), self.nats.url());
        let id = format!("w{}", self.started);
        let log = self.tmp.path().join(format!("{id}.log"));
        self.started += 1;
        let env = self.env();
        self.workers.push(Proc::start(
            &["--config", &cfg, "worker", "--nats", &url, "--id", &id],
            &log,
            &env,
        ));
    }

    fn submit_all(&self) -> Vec<String> {
        let url = self.nats.url();
        (0..BOOKS)
            .map(|i| {
                let o = run(
                    &[
                        "submit",
                        example("fantasy.toml").to_str().unwrap(),
                        "--nats",
                        &url,
                        "--seed",
                        &(100 + i).to_string(),
                    ],
                    &[],
                );
                assert!(o.status.success(), "submit: {}", String::from_utf8_lossy(&o.stderr));
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            })
            .collect()
    }

    fn status(&self) -> Option<Vec<Value>> {
        let o = run(&["status", "--nats", &self.nats.url(), "--json"], &[]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice::<Value>(&o.stdout).ok()?.as_array().cloned()
    }

    /// Runs `chaos` every `every` until all books are final (or `limit` passes), then checks.
    fn run_until_done(
        &mut self,
        ids: &[String],
        every: Duration,
        mut chaos: impl FnMut(&mut Fleet, usize),
    ) {
        let start = Instant::now();
        let limit = Duration::from_secs(480);
        let mut next = start + every;
        let mut round = 0;
        loop {
            if let Some(books) = self.status() {
                let finished =
                    books.iter().filter(|b| b["state"] == "done" || b["state"] == "failed").count();
                if finished == ids.len() && books.len() == ids.len() {
                    break;
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
                let keep = self.keep_logs();
                panic!("books not finished after {limit:?}; logs kept in {keep:?}");
            }
            assert!(
                start.elapsed() < limit,
                "books not finished after {limit:?}: {:?}\nlogs in {:?}",
                self.status().map(|b| b
                    .iter()
                    .map(|b| format!(
                        "{} {} {}/{}",
                        b["id"], b["state"], b["steps_done"], b["steps_total"]
                    ))
                    .collect::<Vec<_>>()),
                self.tmp.path()
            );
            if Instant::now() >= next {
                chaos(self, round);
                round += 1;
                next = Instant::now() + every;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        self.check(ids);
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

    fn check(&self, ids: &[String]) {
        let books = self.status().expect("status");
        for b in &books {
            if b["state"] != "done" {
                let o = run(
                    &["status", b["id"].as_str().unwrap(), "--nats", &self.nats.url(), "--json"],
                    &[],
                );
                let keep = self.keep_logs();
                let _ = std::fs::write(keep.join("failed-book.json"), &o.stdout);
                panic!(
                    "book {} failed: {}\ndetail: {}\nlogs: {keep:?}",
                    b["id"],
                    b["failure"],
                    String::from_utf8_lossy(&o.stdout)
                );
            }
            let model_steps = b["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["kind"] != "local" && s["kind"] != "unspecified")
                // An edit skipped because its review accepted the draft calls no model.
                .filter(|s| s["skipped"] != true)
                .count() as u64;
            assert_eq!(
                b["accepted_results"].as_u64(),
                Some(model_steps),
                "book {}: a result accepted twice, or one missing",
                b["id"]
            );
        }
        let mut got: Vec<String> =
            books.iter().map(|b| b["id"].as_str().unwrap().to_string()).collect();
        got.sort();
        let mut want = ids.to_vec();
        want.sort();
        assert_eq!(got, want);
        let dirs = book_dirs(&self.out);
        assert_eq!(dirs.len(), ids.len(), "one directory per book");
        for d in &dirs {
            assert_book(d);
        }
        let o = run(&["dead-letters", "--nats", &self.nats.url(), "--json"], &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let dead: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(dead.as_array().map(Vec::len), Some(0), "unexpected dead letters: {dead}");
    }
}

fn sim_latency() -> &'static str {
    "[models.sim]\nlatency_ms = 150\njitter_ms = 250\n"
}

#[test]
fn workers_killed_and_replaced_lose_nothing() {
    let mut fleet = Fleet::start(sim_latency(), vec![]);
    let ids = fleet.submit_all();
    fleet.run_until_done(&ids, Duration::from_millis(2500), |f, round| {
        let victim = (round * 7 + 1) % f.workers.len();
        let mut w = f.workers.remove(victim);
        let _ = w.child.kill(); // SIGKILL
        let _ = w.child.wait();
        f.start_worker();
    });
}

#[test]
fn the_coordinator_killed_twice_resumes_every_book() {
    let mut fleet = Fleet::start(sim_latency(), vec![]);
    let ids = fleet.submit_all();
    fleet.run_until_done(&ids, Duration::from_secs(3), |f, round| {
        if round < 2 {
            if let Some(mut c) = f.coordinator.take() {
                let _ = c.child.kill();
                let _ = c.child.wait();
            }
            f.start_coordinator();
        }
    });
}

#[test]
fn a_nats_restart_mid_run_stalls_no_book() {
    let mut fleet = Fleet::start(sim_latency(), vec![]);
    let ids = fleet.submit_all();
    fleet.run_until_done(&ids, Duration::from_secs(4), |f, round| {
        if round < 2 {
            f.nats.restart();
        }
    });
}

#[test]
fn a_model_failing_a_third_of_the_time_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimServerProc::start(
        &[
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
            "--latency-ms",
            "50",
            "--seed",
            "5",
        ],
        &tmp.path().join("sim.log"),
    );
    let providers = format!(
        "[coordinator.routes]\ndefault = \"flaky/sim\"\n\n[models.providers.flaky]\nprotocol = \"openai\"\nbase_url = \"{}\"\ntimeout_secs = 2\nmax_retries = 8\nbackoff_ms = 50\nmax_backoff_ms = 500\n",
        sim.base_url()
    );
    let mut fleet = Fleet::start(&providers, vec![]);
    let ids = fleet.submit_all();
    fleet.run_until_done(&ids, Duration::from_secs(3600), |_, _| {});
    let stats = sim.stats();
    // The faults really happened, and were absorbed by retries, repairs and re-asks.
    for fault in ["500", "429"] {
        assert!(
            stats["by_status"][fault].as_u64().unwrap_or(0) > 0,
            "no {fault} injected: {stats}"
        );
    }
    assert!(stats["faults"]["hang"].as_u64().unwrap_or(0) > 0, "no hang injected: {stats}");
    assert!(
        stats["faults"]["malformed"].as_u64().unwrap_or(0) > 0,
        "no malformed answer injected: {stats}"
    );
}
