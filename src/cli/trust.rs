//! `depot trust add|list|remove`: the keys the lab trusts (`LAB/trust/`),
//! and `trust push --nodes LIST`: the same keys onto nodes, which then
//! refuse to stage what they did not sign (docs/trust.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::global::Global;
use super::key::key_failure;
use super::nodes::load_fleet;
use crate::engine::fleet::Targets;
use crate::engine::journal::Journal;
use crate::engine::ops;
use crate::engine::trust::{Gate, Keyring, store};
use crate::front::{Failure, Outcome, print_json, say, shout};

#[derive(Debug, Subcommand)]
pub enum DepotTrustCommand {
    /// Trust a public key (NAME.pub): patches it signs may be used.
    Add(AddArgs),
    /// The trusted keys (and the revoked ones), and whether signatures are required.
    List(ListArgs),
    /// Stop trusting a key (by key id or name); what it signed is then refused.
    Remove(RemoveArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The public key file (minisign format), e.g. NAME.pub.
    #[arg(value_name = "NAME.pub")]
    key: PathBuf,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Key id (16 hex digits), name, or the public key file it was added from.
    #[arg(value_name = "KEYID|NAME|KEY.pub")]
    key: String,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Send the lab's trusted keys to nodes (replacing theirs).
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Comma-separated node ids.
    #[arg(long, value_name = "LIST", value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

impl DepotTrustCommand {
    pub fn json(&self) -> bool {
        matches!(self, DepotTrustCommand::List(a) if a.json)
    }
}

pub fn depot_trust(global: &Global, command: DepotTrustCommand) -> Outcome {
    let lab = global.existing_lab()?;
    let dir = lab.trust_dir();
    match command {
        DepotTrustCommand::Add(args) => {
            let (key, already) = store::add(&dir, &args.key).map_err(key_failure)?;
            if already {
                say!("key {} ({}) is already trusted", key.id, key.name);
            } else {
                say!(
                    "trusting key {} ({}) in {}",
                    key.id,
                    key.name,
                    dir.display()
                );
            }
            Ok(())
        }
        DepotTrustCommand::Remove(args) => {
            let key = store::remove(&dir, &args.key).map_err(key_failure)?;
            say!(
                "key {} ({}) removed; what it signed is now refused as revoked",
                key.id,
                key.name
            );
            Ok(())
        }
        DepotTrustCommand::List(args) => {
            let gate = Gate::for_lab(&lab).map_err(|e| Failure::Input(e.to_string()))?;
            list(&gate, args.json)
        }
    }
}

#[derive(Serialize)]
struct KeyRow<'a> {
    id: &'a str,
    name: &'a str,
    revoked: bool,
}

fn list(gate: &Gate, json: bool) -> Outcome {
    let rows: Vec<KeyRow> = rows(&gate.keyring);
    if json {
        return print_json(&serde_json::json!({
            "require_signatures": gate.required,
            "keys": rows,
        }));
    }
    say!(
        "signatures {}",
        if gate.required {
            "required ([trust] require_signatures = true)"
        } else {
            "not required"
        }
    );
    if rows.is_empty() {
        say!("no trusted keys");
    }
    for r in rows {
        say!(
            "{} {}{}",
            r.id,
            r.name,
            if r.revoked { " (revoked)" } else { "" }
        );
    }
    Ok(())
}

fn rows(ring: &Keyring) -> Vec<KeyRow<'_>> {
    ring.keys
        .iter()
        .map(|k| KeyRow {
            id: &k.id,
            name: &k.name,
            revoked: false,
        })
        .chain(ring.revoked.iter().map(|k| KeyRow {
            id: &k.id,
            name: &k.name,
            revoked: true,
        }))
        .collect()
}

pub fn run(global: &Global, command: TrustCommand) -> Outcome {
    match command {
        TrustCommand::Push(args) => push(global, args),
    }
}

fn push(global: &Global, args: PushArgs) -> Outcome {
    let lab = global.existing_lab()?;
    let fleet = load_fleet(&lab)?;
    let gate = Gate::for_lab(&lab).map_err(|e| Failure::Input(e.to_string()))?;
    if gate.keyring.keys.is_empty() {
        return Err(Failure::Input(format!(
            "the lab trusts no key ({}); add one with `patchdeck depot trust add NAME.pub` first",
            lab.trust_dir().display()
        )));
    }
    let nodes = fleet
        .targets(&Targets {
            nodes: Some(args.nodes.clone()),
            ..Targets::default()
        })
        .map_err(|e| Failure::Input(e.to_string()))?;
    // What a node trusts decides what it will install: journaled like any
    // change, intents first, and nothing done if they cannot be written.
    let keys: Vec<String> = gate
        .keyring
        .keys
        .iter()
        .map(|k| format!("{} ({})", k.name, k.id))
        .collect();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let journal = Journal::open(&lab, &command).map_err(|e| Failure::Failed(e.to_string()))?;
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let (results, unrecorded) = journal
        .around(&ids, "-", "trust", || {
            let results: Vec<(String, Result<usize, String>)> =
                ops::for_each_node(&nodes, 4, |node| {
                    let r = ops::connect_to_change(&lab, node)
                        .and_then(|mut t| ops::push_trust(t.as_mut(), &gate.keyring.keys));
                    (node.id.clone(), r.map_err(|e| e.to_string()))
                });
            let outcomes = results
                .iter()
                .map(|(n, r)| match r {
                    Ok(_) => (n.clone(), true, format!("now trusts {}", keys.join(", "))),
                    Err(e) => (n.clone(), false, e.clone()),
                })
                .collect();
            (results, outcomes)
        })
        .map_err(|e| Failure::Failed(format!("{e}; nothing was done")))?;
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(n, r)| match r {
                Ok(k) => serde_json::json!({"node": n, "ok": true, "keys": k}),
                Err(e) => serde_json::json!({"node": n, "ok": false, "error": e}),
            })
            .collect();
        print_json(&rows)?;
    } else {
        for (n, r) in &results {
            match r {
                Ok(k) => say!("{n}: {k} trusted key(s)"),
                Err(e) => shout!("{n}: {e}"),
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Reported(
            1,
            format!("{failed} node(s) did not take the keys"),
        ));
    }
    if let Some(e) = unrecorded {
        return Err(Failure::Failed(format!(
            "the keys were pushed, but the journal could not record it: {e}"
        )));
    }
    Ok(())
}
