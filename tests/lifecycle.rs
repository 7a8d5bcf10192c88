//! The node lifecycle, written once as a suite over a transport factory
//! and run for every transport: stage, install, rollback, commit, remove,
//! supersession, prerequisites, refusals that say what would allow them.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{manifest, write_patch};
use patchdeck::engine::inventory::PatchState;
use patchdeck::engine::manifest::Restart;
use patchdeck::engine::node::{ErrorKind, Node};
use patchdeck::engine::transport::{Local, Transport};

/// A node root with `gateway 10.1` installed and one existing file.
pub fn node_root(dir: &Path) -> PathBuf {
    let root = dir.join("node");
    fs::create_dir_all(root.join("opt/gw")).unwrap();
    fs::write(root.join("opt/gw/lib.so"), b"original library\n").unwrap();
    fs::set_permissions(
        root.join("opt/gw/lib.so"),
        fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let mut node = Node::open(&root, "gw-1").unwrap();
    node.set_product("gateway", "10.1").unwrap();
    root
}

pub struct Patches {
    pub dir: PathBuf,
}

impl Patches {
    fn new(dir: &Path) -> Patches {
        let dir = dir.join("patches");
        fs::create_dir_all(&dir).unwrap();
        Patches { dir }
    }
    /// A patch replacing lib.so and creating a new file in a new directory.
    fn add(&self, id: &str, extra: &str) -> PathBuf {
        let lib = format!("library from {id}\n");
        let new = format!("config from {id}\n");
        write_patch(
            &self.dir,
            id,
            &manifest(id, extra),
            &[
                ("opt/gw/lib.so", lib.as_bytes()),
                ("opt/gw/conf.d/new.conf", new.as_bytes()),
            ],
        )
    }
}

fn no_progress() -> impl FnMut(u64, u64) {
    |_, _| {}
}

/// The whole suite; `open` gives a transport to the node at a root.
pub fn suite(open: &dyn Fn(&Path) -> Box<dyn Transport>) {
    install_and_rollback_restore_byte_for_byte(open);
    supersession_and_commit(open);
    refusals_name_state_and_remedy(open);
    prerequisites_and_base_version(open);
    no_save_goes_straight_to_committed(open);
}

fn install_and_rollback_restore_byte_for_byte(open: &dyn Fn(&Path) -> Box<dyn Transport>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "restart = \"service\"");
    let before = Node::open(&root, "gw-1").unwrap().digest().unwrap();
    let mut t = open(&root);

    let r = t.stage("GW_1", &p1, &mut no_progress()).unwrap();
    assert_eq!(r.state, PatchState::Staged);
    let staged = Node::open(&root, "gw-1").unwrap().digest().unwrap();
    assert_ne!(staged, before);

    let r = t.install("GW_1", true).unwrap();
    assert_eq!(
        (r.state, r.restart),
        (PatchState::Applied, Restart::Service)
    );
    assert!(r.message.contains("service restart"), "{}", r.message);
    assert_eq!(
        fs::read(root.join("opt/gw/lib.so")).unwrap(),
        b"library from GW_1\n"
    );
    assert_eq!(
        fs::read(root.join("opt/gw/conf.d/new.conf")).unwrap(),
        b"config from GW_1\n"
    );
    assert!(t.verify().unwrap().is_empty());
    let listed = t.list().unwrap();
    assert_eq!(listed[0].pending_restart, Some(Restart::Service));
    let inv = t.inventory().unwrap();
    assert_eq!(
        inv.components.get("gateway.core").map(String::as_str),
        Some("10.1.1")
    );

    // Drift is reported.
    fs::write(root.join("opt/gw/conf.d/new.conf"), b"edited by hand\n").unwrap();
    let drift = t.verify().unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].path, "opt/gw/conf.d/new.conf");
    fs::write(root.join("opt/gw/conf.d/new.conf"), b"config from GW_1\n").unwrap();

    let r = t.rollback("GW_1").unwrap();
    assert_eq!(r.state, PatchState::Staged);
    assert_eq!(
        fs::read(root.join("opt/gw/lib.so")).unwrap(),
        b"original library\n"
    );
    assert_eq!(
        fs::metadata(root.join("opt/gw/lib.so"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    assert!(
        !root.join("opt/gw/conf.d").exists(),
        "created file and directory are gone"
    );
    assert!(
        t.inventory()
            .unwrap()
            .components
            .get("gateway.core")
            .is_none()
    );
    drop(t);
    // Everything but the pending-restart note is as it was when staged.
    let node = Node::open(&root, "gw-1").unwrap();
    assert_eq!(node.state("GW_1").unwrap(), PatchState::Staged);

    let mut t = open(&root);
    t.remove("GW_1").unwrap();
    assert_eq!(t.list().unwrap().len(), 0);
    assert!(!root.join("var/lib/patchdeck/staged/GW_1.patch").exists());
}

fn supersession_and_commit(open: &dyn Fn(&Path) -> Box<dyn Transport>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "");
    let p2 = patches.add("GW_2", "supersedes = [\"GW_1\"]");
    let mut t = open(&root);
    t.stage("GW_1", &p1, &mut no_progress()).unwrap();
    t.stage("GW_2", &p2, &mut no_progress()).unwrap();
    t.install("GW_1", true).unwrap();
    let r = t.install("GW_2", true).unwrap();
    assert_eq!(r.also, ["GW_1"]);
    let state = |t: &mut Box<dyn Transport>, id: &str| {
        t.list()
            .unwrap()
            .into_iter()
            .find(|l| l.patch == id)
            .unwrap()
    };
    let old = state(&mut t, "GW_1");
    assert_eq!(
        (old.state, old.superseded_by.as_deref()),
        (PatchState::Superseded, Some("GW_2"))
    );

    // The superseded one cannot be rolled back while its superseder is applied.
    let e = t.rollback("GW_1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert!(
        e.message.contains("superseded by GW_2") && e.message.contains("roll that one back first"),
        "{e}"
    );

    // Rolling back the superseder restores the old one, files included.
    t.rollback("GW_2").unwrap();
    assert_eq!(state(&mut t, "GW_1").state, PatchState::Applied);
    assert_eq!(
        fs::read(root.join("opt/gw/lib.so")).unwrap(),
        b"library from GW_1\n"
    );

    // Commit GW_2 and its superseded GW_1 is committed too.
    t.install("GW_2", true).unwrap();
    let r = t.commit("GW_2").unwrap();
    assert_eq!(r.also, ["GW_1"]);
    assert_eq!(state(&mut t, "GW_2").state, PatchState::Committed);
    let old = state(&mut t, "GW_1");
    assert_eq!((old.state, old.committed), (PatchState::Superseded, true));
    assert!(!root.join("var/lib/patchdeck/save/GW_1").exists());
    assert!(!root.join("var/lib/patchdeck/save/GW_2").exists());
    let e = t.rollback("GW_2").unwrap_err();
    assert!(e.message.contains("committed"), "{e}");
}

fn refusals_name_state_and_remedy(open: &dyn Fn(&Path) -> Box<dyn Transport>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "");
    let mut t = open(&root);
    let e = t.install("GW_1", true).unwrap_err();
    assert!(
        e.message.contains("GW_1") && e.message.contains("stage it first"),
        "{e}"
    );
    assert!(e.to_string().starts_with("node gw-1:"), "{e}");
    t.stage("GW_1", &p1, &mut no_progress()).unwrap();
    assert!(
        t.stage("GW_1", &p1, &mut no_progress())
            .unwrap()
            .message
            .contains("already staged")
    );
    let e = t.rollback("GW_1").unwrap_err();
    assert!(
        e.message.contains("is staged") && e.message.contains("install it first"),
        "{e}"
    );
    t.install("GW_1", true).unwrap();
    let e = t.remove("GW_1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert!(
        e.message.contains("is applied") && e.message.contains("roll it back first"),
        "{e}"
    );
    let e = t.install("GW_1", true).unwrap_err();
    assert!(e.message.contains("already installed"), "{e}");
}

fn prerequisites_and_base_version(open: &dyn Fn(&Path) -> Box<dyn Transport>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let needs = write_patch(
        &patches.dir,
        "GW_9",
        &manifest("GW_9", "requires = [\"GW_1\"]"),
        &[("opt/gw/nine", b"9")],
    );
    let p1 = patches.add("GW_1", "");
    let newer = write_patch(
        &patches.dir,
        "GW_8",
        &manifest("GW_8", "base_version = \">=11\""),
        &[("opt/gw/eight", b"8")],
    );
    let mut t = open(&root);
    for (id, p) in [("GW_9", &needs), ("GW_1", &p1), ("GW_8", &newer)] {
        t.stage(id, p, &mut no_progress()).unwrap();
    }
    let e = t.install("GW_9", true).unwrap_err();
    assert!(
        e.message.contains("requires GW_1") && e.message.contains("install GW_1 first"),
        "{e}"
    );
    t.install("GW_1", true).unwrap();
    t.install("GW_9", true).unwrap();
    let e = t.install("GW_8", true).unwrap_err();
    assert!(
        e.message.contains(">=11") && e.message.contains("10.1"),
        "{e}"
    );
}

fn no_save_goes_straight_to_committed(open: &dyn Fn(&Path) -> Box<dyn Transport>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "");
    let mut t = open(&root);
    t.stage("GW_1", &p1, &mut no_progress()).unwrap();
    let r = t.install("GW_1", false).unwrap();
    assert_eq!(r.state, PatchState::Committed);
    assert!(!root.join("var/lib/patchdeck/save/GW_1").exists());
}

#[test]
fn lifecycle_in_process() {
    suite(&|root| Box::new(Local::open(root, "gw-1").unwrap()));
}

#[test]
fn a_second_operation_is_refused_while_one_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let lock = patchdeck::engine::node::lock::NodeLock::try_acquire(
        &root.join("var/lib/patchdeck/lock"),
        "install",
        "GW_7",
    )
    .unwrap();
    assert!(matches!(
        lock,
        patchdeck::engine::node::lock::Acquired::Held(_)
    ));
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "");
    // flock is per open file description, so a second open in this process
    // contends just as another process would.
    let mut node = Node::open(&root, "gw-1").unwrap();
    let e = node.stage("GW_1", &p1).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Busy);
    assert!(
        e.message.contains("busy: install GW_7 since")
            && e.message.contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    drop(lock);
    node.stage("GW_1", &p1).unwrap();
}
