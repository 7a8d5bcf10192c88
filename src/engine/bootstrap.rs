//! `patchdeck bootstrap`: puts this console's own binary on ssh nodes, at
//! `[ssh] patchdeck`, where it is missing or another version. The copy
//! travels with the system's `scp` over the same ssh options (and master
//! connection) as the node protocol, lands beside its destination under a
//! temporary name, and replaces the old binary only once its SHA-256 matches
//! and it has run there (`--version`) and named this version. Nodes already
//! on this version are left alone.
//!
//! Once the binary is in place, [`provision`] runs: the hook where other
//! things a new node needs from the console (the lab's trusted keys) go.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::fleet;
use crate::engine::lab::Lab;
use crate::engine::node::{ErrorKind, NodeError};
use crate::engine::ops;
use crate::engine::reach::{own_version, remote_version};
use crate::engine::ssh::{self, SshTarget};
use crate::engine::transport::Transport;

/// What bootstrap did on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// This version was there already: nothing copied.
    Present,
    /// The binary was missing and has been put there.
    Copied,
    /// Another version was there and has been replaced.
    Replaced,
}

/// One node's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placed {
    pub id: String,
    pub action: Action,
    /// The version found before (`None`: missing).
    pub before: Option<String>,
    /// The version there now.
    pub version: String,
    /// Where on the node.
    pub path: String,
    /// What [`provision`] did after, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Bootstraps `nodes` with the binary `exe` (this program), at most
/// `parallel` at a time; one result per node, in order. Nodes not reached
/// by ssh are refused ([`ErrorKind::Refused`]): a local node runs this very
/// binary, and a `command` node's binary is wherever its command says.
pub fn bootstrap(
    lab: &Lab,
    nodes: &[&fleet::Node],
    exe: &Path,
    parallel: usize,
) -> Vec<Result<Placed, NodeError>> {
    // Hashed once, and only if some node needs a copy.
    let digest = std::sync::OnceLock::new();
    let digest = || {
        digest
            .get_or_init(|| sha256_file(exe).map_err(|e| e.to_string()))
            .clone()
    };
    ops::for_each_node(nodes, parallel, |n| {
        if n.ssh.is_none() {
            return Err(NodeError {
                node: n.id.clone(),
                kind: ErrorKind::Refused,
                message: "not reached by ssh: bootstrap puts the binary on ssh nodes only".into(),
            });
        }
        let target = SshTarget::new(lab, ssh::settings(lab), n)?;
        place(lab, &target, exe, &digest)
    })
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(hex::encode(h.finalize())),
            n => h.update(buf.get(..n).unwrap_or_default()),
        }
    }
}

fn place(
    lab: &Lab,
    t: &SshTarget,
    exe: &Path,
    digest: &dyn Fn() -> Result<String, String>,
) -> Result<Placed, NodeError> {
    let want = own_version();
    let path = t.config.patchdeck.clone();
    let before = remote_version(t)?;
    let mut placed = Placed {
        id: t.node.clone(),
        action: Action::Present,
        before: before.clone(),
        version: want.clone(),
        path: path.clone(),
        notes: Vec::new(),
    };
    if before.as_deref() != Some(want.as_str()) {
        let digest = digest().map_err(|e| failed(t, format!("reading {}: {e}", exe.display())))?;
        copy_verified(t, exe, &digest, &want)?;
        let now = remote_version(t)?;
        if now.as_deref() != Some(want.as_str()) {
            return Err(failed(
                t,
                format!(
                    "after the copy, {path} on {} reports {} instead of {want}",
                    t.shown(),
                    now.as_deref().unwrap_or("nothing")
                ),
            ));
        }
        placed.action = if before.is_some() {
            Action::Replaced
        } else {
            Action::Copied
        };
    }
    let mut node = t.connect()?;
    placed.notes = provision(lab, t, &mut node)?;
    Ok(placed)
}

/// Copies `exe` to a temporary name on the node, checks it there (size and
/// SHA-256, then that it runs and names version `want`) and only then moves
/// it over `[ssh] patchdeck`. A copy that fails a check is deleted.
fn copy_verified(t: &SshTarget, exe: &Path, digest: &str, want: &str) -> Result<(), NodeError> {
    let q = |s: &str| {
        shlex::try_quote(s)
            .map(|c| c.into_owned())
            .unwrap_or_default()
    };
    let path = &t.config.patchdeck;
    if !path.contains('/') {
        return Err(failed(
            t,
            format!(
                "[ssh] patchdeck = {path:?} names no directory; set it to the path the binary should have on the nodes"
            ),
        ));
    }
    let pid = std::process::id();
    let sudo = if t.sudo { "sudo -n " } else { "" };
    // Through sudo the login user cannot write beside the destination: the
    // copy waits in its home directory until sudo moves it.
    let temp = if t.sudo {
        format!(".patchdeck-bootstrap-{pid}")
    } else {
        format!("{path}.new-{pid}")
    };
    let dir = Path::new(path)
        .parent()
        .map(|d| d.display().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| ".".into());
    let limit = Duration::from_secs(
        t.config
            .connect_timeout_secs
            .max(1)
            .saturating_add(t.config.op_timeout_secs.max(1)),
    );
    let prepare = format!("{sudo}mkdir -p -- {}", q(&dir));
    let out = t.run(&prepare, b"", limit)?;
    if !out.status.success() {
        return Err(failed(
            t,
            format!(
                "cannot create {dir} on {}: {}",
                t.shown(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    t.copy(exe, &temp, limit)?;
    let size = std::fs::metadata(exe).map(|m| m.len()).unwrap_or(0);
    let (tq, pq) = (q(&temp), q(path));
    let install = if t.sudo {
        format!(
            "{sudo}install -m 0755 -- \"$t\" {pq}.new && {sudo}mv -f -- {pq}.new {pq} && rm -f -- \"$t\""
        )
    } else {
        format!("mv -f -- \"$t\" {pq}")
    };
    let script = format!(
        "t={tq}\n\
         fail() {{ rm -f -- \"$t\"; echo \"$1\" >&2; exit 3; }}\n\
         size=$(wc -c < \"$t\" | tr -d ' ')\n\
         [ \"$size\" = {size} ] || fail \"arrived with $size bytes instead of {size}\"\n\
         sum=$( (sha256sum -- \"$t\" 2>/dev/null || shasum -a 256 -- \"$t\") | cut -d ' ' -f 1)\n\
         [ \"$sum\" = {digest} ] || fail \"arrived with sha256 $sum instead of {digest}\"\n\
         chmod 0755 -- \"$t\" || fail 'cannot make it executable'\n\
         v=$(\"$t\" --version 2>&1) || fail \"it does not run there: $v\"\n\
         [ \"$v\" = {} ] || fail \"it names itself $v\"\n\
         {install}\n",
        q(&format!("patchdeck {want}"))
    );
    let out = t.run("sh -s", script.as_bytes(), limit)?;
    if !out.status.success() {
        return Err(failed(
            t,
            format!(
                "the copy to {path} on {} was refused and deleted: {}",
                t.shown(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

fn failed(t: &SshTarget, message: String) -> NodeError {
    NodeError {
        node: t.node.clone(),
        kind: ErrorKind::Io,
        message,
    }
}

/// What a node gets from the console once its binary is in place, over
/// the node protocol (`node` is open and has shaken hands): the lab's
/// trusted keys, as `trust push` sends them, so the node refuses to stage
/// what they did not sign (docs/trust.md). A lab that trusts no key sends
/// none. Returns one line per thing done, for the report.
pub fn provision(
    lab: &Lab,
    target: &SshTarget,
    node: &mut dyn Transport,
) -> Result<Vec<String>, NodeError> {
    let gate = crate::engine::trust::Gate::for_lab(lab).map_err(|e| NodeError {
        node: target.node.clone(),
        kind: ErrorKind::Invalid,
        message: format!("the lab's trusted keys: {e}"),
    })?;
    if gate.keyring.keys.is_empty() {
        return Ok(Vec::new());
    }
    let n = ops::push_trust(node, &gate.keyring.keys)?;
    Ok(vec![format!("{n} trusted key(s) pushed")])
}
