//! What every patchdeck SQLite database shares: how it is opened and how
//! its schema moves forward (`PRAGMA user_version` counts migrations).

use std::path::Path;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit survives power loss (node stores: what is installed).
    Full,
    /// Every commit survives the process being killed; the last ones may be
    /// lost on power loss (the console's progress and journal rows).
    Normal,
}

/// Opens with WAL, the given durability and a busy timeout, then migrates.
/// A missing file is created; a file that exists must be a whole patchdeck
/// database ([`check_file`]), else the error (`SQLITE_CORRUPT`, its message
/// naming the file) says what is wrong: a damaged database is reported,
/// never silently replaced by an empty one.
pub fn open(
    path: &Path,
    migrations: &[&str],
    durability: Durability,
) -> rusqlite::Result<Connection> {
    let existed = path.exists();
    if existed {
        check_file(path).map_err(damaged)?;
    }
    let mut conn = Connection::open(path)?;
    if existed {
        // Page 1 parses and the schema was made by patchdeck.
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| damaged(format!("{}: cannot be read: {e}", path.display())))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| damaged(format!("{}: cannot be read: {e}", path.display())))?;
        if version == 0 || tables == 0 {
            return Err(damaged(format!(
                "{}: holds no patchdeck tables (schema version {version}, {tables} tables)",
                path.display()
            )));
        }
    }
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // Closing leaves the WAL for the next connection instead of
    // checkpointing it. Patchdeck opens a node store per operation (a
    // rollout, several per member), and a checkpoint on every close, with
    // the WAL deleted and created again, cost four fsyncs per open beyond
    // the commit's own. The WAL is as durable as the database file; SQLite
    // checkpoints it as it grows, and journal_size_limit keeps it small.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON;
         PRAGMA wal_autocheckpoint=256; PRAGMA journal_size_limit=1048576;"
    ))?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// Applies the migrations after the database's version, in one transaction.
/// A database newer than this program is refused rather than misread.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    // Up to date, the usual case: write nothing. Opening a database must
    // not commit (for a node store, fsync) on every open.
    let current = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
    if current == migrations.len() as i64 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > migrations.len() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "database schema version {version} is newer than this patchdeck knows ({}); upgrade patchdeck",
            migrations.len()
        )));
    }
    for sql in &migrations[version..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", migrations.len() as i64)?;
    tx.commit()
}

/// The header every SQLite 3 file starts with.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn damaged(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(message),
    )
}

/// Checks an existing database file without opening it: not empty, an
/// SQLite 3 header, and at least as long as the header says (a truncated
/// copy is shorter). The message names the file and what is wrong.
pub fn check_file(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let name = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{name}: cannot be read: {e}"))?
        .len();
    if len == 0 {
        return Err(format!(
            "{name}: is empty (0 bytes); the database was lost or truncated"
        ));
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot be read: {e}"))?;
    let got = file
        .read(&mut header)
        .map_err(|e| format!("{name}: cannot be read: {e}"))?;
    if got < header.len() || !header.starts_with(MAGIC) {
        return Err(format!(
            "{name}: is not an SQLite database ({len} bytes without its header); it is damaged"
        ));
    }
    // Page size at offset 16 (1 means 65536), page count at offset 28.
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    let expected = page_size.saturating_mul(pages);
    if !page_size.is_power_of_two() || page_size < 512 {
        return Err(format!(
            "{name}: has an impossible page size {page_size}; it is damaged"
        ));
    }
    // The size in the header counts only when SQLite marked it valid (the
    // change counter at 24 equals the version-valid-for number at 92), and
    // only without a write-ahead log: with one, a checkpoint cut short by
    // a full disk leaves page 1 written and the file not yet extended,
    // while the log still holds every page.
    let valid = header.get(24..28) == header.get(92..96);
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let logged = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    if valid && !logged && (len < expected || len % page_size != 0) {
        return Err(format!(
            "{name}: is truncated or damaged: {len} bytes, its header says {pages} pages of {page_size} bytes ({expected})"
        ));
    }
    Ok(())
}

/// SQLite's own full check of a database file, for `doctor`: `Ok` with the
/// problems it lists (empty when the file is sound).
pub fn integrity(path: &Path) -> Result<Vec<String>, String> {
    check_file(path)?;
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: cannot be opened: {e}", path.display()))?;
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[&str] = &["CREATE TABLE t(x)"];

    #[test]
    fn an_empty_or_truncated_file_is_refused_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.sqlite");
        {
            let conn = open(&path, M, Durability::Full).unwrap();
            for i in 0..2000 {
                conn.execute("INSERT INTO t VALUES (?1)", [format!("row {i:0100}")])
                    .unwrap();
            }
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
        }
        assert!(open(&path, M, Durability::Full).is_ok());
        let _ = std::fs::remove_file(tmp.path().join("x.sqlite-wal"));
        let _ = std::fs::remove_file(tmp.path().join("x.sqlite-shm"));
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
        let e = open(&path, M, Durability::Full).unwrap_err().to_string();
        assert!(e.contains("x.sqlite") && e.contains("truncated"), "{e}");
        f.set_len(0).unwrap();
        let e = open(&path, M, Durability::Full).unwrap_err().to_string();
        assert!(e.contains("x.sqlite") && e.contains("empty"), "{e}");
        std::fs::write(&path, b"hello").unwrap();
        let e = open(&path, M, Durability::Full).unwrap_err().to_string();
        assert!(e.contains("not an SQLite database"), "{e}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"hello",
            "the file was rewritten"
        );
    }
}
