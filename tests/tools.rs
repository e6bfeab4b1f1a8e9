//! Tools that tell the truth, each against a real nats-server and the built binary: `status`
//! lists each book once while books change state, says whether a coordinator is alive and what
//! waits for one; `submit` takes several briefs, refuses routes to unknown providers before
//! enqueueing and says when no coordinator is alive; `retry --wait` returns when the book ends;
//! worker ids are checked and unique among live workers; a dead NATS URL fails fast;
//! dead letters are purged and replayed; `status --watch` and `--state`.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long anything may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(120);

fn config(dir: &Path, extra: &str) -> String {
    let path = dir.join("scriptorium.toml");
    std::fs::write(&path, format!("[worker]\nheartbeat_secs = 1\n{extra}")).unwrap();
    path.display().to_string()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs the binary and parses its stdout as JSON, failing the test when it fails.
fn json(args: &[&str]) -> Value {
    let o = run(args, &[]);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&o)))
}

fn status(url: &str) -> Value {
    json(&["status", "--nats", url, "--json"])
}

fn ids_of(status: &Value) -> Vec<String> {
    status["books"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().into()).collect()
}

fn coordinator(cfg: &str, url: &str, dir: &Path, extra: &[&str]) -> Proc {
    let out = dir.join("books").display().to_string();
    let mut args = vec!["--config", cfg, "coordinator", "--nats", url, "--out", &out];
    args.extend_from_slice(extra);
    let log = dir.join(format!("coordinator-{}.log", Instant::now().elapsed().as_nanos()));
    Proc::start(&args, &log, &[])
}

fn worker(cfg: &str, url: &str, dir: &Path, id: &str) -> Proc {
    let args = ["--config", cfg, "worker", "--nats", url, "--id", id, "--pool", "all=4"];
    Proc::start(&args, &dir.join(format!("{id}.log")), &[])
}

fn alive(url: &str) -> bool {
    status(url)["coordinator"]["alive"] == true
}

#[test]
fn status_lists_each_of_fifty_books_once_while_they_change_state() {
    let nats = NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "\n[models.sim]\nlatency_ms = 20\n");
    let _c = coordinator(&cfg, &url, dir.path(), &[]);
    let _w = worker(&cfg, &url, dir.path(), "w1");
    wait_until(WITHIN, "a live coordinator", || alive(&url));

    // One `submit` of two briefs, 25 books each: one id per line, seeds counting up.
    let (fantasy, business) = (example("fantasy.toml"), example("business.toml"));
    let args = [
        "submit",
        fantasy.to_str().unwrap(),
        business.to_str().unwrap(),
        "--books",
        "25",
        "--seed",
        "100",
        "--chapters",
        "2",
        "--nats",
        &url,
    ];
    let o = run(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let submitted: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(submitted.len(), 50, "{}", stdout(&o));
    let submitted_set: BTreeSet<String> = submitted.iter().cloned().collect();
    assert_eq!(submitted_set.len(), 50, "distinct ids");

    // Read from three processes at once while the books are recorded, run and finish: never an
    // id twice, never one missed once every book is recorded.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (url, submitted) = (url.clone(), submitted_set.clone());
            std::thread::spawn(move || {
                let (mut reads, mut while_running) = (0, 0);
                let start = Instant::now();
                loop {
                    let s = status(&url);
                    let ids = ids_of(&s);
                    let distinct: BTreeSet<String> = ids.iter().cloned().collect();
                    assert_eq!(distinct.len(), ids.len(), "read {reads} lists a book twice");
                    assert!(distinct.is_subset(&submitted), "read {reads}: books never submitted");
                    let books = s["books"].as_array().unwrap();
                    let finished = books.iter().filter(|b| b["state"] == "done").count();
                    reads += 1;
                    if ids.len() == 50 && finished < 50 {
                        while_running += 1;
                    }
                    if finished == 50 {
                        assert_eq!(distinct, submitted, "every book, once");
                        return while_running;
                    }
                    assert!(start.elapsed() < WITHIN * 2, "{finished} books done after {reads} reads");
                }
            })
        })
        .collect();
    let while_running: u32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(while_running >= 6, "only {while_running} reads while the books ran");
    // The seeds counted up from --seed, brief by brief.
    let seeds: BTreeSet<u64> = status(&url)["books"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, (100..125).collect(), "seeds of both briefs count up from 100");

    // `--state` keeps the books of one state; a wrong state names them all.
    let done = json(&["status", "--nats", &url, "--json", "--state", "done"]);
    assert_eq!(ids_of(&done).len(), 50);
    assert!(ids_of(&json(&["status", "--nats", &url, "--json", "--state", "failed"])).is_empty());
    let o = run(&["status", "--nats", &url, "--state", "finished"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must be one of queued, running, awaiting_approval"), "{}", stderr(&o));

    // `--watch` refreshes until interrupted: one JSON line per refresh.
    let mut watch = Command::new(bin())
        .args(["status", "--nats", &url, "--json", "--watch", "--interval", "0.2"])
        .args(["--state", "done"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut at = Vec::new();
    for _ in 0..3 {
        let line = lines.next().expect("a refresh").unwrap();
        let frame: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(ids_of(&frame).len(), 50);
        assert_eq!(frame["coordinator"]["alive"], true);
        at.push(frame["at_unix_ms"].as_i64().unwrap());
    }
    assert!(at.windows(2).all(|w| w[1] > w[0]), "three refreshes: {at:?}");
    let _ = Command::new("kill").args(["-INT", &watch.id().to_string()]).status();
    let ended = Instant::now();
    while watch.try_wait().unwrap().is_none() {
        assert!(ended.elapsed() < Duration::from_secs(10), "status --watch stops on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
}
