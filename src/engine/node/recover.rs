//! Recovery: finishing or undoing an operation a crash interrupted, from
//! the intent it recorded (docs/crash-safety.md).

use super::*;

impl Node {
    /// Finishes or undoes an interrupted operation. Call with the lock held.
    pub(super) fn recover(&mut self) -> Result<()> {
        // A reserve left by a killed operation is the room recovery writes in.
        let _ = paths::remove_file(&self.store_dir().join(RESERVE_FILE));
        let Some(intent) = self.db(store::intent(&self.conn))? else {
            return Ok(());
        };
        let id = intent.patch.clone();
        tracing::info!(node = %self.name, op = %intent.op, patch = %id, phase = %intent.phase, "recovering");
        self.settle(&intent)?;
        let outcome = match (intent.op.as_str(), intent.phase.as_str()) {
            ("stage", _) | (_, "prepare") | (_, "undo") => "undone",
            _ => "finished",
        };
        self.db(store::note_recovered(&self.conn, &intent.op, &id, outcome))
    }

    /// Finishes or undoes the interrupted operation `intent` names.
    pub(super) fn settle(&mut self, intent: &store::Intent) -> Result<()> {
        let id = intent.patch.clone();
        match (intent.op.as_str(), intent.phase.as_str()) {
            ("stage", _) => self.undo_stage(&id),
            ("remove", _) => self.finish_remove(&id),
            ("install", "prepare") => {
                self.io(
                    "abandoning install",
                    paths::remove_tree(&self.save_dir(&id)),
                )?;
                self.db(store::end_intent(&self.conn))
            }
            ("install", phase) => {
                let plan: Plan = serde_json::from_str(intent.plan.as_deref().unwrap_or("{}"))
                    .unwrap_or_default();
                match phase {
                    "commit" if self.undo_marked(&id) => self.undo_install(&id, &plan),
                    "commit" => {
                        self.install_commit(&id, &plan)?;
                        self.install_cleanup(&id, &plan)
                    }
                    "undo" => self.undo_install(&id, &plan),
                    _ => {
                        self.io(
                            "dropping saved files",
                            paths::remove_tree(&self.save_dir(&id)),
                        )?;
                        self.db(store::end_intent(&self.conn))
                    }
                }
            }
            ("rollback", "prepare") => self.abandon_rollback(&id),
            ("rollback", "commit") if self.undo_marked(&id) => self.undo_rollback(&id),
            ("rollback", "commit") => {
                self.rollback_commit(&id)?;
                self.rollback_cleanup(&id)
            }
            ("rollback", "undo") => self.undo_rollback(&id),
            ("rollback", _) => {
                self.io(
                    "dropping saved files",
                    paths::remove_tree(&self.save_dir(&id)),
                )?;
                self.db(store::end_intent(&self.conn))
            }
            ("commit", _) => {
                for row in self.db(store::patches(&self.conn))? {
                    if row.committed {
                        self.io(
                            "dropping saved files",
                            paths::remove_tree(&self.save_dir(&row.id)),
                        )?;
                    }
                }
                self.db(store::end_intent(&self.conn))
            }
            (op, phase) => Err(self.err(
                ErrorKind::Io,
                format!(
                    "unknown interrupted operation {op}/{phase}; inspect {}",
                    self.store_dir().display()
                ),
            )),
        }
    }
}
