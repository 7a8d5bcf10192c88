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

use rayon::prelude::*;

use crate::engine::archive::{self, PatchFileError};
use crate::engine::index::{Index, Reading, Stamp};
use crate::engine::manifest;
use crate::engine::patch::{NOT_INHERITED, Patch};
use crate::engine::trust::keys;

pub const CATEGORIES_FILE: &str = "categories.toml";
/// The file every writer of a depot locks (flock) for its whole
/// judge-and-write, so two writers never judge the same old depot.
pub const LOCK_FILE: &str = ".patchdeck-depot.lock";

/// An exclusive hold on a depot ([`lock`]); released when dropped.
#[derive(Debug)]
pub struct DepotLock {
    _file: fs::File,
}

/// Takes the depot's exclusive lock, waiting while another writer (another
/// `depot add`, a `depot mirror` into it) holds it.
///
/// Errors: [`DepotError::Io`] when the lock file cannot be opened or locked
/// (a read-only depot, for instance).
pub fn lock(root: &Path) -> Result<DepotLock, DepotError> {
    let path = root.join(LOCK_FILE);
    let io = |e: std::io::Error| DepotError::Io(format!("{}: cannot lock: {e}", path.display()));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(DepotLock { _file: file })
}

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

/// Why a spec given to a verb names nothing it can use. Both are bad input
/// (exit 2) for every verb that takes patch ids or product specs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The depot has a file of that id, but it could not be read as a patch.
    #[error("{spec} is in the depot but broken: {reason}")]
    Broken { spec: String, reason: String },
    /// Neither a patch id nor a product (or `PRODUCT.FILESET`) of the depot.
    #[error("{spec} is neither a patch id nor a product in the depot {depot}")]
    Unknown { spec: String, depot: String },
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

    /// Reads every patch file's bytes again, ignoring the cache index (which
    /// only speeds up opening and cannot see a flipped bit that kept the
    /// size and mtime): what `depot check` reports. The cache is left alone.
    pub fn check(root: &Path, progress: Progress) -> Result<Depot, DepotError> {
        Self::open_with(root, false, progress)
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
        let mut names = Vec::new();
        for dirent in fs::read_dir(root).map_err(unreadable)? {
            let dirent = dirent.map_err(unreadable)?;
            if let Ok(name) = dirent.file_name().into_string()
                && name.ends_with(".patch")
            {
                names.push(name);
            }
        }
        // Stat on all cores: on a 100,000-file depot this is a large share
        // of a warm open.
        let stamps: HashMap<String, Stamp> = names
            .into_par_iter()
            .filter_map(|name| {
                let meta = fs::metadata(root.join(&name))
                    .ok()
                    .filter(|m| m.is_file())?;
                let mtime_ns = meta
                    .mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.mtime_nsec());
                Some((
                    name,
                    Stamp {
                        size: meta.len(),
                        mtime_ns,
                    },
                ))
            })
            .collect();

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
        // Sort the small (file, reading) pairs, not the large records: ids
        // order by stem, which is not the order of the file names.
        let mut readings: Vec<(String, Reading)> = readings.into_iter().collect();
        readings.par_sort_unstable_by(|a, b| {
            a.0.trim_end_matches(".patch")
                .cmp(b.0.trim_end_matches(".patch"))
        });
        let (mut patches, mut broken): (Vec<Patch>, Vec<Broken>) = readings
            .into_par_iter()
            .partition_map(|(file, reading)| match reading {
                Ok(m) => rayon::iter::Either::Left(Patch::new(
                    file.trim_end_matches(".patch").to_string(),
                    file,
                    m,
                )),
                Err(e) => rayon::iter::Either::Right(Broken {
                    file,
                    line: e.line,
                    message: e.message,
                }),
            });
        let mut bad: Vec<Option<String>> = vec![None; patches.len()];
        mark_case_duplicates(&patches, &mut bad);
        let mut preds = predecessors(&patches);
        mark_supersedes_cycles(&patches, &preds, &mut bad);
        if bad.iter().any(Option::is_some) {
            let mut bad = bad.into_iter();
            patches.retain(|p| match bad.next().flatten() {
                Some(message) => {
                    broken.push(Broken {
                        file: p.file.clone(),
                        line: None,
                        message,
                    });
                    false
                }
                None => true,
            });
            preds = predecessors(&patches);
        }
        link(&mut patches, &preds);
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

    /// Checks what an operator named: each spec is a good patch's id, or a
    /// product (`PRODUCT` or `PRODUCT.FILESET`) some good patch is for. The
    /// first that is not is returned, a broken patch file named as broken
    /// with its reason rather than as unknown.
    pub fn check_specs(&self, specs: &[String]) -> Result<(), SpecError> {
        for spec in specs {
            if self.get(spec).is_some() {
                continue;
            }
            let (product, fileset) = match spec.split_once('.') {
                Some((p, f)) => (p, Some(f)),
                None => (spec.as_str(), None),
            };
            let is_product = self.patches.iter().any(|p| {
                p.manifest.product == product
                    && fileset.is_none_or(|f| p.manifest.fileset.as_deref() == Some(f))
            });
            if is_product {
                continue;
            }
            let broken = self.broken.iter().find(|b| {
                Path::new(&b.file)
                    .file_stem()
                    .is_some_and(|stem| stem.to_string_lossy() == spec.as_str())
            });
            return Err(match broken {
                Some(b) => SpecError::Broken {
                    spec: spec.clone(),
                    reason: b.to_string(),
                },
                None => SpecError::Unknown {
                    spec: spec.clone(),
                    depot: self.root.display().to_string(),
                },
            });
        }
        Ok(())
    }

    /// Verifies each file and copies it in (temporary file, fsync, rename).
    /// An identical copy already present is fine; a different one is refused.
    /// Returns the ids added.
    ///
    /// Only regular files are read (a fifo or a device is refused before it
    /// is opened). The depot-wide rules (ids differing only in case,
    /// supersedes cycles) are applied to the depot as it will be: a file
    /// that would make itself or a good patch already there broken is
    /// refused, and nothing is added. Files are written with mode 0666 less
    /// the umask.
    ///
    /// The whole judge-and-write holds the depot's [`lock`]: a second
    /// `add` at the same time waits and is judged against the depot as the
    /// first left it. Holding it, temporary files an earlier killed writer
    /// left in the depot are removed (nobody else can be writing).
    pub fn add(root: &Path, files: &[PathBuf]) -> Result<Vec<String>, DepotError> {
        let _held = lock(root)?;
        archive::remove_leftover_temps(root).map_err(|e| {
            DepotError::Io(format!(
                "{}: cannot remove temporary files left by an interrupted write: {e}",
                root.display()
            ))
        })?;
        let mut incoming: Vec<(String, PathBuf, manifest::Manifest)> = Vec::new();
        for file in files {
            let invalid =
                |e: PatchFileError| DepotError::Invalid(format!("{}: {e}", file.display()));
            let id = archive::id_from_path(file).map_err(invalid)?;
            let meta = fs::metadata(file).map_err(|e| {
                DepotError::Invalid(format!("{}: cannot read: {e}", file.display()))
            })?;
            if !meta.is_file() {
                return Err(DepotError::Invalid(format!(
                    "{}: is not a regular file ({}); a patch is a regular file",
                    file.display(),
                    kind_of(&meta)
                )));
            }
            if meta.len() > archive::MAX_PATCH_BYTES {
                return Err(DepotError::Invalid(format!(
                    "{}: is {} bytes; a patch may be at most {} bytes",
                    file.display(),
                    meta.len(),
                    archive::MAX_PATCH_BYTES
                )));
            }
            let m = archive::read_patch(file).map_err(invalid)?;
            let dest = root.join(format!("{id}.patch"));
            if dest.exists() {
                let same = archive::sha256_file(&dest).ok() == archive::sha256_file(file).ok();
                if same {
                    // The same patch, perhaps newly signed: take its signature.
                    copy_signature(file, &dest)?;
                    continue;
                }
                return Err(DepotError::Conflict(format!(
                    "{}: the depot already has a different {id}.patch; remove it first or give the new one another id",
                    file.display()
                )));
            }
            incoming.push((id, file.clone(), m));
        }
        Self::check_as_it_will_be(root, &incoming)?;
        let mut added = Vec::new();
        for (id, file, _) in incoming {
            let dest = root.join(format!("{id}.patch"));
            // The signature first: a reader never sees the patch without
            // the signature it came with.
            copy_signature(&file, &dest)?;
            copy_atomic(&file, &dest).map_err(|e| {
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

    /// Applies the cross-patch rules to the depot with `incoming` added;
    /// refuses when a new patch, or a patch that was good, would be broken.
    fn check_as_it_will_be(
        root: &Path,
        incoming: &[(String, PathBuf, manifest::Manifest)],
    ) -> Result<(), DepotError> {
        if incoming.is_empty() {
            return Ok(());
        }
        let now = Depot::open(root)?;
        let mut readings: HashMap<String, Reading> = now
            .patches
            .iter()
            .map(|p| (p.file.clone(), Ok(p.manifest.clone())))
            .collect();
        for (id, _, m) in incoming {
            readings.insert(format!("{id}.patch"), Ok(m.clone()));
        }
        let after = Depot::from_readings(root, readings);
        let was_good = |file: &str| now.patches.iter().any(|p| p.file == file);
        let new_file = |file: &str| {
            incoming
                .iter()
                .any(|(id, _, _)| format!("{id}.patch") == file)
        };
        let harmed: Vec<String> = after
            .broken
            .iter()
            .filter(|b| was_good(&b.file) || new_file(&b.file))
            .map(|b| b.to_string())
            .collect();
        if harmed.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = incoming
            .iter()
            .map(|(_, f, _)| f.display().to_string())
            .collect();
        Err(DepotError::Invalid(format!(
            "{}: refused, nothing was added: the depot would then have broken patches: {}",
            names.join(", "),
            harmed.join("; ")
        )))
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

/// Copies `FILE.minisig` beside `file`, when there is one, to beside
/// `dest` (docs/trust.md); what it proves is decided when it is used.
fn copy_signature(file: &Path, dest: &Path) -> Result<(), DepotError> {
    let sig = keys::sig_path(file);
    if !sig.is_file() {
        return Ok(());
    }
    let meta = fs::metadata(&sig)
        .map_err(|e| DepotError::Invalid(format!("{}: cannot read: {e}", sig.display())))?;
    if meta.len() > keys::MAX_SIG_BYTES {
        return Err(DepotError::Invalid(format!(
            "{}: is {} bytes; a signature is at most {}",
            sig.display(),
            meta.len(),
            keys::MAX_SIG_BYTES
        )));
    }
    let to = keys::sig_path(dest);
    copy_atomic(&sig, &to).map_err(|e| {
        DepotError::Io(format!(
            "{}: cannot copy to {}: {e}",
            sig.display(),
            to.display()
        ))
    })
}

/// Copies through a temporary file in the destination directory, fsyncs it,
/// renames it into place, and fsyncs the directory.
pub fn copy_atomic(from: &Path, to: &Path) -> std::io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut temp = archive::shared_temp(dir)?;
    let mut source = fs::File::open(from)?;
    std::io::copy(&mut source, temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    temp.persist(to).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

/// What a non-regular file is, for a refusal.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Reads files on all cores; order of the result does not matter.
fn read_all(root: &Path, files: &[&String], progress: Progress) -> Vec<(String, Reading)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let done = AtomicUsize::new(0);
    let total = files.len();
    files
        .par_iter()
        .map(|file| {
            let reading = archive::read_patch(&root.join(file.as_str()));
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(1000) || n == total {
                progress(n, total);
            }
            ((*file).clone(), reading)
        })
        .collect()
}

/// For each patch, the indexes of the depot patches it supersedes.
fn predecessors(patches: &[Patch]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = patches
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    patches
        .iter()
        .map(|p| {
            p.manifest
                .supersedes
                .iter()
                .filter_map(|id| index.get(id.as_str()).copied())
                .collect()
        })
        .collect()
}

/// Ids that differ only in case would collide on case-insensitive file
/// systems and confuse operators: the later one (by id) is refused.
fn mark_case_duplicates(patches: &[Patch], bad: &mut [Option<String>]) {
    let mut first: HashMap<String, &str> = HashMap::new();
    for (i, p) in patches.iter().enumerate() {
        match first.entry(p.id.to_ascii_lowercase()) {
            std::collections::hash_map::Entry::Occupied(other) => {
                bad[i] = Some(format!(
                    "duplicate id: {} differs from {} only in case; expected unique ids",
                    p.id,
                    other.get()
                ));
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(&p.id);
            }
        }
    }
}

/// Every patch on a supersedes cycle is broken: no chain top exists.
fn mark_supersedes_cycles(patches: &[Patch], preds: &[Vec<usize>], bad: &mut [Option<String>]) {
    // Iterative three-colour DFS; reaching a grey node again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; patches.len()];
    for start in 0..patches.len() {
        if colour[start] != Colour::White || preds[start].is_empty() {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = Colour::Grey;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&succ) = preds[node].get(*next) else {
                colour[node] = Colour::Black;
                stack.pop();
                continue;
            };
            *next += 1;
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
                    let text = format!(
                        "supersedes cycle: {} -> {}; expected a chain that ends",
                        path.join(" -> "),
                        patches[succ].id
                    );
                    for (n, _) in &stack[from..] {
                        bad[*n].get_or_insert_with(|| text.clone());
                    }
                }
                Colour::Black => {}
            }
        }
    }
}

/// Fills `superseded_by` and the inherited categories. The supersedes graph
/// is acyclic here; one post-order walk settles every patch after the
/// patches it supersedes.
fn link(patches: &mut [Patch], preds: &[Vec<usize>]) {
    let mut superseded_by: Vec<Vec<String>> = vec![Vec::new(); patches.len()];
    for (i, ps) in preds.iter().enumerate() {
        for &j in ps {
            superseded_by[j].push(patches[i].id.clone());
        }
    }
    let mut done = vec![false; patches.len()];
    let mut stack = Vec::new();
    for start in 0..patches.len() {
        if done[start] || preds[start].is_empty() {
            continue;
        }
        stack.push((start, false));
        while let Some((node, expanded)) = stack.pop() {
            if done[node] {
                continue;
            }
            if !expanded
                && preds[node]
                    .iter()
                    .any(|&j| !done[j] && !preds[j].is_empty())
            {
                stack.push((node, true));
                stack.extend(
                    preds[node]
                        .iter()
                        .filter(|&&j| !done[j])
                        .map(|&j| (j, false)),
                );
                continue;
            }
            let mut cats = patches[node].categories.clone();
            for &j in &preds[node] {
                cats.extend(
                    patches[j]
                        .categories
                        .iter()
                        .filter(|c| !NOT_INHERITED.contains(&c.as_str()))
                        .cloned(),
                );
            }
            cats.sort();
            cats.dedup();
            patches[node].categories = cats;
            done[node] = true;
        }
    }
    for (p, mut by) in patches.iter_mut().zip(superseded_by) {
        by.sort();
        p.superseded_by = by;
    }
}

/// `categories.toml`: a table of tag = "description". Problems are reported
/// as a broken entry; the depot still opens.
fn read_categories(root: &Path) -> (BTreeMap<String, String>, Option<Broken>) {
    let path = root.join(CATEGORIES_FILE);
    let text = match fs::read(&path).map(crate::engine::text::utf8) {
        Ok(Ok(t)) => t,
        Ok(Err((line, message))) => {
            return (
                BTreeMap::new(),
                Some(Broken {
                    file: CATEGORIES_FILE.into(),
                    line: Some(line),
                    message,
                }),
            );
        }
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
                line: e
                    .span()
                    .map(|s| crate::engine::tomlspan::line_of(&text, s.start)),
                message: format!(
                    "{}; expected lines like critical_patch = \"Fixes a critical problem\"",
                    e.message().trim()
                ),
            }),
        ),
    }
}
