//! What a target has installed: products and components with versions, and
//! the state of each patch it knows. The resolver matches against this.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of a patch on a node.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PatchState {
    #[default]
    None,
    /// Replicated to the node and verified.
    Staged,
    /// Installed, saved files kept for rollback.
    Applied,
    /// Installed, saved files dropped: no rollback.
    Committed,
    /// Replaced by a later applied patch.
    Superseded,
}

impl PatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Staged => "staged",
            Self::Applied => "applied",
            Self::Committed => "committed",
            Self::Superseded => "superseded",
        }
    }

    /// The patch's changes are on the node (directly or through a superseder).
    pub fn is_installed(self) -> bool {
        matches!(self, Self::Applied | Self::Committed | Self::Superseded)
    }
}

impl fmt::Display for PatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The node this inventory was read from.
    pub node: String,
    /// Installed product → version.
    pub products: BTreeMap<String, String>,
    /// Installed `product.fileset` → version. A product listed here with no
    /// filesets is taken to have all of them.
    pub components: BTreeMap<String, String>,
    /// Patch id → state, for every patch the node has seen.
    pub patches: BTreeMap<String, PatchState>,
}

impl Inventory {
    pub fn state(&self, patch: &str) -> PatchState {
        self.patches.get(patch).copied().unwrap_or_default()
    }

    /// Whether the node has the product (and, when the node lists its
    /// filesets, that fileset).
    pub fn has(&self, product: &str, fileset: Option<&str>) -> bool {
        if !self.products.contains_key(product) {
            return false;
        }
        let Some(fileset) = fileset else { return true };
        let prefix = format!("{product}.");
        let listed: Vec<&String> = self
            .components
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        listed.is_empty() || listed.iter().any(|k| k[prefix.len()..] == *fileset)
    }

    /// The version the node has of a patch's component: its
    /// `PRODUCT.FILESET` entry, else (no fileset, or a product that lists
    /// none) the product's version.
    pub fn installed_version(&self, product: &str, fileset: Option<&str>) -> Option<&str> {
        fileset
            .and_then(|f| self.components.get(&format!("{product}.{f}")))
            .or_else(|| self.products.get(product))
            .map(String::as_str)
    }

    /// Whether a patch bringing `product`/`fileset` to `version` would take
    /// the node's component below what it has (a downgrade, which the
    /// resolver never offers and install refuses: docs/trust.md). Returns
    /// the installed version when it would.
    pub fn downgrade(&self, product: &str, fileset: Option<&str>, version: &str) -> Option<&str> {
        let have = self.installed_version(product, fileset)?;
        (crate::engine::version::compare(version, have) == std::cmp::Ordering::Less).then_some(have)
    }
}
