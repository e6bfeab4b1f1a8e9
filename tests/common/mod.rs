//! Shared helpers of the end-to-end tests: a real nats-server per test, the built binary,
//! polling waits, assertions on written books, and a recording HTTP proxy ([`recorder`]).
#![allow(dead_code)]

pub mod browser;
pub mod recorder;

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the `scriptorium` binary built for the tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_scriptorium")
}

/// The repository root (examples live there).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An example brief.
pub fn example(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A nats-server with JetStream on a free port and a temporary store, killed on drop: the one
/// launcher (`scriptorium_test_support::nats_server`), failing the test when it cannot start.
pub struct NatsServer(scriptorium_test_support::nats_server::NatsServer);

impl NatsServer {
    /// Starts a server and waits until JetStream is ready.
    pub fn start() -> Self {
        NatsServer(
            scriptorium_test_support::nats_server::NatsServer::start()
                .expect("nats-server must be installed (tests/run.sh installs it)"),
        )
    }

    /// Starts a server whose config also holds `extra` (authorization, TLS), and waits until
    /// JetStream is ready.
    pub fn start_with(extra: &str) -> Self {
        NatsServer(
            scriptorium_test_support::nats_server::NatsServer::start_with(extra)
                .expect("nats-server starts with the given config"),
        )
    }

    /// The client URL.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.0.restart().expect("nats-server restarts");
    }

    /// Kills the server.
    pub fn kill(&mut self) {
        self.0.kill();
    }
}

/// A child process killed on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Proc {
    /// Starts the binary with `args`, logging to `log`.
    pub fn start(args: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
        let file = std::fs::File::create(log).expect("log file");
        let mut cmd = Command::new(bin());
        cmd.args(args).stdout(Stdio::null()).stderr(file).env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc { child: cmd.spawn().expect("start scriptorium"), log: log.to_path_buf() }
    }

    /// The address its HTTP endpoints listen on, from its log (start it with an address on port
    /// 0, so no other process can own the port), once `/readyz` answers 200 there. Panics with
    /// the log's tail when the process exits first or `within` runs out.
    pub fn ready_http(&mut self, within: Duration) -> String {
        self.http_where(within, "/readyz")
    }

    /// [`Proc::ready_http`] with `/healthz`: the process is alive, ready or not.
    pub fn alive_http(&mut self, within: Duration) -> String {
        self.http_where(within, "/healthz")
    }

    fn http_where(&mut self, within: Duration, answering: &str) -> String {
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let bound = log.lines().find_map(|l| {
                let at = l.find("http endpoints listening")?;
                let addr = l[at..].split("addr=").nth(1)?.split_whitespace().next()?;
                Some(addr.replace("0.0.0.0:", "127.0.0.1:"))
            });
            if let Some(addr) = &bound
                && std::net::TcpStream::connect(addr).is_ok()
                && browser::http(addr, "GET", answering, None).0 == 200
            {
                return addr.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the process exited ({status}) before it was ready; its log:\n{}",
                    tail(&log)
                );
            }
            if start.elapsed() > within {
                panic!(
                    "not ready after {within:?} (listening on {bound:?}); its log:\n{}",
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to `within` for the exit; returns whether it exited.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last 40 lines of a log.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Longest a command run by [`run`] may take: a command that hangs fails its test with what
/// it printed, instead of holding the suite until CI's own limit.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// Runs the binary to completion (killed, and the test failed, after [`RUN_LIMIT`]).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    use std::io::Read;
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run scriptorium");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let status = wait_within(&mut child, RUN_LIMIT);
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let Some(status) = status else {
        panic!(
            "scriptorium {args:?} still running after {RUN_LIMIT:?}; killed. stderr:\n{}",
            tail(&String::from_utf8_lossy(&stderr))
        )
    };
    Output { status, stdout, stderr }
}

/// Waits for `child` to exit for at most `within`; kills it (and reaps it) and returns `None`
/// when it is still running then.
pub fn wait_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() >= within {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `cond` until it holds, panicking with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Book directories under `out` (staging directories excluded).
pub fn book_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    dirs.retain(|d| !d.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')));
    dirs.sort();
    dirs
}

/// Reads a book's `book.json`.
pub fn book_json(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("book.json")).expect("book.json");
    serde_json::from_str(&text).expect("book.json is JSON")
}

/// Checks one written book against its brief: every part present, counts right, names consistent.
pub fn assert_book(dir: &Path) -> Value {
    let book = book_json(dir);
    let brief = &book["brief"];
    let n = brief["chapters"].as_u64().unwrap() as usize;
    let title = book["title"].as_str().unwrap();
    assert!(!title.is_empty(), "{dir:?}: no title");
    let manuscript = std::fs::read_to_string(dir.join("manuscript.md")).expect("manuscript.md");
    assert!(manuscript.starts_with(&format!("# {title}\n")), "{dir:?}: manuscript title page");
    assert!(
        manuscript.contains(&format!("*by {}*", brief["author"].as_str().unwrap())),
        "{dir:?}: author"
    );
    assert!(manuscript.contains("## Contents"), "{dir:?}: table of contents");
    assert_eq!(manuscript.matches("\n## Chapter ").count(), n, "{dir:?}: chapters in manuscript");
    let files: Vec<_> =
        std::fs::read_dir(dir.join("chapters")).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(files.len(), n, "{dir:?}: chapter files");
    for f in &files {
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(text.split_whitespace().count() > 50, "{:?} is nearly empty", f.path());
    }
    let chapters = book["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), n, "{dir:?}: chapters in book.json");
    assert_eq!(book["outline"]["chapters"].as_array().unwrap().len(), n);
    let cast: Vec<&str> =
        book["cast"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cast.len() as u64, brief["characters"].as_u64().unwrap(), "{dir:?}: cast size");
    for (i, c) in chapters.iter().enumerate() {
        assert_eq!(c["number"].as_u64().unwrap() as usize, i + 1, "{dir:?}: chapter order");
        assert!(c["words"].as_u64().unwrap() > 0, "{dir:?}: chapter {} empty", i + 1);
        for name in c["characters"].as_array().unwrap() {
            let name = name.as_str().unwrap();
            assert!(
                cast.contains(&name),
                "{dir:?}: chapter {} names {name}, not in the cast {cast:?}",
                i + 1
            );
        }
        let scenes = c["scenes"].as_array().unwrap().len();
        let planned = book["outline"]["chapters"][i]["scenes"].as_array().unwrap().len();
        assert_eq!(scenes, planned, "{dir:?}: chapter {} scenes", i + 1);
        assert!((3..=6).contains(&planned));
    }
    let ai = brief["review_mode"] == "ai";
    assert_eq!(
        book["reviews"].as_array().unwrap().len(),
        if ai { n } else { 0 },
        "{dir:?}: reviews"
    );
    assert_eq!(
        book["world"].is_null(),
        !brief["worldbuilding"].as_bool().unwrap(),
        "{dir:?}: world"
    );
    for s in book["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "done", "{dir:?}: step {} not done", s["id"]);
    }
    // Every book the engine writes passes its own quality report.
    let quality: Value =
        serde_json::from_slice(&std::fs::read(dir.join("quality.json")).expect("quality.json"))
            .expect("quality.json is JSON");
    assert_eq!(
        quality["hard_failures"].as_array().map(Vec::len),
        Some(0),
        "{dir:?}: the book fails its quality report: {:#}",
        quality["hard_failures"]
    );
    assert_eq!(quality["chapters_present"].as_array().map(Vec::len), Some(n), "{dir:?}");
    let usage = &book["usage"];
    assert!(
        usage["calls"].as_u64().unwrap() > 0 || usage["cache_hits"].as_u64().unwrap() > 0,
        "{dir:?}: usage records no call and no cache hit"
    );
    if usage["cache_hits"].as_u64().unwrap() == 0 {
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    }
    book
}

/// Checks that `out` holds exactly the books of `briefs` (by project), each complete.
pub fn assert_books(out: &Path, projects: &[&str]) -> Vec<Value> {
    let dirs = book_dirs(out);
    assert_eq!(dirs.len(), projects.len(), "book directories in {out:?}: {dirs:?}");
    let books: Vec<Value> = dirs.iter().map(|d| assert_book(d)).collect();
    let mut got: Vec<&str> =
        books.iter().map(|b| b["brief"]["project"].as_str().unwrap()).collect();
    got.sort();
    let mut want = projects.to_vec();
    want.sort();
    assert_eq!(got, want);
    books
}

/// A `scriptorium sim-server` child process on a free port; killed on drop.
pub struct SimServerProc {
    /// The process.
    pub proc: Proc,
    /// `host:port` it listens on.
    pub addr: String,
}

impl SimServerProc {
    /// Starts `scriptorium sim-server --addr 127.0.0.1:0 EXTRA...` and reads its address.
    pub fn start(extra: &[&str], log: &Path) -> SimServerProc {
        use std::io::BufRead;
        let file = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(bin())
            .args(["sim-server", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("start sim-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sim-server prints its address");
        let addr = line.trim().trim_start_matches("http://").trim_end_matches("/v1").to_string();
        SimServerProc { proc: Proc { child, log: log.to_path_buf() }, addr }
    }

    /// The OpenAI base URL of the server.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The server's `/stats` counters.
    pub fn stats(&self) -> Value {
        serde_json::from_str(&http_get(&self.addr, "/stats")).expect("stats JSON")
    }
}

/// A plain HTTP/1.1 GET on loopback; the response body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    if buf.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return dechunk(&body);
    }
    body
}

/// The data of a body sent with `Transfer-Encoding: chunked`: size line, data, repeat.
pub fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
