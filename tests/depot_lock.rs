//! Writers of a depot take turns: two `depot add` at the same moment are
//! judged one after the other (the second against the depot the first
//! left), so neither upload is lost silently. Temporary files a killed
//! writer left behind are reported by `depot check` and removed by the
//! next `depot add` (and by `pack` in its output directory), while one a
//! live writer holds is kept.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{demo_lab, manifest, patchdeck, write_patch};

fn spawn_add(lab: &str, file: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .env_remove("PATCHDECK_LAB")
        .args(["depot", "add", file.to_str().unwrap(), "--lab", lab])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `depot add` of each file at the same moment; their outputs.
fn race(lab: &str, files: &[PathBuf]) -> Vec<Output> {
    let children: Vec<_> = files.iter().map(|f| spawn_add(lab, f)).collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Exactly one succeeded and the other was refused with exit `code`
/// saying `says`, as a serial run refuses it; the index of the winner.
fn one_wins(outs: &[Output], code: i32, says: &str) -> usize {
    let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
    let won: Vec<usize> = (0..outs.len()).filter(|&i| codes[i] == Some(0)).collect();
    let errs: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(won.len(), 1, "exactly one add succeeds: {codes:?} {errs:?}");
    let lost = 1 - won[0];
    assert_eq!(codes[lost], Some(code), "{errs:?}");
    assert!(errs[lost].contains(says), "{errs:?}");
    won[0]
}

#[test]
fn two_adds_at_once_are_judged_one_after_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    common::allow_unsigned(Path::new(&lab));
    let depot = Path::new(&lab).join("depot");
    for round in 0..6 {
        // The same id, different content: one is kept, the other refused.
        let id = format!("Z_{round}");
        let files: Vec<PathBuf> = ["a", "b"]
            .iter()
            .map(|side| {
                let dir = tmp.path().join(format!("{side}{round}"));
                std::fs::create_dir_all(&dir).unwrap();
                let payload = format!("{side} {round}");
                write_patch(
                    &dir,
                    &id,
                    &manifest(&id, ""),
                    &[("opt/x", payload.as_bytes())],
                )
            })
            .collect();
        let won = one_wins(&race(&lab, &files), 1, "already has a different");
        assert_eq!(
            std::fs::read(depot.join(format!("{id}.patch"))).unwrap(),
            std::fs::read(&files[won]).unwrap(),
            "the depot holds the upload that was reported added"
        );

        // Ids differing only in case: one is kept.
        let ids = [format!("Q_{round}"), format!("q_{round}")];
        let dir = tmp.path().join(format!("case{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        let files: Vec<PathBuf> = ids
            .iter()
            .map(|id| write_patch(&dir, id, &manifest(id, ""), &[("opt/y", id.as_bytes())]))
            .collect();
        let won = one_wins(&race(&lab, &files), 2, "only in case");
        assert!(depot.join(format!("{}.patch", ids[won])).exists());
        assert!(!depot.join(format!("{}.patch", ids[1 - won])).exists());
    }
}

#[test]
fn leftover_temporary_files_are_reported_then_removed_and_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    common::allow_unsigned(Path::new(&lab));
    let depot = Path::new(&lab).join("depot");
    // What `kill -9` mid-copy leaves; and one a live writer still holds.
    std::fs::write(depot.join(".patchdeck-Ab12Cd"), b"half a patch").unwrap();
    let live = std::fs::File::create(depot.join(".patchdeck-LiVe99")).unwrap();
    live.lock().unwrap();

    let out = patchdeck(&["depot", "check", "--json", "--lab", &lab]);
    let report = common::json(&out);
    assert_eq!(
        report["leftovers"],
        serde_json::json!([".patchdeck-Ab12Cd"])
    );
    let out = patchdeck(&["depot", "check", "--lab", &lab]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(".patchdeck-Ab12Cd: temporary file"),
        "{out:?}"
    );

    let made = tmp.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    let file = common::good(&made, "NEW_1", "");
    let out = patchdeck(&["depot", "add", file.to_str().unwrap(), "--lab", &lab]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !depot.join(".patchdeck-Ab12Cd").exists(),
        "the leftover is removed"
    );
    assert!(
        depot.join(".patchdeck-LiVe99").exists(),
        "a live writer's file is kept"
    );
    assert!(
        depot.join(".patchdeck-index.sqlite").exists(),
        "the index is kept"
    );
    drop(live);

    // pack clears a killed pack's temporary file from its output directory.
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join(".patchdeck-Zz9Yy8"), b"half").unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("files/opt")).unwrap();
    std::fs::write(src.join("files/opt/x"), b"x").unwrap();
    std::fs::write(src.join("PATCH.toml"), manifest("PK_1", "")).unwrap();
    let out = patchdeck(&[
        "pack",
        src.to_str().unwrap(),
        "-o",
        out_dir.join("PK_1.patch").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["PK_1.patch"]);
}
