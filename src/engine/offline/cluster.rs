//! A bundle on a cluster: every member is checked against the bundle
//! first (nothing is staged anywhere while one member is refused), then
//! each member's plan is staged from the bundle, so the rollout engine can
//! install group by group (seed 002: never all members at once).

use super::apply::{Checked, Log, Match, check_node, stage_plan};
use super::{Bundle, OfflineError};
use crate::engine::fleet::Fleet;
use crate::engine::lab::Lab;
use crate::engine::ops;

/// What [`stage_cluster`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStaged {
    /// Each member as checked.
    pub members: Vec<Checked>,
    /// The patches the rollout installs, in plan order (every member's
    /// plan, first occurrence first); empty when all were applied already.
    pub ids: Vec<String>,
}

/// Checks every member of `cluster` against `bundle` (node, environment,
/// snapshot; `rebase` as for `apply`), asks `gate` whether the rollout of
/// the resulting patches may go ahead (the drift check), then stages what
/// each member's plan needs. `log` journals each member's plan before it
/// is staged there, and each step as it ends. Errors: the first member refused or failing to stage, an
/// intent the journal could not take, or an unknown cluster
/// ([`OfflineError::File`] naming the fleet).
pub fn stage_cluster(
    lab: &Lab,
    fleet: &Fleet,
    cluster: &str,
    bundle: &Bundle,
    rebase: bool,
    gate: &dyn Fn(&[String]) -> Result<(), String>,
    log: &dyn Log,
) -> Result<ClusterStaged, OfflineError> {
    if !fleet.clusters.iter().any(|c| c.id == cluster) {
        return Err(super::file_err(
            &lab.fleet_path(),
            format!("unknown cluster {cluster:?}"),
        ));
    }
    let nodes: Vec<_> = fleet
        .nodes
        .iter()
        .filter(|n| n.cluster.as_deref() == Some(cluster))
        .collect();
    let mut members = Vec::new();
    for n in &nodes {
        let mut t = ops::connect(lab, n)?;
        members.push(check_node(t.as_mut(), bundle, Match::ById, rebase)?);
    }
    let mut ids: Vec<String> = Vec::new();
    for m in members.iter().filter(|m| !m.already) {
        for id in &m.plan {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    if !ids.is_empty() {
        gate(&ids).map_err(OfflineError::Refused)?;
    }
    for (n, m) in nodes.iter().zip(&members) {
        if m.already {
            continue;
        }
        log.intend(&n.id, &m.plan, "stage")
            .map_err(OfflineError::Journal)?;
        let mut t = ops::connect(lab, n)?;
        let on = |patch: &str, op: &str, ok: bool, message: &str| {
            log.record(&n.id, patch, op, ok, message)
        };
        stage_plan(t.as_mut(), bundle, &m.plan, &on)?;
    }
    Ok(ClusterStaged { members, ids })
}
