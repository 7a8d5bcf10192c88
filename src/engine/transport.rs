//! How the engine reaches a node: one trait, whatever is at the other end.
//! `Local` calls the node store in this process; the protocol transports
//! speak JSON lines to `patchdeck node --root DIR`, as a child process or
//! through OpenSSH. The lifecycle tests run over every transport.

use std::path::{Path, PathBuf};

use crate::engine::inventory::Inventory;
use crate::engine::node::environment::Environment;
use crate::engine::node::{Drift, Listed, Node, NodeError, Report, Service, ServiceStatus};

/// Progress of a long step: bytes or files done of total.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

pub trait Transport: Send {
    /// The node's id, as errors name it.
    fn node(&self) -> &str;
    /// Copies `file` (a verified depot patch) to the node and stages it.
    fn stage(&mut self, id: &str, file: &Path, progress: Progress) -> Result<Report, NodeError>;
    fn install(&mut self, id: &str, save: bool) -> Result<Report, NodeError>;
    fn rollback(&mut self, id: &str) -> Result<Report, NodeError>;
    fn commit(&mut self, id: &str) -> Result<Report, NodeError>;
    fn remove(&mut self, id: &str) -> Result<Report, NodeError>;
    fn list(&mut self) -> Result<Vec<Listed>, NodeError>;
    fn inventory(&mut self) -> Result<Inventory, NodeError>;
    fn verify(&mut self) -> Result<Vec<Drift>, NodeError>;
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
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        progress(0, size);
        let report = self.node.stage(id, file)?;
        progress(size, size);
        Ok(report)
    }

    fn install(&mut self, id: &str, save: bool) -> Result<Report, NodeError> {
        self.node.install(id, save)
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

    fn service(&mut self, set: Option<Service>) -> Result<ServiceStatus, NodeError> {
        match set {
            Some(state) => self.node.set_service(state),
            None => self.node.service(),
        }
    }

    fn environment(&mut self) -> Result<Environment, NodeError> {
        self.node.environment()
    }
}
