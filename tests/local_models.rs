//! Whole books on small local models: the real binary against a `scriptorium sim-server` with
//! a 4,096-token context window, as a small model behind llama.cpp's server has. The server
//! counts every request and refuses or cuts those that do not fit, as llama.cpp does.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const WINDOW: &str = "4096";

/// The original tool's 3-chapter book: about 37,000 tokens.
const ORIGINAL_TOKENS: u64 = 37_000;

/// Writes `brief` through the built-in `llamacpp` provider pointed at `srv`; the provider reads
/// the window from the server's `/props`.
fn write_local(
    srv: &SimServerProc,
    brief: &Path,
    out: &Path,
    config: Option<&Path>,
) -> std::process::Output {
    let (brief, out) = (brief.display().to_string(), out.display().to_string());
    let mut args =
        vec!["write", &brief, "--provider", "llamacpp", "--model", "local", "--out", &out];
    let config = config.map(|c| c.display().to_string());
    if let Some(c) = &config {
        args.extend(["--config", c]);
    }
    args.push("--no-cache");
    let base = srv.base_url();
    run(&args, &[("LLAMACPP_BASE_URL", &base), ("RUST_LOG", "scriptorium_worker=info")])
}

fn stat(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or_else(|| panic!("no {key} in {stats}"))
}

/// Nothing sent to the server was larger than its window, refused, or cut off by it.
fn assert_fitted(stats: &Value) {
    assert_eq!(stat(stats, "context_window"), 4096, "{stats}");
    assert_eq!(stat(stats, "context_exceeded"), 0, "a prompt exceeded the window: {stats}");
    assert_eq!(stat(stats, "over_window"), 0, "prompt + max_tokens exceeded the window: {stats}");
    assert_eq!(stat(stats, "window_full"), 0, "an answer was cut by the window: {stats}");
    assert!(stat(stats, "largest_request") <= 4096, "{stats}");
    assert_eq!(stat(stats, "schema_over_room"), 0, "a schema allowed a longer answer: {stats}");
    assert_eq!(stat(stats, "requests"), stat(stats, "completions"), "{stats}");
}

fn only_book(out: &Path) -> (PathBuf, Value) {
    let dirs = book_dirs(out);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let book = assert_book(&dirs[0]);
    (dirs[0].clone(), book)
}

fn step<'a>(book: &'a Value, id: &str) -> &'a Value {
    book["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()
}

#[test]
fn an_eight_chapter_book_completes_in_a_4096_token_window() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(&["--context-window", WINDOW], &dir.path().join("sim.log"));
    let out = tempfile::tempdir().unwrap();
    let o = write_local(&srv, &example("fantasy-8.toml"), out.path(), None);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "write failed: {stderr}");
    assert!(stderr.contains("context window reported by the server"), "{stderr}");
    let (_, book) = only_book(out.path());
    assert_eq!(book["chapters"].as_array().unwrap().len(), 8);
    assert_eq!(book["cast"].as_array().unwrap().len(), 3);
    assert!(book["world"].is_object());
    let stats = srv.stats();
    assert_fitted(&stats);
    // Every call the book records is one the server answered, with the server's token counts.
    let usage = &book["usage"];
    assert_eq!(usage["calls"].as_u64().unwrap(), stat(&stats, "completions"), "{usage} {stats}");
    assert_eq!(usage["prompt_tokens"].as_u64().unwrap(), stat(&stats, "prompt_tokens"));
    assert_eq!(usage["completion_tokens"].as_u64().unwrap(), stat(&stats, "completion_tokens"));
    // One review per chapter, one edit from it, no model call for the assembly.
    assert_eq!(stats["by_kind"]["review"], 8, "{stats}");
    assert_eq!(stats["by_kind"]["edit"], 8, "{stats}");
    assert_eq!(step(&book, "assembly")["usage"]["calls"], 0);
}

#[test]
fn the_three_chapter_book_costs_at_most_0_7_of_the_original_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(&["--context-window", WINDOW], &dir.path().join("sim.log"));
    let out = tempfile::tempdir().unwrap();
    let o = write_local(&srv, &example("fantasy.toml"), out.path(), None);
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
    let (dir_book, book) = only_book(out.path());
    let manuscript = std::fs::read_to_string(dir_book.join("manuscript.md")).unwrap();
    assert_eq!(manuscript.matches("\n## Chapter ").count(), 3, "every chapter is present");
    let stats = srv.stats();
    assert_fitted(&stats);
    // The server's own accounting, not the client's.
    let tokens = stat(&stats, "prompt_tokens") + stat(&stats, "completion_tokens");
    assert!(
        tokens * 10 <= ORIGINAL_TOKENS * 7,
        "{tokens} tokens is more than 0.7 x the original's {ORIGINAL_TOKENS}"
    );
    assert!(stat(&stats, "completions") < 27, "fewer calls than the original's 27: {stats}");
    let usage = &book["usage"];
    let recorded =
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap();
    assert_eq!(recorded, tokens, "book.json records what the server counted");
    for s in book["steps"].as_array().unwrap() {
        assert!(s["usage"]["calls"].is_u64() && s["usage"]["prompt_tokens"].is_u64(), "{s}");
    }
}

/// The numbers of a line of `bench-tokens` output, thousands separators removed.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit() && c != ',')
        .filter_map(|w| w.replace(',', "").parse().ok())
        .collect()
}

#[test]
fn the_token_benchmark_prints_both_books_beside_the_original() {
    let o = run(&["bench-tokens", "--context-window", WINDOW], &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    for (brief, chapters) in [("examples/fantasy.toml", 3), ("examples/fantasy-8.toml", 8)] {
        let at = lines
            .iter()
            .position(|l| l.starts_with(brief))
            .unwrap_or_else(|| panic!("no line for {brief}:\n{stdout}"));
        // The book's line: chapters, calls, prompt, completion and total tokens as book.json
        // records them, then the result; the next line: the sim server's own counters.
        let (book, server) = (lines[at], lines[at + 1].trim_start());
        let fields: Vec<&str> = book.split_whitespace().collect();
        assert_eq!(fields[6], "done", "{book}");
        let b = numbers(&fields[1..6].join(" "));
        assert_eq!(b[0], chapters, "{book}");
        assert_eq!(b[2] + b[3], b[4], "{book}");
        assert!(server.starts_with("server:"), "{server}");
        let [requests, answered, prompt, completion, largest, window, over, exceeded, cut, ..] =
            numbers(server)[..]
        else {
            panic!("{server}")
        };
        // Every call the book records is one the server answered, with the server's counts.
        assert_eq!((b[1], b[2], b[3]), (answered, prompt, completion), "{book}\n{server}");
        // Nothing refused, nothing over the window, nothing cut by it.
        assert_eq!(requests, answered, "{server}");
        assert_eq!(window.to_string(), WINDOW, "{server}");
        assert!(largest <= window, "{server}");
        assert_eq!((over, exceeded, cut), (0, 0, 0), "{server}");
    }
}

#[test]
fn chapter_and_scene_bounds_hold_when_the_model_overgrows_the_outline() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(
        &["--context-window", WINDOW, "--overgrow", "chapters,scenes"],
        &dir.path().join("sim.log"),
    );
    // Room for the 30-scene answer, so that validation (not the token limit) must catch it.
    let config = dir.path().join("scriptorium.toml");
    std::fs::write(
        &config,
        "[coordinator.sampling.analytical]\ntemperature = 0.3\ntop_p = 0.9\nmax_tokens = 4096\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = write_local(&srv, &example("fantasy.toml"), out.path(), Some(&config));
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
    let (_, book) = only_book(out.path());
    let stats = srv.stats();
    assert_eq!(stat(&stats, "overgrown"), 2, "{stats}");
    assert_fitted(&stats);
    let outline = step(&book, "outline");
    let rejections: Vec<&str> =
        outline["rejections"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    assert!(rejections[0].contains("exactly 3 chapters (got 6)"), "{rejections:?}");
    assert!(rejections[1].contains("3 to 6 scenes (got 30)"), "{rejections:?}");
    let chapters = book["outline"]["chapters"].as_array().unwrap();
    assert_eq!(chapters.len(), 3);
    for c in chapters {
        assert!((3..=6).contains(&c["scenes"].as_array().unwrap().len()), "{c}");
    }
}

#[test]
fn chapters_too_long_for_one_answer_are_written_in_parts_and_joined() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(&["--context-window", WINDOW], &dir.path().join("sim.log"));
    // 2,500 words a chapter: about 4,500 tokens of answer, more than the whole window.
    let brief = dir.path().join("long.toml");
    let text = std::fs::read_to_string(example("fantasy.toml"))
        .unwrap()
        .replace("chapters = 3", "chapters = 2")
        .replace("words_per_chapter = 900", "words_per_chapter = 2500");
    std::fs::write(&brief, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = write_local(&srv, &brief, out.path(), None);
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
    let (_, book) = only_book(out.path());
    assert_fitted(&srv.stats());
    for (i, c) in book["chapters"].as_array().unwrap().iter().enumerate() {
        let n = i + 1;
        let calls = step(&book, &format!("chapter-{n:02}"))["usage"]["calls"].as_u64().unwrap();
        assert!(calls >= 2, "chapter {n} written in {calls} call(s)");
        let planned = book["outline"]["chapters"][i]["scenes"].as_array().unwrap().len();
        let headings: Vec<&str> = c["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["heading"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (1..=planned).map(|k| format!("Scene {k}")).collect();
        assert_eq!(headings, expected, "chapter {n}: every planned scene once, in order");
        let words = c["words"].as_u64().unwrap();
        assert!((2000..=3200).contains(&words), "chapter {n}: {words} words");
    }
}

#[test]
fn a_request_the_server_finds_too_large_is_planned_smaller_and_sent_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(&["--context-window", WINDOW], &dir.path().join("sim.log"));
    // The configuration claims a window four times larger than the server's.
    let config = dir.path().join("scriptorium.toml");
    std::fs::write(
        &config,
        format!(
            "[models.providers.llamacpp]\nprotocol = \"openai\"\nbase_url = \"{}\"\ncontext_window = 16384\n",
            srv.base_url()
        ),
    )
    .unwrap();
    let brief = dir.path().join("long.toml");
    let text = std::fs::read_to_string(example("fantasy.toml"))
        .unwrap()
        .replace("chapters = 3", "chapters = 2")
        .replace("words_per_chapter = 900", "words_per_chapter = 2500");
    std::fs::write(&brief, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = write_local(&srv, &brief, out.path(), Some(&config));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "write failed: {stderr}");
    assert!(stderr.contains("planning it smaller once more"), "{stderr}");
    only_book(out.path());
    let stats = srv.stats();
    // The server refused or cut what did not fit; every step still finished.
    assert!(stat(&stats, "context_exceeded") + stat(&stats, "window_full") >= 1, "{stats}");
}

#[tokio::test]
async fn the_window_is_read_from_props_and_an_oversized_prompt_gets_llamacpps_400() {
    use scriptorium_proto::v1::AgentKind;
    use scriptorium_sim::server::{self as sim_server, SimServerConfig};
    use scriptorium_worker::providers::{
        ModelError, ModelRequest, Models, ModelsConfig, Protocol, ProviderConfig,
    };
    let srv =
        sim_server::start(SimServerConfig { context_window: Some(512), ..Default::default() })
            .await
            .unwrap();
    let mut local = ProviderConfig::new(Protocol::Openai, &srv.base_url(), "", "sim");
    local.discover_context_window = true;
    let cfg = ModelsConfig {
        providers: [("local".to_string(), local)].into_iter().collect(),
        ..Default::default()
    };
    let models = Models::new(&cfg);
    assert_eq!(models.route_limits("local/sim").await.window, Some(512));
    let req = ModelRequest {
        kind: AgentKind::Characters,
        system: "You answer with one JSON object.".into(),
        user: format!("Facts:\n- Characters: 2\n{}", "context ".repeat(300)),
        temperature: 0.5,
        top_p: 0.9,
        max_tokens: 100,
        seed: 1,
        schema: None,
    };
    match models.call_route("local/sim", &req).await {
        Err(ModelError::ContextExceeded { window, prompt_tokens, .. }) => {
            assert_eq!(window, Some(512));
            assert!(prompt_tokens.is_some_and(|n| n >= 512), "{prompt_tokens:?}");
        }
        other => panic!("expected a context-exceeded error, got {other:?}"),
    }
    let stats = srv.stats();
    assert_eq!((stats.context_exceeded, stats.completions), (1, 0));
    assert_eq!(stats.by_status.get("400"), Some(&1));
}
