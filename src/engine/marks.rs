//! The lab's selections, kept in its console database: the current one (the
//! patches marked in the console, so marks survive a restart) and named
//! ones an operator saved to recall later. A selection is a set of patch
//! ids; ids no longer in the depot are kept, and the caller decides what to
//! show of them.

use std::collections::BTreeSet;

use rusqlite::{Connection, params};

use crate::engine::console;
use crate::engine::lab::Lab;

/// The name under which the current selection is stored.
const CURRENT: &str = "";

/// A selection store failure: the database, or a name that cannot be one.
#[derive(Debug, thiserror::Error)]
pub enum MarksError {
    #[error("{path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("a selection name must be 1 to 64 printable characters, not {0:?}")]
    BadName(String),
    #[error("no saved selection is named {0:?}")]
    Unknown(String),
}

/// The selections of one lab.
pub struct Marks {
    conn: Connection,
    path: String,
}

impl Marks {
    /// Opens the lab's console database (creating it for a new lab).
    pub fn open(lab: &Lab) -> Result<Marks, MarksError> {
        let path = lab.db_path().display().to_string();
        let conn = console::open(lab).map_err(|source| MarksError::Db {
            path: path.clone(),
            source,
        })?;
        Ok(Marks { conn, path })
    }

    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T, MarksError> {
        r.map_err(|source| MarksError::Db {
            path: self.path.clone(),
            source,
        })
    }

    /// The marked patches.
    pub fn current(&self) -> Result<BTreeSet<String>, MarksError> {
        self.load(CURRENT)
    }

    /// Replaces the marked patches, in one transaction.
    pub fn set_current(&mut self, ids: &BTreeSet<String>) -> Result<(), MarksError> {
        self.store(CURRENT, ids)
    }

    /// Adds and removes marks, in one transaction: what a console writes
    /// after each key, so marking one of 50,000 patches stays cheap.
    pub fn change_current(
        &mut self,
        added: &[&String],
        removed: &[&String],
    ) -> Result<(), MarksError> {
        let path = self.path.clone();
        let wrap = |source| MarksError::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        {
            let mut insert = tx
                .prepare("INSERT OR IGNORE INTO selection(name, patch) VALUES ('', ?1)")
                .map_err(wrap)?;
            for id in added {
                insert.execute([id]).map_err(wrap)?;
            }
            let mut delete = tx
                .prepare("DELETE FROM selection WHERE name = '' AND patch = ?1")
                .map_err(wrap)?;
            for id in removed {
                delete.execute([id]).map_err(wrap)?;
            }
        }
        tx.commit().map_err(wrap)
    }

    /// Saves `ids` under `name`, replacing a selection of that name.
    pub fn save(&mut self, name: &str, ids: &BTreeSet<String>) -> Result<(), MarksError> {
        check_name(name)?;
        self.store(name, ids)
    }

    /// The selection saved under `name`.
    pub fn recall(&self, name: &str) -> Result<BTreeSet<String>, MarksError> {
        check_name(name)?;
        if !self.names()?.iter().any(|(n, _)| n == name) {
            return Err(MarksError::Unknown(name.to_string()));
        }
        self.load(name)
    }

    /// Deletes the selection saved under `name`.
    pub fn delete(&mut self, name: &str) -> Result<(), MarksError> {
        check_name(name)?;
        let n = self.db(self
            .conn
            .execute("DELETE FROM selection WHERE name = ?1", [name]))?;
        if n == 0 {
            return Err(MarksError::Unknown(name.to_string()));
        }
        Ok(())
    }

    /// The saved selections' names with their sizes, by name.
    pub fn names(&self) -> Result<Vec<(String, usize)>, MarksError> {
        let mut stmt = self.db(self.conn.prepare(
            "SELECT name, COUNT(*) FROM selection WHERE name != '' GROUP BY name ORDER BY name",
        ))?;
        let rows = self.db(stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        }))?;
        self.db(rows.collect())
    }

    fn load(&self, name: &str) -> Result<BTreeSet<String>, MarksError> {
        let mut stmt = self.db(self
            .conn
            .prepare("SELECT patch FROM selection WHERE name = ?1"))?;
        let rows = self.db(stmt.query_map([name], |r| r.get::<_, String>(0)))?;
        self.db(rows.collect())
    }

    fn store(&mut self, name: &str, ids: &BTreeSet<String>) -> Result<(), MarksError> {
        let path = self.path.clone();
        let wrap = |source| MarksError::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        tx.execute("DELETE FROM selection WHERE name = ?1", [name])
            .map_err(wrap)?;
        {
            let mut insert = tx
                .prepare("INSERT INTO selection(name, patch) VALUES (?1, ?2)")
                .map_err(wrap)?;
            for id in ids {
                insert.execute(params![name, id]).map_err(wrap)?;
            }
        }
        tx.commit().map_err(wrap)
    }
}

fn check_name(name: &str) -> Result<(), MarksError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(MarksError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_current_selection_and_named_ones_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::new(dir.path());
        let mut m = Marks::open(&lab).unwrap();
        assert!(m.current().unwrap().is_empty());
        m.set_current(&set(&["A_1", "B_2"])).unwrap();
        m.save("friday", &set(&["C_3"])).unwrap();
        drop(m);
        let mut m = Marks::open(&lab).unwrap();
        assert_eq!(m.current().unwrap(), set(&["A_1", "B_2"]));
        assert_eq!(m.recall("friday").unwrap(), set(&["C_3"]));
        assert_eq!(m.names().unwrap(), vec![("friday".to_string(), 1)]);
        let (c, a) = ("C_3".to_string(), "A_1".to_string());
        m.change_current(&[&c], &[&a]).unwrap();
        assert_eq!(m.current().unwrap(), set(&["B_2", "C_3"]));
        m.set_current(&set(&[])).unwrap();
        assert!(m.current().unwrap().is_empty());
        assert_eq!(m.recall("friday").unwrap(), set(&["C_3"]));
        m.delete("friday").unwrap();
        assert!(matches!(m.recall("friday"), Err(MarksError::Unknown(_))));
        assert!(matches!(m.save("", &set(&[])), Err(MarksError::BadName(_))));
        assert!(matches!(
            m.save(" x", &set(&[])),
            Err(MarksError::BadName(_))
        ));
    }
}
