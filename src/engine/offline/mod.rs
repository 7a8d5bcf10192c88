//! Offline sites (seed 003): a site that never reaches the depot is patched
//! in three steps. `snapshot` records, on the site, what each node is and
//! has; `prepare` resolves a selection against that snapshot where the
//! depot is and writes one bundle file; `apply` checks the bundle on the
//! site and installs it with the node's crash-safe lifecycle.
//!
//! The dangers the seed names are decided here, not in the front ends: a
//! bundle is bound to the environment (random id kept in the node's store,
//! plus host name) its snapshot came from, so a mix-up is refused; a node
//! that changed since its snapshot is refused as stale unless the plan is
//! rebased on what it has now; and a checksum over the whole bundle catches
//! damage in transit.

pub mod apply;
pub mod bundle;
pub mod cluster;
pub mod signature;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::inventory::Inventory;
use crate::engine::node::NodeError;
use crate::engine::node::environment::Environment;
use crate::engine::transport::Transport;

pub use apply::{
    Applied, Checked, Log, Match, Rebased, apply_node, check_node, install_plan, stage_plan,
};
pub use bundle::{
    Bundle, NodePlan, Planned, Prepared, SelectionRequest, plan_for, prepare, read_bundle,
    write_bundle,
};
pub use cluster::{ClusterStaged, stage_cluster};

/// The `format` field of a snapshot file.
pub const SNAPSHOT_FORMAT: &str = "patchdeck-snapshot";
/// The `format` field of a bundle's `BUNDLE.json`.
pub const BUNDLE_FORMAT: &str = "patchdeck-bundle";
/// The file layout version both files carry.
pub const FORMAT_VERSION: u32 = 1;

/// What went wrong in the offline flow. Every message names the file or
/// node and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The resolver could not plan a node (missing prerequisite, …).
    #[error("node {node}: the selection cannot be installed: {}", problems.join("; "))]
    Selection { node: String, problems: Vec<String> },
    /// The bundle has no plan for this node.
    #[error(
        "node {node} is not in this bundle; it was prepared for {}",
        prepared_for.join(", ")
    )]
    WrongNode {
        node: String,
        prepared_for: Vec<String>,
    },
    /// The node is another environment than the one the snapshot was taken in.
    #[error("{0}")]
    WrongEnvironment(Box<EnvMismatch>),
    /// The cluster may not take the bundle now (e.g. it has drifted).
    #[error("{0}")]
    Refused(String),
    /// The journal could not record the intent; the node was not touched.
    #[error("{0}; nothing was done")]
    Journal(String),
    /// The node changed since the snapshot (outside this bundle's plan).
    #[error(
        "node {node} has changed since the snapshot was taken ({taken_at}): {}; take a new \
         snapshot and prepare again, or apply with --rebase to re-plan on what the node has now",
        differences.join("; ")
    )]
    Stale {
        node: String,
        taken_at: String,
        differences: Vec<String>,
    },
}

/// A bundle meeting a node of another environment: both named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing the bundle on node {node}: it was prepared for environment {expected} \
     (host {expected_host}, node {expected_node}), and this is environment {actual} \
     (host {actual_host}); a bundle only applies where its snapshot was taken"
)]
pub struct EnvMismatch {
    pub node: String,
    pub expected_node: String,
    pub expected: String,
    pub expected_host: String,
    pub actual: String,
    pub actual_host: String,
}

/// One node in a snapshot: who it is, what it has, when that was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub environment: Environment,
    /// Node id, products, components and patch states (no payloads).
    #[serde(flatten)]
    pub inventory: Inventory,
    /// When it was read (UTC, RFC 3339).
    pub taken_at: String,
}

/// A snapshot file: small JSON, no payloads, fit for removable media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: String,
    pub version: u32,
    pub taken_at: String,
    pub nodes: Vec<NodeSnapshot>,
}

/// Reads one node for a snapshot, through its transport (so any kind of
/// node). Errors: the node cannot be read.
pub fn snapshot_node(t: &mut dyn Transport) -> Result<NodeSnapshot, NodeError> {
    let environment = t.environment()?;
    let inventory = t.inventory()?;
    Ok(NodeSnapshot {
        environment,
        inventory,
        taken_at: crate::engine::node::store::now(),
    })
}

impl Snapshot {
    pub fn new(nodes: Vec<NodeSnapshot>) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT.into(),
            version: FORMAT_VERSION,
            taken_at: crate::engine::node::store::now(),
            nodes,
        }
    }

    /// Writes the snapshot as JSON, atomically (temp file, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), OfflineError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| file_err(path, e))?;
        write_atomic(path, &text).map_err(|e| file_err(path, e))
    }

    /// Reads a snapshot file. Errors: unreadable, not JSON of this shape,
    /// another format or a newer version.
    pub fn read(path: &Path) -> Result<Snapshot, OfflineError> {
        let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
        let snap: Snapshot = serde_json::from_slice(&bytes)
            .map_err(|e| file_err(path, format!("not a patchdeck snapshot: {e}")))?;
        if snap.format != SNAPSHOT_FORMAT || snap.version > FORMAT_VERSION {
            return Err(file_err(
                path,
                format!(
                    "format {:?} version {}; expected {SNAPSHOT_FORMAT:?} version {FORMAT_VERSION} \
                     or older",
                    snap.format, snap.version
                ),
            ));
        }
        Ok(snap)
    }
}

pub(crate) fn file_err(path: &Path, e: impl std::fmt::Display) -> OfflineError {
    OfflineError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory, so nothing partial ever carries the final name.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// How `now` differs from `then` outside the patches of `plan`: patches
/// installed or removed since, and component or product versions that
/// changed (components a plan patch now installed is for excepted, since
/// installing it changed them). Staging alone is no change. Empty when the
/// snapshot still holds.
pub fn changes_since(
    then: &Inventory,
    now: &Inventory,
    plan: &[String],
    plan_components: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let in_plan = |id: &str| plan.iter().any(|p| p == id);
    let ids: std::collections::BTreeSet<&String> =
        then.patches.keys().chain(now.patches.keys()).collect();
    for id in ids {
        if in_plan(id) {
            continue;
        }
        let (a, b) = (then.state(id), now.state(id));
        if a.is_installed() != b.is_installed() {
            out.push(if b.is_installed() {
                format!("{id} was installed since")
            } else {
                format!("{id} was removed since")
            });
        }
    }
    // Components a plan patch that is now installed is for.
    let touched: Vec<&String> = plan_components
        .iter()
        .filter(|(id, _)| now.state(id).is_installed())
        .map(|(_, c)| c)
        .collect();
    for (what, a, b) in [
        ("component", &then.components, &now.components),
        ("product", &then.products, &now.products),
    ] {
        let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for name in names {
            if touched.contains(&name) {
                continue;
            }
            let (x, y) = (a.get(name), b.get(name));
            let same = match (x, y) {
                (Some(x), Some(y)) => crate::engine::version::equal(x, y),
                (None, None) => true,
                _ => false,
            };
            if !same {
                out.push(format!(
                    "{what} {name} was {} and is {}",
                    x.map_or("absent", String::as_str),
                    y.map_or("absent", String::as_str)
                ));
            }
        }
    }
    out
}
