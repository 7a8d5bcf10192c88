//! Same release across a cluster (seed 003: every server of a cluster must
//! be on the same release). Drift is any difference between members in the
//! patches they have installed or in their component versions. `drift`
//! reports it, and a rollout's preflight asks [`rollout_gate`] whether it
//! may start on a drifted cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::engine::components::components_of;
use crate::engine::fleet::Fleet;
use crate::engine::inventory::Inventory;
use crate::engine::journal::Journal;
use crate::engine::lab::Lab;
use crate::engine::version;

/// One thing that differs between members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// A patch installed (applied, committed or superseded) on some members
    /// and not on the others.
    Patch {
        patch: String,
        /// Members that have it.
        on: Vec<String>,
        /// Members that do not.
        missing_on: Vec<String>,
    },
    /// A component at different versions (`null`: not installed there).
    Component {
        component: String,
        versions: BTreeMap<String, Option<String>>,
    },
}

impl Difference {
    /// One line for people: what differs, on which member.
    pub fn describe(&self) -> String {
        match self {
            Difference::Patch {
                patch,
                on,
                missing_on,
            } => format!(
                "patch {patch}: on {}; missing on {}",
                on.join(", "),
                missing_on.join(", ")
            ),
            Difference::Component {
                component,
                versions,
            } => {
                let each: Vec<String> = versions
                    .iter()
                    .map(|(m, v)| format!("{m} {}", v.as_deref().unwrap_or("absent")))
                    .collect();
                format!("component {component}: {}", each.join(", "))
            }
        }
    }
}

/// A member that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    pub node: String,
    pub error: String,
}

/// The drift of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub cluster: String,
    /// Members compared, in fleet order.
    pub members: Vec<String>,
    /// True when the members read differ.
    pub drifted: bool,
    pub differences: Vec<Difference>,
    /// Members that could not be read (not compared).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<Unreachable>,
}

/// Compares members' inventories: installed patch sets and component
/// versions (in the one version order, so `1.2` and `1.2.0` agree). Pure.
pub fn compare(cluster: &str, members: &[Inventory]) -> Report {
    let names: Vec<String> = members.iter().map(|m| m.node.clone()).collect();
    let mut differences = Vec::new();

    let installed: Vec<BTreeSet<&str>> = members
        .iter()
        .map(|m| {
            m.patches
                .iter()
                .filter(|(_, s)| s.is_installed())
                .map(|(id, _)| id.as_str())
                .collect()
        })
        .collect();
    let all: BTreeSet<&str> = installed.iter().flatten().copied().collect();
    for patch in all {
        let (on, missing): (Vec<usize>, Vec<usize>) =
            (0..members.len()).partition(|&i| installed[i].contains(patch));
        if !missing.is_empty() {
            differences.push(Difference::Patch {
                patch: patch.to_string(),
                on: on.iter().map(|&i| names[i].clone()).collect(),
                missing_on: missing.iter().map(|&i| names[i].clone()).collect(),
            });
        }
    }

    let versions: Vec<BTreeMap<String, String>> = members
        .iter()
        .map(|m| {
            components_of(m)
                .into_iter()
                .map(|c| (c.component, c.installed))
                .collect()
        })
        .collect();
    let all: BTreeSet<&String> = versions.iter().flat_map(|v| v.keys()).collect();
    for component in all {
        let each: Vec<Option<&String>> = versions.iter().map(|v| v.get(component)).collect();
        let first = each.first().copied().flatten();
        let same = each.iter().all(|v| match (v, first) {
            (Some(a), Some(b)) => version::equal(a, b),
            (None, None) => true,
            _ => false,
        });
        if !same {
            differences.push(Difference::Component {
                component: component.clone(),
                versions: names
                    .iter()
                    .cloned()
                    .zip(each.into_iter().map(|v| v.cloned()))
                    .collect(),
            });
        }
    }
    Report {
        cluster: cluster.to_string(),
        members: names,
        drifted: !differences.is_empty(),
        differences,
        unreachable: Vec::new(),
    }
}

/// Why a rollout cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    /// The cluster differs in ways this rollout would not level.
    #[error(
        "cluster {cluster} has drifted (members differ), and this rollout would not bring it \
         level: {}; see `patchdeck drift --cluster {cluster}`, or pass --allow-drift to roll \
         out anyway",
        blocking.join("; ")
    )]
    Drifted {
        cluster: String,
        blocking: Vec<String>,
    },
}

/// Reads every reachable member of `cluster` and compares them.
/// Errors: the cluster is not in the fleet.
pub fn cluster_report(lab: &Lab, fleet: &Fleet, cluster: &str) -> Result<Report, DriftError> {
    if !fleet.clusters.iter().any(|c| c.id == cluster) {
        return Err(DriftError::UnknownCluster(cluster.to_string()));
    }
    let nodes: Vec<&crate::engine::fleet::Node> = fleet
        .nodes
        .iter()
        .filter(|n| n.cluster.as_deref() == Some(cluster))
        .collect();
    let read =
        crate::engine::components::inventories(lab, &nodes, crate::engine::ops::DEFAULT_PARALLEL);
    let mut invs = Vec::new();
    let mut unreachable = Vec::new();
    for (node, r) in nodes.iter().zip(read) {
        match r {
            Ok(inv) => invs.push(inv),
            Err(e) => unreachable.push(Unreachable {
                node: node.id.clone(),
                error: e.to_string(),
            }),
        }
    }
    let mut report = compare(cluster, &invs);
    report.unreachable = unreachable;
    Ok(report)
}

/// The differences a rollout of `patches` would not level: every
/// difference except a patch of the rollout itself that some members
/// already have, and a component such a patch is for, provided the members
/// without any of the rollout's patches for it agree on its version.
/// `component_of_patch` names the component a patch id is for.
pub fn blocking(
    report: &Report,
    members: &[Inventory],
    patches: &[String],
    component_of_patch: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let rolled: BTreeSet<&str> = patches.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for d in &report.differences {
        let excused = match d {
            Difference::Patch { patch, .. } => rolled.contains(patch.as_str()),
            Difference::Component {
                component,
                versions,
            } => {
                let ours: Vec<&str> = patches
                    .iter()
                    .filter(|p| component_of_patch(p).as_deref() == Some(component.as_str()))
                    .map(String::as_str)
                    .collect();
                let behind: Vec<Option<&String>> = members
                    .iter()
                    .filter(|m| !ours.iter().any(|p| m.state(p).is_installed()))
                    .map(|m| versions.get(&m.node).and_then(|v| v.as_ref()))
                    .collect();
                !ours.is_empty()
                    && behind.windows(2).all(|w| match (w[0], w[1]) {
                        (Some(a), Some(b)) => version::equal(a, b),
                        (None, None) => true,
                        _ => false,
                    })
            }
        };
        if !excused {
            out.push(d.describe());
        }
    }
    out
}

/// What the rollout preflight learned about drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The members are level, or differ only in what this rollout levels.
    Clear,
    /// The cluster has drifted and `--allow-drift` lets the rollout start;
    /// the note says what differs (the preview shows it, the journal
    /// records it).
    Allowed(String),
}

/// The rollout preflight's drift check (seed 003: all servers of a cluster
/// on the same release). Refuses a drifted cluster unless `allow`; drift
/// made only of members already having some of `patches` (the rollout's
/// patch ids, resolved) does not block. With `allow` and `record`, the
/// journal records that the drift was allowed. `component_of_patch`
/// names the component a patch id is for (from the depot or a bundle). Members that cannot be read
/// are left to the rollout's own preflight. Errors: [`DriftError`].
pub fn rollout_gate(
    lab: &Lab,
    fleet: &Fleet,
    component_of_patch: &dyn Fn(&str) -> Option<String>,
    cluster: &str,
    patches: &[String],
    allow: bool,
    record: bool,
) -> Result<Gate, DriftError> {
    let nodes: Vec<&crate::engine::fleet::Node> = fleet
        .nodes
        .iter()
        .filter(|n| n.cluster.as_deref() == Some(cluster))
        .collect();
    if !fleet.clusters.iter().any(|c| c.id == cluster) {
        return Err(DriftError::UnknownCluster(cluster.to_string()));
    }
    let invs: Vec<Inventory> =
        crate::engine::components::inventories(lab, &nodes, crate::engine::ops::DEFAULT_PARALLEL)
            .into_iter()
            .filter_map(Result::ok)
            .collect();
    let report = compare(cluster, &invs);
    let blocking = blocking(&report, &invs, patches, component_of_patch);
    if blocking.is_empty() {
        return Ok(Gate::Clear);
    }
    if !allow {
        return Err(DriftError::Drifted {
            cluster: cluster.to_string(),
            blocking,
        });
    }
    let note = format!(
        "cluster {cluster} has drifted; rolling out anyway (--allow-drift): {}",
        blocking.join("; ")
    );
    if record {
        // The journal is the audit trail; failing to write it must not
        // pass silently, but it does not undo the operator's decision.
        if let Err(e) = Journal::open(lab, "rollout start --allow-drift")
            .and_then(|j| j.record(cluster, "-", "allow-drift", true, &note))
        {
            return Ok(Gate::Allowed(format!("{note} (journal not written: {e})")));
        }
    }
    Ok(Gate::Allowed(note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::PatchState;

    fn inv(node: &str, patches: &[&str], version: &str) -> Inventory {
        Inventory {
            node: node.into(),
            products: [("gw".to_string(), "1.0".to_string())].into(),
            components: [("gw.core".to_string(), version.to_string())].into(),
            patches: patches
                .iter()
                .map(|p| (p.to_string(), PatchState::Applied))
                .collect(),
        }
    }

    #[test]
    fn level_members_have_no_drift() {
        let r = compare("c", &[inv("a", &["P1"], "1.1"), inv("b", &["P1"], "1.1.0")]);
        assert!(!r.drifted, "{r:?}");
    }

    #[test]
    fn differences_name_the_members() {
        let members = [inv("a", &["P1", "P2"], "1.2"), inv("b", &["P1"], "1.1")];
        let r = compare("c", &members);
        assert!(r.drifted);
        assert_eq!(
            r.differences[0],
            Difference::Patch {
                patch: "P2".into(),
                on: vec!["a".into()],
                missing_on: vec!["b".into()],
            }
        );
        assert!(r.differences[1].describe().contains("a 1.2, b 1.1"));
        let comp = |_: &str| Some("gw.core".to_string());
        // Rolling out P2 levels the cluster: nothing blocks.
        assert!(blocking(&r, &members, &["P2".into()], &comp).is_empty());
        // Rolling out something else leaves the drift: both block.
        assert_eq!(blocking(&r, &members, &["P3".into()], &comp).len(), 2);
    }

    #[test]
    fn behind_members_that_disagree_still_block() {
        let members = [
            inv("a", &["P2"], "1.2"),
            inv("b", &[], "1.1"),
            inv("c", &[], "1.0"),
        ];
        let r = compare("c", &members);
        let comp = |_: &str| Some("gw.core".to_string());
        let b = blocking(&r, &members, &["P2".into()], &comp);
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(b[0].starts_with("component gw.core"));
    }
}
