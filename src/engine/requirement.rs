//! One rule for requirements: a requirement on patch X is met by X, or by
//! any patch that supersedes X directly or through a chain. The resolver,
//! the node before install, rollback, remove, uninstall rollouts and
//! `verify` all ask the functions here, so they cannot disagree.
//!
//! A node does not have the depot: it knows the manifests of the patches it
//! holds, plus the supersession edges the console sent with an install (see
//! [`Supersession`]). The functions take any [`Graph`], so each caller
//! brings the knowledge it has.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::engine::patch::Patch;

/// Who supersedes what, as one caller knows it.
pub trait Graph {
    /// The ids `id` supersedes directly (empty when unknown).
    fn supersedes_directly(&self, id: &str) -> Vec<&str>;
}

/// Supersession edges: patch id → the ids it supersedes directly. What a
/// console tells a node with an install, and what the node keeps of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Supersession(BTreeMap<String, BTreeSet<String>>);

impl Supersession {
    /// Adds the edges `new → old` for every `old`.
    pub fn add<S: AsRef<str>>(&mut self, new: &str, olds: impl IntoIterator<Item = S>) {
        let entry = self.0.entry(new.to_string()).or_default();
        entry.extend(olds.into_iter().map(|s| s.as_ref().to_string()));
    }

    /// Every edge, as `(new, old)` pairs.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|(n, olds)| olds.iter().map(move |o| (n.as_str(), o.as_str())))
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeSet::is_empty)
    }

    /// The edges of the depot's patches reachable from `roots`: what a node
    /// holding `roots` needs to know to follow their chains to the end.
    /// `patch` looks a patch up by id (the depot's index, so no per-call
    /// map of a large depot is built).
    pub fn from_depot<'a, 'p>(
        patch: impl Fn(&str) -> Option<&'p Patch>,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut out = Supersession::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut stack: Vec<String> = roots.into_iter().map(str::to_string).collect();
        while let Some(id) = stack.pop() {
            if seen.contains(&id) {
                continue;
            }
            let Some(p) = patch(&id) else {
                seen.insert(id);
                continue;
            };
            if !p.manifest.supersedes.is_empty() {
                out.add(&id, &p.manifest.supersedes);
                stack.extend(p.manifest.supersedes.iter().cloned());
            }
            seen.insert(id);
        }
        out
    }
}

impl Graph for Supersession {
    fn supersedes_directly(&self, id: &str) -> Vec<&str> {
        self.0
            .get(id)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Two graphs read as one (e.g. a node's manifests and what it was told).
pub struct Both<'a, A: Graph, B: Graph>(pub &'a A, pub &'a B);

impl<A: Graph, B: Graph> Graph for Both<'_, A, B> {
    fn supersedes_directly(&self, id: &str) -> Vec<&str> {
        let mut v = self.0.supersedes_directly(id);
        v.extend(self.1.supersedes_directly(id));
        v
    }
}

/// Whether `by` meets a requirement on `requirement`: it is that patch, or
/// supersedes it directly or through a chain. Cycles are walked once.
pub fn covers(graph: &impl Graph, by: &str, requirement: &str) -> bool {
    if by == requirement {
        return true;
    }
    let mut seen = HashSet::new();
    let mut stack = vec![by.to_string()];
    while let Some(cur) = stack.pop() {
        if !seen.insert(cur.clone()) {
            continue;
        }
        for old in graph.supersedes_directly(&cur) {
            if old == requirement {
                return true;
            }
            stack.push(old.to_string());
        }
    }
    false
}

/// The patch among `installed` that meets `requirement`, if any (the
/// patch itself first).
pub fn met_by<'a>(
    graph: &impl Graph,
    requirement: &str,
    installed: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    if let Some(same) = installed.clone().into_iter().find(|i| *i == requirement) {
        return Some(same);
    }
    installed
        .into_iter()
        .find(|i| covers(graph, i, requirement))
}

/// The requirements in `requires` that nothing in `installed` meets, in
/// the order listed.
pub fn unmet<'a, S: AsRef<str>>(
    graph: &impl Graph,
    requires: &[S],
    installed: impl IntoIterator<Item = &'a str> + Clone,
) -> Vec<String> {
    requires
        .iter()
        .map(AsRef::as_ref)
        .filter(|r| met_by(graph, r, installed.clone()).is_none())
        .map(str::to_string)
        .collect()
}

/// A patch that would lose a requirement: `dependent` requires
/// `requirement`, which only the patch being taken away meets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependent {
    pub dependent: String,
    pub requirement: String,
}

/// Which patches of `holders` (id, requirements) would lose a requirement
/// if the patches `leaving` were no longer installed: met with `installed`
/// as it is, unmet without them. Holders that are leaving themselves do
/// not count. Empty when they can all go.
pub fn dependents_of<S: AsRef<str>>(
    graph: &impl Graph,
    leaving: &[&str],
    installed: &[&str],
    holders: &[(&str, &[S])],
) -> Vec<Dependent> {
    let after: Vec<&str> = installed
        .iter()
        .copied()
        .filter(|i| !leaving.contains(i))
        .collect();
    let mut out = Vec::new();
    for (id, requires) in holders {
        if leaving.contains(id) {
            continue;
        }
        for r in requires.iter().map(AsRef::as_ref) {
            let before = met_by(graph, r, installed.iter().copied()).is_some();
            if before && met_by(graph, r, after.iter().copied()).is_none() {
                out.push(Dependent {
                    dependent: id.to_string(),
                    requirement: r.to_string(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Supersession {
        let mut s = Supersession::default();
        s.add("C", ["B"]);
        s.add("B", ["A"]);
        s.add("X", ["X2"]);
        s.add("X2", ["X"]);
        s
    }

    #[test]
    fn a_requirement_is_met_by_itself_or_a_superseder_through_a_chain() {
        let g = chain();
        assert!(covers(&g, "A", "A"));
        assert!(covers(&g, "C", "A"));
        assert!(!covers(&g, "A", "C"));
        assert!(!covers(&g, "X", "A"), "a cycle ends the walk");
        assert_eq!(met_by(&g, "A", ["Z", "C"]), Some("C"));
        assert_eq!(unmet(&g, &["A", "Q"], ["C"]), vec!["Q".to_string()]);
    }

    #[test]
    fn taking_away_the_only_provider_names_the_dependent() {
        let g = chain();
        let holders: Vec<(&str, &[&str])> = vec![("D", &["A"]), ("E", &["Q"])];
        let d = dependents_of(&g, &["C"], &["C", "D"], &holders);
        assert_eq!(
            d,
            vec![Dependent {
                dependent: "D".into(),
                requirement: "A".into()
            }]
        );
        // Another provider left: nothing lost.
        assert!(dependents_of(&g, &["C"], &["C", "B", "D"], &holders).is_empty());
        // Leaving together with its dependent: nothing lost.
        assert!(dependents_of(&g, &["C", "D"], &["C", "D"], &holders).is_empty());
    }
}
