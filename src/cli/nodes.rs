//! `nodes`, `stage`, `install`, `rollback`, `commit`, `remove`, `list`:
//! the fleet's nodes and the patch lifecycle on them.

use crate::front::{say, shout};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;

use super::global::Global;
use crate::engine::fleet::{Fleet, Targets};
use crate::engine::guard;
use crate::engine::journal::{self, Journal};
use crate::engine::lab::Lab;
use crate::engine::node::{Listed, Node, STORE_DIR, listed_state};
use crate::engine::ops::{self, Job, Op};
use crate::front::{Failure, Outcome, open_depot, print_json};

/// Which nodes: `--nodes a,b`, `--cluster C`, `--org O`, optionally `--dc D|all`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Comma-separated node ids.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Every member of this cluster.
    #[arg(long, value_name = "C")]
    cluster: Option<String>,
    /// Every node of this organization.
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// Only nodes in this data center (`all` for every one).
    #[arg(long, value_name = "DC")]
    dc: Option<String>,
}

impl TargetArgs {
    fn targets(&self) -> Targets {
        Targets {
            nodes: self.nodes.clone(),
            cluster: self.cluster.clone(),
            org: self.org.clone(),
            dc: self.dc.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Connect to every node: whether it is reachable, and its patchdeck
    /// version and protocol; exit 1 when any node is not fit to work on.
    #[arg(long)]
    pub check: bool,
    /// With --check: record the host key of an ssh node not yet in
    /// known_hosts (OpenSSH's accept-new; a changed key is still refused).
    #[arg(long, requires = "check")]
    pub accept_new: bool,
    /// Comma-separated node ids (default: every node).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub nodes: Option<Vec<String>>,
    #[arg(long)]
    pub json: bool,
}

/// What every lifecycle verb was asked, once its own flags are read: the
/// flags a verb does not have keep their defaults.
#[derive(Debug)]
pub struct OpArgs {
    patches: Vec<String>,
    targets: TargetArgs,
    no_save: bool,
    require_replicated: bool,
    parallel: usize,
    all_at_once: bool,
    reason: Option<String>,
    pub json: bool,
}

/// `--all-at-once --reason TEXT`, for the verbs that take members of a
/// cluster out of service.
#[derive(Debug, Args)]
pub struct AllAtOnceArgs {
    /// Allow several members of one cluster at once (normally refused: use
    /// `rollout start`, which goes group by group). Needs --reason.
    #[arg(long, requires = "reason")]
    all_at_once: bool,
    /// Why --all-at-once is needed; journaled with the operator's name.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct StageArgs {
    /// Patch ids or product specs to copy to the nodes and verify there.
    #[arg(required = true, value_name = "PATCH")]
    patches: Vec<String>,
    #[command(flatten)]
    targets: TargetArgs,
    /// Nodes worked on at once.
    #[arg(long, default_value_t = ops::DEFAULT_PARALLEL)]
    parallel: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Patch ids or product specs, resolved against each node's inventory.
    #[arg(required = true, value_name = "PATCH")]
    patches: Vec<String>,
    #[command(flatten)]
    targets: TargetArgs,
    /// Do not keep the replaced files (straight to committed, no rollback).
    #[arg(long)]
    no_save: bool,
    /// Refuse when the patches are not staged and verified on every target
    /// (default: warn, skip those nodes, install on the rest).
    #[arg(long)]
    require_replicated: bool,
    #[command(flatten)]
    all_at_once: AllAtOnceArgs,
    /// Nodes worked on at once.
    #[arg(long, default_value_t = ops::DEFAULT_PARALLEL)]
    parallel: usize,
    #[arg(long)]
    pub json: bool,
}

/// `rollback` and `remove`: patch ids, targets, and the cluster override.
#[derive(Debug, Args)]
pub struct TakeBackArgs {
    /// Patch ids.
    #[arg(required = true, value_name = "PATCH")]
    patches: Vec<String>,
    #[command(flatten)]
    targets: TargetArgs,
    #[command(flatten)]
    all_at_once: AllAtOnceArgs,
    /// Nodes worked on at once.
    #[arg(long, default_value_t = ops::DEFAULT_PARALLEL)]
    parallel: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Patch ids.
    #[arg(required = true, value_name = "PATCH")]
    patches: Vec<String>,
    #[command(flatten)]
    targets: TargetArgs,
    /// Nodes worked on at once.
    #[arg(long, default_value_t = ops::DEFAULT_PARALLEL)]
    parallel: usize,
    #[arg(long)]
    pub json: bool,
}

impl OpArgs {
    fn plain(patches: Vec<String>, targets: TargetArgs, parallel: usize, json: bool) -> OpArgs {
        OpArgs {
            patches,
            targets,
            no_save: false,
            require_replicated: false,
            parallel,
            all_at_once: false,
            reason: None,
            json,
        }
    }
}

impl From<StageArgs> for OpArgs {
    fn from(a: StageArgs) -> OpArgs {
        OpArgs::plain(a.patches, a.targets, a.parallel, a.json)
    }
}

impl From<InstallArgs> for OpArgs {
    fn from(a: InstallArgs) -> OpArgs {
        OpArgs {
            no_save: a.no_save,
            require_replicated: a.require_replicated,
            all_at_once: a.all_at_once.all_at_once,
            reason: a.all_at_once.reason,
            ..OpArgs::plain(a.patches, a.targets, a.parallel, a.json)
        }
    }
}

impl From<TakeBackArgs> for OpArgs {
    fn from(a: TakeBackArgs) -> OpArgs {
        OpArgs {
            all_at_once: a.all_at_once.all_at_once,
            reason: a.all_at_once.reason,
            ..OpArgs::plain(a.patches, a.targets, a.parallel, a.json)
        }
    }
}

impl From<CommitArgs> for OpArgs {
    fn from(a: CommitArgs) -> OpArgs {
        OpArgs::plain(a.patches, a.targets, a.parallel, a.json)
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Comma-separated node ids (default: every node).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    #[arg(long)]
    pub json: bool,
}

pub fn load_fleet(lab: &Lab) -> Result<Fleet, Failure> {
    if !lab.exists() {
        return Err(Failure::Failed(format!(
            "no lab at {}; create one with `patchdeck demo --lab {}`",
            lab.root.display(),
            lab.root.display()
        )));
    }
    Fleet::load_in(&lab.fleet_path(), &lab.root).map_err(|e| Failure::Input(e.to_string()))
}

/// A row of `nodes`.
#[derive(Debug, Serialize)]
struct NodeRow<'a> {
    id: &'a str,
    dc: &'a str,
    org: &'a str,
    site: &'a str,
    cluster: Option<&'a str>,
    member: Option<&'a str>,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    /// An ssh node's destination (`user@host:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh: Option<&'a str>,
    /// `up`, `down`, or `unknown` (remote, or no store yet).
    service: String,
}

/// The nodes `--nodes` names (all by default), in fleet order.
fn chosen<'a>(
    fleet: &'a Fleet,
    nodes: &Option<Vec<String>>,
) -> Result<Vec<&'a crate::engine::fleet::Node>, Failure> {
    match nodes {
        Some(list) => fleet
            .targets(&Targets {
                nodes: Some(list.clone()),
                ..Targets::default()
            })
            .map_err(|e| Failure::Input(e.to_string())),
        None => Ok(fleet.nodes.iter().collect()),
    }
}

/// `nodes --check`: every chosen node's reachability, version, protocol.
fn check(global: &Global, args: &NodesArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let nodes = chosen(&fleet, &args.nodes)?;
    let checks = crate::engine::reach::check(&lab, &nodes, args.accept_new, ops::DEFAULT_PARALLEL);
    let bad = checks.iter().filter(|c| !c.ok()).count();
    if args.json {
        print_json(&checks)?;
    } else {
        say!(
            "{:<12} {:<7} {:<9} {:<9} {:<8} PROBLEM",
            "NODE",
            "VIA",
            "REACHABLE",
            "VERSION",
            "PROTOCOL"
        );
        for c in &checks {
            say!(
                "{:<12} {:<7} {:<9} {:<9} {:<8} {}",
                c.id,
                c.via,
                if c.reachable { "yes" } else { "no" },
                c.version.as_deref().unwrap_or("-"),
                c.protocol.map(|p| p.to_string()).unwrap_or("-".into()),
                c.problem
                    .map(|p| serde_json::to_value(p)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default())
                    .unwrap_or("-".into())
            );
        }
        for e in checks.iter().filter_map(|c| c.error.as_deref()) {
            shout!("patchdeck: {e}");
        }
    }
    if bad > 0 {
        return Err(Failure::Reported(
            1,
            format!(
                "{bad} of {} node(s) cannot be worked on; see above",
                checks.len()
            ),
        ));
    }
    Ok(())
}

pub fn nodes(global: &Global, args: NodesArgs) -> Outcome {
    if args.check {
        return check(global, &args);
    }
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let rows: Vec<NodeRow> = chosen(&fleet, &args.nodes)?
        .into_iter()
        .map(|n| {
            let root = n.root.as_deref().map(|r| lab.resolve_root(r));
            let service = root
                .as_ref()
                .filter(|r| r.join(STORE_DIR).join("ipd.sqlite").is_file())
                .and_then(|r| Node::open(r, &n.id).ok())
                .and_then(|node| node.service().ok())
                .map(|s| s.state.as_str().to_string())
                .unwrap_or_else(|| "unknown".to_string());
            NodeRow {
                id: &n.id,
                dc: &n.dc,
                org: &n.org,
                site: &n.site,
                cluster: n.cluster.as_deref(),
                member: n.member.as_deref(),
                role: match n.role {
                    crate::engine::fleet::Role::Primary => "primary",
                    crate::engine::fleet::Role::Secondary => "secondary",
                },
                root: root.map(|r| std::path::absolute(&r).unwrap_or(r).display().to_string()),
                command: n.command.as_deref(),
                ssh: n.ssh.as_deref(),
                service,
            }
        })
        .collect();
    if args.json {
        return print_json(&rows);
    }
    say!(
        "{:<12} {:<6} {:<9} {:<4} {:<8} {:<9} {:<8} REACHED BY",
        "NODE",
        "DC",
        "ORG",
        "SITE",
        "CLUSTER",
        "ROLE",
        "SERVICE"
    );
    for r in &rows {
        say!(
            "{:<12} {:<6} {:<9} {:<4} {:<8} {:<9} {:<8} {}",
            r.id,
            r.dc,
            r.org,
            r.site,
            r.cluster.unwrap_or("-"),
            r.role,
            r.service,
            r.root
                .clone()
                .or(r.command.map(String::from))
                .or(r.ssh.map(|d| format!("ssh {d}")))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `stage` and the four lifecycle verbs.
pub fn operate(global: &Global, op: Op, args: impl Into<OpArgs>) -> Outcome {
    let args: OpArgs = args.into();
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let targets = args.targets.targets();
    if targets.is_empty() {
        return Err(Failure::Input(format!(
            "{} needs targets: --nodes LIST, --cluster C or --org ORG [--dc DC]",
            op.as_str()
        )));
    }
    let nodes = fleet
        .targets(&targets)
        .map_err(|e| Failure::Input(e.to_string()))?;
    if nodes.is_empty() {
        return Err(Failure::Input("no node matches those targets".into()));
    }
    let depot = open_depot(&lab.depot_dir())?;
    let gate =
        crate::engine::trust::Gate::for_lab(&lab).map_err(|e| Failure::Input(e.to_string()))?;
    if matches!(op, Op::Stage | Op::Install) {
        depot
            .check_specs(&args.patches)
            .map_err(|e| Failure::Input(e.to_string()))?;
        // A named patch the lab's policy refuses is refused before any node
        // is touched; patches a product spec brings in are checked per node.
        let named = args.patches.iter().filter(|s| depot.get(s).is_some());
        gate.may_use_all(&depot, named.map(String::as_str))
            .map_err(|e| Failure::Input(e.to_string()))?;
    }
    if matches!(op, Op::Rollback | Op::Commit | Op::Remove) {
        // A patch may have left the depot and still be on nodes; an id
        // neither place knows is bad input, not a failed step.
        let elsewhere: Vec<String> = args
            .patches
            .iter()
            .filter(|p| depot.get(p).is_none())
            .cloned()
            .collect();
        if !elsewhere.is_empty() {
            let unknown = ops::unknown_on_every_node(&lab, &nodes, &elsewhere, args.parallel);
            if !unknown.is_empty() {
                return Err(Failure::Input(format!(
                    "unknown patch id(s) {}: not in the depot {} and not on any of the {} target node(s)",
                    unknown.join(", "),
                    lab.depot_dir().display(),
                    nodes.len()
                )));
            }
        }
    }
    // Cluster guards: decided in the engine, the same for every front end.
    if op != Op::Stage {
        let conn = crate::engine::console::open(&lab)
            .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?;
        guard::rollout_holds(&conn, op, &nodes).map_err(|e| Failure::Failed(e.to_string()))?;
    }
    let override_reason = match (args.all_at_once, args.reason.as_deref()) {
        (true, Some(r)) if !r.trim().is_empty() => Some(r.trim().to_string()),
        (true, _) => {
            return Err(Failure::Input(
                "--all-at-once needs --reason TEXT, which is journaled".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(Failure::Input("--reason goes with --all-at-once".into()));
        }
        (false, None) => None,
    };
    if override_reason.is_none() {
        guard::never_all_at_once(op, &args.patches, &nodes, &depot)
            .map_err(|e| Failure::Failed(e.to_string()))?;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let journal = Journal::open(&lab, &command).map_err(|e| Failure::Failed(e.to_string()))?;
    let journal = std::sync::Mutex::new(journal);
    // A change that cannot be journaled is a failure, not a warning.
    let journal_failures = std::sync::Mutex::new(Vec::<String>::new());
    let write = |f: &dyn Fn(&Journal) -> Result<(), crate::engine::journal::JournalError>| {
        let r = match journal.lock() {
            Ok(j) => f(&j).map_err(|e| e.to_string()),
            Err(_) => Err("journal: a writer panicked".to_string()),
        };
        if let Err(e) = r {
            shout!("patchdeck: {e}");
            if let Ok(mut v) = journal_failures.lock() {
                v.push(e);
            }
        }
    };
    let live = !args.json;
    let bar = crate::front::progress(
        (nodes.len() * args.patches.len().max(1)) as u64,
        op.as_str(),
        args.json,
    );
    let seen = |o: &ops::Outcome| {
        write(&|j| j.record(&o.node, &o.patch, o.op.as_str(), o.ok, &o.message));
        bar.inc(1);
        if live {
            let mark = if o.ok {
                "ok  "
            } else if o.skipped {
                "SKIP"
            } else {
                "FAIL"
            };
            bar.suspend(|| {
                say!(
                    "{mark} {:<12} {:<10} {:<8} {}",
                    o.node,
                    o.patch,
                    o.op.as_str(),
                    o.message
                )
            });
        }
    };
    // Install goes only where replication is complete, and says where not.
    let mut skipped = Vec::new();
    let mut nodes = nodes;
    // What each node's intent names: an install names every patch its plan
    // puts on that node, prerequisites too, so a process that dies between
    // them leaves a row for each change it made.
    let mut intent_patches: HashMap<String, String> = HashMap::new();
    if op == Op::Install {
        let plans = ops::install_plans(&lab, &depot, &nodes, &args.patches, args.parallel);
        let mut not_ready = Vec::new();
        for (node, plan) in nodes.iter().zip(plans) {
            let Ok(plan) = plan else { continue };
            if !plan.missing.is_empty() {
                not_ready.push((node.id.clone(), plan.missing));
                continue;
            }
            let mut named = plan.install;
            for p in &args.patches {
                if !named.contains(p) {
                    named.push(p.clone());
                }
            }
            intent_patches.insert(node.id.clone(), named.join(","));
        }
        if !not_ready.is_empty() {
            let list: Vec<String> = not_ready
                .iter()
                .map(|(n, m)| format!("{n} (missing {})", m.join(",")))
                .collect();
            if args.require_replicated {
                return Err(Failure::Failed(format!(
                    "replication is incomplete on {} node(s): {}; run `patchdeck replicate` first",
                    not_ready.len(),
                    list.join(", ")
                )));
            }
            shout!(
                "patchdeck: warning: not staged and verified on {} node(s), skipping them: {}",
                not_ready.len(),
                list.join(", ")
            );
            nodes.retain(|n| !not_ready.iter().any(|(id, _)| id == &n.id));
            for (node, missing) in not_ready {
                let why = format!(
                    "node {node}: skipped: {} not staged and verified here",
                    missing.join(", ")
                );
                let o = ops::Outcome::not_ready(op, &node, &missing.join(","), why);
                seen(&o);
                skipped.push(o);
            }
        }
    }
    // The intents go in before any node is touched; if they cannot be
    // written, nothing is done.
    let mut intents = Vec::new();
    {
        let j = journal
            .lock()
            .map_err(|_| Failure::Failed("journal: a writer panicked".into()))?;
        let patches = args.patches.join(",");
        for n in &nodes {
            let named = intent_patches.get(&n.id).unwrap_or(&patches);
            let id = j
                .intend(&n.id, named, op.as_str())
                .map_err(|e| Failure::Failed(format!("{e}; nothing was done")))?;
            intents.push(id);
            if let Some(reason) = &override_reason {
                j.record(
                    &n.id,
                    &patches,
                    "all_at_once",
                    true,
                    &format!(
                        "{} on several members of a cluster at once: {reason}",
                        op.as_str()
                    ),
                )
                .map_err(|e| Failure::Failed(format!("{e}; nothing was done")))?;
            }
        }
    }
    let job = Job {
        op,
        specs: &args.patches,
        depot: &depot,
        save: !args.no_save,
        gate: &gate,
    };
    let mut outcomes = ops::run(&lab, &nodes, &job, args.parallel, &seen);
    bar.finish_and_clear();
    write(&|j| j.settle(&intents));
    let skipped_count = skipped.len();
    let skipped_nodes: Vec<String> = skipped.iter().map(|o| o.node.clone()).collect();
    outcomes.extend(skipped);
    let failed = outcomes.iter().filter(|o| !o.ok && !o.skipped).count();
    if args.json {
        print_json(&outcomes)?;
    } else {
        // Each node once, with the strongest restart it now waits for.
        let mut restarts: std::collections::BTreeMap<&str, crate::engine::manifest::Restart> =
            Default::default();
        for o in outcomes
            .iter()
            .filter(|o| o.ok && o.restart != crate::engine::manifest::Restart::None)
        {
            let r = restarts.entry(o.node.as_str()).or_default();
            *r = (*r).max(o.restart);
        }
        let restarts: Vec<String> = restarts.iter().map(|(n, r)| format!("{n} ({r})")).collect();
        if !restarts.is_empty() {
            say!("restart needed on: {}", restarts.join(", "));
        }
        say!(
            "{} of {} step(s) succeeded on {} node(s){}",
            outcomes.len() - failed - skipped_count,
            outcomes.len() - skipped_count,
            nodes.len(),
            if skipped_count > 0 {
                format!("; {skipped_count} node(s) skipped")
            } else {
                String::new()
            }
        );
    }
    let journal_failures = journal_failures.into_inner().unwrap_or_default();
    if failed > 0 {
        Err(Failure::Reported(
            1,
            format!("{failed} step(s) failed; see above"),
        ))
    } else if nodes.is_empty() && skipped_count > 0 {
        // Nothing done anywhere is not success.
        Err(Failure::Reported(
            1,
            format!(
                "nothing was installed: every target node was skipped ({}); replicate the patches there first",
                skipped_nodes.join(", ")
            ),
        ))
    } else if let Some(first) = journal_failures.first() {
        Err(Failure::Failed(format!(
            "the change was made, but the journal could not record it: {first}"
        )))
    } else {
        Ok(())
    }
}

/// A row of `list`.
#[derive(Debug, Serialize)]
struct ListRow {
    node: String,
    #[serde(flatten)]
    entry: Listed,
    /// The state as the text shows it (`superseded, committed`).
    state_text: String,
    /// Who applied it (`user@host`), when the journal knows.
    by: Option<String>,
}

/// A node `list` or `verify` could not read, as its `--json` output
/// reports it beside the rows of the others.
#[derive(Serialize)]
struct Unread {
    node: String,
    reachable: bool,
    error: String,
}

/// The rows, then one object per node that could not be read: the JSON of
/// a command that reached only some of its nodes says which it missed.
fn rows_and_unread(rows: &impl Serialize, failed: &[Unread]) -> Outcome {
    let mut all = match serde_json::to_value(rows) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => Vec::new(),
    };
    all.extend(failed.iter().filter_map(|f| serde_json::to_value(f).ok()));
    print_json(&all)
}

/// Reads something from each node named by `--nodes` (all by default):
/// one row per item, in node order, and the nodes that could not be read.
fn from_each_node<T, R: Send>(
    global: &Global,
    nodes: &Option<Vec<String>>,
    read: impl Fn(
        &mut dyn crate::engine::transport::Transport,
    ) -> Result<Vec<T>, crate::engine::node::NodeError>
    + Sync,
    row: impl Fn(String, T) -> R,
) -> Result<(Vec<R>, Vec<Unread>, usize), Failure>
where
    T: Send,
{
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let chosen = match nodes {
        Some(list) => fleet
            .targets(&Targets {
                nodes: Some(list.clone()),
                ..Targets::default()
            })
            .map_err(|e| Failure::Input(e.to_string()))?,
        None => fleet.nodes.iter().collect(),
    };
    let results = ops::for_each_node(&chosen, ops::DEFAULT_PARALLEL, |n| {
        ops::connect(&lab, n).and_then(|mut t| {
            let items = read(t.as_mut())?;
            Ok((n.id.clone(), items, ops::recoveries(t.as_mut())))
        })
    });
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut recovered = Vec::new();
    for r in results {
        match r {
            Ok((node, items, notes)) => {
                rows.extend(items.into_iter().map(|item| row(node.clone(), item)));
                recovered.extend(notes);
            }
            Err(e) => failed.push(Unread {
                node: e.node.clone(),
                reachable: false,
                error: e.to_string(),
            }),
        }
    }
    // Opening a node settles what a crash interrupted there: a change,
    // so it is journaled even by a verb that only reads.
    if !recovered.is_empty() {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let journal = Journal::open(&lab, &command).map_err(|e| Failure::Failed(e.to_string()))?;
        for o in &recovered {
            shout!("patchdeck: {}", o.message);
            journal
                .record(&o.node, &o.patch, o.op.as_str(), o.ok, &o.message)
                .map_err(|e| Failure::Failed(e.to_string()))?;
        }
    }
    Ok((rows, failed, chosen.len()))
}

pub fn list(global: &Global, args: ListArgs) -> Outcome {
    let lab = global.lab();
    let (rows, failed, _) = from_each_node(
        global,
        &args.nodes,
        |t| t.list(),
        |node, entry| ListRow {
            node,
            state_text: listed_state(entry.state, entry.committed),
            entry,
            by: None,
        },
    )?;
    // Who applied each patch, as the lab's journal says (best effort: a
    // lab without a console database yet has no answer).
    let mut rows = rows;
    if let Ok(conn) = crate::engine::console::open(&lab) {
        for r in rows.iter_mut().filter(|r| r.entry.state.is_installed()) {
            r.by = journal::applied_by(&conn, &r.node, &r.entry.patch)
                .ok()
                .flatten();
        }
    }
    if args.json {
        rows_and_unread(&rows, &failed)?;
    } else {
        say!(
            "{:<12} {:<10} {:<21} {:<16} {:<7} BY",
            "NODE",
            "PATCH",
            "STATE",
            "APPLIED",
            "RESTART"
        );
        for r in &rows {
            let e = &r.entry;
            // Minutes are enough here; --json has the full time.
            let applied = e
                .applied_at
                .as_deref()
                .map(|t| t.chars().take(16).collect::<String>().replace('T', " "))
                .unwrap_or_else(|| "-".into());
            say!(
                "{:<12} {:<10} {:<21} {:<16} {:<7} {}",
                r.node,
                e.patch,
                r.state_text,
                applied,
                e.pending_restart.map(|r| r.as_str()).unwrap_or("-"),
                r.by.as_deref().unwrap_or("-"),
            );
        }
    }
    for f in &failed {
        shout!("patchdeck: {}", f.error);
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

/// A drifted file on a node.
#[derive(Debug, Serialize)]
struct DriftRow {
    node: String,
    #[serde(flatten)]
    drift: crate::engine::node::Drift,
}

/// `verify`: files on each node against what its database says; exit 1 on drift.
pub fn verify(global: &Global, args: ListArgs) -> Outcome {
    let (rows, failed, count) = from_each_node(
        global,
        &args.nodes,
        |t| t.verify(),
        |node, drift| DriftRow { node, drift },
    )?;
    let unmet = rows.iter().filter(|r| r.drift.requires.is_some()).count();
    if args.json {
        rows_and_unread(&rows, &failed)?;
    } else {
        for r in &rows {
            let d = &r.drift;
            if let Some(req) = &d.requires {
                say!(
                    "{:<12} {} requires {req}, which nothing installed meets any more",
                    r.node,
                    d.patch
                );
                continue;
            }
            let short = |h: &str| h.chars().take(12).collect::<String>();
            let actual = d.actual.as_deref().map(short).unwrap_or("missing".into());
            say!(
                "{:<12} {:<40} written by {:<10} expected {} found {actual}",
                r.node,
                d.path,
                d.patch,
                short(&d.expected)
            );
        }
        say!(
            "{} drifted file(s) and {} unmet requirement(s) on {} node(s) checked",
            rows.len() - unmet,
            unmet,
            count - failed.len()
        );
    }
    for f in &failed {
        shout!("patchdeck: {}", f.error);
    }
    match (rows.is_empty(), failed.is_empty()) {
        (true, true) => Ok(()),
        (false, _) => Err(Failure::Reported(
            1,
            format!(
                "{} file(s) differ from the database, {unmet} requirement(s) no longer met",
                rows.len() - unmet
            ),
        )),
        (true, false) => Err(Failure::Reported(
            1,
            format!("{} node(s) could not be read", failed.len()),
        )),
    }
}
