//! A read-only audit of a node's files against its saved state, for
//! `patchdeck doctor`.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::engine::archive;
use crate::engine::inventory::PatchState;

use super::*;

/// The node's files against its saved state, read-only (no recovery, no
/// lock), for `patchdeck doctor`: an unfinished operation, staged copies
/// and save areas missing or left over, saved originals that no longer
/// match, installed files that drifted. Each problem is `(path, what is
/// wrong, how to recover)`. `Err` when the database cannot be read.
pub fn audit(root: &Path) -> std::result::Result<Vec<(PathBuf, String, String)>, String> {
    let store = root.join(STORE_DIR);
    let db = store.join("ipd.sqlite");
    let conn = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    let read = |e: rusqlite::Error| format!("{}: {e}", db.display());
    let mut out = Vec::new();
    if let Some(i) = store::intent(&conn).map_err(read)? {
        out.push((
            db.clone(),
            format!(
                "an interrupted {} of {} (phase {}) is not finished",
                i.op, i.patch, i.phase
            ),
            "run any operation on this node (e.g. `patchdeck list --nodes ID`): it finishes or undoes it first".to_string(),
        ));
    }
    let rows = store::patches(&conn).map_err(read)?;
    for row in &rows {
        let id = &row.id;
        let staged = store.join("staged").join(format!("{id}.patch"));
        if !staged.is_file() {
            out.push((
                staged.clone(),
                format!("the staged copy of {id} ({}) is missing", row.state),
                format!(
                    "copy {id}.patch from the depot to {} (it is verified again before use)",
                    staged.display()
                ),
            ));
        }
        if !row.state.is_installed() {
            continue;
        }
        let files = store::files(&conn, id).map_err(read)?;
        if row.state == PatchState::Applied && !row.committed {
            for f in files.iter().filter(|f| f.before_sha.is_some()) {
                let saved = store.join("save").join(id).join("orig").join(&f.path);
                let sha = archive::sha256_file(&saved).ok();
                if sha != f.before_sha {
                    out.push((
                        saved,
                        format!(
                            "the saved original of {} is {}; {id} cannot be rolled back",
                            f.path,
                            if sha.is_some() { "damaged" } else { "missing" }
                        ),
                        format!(
                            "restore the file from a backup, or commit {id} to give up its rollback"
                        ),
                    ));
                }
            }
        }
        for f in &files {
            let on_disk = root.join(&f.path);
            let regular = fs::symlink_metadata(&on_disk).is_ok_and(|m| m.file_type().is_file());
            let sha = regular
                .then(|| archive::sha256_file(&on_disk).ok())
                .flatten();
            let later = rows.iter().any(|r| {
                r.state.is_installed()
                    && r.seq > row.seq
                    && store::files(&conn, &r.id)
                        .is_ok_and(|fs| fs.iter().any(|g| g.path == f.path))
            });
            if !later && sha.as_deref() != Some(f.after_sha.as_str()) {
                out.push((
                    on_disk,
                    format!(
                        "{} differs from what {id} installed ({})",
                        f.path,
                        if sha.is_some() { "changed" } else { "missing or not a regular file" }
                    ),
                    format!("see `patchdeck verify`; roll {id} back and install it again, or restore the file"),
                ));
            }
        }
    }
    let known = |id: &str| rows.iter().any(|r| r.id == id);
    if let Ok(dir) = fs::read_dir(store.join("staged")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".patch").unwrap_or(&name);
            if !known(id) {
                out.push((
                    e.path(),
                    format!("{name} is in staged/ but the database does not know it"),
                    "delete it, or stage the patch again".to_string(),
                ));
            }
        }
    }
    if let Ok(dir) = fs::read_dir(store.join("save")) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let kept = rows
                .iter()
                .any(|r| r.id == id && r.state.is_installed() && !r.committed);
            if !kept {
                out.push((
                    e.path(),
                    format!("a save area for {id}, which has nothing to roll back"),
                    "delete it once no operation runs on this node".to_string(),
                ));
            }
        }
    }
    Ok(out)
}
