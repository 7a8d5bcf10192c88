//! Rolling back an applied patch from its saved files.

use std::fs;
use std::io;

use crate::engine::archive;
use crate::engine::inventory::PatchState;
use crate::engine::manifest::Restart;
use fault::point;

use super::*;

impl Node {
    /// Restores what an applied patch replaced, byte for byte, and deletes
    /// what it created: `applied → staged`. A patch it had superseded
    /// returns to its former state.
    pub fn rollback(&mut self, id: &str) -> Result<Report> {
        let (_lock, row) = self.start("rollback", id, PatchState::Applied)?;
        let files = self.db(store::files(&self.conn, id))?;
        // A later patch that rewrote one of these files must go first.
        for other in self.db(store::patches(&self.conn))? {
            if other.id == *id || !other.state.is_installed() || other.seq <= row.seq {
                continue;
            }
            let theirs = self.db(store::files(&self.conn, &other.id))?;
            if let Some(f) = theirs
                .iter()
                .find(|t| files.iter().any(|f| f.path == t.path))
            {
                return Err(self.err(
                    ErrorKind::Refused,
                    format!(
                        "cannot rollback {id}: {} was changed later by {}; roll {} back first",
                        f.path, other.id, other.id
                    ),
                ));
            }
        }
        // The tree may have changed since the install: never restore or
        // delete through a symbolic link that has appeared on the way.
        for f in &files {
            paths::resolve(&self.root, &f.path)
                .map_err(|m| self.err(ErrorKind::Invalid, format!("cannot rollback {id}: {m}")))?;
        }
        let save = self.save_dir(id);
        // Rollback writes no file data (links and renames only); the margin
        // is for the database.
        self.check_space("rollback", id, 0)?;
        // A mark left by an undo that was cut short after its intent ended.
        self.io(
            "clearing the save area",
            paths::remove_file(&save.join(UNDO_MARK)),
        )?;
        let reserve = self.reserve()?;
        self.db(store::begin_intent(&self.conn, "rollback", id, "prepare"))?;
        let prepared = (|| {
            self.io("rollback", point(20))?;
            // The patch's files are kept by hard link too, so an undo puts
            // them back by rename: no data is written, which a full disk
            // could refuse.
            for f in &files {
                let target = self.root.join(&f.path);
                if !fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_file()) {
                    continue;
                }
                let kept = save.join("redo").join(&f.path);
                self.io(
                    "preparing the rollback",
                    fs::create_dir_all(kept.parent().unwrap_or(&save)),
                )?;
                self.io("preparing the rollback", paths::remove_file(&kept))?;
                self.io("preparing the rollback", fs::hard_link(&target, &kept))?;
            }
            for f in &files {
                let Some(before) = &f.before_sha else {
                    continue;
                };
                let orig = save.join("orig").join(&f.path);
                let sha = self.io(
                    format!("reading the saved copy of {}", f.path),
                    archive::sha256_file(&orig),
                )?;
                if &sha != before {
                    return Err(self.err(
                        ErrorKind::Io,
                        format!(
                            "the saved copy of {} is damaged; nothing was changed",
                            f.path
                        ),
                    ));
                }
                // A hard link keeps the saved copy whole until the end.
                let restore = save.join("restore").join(&f.path);
                self.io(
                    "preparing the restore",
                    fs::create_dir_all(restore.parent().unwrap_or(&save)),
                )?;
                self.io("preparing the restore", paths::remove_file(&restore))?;
                self.io("preparing the restore", fs::hard_link(&orig, &restore))?;
                self.io("rollback", point(21))?;
            }
            self.io(
                "syncing the save area",
                paths::sync_filesystem(&self.store_dir()),
            )
        })();
        let prepared = prepared.and_then(|_| self.db(store::set_phase(&self.conn, "commit", None)));
        if let Err(e) = prepared {
            drop(reserve);
            return Err(match self.abandon_rollback(id) {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        if let Err(e) = self
            .io("rollback", point(22))
            .and_then(|_| self.rollback_commit(id))
        {
            drop(reserve);
            let undone = self.mark_undo(id).and_then(|_| self.undo_rollback(id));
            return Err(match undone {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        self.rollback_cleanup(id)
            .map_err(|e| self.took_effect("rollback", id, e))?;
        let also = self
            .db(store::patches(&self.conn))?
            .into_iter()
            .filter(|r| {
                r.manifest.supersedes.contains(&id.to_string())
                    || row.manifest.supersedes.contains(&r.id)
            })
            .filter(|r| r.state.is_installed() && r.id != id)
            .map(|r| r.id)
            .collect();
        let restart = if row.manifest.hot {
            Restart::None
        } else {
            row.manifest.restart
        };
        Ok(self.report(
            "rollback",
            id,
            PatchState::Staged,
            also,
            restart,
            "rolled back; the files it replaced are restored",
        ))
    }

    pub(super) fn rollback_commit(&mut self, id: &str) -> Result<()> {
        let save = self.save_dir(id);
        let files = self.db(store::files(&self.conn, id))?;
        for f in &files {
            let target = self.root.join(&f.path);
            match &f.before_sha {
                Some(_) => {
                    let restore = save.join("restore").join(&f.path);
                    if restore.exists() {
                        if let Some(parent) = target.parent() {
                            self.io("recreating a directory", fs::create_dir_all(parent))?;
                        }
                        self.io(
                            format!("restoring {}", f.path),
                            fs::rename(&restore, &target),
                        )?;
                    }
                }
                None => self.io(format!("removing {}", f.path), paths::remove_file(&target))?,
            }
            self.io("rollback", point(23))?;
        }
        let restored = files.iter().map(|f| f.path.as_str());
        self.io("syncing", paths::sync_parents(&self.root, restored))?;
        let dirs = self.db(store::dirs(&self.conn, id))?;
        self.remove_dirs(&dirs)?;
        self.io("rollback", point(24))?;

        let row = self.require(id)?;
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(tx.execute(
            "UPDATE patch SET state='staged', applied_at=NULL, seq=NULL, prev_component_version=NULL WHERE id=?1",
            [id],
        ))?;
        self.db(tx.execute("DELETE FROM patch_file WHERE patch=?1", [id]))?;
        self.db(tx.execute("DELETE FROM patch_dir WHERE patch=?1", [id]))?;
        self.db(tx.execute(
            "UPDATE patch SET state=CASE WHEN committed=1 THEN 'committed' ELSE 'applied' END, superseded_by=NULL WHERE superseded_by=?1",
            [id],
        ))?;
        let component = component_name(&row.manifest);
        match &row.prev_component_version {
            Some(v) => self.db(tx.execute(
                "UPDATE component SET version=?2 WHERE name=?1",
                [&component, v],
            ))?,
            None => self.db(tx.execute("DELETE FROM component WHERE name=?1", [&component]))?,
        };
        self.db(tx.execute("DELETE FROM pending_restart WHERE patch=?1", [id]))?;
        if !row.manifest.hot && row.manifest.restart != Restart::None {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO pending_restart(patch, kind, since) VALUES (?1, ?2, ?3)",
                [
                    &format!("{id} (rolled back)"),
                    row.manifest.restart.as_str(),
                    &store::now(),
                ],
            ))?;
        }
        self.db(store::set_phase(&tx, "cleanup", None))?;
        self.db(tx.commit())
    }

    /// After the database commit the rollback has taken effect; what is left
    /// is dropping the saved files.
    pub(super) fn rollback_cleanup(&mut self, id: &str) -> Result<()> {
        self.io("rollback", point(25))?;
        self.io(
            "dropping saved files",
            paths::remove_tree(&self.save_dir(id)),
        )?;
        self.db(store::end_intent(&self.conn))
    }

    /// Drops a prepared rollback's links and ends its intent: nothing in
    /// the node tree had changed.
    pub(super) fn abandon_rollback(&self, id: &str) -> Result<()> {
        let save = self.save_dir(id);
        for part in ["restore", "redo"] {
            self.io("abandoning rollback", paths::remove_tree(&save.join(part)))?;
        }
        self.db(store::end_intent(&self.conn))
    }

    /// Re-applies the patch after a failed rollback: renames its files back
    /// from the links kept in `save/ID/redo/` (idempotent: a link already
    /// moved is gone). Without them, from the staged copy.
    pub(super) fn undo_rollback(&mut self, id: &str) -> Result<()> {
        let save = self.save_dir(id);
        let files = self.db(store::files(&self.conn, id))?;
        let dirs = self.db(store::dirs(&self.conn, id))?;
        for d in &dirs {
            let dir = self.root.join(d);
            if !dir.is_dir() {
                self.io(format!("recreating {d}"), fs::create_dir(&dir))?;
            }
        }
        let redo = save.join("redo");
        if redo.is_dir() {
            for f in &files {
                let kept = redo.join(&f.path);
                if fs::symlink_metadata(&kept).is_ok() {
                    let target = self.root.join(&f.path);
                    self.io(
                        format!("re-installing {}", f.path),
                        fs::rename(&kept, &target),
                    )?;
                }
            }
            let back = files.iter().map(|f| f.path.as_str());
            self.io("syncing", paths::sync_parents(&self.root, back))?;
            for dir in ["restore", "redo"] {
                self.io("tidying the save area", paths::remove_tree(&save.join(dir)))?;
            }
            self.db(store::end_intent(&self.conn))?;
            return self.io(
                "tidying the save area",
                paths::remove_file(&save.join(UNDO_MARK)),
            );
        }
        // Without the links (an undo begun by an older patchdeck): re-extract
        // the files that differ from the staged copy, through the one reader.
        let file = self.io("reading staged patch", fs::File::open(self.staged_path(id)))?;
        let mut failed: Option<(String, io::Error)> = None;
        let read = archive::read_archive_with(io::BufReader::new(file), None, |entry, data| {
            let mut redo = || -> io::Result<(u64, String)> {
                let Some(f) = files.iter().find(|f| f.path == entry.path) else {
                    return hash_all(data);
                };
                let target = self.root.join(&f.path);
                if archive::sha256_file(&target).ok().as_deref() == Some(f.after_sha.as_str()) {
                    return hash_all(data);
                }
                let temp = save.join("redo").join(&f.path);
                let written = paths::write_file(&temp, data, entry.size, f.after_mode, true)?;
                if written.1 == f.after_sha {
                    fs::rename(&temp, &target)?;
                }
                Ok(written)
            };
            redo().map_err(|e| {
                let copy = io::Error::new(e.kind(), e.to_string());
                failed = Some((entry.path.clone(), e));
                copy
            })
        });
        if let Some((path, e)) = failed {
            return self.io(format!("re-installing {path}"), Err(e));
        }
        read.map_err(|e| {
            self.err(
                ErrorKind::Invalid,
                format!("cannot re-apply {id} from its staged copy: {e}"),
            )
        })?;
        for dir in ["restore", "redo"] {
            self.io("tidying the save area", paths::remove_tree(&save.join(dir)))?;
        }
        self.db(store::end_intent(&self.conn))?;
        self.io(
            "tidying the save area",
            paths::remove_file(&save.join(UNDO_MARK)),
        )
    }
}
