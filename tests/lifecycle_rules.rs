//! The rules of the node lifecycle, through the real binary on a demo lab
//! with hand-made patches added to its depot: one rule for requirements
//! (met by the patch or anything superseding it through a chain), whole
//! install plans, nothing taken away from under a patch that needs it,
//! advice that can be followed, cluster guards, and a complete,
//! attributed journal with `history`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;

use common::{json, manifest, write_patch};

fn run(lab: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--lab", lab]);
    common::patchdeck(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a verb that must succeed, showing its output when it does not.
fn ok(lab: &str, args: &[&str]) -> Output {
    let out = run(lab, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A demo lab with hand-made gateway patches in its depot: each
/// `(id, extra manifest lines)` writes its own file `opt/lc/ID`.
fn lab_with(dir: &Path, patches: &[(&str, &str)]) -> String {
    let lab = common::demo_lab(dir);
    common::allow_unsigned(Path::new(&lab));
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("src");
    let mut files: Vec<PathBuf> = Vec::new();
    for (id, extra) in patches {
        let body = format!("payload of {id}");
        files.push(write_patch(
            &src,
            id,
            &manifest(id, extra),
            &[(&format!("opt/lc/{id}"), body.as_bytes())],
        ));
    }
    let mut args = vec!["depot", "add"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    ok(&lab, &args);
    lab
}

/// A chain A1 ← A2 ← A3 (each superseding the one before) and B requiring A1.
const CHAIN: &[(&str, &str)] = &[
    ("LC_A1", ""),
    ("LC_A2", "supersedes = [\"LC_A1\"]"),
    ("LC_A3", "supersedes = [\"LC_A2\"]"),
    ("LC_B", "requires = [\"LC_A1\"]"),
];

/// State of each patch on `node`, as `list --json` says.
fn states(lab: &str, node: &str) -> std::collections::BTreeMap<String, String> {
    let rows = json(&ok(lab, &["list", "--nodes", node, "--json"]));
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["patch"].as_str().unwrap_or_default().to_string(),
                r["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn state(lab: &str, node: &str, patch: &str) -> String {
    states(lab, node)
        .get(patch)
        .cloned()
        .unwrap_or_else(|| "none".into())
}

fn node_root(lab: &str, node: &str) -> PathBuf {
    let rows = json(&ok(lab, &["nodes", "--json"]));
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["id"] == node)
        .and_then(|r| r["root"].as_str())
        .map(PathBuf::from)
        .expect("node root")
}

fn history(lab: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["history", "--json"];
    all.extend(args);
    json(&ok(lab, &all)).as_array().cloned().unwrap_or_default()
}

#[test]
fn a_requirement_is_met_through_a_supersession_chain_the_node_never_held() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    // The node gets only the top of the chain and the dependent: it never
    // holds LC_A1 or LC_A2, whose manifests carry the chain.
    ok(&lab, &["stage", "LC_A3", "LC_B", "--nodes", "gw-east-1"]);
    let out = ok(&lab, &["install", "LC_B", "--nodes", "gw-east-1", "--json"]);
    let outcomes = json(&out);
    let done: Vec<&str> = outcomes
        .as_array()
        .expect("outcomes")
        .iter()
        .filter(|o| o["ok"] == true)
        .filter_map(|o| o["patch"].as_str())
        .collect();
    assert_eq!(
        done,
        ["LC_A3", "LC_B"],
        "prerequisite first, then the patch"
    );
    assert_eq!(state(&lab, "gw-east-1", "LC_A3"), "applied");
    assert_eq!(state(&lab, "gw-east-1", "LC_B"), "applied");
    // The node remembers the chain: verify finds every requirement met.
    ok(&lab, &["verify", "--nodes", "gw-east-1"]);
}

#[test]
fn a_patch_supersedes_what_it_replaces_through_a_chain_the_node_never_held() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A1", "--nodes", "gw-east-1"]);
    ok(&lab, &["install", "LC_A1", "--nodes", "gw-east-1"]);
    // LC_A3 replaces LC_A1 through LC_A2, which this node never holds.
    ok(&lab, &["stage", "LC_A3", "--nodes", "gw-east-1"]);
    ok(&lab, &["install", "LC_A3", "--nodes", "gw-east-1"]);
    let rows = json(&ok(&lab, &["list", "--nodes", "gw-east-1", "--json"]));
    let a1 = rows
        .as_array()
        .and_then(|a| a.iter().find(|r| r["patch"] == "LC_A1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(a1["state"], "superseded", "{rows}");
    assert_eq!(a1["superseded_by"], "LC_A3", "{rows}");
    // The way back gives LC_A1 its place again.
    ok(&lab, &["rollback", "LC_A3", "--nodes", "gw-east-1"]);
    assert_eq!(state(&lab, "gw-east-1", "LC_A1"), "applied");
    ok(&lab, &["verify", "--nodes", "gw-east-1"]);
}

#[test]
fn the_demo_kernel_chain_installs_whole_on_a_cluster_member() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = tmp.path().join("lab").display().to_string();
    ok(&lab, &["demo"]);
    let sel = json(&ok(
        &lab,
        &["select", "KRN_1008", "--match-target", "edge-1_1", "--json"],
    ));
    let ids: Vec<String> = sel["patches"]
        .as_array()
        .expect("patches")
        .iter()
        .filter_map(|p| p["id"].as_str().map(String::from))
        .collect();
    assert!(ids.len() >= 2, "KRN_1008 has prerequisites: {ids:?}");
    let mut args = vec!["replicate"];
    args.extend(ids.iter().map(String::as_str));
    args.extend(["--nodes", "edge-1_1", "--wait"]);
    ok(&lab, &args);
    ok(&lab, &["install", "KRN_1008", "--nodes", "edge-1_1"]);
    let now = states(&lab, "edge-1_1");
    for id in &ids {
        assert_eq!(now.get(id).map(String::as_str), Some("applied"), "{id}");
    }
}

#[test]
fn an_install_plan_is_checked_whole_and_nothing_goes_when_one_cannot() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut patches = CHAIN.to_vec();
    patches.push(("LC_C", "requires = [\"LC_NOWHERE\"]"));
    let lab = lab_with(tmp.path(), &patches);
    ok(
        &lab,
        &["stage", "LC_A3", "LC_B", "LC_C", "--nodes", "gw-east-1"],
    );
    let out = run(&lab, &["install", "LC_B", "LC_C", "--nodes", "gw-east-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        said.contains("nothing installed") && said.contains("LC_C") && said.contains("LC_NOWHERE"),
        "{said}"
    );
    for id in ["LC_A3", "LC_B", "LC_C"] {
        assert_eq!(state(&lab, "gw-east-1", id), "staged", "{id}: {said}");
    }
}

#[test]
fn rollback_and_remove_refuse_while_an_applied_patch_needs_the_patch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A3", "LC_B", "--nodes", "gw-east-1"]);
    ok(&lab, &["install", "LC_B", "--nodes", "gw-east-1"]);
    let file = node_root(&lab, "gw-east-1").join("opt/lc/LC_A3");
    for verb in ["rollback", "remove"] {
        let out = run(&lab, &[verb, "LC_A3", "--nodes", "gw-east-1", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let message = json(&out)[0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains("LC_B") && message.contains("LC_A1"),
            "{verb}: names who needs it and for what: {message}"
        );
        assert_eq!(state(&lab, "gw-east-1", "LC_A3"), "applied", "{verb}");
        assert!(file.is_file(), "{verb} left the files alone");
    }
    // Following the advice works: the dependent first, then the prerequisite.
    ok(&lab, &["rollback", "LC_B", "--nodes", "gw-east-1"]);
    ok(&lab, &["rollback", "LC_A3", "--nodes", "gw-east-1"]);
    ok(&lab, &["remove", "LC_A3", "--nodes", "gw-east-1"]);
    assert_eq!(state(&lab, "gw-east-1", "LC_A3"), "none");
}

#[test]
fn verify_reports_an_applied_patch_whose_requirement_is_no_longer_met() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A3", "LC_B", "--nodes", "gw-east-1"]);
    ok(&lab, &["install", "LC_B", "--nodes", "gw-east-1"]);
    ok(&lab, &["verify", "--nodes", "gw-east-1"]);
    // A node whose database lost the prerequisite (as an older patchdeck,
    // which let it be rolled back from under LC_B, would leave it).
    let db = node_root(&lab, "gw-east-1").join("var/lib/patchdeck/ipd.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("node db");
    conn.execute("UPDATE patch SET state='staged' WHERE id='LC_A3'", [])
        .expect("update");
    drop(conn);
    let out = run(&lab, &["verify", "--nodes", "gw-east-1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows = json(&out);
    let unmet: Vec<&Value> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["requires"].is_string())
        .collect();
    assert_eq!(unmet.len(), 1, "{rows}");
    assert_eq!(unmet[0]["patch"], "LC_B");
    assert_eq!(unmet[0]["requires"], "LC_A1");
    let out = run(&lab, &["verify", "--nodes", "gw-east-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("LC_B requires LC_A1"));
}

#[test]
fn a_patch_committed_with_its_superseder_gets_advice_that_can_be_followed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A1", "LC_A2", "--nodes", "gw-east-1"]);
    ok(&lab, &["install", "LC_A1", "--nodes", "gw-east-1"]);
    ok(&lab, &["install", "LC_A2", "--nodes", "gw-east-1"]);
    ok(&lab, &["commit", "LC_A2", "--nodes", "gw-east-1"]);
    // The text listing shows the combined state, not only --json.
    let listing = text(&ok(&lab, &["list", "--nodes", "gw-east-1"]).stdout);
    let line = listing
        .lines()
        .find(|l| l.contains("LC_A1"))
        .unwrap_or_default();
    assert!(line.contains("superseded, committed"), "{listing}");
    for verb in ["rollback", "remove"] {
        let out = run(&lab, &[verb, "LC_A1", "--nodes", "gw-east-1", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let message = json(&out)[0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // LC_A2 is committed: telling the operator to roll it back would be
        // advice that cannot be followed.
        assert!(
            !message.contains("roll back LC_A2") && !message.contains("roll LC_A2 back"),
            "{verb}: {message}"
        );
        assert!(
            message.contains("install a patch that supersedes LC_A2"),
            "{verb}: {message}"
        );
    }
}

#[test]
fn install_reports_nothing_done_as_a_failure() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    let out = run(
        &lab,
        &["install", "LC_A1", "--nodes", "gw-east-1,gw-west-1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("gw-east-1") && err.contains("gw-west-1") && err.contains("skipped"),
        "{err}"
    );
}

#[test]
fn never_all_at_once_whatever_the_verb() {
    let tmp = tempfile::tempdir().expect("tmp");
    // LC_H is hot (no service interruption); LC_A1 is not.
    let mut patches = CHAIN.to_vec();
    patches.push(("LC_H", "hot = true"));
    let lab = lab_with(tmp.path(), &patches);
    let members = "edge-1_1,edge-2_1";
    ok(&lab, &["stage", "LC_A1", "LC_H", "--nodes", members]);
    let out = run(&lab, &["install", "LC_A1", "--cluster", "edge"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("rollout start --cluster edge LC_A1") && err.contains("LC_A1"),
        "{err}"
    );
    let out = run(&lab, &["install", "LC_A1", "--nodes", members]);
    assert_eq!(out.status.code(), Some(1), "a node list is the same");
    assert_eq!(state(&lab, "edge-1_1", "LC_A1"), "staged");
    // Hot patches may go everywhere at once.
    ok(&lab, &["install", "LC_H", "--nodes", members]);
    // The override is explicit, needs a reason, and is journaled.
    let out = run(
        &lab,
        &["install", "LC_A1", "--nodes", members, "--all-at-once"],
    );
    assert_eq!(out.status.code(), Some(2), "--all-at-once needs --reason");
    ok(
        &lab,
        &[
            "install",
            "LC_A1",
            "--nodes",
            members,
            "--all-at-once",
            "--reason",
            "lab maintenance window",
        ],
    );
    assert_eq!(state(&lab, "edge-2_1", "LC_A1"), "applied");
    let rows = history(&lab, &["--nodes", "edge-1_1"]);
    assert!(
        rows.iter().any(|r| r["op"] == "all_at_once"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("lab maintenance window"))),
        "{rows:?}"
    );
    // Rollback is a verb like the others.
    let out = run(&lab, &["rollback", "LC_A1", "--nodes", members]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--uninstall"));
    assert_eq!(state(&lab, "edge-1_1", "LC_A1"), "applied");
    // One member at a time is fine.
    ok(&lab, &["rollback", "LC_A1", "--nodes", "edge-1_1"]);
}

#[test]
fn every_change_is_journaled_with_who_and_from_where() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A1", "--nodes", "gw-east-1"]);
    let out = assert_cmd::Command::cargo_bin("patchdeck")
        .expect("binary")
        .env_remove("PATCHDECK_LAB")
        .env("SUDO_USER", "alice")
        .args(["install", "LC_A1", "--nodes", "gw-east-1", "--lab", &lab])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = history(&lab, &[]);
    let first = rows.first().expect("a row");
    for key in [
        "time", "operator", "source", "rollout", "node", "patch", "op", "ok", "message",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    // Newest first: the install, then the stage.
    assert_eq!(first["op"], "install");
    assert_eq!(first["patch"], "LC_A1");
    assert_eq!(first["node"], "gw-east-1");
    assert_eq!(first["source"], "cli");
    assert_eq!(first["rollout"], Value::Null);
    assert_eq!(first["ok"], true);
    assert_eq!(first["sudo_user"], "alice");
    assert!(
        first["operator"].as_str().is_some_and(|o| o.contains('@')),
        "{first}"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(first["time"].as_str().unwrap_or_default()).is_ok()
    );
    assert!(rows.iter().any(|r| r["op"] == "stage"));
    // list says who applied it.
    let list = json(&ok(&lab, &["list", "--nodes", "gw-east-1", "--json"]));
    let row = list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["patch"] == "LC_A1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["by"], first["operator"]);
    // Filters narrow it.
    assert!(history(&lab, &["--nodes", "gw-west-1"]).is_empty());
    assert!(history(&lab, &["--patch", "LC_B"]).is_empty());
    assert!(history(&lab, &["--rollout", "1"]).is_empty());
    assert_eq!(history(&lab, &["--since", "1h"]).len(), rows.len());
    assert!(history(&lab, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let out = run(&lab, &["history", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "a bad TIME is bad input");
    // A verb the console runs is attributed to the console.
    let out = assert_cmd::Command::cargo_bin("patchdeck")
        .expect("binary")
        .env_remove("PATCHDECK_LAB")
        .env("PATCHDECK_SOURCE", "console")
        .args(["stage", "LC_A2", "--nodes", "gw-east-1", "--lab", &lab])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = history(&lab, &["--patch", "LC_A2"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["source"], "console");
}

/// Runs `install PATCH` on gw-east-1, killed at fault point `point` (as
/// kill -9 would).
fn install_killed_at(lab: &str, patch: &str, point: &str) {
    let out = assert_cmd::Command::cargo_bin("patchdeck")
        .expect("binary")
        .env_remove("PATCHDECK_LAB")
        .env("PATCHDECK_FAULT", point)
        .args(["install", patch, "--nodes", "gw-east-1", "--lab", lab])
        .output()
        .expect("run");
    assert!(!out.status.success(), "the fault point was reached");
}

fn recover_rows(lab: &str, patch: &str) -> Vec<Value> {
    history(lab, &["--nodes", "gw-east-1", "--patch", patch])
        .into_iter()
        .filter(|r| r["op"] == "recover")
        .collect()
}

#[test]
fn a_change_finished_by_recovery_is_journaled() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A1", "LC_A2", "--nodes", "gw-east-1"]);
    // Killed past the point of no return (fault point 14): recovery
    // finishes the install when the node is next opened.
    install_killed_at(&lab, "LC_A1", "14");
    // The operator runs the same install again: already done.
    ok(&lab, &["install", "LC_A1", "--nodes", "gw-east-1"]);
    assert_eq!(state(&lab, "gw-east-1", "LC_A1"), "applied");
    let rows = recover_rows(&lab, "LC_A1");
    assert_eq!(rows.len(), 1, "one recover row: {rows:?}");
    assert_eq!(rows[0]["ok"], true);
    let message = rows[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("install") && message.contains("finished"),
        "{message}"
    );
    // The killed command's intent shows it never reported an outcome.
    let all = history(&lab, &["--nodes", "gw-east-1", "--patch", "LC_A1"]);
    assert!(
        all.iter().any(|r| r["op"] == "install" && r["ok"] == false),
        "{all:?}"
    );
    // Killed before the point of no return, then only read: recovery undoes
    // the install, and even a reading verb journals that.
    install_killed_at(&lab, "LC_A2", "13");
    ok(&lab, &["list", "--nodes", "gw-east-1"]);
    let rows = recover_rows(&lab, "LC_A2");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("undone")),
        "{rows:?}"
    );
    assert_eq!(state(&lab, "gw-east-1", "LC_A2"), "staged");
    assert_eq!(recover_rows(&lab, "LC_A2").len(), 1, "journaled once");
}

#[test]
fn an_install_killed_after_a_prerequisite_leaves_a_row_naming_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    // LC_B requires LC_A1; the resolver installs the top of its chain,
    // LC_A3, first. Killed once that install is committed (fault point
    // 17), before LC_B and before any outcome is reported.
    ok(&lab, &["stage", "LC_A3", "LC_B", "--nodes", "gw-east-1"]);
    install_killed_at(&lab, "LC_B", "17");
    assert_eq!(state(&lab, "gw-east-1", "LC_A3"), "applied");
    assert_eq!(state(&lab, "gw-east-1", "LC_B"), "staged");
    // The intent written before the node was touched names every patch
    // the plan put there, so the change to LC_A3 has its row.
    let rows = history(&lab, &["--nodes", "gw-east-1", "--patch", "LC_A3"]);
    let intent = rows
        .iter()
        .find(|r| r["op"] == "install")
        .unwrap_or_else(|| panic!("an install row naming LC_A3: {rows:?}"));
    assert_eq!(intent["ok"], false, "{intent}");
    let named: Vec<&str> = intent["patch"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .collect();
    assert_eq!(named, ["LC_A3", "LC_B"], "in install order: {intent}");
    // The patch the killed command put there is credited to whoever ran it.
    let list = json(&ok(&lab, &["list", "--nodes", "gw-east-1", "--json"]));
    let row = list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["patch"] == "LC_A3"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["by"], intent["operator"], "{row}");
    // An intent whose command is still alive is shown as running, not as
    // a command that ended without reporting.
    let conn = rusqlite::Connection::open(Path::new(&lab).join("console.sqlite")).expect("db");
    conn.execute(
        "UPDATE journal SET pid=?1 WHERE pending=1",
        [i64::from(std::process::id())],
    )
    .expect("update");
    drop(conn);
    let rows = history(&lab, &["--nodes", "gw-east-1", "--patch", "LC_B"]);
    let running = rows
        .iter()
        .find(|r| r["op"] == "install")
        .and_then(|r| r["message"].as_str())
        .unwrap_or_default();
    assert!(running.contains("still running"), "{rows:?}");
}

#[test]
fn a_journal_write_failure_is_a_failure_and_nothing_is_done() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A1", "--nodes", "gw-east-1"]);
    // The journal refuses every new row, as a full or read-only disk
    // would; permissions do not stop root, a trigger does.
    let db = Path::new(&lab).join("console.sqlite");
    let conn = rusqlite::Connection::open(&db).expect("console db");
    conn.execute_batch(
        "CREATE TRIGGER no_room BEFORE INSERT ON journal BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
    )
    .expect("trigger");
    drop(conn);
    let out = run(&lab, &["install", "LC_A1", "--nodes", "gw-east-1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("console.sqlite"), "names the file: {err}");
    assert_eq!(
        state(&lab, "gw-east-1", "LC_A1"),
        "staged",
        "nothing was done"
    );
    // Replication too changes nodes: the same rule.
    let out = run(
        &lab,
        &["replicate", "LC_A2", "--nodes", "gw-east-1", "--wait"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("console.sqlite"));
    assert_eq!(state(&lab, "gw-east-1", "LC_A2"), "none", "nothing copied");
    // A database that cannot even be opened: the same.
    std::fs::remove_file(&db).expect("rm");
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", db.display()));
    }
    std::fs::create_dir(&db).expect("a directory where the file was");
    let out = run(&lab, &["install", "LC_A1", "--nodes", "gw-east-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("console.sqlite"));
    assert_eq!(state(&lab, "gw-east-1", "LC_A1"), "staged");
}

#[test]
fn a_lab_database_from_before_attribution_is_migrated() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    // Schema 4 as shipped before: a journal without operator or source.
    let db = Path::new(&lab).join("console.sqlite");
    let _ = std::fs::remove_file(&db);
    let conn = rusqlite::Connection::open(&db).expect("console db");
    conn.execute_batch(
        "CREATE TABLE journal(id INTEGER PRIMARY KEY, at TEXT NOT NULL, pid INTEGER NOT NULL,
            command TEXT NOT NULL, node TEXT NOT NULL, patch TEXT NOT NULL, op TEXT NOT NULL,
            ok INTEGER NOT NULL, message TEXT NOT NULL);
         CREATE TABLE replication(patch TEXT NOT NULL, node TEXT NOT NULL, dc TEXT NOT NULL,
            status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
            bytes_done INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL, PRIMARY KEY(patch, node));
         CREATE TABLE rollout(id INTEGER PRIMARY KEY, cluster TEXT NOT NULL, plan TEXT NOT NULL,
            state TEXT NOT NULL, requested TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '',
            pid INTEGER NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
         CREATE TABLE rollout_step(rollout INTEGER NOT NULL, seq INTEGER NOT NULL, grp TEXT NOT NULL DEFAULT '',
            node TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, state TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '', started_at TEXT, ended_at TEXT, PRIMARY KEY(rollout, seq));
         CREATE TABLE rollout_before(rollout INTEGER NOT NULL, node TEXT NOT NULL, applied TEXT NOT NULL,
            PRIMARY KEY(rollout, node));
         INSERT INTO journal(at, pid, command, node, patch, op, ok, message)
            VALUES ('2026-01-02T10:00:00.000Z', 1, 'patchdeck stage', 'gw-east-1', 'LC_OLD', 'stage', 1, 'staged');
         PRAGMA user_version = 4;",
    )
    .expect("old schema");
    drop(conn);
    ok(&lab, &["stage", "LC_A1", "--nodes", "gw-east-1"]);
    let rows = history(&lab, &[]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["patch"], "LC_A1");
    assert_eq!(rows[1]["patch"], "LC_OLD", "the old row is kept");
}

#[test]
fn a_rollout_owns_its_cluster() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(&lab, &["stage", "LC_A1", "--nodes", "db-1_1"]);
    // A rollout that holds cluster db (paused, as after `rollout pause`).
    let db = Path::new(&lab).join("console.sqlite");
    ok(&lab, &["history"]);
    let conn = rusqlite::Connection::open(&db).expect("console db");
    conn.execute(
        "INSERT INTO rollout(id, cluster, plan, state, pid, created_at, updated_at)
         VALUES (7, 'db', '{}', 'paused', 1, '2026-01-02T10:00:00.000Z', '2026-01-02T10:00:00.000Z')",
        [],
    )
    .expect("rollout");
    drop(conn);
    for verb in ["install", "rollback", "commit", "remove"] {
        let out = run(&lab, &[verb, "LC_A1", "--nodes", "db-1_1"]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let err = text(&out.stderr);
        assert!(
            err.contains("rollout 7") && err.contains("db-1_1"),
            "{verb}: {err}"
        );
    }
    assert_eq!(state(&lab, "db-1_1", "LC_A1"), "staged");
    // Other clusters and standalone nodes are not held.
    ok(&lab, &["stage", "LC_A1", "--nodes", "gw-east-1"]);
    ok(&lab, &["install", "LC_A1", "--nodes", "gw-east-1"]);
}

#[test]
fn every_install_a_rollout_makes_is_in_the_history() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    quick_rollouts(&lab);
    let members = EDGE;
    ok(&lab, &["stage", "LC_A1", "--nodes", &members.join(",")]);
    ok(&lab, &["rollout", "start", "--cluster", "edge", "LC_A1"]);
    let rows = history(&lab, &["--rollout", "1"]);
    for m in members {
        let row = rows
            .iter()
            .find(|r| r["node"] == m && r["op"] == "install")
            .unwrap_or_else(|| panic!("{m}: {rows:?}"));
        assert_eq!(row["source"], "rollout");
        assert_eq!(row["rollout"], 1);
        assert_eq!(row["ok"], true);
        assert!(row["patch"].as_str().is_some_and(|p| p.contains("LC_A1")));
        assert!(row["operator"].as_str().is_some_and(|o| o.contains('@')));
    }
    // The rollout's own steps are there too, and nothing else is.
    assert!(rows.iter().any(|r| r["op"] == "drain"));
    assert!(rows.iter().all(|r| r["rollout"] == 1));
    let list = json(&ok(&lab, &["list", "--nodes", "edge-2_4", "--json"]));
    let by = list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["patch"] == "LC_A1"))
        .map(|r| r["by"].clone())
        .unwrap_or_default();
    assert!(by.as_str().is_some_and(|o| o.contains('@')), "{list}");
}

/// The eight members of the demo's edge cluster.
const EDGE: [&str; 8] = [
    "edge-1_1", "edge-1_2", "edge-1_3", "edge-1_4", "edge-2_1", "edge-2_2", "edge-2_3", "edge-2_4",
];

/// A lab whose rollouts do not wait for health to settle.
fn quick_rollouts(lab: &str) {
    let fleet = Path::new(lab).join("fleet.toml");
    let t = std::fs::read_to_string(&fleet).expect("fleet");
    std::fs::write(
        &fleet,
        t.replace("min_healthy_secs = 2", "min_healthy_secs = 0"),
    )
    .expect("fleet");
}

#[test]
fn a_rollout_installs_a_prerequisite_met_through_a_chain() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    quick_rollouts(&lab);
    // Replicated, not staged by hand: the chain below LC_A3 travels with it.
    ok(
        &lab,
        &[
            "replicate",
            "LC_A3",
            "LC_B",
            "--nodes",
            &EDGE.join(","),
            "--wait",
        ],
    );
    ok(
        &lab,
        &["rollout", "start", "--cluster", "edge", "LC_A3", "LC_B"],
    );
    for m in EDGE {
        assert_eq!(state(&lab, m, "LC_B"), "applied", "{m}");
    }
    // An uninstall of the prerequisite alone is refused before anything
    // changes, naming who needs it.
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "edge",
            "LC_A3",
            "--uninstall",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("LC_B") && said.contains("LC_A1"), "{said}");
    let nodes = json(&ok(&lab, &["nodes", "--json"]));
    for m in EDGE {
        assert_eq!(state(&lab, m, "LC_A3"), "applied", "{m}: {said}");
        let service = nodes
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == m))
            .map(|r| r["service"].clone())
            .unwrap_or_default();
        assert_eq!(service, "up", "{m} was never drained");
    }
}

#[test]
fn advice_on_a_superseded_patch_follows_the_chain_to_its_top() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    ok(
        &lab,
        &["stage", "LC_A1", "LC_A2", "LC_A3", "--nodes", "gw-east-1"],
    );
    for id in ["LC_A1", "LC_A2", "LC_A3"] {
        ok(&lab, &["install", id, "--nodes", "gw-east-1"]);
    }
    let refusal = |verb: &str, id: &str| {
        let out = run(&lab, &[verb, id, "--nodes", "gw-east-1", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{verb} {id}");
        json(&out)[0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // LC_A2, its superseder, is itself superseded: the advice starts at the top.
    let m = refusal("rollback", "LC_A1");
    assert!(m.contains("roll back LC_A3, then LC_A2 first"), "{m}");
    let m = refusal("commit", "LC_A1");
    assert!(m.contains("commit LC_A3"), "{m}");
    // Following it works.
    ok(&lab, &["commit", "LC_A3", "--nodes", "gw-east-1"]);
    let m = refusal("rollback", "LC_A1");
    assert!(
        m.contains("install a patch that supersedes LC_A3") && !m.contains("roll back"),
        "{m}"
    );
}

#[test]
fn a_patch_is_never_installed_beneath_one_that_supersedes_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lab = lab_with(tmp.path(), CHAIN);
    quick_rollouts(&lab);
    ok(
        &lab,
        &[
            "replicate",
            "LC_A2",
            "LC_A3",
            "--nodes",
            &EDGE.join(","),
            "--wait",
        ],
    );
    ok(&lab, &["install", "LC_A3", "--nodes", "edge-1_1"]);
    // The plain verb refuses; a rollout reaches the node directly, and the
    // node itself must refuse too.
    let out = run(&lab, &["install", "LC_A2", "--nodes", "edge-1_1"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&lab, &["rollout", "start", "--cluster", "edge", "LC_A2"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(state(&lab, "edge-1_1", "LC_A2"), "staged");
    assert_eq!(state(&lab, "edge-1_1", "LC_A3"), "applied");
    ok(&lab, &["verify", "--nodes", "edge-1_1"]);
    let nodes = json(&ok(&lab, &["nodes", "--json"]));
    for m in EDGE {
        let service = nodes
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == m))
            .map(|r| r["service"].clone())
            .unwrap_or_default();
        assert_eq!(service, "up", "{m}: a failure leaves every group serving");
    }
}
