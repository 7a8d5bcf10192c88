//! `demo`, `depot list|check|add` and `pack`.

use crate::front::{say, shout};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::global::Global;
use crate::engine::archive::{self, PackError};
use crate::engine::demo::{self, DemoOptions};
use crate::engine::depot::{Depot, DepotError};
use crate::engine::filter::FilterList;
use crate::engine::fuzzy::{SearchLines, Searcher};
use crate::engine::patch::Patch;
use crate::engine::text::neutralise;
use crate::engine::trust::{Assessment, Gate, Verdict};
use crate::front::{Failure, Outcome, open_depot, print_json};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Random seed: the same seed writes the same lab.
    #[arg(long, default_value_t = demo::DEFAULT_SEED)]
    seed: u64,
    /// Number of nodes (at least 23: four clusters, the offline site and two appliances).
    #[arg(long, default_value_t = demo::DEFAULT_NODES)]
    nodes: usize,
    /// Number of patches in the depot.
    #[arg(long, default_value_t = demo::DEFAULT_PATCHES)]
    patches: usize,
    /// Replace a lab that is already there.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
pub enum DepotCommand {
    /// List patches, optionally filtered and fuzzy-searched.
    List(ListArgs),
    /// Validate every patch file; exit 1 when any is broken.
    Check(CheckArgs),
    /// Verify patch files and copy them into the depot.
    Add(AddArgs),
    /// Copy matching patches from an upstream depot: verified, only what changed, resumable.
    Mirror(super::mirror::MirrorArgs),
    /// The keys whose signatures the lab trusts: add, list, remove.
    #[command(subcommand)]
    Trust(super::trust::DepotTrustCommand),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Filter expression, e.g. '*.*,c=critical_patch' (repeat: any may match).
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    /// Fuzzy text over id, title, product and categories; best match first.
    #[arg(long, value_name = "TEXT")]
    query: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Patch files named ID.patch.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Directory holding PATCH.toml and files/.
    dir: PathBuf,
    /// Output file, named ID.patch.
    #[arg(short = 'o', long = "output", value_name = "ID.patch")]
    output: PathBuf,
}

impl DepotCommand {
    pub fn json(&self) -> bool {
        match self {
            DepotCommand::List(a) => a.json,
            DepotCommand::Check(a) => a.json,
            DepotCommand::Add(_) => false,
            DepotCommand::Mirror(a) => a.json,
            DepotCommand::Trust(c) => c.json(),
        }
    }
}

pub fn demo(global: &Global, args: DemoArgs) -> Outcome {
    let lab = global.lab();
    if args.nodes < demo::MIN_NODES {
        return Err(Failure::Input(format!(
            "--nodes {} is too few: the demo has three clusters (16 nodes) and at least two appliances; use {} or more",
            args.nodes,
            demo::MIN_NODES
        )));
    }
    if lab.exists() && !args.force {
        return Err(Failure::Input(format!(
            "{} already holds a lab; pass --force to replace it",
            lab.root.display()
        )));
    }
    if lab.exists() {
        for path in [lab.depot_dir(), lab.root.join("nodes"), lab.trust_dir()] {
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
            }
        }
    }
    let options = DemoOptions {
        seed: args.seed,
        patches: args.patches,
        nodes: args.nodes,
    };
    demo::write_lab(&lab, options)
        .map_err(|e| Failure::Failed(format!("{}: {e}", lab.root.display())))?;
    say!(
        "demo lab written to {}: {} patches, {} nodes (seed {})",
        lab.root.display(),
        args.patches,
        args.nodes,
        args.seed
    );
    Ok(())
}

pub fn run(global: &Global, command: DepotCommand) -> Outcome {
    match command {
        DepotCommand::List(args) => list(global, args),
        DepotCommand::Check(args) => check(global, args),
        DepotCommand::Add(args) => add(global, args),
        DepotCommand::Mirror(args) => super::mirror::run(global, args),
        DepotCommand::Trust(cmd) => super::trust::depot_trust(global, cmd),
    }
}

/// What `depot list --json` prints per patch.
#[derive(Debug, Serialize)]
struct ListedPatch<'a> {
    id: &'a str,
    title: &'a str,
    product: &'a str,
    fileset: Option<&'a str>,
    version: &'a str,
    vendor: &'a str,
    arch: &'a str,
    categories: &'a [String],
    severity: &'static str,
    released: String,
    supersedes: &'a [String],
    superseded_by: &'a [String],
    requires: &'a [String],
    restart: &'static str,
    hot: bool,
    kernel: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<i64>,
    /// `state`: `signed` (with `key_id`, `key_name`), `unsigned`, or
    /// `untrusted` (with `reason`); see docs/trust.md.
    signature: Option<&'a Verdict>,
    /// Whether the lab's trust policy lets this patch be used.
    usable: bool,
}

impl<'a> ListedPatch<'a> {
    fn new(p: &'a Patch, score: Option<i64>, trust: &'a Assessment) -> Self {
        let m = &p.manifest;
        ListedPatch {
            id: &p.id,
            title: &m.title,
            product: &m.product,
            fileset: m.fileset.as_deref(),
            version: &m.version,
            vendor: &m.vendor,
            arch: &m.arch,
            categories: &p.categories,
            severity: m.severity.as_str(),
            released: m.released.to_string(),
            supersedes: &m.supersedes,
            superseded_by: &p.superseded_by,
            requires: &m.requires,
            restart: m.restart.as_str(),
            hot: m.hot,
            kernel: m.kernel,
            base_version: m.base_version.as_deref(),
            score,
            signature: trust.get(&p.id),
            usable: trust.usable(&p.id),
        }
    }
}

/// Parses `--filter` flags; a syntax error is bad input and shows the column.
pub fn parse_filters(texts: &[String]) -> Result<FilterList, Failure> {
    FilterList::parse_all(texts).map_err(|e| Failure::Input(e.to_string()))
}

fn list(global: &Global, args: ListArgs) -> Outcome {
    let filters = parse_filters(&args.filters)?;
    let depot = open_depot(&global.depot_dir()?)?;
    let candidates: Vec<usize> = (0..depot.patches.len())
        .filter(|&i| filters.matches(&depot.patches[i]))
        .collect();
    let hits: Vec<(usize, Option<i64>)> = match args.query.as_deref() {
        Some(q) => {
            let mut searcher = Searcher::new(SearchLines::new(&depot.patches));
            searcher
                .search(q, &candidates)
                .into_iter()
                .map(|h| (h.index, Some(h.score)))
                .collect()
        }
        None => candidates.into_iter().map(|i| (i, None)).collect(),
    };
    warn_broken(&depot);
    let trust = assess(global, &depot)?;
    if args.json {
        let rows: Vec<ListedPatch> = hits
            .iter()
            .map(|&(i, s)| ListedPatch::new(&depot.patches[i], s, &trust))
            .collect();
        return print_json(&rows);
    }
    if let Some(summary) = trust.summary() {
        shout!("patchdeck: signatures: {summary}");
    }
    say!(
        "{:<12} {:<8} {:<20} {:<10} {:<28} {:<12} TITLE",
        "ID",
        "SEV",
        "PRODUCT",
        "VERSION",
        "CATEGORIES",
        "SIGNED"
    );
    for &(i, _) in &hits {
        let p = &depot.patches[i];
        let product = match &p.manifest.fileset {
            Some(fs) => format!("{}.{fs}", p.manifest.product),
            None => p.manifest.product.clone(),
        };
        let signed = match trust.get(&p.id) {
            Some(Verdict::Signed { key_name, .. }) => key_name.clone(),
            Some(Verdict::Untrusted { .. }) => "UNTRUSTED".into(),
            _ => "-".into(),
        };
        // Everything from a manifest is shown, never obeyed by the terminal.
        say!(
            "{:<12} {:<8} {:<20} {:<10} {:<28} {:<12} {}",
            neutralise(&p.id),
            p.manifest.severity.as_str(),
            neutralise(&product),
            neutralise(&p.manifest.version),
            neutralise(&p.categories.join(",")),
            neutralise(&signed),
            neutralise(&p.manifest.title)
        );
    }
    Ok(())
}

/// The signature verdicts of the depot's patches by the lab's keys and
/// policy; a bare `--depot` has neither (nothing trusted, nothing required).
fn assess(global: &Global, depot: &Depot) -> Result<Assessment, Failure> {
    let gate = if global.depot.is_some() {
        Gate::default()
    } else {
        Gate::for_lab(&global.lab()).map_err(|e| Failure::Input(e.to_string()))?
    };
    Ok(gate.assess(depot))
}

fn warn_broken(depot: &Depot) {
    if !depot.broken.is_empty() {
        shout!(
            "patchdeck: {} broken file(s) in {} left out; `patchdeck depot check` lists them",
            depot.broken.len(),
            depot.root.display()
        );
    }
}

fn check(global: &Global, args: CheckArgs) -> Outcome {
    // Every byte, not the cache: the cache cannot see a flipped bit.
    let depot = Depot::check(&global.depot_dir()?, &|_, _| {})
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let trust = assess(global, &depot)?;
    let (signed, unsigned, untrusted) = trust.counts();
    let mut refused: Vec<(&str, String)> = depot
        .patches
        .iter()
        .filter(|p| !trust.usable(&p.id))
        .map(|p| {
            let why = trust.get(&p.id).map(Verdict::short).unwrap_or_default();
            (p.id.as_str(), why)
        })
        .collect();
    refused.sort();
    // Temporary files of a killed writer: harmless, but they would lie
    // there forever unnoticed.
    let leftovers = crate::engine::archive::leftover_temps(&depot.root).unwrap_or_default();
    if args.json {
        let untrusted_rows: Vec<serde_json::Value> = depot
            .patches
            .iter()
            .filter_map(|p| match trust.get(&p.id) {
                Some(v @ Verdict::Untrusted { .. }) => {
                    Some(serde_json::json!({"id": p.id, "signature": v}))
                }
                _ => None,
            })
            .collect();
        print_json(&serde_json::json!({
            "ok": depot.patches.len(),
            "broken": depot.broken,
            "leftovers": leftovers,
            "signatures": {
                "required": trust.required,
                "signed": signed,
                "unsigned": unsigned,
                "untrusted": untrusted,
                "summary": trust.summary(),
                "untrusted_patches": untrusted_rows,
            },
        }))?;
    } else {
        for b in &depot.broken {
            say!("{}", neutralise(&b.to_string()));
        }
        for p in depot.patches.iter() {
            if let Some(v @ Verdict::Untrusted { .. }) = trust.get(&p.id) {
                say!("{}: {}", p.file, v.short());
            }
        }
        for name in &leftovers {
            say!("{name}: temporary file of an interrupted write; the next `depot add` removes it");
        }
        say!(
            "{} patch(es) ok, {} broken, in {}",
            depot.patches.len(),
            depot.broken.len(),
            depot.root.display()
        );
        let policy = if trust.required {
            "required"
        } else {
            "not required"
        };
        match trust.summary() {
            Some(s) => say!("signatures ({policy}): {s}; {signed} signed by a trusted key"),
            None => say!("signatures ({policy}): every patch signed by a trusted key"),
        }
    }
    if !depot.broken.is_empty() {
        return Err(Failure::Reported(
            1,
            format!("{} broken file(s) in the depot", depot.broken.len()),
        ));
    }
    if !refused.is_empty() {
        return Err(Failure::Reported(
            1,
            format!(
                "{} patch(es) the lab's policy refuses (signatures required): {}",
                refused.len(),
                refused
                    .iter()
                    .map(|(id, _)| *id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

fn add(global: &Global, args: AddArgs) -> Outcome {
    let dir = global.depot_dir()?;
    let added = Depot::add(&dir, &args.files).map_err(|e| match e {
        DepotError::Invalid(m) => Failure::Input(m),
        other => Failure::Failed(other.to_string()),
    })?;
    for id in &added {
        say!("added {id}");
    }
    let already = args.files.len() - added.len();
    if already > 0 {
        say!("{already} already in the depot, unchanged");
    }
    Ok(())
}

pub fn pack(args: PackArgs) -> Outcome {
    let manifest = archive::pack(&args.dir, &args.output).map_err(|e| match e {
        PackError::Input { .. } => Failure::Input(e.to_string()),
        PackError::Io { .. } => Failure::Failed(e.to_string()),
    })?;
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    say!(
        "packed {} ({} files, {bytes} bytes)",
        args.output.display(),
        manifest.files.len()
    );
    Ok(())
}
