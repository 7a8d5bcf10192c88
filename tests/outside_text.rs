//! Text from outside (a patch's title and description) never reaches a
//! terminal raw through a verb's text output: control characters are shown
//! as `^[`, `^J`, … by the one shared function, so a table keeps one row
//! per patch and nothing can move the cursor or retitle a window.

mod common;

use std::path::Path;

use common::{demo_lab, patchdeck, write_patch};

const EVIL: &str = "Evil \\u001b[2J \\n second \\r back \\b bell \\u0007 end \\u009b31m";

/// Bytes below 0x20 other than line ends, and C1 controls (as UTF-8).
fn raw_controls(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .filter(|&c| c != '\n' && c.is_control())
        .map(|c| format!("{:?}", c))
        .collect()
}

#[test]
fn control_characters_in_a_manifest_are_shown_not_obeyed() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    common::allow_unsigned(Path::new(&lab));
    let made = tmp.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    let text = common::manifest("CTL_1", &format!("description = \"{EVIL}\""))
        .replace("title = \"Fix CTL_1\"", &format!("title = \"{EVIL}\""));
    let file = write_patch(&made, "CTL_1", &text, &[("opt/ctl", b"ctl")]);
    let out = patchdeck(&["depot", "add", file.to_str().unwrap(), "--lab", &lab]);
    assert!(out.status.success(), "{out:?}");

    let count = common::json(&patchdeck(&["depot", "list", "--json", "--lab", &lab]))
        .as_array()
        .unwrap()
        .len();
    let verbs: &[&[&str]] = &[
        &["depot", "list"],
        &["depot", "list", "--query", "Evil"],
        &["depot", "check"],
        &["select", "CTL_1"],
        &["select", "CTL_1", "--match-target", "gw-east-1"],
        &["stage", "CTL_1", "--nodes", "gw-east-1"],
        &["list", "--nodes", "gw-east-1"],
        &["history", "--nodes", "gw-east-1"],
        &["updates", "--nodes", "gw-east-1"],
    ];
    for verb in verbs {
        let mut args = verb.to_vec();
        args.extend(["--lab", &lab]);
        let out = patchdeck(&args);
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let bad = raw_controls(bytes);
            assert!(bad.is_empty(), "{verb:?} {stream}: raw {bad:?}");
        }
        if *verb == ["depot", "list"] {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                shown.lines().count(),
                count + 1,
                "a header and one row per patch"
            );
            assert!(
                shown.contains("Evil ^[[2J ^J second ^M back ^H bell ^G end"),
                "{shown}"
            );
        }
    }
}
