//! Where a payload file may be written: inside the node root, through real
//! directories only. Each existing component is checked on disk, so a
//! symlink already in the node tree can never redirect a write outside it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The store's directory inside the node root.
pub const STORE_DIR: &str = "var/lib/patchdeck";

use crate::engine::manifest::check_payload_path;

/// What is at a payload path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Absent,
    File,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub target: PathBuf,
    pub existing: Existing,
    /// Directories that must be created, outermost first, relative to root.
    pub missing_dirs: Vec<String>,
}

/// Resolves `rel` under `root`, refusing anything that would leave the root
/// or write through a symlink, a device or a directory.
pub fn resolve(root: &Path, rel: &str) -> Result<Resolved, String> {
    check_payload_path(rel)?;
    let store = STORE_DIR;
    if rel == store || rel.starts_with(&format!("{store}/")) {
        return Err(format!(
            "{rel}: is inside the node's patch store ({store}); patches never write there"
        ));
    }
    let parts: Vec<&str> = rel.split('/').collect();
    let mut here = root.to_path_buf();
    let mut missing_dirs = Vec::new();
    let mut missing = false;
    for (i, part) in parts.iter().enumerate() {
        here.push(part);
        let last = i + 1 == parts.len();
        let prefix = parts[..=i].join("/");
        if missing {
            if !last {
                missing_dirs.push(prefix);
            }
            continue;
        }
        match fs::symlink_metadata(&here) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing = true;
                if !last {
                    missing_dirs.push(prefix);
                }
            }
            Err(e) => return Err(format!("{prefix}: {e}")),
            Ok(meta) => {
                let kind = meta.file_type();
                if kind.is_symlink() {
                    return Err(format!(
                        "{rel}: {prefix} is a symbolic link; patches never write through links"
                    ));
                }
                if !last && !kind.is_dir() {
                    return Err(format!("{rel}: {prefix} is not a directory"));
                }
                if last && !kind.is_file() {
                    return Err(format!("{rel}: exists and is not a regular file"));
                }
            }
        }
    }
    let existing = if missing {
        Existing::Absent
    } else {
        Existing::File
    };
    Ok(Resolved {
        target: root.join(rel),
        existing,
        missing_dirs,
    })
}

/// fsync a directory so a rename or unlink in it survives power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Writes `data` from a reader to `path` (created fresh) with `mode`, at
/// most `limit + 1` bytes; fsynced when `sync` is set (otherwise the caller
/// makes it durable, e.g. with one [`sync_filesystem`] for many files).
/// Returns the size and SHA-256 written.
pub fn write_file<R: io::Read + ?Sized>(
    path: &Path,
    reader: &mut R,
    limit: u64,
    mode: u32,
    sync: bool,
) -> io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mut hasher = Sha256::new();
    let mut limited = reader.take(limit.saturating_add(1));
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = limited.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        total += n as u64;
    }
    // Permission bits only: setuid, setgid and sticky are never written.
    fs::set_permissions(
        path,
        std::os::unix::fs::PermissionsExt::from_mode(mode & 0o777),
    )?;
    if sync {
        file.sync_all()?;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Copies `from` to `to` keeping its whole mode, setuid, setgid and sticky
/// bits included (an original kept for rollback comes back exactly),
/// fsynced.
pub fn copy_file(from: &Path, to: &Path) -> io::Result<(u64, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(from)?.permissions().mode();
    let mut source = fs::File::open(from)?;
    let written = write_file(to, &mut source, u64::MAX - 1, mode, true)?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o7777))?;
    Ok(written)
}

/// Keeps `from`'s current content at `to` without copying: a hard link to
/// the same inode. Install replaces targets by renaming a new file over
/// them, so the linked inode is never written again and holds the original
/// bytes, mode and owner. Falls back to a copy where links cannot be made.
pub fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    remove_file(to)?;
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(_) => copy_file(from, to).map(|_| ()),
    }
}

/// Flushes the whole file system holding `path` (what `sync` does, for one
/// file system): one call makes a batch of new files durable.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = fs::File::open(path)?;
    // SAFETY: syncfs on a descriptor we own; no memory is shared.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// fsyncs each distinct parent directory of `rels` (paths under `root`) once.
pub fn sync_parents<'a>(root: &Path, rels: impl Iterator<Item = &'a str>) -> io::Result<()> {
    let mut dirs: Vec<PathBuf> = rels
        .map(|r| root.join(r).parent().unwrap_or(root).to_path_buf())
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        if d.is_dir() {
            sync_dir(&d)?;
        }
    }
    Ok(())
}

/// Removes a directory tree if present.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes a file if present.
pub fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

pub fn join_rel(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_in_the_tree_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("opt")).unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("opt/etc")).unwrap();
        let err = resolve(tmp.path(), "opt/etc/passwd").unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("opt/pw")).unwrap();
        assert!(
            resolve(tmp.path(), "opt/pw")
                .unwrap_err()
                .contains("symbolic link")
        );
    }

    #[test]
    fn missing_directories_are_listed_outermost_first() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("opt")).unwrap();
        let r = resolve(tmp.path(), "opt/a/b/c.txt").unwrap();
        assert_eq!(r.missing_dirs, ["opt/a", "opt/a/b"]);
        assert_eq!(r.existing, Existing::Absent);
    }

    #[test]
    fn the_patch_store_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["var/lib/patchdeck/ipd.sqlite", "var/lib/patchdeck"] {
            let err = resolve(tmp.path(), bad).unwrap_err();
            assert!(err.contains("patch store"), "{err}");
        }
        assert!(resolve(tmp.path(), "var/lib/patchdeck2/x").is_ok());
    }

    #[test]
    fn escaping_paths_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x"] {
            assert!(resolve(tmp.path(), bad).is_err(), "{bad}");
        }
    }
}
