//! The command line: clap definitions and dispatch. Each verb is a thin
//! function over the engine; output is text for people or JSON for scripts.
//!
//! Exit status: 0 done, 1 the operation failed, 2 bad usage or bad input.

mod bootstrap;
mod cluster;
mod components;
mod depot;
mod doctor;
mod fleet;
mod global;
mod history;
mod key;
mod mirror;
mod node;
pub(crate) mod nodes;
pub(crate) mod offline;
mod rollout;
mod select;
mod shell;
mod sign;
mod trust;
mod windows;

use clap::{CommandFactory, Parser, Subcommand};

use crate::engine::ops::Op;
use crate::front::Outcome;
pub use global::{ConsoleArgs, Global};

#[derive(Debug, Parser)]
#[command(name = "patchdeck", version, about = "A patch console for operators", long_about = None, max_term_width = 80)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Per node, every component (PRODUCT.FILESET) with its installed version.
    Components(components::ComponentsArgs),
    /// Per node and component: the newest version the depot offers and the patches to get there.
    Updates(components::UpdatesArgs),
    /// Whether a cluster's members are on the same release; exit 1 when they differ.
    Drift(components::DriftArgs),
    /// On an offline site: record what each node is and has, for `prepare`.
    Snapshot(offline::SnapshotArgs),
    /// Where the depot is: resolve a selection against a snapshot into one bundle file.
    Prepare(offline::PrepareArgs),
    /// On the site: check a bundle and install it (crash safe, journaled).
    Apply(offline::ApplyArgs),
    /// Damaged databases and node stores, and how to recover them; exit 1 when any.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script: bash, zsh or fish.
    Completions(shell::CompletionsArgs),
    /// Write the manual pages (roff) to standard output or a directory.
    Man(shell::ManArgs),
    /// The lab's journal: every change to a node, who made it and from where.
    History(history::HistoryArgs),
    /// Signing keys (minisign format): `key generate`.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Sign patches or bundles: FILE.minisig beside each.
    Sign(sign::SignArgs),
    /// The lab's trusted keys on nodes: `trust push --nodes LIST`.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Put this patchdeck on ssh nodes where it is missing or another version, verified there.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Each cluster's maintenance windows: open now?, the next openings, closes and cutoffs.
    Windows(windows::WindowsArgs),
    /// Build a fleet.toml from what operators already have (an Ansible inventory).
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
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
        Command::Components(args) => components::components(global, args),
        Command::Updates(args) => components::updates(global, args),
        Command::Drift(args) => components::drift(global, args),
        Command::Snapshot(args) => offline::snapshot(global, args),
        Command::Prepare(args) => offline::prepare(global, args),
        Command::Apply(args) => offline::apply(global, args),
        Command::Doctor(args) => doctor::run(global, args),
        Command::Completions(args) => shell::completions(args, Cli::command()),
        Command::Man(args) => shell::man(args, Cli::command()),
        Command::History(args) => history::run(global, args),
        Command::Key(cmd) => key::run(global, cmd),
        Command::Sign(args) => sign::run(global, args),
        Command::Trust(cmd) => trust::run(global, cmd),
        Command::Bootstrap(args) => bootstrap::run(global, args),
        Command::Windows(args) => windows::run(global, args),
        Command::Fleet(cmd) => fleet::run(cmd),
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
            Command::Components(a) => a.json,
            Command::Updates(a) => a.json,
            Command::Drift(a) => a.json,
            Command::Snapshot(a) => a.json,
            Command::Prepare(a) => a.json,
            Command::Apply(a) => a.json,
            Command::Node(_) | Command::Completions(_) | Command::Man(_) => false,
            Command::Fleet(_) => false,
            Command::Doctor(a) => a.json,
            Command::History(a) => a.json,
            Command::Key(_) | Command::Sign(_) => false,
            Command::Trust(trust::TrustCommand::Push(a)) => a.json,
            Command::Bootstrap(a) => a.json,
            Command::Windows(a) => a.json,
        }
    }
}
