//! Cluster verbs: `groups` (the partition a rollout uses).

use clap::Args;

use super::nodes::load_fleet;
use super::{Failure, Global, Outcome, print_json};
use crate::engine::groups;

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
    let partition =
        groups::partition(&fleet, &args.cluster, args.groups).map_err(Failure::Input)?;
    if args.json {
        return print_json(&partition);
    }
    println!(
        "cluster {}: {} groups",
        partition.cluster,
        partition.groups.len()
    );
    for g in &partition.groups {
        println!("  {}: {}", g.name, g.members.join(" "));
    }
    Ok(())
}
