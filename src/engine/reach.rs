//! Whether each node can be reached, and which patchdeck answers there:
//! what `patchdeck nodes --check` reports. Every node is tried (a few at a
//! time, each within its deadlines); one that cannot be reached is
//! reported with the reason, and the others go on.

use serde::Serialize;

use crate::engine::fleet;
use crate::engine::lab::Lab;
use crate::engine::node::{ErrorKind, NodeError};
use crate::engine::ops;
use crate::engine::protocol::{self, PROTOCOL, SOFTWARE};
use crate::engine::ssh::{self, SshTarget};

/// One node's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    /// How the node is reached: `local`, `command` or `ssh`.
    pub via: &'static str,
    /// The node's host answered and let us in (its patchdeck may still be
    /// missing or speak another protocol: see `error`).
    pub reachable: bool,
    /// The node's patchdeck version (`0.1.0`), when known.
    pub version: Option<String>,
    /// The protocol version it speaks, when known.
    pub protocol: Option<u64>,
    /// What is wrong; `None` when the node can be worked on.
    pub error: Option<String>,
    /// The kind of what is wrong (`unreachable`, `host_key`, `login`,
    /// `missing`, `version`, ...).
    pub problem: Option<ErrorKind>,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// `patchdeck X.Y.Z` → `X.Y.Z`.
pub fn version_of(software: &str) -> String {
    software
        .trim()
        .strip_prefix("patchdeck ")
        .unwrap_or(software.trim())
        .to_string()
}

/// This console's version, as a node check shows it.
pub fn own_version() -> String {
    version_of(SOFTWARE)
}

/// Checks `nodes`, at most `parallel` at once, in order. With
/// `accept_new`, an ssh host whose key is not yet known has it recorded
/// (OpenSSH's `StrictHostKeyChecking=accept-new`); a changed key is still
/// refused.
pub fn check(lab: &Lab, nodes: &[&fleet::Node], accept_new: bool, parallel: usize) -> Vec<Check> {
    ops::for_each_node(nodes, parallel, |n| check_one(lab, n, accept_new))
}

fn check_one(lab: &Lab, n: &fleet::Node, accept_new: bool) -> Check {
    let mut c = Check {
        id: n.id.clone(),
        via: if n.root.is_some() {
            "local"
        } else if n.command.is_some() {
            "command"
        } else {
            "ssh"
        },
        reachable: false,
        version: None,
        protocol: None,
        error: None,
        problem: None,
    };
    if let Some(root) = &n.root {
        match crate::engine::transport::Local::open(&lab.resolve_root(root), &n.id) {
            Ok(_) => {
                c.reachable = true;
                c.version = Some(own_version());
                c.protocol = Some(PROTOCOL);
            }
            Err(e) => {
                c.problem = Some(e.kind);
                c.error = Some(e.to_string());
            }
        }
        return c;
    }
    let opened = match (&n.command, &n.ssh) {
        (Some(command), _) => ops::remote_command(lab, command, &n.id),
        (None, Some(_)) => SshTarget::new(lab, ssh::settings(lab), n).and_then(|mut t| {
            t.accept_new = accept_new;
            let r = t.connect();
            if let Err(e) = &r
                && e.kind == ErrorKind::Version
            {
                // Which patchdeck is there, from the binary itself.
                c.version = remote_version(&t).ok().flatten();
            }
            r
        }),
        (None, None) => Err(NodeError {
            node: n.id.clone(),
            kind: ErrorKind::Invalid,
            message: "no root, command or ssh in fleet.toml".into(),
        }),
    };
    match opened {
        Ok(remote) => {
            c.reachable = true;
            let hello = remote.hello();
            c.version = Some(version_of(&hello.server));
            c.protocol = Some(hello.protocol);
        }
        Err(e) => {
            c.reachable = !matches!(
                e.kind,
                ErrorKind::Unreachable | ErrorKind::HostKey | ErrorKind::Login
            );
            if e.kind == ErrorKind::Version {
                c.protocol = protocol::node_protocol(&e.message);
            }
            c.problem = Some(e.kind);
            c.error = Some(e.to_string());
        }
    }
    c
}

/// The version `patchdeck --version` prints on the node (`Ok(None)`: the
/// binary is not there). Errors: ssh could not run it (unreachable, host
/// key, login), or it ran and failed otherwise.
pub fn remote_version(t: &SshTarget) -> Result<Option<String>, NodeError> {
    let limit = std::time::Duration::from_secs(
        t.config
            .connect_timeout_secs
            .max(1)
            .saturating_add(t.config.op_timeout_secs.max(1)),
    );
    let out = t.run(&t.patchdeck_line(&["--version"]), b"", limit)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stdout.trim().starts_with("patchdeck ") {
        return Ok(Some(version_of(&stdout)));
    }
    match t.explain(Some(out.status), &stderr) {
        Some((ErrorKind::Missing, _)) => Ok(None),
        Some((kind, message)) => Err(NodeError {
            node: t.node.clone(),
            kind,
            message,
        }),
        None => Err(NodeError {
            node: t.node.clone(),
            kind: ErrorKind::Missing,
            message: format!(
                "{} --version on {} did not print a patchdeck version ({}): {}",
                t.config.patchdeck,
                t.shown(),
                out.status,
                stderr.trim()
            ),
        }),
    }
}
