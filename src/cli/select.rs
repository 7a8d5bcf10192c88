//! `select`: resolve what the operator named into an ordered install list.

use crate::front::say;
use std::path::PathBuf;

use clap::Args;

use super::depot::parse_filters;
use super::global::Global;
use crate::engine::inventory::Inventory;
use crate::engine::select::{Request, resolve};
use crate::front::{Failure, Outcome, open_depot, print_json};

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Patch ids and product specs (PRODUCT or PRODUCT.FILESET).
    #[arg(value_name = "SPEC")]
    specs: Vec<String>,
    /// Narrow autoselection and target matching (repeat: any may match).
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    /// Do not expand product specs into their latest patches.
    #[arg(long)]
    no_autoselect: bool,
    /// Select what fits the software installed on this node.
    #[arg(long, value_name = "NODE", conflicts_with = "inventory")]
    match_target: Option<String>,
    /// Match against an inventory file (JSON: products, components, patches).
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: SelectArgs) -> Outcome {
    let filters = parse_filters(&args.filters)?;
    let inventory = match (&args.match_target, &args.inventory) {
        (Some(node), _) => Some(node_inventory(global, node)?),
        (None, Some(path)) => Some(read_inventory(path)?),
        (None, None) => None,
    };
    if args.specs.is_empty() && inventory.is_none() {
        return Err(Failure::Input(
            "nothing to select: name patches or products, or pass --match-target NODE".into(),
        ));
    }
    let depot = open_depot(&global.depot_dir()?)?;
    depot
        .check_specs(&args.specs)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let narrow = |p: &crate::engine::patch::Patch| filters.matches(p);
    let request = Request {
        specs: args.specs.clone(),
        autoselect: !args.no_autoselect,
        target: inventory.as_ref(),
        narrow: &narrow,
    };
    let selection = resolve(&depot.patches, &request);

    if args.json {
        print_json(&selection)?;
    } else {
        for (n, entry) in selection.patches.iter().enumerate() {
            say!("{:>3}. {:<12} {}", n + 1, entry.id, entry.reason);
        }
        for d in &selection.dropped {
            say!(
                "     {:<12} dropped: superseded by {}",
                d.id,
                d.superseded_by
            );
        }
        for p in &selection.problems {
            say!("problem: {}", p.message);
        }
        if selection.patches.is_empty() && selection.problems.is_empty() {
            say!("nothing selected");
        }
    }
    if selection.problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported(
            1,
            format!("{} problem(s) in the selection", selection.problems.len()),
        ))
    }
}

fn read_inventory(path: &std::path::Path) -> Result<Inventory, Failure> {
    let text = crate::engine::text::read_file(path).map_err(|e| Failure::Input(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::Input(format!(
            "{}:{}:{}: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// The installed software of a fleet node, read from the node itself.
fn node_inventory(global: &Global, node: &str) -> Result<Inventory, Failure> {
    let lab = global.lab();
    let fleet = super::nodes::load_fleet(&lab)?;
    let target = fleet.node(node).ok_or_else(|| {
        Failure::Input(format!(
            "unknown node {node:?}; `patchdeck nodes` lists them"
        ))
    })?;
    crate::engine::ops::connect(&lab, target)
        .and_then(|mut t| t.inventory())
        .map_err(|e| Failure::Failed(e.to_string()))
}
