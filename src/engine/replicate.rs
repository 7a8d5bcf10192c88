//! Replication: copying patches from the depot to the appliances of every
//! data center, with `done/total` progress per patch and per data center.
//!
//! Each (patch, node) pair moves pending → copying → verified, or failed
//! with a reason. Status lives in the lab's console database, so it
//! survives a restart, and a later run copies only what is missing: a node
//! that already has the patch (staged or beyond) counts as verified without
//! copying. Arrival is verified by the node (stage checks every checksum and
//! renames into place only when whole). Transient failures (I/O, busy) are
//! retried with backoff; refusals are not.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::engine::depot::Depot;
use crate::engine::fleet;
use crate::engine::lab::Lab;
use crate::engine::node::ErrorKind;
use crate::engine::node::store::now;
use crate::engine::ops;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Copying,
    Verified,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Copying => "copying",
            Status::Verified => "verified",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "copying" => Status::Copying,
            "verified" => Status::Verified,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }
}

/// One change of one (patch, node) pair, as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub patch: String,
    pub node: String,
    pub dc: String,
    pub status: Status,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub attempt: u32,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub parallel: usize,
    /// Attempts per pair for transient failures.
    pub attempts: u32,
    /// First retry delay; doubles each time.
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallel: ops::DEFAULT_PARALLEL,
            attempts: 4,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Progress of one node for one patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub dc: String,
    pub status: Status,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub attempts: u32,
}

/// `done/total` for one data center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DcProgress {
    pub dc: String,
    pub done: usize,
    pub total: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchProgress {
    pub patch: String,
    pub done: usize,
    pub total: usize,
    pub failed: usize,
    pub dcs: Vec<DcProgress>,
    pub nodes: Vec<NodeStatus>,
}

impl PatchProgress {
    /// `N/M`, as operators read it.
    pub fn ratio(&self) -> String {
        format!("{}/{}", self.done, self.total)
    }
}

fn set(conn: &Mutex<Connection>, e: &Event, attempts: u32) {
    if let Ok(c) = conn.lock() {
        let r = c.execute(
            "INSERT INTO replication(patch, node, dc, status, reason, attempts, bytes_done, bytes_total, updated_at, pid)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)
             ON CONFLICT(patch, node) DO UPDATE SET dc=?3, status=?4, reason=?5, attempts=?6, bytes_done=?7, bytes_total=?8, updated_at=?9, pid=?10",
            params![e.patch, e.node, e.dc, e.status.as_str(), e.reason, attempts, e.bytes_done as i64, e.bytes_total as i64, now(), std::process::id() as i64],
        );
        if let Err(err) = r {
            tracing::warn!("recording replication progress: {err}");
        }
    }
}

/// Copies every patch to every node; `seen` hears each status change.
/// Nodes on an offline site are left out (they take bundles: `snapshot`,
/// `prepare`, `apply`). Returns the progress of the patches afterwards.
pub fn replicate(
    lab: &Lab,
    depot: &Depot,
    patches: &[String],
    nodes: &[&fleet::Node],
    options: Options,
    seen: &(dyn Fn(&Event) + Sync),
) -> rusqlite::Result<Vec<PatchProgress>> {
    // A node on an offline site is never staged directly (it takes
    // bundles), so it is no replication target.
    let nodes: Vec<&fleet::Node> = nodes.iter().copied().filter(|n| !n.offline).collect();
    let nodes = nodes.as_slice();
    let conn = Mutex::new(crate::engine::console::open(lab)?);
    let sizes: BTreeMap<&str, u64> = patches
        .iter()
        .map(|p| {
            let size = depot
                .get(p)
                .and_then(|x| std::fs::metadata(depot.root.join(&x.file)).ok())
                .map(|m| m.len())
                .unwrap_or(0);
            (p.as_str(), size)
        })
        .collect();
    // Everything starts pending, except what is already verified.
    {
        let c = conn.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
        for p in patches {
            for n in nodes {
                c.execute(
                    "INSERT INTO replication(patch, node, dc, status, bytes_total, updated_at, pid) VALUES (?1,?2,?3,'pending',?4,?5,?6)
                     ON CONFLICT(patch, node) DO UPDATE SET status=CASE WHEN status='verified' THEN status ELSE 'pending' END, dc=?3,
                        pid=CASE WHEN status='verified' THEN pid ELSE ?6 END,
                        updated_at=CASE WHEN status='verified' THEN updated_at ELSE ?5 END",
                    params![p, n.id, n.dc, sizes[p.as_str()] as i64, now(), std::process::id() as i64],
                )?;
            }
        }
    }
    ops::for_each_node(nodes, options.parallel, |node| {
        let event = |patch: &str, status: Status, reason: String, attempt: u32, done: u64| Event {
            patch: patch.to_string(),
            node: node.id.clone(),
            dc: node.dc.clone(),
            status,
            reason,
            attempt,
            bytes_done: done,
            bytes_total: sizes[patch],
        };
        let emit = |e: Event| {
            set(&conn, &e, e.attempt);
            seen(&e);
        };
        let mut transport = None;
        for patch in patches {
            let total = sizes[patch.as_str()];
            let mut attempt = 0;
            loop {
                attempt += 1;
                if transport.is_none() {
                    match ops::connect_to_change(lab, node) {
                        Ok(t) => transport = Some(t),
                        Err(e) => {
                            // A dropped or refused link is worth another
                            // try: each is bounded by the node's deadlines.
                            if attempt < options.attempts
                                && matches!(
                                    e.kind,
                                    ErrorKind::Io | ErrorKind::Busy | ErrorKind::Unreachable
                                )
                            {
                                std::thread::sleep(options.backoff * 2u32.pow(attempt - 1));
                                continue;
                            }
                            emit(event(patch, Status::Failed, e.message, attempt, 0));
                            break;
                        }
                    }
                }
                let Some(t) = transport.as_mut() else { break };
                // Resume: a node that has the patch needs no copy.
                if let Ok(inv) = t.inventory()
                    && inv.state(patch) != crate::engine::inventory::PatchState::None
                {
                    crate::engine::ops::teach(t.as_mut(), depot, patch);
                    emit(event(
                        patch,
                        Status::Verified,
                        String::new(),
                        attempt,
                        total,
                    ));
                    break;
                }
                emit(event(patch, Status::Copying, String::new(), attempt, 0));
                let Some(file) = depot.get(patch).map(|p| depot.root.join(&p.file)) else {
                    emit(event(
                        patch,
                        Status::Failed,
                        format!("{patch} is not in the depot"),
                        attempt,
                        0,
                    ));
                    break;
                };
                let mut last = 0u64;
                let sig = crate::engine::ops::signature_text(&file);
                let result = t.stage_signed(patch, &file, sig.as_deref(), &mut |done, _| {
                    // Tell watchers about big steps only: every 1/8 of the file.
                    if done == total || done > last + total / 8 {
                        last = done;
                        seen(&event(patch, Status::Copying, String::new(), attempt, done));
                    }
                });
                match result {
                    Ok(_) => {
                        // The node learns the chain below it, for installs to come.
                        crate::engine::ops::teach(t.as_mut(), depot, patch);
                        emit(event(
                            patch,
                            Status::Verified,
                            String::new(),
                            attempt,
                            total,
                        ));
                        break;
                    }
                    Err(e)
                        if attempt < options.attempts
                            && matches!(
                                e.kind,
                                ErrorKind::Io | ErrorKind::Busy | ErrorKind::Unreachable
                            ) =>
                    {
                        emit(event(
                            patch,
                            Status::Pending,
                            format!("retrying: {}", e.message),
                            attempt,
                            0,
                        ));
                        transport = None;
                        std::thread::sleep(options.backoff * 2u32.pow(attempt - 1));
                    }
                    Err(e) => {
                        emit(event(patch, Status::Failed, e.message, attempt, 0));
                        break;
                    }
                }
            }
        }
    });
    let c = conn
        .into_inner()
        .map_err(|_| rusqlite::Error::InvalidQuery)?;
    progress(&c, Some(patches))
}

/// Progress as recorded, per patch (all patches when `patches` is `None`).
pub fn progress(
    conn: &Connection,
    patches: Option<&[String]>,
) -> rusqlite::Result<Vec<PatchProgress>> {
    let mut stmt = conn.prepare(
        "SELECT patch, node, dc, status, reason, attempts, pid, updated_at FROM replication ORDER BY patch, dc, node",
    )?;
    let rows = stmt.query_map([], |r| {
        let mut status = NodeStatus {
            node: r.get(1)?,
            dc: r.get(2)?,
            status: Status::parse(&r.get::<_, String>(3)?),
            reason: r.get(4)?,
            attempts: r.get::<_, i64>(5)? as u32,
        };
        // A copy whose replicate run is gone is not under way.
        let pid: i64 = r.get(6)?;
        let at: String = r.get(7)?;
        let writer_alive = chrono::DateTime::parse_from_rfc3339(&at)
            .is_ok_and(|t| crate::engine::rollout::alive_since(pid, t.to_utc()));
        if matches!(status.status, Status::Pending | Status::Copying) && pid > 0 && !writer_alive
        {
            status.status = Status::Failed;
            status.reason = format!(
                "interrupted: the replicate run (pid {pid}) ended before this copy finished; run replicate again"
            );
        }
        Ok((r.get::<_, String>(0)?, status))
    })?;
    let mut by_patch: BTreeMap<String, Vec<NodeStatus>> = BTreeMap::new();
    for row in rows {
        let (patch, status) = row?;
        if patches.is_none_or(|ps| ps.contains(&patch)) {
            by_patch.entry(patch).or_default().push(status);
        }
    }
    let mut out = Vec::new();
    for (patch, mut nodes) in by_patch {
        nodes.sort_by(|a, b| {
            a.dc.cmp(&b.dc)
                .then_with(|| crate::engine::groups::natural_cmp(&a.node, &b.node))
        });
        let mut dcs: BTreeMap<&str, DcProgress> = BTreeMap::new();
        for n in &nodes {
            let d = dcs.entry(&n.dc).or_insert_with(|| DcProgress {
                dc: n.dc.clone(),
                done: 0,
                total: 0,
                failed: 0,
            });
            d.total += 1;
            d.done += usize::from(n.status == Status::Verified);
            d.failed += usize::from(n.status == Status::Failed);
        }
        let dcs: Vec<DcProgress> = dcs.into_values().collect();
        out.push(PatchProgress {
            done: dcs.iter().map(|d| d.done).sum(),
            total: nodes.len(),
            failed: dcs.iter().map(|d| d.failed).sum(),
            patch,
            dcs,
            nodes,
        });
    }
    Ok(out)
}
