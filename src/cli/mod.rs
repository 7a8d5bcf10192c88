//! The command line: clap definitions and dispatch. Each verb is a thin
//! function over the engine; output is text for people or JSON for scripts.
//!
//! Exit status: 0 done, 1 the operation failed, 2 bad usage or bad input.

mod cluster;
mod depot;
mod doctor;
mod history;
mod node;
pub(crate) mod nodes;
mod rollout;
mod select;
mod shell;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::engine::lab::Lab;
use crate::engine::ops::Op;
pub use crate::front::{Failure, Outcome, open_depot, print_json};

#[derive(Debug, Parser)]
#[command(name = "patchdeck", version, about = "A patch console for operators", long_about = None, max_term_width = 80)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The lab directory (default: $PATCHDECK_LAB or the user's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub lab: Option<PathBuf>,
    /// For commands that only read a depot: use this depot directory instead of the lab's.
    #[arg(long, global = true, value_name = "DIR")]
    pub depot: Option<PathBuf>,
    /// What goes to the log: off, error, warn, info, debug or trace
    /// (default warn; RUST_LOG, when set, wins). Verbs log to standard
    /// error; the console logs to LAB/logs/console.log.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// How the console draws; given to the console as plain values.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Colour theme: default, mono, high-contrast, or a user theme name.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// Serial-console profile: ASCII only, no colour, at most one redraw a
    /// second. Chosen by itself for TERM=vt100/vt102/vt220/linux or a
    /// locale that is not UTF-8.
    #[arg(long)]
    pub serial: bool,
    /// Minimum milliseconds between redraws for live updates (default 100; 1000 in the serial profile).
    #[arg(long, value_name = "MS")]
    pub refresh_ms: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a deterministic demo lab (depot, fleet, config).
    Demo(depot::DemoArgs),
    /// Browse, check and fill the depot.
    #[command(subcommand)]
    Depot(depot::DepotCommand),
    /// Build ID.patch from a directory holding PATCH.toml and files/.
    Pack(depot::PackArgs),
    /// Resolve a selection: what would be installed, in which order, and why.
    Select(select::SelectArgs),
    /// The fleet's nodes: id, data center, organization, site, cluster, root, service state.
    Nodes(nodes::NodesArgs),
    /// Copy patches to nodes and verify them there (none -> staged).
    Stage(nodes::StageArgs),
    /// Install staged patches, resolver order, saving what they replace (staged -> applied).
    Install(nodes::InstallArgs),
    /// Restore what an applied patch replaced (applied -> staged).
    Rollback(nodes::TakeBackArgs),
    /// Drop the saved files of applied patches; no rollback after (applied -> committed).
    Commit(nodes::CommitArgs),
    /// Delete a staged patch from nodes (staged -> none).
    Remove(nodes::TakeBackArgs),
    /// Patch states per node.
    List(nodes::ListArgs),
    /// Compare installed files with each node's database; exit 1 on drift.
    Verify(nodes::ListArgs),
    /// Split a cluster into the logical groups a rollout patches one at a time.
    Groups(cluster::GroupsArgs),
    /// Copy patches to the appliances of every data center, with N/M progress.
    Replicate(cluster::ReplicateArgs),
    /// Roll a change out across a cluster group by group; watch, pause, resume, abort.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Serve the node protocol on stdin/stdout (what the console runs on each node).
    Node(node::NodeArgs),
    /// Damaged databases and node stores, and how to recover them; exit 1 when any.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script: bash, zsh or fish.
    Completions(shell::CompletionsArgs),
    /// Write the manual pages (roff) to standard output or a directory.
    Man(shell::ManArgs),
    /// The lab's journal: every change to a node, who made it and from where.
    History(history::HistoryArgs),
}

impl Cli {
    /// Whether the command was asked for JSON (errors then go to stdout too).
    pub fn json(&self) -> bool {
        self.command.as_ref().is_some_and(Command::json)
    }
}

/// Runs one verb.
pub fn dispatch(command: Command, global: &Global) -> Outcome {
    match command {
        Command::Demo(args) => depot::demo(global, args),
        Command::Depot(cmd) => depot::run(global, cmd),
        Command::Pack(args) => depot::pack(args),
        Command::Select(args) => select::run(global, args),
        Command::Nodes(args) => nodes::nodes(global, args),
        Command::Stage(args) => nodes::operate(global, Op::Stage, args),
        Command::Install(args) => nodes::operate(global, Op::Install, args),
        Command::Rollback(args) => nodes::operate(global, Op::Rollback, args),
        Command::Commit(args) => nodes::operate(global, Op::Commit, args),
        Command::Remove(args) => nodes::operate(global, Op::Remove, args),
        Command::List(args) => nodes::list(global, args),
        Command::Verify(args) => nodes::verify(global, args),
        Command::Groups(args) => cluster::groups(global, args),
        Command::Replicate(args) => cluster::replicate(global, args),
        Command::Rollout(cmd) => rollout::run(global, cmd),
        Command::Node(args) => node::run(args),
        Command::Doctor(args) => doctor::run(global, args),
        Command::Completions(args) => shell::completions(args),
        Command::Man(args) => shell::man(args),
        Command::History(args) => history::run(global, args),
    }
}

impl Command {
    /// Whether the command was asked for JSON (errors then go to stdout too).
    fn json(&self) -> bool {
        match self {
            Command::Depot(cmd) => cmd.json(),
            Command::Select(args) => args.json,
            Command::Nodes(a) => a.json,
            Command::List(a) | Command::Verify(a) => a.json,
            Command::Groups(a) => a.json,
            Command::Replicate(a) => a.json,
            Command::Rollout(cmd) => cmd.json(),
            Command::Stage(a) => a.json,
            Command::Install(a) => a.json,
            Command::Rollback(a) | Command::Remove(a) => a.json,
            Command::Commit(a) => a.json,
            Command::Demo(_) | Command::Pack(_) => false,
            Command::Node(_) | Command::Completions(_) | Command::Man(_) => false,
            Command::Doctor(a) => a.json,
            Command::History(a) => a.json,
        }
    }
}

impl Global {
    pub fn lab(&self) -> Lab {
        Lab::new(self.lab.clone().unwrap_or_else(Lab::default_root))
    }

    /// The depot a read-only command works on: `--depot`, else the lab's.
    pub fn depot_dir(&self) -> Result<PathBuf, Failure> {
        if let Some(dir) = &self.depot {
            return Ok(dir.clone());
        }
        let lab = self.lab();
        if !lab.exists() {
            return Err(Failure::Failed(format!(
                "no lab at {}; create one with `patchdeck demo --lab {}` or pass --depot DIR",
                lab.root.display(),
                lab.root.display()
            )));
        }
        Ok(lab.depot_dir())
    }
}
