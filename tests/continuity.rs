//! Books that hold together, end to end with the simulated model: every example brief's book
//! passes `scriptorium check` (drafted in order, and all at once); the simulated model's
//! mistakes are rejected and re-asked, or cleaned off, and gone from the finished books; `check` fails a book with
//! a planted defect, and reads books written before the ledger existed.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn check(dir: &Path) -> (Option<i32>, String) {
    let o = run(&["check", dir.to_str().unwrap()], &[]);
    (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
}

fn check_json(dir: &Path) -> (Option<i32>, Value) {
    let o = run(&["check", dir.to_str().unwrap(), "--json"], &[]);
    (o.status.code(), serde_json::from_slice(&o.stdout).expect("check --json prints JSON"))
}

fn write(args: &[&str], out: &Path) {
    let mut all = args.to_vec();
    all.extend(["--out", out.to_str().unwrap()]);
    let o = run(&all, &[]);
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn every_example_brief_writes_a_book_that_passes_check() {
    let tmp = tempfile::tempdir().unwrap();
    let mut briefs: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    briefs.sort();
    assert!(briefs.len() >= 4, "{briefs:?}");
    // The fantasy brief once more, drafted all at once.
    let parallel = tmp.path().join("parallel.toml");
    let fantasy = std::fs::read_to_string(example("fantasy.toml")).unwrap();
    std::fs::write(&parallel, format!("drafting = \"parallel\"\n{fantasy}")).unwrap();
    briefs.push(parallel.display().to_string());
    let out = tmp.path().join("out");
    let mut args = vec!["write"];
    args.extend(briefs.iter().map(String::as_str));
    write(&args, &out);
    let dirs = book_dirs(&out);
    assert_eq!(dirs.len(), briefs.len());
    for d in &dirs {
        let book = assert_book(d);
        let (code, text) = check(d);
        assert_eq!(code, Some(0), "{d:?}:\n{text}");
        assert!(text.contains("result: PASS"), "{text}");
        let (code, report) = check_json(d);
        assert_eq!(code, Some(0));
        let mut written: Value =
            serde_json::from_slice(&std::fs::read(d.join("quality.json")).unwrap()).unwrap();
        // The file is labelled as the simulated model's, as every file of such a book is.
        let label = written.as_object_mut().unwrap().remove("simulated");
        assert!(label.is_some_and(|l| l.as_str().unwrap().contains("simulated")), "{d:?}");
        assert_eq!(report, written, "{d:?}: quality.json is what check reports");
        let n = book["brief"]["chapters"].as_u64().unwrap() as usize;
        assert_eq!(report["chapters"].as_array().unwrap().len(), n);
        for c in report["chapters"].as_array().unwrap() {
            assert!(c["length_score"].as_f64().unwrap() >= 80.0, "{d:?}: {c}");
        }
        // The ledger travels with the book: a summary per chapter, the cast's states.
        let ledger = &book["ledger"];
        assert_eq!(ledger["chapters"].as_array().unwrap().len(), n, "{d:?}: {ledger}");
        let cast = book["cast"].as_array().unwrap().len();
        assert_eq!(ledger["characters"].as_array().unwrap().len(), cast);
        assert!(ledger["characters"].as_array().unwrap().iter().all(|c| c["alive"] == true));
    }
    let parallel_books = dirs.iter().filter(|d| book_json(d)["brief"]["drafting"] == "parallel");
    assert_eq!(parallel_books.count(), 1);
}

/// The chapter steps' rejections of the book in `dir`.
fn chapter_rejections(dir: &Path) -> Vec<String> {
    book_json(dir)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "chapter")
        .flat_map(|s| s["rejections"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_simulated_mistake_is_re_asked_and_the_book_ends_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("rename", "mixes the names of different characters"),
        ("resurrect", "died in chapter 1 but speaks or acts"),
        ("repeat", "word for word"),
        ("meta", "is not story prose"),
        ("short", "too short"),
    ];
    for (mistake, rule) in cases {
        let cfg = tmp.path().join(format!("{mistake}.toml"));
        std::fs::write(&cfg, format!("[models.sim]\nmistakes = [\"{mistake}\"]\n")).unwrap();
        let out = tmp.path().join(mistake);
        let brief = example("fantasy.toml");
        write(&["--config", cfg.to_str().unwrap(), "write", brief.to_str().unwrap()], &out);
        let dirs = book_dirs(&out);
        let book = assert_book(&dirs[0]);
        let rejections = chapter_rejections(&dirs[0]);
        // Every chapter's first attempt made the mistake (resurrect: those after a death); a
        // copied paragraph or a "Here is the chapter" line is cleaned off, not re-asked: the
        // chapter meets its length without it.
        let expected = match mistake {
            "resurrect" => 2,
            "repeat" | "meta" => 0,
            _ => 3,
        };
        assert_eq!(
            rejections.iter().filter(|r| r.contains(rule)).count(),
            expected,
            "{mistake}: {rejections:#?}"
        );
        let (code, text) = check(&dirs[0]);
        assert_eq!(code, Some(0), "{mistake}: the finished book is clean:\n{text}");
        if mistake == "resurrect" {
            let dead: Vec<&Value> = book["ledger"]["characters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["alive"] == false)
                .collect();
            assert_eq!(dead.len(), 1, "chapter 1 killed one character: {:#}", book["ledger"]);
            assert_eq!(dead[0]["died_in_chapter"], 1);
        }
    }
}

#[test]
fn the_sim_server_makes_mistakes_on_request_and_re_asks_fix_them() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimServerProc::start(
        &["--mistakes", "rename,short", "--mistake-rate", "1"],
        &tmp.path().join("sim.log"),
    );
    let out = tmp.path().join("out");
    let base = sim.base_url();
    let env = [("OPENAI_BASE_URL", base.as_str()), ("OPENAI_API_KEY", "sk-test-mistakes-000000")];
    let brief = example("fantasy.toml").display().to_string();
    let o = run(
        &[
            "write",
            &brief,
            "--provider",
            "openai",
            "--model",
            "sim",
            "--out",
            out.to_str().unwrap(),
        ],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stats = sim.stats();
    let made: u64 = stats["mistakes"].as_object().unwrap().values().filter_map(Value::as_u64).sum();
    assert_eq!(made, 3, "one mistake per chapter's first attempt: {stats}");
    let dirs = book_dirs(&out);
    assert_book(&dirs[0]);
    assert_eq!(chapter_rejections(&dirs[0]).len(), 3);
    assert_eq!(check(&dirs[0]).0, Some(0));
}

#[test]
fn check_fails_a_planted_defect_and_reads_books_of_earlier_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    write(&["write", example("fantasy.toml").to_str().unwrap()], &out);
    let dir = &book_dirs(&out)[0];
    assert_eq!(check(dir).0, Some(0));

    // An earlier version's book: no quality.json, no ledger, no skipped flags.
    std::fs::remove_file(dir.join("quality.json")).unwrap();
    let mut book = book_json(dir);
    book.as_object_mut().unwrap().remove("ledger");
    std::fs::write(dir.join("book.json"), serde_json::to_vec(&book).unwrap()).unwrap();
    let (code, report) = check_json(dir);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["chapters_present"], serde_json::json!([1, 2, 3]));

    // A paragraph of chapter 1 copied into chapter 3, and a model's announcement left in.
    let files: Vec<_> = {
        let mut f: Vec<_> = std::fs::read_dir(dir.join("chapters"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        f.sort();
        f
    };
    let first = std::fs::read_to_string(&files[0]).unwrap();
    let copied = first.split("\n\n").nth(2).unwrap().to_string();
    let third = std::fs::read_to_string(&files[2]).unwrap();
    let planted =
        format!("{}\n\nHere is the chapter you asked for:\n\n{copied}\n", third.trim_end());
    std::fs::write(&files[2], planted).unwrap();
    let (code, text) = check(dir);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL"), "{text}");
    let (_, report) = check_json(dir);
    let rules: Vec<&str> = report["hard_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"repeated_paragraph") && rules.contains(&"meta_text"), "{rules:?}");

    // A book directory without any chapter (an empty `chapters/`) fails, saying so.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("chapters")).unwrap();
    let (code, text) = check(&empty);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("[no_chapters] the book has no chapter at all"), "{text}");

    // Not a book at all: an error, not a report.
    let o = run(&["check", tmp.path().to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a book directory"));
}
