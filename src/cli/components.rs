//! `components`, `updates`, `drift`: what each node is built of, which
//! updates the depot offers it, and whether a cluster is on one release.
//! The engine decides (engine::components, engine::drift); this renders.

use crate::front::{say, shout};
use clap::Args;

use super::global::Global;
use super::nodes::load_fleet;
use crate::engine::components::{self, Component, Update};
use crate::engine::drift;
use crate::engine::fleet::{Fleet, Node, Targets};
use crate::engine::ops;
use crate::front::{Failure, Outcome, open_depot, print_json};

/// `--nodes LIST` or `--cluster C`; neither means every node.
#[derive(Debug, Clone, Args)]
pub struct Which {
    /// Comma-separated node ids.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with = "cluster"
    )]
    nodes: Option<Vec<String>>,
    /// Every member of this cluster.
    #[arg(long, value_name = "C")]
    cluster: Option<String>,
}

impl Which {
    fn pick<'f>(&self, fleet: &'f Fleet) -> Result<Vec<&'f Node>, Failure> {
        if self.nodes.is_none() && self.cluster.is_none() {
            return Ok(fleet.nodes.iter().collect());
        }
        fleet
            .targets(&Targets {
                nodes: self.nodes.clone(),
                cluster: self.cluster.clone(),
                ..Targets::default()
            })
            .map_err(|e| Failure::Input(e.to_string()))
    }
}

#[derive(Debug, Args)]
pub struct ComponentsArgs {
    #[command(flatten)]
    which: Which,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpdatesArgs {
    #[command(flatten)]
    which: Which,
    /// Only updates that apply without a restart (hot).
    #[arg(long)]
    hot_only: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[arg(long, value_name = "C")]
    cluster: String,
    #[arg(long)]
    pub json: bool,
}

/// Unreachable nodes go to stderr and make the exit status 1, after the
/// others were reported.
fn finish(failed: &[String]) -> Outcome {
    for f in failed {
        shout!("patchdeck: {f}");
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

pub fn components(global: &Global, args: ComponentsArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let nodes = args.which.pick(&fleet)?;
    let mut rows: Vec<Component> = Vec::new();
    let mut failed = Vec::new();
    for r in components::inventories(&lab, &nodes, ops::DEFAULT_PARALLEL) {
        match r {
            Ok(inv) => rows.extend(components::components_of(&inv)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if args.json {
        print_json(&rows)?;
    } else {
        say!("{:<14} {:<22} INSTALLED", "NODE", "COMPONENT");
        for r in &rows {
            say!("{:<14} {:<22} {}", r.node, r.component, r.installed);
        }
    }
    finish(&failed)
}

pub fn updates(global: &Global, args: UpdatesArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let nodes = args.which.pick(&fleet)?;
    let depot = open_depot(&lab.depot_dir())?;
    let mut rows: Vec<Update> = Vec::new();
    let mut failed = Vec::new();
    let read = components::inventories(&lab, &nodes, ops::DEFAULT_PARALLEL);
    for r in read {
        match r {
            Ok(inv) => rows.extend(components::updates_for(&depot.patches, &inv, args.hot_only)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if args.json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        say!("no updates available");
    } else {
        say!(
            "{:<14} {:<20} {:<10} {:<10} {:<8} PATCHES",
            "NODE",
            "COMPONENT",
            "INSTALLED",
            "AVAILABLE",
            "RESTART"
        );
        for u in &rows {
            let ids: Vec<&str> = u.patches.iter().map(|p| p.id.as_str()).collect();
            say!(
                "{:<14} {:<20} {:<10} {:<10} {:<8} {}",
                u.node,
                u.component,
                u.installed,
                u.available,
                u.restart.as_str(),
                ids.join(" ")
            );
            for p in &u.problems {
                say!("    problem: {p}");
            }
        }
    }
    finish(&failed)
}

/// `drift --cluster C`: exit 1 when members differ (or cannot be read).
pub fn drift(global: &Global, args: DriftArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let report = drift::cluster_report(&lab, &fleet, &args.cluster).map_err(|e| match e {
        drift::DriftError::UnknownCluster(_) => Failure::Input(e.to_string()),
        other => Failure::Failed(other.to_string()),
    })?;
    if args.json {
        print_json(&report)?;
    } else if report.drifted {
        say!(
            "cluster {}: drifted; members differ ({})",
            report.cluster,
            report.members.join(", ")
        );
        for d in &report.differences {
            say!("  {}", d.describe());
        }
    } else {
        say!(
            "cluster {}: level; {} members on the same release",
            report.cluster,
            report.members.len()
        );
    }
    for u in &report.unreachable {
        shout!("patchdeck: {}: {}", u.node, u.error);
    }
    if report.drifted {
        Err(Failure::Reported(
            1,
            format!(
                "cluster {} has drifted: {} difference(s)",
                report.cluster,
                report.differences.len()
            ),
        ))
    } else if !report.unreachable.is_empty() {
        Err(Failure::Reported(
            1,
            format!("{} member(s) could not be read", report.unreachable.len()),
        ))
    } else {
        Ok(())
    }
}
