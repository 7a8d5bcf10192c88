//! `patchdeck doctor [--nodes LIST]`: damaged databases and how to recover.

use crate::front::say;
use clap::Args;

use super::global::Global;
use crate::engine::doctor::{self, Finding};
use crate::engine::fleet::Fleet;
use crate::engine::text::neutralise;
use crate::front::{Failure, Outcome, print_json};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Comma-separated node ids (default: every node).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: DoctorArgs) -> Outcome {
    let lab = global.lab();
    if !lab.exists() {
        return Err(Failure::Failed(format!(
            "no lab at {}; create one with `patchdeck demo --lab {}`",
            lab.root.display(),
            lab.root.display()
        )));
    }
    let mut findings = doctor::check_lab(&lab);
    // The fleet as written: a missing root is a finding here, not a refusal.
    let fleet = Fleet::load(&lab.fleet_path()).map_err(|e| Failure::Input(e.to_string()))?;
    if let Some(ids) = &args.nodes
        && let Some(bad) = ids.iter().find(|id| fleet.node(id).is_none())
    {
        return Err(Failure::Input(format!(
            "unknown node {}; `patchdeck nodes` lists them",
            crate::engine::text::quoted(bad)
        )));
    }
    let mut checked = 0;
    for n in &fleet.nodes {
        if args.nodes.as_ref().is_some_and(|ids| !ids.contains(&n.id)) {
            continue;
        }
        let Some(root) = &n.root else {
            continue;
        };
        checked += 1;
        findings.extend(doctor::check_node(&n.id, &doctor::node_root(&lab, root)));
    }
    if args.json {
        print_json(&serde_json::json!({ "nodes_checked": checked, "findings": findings }))?;
    } else {
        for f in &findings {
            print_finding(f);
        }
        say!(
            "{} problem(s); lab database and {checked} local node(s) checked",
            findings.len()
        );
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported(
            1,
            format!("{} problem(s) found", findings.len()),
        ))
    }
}

fn print_finding(f: &Finding) {
    say!("{}: {}", neutralise(&f.subject), neutralise(&f.path));
    say!("  problem:  {}", neutralise(&f.problem));
    say!("  recovery: {}", neutralise(&f.recovery));
}
