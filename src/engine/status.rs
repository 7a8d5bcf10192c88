//! A snapshot of the fleet as the console shows it: every node's service
//! state, installed products and patch states, read in parallel. Cheap
//! enough to take every few seconds on a lab of a few hundred nodes.

use std::collections::{BTreeMap, HashMap};

use crate::engine::fleet::Fleet;
use crate::engine::inventory::PatchState;
use crate::engine::lab::Lab;
use crate::engine::node::Service;
use crate::engine::ops;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    pub dc: String,
    pub cluster: Option<String>,
    /// `None` when the node could not be read (see `error`).
    pub service: Option<Service>,
    /// Installed product → version.
    pub products: BTreeMap<String, String>,
    /// Installed `product.fileset` → version.
    pub components: BTreeMap<String, String>,
    pub patches: BTreeMap<String, PatchState>,
    pub error: Option<String>,
}

impl NodeView {
    /// What this view read of the node, as the resolver's match target
    /// and the drift check take it.
    pub fn inventory(&self) -> crate::engine::inventory::Inventory {
        crate::engine::inventory::Inventory {
            node: self.id.clone(),
            products: self.products.clone(),
            components: self.components.clone(),
            patches: self.patches.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetView {
    pub nodes: Vec<NodeView>,
}

impl FleetView {
    pub fn take(lab: &Lab, fleet: &Fleet) -> FleetView {
        let all: Vec<&crate::engine::fleet::Node> = fleet.nodes.iter().collect();
        let nodes = ops::for_each_node(&all, ops::DEFAULT_PARALLEL, |n| {
            let mut view = NodeView {
                id: n.id.clone(),
                dc: n.dc.clone(),
                cluster: n.cluster.clone(),
                service: None,
                products: BTreeMap::new(),
                components: BTreeMap::new(),
                patches: BTreeMap::new(),
                error: None,
            };
            let read = ops::connect(lab, n).and_then(|mut t| {
                let inv = t.inventory()?;
                let service = t.service(None)?;
                Ok((inv, service))
            });
            match read {
                Ok((inv, service)) => {
                    view.service = Some(service.state);
                    view.products = inv.products;
                    view.components = inv.components;
                    view.patches = inv.patches;
                }
                Err(e) => view.error = Some(e.to_string()),
            }
            view
        });
        FleetView { nodes }
    }

    pub fn node(&self, id: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The drift of a cluster as this view saw its members: the same
    /// comparison as `patchdeck drift` ([`drift::compare`]), over the
    /// members that could be read. `None` when fewer than two were.
    pub fn drift(&self, cluster: &str) -> Option<crate::engine::drift::Report> {
        let members: Vec<crate::engine::inventory::Inventory> = self
            .nodes
            .iter()
            .filter(|n| n.cluster.as_deref() == Some(cluster) && n.error.is_none())
            .map(NodeView::inventory)
            .collect();
        (members.len() >= 2).then(|| crate::engine::drift::compare(cluster, &members))
    }

    /// Per patch: (nodes with it installed, nodes that carry its product).
    pub fn coverage(
        &self,
        product_of: impl Fn(&str) -> Option<String>,
    ) -> HashMap<String, (usize, usize)> {
        let mut by_product: HashMap<&str, usize> = HashMap::new();
        for n in &self.nodes {
            for p in n.products.keys() {
                *by_product.entry(p.as_str()).or_default() += 1;
            }
        }
        let mut out: HashMap<String, (usize, usize)> = HashMap::new();
        for n in &self.nodes {
            for (id, state) in &n.patches {
                if matches!(state, PatchState::Applied | PatchState::Committed) {
                    out.entry(id.clone()).or_default().0 += 1;
                }
            }
        }
        for (id, entry) in out.iter_mut() {
            entry.1 = product_of(id)
                .and_then(|p| by_product.get(p.as_str()).copied())
                .unwrap_or(self.nodes.len());
        }
        out
    }
}
