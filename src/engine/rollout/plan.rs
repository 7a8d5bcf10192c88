//! A rollout's plan: the ordered steps, decided once and journaled, so a
//! resumed rollout runs exactly the steps that are left.

use serde::{Deserialize, Serialize};

use crate::engine::fleet::{Cluster, OnFailure};
use crate::engine::groups::Partition;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Every member has what it needs and is healthy.
    Preflight,
    /// A cluster hook before the first group (e.g. disable image cloning).
    HookBefore,
    /// Take a member out of service (only while every other group is healthy).
    Drain,
    /// Install the patches (or roll them back, for an uninstall).
    Apply,
    /// Put a member back in service.
    Restore,
    /// Wait until the group is healthy in time and stays healthy.
    Healthy,
    /// Undo this rollout's change on a member of a failed group.
    Revert,
    /// A cluster hook after the last group (e.g. enable image cloning).
    HookAfter,
    /// Every member ends with the same applied patches.
    Consistency,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Preflight => "preflight",
            StepKind::HookBefore => "hook_before",
            StepKind::Drain => "drain",
            StepKind::Apply => "apply",
            StepKind::Restore => "restore",
            StepKind::Healthy => "healthy",
            StepKind::Revert => "revert",
            StepKind::HookAfter => "hook_after",
            StepKind::Consistency => "consistency",
        }
    }

    pub fn parse(s: &str) -> Option<StepKind> {
        [
            StepKind::Preflight,
            StepKind::HookBefore,
            StepKind::Drain,
            StepKind::Apply,
            StepKind::Restore,
            StepKind::Healthy,
            StepKind::Revert,
            StepKind::HookAfter,
            StepKind::Consistency,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Steps that act on one member.
    pub fn per_member(self) -> bool {
        matches!(
            self,
            StepKind::Drain | StepKind::Apply | StepKind::Restore | StepKind::Revert
        )
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step's number, from 1: the same in the plan, the journal,
    /// status, failures and the console.
    pub seq: usize,
    pub kind: StepKind,
    /// Group name, for group and member steps.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Node id, for member steps.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// What the step does, as an operator would run it by hand.
    pub command: String,
}

/// Everything a rollout needs, fixed when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub cluster: String,
    pub patches: Vec<String>,
    pub uninstall: bool,
    /// What happens to the group being patched when a step fails.
    #[serde(default)]
    pub on_failure: OnFailure,
    pub parallel: usize,
    pub health_deadline_secs: u64,
    pub min_healthy_secs: u64,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub drain_command: Option<String>,
    pub restore_command: Option<String>,
    pub groups: Vec<crate::engine::groups::Group>,
    pub steps: Vec<Step>,
    /// The cluster's maintenance windows when the rollout was planned: a
    /// group is drained only inside one, before its cutoff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<crate::engine::window::WindowSpec>,
    /// `rollout start --now --reason TEXT`: the windows do not apply to
    /// this rollout, for this reason (journaled with the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_override: Option<String>,
}

impl Plan {
    pub fn new(
        cluster: &Cluster,
        partition: &Partition,
        patches: &[String],
        uninstall: bool,
        on_failure: OnFailure,
    ) -> Plan {
        let mut plan = Plan {
            cluster: cluster.id.clone(),
            patches: patches.to_vec(),
            uninstall,
            on_failure,
            parallel: cluster.parallel.max(1),
            health_deadline_secs: cluster.health_deadline_secs,
            min_healthy_secs: cluster.min_healthy_secs,
            before: cluster.before.clone(),
            after: cluster.after.clone(),
            drain_command: cluster.drain.clone(),
            restore_command: cluster.restore.clone(),
            groups: partition.groups.clone(),
            steps: Vec::new(),
            windows: cluster.windows.clone(),
            window_override: None,
        };
        let list = patches.join(" ");
        let verb = if uninstall { "rollback" } else { "install" };
        let members = partition
            .groups
            .iter()
            .flat_map(|g| g.members.iter())
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        let need = if uninstall { "applied" } else { "staged" };
        plan.push(
            StepKind::Preflight,
            "",
            "",
            format!("check {list} is {need} and every member healthy on {members}"),
        );
        for hook in &cluster.before {
            plan.push(StepKind::HookBefore, "", "", hook.clone());
        }
        for g in &partition.groups {
            for n in &g.members {
                let extra = cluster
                    .drain
                    .as_deref()
                    .map(|c| format!("; {}", c.replace("{node}", n)))
                    .unwrap_or_default();
                plan.push(
                    StepKind::Drain,
                    &g.name,
                    n,
                    format!("drain {n}: service down{extra}"),
                );
            }
            for n in &g.members {
                plan.push(
                    StepKind::Apply,
                    &g.name,
                    n,
                    format!("patchdeck {verb} {list} --nodes {n}"),
                );
            }
            for n in &g.members {
                let extra = cluster
                    .restore
                    .as_deref()
                    .map(|c| format!("; {}", c.replace("{node}", n)))
                    .unwrap_or_default();
                plan.push(
                    StepKind::Restore,
                    &g.name,
                    n,
                    format!("restore {n}: service up{extra}"),
                );
            }
            plan.push(
                StepKind::Healthy,
                &g.name,
                "",
                format!(
                    "wait until group {} is healthy within {} s and stays healthy {} s",
                    g.name, cluster.health_deadline_secs, cluster.min_healthy_secs
                ),
            );
        }
        for hook in &cluster.after {
            plan.push(StepKind::HookAfter, "", "", hook.clone());
        }
        plan.push(
            StepKind::Consistency,
            "",
            "",
            format!(
                "check every member of {} has the same applied patches",
                cluster.id
            ),
        );
        plan
    }

    pub fn push(&mut self, kind: StepKind, group: &str, node: &str, command: String) {
        let seq = self.steps.len() + 1;
        self.steps.push(Step {
            seq,
            kind,
            group: group.to_string(),
            node: node.to_string(),
            command,
        });
    }

    /// The number of the plan's last step; steps after it were added
    /// while running (a rollback, an abort's restores, closing hooks).
    pub fn last_seq(&self) -> usize {
        self.steps.last().map_or(0, |s| s.seq)
    }

    /// Whether the plan waits for maintenance windows (it has some and no
    /// override).
    pub fn windowed(&self) -> bool {
        !self.windows.is_empty() && self.window_override.is_none()
    }

    /// Whether a failed group is rolled back.
    pub fn rolls_back(&self) -> bool {
        self.on_failure == OnFailure::Rollback
    }

    pub fn members(&self, group: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.name == group)
            .flat_map(|g| g.members.clone())
            .collect()
    }

    pub fn all_members(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| g.members.clone()).collect()
    }
}
