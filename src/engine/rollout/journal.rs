//! Rollouts in the console database: the plan, the rollout's state, what
//! another process asked for (pause, abort), and every step's state.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::plan::{Plan, Step, StepKind};
use crate::engine::node::store::now;

/// Where a rollout is. Shown (and in `--json` field `state`) as one of
/// `pending`, `waiting`, `running`, `paused`, `done`, `failed`, `aborted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Recorded; its runner has not taken it up yet.
    Pending,
    /// Its runner waits for a maintenance window to open (or for the next
    /// one, past a cutoff); the message says when.
    Waiting,
    Running,
    Paused,
    /// Halted on a failure with the failed group left as it was (policy
    /// `halt`, or a rollback that failed too): it holds the cluster until
    /// resumed or aborted.
    Failed,
    /// Failed, and the failed group was rolled back and serves again: the
    /// rollout is over. Shown as `failed`.
    RolledBack,
    Aborted,
    Done,
}

impl State {
    /// The operator's word for the state (the `state` field of `--json`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Waiting => "waiting",
            State::Running => "running",
            State::Paused => "paused",
            State::Failed | State::RolledBack => "failed",
            State::Aborted => "aborted",
            State::Done => "done",
        }
    }

    /// How the state is stored in the console database.
    fn db_str(self) -> &'static str {
        match self {
            State::RolledBack => "rolled_back",
            s => s.as_str(),
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "pending" => State::Pending,
            "waiting" => State::Waiting,
            "paused" => State::Paused,
            "failed" => State::Failed,
            "rolled_back" => State::RolledBack,
            "aborted" => State::Aborted,
            "done" => State::Done,
            _ => State::Running,
        }
    }

    /// Not finished: holds the cluster until resumed or aborted.
    pub fn unfinished(self) -> bool {
        matches!(
            self,
            State::Pending | State::Waiting | State::Running | State::Paused | State::Failed
        )
    }

    /// A runner should be at work on it: pending, waiting or running.
    pub fn active(self) -> bool {
        matches!(self, State::Pending | State::Waiting | State::Running)
    }

    /// Over for good: done, aborted, or failed and rolled back.
    pub fn ended(self) -> bool {
        !self.unfinished()
    }
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    /// Never run: the rollout ended (done, failed and rolled back, or
    /// aborted) before reaching it.
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }

    /// Whether the step was started at all (so its node may have changed).
    pub fn started(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Skipped)
    }

    fn parse(s: &str) -> StepState {
        match s {
            "running" => StepState::Running,
            "done" => StepState::Done,
            "failed" => StepState::Failed,
            "skipped" => StepState::Skipped,
            _ => StepState::Pending,
        }
    }
}

/// A step with its recorded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    #[serde(flatten)]
    pub step: Step,
    pub state: StepState,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollout {
    pub id: i64,
    pub cluster: String,
    pub state: State,
    /// `pause` or `abort` when another process asked; empty otherwise.
    pub requested: String,
    pub message: String,
    /// The process that last ran it.
    pub pid: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub plan: Plan,
    pub steps: Vec<StepRow>,
}

impl Rollout {
    /// The step a running or paused rollout takes next; `None` once it has
    /// ended or halted (nothing is pending then).
    pub fn next_step(&self) -> Option<&StepRow> {
        if !matches!(
            self.state,
            State::Pending | State::Waiting | State::Running | State::Paused
        ) {
            return None;
        }
        self.steps.iter().find(|s| s.state != StepState::Done)
    }

    /// What a group of this rollout is at, in the words status and the
    /// console show: `in progress`, `waiting`, `paused`, `done`, `failed`,
    /// `rolled back`, `aborted`, `stopped`, `not started`, `interrupted`.
    /// `live`: a process is working on the rollout now.
    pub fn group_state(&self, group: &str, live: bool) -> &'static str {
        let last = self.plan.last_seq();
        let steps: Vec<&StepRow> = self
            .steps
            .iter()
            .filter(|s| s.step.group == group)
            .collect();
        let planned = || steps.iter().filter(|s| s.step.seq <= last);
        let added_done = steps
            .iter()
            .filter(|s| s.step.seq > last)
            .all(|s| s.state == StepState::Done);
        let reverted = steps.iter().any(|s| s.step.kind == StepKind::Revert);
        if steps.iter().any(|s| s.state == StepState::Running) {
            return if live { "in progress" } else { "interrupted" };
        }
        if reverted && added_done {
            return "rolled back";
        }
        if steps.iter().any(|s| s.state == StepState::Failed) {
            return "failed";
        }
        if planned().all(|s| s.state == StepState::Done) {
            return "done";
        }
        let started = planned().any(|s| s.state == StepState::Done);
        match (self.state, started) {
            (State::Paused, true) => "paused",
            (State::Pending | State::Waiting | State::Running, true) => "in progress",
            (State::Pending | State::Waiting | State::Running | State::Paused, false) => "waiting",
            (State::Aborted, true) => "aborted",
            (_, true) => "stopped",
            (_, false) => "not started",
        }
    }
}

/// Records a new rollout unless the cluster has an unfinished one, which
/// is returned instead. Check and insert are one immediate transaction, so
/// of two consoles starting at once exactly one gets the cluster.
pub fn create(conn: &Connection, plan: &Plan) -> rusqlite::Result<Result<i64, i64>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if let Some(existing) = unfinished(&tx, &plan.cluster)? {
        return Ok(Err(existing));
    }
    let json = serde_json::to_string(plan).unwrap_or_default();
    tx.execute(
        "INSERT INTO rollout(cluster, plan, state, pid, created_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?4, ?4)",
        params![plan.cluster, json, std::process::id() as i64, now()],
    )?;
    let id = tx.last_insert_rowid();
    crate::engine::journal::attribute_rollout(&tx, id)?;
    for s in &plan.steps {
        insert_step(&tx, id, s)?;
    }
    tx.commit()?;
    Ok(Ok(id))
}

fn insert_step(conn: &Connection, id: i64, s: &Step) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO rollout_step(rollout, seq, grp, node, kind, state, message) VALUES (?1,?2,?3,?4,?5,'pending',?6)",
        params![id, s.seq as i64, s.group, s.node, s.kind.as_str(), s.command],
    )?;
    Ok(())
}

/// Appends steps decided during the run (revert after a failure, restore on
/// abort), numbered after the last one.
pub fn append(
    conn: &Connection,
    id: i64,
    steps: &[(StepKind, String, String, String)],
) -> rusqlite::Result<Vec<usize>> {
    let next: i64 = conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM rollout_step WHERE rollout=?1",
        [id],
        |r| r.get(0),
    )?;
    let tx = conn.unchecked_transaction()?;
    let mut seqs = Vec::new();
    for (i, (kind, group, node, command)) in steps.iter().enumerate() {
        let seq = next as usize + i;
        insert_step(
            &tx,
            id,
            &Step {
                seq,
                kind: *kind,
                group: group.clone(),
                node: node.clone(),
                command: command.clone(),
            },
        )?;
        seqs.push(seq);
    }
    tx.commit()?;
    Ok(seqs)
}

pub fn set_step(
    conn: &Connection,
    id: i64,
    seq: usize,
    state: StepState,
    message: &str,
) -> rusqlite::Result<()> {
    let t = now();
    conn.execute(
        "UPDATE rollout_step SET state=?3,
            message=CASE WHEN ?4 = '' THEN message ELSE ?4 END,
            started_at=CASE WHEN ?3='running' THEN ?5 ELSE started_at END,
            ended_at=CASE WHEN ?3 IN ('done','failed') THEN ?5 ELSE NULL END
         WHERE rollout=?1 AND seq=?2",
        params![id, seq as i64, state.as_str(), message, t],
    )?;
    Ok(())
}

/// Sets a rollout's state. When it ends (done, failed and rolled back,
/// aborted), no step of it is left pending or running: a step never
/// reached is `skipped`, and one a dead runner left running is `failed`
/// as interrupted (the abort or rollback settled its node).
pub fn set_state(conn: &Connection, id: i64, state: State, message: &str) -> rusqlite::Result<()> {
    // One transaction, or the caller's when it has one open.
    let tx = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };
    let t = now();
    conn.execute(
        "UPDATE rollout SET state=?2, message=?3, requested=CASE WHEN ?2 IN ('running','waiting') THEN requested ELSE '' END,
            pid=?4, updated_at=?5 WHERE id=?1",
        params![id, state.db_str(), message, std::process::id() as i64, t],
    )?;
    if state.ended() {
        conn.execute(
            "UPDATE rollout_step SET state='skipped', message='not run: the rollout ended first'
             WHERE rollout=?1 AND state='pending'",
            [id],
        )?;
        conn.execute(
            "UPDATE rollout_step SET state='failed', ended_at=?2,
                message='interrupted: its runner stopped before the step ended'
             WHERE rollout=?1 AND state='running'",
            params![id, t],
        )?;
    }
    match tx {
        Some(tx) => tx.commit(),
        None => Ok(()),
    }
}

/// Records how a rollout ends before its closing after-hooks run, so a
/// runner that dies meanwhile finishes the same ending when taken up again
/// (see [`closing`]).
pub fn set_closing(
    conn: &Connection,
    id: i64,
    state: State,
    message: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE rollout SET requested=?2, message=?3, updated_at=?4 WHERE id=?1",
        params![id, format!("finish:{}", state.db_str()), message, now()],
    )?;
    Ok(())
}

/// The ending recorded by [`set_closing`] and not yet finished, with its message.
pub fn closing(conn: &Connection, id: i64) -> rusqlite::Result<Option<(State, String)>> {
    let (requested, message): (String, String) = conn.query_row(
        "SELECT requested, message FROM rollout WHERE id=?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(requested
        .strip_prefix("finish:")
        .map(|s| (State::parse(s), message)))
}

/// Another process asks the running rollout to pause or abort.
/// Hands a rollout not yet taken up to the runner process `pid` that
/// will take it up, so while that process lives the rollout is starting,
/// not interrupted (the command that recorded it may exit first).
pub fn hand_to(conn: &Connection, id: i64, pid: u32) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE rollout SET pid=?2 WHERE id=?1 AND state='pending'",
        params![id, i64::from(pid)],
    )?;
    Ok(())
}

pub fn request(conn: &Connection, id: i64, what: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE rollout SET requested=?2, updated_at=?3 WHERE id=?1",
        params![id, what, now()],
    )?;
    Ok(())
}

pub fn requested(conn: &Connection, id: i64) -> rusqlite::Result<String> {
    conn.query_row("SELECT requested FROM rollout WHERE id=?1", [id], |r| {
        r.get(0)
    })
}

pub fn load(conn: &Connection, id: i64) -> rusqlite::Result<Option<Rollout>> {
    let head = conn
        .query_row(
            "SELECT id, cluster, plan, state, requested, message, pid, created_at, updated_at FROM rollout WHERE id=?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            },
        )
        .optional()?;
    let Some((id, cluster, plan, state, requested, message, pid, created_at, updated_at)) = head
    else {
        return Ok(None);
    };
    let plan: Plan = serde_json::from_str(&plan).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let mut stmt = conn.prepare(
        "SELECT seq, kind, grp, node, state, message, started_at, ended_at FROM rollout_step WHERE rollout=?1 ORDER BY seq",
    )?;
    let steps = stmt
        .query_map([id], |r| {
            let seq = r.get::<_, i64>(0)? as usize;
            let kind = StepKind::parse(&r.get::<_, String>(1)?).unwrap_or(StepKind::Preflight);
            let command = plan
                .steps
                .iter()
                .find(|s| s.seq == seq && s.kind == kind)
                .map(|s| s.command.clone());
            let message: String = r.get(5)?;
            Ok(StepRow {
                step: Step {
                    seq,
                    kind,
                    group: r.get(2)?,
                    node: r.get(3)?,
                    command: command.unwrap_or_else(|| message.clone()),
                },
                state: StepState::parse(&r.get::<_, String>(4)?),
                message,
                started_at: r.get(6)?,
                ended_at: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Rollout {
        id,
        cluster,
        state: State::parse(&state),
        requested,
        message,
        pid,
        created_at,
        updated_at,
        plan,
        steps,
    }))
}

/// The newest rollout of a cluster (or of any cluster).
pub fn latest(conn: &Connection, cluster: Option<&str>) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM rollout WHERE ?1 IS NULL OR cluster=?1 ORDER BY id DESC LIMIT 1",
        [cluster],
        |r| r.get(0),
    )
    .optional()
}

/// Every rollout id, newest first, of one cluster (or of all).
pub fn ids(conn: &Connection, cluster: Option<&str>) -> rusqlite::Result<Vec<i64>> {
    let mut stmt =
        conn.prepare("SELECT id FROM rollout WHERE ?1 IS NULL OR cluster=?1 ORDER BY id DESC")?;
    let rows = stmt.query_map([cluster], |r| r.get(0))?;
    rows.collect()
}

/// The unfinished rollout holding a cluster, if any.
pub fn unfinished(conn: &Connection, cluster: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM rollout WHERE cluster=?1 AND state IN ('pending','waiting','running','paused','failed') ORDER BY id DESC LIMIT 1",
        [cluster],
        |r| r.get(0),
    )
    .optional()
}

/// Records the patches each member had applied before the rollout changed
/// anything (written by the preflight, which changes nothing itself).
pub fn record_before(
    conn: &Connection,
    id: i64,
    members: &[(String, Vec<String>)],
) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    for (node, applied) in members {
        let json = serde_json::to_string(applied).unwrap_or_default();
        tx.execute(
            "INSERT INTO rollout_before(rollout, node, applied) VALUES (?1, ?2, ?3)
             ON CONFLICT(rollout, node) DO UPDATE SET applied=?3",
            params![id, node, json],
        )?;
    }
    tx.commit()
}

/// What each member had applied before the rollout, by node (empty for a
/// rollout recorded before this was kept).
pub fn before(conn: &Connection, id: i64) -> rusqlite::Result<BTreeMap<String, Vec<String>>> {
    let mut stmt = conn.prepare("SELECT node, applied FROM rollout_before WHERE rollout=?1")?;
    let rows = stmt.query_map([id], |r| {
        let node: String = r.get(0)?;
        let json: String = r.get(1)?;
        let applied: Vec<String> = serde_json::from_str(&json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok((node, applied))
    })?;
    rows.collect()
}
