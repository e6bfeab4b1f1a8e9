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
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long anything may take on a loaded machine.
const WITHIN: Duration = Duration::from_secs(120);

/// A nats-server, its URL, a temporary directory and a config file in it (`extra` appended).
fn fleet(extra: &str) -> (NatsServer, String, tempfile::TempDir, String) {
    let nats = NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), extra);
    (nats, url, dir, cfg)
}

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

/// Runs the binary, expecting it to refuse with exit code 2 and `says` on stderr; the stderr.
fn refused(args: &[&str], says: &str) -> String {
    let o = run(args, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert!(e.contains(says), "{args:?}: {e}");
    e
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
    // Model calls slow enough that the books are still running over several reads: at 20 ms
    // the fifty books finished within three reads once steps reached agents as they arrived.
    let (_nats, url, dir, cfg) = fleet("\n[models.sim]\nlatency_ms = 100\n");
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
                    assert!(
                        start.elapsed() < WITHIN * 2,
                        "{finished} books done after {reads} reads"
                    );
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
    let state = ["status", "--nats", &url, "--state", "finished"];
    refused(&state, "must be one of queued, running, awaiting_approval");

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

/// The fantasy example routed to a provider nobody configured.
fn unknown_provider_brief(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example("fantasy.toml")).unwrap();
    assert!(!text.contains("[models]"), "the example names no models");
    let path = dir.join("ghost.toml");
    std::fs::write(&path, format!("{text}\n[models]\ndefault = \"nosuchprovider/x\"\n")).unwrap();
    path
}

#[test]
fn without_a_coordinator_submit_and_status_say_so_and_the_books_wait_for_one() {
    let (_nats, url, dir, cfg) = fleet("");
    let fantasy = example("fantasy.toml").display().to_string();

    // A route to a provider no configuration has: refused before anything is enqueued, by
    // `submit` and by `write`, naming the field and the rule.
    let ghost = unknown_provider_brief(dir.path()).display().to_string();
    let o = run(&["--config", &cfg, "submit", &fantasy, &ghost, "--nats", &url], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("ghost.toml: brief field `models.default`: provider \"nosuchprovider\" is not configured"), "{e}");
    assert!(
        e.contains("known: anthropic,") && e.contains("[models.providers.nosuchprovider]"),
        "{e}"
    );
    assert!(stdout(&o).is_empty(), "no book id: {}", stdout(&o));
    let out = dir.path().join("written");
    let o = run(&["write", &ghost, "--out", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("brief field `models.default`"), "{}", stderr(&o));
    assert!(book_dirs(&out).is_empty());
    let s = status(&url);
    assert_eq!(s["coordinator"]["submissions_waiting"], 0, "nothing enqueued: {s}");

    // No coordinator: `submit` says so, the books wait, `status` shows them waiting.
    let o = run(&["--config", &cfg, "submit", &fantasy, "--books", "2", "--nats", &url], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 2);
    assert!(stderr(&o).contains("no coordinator is alive"), "{}", stderr(&o));
    assert!(stderr(&o).contains("(2 waiting) and is taken when one starts"), "{}", stderr(&o));
    let s = status(&url);
    assert_eq!(s["coordinator"]["alive"], false, "{s}");
    assert_eq!(s["coordinator"]["submissions_waiting"], 2, "{s}");
    assert!(ids_of(&s).is_empty(), "not recorded before a coordinator takes them");
    let text = stdout(&run(&["status", "--nats", &url], &[]));
    assert!(
        text.ends_with(
            "coordinator: none alive (no heartbeat); 2 submissions waiting, taken when one starts\n"
        ),
        "{text}"
    );
    // `submit --wait` says so too, and its timeout says why.
    let started = Instant::now();
    let o = run(&["submit", &fantasy, "--nats", &url, "--wait", "--timeout", "3"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.lines().next().unwrap().starts_with("no coordinator is alive"), "{e}");
    assert!(
        e.contains("error: no coordinator is alive") && e.contains("timed out waiting for 1 book"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let waiting: Vec<String> =
        ids.iter().cloned().chain(stdout(&o).lines().map(str::to_string)).collect();

    // A coordinator starts: it is alive, it takes what waited, the books are written.
    let http = format!("127.0.0.1:{}", free_port());
    let mut c = coordinator(&cfg, &url, dir.path(), &["--http-addr", &http]);
    let _w = worker(&cfg, &url, dir.path(), "w1");
    wait_until(WITHIN, "a live coordinator", || alive(&url));
    wait_until(WITHIN, "the waiting books written", || {
        let s = status(&url);
        let done: BTreeSet<String> = s["books"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["state"] == "done")
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect();
        done == waiting.iter().cloned().collect()
    });
    let s = status(&url);
    assert_eq!(s["coordinator"]["submissions_waiting"], 0, "{s}");
    let me = &s["coordinator"]["coordinators"][0];
    assert_eq!(
        (me["alive"].as_bool(), me["pid"].as_u64()),
        (Some(true), Some(u64::from(c.child.id())))
    );
    let text = stdout(&run(&["status", "--nats", &url], &[]));
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("coordinator: alive: coordinator-")
            && last.ends_with("; 0 submissions waiting"),
        "{text}"
    );
    // The dashboard's snapshot says the same.
    wait_until(WITHIN, "the dashboard's snapshot", || {
        let snap: Value =
            serde_json::from_str(&http_get(&http, "/api/snapshot")).unwrap_or_default();
        snap["coordinator"]["alive"] == true && snap["coordinator"]["submissions_waiting"] == 0
    });
    assert!(http_get(&http, "/").contains("id=\"coordinator\""));
    // A `submit --wait` with a coordinator alive says nothing of the kind.
    let o = run(&["submit", &fantasy, "--nats", &url, "--wait", "--timeout", "120"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("no coordinator"), "{}", stderr(&o));

    // A coordinator that stops cleanly deletes its heartbeat: none alive at once.
    assert!(c.terminate(Duration::from_secs(30)), "the coordinator stops on SIGTERM");
    let s = status(&url);
    assert_eq!(s["coordinator"]["alive"], false, "{s}");
    assert_eq!(s["coordinator"]["coordinators"], serde_json::json!([]), "{s}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Runs `retry BOOK --wait` and returns its exit code, with how long after the book's end
/// (as its record has it) the command returned.
fn retry_wait(url: &str, book: &str) -> (Option<i32>, i64) {
    let o = run(&["retry", book, "--nats", url, "--wait"], &[("SCRIPTORIUM_OPERATOR", "tester")]);
    let returned = now_ms();
    let rec = json(&["status", book, "--nats", url, "--json"]);
    let finished = rec["finished_unix_ms"].as_i64().unwrap();
    assert!(finished > 0, "{rec}");
    (o.status.code(), returned - finished)
}

fn workers(url: &str) -> Vec<String> {
    let w = json(&["workers", "--nats", url, "--json"]);
    w["workers"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().into()).collect()
}

#[test]
fn retry_wait_returns_when_the_book_ends_and_status_lists_who_retried() {
    let (_nats, url, dir, cfg) = fleet("[coordinator]\nmax_attempts = 1\n");
    let failing = dir.path().join("failing");
    std::fs::create_dir_all(&failing).unwrap();
    let bad = config(&failing, "[models.sim]\nbad_rate = 1.0\n");
    let _c = coordinator(&cfg, &url, dir.path(), &[]);
    let mut w1 = worker(&bad, &url, dir.path(), "w1");
    let brief = example("business.toml").display().to_string();
    let o = run(
        &["submit", &brief, "--nats", &url, "--chapters", "1", "--wait", "--timeout", "120"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "every answer breaks a rule: {}", stderr(&o));
    let book = stdout(&o).lines().next().unwrap().to_string();

    // Failed again: `retry --wait` returns as the book ends, not half a minute later.
    let (code, late_ms) = retry_wait(&url, &book);
    assert_eq!(code, Some(1));
    assert!(late_ms < 3_000, "returned {late_ms} ms after the book failed again");

    // A worker stopped cleanly leaves `workers` at once.
    assert!(workers(&url).contains(&"w1".to_string()));
    assert!(w1.terminate(Duration::from_secs(30)), "w1 stops on SIGTERM");
    assert!(!workers(&url).contains(&"w1".to_string()), "w1 still listed after a clean stop");

    // Done this time, as soon as it is.
    let _w2 = worker(&cfg, &url, dir.path(), "w2");
    let (code, late_ms) = retry_wait(&url, &book);
    assert_eq!(code, Some(0));
    assert!(late_ms < 3_000, "returned {late_ms} ms after the book was done");

    // `status BOOK` shows its state and who retried it, when.
    let rec = json(&["status", &book, "--nats", &url, "--json"]);
    assert_eq!(rec["state"], "done");
    let actions = rec["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{rec}");
    for a in actions {
        assert_eq!(
            (a["action"].as_str(), a["by"].as_str()),
            (Some("retry"), Some("tester")),
            "{a}"
        );
        assert!(a.get("refused").is_none(), "{a}");
    }
    let text = stdout(&run(&["status", &book, "--nats", &url], &[]));
    assert!(text.contains("state     done\n"), "{text}");
    let rows: Vec<&str> = text.lines().skip_while(|l| *l != "ACTIONS").skip(2).take(2).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows.iter().all(|r| r.contains(" tester ") && r.contains(" retry ")), "{text}");
    // A retry the book does not allow is refused before it is sent.
    refused(&["retry", &book, "--nats", &url], "is done: name a --step");
}

#[test]
fn worker_ids_are_checked_and_unique_among_live_workers() {
    let (_nats, url, dir, cfg) = fleet("");

    // An id that is not an id: refused at start with the rule, before anything else.
    let started = Instant::now();
    let o = run(&["--config", &cfg, "worker", "--nats", &url, "--id", "w 1"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "error: worker id \"w 1\": ids are 1 to 128 letters, digits, - or _"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The id of a live worker: refused at start, naming the live one.
    let w1 = worker(&cfg, &url, dir.path(), "w1");
    wait_until(WITHIN, "w1 in `workers`", || workers(&url).contains(&"w1".to_string()));
    let o = run(&["--config", &cfg, "worker", "--nats", &url, "--id", "w1"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    let line = e.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{e}"));
    assert!(line.starts_with("error: worker id \"w1\" is taken by a live worker (host "), "{e}");
    assert!(line.contains(&format!("pid {}", w1.child.id())), "{e}");
    assert_eq!(workers(&url), ["w1"]);

    // A worker killed outright leaves a fresh heartbeat behind; the same id started again on
    // this machine takes it over (the process it names is gone), as a restarted container does.
    let mut w1 = w1;
    let _ = w1.child.kill();
    let _ = w1.child.wait();
    let mut again = worker(&cfg, &url, dir.path(), "w1");
    let pid = u64::from(again.child.id());
    wait_until(WITHIN, "w1 started again", || {
        let w = json(&["workers", "--nats", &url, "--json"]);
        w["workers"][0]["pid"].as_u64() == Some(pid)
    });
    assert!(again.terminate(Duration::from_secs(30)));
    // At once: within seconds of the exit (a loaded machine delays the listing),
    // never the heartbeat's 15 s until it is lost nor its expiry.
    wait_until(Duration::from_secs(10), "a clean stop leaves `workers` at once", || {
        workers(&url).is_empty()
    });
}

#[test]
fn every_tool_fails_fast_on_a_dead_nats_url_with_one_line() {
    let dead = format!("nats://127.0.0.1:{}", free_port());
    let brief = example("fantasy.toml").display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["status", "b1"],
        vec!["submit", &brief],
        vec!["retry", "b1"],
        vec!["queues"],
        vec!["workers"],
        vec!["dead-letters"],
        vec!["dead-letters", "--purge"],
        vec!["approve", "b1"],
        vec!["cancel", "b1"],
        vec!["pause", "b1"],
        vec!["resume", "b1"],
    ];
    let runs: Vec<_> = commands
        .into_iter()
        .map(|args| {
            let mut args: Vec<String> = args.into_iter().map(String::from).collect();
            args.extend(["--nats".into(), dead.clone()]);
            std::thread::spawn(move || {
                let started = Instant::now();
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let o = run(&refs, &[]);
                (args, o, started.elapsed())
            })
        })
        .collect();
    for r in runs {
        let (args, o, took) = r.join().unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(took < Duration::from_secs(8), "{args:?} took {took:?}");
        let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {e}");
        assert!(lines[0].starts_with("error: no NATS server answered within 2s"), "{args:?}: {e}");
        assert!(lines[0].contains(&dead), "{args:?}: names the URL: {e}");
    }
}

#[test]
fn dead_letters_are_purged_by_queue_and_replayed_when_their_reader_would_take_them() {
    let (_nats, url, dir, cfg) = fleet("");
    // Dead letters as the fleet leaves them: a submission given up while NATS was away (whole
    // and valid), a garbled one, a garbled step and a result.
    let submission = {
        use scriptorium_proto::prost::Message as _;
        let brief = scriptorium_coordinator::brief::load(&example("fantasy.toml")).unwrap();
        let msg = scriptorium_proto::v1::SubmitBook {
            book_id: "replayed-1".into(),
            brief: Some(brief),
            ..Default::default()
        };
        msg.encode_to_vec()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = scriptorium_proto::transport::NatsOptions::default();
        let bus = scriptorium_proto::Bus::connect(&url, opts).await.unwrap();
        let letters: [(&str, Vec<u8>); 4] = [
            ("submit", submission),
            ("submit", vec![0xff; 8]),
            ("chapter", vec![0xff; 8]),
            ("results", vec![0xff; 8]),
        ];
        for (queue, payload) in letters {
            bus.dead_letter(queue, payload.into(), "test").await.unwrap();
        }
    });
    let list = |url: &str| -> Vec<(u64, String)> {
        let v = json(&["dead-letters", "--nats", url, "--json"]);
        let rows = v.as_array().unwrap().iter();
        rows.map(|d| (d["seq"].as_u64().unwrap(), d["queue"].as_str().unwrap().into())).collect()
    };
    let pairs = |v: &[(u64, &str)]| v.iter().map(|(s, q)| (*s, q.to_string())).collect::<Vec<_>>();
    assert_eq!(list(&url), pairs(&[(1, "submit"), (2, "submit"), (3, "chapter"), (4, "results")]));

    // What its reader would give up again is refused, with the reason, and stays.
    let replay = ["dead-letters", "--nats", &url, "--replay", "2"];
    refused(&replay, "dead letter 2 cannot be replayed: undecodable submission");
    let o = run(&["dead-letters", "--nats", &url, "--replay", "9"], &[]);
    assert!(stderr(&o).contains("no dead letter with sequence 9"), "{}", stderr(&o));
    assert_eq!(list(&url).len(), 4);

    // A whole submission goes back on its queue, original payload: a coordinator writes it.
    let o = run(&["dead-letters", "--nats", &url, "--replay", "1"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "dead letter 1 replayed on queue submit (book replayed-1)\n");
    assert_eq!(list(&url), pairs(&[(2, "submit"), (3, "chapter"), (4, "results")]));
    assert_eq!(status(&url)["coordinator"]["submissions_waiting"], 1);
    let _c = coordinator(&cfg, &url, dir.path(), &[]);
    let _w = worker(&cfg, &url, dir.path(), "w1");
    wait_until(WITHIN, "the replayed book written", || {
        let o = run(&["status", "replayed-1", "--nats", &url, "--json"], &[]);
        o.status.success()
            && serde_json::from_slice::<Value>(&o.stdout).is_ok_and(|v| v["state"] == "done")
    });

    // Purged by queue, then all; a queue that does not exist is refused with the known ones.
    let o = run(&["dead-letters", "--nats", &url, "--purge", "--queue", "chapter"], &[]);
    assert_eq!(stdout(&o), "1 dead letters of queue chapter purged\n", "{}", stderr(&o));
    assert_eq!(list(&url), pairs(&[(2, "submit"), (4, "results")]));
    let purge = ["dead-letters", "--nats", &url, "--purge", "--queue", "chapters"];
    refused(&purge, "unknown queue \"chapters\" (queues: concept,");
    let o = run(&["dead-letters", "--nats", &url, "--purge"], &[]);
    assert_eq!(stdout(&o), "2 dead letters purged\n", "{}", stderr(&o));
    assert!(list(&url).is_empty());
}

#[test]
fn config_errors_name_line_and_column_and_each_view_describes_its_own_interval() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[worker]\nheartbeat_secs = 1\npools = { all = }\n").unwrap();
    let o = run(&["--config", bad.to_str().unwrap(), "status"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!(
            "error: config {}: invalid TOML at line 3, column 17",
            bad.display()
        )),
        "{e}"
    );
    std::fs::write(&bad, "[worker]\nheartbeat_sec = 1\n").unwrap();
    let e = stderr(&run(&["--config", bad.to_str().unwrap(), "status"], &[]));
    assert!(e.contains("invalid TOML at line 2, column 1: unknown field `heartbeat_sec`"), "{e}");

    let help = |cmd: &str| stdout(&run(&[cmd, "--help"], &[]));
    let interval = |text: &str| {
        let at = text.find("--interval").unwrap_or_else(|| panic!("{text}"));
        text[at..].split("\n  -").next().unwrap().to_string()
    };
    let workers = interval(&help("workers"));
    assert!(workers.contains("Seconds between refreshes with --watch"), "{workers}");
    assert!(!workers.contains("steps per minute"), "{workers}");
    assert!(interval(&help("queues")).contains("steps per minute"));
}
