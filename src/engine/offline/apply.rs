//! Applying a bundle on the site, node by node.

use std::collections::BTreeMap;

use serde::Serialize;

use super::bundle::{Bundle, NodePlan, Planned, SelectionRequest, plan_for};
use super::{EnvMismatch, OfflineError, changes_since};
use crate::engine::inventory::PatchState;
use crate::engine::transport::Transport;

/// How a node should be matched to its plan in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// A fleet node: by node id, then its environment must agree.
    ById,
    /// A bare node (`--root`): by its environment id.
    ByEnvironment,
}

/// What `apply` did on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub node: String,
    /// True when every planned patch was already installed: nothing done.
    pub already: bool,
    /// Patches installed now, in order.
    pub installed: Vec<String>,
    /// With `--rebase` on a changed node: the plan before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebased: Option<Rebased>,
    pub message: String,
}

/// How `--rebase` changed a node's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rebased {
    /// What changed on the node since the snapshot.
    pub changes: Vec<String>,
    pub dropped: Vec<String>,
    pub added: Vec<String>,
    pub plan: Vec<String>,
}

/// Hears each step as it ends: (patch, op, ok, message), for the journal.
pub type Record<'a> = &'a dyn Fn(&str, &str, bool, &str);

/// Where the offline flow journals its changes.
pub trait Log {
    /// Journals, before node `node` is touched, that `op` on `patches` is
    /// about to run there. An error (the journal cannot be written) stops
    /// the change on that node before anything is done.
    fn intend(&self, node: &str, patches: &[String], op: &str) -> Result<(), String>;
    /// Records how a step on `node` ended.
    fn record(&self, node: &str, patch: &str, op: &str, ok: bool, message: &str);
}

/// Applies `bundle` to the node behind `t`: refuses a node or environment
/// the bundle was not prepared for, refuses a node changed since its
/// snapshot unless `rebase` (which re-resolves the bundle's request against
/// what the node has now, using only the bundle's patches), then stages and
/// installs each planned patch not yet installed, in plan order, with the
/// node's crash-safe lifecycle. Patches already installed (a bundle applied
/// before, or an apply that was killed) are skipped, so running it again
/// completes it. Errors: [`OfflineError`]; a failed stage or install stops
/// that node, after recording what was done; an intent the log cannot take
/// stops it before anything is done ([`OfflineError::Journal`]).
pub fn apply_node(
    t: &mut dyn Transport,
    bundle: &Bundle,
    how: Match,
    rebase: bool,
    log: &dyn Log,
) -> Result<Applied, OfflineError> {
    let checked = check_node(t, bundle, how, rebase)?;
    if checked.already {
        return Ok(Applied {
            node: checked.node,
            already: true,
            installed: Vec::new(),
            rebased: None,
            message: checked.message,
        });
    }
    log.intend(&checked.node, &checked.plan, "apply")
        .map_err(OfflineError::Journal)?;
    let record = |patch: &str, op: &str, ok: bool, message: &str| {
        log.record(&checked.node, patch, op, ok, message)
    };
    let installed = install_plan(t, bundle, &checked.plan, &record)?;
    let message = if installed.is_empty() {
        "already applied: nothing left to install".to_string()
    } else {
        format!("installed {}", installed.join(" "))
    };
    Ok(Applied {
        node: checked.node,
        already: installed.is_empty(),
        installed,
        rebased: checked.rebased,
        message,
    })
}

/// A node checked against a bundle: what is left to install on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub node: String,
    /// Every planned patch is installed already.
    pub already: bool,
    /// The plan to run, in order (after `--rebase` when it re-planned).
    pub plan: Vec<String>,
    pub rebased: Option<Rebased>,
    pub message: String,
}

/// The checks of [`apply_node`] without changing anything: the node and
/// its environment match the bundle, and the snapshot still holds (or,
/// with `rebase`, the plan resolved again on what the node has now).
/// Errors: [`OfflineError`].
pub fn check_node(
    t: &mut dyn Transport,
    bundle: &Bundle,
    how: Match,
    rebase: bool,
) -> Result<Checked, OfflineError> {
    let prepared = &bundle.prepared;
    let env = t.environment()?;
    let node = t.node().to_string();
    let snap = match how {
        Match::ById => prepared
            .snapshot
            .nodes
            .iter()
            .find(|n| n.inventory.node == node),
        Match::ByEnvironment => prepared
            .snapshot
            .nodes
            .iter()
            .find(|n| n.environment.id == env.id),
    };
    let Some(snap) = snap else {
        return Err(match (how, prepared.snapshot.nodes.first()) {
            (Match::ByEnvironment, Some(first)) if prepared.snapshot.nodes.len() == 1 => {
                OfflineError::WrongEnvironment(Box::new(EnvMismatch {
                    node,
                    expected_node: first.inventory.node.clone(),
                    expected: first.environment.id.clone(),
                    expected_host: first.environment.host.clone(),
                    actual: env.id,
                    actual_host: env.host,
                }))
            }
            _ => OfflineError::WrongNode {
                node: format!("{node} (environment {})", env.id),
                prepared_for: prepared
                    .snapshot
                    .nodes
                    .iter()
                    .map(|n| format!("{} (environment {})", n.inventory.node, n.environment.id))
                    .collect(),
            },
        });
    };
    if snap.environment.id != env.id {
        return Err(OfflineError::WrongEnvironment(Box::new(EnvMismatch {
            node,
            expected_node: snap.inventory.node.clone(),
            expected: snap.environment.id.clone(),
            expected_host: snap.environment.host.clone(),
            actual: env.id,
            actual_host: env.host,
        })));
    }
    let planned: Vec<Planned> = prepared
        .plans
        .iter()
        .find(|p| p.node == snap.inventory.node)
        .map(|p: &NodePlan| p.patches.clone())
        .unwrap_or_default();
    let inv = t.inventory()?;
    let ids: Vec<String> = planned.iter().map(|p| p.id.clone()).collect();
    if ids.iter().all(|id| inv.state(id).is_installed()) {
        let message = if ids.is_empty() {
            "nothing to apply: the bundle plans no patch for this node".to_string()
        } else {
            format!("already applied: {} installed here", ids.join(" "))
        };
        return Ok(Checked {
            node,
            already: true,
            plan: ids,
            rebased: None,
            message,
        });
    }
    let components: BTreeMap<String, String> = planned
        .iter()
        .map(|p| (p.id.clone(), p.component.clone()))
        .collect();
    let changes = changes_since(&snap.inventory, &inv, &ids, &components);
    let mut rebased = None;
    let plan: Vec<String> = if changes.is_empty() {
        ids.clone()
    } else if !rebase {
        return Err(OfflineError::Stale {
            node,
            taken_at: snap.taken_at.clone(),
            differences: changes,
        });
    } else {
        // Named patches the node now has are done, not problems.
        let request = SelectionRequest {
            specs: prepared
                .request
                .specs
                .iter()
                .filter(|s| !inv.state(s).is_installed())
                .cloned()
                .collect(),
            ..prepared.request.clone()
        };
        let fresh: Vec<String> = if !prepared.request.specs.is_empty() && request.specs.is_empty() {
            Vec::new()
        } else {
            let mut inv = inv.clone();
            inv.node = node.clone();
            plan_for(&bundle.patches, &inv, &request)?
                .into_iter()
                .map(|p| p.id)
                .collect()
        };
        rebased = Some(Rebased {
            changes,
            dropped: ids.iter().filter(|i| !fresh.contains(i)).cloned().collect(),
            added: fresh.iter().filter(|i| !ids.contains(i)).cloned().collect(),
            plan: fresh.clone(),
        });
        fresh
    };

    Ok(Checked {
        node,
        already: false,
        plan,
        rebased,
        message: String::new(),
    })
}

/// Stages (from the bundle) and installs each patch of `plan` the node
/// does not have yet, in order, recording every step. Returns what it
/// installed. Errors: the first stage or install that fails.
pub fn install_plan(
    t: &mut dyn Transport,
    bundle: &Bundle,
    plan: &[String],
    record: Record,
) -> Result<Vec<String>, OfflineError> {
    teach(t, bundle);
    let mut installed = Vec::new();
    for id in plan {
        if !stage_one(t, bundle, id, record)? {
            continue;
        }
        match t.install(id, true) {
            Ok(r) => {
                record(id, "install", true, &r.message);
                installed.push(id.clone());
            }
            Err(e) => {
                record(id, "install", false, &e.message);
                return Err(e.into());
            }
        }
    }
    Ok(installed)
}

/// Stages each patch of `plan` the node has neither staged nor installed,
/// from the bundle (for a rollout to install). Errors: a failed stage.
pub fn stage_plan(
    t: &mut dyn Transport,
    bundle: &Bundle,
    plan: &[String],
    record: Record,
) -> Result<(), OfflineError> {
    teach(t, bundle);
    for id in plan {
        stage_one(t, bundle, id, record)?;
    }
    Ok(())
}

/// Stages `id` unless the node has it; false when it is installed already.
fn stage_one(
    t: &mut dyn Transport,
    bundle: &Bundle,
    id: &str,
    record: Record,
) -> Result<bool, OfflineError> {
    let state = t.inventory()?.state(id);
    if state.is_installed() {
        return Ok(false);
    }
    if state != PatchState::Staged {
        match t.stage(id, &bundle.patch_file(id), &mut |_, _| {}) {
            Ok(r) => record(id, "stage", true, &r.message),
            Err(e) => {
                record(id, "stage", false, &e.message);
                return Err(e.into());
            }
        }
    }
    Ok(true)
}

/// Tells the node the depot's chains the bundle carries. Best effort, as
/// online: a node too old to learn refuses an install it cannot check,
/// which stops the apply with that error.
fn teach(t: &mut dyn Transport, bundle: &Bundle) {
    if let Err(e) = t.learn(&bundle.prepared.known) {
        tracing::debug!(node = %t.node(), error = %e, "the node did not learn the bundle's chains");
    }
}
