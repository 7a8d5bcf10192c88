//! How the engine reaches a node: one trait, whatever is at the other end.
//! `Local` calls the node store in this process; the protocol transports
//! speak JSON lines to `patchdeck node --root DIR`, as a child process or
//! through OpenSSH. The lifecycle tests run over every transport.

use std::path::{Path, PathBuf};

use crate::engine::inventory::Inventory;
use crate::engine::node::environment::Environment;
use crate::engine::node::{
    Drift, Listed, Node, NodeError, Recovery, Report, Service, ServiceStatus,
};
use crate::engine::requirement::{Dependent, Supersession};

/// Progress of a long step: bytes or files done of total.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

pub trait Transport: Send {
    /// The node's id, as errors name it.
    fn node(&self) -> &str;
    /// Copies `file` (a verified depot patch) to the node and stages it.
    fn stage(&mut self, id: &str, file: &Path, progress: Progress) -> Result<Report, NodeError>;
    /// [`Transport::stage`] with the patch's signature (`.minisig` text),
    /// which a node holding trusted keys checks before staging
    /// (docs/trust.md). Transports that cannot carry it stage unsigned,
    /// which such a node refuses.
    fn stage_signed(
        &mut self,
        id: &str,
        file: &Path,
        sig: Option<&str>,
        progress: Progress,
    ) -> Result<Report, NodeError> {
        let _ = sig;
        self.stage(id, file, progress)
    }
    /// Replaces the node's trusted keys with `keys` (public key files'
    /// text); returns how many it now trusts.
    fn trust(&mut self, keys: &[String]) -> Result<usize, NodeError> {
        let _ = keys;
        Err(NodeError {
            node: self.node().to_string(),
            kind: crate::engine::node::ErrorKind::Refused,
            message: "this transport cannot carry trusted keys".into(),
        })
    }
    fn install(&mut self, id: &str, save: bool) -> Result<Report, NodeError> {
        self.install_with(id, save, &Supersession::default())
    }
    /// Installs, telling the node the supersession edges `known` first (the
    /// chains of what it holds and installs, from the console's depot), so
    /// it can see a requirement met through patches it never held.
    fn install_with(
        &mut self,
        id: &str,
        save: bool,
        known: &Supersession,
    ) -> Result<Report, NodeError>;
    fn rollback(&mut self, id: &str) -> Result<Report, NodeError>;
    fn commit(&mut self, id: &str) -> Result<Report, NodeError>;
    fn remove(&mut self, id: &str) -> Result<Report, NodeError>;
    fn list(&mut self) -> Result<Vec<Listed>, NodeError>;
    fn inventory(&mut self) -> Result<Inventory, NodeError>;
    fn verify(&mut self) -> Result<Vec<Drift>, NodeError>;
    /// Tells the node supersession edges from the console's depot (the
    /// chain below a patch it stages), which it keeps.
    fn learn(&mut self, known: &Supersession) -> Result<(), NodeError>;
    /// The applied patches that would lose a requirement if all of
    /// `leaving` were rolled back, by the node's own knowledge (see
    /// `Node::removal_blocked`); empty when they can go.
    fn removal_blocked(&mut self, leaving: &[String]) -> Result<Vec<Dependent>, NodeError>;
    /// Takes the node's notes of interrupted operations its recovery
    /// settled, for the journal (each is given out once).
    fn recovered(&mut self) -> Result<Vec<Recovery>, NodeError>;
    /// Reads the service state, or sets it first (drain: down, restore: up).
    fn service(&mut self, set: Option<Service>) -> Result<ServiceStatus, NodeError>;
    /// The node's environment identity (created once in its store).
    /// Transports that cannot tell refuse, so an offline bundle is never
    /// applied to a node whose identity is unknown.
    fn environment(&mut self) -> Result<Environment, NodeError> {
        Err(NodeError {
            node: self.node().to_string(),
            kind: crate::engine::node::ErrorKind::Refused,
            message: "this transport cannot report the node's environment id".into(),
        })
    }
    /// Whether the node has the free space installing `patches` (those it
    /// has staged) needs; see [`Node::check_install_space`].
    fn check_space(&mut self, patches: &[String]) -> Result<(), NodeError>;
}

/// A node whose root is a directory on this machine, driven in-process.
pub struct Local {
    node: Node,
}

impl Local {
    pub fn open(root: &Path, name: &str) -> Result<Local, NodeError> {
        Ok(Local {
            node: Node::open(root, name)?,
        })
    }

    pub fn root(&self) -> PathBuf {
        self.node.root().to_path_buf()
    }
}

impl Transport for Local {
    fn node(&self) -> &str {
        self.node.name()
    }

    fn stage(&mut self, id: &str, file: &Path, progress: Progress) -> Result<Report, NodeError> {
        self.stage_signed(id, file, None, progress)
    }

    fn stage_signed(
        &mut self,
        id: &str,
        file: &Path,
        sig: Option<&str>,
        progress: Progress,
    ) -> Result<Report, NodeError> {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        progress(0, size);
        let report = self.node.stage_signed(id, file, sig)?;
        progress(size, size);
        Ok(report)
    }

    fn trust(&mut self, keys: &[String]) -> Result<usize, NodeError> {
        self.node.set_trust(keys)
    }

    fn install_with(
        &mut self,
        id: &str,
        save: bool,
        known: &Supersession,
    ) -> Result<Report, NodeError> {
        self.node.install_with(id, save, known)
    }

    fn rollback(&mut self, id: &str) -> Result<Report, NodeError> {
        self.node.rollback(id)
    }

    fn commit(&mut self, id: &str) -> Result<Report, NodeError> {
        self.node.commit(id)
    }

    fn remove(&mut self, id: &str) -> Result<Report, NodeError> {
        self.node.remove(id)
    }

    fn list(&mut self) -> Result<Vec<Listed>, NodeError> {
        self.node.list()
    }

    fn inventory(&mut self) -> Result<Inventory, NodeError> {
        self.node.inventory()
    }

    fn verify(&mut self) -> Result<Vec<Drift>, NodeError> {
        self.node.verify()
    }

    fn recovered(&mut self) -> Result<Vec<Recovery>, NodeError> {
        self.node.take_recovered()
    }

    fn removal_blocked(&mut self, leaving: &[String]) -> Result<Vec<Dependent>, NodeError> {
        self.node.removal_blocked(leaving)
    }

    fn learn(&mut self, known: &Supersession) -> Result<(), NodeError> {
        self.node.learn(known)
    }

    fn service(&mut self, set: Option<Service>) -> Result<ServiceStatus, NodeError> {
        match set {
            Some(state) => self.node.set_service(state),
            None => self.node.service(),
        }
    }

    fn environment(&mut self) -> Result<Environment, NodeError> {
        self.node.environment()
    }

    fn check_space(&mut self, patches: &[String]) -> Result<(), NodeError> {
        self.node.check_install_space(patches)
    }
}
