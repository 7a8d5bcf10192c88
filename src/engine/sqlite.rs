//! What every patchdeck SQLite database shares: how it is opened and how
//! its schema moves forward (`PRAGMA user_version` counts migrations).

use std::path::Path;

use rusqlite::Connection;

/// Opens with WAL, `synchronous=FULL` and a busy timeout, then migrates.
pub fn open(path: &Path, migrations: &[&str]) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
    )?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// Applies the migrations after the database's version, in one transaction.
/// A database newer than this program is refused rather than misread.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
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
