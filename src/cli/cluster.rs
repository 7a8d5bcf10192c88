//! Cluster verbs: `groups` (the partition a rollout uses).

use crate::front::{say, shout};
use clap::Args;

use super::global::Global;
use super::nodes::load_fleet;
use crate::engine::groups;
use crate::front::{Failure, Outcome, print_json};

#[derive(Debug, Args)]
pub struct GroupsArgs {
    /// The cluster to split.
    #[arg(long, value_name = "C")]
    cluster: String,
    /// Number of groups for a single-site cluster (default: the cluster's setting, else 2).
    #[arg(long, value_name = "N")]
    groups: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn groups(global: &Global, args: GroupsArgs) -> Outcome {
    let fleet = load_fleet(&global.lab())?;
    let partition = groups::partition(&fleet, &args.cluster, args.groups)
        .map_err(|e| Failure::Input(e.to_string()))?;
    if let Some(w) = groups::unused_count(&partition, args.groups) {
        shout!("warning: {w}");
    }
    if args.json {
        return print_json(&partition);
    }
    say!(
        "cluster {}: {} groups",
        partition.cluster,
        partition.groups.len()
    );
    for g in &partition.groups {
        say!("  {}: {}", g.name, g.members.join(" "));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// Patch ids (product specs expand to their latest patches).
    #[arg(value_name = "PATCH")]
    patches: Vec<String>,
    /// Only this data center's appliances (default: every node of the fleet).
    #[arg(long, value_name = "DC", conflicts_with_all = ["org", "nodes"])]
    dc: Option<String>,
    /// Only this organization's nodes.
    #[arg(long, value_name = "ORG", conflicts_with = "nodes")]
    org: Option<String>,
    /// Only these nodes (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Show progress while copying (a bar on a terminal, JSON lines with --json).
    #[arg(long)]
    wait: bool,
    /// Show recorded progress instead of copying.
    #[arg(long)]
    status: bool,
    /// Nodes copied to at once.
    #[arg(long, default_value_t = crate::engine::ops::DEFAULT_PARALLEL)]
    parallel: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn replicate(global: &Global, args: ReplicateArgs) -> Outcome {
    use crate::engine::replicate::{self, Status};
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    if args.status {
        let conn = crate::engine::console::open(&lab)
            .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?;
        let filter = (!args.patches.is_empty()).then_some(args.patches.as_slice());
        let progress =
            replicate::progress(&conn, filter).map_err(|e| Failure::Failed(e.to_string()))?;
        return report_progress(&progress, args.json, None);
    }
    if args.patches.is_empty() {
        return Err(Failure::Input(
            "name the patches to replicate (or --status to see progress)".into(),
        ));
    }
    let depot = crate::front::open_depot(&lab.depot_dir())?;
    depot
        .check_specs(&args.patches)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let mut ids = Vec::new();
    for spec in &args.patches {
        if depot.get(spec).is_some() {
            ids.push(spec.clone());
            continue;
        }
        let sel = crate::engine::select::resolve(
            &depot.patches,
            &crate::engine::select::Request::new(vec![spec.clone()]),
        );
        if sel.patches.is_empty() {
            return Err(Failure::Input(format!(
                "{spec} is neither a patch nor a product in the depot {}",
                depot.root.display()
            )));
        }
        ids.extend(sel.patches.into_iter().map(|s| s.id));
    }
    // The lab's trust policy: nothing it refuses is copied anywhere.
    crate::engine::trust::Gate::for_lab(&lab)
        .map_err(|e| Failure::Input(e.to_string()))?
        .may_use_all(&depot, ids.iter().map(String::as_str))
        .map_err(|e| Failure::Input(e.to_string()))?;
    let targets = crate::engine::fleet::Targets {
        nodes: args.nodes.clone(),
        cluster: None,
        org: args.org.clone(),
        dc: args.dc.clone(),
    };
    let nodes: Vec<&crate::engine::fleet::Node> = if targets.is_empty() {
        fleet.nodes.iter().collect()
    } else {
        fleet
            .targets(&targets)
            .map_err(|e| Failure::Input(e.to_string()))?
    };
    if nodes.is_empty() {
        return Err(Failure::Input("no node matches those targets".into()));
    }
    let offline: Vec<&str> = nodes
        .iter()
        .filter(|n| n.offline)
        .map(|n| n.id.as_str())
        .collect();
    if !offline.is_empty() && !targets.is_empty() {
        shout!(
            "patchdeck: not replicated to {} (offline site: use snapshot, prepare and apply)",
            offline.join(", ")
        );
    }
    let nodes: Vec<&crate::engine::fleet::Node> =
        nodes.into_iter().filter(|n| !n.offline).collect();
    let journal = crate::engine::journal::Journal::open(
        &lab,
        &std::env::args().collect::<Vec<_>>().join(" "),
    )
    .map_err(|e| Failure::Failed(e.to_string()))?;
    // Intents before any node is touched: a journal that cannot take them
    // stops the command with nothing done.
    let mut intents = Vec::new();
    for n in &nodes {
        intents.push(
            journal
                .intend(&n.id, &ids.join(","), "replicate")
                .map_err(|e| Failure::Failed(format!("{e}; nothing was done")))?,
        );
    }
    let journal = std::sync::Mutex::new(journal);
    let journal_failure = std::sync::Mutex::new(None::<String>);
    let total = ids.len() * nodes.len();
    let counts = std::sync::Mutex::new((0usize, 0usize));
    let bar = crate::front::progress(total as u64, "replicating", args.json || !args.wait);
    let lines = args.wait && args.json;
    let seen = |e: &replicate::Event| {
        if matches!(e.status, Status::Verified | Status::Failed) {
            if let Ok(j) = journal.lock()
                && let Err(err) = j.record(
                    &e.node,
                    &e.patch,
                    "replicate",
                    e.status == Status::Verified,
                    &e.reason,
                )
                && let Ok(mut f) = journal_failure.lock()
            {
                f.get_or_insert(err.to_string());
            }
            if let Ok(mut c) = counts.lock() {
                if e.status == Status::Verified {
                    c.0 += 1
                } else {
                    c.1 += 1
                }
                bar.set_position((c.0 + c.1) as u64);
                bar.set_message(format!("replicating ({} failed)", c.1));
            }
        }
        if lines && let Ok(text) = serde_json::to_string(e) {
            println!("{text}");
        }
    };
    let progress = replicate::replicate(
        &lab,
        &depot,
        &ids,
        &nodes,
        replicate::Options {
            parallel: args.parallel,
            ..Default::default()
        },
        &seen,
    )
    .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?;
    bar.finish_and_clear();
    let settled = journal
        .lock()
        .map_err(|_| "a journal writer panicked".to_string())
        .and_then(|j| j.settle(&intents).map_err(|e| e.to_string()));
    let unrecorded = journal_failure
        .into_inner()
        .ok()
        .flatten()
        .or(settled.err());
    if let Some(e) = unrecorded {
        return Err(Failure::Failed(format!(
            "the copies were made, but the journal could not record them: {e}"
        )));
    }
    // This run succeeded when its own copies did; rows of other nodes
    // (an earlier run's) are shown, not counted against it.
    let mine: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    if lines {
        println!("{}", serde_json::json!({ "progress": progress }));
        let failed = failed_copies(&progress, Some(&mine));
        return if failed == 0 {
            Ok(())
        } else {
            Err(Failure::Reported(1, format!("{failed} copy(ies) failed")))
        };
    }
    report_progress(&progress, args.json, Some(&mine))
}

/// Failed copies in `progress`, of the nodes in `of` (all nodes: `None`).
fn failed_copies(
    progress: &[crate::engine::replicate::PatchProgress],
    of: Option<&[&str]>,
) -> usize {
    progress
        .iter()
        .flat_map(|p| &p.nodes)
        .filter(|n| n.status == crate::engine::replicate::Status::Failed)
        .filter(|n| of.is_none_or(|of| of.contains(&n.node.as_str())))
        .count()
}

/// Prints progress; an error when a copy of the nodes in `of` (all nodes:
/// `None`) failed.
fn report_progress(
    progress: &[crate::engine::replicate::PatchProgress],
    json: bool,
    of: Option<&[&str]>,
) -> Outcome {
    let failed = failed_copies(progress, of);
    if json {
        print_json(&progress)?;
    } else {
        for p in progress {
            let dcs: Vec<String> = p
                .dcs
                .iter()
                .map(|d| format!("{} {}/{}", d.dc, d.done, d.total))
                .collect();
            say!("{:<12} {:>7}  {}", p.patch, p.ratio(), dcs.join("  "));
            for n in p
                .nodes
                .iter()
                .filter(|n| n.status != crate::engine::replicate::Status::Verified)
            {
                say!("    {:<12} {:<8} {}", n.node, n.status.as_str(), n.reason);
            }
        }
        if progress.is_empty() {
            say!("nothing replicated yet");
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure::Reported(
            1,
            format!("{failed} copy(ies) failed; run replicate again to retry them"),
        ))
    }
}
