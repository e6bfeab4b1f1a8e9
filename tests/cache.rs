//! The shared response cache across worker processes over real NATS, counted by the sim server.

mod common;

use common::*;
use std::path::Path;

const MODEL_STEPS: u64 = 13; // fantasy.toml: concept, characters, world, outline, 3 x (chapter, review, edit)

fn chapters_of(dir: &Path) -> Vec<serde_json::Value> {
    book_json(dir)["chapters"].as_array().unwrap().clone()
}

#[test]
fn identical_requests_are_paid_once_across_worker_processes() {
    let nats = NatsServer::start();
    let url = nats.url();
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimServerProc::start(&[], &tmp.path().join("sim.log"));
    let cfg = tmp.path().join("scriptorium.toml");
    std::fs::write(&cfg, "[coordinator.routes]\ndefault = \"openai/sim\"\n").unwrap();
    let cfg = cfg.display().to_string();
    let out = tmp.path().join("out");
    let outs = out.display().to_string();
    let base = sim.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str()), ("OPENAI_API_KEY", "sk-test-cache-0000000000")];
    let log = |n: &str| tmp.path().join(n);
    let _c = Proc::start(
        &["--config", &cfg, "coordinator", "--nats", &url, "--out", &outs],
        &log("c.log"),
        &env,
    );
    let _w1 = Proc::start(
        &["--config", &cfg, "worker", "--nats", &url, "--id", "w1"],
        &log("w1.log"),
        &env,
    );
    let _w2 = Proc::start(
        &["--config", &cfg, "worker", "--nats", &url, "--id", "w2"],
        &log("w2.log"),
        &env,
    );
    let brief = example("fantasy.toml").display().to_string();
    let submit = |seed: &str| {
        let (b, u, s) = (brief.clone(), url.clone(), seed.to_string());
        std::thread::spawn(move || {
            run(&["submit", &b, "--nats", &u, "--seed", &s, "--wait", "--timeout", "120"], &[])
        })
    };

    // The same brief and seed submitted twice at once: every identical request is made once.
    let (a, b) = (submit("21"), submit("21"));
    for o in [a.join().unwrap(), b.join().unwrap()] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let first = sim.stats()["completions"].as_u64().unwrap();
    let dirs = book_dirs(&out);
    let steps: Vec<String> = dirs
        .iter()
        .flat_map(|d| book_json(d)["steps"].as_array().unwrap().clone())
        .map(|s| {
            format!(
                "{} a{} {} hit={} calls={} {:?}",
                s["id"],
                s["attempts"],
                s["worker"],
                s["cache_hit"],
                s["usage"]["calls"],
                s["rejections"]
            )
        })
        .collect();
    assert_eq!(
        first,
        MODEL_STEPS,
        "two concurrent identical books cost one book's calls: {}\n{}",
        sim.stats(),
        steps.join("\n")
    );
    assert_eq!(dirs.len(), 2);
    assert_eq!(
        chapters_of(&dirs[0]),
        chapters_of(&dirs[1]),
        "identical requests give identical books"
    );

    // Written again later: zero model calls, the same book, all answers from the cache.
    let o = submit("21").join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sim.stats()["requests"].as_u64().unwrap(), first, "a re-run makes no model call");
    let dirs = book_dirs(&out);
    assert_eq!(dirs.len(), 3);
    let id = String::from_utf8_lossy(&o.stdout).lines().next().unwrap().to_string();
    let third = dirs.iter().find(|d| d.display().to_string().ends_with(&id)).unwrap();
    let book = assert_book(third);
    assert_eq!(book["usage"]["calls"].as_u64(), Some(0));
    assert_eq!(book["usage"]["cache_hits"].as_u64(), Some(MODEL_STEPS));
    assert_eq!(chapters_of(third), chapters_of(&dirs[0]));

    // Another seed is another book: it calls the model.
    let o = submit("22").join().unwrap();
    assert!(o.status.success());
    assert_eq!(sim.stats()["completions"].as_u64().unwrap(), first + MODEL_STEPS);
}

#[test]
fn no_cache_makes_every_call() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimServerProc::start(&[], &tmp.path().join("sim.log"));
    let out = tmp.path().join("out");
    // Two books with the same seed in one embedded run: with the cache, the second is free.
    let o = write_through(&sim, &out, 2, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sim.stats()["completions"].as_u64().unwrap(), MODEL_STEPS);
    let o = write_through(&sim, &out, 2, &["--no-cache"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sim.stats()["completions"].as_u64().unwrap(), MODEL_STEPS * 3);
}

#[test]
fn embedded_runs_into_the_same_directory_share_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimServerProc::start(&[], &tmp.path().join("sim.log"));
    let out = tmp.path().join("out");
    assert!(write_through(&sim, &out, 1, &[]).status.success());
    assert_eq!(sim.stats()["completions"].as_u64().unwrap(), MODEL_STEPS);
    let o = write_through(&sim, &out, 1, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sim.stats()["requests"].as_u64().unwrap(), MODEL_STEPS, "the second run is free");
    let dirs = book_dirs(&out);
    assert_eq!(dirs.len(), 2);
    assert_eq!(chapters_of(&dirs[0]), chapters_of(&dirs[1]));
    assert!(out.join(".cache").join("responses.jsonl").exists());
}

/// `scriptorium write` of `copies` x the fantasy brief (same seed) into `out`, through the
/// OpenAI-compatible provider against `sim`, with `extra` arguments.
fn write_through(
    sim: &SimServerProc,
    out: &Path,
    copies: usize,
    extra: &[&str],
) -> std::process::Output {
    let base = sim.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str()), ("OPENAI_API_KEY", "sk-test-cache-0000000000")];
    let brief = example("fantasy.toml").display().to_string();
    let mut args = vec!["write"];
    args.extend(std::iter::repeat_n(brief.as_str(), copies));
    args.extend(["--provider", "openai", "--model", "sim", "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    run(&args, &env)
}
