//! `patchdeck bootstrap --nodes LIST`: put this binary on ssh nodes where
//! it is missing or another version (see `engine::bootstrap`).

use clap::Args;

use super::global::Global;
use crate::engine::bootstrap::{self, Action};
use crate::engine::fleet::{Fleet, Targets};
use crate::engine::ops;
use crate::front::{Failure, Outcome, print_json, say, shout};

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Comma-separated ids of ssh nodes.
    #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Nodes worked on at once.
    #[arg(long, default_value_t = ops::DEFAULT_PARALLEL)]
    parallel: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: BootstrapArgs) -> Outcome {
    let lab = global.existing_lab()?;
    let fleet =
        Fleet::load_in(&lab.fleet_path(), &lab.root).map_err(|e| Failure::Input(e.to_string()))?;
    let nodes = fleet
        .targets(&Targets {
            nodes: Some(args.nodes.clone()),
            ..Targets::default()
        })
        .map_err(|e| Failure::Input(e.to_string()))?;
    // Naming a node bootstrap cannot reach is bad input, refused before
    // anything is copied anywhere.
    let not_ssh: Vec<&str> = nodes
        .iter()
        .filter(|n| n.ssh.is_none())
        .map(|n| n.id.as_str())
        .collect();
    if !not_ssh.is_empty() {
        return Err(Failure::Input(format!(
            "bootstrap puts the binary on ssh nodes only; not reached by ssh: {}",
            not_ssh.join(", ")
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Failed(format!("cannot find this program's own binary: {e}")))?;
    // Putting a program on a host is a change to it: journaled.
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let journal = crate::engine::journal::Journal::open(&lab, &command)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let trusted: Vec<String> = crate::engine::trust::Gate::for_lab(&lab)
        .map(|g| {
            g.keyring
                .keys
                .iter()
                .map(|k| format!("{} ({})", k.name, k.id))
                .collect()
        })
        .unwrap_or_default();
    let (results, unrecorded) = journal
        .around(&ids, "-", "bootstrap", || {
            let results = bootstrap::bootstrap(&lab, &nodes, &exe, args.parallel);
            let outcomes = results
                .iter()
                .zip(&ids)
                .map(|(r, id)| match r {
                    Ok(p) => {
                        let how = match p.action {
                            Action::Present => "already there",
                            Action::Copied => "copied",
                            Action::Replaced => "replaced",
                        };
                        // What the node now trusts is part of the change.
                        let mut said = format!("patchdeck {} at {}: {how}", p.version, p.path);
                        for note in &p.notes {
                            said.push_str(&format!("; {note}"));
                        }
                        if p.notes.iter().any(|n| n.contains("trusted key")) {
                            said.push_str(&format!(" ({})", trusted.join(", ")));
                        }
                        (id.clone(), true, said)
                    }
                    Err(e) => (id.clone(), false, e.to_string()),
                })
                .collect();
            (results, outcomes)
        })
        .map_err(|e| Failure::Failed(format!("{e}; nothing was done")))?;

    let failed = results.iter().filter(|r| r.is_err()).count();
    if args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .zip(&nodes)
            .map(|(r, n)| match r {
                Ok(p) => serde_json::json!({ "ok": true, "id": p.id, "action": p.action, "before": p.before, "version": p.version, "path": p.path, "notes": p.notes }),
                Err(e) => serde_json::json!({ "ok": false, "id": n.id, "error": e.to_string(), "problem": e.kind }),
            })
            .collect();
        print_json(&rows)?;
    } else {
        for r in &results {
            match r {
                Ok(p) => {
                    let what = match (&p.action, &p.before) {
                        (Action::Present, _) => {
                            format!("already has patchdeck {} at {}", p.version, p.path)
                        }
                        (Action::Copied, _) => format!("patchdeck {} put at {}", p.version, p.path),
                        (Action::Replaced, Some(old)) => {
                            format!("patchdeck {old} replaced by {} at {}", p.version, p.path)
                        }
                        (Action::Replaced, None) => {
                            format!("patchdeck {} put at {}", p.version, p.path)
                        }
                    };
                    say!("{:<12} {what}", p.id);
                    for note in &p.notes {
                        say!("{:<12} {note}", "");
                    }
                }
                Err(e) => shout!("patchdeck: {e}"),
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Reported(
            1,
            format!(
                "{failed} of {} node(s) could not be bootstrapped",
                results.len()
            ),
        ));
    }
    if let Some(e) = unrecorded {
        return Err(Failure::Failed(format!(
            "the binary was put in place, but the journal could not record it: {e}"
        )));
    }
    Ok(())
}
