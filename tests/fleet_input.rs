//! fleet.toml values that used to pass loading and fail later (a panic on
//! an out-of-range duration, a count that silently became another, a node
//! id `--nodes` cannot name, a root inside another node's) are refused
//! when the file is read: exit 2, the file and line, and what is allowed.

mod common;

use std::path::Path;

use common::{demo_lab, patchdeck};

/// `fleet.toml` of `lab` with the first `from` replaced by `to`.
fn edit(lab: &str, from: &str, to: &str) -> String {
    let path = Path::new(lab).join("fleet.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "fleet.toml has no {from:?}");
    let changed = text.replacen(from, to, 1);
    std::fs::write(&path, &changed).unwrap();
    changed
}

/// The 1-based line of the first line of `text` holding `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Runs `args` on `lab`: exit 2, stderr names fleet.toml at `line` and
/// holds every one of `says`. Never a panic (exit 101).
fn refused(lab: &str, args: &[&str], line: usize, says: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["--lab", lab]);
    let out = patchdeck(&all);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(&format!("fleet.toml:{line}:")),
        "{args:?}: {err}"
    );
    for s in says {
        assert!(err.contains(s), "{args:?}: wants {s:?}: {err}");
    }
}

#[test]
fn out_of_range_durations_and_counts_are_refused_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let fleet = Path::new(&lab).join("fleet.toml");
    let original = std::fs::read_to_string(&fleet).unwrap();
    let listed = common::json(&patchdeck(&["depot", "list", "--json", "--lab", &lab]));
    let patch = listed[0]["id"].as_str().expect("a demo patch").to_string();
    let window = "on_failure = \"rollback\"\n\n[[cluster.window]]\ncron = \"0 2 * * SAT\"\nduration = \"3000000000h\"\n\n[[cluster]]\nid = \"app\"";
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "on_failure = \"rollback\"\n\n[[cluster]]\nid = \"app\"",
            window,
            "3000000000h",
            &["duration", "7 days"],
        ),
        (
            "health_deadline_secs = 60",
            "health_deadline_secs = 18446744073709551615",
            "health_deadline_secs",
            &["health_deadline_secs", "1 to 86400"],
        ),
        (
            "min_healthy_secs = 2",
            "min_healthy_secs = 99999999",
            "min_healthy_secs",
            &["min_healthy_secs", "0 to 86400"],
        ),
        (
            "parallel = 2",
            "parallel = 0",
            "parallel",
            &["parallel = 0", "1 to 1000"],
        ),
        (
            "groups = 2",
            "groups = 0",
            "groups",
            &["groups = 0", "2 to 1000"],
        ),
        (
            "groups = 2",
            "groups = \"banana\"",
            "groups",
            &["banana", "per-site"],
        ),
    ];
    for (from, to, at, says) in cases {
        std::fs::write(&fleet, &original).unwrap();
        let text = edit(&lab, from, to);
        let line = line_of(&text, at);
        for args in [
            &["windows"][..],
            &["groups", "--cluster", "app"],
            &["rollout", "start", "--cluster", "edge", &patch, "--dry-run"],
            &["nodes"],
        ] {
            refused(&lab, args, line, says);
        }
    }
}

#[test]
fn a_node_id_that_lists_cannot_name_is_refused_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let fleet = Path::new(&lab).join("fleet.toml");
    let original = std::fs::read_to_string(&fleet).unwrap();
    for bad in [
        "gw-east-1,gw-east-2",
        "gw east 1",
        "gw-east-1\\u00a0x",
        "-gw",
    ] {
        std::fs::write(&fleet, &original).unwrap();
        let text = edit(&lab, "id = \"gw-east-1\"", &format!("id = \"{bad}\""));
        let line = line_of(&text, &format!("\"{bad}\""));
        refused(&lab, &["nodes"], line, &["node id", "one word"]);
    }
}

#[test]
fn an_ansible_host_that_lists_cannot_name_is_refused_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let inventory = tmp.path().join("hosts.ini");
    std::fs::write(
        &inventory,
        "[web]\ngw-1 ansible_host=10.0.0.1\ngw,2 ansible_host=10.0.0.2\n",
    )
    .unwrap();
    let out = patchdeck(&[
        "fleet",
        "import",
        "--ansible",
        inventory.to_str().unwrap(),
        "--default-dc",
        "east",
        "--default-org",
        "retail",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("hosts.ini:3") && err.contains("node id"),
        "{err}"
    );
}

#[test]
fn a_root_inside_another_nodes_root_names_both_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    std::fs::create_dir_all(Path::new(&lab).join("nodes/edge-1_1/opt")).unwrap();
    let text = edit(
        &lab,
        "root = \"nodes/edge-1_2\"",
        "root = \"nodes/edge-1_1/opt\"",
    );
    let line = line_of(&text, "nodes/edge-1_1/opt");
    refused(&lab, &["nodes"], line, &["edge-1_2", "edge-1_1", "inside"]);
}

#[test]
fn an_unknown_key_error_lists_every_valid_key() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let text = edit(
        &lab,
        "root = \"nodes/edge-1_2\"",
        "rot = \"nodes/edge-1_2\"",
    );
    let line = line_of(&text, "rot =");
    refused(
        &lab,
        &["nodes"],
        line,
        &["`rot`", "`id`", "`products`", "`demo`"],
    );
}
