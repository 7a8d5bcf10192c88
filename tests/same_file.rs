//! A verb never writes its output over a file it reads: `prepare S -o S`
//! used to replace the snapshot it prepared from. Each such output is bad
//! input (exit 2), however the path is spelt, and the input is unchanged.

mod common;

use std::path::Path;

use common::{demo_lab, manifest, patchdeck};

fn refused(args: &[&str], says: &str) {
    let out = patchdeck(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
}

#[test]
fn prepare_does_not_overwrite_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let snap = tmp.path().join("site.snap");
    let s = snap.to_str().unwrap();
    let out = patchdeck(&["snapshot", "--nodes", "gw-east-1", "-o", s, "--lab", &lab]);
    assert!(out.status.success(), "{out:?}");
    let before = std::fs::read(&snap).unwrap();
    let link = tmp.path().join("link.snap");
    std::os::unix::fs::symlink(&snap, &link).unwrap();
    let other_spelling = format!("{}/./site.snap", tmp.path().display());
    for output in [s, other_spelling.as_str(), link.to_str().unwrap()] {
        refused(
            &["prepare", s, "-o", output, "--lab", &lab],
            "same file as the snapshot",
        );
    }
    assert_eq!(
        std::fs::read(&snap).unwrap(),
        before,
        "the snapshot is unchanged"
    );
}

#[test]
fn snapshot_pack_and_fleet_import_do_not_overwrite_their_inputs() {
    let tmp = tempfile::tempdir().unwrap();

    // fleet import: the inventory is the output.
    let inventory = tmp.path().join("hosts.ini");
    let text = "[web]\ngw-1 ansible_host=10.0.0.1\n";
    std::fs::write(&inventory, text).unwrap();
    let i = inventory.to_str().unwrap();
    refused(
        &[
            "fleet",
            "import",
            "--ansible",
            i,
            "-o",
            i,
            "--force",
            "--default-dc",
            "east",
            "--default-org",
            "retail",
        ],
        "same file as the inventory",
    );
    assert_eq!(std::fs::read_to_string(&inventory).unwrap(), text);

    // pack: the output inside the payload it is packing.
    let dir = tmp.path().join("src");
    std::fs::create_dir_all(dir.join("files/opt")).unwrap();
    std::fs::write(dir.join("files/opt/x"), b"x").unwrap();
    std::fs::write(dir.join("PATCH.toml"), manifest("PK_1", "")).unwrap();
    let inside = dir.join("files/PK_1.patch");
    refused(
        &[
            "pack",
            dir.to_str().unwrap(),
            "-o",
            inside.to_str().unwrap(),
        ],
        "inside the payload directory",
    );
    assert!(!inside.exists());

    // snapshot: the output inside the node's own store.
    let lab = demo_lab(tmp.path());
    let root = Path::new(&lab).join("nodes/gw-east-1");
    let store = root.join("var/lib/patchdeck/site.snap");
    refused(
        &[
            "snapshot",
            "--root",
            root.to_str().unwrap(),
            "-o",
            store.to_str().unwrap(),
        ],
        "inside the node's store",
    );
    assert!(!store.exists());
}
