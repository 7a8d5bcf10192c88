//! A patch as the depot knows it: its manifest plus what the depot derived
//! from the other patches (inherited categories, who supersedes it).

use crate::engine::manifest::Manifest;

/// The category every patch has without declaring it (`c=patch`).
pub const BUILTIN_CATEGORY: &str = "patch";

/// Categories a superseding patch does not inherit from its predecessors.
pub const NOT_INHERITED: &[&str] = &["special_release", "manual_dependencies"];

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Patch {
    /// The file stem of `ID.patch`.
    pub id: String,
    /// File name inside the depot directory.
    pub file: String,
    pub manifest: Manifest,
    /// Own categories plus those inherited through `supersedes`, sorted.
    pub categories: Vec<String>,
    /// Depot patches that name this one in their `supersedes`, sorted.
    pub superseded_by: Vec<String>,
}

impl Patch {
    /// Builds a record with only the manifest's own categories; the depot
    /// fills in inheritance and `superseded_by` once all patches are known.
    pub fn new(id: String, file: String, manifest: Manifest) -> Patch {
        let mut categories = manifest.categories.clone();
        categories.sort();
        categories.dedup();
        Patch {
            id,
            file,
            manifest,
            categories,
            superseded_by: Vec::new(),
        }
    }

    pub fn has_category(&self, tag: &str) -> bool {
        tag == BUILTIN_CATEGORY || self.categories.iter().any(|c| c == tag)
    }
}
