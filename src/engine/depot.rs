//! The depot: a directory of `ID.patch` files plus `categories.toml`.
//!
//! Opening a depot reads every patch (through the cache index), applies the
//! rules that need all patches at once (duplicate ids, supersedes cycles,
//! category inheritance) and keeps going past bad files: each one is listed
//! as broken with its file, line and what was expected.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::engine::archive::{self, PatchFileError};
use crate::engine::index::{Index, Reading, Stamp};
use crate::engine::manifest;
use crate::engine::patch::{NOT_INHERITED, Patch};

pub const CATEGORIES_FILE: &str = "categories.toml";

/// A file the depot could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Broken {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) if self.file == CATEGORIES_FILE => {
                write!(f, "{}:{line}: {}", self.file, self.message)
            }
            Some(line) => write!(
                f,
                "{}: {} line {line}: {}",
                self.file,
                archive::MANIFEST_NAME,
                self.message
            ),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DepotError {
    #[error("cannot read depot {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file given to `depot add` is not a valid patch.
    #[error("{0}")]
    Invalid(String),
    /// The depot already holds a different patch with that id.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Io(String),
}

/// How opening went, for progress and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenStats {
    pub files: usize,
    pub from_index: usize,
    pub read: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Depot {
    pub root: PathBuf,
    /// Good patches, sorted by id.
    pub patches: Vec<Patch>,
    /// Files that could not be used, sorted by file name.
    pub broken: Vec<Broken>,
    /// Category tag → description, from `categories.toml`.
    pub categories: BTreeMap<String, String>,
    pub stats: OpenStats,
    by_id: HashMap<String, usize>,
}

/// Called as files are read: (done, total).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

impl Depot {
    pub fn open(root: &Path) -> Result<Depot, DepotError> {
        Self::open_with(root, true, &|_, _| {})
    }

    /// Opens a depot; `use_index` false ignores and leaves the cache alone.
    pub fn open_with(
        root: &Path,
        use_index: bool,
        progress: Progress,
    ) -> Result<Depot, DepotError> {
        let unreadable = |source| DepotError::Unreadable {
            path: root.to_path_buf(),
            source,
        };
        let mut stamps = HashMap::new();
        for dirent in fs::read_dir(root).map_err(unreadable)? {
            let dirent = dirent.map_err(unreadable)?;
            let Ok(name) = dirent.file_name().into_string() else {
                continue;
            };
            if !name.ends_with(".patch") {
                continue;
            }
            let Ok(meta) = dirent.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let mtime_ns = meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec());
            stamps.insert(
                name,
                Stamp {
                    size: meta.len(),
                    mtime_ns,
                },
            );
        }

        let mut index = if use_index { Index::open(root) } else { None };
        let mut readings = index.as_ref().map(|i| i.load(&stamps)).unwrap_or_default();
        let from_index = readings.len();
        let mut todo: Vec<&String> = stamps
            .keys()
            .filter(|f| !readings.contains_key(*f))
            .collect();
        todo.sort();
        let fresh = read_all(root, &todo, progress);
        if let Some(index) = index.as_mut() {
            let rows: Vec<_> = fresh
                .iter()
                .map(|(f, r)| (f.clone(), stamps[f], r))
                .collect();
            if !rows.is_empty() || from_index != stamps.len() {
                index.store(&rows, &stamps);
            }
        }
        let read = fresh.len();
        readings.extend(fresh);

        let mut depot = Depot::from_readings(root, readings);
        depot.stats = OpenStats {
            files: stamps.len(),
            from_index,
            read,
        };
        let (categories, broken) = read_categories(root);
        depot.categories = categories;
        depot.broken.extend(broken);
        depot.broken.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(depot)
    }

    /// Builds a depot from per-file readings, applying the cross-patch rules.
    pub fn from_readings(root: &Path, readings: HashMap<String, Reading>) -> Depot {
        let mut broken = Vec::new();
        let mut patches = Vec::new();
        for (file, reading) in readings {
            let id = file.trim_end_matches(".patch").to_string();
            match reading {
                Ok(m) => patches.push(Patch::new(id, file, m)),
                Err(e) => broken.push(Broken {
                    file,
                    line: e.line,
                    message: e.message,
                }),
            }
        }
        patches.sort_by(|a, b| a.id.cmp(&b.id));
        reject_case_duplicates(&mut patches, &mut broken);
        reject_supersedes_cycles(&mut patches, &mut broken);
        inherit(&mut patches);
        let by_id = patches
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        Depot {
            root: root.to_path_buf(),
            patches,
            broken,
            by_id,
            ..Depot::default()
        }
    }

    pub fn get(&self, id: &str) -> Option<&Patch> {
        self.by_id.get(id).map(|&i| &self.patches[i])
    }

    /// Verifies each file and copies it in (temporary file, fsync, rename).
    /// An identical copy already present is fine; a different one is refused.
    /// Returns the ids added.
    pub fn add(root: &Path, files: &[PathBuf]) -> Result<Vec<String>, DepotError> {
        let mut added = Vec::new();
        for file in files {
            let invalid =
                |e: PatchFileError| DepotError::Invalid(format!("{}: {e}", file.display()));
            let id = archive::id_from_path(file).map_err(invalid)?;
            archive::read_patch(file).map_err(invalid)?;
            let dest = root.join(format!("{id}.patch"));
            if dest.exists() {
                let same = archive::sha256_file(&dest).ok() == archive::sha256_file(file).ok();
                if same {
                    continue;
                }
                return Err(DepotError::Conflict(format!(
                    "{}: the depot already has a different {id}.patch; remove it first or give the new one another id",
                    file.display()
                )));
            }
            copy_atomic(file, &dest).map_err(|e| {
                DepotError::Io(format!(
                    "{}: cannot copy into {}: {e}",
                    file.display(),
                    root.display()
                ))
            })?;
            added.push(id);
        }
        Ok(added)
    }

    /// Patches in the depot that directly or transitively supersede `id`.
    pub fn superseders(&self, id: &str) -> Vec<&Patch> {
        let mut out = Vec::new();
        let mut stack = vec![id.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(cur) = stack.pop() {
            if let Some(p) = self.get(&cur) {
                for by in &p.superseded_by {
                    if seen.insert(by.clone()) {
                        if let Some(q) = self.get(by) {
                            out.push(q);
                        }
                        stack.push(by.clone());
                    }
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// Copies through a temporary file in the destination directory, fsyncs it,
/// renames it into place, and fsyncs the directory.
pub fn copy_atomic(from: &Path, to: &Path) -> std::io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    let mut source = fs::File::open(from)?;
    std::io::copy(&mut source, temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    temp.persist(to).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

/// Reads files on all cores; order of the result does not matter.
fn read_all(root: &Path, files: &[&String], progress: Progress) -> Vec<(String, Reading)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if files.is_empty() {
        return Vec::new();
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let chunk = files.len().div_ceil(workers).max(1);
    let done = AtomicUsize::new(0);
    let total = files.len();
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let done = &done;
                scope.spawn(move || {
                    part.iter()
                        .map(|file| {
                            let reading = archive::read_patch(&root.join(file.as_str()));
                            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if n % 1000 == 0 || n == total {
                                progress(n, total);
                            }
                            ((*file).clone(), reading)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Ids that differ only in case would collide on case-insensitive file
/// systems and confuse operators: the later one (by id) is refused.
fn reject_case_duplicates(patches: &mut Vec<Patch>, broken: &mut Vec<Broken>) {
    let mut first: HashMap<String, String> = HashMap::new();
    patches.retain(|p| match first.get(&p.id.to_ascii_lowercase()) {
        Some(other) => {
            broken.push(Broken {
                file: p.file.clone(),
                line: None,
                message: format!(
                    "duplicate id: {} differs from {other} only in case; expected unique ids",
                    p.id
                ),
            });
            false
        }
        None => {
            first.insert(p.id.to_ascii_lowercase(), p.id.clone());
            true
        }
    });
}

/// Every patch on a supersedes cycle is broken: no chain top exists.
fn reject_supersedes_cycles(patches: &mut Vec<Patch>, broken: &mut Vec<Broken>) {
    let index: HashMap<&str, usize> = patches
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    // Iterative three-colour DFS; a grey node reached again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; patches.len()];
    let mut on_cycle: BTreeMap<usize, String> = BTreeMap::new();
    for start in 0..patches.len() {
        if colour[start] != Colour::White {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = Colour::Grey;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let succ = patches[node]
                .manifest
                .supersedes
                .get(*next)
                .and_then(|id| index.get(id.as_str()).copied());
            let exhausted = *next >= patches[node].manifest.supersedes.len();
            *next += 1;
            if exhausted {
                colour[node] = Colour::Black;
                stack.pop();
                continue;
            }
            let Some(succ) = succ else { continue };
            match colour[succ] {
                Colour::White => {
                    colour[succ] = Colour::Grey;
                    stack.push((succ, 0));
                }
                Colour::Grey => {
                    let from = stack.iter().position(|(n, _)| *n == succ).unwrap_or(0);
                    let path: Vec<&str> = stack[from..]
                        .iter()
                        .map(|(n, _)| patches[*n].id.as_str())
                        .collect();
                    let text = format!("{} -> {}", path.join(" -> "), patches[succ].id);
                    for (n, _) in &stack[from..] {
                        on_cycle.entry(*n).or_insert_with(|| text.clone());
                    }
                }
                Colour::Black => {}
            }
        }
    }
    if on_cycle.is_empty() {
        return;
    }
    let mut i = 0;
    patches.retain(|p| {
        let keep = match on_cycle.get(&i) {
            Some(cycle) => {
                broken.push(Broken {
                    file: p.file.clone(),
                    line: None,
                    message: format!("supersedes cycle: {cycle}; expected a chain that ends"),
                });
                false
            }
            None => true,
        };
        i += 1;
        keep
    });
}

/// Fills `superseded_by` and the inherited categories. The supersedes graph
/// is acyclic here, so a memoised walk terminates.
fn inherit(patches: &mut [Patch]) {
    let index: HashMap<String, usize> = patches
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    for i in 0..patches.len() {
        for old in patches[i].manifest.supersedes.clone() {
            if let Some(&j) = index.get(&old) {
                let by = patches[i].id.clone();
                patches[j].superseded_by.push(by);
            }
        }
    }
    let mut memo: Vec<Option<Vec<String>>> = vec![None; patches.len()];
    for i in 0..patches.len() {
        let cats = inherited(i, patches, &index, &mut memo);
        patches[i].categories = cats;
        patches[i].superseded_by.sort();
    }
}

fn inherited(
    i: usize,
    patches: &[Patch],
    index: &HashMap<String, usize>,
    memo: &mut Vec<Option<Vec<String>>>,
) -> Vec<String> {
    if let Some(done) = &memo[i] {
        return done.clone();
    }
    // Explicit stack to survive very long chains without recursion.
    let mut order = Vec::new();
    let mut stack = vec![i];
    let mut visiting = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if memo[n].is_some() || !visiting.insert(n) {
            continue;
        }
        order.push(n);
        for old in &patches[n].manifest.supersedes {
            if let Some(&j) = index.get(old) {
                stack.push(j);
            }
        }
    }
    for &n in order.iter().rev() {
        let mut cats = patches[n].manifest.categories.clone();
        for old in &patches[n].manifest.supersedes {
            if let Some(&j) = index.get(old) {
                let from = memo[j]
                    .clone()
                    .unwrap_or_else(|| patches[j].manifest.categories.clone());
                cats.extend(
                    from.into_iter()
                        .filter(|c| !NOT_INHERITED.contains(&c.as_str())),
                );
            }
        }
        cats.sort();
        cats.dedup();
        memo[n] = Some(cats);
    }
    memo[i].clone().unwrap_or_default()
}

/// `categories.toml`: a table of tag = "description". Problems are reported
/// as a broken entry; the depot still opens.
fn read_categories(root: &Path) -> (BTreeMap<String, String>, Option<Broken>) {
    let path = root.join(CATEGORIES_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (BTreeMap::new(), None),
        Err(e) => {
            return (
                BTreeMap::new(),
                Some(Broken {
                    file: CATEGORIES_FILE.into(),
                    line: None,
                    message: format!("cannot read: {e}"),
                }),
            );
        }
    };
    match toml::from_str::<BTreeMap<String, String>>(&text) {
        Ok(map) => (map, None),
        Err(e) => (
            BTreeMap::new(),
            Some(Broken {
                file: CATEGORIES_FILE.into(),
                line: e.span().map(|s| manifest::line_of(&text, s.start)),
                message: format!(
                    "{}; expected lines like critical_patch = \"Fixes a critical problem\"",
                    e.message().trim()
                ),
            }),
        ),
    }
}
