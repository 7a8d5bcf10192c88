//! `fleet.toml`: data centers, organizations, clusters and nodes, and how
//! each node is reached.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    #[serde(default, rename = "datacenter")]
    pub datacenters: Vec<Datacenter>,
    #[serde(default, rename = "organization")]
    pub organizations: Vec<Organization>,
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<Cluster>,
    #[serde(default, rename = "node")]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datacenter {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// How a cluster is split into logical groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Grouping {
    /// A fixed number of groups of near-equal size.
    Count(usize),
    /// `"per-site"`: one group per site (the default when members span sites).
    PerSite(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Grouping>,
    /// Members installed at once inside a group.
    #[serde(default = "one")]
    pub parallel: usize,
    /// Seconds a member has to become healthy after restore.
    #[serde(default = "default_deadline")]
    pub health_deadline_secs: u64,
    /// Seconds a member must stay healthy before the next group starts.
    #[serde(default)]
    pub min_healthy_secs: u64,
    /// Commands run before the first group and after the last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

fn one() -> usize {
    1
}

fn default_deadline() -> u64 {
    120
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Primary,
    Secondary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    pub dc: String,
    pub org: String,
    #[serde(default)]
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Member name inside the cluster, `SITE_MEMBER` (e.g. `1_2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default)]
    pub role: Role,
    /// Local node: the root directory it patches (relative to the lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Remote node: a command that speaks the node protocol on stdio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Products this kind of node carries (informational; the node's own
    /// database is the truth).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct FleetError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Fleet {
    pub fn load(path: &Path) -> Result<Fleet, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|e| FleetError {
            path: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        toml::from_str(&text).map_err(|e| FleetError {
            path: path.display().to_string(),
            line: e
                .span()
                .map(|s| crate::engine::manifest::line_of(&text, s.start)),
            message: e.message().trim().to_string(),
        })
    }

    #[cfg(test)]
    pub fn load_str(text: &str) -> Fleet {
        toml::from_str(text).expect("test fleet parses")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a fleet always serialises")
    }
}
