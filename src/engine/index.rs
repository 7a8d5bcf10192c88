//! The depot's cache index: one SQLite file inside the depot remembering,
//! per patch file, its size and mtime and what reading it gave (a manifest
//! or an error). Reopening a large depot then only stats files and reads
//! rows; files whose size or mtime changed are read again.
//!
//! The index is only a cache: any failure to open or write it is ignored and
//! the depot is read from the files themselves.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use rusqlite::{Connection, params};

use crate::engine::archive::PatchFileError;
use crate::engine::manifest::Manifest;

pub const INDEX_FILE: &str = ".patchdeck-index.sqlite";
/// Bumped whenever what a row means changes; a mismatch empties the index.
/// 2: a manifest requiring itself or with an unreadable `base_version` is
/// broken, so rows read by 1 are read again.
const FORMAT: &str = concat!("2/", env!("CARGO_PKG_VERSION"));

/// What reading one file gave.
pub type Reading = Result<Manifest, PatchFileError>;

/// File identity as the index sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
}

pub struct Index {
    conn: Connection,
}

/// Opens `depot`'s index file (WAL, normal durability: it is a cache) and
/// creates `tables` in it; `None` when the depot is read-only or the file
/// is unusable. The signature cache keeps its table in the same file.
pub(crate) fn open_file(depot: &Path, tables: &str) -> Option<Connection> {
    let conn = Connection::open(depot.join(INDEX_FILE)).ok()?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; {tables}"
    ))
    .ok()?;
    Some(conn)
}

impl Index {
    /// Opens (creating if needed) the index of a depot; `None` when the depot
    /// is read-only or the file is unusable.
    pub fn open(depot: &Path) -> Option<Index> {
        let conn = open_file(
            depot,
            "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS entry(
                 file TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                 manifest TEXT, error_line INTEGER, error TEXT);",
        )?;
        let format: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='format'", [], |r| {
                r.get(0)
            })
            .ok();
        if format.as_deref() != Some(FORMAT) {
            conn.execute_batch("DELETE FROM entry").ok()?;
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES('format', ?1)",
                [FORMAT],
            )
            .ok()?;
        }
        Some(Index { conn })
    }

    /// Every remembered reading whose stamp still matches `current`.
    pub fn load(&self, current: &HashMap<String, Stamp>) -> HashMap<String, Reading> {
        let mut out = HashMap::with_capacity(current.len());
        let Ok(mut stmt) = self
            .conn
            .prepare("SELECT file, size, mtime_ns, manifest, error_line, error FROM entry")
        else {
            return out;
        };
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        });
        let Ok(rows) = rows else { return out };
        let rows: Vec<_> = rows
            .flatten()
            .filter(|r| {
                current.get(&r.0)
                    == Some(&Stamp {
                        size: r.1 as u64,
                        mtime_ns: r.2,
                    })
            })
            .collect();
        // Decoding manifests is most of a warm open: do it on all cores.
        out.par_extend(rows.into_par_iter().filter_map(
            |(file, _, _, manifest, error_line, error)| {
                let reading = match (manifest, error) {
                    (Some(json), _) => Ok(serde_json::from_str(&json).ok()?),
                    (None, Some(message)) => Err(PatchFileError {
                        line: error_line.map(|l| l as usize),
                        message,
                    }),
                    (None, None) => return None,
                };
                Some((file, reading))
            },
        ));
        out
    }

    /// Records new readings and forgets files that are gone, in one transaction.
    pub fn store(&mut self, fresh: &[(String, Stamp, &Reading)], present: &HashMap<String, Stamp>) {
        let Ok(tx) = self.conn.transaction() else {
            return;
        };
        {
            let Ok(mut put) = tx.prepare(
                "INSERT OR REPLACE INTO entry(file, size, mtime_ns, manifest, error_line, error) VALUES(?1,?2,?3,?4,?5,?6)",
            ) else {
                return;
            };
            for (file, stamp, reading) in fresh {
                let (manifest, line, error) = match reading {
                    Ok(m) => (serde_json::to_string(m).ok(), None, None),
                    Err(e) => (None, e.line.map(|l| l as i64), Some(e.message.clone())),
                };
                let _ = put.execute(params![
                    file,
                    stamp.size as i64,
                    stamp.mtime_ns,
                    manifest,
                    line,
                    error
                ]);
            }
            if let Ok(mut files) = tx.prepare("SELECT file FROM entry") {
                let gone: Vec<String> = files
                    .query_map([], |r| r.get::<_, String>(0))
                    .map(|rows| {
                        rows.flatten()
                            .filter(|f| !present.contains_key(f))
                            .collect()
                    })
                    .unwrap_or_default();
                for file in gone {
                    let _ = tx.execute("DELETE FROM entry WHERE file=?1", [file]);
                }
            }
        }
        let _ = tx.commit();
    }
}
