//! Staging a verified patch into the node's store, and removing a staged one.

use std::fs;
use std::io;
use std::path::Path;

use crate::engine::archive;
use crate::engine::inventory::PatchState;
use crate::engine::manifest::Restart;
use fault::point;
use lock::NodeLock;
use store::PatchRow;

use super::*;

impl Node {
    /// Copies a patch file in and verifies it: `none → staged`. Staging the
    /// same bytes again is a no-op.
    pub fn stage(&mut self, id: &str, source: &Path) -> Result<Report> {
        crate::engine::manifest::check_id(id).map_err(|m| self.err(ErrorKind::Invalid, m))?;
        let _lock = self.lock("stage", id)?;
        self.recover()?;
        let target = self.staged_path(id);
        if let Some(row) = self.db(store::patch(&self.conn, id))? {
            let same = archive::sha256_file(&target).ok() == archive::sha256_file(source).ok();
            return match row.state {
                PatchState::Staged if same => Ok(self.report(
                    "stage",
                    id,
                    PatchState::Staged,
                    vec![],
                    Restart::None,
                    "already staged and verified",
                )),
                PatchState::Staged => Err(self.err(
                    ErrorKind::Refused,
                    format!("{id} is staged with different content; remove it first"),
                )),
                s => Err(self.err(
                    ErrorKind::Refused,
                    format!("{id} is {s} here; staging is for patches not yet on the node"),
                )),
            };
        }
        let size = self.io(source.display(), fs::metadata(source))?.len();
        self.check_space("stage", id, space::rounded(size, self.block_size()))?;
        let reserve = self.reserve()?;
        self.db(store::begin_intent(&self.conn, "stage", id, "prepare"))?;
        let temp = target.with_extension("patch.tmp");
        let result = (|| {
            self.io("staging", point(1))?;
            let mut src = self.io(source.display(), fs::File::open(source))?;
            self.io(
                "copying into staged/",
                paths::write_file(&temp, &mut src, u64::MAX - 1, 0o644, true),
            )?;
            self.io("staging", point(2))?;
            let file = self.io("reading the staged copy", fs::File::open(&temp))?;
            let manifest = archive::read_archive(io::BufReader::new(file))
                .map_err(|e| self.err(ErrorKind::Invalid, format!("{id}: {e}")))?;
            if manifest.id.as_deref().is_some_and(|m| m != id) {
                return Err(self.err(
                    ErrorKind::Invalid,
                    format!("{id}: the manifest says its id is {:?}", manifest.id),
                ));
            }
            self.io("renaming into staged/", fs::rename(&temp, &target))?;
            self.io(
                "syncing staged/",
                paths::sync_dir(&self.store_dir().join("staged")),
            )?;
            self.io("staging", point(3))?;
            let tx = self.db(self.conn.unchecked_transaction())?;
            self.db(store::insert_staged(&tx, id, &manifest))?;
            self.db(store::end_intent(&tx))?;
            self.db(tx.commit())
        })();
        if let Err(e) = result {
            // Nothing took effect: the row and the intent's end commit together.
            drop(reserve);
            return Err(match self.undo_stage(id) {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        Ok(self.report(
            "stage",
            id,
            PatchState::Staged,
            vec![],
            Restart::None,
            "staged and verified",
        ))
    }

    pub(super) fn undo_stage(&self, id: &str) -> Result<()> {
        let target = self.staged_path(id);
        self.io(
            "removing the staged copy",
            paths::remove_file(&target.with_extension("patch.tmp")),
        )?;
        if self.db(store::patch(&self.conn, id))?.is_none() {
            self.io("removing the staged copy", paths::remove_file(&target))?;
        }
        self.db(store::end_intent(&self.conn))
    }

    /// Deletes a staged patch: `staged → none`. Any other state is refused.
    pub fn remove(&mut self, id: &str) -> Result<Report> {
        let (_lock, _) = self.start("remove", id, PatchState::Staged)?;
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(tx.execute("DELETE FROM patch WHERE id=?1", [id]))?;
        self.db(store::begin_intent(&tx, "remove", id, "cleanup"))?;
        self.db(tx.commit())?;
        self.io("removing", point(40))
            .and_then(|_| self.finish_remove(id))
            .map_err(|e| self.took_effect("remove", id, e))?;
        Ok(self.report(
            "remove",
            id,
            PatchState::None,
            vec![],
            Restart::None,
            "removed from the node",
        ))
    }

    pub(super) fn finish_remove(&self, id: &str) -> Result<()> {
        self.io(
            "removing the staged copy",
            paths::remove_file(&self.staged_path(id)),
        )?;
        self.db(store::end_intent(&self.conn))
    }

    /// What every lifecycle operation does first: take the node, finish or
    /// undo an interrupted operation, and check the patch is in the state
    /// `op` works from (else refuse, saying what would allow it).
    pub(super) fn start(
        &mut self,
        op: &str,
        id: &str,
        from: PatchState,
    ) -> Result<(NodeLock, PatchRow)> {
        let lock = self.lock(op, id)?;
        self.recover()?;
        let row = self.require(id)?;
        if row.state != from {
            return Err(self.refusal(op, &row));
        }
        // Nothing is taken away from under a patch that needs it.
        if op == "rollback" {
            let deps = self.dependents(id)?;
            if !deps.is_empty() {
                return Err(self.err(
                    ErrorKind::Refused,
                    format!("cannot rollback {id}: {}", dependents_advice(&deps, id)),
                ));
            }
        }
        Ok((lock, row))
    }

    /// Why `op` cannot run on a patch in this state, and what would allow it.
    pub(super) fn refusal(&self, op: &str, row: &PatchRow) -> NodeError {
        let id = &row.id;
        let by = row.superseded_by.as_deref().unwrap_or("a later patch");
        // The patches above it, from its superseder to the top of the
        // chain: "roll back" is advice only if none of them is committed.
        let rows = self.db(store::patches(&self.conn)).unwrap_or_default();
        let mut above: Vec<&PatchRow> = Vec::new();
        let mut next = row.superseded_by.as_deref();
        while let Some(n) = next {
            match rows.iter().find(|r| r.id == n) {
                Some(r) if !above.iter().any(|a| a.id == r.id) => {
                    above.push(r);
                    next = r.superseded_by.as_deref();
                }
                _ => break,
            }
        }
        let top = above.last().map_or(by, |r| r.id.as_str());
        let committed_above = above.iter().find(|r| r.committed).map(|r| r.id.as_str());
        let by_rollbackable = !above.is_empty() && committed_above.is_none();
        let roll_back_above = above
            .iter()
            .rev()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", then ");
        let why = match (op, row.state) {
            ("remove", PatchState::Applied) => {
                let deps = self.dependents(id).unwrap_or_default();
                if deps.is_empty() {
                    "it is applied; roll it back first, then remove it".to_string()
                } else {
                    format!("it is applied, and {}", dependents_advice(&deps, id))
                }
            }
            ("remove", PatchState::Committed) => {
                "it is committed and cannot be removed; install a patch that supersedes it"
                    .to_string()
            }
            ("install", PatchState::Superseded) => {
                format!("it is superseded by {by}, which is installed; nothing to do")
            }
            ("commit", PatchState::Superseded) if row.committed => {
                format!("it was committed already (it is superseded by {by})")
            }
            ("commit", PatchState::Superseded) => {
                format!("it is superseded by {by}; commit {top}, which commits this one too")
            }
            ("remove" | "rollback", PatchState::Superseded) if row.committed => {
                if by_rollbackable {
                    format!(
                        "it is committed (its saved files were dropped) and superseded by {by}; \
                         it cannot be {}; rolling back {roll_back_above} returns it to committed",
                        if op == "remove" {
                            "removed"
                        } else {
                            "rolled back"
                        }
                    )
                } else {
                    format!(
                        "it was committed together with {by}, which superseded it, so neither \
                         can be rolled back or removed; to change it, install a patch that \
                         supersedes {top}"
                    )
                }
            }
            ("remove" | "rollback", PatchState::Superseded) => {
                if by_rollbackable {
                    format!("it is superseded by {by}; roll back {roll_back_above} first")
                } else {
                    format!(
                        "it is superseded by {by}, and {} is committed and cannot be rolled \
                         back; to change it, install a patch that supersedes {top}",
                        committed_above.unwrap_or(by)
                    )
                }
            }
            ("install", PatchState::Applied | PatchState::Committed) => {
                "it is already installed".to_string()
            }
            ("rollback", PatchState::Committed) => {
                "it is committed: its saved files were dropped, so it cannot be rolled back"
                    .to_string()
            }
            ("rollback" | "commit", PatchState::Staged) => {
                "it is only staged, not installed; install it first".to_string()
            }
            ("commit", PatchState::Committed) => "it is already committed".to_string(),
            (_, s) => format!("not allowed in state {s}"),
        };
        self.err(
            ErrorKind::Refused,
            format!("cannot {op} {id}: {} is {}; {why}", id, state_text(row)),
        )
    }

    pub(super) fn report(
        &self,
        op: &str,
        id: &str,
        state: PatchState,
        also: Vec<String>,
        restart: Restart,
        message: &str,
    ) -> Report {
        Report {
            node: self.name.clone(),
            op: op.into(),
            patch: id.into(),
            state,
            also,
            restart,
            message: message.into(),
        }
    }
}
