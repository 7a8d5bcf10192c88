//! The node verbs through the real binary on a demo lab: `nodes`, `stage`,
//! `install`, `rollback`, `commit`, `remove`, `list`, `select
//! --match-target`, with their JSON shapes, exit codes and the journal.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;

use common::json;

fn run(lab: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--lab", lab]);
    common::patchdeck(&all)
}

/// Runs a verb that must succeed, showing its output when it does not.
fn ok(lab: &str, args: &[&str]) {
    let out = run(lab, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn demo(dir: &Path) -> String {
    common::demo_lab(dir)
}

/// A gateway patch of the demo depot with no prerequisites and no base
/// version constraint, and the chain top that supersedes it (if any).
fn plain_gateway_patch(lab: &str) -> (String, Option<String>) {
    let rows = json(&run(
        lab,
        &["depot", "list", "--json", "--filter", "gateway"],
    ));
    let rows = rows.as_array().unwrap();
    let p = rows
        .iter()
        .find(|r| {
            r["requires"].as_array().unwrap().is_empty()
                && r.get("base_version").is_none()
                && r["supersedes"].as_array().unwrap().is_empty()
        })
        .unwrap();
    let by = rows.iter().find(|r| {
        r["supersedes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == &p["id"])
    });
    (
        p["id"].as_str().unwrap().to_string(),
        by.map(|b| b["id"].as_str().unwrap().to_string()),
    )
}

#[test]
fn nodes_json_lists_the_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let out = run(&lab, &["nodes", "--json"]);
    assert!(out.status.success());
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    // The 20 nodes of the first demo, and the offline site north (5).
    assert_eq!(rows.len(), 25);
    for key in ["id", "dc", "org", "site", "cluster", "root", "service"] {
        assert!(rows.iter().all(|r| r.get(key).is_some()), "missing {key}");
    }
    let edge: Vec<&Value> = rows.iter().filter(|r| r["cluster"] == "edge").collect();
    assert_eq!(edge.len(), 8);
    assert!(rows.iter().all(|r| r["service"] == "up"));
    assert!(Path::new(rows[0]["root"].as_str().unwrap()).is_absolute());
}

#[test]
fn stage_install_list_rollback_commit_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let (patch, _) = plain_gateway_patch(&lab);
    // One cluster member and one standalone appliance: two members of one
    // cluster at once would be refused (see never_all_at_once_*).
    let nodes = "edge-1_1,gw-east-1";

    let out = run(&lab, &["stage", &patch, "--nodes", nodes, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let staged = json(&out);
    assert_eq!(staged.as_array().unwrap().len(), 2);
    assert!(
        staged
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["ok"] == true && o["state"] == "staged")
    );

    let out = run(&lab, &["install", &patch, "--nodes", nodes, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = json(&run(&lab, &["list", "--nodes", nodes, "--json"]));
    let rows: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["patch"] == patch.as_str())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| r["state"] == "applied"
            && r["node"].is_string()
            && r["applied_at"].is_string())
    );

    // Remove is refused while applied, naming the state and the remedy.
    let out = run(&lab, &["remove", &patch, "--nodes", "edge-1_1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let o = &json(&out)[0];
    assert_eq!(o["ok"], false);
    assert_eq!(o["error"], "refused");
    let msg = o["message"].as_str().unwrap();
    assert!(
        msg.contains("edge-1_1") && msg.contains("applied") && msg.contains("roll it back first"),
        "{msg}"
    );

    ok(&lab, &["rollback", &patch, "--nodes", "edge-1_1"]);
    ok(&lab, &["remove", &patch, "--nodes", "edge-1_1"]);
    ok(&lab, &["commit", &patch, "--nodes", "gw-east-1"]);
    let list = json(&run(&lab, &["list", "--json"]));
    let state = |node: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["node"] == node && r["patch"] == patch.as_str())
            .map(|r| r["state"].clone())
    };
    assert_eq!(state("edge-1_1"), None, "removed: state none");
    assert_eq!(state("gw-east-1"), Some(Value::from("committed")));

    // The journal recorded every step.
    let db = rusqlite::Connection::open(Path::new(&lab).join("console.sqlite")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM journal WHERE patch=?1",
            [&patch],
            |r| r.get(0),
        )
        .unwrap();
    assert!(n >= 7, "{n} journal entries");
    let failed: i64 = db
        .query_row("SELECT COUNT(*) FROM journal WHERE ok=0", [], |r| r.get(0))
        .unwrap();
    assert_eq!(failed, 1);
}

#[test]
fn install_skips_nodes_without_the_patch_staged() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let (patch, _) = plain_gateway_patch(&lab);
    // Not replicated: a warning names the node and it is skipped, or with
    // --require-replicated the install is refused.
    // Nothing done anywhere is a failure (exit 1), not success.
    let out = run(&lab, &["install", &patch, "--nodes", "gw-east-1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let o = &json(&out)[0];
    assert_eq!(
        (o["skipped"].clone(), o["ok"].clone()),
        (Value::from(true), Value::from(false))
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gw-east-1"),
        "warning names the node"
    );
    let out = run(
        &lab,
        &[
            "install",
            &patch,
            "--nodes",
            "gw-east-1",
            "--require-replicated",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("replication is incomplete"));
    // Targets by organization and data center.
    let out = run(
        &lab,
        &[
            "stage", &patch, "--org", "payments", "--dc", "west", "--json",
        ],
    );
    assert!(out.status.success());
    let nodes: Vec<String> = json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["node"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !nodes.is_empty()
            && nodes
                .iter()
                .all(|n| n.starts_with("edge-2_") || n.starts_with("gw-west")),
        "{nodes:?}"
    );
}

#[test]
fn bad_targets_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let (patch, _) = plain_gateway_patch(&lab);
    let out = run(&lab, &["stage", &patch, "--nodes", "nope-9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope-9"));
    assert_eq!(
        run(&lab, &["install", &patch]).status.code(),
        Some(2),
        "no targets"
    );
    assert_eq!(
        run(&lab, &["install", &patch, "--cluster", "nope"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&lab, &["stage", "NOT_A_PATCH", "--nodes", "edge-1_1"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn select_matches_the_nodes_real_inventory() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let out = run(&lab, &["select", "--match-target", "db-1_1", "--json"]);
    let body = json(&out);
    let ids: Vec<&str> = body["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(!ids.is_empty());
    // db nodes carry kernel and appserver only.
    assert!(
        ids.iter()
            .all(|id| id.starts_with("KRN_") || id.starts_with("APP_")),
        "{ids:?}"
    );
    let out = run(&lab, &["select", "--match-target", "no-such-node"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_broken_fleet_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let fleet = Path::new(&lab).join("fleet.toml");
    let text =
        std::fs::read_to_string(&fleet)
            .unwrap()
            .replacen("dc = \"east\"", "dc = \"mars\"", 1);
    std::fs::write(&fleet, &text).unwrap();
    let line = text.lines().position(|l| l.contains("\"mars\"")).unwrap() + 1;
    let out = run(&lab, &["nodes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("fleet.toml:{line}")) && err.contains("mars"),
        "{err}"
    );
}

#[test]
fn verify_reports_drift_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let (patch, _) = plain_gateway_patch(&lab);
    ok(&lab, &["stage", &patch, "--nodes", "gw-east-1"]);
    ok(&lab, &["install", &patch, "--nodes", "gw-east-1"]);
    ok(&lab, &["verify", "--nodes", "gw-east-1"]);
    let nodes = json(&run(&lab, &["nodes", "--json"]));
    let root = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "gw-east-1")
        .unwrap()["root"]
        .as_str()
        .unwrap()
        .to_string();
    let db =
        rusqlite::Connection::open(Path::new(&root).join("var/lib/patchdeck/ipd.sqlite")).unwrap();
    let path: String = db
        .query_row(
            "SELECT path FROM patch_file WHERE patch=?1 LIMIT 1",
            [&patch],
            |r| r.get(0),
        )
        .unwrap();
    std::fs::write(Path::new(&root).join(&path), b"tampered").unwrap();
    let out = run(&lab, &["verify", "--nodes", "gw-east-1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows = json(&out);
    assert_eq!(rows[0]["path"], path.as_str());
    assert_eq!(rows[0]["patch"], patch.as_str());
    assert_eq!(rows[0]["node"], "gw-east-1");
}

#[test]
fn replicate_shows_n_of_m_per_datacenter_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let (patch, _) = plain_gateway_patch(&lab);
    let out = run(&lab, &["replicate", &patch, "--dc", "west", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = &json(&out)[0];
    let west = p["dcs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dc"] == "west")
        .unwrap();
    assert_eq!(west["done"], west["total"]);
    assert!(
        p["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "verified")
    );

    // Make one east node fail: its store directory is replaced by a file.
    let nodes = json(&run(&lab, &["nodes", "--json"]));
    let root = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "gw-east-1")
        .unwrap()["root"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_dir_all(Path::new(&root).join("var")).unwrap();
    std::fs::write(Path::new(&root).join("var"), b"not a directory").unwrap();
    let out = run(&lab, &["replicate", &patch, "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let copies = lines.iter().filter(|e| e["status"] == "copying").count();
    let west_nodes = 9;
    assert!(
        copies >= 20 - west_nodes - 1,
        "only the missing nodes are copied: {copies}"
    );
    assert!(
        lines
            .iter()
            .all(|e| !(e["dc"] == "west" && e["status"] == "copying")),
        "west was already verified"
    );
    let failed: Vec<&Value> = lines.iter().filter(|e| e["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["node"], "gw-east-1");
    let last = lines.last().unwrap();
    let east = last["progress"][0]["dcs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dc"] == "east")
        .unwrap()
        .clone();
    assert_eq!(east["failed"], 1);
    assert_eq!(
        east["done"].as_u64().unwrap() + 1,
        east["total"].as_u64().unwrap()
    );
    // The recorded status survives and is readable later.
    let out = run(&lab, &["replicate", "--status", &patch]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("19/20") && text.contains("gw-east-1") && text.contains("failed"),
        "{text}"
    );
}

#[test]
fn a_copy_whose_replicate_run_died_is_not_shown_as_under_way() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let (patch, _) = plain_gateway_patch(&lab);
    ok(
        &lab,
        &["replicate", &patch, "--nodes", "gw-east-1,gw-west-1"],
    );
    // As a replicate run killed mid-copy leaves its rows: copying, written
    // by a process that is gone.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = i64::from(gone.id());
    gone.wait().unwrap();
    let db = rusqlite::Connection::open(Path::new(&lab).join("console.sqlite")).unwrap();
    db.execute(
        "UPDATE replication SET status='copying', pid=?1 WHERE node='gw-west-1'",
        [pid],
    )
    .unwrap();
    db.execute(
        "UPDATE replication SET status='pending', pid=?1 WHERE node='gw-east-1'",
        [pid],
    )
    .unwrap();
    drop(db);
    let out = run(&lab, &["replicate", "--status", &patch, "--json"]);
    assert!(out.status.success() || out.status.code() == Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("\"copying\""), "{text}");
    assert!(!text.contains("\"pending\""), "{text}");
    assert!(text.contains("interrupted"), "{text}");
    // Running it again copies what is missing and ends verified.
    ok(
        &lab,
        &["replicate", &patch, "--nodes", "gw-east-1,gw-west-1"],
    );
    let out = run(&lab, &["replicate", "--status", &patch]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2/2"));
}

#[test]
fn a_node_reached_by_command_works_like_a_local_one() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo(tmp.path());
    let (patch, _) = plain_gateway_patch(&lab);
    // gw-west-2 is reached through `patchdeck node`, as ssh would run it.
    let fleet = Path::new(&lab).join("fleet.toml");
    let text = std::fs::read_to_string(&fleet).unwrap();
    let root = Path::new(&lab).join("nodes/gw-west-2");
    let exe = env!("CARGO_BIN_EXE_patchdeck");
    let text = text.replace(
        "root = \"nodes/gw-west-2\"",
        &format!(
            "command = \"{exe} node --root {} --name gw-west-2\"",
            root.display()
        ),
    );
    std::fs::write(&fleet, text).unwrap();
    let out = run(
        &lab,
        &["replicate", &patch, "--nodes", "gw-west-2", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&lab, &["install", &patch, "--nodes", "gw-west-2", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = json(&run(&lab, &["list", "--nodes", "gw-west-2", "--json"]));
    assert_eq!(list[0]["state"], "applied");
    let nodes = json(&run(&lab, &["nodes", "--json"]));
    let n = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "gw-west-2")
        .unwrap()
        .clone();
    assert!(n["command"].as_str().unwrap().contains("node --root"));
    assert!(n.get("root").is_none());
}

#[test]
fn a_cluster_with_two_nodes_of_one_member_name_has_no_groups() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    for n in ["web1", "web2"] {
        std::fs::create_dir_all(dir.path().join(n)).unwrap();
    }
    std::fs::create_dir_all(&lab).unwrap();
    let root = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(
        lab.join("fleet.toml"),
        format!(
            "[[datacenter]]\nid = \"d\"\n[[organization]]\nid = \"o\"\n[[cluster]]\nid = \"c\"\n\
             [[node]]\nid = \"web1\"\ndc = \"d\"\norg = \"o\"\ncluster = \"c\"\nmember = \"1_1\"\nroot = \"{}\"\n\
             [[node]]\nid = \"web2\"\ndc = \"d\"\norg = \"o\"\ncluster = \"c\"\nmember = \"1_1\"\nroot = \"{}\"\n",
            root("web1"),
            root("web2")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["groups", "--cluster", "c", "--lab", lab.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("web1 and web2 are both member 1_1"), "{err}");
}

#[test]
fn bootstrap_of_a_node_not_reached_by_ssh_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["demo", "--lab", lab.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args([
            "bootstrap",
            "--nodes",
            "gw-east-1",
            "--lab",
            lab.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not reached by ssh: gw-east-1"), "{err}");
}
