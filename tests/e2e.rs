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
        status.as_array().unwrap().iter().map(|b| b["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["done", "done", "done"]);
    let _ = Duration::ZERO;
}
