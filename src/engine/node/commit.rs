//! Committing an applied patch: its saved files are dropped, so it can no
//! longer be rolled back.

use crate::engine::inventory::PatchState;
use crate::engine::manifest::Restart;
use fault::point;

use super::*;

impl Node {
    /// Drops an applied patch's saved files: `applied → committed`, and the
    /// patches it superseded are committed too.
    pub fn commit(&mut self, id: &str) -> Result<Report> {
        let (_lock, _) = self.start("commit", id, PatchState::Applied)?;
        // Not checked up front: commit frees space, and its one database
        // transaction either happens or not. Quoted if that write fails.
        self.need.set(space::MARGIN_BYTES);
        let rows = self.db(store::patches(&self.conn))?;
        let chain: Vec<String> = rows
            .iter()
            .filter(|r| !r.committed && superseded_chain(&rows, id, &r.id))
            .map(|r| r.id.clone())
            .collect();
        let now = store::now();
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(tx.execute(
            "UPDATE patch SET state='committed', committed=1, committed_at=?2 WHERE id=?1",
            [id, &now],
        ))?;
        for old in &chain {
            self.db(tx.execute(
                "UPDATE patch SET committed=1, committed_at=?2 WHERE id=?1",
                [old, &now],
            ))?;
        }
        self.db(store::begin_intent(&tx, "commit", id, "cleanup"))?;
        self.db(tx.commit())?;
        (|| {
            self.io("commit", point(30))?;
            for p in std::iter::once(id).chain(chain.iter().map(String::as_str)) {
                self.io(
                    "dropping saved files",
                    paths::remove_tree(&self.save_dir(p)),
                )?;
                self.io("commit", point(31))?;
            }
            self.db(store::end_intent(&self.conn))
        })()
        .map_err(|e| self.took_effect("commit", id, e))?;
        Ok(self.report(
            "commit",
            id,
            PatchState::Committed,
            chain,
            Restart::None,
            "committed; saved files dropped, rollback no longer possible",
        ))
    }
}
