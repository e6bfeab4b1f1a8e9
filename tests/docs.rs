//! The README and the pages of `docs/`: the README fits a screen and opens with the two commands
//! (`.ci/run` runs the second), every page of `docs/` is linked from it, and every relative link
//! leads to a file, and to a heading of it when it names one.

mod common;

use common::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines the README may have: it is a front door, the reference lives in `docs/`.
const README_MAX_LINES: usize = 150;

/// The commands of the README's first code block, in order (`.ci/run` and newcomers rely on them).
const COMMANDS: [&str; 2] =
    ["cargo run --release -- write examples/fantasy.toml --out books", "bash tests/run.sh"];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("a docs/ directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// The lines of a page outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if is_fence(line) {
            in_code = !in_code;
        } else if !in_code {
            out.push(line);
        }
    }
    out
}

/// GitHub's anchor of a heading: markup off (code marks, emphasis, link targets), lowercase,
/// each space to `-`, every character other than letters, digits, `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // A link keeps its text: `[text](target)` reads `text`.
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|m| open + m) else { break };
        let Some(close) = rest[mid..].find(')').map(|c| mid + c) else { break };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors a page's headings produce, with GitHub's `-1`, `-2`... for repeated headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = anchor(line[hashes..].trim().trim_end_matches('#').trim());
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// The targets of a page's links, inline (`[text](target)`) and reference (`[name]: target`),
/// outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let prose = prose_lines(text).join("\n");
    let outside_code: String =
        prose.split('`').enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, s)| s).collect();
    let mut out = Vec::new();
    let mut rest = outside_code.as_str();
    while let Some(i) = rest.find("](") {
        let target = &rest[i + 2..];
        let end = target.find(')').unwrap_or(target.len());
        out.push(target[..end].split_whitespace().next().unwrap_or("").to_string());
        rest = &target[end..];
    }
    for line in outside_code.lines().map(str::trim_start) {
        if let Some((_, target)) = line.strip_prefix('[').and_then(|l| l.split_once("]:")) {
            out.push(target.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    out.into_iter()
        .map(|t| t.trim_start_matches('<').trim_end_matches('>').to_string())
        .filter(|t| !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// Every broken relative link of `page`: a file that does not exist, or an anchor that no
/// heading of the linked page produces.
fn broken_links(page: &Path) -> Vec<String> {
    let text = read(page);
    let mut broken = Vec::new();
    for link in links(&text) {
        let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
        let target = if file.is_empty() { page.to_path_buf() } else { page.with_file_name(file) };
        if (file.is_empty() && fragment.is_empty()) || !target.exists() {
            broken.push(format!("{link}: no such file"));
            continue;
        }
        let is_page = target.extension().is_some_and(|e| e == "md");
        if !fragment.is_empty() && is_page && !anchors(&read(&target)).contains(fragment) {
            broken.push(format!(
                "{link}: {} has no heading with that anchor",
                target.strip_prefix(root()).unwrap_or(&target).display()
            ));
        }
    }
    broken
}

/// The README's first code block, as commands: each line without its `# comment`, blank lines
/// left out; and the lines that come before it.
fn first_code_block(readme: &str) -> (Vec<&str>, Vec<String>) {
    let lines: Vec<&str> = readme.lines().collect();
    let open = lines.iter().position(|l| is_fence(l)).expect("the README has a code block");
    let close = open
        + 1
        + lines[open + 1..].iter().position(|l| is_fence(l)).expect("the code block is closed");
    let commands = lines[open + 1..close]
        .iter()
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    (lines[..open].to_vec(), commands)
}

#[test]
fn the_readme_fits_a_screen_and_opens_with_the_two_commands() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move reference to docs/"
    );
    let (before, commands) = first_code_block(&readme);
    assert!(
        before.iter().all(|l| l.trim().is_empty() || l.starts_with("# ")),
        "only the title comes before the two commands: {before:?}"
    );
    assert_eq!(commands, COMMANDS, "the README's first code block is the two commands");
}

#[test]
fn ci_runs_the_readmes_test_command() {
    let (_, commands) = first_code_block(&read(&root().join("README.md")));
    let test_command = &commands[1];
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .any(|l| l == test_command || l.starts_with(&format!("{test_command} "))),
        ".ci/run does not run the README's `{test_command}`:\n{ci}"
    );
}

#[test]
fn every_relative_link_leads_to_a_file_and_a_heading() {
    let mut broken = Vec::new();
    for page in pages() {
        for b in broken_links(&page) {
            broken.push(format!("{}: {b}", page.strip_prefix(root()).unwrap().display()));
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_docs_page_is_linked_from_the_readme() {
    let linked: BTreeSet<String> = links(&read(&root().join("README.md")))
        .into_iter()
        .map(|l| l.split('#').next().unwrap().to_string())
        .collect();
    for page in pages().iter().skip(1) {
        let name = format!("docs/{}", page.file_name().unwrap().to_str().unwrap());
        assert!(linked.contains(&name), "README.md does not link {name}");
    }
}

#[test]
fn anchors_and_links_are_read_as_github_does() {
    assert_eq!(
        anchor("What is guaranteed: nothing lost, nothing accepted twice"),
        "what-is-guaranteed-nothing-lost-nothing-accepted-twice"
    );
    assert_eq!(
        anchor("Bounded strings, and what llama.cpp compiles"),
        "bounded-strings-and-what-llamacpp-compiles"
    );
    assert_eq!(
        anchor("The `queues` view: [docs](x.md) and snake_case"),
        "the-queues-view-docs-and-snake_case"
    );
    let page = "# A\n## Same\n## Same\n```sh\n# not a heading\n```\n";
    assert_eq!(anchors(page), BTreeSet::from(["a".into(), "same".into(), "same-1".into()]));
    let text = "[a](one.md#x) `[b](code.md)` [c](https://example.com)\n```\n[d](fenced.md)\n```\n\
                [e]: two.md\n";
    assert_eq!(links(text), ["one.md#x", "two.md"]);
}
