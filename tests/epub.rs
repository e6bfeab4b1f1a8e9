//! `book.epub`: the EPUB of every example brief passes epubcheck (Debian's package, which
//! tests/run.sh installs) with no error and no warning, holds the book (chapters, their titles,
//! their prose, the simulated model's line on the title page), and `export` rebuilds it byte for
//! byte (so the rebuilt file passes too): from the book's directory, and over NATS from the
//! book's id, where epubcheck runs on the exported file itself.

mod common;

use common::*;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's epubcheck package puts the program: an executable jar, run through `java`
/// because `/usr/bin/epubcheck` needs binfmt support that containers often lack.
const EPUBCHECK_JAR: &str = "/usr/share/java/epubcheck.jar";

/// Runs epubcheck on `epub`; panics unless it reports no error and no warning.
fn epubcheck(epub: &Path) -> String {
    let mut cmd = if Path::new(EPUBCHECK_JAR).exists() {
        let mut c = Command::new("java");
        c.arg("-jar").arg(EPUBCHECK_JAR);
        c
    } else {
        Command::new("epubcheck")
    };
    let o = cmd.arg(epub).output().unwrap_or_else(|e| {
        panic!("epubcheck is missing ({e}): tests/run.sh installs it (Debian package epubcheck)")
    });
    let report =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(
        o.status.success() && report.contains("Messages: 0 fatals / 0 errors / 0 warnings"),
        "epubcheck {}:\n{report}",
        epub.display()
    );
    report
}

/// The files of an EPUB, in the container's order.
fn unzip(epub: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(epub).unwrap();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            (f.name().to_string(), text)
        })
        .collect()
}

/// XHTML text back to plain text (the escapes the EPUB writes).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", "\"").replace("&amp;", "&")
}

/// Checks that the EPUB of the book in `dir` holds what its `book.json` holds.
fn assert_epub_holds_the_book(dir: &Path) {
    let book = book_json(dir);
    let files = unzip(&dir.join("book.epub"));
    let file = |name: &str| -> String {
        let found = files.iter().find(|(n, _)| n == name);
        unescape(&found.unwrap_or_else(|| panic!("{dir:?}: no {name} in book.epub")).1)
    };
    assert_eq!(files[0], ("mimetype".into(), "application/epub+zip".into()), "{dir:?}");
    let title = book["title"].as_str().unwrap();
    let author = book["brief"]["author"].as_str().unwrap();
    let page = file("OEBPS/title.xhtml");
    assert!(page.contains(&format!("<h1>{title}</h1>")), "{dir:?}: title page: {page}");
    assert!(page.contains(&format!("by {author}")), "{dir:?}: author");
    assert!(
        page.contains("Written by Scriptorium's simulated model (sim)"),
        "{dir:?}: a book of the simulated model says so on its title page: {page}"
    );
    let opf = file("OEBPS/content.opf");
    assert!(opf.contains(&format!("<dc:title>{title}</dc:title>")), "{dir:?}: {opf}");
    assert!(opf.contains("<dc:language>en</dc:language>"), "{dir:?}: English is en: {opf}");
    let chapters = book["chapters"].as_array().unwrap();
    let xhtml: Vec<&(String, String)> =
        files.iter().filter(|(n, _)| n.starts_with("OEBPS/chapter-")).collect();
    assert_eq!(xhtml.len(), chapters.len(), "{dir:?}: one XHTML file per chapter");
    let nav = file("OEBPS/nav.xhtml");
    for (i, c) in chapters.iter().enumerate() {
        let text = unescape(&xhtml[i].1);
        let label = format!("Chapter {}: {}", c["number"], c["title"].as_str().unwrap());
        assert!(text.contains(&format!("{label}</h1>")), "{dir:?}: heading of {label}");
        assert!(nav.contains(&format!("{label}</a>")), "{dir:?}: {label} in the navigation");
        let scenes = c["scenes"].as_array().unwrap();
        for s in scenes {
            for para in s["text"].as_str().unwrap().split("\n\n").map(str::trim) {
                assert!(
                    para.is_empty() || text.contains(&format!("<p>{para}</p>")),
                    "{dir:?}: chapter {} lacks the paragraph {para:?}",
                    i + 1
                );
            }
        }
        let breaks = text.matches("<p class=\"scene-break\">* * *</p>").count();
        assert_eq!(breaks, scenes.len() - 1, "{dir:?}: scene breaks of chapter {}", i + 1);
    }
}

/// Runs `scriptorium export` and returns the path it printed.
fn export(args: &[&str]) -> PathBuf {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let o = run(&all, &[]);
    assert!(o.status.success(), "export {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

#[test]
fn every_example_briefs_epub_passes_epubcheck_and_export_rebuilds_it() {
    let mut briefs: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    briefs.sort();
    let out = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["write".into()];
    args.extend(briefs.iter().map(|b| b.display().to_string()));
    args.extend(["--out".into(), out.path().display().to_string()]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(o.status.success(), "write failed: {}", String::from_utf8_lossy(&o.stderr));
    let dirs = book_dirs(out.path());
    assert_eq!(dirs.len(), briefs.len(), "a book per example brief: {dirs:?}");
    // One JVM per book, side by side.
    std::thread::scope(|s| {
        for dir in &dirs {
            s.spawn(move || epubcheck(&dir.join("book.epub")));
        }
    });
    for (i, dir) in dirs.iter().enumerate() {
        let epub = dir.join("book.epub");
        assert_epub_holds_the_book(dir);
        let again = out.path().join(format!("export-{i}"));
        let again_s = again.display().to_string();
        let dir_s = dir.display().to_string();
        let rebuilt = export(&[&dir_s, "--format", "epub", "--out", &again_s]);
        assert_eq!(rebuilt, again.join("book.epub"));
        assert!(std::fs::read(&rebuilt).unwrap() == std::fs::read(&epub).unwrap(), "{dir:?}");
        let md = export(&[&dir_s, "--format", "md", "--out", &again_s]);
        assert_eq!(
            std::fs::read_to_string(md).unwrap(),
            std::fs::read_to_string(dir.join("manuscript.md")).unwrap(),
            "{dir:?}: export --format md reproduces the manuscript"
        );
    }
    // Without --out, the book's own directory is rewritten in place, to the same bytes.
    let before = std::fs::read(dirs[0].join("book.epub")).unwrap();
    std::fs::remove_file(dirs[0].join("book.epub")).unwrap();
    assert_eq!(
        export(&[&dirs[0].display().to_string(), "--format", "epub"]),
        dirs[0].join("book.epub")
    );
    assert!(std::fs::read(dirs[0].join("book.epub")).unwrap() == before);
}

#[test]
fn export_refuses_what_is_not_a_book() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display().to_string();
    let o = run(&["export", &dir, "--format", "epub"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a book directory"));
    let missing = tmp.path().join("nothing").display().to_string();
    let o = run(&["export", &missing, "--format", "md"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a book directory"));
}

#[test]
fn export_by_book_id_reads_the_books_bucket() {
    let nats = NatsServer::start();
    let url = nats.url();
    let out = tempfile::tempdir().unwrap();
    let outs = out.path().join("books").display().to_string();
    let logs = out.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let _coord = Proc::start(
        &["coordinator", "--nats", &url, "--out", &outs],
        &logs.join("coordinator.log"),
        &[],
    );
    let _worker = Proc::start(&["worker", "--nats", &url, "--id", "w1"], &logs.join("w1.log"), &[]);
    let brief = example("nonfiction.toml").display().to_string();
    let o = run(&["submit", &brief, "--nats", &url, "--wait", "--timeout", "120"], &[]);
    assert!(o.status.success(), "submit: {}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).lines().next().unwrap().to_string();
    let dirs = book_dirs(Path::new(&outs));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let again = out.path().join("export").display().to_string();
    let rebuilt = export(&[&id, "--format", "epub", "--nats", &url, "--out", &again]);
    epubcheck(&rebuilt);
    assert!(
        std::fs::read(&rebuilt).unwrap() == std::fs::read(dirs[0].join("book.epub")).unwrap(),
        "the EPUB rebuilt from the bucket is the one the coordinator wrote"
    );
    let o = run(&["export", "nosuchbook", "--format", "epub", "--nats", &url], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no book with id nosuchbook"));
}
