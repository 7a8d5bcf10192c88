//! End to end in a real terminal: the real binary under tmux, driven with
//! send-keys and read with capture-pane. tmux is required (scripts/test
//! installs it); without it these tests fail and say so.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tmux::Tmux;

fn demo_lab(dir: &Path) -> String {
    let lab = dir.join("lab").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["demo", "--lab", &lab, "--patches", "150"])
        .output()
        .unwrap();
    assert!(out.status.success());
    lab
}

#[test]
fn search_mark_filter_and_quit_restores_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let command = format!(
        "TERM=xterm LC_ALL=C.UTF-8 {} --lab {lab} --theme mono; echo patchdeck-exited-$?; sleep 60",
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("flow", &command, 80, 24);
    t.wait("the depot pane", |s| s.contains("Depot 150/150"));
    assert!(
        t.alternate_screen(),
        "the console uses the alternate screen"
    );

    t.keys(&["/"]);
    t.literal("jwt");
    let s = t.wait("search results", |s| {
        s.contains("match(es)") && !s.contains("Depot 150/150")
    });
    assert!(s.contains("JWT"), "{s}");
    t.keys(&["Enter", "Space"]);
    t.wait("one mark", |s| s.contains("1 marked"));
    t.keys(&["Escape"]);
    t.wait("the search to clear", |s| s.contains("Depot 150/150"));
    t.keys(&["2"]);
    t.wait("the filter pane", |s| {
        s.contains("Categories & filters") && s.contains("critical_patch")
    });
    t.keys(&["e"]);
    t.literal("kernel,hot=true");
    t.keys(&["Enter"]);
    let s = t.wait("the filtered depot", |s| {
        s.contains("filter kernel,hot=true")
    });
    assert!(s.contains("KRN_"), "{s}");
    assert!(!s.contains("GW_"), "{s}");
    t.keys(&["?"]);
    t.wait("the help", |s| {
        s.contains("Keys") && s.contains("mark or unmark")
    });
    // ESC followed at once by a key reads as Alt+key, as on any terminal.
    t.keys(&["Escape"]);
    t.wait("the help to close", |s| !s.contains("this help"));
    t.keys(&["q"]);
    let s = t.wait("the console to exit", |s| s.contains("patchdeck-exited-0"));
    assert!(!t.alternate_screen(), "terminal restored after quit:\n{s}");
}

#[test]
fn first_run_creates_the_demo_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("fresh");
    let command = format!(
        "PATCHDECK_LAB={} TERM=xterm LC_ALL=C.UTF-8 {}; echo patchdeck-exited-$?; sleep 60",
        lab.display(),
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("first", &command, 80, 24);
    t.wait("the demo depot", |s| s.contains("Depot 300/300"));
    t.keys(&["q"]);
    t.wait("exit", |s| s.contains("patchdeck-exited-0"));
    assert!(lab.join("fleet.toml").is_file());
}

/// A demo lab tuned for watching rollouts: quick health checks, slow edge
/// members (so there is time to watch and pause), and a db member whose
/// install fails. Returns the lab and a kernel patch every node can take.
fn operations_lab(dir: &Path) -> (String, String) {
    let lab = demo_lab(dir);
    let fleet = Path::new(&lab).join("fleet.toml");
    let mut text = std::fs::read_to_string(&fleet)
        .unwrap()
        .replace("min_healthy_secs = 2", "min_healthy_secs = 0");
    for (node, knob) in [
        ("edge-1_1", "slow_ms = 700"),
        ("edge-2_1", "slow_ms = 1500"),
        ("edge-2_2", "slow_ms = 1500"),
        ("db-1_3", "fail_install = true"),
    ] {
        let at = text.find(&format!("id = \"{node}\"")).unwrap();
        let end = text[at..]
            .find("[[node]]")
            .map(|i| at + i)
            .unwrap_or(text.len());
        text = format!("{}[node.demo]\n{knob}\n\n{}", &text[..end], &text[end..]);
    }
    std::fs::write(&fleet, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args([
            "depot", "list", "--json", "--filter", "kernel", "--lab", &lab,
        ])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let patch = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["requires"].as_array().unwrap().is_empty() && r.get("base_version").is_none())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (lab, patch)
}

#[test]
fn replicate_roll_out_pause_resume_and_a_failure_from_the_console() {
    let tmp = tempfile::tempdir().unwrap();
    let (lab, patch) = operations_lab(tmp.path());
    let command = format!(
        "TERM=xterm LC_ALL=C.UTF-8 {} --lab {lab} --theme mono; echo patchdeck-exited-$?; sleep 120",
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("ops", &command, 80, 24);
    t.wait("the depot pane", |s| s.contains("Depot 150/150"));

    // Find and mark the patch.
    t.keys(&["/"]);
    t.literal(&patch);
    t.wait("the search", |s| {
        s.contains("match(es)") && s.contains(&patch)
    });
    t.keys(&["Enter", "Space"]);
    t.wait("one mark", |s| s.contains("1 marked"));

    // Pick all data centers, preview, then replicate; watch N/M reach 20/20.
    t.keys(&["R"]);
    t.wait("the target picker", |s| s.contains("> all data centers"));
    t.keys(&["Enter"]);
    let s = t.wait("the replicate preview", |s| {
        s.contains("Replicate") && s.contains("to copy")
    });
    assert!(
        s.contains("east: 11 node(s)") && s.contains("west: 9 node(s)"),
        "{s}"
    );
    t.keys(&["y"]);
    t.keys(&["3"]);
    t.wait("replication to finish", |s| {
        s.contains("20/20") && s.contains("east 11/11")
    });

    // Roll out on edge: a typed confirmation, then group A, then group B.
    t.keys(&["4"]);
    t.wait("the groups pane", |s| {
        s.contains("Cluster groups") && s.contains("edge")
    });
    t.keys(&["r"]);
    t.wait("the rollout preview", |s| {
        s.contains("Roll out on edge") && s.contains("Type edge")
    });
    t.literal("edge");
    t.keys(&["Enter"]);
    t.wait("group A at work", |s| {
        s.contains("rollout 1 running")
            && (s.contains("edge-1_1:draining")
                || s.contains("edge-1_1:drained")
                || s.contains("edge-1_1:installing"))
    });
    t.wait("group B at work", |s| {
        s.contains("edge-2_1:draining")
            || s.contains("edge-2_1:drained")
            || s.contains("edge-2_1:installing")
    });

    // Pause (it stops between steps), then resume to the end.
    t.keys(&["p"]);
    t.wait("the pause", |s| s.contains("rollout 1 paused"));
    // The pause notice covers the lower groups once the pane lists four
    // clusters; close it to see them.
    t.keys(&["Escape"]);
    let s = t.wait("the paused groups", |s| {
        s.contains("rollout 1 paused") && s.contains("group B")
    });
    assert!(s.contains("group B"), "{s}");
    t.keys(&["u"]);
    t.wait("the rollout to finish", |s| s.contains("rollout 1 done"));

    // A rollout on db fails on the member whose install fails; with the
    // default policy its group is rolled back and every group serves.
    t.keys(&["j", "j"]);
    t.wait("db selected", |s| s.contains("> db"));
    t.keys(&["r"]);
    let s = t.wait("the db preview", |s| s.contains("Type db"));
    assert!(s.contains("On failure: rollback"), "{s}");
    t.literal("db");
    t.keys(&["Enter"]);
    let s = t.wait("the failure, rolled back", |s| {
        s.contains("rollout 2 failed") && s.contains("rolled back and serving")
    });
    assert!(s.contains("install failed"), "{s}");
    // The pane learns the members' service from its periodic look.
    t.wait("every db member serving again", |s| {
        ["db-1_1", "db-1_2", "db-1_3"]
            .iter()
            .all(|n| s.contains(&format!("{n}:serving")))
    });
    let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["nodes", "--json", "--lab", &lab])
        .output()
        .unwrap();
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["service"] == "up"),
        "every group serving: {nodes}"
    );

    t.keys(&["q"]);
    let s = t.wait("the console to exit", |s| s.contains("patchdeck-exited-0"));
    assert!(!t.alternate_screen(), "terminal restored after quit:\n{s}");
}

#[test]
fn serial_terminals_get_ascii_and_no_colour() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let command = format!(
        "TERM=vt220 LC_ALL=C {} --lab {lab}; echo patchdeck-exited-$?; sleep 60",
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("serial", &command, 80, 24);
    let s = t.wait("the depot pane", |s| s.contains("Depot 150/150"));
    assert!(
        s.lines().nth(1).is_some_and(|l| l.starts_with("+ Depot")),
        "ASCII borders:\n{s}"
    );
    assert!(s.is_ascii(), "nothing but ASCII on a vt220:\n{s}");
    let colours = t.cmd(&["capture-pane", "-p", "-e", "-t", "t"]);
    let escaped = String::from_utf8_lossy(&colours.stdout);
    // tmux re-renders cells, writing 39/49 (default colours) itself; any
    // other colour parameter would mean a coloured cell.
    let coloured = sgr_params(&escaped)
        .into_iter()
        .any(|p| matches!(p, 30..=38 | 40..=48 | 90..=97 | 100..=107));
    assert!(!coloured, "no colour codes:\n{escaped}");
    t.keys(&["q"]);
    t.wait("exit", |s| s.contains("patchdeck-exited-0"));
}

/// Every SGR parameter (`ESC [ p;p;... m`) in `text`.
fn sgr_params(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in text.split("\x1b[").skip(1) {
        let Some(end) = part.find(|c: char| !(c.is_ascii_digit() || c == ';')) else {
            continue;
        };
        if part[end..].starts_with('m') {
            out.extend(part[..end].split(';').filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

#[test]
fn user_key_bindings_from_the_config_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let config = tmp.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("keys.toml"), "[global]\nquit = [\"ctrl-q\"]\n").unwrap();
    let command = format!(
        "PATCHDECK_CONFIG={} TERM=xterm LC_ALL=C.UTF-8 {} --lab {lab} --theme mono; echo patchdeck-exited-$?; sleep 60",
        config.display(),
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("keys", &command, 80, 24);
    t.wait("the depot pane", |s| s.contains("Depot 150/150"));
    t.keys(&["q", "?"]);
    t.wait("the help, listing the new key", |s| {
        s.contains("ctrl-q") && s.contains("quit")
    });
    assert!(
        !t.screen().contains("patchdeck-exited"),
        "q no longer quits"
    );
    t.keys(&["Escape"]);
    t.wait("the help to close", |s| !s.contains("this help"));
    t.keys(&["C-q"]);
    t.wait("ctrl-q to quit", |s| s.contains("patchdeck-exited-0"));
}

/// A kernel patch with prerequisites (each met by the patch itself), and
/// the whole selection a rollout of it installs.
fn patch_with_prerequisites(lab: &str) -> (String, Vec<String>) {
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
            .args(args)
            .args(["--lab", lab])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let rows = cli(&["depot", "list", "--json", "--filter", "kernel"]);
    for r in rows.as_array().unwrap() {
        if r["requires"].as_array().is_none_or(|a| a.is_empty()) {
            continue;
        }
        let id = r["id"].as_str().unwrap();
        let sel = cli(&["select", id, "--json"]);
        let picked = sel["patches"].as_array().unwrap();
        let plain = picked
            .iter()
            .all(|p| !p["reason"].as_str().unwrap_or("").contains("supersedes"));
        let based = picked.iter().any(|p| {
            rows.as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == p["id"] && r.get("base_version").is_some_and(|b| !b.is_null()))
        });
        if sel["problems"].as_array().unwrap().is_empty() && plain && !based && picked.len() > 1 {
            let ids = picked
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string())
                .collect();
            return (id.to_string(), ids);
        }
    }
    panic!("no kernel patch with prerequisites in the demo depot");
}

#[test]
fn mark_replicate_and_roll_out_a_patch_with_prerequisites() {
    let tmp = tempfile::tempdir().unwrap();
    let (lab, _) = operations_lab(tmp.path());
    let (patch, all) = patch_with_prerequisites(&lab);
    let command = format!(
        "TERM=xterm LC_ALL=C.UTF-8 {} --lab {lab} --theme mono; echo patchdeck-exited-$?; sleep 120",
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("prereq", &command, 80, 24);
    t.wait("the depot pane", |s| s.contains("Depot 150/150"));
    t.keys(&["/"]);
    t.literal(&patch);
    t.wait("the search", |s| {
        s.contains("match(es)") && s.contains(&patch)
    });
    t.keys(&["Enter", "Space"]);
    t.wait("one mark", |s| s.contains("1 marked"));

    // R copies what the rollout will need: the prerequisites too.
    t.keys(&["R"]);
    t.wait("the target picker", |s| s.contains("> all data centers"));
    t.keys(&["Enter"]);
    let s = t.wait("the replicate preview", |s| {
        s.contains("Replicate") && s.contains("to copy")
    });
    for p in &all {
        assert!(s.contains(p.as_str()), "{p} is replicated too:\n{s}");
    }
    t.keys(&["y"]);
    t.keys(&["3"]);
    t.wait("replication of every patch to finish", |s| {
        all.iter().all(|p| {
            s.lines()
                .any(|l| l.contains(p.as_str()) && l.contains("20/20"))
        })
    });

    // r rolls it out on edge, to the end.
    t.keys(&["4"]);
    t.wait("the groups pane", |s| {
        s.contains("Cluster groups") && s.contains("edge")
    });
    // The preview's readiness comes from the console's periodic look at
    // the nodes: reopen it until that look has seen the replication.
    let start = Instant::now();
    loop {
        t.keys(&["r"]);
        let s = t.wait("the rollout preview", |s| {
            s.contains("Roll out on edge") && s.contains("Type edge")
        });
        if !s.contains("NOT READY") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never ready:\n{s}"
        );
        t.keys(&["Escape"]);
        t.wait("the preview to close", |s| !s.contains("Roll out on edge"));
    }
    t.literal("edge");
    t.keys(&["Enter"]);
    t.wait("the rollout to finish", |s| s.contains("rollout 1 done"));
    let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args([
            "list",
            "--nodes",
            "edge-1_1,edge-2_4",
            "--json",
            "--lab",
            &lab,
        ])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in &all {
        let applied = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["patch"] == p.as_str() && r["state"] == "applied")
            .count();
        assert_eq!(applied, 2, "{p} applied on both: {rows}");
    }
    t.keys(&["q"]);
    t.wait("the console to exit", |s| s.contains("patchdeck-exited-0"));
}

#[test]
fn a_refused_rollout_shows_its_whole_reason_on_the_screen() {
    let tmp = tempfile::tempdir().unwrap();
    let (lab, _) = operations_lab(tmp.path());
    let (patch, all) = patch_with_prerequisites(&lab);
    let command = format!(
        "TERM=xterm LC_ALL=C.UTF-8 {} --lab {lab} --theme mono; echo patchdeck-exited-$?; sleep 120",
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("refusal", &command, 80, 24);
    t.wait("the depot pane", |s| s.contains("Depot 150/150"));
    t.keys(&["/"]);
    t.literal(&patch);
    t.wait("the search", |s| {
        s.contains("match(es)") && s.contains(&patch)
    });
    t.keys(&["Enter", "Space"]);
    t.wait("one mark", |s| s.contains("1 marked"));
    // Nothing replicated: the rollout is refused, and the screen says why.
    t.keys(&["4"]);
    t.wait("the groups pane", |s| {
        s.contains("Cluster groups") && s.contains("edge")
    });
    t.keys(&["r"]);
    t.wait("the rollout preview", |s| s.contains("Type edge"));
    t.literal("edge");
    t.keys(&["Enter"]);
    let s = t.wait("the refusal", |s| {
        s.contains("FAILED") && s.contains("not every member")
    });
    assert!(s.contains("not staged"), "{s}");
    // Scrolled to its end: the command that fixes it, whole.
    let s = t.wait("the replicate advice", |s| {
        s.contains("patchdeck replicate")
    });
    assert!(s.contains(all[0].as_str()), "{s}");
    t.keys(&["Escape", "q"]);
    t.wait("the console to exit", |s| s.contains("patchdeck-exited-0"));
}
