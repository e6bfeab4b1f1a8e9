//! The same scenario, three different books in parallel, in embedded and in distributed mode.

mod common;

use common::*;
use std::time::Duration;

const PROJECTS: [&str; 3] = ["salt-harbour", "quiet-systems", "small-bets"];

fn briefs() -> Vec<String> {
    ["fantasy.toml", "nonfiction.toml", "business.toml"]
        .iter()
        .map(|b| example(b).display().to_string())
        .collect()
}

#[test]
fn embedded_mode_writes_three_books_in_parallel() {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["write".to_string()];
    args.extend(briefs());
    args.extend(["--out".into(), out.path().display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args, &[]);
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().filter(|l| l.starts_with("done")).count(), 3, "{stdout}");
    assert_books(out.path(), &PROJECTS);
}

#[test]
fn distributed_mode_writes_three_books_in_parallel() {
    let nats = NatsServer::start();
    let url = nats.url();
    let out = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let outs = out.path().display().to_string();
    let _coord = Proc::start(
        &["coordinator", "--nats", &url, "--out", &outs],
        &logs.path().join("coordinator.log"),
        &[],
    );
    let _w1 =
        Proc::start(&["worker", "--nats", &url, "--id", "w1"], &logs.path().join("w1.log"), &[]);
    let _w2 =
        Proc::start(&["worker", "--nats", &url, "--id", "w2"], &logs.path().join("w2.log"), &[]);
    let submits: Vec<_> = briefs()
        .into_iter()
        .map(|b| {
            let url = url.clone();
            std::thread::spawn(move || {
                run(&["submit", &b, "--nats", &url, "--wait", "--timeout", "120"], &[])
            })
        })
        .collect();
    for s in submits {
        let o = s.join().unwrap();
        assert!(
            o.status.success(),
            "submit failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let id = String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string();
        assert!(!id.is_empty());
    }
    let books = assert_books(out.path(), &PROJECTS);
    // Both worker processes consumed from the shared durable consumers.
    let workers: std::collections::BTreeSet<String> = books
        .iter()
        .flat_map(|b| {
            b["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["worker"].as_str().unwrap_or("").to_string())
        })
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(workers.into_iter().collect::<Vec<_>>(), ["w1", "w2"]);
    // status sees the same books as done.
    let o = run(&["status", "--nats", &url, "--json"], &[]);
    assert!(o.status.success());
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let states: Vec<&str> =
        status["books"].as_array().unwrap().iter().map(|b| b["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["done", "done", "done"]);
    let _ = Duration::ZERO;
}

#[test]
fn a_bad_brief_is_refused_with_field_and_rule_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "category = \"fiction\"\ndescription = \"x\"\nchapters = 500\n").unwrap();
    let out = dir.path().join("out");
    let good = example("fantasy.toml").display().to_string();
    let o = run(&["write", &good, bad.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("brief field `chapters`: must be between 1 and 100 (got 500)"), "{err}");
    assert!(!out.exists(), "nothing may be written when any brief is invalid");
    let missing = run(&["write", "/nonexistent/brief.toml"], &[]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("brief field `file`"));
}

#[test]
fn invalid_answers_are_re_asked_and_books_still_complete() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("scriptorium.toml");
    // A third of the simulated answers break a rule (wrong counts, empty prose, 30 scenes).
    std::fs::write(&cfg, "[coordinator]\nmax_attempts = 8\n\n[models.sim]\nbad_rate = 0.34\n")
        .unwrap();
    let out = dir.path().join("out");
    let o = run(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "write",
            example("fantasy.toml").to_str().unwrap(),
            "--books",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let books: Vec<_> = book_dirs(&out).iter().map(|d| assert_book(d)).collect();
    assert_eq!(books.len(), 3);
    let rejections: usize = books
        .iter()
        .flat_map(|b| b["steps"].as_array().unwrap().iter())
        .map(|s| s["rejections"].as_array().unwrap().len())
        .sum();
    assert!(rejections > 0, "with a third of the answers invalid, some must have been re-asked");
    // Three books from one brief with seeds 7, 8, 9 differ.
    let titles: std::collections::BTreeSet<String> = books
        .iter()
        .map(|b| b["chapters"][0]["scenes"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles.len(), 3);
}

#[test]
fn a_reader_that_goes_away_stops_write_quietly_and_the_book_is_still_written() {
    // `scriptorium write ... | head -1`: the summary is printed after the book is written, to
    // a pipe nobody reads any more. Before, `println!` panicked with a backtrace (exit 101).
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["write", example("fantasy.toml").to_str().unwrap(), "--out"])
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        o.status.success() || o.status.signal() == Some(13),
        "ended by SIGPIPE or with success, not {:?}: {err}",
        o.status
    );
    let d = &book_dirs(out.path())[0];
    assert!(d.join("manuscript.md").is_file() && d.join("book.json").is_file());
}

#[test]
fn the_same_brief_and_seed_write_the_same_book() {
    let dir = tempfile::tempdir().unwrap();
    let mut texts = Vec::new();
    for run_no in 0..2 {
        let out = dir.path().join(format!("out{run_no}"));
        let o = run(
            &[
                "write",
                example("nonfiction.toml").to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert!(o.status.success());
        let d = &book_dirs(&out)[0];
        texts.push(std::fs::read_to_string(d.join("manuscript.md")).unwrap());
    }
    assert_eq!(texts[0], texts[1]);
}

#[test]
fn a_worker_stopped_with_sigterm_finishes_its_step_and_exits() {
    let nats = NatsServer::start();
    let url = nats.url();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("scriptorium.toml");
    std::fs::write(
        &cfg,
        "[worker]\nshutdown_grace_secs = 10\npools = { all = 1 }\n\n[models.sim]\nlatency_ms = 1500\n",
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let out = tmp.path().join("out").display().to_string();
    let _c = Proc::start(
        &["--config", &cfg, "coordinator", "--nats", &url, "--out", &out],
        &tmp.path().join("c.log"),
        &[],
    );
    let mut w1 = Proc::start(
        &["--config", &cfg, "worker", "--nats", &url, "--id", "w1"],
        &tmp.path().join("w1.log"),
        &[],
    );
    wait_until(Duration::from_secs(30), "w1 to start", || {
        std::fs::read_to_string(&w1.log).is_ok_and(|l| l.contains("worker started"))
    });
    let o = run(&["submit", example("business.toml").to_str().unwrap(), "--nats", &url], &[]);
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // Wait until w1 is working on a step, then ask it to stop.
    let mut running = String::new();
    wait_until(Duration::from_secs(30), "a step in flight", || {
        let o = run(&["status", &id, "--nats", &url, "--json"], &[]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        running = v["current_steps"][0].as_str().unwrap_or_default().to_string();
        !running.is_empty()
    });
    let stopped_at = std::time::Instant::now();
    assert!(w1.terminate(Duration::from_secs(15)), "the worker exits within its grace period");
    let took = stopped_at.elapsed();
    let log = std::fs::read_to_string(&w1.log).unwrap();
    assert!(log.contains("worker stopped"), "{log}");
    // The step in flight was finished by w1 before it left, not abandoned.
    let o = run(&["status", &id, "--nats", &url, "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == running.as_str())
        .unwrap()
        .clone();
    assert_eq!(step["worker"], "w1", "{running} finished by w1 within {took:?}: {step}");
    // A new worker finishes the book.
    let _w2 = Proc::start(
        &["--config", &cfg, "worker", "--nats", &url, "--id", "w2"],
        &tmp.path().join("w2.log"),
        &[],
    );
    wait_until(Duration::from_secs(120), "the book to finish", || {
        let o = run(&["status", &id, "--nats", &url, "--json"], &[]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v["state"] == "done"
    });
}
