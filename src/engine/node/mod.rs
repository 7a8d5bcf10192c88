//! A node's side of patching: its store under `var/lib/patchdeck/` and the
//! lifecycle `stage → install → commit`, with `rollback` and `remove`.
//!
//! Crash safety: every mutating operation records an intent in the
//! database, prepares everything inside the node's save area (nothing in
//! the node tree changes), crosses a recorded point of no return, then moves
//! files into place with renames and commits the database in one
//! transaction. After a crash, the next operation (or [`Node::open`])
//! finishes what crossed the point of no return and undoes what did not, so
//! files and database always end exactly before or exactly after. A failure
//! reported while an operation runs, up to its database commit, undoes it
//! at once. A failure after the commit (only tidying is left then) does not
//! undo a change that took effect: the error says so, and the intent left
//! behind lets the next operation finish the tidying. See
//! `docs/crash-safety.md`.

pub mod environment;
pub mod fault;
pub mod lock;
pub mod paths;
pub mod space;
pub mod store;
pub mod trust;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::engine::archive;
use crate::engine::inventory::{Inventory, PatchState};
use crate::engine::manifest::{Manifest, Restart};
use crate::engine::requirement::{self, Supersession};
use crate::engine::select::base_version_satisfied;
use fault::point;
use lock::{Acquired, NodeLock};
use store::{FileRow, PatchRow};

pub use paths::STORE_DIR;

/// What kind of failure, so callers and the protocol can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The patch's state (or the node's) does not allow the operation.
    Refused,
    /// Another operation holds the node.
    Busy,
    /// The patch file or a payload path is unacceptable.
    Invalid,
    /// Reading or writing failed.
    Io,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("node {node}: {message}")]
pub struct NodeError {
    pub node: String,
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, NodeError>;

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub node: String,
    pub op: String,
    pub patch: String,
    /// The patch's state afterwards.
    pub state: PatchState,
    /// Patches whose state changed along with it (superseded, restored, committed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// What must restart for the change to take effect.
    pub restart: Restart,
    pub message: String,
}

/// An interrupted operation that recovery settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// When recovery settled it (RFC 3339, UTC).
    pub at: String,
    /// The interrupted operation: `stage`, `install`, `rollback`, `commit`, `remove`.
    pub op: String,
    pub patch: String,
    /// `finished` (it took effect) or `undone` (the state before it).
    pub outcome: String,
}

/// Whether the node's service carries traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Up,
    Down,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Up => "up",
            Service::Down => "down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub state: Service,
    pub since: String,
    pub pending_restart: Restart,
}

/// A file whose content differs from what the database says, or (with
/// `requires` set, `path` and `expected` empty) an installed patch whose
/// requirement is no longer met on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub path: String,
    pub patch: String,
    pub expected: String,
    /// `None` when the file is missing.
    pub actual: Option<String>,
    /// The requirement of `patch` that nothing installed meets any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
}

/// One line of `list`: a patch and its state on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub patch: String,
    pub state: PatchState,
    pub committed: bool,
    pub staged_at: Option<String>,
    pub applied_at: Option<String>,
    pub superseded_by: Option<String>,
    pub pending_restart: Option<Restart>,
}

/// What install decided before changing anything; stored with the intent
/// so recovery can finish or undo exactly this.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Plan {
    files: Vec<FileRow>,
    created_dirs: Vec<String>,
    save: bool,
}

pub struct Node {
    root: PathBuf,
    name: String,
    conn: Connection,
    /// Bytes the running operation needs free (0: none measured), quoted
    /// when a write fails on a full disk.
    need: std::cell::Cell<u64>,
}

/// The file in a save area that marks an operation being undone. It is an
/// empty file, which a full disk can still hold where a database write
/// cannot: recovery that finds it undoes instead of finishing.
const UNDO_MARK: &str = "undo";

/// Space held in the store while an operation runs, freed before its undo
/// (or recovery) writes to the database: on a disk the operation filled,
/// ending its intent still finds room.
const RESERVE_FILE: &str = "reserve";
const RESERVE_BYTES: usize = 64 * 1024;

/// The reserve file, removed when dropped.
struct Reserve(PathBuf);

impl Drop for Reserve {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn io_err(node: &str, what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> NodeError + '_ {
    let what = what.to_string();
    move |e| NodeError {
        node: node.to_string(),
        kind: ErrorKind::Io,
        message: format!("{what}: {e}"),
    }
}

impl Node {
    /// Opens (creating if needed) the store of the node rooted at `root`,
    /// and finishes or undoes an operation a crash interrupted.
    ///
    /// The root must be an existing directory (`Invalid` otherwise: a
    /// mistyped root is never created). The database is created only where
    /// none has existed; one that is empty, truncated or damaged, or missing
    /// while the store still holds staged or saved files, is an `Io` error
    /// naming the file (`patchdeck doctor` says how to recover).
    pub fn open(root: &Path, name: &str) -> Result<Node> {
        if !fs::metadata(root).is_ok_and(|m| m.is_dir()) {
            return Err(NodeError {
                node: name.into(),
                kind: ErrorKind::Invalid,
                message: format!(
                    "node root {} does not exist or is not a directory",
                    root.display()
                ),
            });
        }
        let store = root.join(STORE_DIR);
        let db = store.join("ipd.sqlite");
        if !db.exists()
            && let Some(left) = store_leftovers(&store)
        {
            return Err(NodeError {
                node: name.into(),
                kind: ErrorKind::Io,
                message: format!(
                    "{} is missing, but the store still holds {left}; the node's record of what is installed is lost. Run `patchdeck doctor` before anything else",
                    db.display()
                ),
            });
        }
        for dir in ["staged", "save"] {
            fs::create_dir_all(store.join(dir))
                .map_err(io_err(name, format!("creating {}", store.display())))?;
        }
        let conn = store::open(&db).map_err(|e| NodeError {
            node: name.into(),
            kind: ErrorKind::Io,
            message: match e {
                rusqlite::Error::SqliteFailure(_, Some(m))
                    if m.contains(&*db.to_string_lossy()) =>
                {
                    format!("{m}; `patchdeck doctor` says how to recover")
                }
                e => format!("opening {}: {e}", db.display()),
            },
        })?;
        let mut node = Node {
            root: root.to_path_buf(),
            name: name.to_string(),
            conn,
            need: std::cell::Cell::new(0),
        };
        // Recover now if nobody else is working on the node.
        if let Ok(Acquired::Held(_lock)) =
            NodeLock::try_acquire(&node.store_dir().join("lock"), "recover", "-")
        {
            node.recover()?;
        }
        Ok(node)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn store_dir(&self) -> PathBuf {
        self.root.join(STORE_DIR)
    }

    pub fn staged_path(&self, id: &str) -> PathBuf {
        self.store_dir().join("staged").join(format!("{id}.patch"))
    }

    fn save_dir(&self, id: &str) -> PathBuf {
        self.store_dir().join("save").join(id)
    }

    fn err(&self, kind: ErrorKind, message: impl Into<String>) -> NodeError {
        NodeError {
            node: self.name.clone(),
            kind,
            message: message.into(),
        }
    }

    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|e| {
            let full = space::db_is_full(&e);
            self.err(
                ErrorKind::Io,
                format!("database: {e}{}", self.full_note(full)),
            )
        })
    }

    fn io<T>(&self, what: impl std::fmt::Display, r: io::Result<T>) -> Result<T> {
        r.map_err(|e| {
            let full = space::is_full(&e);
            self.err(
                ErrorKind::Io,
                format!("{what}: {e}{}", self.full_note(full)),
            )
        })
    }

    /// On a full disk, how much the operation needed and how much is free.
    fn full_note(&self, full: bool) -> String {
        if !full {
            return String::new();
        }
        let free = space::free(&self.store_dir())
            .map(|f| f.bytes.to_string())
            .unwrap_or_else(|_| "an unknown number of".into());
        match self.need.get() {
            0 => format!("; the disk is full ({free} bytes free)"),
            need => format!(
                "; the disk is full: this operation needs {need} bytes free, {free} are free"
            ),
        }
    }

    /// Refuses to start an operation that needs `payload` bytes (already
    /// rounded to blocks) and the margin when the store's file system has
    /// less free. Remembers the need for later messages.
    fn check_space(&self, op: &str, id: &str, payload: u64) -> Result<()> {
        let need = payload.saturating_add(space::MARGIN_BYTES);
        self.need.set(need);
        if fault::space_check_disabled() {
            return Ok(());
        }
        let free = self.io("measuring free space", space::free(&self.store_dir()))?;
        if free.bytes < need {
            return Err(self.err(
                ErrorKind::Io,
                format!(
                    "not enough free space to {op} {id}: it needs {need} bytes ({payload} for its files and {} kept free for the database and undo), and {} has {} bytes free; nothing was changed",
                    space::MARGIN_BYTES,
                    self.root.display(),
                    free.bytes
                ),
            ));
        }
        Ok(())
    }

    fn block_size(&self) -> u64 {
        space::free(&self.store_dir()).map_or(4096, |f| f.block)
    }

    /// Marks `id`'s save area as being undone, before anything is put back:
    /// from here recovery undoes rather than finishes. The mark is a file
    /// (see [`UNDO_MARK`]); the database phase is set too when it can be.
    fn mark_undo(&self, id: &str) -> Result<()> {
        let save = self.save_dir(id);
        let marked = fs::create_dir_all(&save)
            .and_then(|_| fs::File::create(save.join(UNDO_MARK)))
            .and_then(|f| f.sync_all())
            .and_then(|_| paths::sync_dir(&save));
        // Either record is enough for recovery to undo.
        let phased = store::set_phase(&self.conn, "undo", None);
        match (marked, phased) {
            (Ok(()), _) | (_, Ok(())) => Ok(()),
            (Err(e), Err(_)) => Err(self.err(
                ErrorKind::Io,
                format!(
                    "the undo could not be recorded ({e}), so the next open of this node completes the operation instead"
                ),
            )),
        }
    }

    /// Takes [`RESERVE_BYTES`] of the disk for the undo, before an intent
    /// is recorded; failing here changes nothing.
    fn reserve(&self) -> Result<Reserve> {
        let path = self.store_dir().join(RESERVE_FILE);
        // No fsync: the blocks are taken when written (delayed allocation
        // reserves them too), and after a crash recovery deletes the file.
        let written = fs::write(&path, [0u8; RESERVE_BYTES]);
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return self.io("reserving space for an undo", Err(e));
        }
        Ok(Reserve(path))
    }

    fn undo_marked(&self, id: &str) -> bool {
        self.save_dir(id).join(UNDO_MARK).exists()
    }

    /// An operation failed with `e` and undoing it failed with `undo`: the
    /// node is left for recovery, and the message says both.
    fn undo_failed(&self, e: NodeError, undo: NodeError) -> NodeError {
        self.err(
            e.kind,
            format!(
                "{}; undoing it failed too ({}); the next operation on this node, or `patchdeck doctor`, finishes the undo",
                e.message, undo.message
            ),
        )
    }

    fn lock(&self, op: &str, patch: &str) -> Result<NodeLock> {
        match self.io(
            "locking",
            NodeLock::try_acquire(&self.store_dir().join("lock"), op, patch),
        )? {
            Acquired::Held(lock) => Ok(lock),
            Acquired::Busy(Some(h)) => Err(self.err(
                ErrorKind::Busy,
                format!(
                    "busy: {} {} since {} by pid {}",
                    h.op, h.patch, h.since, h.pid
                ),
            )),
            Acquired::Busy(None) => {
                Err(self.err(ErrorKind::Busy, "busy: another operation holds the node"))
            }
        }
    }

    /// Sets an installed product's version (used when a node is set up).
    pub fn set_product(&mut self, name: &str, version: &str) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO product(name, version) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET version=?2",
            [name, version],
        );
        self.db(r).map(|_| ())
    }

    /// Sets a component (`product.fileset`) version.
    pub fn set_component(&mut self, name: &str, version: &str) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO component(name, version) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET version=?2",
            [name, version],
        );
        self.db(r).map(|_| ())
    }

    // ----- reading -----

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
    fn graph(&self, rows: &[PatchRow]) -> Result<Supersession> {
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
    fn dependents(&self, id: &str) -> Result<Vec<requirement::Dependent>> {
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

    fn require(&self, id: &str) -> Result<PatchRow> {
        self.db(store::patch(&self.conn, id))?.ok_or_else(|| {
            self.err(
                ErrorKind::Refused,
                format!("{id} is not on this node (state none); stage it first"),
            )
        })
    }

    // ----- stage and remove -----

    /// Copies a patch file in and verifies it: `none → staged`. Staging the
    /// same bytes again is a no-op.
    pub fn stage(&mut self, id: &str, source: &Path) -> Result<Report> {
        crate::engine::manifest::check_id(id).map_err(|m| self.err(ErrorKind::Invalid, m))?;
        let _lock = self.lock("stage", id)?;
        self.recover()?;
        let target = self.staged_path(id);
        if let Some(row) = self.db(store::patch(&self.conn, id))? {
            let same = archive::sha256_file(&target).ok() == archive::sha256_file(source).ok();
            return match row.state {
                PatchState::Staged if same => Ok(self.report(
                    "stage",
                    id,
                    PatchState::Staged,
                    vec![],
                    Restart::None,
                    "already staged and verified",
                )),
                PatchState::Staged => Err(self.err(
                    ErrorKind::Refused,
                    format!("{id} is staged with different content; remove it first"),
                )),
                s => Err(self.err(
                    ErrorKind::Refused,
                    format!("{id} is {s} here; staging is for patches not yet on the node"),
                )),
            };
        }
        let size = self.io(source.display(), fs::metadata(source))?.len();
        self.check_space("stage", id, space::rounded(size, self.block_size()))?;
        let reserve = self.reserve()?;
        self.db(store::begin_intent(&self.conn, "stage", id, "prepare"))?;
        let temp = target.with_extension("patch.tmp");
        let result = (|| {
            self.io("staging", point(1))?;
            let mut src = self.io(source.display(), fs::File::open(source))?;
            self.io(
                "copying into staged/",
                paths::write_file(&temp, &mut src, u64::MAX - 1, 0o644, true),
            )?;
            self.io("staging", point(2))?;
            let file = self.io("reading the staged copy", fs::File::open(&temp))?;
            let manifest = archive::read_archive(io::BufReader::new(file))
                .map_err(|e| self.err(ErrorKind::Invalid, format!("{id}: {e}")))?;
            if manifest.id.as_deref().is_some_and(|m| m != id) {
                return Err(self.err(
                    ErrorKind::Invalid,
                    format!("{id}: the manifest says its id is {:?}", manifest.id),
                ));
            }
            self.io("renaming into staged/", fs::rename(&temp, &target))?;
            self.io(
                "syncing staged/",
                paths::sync_dir(&self.store_dir().join("staged")),
            )?;
            self.io("staging", point(3))?;
            let tx = self.db(self.conn.unchecked_transaction())?;
            self.db(store::insert_staged(&tx, id, &manifest))?;
            self.db(store::end_intent(&tx))?;
            self.db(tx.commit())
        })();
        if let Err(e) = result {
            // Nothing took effect: the row and the intent's end commit together.
            drop(reserve);
            return Err(match self.undo_stage(id) {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        Ok(self.report(
            "stage",
            id,
            PatchState::Staged,
            vec![],
            Restart::None,
            "staged and verified",
        ))
    }

    fn undo_stage(&self, id: &str) -> Result<()> {
        let target = self.staged_path(id);
        self.io(
            "removing the staged copy",
            paths::remove_file(&target.with_extension("patch.tmp")),
        )?;
        if self.db(store::patch(&self.conn, id))?.is_none() {
            self.io("removing the staged copy", paths::remove_file(&target))?;
        }
        self.db(store::end_intent(&self.conn))
    }

    /// Deletes a staged patch: `staged → none`. Any other state is refused.
    pub fn remove(&mut self, id: &str) -> Result<Report> {
        let (_lock, _) = self.start("remove", id, PatchState::Staged)?;
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(tx.execute("DELETE FROM patch WHERE id=?1", [id]))?;
        self.db(store::begin_intent(&tx, "remove", id, "cleanup"))?;
        self.db(tx.commit())?;
        self.io("removing", point(40))
            .and_then(|_| self.finish_remove(id))
            .map_err(|e| self.took_effect("remove", id, e))?;
        Ok(self.report(
            "remove",
            id,
            PatchState::None,
            vec![],
            Restart::None,
            "removed from the node",
        ))
    }

    fn finish_remove(&self, id: &str) -> Result<()> {
        self.io(
            "removing the staged copy",
            paths::remove_file(&self.staged_path(id)),
        )?;
        self.db(store::end_intent(&self.conn))
    }

    /// What every lifecycle operation does first: take the node, finish or
    /// undo an interrupted operation, and check the patch is in the state
    /// `op` works from (else refuse, saying what would allow it).
    fn start(&mut self, op: &str, id: &str, from: PatchState) -> Result<(NodeLock, PatchRow)> {
        let lock = self.lock(op, id)?;
        self.recover()?;
        let row = self.require(id)?;
        if row.state != from {
            return Err(self.refusal(op, &row));
        }
        // Nothing is taken away from under a patch that needs it.
        if op == "rollback" {
            let deps = self.dependents(id)?;
            if !deps.is_empty() {
                return Err(self.err(
                    ErrorKind::Refused,
                    format!("cannot rollback {id}: {}", dependents_advice(&deps, id)),
                ));
            }
        }
        Ok((lock, row))
    }

    /// Why `op` cannot run on a patch in this state, and what would allow it.
    fn refusal(&self, op: &str, row: &PatchRow) -> NodeError {
        let id = &row.id;
        let by = row.superseded_by.as_deref().unwrap_or("a later patch");
        // The patches above it, from its superseder to the top of the
        // chain: "roll back" is advice only if none of them is committed.
        let rows = self.db(store::patches(&self.conn)).unwrap_or_default();
        let mut above: Vec<&PatchRow> = Vec::new();
        let mut next = row.superseded_by.as_deref();
        while let Some(n) = next {
            match rows.iter().find(|r| r.id == n) {
                Some(r) if !above.iter().any(|a| a.id == r.id) => {
                    above.push(r);
                    next = r.superseded_by.as_deref();
                }
                _ => break,
            }
        }
        let top = above.last().map_or(by, |r| r.id.as_str());
        let committed_above = above.iter().find(|r| r.committed).map(|r| r.id.as_str());
        let by_rollbackable = !above.is_empty() && committed_above.is_none();
        let roll_back_above = above
            .iter()
            .rev()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", then ");
        let why = match (op, row.state) {
            ("remove", PatchState::Applied) => {
                let deps = self.dependents(id).unwrap_or_default();
                if deps.is_empty() {
                    "it is applied; roll it back first, then remove it".to_string()
                } else {
                    format!("it is applied, and {}", dependents_advice(&deps, id))
                }
            }
            ("remove", PatchState::Committed) => {
                "it is committed and cannot be removed; install a patch that supersedes it"
                    .to_string()
            }
            ("install", PatchState::Superseded) => {
                format!("it is superseded by {by}, which is installed; nothing to do")
            }
            ("commit", PatchState::Superseded) if row.committed => {
                format!("it was committed already (it is superseded by {by})")
            }
            ("commit", PatchState::Superseded) => {
                format!("it is superseded by {by}; commit {top}, which commits this one too")
            }
            ("remove" | "rollback", PatchState::Superseded) if row.committed => {
                if by_rollbackable {
                    format!(
                        "it is committed (its saved files were dropped) and superseded by {by}; \
                         it cannot be {}; rolling back {roll_back_above} returns it to committed",
                        if op == "remove" {
                            "removed"
                        } else {
                            "rolled back"
                        }
                    )
                } else {
                    format!(
                        "it was committed together with {by}, which superseded it, so neither \
                         can be rolled back or removed; to change it, install a patch that \
                         supersedes {top}"
                    )
                }
            }
            ("remove" | "rollback", PatchState::Superseded) => {
                if by_rollbackable {
                    format!("it is superseded by {by}; roll back {roll_back_above} first")
                } else {
                    format!(
                        "it is superseded by {by}, and {} is committed and cannot be rolled \
                         back; to change it, install a patch that supersedes {top}",
                        committed_above.unwrap_or(by)
                    )
                }
            }
            ("install", PatchState::Applied | PatchState::Committed) => {
                "it is already installed".to_string()
            }
            ("rollback", PatchState::Committed) => {
                "it is committed: its saved files were dropped, so it cannot be rolled back"
                    .to_string()
            }
            ("rollback" | "commit", PatchState::Staged) => {
                "it is only staged, not installed; install it first".to_string()
            }
            ("commit", PatchState::Committed) => "it is already committed".to_string(),
            (_, s) => format!("not allowed in state {s}"),
        };
        self.err(
            ErrorKind::Refused,
            format!("cannot {op} {id}: {} is {}; {why}", id, state_text(row)),
        )
    }

    fn report(
        &self,
        op: &str,
        id: &str,
        state: PatchState,
        also: Vec<String>,
        restart: Restart,
        message: &str,
    ) -> Report {
        Report {
            node: self.name.clone(),
            op: op.into(),
            patch: id.into(),
            state,
            also,
            restart,
            message: message.into(),
        }
    }

    // ----- install -----

    /// Installs a staged patch: saves what it replaces (unless `save` is
    /// false, which goes straight to committed), writes its files, and marks
    /// the patches it supersedes.
    pub fn install(&mut self, id: &str, save: bool) -> Result<Report> {
        self.install_with(id, save, &Supersession::default())
    }

    /// [`Node::install`], first keeping the supersession edges `known` (from
    /// the console's depot), so a requirement met through a chain of patches
    /// this node never held is seen as met, now and by later rollbacks.
    pub fn install_with(&mut self, id: &str, save: bool, known: &Supersession) -> Result<Report> {
        let (_lock, row) = self.start("install", id, PatchState::Staged)?;
        self.learn(known)?;
        let manifest = row.manifest.clone();
        self.check_base(id, &manifest)?;
        self.check_prerequisites(id, &manifest)?;
        let mut plan = Plan {
            save,
            ..Plan::default()
        };
        let mut resolved = Vec::new();
        for f in &manifest.files {
            let r = paths::resolve(&self.root, &f.path)
                .map_err(|m| self.err(ErrorKind::Invalid, format!("{id}: {m}")))?;
            for d in &r.missing_dirs {
                if !plan.created_dirs.contains(d) {
                    plan.created_dirs.push(d.clone());
                }
            }
            resolved.push(r);
        }
        self.check_space("install", id, self.install_payload(&manifest, &resolved))?;
        let reserve = self.reserve()?;
        self.db(store::begin_intent(&self.conn, "install", id, "prepare"))?;
        let prepared = self
            .install_prepare(id, &manifest, &resolved, &mut plan)
            .and_then(|_| {
                let plan_json = serde_json::to_string(&plan).unwrap_or_default();
                self.db(store::set_phase(&self.conn, "commit", Some(&plan_json)))
            });
        if let Err(e) = prepared {
            drop(reserve);
            return Err(match self.abandon_install(id) {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        if let Err(e) = self
            .io("install", point(14))
            .and_then(|_| self.install_commit(id, &plan))
        {
            drop(reserve);
            let undone = self
                .mark_undo(id)
                .and_then(|_| self.undo_install(id, &plan));
            return Err(match undone {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        self.install_cleanup(id, &plan)
            .map_err(|e| self.took_effect("install", id, e))?;
        let row = self.require(id)?;
        let also = self
            .db(store::patches(&self.conn))?
            .into_iter()
            .filter(|r| r.superseded_by.as_deref() == Some(id))
            .map(|r| r.id)
            .collect();
        let message = match (manifest.hot, manifest.restart) {
            (true, _) | (_, Restart::None) => "installed; no restart needed".to_string(),
            (_, r) => format!("installed; a {r} restart is needed for it to take effect"),
        };
        Ok(self.report(
            "install",
            id,
            row.state,
            also,
            if manifest.hot {
                Restart::None
            } else {
                manifest.restart
            },
            &message,
        ))
    }

    /// Drops a prepared install's save area and ends its intent: nothing in
    /// the node tree had changed.
    fn abandon_install(&self, id: &str) -> Result<()> {
        self.io("abandoning install", paths::remove_tree(&self.save_dir(id)))?;
        self.db(store::end_intent(&self.conn))
    }

    /// Bytes, rounded to blocks, an install writes before its point of no
    /// return: every payload file, and a copy of each original where the
    /// save area is on another file system than the original (no hard link).
    fn install_payload(&self, m: &Manifest, resolved: &[paths::Resolved]) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let block = self.block_size();
        let store_dev = fs::metadata(self.store_dir()).map(|m| m.dev()).ok();
        let copies = resolved.iter().filter_map(|r| {
            let meta = fs::metadata(&r.target).ok()?;
            (r.existing == paths::Existing::File && Some(meta.dev()) != store_dev)
                .then_some(meta.len())
        });
        let sizes: Vec<u64> = m.files.iter().map(|f| f.size).chain(copies).collect();
        space::install_need(sizes, block) - space::MARGIN_BYTES
    }

    /// Whether installing `ids` one after another (those staged here; the
    /// others are skipped) fits: their payloads, rounded to blocks, plus
    /// [`space::MARGIN_BYTES`], the same rule install applies to itself.
    /// The rollout preflight asks this of every member before it drains the
    /// first group. `Io` error saying the bytes needed and free, or `Invalid`
    /// for a payload path that cannot be installed.
    pub fn check_install_space(&self, ids: &[String]) -> Result<()> {
        let mut payload = 0u64;
        let mut which = Vec::new();
        for id in ids {
            let Some(row) = self.db(store::patch(&self.conn, id))? else {
                continue;
            };
            if row.state != PatchState::Staged {
                continue;
            }
            let resolved = row
                .manifest
                .files
                .iter()
                .map(|f| paths::resolve(&self.root, &f.path))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|m| self.err(ErrorKind::Invalid, format!("{id}: {m}")))?;
            payload = payload.saturating_add(self.install_payload(&row.manifest, &resolved));
            which.push(id.as_str());
        }
        if which.is_empty() {
            return Ok(());
        }
        self.check_space("install", &which.join(", "), payload)
    }

    fn check_base(&self, id: &str, m: &Manifest) -> Result<()> {
        let products: std::collections::HashMap<String, String> =
            self.db(store::products(&self.conn))?.into_iter().collect();
        let Some(installed) = products.get(&m.product) else {
            return Err(self.err(
                ErrorKind::Refused,
                format!(
                    "cannot install {id}: product {} is not installed here",
                    m.product
                ),
            ));
        };
        if let Some(base) = &m.base_version
            && base_version_satisfied(base, installed) != Some(true)
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!(
                    "cannot install {id}: it needs {} {base}, and {installed} is installed",
                    m.product
                ),
            ));
        }
        Ok(())
    }

    /// Each requirement must be installed, or replaced by an installed patch
    /// that supersedes it.
    fn check_prerequisites(&self, id: &str, m: &Manifest) -> Result<()> {
        let rows = self.db(store::patches(&self.conn))?;
        let graph = self.graph(&rows)?;
        let installed = installed_ids(&rows);
        // Never beneath a newer patch: whoever asks (a verb or a rollout),
        // the node itself refuses a patch something installed replaces.
        if let Some(newer) = installed
            .iter()
            .find(|p| **p != id && requirement::covers(&graph, p, id))
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!("cannot install {id}: {newer}, which supersedes it, is installed here"),
            ));
        }
        if let Some(req) = requirement::unmet(&graph, &m.requires, installed.iter().copied())
            .into_iter()
            .next()
        {
            return Err(self.err(
                ErrorKind::Refused,
                format!("cannot install {id}: it requires {req}, which is not installed here, nor any patch known to supersede it; install {req} first (or a patch superseding it)"),
            ));
        }
        Ok(())
    }

    fn install_prepare(
        &self,
        id: &str,
        m: &Manifest,
        resolved: &[paths::Resolved],
        plan: &mut Plan,
    ) -> Result<()> {
        let save = self.save_dir(id);
        self.io("clearing the save area", paths::remove_tree(&save))?;
        self.io("install", point(10))?;
        // Keep the originals by hard link; their checksums are computed on
        // another core while this one extracts the payload.
        let mut to_hash = Vec::new();
        for (i, (f, r)) in m.files.iter().zip(resolved).enumerate() {
            let before_mode = match r.existing {
                paths::Existing::File => {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = self
                        .io(&f.path, fs::metadata(&r.target))?
                        .permissions()
                        .mode()
                        & 0o7777;
                    let saved = save.join("orig").join(&f.path);
                    self.io(
                        format!("saving {}", f.path),
                        paths::link_or_copy(&r.target, &saved),
                    )?;
                    self.io("install", point(11))?;
                    to_hash.push((i, saved));
                    Some(mode)
                }
                paths::Existing::Absent => None,
            };
            plan.files.push(FileRow {
                path: f.path.clone(),
                before_sha: None,
                before_mode,
                after_sha: f.sha256.clone(),
                after_mode: f.mode & 0o777,
            });
        }
        let (hashes, extracted) = std::thread::scope(|scope| {
            let hashing = scope.spawn(move || {
                to_hash
                    .into_iter()
                    .map(|(i, path)| (i, archive::sha256_file(&path)))
                    .collect::<Vec<_>>()
            });
            let extracted = self.extract_payload(id, m, &save);
            (hashing.join(), extracted)
        });
        extracted?;
        let hashes = hashes
            .map_err(|_| self.err(ErrorKind::Io, "checksumming the saved originals failed"))?;
        for (i, sha) in hashes {
            let sha = self.io(
                format!("reading the saved copy of {}", plan.files[i].path),
                sha,
            )?;
            plan.files[i].before_sha = Some(sha);
        }
        self.io("install", point(13))
    }

    /// Extracts the payload into `save/new`, the last check before install:
    /// the staged copy is read by the same archive reader that verified it
    /// at staging, and must still list the files it listed then.
    fn extract_payload(&self, id: &str, m: &Manifest, save: &Path) -> Result<()> {
        let file = self.io("reading staged patch", fs::File::open(self.staged_path(id)))?;
        let new = save.join("new");
        // A failed write is an I/O error (a full disk, a fault), not a bad patch.
        let mut failed: Option<(String, io::Error)> = None;
        let read = archive::read_archive_with(io::BufReader::new(file), Some(m), |f, data| {
            let written = paths::write_file(&new.join(&f.path), data, f.size, f.mode, false)
                .and_then(|w| point(12).map(|_| w));
            written.map_err(|e| {
                let copy = io::Error::new(e.kind(), e.to_string());
                failed = Some((f.path.clone(), e));
                copy
            })
        });
        if let Some((path, e)) = failed {
            return self.io(format!("extracting {path}"), Err(e));
        }
        read.map_err(|e| {
            self.err(
                ErrorKind::Invalid,
                format!("staged {id} fails verification: {e}; remove and stage it again"),
            )
        })?;
        // One flush makes every prepared file durable before the point of no return.
        if save.exists() {
            self.io("syncing the save area", paths::sync_filesystem(save))?;
        }
        Ok(())
    }

    /// Past the point of no return: idempotent, so recovery can repeat it.
    fn install_commit(&mut self, id: &str, plan: &Plan) -> Result<()> {
        let save = self.save_dir(id);
        for d in &plan.created_dirs {
            let dir = self.root.join(d);
            if !dir.is_dir() {
                self.io(format!("creating {d}"), fs::create_dir(&dir))?;
            }
        }
        for f in &plan.files {
            let new = save.join("new").join(&f.path);
            if new.exists() {
                let target = self.root.join(&f.path);
                self.io(format!("installing {}", f.path), fs::rename(&new, &target))?;
                self.io("install", point(15))?;
            }
        }
        let installed = plan.files.iter().map(|f| f.path.as_str());
        self.io("syncing", paths::sync_parents(&self.root, installed))?;
        self.io(
            "tidying the save area",
            paths::remove_tree(&save.join("new")),
        )?;
        self.io("install", point(16))?;

        let manifest = self.require(id)?.manifest;
        // What the patch replaces through a chain (MA3 over MA1 via an MA2
        // the node never held) is superseded too, by the one rule.
        let rows = self.db(store::patches(&self.conn))?;
        let graph = self.graph(&rows)?;
        let replaced: Vec<String> = rows
            .iter()
            .filter(|r| r.id != id && requirement::covers(&graph, id, &r.id))
            .map(|r| r.id.clone())
            .collect();
        let now = store::now();
        let tx = self.db(self.conn.unchecked_transaction())?;
        let seq: i64 = self.db(tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM patch",
            [],
            |r| r.get(0),
        ))?;
        let component = component_name(&manifest);
        let prev: Option<String> = self.db(tx
            .query_row(
                "SELECT version FROM component WHERE name=?1",
                [&component],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            }))?;
        let (state, committed) = if plan.save {
            ("applied", 0)
        } else {
            ("committed", 1)
        };
        self.db(tx.execute(
            "UPDATE patch SET state=?2, committed=?3, applied_at=?4, committed_at=CASE WHEN ?3=1 THEN ?4 END,
             seq=?5, prev_component_version=?6, superseded_by=NULL WHERE id=?1",
            rusqlite::params![id, state, committed, now, seq, prev],
        ))?;
        for f in &plan.files {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO patch_file(patch, path, before_sha, before_mode, after_sha, after_mode) VALUES (?1,?2,?3,?4,?5,?6)",
                rusqlite::params![id, f.path, f.before_sha, f.before_mode.map(|m| m as i64), f.after_sha, f.after_mode as i64],
            ))?;
        }
        for d in &plan.created_dirs {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO patch_dir(patch, path) VALUES (?1, ?2)",
                [id, d],
            ))?;
        }
        for old in &replaced {
            self.db(tx.execute(
                "UPDATE patch SET state='superseded', superseded_by=?2 WHERE id=?1 AND state IN ('applied','committed')",
                [old, id],
            ))?;
        }
        self.db(tx.execute(
            "INSERT INTO component(name, version) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET version=?2",
            [&component, &manifest.version],
        ))?;
        if !manifest.hot && manifest.restart != Restart::None {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO pending_restart(patch, kind, since) VALUES (?1, ?2, ?3)",
                [id, manifest.restart.as_str(), &now],
            ))?;
        }
        if plan.save {
            self.db(store::end_intent(&tx))?;
        } else {
            self.db(store::set_phase(&tx, "cleanup", None))?;
        }
        self.db(tx.commit())
    }

    /// After the database commit the install has taken effect; what is left
    /// is dropping the save area when nothing is kept for rollback.
    fn install_cleanup(&mut self, id: &str, plan: &Plan) -> Result<()> {
        self.io("install", point(17))?;
        if !plan.save {
            self.io(
                "dropping saved files",
                paths::remove_tree(&self.save_dir(id)),
            )?;
            self.db(store::end_intent(&self.conn))?;
        }
        Ok(())
    }

    /// An error after an operation's database commit: the change has taken
    /// effect and is not undone (that would need a second operation, which
    /// could fail in turn). The intent still names the tidying left, which
    /// the next operation or open finishes.
    fn took_effect(&self, op: &str, id: &str, e: NodeError) -> NodeError {
        self.err(
            e.kind,
            format!(
                "the {op} of {id} took effect, but tidying up afterwards failed (the next operation on this node finishes it): {}",
                e.message
            ),
        )
    }

    /// Puts back what a failed install changed. Idempotent: a file whose new
    /// copy is still in the save area was never touched.
    fn undo_install(&self, id: &str, plan: &Plan) -> Result<()> {
        let save = self.save_dir(id);
        for f in plan.files.iter().rev() {
            if save.join("new").join(&f.path).exists() {
                continue;
            }
            let target = self.root.join(&f.path);
            match &f.before_sha {
                Some(_) => {
                    let orig = save.join("orig").join(&f.path);
                    if orig.exists() {
                        self.io(format!("restoring {}", f.path), fs::rename(&orig, &target))?;
                    }
                }
                None => self.io(format!("removing {}", f.path), paths::remove_file(&target))?,
            }
        }
        self.remove_dirs(&plan.created_dirs)?;
        // The undo mark goes last, after the intent: until the intent is
        // gone, recovery must still know to undo.
        for part in ["new", "orig"] {
            self.io(
                "clearing the save area",
                paths::remove_tree(&save.join(part)),
            )?;
        }
        self.db(store::end_intent(&self.conn))?;
        self.io("clearing the save area", paths::remove_tree(&save))
    }

    /// Removes directories a patch created, deepest first, if empty.
    fn remove_dirs(&self, dirs: &[String]) -> Result<()> {
        let mut dirs: Vec<&String> = dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        for d in dirs {
            match fs::remove_dir(self.root.join(d)) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
                Err(e) => return Err(self.err(ErrorKind::Io, format!("removing {d}: {e}"))),
            }
        }
        Ok(())
    }

    // ----- rollback -----

    /// Restores what an applied patch replaced, byte for byte, and deletes
    /// what it created: `applied → staged`. A patch it had superseded
    /// returns to its former state.
    pub fn rollback(&mut self, id: &str) -> Result<Report> {
        let (_lock, row) = self.start("rollback", id, PatchState::Applied)?;
        let files = self.db(store::files(&self.conn, id))?;
        // A later patch that rewrote one of these files must go first.
        for other in self.db(store::patches(&self.conn))? {
            if other.id == *id || !other.state.is_installed() || other.seq <= row.seq {
                continue;
            }
            let theirs = self.db(store::files(&self.conn, &other.id))?;
            if let Some(f) = theirs
                .iter()
                .find(|t| files.iter().any(|f| f.path == t.path))
            {
                return Err(self.err(
                    ErrorKind::Refused,
                    format!(
                        "cannot rollback {id}: {} was changed later by {}; roll {} back first",
                        f.path, other.id, other.id
                    ),
                ));
            }
        }
        // The tree may have changed since the install: never restore or
        // delete through a symbolic link that has appeared on the way.
        for f in &files {
            paths::resolve(&self.root, &f.path)
                .map_err(|m| self.err(ErrorKind::Invalid, format!("cannot rollback {id}: {m}")))?;
        }
        let save = self.save_dir(id);
        // Rollback writes no file data (links and renames only); the margin
        // is for the database.
        self.check_space("rollback", id, 0)?;
        // A mark left by an undo that was cut short after its intent ended.
        self.io(
            "clearing the save area",
            paths::remove_file(&save.join(UNDO_MARK)),
        )?;
        let reserve = self.reserve()?;
        self.db(store::begin_intent(&self.conn, "rollback", id, "prepare"))?;
        let prepared = (|| {
            self.io("rollback", point(20))?;
            // The patch's files are kept by hard link too, so an undo puts
            // them back by rename: no data is written, which a full disk
            // could refuse.
            for f in &files {
                let target = self.root.join(&f.path);
                if !fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_file()) {
                    continue;
                }
                let kept = save.join("redo").join(&f.path);
                self.io(
                    "preparing the rollback",
                    fs::create_dir_all(kept.parent().unwrap_or(&save)),
                )?;
                self.io("preparing the rollback", paths::remove_file(&kept))?;
                self.io("preparing the rollback", fs::hard_link(&target, &kept))?;
            }
            for f in &files {
                let Some(before) = &f.before_sha else {
                    continue;
                };
                let orig = save.join("orig").join(&f.path);
                let sha = self.io(
                    format!("reading the saved copy of {}", f.path),
                    archive::sha256_file(&orig),
                )?;
                if &sha != before {
                    return Err(self.err(
                        ErrorKind::Io,
                        format!(
                            "the saved copy of {} is damaged; nothing was changed",
                            f.path
                        ),
                    ));
                }
                // A hard link keeps the saved copy whole until the end.
                let restore = save.join("restore").join(&f.path);
                self.io(
                    "preparing the restore",
                    fs::create_dir_all(restore.parent().unwrap_or(&save)),
                )?;
                self.io("preparing the restore", paths::remove_file(&restore))?;
                self.io("preparing the restore", fs::hard_link(&orig, &restore))?;
                self.io("rollback", point(21))?;
            }
            self.io(
                "syncing the save area",
                paths::sync_filesystem(&self.store_dir()),
            )
        })();
        let prepared = prepared.and_then(|_| self.db(store::set_phase(&self.conn, "commit", None)));
        if let Err(e) = prepared {
            drop(reserve);
            return Err(match self.abandon_rollback(id) {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        if let Err(e) = self
            .io("rollback", point(22))
            .and_then(|_| self.rollback_commit(id))
        {
            drop(reserve);
            let undone = self.mark_undo(id).and_then(|_| self.undo_rollback(id));
            return Err(match undone {
                Ok(()) => e,
                Err(undo) => self.undo_failed(e, undo),
            });
        }
        self.rollback_cleanup(id)
            .map_err(|e| self.took_effect("rollback", id, e))?;
        let also = self
            .db(store::patches(&self.conn))?
            .into_iter()
            .filter(|r| {
                r.manifest.supersedes.contains(&id.to_string())
                    || row.manifest.supersedes.contains(&r.id)
            })
            .filter(|r| r.state.is_installed() && r.id != id)
            .map(|r| r.id)
            .collect();
        let restart = if row.manifest.hot {
            Restart::None
        } else {
            row.manifest.restart
        };
        Ok(self.report(
            "rollback",
            id,
            PatchState::Staged,
            also,
            restart,
            "rolled back; the files it replaced are restored",
        ))
    }

    fn rollback_commit(&mut self, id: &str) -> Result<()> {
        let save = self.save_dir(id);
        let files = self.db(store::files(&self.conn, id))?;
        for f in &files {
            let target = self.root.join(&f.path);
            match &f.before_sha {
                Some(_) => {
                    let restore = save.join("restore").join(&f.path);
                    if restore.exists() {
                        if let Some(parent) = target.parent() {
                            self.io("recreating a directory", fs::create_dir_all(parent))?;
                        }
                        self.io(
                            format!("restoring {}", f.path),
                            fs::rename(&restore, &target),
                        )?;
                    }
                }
                None => self.io(format!("removing {}", f.path), paths::remove_file(&target))?,
            }
            self.io("rollback", point(23))?;
        }
        let restored = files.iter().map(|f| f.path.as_str());
        self.io("syncing", paths::sync_parents(&self.root, restored))?;
        let dirs = self.db(store::dirs(&self.conn, id))?;
        self.remove_dirs(&dirs)?;
        self.io("rollback", point(24))?;

        let row = self.require(id)?;
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(tx.execute(
            "UPDATE patch SET state='staged', applied_at=NULL, seq=NULL, prev_component_version=NULL WHERE id=?1",
            [id],
        ))?;
        self.db(tx.execute("DELETE FROM patch_file WHERE patch=?1", [id]))?;
        self.db(tx.execute("DELETE FROM patch_dir WHERE patch=?1", [id]))?;
        self.db(tx.execute(
            "UPDATE patch SET state=CASE WHEN committed=1 THEN 'committed' ELSE 'applied' END, superseded_by=NULL WHERE superseded_by=?1",
            [id],
        ))?;
        let component = component_name(&row.manifest);
        match &row.prev_component_version {
            Some(v) => self.db(tx.execute(
                "UPDATE component SET version=?2 WHERE name=?1",
                [&component, v],
            ))?,
            None => self.db(tx.execute("DELETE FROM component WHERE name=?1", [&component]))?,
        };
        self.db(tx.execute("DELETE FROM pending_restart WHERE patch=?1", [id]))?;
        if !row.manifest.hot && row.manifest.restart != Restart::None {
            self.db(tx.execute(
                "INSERT OR REPLACE INTO pending_restart(patch, kind, since) VALUES (?1, ?2, ?3)",
                [
                    &format!("{id} (rolled back)"),
                    row.manifest.restart.as_str(),
                    &store::now(),
                ],
            ))?;
        }
        self.db(store::set_phase(&tx, "cleanup", None))?;
        self.db(tx.commit())
    }

    /// After the database commit the rollback has taken effect; what is left
    /// is dropping the saved files.
    fn rollback_cleanup(&mut self, id: &str) -> Result<()> {
        self.io("rollback", point(25))?;
        self.io(
            "dropping saved files",
            paths::remove_tree(&self.save_dir(id)),
        )?;
        self.db(store::end_intent(&self.conn))
    }

    /// Drops a prepared rollback's links and ends its intent: nothing in
    /// the node tree had changed.
    fn abandon_rollback(&self, id: &str) -> Result<()> {
        let save = self.save_dir(id);
        for part in ["restore", "redo"] {
            self.io("abandoning rollback", paths::remove_tree(&save.join(part)))?;
        }
        self.db(store::end_intent(&self.conn))
    }

    /// Re-applies the patch after a failed rollback: renames its files back
    /// from the links kept in `save/ID/redo/` (idempotent: a link already
    /// moved is gone). Without them, from the staged copy.
    fn undo_rollback(&mut self, id: &str) -> Result<()> {
        let save = self.save_dir(id);
        let files = self.db(store::files(&self.conn, id))?;
        let dirs = self.db(store::dirs(&self.conn, id))?;
        for d in &dirs {
            let dir = self.root.join(d);
            if !dir.is_dir() {
                self.io(format!("recreating {d}"), fs::create_dir(&dir))?;
            }
        }
        let redo = save.join("redo");
        if redo.is_dir() {
            for f in &files {
                let kept = redo.join(&f.path);
                if fs::symlink_metadata(&kept).is_ok() {
                    let target = self.root.join(&f.path);
                    self.io(
                        format!("re-installing {}", f.path),
                        fs::rename(&kept, &target),
                    )?;
                }
            }
            let back = files.iter().map(|f| f.path.as_str());
            self.io("syncing", paths::sync_parents(&self.root, back))?;
            for dir in ["restore", "redo"] {
                self.io("tidying the save area", paths::remove_tree(&save.join(dir)))?;
            }
            self.db(store::end_intent(&self.conn))?;
            return self.io(
                "tidying the save area",
                paths::remove_file(&save.join(UNDO_MARK)),
            );
        }
        // Without the links (an undo begun by an older patchdeck): re-extract
        // the files that differ from the staged copy, through the one reader.
        let file = self.io("reading staged patch", fs::File::open(self.staged_path(id)))?;
        let mut failed: Option<(String, io::Error)> = None;
        let read = archive::read_archive_with(io::BufReader::new(file), None, |entry, data| {
            let mut redo = || -> io::Result<(u64, String)> {
                let Some(f) = files.iter().find(|f| f.path == entry.path) else {
                    return hash_all(data);
                };
                let target = self.root.join(&f.path);
                if archive::sha256_file(&target).ok().as_deref() == Some(f.after_sha.as_str()) {
                    return hash_all(data);
                }
                let temp = save.join("redo").join(&f.path);
                let written = paths::write_file(&temp, data, entry.size, f.after_mode, true)?;
                if written.1 == f.after_sha {
                    fs::rename(&temp, &target)?;
                }
                Ok(written)
            };
            redo().map_err(|e| {
                let copy = io::Error::new(e.kind(), e.to_string());
                failed = Some((entry.path.clone(), e));
                copy
            })
        });
        if let Some((path, e)) = failed {
            return self.io(format!("re-installing {path}"), Err(e));
        }
        read.map_err(|e| {
            self.err(
                ErrorKind::Invalid,
                format!("cannot re-apply {id} from its staged copy: {e}"),
            )
        })?;
        for dir in ["restore", "redo"] {
            self.io("tidying the save area", paths::remove_tree(&save.join(dir)))?;
        }
        self.db(store::end_intent(&self.conn))?;
        self.io(
            "tidying the save area",
            paths::remove_file(&save.join(UNDO_MARK)),
        )
    }

    // ----- commit -----

    /// Drops an applied patch's saved files: `applied → committed`, and the
    /// patches it superseded are committed too.
    pub fn commit(&mut self, id: &str) -> Result<Report> {
        let (_lock, _) = self.start("commit", id, PatchState::Applied)?;
        // Not checked up front: commit frees space, and its one database
        // transaction either happens or not. Quoted if that write fails.
        self.need.set(space::MARGIN_BYTES);
        let rows = self.db(store::patches(&self.conn))?;
        let chain: Vec<String> = rows
            .iter()
            .filter(|r| !r.committed && superseded_chain(&rows, id, &r.id))
            .map(|r| r.id.clone())
            .collect();
        let now = store::now();
        let tx = self.db(self.conn.unchecked_transaction())?;
        self.db(tx.execute(
            "UPDATE patch SET state='committed', committed=1, committed_at=?2 WHERE id=?1",
            [id, &now],
        ))?;
        for old in &chain {
            self.db(tx.execute(
                "UPDATE patch SET committed=1, committed_at=?2 WHERE id=?1",
                [old, &now],
            ))?;
        }
        self.db(store::begin_intent(&tx, "commit", id, "cleanup"))?;
        self.db(tx.commit())?;
        (|| {
            self.io("commit", point(30))?;
            for p in std::iter::once(id).chain(chain.iter().map(String::as_str)) {
                self.io(
                    "dropping saved files",
                    paths::remove_tree(&self.save_dir(p)),
                )?;
                self.io("commit", point(31))?;
            }
            self.db(store::end_intent(&self.conn))
        })()
        .map_err(|e| self.took_effect("commit", id, e))?;
        Ok(self.report(
            "commit",
            id,
            PatchState::Committed,
            chain,
            Restart::None,
            "committed; saved files dropped, rollback no longer possible",
        ))
    }

    // ----- recovery -----

    /// Finishes or undoes an interrupted operation. Call with the lock held.
    fn recover(&mut self) -> Result<()> {
        // A reserve left by a killed operation is the room recovery writes in.
        let _ = paths::remove_file(&self.store_dir().join(RESERVE_FILE));
        let Some(intent) = self.db(store::intent(&self.conn))? else {
            return Ok(());
        };
        let id = intent.patch.clone();
        tracing::info!(node = %self.name, op = %intent.op, patch = %id, phase = %intent.phase, "recovering");
        self.settle(&intent)?;
        let outcome = match (intent.op.as_str(), intent.phase.as_str()) {
            ("stage", _) | (_, "prepare") | (_, "undo") => "undone",
            _ => "finished",
        };
        self.db(store::note_recovered(&self.conn, &intent.op, &id, outcome))
    }

    /// Finishes or undoes the interrupted operation `intent` names.
    fn settle(&mut self, intent: &store::Intent) -> Result<()> {
        let id = intent.patch.clone();
        match (intent.op.as_str(), intent.phase.as_str()) {
            ("stage", _) => self.undo_stage(&id),
            ("remove", _) => self.finish_remove(&id),
            ("install", "prepare") => {
                self.io(
                    "abandoning install",
                    paths::remove_tree(&self.save_dir(&id)),
                )?;
                self.db(store::end_intent(&self.conn))
            }
            ("install", phase) => {
                let plan: Plan = serde_json::from_str(intent.plan.as_deref().unwrap_or("{}"))
                    .unwrap_or_default();
                match phase {
                    "commit" if self.undo_marked(&id) => self.undo_install(&id, &plan),
                    "commit" => {
                        self.install_commit(&id, &plan)?;
                        self.install_cleanup(&id, &plan)
                    }
                    "undo" => self.undo_install(&id, &plan),
                    _ => {
                        self.io(
                            "dropping saved files",
                            paths::remove_tree(&self.save_dir(&id)),
                        )?;
                        self.db(store::end_intent(&self.conn))
                    }
                }
            }
            ("rollback", "prepare") => self.abandon_rollback(&id),
            ("rollback", "commit") if self.undo_marked(&id) => self.undo_rollback(&id),
            ("rollback", "commit") => {
                self.rollback_commit(&id)?;
                self.rollback_cleanup(&id)
            }
            ("rollback", "undo") => self.undo_rollback(&id),
            ("rollback", _) => {
                self.io(
                    "dropping saved files",
                    paths::remove_tree(&self.save_dir(&id)),
                )?;
                self.db(store::end_intent(&self.conn))
            }
            ("commit", _) => {
                for row in self.db(store::patches(&self.conn))? {
                    if row.committed {
                        self.io(
                            "dropping saved files",
                            paths::remove_tree(&self.save_dir(&row.id)),
                        )?;
                    }
                }
                self.db(store::end_intent(&self.conn))
            }
            (op, phase) => Err(self.err(
                ErrorKind::Io,
                format!(
                    "unknown interrupted operation {op}/{phase}; inspect {}",
                    self.store_dir().display()
                ),
            )),
        }
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

/// Hashes everything `data` yields: an entry read and not kept.
fn hash_all(data: &mut dyn io::Read) -> io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match data.read(&mut buf)? {
            0 => return Ok((total, hex::encode(h.finalize()))),
            n => {
                h.update(buf.get(..n).unwrap_or_default());
                total += n as u64;
            }
        }
    }
}

/// What a store without its database still holds (staged patches, saved
/// files, a write-ahead log), named for the error; `None` when nothing.
pub fn store_leftovers(store: &Path) -> Option<String> {
    let count = |dir: &str| fs::read_dir(store.join(dir)).map_or(0, |d| d.count());
    let mut left = Vec::new();
    match count("staged") {
        0 => {}
        n => left.push(format!("{n} staged file(s)")),
    }
    match count("save") {
        0 => {}
        n => left.push(format!("{n} save area(s)")),
    }
    if store.join("ipd.sqlite-wal").exists() {
        left.push("the database's write-ahead log".to_string());
    }
    (!left.is_empty()).then(|| left.join(", "))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf, String)>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut names: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let path = e.path();
        let meta = fs::symlink_metadata(&path)?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            out.push((rel, path.clone(), format!("d{mode:o}")));
            walk(root, &path, out)?;
        } else if meta.file_type().is_symlink() {
            let to = fs::read_link(&path)?.to_string_lossy().into_owned();
            out.push((rel, path, format!("l{to}")));
        } else if meta.is_file() {
            out.push((rel, path, format!("f{mode:o}")));
        } else {
            // A fifo, socket or device: its type, never its content (reading
            // a fifo would block, reading a device could never end).
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            let what = if t.is_fifo() {
                "fifo"
            } else if t.is_socket() {
                "socket"
            } else if t.is_char_device() {
                "char"
            } else {
                "block"
            };
            out.push((rel, path, format!("s{what}{mode:o}")));
        }
    }
    Ok(())
}

fn component_name(m: &Manifest) -> String {
    match &m.fileset {
        Some(fs) => format!("{}.{fs}", m.product),
        None => m.product.clone(),
    }
}

/// Whether `old` was superseded by `top`, following `superseded_by` links.
fn superseded_chain(rows: &[PatchRow], top: &str, old: &str) -> bool {
    let mut cur = old.to_string();
    for _ in 0..rows.len() {
        match rows
            .iter()
            .find(|r| r.id == cur)
            .and_then(|r| r.superseded_by.clone())
        {
            Some(by) if by == top => return true,
            Some(by) => cur = by,
            None => return false,
        }
    }
    false
}

/// The node's files against its saved state, read-only (no recovery, no
/// lock), for `patchdeck doctor`: an unfinished operation, staged copies
/// and save areas missing or left over, saved originals that no longer
/// match, installed files that drifted. Each problem is `(path, what is
/// wrong, how to recover)`. `Err` when the database cannot be read.
pub fn audit(root: &Path) -> std::result::Result<Vec<(PathBuf, String, String)>, String> {
    let store = root.join(STORE_DIR);
    let db = store.join("ipd.sqlite");
    let conn = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    let read = |e: rusqlite::Error| format!("{}: {e}", db.display());
    let mut out = Vec::new();
    if let Some(i) = store::intent(&conn).map_err(read)? {
        out.push((
            db.clone(),
            format!(
                "an interrupted {} of {} (phase {}) is not finished",
                i.op, i.patch, i.phase
            ),
            "run any operation on this node (e.g. `patchdeck list --nodes ID`): it finishes or undoes it first".to_string(),
        ));
    }
    let rows = store::patches(&conn).map_err(read)?;
    for row in &rows {
        let id = &row.id;
        let staged = store.join("staged").join(format!("{id}.patch"));
        if !staged.is_file() {
            out.push((
                staged.clone(),
                format!("the staged copy of {id} ({}) is missing", row.state),
                format!(
                    "copy {id}.patch from the depot to {} (it is verified again before use)",
                    staged.display()
                ),
            ));
        }
        if !row.state.is_installed() {
            continue;
        }
        let files = store::files(&conn, id).map_err(read)?;
        if row.state == PatchState::Applied && !row.committed {
            for f in files.iter().filter(|f| f.before_sha.is_some()) {
                let saved = store.join("save").join(id).join("orig").join(&f.path);
                let sha = archive::sha256_file(&saved).ok();
                if sha != f.before_sha {
                    out.push((
                        saved,
                        format!(
                            "the saved original of {} is {}; {id} cannot be rolled back",
                            f.path,
                            if sha.is_some() { "damaged" } else { "missing" }
                        ),
                        format!(
                            "restore the file from a backup, or commit {id} to give up its rollback"
                        ),
                    ));
                }
            }
        }
        for f in &files {
            let on_disk = root.join(&f.path);
            let regular = fs::symlink_metadata(&on_disk).is_ok_and(|m| m.file_type().is_file());
            let sha = regular
                .then(|| archive::sha256_file(&on_disk).ok())
                .flatten();
            let later = rows.iter().any(|r| {
                r.state.is_installed()
                    && r.seq > row.seq
                    && store::files(&conn, &r.id)
                        .is_ok_and(|fs| fs.iter().any(|g| g.path == f.path))
            });
            if !later && sha.as_deref() != Some(f.after_sha.as_str()) {
                out.push((
                    on_disk,
                    format!(
                        "{} differs from what {id} installed ({})",
                        f.path,
                        if sha.is_some() { "changed" } else { "missing or not a regular file" }
                    ),
                    format!("see `patchdeck verify`; roll {id} back and install it again, or restore the file"),
                ));
            }
        }
    }
    let known = |id: &str| rows.iter().any(|r| r.id == id);
    if let Ok(dir) = fs::read_dir(store.join("staged")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".patch").unwrap_or(&name);
            if !known(id) {
                out.push((
                    e.path(),
                    format!("{name} is in staged/ but the database does not know it"),
                    "delete it, or stage the patch again".to_string(),
                ));
            }
        }
    }
    if let Ok(dir) = fs::read_dir(store.join("save")) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let kept = rows
                .iter()
                .any(|r| r.id == id && r.state.is_installed() && !r.committed);
            if !kept {
                out.push((
                    e.path(),
                    format!("a save area for {id}, which has nothing to roll back"),
                    "delete it once no operation runs on this node".to_string(),
                ));
            }
        }
    }
    Ok(out)
}

/// The ids of the patches whose changes are on the node.
fn installed_ids(rows: &[PatchRow]) -> Vec<&str> {
    rows.iter()
        .filter(|r| r.state.is_installed())
        .map(|r| r.id.as_str())
        .collect()
}

/// Whether a patch in `state` counts on its requirements: an applied or
/// committed one (a superseded one is carried by its superseder).
fn holds_requirements(state: PatchState) -> bool {
    matches!(state, PatchState::Applied | PatchState::Committed)
}

/// A state as `list` shows it: `superseded, committed` when a committed
/// patch was superseded later.
pub fn state_text(row: &PatchRow) -> String {
    listed_state(row.state, row.committed)
}

/// The combined state text of a patch in `state`, committed or not.
pub fn listed_state(state: PatchState, committed: bool) -> String {
    if state == PatchState::Superseded && committed {
        "superseded, committed".to_string()
    } else {
        state.as_str().to_string()
    }
}

/// Advice when `leaving` is needed: who needs it for what, and what to do.
fn dependents_advice(deps: &[requirement::Dependent], leaving: &str) -> String {
    let names: Vec<String> = deps
        .iter()
        .map(|d| {
            if d.requirement == leaving {
                format!("{} requires it", d.dependent)
            } else {
                format!(
                    "{} requires {}, which {leaving} supersedes",
                    d.dependent, d.requirement
                )
            }
        })
        .collect();
    let mut first: Vec<&str> = deps.iter().map(|d| d.dependent.as_str()).collect();
    first.dedup();
    format!("{}; roll back {} first", names.join(", "), first.join(", "))
}
