//! Manifest values that used to pass pack, depot add, depot check and the
//! resolver and fail only on a node (a patch requiring itself) or at
//! selection (a `base_version` no one can read) are refused where the
//! manifest is read: `pack` exit 2 naming PATCH.toml and the line, `depot
//! add` exit 2, and a file already in the depot listed as broken.

mod common;

use std::path::Path;

use common::{demo_lab, manifest, patchdeck, write_patch};

/// A manifest for `id` that, like most hand-written ones, does not repeat
/// its id (the file name gives it), with `extra` keys.
fn without_id(id: &str, extra: &str) -> String {
    manifest(id, extra)
        .lines()
        .filter(|l| !l.starts_with("id ="))
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Each bad manifest: its id, the extra keys, the key on the bad line and
/// what the error must say.
const CASES: [(&str, &str, &str, &str); 4] = [
    ("SELF_1", "requires = [\"SELF_1\"]", "requires", "itself"),
    (
        "SELF_2",
        "requires = [\"OTHER_1\", \"SELF_2\"]",
        "requires",
        "itself",
    ),
    (
        "BASE_1",
        "base_version = \">=>10\"",
        "base_version",
        ">=10.1",
    ),
    (
        "BASE_2",
        "base_version = \">=10,\"",
        "base_version",
        "no version",
    ),
];

#[test]
fn pack_refuses_them_naming_the_manifest_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (id, extra, key, says) in CASES {
        let dir = tmp.path().join(id);
        std::fs::create_dir_all(dir.join("files/opt")).unwrap();
        std::fs::write(dir.join("files/opt/x"), b"x").unwrap();
        let text = without_id(id, extra);
        std::fs::write(dir.join("PATCH.toml"), &text).unwrap();
        let out_file = tmp.path().join(format!("{id}.patch"));
        let out = patchdeck(&[
            "pack",
            dir.to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{id}: {err}");
        let line = line_of(&text, key);
        assert!(
            err.contains("PATCH.toml") && err.contains(&format!("line {line}")),
            "{id}: {err}"
        );
        assert!(err.contains(says), "{id}: {err}");
        assert!(!out_file.exists(), "{id}: nothing is written");
    }
}

#[test]
fn depot_add_refuses_them_and_the_depot_lists_them_as_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    common::allow_unsigned(Path::new(&lab));
    let depot = Path::new(&lab).join("depot");
    let made = tmp.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    for (id, extra, key, says) in CASES {
        let text = without_id(id, extra);
        let file = write_patch(&made, id, &text, &[("opt/x", b"x")]);
        let out = patchdeck(&["depot", "add", file.to_str().unwrap(), "--lab", &lab]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{id}: {err}");
        let line = line_of(&text, key);
        assert!(
            err.contains(&format!("PATCH.toml line {line}")) && err.contains(says),
            "{id}: {err}"
        );
        assert!(!depot.join(format!("{id}.patch")).exists(), "{id}");

        // Put in by hand: listed as broken, and a selection naming it is
        // refused as bad input rather than passing to fail on a node.
        std::fs::copy(&file, depot.join(format!("{id}.patch"))).unwrap();
        let out = patchdeck(&["depot", "check", "--json", "--lab", &lab]);
        assert_eq!(out.status.code(), Some(1), "{id}: {}", stderr(&out));
        let report = common::json(&out);
        let broken = report["broken"].as_array().unwrap();
        assert!(
            broken.iter().any(|b| b["file"] == format!("{id}.patch")
                && b["line"] == line
                && b["message"].as_str().unwrap().contains(says)),
            "{id}: {broken:?}"
        );
        let out = patchdeck(&["select", id, "--lab", &lab]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{id}: {err}");
        assert!(err.contains("broken") && err.contains(says), "{id}: {err}");
        std::fs::remove_file(depot.join(format!("{id}.patch"))).unwrap();
    }
}
