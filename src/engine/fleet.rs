//! `fleet.toml`: data centers, organizations, clusters and nodes, and how
//! each node is reached.

use std::path::Path;

/// The text of `path`; bytes that are not UTF-8 are an error at their line
/// and byte offset.
fn read_text(path: &Path) -> Result<String, FleetError> {
    let bytes = std::fs::read(path).map_err(|e| FleetError {
        path: path.display().to_string(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    crate::engine::text::utf8(bytes).map_err(|(line, message)| FleetError {
        path: path.display().to_string(),
        line: Some(line),
        message,
    })
}

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
    /// `[ssh]`: how `ssh` nodes are reached (fleet-wide defaults).
    #[serde(default, skip_serializing_if = "SshConfig::is_default")]
    pub ssh: SshConfig,
}

/// The fleet-wide `[ssh]` table: how the console runs the system's `ssh`
/// to reach nodes given by `ssh = "HOST"`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// Extra arguments for `ssh` (and `scp`, for `bootstrap`), before the
    /// destination: `-F FILE`, `-i KEY`, `-J JUMP`, `-o KEY=VALUE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The patchdeck binary on the nodes (where `bootstrap` puts it).
    #[serde(default = "default_remote_patchdeck")]
    pub patchdeck: String,
    /// Seconds to reach a node and finish the handshake.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds of silence allowed while an operation runs (each progress
    /// event from the node starts the count again).
    #[serde(default = "default_op_timeout")]
    pub op_timeout_secs: u64,
    /// One master connection per host, shared by every session to it
    /// (OpenSSH's ControlMaster/ControlPersist).
    #[serde(default = "yes")]
    pub multiplex: bool,
    /// Run the remote patchdeck through `sudo -n` (nodes may override).
    #[serde(default)]
    pub sudo: bool,
    /// The login user where a node's `ssh` names none (default: ssh's own,
    /// from ~/.ssh/config or the local user name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Default for SshConfig {
    fn default() -> SshConfig {
        SshConfig {
            options: Vec::new(),
            patchdeck: default_remote_patchdeck(),
            connect_timeout_secs: default_connect_timeout(),
            op_timeout_secs: default_op_timeout(),
            multiplex: true,
            sudo: false,
            user: None,
        }
    }
}

impl SshConfig {
    pub fn is_default(&self) -> bool {
        *self == SshConfig::default()
    }
}

fn default_remote_patchdeck() -> String {
    "/usr/local/bin/patchdeck".into()
}

fn default_connect_timeout() -> u64 {
    10
}

fn default_op_timeout() -> u64 {
    300
}

fn yes() -> bool {
    true
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
    /// Run for each member when it is drained / restored, besides marking
    /// its service down / up; `{node}` is replaced by the node id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
    /// What a rollout does with the group it was patching when a step
    /// fails (default: roll it back and restore it).
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Maintenance windows (`[[cluster.window]]`): when set, a rollout
    /// drains a group only inside one, before its cutoff.
    #[serde(default, rename = "window", skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<crate::engine::window::WindowSpec>,
}

/// A cluster's policy for a failed rollout step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Roll the failed group's changed members back and restore the group,
    /// so every group serves again.
    #[default]
    Rollback,
    /// Leave the failed group as it is (drained) for inspection; an abort
    /// restores it.
    Halt,
}

impl OnFailure {
    /// The word used in fleet.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Halt => "halt",
        }
    }
}

fn one() -> usize {
    1
}

fn default_deadline() -> u64 {
    120
}

/// `groups = "per-site"`: the one word `groups` takes besides a count.
pub const PER_SITE: &str = "per-site";
/// Bounds of a cluster's `parallel` (members installed at once).
pub const PARALLEL: (u64, u64) = (1, 1000);
/// Bounds of `health_deadline_secs`: a day is longer than any wait for a
/// member an operator means, and keeps every deadline far from overflow.
pub const DEADLINE_SECS: (u64, u64) = (1, 86_400);
/// Bounds of `min_healthy_secs`.
pub const MIN_HEALTHY_SECS: (u64, u64) = (0, 86_400);
/// The most groups a cluster may be split into.
pub const MAX_GROUPS: usize = 1000;
/// The most a `[node.demo] slow_ms` may add to a step: a day.
pub const MAX_SLOW_MS: u64 = 86_400_000;
/// The cluster keys with bounds, for the documentation and messages.
pub const CLUSTER_LIMITS: [(&str, (u64, u64)); 3] = [
    ("parallel", PARALLEL),
    ("health_deadline_secs", DEADLINE_SECS),
    ("min_healthy_secs", MIN_HEALTHY_SECS),
];

/// A node id must be addressable in a `--nodes a,b` list: one word of any
/// characters but blanks, control characters and `,` (which separates ids
/// there), not starting with `-` (it would read as an option).
///
/// Errors: the message names the id, the character not allowed, and what
/// an id may hold.
pub fn check_node_id(id: &str) -> Result<(), String> {
    let q = crate::engine::text::quoted;
    const ALLOWED: &str = "a node id is one word of any characters but blanks, control characters and ',' (which separates ids in --nodes), not starting with '-'";
    if id.is_empty() {
        return Err(format!("a node id is empty; {ALLOWED}"));
    }
    if let Some(c) = id
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err(format!("node id {} contains {c:?}; {ALLOWED}", q(id)));
    }
    if id.starts_with('-') {
        return Err(format!("node id {} starts with '-'; {ALLOWED}", q(id)));
    }
    Ok(())
}

/// Why node `id`'s root `root` clashes with node `other`'s: the same
/// directory (`same`), inside it (`inside`), or holding it.
fn root_clash(id: &str, root: &str, other: &str, same: bool, inside: bool) -> String {
    if same {
        format!(
            "node {id}: root {root} is also the root of node {other}; two nodes cannot share a root"
        )
    } else if inside {
        format!(
            "node {id}: root {root} is inside the root of node {other}; a node's root cannot hold another node's"
        )
    } else {
        format!(
            "node {id}: root {root} holds the root of node {other}; a node's root cannot hold another node's"
        )
    }
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
    /// Remote node reached with the system's `ssh`: `HOST`, `USER@HOST`,
    /// `USER@HOST:PORT` or `[V6ADDR]:PORT` (see [`SshDest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<String>,
    /// With `ssh`: the directory the remote node patches (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_root: Option<String>,
    /// With `ssh`: run the remote patchdeck through `sudo -n` or not,
    /// whatever `[ssh] sudo` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
    /// On an offline site: the console cannot stage onto it directly;
    /// patches reach it through `snapshot` → `prepare` → `apply` (seed 003).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offline: bool,
    /// Products this kind of node carries (informational; the node's own
    /// database is the truth).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
    /// Knobs for demonstrations and tests: slow a member down, or make its
    /// install or health check fail.
    #[serde(default, skip_serializing_if = "Knobs::is_default")]
    pub demo: Knobs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Added to every rollout step on this member, in milliseconds.
    #[serde(default)]
    pub slow_ms: u64,
    #[serde(default)]
    pub fail_install: bool,
    #[serde(default)]
    pub fail_health: bool,
}

impl Knobs {
    pub fn is_default(&self) -> bool {
        *self == Knobs::default()
    }
}

/// Where an ssh node is: `HOST`, `USER@HOST`, `USER@HOST:PORT`,
/// `[V6ADDR]:PORT` or a bare IPv6 address (several colons: no port).
/// `HOST` may be an alias `~/.ssh/config` knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshDest {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshDest {
    /// Reads a node's `ssh` value; the error says what is wrong with it.
    /// A host or user starting with `-` is refused: ssh would take it for
    /// an option.
    pub fn parse(text: &str) -> Result<SshDest, String> {
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("no spaces or control characters allowed".into());
        }
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) => {
                SshDest::check_user(user)?;
                (Some(user.to_string()), rest)
            }
            None => (None, text),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or("an address opened with `[` needs its `]`")?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("unexpected {after:?} after `]`")),
                },
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host, Some(port)),
                // An IPv6 address without brackets has no port.
                _ => (rest, None),
            }
        };
        if host.is_empty() {
            return Err("the host is missing".into());
        }
        if host.starts_with('-') {
            return Err("a host cannot start with `-`".into());
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("port {p:?} is not a number from 1 to 65535")),
            },
        };
        Ok(SshDest {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// A login name ssh can be given.
    pub fn check_user(user: &str) -> Result<(), String> {
        if user.is_empty() {
            return Err("the user before `@` is empty".into());
        }
        if user.starts_with('-') {
            return Err("a user cannot start with `-`".into());
        }
        if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("no spaces or control characters allowed in a user".into());
        }
        Ok(())
    }
}

/// A target naming something the fleet does not have: bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("unknown node {0:?}; `patchdeck nodes` lists them")]
    UnknownNode(String),
    #[error("unknown cluster {name:?}; known: {known}")]
    UnknownCluster { name: String, known: String },
    #[error("unknown organization {name:?}; known: {known}")]
    UnknownOrganization { name: String, known: String },
    #[error("unknown datacenter {name:?}; known: {known}")]
    UnknownDatacenter { name: String, known: String },
}

/// Which nodes a command acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub nodes: Option<Vec<String>>,
    pub cluster: Option<String>,
    pub org: Option<String>,
    /// A datacenter id, or `all`.
    pub dc: Option<String>,
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_none() && self.cluster.is_none() && self.org.is_none() && self.dc.is_none()
    }
}

/// Where in `fleet.toml` a problem is: the `index`th `[[table]]`, its
/// `key` (`None`: the table itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub table: &'static str,
    pub index: usize,
    pub key: Option<&'static str>,
}

impl At {
    fn key(table: &'static str, index: usize, key: &'static str) -> At {
        At {
            table,
            index,
            key: Some(key),
        }
    }

    /// `index` of a plain `[table]` (such as `[ssh]`), which is no array.
    pub const PLAIN: usize = usize::MAX;

    /// The line of this place in `text`, falling back to the table.
    pub fn line(&self, text: &str) -> Option<usize> {
        use crate::engine::tomlspan::{Seg, line_at};
        if self.index == At::PLAIN {
            let table = Seg::Key(self.table);
            return self
                .key
                .and_then(|k| line_at(text, &[table, Seg::Key(k)]))
                .or_else(|| line_at(text, &[table]));
        }
        let table = [Seg::Key(self.table), Seg::Index(self.index)];
        self.key
            .and_then(|k| line_at(text, &[table[0], table[1], Seg::Key(k)]))
            .or_else(|| line_at(text, &table))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct FleetError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl Fleet {
    /// Reads and checks `fleet.toml`: every error names the line and what
    /// is wrong (duplicate ids or roots, unknown data centers,
    /// organizations or clusters, a node with no way to reach it).
    pub fn load(path: &Path) -> Result<Fleet, FleetError> {
        let text = read_text(path)?;
        Fleet::parse(&text).map_err(|(line, message)| FleetError {
            path: path.display().to_string(),
            line,
            message,
        })
    }

    /// [`Fleet::load`], then every local node's `root` (relative to `base`,
    /// the lab) must be an existing directory, and no two nodes may share
    /// one once links and `..` are resolved. A missing root is never
    /// created: it is an error at the line of that `root`.
    pub fn load_in(path: &Path, base: &Path) -> Result<Fleet, FleetError> {
        let text = read_text(path)?;
        let fleet = Fleet::parse(&text).map_err(|(line, message)| FleetError {
            path: path.display().to_string(),
            line,
            message,
        })?;
        fleet
            .check_roots(base)
            .map_err(|(at, message)| FleetError {
                path: path.display().to_string(),
                line: at.line(&text),
                message,
            })?;
        Ok(fleet)
    }

    pub fn parse(text: &str) -> Result<Fleet, (Option<usize>, String)> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let fleet: Fleet = toml::from_str(text).map_err(|e| {
            (
                e.span()
                    .map(|s| crate::engine::tomlspan::line_of(text, s.start)),
                crate::engine::text::cap_pieces(e.message().trim()).into_owned(),
            )
        })?;
        fleet
            .check()
            .map_err(|(at, message)| (at.line(text), message))?;
        fleet.check_windows(text)?;
        Ok(fleet)
    }

    /// Every `[[cluster.window]]` table parses ([`crate::engine::window`]);
    /// an error names the line of the bad key, the cluster and what was
    /// expected.
    fn check_windows(&self, text: &str) -> Result<(), (Option<usize>, String)> {
        use crate::engine::tomlspan::{Seg, line_at};
        for (i, c) in self.clusters.iter().enumerate() {
            if let Err((j, e)) = crate::engine::window::Schedule::parse(&c.windows) {
                let table = [
                    Seg::Key("cluster"),
                    Seg::Index(i),
                    Seg::Key("window"),
                    Seg::Index(j),
                ];
                let key = [table[0], table[1], table[2], table[3], Seg::Key(e.key())];
                let line = line_at(text, &key).or_else(|| line_at(text, &table));
                return Err((line, format!("cluster {}: window {}: {e}", c.id, j + 1)));
            }
        }
        Ok(())
    }

    /// Local roots exist and are distinct, as the file system sees them.
    fn check_roots(&self, base: &Path) -> Result<(), (At, String)> {
        let mut seen: Vec<(std::path::PathBuf, &str)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(root) = &n.root else {
                continue;
            };
            let at = At::key("node", i, "root");
            let path = if Path::new(root).is_absolute() {
                std::path::PathBuf::from(root)
            } else {
                base.join(root)
            };
            let real = match std::fs::canonicalize(&path) {
                Ok(p) if p.is_dir() => p,
                Ok(_) => {
                    return Err((
                        at,
                        format!("node {}: root {} is not a directory", n.id, path.display()),
                    ));
                }
                Err(e) => {
                    return Err((
                        at,
                        format!(
                            "node {}: root {} does not exist ({e}); create it or correct the path",
                            n.id,
                            path.display()
                        ),
                    ));
                }
            };
            if let Some((p, other)) = seen
                .iter()
                .find(|(p, _)| real.starts_with(p) || p.starts_with(&real))
            {
                let shown = real.display().to_string();
                return Err((
                    at,
                    root_clash(&n.id, &shown, other, *p == real, real.starts_with(p)),
                ));
            }
            seen.push((real, &n.id));
        }
        Ok(())
    }

    /// Cross-reference checks; on failure, where and what.
    fn check(&self) -> Result<(), (At, String)> {
        fn unique<'a>(
            kind: &'static str,
            ids: impl Iterator<Item = &'a String>,
        ) -> Result<(), (At, String)> {
            let mut seen = std::collections::HashSet::new();
            for (i, id) in ids.enumerate() {
                let at = At::key(kind, i, "id");
                if id.is_empty() {
                    return Err((at, format!("a {kind} has an empty id")));
                }
                if id.chars().any(char::is_control) {
                    return Err((
                        at,
                        format!(
                            "{kind} id {} holds a control character (a line break, a tab, NUL); ids are one line of text",
                            crate::engine::text::quoted(id)
                        ),
                    ));
                }
                if !seen.insert(id) {
                    return Err((
                        at,
                        format!(
                            "duplicate {kind} id {}; ids must be unique",
                            crate::engine::text::quoted(id)
                        ),
                    ));
                }
            }
            Ok(())
        }
        unique("datacenter", self.datacenters.iter().map(|d| &d.id))?;
        unique("organization", self.organizations.iter().map(|o| &o.id))?;
        unique("cluster", self.clusters.iter().map(|c| &c.id))?;
        unique("node", self.nodes.iter().map(|n| &n.id))?;
        for (i, n) in self.nodes.iter().enumerate() {
            check_node_id(&n.id).map_err(|m| (At::key("node", i, "id"), m))?;
        }
        self.check_ssh_table()?;
        self.check_clusters()?;
        let q = crate::engine::text::quoted;
        let mut roots: Vec<(std::path::PathBuf, &str)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !self.datacenters.iter().any(|d| d.id == n.dc) {
                return Err((
                    At::key("node", i, "dc"),
                    format!(
                        "node {}: unknown datacenter {}; declare it in a [[datacenter]] table",
                        q(&n.id),
                        q(&n.dc)
                    ),
                ));
            }
            if !self.organizations.iter().any(|o| o.id == n.org) {
                return Err((
                    At::key("node", i, "org"),
                    format!(
                        "node {}: unknown organization {}; declare it in an [[organization]] table",
                        q(&n.id),
                        q(&n.org)
                    ),
                ));
            }
            if let Some(c) = &n.cluster
                && !self.clusters.iter().any(|k| &k.id == c)
            {
                return Err((
                    At::key("node", i, "cluster"),
                    format!(
                        "node {}: unknown cluster {}; declare it in a [[cluster]] table",
                        q(&n.id),
                        q(c)
                    ),
                ));
            }
            let ways: Vec<&str> = [
                n.root.as_ref().map(|_| "root"),
                n.command.as_ref().map(|_| "command"),
                n.ssh.as_ref().map(|_| "ssh"),
            ]
            .into_iter()
            .flatten()
            .collect();
            match ways.as_slice() {
                [] => {
                    return Err((
                        At {
                            table: "node",
                            index: i,
                            key: None,
                        },
                        format!(
                            "node {}: no root (local directory), command (node protocol) or ssh (host) to reach it",
                            q(&n.id)
                        ),
                    ));
                }
                [_] => {}
                [_, second, ..] => {
                    return Err((
                        At::key("node", i, second),
                        format!(
                            "node {}: give exactly one of root, command or ssh, not {}",
                            q(&n.id),
                            ways.join(" and ")
                        ),
                    ));
                }
            }
            self.check_ssh_node(i, n)?;
            // The same root written twice (checked again on disk, with
            // links resolved, by `load_in`).
            if let Some(root) = &n.root {
                let norm: std::path::PathBuf = Path::new(root)
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                if let Some((r, other)) = roots
                    .iter()
                    .find(|(r, _)| norm.starts_with(r) || r.starts_with(&norm))
                {
                    return Err((
                        At::key("node", i, "root"),
                        root_clash(&n.id, &q(root), other, *r == norm, norm.starts_with(r)),
                    ));
                }
                roots.push((norm, &n.id));
            }
        }
        Ok(())
    }

    /// Every cluster's counts and times are inside their bounds
    /// ([`CLUSTER_LIMITS`]), and `groups` is a count of at least two or
    /// `"per-site"`; a node's `[node.demo] slow_ms` is at most a day.
    fn check_clusters(&self) -> Result<(), (At, String)> {
        for (i, c) in self.clusters.iter().enumerate() {
            let q = crate::engine::text::quoted;
            for (key, value, (min, max), unit) in [
                ("parallel", c.parallel as u64, PARALLEL, "members"),
                (
                    "health_deadline_secs",
                    c.health_deadline_secs,
                    DEADLINE_SECS,
                    "s",
                ),
                (
                    "min_healthy_secs",
                    c.min_healthy_secs,
                    MIN_HEALTHY_SECS,
                    "s",
                ),
            ] {
                if value < min || value > max {
                    return Err((
                        At::key("cluster", i, key),
                        format!(
                            "cluster {}: {key} = {value} is out of range; expected {min} to {max} ({unit})",
                            q(&c.id)
                        ),
                    ));
                }
            }
            match &c.groups {
                Some(Grouping::Count(n)) if !(2..=MAX_GROUPS).contains(n) => {
                    return Err((
                        At::key("cluster", i, "groups"),
                        format!(
                            "cluster {}: groups = {n} is out of range; expected a count from 2 to {MAX_GROUPS}, or \"per-site\"",
                            q(&c.id)
                        ),
                    ));
                }
                Some(Grouping::PerSite(word)) if word != PER_SITE => {
                    return Err((
                        At::key("cluster", i, "groups"),
                        format!(
                            "cluster {}: groups = {}; expected a count from 2 to {MAX_GROUPS}, or \"per-site\"",
                            q(&c.id),
                            q(word)
                        ),
                    ));
                }
                _ => {}
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.demo.slow_ms > MAX_SLOW_MS {
                return Err((
                    At::key("node", i, "demo"),
                    format!(
                        "node {}: [node.demo] slow_ms = {} is out of range; expected 0 to {MAX_SLOW_MS} (a day)",
                        crate::engine::text::quoted(&n.id),
                        n.demo.slow_ms
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `[ssh]` table's values are usable.
    fn check_ssh_table(&self) -> Result<(), (At, String)> {
        let at = |key: &'static str| At {
            table: "ssh",
            index: At::PLAIN,
            key: Some(key),
        };
        let ssh = &self.ssh;
        // A day is longer than any wait an operator means; beyond it ssh
        // itself refuses the value at the first connection.
        const MAX_SECS: u64 = 86_400;
        for (key, v) in [
            ("connect_timeout_secs", ssh.connect_timeout_secs),
            ("op_timeout_secs", ssh.op_timeout_secs),
        ] {
            if v > MAX_SECS {
                return Err((
                    at(key),
                    format!("[ssh] {key} = {v} is more than a day ({MAX_SECS} s)"),
                ));
            }
        }
        if ssh.connect_timeout_secs == 0 {
            return Err((
                at("connect_timeout_secs"),
                "[ssh] connect_timeout_secs must be at least 1".into(),
            ));
        }
        if ssh.op_timeout_secs == 0 {
            return Err((
                at("op_timeout_secs"),
                "[ssh] op_timeout_secs must be at least 1".into(),
            ));
        }
        if ssh.patchdeck.trim().is_empty() || ssh.patchdeck.chars().any(char::is_control) {
            return Err((
                at("patchdeck"),
                "[ssh] patchdeck must be the path of the patchdeck binary on the nodes".into(),
            ));
        }
        if let Some(o) = ssh.options.iter().find(|o| o.is_empty()) {
            return Err((
                at("options"),
                format!("[ssh] options: an empty argument ({o:?}) is not an ssh option"),
            ));
        }
        if let Some(user) = &ssh.user {
            SshDest::check_user(user).map_err(|m| (at("user"), format!("[ssh] user: {m}")))?;
        }
        Ok(())
    }

    /// A node's `ssh`, `remote_root` and `sudo` agree with each other.
    fn check_ssh_node(&self, i: usize, n: &Node) -> Result<(), (At, String)> {
        let q = crate::engine::text::quoted;
        let Some(dest) = &n.ssh else {
            for (key, set) in [
                ("remote_root", n.remote_root.is_some()),
                ("sudo", n.sudo.is_some()),
            ] {
                if set {
                    return Err((
                        At::key("node", i, key),
                        format!("node {}: {key} belongs to nodes reached by ssh", q(&n.id)),
                    ));
                }
            }
            return Ok(());
        };
        SshDest::parse(dest).map_err(|m| {
            (
                At::key("node", i, "ssh"),
                format!("node {}: ssh = {}: {m}", q(&n.id), q(dest)),
            )
        })?;
        if let Some(root) = &n.remote_root
            && (!root.starts_with('/') || root.chars().any(char::is_control))
        {
            return Err((
                At::key("node", i, "remote_root"),
                format!(
                    "node {}: remote_root must be an absolute directory path on the node",
                    q(&n.id)
                ),
            ));
        }
        Ok(())
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Nodes chosen by `--nodes`, `--cluster`, or `--org` with `--dc`, in
    /// the order given; `--dc DC` alone is every node there, `--dc all` alone
    /// every node. Unknown names are an error naming them.
    pub fn targets(&self, t: &Targets) -> Result<Vec<&Node>, TargetError> {
        let known = |ids: Vec<&str>| ids.join(", ");
        let mut out: Vec<&Node> = Vec::new();
        if let Some(list) = &t.nodes {
            for id in list {
                let node = self
                    .node(id)
                    .ok_or_else(|| TargetError::UnknownNode(id.clone()))?;
                if !out.iter().any(|n| n.id == node.id) {
                    out.push(node);
                }
            }
        }
        if let Some(c) = &t.cluster {
            if !self.clusters.iter().any(|k| &k.id == c) {
                return Err(TargetError::UnknownCluster {
                    name: c.clone(),
                    known: known(self.clusters.iter().map(|k| k.id.as_str()).collect()),
                });
            }
            out.extend(self.nodes.iter().filter(|n| n.cluster.as_ref() == Some(c)));
        }
        if let Some(o) = &t.org {
            if !self.organizations.iter().any(|k| &k.id == o) {
                return Err(TargetError::UnknownOrganization {
                    name: o.clone(),
                    known: known(self.organizations.iter().map(|k| k.id.as_str()).collect()),
                });
            }
            out.extend(self.nodes.iter().filter(|n| &n.org == o));
        }
        let alone = t.nodes.is_none() && t.cluster.is_none() && t.org.is_none();
        if t.dc.as_deref() == Some("all") && alone {
            out.extend(self.nodes.iter());
        }
        if let Some(dc) = t.dc.as_deref().filter(|d| *d != "all") {
            if !self.datacenters.iter().any(|k| k.id == dc) {
                return Err(TargetError::UnknownDatacenter {
                    name: dc.to_string(),
                    known: known(self.datacenters.iter().map(|k| k.id.as_str()).collect()),
                });
            }
            if alone {
                out.extend(self.nodes.iter());
            }
            out.retain(|n| n.dc == dc);
        }
        Ok(out)
    }

    #[cfg(test)]
    pub fn load_str(text: &str) -> Fleet {
        toml::from_str(text).expect("test fleet parses")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a fleet always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[[datacenter]]\nid = \"east\"\n\n[[organization]]\nid = \"retail\"\n";

    fn node(id: &str, root: &str) -> String {
        format!("\n[[node]]\nid = \"{id}\"\ndc = \"east\"\norg = \"retail\"\nroot = \"{root}\"\n")
    }

    #[test]
    fn the_same_root_spelt_twice_is_refused_at_the_second() {
        for (a, b) in [
            ("nodes/a", "nodes/a"),
            ("nodes/a", "./nodes/a"),
            ("nodes/a/", "nodes//a"),
        ] {
            let text = format!("{HEAD}{}{}", node("n1", a), node("n2", b));
            let (line, message) = Fleet::parse(&text).unwrap_err();
            let second = text.lines().position(|l| l.contains("\"n2\"")).unwrap() + 1;
            assert_eq!(line, Some(second + 3), "{a} / {b}: {message}");
            assert!(message.contains("share a root"), "{message}");
        }
    }

    #[test]
    fn ssh_destinations_read_as_ssh_would() {
        let d = |user: Option<&str>, host: &str, port: Option<u16>| SshDest {
            user: user.map(String::from),
            host: host.into(),
            port,
        };
        for (text, want) in [
            ("gw-7.example", d(None, "gw-7.example", None)),
            ("ops@gw-7", d(Some("ops"), "gw-7", None)),
            ("ops@10.0.0.7:2222", d(Some("ops"), "10.0.0.7", Some(2222))),
            ("[fe80::1]:22", d(None, "fe80::1", Some(22))),
            ("ops@[::1]", d(Some("ops"), "::1", None)),
            ("2001:db8::7", d(None, "2001:db8::7", None)),
            ("a@corp@gw", d(Some("a@corp"), "gw", None)),
        ] {
            assert_eq!(SshDest::parse(text), Ok(want), "{text}");
        }
        for (text, says) in [
            ("", "host is missing"),
            ("-oProxyCommand=x", "cannot start with `-`"),
            ("-l@gw", "user cannot start"),
            ("gw:0", "port"),
            ("gw:99999", "port"),
            ("gw:ssh", "port"),
            ("[::1", "`]`"),
            ("[::1]x", "after `]`"),
            ("@gw", "user before `@` is empty"),
            ("gw 7", "spaces"),
        ] {
            let e = SshDest::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn an_ssh_node_is_checked_at_its_line() {
        let ssh = |extra: &str| {
            format!("{HEAD}\n[[node]]\nid = \"n1\"\ndc = \"east\"\norg = \"retail\"\n{extra}\n")
        };
        let ok = Fleet::parse(&ssh(
            "ssh = \"ops@gw:2222\"\nremote_root = \"/srv\"\nsudo = true",
        ));
        assert!(ok.is_ok(), "{ok:?}");
        let line_of = |text: &str, needle: &str| {
            text.lines().position(|l| l.starts_with(needle)).unwrap() + 1
        };
        for (extra, key, says) in [
            (
                "ssh = \"gw\"\nroot = \"a\"",
                "ssh",
                "exactly one of root, command or ssh",
            ),
            ("ssh = \"gw:x\"", "ssh", "port"),
            (
                "root = \"a\"\nremote_root = \"/\"",
                "remote_root",
                "belongs to nodes reached by ssh",
            ),
            (
                "command = \"x\"\nsudo = true",
                "sudo",
                "belongs to nodes reached by ssh",
            ),
        ] {
            let text = ssh(extra);
            let (line, message) = Fleet::parse(&text).unwrap_err();
            assert!(message.contains(says), "{extra}: {message}");
            assert_eq!(line, Some(line_of(&text, key)), "{extra}: {message}");
        }
        let text = format!("{}\n[ssh]\nop_timeout_secs = 0\n", ssh("ssh = \"gw\""));
        let (line, message) = Fleet::parse(&text).unwrap_err();
        assert!(message.contains("op_timeout_secs"), "{message}");
        assert_eq!(line, Some(line_of(&text, "op_timeout_secs")));
        let text = format!("{}\n[ssh]\nmultiplex = \"yes\"\n", ssh("ssh = \"gw\""));
        let (line, _) = Fleet::parse(&text).unwrap_err();
        assert_eq!(line, Some(line_of(&text, "multiplex")));
    }

    #[test]
    fn the_ssh_table_round_trips_and_defaults_are_not_written() {
        let text = format!(
            "{HEAD}\n[ssh]\noptions = [\"-F\", \"cfg\"]\nsudo = true\nuser = \"ops\"\n\n[[node]]\nid = \"n1\"\ndc = \"east\"\norg = \"retail\"\nssh = \"gw\"\n"
        );
        let fleet = Fleet::parse(&text).unwrap();
        assert_eq!(fleet.ssh.options, ["-F", "cfg"]);
        assert_eq!(fleet.ssh.patchdeck, "/usr/local/bin/patchdeck");
        assert!(fleet.ssh.multiplex && fleet.ssh.sudo);
        assert_eq!(Fleet::parse(&fleet.to_toml()).unwrap(), fleet);
        let plain = Fleet::parse(&format!("{HEAD}{}", node("n1", "a"))).unwrap();
        assert!(!plain.to_toml().contains("[ssh]"));
    }

    #[test]
    fn a_bad_window_is_reported_at_its_key() {
        let text = format!(
            "{HEAD}\n[[cluster]]\nid = \"c\"\n\n[[cluster.window]]\ncron = \"0 2 * * SAT\"\nduration = \"4h\"\n\n[[cluster.window]]\ncron = \"0 3 * * SUN\"\nduration = \"1h\"\ncutoff = \"1h\"\ntz = \"Europe/Berlin\"\n"
        );
        let (line, message) = Fleet::parse(&text).unwrap_err();
        let cutoff = text.lines().position(|l| l.starts_with("cutoff")).unwrap() + 1;
        assert_eq!(line, Some(cutoff), "{message}");
        assert!(message.contains("cluster c: window 2: cutoff"), "{message}");
        let good = text.replace("cutoff = \"1h\"", "cutoff = \"15m\"");
        let fleet = Fleet::parse(&good).expect("good windows");
        assert_eq!(fleet.clusters[0].windows.len(), 2);
        let zone = good.replace("Europe/Berlin", "Europe/Atlantis");
        let (line, message) = Fleet::parse(&zone).unwrap_err();
        let tz = zone.lines().position(|l| l.starts_with("tz")).unwrap() + 1;
        assert_eq!(line, Some(tz), "{message}");
        assert!(message.contains("IANA"), "{message}");
    }

    #[test]
    fn an_ssh_timeout_beyond_a_day_and_an_id_with_a_line_break_are_refused_at_their_line() {
        let text = format!(
            "[ssh]\nconnect_timeout_secs = 99999999999\n{HEAD}{}",
            node("n1", "a")
        );
        let (line, message) = Fleet::parse(&text).unwrap_err();
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains("more than a day"), "{message}");
        let text = format!("{HEAD}{}", node(r"n1\u0000x", "a"));
        let (line, message) = Fleet::parse(&text).unwrap_err();
        assert!(line.is_some(), "{message}");
        assert!(message.contains("control character"), "{message}");
    }

    #[test]
    fn a_duplicate_id_is_reported_at_the_duplicate() {
        let text = format!("{HEAD}{}{}", node("n1", "a"), node("n1", "b"));
        let (line, message) = Fleet::parse(&text).unwrap_err();
        let second = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("\"n1\""))
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert_eq!(line, Some(second), "{message}");
    }
}
