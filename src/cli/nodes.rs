//! `nodes`, `stage`, `install`, `rollback`, `commit`, `remove`, `list`:
//! the fleet's nodes and the patch lifecycle on them.

use clap::Args;
use serde::Serialize;

use super::{Failure, Global, Outcome, open_depot, print_json};
use crate::engine::fleet::{Fleet, Targets};
use crate::engine::journal::Journal;
use crate::engine::lab::Lab;
use crate::engine::node::{Listed, Node, STORE_DIR};
use crate::engine::ops::{self, Job, Op};

/// Which nodes: `--nodes a,b`, `--cluster C`, `--org O`, optionally `--dc D|all`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Comma-separated node ids.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Every member of this cluster.
    #[arg(long, value_name = "C")]
    cluster: Option<String>,
    /// Every node of this organization.
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// Only nodes in this data center (`all` for every one).
    #[arg(long, value_name = "DC")]
    dc: Option<String>,
}

impl TargetArgs {
    fn targets(&self) -> Targets {
        Targets {
            nodes: self.nodes.clone(),
            cluster: self.cluster.clone(),
            org: self.org.clone(),
            dc: self.dc.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OpArgs {
    /// Patch ids (install also takes product specs, resolved per node).
    #[arg(required = true, value_name = "PATCH")]
    patches: Vec<String>,
    #[command(flatten)]
    targets: TargetArgs,
    /// Install only: do not keep the replaced files (straight to committed, no rollback).
    #[arg(long)]
    no_save: bool,
    /// Install only: refuse when the patches are not staged and verified on
    /// every target (default: warn, skip those nodes, install on the rest).
    #[arg(long)]
    require_replicated: bool,
    /// Nodes worked on at once.
    #[arg(long, default_value_t = ops::DEFAULT_PARALLEL)]
    parallel: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Comma-separated node ids (default: every node).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    #[arg(long)]
    pub json: bool,
}

pub fn load_fleet(lab: &Lab) -> Result<Fleet, Failure> {
    if !lab.exists() {
        return Err(Failure::Failed(format!(
            "no lab at {}; create one with `patchdeck demo --lab {}`",
            lab.root.display(),
            lab.root.display()
        )));
    }
    Fleet::load(&lab.fleet_path()).map_err(|e| Failure::Input(e.to_string()))
}

/// A row of `nodes`.
#[derive(Debug, Serialize)]
struct NodeRow<'a> {
    id: &'a str,
    dc: &'a str,
    org: &'a str,
    site: &'a str,
    cluster: Option<&'a str>,
    member: Option<&'a str>,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    /// `up`, `down`, or `unknown` (remote, or no store yet).
    service: String,
}

pub fn nodes(global: &Global, args: NodesArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let rows: Vec<NodeRow> = fleet
        .nodes
        .iter()
        .map(|n| {
            let root = n.root.as_deref().map(|r| lab.resolve_root(r));
            let service = root
                .as_ref()
                .filter(|r| r.join(STORE_DIR).join("ipd.sqlite").is_file())
                .and_then(|r| Node::open(r, &n.id).ok())
                .and_then(|node| node.service().ok())
                .map(|s| s.state.as_str().to_string())
                .unwrap_or_else(|| "unknown".to_string());
            NodeRow {
                id: &n.id,
                dc: &n.dc,
                org: &n.org,
                site: &n.site,
                cluster: n.cluster.as_deref(),
                member: n.member.as_deref(),
                role: match n.role {
                    crate::engine::fleet::Role::Primary => "primary",
                    crate::engine::fleet::Role::Secondary => "secondary",
                },
                root: root.map(|r| std::path::absolute(&r).unwrap_or(r).display().to_string()),
                command: n.command.as_deref(),
                service,
            }
        })
        .collect();
    if args.json {
        return print_json(&rows);
    }
    println!(
        "{:<12} {:<6} {:<9} {:<4} {:<8} {:<9} {:<8} REACHED BY",
        "NODE", "DC", "ORG", "SITE", "CLUSTER", "ROLE", "SERVICE"
    );
    for r in &rows {
        println!(
            "{:<12} {:<6} {:<9} {:<4} {:<8} {:<9} {:<8} {}",
            r.id,
            r.dc,
            r.org,
            r.site,
            r.cluster.unwrap_or("-"),
            r.role,
            r.service,
            r.root
                .clone()
                .or(r.command.map(String::from))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `stage` and the four lifecycle verbs.
pub fn operate(global: &Global, op: Op, args: OpArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let targets = args.targets.targets();
    if targets.is_empty() {
        return Err(Failure::Input(format!(
            "{} needs targets: --nodes LIST, --cluster C or --org ORG [--dc DC]",
            op.as_str()
        )));
    }
    let nodes = fleet.targets(&targets).map_err(Failure::Input)?;
    if nodes.is_empty() {
        return Err(Failure::Input("no node matches those targets".into()));
    }
    let depot = open_depot(&lab.depot_dir())?;
    if matches!(op, Op::Stage | Op::Install) {
        for spec in &args.patches {
            let product = spec.split('.').next().unwrap_or(spec);
            if depot.get(spec).is_none()
                && !depot.patches.iter().any(|p| p.manifest.product == product)
            {
                return Err(Failure::Input(format!(
                    "{spec} is neither a patch nor a product in the depot {}",
                    depot.root.display()
                )));
            }
        }
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let journal = Journal::open(&lab, &command)
        .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?;
    let journal = std::sync::Mutex::new(journal);
    let live = !args.json;
    let seen = |o: &ops::Outcome| {
        if let Ok(j) = journal.lock()
            && let Err(e) = j.record(&o.node, &o.patch, o.op.as_str(), o.ok, &o.message)
        {
            eprintln!("patchdeck: journal: {e}");
        }
        if live {
            let mark = if o.ok {
                "ok  "
            } else if o.skipped {
                "SKIP"
            } else {
                "FAIL"
            };
            println!(
                "{mark} {:<12} {:<10} {:<8} {}",
                o.node,
                o.patch,
                o.op.as_str(),
                o.message
            );
        }
    };
    // Install goes only where replication is complete, and says where not.
    let mut skipped = Vec::new();
    let mut nodes = nodes;
    if op == Op::Install {
        let ready = ops::readiness(&lab, &depot, &nodes, &args.patches, args.parallel);
        let mut not_ready = Vec::new();
        for (node, r) in nodes.iter().zip(ready) {
            if let Ok(missing) = r
                && !missing.is_empty()
            {
                not_ready.push((node.id.clone(), missing));
            }
        }
        if !not_ready.is_empty() {
            let list: Vec<String> = not_ready
                .iter()
                .map(|(n, m)| format!("{n} (missing {})", m.join(",")))
                .collect();
            if args.require_replicated {
                return Err(Failure::Failed(format!(
                    "replication is incomplete on {} node(s): {}; run `patchdeck replicate` first",
                    not_ready.len(),
                    list.join(", ")
                )));
            }
            eprintln!(
                "patchdeck: warning: not staged and verified on {} node(s), skipping them: {}",
                not_ready.len(),
                list.join(", ")
            );
            nodes.retain(|n| !not_ready.iter().any(|(id, _)| id == &n.id));
            for (node, missing) in not_ready {
                let why = format!(
                    "node {node}: skipped: {} not staged and verified here",
                    missing.join(", ")
                );
                let o = ops::Outcome::not_ready(op, &node, &missing.join(","), why);
                seen(&o);
                skipped.push(o);
            }
        }
    }
    let job = Job {
        op,
        specs: &args.patches,
        depot: &depot,
        save: !args.no_save,
    };
    let mut outcomes = ops::run(&lab, &nodes, &job, args.parallel, &seen);
    let skipped_count = skipped.len();
    outcomes.extend(skipped);
    let failed = outcomes.iter().filter(|o| !o.ok && !o.skipped).count();
    if args.json {
        print_json(&outcomes)?;
    } else {
        // Each node once, with the strongest restart it now waits for.
        let mut restarts: std::collections::BTreeMap<&str, crate::engine::manifest::Restart> =
            Default::default();
        for o in outcomes
            .iter()
            .filter(|o| o.ok && o.restart != crate::engine::manifest::Restart::None)
        {
            let r = restarts.entry(o.node.as_str()).or_default();
            *r = (*r).max(o.restart);
        }
        let restarts: Vec<String> = restarts.iter().map(|(n, r)| format!("{n} ({r})")).collect();
        if !restarts.is_empty() {
            println!("restart needed on: {}", restarts.join(", "));
        }
        println!(
            "{} of {} step(s) succeeded on {} node(s){}",
            outcomes.len() - failed - skipped_count,
            outcomes.len() - skipped_count,
            nodes.len(),
            if skipped_count > 0 {
                format!("; {skipped_count} node(s) skipped")
            } else {
                String::new()
            }
        );
    }
    if failed > 0 {
        Err(Failure::Reported(
            1,
            format!("{failed} step(s) failed; see above"),
        ))
    } else {
        Ok(())
    }
}

/// A row of `list`.
#[derive(Debug, Serialize)]
struct ListRow {
    node: String,
    #[serde(flatten)]
    entry: Listed,
}

/// Reads something from each node named by `--nodes` (all by default):
/// one row per item, in node order, and the nodes that could not be read.
fn from_each_node<T, R: Send>(
    global: &Global,
    nodes: &Option<Vec<String>>,
    read: impl Fn(
        &mut dyn crate::engine::transport::Transport,
    ) -> Result<Vec<T>, crate::engine::node::NodeError>
    + Sync,
    row: impl Fn(String, T) -> R,
) -> Result<(Vec<R>, Vec<String>, usize), Failure>
where
    T: Send,
{
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let chosen = match nodes {
        Some(list) => fleet
            .targets(&Targets {
                nodes: Some(list.clone()),
                ..Targets::default()
            })
            .map_err(Failure::Input)?,
        None => fleet.nodes.iter().collect(),
    };
    let results = ops::for_each_node(&chosen, ops::DEFAULT_PARALLEL, |n| {
        ops::connect(&lab, n)
            .and_then(|mut t| read(t.as_mut()))
            .map(|items| (n.id.clone(), items))
    });
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok((node, items)) => rows.extend(items.into_iter().map(|item| row(node.clone(), item))),
            Err(e) => failed.push(e.to_string()),
        }
    }
    Ok((rows, failed, chosen.len()))
}

pub fn list(global: &Global, args: ListArgs) -> Outcome {
    let (rows, failed, _) = from_each_node(
        global,
        &args.nodes,
        |t| t.list(),
        |node, entry| ListRow { node, entry },
    )?;
    if args.json {
        print_json(&rows)?;
    } else {
        println!(
            "{:<12} {:<10} {:<10} {:<24} {:<10} RESTART",
            "NODE", "PATCH", "STATE", "APPLIED", "BY"
        );
        for r in &rows {
            let e = &r.entry;
            println!(
                "{:<12} {:<10} {:<10} {:<24} {:<10} {}",
                r.node,
                e.patch,
                e.state.as_str(),
                e.applied_at.as_deref().unwrap_or("-"),
                e.superseded_by.as_deref().unwrap_or("-"),
                e.pending_restart.map(|r| r.as_str()).unwrap_or("-")
            );
        }
    }
    for f in &failed {
        eprintln!("patchdeck: {f}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported(
            1,
            format!("{} node(s) could not be read", failed.len()),
        ))
    }
}

/// A drifted file on a node.
#[derive(Debug, Serialize)]
struct DriftRow {
    node: String,
    #[serde(flatten)]
    drift: crate::engine::node::Drift,
}

/// `verify`: files on each node against what its database says; exit 1 on drift.
pub fn verify(global: &Global, args: ListArgs) -> Outcome {
    let (rows, failed, count) = from_each_node(
        global,
        &args.nodes,
        |t| t.verify(),
        |node, drift| DriftRow { node, drift },
    )?;
    if args.json {
        print_json(&rows)?;
    } else {
        for r in &rows {
            let d = &r.drift;
            let actual = d
                .actual
                .as_deref()
                .map(|a| &a[..12.min(a.len())])
                .unwrap_or("missing");
            println!(
                "{:<12} {:<40} written by {:<10} expected {} found {actual}",
                r.node,
                d.path,
                d.patch,
                &d.expected[..12]
            );
        }
        println!(
            "{} drifted file(s) on {} node(s) checked",
            rows.len(),
            count - failed.len()
        );
    }
    for f in &failed {
        eprintln!("patchdeck: {f}");
    }
    match (rows.is_empty(), failed.is_empty()) {
        (true, true) => Ok(()),
        (false, _) => Err(Failure::Reported(
            1,
            format!("{} file(s) differ from the database", rows.len()),
        )),
        (true, false) => Err(Failure::Reported(
            1,
            format!("{} node(s) could not be read", failed.len()),
        )),
    }
}
