//! Offline sites through the real binary: snapshot → prepare → apply ends
//! exactly where an online install of the same selection ends (node
//! digests); a bundle for another environment is refused; a stale snapshot
//! is refused and `--rebase` re-plans; an apply aborted at any node fault
//! point leaves each patch before or after, and applying again completes.

mod common;

use std::path::{Path, PathBuf};

use common::{json, patchdeck};

/// A demo lab whose bundles need no signature: these tests are about the
/// offline flow, and tests/trust.rs covers signed bundles.
fn demo_lab(dir: &std::path::Path) -> String {
    let lab = common::demo_lab(dir);
    common::allow_unsigned(std::path::Path::new(&lab));
    lab
}
use patchdeck::engine::node::Node;

fn run(lab: &str, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--lab", lab]);
    patchdeck(&all)
}

fn ok(lab: &str, args: &[&str]) -> std::process::Output {
    let out = run(lab, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn root(lab: &str, node: &str) -> PathBuf {
    Path::new(lab).join("nodes").join(node)
}

fn digest(lab: &str, node: &str) -> String {
    Node::open(&root(lab, node), node)
        .unwrap()
        .digest()
        .unwrap()
}

/// The patches `prepare` planned for `node`, in order.
fn planned(lab: &str, snapshot: &str, spec: &str, bundle: &str, node: &str) -> Vec<String> {
    let plans = json(&ok(
        lab,
        &["prepare", snapshot, spec, "-o", bundle, "--json"],
    ));
    plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node"] == node)
        .unwrap()["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn offline_round_trip_equals_an_online_install() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle").display().to_string();
    // gw-east-1 and gw-west-1 start identical; one goes offline, one online.
    assert_eq!(digest(&lab, "gw-east-1"), digest(&lab, "gw-west-1"));
    ok(&lab, &["snapshot", "--nodes", "gw-east-1", "-o", &snap]);
    // Kernel chains run through patches a plan leaves out, so a
    // requirement is met by a superseder the bundle must teach the node.
    let ids = planned(&lab, &snap, "kernel", &bundle, "gw-east-1");
    assert!(ids.len() >= 2, "{ids:?}");
    let out = ok(&lab, &["apply", &bundle, "--nodes", "gw-east-1", "--json"]);
    let rows = json(&out);
    assert_eq!(rows[0]["installed"].as_array().unwrap().len(), ids.len());

    let list = ids.join(",");
    let mut stage = vec!["stage"];
    stage.extend(ids.iter().map(String::as_str));
    stage.extend(["--nodes", "gw-west-1"]);
    ok(&lab, &stage);
    let mut install = vec!["install"];
    install.extend(ids.iter().map(String::as_str));
    install.extend(["--nodes", "gw-west-1"]);
    ok(&lab, &install);
    assert_eq!(
        digest(&lab, "gw-east-1"),
        digest(&lab, "gw-west-1"),
        "offline and online installs of {list} differ"
    );

    // Applying again changes nothing and says so.
    let out = ok(&lab, &["apply", &bundle, "--nodes", "gw-east-1"]);
    assert!(text(&out).contains("already applied"), "{}", text(&out));
    assert_eq!(digest(&lab, "gw-east-1"), digest(&lab, "gw-west-1"));

    // The journal has every step.
    let journal = rusqlite::Connection::open(Path::new(&lab).join("console.sqlite")).unwrap();
    let installs: i64 = journal
        .query_row(
            "SELECT COUNT(*) FROM journal WHERE node='gw-east-1' AND op='install' AND ok=1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(installs as usize, ids.len());
}

#[test]
fn offline_nodes_refuse_direct_staging_and_take_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle").display().to_string();
    ok(
        &lab,
        &["snapshot", "--nodes", "north-1,north-2", "-o", &snap],
    );
    let ids = planned(&lab, &snap, "crypto", &bundle, "north-1");
    let out = run(&lab, &["stage", &ids[0], "--nodes", "north-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("snapshot"), "{}", text(&out));
    // north-2 has a newer crypto than north-1: its own plan leaves out
    // what would take it backwards (no downgrade, docs/trust.md).
    let ids = planned(&lab, &snap, "crypto", &bundle, "north-2");
    ok(&lab, &["apply", &bundle, "--nodes", "north-1,north-2"]);
    let list = json(&ok(&lab, &["list", "--nodes", "north-2", "--json"]));
    for id in &ids {
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|r| r["patch"] == id.as_str() && r["state"] == "applied"),
            "{id} on north-2: {list}"
        );
    }
}

#[test]
fn a_bundle_for_another_environment_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = demo_lab(&tmp.path().join("a"));
    let b = demo_lab(&tmp.path().join("b"));
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle").display().to_string();
    ok(&a, &["snapshot", "--nodes", "gw-east-1", "-o", &snap]);
    ok(&a, &["prepare", &snap, "gateway", "-o", &bundle]);
    let before = digest(&b, "gw-east-1");
    // Same node id, another environment: refused, naming both.
    let out = run(&b, &["apply", &bundle, "--nodes", "gw-east-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("environment"), "{said}");
    let env_a =
        std::fs::read_to_string(root(&a, "gw-east-1").join("var/lib/patchdeck/environment"))
            .unwrap();
    assert!(said.contains(env_a.trim()), "{said}");
    assert_eq!(digest(&b, "gw-east-1"), before, "nothing changed");
    // A bare node root elsewhere: refused too.
    let out = run(
        &b,
        &[
            "apply",
            &bundle,
            "--root",
            &root(&b, "gw-west-1").display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // A node the bundle was not prepared for.
    let out = run(&a, &["apply", &bundle, "--nodes", "gw-west-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not in this bundle"), "{}", text(&out));
}

#[test]
fn a_damaged_bundle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle");
    ok(&lab, &["snapshot", "--nodes", "gw-east-1", "-o", &snap]);
    ok(
        &lab,
        &[
            "prepare",
            &snap,
            "gateway.core",
            "-o",
            &bundle.display().to_string(),
        ],
    );
    let good = std::fs::read(&bundle).unwrap();
    let before = digest(&lab, "gw-east-1");
    // One flipped byte anywhere (content, headers, padding, the checksum
    // itself) is refused before anything reaches the node.
    for k in 1..12 {
        let mut bytes = good.clone();
        let at = bytes.len() * k / 12;
        bytes[at] ^= 0x55;
        std::fs::write(&bundle, &bytes).unwrap();
        let out = run(
            &lab,
            &[
                "apply",
                &bundle.display().to_string(),
                "--nodes",
                "gw-east-1",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "byte {at}: {}", text(&out));
        assert_eq!(digest(&lab, "gw-east-1"), before, "byte {at}");
    }
    std::fs::write(&bundle, &good).unwrap();
    ok(
        &lab,
        &[
            "apply",
            &bundle.display().to_string(),
            "--nodes",
            "gw-east-1",
        ],
    );
}

#[test]
fn a_stale_snapshot_is_refused_and_rebase_replans() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle").display().to_string();
    ok(&lab, &["snapshot", "--nodes", "gw-east-1", "-o", &snap]);
    let ids = planned(&lab, &snap, "gateway.core", &bundle, "gw-east-1");
    // Something else is installed on the node after the snapshot.
    let other = json(&ok(
        &lab,
        &["select", "crypto", "--match-target", "gw-east-1", "--json"],
    ))["patches"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!ids.contains(&other));
    ok(&lab, &["stage", &other, "--nodes", "gw-east-1"]);
    ok(&lab, &["install", &other, "--nodes", "gw-east-1"]);
    let before = digest(&lab, "gw-east-1");
    let out = run(&lab, &["apply", &bundle, "--nodes", "gw-east-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("changed since the snapshot"), "{said}");
    assert!(said.contains(&other), "names the change: {said}");
    assert_eq!(digest(&lab, "gw-east-1"), before, "nothing changed");

    let out = ok(
        &lab,
        &[
            "apply",
            &bundle,
            "--nodes",
            "gw-east-1",
            "--rebase",
            "--json",
        ],
    );
    let row = &json(&out)[0];
    assert!(
        row["rebased"]["changes"].to_string().contains(&other),
        "{row}"
    );
    let list = json(&ok(&lab, &["list", "--nodes", "gw-east-1", "--json"]));
    for id in &ids {
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|r| r["patch"] == id.as_str() && r["state"] == "applied"),
            "{id}: {list}"
        );
    }
}

#[test]
fn an_apply_aborted_anywhere_ends_before_or_after_and_completes_when_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle").display().to_string();
    // The reference: the bundle applied without interruption on a twin.
    ok(
        &lab,
        &["snapshot", "--nodes", "gw-east-1,gw-west-1", "-o", &snap],
    );
    let ids = planned(&lab, &snap, "gateway.core", &bundle, "gw-west-1");
    ok(&lab, &["apply", &bundle, "--nodes", "gw-west-1"]);
    let after = digest(&lab, "gw-west-1");
    let pristine = tmp.path().join("pristine");
    common::copy_tree(&root(&lab, "gw-east-1"), &pristine);

    let journal = rusqlite::Connection::open(Path::new(&lab).join("console.sqlite")).unwrap();
    let intents = || -> Vec<String> {
        let mut stmt = journal
            .prepare(
                "SELECT patch FROM journal WHERE node='gw-east-1' AND op='apply' AND pending=1 ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for (killed, point) in [1u32, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17]
        .into_iter()
        .enumerate()
    {
        let target = root(&lab, "gw-east-1");
        std::fs::remove_dir_all(&target).unwrap();
        common::copy_tree(&pristine, &target);
        let out = assert_cmd::Command::cargo_bin("patchdeck")
            .unwrap()
            .env_remove("PATCHDECK_LAB")
            .env("PATCHDECK_FAULT", point.to_string())
            .args(["apply", &bundle, "--nodes", "gw-east-1", "--lab", &lab])
            .output()
            .unwrap();
        assert!(!out.status.success(), "point {point} was never reached");
        // The intent went in before the node was touched, naming the plan,
        // and stays as the row of a command that never reported.
        let left = intents();
        assert_eq!(left.len(), killed + 1, "point {point}: {left:?}");
        assert_eq!(left.last(), Some(&ids.join(",")), "point {point}");
        // Recovery on open; then every planned patch is before or after,
        // and files agree with the database.
        let node = Node::open(&target, "gw-east-1").unwrap();
        assert!(
            node.verify().unwrap().is_empty(),
            "point {point}: files drifted"
        );
        for id in &ids {
            let s = node.state(id).unwrap();
            assert!(
                matches!(
                    s,
                    patchdeck::engine::inventory::PatchState::None
                        | patchdeck::engine::inventory::PatchState::Staged
                        | patchdeck::engine::inventory::PatchState::Applied
                ),
                "point {point}: {id} is {s}"
            );
        }
        drop(node);
        ok(&lab, &["apply", &bundle, "--nodes", "gw-east-1"]);
        assert_eq!(digest(&lab, "gw-east-1"), after, "point {point}");
    }
}

#[test]
fn a_bundle_on_a_cluster_rolls_out_group_by_group_and_honours_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle").display().to_string();
    ok(
        &lab,
        &[
            "snapshot",
            "--nodes",
            "legacy-1_1,legacy-1_2,legacy-1_3",
            "-o",
            &snap,
        ],
    );
    let ids = planned(&lab, &snap, "appserver.cache", &bundle, "legacy-1_1");
    assert!(!ids.is_empty());
    // legacy has drifted in ways this bundle does not level.
    let out = run(&lab, &["apply", &bundle, "--cluster", "legacy"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--allow-drift"), "{}", text(&out));
    let list = json(&ok(&lab, &["list", "--nodes", "legacy-1_1", "--json"]));
    assert!(
        !list.to_string().contains(&ids[0]),
        "nothing staged on a refusal: {list}"
    );

    let out = ok(
        &lab,
        &["apply", &bundle, "--cluster", "legacy", "--allow-drift"],
    );
    assert!(text(&out).contains("done"), "{}", text(&out));
    for member in ["legacy-1_1", "legacy-1_2", "legacy-1_3"] {
        let list = json(&ok(&lab, &["list", "--nodes", member, "--json"]));
        for id in &ids {
            assert!(
                list.as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["patch"] == id.as_str() && r["state"] == "applied"),
                "{id} on {member}: {list}"
            );
        }
    }
    // A rollout did it, and the allowed drift is in the journal.
    let status = json(&ok(&lab, &["rollout", "status", "--json"]));
    assert_eq!(status["cluster"], "legacy", "{status}");
    let journal = rusqlite::Connection::open(Path::new(&lab).join("console.sqlite")).unwrap();
    let allowed: i64 = journal
        .query_row(
            "SELECT COUNT(*) FROM journal WHERE op='allow-drift' AND node='legacy'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(allowed, 1);
    let out = ok(&lab, &["apply", &bundle, "--cluster", "legacy"]);
    assert!(text(&out).contains("already applied"), "{}", text(&out));
}

#[test]
fn kill_9_during_apply_ends_before_or_after_and_apply_again_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("snap.json").display().to_string();
    let bundle = tmp.path().join("b.bundle").display().to_string();
    ok(
        &lab,
        &["snapshot", "--nodes", "gw-east-1,gw-west-1", "-o", &snap],
    );
    assert!(!planned(&lab, &snap, "gateway.core", &bundle, "gw-east-1").is_empty());
    ok(&lab, &["apply", &bundle, "--nodes", "gw-west-1"]);
    let after = digest(&lab, "gw-west-1");
    let staged = root(&lab, "gw-east-1").join("var/lib/patchdeck/staged");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("patchdeck"))
        .env_remove("PATCHDECK_LAB")
        .args(["apply", &bundle, "--nodes", "gw-east-1", "--lab", &lab])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it has begun changing the node (or has ended).
    loop {
        let begun = std::fs::read_dir(&staged)
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if begun || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::yield_now();
    }
    // SAFETY: the pid is our own child's.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
    let node = Node::open(&root(&lab, "gw-east-1"), "gw-east-1").unwrap();
    assert!(
        node.verify().unwrap().is_empty(),
        "files agree with the database"
    );
    drop(node);
    ok(&lab, &["apply", &bundle, "--nodes", "gw-east-1"]);
    assert_eq!(digest(&lab, "gw-east-1"), after);
}
