//! The shape of the code, checked: no source file over 600 lines of non-test code, and no
//! import circle between the files of a crate (`src/`, `engine/src/`, `sim/src/`).
//!
//! - A file's non-test code is everything but its test items: a `#[cfg(test)]` at the start
//!   of a line before a one-line item (`mod tests;`) drops the two lines, one before a block
//!   (`mod tests {`) ends the code there; files named `tests*.rs` or `*_tests.rs` are test
//!   code.
//! - An import is a path a file names outside comments: `use crate::a::b`, `crate::a::b::f`,
//!   or `super::x` (a sibling). It is resolved to the file that holds the module (`a/b.rs`,
//!   `a/b/mod.rs`, or `a.rs` when `b` is an item of `a`). A module's own parent (the file
//!   that declares it) does not count: a file split off its parent (`impl` blocks, items it
//!   re-exports) is one module with it. Any other cycle between files is a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

const CRATES: &[&str] = &["src", "engine/src", "sim/src"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, relative to it, in order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_stem().unwrap().to_string_lossy();
    name.starts_with("tests") || name.ends_with("_tests")
}

/// The file's code before its tests, without comments.
fn code(path: &Path) -> Vec<String> {
    non_test(&std::fs::read_to_string(path).unwrap())
}

/// The lines of `text` that are not test code, without comments: a `#[cfg(test)]` at the
/// start of a line followed by a one-line item (`mod tests;`) drops those two lines; one
/// followed by a block (`mod tests {`) ends the file's code there.
fn non_test(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].starts_with("#[cfg(test)]") {
            match lines.get(i + 1) {
                Some(next) if next.trim_end().ends_with(';') => {
                    i += 2;
                    continue;
                }
                _ => break,
            }
        }
        out.push(lines[i].split("//").next().unwrap_or("").to_string());
        i += 1;
    }
    out
}

#[test]
fn test_code_is_told_from_the_rest() {
    let text =
        "mod a;\n#[cfg(test)]\nmod tests;\nfn f() {}\nfn g() {}\n#[cfg(test)]\nmod more {\n}\n";
    assert_eq!(non_test(text), ["mod a;", "fn f() {}", "fn g() {}"]);
}

/// The module path of a file: `daemon/cluster.rs` → `daemon::cluster`; `lib.rs`, `main.rs`
/// → the crate root (empty).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

#[test]
fn no_file_has_more_than_600_lines_of_non_test_code() {
    let mut too_long = Vec::new();
    for krate in CRATES {
        let dir = root().join(krate);
        for rel in files(&dir) {
            if is_test_file(&rel) {
                continue;
            }
            let n = code(&dir.join(&rel)).len();
            if n > MAX_LINES {
                too_long.push(format!("{krate}/{}: {n} lines", rel.display()));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "split these files:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn no_import_circle_between_the_files_of_a_crate() {
    for krate in CRATES {
        let dir = root().join(krate);
        let rels: Vec<PathBuf> = files(&dir)
            .into_iter()
            .filter(|r| !is_test_file(r))
            .collect();
        let by_module: BTreeMap<Vec<String>, String> = rels
            .iter()
            .map(|r| (module_of(r), r.display().to_string()))
            .collect();
        // Resolves a module path to the file holding it: the longest prefix that is a module.
        let resolve = |path: &[String]| -> Option<String> {
            (0..=path.len())
                .rev()
                .find_map(|n| by_module.get(&path[..n]).cloned())
        };
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for rel in &rels {
            let me = module_of(rel);
            let file = rel.display().to_string();
            let parent: Option<String> = (!me.is_empty())
                .then(|| resolve(&me[..me.len() - 1]))
                .flatten();
            let text = code(&dir.join(rel)).join("\n");
            let mut targets = BTreeSet::new();
            for (prefix, base) in [
                ("crate::", Vec::new()),
                ("super::", me[..me.len().saturating_sub(1)].to_vec()),
            ] {
                for (i, _) in text.match_indices(prefix) {
                    let before = text[..i].chars().last();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = &text[i + prefix.len()..];
                    let path: Vec<String> = rest
                        .split("::")
                        .map(|s| {
                            s.chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect::<String>()
                        })
                        .take_while(|s| !s.is_empty())
                        .collect();
                    let mut full = base.clone();
                    full.extend(path);
                    if let Some(t) = resolve(&full) {
                        targets.insert(t);
                    }
                }
            }
            targets.remove(&file);
            if let Some(p) = &parent {
                targets.remove(p);
            }
            // Children a file declares are its own module too.
            targets.retain(|t| {
                let tm = module_of(Path::new(t));
                !(tm.len() == me.len() + 1 && tm.starts_with(&me))
            });
            edges.insert(file, targets);
        }
        // Depth-first search for a cycle.
        fn visit(
            n: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            state: &mut BTreeMap<String, u8>,
            stack: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            match state.get(n) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == n).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(n.to_string());
                    return Some(c);
                }
                Some(2) => return None,
                _ => {}
            }
            state.insert(n.to_string(), 1);
            stack.push(n.to_string());
            for m in edges.get(n).into_iter().flatten() {
                if let Some(c) = visit(m, edges, state, stack) {
                    return Some(c);
                }
            }
            stack.pop();
            state.insert(n.to_string(), 2);
            None
        }
        let mut state = BTreeMap::new();
        for n in edges.keys() {
            if let Some(cycle) = visit(n, &edges, &mut state, &mut Vec::new()) {
                panic!("import circle in {krate}: {}", cycle.join(" -> "));
            }
        }
    }
}
