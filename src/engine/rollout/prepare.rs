//! The rollout use cases both front ends call: what a rollout of some
//! specs installs (prerequisites included) and so what must be replicated
//! first, the plan, whether each member is ready, and the refusal an
//! operator reads when one is not. The command line and the console only
//! gather the request and render the answer, so both say the same words.

use crate::engine::depot::Depot;
use crate::engine::fleet::{Fleet, OnFailure};
use crate::engine::groups;
use crate::engine::lab::Lab;
use crate::engine::select::{self, Reason, Selected};

use super::fleet_env::FleetEnv;
use super::plan::Plan;
use super::run::Env;

/// Why a rollout cannot be planned or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    /// Unknown cluster, or one the partition rule cannot split.
    #[error("{0}")]
    Cluster(String),
    /// A spec names no patch or product, or the selection has problems.
    #[error("{0}")]
    Selection(String),
    /// Some member is not ready; the text names each and what fixes it.
    #[error("{0}")]
    NotReady(String),
}

impl PrepareError {
    /// Bad input (exit 2) rather than a refused operation (exit 1).
    pub fn is_input(&self) -> bool {
        !matches!(self, PrepareError::NotReady(_))
    }
}

/// What an operator asks to roll out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub cluster: String,
    /// Patch ids and product specs, as typed or marked.
    pub specs: Vec<String>,
    /// Roll the patches back instead of installing them.
    pub uninstall: bool,
    /// Groups for a single-site cluster (`None`: the cluster's setting).
    pub groups: Option<usize>,
    /// Overrides the cluster's `on_failure` (`None`: the cluster's).
    pub on_failure: Option<OnFailure>,
    /// `--now --reason TEXT`: start now and go on whatever the cluster's
    /// maintenance windows say, for this reason.
    pub window_override: Option<String>,
}

/// A planned rollout and what the operator should know before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub plan: Plan,
    /// The patches in install order, each with why it is there (named,
    /// autoselected, or a prerequisite of another).
    pub patches: Vec<Selected>,
    /// Things honoured differently than asked (e.g. `--groups` on a
    /// multi-site cluster), one sentence each.
    pub warnings: Vec<String>,
}

/// The patches a rollout of `specs` acts on, in install order. To install:
/// the resolver's selection, prerequisites included (so this is also what
/// must be replicated before the rollout). To uninstall: only what was
/// named or autoselected; prerequisites stay.
///
/// Errors: [`PrepareError::Selection`] naming every problem (unknown id or
/// product, conflicts, missing prerequisites).
pub fn needs(
    depot: &Depot,
    specs: &[String],
    uninstall: bool,
) -> Result<Vec<Selected>, PrepareError> {
    if specs.is_empty() {
        return Err(PrepareError::Selection(
            "name at least one patch or product".into(),
        ));
    }
    let request = select::Request {
        autoselect: true,
        ..select::Request::new(specs.to_vec())
    };
    let selection = select::resolve(&depot.patches, &request);
    if !selection.problems.is_empty() {
        let all: Vec<String> = selection
            .problems
            .iter()
            .map(|p| p.message.clone())
            .collect();
        return Err(PrepareError::Selection(all.join("; ")));
    }
    Ok(selection
        .patches
        .into_iter()
        .filter(|s| !uninstall || !matches!(s.why, Reason::Required { .. }))
        .collect())
}

/// Plans a rollout: the partition, the patches ([`needs`]), the failure
/// policy (the request's, else the cluster's `on_failure`), and every step.
/// Nothing is contacted or changed.
///
/// Errors: [`PrepareError::Cluster`] for an unknown cluster or one that
/// cannot be split, [`PrepareError::Selection`] as in [`needs`].
pub fn prepare(fleet: &Fleet, depot: &Depot, request: &Request) -> Result<Prepared, PrepareError> {
    let cluster = fleet
        .clusters
        .iter()
        .find(|c| c.id == request.cluster)
        .ok_or_else(|| {
            let known: Vec<&str> = fleet.clusters.iter().map(|c| c.id.as_str()).collect();
            PrepareError::Cluster(format!(
                "unknown cluster {:?}; known: {}",
                request.cluster,
                known.join(", ")
            ))
        })?;
    let partition = groups::partition(fleet, &cluster.id, request.groups)
        .map_err(|e| PrepareError::Cluster(e.to_string()))?;
    let warnings: Vec<String> = groups::unused_count(&partition, request.groups)
        .into_iter()
        .collect();
    let patches = needs(depot, &request.specs, request.uninstall)?;
    let ids: Vec<String> = patches.iter().map(|s| s.id.clone()).collect();
    let on_failure = request.on_failure.unwrap_or(cluster.on_failure);
    let mut plan = Plan::new(cluster, &partition, &ids, request.uninstall, on_failure);
    let mut warnings = warnings;
    if request.window_override.is_some() && plan.windows.is_empty() {
        warnings.push(format!(
            "cluster {} has no maintenance windows; --now changes nothing",
            cluster.id
        ));
    } else {
        plan.window_override = request.window_override.clone();
    }
    Ok(Prepared {
        plan,
        patches,
        warnings,
    })
}

/// Whether one member can take part in a rollout now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub node: String,
    /// The plan's patches it lacks (not staged to install, not applied to
    /// uninstall).
    pub missing: Vec<String>,
    /// Why it is not ready, or `None` when it is.
    pub problem: Option<String>,
}

/// Asks every member of the plan whether it is ready: reachable, has what
/// the plan needs, in service and healthy. Members are asked several at a
/// time; the answer is in member order.
pub fn readiness(lab: &Lab, fleet: &Fleet, plan: &Plan) -> Vec<Readiness> {
    let env = FleetEnv::new(lab, fleet, 0);
    let members = plan.all_members();
    let check = |node: &String| -> Readiness {
        let missing = match env.missing(node, plan) {
            Ok(m) => m,
            Err(e) => {
                return Readiness {
                    node: node.clone(),
                    missing: Vec::new(),
                    problem: Some(format!("unreachable: {e}")),
                };
            }
        };
        // The runner's own preflight words, so every check it makes
        // (what is staged, what an uninstall would strand, ...) refuses
        // here first, before anything is recorded.
        let problem = match env.preflight(node, plan) {
            Err(e) => Some(e),
            Ok(()) => env.healthy(node).err().map(|e| format!("not healthy: {e}")),
        };
        Readiness {
            node: node.clone(),
            missing,
            problem,
        }
    };
    crate::engine::ops::bounded_map(&members, crate::engine::ops::DEFAULT_PARALLEL, check)
        .unwrap_or_else(|e| {
            members
                .iter()
                .map(|n| Readiness {
                    node: n.clone(),
                    missing: Vec::new(),
                    problem: Some(format!("not checked: {e}")),
                })
                .collect()
        })
}

/// The refusal for members that are not ready, or `None` when all are:
/// every member with its reason, and the command that replicates what is
/// missing. One line per member, so a console can wrap and scroll it.
pub fn refusal(plan: &Plan, ready: &[Readiness]) -> Option<String> {
    let problems: Vec<&Readiness> = ready.iter().filter(|r| r.problem.is_some()).collect();
    if problems.is_empty() {
        return None;
    }
    let mut lines = vec![format!(
        "not every member of {} is ready; nothing was changed:",
        plan.cluster
    )];
    for r in &problems {
        lines.push(format!(
            "  {}: {}",
            r.node,
            r.problem.as_deref().unwrap_or_default()
        ));
    }
    let mut missing: Vec<String> = Vec::new();
    let mut nodes: Vec<String> = Vec::new();
    for r in problems.iter().filter(|r| !r.missing.is_empty()) {
        nodes.push(r.node.clone());
        for p in &r.missing {
            if !missing.contains(p) {
                missing.push(p.clone());
            }
        }
    }
    if !missing.is_empty() && !plan.uninstall {
        // In the plan's order, which is the install order.
        missing.sort_by_key(|p| plan.patches.iter().position(|q| q == p));
        lines.push(format!(
            "replicate what is missing first: patchdeck replicate {} --nodes {} --wait",
            missing.join(" "),
            nodes.join(",")
        ));
    }
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::groups::{Group, Partition};
    use crate::engine::rollout::fleet_env::missing_words;

    fn plan() -> Plan {
        let cluster: crate::engine::fleet::Cluster = toml::from_str("id = \"c\"").expect("cluster");
        let partition = Partition {
            cluster: "c".into(),
            groups: vec![
                Group {
                    name: "A".into(),
                    members: vec!["a".into()],
                },
                Group {
                    name: "B".into(),
                    members: vec!["b".into(), "c".into()],
                },
            ],
        };
        Plan::new(
            &cluster,
            &partition,
            &["P1".into(), "P2".into()],
            false,
            OnFailure::Rollback,
        )
    }

    #[test]
    fn refusal_names_every_member_and_the_replicate_command_in_install_order() {
        let plan = plan();
        let ready = vec![
            Readiness {
                node: "a".into(),
                missing: vec![],
                problem: None,
            },
            Readiness {
                node: "b".into(),
                missing: vec!["P2".into(), "P1".into()],
                problem: Some(missing_words(&["P2".into(), "P1".into()], false)),
            },
            Readiness {
                node: "c".into(),
                missing: vec![],
                problem: Some("not healthy: service down".into()),
            },
        ];
        let text = refusal(&plan, &ready).expect("refused");
        assert!(text.contains("b: P2, P1 not staged"), "{text}");
        assert!(text.contains("c: not healthy: service down"), "{text}");
        assert!(
            text.contains("patchdeck replicate P1 P2 --nodes b --wait"),
            "{text}"
        );
        assert!(!text.contains("  a:"), "{text}");
        let all_ready: Vec<Readiness> = ready
            .into_iter()
            .map(|r| Readiness { problem: None, ..r })
            .collect();
        assert_eq!(refusal(&plan, &all_ready), None);
    }

    #[test]
    fn steps_are_numbered_from_one() {
        let plan = plan();
        let seqs: Vec<usize> = plan.steps.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, (1..=plan.steps.len()).collect::<Vec<_>>());
        assert_eq!(plan.last_seq(), plan.steps.len());
    }
}
