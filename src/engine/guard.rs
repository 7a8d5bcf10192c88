//! What a plain lifecycle verb (`install`, `rollback`, `commit`, `remove`)
//! may not do to cluster members, decided once for every front end:
//!
//! - **A rollout owns its cluster.** While a rollout holds a cluster
//!   (running, paused, or failed and not yet resumed or aborted), no plain
//!   verb touches its members.
//! - **Never all at once.** `install`, `rollback` or `remove` aimed at two or
//!   more members of one cluster would take them out of service together;
//!   unless every patch involved is hot, the answer is the `rollout start`
//!   command that does it group by group. An explicit override with a
//!   reason (`--all-at-once --reason TEXT`) is allowed and journaled.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};

use crate::engine::depot::Depot;
use crate::engine::fleet;
use crate::engine::ops::Op;
use crate::engine::select::{self, Request};

/// Why a plain verb may not run on these targets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A member's cluster is held by a rollout.
    #[error(
        "{node} is a member of cluster {cluster}, which rollout {rollout} holds ({state}); \
         a plain {op} would change a member behind its back. Wait for it (`patchdeck rollout \
         status {rollout} --follow`), or end it (`patchdeck rollout resume {rollout}` or \
         `patchdeck rollout abort {rollout}`)"
    )]
    HeldByRollout {
        op: String,
        node: String,
        cluster: String,
        rollout: i64,
        state: String,
    },
    /// Several members of one cluster at once, with patches that are not hot.
    #[error(
        "{op} on several members of cluster {cluster} ({members}) would take them out of \
         service together, and {not_hot} not hot. Do it group by group: `{command}` \
         (or override with --all-at-once --reason TEXT)"
    )]
    AllAtOnce {
        op: String,
        cluster: String,
        members: String,
        not_hot: String,
        command: String,
    },
    /// The console database could not be read.
    #[error("reading rollouts from {path}: {message}")]
    Database { path: String, message: String },
}

/// Refuses when a rollout holds the cluster of any of `nodes`. `conn` is
/// the lab's console database.
pub fn rollout_holds(conn: &Connection, op: Op, nodes: &[&fleet::Node]) -> Result<(), Refusal> {
    let db = |e: rusqlite::Error| Refusal::Database {
        path: conn.path().unwrap_or("console.sqlite").to_string(),
        message: e.to_string(),
    };
    let mut checked: BTreeMap<&str, ()> = BTreeMap::new();
    for n in nodes {
        let Some(cluster) = n.cluster.as_deref() else {
            continue;
        };
        if checked.insert(cluster, ()).is_some() {
            continue;
        }
        let Some(id) = crate::engine::rollout::journal::unfinished(conn, cluster).map_err(db)?
        else {
            continue;
        };
        let state: String = conn
            .query_row("SELECT state FROM rollout WHERE id=?1", [id], |r| r.get(0))
            .optional()
            .map_err(db)?
            .unwrap_or_default();
        return Err(Refusal::HeldByRollout {
            op: op.as_str().into(),
            node: n.id.clone(),
            cluster: cluster.into(),
            rollout: id,
            state,
        });
    }
    Ok(())
}

/// The members of each cluster that `nodes` names two or more of.
pub fn clusters_hit<'a>(nodes: &[&'a fleet::Node]) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in nodes {
        if let Some(c) = n.cluster.as_deref() {
            by.entry(c).or_default().push(n.id.as_str());
        }
    }
    by.retain(|_, members| members.len() >= 2);
    by
}

/// The patches `op` on `specs` involves, by id: for install, what the
/// resolver would install (prerequisites included); else the ids named.
fn involved(op: Op, specs: &[String], depot: &Depot) -> Vec<String> {
    if op == Op::Install {
        let sel = select::resolve(&depot.patches, &Request::new(specs.to_vec()));
        let mut ids: Vec<String> = sel.patches.into_iter().map(|p| p.id).collect();
        ids.extend(specs.iter().filter(|s| depot.get(s).is_some()).cloned());
        ids.sort();
        ids.dedup();
        ids
    } else {
        specs.to_vec()
    }
}

/// Refuses `op` when it hits two or more members of one cluster, unless
/// every patch involved is hot (a patch not in the depot counts as not
/// hot). Commit and stage never take a member out of service: allowed.
pub fn never_all_at_once(
    op: Op,
    specs: &[String],
    nodes: &[&fleet::Node],
    depot: &Depot,
) -> Result<(), Refusal> {
    if !matches!(op, Op::Install | Op::Rollback | Op::Remove) {
        return Ok(());
    }
    let hit = clusters_hit(nodes);
    let Some((cluster, members)) = hit.iter().next() else {
        return Ok(());
    };
    let not_hot: Vec<String> = involved(op, specs, depot)
        .into_iter()
        .filter(|id| depot.get(id).is_none_or(|p| !p.manifest.hot))
        .collect();
    if not_hot.is_empty() {
        return Ok(());
    }
    let command = format!(
        "patchdeck rollout start --cluster {cluster} {}{}",
        specs.join(" "),
        if op == Op::Install {
            ""
        } else {
            " --uninstall"
        }
    );
    let shown: Vec<&str> = not_hot.iter().take(5).map(String::as_str).collect();
    let more = not_hot.len().saturating_sub(shown.len());
    Err(Refusal::AllAtOnce {
        op: op.as_str().into(),
        cluster: (*cluster).into(),
        members: members.join(", "),
        not_hot: format!(
            "{}{} {}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            if not_hot.len() == 1 { "is" } else { "are" }
        ),
        command,
    })
}
