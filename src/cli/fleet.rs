//! `patchdeck fleet import --ansible INVENTORY [-o FILE] [--force]`: an
//! Ansible inventory turned into a fleet.toml of ssh nodes (the mapping is
//! the engine's, `engine::ansible`; docs/fleet-format.md describes it).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::engine::ansible::{self, ImportError, Options, WriteError};
use crate::front::{Failure, Outcome, say, shout};

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Write a fleet.toml of ssh nodes from an Ansible inventory (INI or YAML).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The Ansible inventory file, INI or YAML (.yml/.yaml/.json are YAML,
    /// .ini INI, any other name by its content).
    #[arg(long, value_name = "INVENTORY", required = true)]
    ansible: PathBuf,
    /// Write the fleet here (atomically) instead of to standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace FILE when it exists.
    #[arg(long, requires = "output")]
    force: bool,
    /// Data center of hosts the inventory gives none (default: refuse them).
    #[arg(long, value_name = "DC")]
    default_dc: Option<String>,
    /// Organization of hosts the inventory gives none (default: refuse them).
    #[arg(long, value_name = "ORG")]
    default_org: Option<String>,
}

pub fn run(command: FleetCommand) -> Outcome {
    match command {
        FleetCommand::Import(args) => import(args),
    }
}

fn import(args: ImportArgs) -> Outcome {
    let opts = Options {
        default_dc: args.default_dc.filter(|s| !s.is_empty()),
        default_org: args.default_org.filter(|s| !s.is_empty()),
    };
    if let Some(out) = &args.output {
        crate::engine::outputs::refuse_overwriting(out, &[("inventory", &args.ansible)])
            .map_err(|e| Failure::Input(e.to_string()))?;
    }
    // An inventory that cannot be read or used is bad input, like a bad fleet.
    let imported = ansible::import_file(&args.ansible, &opts)
        .map_err(|e: ImportError| Failure::Input(e.to_string()))?;
    for note in &imported.notes {
        shout!("patchdeck: {}: {note}", args.ansible.display());
    }
    let text = imported.to_toml();
    let Some(out) = &args.output else {
        print!("{text}");
        return Ok(());
    };
    ansible::write_fleet(out, &text, args.force).map_err(|e| match e {
        WriteError::Exists(_) => Failure::Input(e.to_string()),
        WriteError::Io { .. } => Failure::Failed(e.to_string()),
    })?;
    let f = &imported.fleet;
    say!(
        "wrote {}: {} node(s), {} data center(s), {} organization(s), {} cluster(s)",
        out.display(),
        f.node.len(),
        f.datacenter.len(),
        f.organization.len(),
        f.cluster.len()
    );
    Ok(())
}
