//! Components and the updates available for them (seed 003: a product is
//! built of components, each patched to its own version; operators ask
//! which updates are available and which of them apply hot).
//!
//! What a node has is always read from the node, through its transport, so
//! this works for every kind of node. Which updates exist is decided here,
//! once, by the resolver: the console and the command line only render it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::fleet;
use crate::engine::inventory::Inventory;
use crate::engine::lab::Lab;
use crate::engine::manifest::{Manifest, Restart};
use crate::engine::node::NodeError;
use crate::engine::ops;
use crate::engine::patch::Patch;
use crate::engine::select::{self, Request};
use crate::engine::version;

/// One installed component on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub node: String,
    /// `PRODUCT.FILESET`, or `PRODUCT` for a product that lists no filesets.
    pub component: String,
    /// The installed version, as the node reports it.
    pub installed: String,
}

/// One patch on an update path, in install order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub id: String,
    /// The component the patch is for.
    pub component: String,
    pub version: String,
    /// What installing it needs restarted (`none` when it applies hot).
    pub restart: Restart,
    /// Why the resolver chose it.
    pub reason: String,
}

/// The update available for one component on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    pub node: String,
    pub component: String,
    pub installed: String,
    /// The newest version the depot can bring the component to.
    pub available: String,
    /// The patches that get it there, in install order (prerequisites of
    /// other components included).
    pub patches: Vec<Step>,
    /// The strongest restart along the path: `none` (hot), `service` or
    /// `reboot`.
    pub restart: Restart,
    /// What stops the path from being installed as it is (a missing
    /// prerequisite, …); empty when it can go ahead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// What a node must restart after installing a patch: nothing for a hot
/// patch, else the manifest's `restart`.
pub fn effective_restart(m: &Manifest) -> Restart {
    if m.hot { Restart::None } else { m.restart }
}

/// The component name of a manifest: `PRODUCT.FILESET`, or `PRODUCT`.
pub fn component_of(m: &Manifest) -> String {
    match &m.fileset {
        Some(f) => format!("{}.{f}", m.product),
        None => m.product.clone(),
    }
}

/// Whether a patch applies without a restart (what `--hot-only` keeps).
pub fn is_hot(p: &Patch) -> bool {
    effective_restart(&p.manifest) == Restart::None
}

/// Every component of an inventory with its version, sorted by name: the
/// node's `PRODUCT.FILESET` components, plus `PRODUCT` for a product that
/// lists none.
pub fn components_of(inv: &Inventory) -> Vec<Component> {
    let mut out: BTreeMap<String, String> = inv.components.clone();
    for (product, v) in &inv.products {
        let prefix = format!("{product}.");
        if !inv.components.keys().any(|k| k.starts_with(&prefix)) {
            out.insert(product.clone(), v.clone());
        }
    }
    out.into_iter()
        .map(|(component, installed)| Component {
            node: inv.node.clone(),
            component,
            installed,
        })
        .collect()
}

/// Reads the inventory of every node in `nodes` through its transport, at
/// most `parallel` at once, in node order. A node that cannot be reached
/// gives its error.
pub fn inventories(
    lab: &Lab,
    nodes: &[&fleet::Node],
    parallel: usize,
) -> Vec<Result<Inventory, NodeError>> {
    ops::for_each_node(nodes, parallel, |node| ops::connect(lab, node)?.inventory())
}

/// The updates available to one node, one per component that has any,
/// sorted by component. For each component the resolver autoselects the
/// newest applicable patches of that component against the node's
/// inventory (as `select PRODUCT.FILESET --match-target NODE` would) and
/// adds their prerequisites. With `hot_only`, only patches that apply
/// without a restart are autoselected, and a path that still needs a
/// restart (through a prerequisite) is left out.
pub fn updates_for(depot: &[Patch], inv: &Inventory, hot_only: bool) -> Vec<Update> {
    let hot = |p: &Patch| is_hot(p);
    let by_id: std::collections::HashMap<&str, &Manifest> =
        depot.iter().map(|p| (p.id.as_str(), &p.manifest)).collect();
    let mut out = Vec::new();
    for c in components_of(inv) {
        let request = Request {
            specs: vec![c.component.clone()],
            autoselect: true,
            target: Some(inv),
            narrow: if hot_only {
                &hot
            } else {
                &select::no_narrowing
            },
        };
        let selection = select::resolve(depot, &request);
        // No patch in the depot for this component: nothing to offer.
        if selection
            .problems
            .iter()
            .any(|p| p.kind == select::ProblemKind::Unknown)
            || selection.patches.is_empty()
        {
            continue;
        }
        let mut steps = Vec::new();
        for s in &selection.patches {
            let Some(m) = by_id.get(s.id.as_str()) else {
                continue;
            };
            steps.push(Step {
                id: s.id.clone(),
                component: component_of(m),
                version: m.version.clone(),
                restart: effective_restart(m),
                reason: s.reason.clone(),
            });
        }
        let restart = steps
            .iter()
            .map(|s| s.restart)
            .max()
            .unwrap_or(Restart::None);
        if hot_only && restart != Restart::None {
            continue;
        }
        // The newest version among the path's patches for this component
        // (or what it has, if that is newer).
        let available = version::max(
            steps
                .iter()
                .filter(|s| s.component == c.component)
                .map(|s| s.version.as_str())
                .chain([c.installed.as_str()]),
        )
        .unwrap_or(c.installed.as_str())
        .to_string();
        out.push(Update {
            node: c.node,
            component: c.component,
            installed: c.installed,
            available,
            patches: steps,
            restart,
            problems: selection
                .problems
                .iter()
                .map(|p| p.message.clone())
                .collect(),
        });
    }
    out
}
