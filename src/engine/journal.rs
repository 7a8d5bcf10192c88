//! The lab's journal, in the console database: every command that changes
//! a node records what it did, where, and how it ended.

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::engine::lab::Lab;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub at: String,
    pub command: String,
    pub node: String,
    pub patch: String,
    pub op: String,
    pub ok: bool,
    pub message: String,
}

pub struct Journal {
    conn: Connection,
    command: String,
}

impl Journal {
    /// Opens the lab's console database; `command` is what the operator ran.
    pub fn open(lab: &Lab, command: &str) -> rusqlite::Result<Journal> {
        Ok(Journal {
            conn: crate::engine::console::open(lab)?,
            command: command.to_string(),
        })
    }

    pub fn record(
        &self,
        node: &str,
        patch: &str,
        op: &str,
        ok: bool,
        message: &str,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO journal(at, pid, command, node, patch, op, ok, message) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![crate::engine::node::store::now(), std::process::id() as i64, self.command, node, patch, op, ok, message],
        )?;
        Ok(())
    }

    /// The newest `limit` entries, oldest first.
    pub fn recent(&self, limit: usize) -> rusqlite::Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare(
            "SELECT at, command, node, patch, op, ok, message FROM
             (SELECT * FROM journal ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )?;
        stmt.query_map([limit as i64], |r| {
            Ok(Entry {
                at: r.get(0)?,
                command: r.get(1)?,
                node: r.get(2)?,
                patch: r.get(3)?,
                op: r.get(4)?,
                ok: r.get::<_, i64>(5)? != 0,
                message: r.get(6)?,
            })
        })?
        .collect()
    }
}
