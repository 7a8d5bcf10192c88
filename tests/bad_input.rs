//! Bad input is exit 2 for every verb that takes patch ids: an id the depot
//! does not have, and an id whose file is in the depot but broken, named as
//! broken with its reason rather than as unknown.

use std::process::Command;

fn patchdeck(lab: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(args)
        .args(["--lab", lab])
        .output()
        .unwrap()
}

#[test]
fn unknown_and_broken_patch_ids_are_bad_input_for_every_verb() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("lab");
    let lab = lab.to_str().unwrap();
    let out = patchdeck(lab, &["demo", "--patches", "40"]);
    assert!(out.status.success(), "{out:?}");
    std::fs::write(
        tmp.path().join("lab/depot/ZZ_9001.patch"),
        b"this is not a tar archive",
    )
    .unwrap();
    let verbs: &[&[&str]] = &[
        &["select"],
        &["stage", "--nodes", "gw-east-1"],
        &["install", "--nodes", "gw-east-1"],
        &["replicate", "--nodes", "gw-east-1"],
        &["rollout", "start", "--cluster", "app"],
    ];
    for verb in verbs {
        for (id, says) in [("NOPE_1", "neither a patch id"), ("ZZ_9001", "broken")] {
            // The id goes after the verb's words (`rollout start`), before its flags.
            let words = verb.iter().take_while(|w| !w.starts_with("--")).count();
            let mut args: Vec<&str> = verb[..words].to_vec();
            args.push(id);
            args.extend_from_slice(&verb[words..]);
            let out = patchdeck(lab, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(id) && stderr.contains(says),
                "{args:?}: {stderr}"
            );
        }
    }
}
