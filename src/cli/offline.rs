//! `snapshot`, `prepare`, `apply`: patching an offline site (see
//! engine::offline). Front end only: gathers the nodes and files, renders.

use crate::front::{say, shout};
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::global::Global;
use super::nodes::load_fleet;
use crate::engine::fleet::Targets;
use crate::engine::journal::Journal;
use crate::engine::offline::{self, Applied, Match, OfflineError, SelectionRequest, Snapshot};
use crate::engine::ops;
use crate::engine::transport::{Local, Transport};
use crate::front::{Failure, Outcome, open_depot, print_json};

/// The nodes on the site: fleet nodes, or one bare node root.
#[derive(Debug, Args)]
pub struct SiteArgs {
    /// Comma-separated node ids from the lab's fleet.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        required_unless_present = "root",
        conflicts_with = "root"
    )]
    nodes: Option<Vec<String>>,
    /// A bare node: the root directory it patches.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// With --root: the node's name in messages (default: the directory's name).
    #[arg(long, value_name = "NAME", requires = "root")]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    site: SiteArgs,
    /// Where to write the snapshot.
    #[arg(short = 'o', long = "output", value_name = "SNAPSHOT")]
    output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The snapshot taken on the site.
    #[arg(value_name = "SNAPSHOT")]
    snapshot: PathBuf,
    /// Patch ids or product specs (default: everything that applies to each node).
    #[arg(value_name = "SPEC")]
    specs: Vec<String>,
    /// Narrow the selection (repeatable; any filter may match).
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    /// Only patches that apply without a restart.
    #[arg(long)]
    hot_only: bool,
    /// Where to write the bundle.
    #[arg(short = 'o', long = "output", value_name = "BUNDLE")]
    output: PathBuf,
    /// Sign the bundle with this secret key: BUNDLE.minisig beside it.
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
    /// Read the key's passphrase from the first line of this file instead of asking.
    #[arg(long, value_name = "F", requires = "key")]
    passphrase_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The bundle prepared for this site.
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// Comma-separated node ids from the lab's fleet.
    #[arg(long, value_name = "LIST", value_delimiter = ',', required_unless_present_any = ["root", "cluster"], conflicts_with_all = ["root", "cluster"])]
    nodes: Option<Vec<String>>,
    /// A bare node: the root directory it patches.
    #[arg(long, value_name = "DIR", conflicts_with = "cluster")]
    root: Option<PathBuf>,
    /// With --root: the node's name in messages (default: the directory's name).
    #[arg(long, value_name = "NAME", requires = "root")]
    name: Option<String>,
    /// Every member of this cluster, group by group through a rollout.
    #[arg(long, value_name = "C")]
    cluster: Option<String>,
    /// With --cluster: roll out even when the members differ (see `patchdeck drift`).
    #[arg(long, requires = "cluster")]
    allow_drift: bool,
    /// On a node changed since its snapshot: re-plan on what it has now.
    #[arg(long)]
    rebase: bool,
    #[arg(long)]
    pub json: bool,
}

/// Each site node's id, and its transport or why it could not be opened.
type Opened = Vec<(String, Result<Box<dyn Transport>, String>)>;

/// Opens the site's nodes for reading or applying (offline nodes included:
/// this is the site itself).
fn open_site(global: &Global, site: &SiteArgs) -> Result<Opened, Failure> {
    if let Some(root) = &site.root {
        let name = site.name.clone().unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "node".into())
        });
        let t = Local::open(root, &name).map_err(|e| Failure::Failed(e.to_string()))?;
        return Ok(vec![(name, Ok(Box::new(t) as Box<dyn Transport>))]);
    }
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let nodes = fleet
        .targets(&Targets {
            nodes: site.nodes.clone(),
            ..Targets::default()
        })
        .map_err(|e| Failure::Input(e.to_string()))?;
    Ok(nodes
        .iter()
        .map(|n| {
            (
                n.id.clone(),
                ops::connect(&lab, n).map_err(|e| e.to_string()),
            )
        })
        .collect())
}

pub fn snapshot(global: &Global, args: SnapshotArgs) -> Outcome {
    // A snapshot written into the node's own store would change what it
    // describes.
    if let Some(root) = &args.site.root {
        let store = root.join(crate::engine::node::paths::STORE_DIR);
        let out_dir = args
            .output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if let (Ok(o), Ok(s)) = (
            std::fs::canonicalize(out_dir),
            std::fs::canonicalize(&store),
        ) && o.starts_with(&s)
        {
            return Err(Failure::Input(format!(
                "{}: is inside the node's store {}; expected an output outside it",
                args.output.display(),
                store.display()
            )));
        }
    }
    let mut nodes = Vec::new();
    for (_, t) in open_site(global, &args.site)? {
        let mut t = t.map_err(Failure::Failed)?;
        nodes.push(offline::snapshot_node(t.as_mut()).map_err(|e| Failure::Failed(e.to_string()))?);
    }
    let snap = Snapshot::new(nodes);
    snap.write(&args.output)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    if args.json {
        print_json(&snap)?;
    } else {
        for n in &snap.nodes {
            say!(
                "{}: environment {} on {}; {} components, {} patches known",
                n.inventory.node,
                n.environment.id,
                n.environment.host,
                n.inventory.components.len(),
                n.inventory.patches.len()
            );
        }
        say!("snapshot written to {}", args.output.display());
    }
    Ok(())
}

pub fn prepare(global: &Global, args: PrepareArgs) -> Outcome {
    let sig = crate::engine::trust::keys::sig_path(&args.output);
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("snapshot", &args.snapshot)];
    inputs.extend(args.key.as_deref().map(|k| ("key", k)));
    inputs.extend(
        args.passphrase_file
            .as_deref()
            .map(|f| ("passphrase file", f)),
    );
    for out in [args.output.as_path(), sig.as_path()] {
        crate::engine::outputs::refuse_overwriting(out, &inputs)
            .map_err(|e| Failure::Input(e.to_string()))?;
    }
    let snap = Snapshot::read(&args.snapshot).map_err(|e| Failure::Input(e.to_string()))?;
    let filters = crate::engine::filter::FilterList::parse_all(&args.filters)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let depot = open_depot(&global.depot_dir()?)?;
    let request = SelectionRequest {
        specs: args.specs,
        filters: filters.filters().iter().map(|f| f.to_string()).collect(),
        hot_only: args.hot_only,
    };
    let mut prepared = offline::prepare(&snap, &depot, request).map_err(|e| match e {
        OfflineError::Selection { .. } => Failure::Failed(e.to_string()),
        other => Failure::Failed(other.to_string()),
    })?;
    // The preparing lab's trust rule over every patch the bundle carries;
    // a bare --depot has no policy.
    if global.depot.is_none() {
        crate::engine::trust::Gate::for_lab(&global.lab())
            .map_err(|e| Failure::Input(e.to_string()))?
            .may_use_all(&depot, prepared.files.keys().map(String::as_str))
            .map_err(|e| Failure::Input(e.to_string()))?;
    }
    // The key is opened (and its passphrase asked) before anything is written.
    let key = match &args.key {
        Some(k) => Some(super::sign::open_secret(
            k,
            args.passphrase_file.as_deref(),
        )?),
        None => None,
    };
    offline::write_bundle(&args.output, &mut prepared, &depot)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    match &key {
        Some(k) => {
            let sig = offline::signature::sign_bundle(k, &args.output)
                .map_err(super::key::key_failure)?;
            if !args.json {
                say!("bundle signed with key {}: {}", k.id, sig.display());
            }
        }
        None => {
            // An old signature beside a rewritten bundle would only mislead.
            let _ = std::fs::remove_file(crate::engine::trust::keys::sig_path(&args.output));
        }
    }
    if args.json {
        print_json(&prepared.plans)?;
    } else {
        for plan in &prepared.plans {
            if plan.patches.is_empty() {
                say!("{}: nothing to install", plan.node);
                continue;
            }
            say!("{}:", plan.node);
            for (i, p) in plan.patches.iter().enumerate() {
                say!(
                    "  {:>2}. {:<10} {:<20} {:<10} restart {:<7} {}",
                    i + 1,
                    p.id,
                    p.component,
                    p.version,
                    p.restart.as_str(),
                    p.reason
                );
            }
        }
        say!(
            "bundle written to {} ({} patches)",
            args.output.display(),
            prepared.files.len()
        );
    }
    Ok(())
}

/// One node's line of `apply --json`: `node`, `ok`, and either what was
/// done (`already`, `installed`, `rebased`, `message`) or `error`.
#[derive(Debug, Serialize)]
struct ApplyRow {
    node: String,
    ok: bool,
    #[serde(skip)]
    applied: Option<Applied>,
    #[serde(skip_serializing_if = "Option::is_none")]
    already: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    installed: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rebased: Option<offline::Rebased>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl ApplyRow {
    fn done(a: Applied) -> ApplyRow {
        ApplyRow {
            node: a.node.clone(),
            ok: true,
            already: Some(a.already),
            installed: Some(a.installed.clone()),
            rebased: a.rebased.clone(),
            message: Some(a.message.clone()),
            applied: Some(a),
            error: None,
        }
    }

    fn failed(node: String, error: String) -> ApplyRow {
        ApplyRow {
            node,
            ok: false,
            applied: None,
            already: None,
            installed: None,
            rebased: None,
            message: None,
            error: Some(error),
        }
    }
}

pub fn apply(global: &Global, args: ApplyArgs) -> Outcome {
    let lab = global.lab();
    // A path that names nothing is bad input; a bundle damaged on its way
    // is a failed apply.
    if !args.bundle.exists() {
        return Err(Failure::Input(format!(
            "{}: no such bundle",
            args.bundle.display()
        )));
    }
    let gate =
        crate::engine::trust::Gate::for_lab(&lab).map_err(|e| Failure::Input(e.to_string()))?;
    offline::signature::check_bundle(&gate, &args.bundle)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let bundle = offline::read_bundle(&args.bundle).map_err(|e| Failure::Failed(e.to_string()))?;
    if let Some(cluster) = &args.cluster {
        return apply_cluster(global, &args, &bundle, cluster);
    }
    let site = SiteArgs {
        nodes: args.nodes.clone(),
        root: args.root.clone(),
        name: args.name.clone(),
    };
    if site.root.is_some() {
        // A bare node still gets a journal: the lab's, created if need be.
        std::fs::create_dir_all(&lab.root)
            .map_err(|e| Failure::Failed(format!("{}: {e}", lab.root.display())))?;
    }
    let command = format!("apply {}", args.bundle.display());
    let journal =
        Journal::open(&lab, &command).map_err(|e| Failure::Failed(format!("journal: {e}")))?;
    let how = if site.root.is_some() {
        Match::ByEnvironment
    } else {
        Match::ById
    };
    let log = JournalLog::new(&journal);
    let mut rows = Vec::new();
    for (id, t) in open_site(global, &site)? {
        let row = match t {
            Err(e) => ApplyRow::failed(id, e),
            Ok(mut t) => {
                let node = t.node().to_string();
                let record = |patch: &str, op: &str, ok: bool, message: &str| {
                    offline::Log::record(&log, &node, patch, op, ok, message)
                };
                match offline::apply_node(t.as_mut(), &bundle, how, args.rebase, &log) {
                    Ok(a) => {
                        record("-", "apply", true, &a.message);
                        ApplyRow::done(a)
                    }
                    Err(e) => {
                        record("-", "apply", false, &e.to_string());
                        ApplyRow::failed(node.clone(), e.to_string())
                    }
                }
            }
        };
        rows.push(row);
    }
    if args.json {
        print_json(&rows)?;
    } else {
        for r in &rows {
            match (&r.applied, &r.error) {
                (Some(a), _) => {
                    if let Some(rb) = &a.rebased {
                        say!("{}: rebased: {}", a.node, rb.changes.join("; "));
                        say!(
                            "{}:   plan now {} (dropped: {}; added: {})",
                            a.node,
                            if rb.plan.is_empty() {
                                "empty".to_string()
                            } else {
                                rb.plan.join(" ")
                            },
                            if rb.dropped.is_empty() {
                                "-".to_string()
                            } else {
                                rb.dropped.join(" ")
                            },
                            if rb.added.is_empty() {
                                "-".to_string()
                            } else {
                                rb.added.join(" ")
                            }
                        );
                    }
                    say!("{}: {}", a.node, a.message);
                }
                (None, Some(e)) => shout!("patchdeck: {e}"),
                (None, None) => {}
            }
        }
    }
    let logged = log.finish();
    let failed = rows.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        return Err(Failure::Reported(
            1,
            format!("{failed} node(s) could not apply the bundle"),
        ));
    }
    logged
}

/// The journal as the offline flow writes it: intents before a node is
/// touched, outcomes as they end, and at the end the intents settled. A
/// row that could not be written is said at once and fails the command.
struct JournalLog<'a> {
    journal: &'a Journal,
    intents: std::sync::Mutex<Vec<i64>>,
    failures: std::sync::Mutex<Vec<String>>,
}

impl<'a> JournalLog<'a> {
    fn new(journal: &'a Journal) -> Self {
        JournalLog {
            journal,
            intents: Default::default(),
            failures: Default::default(),
        }
    }

    /// Settles the intents; an error when any row could not be written.
    fn finish(&self) -> Outcome {
        let intents = self.intents.lock().map(|v| v.clone()).unwrap_or_default();
        if let Err(e) = self.journal.settle(&intents) {
            self.record_failure(e.to_string());
        }
        match self.failures.lock().ok().and_then(|v| v.first().cloned()) {
            Some(first) => Err(Failure::Failed(format!(
                "the change was made, but the journal could not record it: {first}"
            ))),
            None => Ok(()),
        }
    }

    fn record_failure(&self, e: String) {
        shout!("patchdeck: journal: {e}");
        if let Ok(mut v) = self.failures.lock() {
            v.push(e);
        }
    }
}

impl offline::Log for JournalLog<'_> {
    fn intend(&self, node: &str, patches: &[String], op: &str) -> Result<(), String> {
        let id = self
            .journal
            .intend(node, &patches.join(","), op)
            .map_err(|e| e.to_string())?;
        if let Ok(mut v) = self.intents.lock() {
            v.push(id);
        }
        Ok(())
    }

    fn record(&self, node: &str, patch: &str, op: &str, ok: bool, message: &str) {
        if let Err(e) = self.journal.record(node, patch, op, ok, message) {
            self.record_failure(e.to_string());
        }
    }
}

/// `apply BUNDLE --cluster C`: every member checked, the drift check, each
/// member's plan staged from the bundle, then a rollout installs group by
/// group (journaled like any rollout).
fn apply_cluster(
    global: &Global,
    args: &ApplyArgs,
    bundle: &offline::Bundle,
    cluster: &str,
) -> Outcome {
    use crate::engine::rollout::{Plan, journal};
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let config = fleet
        .clusters
        .iter()
        .find(|c| c.id == cluster)
        .ok_or_else(|| Failure::Input(format!("unknown cluster {cluster:?}")))?;
    let partition = crate::engine::groups::partition(&fleet, cluster, None)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let command = format!("apply {} --cluster {cluster}", args.bundle.display());
    let journal =
        Journal::open(&lab, &command).map_err(|e| Failure::Failed(format!("journal: {e}")))?;
    let log = JournalLog::new(&journal);
    let component = |id: &str| {
        bundle
            .patches
            .iter()
            .find(|p| p.id == id)
            .map(|p| crate::engine::components::component_of(&p.manifest))
    };
    let gate = |ids: &[String]| -> Result<(), String> {
        match crate::engine::drift::rollout_gate(
            &lab,
            &fleet,
            &component,
            cluster,
            ids,
            args.allow_drift,
            true,
        ) {
            Ok(crate::engine::drift::Gate::Allowed(note)) => {
                shout!("patchdeck: {note}");
                Ok(())
            }
            Ok(crate::engine::drift::Gate::Clear) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    let staged = offline::stage_cluster(&lab, &fleet, cluster, bundle, args.rebase, &gate, &log)
        .map_err(|e| Failure::Failed(e.to_string()));
    let logged = log.finish();
    let staged = staged?;
    logged?;
    for m in &staged.members {
        if let Some(rb) = &m.rebased {
            shout!("patchdeck: {}: rebased: {}", m.node, rb.changes.join("; "));
        }
    }
    if staged.ids.is_empty() {
        say!("cluster {cluster}: already applied on every member");
        return Ok(());
    }
    // The cluster's own failure policy, as for `rollout start`.
    let plan = Plan::new(config, &partition, &staged.ids, false, config.on_failure);
    let conn = crate::engine::console::open(&lab)
        .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?;
    let id = match journal::create(&conn, &plan)
        .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?
    {
        Ok(id) => id,
        Err(existing) => {
            return Err(Failure::Failed(format!(
                "cluster {cluster} has unfinished rollout {existing}; resume or abort it first"
            )));
        }
    };
    drop(conn);
    super::rollout::execute(&lab, &fleet, id, args.json)
}
