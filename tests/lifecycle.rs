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
use patchdeck::engine::node::{ErrorKind, Node, NodeError};
use patchdeck::engine::protocol::{CHUNK, PROTOCOL, Remote, SOFTWARE};
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
    a_requirement_is_met_through_a_chain_the_console_knows(open);
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
        !t.inventory()
            .unwrap()
            .components
            .contains_key("gateway.core")
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

/// One rule for requirements, on the node: GW_3 supersedes GW_1 through
/// GW_2, which the node never holds; the console's edges tell it so.
fn a_requirement_is_met_through_a_chain_the_console_knows(
    open: &dyn Fn(&Path) -> Box<dyn Transport>,
) {
    use patchdeck::engine::requirement::Supersession;
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let top = write_patch(
        &patches.dir,
        "GW_3",
        &manifest("GW_3", "supersedes = [\"GW_2\"]"),
        &[("opt/gw/three", b"3")],
    );
    let needs = write_patch(
        &patches.dir,
        "GW_9",
        &manifest("GW_9", "requires = [\"GW_1\"]"),
        &[("opt/gw/nine", b"9")],
    );
    let mut t = open(&root);
    t.stage("GW_3", &top, &mut no_progress()).unwrap();
    t.stage("GW_9", &needs, &mut no_progress()).unwrap();
    t.install("GW_3", true).unwrap();
    // Without the console's knowledge the chain is broken at GW_2.
    let e = t.install("GW_9", true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    let mut known = Supersession::default();
    known.add("GW_3", ["GW_2"]);
    known.add("GW_2", ["GW_1"]);
    t.install_with("GW_9", true, &known).unwrap();
    // The node keeps what it learnt: GW_3 cannot go from under GW_9.
    let e = t.rollback("GW_3").unwrap_err();
    assert!(
        e.message.contains("GW_9") && e.message.contains("GW_1"),
        "{e}"
    );
    assert!(t.verify().unwrap().is_empty());
    // The same answer before an uninstall starts: alone GW_3 cannot go,
    // with GW_9 it can.
    let blocked = t.removal_blocked(&["GW_3".to_string()]).unwrap();
    assert_eq!(
        blocked
            .iter()
            .map(|d| (d.dependent.as_str(), d.requirement.as_str()))
            .collect::<Vec<_>>(),
        [("GW_9", "GW_1")]
    );
    assert!(
        t.removal_blocked(&["GW_3".to_string(), "GW_9".to_string()])
            .unwrap()
            .is_empty()
    );
    t.rollback("GW_9").unwrap();
    t.rollback("GW_3").unwrap();
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
        e.message.contains("superseded by GW_2") && e.message.contains("roll back GW_2 first"),
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
    // Committed together with its superseder: no advice to roll back what
    // cannot be, and the state says both.
    let e = t.rollback("GW_1").unwrap_err();
    assert!(
        e.message.contains("superseded, committed")
            && e.message.contains("install a patch that supersedes GW_2")
            && !e.message.contains("roll back GW_2"),
        "{e}"
    );
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

// ----- over the node protocol -----

const EXE: &str = env!("CARGO_BIN_EXE_patchdeck");

/// Quotes a word for `sh -c`.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn shell_line(root: &Path) -> String {
    format!(
        "{} node --root {} --name gw-1",
        sh_quote(EXE),
        sh_quote(&root.display().to_string())
    )
}

fn open_error(r: Result<Remote, NodeError>) -> NodeError {
    match r {
        Ok(_) => panic!("the transport opened"),
        Err(e) => e,
    }
}

fn uploads_left(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("var/lib/patchdeck"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload-"))
        .collect()
}

#[test]
fn lifecycle_over_child_process() {
    suite(&|root| Box::new(Remote::local_child(Path::new(EXE), root, "gw-1").unwrap()));
}

#[test]
fn lifecycle_over_shell_command() {
    // The path OpenSSH takes: a command line run by a shell.
    suite(&|root| Box::new(Remote::shell(&shell_line(root), "gw-1").unwrap()));
}

#[test]
fn lifecycle_over_ssh() {
    // A real sshd on the loopback address, reached with the system's ssh.
    use patchdeck::engine::fleet::{SshConfig, SshDest};
    use patchdeck::engine::ssh::SshTarget;
    let tmp = tempfile::tempdir().unwrap();
    let sshd = common::sshd::Sshd::start(tmp.path());
    let config = std::sync::Arc::new(SshConfig {
        options: sshd.options(),
        patchdeck: EXE.into(),
        ..SshConfig::default()
    });
    let control = tmp.path().join("run");
    fs::create_dir_all(&control).unwrap();
    suite(&|root| {
        let target = SshTarget {
            node: "gw-1".into(),
            dest: SshDest::parse(&sshd.dest()).unwrap(),
            remote_root: root.display().to_string(),
            sudo: false,
            config: config.clone(),
            control_dir: Some(control.clone()),
            accept_new: false,
        };
        Box::new(target.connect().unwrap())
    });
}

#[test]
fn the_handshake_names_the_node_and_its_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let t = Remote::local_child(Path::new(EXE), &root, "gw-1").unwrap();
    let hello = t.hello();
    assert_eq!(hello.protocol, PROTOCOL);
    assert_eq!(hello.server, SOFTWARE);
    assert_eq!(hello.node, "gw-1");
    assert_eq!(hello.root, root.display().to_string());
    assert_eq!(t.node(), "gw-1");
}

#[test]
fn a_node_speaking_another_version_is_refused_clearly() {
    // A fake node that answers the handshake with protocol 99.
    let fake = r#"echo '{"id":0,"ok":true,"result":{"protocol":99,"server":"patchdeck 9.0.0","node":"gw-1","root":"/"}}'"#;
    let e = open_error(Remote::shell(fake, "gw-1"));
    assert_eq!(e.kind, ErrorKind::Version);
    assert!(e.to_string().starts_with("node gw-1: "), "{e}");
    assert!(e.message.contains("is newer than this console"), "{e}");
    assert!(
        e.message.contains("(patchdeck 9.0.0) speaks protocol 99"),
        "{e}"
    );
    assert!(
        e.message.contains(&format!("speaks protocol {PROTOCOL}")),
        "{e}"
    );

    // A fake node that refuses our version, as a newer server would.
    let fake = r#"echo '{"id":0,"ok":false,"error":{"kind":"protocol","message":"the client speaks protocol 1, but this node (patchdeck 9.0.0) speaks protocol 2"}}'"#;
    let e = open_error(Remote::shell(fake, "gw-1"));
    assert_eq!(e.kind, ErrorKind::Version);
    assert!(
        e.message.contains("is newer than this console") && e.message.contains("speaks protocol 2"),
        "{e}"
    );

    // An older one, saying so in fields as this build's nodes do.
    let fake = r#"echo '{"id":0,"ok":false,"error":{"kind":"protocol","message":"no","protocol":0,"server":"patchdeck 0.0.1"}}'"#;
    let e = open_error(Remote::shell(fake, "gw-1"));
    assert_eq!(e.kind, ErrorKind::Version);
    assert!(
        e.message.contains("is older than this console")
            && e.message.contains("(patchdeck 0.0.1) speaks protocol 0"),
        "{e}"
    );

    // Any other refusal of the handshake stays one.
    let fake = r#"echo '{"id":0,"ok":false,"error":{"kind":"protocol","message":"not today"}}'"#;
    let e = open_error(Remote::shell(fake, "gw-1"));
    assert!(
        e.message.starts_with("the node refused the handshake: "),
        "{e}"
    );
}

/// Runs `patchdeck node --root ROOT` with `input` on its standard input.
fn node_session(root: &Path, input: &str) -> std::process::Output {
    assert_cmd::Command::new(EXE)
        .args(["node", "--root"])
        .arg(root)
        .write_stdin(input.to_string())
        .output()
        .unwrap()
}

#[test]
fn the_node_verb_refuses_another_version_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let out = node_session(
        &root,
        "{\"id\":0,\"op\":\"hello\",\"protocol\":2,\"client\":\"patchdeck 2.0.0\"}\n{\"id\":1,\"op\":\"list\"}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["id"], 0);
    assert_eq!(lines[0]["ok"], false);
    assert_eq!(lines[0]["error"]["kind"], "protocol");
    let message = lines[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("protocol 2") && message.contains("protocol 1"),
        "{message}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("protocol 2"),
        "the refusal is on stderr too"
    );
}

#[test]
fn the_node_verb_writes_only_protocol_lines_and_ends_at_eof() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let out = node_session(
        &root,
        "{\"id\":0,\"op\":\"hello\",\"protocol\":1}\nnonsense\n{\"id\":1,\"op\":\"inventory\"}\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    // The name defaults to the root's directory name.
    assert_eq!(lines[0]["result"]["node"], "node");
    assert_eq!(lines[1]["error"]["kind"], "protocol");
    assert_eq!(lines[2]["result"]["products"]["gateway"], "10.1");
}

#[test]
fn a_child_that_exits_at_once_is_a_clear_error_naming_the_node() {
    let e = open_error(Remote::shell(
        "echo 'patchdeck: command not found' >&2; exit 127",
        "gw-9",
    ));
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(e.to_string().starts_with("node gw-9: "), "{e}");
    assert!(
        e.message.contains("no answer to hello")
            && e.message.contains("exit status 127")
            && e.message.contains("patchdeck: command not found"),
        "{e}"
    );

    // The real verb, pointed at a root that is not there.
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("absent");
    let e = open_error(Remote::local_child(Path::new(EXE), &missing, "gw-9"));
    assert!(
        e.message.contains("exit status 2") && e.message.contains("not a directory"),
        "{e}"
    );

    // A program that cannot be started at all.
    let e = open_error(Remote::local_child(
        &tmp.path().join("no-such-patchdeck"),
        tmp.path(),
        "gw-9",
    ));
    assert!(e.to_string().starts_with("node gw-9: cannot start"), "{e}");
}

#[test]
fn a_child_answering_garbage_is_a_clear_error() {
    // What a chatty login shell would do; the child then waits for input
    // and is stopped rather than waited for.
    let e = open_error(Remote::shell(
        "echo 'Welcome to gw-3!'; echo 'motd' >&2; cat >/dev/null",
        "gw-3",
    ));
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.message.contains("Welcome to gw-3!")
            && e.message.contains("not the node protocol")
            && e.message.contains("motd"),
        "{e}"
    );
}

#[test]
fn a_node_killed_mid_install_is_reported_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "");
    let mut command = std::process::Command::new(EXE);
    command
        .args(["node", "--name", "gw-1", "--root"])
        .arg(&root)
        // Abort past the point of no return, as a kill would.
        .env("PATCHDECK_FAULT", "14");
    let mut t = Remote::spawn(command, "gw-1").unwrap();
    t.stage("GW_1", &p1, &mut no_progress()).unwrap();
    let e = t.install("GW_1", true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("node gw-1: no answer to install GW_1")
            && e.message.contains("signal 6"),
        "{e}"
    );
    // The transport stays broken, with the same explanation.
    assert_eq!(t.list().unwrap_err(), e);
    drop(t);
    // The next session finishes the install the crash interrupted.
    let mut t = Remote::local_child(Path::new(EXE), &root, "gw-1").unwrap();
    let listed = t.list().unwrap();
    assert_eq!(listed[0].state, PatchState::Applied);
    assert!(t.verify().unwrap().is_empty());
}

#[test]
fn a_busy_node_is_reported_as_busy_over_the_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "");
    let mut t = Remote::local_child(Path::new(EXE), &root, "gw-1").unwrap();
    let lock = patchdeck::engine::node::lock::NodeLock::try_acquire(
        &root.join("var/lib/patchdeck/lock"),
        "install",
        "GW_7",
    )
    .unwrap();
    let e = t.stage("GW_1", &p1, &mut no_progress()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Busy);
    assert!(
        e.to_string()
            .starts_with("node gw-1: busy: install GW_7 since")
            && e.message.contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    assert!(uploads_left(&root).is_empty(), "{:?}", uploads_left(&root));
    drop(lock);
    // The transport is fine: a busy node is an answer, not a failure.
    t.stage("GW_1", &p1, &mut no_progress()).unwrap();
    assert!(uploads_left(&root).is_empty(), "{:?}", uploads_left(&root));
}

#[test]
fn a_large_patch_goes_up_in_chunks_with_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    // Three chunks and a bit, of bytes that do not repeat simply.
    let big: Vec<u8> = (0..3 * CHUNK + 1234)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let file = write_patch(
        &patches.dir,
        "GW_BIG",
        &manifest("GW_BIG", ""),
        &[("opt/gw/big.bin", &big)],
    );
    let size = fs::metadata(&file).unwrap().len();
    let mut seen = Vec::new();
    let mut t = Remote::shell(&shell_line(&root), "gw-1").unwrap();
    let r = t
        .stage("GW_BIG", &file, &mut |done, total| seen.push((done, total)))
        .unwrap();
    assert_eq!(r.state, PatchState::Staged);
    assert_eq!(seen.first(), Some(&(0, size)));
    assert_eq!(seen.last(), Some(&(size, size)));
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert!(seen.iter().all(|&(_, total)| total == size));
    t.install("GW_BIG", true).unwrap();
    assert_eq!(fs::read(root.join("opt/gw/big.bin")).unwrap(), big);
    assert_eq!(
        fs::read(root.join("var/lib/patchdeck/staged/GW_BIG.patch")).unwrap(),
        fs::read(&file).unwrap()
    );
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

#[test]
fn drain_and_restore_settle_service_restarts_over_every_transport() {
    use patchdeck::engine::node::Service;
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "restart = \"service\"");
    let exe = Path::new(env!("CARGO_BIN_EXE_patchdeck"));
    let transports: Vec<Box<dyn Transport>> = vec![
        Box::new(Local::open(&root, "gw-1").unwrap()),
        Box::new(patchdeck::engine::protocol::Remote::local_child(exe, &root, "gw-1").unwrap()),
    ];
    for (i, mut t) in transports.into_iter().enumerate() {
        if i == 0 {
            t.stage("GW_1", &p1, &mut no_progress()).unwrap();
            t.install("GW_1", true).unwrap();
        }
        assert_eq!(
            t.service(None).unwrap().pending_restart,
            if i == 0 {
                Restart::Service
            } else {
                Restart::None
            }
        );
        let s = t.service(Some(Service::Down)).unwrap();
        assert_eq!(s.state, Service::Down);
        assert_eq!(t.service(None).unwrap().state, Service::Down);
        let s = t.service(Some(Service::Up)).unwrap();
        assert_eq!(
            (s.state, s.pending_restart),
            (Service::Up, Restart::None),
            "restoring restarts the service"
        );
    }
}

#[test]
fn verify_reports_a_link_or_fifo_where_a_file_was_without_following_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = node_root(tmp.path());
    let patches = Patches::new(tmp.path());
    let p1 = patches.add("GW_1", "");
    let mut node = Node::open(&root, "gw-1").unwrap();
    node.stage("GW_1", &p1).unwrap();
    node.install("GW_1", true).unwrap();
    let lib = root.join("opt/gw/lib.so");
    fs::remove_file(&lib).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &lib).unwrap();
    let conf = root.join("opt/gw/conf.d/new.conf");
    fs::remove_file(&conf).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&conf)
            .status()
            .unwrap()
            .success()
    );
    let drift = node.verify().unwrap();
    let paths: Vec<&str> = drift.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["opt/gw/conf.d/new.conf", "opt/gw/lib.so"]);
    assert!(drift.iter().all(|d| d.actual.is_none()));
}
