//! What the operator asks the resolver for, and what it answers: the
//! selection in install order with reasons, what was dropped, the problems.

use std::fmt;

use serde::Serialize;

use crate::engine::inventory::Inventory;
use crate::engine::patch::Patch;

/// What the operator asked for.
pub struct Request<'a> {
    /// Patch ids and `PRODUCT[.FILESET]` specs, in the order named.
    pub specs: Vec<String>,
    /// Whether a product spec selects that product's latest applicable
    /// patches. On by default; `--no-autoselect` turns it off.
    pub autoselect: bool,
    /// The match-target: what the node has installed.
    pub target: Option<&'a Inventory>,
    /// The filter list. It narrows autoselection and target matching only:
    /// explicitly named ids and prerequisites are never filtered out.
    pub narrow: &'a dyn Fn(&Patch) -> bool,
}

/// The `narrow` of a request without a filter list: keeps every patch.
pub fn no_narrowing(_: &Patch) -> bool {
    true
}

impl<'a> Request<'a> {
    /// A request for `specs` with autoselection on, no target, no filter.
    pub fn new(specs: Vec<String>) -> Request<'a> {
        Request {
            specs,
            autoselect: true,
            target: None,
            narrow: &no_narrowing,
        }
    }
}

impl Default for Request<'_> {
    fn default() -> Self {
        Request::new(Vec::new())
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("specs", &self.specs)
            .field("autoselect", &self.autoselect)
            .field("target", &self.target.map(|t| t.node.as_str()))
            .finish_non_exhaustive()
    }
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// The patches to install, in install order.
    pub patches: Vec<Selected>,
    /// Autoselected or matched patches left out because a selected patch
    /// supersedes them.
    pub dropped: Vec<Dropped>,
    /// Everything that needs the operator's attention; empty when the
    /// selection can go ahead.
    pub problems: Vec<Problem>,
}

impl Selection {
    /// True when nothing needs the operator's attention.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One patch to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selected {
    pub id: String,
    /// Why it is in the selection, for people.
    pub reason: String,
    /// The same, for programs.
    #[serde(skip)]
    pub why: Reason,
}

/// Why a patch is in the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Named by id.
    Named,
    /// The latest applicable patch of the product spec `spec`.
    Autoselected { spec: String },
    /// Applicable to the match-target; no specs were given.
    Matched {
        product: String,
        version: String,
        node: String,
    },
    /// Satisfies the `requires` entry `requirement` of patch `by`. The
    /// selected patch is `requirement` itself or a patch superseding it.
    Required { by: String, requirement: String },
}

/// A patch left out because a selected patch supersedes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub id: String,
    /// The selected patch that replaces it (the top of its chain).
    pub superseded_by: String,
}

/// Something the operator has to look at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The spec or patch id the problem is about.
    pub id: String,
    pub message: String,
}

/// The kinds of [`Problem`]; serialised in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A spec that is neither a depot patch id nor a depot product (fileset).
    Unknown,
    /// A product spec while autoselection is off.
    AutoselectOff,
    /// A named patch that does not apply to the target.
    NotApplicable,
    /// A named patch superseded by another patch in the selection.
    SupersededExplicit,
    /// Patches whose `supersedes` lists form a cycle.
    SupersedesCycle,
    /// A requirement neither the depot nor the target can satisfy.
    MissingPrerequisite,
    /// Selected patches that require one another.
    PrerequisiteCycle,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::AutoselectOff => "autoselect_off",
            Self::NotApplicable => "not_applicable",
            Self::SupersededExplicit => "superseded_explicit",
            Self::SupersedesCycle => "supersedes_cycle",
            Self::MissingPrerequisite => "missing_prerequisite",
            Self::PrerequisiteCycle => "prerequisite_cycle",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
