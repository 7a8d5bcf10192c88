//! Node operations across many nodes: open the right transport for each
//! node, run a bounded number of nodes at once, and report every node's
//! outcome (to a callback as it happens, and as the result). Install runs
//! the resolver against each node's inventory first and installs in its
//! order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::engine::depot::Depot;
use crate::engine::fleet;
use crate::engine::inventory::{Inventory, PatchState};
use crate::engine::lab::Lab;
use crate::engine::manifest::Restart;
use crate::engine::node::{ErrorKind, NodeError, Recovery, Report};
use crate::engine::trust::{Gate, PublicKey, keys};

impl Outcome {
    /// What a node's recovery did to an operation a crash interrupted.
    pub fn recovered(node: &str, r: &Recovery) -> Outcome {
        Outcome {
            node: node.into(),
            patch: r.patch.clone(),
            op: Op::Recover,
            ok: true,
            state: None,
            restart: Restart::None,
            message: format!(
                "node {node}: recovery {} the {} of {} a crash interrupted (at {})",
                r.outcome, r.op, r.patch, r.at
            ),
            error: None,
            skipped: false,
        }
    }
}

/// Takes the notes of what the node's recovery settled (it ran when the
/// node was opened), as outcomes to journal. A node too old to keep notes
/// has none to give.
pub fn recoveries(t: &mut dyn Transport) -> Vec<Outcome> {
    let node = t.node().to_string();
    t.recovered()
        .unwrap_or_default()
        .iter()
        .map(|r| Outcome::recovered(&node, r))
        .collect()
}
use crate::engine::requirement::{self, Supersession};
use crate::engine::select::{self, Request};
use crate::engine::transport::{Local, Transport};

/// Nodes worked on at once by default.
pub const DEFAULT_PARALLEL: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Stage,
    Install,
    Rollback,
    Commit,
    Remove,
    /// Not asked for: an interrupted operation the node's recovery settled.
    Recover,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Stage => "stage",
            Op::Install => "install",
            Op::Rollback => "rollback",
            Op::Commit => "commit",
            Op::Remove => "remove",
            Op::Recover => "recover",
        }
    }
}

/// One node's result for one patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub node: String,
    pub patch: String,
    pub op: Op,
    pub ok: bool,
    /// The patch's state on the node afterwards, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<PatchState>,
    pub restart: Restart,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// Not attempted: the node was not ready (e.g. replication incomplete).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

impl Outcome {
    fn done(op: Op, r: Report) -> Outcome {
        Outcome {
            node: r.node,
            patch: r.patch,
            op,
            ok: true,
            state: Some(r.state),
            restart: r.restart,
            message: r.message,
            error: None,
            skipped: false,
        }
    }

    fn failed(op: Op, node: &str, patch: &str, e: &NodeError) -> Outcome {
        Outcome {
            node: node.into(),
            patch: patch.into(),
            op,
            ok: false,
            state: None,
            restart: Restart::None,
            message: e.to_string(),
            error: Some(e.kind),
            skipped: false,
        }
    }

    /// Nothing to do: the node already has the patch.
    fn already(op: Op, node: &str, patch: &str, message: String, state: PatchState) -> Outcome {
        Outcome {
            node: node.into(),
            patch: patch.into(),
            op,
            ok: true,
            state: Some(state),
            restart: Restart::None,
            message,
            error: None,
            skipped: false,
        }
    }

    /// A node left out because it is not ready for the operation.
    pub fn not_ready(op: Op, node: &str, patch: &str, message: String) -> Outcome {
        Outcome {
            node: node.into(),
            patch: patch.into(),
            op,
            ok: false,
            state: None,
            restart: Restart::None,
            message,
            error: None,
            skipped: true,
        }
    }
}

/// What installing `specs` would do on one node, as the resolver sees it
/// now: the patches it would install, in install order (prerequisites the
/// node lacks and automatic selections included), and those of them not yet
/// staged and verified there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallPlan {
    /// Patch ids in install order; empty when the node has them all.
    pub install: Vec<String>,
    /// The ids of `install` the node has not staged and verified.
    pub missing: Vec<String>,
}

/// The [`InstallPlan`] of `specs` on each node, in the order of `nodes`.
/// Nodes that cannot be reached report the error.
pub fn install_plans(
    lab: &Lab,
    depot: &Depot,
    nodes: &[&fleet::Node],
    specs: &[String],
    parallel: usize,
) -> Vec<Result<InstallPlan, NodeError>> {
    for_each_node(nodes, parallel, |node| {
        let inv = connect(lab, node)?.inventory()?;
        let wanted: Vec<String> = specs
            .iter()
            .filter(|s| !inv.state(s).is_installed())
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(InstallPlan::default());
        }
        let selection = select::resolve(
            &depot.patches,
            &Request {
                specs: wanted,
                autoselect: true,
                target: Some(&inv),
                narrow: &select::no_narrowing,
            },
        );
        let install: Vec<String> = selection.patches.into_iter().map(|p| p.id).collect();
        let missing = install
            .iter()
            .filter(|id| inv.state(id) != PatchState::Staged)
            .cloned()
            .collect();
        Ok(InstallPlan { install, missing })
    })
}

/// Which of `ids` no target node knows in any state, so that rolling back,
/// committing or removing them can only be a mistyped id. Empty when every
/// id is known somewhere, and also when a node could not be asked (then the
/// verb itself reports that node).
pub fn unknown_on_every_node(
    lab: &Lab,
    nodes: &[&fleet::Node],
    ids: &[String],
    parallel: usize,
) -> Vec<String> {
    let inventories = for_each_node(nodes, parallel, |node| connect(lab, node)?.inventory());
    let Ok(inventories) = inventories
        .into_iter()
        .collect::<Result<Vec<_>, NodeError>>()
    else {
        return Vec::new();
    };
    ids.iter()
        .filter(|id| {
            inventories
                .iter()
                .all(|inv| inv.state(id) == PatchState::None)
        })
        .cloned()
        .collect()
}

/// Opens the transport a fleet node is reached by: in process for a
/// `root`, a child for a `command`, the system's ssh for `ssh` (see
/// [`crate::engine::ssh`]). Remote nodes get the `[ssh]` deadlines, so a
/// node that does not answer fails with [`ErrorKind::Unreachable`] instead
/// of hanging.
pub fn connect(lab: &Lab, node: &fleet::Node) -> Result<Box<dyn Transport>, NodeError> {
    match (&node.root, &node.command, &node.ssh) {
        (Some(root), _, _) => Ok(Box::new(Local::open(&lab.resolve_root(root), &node.id)?)),
        (None, Some(command), _) => Ok(Box::new(remote_command(lab, command, &node.id)?)),
        (None, None, Some(_)) => {
            let target =
                crate::engine::ssh::SshTarget::new(lab, crate::engine::ssh::settings(lab), node)?;
            Ok(Box::new(target.connect()?))
        }
        (None, None, None) => Err(NodeError {
            node: node.id.clone(),
            kind: ErrorKind::Invalid,
            message: "no root, command or ssh in fleet.toml".into(),
        }),
    }
}

/// Opens a node's transport to change it: stage, install and the rest.
/// A node on an offline site (`offline = true`) is refused, pointing to
/// the offline flow (seed 003: offline sites are patched from a snapshot
/// and a prepared bundle, never directly). Errors: [`ErrorKind::Refused`]
/// for an offline node, else those of [`connect`].
pub fn connect_to_change(lab: &Lab, node: &fleet::Node) -> Result<Box<dyn Transport>, NodeError> {
    if node.offline {
        return Err(refused(
            &node.id,
            &format!(
                "on an offline site, so it is not patched directly: take a snapshot there \
                 (`patchdeck snapshot --nodes {} -o FILE`), prepare a bundle where the depot \
                 is (`patchdeck prepare FILE -o BUNDLE`), and apply it on the site \
                 (`patchdeck apply BUNDLE --nodes {}`)",
                node.id, node.id
            ),
        ));
    }
    connect(lab, node)
}

/// A node reached through a command speaking the node protocol (for
/// example `ssh -T host patchdeck node --root /`), with the `[ssh]`
/// deadlines.
pub fn remote_command(
    lab: &Lab,
    command: &str,
    node: &str,
) -> Result<crate::engine::protocol::Remote, NodeError> {
    let config = crate::engine::ssh::settings(lab);
    let setup = crate::engine::protocol::Setup {
        connect: std::time::Duration::from_secs(config.connect_timeout_secs.max(1)),
        op: std::time::Duration::from_secs(config.op_timeout_secs.max(1)),
        ..Default::default()
    };
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(command);
    crate::engine::protocol::Remote::spawn_with(sh, node, setup)
}

/// Maps `work` over `items`, at most `parallel` at a time (each item is a
/// separate machine, so waiting on them one by one wastes the wall clock);
/// results come back in item order. A worker that panicked is an error,
/// never a silently missing result.
pub fn bounded_map<I: Sync, T: Send>(
    items: &[I],
    parallel: usize,
    work: impl Fn(&I) -> T + Sync,
) -> Result<Vec<T>, String> {
    let next = AtomicUsize::new(0);
    let workers = parallel.clamp(1, items.len().max(1));
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, work(item)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if results.len() != items.len() {
        return Err("a worker panicked".into());
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, t)| t).collect())
}

/// Runs `work` for every node, at most `parallel` at once; results come
/// back in node order. A panicking worker is a bug and panics here too.
pub fn for_each_node<T: Send>(
    nodes: &[&fleet::Node],
    parallel: usize,
    work: impl Fn(&fleet::Node) -> T + Sync,
) -> Vec<T> {
    match bounded_map(nodes, parallel, |n| work(n)) {
        Ok(results) => results,
        Err(e) => panic!("working on nodes: {e}"),
    }
}

/// What to do, to which patches, with which depot.
pub struct Job<'a> {
    pub op: Op,
    pub specs: &'a [String],
    pub depot: &'a Depot,
    /// Install only: keep saved files (false goes straight to committed).
    pub save: bool,
    /// The lab's trust policy: what may be staged and installed.
    pub gate: &'a Gate,
}

/// Runs one operation on many nodes; `seen` hears each outcome as it ends.
pub fn run(
    lab: &Lab,
    nodes: &[&fleet::Node],
    req: &Job,
    parallel: usize,
    seen: &(dyn Fn(&Outcome) + Sync),
) -> Vec<Outcome> {
    for_each_node(nodes, parallel, |node| match connect_to_change(lab, node) {
        Ok(mut t) => on_node(t.as_mut(), req, seen),
        Err(e) => {
            let o = Outcome::failed(
                req.op,
                &node.id,
                req.specs.first().map(String::as_str).unwrap_or("-"),
                &e,
            );
            seen(&o);
            vec![o]
        }
    })
    .into_iter()
    .flatten()
    .collect()
}

fn on_node(t: &mut dyn Transport, req: &Job, seen: &(dyn Fn(&Outcome) + Sync)) -> Vec<Outcome> {
    let node = t.node().to_string();
    let mut out = Vec::new();
    let push = |o: Outcome, out: &mut Vec<Outcome>| {
        seen(&o);
        let ok = o.ok;
        out.push(o);
        ok
    };
    // Opening the node finished or undid what a crash interrupted: that
    // is a change too, and goes in the journal first.
    for o in recoveries(t) {
        push(o, &mut out);
    }
    match req.op {
        Op::Recover => {}
        Op::Stage => {
            for id in expand(req) {
                let Some(path) = depot_file(req.depot, &id) else {
                    continue;
                };
                // The lab's policy first; the node checks the signature too
                // when it holds keys of its own.
                if let Err(refusal) = req.gate.may_use(req.depot, &id) {
                    let e = refused(&node, &format!("nothing staged: {refusal}"));
                    push(Outcome::failed(Op::Stage, &node, &id, &e), &mut out);
                    continue;
                }
                let sig = signature_text(&path);
                let o = match t.stage_signed(&id, &path, sig.as_deref(), &mut |_, _| {}) {
                    Ok(r) => {
                        teach(t, req.depot, &id);
                        Outcome::done(Op::Stage, r)
                    }
                    Err(e) => Outcome::failed(Op::Stage, &node, &id, &e),
                };
                push(o, &mut out);
            }
        }
        Op::Install => {
            let inv = match t.inventory() {
                Ok(inv) => inv,
                Err(e) => {
                    push(Outcome::failed(Op::Install, &node, "-", &e), &mut out);
                    return out;
                }
            };
            // Named patches the node already has are reported, not errors.
            let mut specs = Vec::new();
            for s in req.specs {
                let state = inv.state(s);
                if state.is_installed() {
                    push(
                        Outcome::already(
                            Op::Install,
                            &node,
                            s,
                            format!("node {node}: {s} is already {state}"),
                            state,
                        ),
                        &mut out,
                    );
                } else {
                    specs.push(s.clone());
                }
            }
            if specs.is_empty() {
                return out;
            }
            let selection = select::resolve(
                &req.depot.patches,
                &Request {
                    specs,
                    autoselect: true,
                    target: Some(&inv),
                    narrow: &select::no_narrowing,
                },
            );
            if !selection.problems.is_empty() {
                for p in &selection.problems {
                    let o = Outcome {
                        message: format!("node {node}: nothing installed: {}", p.message),
                        ..Outcome::failed(Op::Install, &node, &p.id, &refused(&node, ""))
                    };
                    push(o, &mut out);
                }
                return out;
            }
            // The whole plan is checked first: if any patch cannot go, none is installed.
            let ids: Vec<String> = selection.patches.iter().map(|e| e.id.clone()).collect();
            if let Err(refusal) = req
                .gate
                .may_use_all(req.depot, ids.iter().map(String::as_str))
            {
                let e = refused(&node, &format!("nothing installed: {refusal}"));
                push(
                    Outcome::failed(Op::Install, &node, &refusal.patch, &e),
                    &mut out,
                );
                return out;
            }
            let roots: Vec<&str> = inv
                .patches
                .keys()
                .map(String::as_str)
                .chain(ids.iter().map(String::as_str))
                .collect();
            let known = Supersession::from_depot(|id| req.depot.get(id), roots);
            if let Err(refusal) = check_install_plan(&inv, &ids, req.depot, &known) {
                let reason = selection
                    .patches
                    .iter()
                    .find(|e| e.id == refusal.patch)
                    .map(|e| format!(" ({})", e.reason))
                    .unwrap_or_default();
                let e = refused(
                    &node,
                    &format!(
                        "nothing installed: {}{reason} cannot go: {}",
                        refusal.patch, refusal.why
                    ),
                );
                push(
                    Outcome::failed(Op::Install, &node, &refusal.patch, &e),
                    &mut out,
                );
                return out;
            }
            for entry in &selection.patches {
                let o = match t.install_with(&entry.id, req.save, &known) {
                    Ok(r) => Outcome::done(Op::Install, r),
                    Err(e) => Outcome::failed(Op::Install, &node, &entry.id, &e),
                };
                if !push(o, &mut out) {
                    return out;
                }
            }
        }
        Op::Rollback | Op::Commit | Op::Remove => {
            // Roll back newest first, so a superseder goes before what it replaced.
            let mut ids: Vec<String> = req.specs.to_vec();
            if req.op == Op::Rollback
                && let Ok(list) = t.list()
            {
                ids.sort_by_key(|id| {
                    std::cmp::Reverse(
                        list.iter()
                            .find(|l| &l.patch == id)
                            .and_then(|l| l.applied_at.clone()),
                    )
                });
            }
            for id in ids {
                let r = match req.op {
                    Op::Rollback => t.rollback(&id),
                    Op::Commit => t.commit(&id),
                    _ => t.remove(&id),
                };
                let o = match r {
                    Ok(r) => Outcome::done(req.op, r),
                    Err(e) => Outcome::failed(req.op, &node, &id, &e),
                };
                push(o, &mut out);
            }
        }
    }
    out
}

/// Tells a node the depot's supersession chain below `id`, which it has
/// just staged, so any later install of a patch that requires something in
/// that chain (a rollout's too) sees the requirement met. Best effort: a
/// node too old for it learns at install time instead.
pub fn teach(t: &mut dyn Transport, depot: &Depot, id: &str) {
    let known = Supersession::from_depot(|p| depot.get(p), [id]);
    if let Err(e) = t.learn(&known) {
        tracing::debug!(node = %t.node(), patch = %id, error = %e, "the node did not learn the chain");
    }
}

/// Why a patch of an install plan cannot go on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{patch} cannot go: {why}")]
pub struct PlanRefusal {
    pub patch: String,
    pub why: String,
}

/// Checks a whole install plan (`plan`: patch ids in install order) against
/// a node's inventory before anything is installed: each patch must be
/// staged there and not superseded by anything installed, its product and base version installed, and each of its
/// requirements met by what is installed or installed earlier in the plan
/// (the one rule of [`requirement`], over the depot's supersession edges in
/// `known`). The first patch that cannot go is the error.
pub fn check_install_plan(
    inv: &Inventory,
    plan: &[String],
    depot: &Depot,
    known: &Supersession,
) -> Result<(), PlanRefusal> {
    let mut installed: Vec<&str> = inv
        .patches
        .iter()
        .filter(|(_, s)| s.is_installed())
        .map(|(id, _)| id.as_str())
        .collect();
    for id in plan {
        let refuse = |why: String| PlanRefusal {
            patch: id.clone(),
            why,
        };
        if inv.state(id) != PatchState::Staged {
            return Err(refuse(format!(
                "it is not staged here; stage or replicate {id} first"
            )));
        }
        // Never beneath a newer patch (the node refuses it too).
        if let Some(newer) = installed
            .iter()
            .find(|p| *p != id && requirement::covers(known, p, id))
        {
            return Err(refuse(format!(
                "{newer}, which supersedes it, is installed here"
            )));
        }
        let Some(patch) = depot.get(id) else {
            return Err(refuse("it is not in the depot".to_string()));
        };
        let m = &patch.manifest;
        if let Some(have) = inv.downgrade(&m.product, m.fileset.as_deref(), &m.version) {
            let component = match &m.fileset {
                Some(f) => format!("{}.{f}", m.product),
                None => m.product.clone(),
            };
            return Err(refuse(format!(
                "it is a downgrade: it brings {component} {} and {have} is installed here",
                m.version
            )));
        }
        match inv.products.get(&m.product) {
            None => {
                return Err(refuse(format!(
                    "product {} is not installed here",
                    m.product
                )));
            }
            Some(have) => {
                if let Some(base) = &m.base_version
                    && crate::engine::version::base_version_satisfied(base, have) != Some(true)
                {
                    return Err(refuse(format!(
                        "it needs {} {base}, and {have} is installed",
                        m.product
                    )));
                }
            }
        }
        if let Some(r) = requirement::unmet(known, &m.requires, installed.iter().copied())
            .into_iter()
            .next()
        {
            return Err(refuse(format!(
                "it requires {r}, which is neither installed here nor planned before it, \
                 nor superseded by anything that is"
            )));
        }
        installed.push(id);
    }
    Ok(())
}

/// What stops taking `leaving` (patch ids) off a node whose inventory is
/// `inv`: the installed patches outside `leaving` whose requirement only a
/// leaving patch meets, by the one rule of [`requirement`] over the depot's
/// manifests. Empty when they can all go. For uninstall rollouts to refuse
/// in their preflight, before a group is drained; the node refuses each
/// rollback on its own as well.
pub fn removal_blocked_by(
    inv: &Inventory,
    depot: &Depot,
    leaving: &[String],
) -> Vec<requirement::Dependent> {
    let installed: Vec<&str> = inv
        .patches
        .iter()
        .filter(|(_, s)| s.is_installed())
        .map(|(id, _)| id.as_str())
        .collect();
    let known = Supersession::from_depot(|id| depot.get(id), installed.iter().copied());
    let holders: Vec<(&str, &[String])> = inv
        .patches
        .iter()
        .filter(|(_, s)| matches!(s, PatchState::Applied | PatchState::Committed))
        .filter_map(|(id, _)| {
            depot
                .get(id)
                .map(|p| (id.as_str(), p.manifest.requires.as_slice()))
        })
        .collect();
    let leaving: Vec<&str> = leaving.iter().map(String::as_str).collect();
    requirement::dependents_of(&known, &leaving, &installed, &holders)
}

fn refused(node: &str, message: &str) -> NodeError {
    NodeError {
        node: node.into(),
        kind: ErrorKind::Refused,
        message: message.into(),
    }
}

/// Patch ids as named; product specs expand to their latest patches.
fn expand(req: &Job) -> Vec<String> {
    let mut ids = Vec::new();
    for spec in req.specs {
        if req.depot.get(spec).is_some() {
            ids.push(spec.clone());
        } else {
            let selection = select::resolve(&req.depot.patches, &Request::new(vec![spec.clone()]));
            ids.extend(selection.patches.into_iter().map(|s| s.id));
        }
    }
    ids.dedup();
    ids
}

/// The `.minisig` text beside `file`, when there is a readable one.
pub fn signature_text(file: &Path) -> Option<String> {
    keys::read_small(&keys::sig_path(file), keys::MAX_SIG_BYTES).ok()
}

/// Sends the trusted `keys` to a node (what `trust push` and `bootstrap`
/// do); the node then stages only what they signed. Returns how many keys
/// the node trusts.
pub fn push_trust(t: &mut dyn Transport, keys: &[PublicKey]) -> Result<usize, NodeError> {
    let texts: Vec<String> = keys.iter().map(PublicKey::to_text).collect();
    t.trust(&texts)
}

fn depot_file(depot: &Depot, id: &str) -> Option<PathBuf> {
    depot.get(id).map(|p| depot.root.join(&p.file))
}
