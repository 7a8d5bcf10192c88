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

mod audit;
mod commit;
pub mod environment;
pub mod fault;
mod install;
pub mod lock;
pub mod paths;
mod read;
mod recover;
mod rollback;
pub mod space;
mod stage;
pub mod store;
pub mod trust;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::engine::inventory::PatchState;
use crate::engine::manifest::{Manifest, Restart};
use crate::engine::requirement::{self};
use lock::{Acquired, NodeLock};
use store::{FileRow, PatchRow};

pub use audit::audit;
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
    /// The node could not be reached, or stopped answering within its
    /// deadline (the connection was ended).
    Unreachable,
    /// The node's ssh host key differs from the one recorded, or none is
    /// recorded yet.
    HostKey,
    /// The node refused the login (ssh authentication, or sudo asked for a
    /// password).
    Login,
    /// The patchdeck binary is not on the node where the fleet says.
    Missing,
    /// The node's patchdeck speaks another protocol version.
    Version,
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
