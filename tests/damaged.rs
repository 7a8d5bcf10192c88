//! Damaged state is reported, never recreated: empty, truncated and missing
//! databases (a node's and the lab's), fleet roots that do not exist or are
//! shared, and data from a node that is not what it should be. Each error
//! names the file (and the fleet line), and `patchdeck doctor` says what is
//! damaged and how to recover. Runs the real binary on a demo lab.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{demo_lab, json, patchdeck};

const NODE: &str = "gw-east-1";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn store(lab: &str, node: &str) -> PathBuf {
    Path::new(lab)
        .join("nodes")
        .join(node)
        .join("var/lib/patchdeck")
}

/// Moves everything in the WAL into the database file and drops the WAL,
/// so truncating the file truncates the data.
fn checkpoint(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
        .unwrap();
}

fn first_patch_for(lab: &str, node: &str) -> String {
    let out = patchdeck(&["select", "--lab", lab, "--match-target", node, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out)["patches"][0]["id"].as_str().unwrap().to_string()
}

fn ok(args: &[&str]) {
    let out = patchdeck(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Expects a failure (exit 1) naming `file`, from each command.
fn refused_naming(lab: &str, file: &Path, what: &str) {
    let name = file.display().to_string();
    for args in [
        vec!["list", "--lab", lab, "--nodes", NODE],
        vec!["verify", "--lab", lab, "--nodes", NODE],
    ] {
        let out = patchdeck(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {args:?} must fail: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&name) || stdout(&out).contains(&name),
            "{what}: {args:?} does not name {name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn an_empty_or_truncated_node_database_is_an_error_naming_it_and_never_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let id = first_patch_for(&lab, NODE);
    ok(&["stage", &id, "--lab", &lab, "--nodes", NODE]);
    let db = store(&lab, NODE).join("ipd.sqlite");
    checkpoint(&db);
    let whole = fs::read(&db).unwrap();
    assert!(whole.len() >= 8192, "the database is too small to cut");

    for (what, len) in [
        ("empty", 0),
        ("only a header", 100),
        ("truncated to half", whole.len() / 2),
    ] {
        fs::write(&db, &whole[..len]).unwrap();
        refused_naming(&lab, &db, what);
        assert_eq!(
            fs::metadata(&db).unwrap().len(),
            len as u64,
            "{what}: the damaged database was rewritten"
        );
        let doctor = patchdeck(&["doctor", "--lab", &lab, "--nodes", NODE]);
        assert_eq!(doctor.status.code(), Some(1), "{what}: {}", stdout(&doctor));
        let text = stdout(&doctor);
        assert!(
            text.contains(&db.display().to_string()) && text.contains("recovery:"),
            "{what}: doctor does not name the file and the way back: {text}"
        );
    }
    fs::write(&db, &whole).unwrap();
    ok(&["list", "--lab", &lab, "--nodes", NODE]);
    ok(&["doctor", "--lab", &lab, "--nodes", NODE]);
}

#[test]
fn a_missing_node_database_with_staged_files_is_an_error_not_an_empty_node() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let id = first_patch_for(&lab, NODE);
    ok(&["stage", &id, "--lab", &lab, "--nodes", NODE]);
    let store = store(&lab, NODE);
    for f in ["ipd.sqlite", "ipd.sqlite-wal", "ipd.sqlite-shm"] {
        let _ = fs::remove_file(store.join(f));
    }
    let db = store.join("ipd.sqlite");
    refused_naming(&lab, &db, "missing database");
    assert!(!db.exists(), "a missing database was recreated");
    let out = patchdeck(&["stage", &id, "--lab", &lab, "--nodes", NODE]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!db.exists(), "stage recreated the database");
    let doctor = patchdeck(&["doctor", "--lab", &lab, "--json"]);
    assert_eq!(doctor.status.code(), Some(1));
    let findings = json(&doctor)["findings"].as_array().unwrap().clone();
    assert!(
        findings.iter().any(|f| f["subject"] == NODE
            && f["path"] == db.display().to_string()
            && f["problem"].as_str().unwrap().contains("staged")),
        "{findings:?}"
    );
}

#[test]
fn an_empty_or_truncated_lab_database_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    // Reading rollouts makes the console database (there are none yet).
    patchdeck(&["rollout", "status", "--lab", &lab]);
    let db = Path::new(&lab).join("console.sqlite");
    assert!(db.exists(), "the console database was not made");
    checkpoint(&db);
    let whole = fs::read(&db).unwrap();
    for (what, len) in [("empty", 0), ("truncated", whole.len() / 2)] {
        fs::write(&db, &whole[..len]).unwrap();
        let out = patchdeck(&["rollout", "status", "--lab", &lab]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&db.display().to_string())
                && !stderr(&out).contains("no rollout"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(fs::metadata(&db).unwrap().len(), len as u64, "{what}");
        let doctor = patchdeck(&["doctor", "--lab", &lab, "--nodes", NODE]);
        assert_eq!(doctor.status.code(), Some(1), "{what}");
        assert!(stdout(&doctor).contains("console.sqlite"), "{what}");
    }
}

/// The 1-based line of the `n`th (0-based) line of `text` containing `needle`.
fn line_of(text: &str, needle: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(n)
        .unwrap_or_else(|| panic!("{needle:?} #{n} not in the fleet"))
        .0
        + 1
}

fn fleet_error(lab: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--lab", lab]);
    let out = patchdeck(&all);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

#[test]
fn a_fleet_root_that_does_not_exist_is_bad_input_at_its_line_and_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let path = Path::new(&lab).join("fleet.toml");
    let text = fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "root = \"nodes/gw-west-2\"",
        "root = \"nodes/gw-west-2-typo\"",
    );
    fs::write(&path, &text).unwrap();
    let line = line_of(&text, "nodes/gw-west-2-typo", 0);
    for args in [
        &["list"][..],
        &["verify"],
        &["stage", "X", "--nodes", "gw-west-2"],
    ] {
        let err = fleet_error(&lab, args);
        assert!(
            err.contains(&format!("fleet.toml:{line}:")) && err.contains("does not exist"),
            "{args:?}: {err}"
        );
    }
    assert!(!Path::new(&lab).join("nodes/gw-west-2-typo").exists());
}

#[test]
fn two_nodes_with_the_same_root_are_refused_at_the_second() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let path = Path::new(&lab).join("fleet.toml");
    let original = fs::read_to_string(&path).unwrap();

    // As written.
    let text = original.replace("root = \"nodes/gw-west-2\"", "root = \"nodes/gw-east-1\"");
    fs::write(&path, &text).unwrap();
    let line = line_of(&text, "root = \"nodes/gw-east-1\"", 1);
    let err = fleet_error(&lab, &["list"]);
    assert!(
        err.contains(&format!("fleet.toml:{line}:")) && err.contains("share a root"),
        "{err}"
    );

    // The same directory by another name: a symbolic link.
    std::os::unix::fs::symlink(
        Path::new(&lab).join("nodes/gw-east-1"),
        Path::new(&lab).join("nodes/alias"),
    )
    .unwrap();
    let text = original.replace("root = \"nodes/gw-west-2\"", "root = \"nodes/alias\"");
    fs::write(&path, &text).unwrap();
    let line = line_of(&text, "nodes/alias", 0);
    let err = fleet_error(&lab, &["list"]);
    assert!(
        err.contains(&format!("fleet.toml:{line}:")) && err.contains("share a root"),
        "{err}"
    );
}

#[test]
fn a_duplicate_node_id_is_reported_at_the_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let path = Path::new(&lab).join("fleet.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(
        "\n[[node]]\nid = \"gw-east-1\"\ndc = \"east\"\norg = \"retail\"\nroot = \"nodes/other\"\n",
    );
    fs::write(&path, &text).unwrap();
    let line = line_of(&text, "id = \"gw-east-1\"", 1);
    let err = fleet_error(&lab, &["list"]);
    assert!(
        err.contains(&format!("fleet.toml:{line}:")) && err.contains("duplicate node id"),
        "{err}"
    );
}

#[test]
fn a_fleet_that_is_not_utf8_names_the_line_and_byte_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let path = Path::new(&lab).join("fleet.toml");
    let mut bytes = b"# fleet\n\n".to_vec();
    let at = bytes.len() + 6;
    bytes.extend_from_slice(b"# bad \xff byte\n");
    bytes.extend(fs::read(&path).unwrap());
    fs::write(&path, &bytes).unwrap();
    let err = fleet_error(&lab, &["list"]);
    assert!(
        err.contains("fleet.toml:3:") && err.contains(&format!("byte offset {at}")),
        "{err}"
    );
}

#[test]
fn verify_reports_short_and_odd_checksums_from_a_node_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let id = first_patch_for(&lab, NODE);
    ok(&["stage", &id, "--lab", &lab, "--nodes", NODE]);
    ok(&["install", &id, "--lab", &lab, "--nodes", NODE]);
    let db = store(&lab, NODE).join("ipd.sqlite");
    for bad in ["", "ab", "é", "\u{1b}[2J"] {
        {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute("UPDATE patch_file SET after_sha=?1", [bad])
                .unwrap();
        }
        let out = patchdeck(&["verify", "--lab", &lab, "--nodes", NODE]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "checksum {bad:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("drifted file"), "{}", stdout(&out));
        assert!(
            !stdout(&out).contains('\u{1b}'),
            "raw escape: {}",
            stdout(&out)
        );
    }
}

/// A rollout whose console died is judged by its cluster's lock, never by
/// its pid: here the recorded pid (1) is alive forever, yet with the lock
/// free the rollout is interrupted and abort acts on it; with the lock
/// held it is running and abort is only requested.
#[test]
fn rollout_liveness_comes_from_the_cluster_lock_not_a_reused_pid() {
    use std::os::fd::AsRawFd;
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let id = first_patch_for(&lab, "db-1_1");
    ok(&["stage", &id, "--lab", &lab, "--cluster", "db"]);
    ok(&["rollout", "start", "--cluster", "db", &id, "--lab", &lab]);
    let set_running = || {
        let conn = rusqlite::Connection::open(Path::new(&lab).join("console.sqlite")).unwrap();
        conn.execute("UPDATE rollout SET state='running', pid=1", [])
            .unwrap();
    };
    let status = || {
        let out = patchdeck(&["rollout", "status", "--lab", &lab, "--json"]);
        json(&out)
    };

    set_running();
    let lock_path = Path::new(&lab).join("locks/rollout-db.lock");
    fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    assert_eq!(status()["interrupted"], false, "the lock is held");
    let out = patchdeck(&["rollout", "abort", "--lab", &lab]);
    assert!(stdout(&out).contains("abort requested"), "{}", stdout(&out));
    // SAFETY: as above.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_UN) };

    assert_eq!(
        status()["interrupted"],
        true,
        "pid 1 is alive, the lock is free"
    );
    let out = patchdeck(&["rollout", "abort", "--lab", &lab]);
    assert!(
        !stdout(&out).contains("abort requested"),
        "abort was only requested from a dead console: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_ne!(status()["state"], "running", "{}", stdout(&out));
}

/// A rollout's preflight asks every member for the free space its install
/// needs (the node's own rule: payload plus margin) before the first group
/// is drained: a full member stops the rollout with nothing drained.
#[test]
fn rollout_preflight_refuses_a_member_without_room_before_draining() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let id = first_patch_for(&lab, "db-1_1");
    ok(&["stage", &id, "--lab", &lab, "--cluster", "db"]);
    // db-1_3's root moves onto a small tmpfs, filled to the brim.
    let root = Path::new(&lab).join("nodes/db-1_3");
    let keep = tmp.path().join("db-1_3");
    fs::rename(&root, &keep).unwrap();
    fs::create_dir(&root).unwrap();
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&root)
        .output()
        .unwrap_or_else(|e| panic!("this test mounts a tmpfs (run as root): {e}"));
    assert!(
        out.status.success(),
        "this test mounts a tmpfs (run as root, or with CAP_SYS_ADMIN): {}",
        stderr(&out)
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(root.clone());
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", keep.display()))
        .arg(&root)
        .status()
        .unwrap();
    assert!(cp.success());
    let free = patchdeck::engine::node::space::free(&root).unwrap().bytes;
    fs::write(root.join("filler"), vec![0u8; free as usize]).unwrap_or_default();
    let out = patchdeck(&["rollout", "start", "--cluster", "db", &id, "--lab", &lab]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("db-1_3") && all.contains("bytes free"),
        "the refusal does not name the member and the space: {all}"
    );
    let nodes = json(&patchdeck(&["nodes", "--lab", &lab, "--json"]));
    for n in nodes.as_array().unwrap() {
        assert_ne!(n["service"], "down", "{} was drained: {all}", n["id"]);
    }
    // Refused before any member step: either no rollout was journaled (the
    // readiness check refuses up front), or its preflight failed and no
    // member step ran.
    let out = patchdeck(&["rollout", "status", "--lab", &lab, "--json"]);
    if !out.status.success() {
        return;
    }
    let status = json(&out);
    let steps = status["steps"].as_array().unwrap();
    let preflight = steps
        .iter()
        .find(|s| s["kind"] == "preflight" && s["state"] == "failed")
        .unwrap_or_else(|| panic!("no failed preflight step: {status}"));
    assert!(
        preflight["message"]
            .as_str()
            .unwrap_or("")
            .contains("db-1_3"),
        "{preflight}"
    );
    for s in steps {
        if s["kind"] == "drain" || s["kind"] == "install" {
            assert_ne!(s["state"], "done", "a member step ran: {s}");
        }
    }
}

/// Doctor compares a node's files with its saved state: a damaged saved
/// original (rollback would restore the wrong bytes), a staged copy gone,
/// and a leftover the database does not know, each with a way back; a
/// healthy node has nothing to report.
#[test]
fn doctor_finds_files_that_disagree_with_the_saved_state() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    ok(&["doctor", "--lab", &lab]);
    let id = first_patch_for(&lab, NODE);
    ok(&["stage", &id, "--lab", &lab, "--nodes", NODE]);
    ok(&["install", &id, "--lab", &lab, "--nodes", NODE]);
    ok(&["doctor", "--lab", &lab, "--nodes", NODE]);
    let store = store(&lab, NODE);
    let orig = store.join("save").join(&id).join("orig");
    let saved = walk_files(&orig);
    assert!(!saved.is_empty(), "the install saved no original");
    // Saved originals are hard links to what was replaced: write a copy.
    let victim = &saved[0];
    let bytes = fs::read(victim).unwrap();
    fs::remove_file(victim).unwrap();
    fs::write(victim, [bytes.as_slice(), b"tampered"].concat()).unwrap();
    fs::remove_file(store.join("staged").join(format!("{id}.patch"))).unwrap();
    fs::write(store.join("staged/STRAY_1.patch"), b"stray").unwrap();
    let out = patchdeck(&["doctor", "--lab", &lab, "--nodes", NODE, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings = json(&out)["findings"].as_array().unwrap().clone();
    let problem = |words: &str| {
        findings.iter().any(|f| {
            f["problem"].as_str().unwrap_or("").contains(words)
                && !f["recovery"].as_str().unwrap_or("").is_empty()
        })
    };
    assert!(problem("saved original"), "{findings:?}");
    assert!(problem("staged copy"), "{findings:?}");
    assert!(problem("STRAY_1.patch"), "{findings:?}");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A lab's console database deleted after a rollout is lost, not a fresh
/// start: commands that need it fail naming it, and it is not recreated.
#[test]
fn a_missing_lab_database_of_a_used_lab_is_an_error_not_a_fresh_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let id = first_patch_for(&lab, "db-1_1");
    ok(&["stage", &id, "--lab", &lab, "--cluster", "db"]);
    ok(&["rollout", "start", "--cluster", "db", &id, "--lab", &lab]);
    let db = Path::new(&lab).join("console.sqlite");
    for f in ["console.sqlite", "console.sqlite-wal", "console.sqlite-shm"] {
        let _ = fs::remove_file(Path::new(&lab).join(f));
    }
    let out = patchdeck(&["rollout", "status", "--lab", &lab]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&db.display().to_string()) && stderr(&out).contains("missing"),
        "{}",
        stderr(&out)
    );
    assert!(!db.exists(), "the lab database was recreated");
    let doctor = patchdeck(&["doctor", "--lab", &lab, "--nodes", NODE]);
    assert_eq!(doctor.status.code(), Some(1));
    assert!(
        stdout(&doctor).contains("console.sqlite"),
        "{}",
        stdout(&doctor)
    );
    assert!(!db.exists(), "doctor recreated the lab database");
}
