//! What an operation on a target would touch, decided before it runs, for
//! the console's confirmation dialogs: the nodes the target names (the same
//! rule as the command line's `--nodes`, `--cluster`, `--org`, `--dc`), each
//! patch's state on each as last read, and the refusal the command would
//! give (a member held by a rollout, never all at once). The console shows
//! this, then runs the command, which decides again with fresh state.

use crate::engine::depot::Depot;
use crate::engine::fleet::{Fleet, Targets};
use crate::engine::guard;
use crate::engine::inventory::PatchState;
use crate::engine::ops::Op;
use crate::engine::status::FleetView;

/// One target an operator can pick: all data centers, one data center, one
/// organization, one cluster or one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Dc(String),
    Org(String),
    Cluster(String),
    Node(String),
}

impl Target {
    /// The command-line options naming this target.
    pub fn args(&self) -> Vec<String> {
        let pair = |k: &str, v: &str| vec![k.to_string(), v.to_string()];
        match self {
            Target::All => pair("--dc", "all"),
            Target::Dc(d) => pair("--dc", d),
            Target::Org(o) => pair("--org", o),
            Target::Cluster(c) => pair("--cluster", c),
            Target::Node(n) => pair("--nodes", n),
        }
    }

    /// As the fleet's target rule takes it.
    pub fn targets(&self) -> Targets {
        let mut t = Targets::default();
        match self {
            Target::All => t.dc = Some("all".into()),
            Target::Dc(d) => t.dc = Some(d.clone()),
            Target::Org(o) => t.org = Some(o.clone()),
            Target::Cluster(c) => t.cluster = Some(c.clone()),
            Target::Node(n) => t.nodes = Some(vec![n.clone()]),
        }
        t
    }

    /// How an operator reads it: `data center east`, `node gw-east-1`.
    pub fn describe(&self) -> String {
        match self {
            Target::All => "all data centers".into(),
            Target::Dc(d) => format!("data center {d}"),
            Target::Org(o) => format!("organization {o}"),
            Target::Cluster(c) => format!("cluster {c}"),
            Target::Node(n) => format!("node {n}"),
        }
    }
}

/// Every target of the fleet, in the order a picker lists them: all, each
/// data center, each organization, then (unless `wide_only`) each cluster
/// and each node. Offline nodes are left out: they take bundles.
pub fn targets(fleet: &Fleet, wide_only: bool) -> Vec<(Target, usize)> {
    let online = || fleet.nodes.iter().filter(|n| !n.offline);
    let mut out = vec![(Target::All, online().count())];
    for d in &fleet.datacenters {
        out.push((
            Target::Dc(d.id.clone()),
            online().filter(|n| n.dc == d.id).count(),
        ));
    }
    for o in &fleet.organizations {
        out.push((
            Target::Org(o.id.clone()),
            online().filter(|n| n.org == o.id).count(),
        ));
    }
    if !wide_only {
        for c in &fleet.clusters {
            let n = online()
                .filter(|n| n.cluster.as_ref() == Some(&c.id))
                .count();
            out.push((Target::Cluster(c.id.clone()), n));
        }
        for n in online() {
            out.push((Target::Node(n.id.clone()), 1));
        }
    }
    out
}

/// One node of a preview: its id and each patch's state there as last
/// read (`None`: not read).
pub type NodeStates = (String, Vec<(String, Option<PatchState>)>);

/// What the preview found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub nodes: Vec<NodeStates>,
    /// Why the command would refuse, in its own words.
    pub refusal: Option<String>,
}

/// Previews `op` of `patches` on `target`. An unknown target is a refusal.
pub fn preview(
    fleet: &Fleet,
    depot: &Depot,
    view: &FleetView,
    held: Option<&rusqlite::Connection>,
    op: Op,
    patches: &[String],
    target: &Target,
) -> Preview {
    let nodes: Vec<&crate::engine::fleet::Node> = match fleet.targets(&target.targets()) {
        Ok(nodes) => nodes.into_iter().filter(|n| !n.offline).collect(),
        Err(e) => {
            return Preview {
                nodes: Vec::new(),
                refusal: Some(e.to_string()),
            };
        }
    };
    let mut refusal = guard::never_all_at_once(op, patches, &nodes, depot)
        .err()
        .map(|r| r.to_string());
    if refusal.is_none()
        && let Some(conn) = held
    {
        refusal = guard::rollout_holds(conn, op, &nodes)
            .err()
            .map(|r| r.to_string());
    }
    if nodes.is_empty() && refusal.is_none() {
        refusal = Some(format!("{} has no online node", target.describe()));
    }
    let nodes = nodes
        .iter()
        .map(|n| {
            let seen = view.node(&n.id).filter(|v| v.error.is_none());
            let states = patches
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        seen.map(|v| v.patches.get(p).copied().unwrap_or_default()),
                    )
                })
                .collect();
            (n.id.clone(), states)
        })
        .collect();
    Preview { nodes, refusal }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_the_same_nodes_as_its_command_line_options() {
        let fleet = crate::engine::demo::fleet(20);
        for (target, count) in targets(&fleet, false) {
            let args = target.args();
            assert_eq!(args.len(), 2, "{args:?}");
            let nodes = fleet.targets(&target.targets()).unwrap();
            assert_eq!(
                nodes.iter().filter(|n| !n.offline).count(),
                count,
                "{target:?}"
            );
        }
    }
}
