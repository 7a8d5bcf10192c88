//! The lab's own database, `console.sqlite`: the journal of every change,
//! replication progress per patch and node, rollouts with their steps, and
//! the operator's selections (engine::marks).
//! One migration list for the whole file.

use rusqlite::Connection;

use crate::engine::lab::Lab;

const MIGRATIONS: &[&str] = &[
    // 1: the journal.
    "CREATE TABLE journal(
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        pid INTEGER NOT NULL,
        command TEXT NOT NULL,
        node TEXT NOT NULL,
        patch TEXT NOT NULL,
        op TEXT NOT NULL,
        ok INTEGER NOT NULL,
        message TEXT NOT NULL)",
    // 2: replication progress, kept across restarts.
    "CREATE TABLE replication(
        patch TEXT NOT NULL,
        node TEXT NOT NULL,
        dc TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        bytes_total INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY(patch, node))",
    // 3: rollouts and every step of them.
    "CREATE TABLE rollout(
        id INTEGER PRIMARY KEY,
        cluster TEXT NOT NULL,
        plan TEXT NOT NULL,
        state TEXT NOT NULL,
        requested TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL);
     CREATE TABLE rollout_step(
        rollout INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        grp TEXT NOT NULL DEFAULT '',
        node TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        started_at TEXT,
        ended_at TEXT,
        PRIMARY KEY(rollout, seq));",
    // 4: what each member had applied before a rollout changed anything,
    // so rolling a group back undoes this rollout's change and no more.
    "CREATE TABLE rollout_before(
        rollout INTEGER NOT NULL,
        node TEXT NOT NULL,
        applied TEXT NOT NULL,
        PRIMARY KEY(rollout, node))",
    // 5: who made each change and from where; intents written before a
    // node is touched (`pending`); who started each rollout.
    "ALTER TABLE journal ADD COLUMN operator TEXT NOT NULL DEFAULT '';
     ALTER TABLE journal ADD COLUMN sudo_user TEXT;
     ALTER TABLE journal ADD COLUMN source TEXT NOT NULL DEFAULT 'cli';
     ALTER TABLE journal ADD COLUMN rollout INTEGER;
     ALTER TABLE journal ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX journal_node_patch ON journal(node, patch);
     ALTER TABLE rollout ADD COLUMN operator TEXT NOT NULL DEFAULT '';
     ALTER TABLE rollout ADD COLUMN sudo_user TEXT;",
    // 6: the marked patches (the selection named '') and named selections.
    "CREATE TABLE selection(
        name TEXT NOT NULL,
        patch TEXT NOT NULL,
        PRIMARY KEY(name, patch))",
    // 7: which process last wrote a replication row, so a copy whose
    // replicate run was killed is not shown as under way for ever.
    "ALTER TABLE replication ADD COLUMN pid INTEGER NOT NULL DEFAULT 0",
];

/// Opens (creating and migrating) the lab's console database. It is
/// created only for a lab never used before: missing while its write-ahead
/// log or a rollout's cluster lock is still there, it was lost, and the
/// error (`SQLITE_CORRUPT`) names it rather than starting an empty journal
/// that would let a second rollout take a cluster an unfinished one holds.
pub fn open(lab: &Lab) -> rusqlite::Result<Connection> {
    if let Some(why) = lost(lab) {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(why),
        ));
    }
    crate::engine::sqlite::open(
        &lab.db_path(),
        MIGRATIONS,
        crate::engine::sqlite::Durability::Normal,
    )
}

/// Why the console database is missing although the lab has been used
/// (its write-ahead log or a rollout's cluster lock remains), or `None`.
pub fn lost(lab: &Lab) -> Option<String> {
    let path = lab.db_path();
    if path.exists() {
        return None;
    }
    let wal = lab.root.join("console.sqlite-wal");
    let locks = std::fs::read_dir(lab.root.join("locks"))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    (wal.exists() || locks > 0).then(|| {
        format!(
            "{}: is missing, but the lab has been used (its {} remains); restore it from a backup (`patchdeck doctor` says more)",
            path.display(),
            if wal.exists() { "write-ahead log" } else { "rollout locks" }
        )
    })
}

/// A fresh console database in memory, migrated like the real one (for
/// simulations and tests that need the journal but no lab).
pub fn open_in_memory() -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    crate::engine::sqlite::migrate(&mut conn, MIGRATIONS)?;
    Ok(conn)
}
