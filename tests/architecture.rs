//! The layering rules of docs/architecture.md, checked on the source: the
//! engine knows nothing of the terminal or the command line, the two front
//! ends never import each other, and no two files import each other (a
//! module file may declare its children and re-export their items).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, with its module path (`engine::node`).
fn sources() -> BTreeMap<Vec<String>, (PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut out = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(&root).unwrap().with_extension("");
        let mut module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] {
            module.clear();
            if path.ends_with("main.rs") {
                module.push("<main>".into());
            }
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = Path::new("src").join(path.strip_prefix(&root).unwrap());
        out.insert(module, (shown, code_of(&text)));
    }
    out
}

/// The code a file runs outside its unit tests, without comments.
fn code_of(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    body.lines()
        .map(|l| match l.find("//") {
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Module paths a line refers to, absolute from the crate root.
fn paths_in(line: &str, here: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if (i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':') && is_ident(chars[i]) {
            let start = i;
            let mut segs: Vec<String> = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[s..j].iter().collect());
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && is_ident(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            let braces = j + 3 <= chars.len() && chars[j..].starts_with(&[':', ':', '{']);
            i = j.max(start + 1);
            let base: Option<Vec<String>> = match segs[0].as_str() {
                "crate" => Some(segs[1..].to_vec()),
                "super" => {
                    let parent = &here[..here.len().saturating_sub(1)];
                    Some(
                        parent
                            .iter()
                            .cloned()
                            .chain(segs[1..].iter().cloned())
                            .collect(),
                    )
                }
                "self" => Some(
                    here.iter()
                        .cloned()
                        .chain(segs[1..].iter().cloned())
                        .collect(),
                ),
                s if children.contains(s) && (segs.len() > 1 || braces) => {
                    Some(here.iter().cloned().chain(segs.iter().cloned()).collect())
                }
                _ => None,
            };
            if let Some(base) = base {
                if braces {
                    let close = chars[j..]
                        .iter()
                        .position(|c| *c == '}')
                        .map(|p| j + p)
                        .unwrap_or(chars.len());
                    let inner: String = chars[j + 3..close].iter().collect();
                    for item in inner.split(',') {
                        let name = item
                            .trim()
                            .split("::")
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        if !name.is_empty() && name != "self" {
                            out.push(base.iter().cloned().chain([name]).collect());
                        }
                    }
                }
                out.push(base);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// File-level import edges: file -> files it refers to.
fn edges() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files = sources();
    let resolve = |path: &[String]| -> Option<PathBuf> {
        (1..=path.len())
            .rev()
            .find_map(|n| files.get(&path[..n]).map(|(p, _)| p.clone()))
    };
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, (path, code)) in &files {
        let children: BTreeSet<String> = code
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let l = l
                    .strip_prefix("pub(crate) ")
                    .or_else(|| l.strip_prefix("pub "))
                    .unwrap_or(l);
                l.strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'))
                    .map(str::to_string)
            })
            .collect();
        let here: Vec<String> = if module.first().is_some_and(|m| m == "<main>") {
            Vec::new()
        } else {
            module.clone()
        };
        for line in code.lines() {
            let t = line.trim();
            // Declaring a child and re-exporting its items is what a module
            // file is for; it is not an import.
            if t.starts_with("mod ")
                || t.starts_with("pub mod ")
                || t.starts_with("pub(crate) mod ")
                || t.starts_with("pub use ")
            {
                continue;
            }
            for p in paths_in(line, &here, &children) {
                if let Some(target) = resolve(&p).filter(|t| t != path) {
                    edges.entry(path.clone()).or_default().insert(target);
                }
            }
        }
    }
    edges
}

#[test]
fn no_two_files_import_each_other() {
    let edges = edges();
    let mut pairs = Vec::new();
    for (a, targets) in &edges {
        for b in targets {
            if a < b && edges.get(b).is_some_and(|t| t.contains(a)) {
                pairs.push(format!("{} <-> {}", a.display(), b.display()));
            }
        }
    }
    assert!(
        pairs.is_empty(),
        "files that import each other:\n{}",
        pairs.join("\n")
    );
}

#[test]
fn the_engine_knows_no_front_end_and_the_front_ends_not_each_other() {
    let files = sources();
    let mut faults = Vec::new();
    for (module, (path, code)) in &files {
        let forbidden: &[&str] = match module.first().map(String::as_str) {
            Some("engine") => &[
                "ratatui",
                "crossterm",
                "clap",
                "crate::tui",
                "crate::cli",
                "crate::front",
            ],
            Some("tui") => &["crate::cli", "clap::"],
            Some("cli") => &["crate::tui", "ratatui", "crossterm"],
            Some("front") => &["crate::tui", "crate::cli", "ratatui", "crossterm"],
            _ => &[],
        };
        for word in forbidden {
            if code.contains(word) {
                faults.push(format!("{} uses {word}", path.display()));
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}
