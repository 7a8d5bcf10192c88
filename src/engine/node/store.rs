//! The installed-patch database (`ipd.sqlite`): products and components
//! with versions, patches with state and timestamps, every file a patch
//! wrote with its before and after checksum, pending restarts, and the
//! intent journal that makes each operation recoverable.
//!
//! `synchronous=FULL`, versioned schema with forward migrations.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::engine::inventory::PatchState;
use crate::engine::manifest::Manifest;

/// Each entry moves the schema one version up; never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE product(name TEXT PRIMARY KEY, version TEXT NOT NULL);
     CREATE TABLE component(name TEXT PRIMARY KEY, version TEXT NOT NULL);
     CREATE TABLE patch(
         id TEXT PRIMARY KEY,
         state TEXT NOT NULL,
         committed INTEGER NOT NULL DEFAULT 0,
         manifest TEXT NOT NULL,
         staged_at TEXT, applied_at TEXT, committed_at TEXT,
         superseded_by TEXT,
         seq INTEGER,
         prev_component_version TEXT);
     CREATE TABLE patch_file(
         patch TEXT NOT NULL, path TEXT NOT NULL,
         before_sha TEXT, before_mode INTEGER,
         after_sha TEXT NOT NULL, after_mode INTEGER NOT NULL,
         PRIMARY KEY(patch, path));
     CREATE TABLE patch_dir(patch TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY(patch, path));
     CREATE TABLE pending_restart(patch TEXT PRIMARY KEY, kind TEXT NOT NULL, since TEXT NOT NULL);
     CREATE TABLE intent(
         id INTEGER PRIMARY KEY CHECK (id = 1),
         op TEXT NOT NULL, patch TEXT NOT NULL, phase TEXT NOT NULL,
         plan TEXT, started_at TEXT NOT NULL, pid INTEGER NOT NULL);",
    // 2: service state, for draining and restoring cluster members.
    "CREATE TABLE service(id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, since TEXT NOT NULL);
     INSERT INTO service(id, state, since) VALUES (1, 'up', strftime('%Y-%m-%dT%H:%M:%SZ','now'));",
    // 3: supersession edges the console sent with installs (a node has no
    // depot, yet must follow a chain through patches it never held), and
    // operations finished or undone by recovery, kept until reported.
    "CREATE TABLE known_supersedes(new TEXT NOT NULL, old TEXT NOT NULL, PRIMARY KEY(new, old));
     CREATE TABLE recovered(
         id INTEGER PRIMARY KEY,
         at TEXT NOT NULL, op TEXT NOT NULL, patch TEXT NOT NULL, outcome TEXT NOT NULL);",
];

pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// One patch row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRow {
    pub id: String,
    pub state: PatchState,
    /// Saved files dropped (also for a superseded patch that was committed).
    pub committed: bool,
    pub manifest: Manifest,
    pub staged_at: Option<String>,
    pub applied_at: Option<String>,
    pub committed_at: Option<String>,
    pub superseded_by: Option<String>,
    pub seq: Option<i64>,
    pub prev_component_version: Option<String>,
}

/// One file a patch wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRow {
    pub path: String,
    pub before_sha: Option<String>,
    pub before_mode: Option<u32>,
    pub after_sha: String,
    pub after_mode: u32,
}

/// The in-flight operation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub op: String,
    pub patch: String,
    pub phase: String,
    pub plan: Option<String>,
    pub started_at: String,
    pub pid: i64,
}

pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    crate::engine::sqlite::open(path, MIGRATIONS, crate::engine::sqlite::Durability::Full)
}

fn state_from(text: &str) -> PatchState {
    match text {
        "staged" => PatchState::Staged,
        "applied" => PatchState::Applied,
        "committed" => PatchState::Committed,
        "superseded" => PatchState::Superseded,
        _ => PatchState::None,
    }
}

const PATCH_COLUMNS: &str = "id, state, committed, manifest, staged_at, applied_at, committed_at, superseded_by, seq, prev_component_version";

fn patch_row(r: &rusqlite::Row) -> rusqlite::Result<PatchRow> {
    let manifest: String = r.get(3)?;
    let manifest = serde_json::from_str(&manifest).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(PatchRow {
        id: r.get(0)?,
        state: state_from(&r.get::<_, String>(1)?),
        committed: r.get::<_, i64>(2)? != 0,
        manifest,
        staged_at: r.get(4)?,
        applied_at: r.get(5)?,
        committed_at: r.get(6)?,
        superseded_by: r.get(7)?,
        seq: r.get(8)?,
        prev_component_version: r.get(9)?,
    })
}

pub fn patch(conn: &Connection, id: &str) -> rusqlite::Result<Option<PatchRow>> {
    conn.query_row(
        &format!("SELECT {PATCH_COLUMNS} FROM patch WHERE id=?1"),
        [id],
        patch_row,
    )
    .optional()
}

pub fn patches(conn: &Connection) -> rusqlite::Result<Vec<PatchRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {PATCH_COLUMNS} FROM patch ORDER BY id"))?;
    stmt.query_map([], patch_row)?.collect()
}

pub fn files(conn: &Connection, patch: &str) -> rusqlite::Result<Vec<FileRow>> {
    let mut stmt = conn.prepare(
        "SELECT path, before_sha, before_mode, after_sha, after_mode FROM patch_file WHERE patch=?1 ORDER BY path",
    )?;
    stmt.query_map([patch], |r| {
        Ok(FileRow {
            path: r.get(0)?,
            before_sha: r.get(1)?,
            before_mode: r.get::<_, Option<i64>>(2)?.map(|m| m as u32),
            after_sha: r.get(3)?,
            after_mode: r.get::<_, i64>(4)? as u32,
        })
    })?
    .collect()
}

pub fn dirs(conn: &Connection, patch: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT path FROM patch_dir WHERE patch=?1 ORDER BY path")?;
    stmt.query_map([patch], |r| r.get(0))?.collect()
}

pub fn products(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT name, version FROM product ORDER BY name")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

pub fn components(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT name, version FROM component ORDER BY name")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

pub fn pending_restarts(conn: &Connection) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt =
        conn.prepare("SELECT patch, kind, since FROM pending_restart ORDER BY since, patch")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

pub fn intent(conn: &Connection) -> rusqlite::Result<Option<Intent>> {
    conn.query_row(
        "SELECT op, patch, phase, plan, started_at, pid FROM intent WHERE id=1",
        [],
        |r| {
            Ok(Intent {
                op: r.get(0)?,
                patch: r.get(1)?,
                phase: r.get(2)?,
                plan: r.get(3)?,
                started_at: r.get(4)?,
                pid: r.get(5)?,
            })
        },
    )
    .optional()
}

pub fn begin_intent(conn: &Connection, op: &str, patch: &str, phase: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO intent(id, op, patch, phase, started_at, pid) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        params![op, patch, phase, now(), std::process::id() as i64],
    )?;
    Ok(())
}

pub fn set_phase(conn: &Connection, phase: &str, plan: Option<&str>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE intent SET phase=?1, plan=COALESCE(?2, plan) WHERE id=1",
        params![phase, plan],
    )?;
    Ok(())
}

pub fn end_intent(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM intent WHERE id=1", [])?;
    Ok(())
}

pub fn service_state(conn: &Connection) -> rusqlite::Result<(String, String)> {
    conn.query_row("SELECT state, since FROM service WHERE id=1", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

pub fn set_service_state(conn: &Connection, state: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE service SET state=?1, since=?2 WHERE id=1",
        params![state, now()],
    )?;
    Ok(())
}

pub fn insert_staged(tx: &Transaction, id: &str, manifest: &Manifest) -> rusqlite::Result<()> {
    let json = serde_json::to_string(manifest).unwrap_or_default();
    tx.execute(
        "INSERT INTO patch(id, state, manifest, staged_at) VALUES (?1, 'staged', ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET state='staged', manifest=?2, staged_at=?3",
        params![id, json, now()],
    )?;
    Ok(())
}

/// Supersession edges learned from the console, as `(new, old)`.
pub fn known_supersedes(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT new, old FROM known_supersedes ORDER BY new, old")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Keeps supersession edges the console sent.
pub fn learn_supersedes<'a>(
    conn: &Connection,
    edges: impl Iterator<Item = (&'a str, &'a str)>,
) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    for (new, old) in edges {
        tx.execute(
            "INSERT OR IGNORE INTO known_supersedes(new, old) VALUES (?1, ?2)",
            [new, old],
        )?;
    }
    tx.commit()
}

/// Notes an operation that recovery finished (`finished`) or undid (`undone`).
pub fn note_recovered(
    conn: &Connection,
    op: &str,
    patch: &str,
    outcome: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO recovered(at, op, patch, outcome) VALUES (?1, ?2, ?3, ?4)",
        params![now(), op, patch, outcome],
    )?;
    Ok(())
}

/// Takes the recovery notes not yet reported, oldest first, as
/// `(at, op, patch, outcome)`.
pub fn take_recovered(
    conn: &Connection,
) -> rusqlite::Result<Vec<(String, String, String, String)>> {
    let tx = conn.unchecked_transaction()?;
    let rows = {
        let mut stmt = tx.prepare("SELECT at, op, patch, outcome FROM recovered ORDER BY id")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.execute("DELETE FROM recovered", [])?;
    tx.commit()?;
    Ok(rows)
}
