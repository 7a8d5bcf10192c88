//! `components`, `updates` and `drift` on the demo lab, through the real
//! binary: JSON shapes, exit statuses, and the rollout's drift gate.

mod common;

use common::{demo_lab, json, patchdeck};

fn run(lab: &str, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--lab", lab]);
    patchdeck(&all)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn components_lists_every_fileset_with_its_version() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let out = run(
        &lab,
        &["components", "--nodes", "edge-1_1,north-2", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    for r in rows {
        for key in ["node", "component", "installed"] {
            assert!(r[key].is_string(), "{key} in {r}");
        }
    }
    let version = |node: &str, c: &str| {
        rows.iter()
            .find(|r| r["node"] == node && r["component"] == c)
            .map(|r| r["installed"].as_str().unwrap().to_string())
    };
    assert_eq!(version("edge-1_1", "gateway.core").as_deref(), Some("10.1"));
    assert_eq!(
        version("north-2", "gateway.core").as_deref(),
        Some("10.1.3")
    );
    // Every fileset of the three products: kernel 4, gateway 4, crypto 2.
    assert_eq!(rows.iter().filter(|r| r["node"] == "edge-1_1").count(), 10);

    let out = run(&lab, &["components", "--cluster", "legacy", "--json"]);
    let rows = json(&out);
    let nodes: std::collections::BTreeSet<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 3);
    let out = run(&lab, &["components", "--nodes", "nope-1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn updates_give_paths_in_install_order_with_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let out = run(&lab, &["updates", "--nodes", "gw-east-1", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let all = json(&out);
    let all = all.as_array().unwrap().clone();
    assert!(!all.is_empty());
    for u in &all {
        for key in ["node", "component", "installed", "available"] {
            assert!(u[key].is_string(), "{key} in {u}");
        }
        assert!(["none", "service", "reboot"].contains(&u["restart"].as_str().unwrap()));
        let patches = u["patches"].as_array().unwrap();
        assert!(!patches.is_empty());
        for p in patches {
            assert!(p["id"].is_string() && p["reason"].is_string(), "{p}");
        }
        // The strongest restart on the path is the path's restart.
        let worst = patches
            .iter()
            .map(|p| match p["restart"].as_str().unwrap() {
                "none" => 0,
                "service" => 1,
                _ => 2,
            })
            .max()
            .unwrap();
        let own = match u["restart"].as_str().unwrap() {
            "none" => 0,
            "service" => 1,
            _ => 2,
        };
        assert_eq!(worst, own, "{u}");
    }
    // The same order as the resolver gives `select --match-target`.
    let first = &all[0];
    let component = first["component"].as_str().unwrap();
    let sel = json(&run(
        &lab,
        &["select", component, "--match-target", "gw-east-1", "--json"],
    ));
    let order: Vec<&str> = sel["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let path: Vec<&str> = first["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(path, order);

    let hot = json(&run(
        &lab,
        &["updates", "--nodes", "gw-east-1", "--hot-only", "--json"],
    ));
    let hot = hot.as_array().unwrap();
    assert!(!hot.is_empty(), "the demo depot has hot updates");
    for u in hot {
        assert_eq!(u["restart"], "none", "{u}");
        for p in u["patches"].as_array().unwrap() {
            assert_eq!(p["restart"], "none", "{p}");
        }
    }
}

#[test]
fn drift_names_what_differs_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let out = run(&lab, &["drift", "--cluster", "edge", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["drifted"], false);
    assert_eq!(r["members"].as_array().unwrap().len(), 8);

    let out = run(&lab, &["drift", "--cluster", "legacy", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["cluster"], "legacy");
    assert_eq!(r["drifted"], true);
    let diffs = r["differences"].as_array().unwrap();
    assert!(diffs.iter().any(|d| d["kind"] == "component"
        && d["component"] == "appserver.web"
        && d["versions"]["legacy-1_3"] == "4.2.5"));
    let out = run(&lab, &["drift", "--cluster", "legacy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("legacy-1_3"));
    let out = run(&lab, &["drift", "--cluster", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rollouts_refuse_a_drifted_cluster_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let drift = json(&run(&lab, &["drift", "--cluster", "legacy", "--json"]));
    let patch = drift["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "patch")
        .map(|d| d["patch"].as_str().unwrap().to_string())
        .expect("the demo's legacy cluster differs by a patch");
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "legacy",
            &patch,
            "--dry-run",
        ],
    );
    // appserver.web still differs between the members without the patch.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--allow-drift"), "{}", text(&out));
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "legacy",
            &patch,
            "--dry-run",
            "--allow-drift",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("drifted"), "the preview says so");
    // A level cluster is not affected.
    let out = run(
        &lab,
        &["rollout", "start", "--cluster", "db", &patch, "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out));
}
