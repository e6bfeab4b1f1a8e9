//! The shape of the tree, kept: no source file over 700 lines (one concern a file), and the
//! test-support crate never a normal dependency of any crate (so never in the binary).

mod common;

use std::path::{Path, PathBuf};

/// Longest source file, in lines.
const MAX_LINES: usize = 700;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_source_file_is_over_700_lines() {
    let root = common::root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 100, "the walk found the sources: {}", files.len());
    let long: Vec<String> = files
        .iter()
        .map(|f| (f, std::fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{} ({n} lines)", f.strip_prefix(&root).unwrap().display()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_test_support_crate_is_never_a_normal_dependency() {
    let root = common::root();
    let mut manifests = vec![root.join("Cargo.toml")];
    let workspace: toml::Value =
        toml::from_str(&std::fs::read_to_string(&manifests[0]).unwrap()).unwrap();
    for member in workspace["workspace"]["members"].as_array().unwrap() {
        manifests.push(root.join(member.as_str().unwrap()).join("Cargo.toml"));
    }
    assert!(manifests.len() >= 8, "{manifests:?}");
    for m in manifests {
        let text = std::fs::read_to_string(&m).unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        let normal = doc.get("dependencies").and_then(|d| d.as_table());
        assert!(
            normal.is_none_or(|d| !d.contains_key("scriptorium-test-support")),
            "{} has scriptorium-test-support as a normal dependency",
            m.display()
        );
    }
}
