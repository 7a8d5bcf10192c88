//! Reading a node: its service state, patch states, inventory, list,
//! pending restarts, verify against saved checksums, and a digest of its state.

use std::fs;

use crate::engine::archive;
use crate::engine::inventory::{Inventory, PatchState};
use crate::engine::manifest::Restart;
use crate::engine::requirement::{self, Supersession};
use store::PatchRow;

use super::*;

impl Node {
    /// The node's service: up or down (drained), since when, and the
    /// strongest restart installed changes still wait for.
    pub fn service(&self) -> Result<ServiceStatus> {
        let (state, since) = self.db(store::service_state(&self.conn))?;
        let state = if state == "down" {
            Service::Down
        } else {
            Service::Up
        };
        Ok(ServiceStatus {
            state,
            since,
            pending_restart: self.pending_restart()?,
        })
    }

    /// Drains (down) or restores (up) the node's service. Bringing it up
    /// restarts it, which settles pending service restarts; bringing a
    /// drained node back up is also how the demo simulates its reboot, so
    /// that settles pending reboots too (a rollout restarts members only
    /// while their group is drained).
    pub fn set_service(&mut self, state: Service) -> Result<ServiceStatus> {
        let _lock = self.lock(
            if state == Service::Up {
                "restore"
            } else {
                "drain"
            },
            "-",
        )?;
        self.recover()?;
        let was_down = self.service()?.state == Service::Down;
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(store::set_service_state(&tx, state.as_str()))?;
        if state == Service::Up && was_down {
            self.db(tx.execute("DELETE FROM pending_restart", []))?;
        } else if state == Service::Up {
            self.db(tx.execute("DELETE FROM pending_restart WHERE kind='service'", []))?;
        }
        self.db(tx.commit())?;
        self.service()
    }

    pub fn state(&self, id: &str) -> Result<PatchState> {
        Ok(self
            .db(store::patch(&self.conn, id))?
            .map(|r| r.state)
            .unwrap_or_default())
    }

    /// The node's environment (id created once in its store, host name);
    /// see [`environment`]. Errors: the id file cannot be read or written.
    pub fn environment(&self) -> Result<environment::Environment> {
        let id = self.io("environment id", environment::ensure(&self.store_dir()))?;
        Ok(environment::Environment {
            id,
            host: environment::host_name(),
        })
    }

    pub fn inventory(&self) -> Result<Inventory> {
        let mut inv = Inventory {
            node: self.name.clone(),
            ..Inventory::default()
        };
        inv.products = self.db(store::products(&self.conn))?.into_iter().collect();
        inv.components = self
            .db(store::components(&self.conn))?
            .into_iter()
            .collect();
        inv.patches = self
            .db(store::patches(&self.conn))?
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect();
        Ok(inv)
    }

    pub fn list(&self) -> Result<Vec<Listed>> {
        let pending: std::collections::HashMap<String, String> = self
            .db(store::pending_restarts(&self.conn))?
            .into_iter()
            .map(|(p, k, _)| (p, k))
            .collect();
        Ok(self
            .db(store::patches(&self.conn))?
            .into_iter()
            .map(|r| Listed {
                pending_restart: pending.get(&r.id).map(|k| {
                    if k == "reboot" {
                        Restart::Reboot
                    } else {
                        Restart::Service
                    }
                }),
                patch: r.id,
                state: r.state,
                committed: r.committed,
                staged_at: r.staged_at,
                applied_at: r.applied_at,
                superseded_by: r.superseded_by,
            })
            .collect())
    }

    /// The strongest restart any installed change still waits for.
    pub fn pending_restart(&self) -> Result<Restart> {
        let rows = self.db(store::pending_restarts(&self.conn))?;
        Ok(rows
            .iter()
            .map(|(_, k, _)| {
                if k == "reboot" {
                    Restart::Reboot
                } else {
                    Restart::Service
                }
            })
            .max()
            .unwrap_or_default())
    }

    /// Compares every installed file with what the database says it holds.
    pub fn verify(&self) -> Result<Vec<Drift>> {
        let mut owner: std::collections::BTreeMap<String, (i64, String, String)> =
            Default::default();
        for row in self.db(store::patches(&self.conn))? {
            if !row.state.is_installed() {
                continue;
            }
            for f in self.db(store::files(&self.conn, &row.id))? {
                let seq = row.seq.unwrap_or(0);
                if owner.get(&f.path).is_none_or(|(s, _, _)| *s < seq) {
                    owner.insert(f.path.clone(), (seq, row.id.clone(), f.after_sha.clone()));
                }
            }
        }
        let mut drift = Vec::new();
        for (path, (_, patch, expected)) in owner {
            // Only a regular file is read: a link or a fifo where an installed
            // file was is drift, and must not be followed or block.
            let on_disk = self.root.join(&path);
            let regular = fs::symlink_metadata(&on_disk).is_ok_and(|m| m.file_type().is_file());
            let actual = if regular {
                archive::sha256_file(&on_disk).ok()
            } else {
                None
            };
            if actual.as_deref() != Some(expected.as_str()) {
                drift.push(Drift {
                    path,
                    patch,
                    expected,
                    actual,
                    requires: None,
                });
            }
        }
        let rows = self.db(store::patches(&self.conn))?;
        let graph = self.graph(&rows)?;
        let installed = installed_ids(&rows);
        for row in rows.iter().filter(|r| holds_requirements(r.state)) {
            for r in requirement::unmet(&graph, &row.manifest.requires, installed.iter().copied()) {
                drift.push(Drift {
                    path: String::new(),
                    patch: row.id.clone(),
                    expected: String::new(),
                    actual: None,
                    requires: Some(r),
                });
            }
        }
        Ok(drift)
    }

    /// What this node knows of supersession: the manifests it holds and the
    /// edges the console sent with installs.
    pub(super) fn graph(&self, rows: &[PatchRow]) -> Result<Supersession> {
        let mut g = Supersession::default();
        for r in rows {
            g.add(&r.id, &r.manifest.supersedes);
        }
        for (new, old) in self.db(store::known_supersedes(&self.conn))? {
            g.add(&new, [old]);
        }
        Ok(g)
    }

    /// Keeps supersession edges the console knows (from its depot), so the
    /// node can follow chains through patches it never holds. Knowledge,
    /// not state: no lock, no intent.
    pub fn learn(&mut self, known: &Supersession) -> Result<()> {
        if known.is_empty() {
            return Ok(());
        }
        self.db(store::learn_supersedes(&self.conn, known.edges()))
    }

    /// The patches that would lose a requirement if `id` left the node.
    pub(super) fn dependents(&self, id: &str) -> Result<Vec<requirement::Dependent>> {
        self.removal_blocked(&[id.to_string()])
    }

    /// The applied or committed patches outside `leaving` that would lose
    /// a requirement if every patch of `leaving` left this node (by what
    /// the node knows: its manifests and the edges it was told). Empty
    /// when they can all go. For an uninstall to refuse before it starts.
    pub fn removal_blocked(&self, leaving: &[String]) -> Result<Vec<requirement::Dependent>> {
        let leaving: Vec<&str> = leaving.iter().map(String::as_str).collect();
        let rows = self.db(store::patches(&self.conn))?;
        let graph = self.graph(&rows)?;
        let installed = installed_ids(&rows);
        let holders: Vec<(&str, &[String])> = rows
            .iter()
            .filter(|r| holds_requirements(r.state))
            .map(|r| (r.id.as_str(), r.manifest.requires.as_slice()))
            .collect();
        Ok(requirement::dependents_of(
            &graph, &leaving, &installed, &holders,
        ))
    }

    /// Takes the notes of operations a crash interrupted that recovery
    /// finished or undid here (whoever opened the node), oldest first, so
    /// the console journals each once. Taken notes are gone from the node.
    pub fn take_recovered(&mut self) -> Result<Vec<Recovery>> {
        Ok(self
            .db(store::take_recovered(&self.conn))?
            .into_iter()
            .map(|(at, op, patch, outcome)| Recovery {
                at,
                op,
                patch,
                outcome,
            })
            .collect())
    }

    pub(super) fn require(&self, id: &str) -> Result<PatchRow> {
        self.db(store::patch(&self.conn, id))?.ok_or_else(|| {
            self.err(
                ErrorKind::Refused,
                format!("{id} is not on this node (state none); stage it first"),
            )
        })
    }

    /// A digest of everything an operation may change: the node tree (store
    /// database and lock excluded) and the database's meaning. Two nodes
    /// with equal digests are in the same state. For tests and audits.
    pub fn digest(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let store = self.store_dir();
        let mut entries = Vec::new();
        walk(&self.root, &self.root, &mut entries)
            .map_err(io_err(&self.name, "walking the node"))?;
        for (rel, path, kind) in entries {
            // The database (with its -wal and -shm files) is hashed by
            // meaning below; its bytes depend on checkpoints. `Path::
            // starts_with` compares whole components, so compare names.
            let in_store = path.parent() == Some(store.as_path());
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // The environment id says who the node is, not what it has.
            if in_store
                && (name == "lock"
                    || name == RESERVE_FILE
                    || name == environment::FILE
                    || name.starts_with("ipd.sqlite"))
            {
                continue;
            }
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(kind.as_bytes());
            if kind.starts_with('f') {
                h.update(fs::read(&path).map_err(io_err(&self.name, rel))?);
            }
            h.update([0]);
        }
        let q = |sql: &str| -> Result<Vec<String>> {
            let mut stmt = self.db(self.conn.prepare(sql))?;
            let rows = self.db(stmt.query_map([], |r| {
                let n = r.as_ref().column_count();
                Ok((0..n)
                    .map(|i| {
                        format!(
                            "{:?}",
                            r.get_ref(i).map(|v| v
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|_| format!("{v:?}")))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("|"))
            }))?;
            self.db(rows.collect())
        };
        for sql in [
            "SELECT id, state, committed, superseded_by FROM patch ORDER BY id",
            "SELECT patch, path, before_sha, before_mode, after_sha, after_mode FROM patch_file ORDER BY patch, path",
            "SELECT patch, path FROM patch_dir ORDER BY patch, path",
            "SELECT name, version FROM component ORDER BY name",
            "SELECT name, version FROM product ORDER BY name",
            "SELECT patch, kind FROM pending_restart ORDER BY patch",
            "SELECT op, patch, phase FROM intent",
        ] {
            for line in q(sql)? {
                h.update(line.as_bytes());
                h.update([b'\n']);
            }
        }
        Ok(hex::encode(h.finalize()))
    }
}
