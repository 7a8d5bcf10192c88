//! The command line by the ecosystem's conventions: completion scripts and
//! manual pages generated from the parser itself, and logging levels.

use std::process::Command;

fn patchdeck(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn completions_cover_every_verb_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = patchdeck(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for verb in ["install", "rollback", "rollout", "replicate", "completions"] {
            assert!(text.contains(verb), "{shell} completion lacks {verb}");
        }
    }
    let out = patchdeck(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is bad usage");
}

#[test]
fn man_pages_come_from_the_parser() {
    let out = patchdeck(&["man"]);
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH patchdeck"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = patchdeck(&["man", "-o", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for page in ["patchdeck.1", "patchdeck-install.1", "patchdeck-rollout.1"] {
        assert!(dir.path().join(page).is_file(), "{page} written");
    }
}

#[test]
fn a_bad_log_level_is_bad_usage() {
    let out = patchdeck(&[
        "--log-level",
        "loud!!",
        "depot",
        "list",
        "--depot",
        "/nonexistent",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-level"));
}

#[test]
fn each_lifecycle_verb_documents_only_its_own_flags() {
    let help = |verb: &str| {
        let out = patchdeck(&[verb, "--help"]);
        assert!(out.status.success(), "{verb}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stage = help("stage");
    assert!(stage.contains("none -> staged"), "{stage}");
    for flag in [
        "--no-save",
        "--require-replicated",
        "--all-at-once",
        "--theme",
    ] {
        assert!(!stage.contains(flag), "stage --help shows {flag}:\n{stage}");
    }
    let install = help("install");
    for flag in [
        "--no-save",
        "--require-replicated",
        "--all-at-once",
        "--reason",
    ] {
        assert!(install.contains(flag), "install --help lacks {flag}");
    }
    for verb in ["rollback", "remove"] {
        let text = help(verb);
        assert!(text.contains("--all-at-once"), "{verb}: {text}");
        assert!(!text.contains("--no-save"), "{verb}: {text}");
    }
    let commit = help("commit");
    assert!(
        !commit.contains("--all-at-once") && !commit.contains("--no-save"),
        "{commit}"
    );
}
