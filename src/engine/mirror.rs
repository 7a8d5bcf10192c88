//! A private mirror of a depot (seed 003: a mirror inside the site keeps
//! what was downloaded available when the upstream is not, and saves
//! bandwidth). `mirror` copies the patches that match a filter list, with
//! their signature files and `categories.toml`, from an upstream depot
//! directory into a local one.
//!
//! Every source patch is verified (manifest and payload checksums) before it
//! is copied; a copy is written under a temporary name, checked against the
//! source's SHA-256, synced and only then renamed to its final name, so no
//! partial file ever carries a patch's name. Only missing or changed files
//! are copied, so a run interrupted at any point is resumed by running it
//! again, and a second run copies nothing.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::archive;
use crate::engine::depot::{CATEGORIES_FILE, Depot};
use crate::engine::filter::FilterList;

/// Prefix of the temporary files a copy is written to (never `*.patch`,
/// so a depot never reads one). Left-overs are removed at the next run.
const PARTIAL_PREFIX: &str = ".mirror-";
const PARTIAL_SUFFIX: &str = ".partial";

/// A file that could not be mirrored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failed {
    pub file: String,
    pub error: String,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub from: PathBuf,
    pub to: PathBuf,
    /// Files copied (new or changed), patch files and their signatures.
    pub copied: Vec<String>,
    /// Files already present with the same content.
    pub unchanged: usize,
    /// Source files refused (broken or unreadable) or not copied.
    pub failed: Vec<Failed>,
    /// Temporary files of an interrupted run that were removed.
    pub partials_removed: usize,
}

/// Why a mirror could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("the upstream and the mirror are the same directory: {0}")]
    SameDirectory(String),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> MirrorError {
    MirrorError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Mirrors the patches of `from` matching `filters` (all when empty) into
/// `to`, created if missing. Errors: [`MirrorError`] when a directory
/// cannot be read or written; a single bad file is reported in
/// [`Report::failed`] and does not stop the others.
pub fn mirror(from: &Path, to: &Path, filters: &FilterList) -> Result<Report, MirrorError> {
    fs::create_dir_all(to).map_err(|e| io_err(to, e))?;
    let same = fs::canonicalize(from).ok() == fs::canonicalize(to).ok();
    if same {
        return Err(MirrorError::SameDirectory(to.display().to_string()));
    }
    // One writer at a time, as for `depot add`.
    let _held = crate::engine::depot::lock(to).map_err(|e| io_err(to, e))?;
    let mut report = Report {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        copied: Vec::new(),
        unchanged: 0,
        failed: Vec::new(),
        partials_removed: 0,
    };
    // An interrupted run leaves only temporary files behind; drop them.
    for e in fs::read_dir(to).map_err(|e| io_err(to, e))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX) {
            fs::remove_file(e.path()).map_err(|err| io_err(&e.path(), err))?;
            report.partials_removed += 1;
        }
    }
    // The upstream is only read: no cache index is written into it.
    let depot = Depot::open_with(from, false, &|_, _| {}).map_err(|e| io_err(from, e))?;
    for b in &depot.broken {
        report.failed.push(Failed {
            file: b.file.clone(),
            error: b.message.clone(),
        });
    }
    let mut files: Vec<&str> = depot
        .patches
        .iter()
        .filter(|p| filters.is_empty() || filters.matches(p))
        .map(|p| p.file.as_str())
        .collect();
    files.sort_unstable();
    for file in files {
        let source = from.join(file);
        if let Err(e) = archive::read_patch(&source) {
            report.failed.push(Failed {
                file: file.to_string(),
                error: e.to_string(),
            });
            continue;
        }
        let signature = format!("{file}.minisig");
        for name in [file, signature.as_str()] {
            let src = from.join(name);
            if name != file && !src.is_file() {
                continue;
            }
            match copy_if_changed(&src, &to.join(name)) {
                Ok(true) => report.copied.push(name.to_string()),
                Ok(false) => report.unchanged += 1,
                Err(e) => report.failed.push(Failed {
                    file: name.to_string(),
                    error: e,
                }),
            }
        }
    }
    let categories = from.join(CATEGORIES_FILE);
    if categories.is_file() {
        match copy_if_changed(&categories, &to.join(CATEGORIES_FILE)) {
            Ok(true) => report.copied.push(CATEGORIES_FILE.to_string()),
            Ok(false) => report.unchanged += 1,
            Err(e) => report.failed.push(Failed {
                file: CATEGORIES_FILE.to_string(),
                error: e,
            }),
        }
    }
    Ok(report)
}

fn sha_of(path: &Path) -> Option<String> {
    archive::sha256_file(path).ok()
}

/// Copies `src` to `dst` unless `dst` already has the same bytes. True
/// when it copied. The copy goes through a temporary file beside `dst`,
/// is checked against the source's hash, synced, then renamed.
fn copy_if_changed(src: &Path, dst: &Path) -> Result<bool, String> {
    let want = archive::sha256_file(src).map_err(|e| format!("{}: {e}", src.display()))?;
    if dst.is_file() && sha_of(dst).as_deref() == Some(want.as_str()) {
        return Ok(false);
    }
    let dir = dst.parent().unwrap_or(Path::new("."));
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!("{PARTIAL_PREFIX}{name}{PARTIAL_SUFFIX}"));
    let result = (|| -> Result<(), String> {
        let mut input = fs::File::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
        let mut out = fs::File::create(&temp).map_err(|e| format!("{}: {e}", temp.display()))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| format!("{}: {e}", src.display()))?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            hash.update(chunk);
            out.write_all(chunk)
                .map_err(|e| format!("{}: {e}", temp.display()))?;
        }
        out.sync_all()
            .map_err(|e| format!("{}: {e}", temp.display()))?;
        let got = hex::encode(hash.finalize());
        if got != want {
            return Err(format!(
                "{} changed while it was copied (SHA-256 {want}, then {got}); run again",
                src.display()
            ));
        }
        fs::rename(&temp, dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| true)
}
