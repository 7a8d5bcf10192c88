//! Node operations across many nodes: open the right transport for each
//! node, run a bounded number of nodes at once, and report every node's
//! outcome (to a callback as it happens, and as the result). Install runs
//! the resolver against each node's inventory first and installs in its
//! order.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::engine::depot::Depot;
use crate::engine::fleet;
use crate::engine::inventory::PatchState;
use crate::engine::lab::Lab;
use crate::engine::manifest::Restart;
use crate::engine::node::{ErrorKind, NodeError, Report};
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
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Stage => "stage",
            Op::Install => "install",
            Op::Rollback => "rollback",
            Op::Commit => "commit",
            Op::Remove => "remove",
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

/// Which patches each node still lacks (not staged and verified there) for
/// installing `specs`: what the resolver would install on it, minus what it
/// has staged. Nodes that cannot be reached report the error.
pub fn readiness(
    lab: &Lab,
    depot: &Depot,
    nodes: &[&fleet::Node],
    specs: &[String],
    parallel: usize,
) -> Vec<Result<Vec<String>, NodeError>> {
    for_each_node(nodes, parallel, |node| {
        let inv = connect(lab, node)?.inventory()?;
        let wanted: Vec<String> = specs
            .iter()
            .filter(|s| !inv.state(s).is_installed())
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
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
        Ok(selection
            .patches
            .into_iter()
            .map(|p| p.id)
            .filter(|id| inv.state(id) != PatchState::Staged)
            .collect())
    })
}

/// Opens the transport a fleet node is reached by.
pub fn connect(lab: &Lab, node: &fleet::Node) -> Result<Box<dyn Transport>, NodeError> {
    match (&node.root, &node.command) {
        (Some(root), _) => Ok(Box::new(Local::open(&lab.resolve_root(root), &node.id)?)),
        (None, Some(command)) => remote(command, &node.id),
        (None, None) => Err(NodeError {
            node: node.id.clone(),
            kind: ErrorKind::Invalid,
            message: "no root or command in fleet.toml".into(),
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
/// example `ssh -T host patchdeck node --root /`).
fn remote(command: &str, node: &str) -> Result<Box<dyn Transport>, NodeError> {
    Ok(Box::new(crate::engine::protocol::Remote::shell(
        command, node,
    )?))
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
    match req.op {
        Op::Stage => {
            for id in expand(req) {
                let Some(path) = depot_file(req.depot, &id) else {
                    continue;
                };
                let o = match t.stage(&id, &path, &mut |_, _| {}) {
                    Ok(r) => Outcome::done(Op::Stage, r),
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
                        message: p.message.clone(),
                        ..Outcome::failed(Op::Install, &node, &p.id, &refused(&node, ""))
                    };
                    push(o, &mut out);
                }
                return out;
            }
            for entry in &selection.patches {
                if inv.state(&entry.id) != PatchState::Staged {
                    let e = refused(
                        &node,
                        &format!(
                            "{} ({}) is not staged here; stage or replicate it first",
                            entry.id, entry.reason
                        ),
                    );
                    push(Outcome::failed(Op::Install, &node, &entry.id, &e), &mut out);
                    return out;
                }
                let o = match t.install(&entry.id, req.save) {
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

fn depot_file(depot: &Depot, id: &str) -> Option<PathBuf> {
    depot.get(id).map(|p| depot.root.join(&p.file))
}
