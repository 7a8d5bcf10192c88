//! Installing a staged patch: the whole-plan checks (requirements, free
//! space), the save area, the point of no return and the renames.

use std::fs;
use std::io;
use std::path::Path;

use crate::engine::archive;
use crate::engine::inventory::PatchState;
use crate::engine::manifest::{Manifest, Restart};
use crate::engine::requirement::{self, Supersession};
use crate::engine::version::base_version_satisfied;
use fault::point;
use store::FileRow;

use super::*;

impl Node {
    /// Installs a staged patch: saves what it replaces (unless `save` is
    /// false, which goes straight to committed), writes its files, and marks
    /// the patches it supersedes.
    pub fn install(&mut self, id: &str, save: bool) -> Result<Report> {
        self.install_with(id, save, &Supersession::default())
    }

    /// [`Node::install`], first keeping the supersession edges `known` (from
    /// the console's depot), so a requirement met through a chain of patches
    /// this node never held is seen as met, now and by later rollbacks.
    pub fn install_with(&mut self, id: &str, save: bool, known: &Supersession) -> Result<Report> {
        let (_lock, row) = self.start("install", id, PatchState::Staged)?;
        self.learn(known)?;
        let manifest = row.manifest.clone();
        self.check_base(id, &manifest)?;
        self.check_prerequisites(id, &manifest)?;
        let mut plan = Plan {
            save,
            ..Plan::default()
        };
        let mut resolved = Vec::new();
        for f in &manifest.files {
            let r = paths::resolve(&self.root, &f.path)
                .map_err(|m| self.err(ErrorKind::Invalid, format!("{id}: {m}")))?;
            for d in &r.missing_dirs {
                if !plan.created_dirs.contains(d) {
                    plan.created_dirs.push(d.clone());
                }
            }
            resolved.push(r);
        }
        self.check_space("install", id, self.install_payload(&manifest, &resolved))?;
        let reserve = self.reserve()?;
        self.db(store::begin_intent(&self.conn, "install", id, "prepare"))?;
        let prepared = self
            .install_prepare(id, &manifest, &resolved, &mut plan)
            .and_then(|_| {
                let plan_json = serde_json::to_string(&plan).unwrap_or_default();
                self.db(store::set_phase(&self.conn, "commit", Some(&plan_json)))
            });
        if let Err(e) = prepared {
            drop(reserve);
            return Err(match self.abandon_install(id) {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        if let Err(e) = self
            .io("install", point(14))
            .and_then(|_| self.install_commit(id, &plan))
        {
            drop(reserve);
            let undone = self
                .mark_undo(id)
                .and_then(|_| self.undo_install(id, &plan));
            return Err(match undone {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        self.install_cleanup(id, &plan)
            .map_err(|e| self.took_effect("install", id, e))?;
        let row = self.require(id)?;
        let also = self
            .db(store::patches(&self.conn))?
            .into_iter()
            .filter(|r| r.superseded_by.as_deref() == Some(id))
            .map(|r| r.id)
            .collect();
        let message = match (manifest.hot, manifest.restart) {
            (true, _) | (_, Restart::None) => "installed; no restart needed".to_string(),
            (_, r) => format!("installed; a {r} restart is needed for it to take effect"),
        };
        Ok(self.report(
            "install",
            id,
            row.state,
            also,
            if manifest.hot {
                Restart::None
            } else {
                manifest.restart
            },
            &message,
        ))
    }

    /// Drops a prepared install's save area and ends its intent: nothing in
    /// the node tree had changed.
    pub(super) fn abandon_install(&self, id: &str) -> Result<()> {
        self.io("abandoning install", paths::remove_tree(&self.save_dir(id)))?;
        self.db(store::end_intent(&self.conn))
    }

    /// Bytes, rounded to blocks, an install writes before its point of no
    /// return: every payload file, and a copy of each original where the
    /// save area is on another file system than the original (no hard link).
    pub(super) fn install_payload(&self, m: &Manifest, resolved: &[paths::Resolved]) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let block = self.block_size();
        let store_dev = fs::metadata(self.store_dir()).map(|m| m.dev()).ok();
        let copies = resolved.iter().filter_map(|r| {
            let meta = fs::metadata(&r.target).ok()?;
            (r.existing == paths::Existing::File && Some(meta.dev()) != store_dev)
                .then_some(meta.len())
        });
        let sizes: Vec<u64> = m.files.iter().map(|f| f.size).chain(copies).collect();
        space::install_need(sizes, block) - space::MARGIN_BYTES
    }

    /// Whether installing `ids` one after another (those staged here; the
    /// others are skipped) fits: their payloads, rounded to blocks, plus
    /// [`space::MARGIN_BYTES`], the same rule install applies to itself.
    /// The rollout preflight asks this of every member before it drains the
    /// first group. `Io` error saying the bytes needed and free, or `Invalid`
    /// for a payload path that cannot be installed.
    pub fn check_install_space(&self, ids: &[String]) -> Result<()> {
        let mut payload = 0u64;
        let mut which = Vec::new();
        for id in ids {
            let Some(row) = self.db(store::patch(&self.conn, id))? else {
                continue;
            };
            if row.state != PatchState::Staged {
                continue;
            }
            let resolved = row
                .manifest
                .files
                .iter()
                .map(|f| paths::resolve(&self.root, &f.path))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|m| self.err(ErrorKind::Invalid, format!("{id}: {m}")))?;
            payload = payload.saturating_add(self.install_payload(&row.manifest, &resolved));
            which.push(id.as_str());
        }
        if which.is_empty() {
            return Ok(());
        }
        self.check_space("install", &which.join(", "), payload)
    }

    pub(super) fn check_base(&self, id: &str, m: &Manifest) -> Result<()> {
        let products: std::collections::HashMap<String, String> =
            self.db(store::products(&self.conn))?.into_iter().collect();
        let Some(installed) = products.get(&m.product) else {
            return Err(self.err(
                ErrorKind::Refused,
                format!(
                    "cannot install {id}: product {} is not installed here",
                    m.product
                ),
            ));
        };
        if let Some(base) = &m.base_version
            && base_version_satisfied(base, installed) != Some(true)
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!(
                    "cannot install {id}: it needs {} {base}, and {installed} is installed",
                    m.product
                ),
            ));
        }
        Ok(())
    }

    /// Each requirement must be installed, or replaced by an installed patch
    /// that supersedes it.
    pub(super) fn check_prerequisites(&self, id: &str, m: &Manifest) -> Result<()> {
        let rows = self.db(store::patches(&self.conn))?;
        let graph = self.graph(&rows)?;
        let installed = installed_ids(&rows);
        // Never beneath a newer patch: whoever asks (a verb or a rollout),
        // the node itself refuses a patch something installed replaces.
        if let Some(newer) = installed
            .iter()
            .find(|p| **p != id && requirement::covers(&graph, p, id))
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!("cannot install {id}: {newer}, which supersedes it, is installed here"),
            ));
        }
        if let Some(req) = requirement::unmet(&graph, &m.requires, installed.iter().copied())
            .into_iter()
            .next()
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!("cannot install {id}: it requires {req}, which is not installed here, nor any patch known to supersede it; install {req} first (or a patch superseding it)"),
            ));
        }
        Ok(())
    }

    pub(super) fn install_prepare(
        &self,
        id: &str,
        m: &Manifest,
        resolved: &[paths::Resolved],
        plan: &mut Plan,
    ) -> Result<()> {
        let save = self.save_dir(id);
        self.io("clearing the save area", paths::remove_tree(&save))?;
        self.io("install", point(10))?;
        // Keep the originals by hard link; their checksums are computed on
        // another core while this one extracts the payload.
        let mut to_hash = Vec::new();
        for (i, (f, r)) in m.files.iter().zip(resolved).enumerate() {
            let before_mode = match r.existing {
                paths::Existing::File => {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = self
                        .io(&f.path, fs::metadata(&r.target))?
                        .permissions()
                        .mode()
                        & 0o7777;
                    let saved = save.join("orig").join(&f.path);
                    self.io(
                        format!("saving {}", f.path),
                        paths::link_or_copy(&r.target, &saved),
                    )?;
                    self.io("install", point(11))?;
                    to_hash.push((i, saved));
                    Some(mode)
                }
                paths::Existing::Absent => None,
            };
            plan.files.push(FileRow {
                path: f.path.clone(),
                before_sha: None,
                before_mode,
                after_sha: f.sha256.clone(),
                after_mode: f.mode & 0o777,
            });
        }
        let (hashes, extracted) = std::thread::scope(|scope| {
            let hashing = scope.spawn(move || {
                to_hash
                    .into_iter()
                    .map(|(i, path)| (i, archive::sha256_file(&path)))
                    .collect::<Vec<_>>()
            });
            let extracted = self.extract_payload(id, m, &save);
            (hashing.join(), extracted)
        });
        extracted?;
        let hashes = hashes
            .map_err(|_| self.err(ErrorKind::Io, "checksumming the saved originals failed"))?;
        for (i, sha) in hashes {
            let sha = self.io(
                format!("reading the saved copy of {}", plan.files[i].path),
                sha,
            )?;
            plan.files[i].before_sha = Some(sha);
        }
        self.io("install", point(13))
    }

    /// Extracts the payload into `save/new`, the last check before install:
    /// the staged copy is read by the same archive reader that verified it
    /// at staging, and must still list the files it listed then.
    pub(super) fn extract_payload(&self, id: &str, m: &Manifest, save: &Path) -> Result<()> {
        let file = self.io("reading staged patch", fs::File::open(self.staged_path(id)))?;
        let new = save.join("new");
        // A failed write is an I/O error (a full disk, a fault), not a bad patch.
        let mut failed: Option<(String, io::Error)> = None;
        let read = archive::read_archive_with(io::BufReader::new(file), Some(m), |f, data| {
            let written = paths::write_file(&new.join(&f.path), data, f.size, f.mode, false)
                .and_then(|w| point(12).map(|_| w));
            written.map_err(|e| {
                let copy = io::Error::new(e.kind(), e.to_string());
                failed = Some((f.path.clone(), e));
                copy
            })
        });
        if let Some((path, e)) = failed {
            return self.io(format!("extracting {path}"), Err(e));
        }
        read.map_err(|e| {
            self.err(
                ErrorKind::Invalid,
                format!("staged {id} fails verification: {e}; remove and stage it again"),
            )
        })?;
        // One flush makes every prepared file durable before the point of no return.
        if save.exists() {
            self.io("syncing the save area", paths::sync_filesystem(save))?;
        }
        Ok(())
    }

    /// Past the point of no return: idempotent, so recovery can repeat it.
    pub(super) fn install_commit(&mut self, id: &str, plan: &Plan) -> Result<()> {
        let save = self.save_dir(id);
        for d in &plan.created_dirs {
            let dir = self.root.join(d);
            if !dir.is_dir() {
                self.io(format!("creating {d}"), fs::create_dir(&dir))?;
            }
        }
        for f in &plan.files {
            let new = save.join("new").join(&f.path);
            if new.exists() {
                let target = self.root.join(&f.path);
                self.io(format!("installing {}", f.path), fs::rename(&new, &target))?;
                self.io("install", point(15))?;
            }
        }
        let installed = plan.files.iter().map(|f| f.path.as_str());
        self.io("syncing", paths::sync_parents(&self.root, installed))?;
        self.io(
            "tidying the save area",
            paths::remove_tree(&save.join("new")),
        )?;
        self.io("install", point(16))?;

        let manifest = self.require(id)?.manifest;
        // What the patch replaces through a chain (MA3 over MA1 via an MA2
        // the node never held) is superseded too, by the one rule.
        let rows = self.db(store::patches(&self.conn))?;
        let graph = self.graph(&rows)?;
        let replaced: Vec<String> = rows
            .iter()
            .filter(|r| r.id != id && requirement::covers(&graph, id, &r.id))
            .map(|r| r.id.clone())
            .collect();
        let now = store::now();
        let tx = self.db(self.conn.unchecked_transaction())?;
        let seq: i64 = self.db(tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM patch",
            [],
            |r| r.get(0),
        ))?;
        let component = component_name(&manifest);
        let prev: Option<String> = self.db(tx
            .query_row(
                "SELECT version FROM component WHERE name=?1",
                [&component],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            }))?;
        let (state, committed) = if plan.save {
            ("applied", 0)
        } else {
            ("committed", 1)
        };
        self.db(tx.execute(
            "UPDATE patch SET state=?2, committed=?3, applied_at=?4, committed_at=CASE WHEN ?3=1 THEN ?4 END,
             seq=?5, prev_component_version=?6, superseded_by=NULL WHERE id=?1",
            rusqlite::params![id, state, committed, now, seq, prev],
        ))?;
        for f in &plan.files {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO patch_file(patch, path, before_sha, before_mode, after_sha, after_mode) VALUES (?1,?2,?3,?4,?5,?6)",
                rusqlite::params![id, f.path, f.before_sha, f.before_mode.map(|m| m as i64), f.after_sha, f.after_mode as i64],
            ))?;
        }
        for d in &plan.created_dirs {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO patch_dir(patch, path) VALUES (?1, ?2)",
                [id, d],
            ))?;
        }
        for old in &replaced {
            self.db(tx.execute(
                "UPDATE patch SET state='superseded', superseded_by=?2 WHERE id=?1 AND state IN ('applied','committed')",
                [old, id],
            ))?;
        }
        self.db(tx.execute(
            "INSERT INTO component(name, version) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET version=?2",
            [&component, &manifest.version],
        ))?;
        if !manifest.hot && manifest.restart != Restart::None {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO pending_restart(patch, kind, since) VALUES (?1, ?2, ?3)",
                [id, manifest.restart.as_str(), &now],
            ))?;
        }
        if plan.save {
            self.db(store::end_intent(&tx))?;
        } else {
            self.db(store::set_phase(&tx, "cleanup", None))?;
        }
        self.db(tx.commit())
    }

    /// After the database commit the install has taken effect; what is left
    /// is dropping the save area when nothing is kept for rollback.
    pub(super) fn install_cleanup(&mut self, id: &str, plan: &Plan) -> Result<()> {
        self.io("install", point(17))?;
        if !plan.save {
            self.io(
                "dropping saved files",
                paths::remove_tree(&self.save_dir(id)),
            )?;
            self.db(store::end_intent(&self.conn))?;
        }
        Ok(())
    }

    /// An error after an operation's database commit: the change has taken
    /// effect and is not undone (that would need a second operation, which
    /// could fail in turn). The intent still names the tidying left, which
    /// the next operation or open finishes.
    pub(super) fn took_effect(&self, op: &str, id: &str, e: NodeError) -> NodeError {
        self.err(
            e.kind,
            format!(
                "the {op} of {id} took effect, but tidying up afterwards failed (the next operation on this node finishes it): {}",
                e.message
            ),
        )
    }

    /// Puts back what a failed install changed. Idempotent: a file whose new
    /// copy is still in the save area was never touched.
    pub(super) fn undo_install(&self, id: &str, plan: &Plan) -> Result<()> {
        let save = self.save_dir(id);
        for f in plan.files.iter().rev() {
            if save.join("new").join(&f.path).exists() {
                continue;
            }
            let target = self.root.join(&f.path);
            match &f.before_sha {
                Some(_) => {
                    let orig = save.join("orig").join(&f.path);
                    if orig.exists() {
                        self.io(format!("restoring {}", f.path), fs::rename(&orig, &target))?;
                    }
                }
                None => self.io(format!("removing {}", f.path), paths::remove_file(&target))?,
            }
        }
        self.remove_dirs(&plan.created_dirs)?;
        // The undo mark goes last, after the intent: until the intent is
        // gone, recovery must still know to undo.
        for part in ["new", "orig"] {
            self.io(
                "clearing the save area",
                paths::remove_tree(&save.join(part)),
            )?;
        }
        self.db(store::end_intent(&self.conn))?;
        self.io("clearing the save area", paths::remove_tree(&save))
    }

    /// Removes directories a patch created, deepest first, if empty.
    pub(super) fn remove_dirs(&self, dirs: &[String]) -> Result<()> {
        let mut dirs: Vec<&String> = dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        for d in dirs {
            match fs::remove_dir(self.root.join(d)) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
                Err(e) => return Err(self.err(ErrorKind::Io, format!("removing {d}: {e}"))),
            }
        }
        Ok(())
    }
}
