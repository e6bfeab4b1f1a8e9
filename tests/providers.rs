//! The real binary against a `scriptorium sim-server` child: books complete through injected
//! faults, and a provider key never reaches logs, stdout or written files.

mod common;

use common::*;
use std::path::Path;

const KEY: &str = "sk-test-SECRET123456789";
const KEY_TAIL: &str = "SECRET123456789";

fn write_fantasy(out: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> std::process::Output {
    write_brief(&example("fantasy.toml"), out, config, env)
}

fn write_brief(
    brief: &Path,
    out: &Path,
    config: Option<&Path>,
    env: &[(&str, &str)],
) -> std::process::Output {
    let out = out.display().to_string();
    let brief = brief.display().to_string();
    let mut args = vec!["write", &brief, "--provider", "openai", "--model", "sim", "--out", &out];
    let config = config.map(|c| c.display().to_string());
    if let Some(c) = &config {
        args.extend(["--config", c]);
    }
    args.push("--no-cache");
    run(&args, env)
}

/// A config file whose `openai` provider points at `base_url` with fast retries.
fn fast_openai_config(
    dir: &Path,
    base_url: &str,
    timeout_secs: u64,
    max_retries: u32,
) -> std::path::PathBuf {
    let path = dir.join("scriptorium.toml");
    let text = format!(
        "[models.providers.openai]\nprotocol = \"openai\"\nbase_url = \"{base_url}\"\n\
         key_env = \"OPENAI_API_KEY\"\ntimeout_secs = {timeout_secs}\nmax_retries = {max_retries}\n\
         backoff_ms = 20\nmax_backoff_ms = 100\n"
    );
    std::fs::write(&path, text).expect("config file");
    path
}

fn stat(stats: &serde_json::Value, map: &str, key: &str) -> u64 {
    stats[map][key].as_u64().unwrap_or(0)
}

#[test]
fn a_book_completes_through_a_flaky_openai_compatible_server() {
    let logs = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(
        &[
            "--fail-first",
            "2",
            "--fail-status",
            "503",
            "--seed",
            "11",
            "--rate-429",
            "0.1",
            "--retry-after",
            "1",
            "--rate-500",
            "0.1",
            "--rate-malformed",
            "0.05",
            "--rate-truncated",
            "0.05",
            "--reject-response-format",
        ],
        &logs.path().join("sim.log"),
    );
    let out = tempfile::tempdir().unwrap();
    let base = srv.base_url();
    let o = write_fantasy(
        out.path(),
        None,
        &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", "sk-test-dummy-000111222")],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "write failed: {stderr}\n{}", String::from_utf8_lossy(&o.stdout));
    let books = assert_books(out.path(), &["salt-harbour"]);
    let book = &books[0];
    // Assembly is the coordinator's own step: no route.
    let modelled: Vec<_> =
        book["steps"].as_array().unwrap().iter().filter(|s| s["route"] != "").collect();
    assert!(modelled.len() >= 10, "{}", book["steps"]);
    for s in &modelled {
        assert_eq!(s["route"], "openai/sim", "step {} answered by {}", s["id"], s["route"]);
    }
    let stats = srv.stats();
    // The first two requests failed with 503 and were retried; more faults followed by rate.
    assert_eq!(stat(&stats, "by_status", "503"), 2, "{stats}");
    let requests = stats["requests"].as_u64().unwrap();
    let completions = stats["completions"].as_u64().unwrap();
    assert!(requests > completions, "{stats}");
    // The server has no json_schema: every agent asked with the schema in json_object form
    // (llama-cpp-python's dialect) after the first refusal.
    assert!(stat(&stats, "by_format", "json_object_schema") >= completions, "{stats}");
    for s in &modelled {
        assert_eq!(s["dialect"], "json_object_schema", "step {}", s["id"]);
    }
    let usage = &book["usage"];
    assert!(usage["retries"].as_u64().unwrap() >= 2, "{usage}");
    assert!(usage["calls"].as_u64().unwrap() >= modelled.len() as u64, "{usage}");
}

#[test]
fn a_server_refusing_json_schema_with_http_500_like_llama_cpp_python_gets_its_own_dialect() {
    let logs = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(&["--like-llama-cpp-python"], &logs.path().join("sim.log"));
    let out = tempfile::tempdir().unwrap();
    // As docs/providers.md says: the built-in `openai` provider pointed at the local server.
    let o = write_fantasy(
        out.path(),
        None,
        &[("OPENAI_BASE_URL", &srv.base_url()), ("OPENAI_API_KEY", "sk-test-dummy-000111222")],
    );
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
    let books = assert_books(out.path(), &["salt-harbour"]);
    let stats = srv.stats();
    // The 500 is read as a refusal of the format, not a server error: never retried, and every
    // agent asked with the schema as json_object + schema from then on.
    let refused = stat(&stats, "by_status", "500");
    assert!(refused >= 1, "{stats}");
    assert_eq!(stat(&stats, "by_format", "json_schema"), refused, "{stats}");
    assert_eq!(books[0]["usage"]["retries"], 0, "{}", books[0]["usage"]);
    let modelled: Vec<_> =
        books[0]["steps"].as_array().unwrap().iter().filter(|s| s["route"] != "").collect();
    assert!(!modelled.is_empty());
    for s in &modelled {
        assert_eq!(s["dialect"], "json_object_schema", "step {}", s["id"]);
    }
}

#[test]
fn a_book_completes_through_hangs_with_a_configured_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(
        &["--script", "hang,500", "--rate-hang", "0.05", "--hang-secs", "60", "--seed", "5"],
        &dir.path().join("sim.log"),
    );
    let config = fast_openai_config(dir.path(), &srv.base_url(), 1, 4);
    let out = tempfile::tempdir().unwrap();
    let o =
        write_fantasy(out.path(), Some(&config), &[("OPENAI_API_KEY", "sk-test-dummy-000111222")]);
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
    assert_books(out.path(), &["salt-harbour"]);
    let stats = srv.stats();
    assert!(stat(&stats, "faults", "hang") >= 1, "{stats}");
    assert!(stats["requests"].as_u64().unwrap() > stats["completions"].as_u64().unwrap());
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_no_key(what: &str, o: &std::process::Output, out: &Path, expect_files: bool) {
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stdout.contains(KEY_TAIL), "{what}: key in stdout:\n{stdout}");
    assert!(!stderr.contains(KEY_TAIL), "{what}: key in stderr:\n{stderr}");
    let written = files(out);
    assert_eq!(!written.is_empty(), expect_files, "{what}: files written: {written:?}");
    for f in written {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY_TAIL),
            "{what}: key in {}",
            f.display()
        );
    }
}

#[test]
fn a_provider_key_reaches_no_log_output_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("OPENAI_API_KEY", KEY), ("RUST_LOG", "debug")];

    // 401: the server refuses the key and echoes the request headers in its error body; the
    // brief falls back to the simulated model, so the book is written and can be searched.
    let rejecting = SimServerProc::start(
        &["--require-key", "the-right-key-000", "--echo-headers"],
        &dir.path().join("rejecting.log"),
    );
    let brief = dir.path().join("fantasy-fallback.toml");
    let mut text = std::fs::read_to_string(example("fantasy.toml")).unwrap();
    text.push_str("\nfallbacks = [\"sim/default\"]\n");
    std::fs::write(&brief, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let base = rejecting.base_url();
    let mut env401 = env.to_vec();
    env401.push(("OPENAI_BASE_URL", &base));
    let o = write_brief(&brief, out.path(), None, &env401);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the fallback writes the book: {stderr}");
    assert!(stderr.contains("HTTP 401"), "the error path ran: {stderr}");
    assert!(stderr.contains("request headers"), "the server echoed the headers: {stderr}");
    assert_no_key("401", &o, out.path(), true);
    let stats = rejecting.stats();
    assert!(stat(&stats, "by_status", "401") >= 10, "{stats}");
    assert_eq!(stat(&stats, "by_status", "401"), stats["requests"].as_u64().unwrap());

    // 500 every time, echoing headers, through a config file with fast retries.
    let failing = SimServerProc::start(
        &["--rate-500", "1", "--echo-headers"],
        &dir.path().join("failing.log"),
    );
    let config = fast_openai_config(dir.path(), &failing.base_url(), 5, 1);
    let out = tempfile::tempdir().unwrap();
    let o = write_fantasy(out.path(), Some(&config), &env);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("500"), "the error path ran: {stderr}");
    assert_no_key("500", &o, out.path(), false);
    assert!(stat(&failing.stats(), "by_status", "500") >= 2, "retried");
}

#[test]
fn prices_give_book_costs_and_a_budget_stops_the_book() {
    let dir = tempfile::tempdir().unwrap();
    let srv = SimServerProc::start(&[], &dir.path().join("sim.log"));
    let priced = |name: &str, input: f64, output: f64| {
        let path = dir.path().join(name);
        let text = format!(
            "[models.providers.openai]\nprotocol = \"openai\"\nbase_url = \"{}\"\n\
             prices = {{ \"sim\" = {{ input = {input:?}, output = {output:?} }} }}\n",
            srv.base_url()
        );
        std::fs::write(&path, text).unwrap();
        path
    };

    // Cheap: the book is written and its cost is the sum of its calls'.
    let out = tempfile::tempdir().unwrap();
    let o = write_fantasy(out.path(), Some(&priced("cheap.toml", 1.0, 2.0)), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let book = &assert_books(out.path(), &["salt-harbour"])[0];
    let usage = &book["usage"];
    let (pt, ct) =
        (usage["prompt_tokens"].as_f64().unwrap(), usage["completion_tokens"].as_f64().unwrap());
    let cost = usage["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0 && (cost - (pt * 1.0 + ct * 2.0) / 1e6).abs() < 1e-9, "{usage}");

    // Expensive with a budget: the book stops as failed, "budget exceeded".
    let brief = dir.path().join("budget.toml");
    let mut text = std::fs::read_to_string(example("fantasy.toml")).unwrap();
    text.push_str("\nbudget_usd = 0.5\n");
    std::fs::write(&brief, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = write_brief(&brief, out.path(), Some(&priced("dear.toml", 1000.0, 1000.0)), &[]);
    assert!(!o.status.success());
    let all =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(all.contains("budget exceeded"), "{all}");
}

#[test]
fn a_refused_key_fails_the_book_after_one_request_with_the_providers_message() {
    let dir = tempfile::tempdir().unwrap();
    let srv =
        SimServerProc::start(&["--require-key", "the-right-key-000"], &dir.path().join("s.log"));
    let out = tempfile::tempdir().unwrap();
    let base = srv.base_url();
    let o = write_fantasy(
        out.path(),
        None,
        &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", "sk-test-wrong-key-000111")],
    );
    let all =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "the book fails: {all}");
    // One request: a 401 is permanent, so neither the provider nor the coordinator asks again
    // (max_attempts is 5 at the defaults).
    let stats = srv.stats();
    assert_eq!(stats["requests"].as_u64(), Some(1), "{stats}");
    assert_eq!(stat(&stats, "by_status", "401"), 1, "{stats}");
    assert!(all.contains("step concept failed (auth, not retried)"), "{all}");
    assert!(all.contains("HTTP 401"), "the provider's own answer is in the error: {all}");
    assert!(!all.contains("wrong-key-000111"), "no key in the output: {all}");
}
