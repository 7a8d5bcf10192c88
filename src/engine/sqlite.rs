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
pub fn open(
    path: &Path,
    migrations: &[&str],
    durability: Durability,
) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
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
