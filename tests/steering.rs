//! Operators steering books, end to end with the real binary: a coordinator and a worker over a
//! real nats-server, the model the sim server (each book's requests told apart by its title in
//! the prompt), and the CLI an operator types. Approval gates survive a coordinator restart, a
//! rejection's note reaches the model, an edited outline is used by every chapter; a cancel
//! stops a book's requests; a rewrite keeps the chapters before it byte for byte; `write` asks
//! at the terminal; the dashboard's buttons work in headless Chromium.

mod common;

use common::browser::{Driver, http};
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(90);

/// A fleet: nats-server, sim server, coordinator (with its dashboard), one worker.
struct Fleet {
    nats: NatsServer,
    sim: SimServerProc,
    dir: tempfile::TempDir,
    config: PathBuf,
    http: String,
    coordinator: Option<Proc>,
    _worker: Proc,
}

const TOKEN: &str = "op-token-for-tests-0042";

impl Fleet {
    fn start(latency_ms: u32) -> Fleet {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let sim = SimServerProc::start(
            &["--latency-ms", &latency_ms.to_string()],
            &dir.path().join("sim.log"),
        );
        let config = dir.path().join("scriptorium.toml");
        std::fs::write(
            &config,
            format!(
                "[coordinator.routes]\ndefault = \"openai/sim\"\n\n[models.providers.openai]\n\
                 protocol = \"openai\"\nbase_url = \"{}\"\n",
                sim.base_url()
            ),
        )
        .unwrap();
        let http = String::new();
        let url = nats.url();
        let worker = Proc::start(
            &["--config", config.to_str().unwrap(), "worker", "--nats", &url, "--id", "w1"],
            &dir.path().join("worker.log"),
            &[("OPENAI_API_KEY", "sk-test-dummy-0000")],
        );
        let mut fleet = Fleet { nats, sim, dir, config, http, coordinator: None, _worker: worker };
        fleet.start_coordinator();
        fleet
    }

    fn start_coordinator(&mut self) {
        let out = self.dir.path().join("books");
        let log = self.dir.path().join(format!("coordinator-{}.log", clock_ms()));
        let mut coordinator = Proc::start(
            &[
                "--config",
                self.config.to_str().unwrap(),
                "coordinator",
                "--nats",
                &self.nats.url(),
                "--out",
                out.to_str().unwrap(),
                "--http-addr",
                "127.0.0.1:0",
            ],
            &log,
            &[("SCRIPTORIUM_HTTP_TOKEN", TOKEN)],
        );
        self.http = coordinator.ready_http(WITHIN);
        self.coordinator = Some(coordinator);
    }

    fn stop_coordinator(&mut self) {
        if let Some(mut c) = self.coordinator.take() {
            assert!(c.terminate(Duration::from_secs(20)), "the coordinator stops on SIGTERM");
        }
    }

    /// Runs a CLI command against this fleet; its stdout, after asserting it succeeded.
    fn cli(&self, args: &[&str]) -> String {
        let url = self.nats.url();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--nats", &url]);
        let o = run(&all, &[("SCRIPTORIUM_OPERATOR", "ann@desk")]);
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{args:?} failed: {out}{err}");
        out.into_owned()
    }

    /// Submits `brief` (TOML text); the book's id.
    fn submit(&self, brief: &str) -> String {
        let path = self.dir.path().join(format!("brief-{}.toml", clock_ms()));
        std::fs::write(&path, brief).unwrap();
        self.cli(&["--config", self.config.to_str().unwrap(), "submit", path.to_str().unwrap()])
            .trim()
            .to_string()
    }

    fn status(&self, id: &str) -> Value {
        serde_json::from_str(&self.cli(&["status", id, "--json"])).unwrap()
    }

    fn wait_state(&self, id: &str, state: &str) -> Value {
        let mut last = Value::Null;
        let start = std::time::Instant::now();
        while start.elapsed() < WITHIN {
            last = self.status(id);
            if last["state"] == state {
                return last;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("book {id} never reached {state}: {last}");
    }

    /// The requests the sim server saw for the book titled `title`: (kind, user message).
    fn requests(&self, title: &str) -> Vec<(String, String)> {
        let log: Vec<Value> = serde_json::from_str(&http_get(&self.sim.addr, "/requests")).unwrap();
        log.iter()
            .map(|r| {
                (r["kind"].as_str().unwrap().to_string(), r["user"].as_str().unwrap().to_string())
            })
            .filter(|(_, user)| user.contains(title))
            .collect()
    }

    fn book_dir(&self, id: &str) -> PathBuf {
        book_dirs(&self.dir.path().join("books"))
            .into_iter()
            .find(|d| d.file_name().unwrap().to_string_lossy().ends_with(id))
            .unwrap_or_else(|| panic!("no book directory for {id}"))
    }
}

fn clock_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn brief(title: &str, extra: &str) -> String {
    format!(
        "title = \"{title}\"\ncategory = \"fiction\"\ngenre = \"fantasy\"\n\
         description = \"A ferry keeper and a storm.\"\nchapters = 3\ncharacters = 2\n\
         worldbuilding = false\nwords_per_chapter = 200\nseed = 3\n{extra}"
    )
}

#[test]
fn a_gate_survives_a_restart_a_note_reaches_the_model_and_an_edited_outline_is_used() {
    let mut f = Fleet::start(0);
    let title = "The Gated Ferry";
    let id = f.submit(&brief(title, "approve = [\"outline\"]\n"));
    f.wait_state(&id, "awaiting_approval");
    let chapters = |f: &Fleet| f.requests(title).iter().filter(|(k, _)| k == "chapter").count();

    // The coordinator stops and starts again: the book still waits at its gate.
    f.stop_coordinator();
    f.start_coordinator();
    std::thread::sleep(Duration::from_secs(2));
    let s = f.status(&id);
    assert_eq!(s["state"], "awaiting_approval", "{s}");
    assert_eq!(chapters(&f), 0, "nothing past the gate");
    wait_until(WITHIN, "the books gauge counts the waiting book", || {
        let metrics = http(&f.http, "GET", "/metrics", None).1;
        metrics.lines().any(|l| l == "scriptorium_books{state=\"awaiting_approval\"} 1")
    });

    // Rejected with a note: the new outline request carries it.
    let note = "Put the storm in chapter two.";
    f.cli(&["reject", &id, "--note", note]);
    wait_until(WITHIN, "a second outline request", || {
        f.requests(title).iter().filter(|(k, _)| k == "outline").count() == 2
    });
    let outlines: Vec<String> =
        f.requests(title).into_iter().filter(|(k, _)| k == "outline").map(|(_, u)| u).collect();
    assert!(!outlines[0].contains(note) && outlines[1].contains(note), "{}", outlines[1]);
    f.wait_state(&id, "awaiting_approval");

    // Replaced by hand (the dashboard's book view serves the answer waiting), approved at once.
    let (code, body) = http(&f.http, "GET", &format!("/api/books/{id}"), None);
    assert_eq!(code, 200, "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    let mut outline = view["awaiting_answers"][0]["answer"].clone();
    assert_eq!(view["awaiting_answers"][0]["step"], "outline", "{view}");
    for (i, t) in ["Lanterns at Low Tide", "The Storm Ledger", "Harbour Light"].iter().enumerate() {
        outline["chapters"][i]["title"] = json!(t);
    }
    let file = f.dir.path().join("outline.json");
    std::fs::write(&file, outline.to_string()).unwrap();
    let said =
        f.cli(&["edit", &id, "--step", "outline", "--file", file.to_str().unwrap(), "--approve"]);
    assert!(said.contains("applied by ann@desk"), "{said}");
    f.wait_state(&id, "done");

    // Every chapter was asked with its edited title, and the book has them.
    let asked: Vec<String> =
        f.requests(title).into_iter().filter(|(k, _)| k == "chapter").map(|(_, u)| u).collect();
    assert!(asked.len() >= 3, "{}", asked.len());
    for (n, t) in ["Lanterns at Low Tide", "The Storm Ledger", "Harbour Light"].iter().enumerate() {
        assert!(
            asked.iter().any(|u| u.contains(&format!("Chapter title: {t}"))),
            "chapter {} was not asked as {t:?}",
            n + 1
        );
    }
    let manuscript = std::fs::read_to_string(f.book_dir(&id).join("manuscript.md")).unwrap();
    assert!(manuscript.contains("The Storm Ledger"), "{manuscript}");
    let book = book_json(&f.book_dir(&id));
    let log: Vec<(&str, &str, &str)> = book["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let get = |k: &str| a[k].as_str().unwrap_or("");
            (get("action"), get("step"), get("by"))
        })
        .collect();
    assert_eq!(log, [("reject", "", "ann@desk"), ("edit", "outline", "ann@desk")]);
}

#[test]
fn a_cancel_during_chapter_drafting_stops_the_books_requests() {
    let f = Fleet::start(300);
    let title = "The Cancelled Ferry";
    let id = f.submit(&brief(title, ""));
    wait_until(WITHIN, "chapter drafting", || {
        f.requests(title).iter().any(|(k, _)| k == "chapter")
    });
    f.cli(&["cancel", &id]);
    let at_cancel = f.requests(title).len();
    let s = f.wait_state(&id, "cancelled");
    let attempts: Vec<Value> =
        s["steps"].as_array().unwrap().iter().map(|s| s["attempts"].clone()).collect();
    // Long enough for several more steps at 300 ms a request had anything gone on.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(f.requests(title).len(), at_cancel, "the model server saw no new request");
    let later = f.status(&id);
    let again: Vec<Value> =
        later["steps"].as_array().unwrap().iter().map(|s| s["attempts"].clone()).collect();
    assert_eq!(attempts, again, "no step of the book was dispatched after the cancel");
    assert_eq!(later["state"], "cancelled");
}

/// The actions of book `id` as its stored record has them (read through the dashboard's view).
fn actions_of(f: &Fleet, id: &str) -> Value {
    let (code, body) = http(&f.http, "GET", &format!("/api/books/{id}"), None);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["actions"].clone()
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            for (k, v) in files(&p) {
                out.insert(format!("{}/{k}", e.file_name().to_string_lossy()), v);
            }
        } else {
            out.insert(e.file_name().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn a_rewrite_from_chapter_two_keeps_chapter_one_and_drafts_three_from_the_persons_two() {
    let f = Fleet::start(0);
    let title = "The Rewritten Ferry";
    let id = f.submit(&brief(title, ""));
    f.wait_state(&id, "done");
    let dir = f.book_dir(&id);
    let before = files(&dir);
    let chapter = |files: &std::collections::BTreeMap<String, Vec<u8>>, n: &str| {
        files.iter().find(|(k, _)| k.starts_with(&format!("chapters/{n}-"))).map(|(_, v)| v.clone())
    };
    let closing = "The ferry bell rang once, and Ann finally let go of the rope.";
    let text = format!(
        "# The Hand of the Keeper\n\nAnn read the water by lamplight.\n\n* * *\n\n{closing}\n"
    );
    let file = f.dir.path().join("ch2.md");
    std::fs::write(&file, text).unwrap();
    let asked_before = f.requests(title).len();
    let out =
        f.cli(&["rewrite", &id, "--from-chapter", "2", "--file", file.to_str().unwrap(), "--wait"]);
    assert!(out.contains("applied by ann@desk"), "{out}");
    let after = files(&dir);

    assert_eq!(chapter(&before, "01"), chapter(&after, "01"), "chapter 1 byte for byte");
    let two = String::from_utf8(chapter(&after, "02").expect("chapter 2")).unwrap();
    assert!(two.contains("Ann read the water by lamplight.") && two.contains(closing), "{two}");
    assert!(two.contains("The Hand of the Keeper"), "{two}");
    assert_ne!(chapter(&before, "03"), chapter(&after, "03"), "chapter 3 drafted again");
    // Chapter 3 was asked from the person's chapter 2: its closing lines are in the prompt.
    let new: Vec<(String, String)> = f.requests(title).into_iter().skip(asked_before).collect();
    let three = new.iter().find(|(k, u)| k == "chapter" && u.contains("- Chapter: 3"));
    let (_, prompt) = three.expect("chapter 3 was asked again");
    assert!(prompt.contains(closing), "chapter 3's prompt follows chapter 2: {prompt}");
    assert!(
        !new.iter().any(|(k, u)| k == "chapter" && u.contains("- Chapter: 1\n")),
        "chapter 1 was not asked again"
    );
    // The previous version stays beside the new one.
    let kept = dir.with_file_name(format!("{}.v1", dir.file_name().unwrap().to_string_lossy()));
    assert_eq!(files(&kept), before, "the first version, kept whole");
    let book: Value = serde_json::from_slice(&after["book.json"]).unwrap();
    assert_eq!(book["version"], 2);
    assert!(
        book["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "rewrite" && a["by"] == "ann@desk"),
        "{}",
        book["actions"]
    );
}

#[test]
fn the_dashboards_approve_and_cancel_buttons_work_in_headless_chromium() {
    let driver = Driver::start();
    let f = Fleet::start(200);
    let title = "The Dashboard Ferry";
    let id = f.submit(&brief(title, "approve = [\"concept\"]\n"));
    f.wait_state(&id, "awaiting_approval");

    // Actions need the token; reads do not.
    let (code, _) = http(&f.http, "POST", &format!("/api/books/{id}/approve"), Some(&json!({})));
    assert_eq!(code, 401);

    driver.cmd("POST", "/url", Some(&json!({"url": format!("http://{}/", f.http)})));
    driver.js(&format!(
        "const t = document.getElementById('token'); t.value = '{TOKEN}'; t.dispatchEvent(new Event('input')); window.confirm = () => true;"
    ));
    let approve = format!("[data-book='{id}'][data-step='concept'] button.approve");
    wait_until(WITHIN, "the concept waiting with its approve button", || {
        driver.js(&format!("return !!document.querySelector({approve:?});")) == json!(true)
    });
    assert!(driver.text(&format!("[data-book='{id}'] .answer")).contains(title));
    driver.js(&format!("document.querySelector({approve:?}).click();"));
    wait_until(WITHIN, "the book goes on past its gate", || {
        f.status(&id)["state"] != "awaiting_approval"
    });
    let cancel = format!("tr[data-book='{id}'] button.cancel");
    wait_until(WITHIN, "the cancel button", || {
        driver.js(&format!("return !!document.querySelector({cancel:?});")) == json!(true)
    });
    driver.js(&format!("document.querySelector({cancel:?}).click();"));
    f.wait_state(&id, "cancelled");
    wait_until(WITHIN, "the dashboard shows it cancelled", || {
        driver.text(&format!("tr[data-book='{id}'] .state")) == "cancelled"
    });
    let rec: Value = serde_json::from_str(&f.cli(&["status", &id, "--json"])).unwrap();
    let actions =
        if rec["actions"].is_array() { rec["actions"].clone() } else { actions_of(&f, &id) };
    let by: Vec<(&str, &str)> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["by"].as_str().unwrap()))
        .collect();
    assert_eq!(by, [("approve", "dashboard"), ("cancel", "dashboard")]);
}

#[test]
fn write_asks_at_the_terminal_and_takes_the_answers() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(&path, brief("The Asked Ferry", "approve = [\"concept\", \"outline\"]\n"))
        .unwrap();
    let out = dir.path().join("books");
    let cmd = format!("{} write {} --out {}", bin(), path.display(), out.display());
    // `script` gives the command a terminal; the test answers its questions as they come.
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    let questions = |s: &str| s.matches("[a]pprove, [r]eject").count();
    let mut answer = |n: usize, what: &str| {
        wait_until(WITHIN, "the question", || questions(&seen.lock().unwrap()) >= n);
        stdin.write_all(what.as_bytes()).unwrap();
        stdin.flush().unwrap();
    };
    answer(1, "a\n");
    answer(2, "r\nMake the second chapter a storm.\n");
    answer(3, "a\n");
    let status = wait_within(&mut child, Duration::from_secs(600)).expect("write ends");
    reader.join().unwrap();
    let text = seen.lock().unwrap().clone();
    assert!(status.success(), "{text}");
    assert!(text.contains("waits for your approval of its concept"), "{text}");
    assert!(text.contains("waits for your approval of its outline"), "{text}");
    let book = assert_books(&out, &["The Asked Ferry"]).remove(0);
    let log: Vec<(&str, &str)> = book["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["action"].as_str().unwrap_or(""), a["step"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(log, [("approve", "concept"), ("reject", "outline"), ("approve", "outline")]);
}
