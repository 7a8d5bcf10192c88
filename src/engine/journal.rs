//! The lab's journal, in the console database: every command that changes
//! a node records what it did, where, how it ended, who ran it (operator
//! `user@host`, and `SUDO_USER` where set) and from where (the console, a
//! CLI verb, or a rollout). A change is journaled as an intent before the
//! node is touched; a journal that cannot be written stops the command.
//!
//! [`history`] reads it back together with the steps of every rollout.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::engine::lab::Lab;

/// A journal that cannot be opened, written or read: the database file and
/// what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

/// Where a change was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The interactive console (it runs the CLI's verbs as child processes
    /// with `PATCHDECK_SOURCE=console` in their environment).
    Console,
    /// A command-line verb.
    Cli,
    /// A step of rollout `N`.
    Rollout(i64),
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Console => "console",
            Source::Cli => "cli",
            Source::Rollout(_) => "rollout",
        }
    }

    /// `Console` when this process was started by the console, else `Cli`.
    pub fn of_process() -> Source {
        match std::env::var("PATCHDECK_SOURCE").as_deref() {
            Ok("console") => Source::Console,
            _ => Source::Cli,
        }
    }
}

/// Who is making changes: the effective user and host of this process, and
/// the user who ran `sudo`, where set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operator {
    /// `user@host`.
    pub operator: String,
    /// `SUDO_USER`, when the process runs under sudo.
    pub sudo_user: Option<String>,
}

impl Operator {
    /// The operator of this process.
    pub fn current() -> Operator {
        let sudo_user = std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty());
        Operator {
            operator: format!("{}@{}", user_name(), host_name()),
            sudo_user,
        }
    }

    /// `user@host`, with `(sudo by NAME)` when run under sudo.
    pub fn display(operator: &str, sudo_user: Option<&str>) -> String {
        match sudo_user {
            Some(s) => format!("{operator} (sudo by {s})"),
            None => operator.to_string(),
        }
    }
}

fn user_name() -> String {
    // SAFETY: geteuid cannot fail; getpwuid returns null or a pointer to a
    // static record, read at once (this process has no other reader).
    unsafe {
        let uid = libc::geteuid();
        let pw = libc::getpwuid(uid);
        if !pw.is_null()
            && !(*pw).pw_name.is_null()
            && let Ok(name) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str()
        {
            return name.to_string();
        }
        std::env::var("USER").unwrap_or_else(|_| format!("uid{uid}"))
    }
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        if let Some(h) = buf.get(..end).and_then(|b| std::str::from_utf8(b).ok())
            && !h.is_empty()
        {
            return h.to_string();
        }
    }
    "localhost".to_string()
}

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
    path: String,
    operator: Operator,
    source: Source,
}

impl Journal {
    /// Opens the lab's console database; `command` is what the operator
    /// ran. The source is this process's ([`Source::of_process`]).
    pub fn open(lab: &Lab, command: &str) -> Result<Journal, JournalError> {
        Journal::open_as(lab, command, Source::of_process())
    }

    /// Opens the journal for changes made from `source`.
    pub fn open_as(lab: &Lab, command: &str, source: Source) -> Result<Journal, JournalError> {
        let path = lab.db_path().display().to_string();
        let conn = crate::engine::console::open(lab).map_err(|source| JournalError {
            path: path.clone(),
            source,
        })?;
        Ok(Journal {
            conn,
            command: command.to_string(),
            path,
            operator: Operator::current(),
            source,
        })
    }

    fn fail(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        |source| JournalError {
            path: self.path.clone(),
            source,
        }
    }

    fn insert(
        &self,
        node: &str,
        patch: &str,
        op: &str,
        ok: bool,
        message: &str,
        pending: bool,
    ) -> Result<i64, JournalError> {
        let rollout = match self.source {
            Source::Rollout(id) => Some(id),
            _ => None,
        };
        self.conn
            .execute(
                "INSERT INTO journal(at, pid, command, node, patch, op, ok, message, operator, sudo_user, source, rollout, pending)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
                params![
                    crate::engine::node::store::now(),
                    std::process::id() as i64,
                    self.command,
                    node,
                    patch,
                    op,
                    ok,
                    message,
                    self.operator.operator,
                    self.operator.sudo_user,
                    self.source.as_str(),
                    rollout,
                    pending
                ],
            )
            .map_err(self.fail())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records how a change ended.
    pub fn record(
        &self,
        node: &str,
        patch: &str,
        op: &str,
        ok: bool,
        message: &str,
    ) -> Result<(), JournalError> {
        self.insert(node, patch, op, ok, message, false).map(|_| ())
    }

    /// Records, before the node is touched, that `op` on `patch` (ids,
    /// comma-separated) is about to run there. Returns the row's id for
    /// [`Journal::settle`]. An intent left behind (the process died) shows
    /// in the history as not ok, "interrupted".
    pub fn intend(&self, node: &str, patch: &str, op: &str) -> Result<i64, JournalError> {
        self.insert(
            node,
            patch,
            op,
            false,
            "started; the command ended before it reported an outcome",
            true,
        )
    }

    /// Runs a change of `op` on `nodes` the journaled way: an intent per
    /// node first (if one cannot be written, the error is returned and
    /// `work` never runs), then `work`, whose outcomes `(node, ok,
    /// message)` are recorded, then the intents settled. Returns what
    /// `work` returned, and the first row that could not be written after
    /// the change was made.
    pub fn around<T>(
        &self,
        nodes: &[String],
        patch: &str,
        op: &str,
        work: impl FnOnce() -> (T, Vec<(String, bool, String)>),
    ) -> Result<(T, Option<JournalError>), JournalError> {
        let mut intents = Vec::new();
        for node in nodes {
            intents.push(self.intend(node, patch, op)?);
        }
        let (value, outcomes) = work();
        let mut unrecorded = None;
        for (node, ok, message) in &outcomes {
            if let Err(e) = self.record(node, patch, op, *ok, message) {
                unrecorded.get_or_insert(e);
            }
        }
        if let Err(e) = self.settle(&intents) {
            unrecorded.get_or_insert(e);
        }
        Ok((value, unrecorded))
    }

    /// Drops intents whose outcomes are recorded.
    pub fn settle(&self, intents: &[i64]) -> Result<(), JournalError> {
        let tx = self.conn.unchecked_transaction().map_err(self.fail())?;
        for id in intents {
            tx.execute("DELETE FROM journal WHERE id=?1 AND pending=1", [id])
                .map_err(self.fail())?;
        }
        tx.commit().map_err(self.fail())
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

/// Stamps rollout `id` with the operator of this process (call where the
/// rollout row is created, in the same transaction).
pub fn attribute_rollout(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    let op = Operator::current();
    conn.execute(
        "UPDATE rollout SET operator=?2, sudo_user=?3 WHERE id=?1",
        params![id, op.operator, op.sudo_user],
    )?;
    Ok(())
}

/// One change in the history of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// When it ended (RFC 3339, UTC).
    pub time: String,
    /// `user@host` of whoever made it (empty for rows older than the field).
    pub operator: String,
    pub sudo_user: Option<String>,
    /// `console`, `cli` or `rollout`.
    pub source: String,
    pub rollout: Option<i64>,
    pub node: String,
    /// A patch id, or several comma-separated (a rollout step's patches).
    pub patch: String,
    /// `stage`, `replicate`, `install`, `rollback`, `commit`, `remove`,
    /// `recover`, or a rollout step (`drain`, `restore`, `hook_before`, …).
    pub op: String,
    pub ok: bool,
    pub message: String,
    /// The command line, for CLI and console rows.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub command: String,
}

/// Which changes [`history`] returns; empty fields do not narrow.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub nodes: Vec<String>,
    pub patch: Option<String>,
    pub rollout: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    /// At most this many changes, the newest; `None` for all.
    pub newest: Option<usize>,
}

/// A `--since` value: an RFC 3339 time, or a span back from `now` (`90m`,
/// `2h`, `3d`, also `s` and `w`). Errors say what was expected.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let unit_at = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..unit_at), text.get(unit_at..));
    let seconds = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => 86_400,
        Some("w") => 604_800,
        _ => 0,
    };
    match number.and_then(|n| n.parse::<i64>().ok()) {
        Some(n) if seconds > 0 && n >= 0 => n
            .checked_mul(seconds)
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| format!("--since {text}: too far back")),
        _ => Err(format!(
            "--since {text:?}: expected an RFC 3339 time (2026-01-02T10:00:00Z) or a span back from now (90m, 2h, 3d)"
        )),
    }
}

fn time_of(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The lab's changes matching `q`, newest first: journal rows and the steps
/// rollouts ran (an `apply` step is an `install`, or a `rollback` for an
/// uninstall rollout; a `revert` the other way round).
pub fn history(conn: &Connection, q: &Query) -> rusqlite::Result<Vec<Change>> {
    // Unfiltered, only the newest rows of each table can be among the
    // newest changes, so a console polling the journal reads no more.
    let unfiltered =
        q.nodes.is_empty() && q.patch.is_none() && q.rollout.is_none() && q.since.is_none();
    let read_at_most = match q.newest {
        Some(n) if unfiltered => i64::try_from(n).unwrap_or(i64::MAX),
        _ => -1,
    };
    let mut out: Vec<(String, i64, Change)> = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT id, at, command, node, patch, op, ok, message, operator, sudo_user, source, rollout, pending, pid FROM journal
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([read_at_most], |r| {
            let pending: i64 = r.get(12)?;
            let pid: i64 = r.get(13)?;
            let mut message: String = r.get(7)?;
            // An intent whose command still runs has not ended at all.
            let at: String = r.get(1)?;
            if pending != 0
                && time_of(&at).is_some_and(|t| crate::engine::rollout::alive_since(pid, t))
            {
                message = format!("started; still running (pid {pid})");
            }
            let change = Change {
                time: r.get(1)?,
                command: r.get(2)?,
                node: r.get(3)?,
                patch: r.get(4)?,
                op: r.get(5)?,
                ok: r.get::<_, i64>(6)? != 0 && pending == 0,
                message,
                operator: r.get(8)?,
                sudo_user: r.get(9)?,
                source: r.get(10)?,
                rollout: r.get(11)?,
            };
            Ok((r.get::<_, i64>(0)?, change))
        })?;
        for row in rows {
            let (id, change) = row?;
            out.push((change.time.clone(), id, change));
        }
    }
    {
        type Who = (String, Option<String>, String, String);
        let mut who: HashMap<i64, Who> = HashMap::new();
        let mut stmt =
            conn.prepare("SELECT id, operator, sudo_user, plan, cluster FROM rollout")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        for row in rows {
            let (id, operator, sudo, plan, cluster) = row?;
            who.insert(id, (operator, sudo, plan, cluster));
        }
        let mut stmt = conn.prepare(
            "SELECT rollout, seq, node, kind, state, message, started_at, ended_at FROM rollout_step
             WHERE started_at IS NOT NULL ORDER BY COALESCE(ended_at, started_at) DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([read_at_most], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        for row in rows {
            let (rollout, seq, node, kind, state, message, started, ended) = row?;
            let (operator, sudo_user, plan, cluster) =
                who.get(&rollout).cloned().unwrap_or_default();
            // A step of the whole cluster (hooks, health) is shown on it.
            let node = if node.is_empty() { cluster } else { node };
            let plan: serde_json::Value = serde_json::from_str(&plan).unwrap_or_default();
            let uninstall = plan["uninstall"].as_bool().unwrap_or(false);
            let patches: Vec<&str> = plan["patches"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
                .unwrap_or_default();
            let op = match (kind.as_str(), uninstall) {
                ("apply", false) | ("revert", true) => "install".to_string(),
                ("apply", true) | ("revert", false) => "rollback".to_string(),
                (k, _) => k.to_string(),
            };
            let time = ended.or(started).unwrap_or_default();
            out.push((
                time.clone(),
                // After every journal row of the same instant.
                i64::MAX / 2 + rollout * 100_000 + seq,
                Change {
                    time,
                    operator,
                    sudo_user,
                    source: "rollout".into(),
                    rollout: Some(rollout),
                    node,
                    patch: patches.join(","),
                    op,
                    ok: state == "done",
                    message: match (state.as_str(), message.is_empty()) {
                        // Not a failure: it has not ended yet.
                        ("running", true) => "still running".to_string(),
                        ("running", false) => format!("still running: {message}"),
                        (_, true) => state,
                        (_, false) => message,
                    },
                    command: String::new(),
                },
            ));
        }
    }
    out.retain(|(_, _, c)| {
        (q.nodes.is_empty() || q.nodes.contains(&c.node))
            && q.patch
                .as_ref()
                .is_none_or(|p| c.patch.split(',').any(|x| x == p))
            && q.rollout.is_none_or(|r| c.rollout == Some(r))
            && q.since
                .is_none_or(|s| time_of(&c.time).is_some_and(|t| t >= s))
    });
    out.sort_by(|a, b| {
        let ta = time_of(&a.0);
        let tb = time_of(&b.0);
        tb.cmp(&ta).then(b.1.cmp(&a.1))
    });
    if let Some(n) = q.newest {
        out.truncate(n);
    }
    Ok(out.into_iter().map(|(_, _, c)| c).collect())
}

/// Who last installed `patch` on `node` successfully, as the journal says
/// (`user@host`), if it knows.
pub fn applied_by(conn: &Connection, node: &str, patch: &str) -> rusqlite::Result<Option<String>> {
    let from_journal: Option<String> = conn
        .query_row(
            // The newest install that succeeded, or whose command died
            // before reporting (the node or its recovery finished it): a
            // patch on the node with no newer install row is that one's.
            "SELECT operator FROM journal WHERE node=?1 AND operator != '' AND op IN ('install','apply')
             AND ((patch=?2 AND ok=1 AND pending=0)
                  OR (pending=1 AND instr(','||patch||',', ','||?2||',') > 0))
             ORDER BY id DESC LIMIT 1",
            [node, patch],
            |r| r.get(0),
        )
        .optional()?;
    if from_journal.is_some() {
        return Ok(from_journal);
    }
    // A rollout's install: its operator, when the rollout names the patch.
    let mut stmt = conn.prepare(
        "SELECT r.operator, r.plan FROM rollout_step s JOIN rollout r ON r.id = s.rollout
         WHERE s.node=?1 AND s.kind='apply' AND s.state='done' AND r.operator != ''
         ORDER BY s.ended_at DESC",
    )?;
    let rows = stmt.query_map([node], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (operator, plan) = row?;
        let plan: serde_json::Value = serde_json::from_str(&plan).unwrap_or_default();
        let named = plan["patches"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(patch)));
        if named && !plan["uninstall"].as_bool().unwrap_or(false) {
            return Ok(Some(operator));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_a_span() {
        let now = time_of("2026-01-10T12:00:00Z").unwrap_or_default();
        assert_eq!(
            parse_since("90m", now).ok(),
            time_of("2026-01-10T10:30:00Z")
        );
        assert_eq!(parse_since("3d", now).ok(), time_of("2026-01-07T12:00:00Z"));
        assert_eq!(
            parse_since("2026-01-09T00:00:00+01:00", now).ok(),
            time_of("2026-01-08T23:00:00Z")
        );
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("h", now).is_err());
        assert!(parse_since("-2h", now).is_err());
    }

    #[test]
    fn the_newest_changes_are_the_head_of_the_whole_history() {
        let dir = tempfile::tempdir().expect("tmp");
        let lab = Lab::new(dir.path());
        let journal = Journal::open(&lab, "test").expect("journal");
        for i in 0..12 {
            journal
                .record(&format!("n{}", i % 3), &format!("P{i}"), "stage", true, "")
                .expect("row");
        }
        let conn = crate::engine::console::open(&lab).expect("db");
        let all = history(&conn, &Query::default()).expect("all");
        assert_eq!(all.len(), 12);
        let newest = |n, nodes: Vec<String>| {
            let q = Query {
                newest: Some(n),
                nodes,
                ..Query::default()
            };
            history(&conn, &q).expect("newest")
        };
        assert_eq!(newest(5, vec![]), all[..5].to_vec());
        assert_eq!(newest(50, vec![]), all);
        // Narrowed, the limit counts what matches.
        let on_n1: Vec<Change> = all.iter().filter(|c| c.node == "n1").cloned().collect();
        assert_eq!(newest(2, vec!["n1".into()]), on_n1[..2].to_vec());
    }
}
