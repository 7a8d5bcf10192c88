//! Nodes reached through OpenSSH, against a real sshd on 127.0.0.1 (see
//! common/sshd.rs): verbs and a rollout over ssh members, links that hang
//! or drop, host keys, missing and old remote binaries, `bootstrap`, and
//! the node side outliving its ssh parent.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::sshd::Sshd;
use patchdeck::engine::node::Node;
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_patchdeck");

/// How long any wait for a state may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(lab: &Path, args: &[&str]) -> Output {
    Command::new(EXE)
        .env_remove("PATCHDECK_LAB")
        .args(args)
        .arg("--lab")
        .arg(lab)
        .output()
        .unwrap()
}

fn ok(lab: &Path, args: &[&str]) -> Output {
    let out = run(lab, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", text(&out.stdout), text(&out.stderr)))
}

/// Waits until `done` holds, failing after [`PATIENCE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "still waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any process's command line contains all of `words`.
fn running(words: &[&str]) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            return false;
        };
        // A zombie has an empty command line: it runs nothing.
        let cmd = text(&cmd).replace('\0', " ");
        !cmd.is_empty() && words.iter().all(|w| cmd.contains(w))
    })
}

/// A node root with `gateway 10.1` installed.
fn node_root(root: &Path, name: &str) {
    fs::create_dir_all(root.join("opt/gw")).unwrap();
    fs::write(root.join("opt/gw/lib.so"), b"original library\n").unwrap();
    Node::open(root, name)
        .unwrap()
        .set_product("gateway", "10.1")
        .unwrap();
}

/// A lab under `dir` whose depot holds GW_1 and whose fleet has cluster
/// `c` of the ssh `members` (named `n1_1`, `n1_2`, ...; two groups, halt on
/// failure) plus the `extra` node tables, reached through `sshd` with the
/// `[ssh]` table's `extra_ssh` lines and remote binary `patchdeck`.
struct Lab {
    path: PathBuf,
    roots: PathBuf,
}

impl Lab {
    fn new(dir: &Path, sshd: &Sshd, members: usize, patchdeck: &Path, extra_ssh: &str) -> Lab {
        let path = dir.join("lab");
        let roots = dir.join("roots");
        fs::create_dir_all(path.join("depot")).unwrap();
        common::good(&path.join("depot"), "GW_1", "");
        let mut fleet = String::from(
            "[[datacenter]]\nid = \"dc1\"\n\n[[organization]]\nid = \"org\"\n\n\
             [[cluster]]\nid = \"c\"\ngroups = 2\nhealth_deadline_secs = 20\non_failure = \"halt\"\n\n",
        );
        fleet.push_str(&sshd.ssh_table(patchdeck, extra_ssh));
        for i in 1..=members {
            let id = format!("n1_{i}");
            let root = roots.join(&id);
            node_root(&root, &id);
            fleet.push_str(&format!(
                "\n[[node]]\nid = \"{id}\"\ndc = \"dc1\"\norg = \"org\"\nsite = \"1\"\ncluster = \"c\"\nmember = \"1_{i}\"\nssh = \"{}\"\nremote_root = \"{}\"\n",
                sshd.dest(),
                root.display()
            ));
        }
        fs::write(path.join("fleet.toml"), fleet).unwrap();
        Lab { path, roots }
    }

    fn add_node(&self, table: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.path.join("fleet.toml"))
            .unwrap();
        writeln!(f, "\n[[node]]\ndc = \"dc1\"\norg = \"org\"\n{table}").unwrap();
    }

    fn members(n: usize) -> String {
        (1..=n)
            .map(|i| format!("n1_{i}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// node → state of GW_1, as `list --json` says.
    fn states(&self) -> Vec<(String, String)> {
        let rows = json(&ok(&self.path, &["list", "--json"]));
        let mut out: Vec<(String, String)> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["patch"] == "GW_1")
            .map(|r| {
                (
                    r["node"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The patched files of every node root (the node stores aside).
    fn files(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.roots).unwrap().flatten() {
            for (k, v) in common::listing(&e.path().join("opt"), &[]) {
                out.push((format!("{}/{k}", e.file_name().to_string_lossy()), v));
            }
        }
        out.sort();
        out
    }
}

#[test]
fn verbs_and_a_rollout_run_over_ssh_members_through_one_master_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let lab = Lab::new(tmp.path(), &sshd, 4, Path::new(EXE), "");
    let checks = json(&ok(&lab.path, &["nodes", "--check", "--json"]));
    for c in checks.as_array().unwrap() {
        assert_eq!(c["reachable"], true, "{c}");
        assert_eq!(c["error"], Value::Null, "{c}");
        assert_eq!(c["protocol"], 1, "{c}");
        assert_eq!(c["version"], env!("CARGO_PKG_VERSION"), "{c}");
    }
    ok(
        &lab.path,
        &["replicate", "GW_1", "--nodes", &Lab::members(4), "--wait"],
    );
    let out = ok(&lab.path, &["rollout", "start", "--cluster", "c", "GW_1"]);
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stdout));
    assert!(
        lab.states().iter().all(|(_, s)| s == "applied"),
        "{:?}",
        lab.states()
    );
    for i in 1..=4 {
        assert_eq!(
            fs::read(lab.roots.join(format!("n1_{i}/opt/gw/lib.so"))).unwrap(),
            b"payload of GW_1"
        );
    }
    ok(&lab.path, &["verify"]);
    // The master connection waits in the lab's run/ directory for the
    // next command.
    let sockets: Vec<_> = fs::read_dir(lab.path.join("run"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(sockets.len(), 1, "one master for the one host");
    let mode = fs::metadata(lab.path.join("run"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_hanging_link_is_unreachable_within_its_deadline_and_the_other_nodes_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    // A host whose proxy never answers, a command that never answers, and
    // one that shakes hands and then falls silent.
    sshd.add_host("Host hang-host\n  HostName 127.0.0.1\n  ProxyCommand sleep 6017\n");
    let lab = Lab::new(
        tmp.path(),
        &sshd,
        2,
        Path::new(EXE),
        "connect_timeout_secs = 3\nop_timeout_secs = 3\n",
    );
    lab.add_node("id = \"hang\"\nssh = \"hang-host\"");
    lab.add_node("id = \"mute\"\ncommand = \"exec sleep 6018\"");
    let hello = r#"{"id":0,"ok":true,"result":{"protocol":1,"server":"patchdeck 0.1.0","node":"silent","root":"/"}}"#;
    lab.add_node(&format!(
        "id = \"silent\"\ncommand = '''echo '{hello}'; exec sleep 6019'''"
    ));

    ok(
        &lab.path,
        &["replicate", "GW_1", "--nodes", "n1_1,n1_2", "--wait"],
    );
    let start = Instant::now();
    let out = run(&lab.path, &["list", "--json"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let rows = json(&out);
    let nodes: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert!(
        nodes.contains(&"n1_1") && nodes.contains(&"n1_2"),
        "{nodes:?}"
    );
    let err = text(&out.stderr);
    for node in ["hang", "mute", "silent"] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("node {node}:")))
            .unwrap_or_else(|| panic!("{node} not reported: {err}"));
        assert!(line.contains("unreachable"), "{line}");
    }
    let mute = err.lines().find(|l| l.contains("node mute:")).unwrap();
    assert!(
        mute.contains("no answer to hello within 3.0 s (waited 3."),
        "{mute}"
    );
    let silent = err.lines().find(|l| l.contains("node silent:")).unwrap();
    assert!(
        silent.contains("no answer to list within 3.0 s (waited 3."),
        "{silent}"
    );
    // In parallel, each within its own deadline: nowhere near forever.
    assert!(took < Duration::from_secs(20), "list took {took:?}");
    // Whatever the links started has been ended.
    for n in ["6017", "6018", "6019"] {
        wait_until(&format!("sleep {n} to end"), || !running(&["sleep", n]));
    }

    // `nodes --check` and `verify` report it the same way and go on.
    let out = run(&lab.path, &["nodes", "--check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let checks = json(&out);
    let by_id = |id: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("n1_1")["reachable"], true);
    for id in ["hang", "mute"] {
        let c = by_id(id);
        assert_eq!(c["reachable"], false, "{c}");
        assert_eq!(c["problem"], "unreachable", "{c}");
        assert!(c["error"].as_str().unwrap().contains("unreachable"), "{c}");
    }
    let out = run(&lab.path, &["verify", "--nodes", "n1_1,mute"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("on 1 node(s) checked"),
        "{}",
        text(&out.stdout)
    );

    // A rollout does not start on a cluster with an unreachable member, and
    // says which.
    let fleet = fs::read_to_string(lab.path.join("fleet.toml")).unwrap();
    fs::write(
        lab.path.join("fleet.toml"),
        fleet.replace(
            "id = \"hang\"",
            "id = \"hang\"\ncluster = \"c\"\nsite = \"1\"\nmember = \"1_3\"",
        ),
    )
    .unwrap();
    let out = run(&lab.path, &["rollout", "start", "--cluster", "c", "GW_1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("hang") && said.contains("unreachable"),
        "{said}"
    );
}

/// A stand-in for the node binary: the real one, except that for node
/// `victim`, once `armed` exists, its answers stop reaching the console
/// as soon as an install has begun (and `stalled` says so): the link is
/// then cut by killing sshd while the node works on.
fn stalling_wrapper(dir: &Path, victim: &str) -> PathBuf {
    let path = dir.join("patchdeck-wrapper");
    let d = dir.display();
    let script = format!(
        "#!/bin/sh\n\
         case \" $* \" in *\" --name {victim} \"*)\n\
           if [ -e {d}/armed ]; then\n\
             '{EXE}' \"$@\" | while IFS= read -r line; do\n\
               printf '%s\\n' \"$line\"\n\
               case $line in *'\"event\":\"progress\",\"done\":0,\"total\":1'*)\n\
                 rm -f {d}/armed; touch {d}/stalled; exec cat >/dev/null;;\n\
               esac\n\
             done\n\
             exit 0\n\
           fi;;\n\
         esac\n\
         exec '{EXE}' \"$@\"\n"
    );
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn sshd_killed_during_an_install_and_the_rollout_resumed_ends_as_an_uninterrupted_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sshd = Sshd::start(tmp.path());

    // The twin, undisturbed.
    let twin_dir = tmp.path().join("twin");
    let twin = Lab::new(&twin_dir, &sshd, 2, Path::new(EXE), "");
    ok(
        &twin.path,
        &["replicate", "GW_1", "--nodes", "n1_1,n1_2", "--wait"],
    );
    ok(&twin.path, &["rollout", "start", "--cluster", "c", "GW_1"]);

    let dir = tmp.path().join("cut");
    fs::create_dir_all(&dir).unwrap();
    let wrapper = stalling_wrapper(&dir, "n1_1");
    let lab = Lab::new(&dir, &sshd, 2, &wrapper, "");
    ok(
        &lab.path,
        &["replicate", "GW_1", "--nodes", "n1_1,n1_2", "--wait"],
    );
    fs::write(dir.join("armed"), b"").unwrap();
    let rollout = Command::new(EXE)
        .args(["rollout", "start", "--cluster", "c", "GW_1", "--lab"])
        .arg(&lab.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the install on n1_1 to begin", || {
        dir.join("stalled").exists()
    });
    sshd.kill();
    let out = rollout.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("n1_1") && said.contains("unreachable"),
        "{said}"
    );

    // The node finishes on its own once its link is gone.
    let root = lab.roots.join("n1_1").display().to_string();
    wait_until("the cut-off node to finish", || {
        !running(&[EXE, "node", "--root", &root])
    });
    sshd.restart();
    let out = ok(&lab.path, &["rollout", "resume", "1"]);
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stdout));

    assert_eq!(lab.states(), twin.states());
    assert!(lab.states().iter().all(|(_, s)| s == "applied"));
    assert_eq!(lab.files(), twin.files());
    ok(&lab.path, &["verify"]);
    // The interrupted step was taken up, not repeated: the node had
    // finished the install, so its retry found nothing left to do.
    let st = json(&ok(&lab.path, &["rollout", "status", "1", "--json"]));
    let apply = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "apply" && s["node"] == "n1_1")
        .unwrap()
        .clone();
    assert_eq!(apply["state"], "done", "{apply}");
    assert!(
        apply["message"]
            .as_str()
            .unwrap_or("")
            .contains("nothing left to do"),
        "{apply}"
    );
}

#[test]
fn a_changed_host_key_is_refused_and_a_new_one_is_trusted_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sshd = Sshd::start(tmp.path());
    let lab = Lab::new(tmp.path(), &sshd, 1, Path::new(EXE), "multiplex = false\n");
    ok(&lab.path, &["list"]);

    sshd.change_host_key();
    for args in [
        &["list"][..],
        &["nodes", "--check", "--json"][..],
        &["nodes", "--check", "--accept-new", "--json"][..],
    ] {
        let out = run(&lab.path, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            said.contains("node n1_1") && said.contains("host key") && said.contains("has changed"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("@@@"), "{said}");
    }
    let out = run(&lab.path, &["nodes", "--check", "--json"]);
    assert_eq!(json(&out)[0]["problem"], "host_key");

    // A host never seen: refused until the operator says to record it.
    fs::write(&sshd.known_hosts, b"").unwrap();
    let out = run(&lab.path, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not in known_hosts"),
        "{}",
        text(&out.stderr)
    );
    let out = ok(&lab.path, &["nodes", "--check", "--accept-new", "--json"]);
    assert_eq!(json(&out)[0]["reachable"], true);
    assert!(!fs::read_to_string(&sshd.known_hosts).unwrap().is_empty());
    ok(&lab.path, &["list"]);
}

/// A patchdeck from an older release: its own version, protocol 0.
fn old_binary(path: &Path) {
    let refusal = r#"{"id":0,"ok":false,"error":{"kind":"protocol","message":"the client speaks protocol 1, but this node (patchdeck 0.0.9) speaks protocol 0","protocol":0,"server":"patchdeck 0.0.9"}}"#;
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  --version) echo 'patchdeck 0.0.9';;\n  node) read line; echo '{refusal}'; exit 1;;\nesac\n"
    );
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_missing_and_an_old_remote_binary_are_reported_and_bootstrap_fixes_both() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let remote = tmp.path().join("node-bin/patchdeck");
    let lab = Lab::new(tmp.path(), &sshd, 1, &remote, "");

    let out = run(&lab.path, &["nodes", "--check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let c = &json(&out)[0];
    assert_eq!(
        (c["reachable"].clone(), c["problem"].clone()),
        (Value::Bool(true), "missing".into()),
        "{c}"
    );
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("bootstrap --nodes n1_1"),
        "{c}"
    );
    let out = run(&lab.path, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("patchdeck is not at"),
        "{}",
        text(&out.stderr)
    );

    // The lab trusts a key: bootstrap carries it to the node with the binary.
    let keys = tmp.path().join("keys");
    ok(
        &lab.path,
        &[
            "key",
            "generate",
            "-o",
            keys.to_str().unwrap(),
            "--name",
            "ops",
            "--no-passphrase",
        ],
    );
    ok(
        &lab.path,
        &[
            "depot",
            "trust",
            "add",
            keys.join("ops.pub").to_str().unwrap(),
        ],
    );
    let out = ok(&lab.path, &["bootstrap", "--nodes", "n1_1", "--json"]);
    let placed = &json(&out)[0];
    assert_eq!(placed["action"], "copied", "{placed}");
    assert_eq!(fs::read(&remote).unwrap(), fs::read(EXE).unwrap());
    let node_keys = lab.roots.join("n1_1/var/lib/patchdeck/trust");
    let held = fs::read_dir(&node_keys)
        .unwrap_or_else(|e| panic!("{}: {e}; bootstrap said {placed}", node_keys.display()))
        .count();
    assert_eq!(held, 1, "the node holds the lab's one key: {placed}");
    ok(&lab.path, &["nodes", "--check"]);
    // Nothing to do the second time.
    let out = ok(&lab.path, &["bootstrap", "--nodes", "n1_1", "--json"]);
    assert_eq!(json(&out)[0]["action"], "present");
    // Both are journaled on the node.
    let rows = json(&ok(&lab.path, &["history", "--nodes", "n1_1", "--json"]));
    let boots: Vec<&serde_json::Value> = rows
        .as_array()
        .map(|a| a.iter().filter(|r| r["op"] == "bootstrap").collect())
        .unwrap_or_default();
    assert_eq!(boots.len(), 2, "{rows}");
    assert!(boots.iter().all(|r| r["ok"] == true), "{rows}");
    // The first also gave the node the lab's keys: the row names them.
    let first = boots[1]["message"].as_str().unwrap_or_default();
    assert!(
        first.contains("trusted key") && first.contains("ops"),
        "{first}"
    );

    old_binary(&remote);
    let out = run(&lab.path, &["nodes", "--check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let c = &json(&out)[0];
    assert_eq!(c["problem"], "version", "{c}");
    assert_eq!(c["version"], "0.0.9", "{c}");
    assert_eq!(c["protocol"], 0, "{c}");
    assert!(c["error"].as_str().unwrap().contains("older"), "{c}");
    let out = ok(&lab.path, &["bootstrap", "--nodes", "n1_1", "--json"]);
    let placed = &json(&out)[0];
    assert_eq!(
        (placed["action"].clone(), placed["before"].clone()),
        ("replaced".into(), "0.0.9".into()),
        "{placed}"
    );
    ok(&lab.path, &["list"]);
    // No temporary copy is left beside it.
    let left: Vec<String> = fs::read_dir(remote.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["patchdeck"]);
}

#[test]
fn the_node_finishes_its_operation_when_its_ssh_parent_goes_away() {
    // The console's side vanishes mid-request: a hangup, then stdin and
    // stdout closed. The node must end on its own, in the state before or
    // after the install, never killed by the signal or the broken pipe.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("node");
    node_root(&root, "gw-1");
    let patch = common::good(tmp.path(), "GW_1", "");
    {
        let mut node = Node::open(&root, "gw-1").unwrap();
        node.stage("GW_1", &patch).unwrap();
    }
    let mut child = Command::new(EXE)
        .args(["node", "--name", "gw-1", "--root"])
        .arg(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    stdin
        .write_all(b"{\"id\":0,\"op\":\"hello\",\"protocol\":1}\n")
        .unwrap();
    let mut hello = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut hello).unwrap();
    assert!(hello.contains("\"ok\":true"), "{hello}");
    stdin
        .write_all(b"{\"id\":1,\"op\":\"install\",\"patch\":\"GW_1\",\"save\":true}\n")
        .unwrap();
    // SAFETY: signals our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    drop(stdin);
    drop(stdout);
    let status = child.wait().unwrap();
    assert!(
        status.code().is_some(),
        "the node was killed ({status}): {}",
        {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut s);
            s
        }
    );
    let node = Node::open(&root, "gw-1").unwrap();
    let state = node.inventory().unwrap().state("GW_1");
    use patchdeck::engine::inventory::PatchState;
    assert!(
        matches!(state, PatchState::Staged | PatchState::Applied),
        "{state:?}"
    );
    assert!(node.verify().unwrap().is_empty());
    let lib = fs::read(root.join("opt/gw/lib.so")).unwrap();
    let want: &[u8] = if state == PatchState::Applied {
        b"payload of GW_1"
    } else {
        b"original library\n"
    };
    assert_eq!(lib, want);
}

#[test]
fn ansible_inventories_in_both_forms_are_imported_and_used_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let roots = tmp.path().join("roots");
    for id in ["gw-a", "gw-b", "gw-c"] {
        node_root(&roots.join(id), id);
    }
    let dest = sshd.dest();
    let (user, hostport) = dest.split_once('@').unwrap();
    let (host, port) = hostport.split_once(':').unwrap();
    let root = |id: &str| roots.join(id).display().to_string();
    let ini = format!(
        "[gateways]\n\
         gw-a ansible_host={host} ansible_port={port} ansible_user={user} patchdeck_remote_root={}\n\
         gw-b ansible_host={host} ansible_port={port} ansible_user={user} patchdeck_remote_root={}\n\
         [gateways:vars]\ndc=dc1\norg=org\n",
        root("gw-a"),
        root("gw-b")
    );
    let yaml = format!(
        "all:\n  vars:\n    dc: dc1\n    org: org\n  children:\n    edge:\n      hosts:\n        gw-c:\n          \
         ansible_host: {host}\n          ansible_port: {port}\n          ansible_user: {user}\n          \
         patchdeck_remote_root: {}\n",
        root("gw-c")
    );
    for (form, inventory, nodes) in [
        ("ini", ini, vec!["gw-a", "gw-b"]),
        ("yaml", yaml, vec!["gw-c"]),
    ] {
        let lab = tmp.path().join(format!("lab-{form}"));
        fs::create_dir_all(lab.join("depot")).unwrap();
        common::good(&lab.join("depot"), "GW_1", "");
        let inv = tmp.path().join(format!("hosts.{form}"));
        fs::write(&inv, inventory).unwrap();
        let imported = tmp.path().join(format!("fleet-{form}.toml"));
        ok(
            &lab,
            &[
                "fleet",
                "import",
                "--ansible",
                inv.to_str().unwrap(),
                "-o",
                imported.to_str().unwrap(),
            ],
        );
        // The test server's client configuration, as an operator's
        // ~/.ssh/config would give it.
        let fleet = format!(
            "{}\n{}",
            sshd.ssh_table(Path::new(EXE), ""),
            fs::read_to_string(&imported).unwrap()
        );
        fs::write(lab.join("fleet.toml"), fleet).unwrap();
        let list = nodes.join(",");
        let checks = json(&ok(&lab, &["nodes", "--check", "--json"]));
        assert_eq!(checks.as_array().unwrap().len(), nodes.len(), "{checks}");
        for c in checks.as_array().unwrap() {
            assert_eq!(c["reachable"], true, "{form}: {c}");
        }
        ok(&lab, &["stage", "GW_1", "--nodes", &list]);
        ok(&lab, &["install", "GW_1", "--nodes", &list]);
        let rows = json(&ok(&lab, &["list", "--json"]));
        for id in &nodes {
            assert!(
                rows.as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["node"] == *id && r["patch"] == "GW_1" && r["state"] == "applied"),
                "{form}: {id} has GW_1 applied: {rows}"
            );
            assert_eq!(
                fs::read(roots.join(id).join("opt/gw/lib.so")).unwrap(),
                b"payload of GW_1"
            );
        }
    }
}

#[test]
fn list_and_verify_json_name_the_nodes_they_could_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let lab = Lab::new(
        tmp.path(),
        &sshd,
        2,
        Path::new(EXE),
        "connect_timeout_secs = 3",
    );
    // Nothing listens on port 1: the node is unreachable at once.
    lab.add_node("id = \"far-1\"\nssh = \"127.0.0.1:1\"");
    for verb in ["list", "verify"] {
        let out = run(&lab.path, &[verb, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", text(&out.stderr));
        let rows = json(&out);
        let far: Vec<&Value> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["node"] == "far-1")
            .collect();
        assert_eq!(far.len(), 1, "{verb}: {rows}");
        assert_eq!(far[0]["reachable"], false, "{verb}: {rows}");
        assert!(
            far[0]["error"].as_str().unwrap().contains("far-1"),
            "{verb}: {rows}"
        );
    }
    // The nodes it could read are listed as ever.
    let rows = json(&run(
        &lab.path,
        &["list", "--json", "--nodes", "n1_1,far-1"],
    ));
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["node"] == "far-1")
    );
}
