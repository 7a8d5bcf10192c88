//! Keeping the console live: a background thread that reads replication
//! progress and rollouts from the console database several times a second,
//! and the fleet's node states every few seconds, and sends a snapshot to
//! the console only when something changed. Whatever runs the work (this
//! console's child processes, another operator's CLI), the journal is the
//! one source both read.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::engine::console;
use crate::engine::fleet::Fleet;
use crate::engine::journal::{Change, Query};
use crate::engine::lab::Lab;
use crate::engine::replicate::{self, PatchProgress};
use crate::engine::rollout::{Rollout, journal};
use crate::engine::status::FleetView;

/// What the operations panes show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub replication: Vec<PatchProgress>,
    /// The newest rollout of each cluster that has one.
    pub rollouts: Vec<Rollout>,
    /// The ids of `rollouts` whose runner is alive; an active rollout not
    /// among them was interrupted.
    pub running: Vec<i64>,
    pub fleet: FleetView,
    /// The lab's journal, newest first (at most [`HISTORY_ROWS`]).
    pub history: Vec<Change>,
}

/// How many journal rows the history pane keeps.
pub const HISTORY_ROWS: usize = 2000;

/// The newest changes of the lab's journal.
pub fn read_history(lab: &Lab) -> Result<Vec<Change>, String> {
    let conn = console::open(lab).map_err(|e| format!("{}: {e}", lab.db_path().display()))?;
    let newest = Query {
        newest: Some(HISTORY_ROWS),
        ..Query::default()
    };
    crate::engine::journal::history(&conn, &newest)
        .map_err(|e| format!("{}: {e}", lab.db_path().display()))
}

/// Reads the journal part of a snapshot (cheap: one database, few rows).
pub fn read_journal(
    lab: &Lab,
    fleet: &Fleet,
) -> Result<(Vec<PatchProgress>, Vec<Rollout>), String> {
    let conn = console::open(lab).map_err(|e| format!("{}: {e}", lab.db_path().display()))?;
    let replication = replicate::progress(&conn, None).map_err(|e| e.to_string())?;
    let mut rollouts = Vec::new();
    for c in &fleet.clusters {
        if let Some(id) = journal::latest(&conn, Some(&c.id)).map_err(|e| e.to_string())?
            && let Some(r) = journal::load(&conn, id).map_err(|e| e.to_string())?
        {
            rollouts.push(r);
        }
    }
    Ok((replication, rollouts))
}

/// The ids of `rollouts` whose runner is alive (it holds the cluster's
/// lock), so the panes can tell a running rollout from an interrupted one
/// without looking at the system themselves.
pub fn running(lab: &Lab, rollouts: &[Rollout]) -> Vec<i64> {
    rollouts
        .iter()
        .filter(|r| crate::engine::rollout::is_running(lab, r))
        .map(|r| r.id)
        .collect()
}

/// Starts the poller; it ends when the receiver is dropped.
pub fn spawn(
    lab: Lab,
    fleet: Fleet,
    every: Duration,
    fleet_every: Duration,
    out: UnboundedSender<Snapshot>,
) {
    let _ = std::thread::Builder::new()
        .name("live".into())
        .spawn(move || {
            let mut last = Snapshot::default();
            let mut fleet_at: Option<Instant> = None;
            loop {
                let mut next = last.clone();
                if let Ok((replication, rollouts)) = read_journal(&lab, &fleet) {
                    next.replication = replication;
                    next.running = running(&lab, &rollouts);
                    next.rollouts = rollouts;
                }
                // Node states cost a visit to every node, so they refresh at
                // their own pace; what a rollout does to a member, the journal says.
                if fleet_at.is_none_or(|t| t.elapsed() >= fleet_every) {
                    next.fleet = FleetView::take(&lab, &fleet);
                    if let Ok(history) = read_history(&lab) {
                        next.history = history;
                    }
                    fleet_at = Some(Instant::now());
                }
                if next != last {
                    if out.send(next.clone()).is_err() {
                        return;
                    }
                    last = next;
                }
                std::thread::sleep(every);
            }
        });
}
