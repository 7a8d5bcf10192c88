//! Rollouts end to end: the real binary on a demo lab, its `edge` cluster
//! (members edge-1_1..1_4 on site 1 form group A, edge-2_1..2_4 on site 2
//! group B, two at a time). Dry run, a full run, a failure with and without
//! auto-rollback, abort, pause and resume from another process, two
//! consoles starting at once, and a console killed at random moments.
//!
//! Node states are compared by `Node::digest` (files and database meaning,
//! no timestamps). The lab's clusters get `min_healthy_secs = 0` and a short
//! health deadline so runs take well under a second unless a member is
//! slowed down on purpose with the `slow_ms` demo knob.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use patchdeck::engine::node::{Node, Service};

const A: [&str; 4] = ["edge-1_1", "edge-1_2", "edge-1_3", "edge-1_4"];
const B: [&str; 4] = ["edge-2_1", "edge-2_2", "edge-2_3", "edge-2_4"];

fn members() -> Vec<&'static str> {
    A.iter().chain(B.iter()).copied().collect()
}

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_patchdeck")
}

fn run(lab: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("patchdeck")
        .expect("binary")
        .env_remove("PATCHDECK_LAB")
        .args(args)
        .arg("--lab")
        .arg(lab)
        .output()
        .expect("run patchdeck")
}

/// Starts the binary without waiting for it.
fn spawn(lab: &Path, args: &[&str]) -> Child {
    std::process::Command::new(exe())
        .env_remove("PATCHDECK_LAB")
        .args(args)
        .arg("--lab")
        .arg(lab)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn patchdeck")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// A demo lab whose `edge` members all have a plain gateway patch staged.
/// Returns the lab and the patch id.
fn lab_with_patch(dir: &Path) -> (PathBuf, String) {
    let lab = dir.join("lab");
    let out = Command::cargo_bin("patchdeck")
        .expect("binary")
        .arg("demo")
        .arg("--lab")
        .arg(&lab)
        .args(["--patches", "120"])
        .output()
        .expect("demo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fleet = lab.join("fleet.toml");
    let t = std::fs::read_to_string(&fleet).expect("fleet");
    assert!(t.contains("min_healthy_secs = 2") && t.contains("health_deadline_secs = 60"));
    let t = t
        .replace("min_healthy_secs = 2", "min_healthy_secs = 0")
        .replace("health_deadline_secs = 60", "health_deadline_secs = 3");
    std::fs::write(&fleet, t).expect("fleet");
    let patch = plain_gateway_patch(&lab);
    let out = run(
        &lab,
        &[
            "replicate",
            &patch,
            "--nodes",
            &members().join(","),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    (lab, patch)
}

/// A gateway patch with no prerequisites, base version or supersedes.
fn plain_gateway_patch(lab: &Path) -> String {
    let rows = json(&run(
        lab,
        &["depot", "list", "--json", "--filter", "gateway"],
    ));
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| {
            r["requires"].as_array().is_some_and(|a| a.is_empty())
                && r.get("base_version").is_none()
                && r["supersedes"].as_array().is_some_and(|a| a.is_empty())
        })
        .and_then(|r| r["id"].as_str())
        .expect("a plain gateway patch")
        .to_string()
}

/// Adds `[node.demo]` knobs (e.g. `slow_ms = 200`) to nodes of fleet.toml.
fn knobs(lab: &Path, nodes: &[&str], knob: &str) {
    let path = lab.join("fleet.toml");
    let t = std::fs::read_to_string(&path).expect("fleet");
    let mut out = String::new();
    for (i, block) in t.split("[[node]]").enumerate() {
        if i > 0 {
            out.push_str("[[node]]");
        }
        out.push_str(block);
        if nodes
            .iter()
            .any(|n| block.contains(&format!("id = \"{n}\"\n")))
        {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            if !block.contains("[node.demo]") {
                out.push_str("\n[node.demo]\n");
            }
            out.push_str(knob);
            out.push_str("\n\n");
        }
    }
    std::fs::write(&path, out).expect("fleet");
    assert!(
        run(lab, &["nodes"]).status.success(),
        "fleet.toml still parses"
    );
}

/// Sets keys of the `edge` cluster (e.g. a drain command).
fn cluster_keys(lab: &Path, lines: &str) {
    let path = lab.join("fleet.toml");
    let t = std::fs::read_to_string(&path).expect("fleet");
    let t = t.replacen("id = \"edge\"\n", &format!("id = \"edge\"\n{lines}\n"), 1);
    std::fs::write(&path, t).expect("fleet");
    assert!(run(lab, &["nodes"]).status.success());
}

fn node_root(lab: &Path, node: &str) -> PathBuf {
    lab.join("nodes").join(node)
}

fn digest(lab: &Path, node: &str) -> String {
    Node::open(&node_root(lab, node), node)
        .and_then(|n| n.digest())
        .expect("digest")
}

fn digests(lab: &Path, nodes: &[&str]) -> BTreeMap<String, String> {
    nodes
        .iter()
        .map(|n| (n.to_string(), digest(lab, n)))
        .collect()
}

/// Service state of each node, from `nodes --json`.
fn services(lab: &Path) -> BTreeMap<String, String> {
    json(&run(lab, &["nodes", "--json"]))
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or_default().to_string(),
                n["service"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The patch's state on each node.
fn states(lab: &Path, patch: &str) -> BTreeMap<String, String> {
    let list = json(&run(
        lab,
        &["list", "--nodes", &members().join(","), "--json"],
    ));
    members()
        .iter()
        .map(|n| {
            let state = list
                .as_array()
                .expect("list")
                .iter()
                .find(|r| r["node"] == *n && r["patch"] == patch)
                .and_then(|r| r["state"].as_str())
                .unwrap_or("none")
                .to_string();
            (n.to_string(), state)
        })
        .collect()
}

fn status(lab: &Path) -> Value {
    let out = run(lab, &["rollout", "status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    json(&out)
}

/// Kind, node and state of every step.
fn steps(st: &Value) -> Vec<(String, String, String)> {
    st["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or_default().to_string(),
                s.get("node")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                s["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A rollout that has ended shows no step as pending or running, and no
/// group as in progress or interrupted (DESIGN: after a rollout ends, no
/// group or step of it is shown as in progress or pending-next).
fn assert_nothing_left_in_flight(st: &Value) {
    let open: Vec<_> = steps(st)
        .into_iter()
        .filter(|(_, _, state)| state == "pending" || state == "running")
        .collect();
    assert!(open.is_empty(), "steps left open: {open:?}\n{st}");
    assert!(st["current_step"].is_null(), "{st}");
    for g in st["groups"].as_array().expect("groups") {
        let state = g["state"].as_str().unwrap_or("");
        assert!(
            !["in progress", "interrupted", "waiting", "paused"].contains(&state),
            "{g}"
        );
    }
}

fn wait(child: Child) -> Output {
    child.wait_with_output().expect("wait")
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    let before = digests(&lab, &members());
    let out = run(
        &lab,
        &["rollout", "start", "--cluster", "edge", &patch, "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains(&format!("group A: {}", A.join(" ")))
            && s.contains(&format!("group B: {}", B.join(" ")))
            && s.contains(&format!("patchdeck install {patch} --nodes edge-2_4"))
            && s.contains("drain edge-1_1")
            && s.contains("healthy")
            && s.contains("dry run: nothing was changed"),
        "{s}"
    );
    // Group A is drained, patched and restored before group B's first drain.
    let line = |needle: &str| {
        s.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the plan:\n{s}"))
    };
    assert!(line("restore edge-1_4") < line("drain edge-2_1"), "{s}");
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "edge",
            &patch,
            "--dry-run",
            "--json",
        ],
    );
    let plan = json(&out);
    assert_eq!(plan["cluster"], "edge");
    assert_eq!(plan["groups"].as_array().map(Vec::len), Some(2));
    assert!(plan["steps"].as_array().is_some_and(|s| s.len() > 20));

    assert_eq!(digests(&lab, &members()), before, "no node changed");
    assert!(services(&lab).values().all(|s| s == "up"));
    let out = run(&lab, &["rollout", "status"]);
    assert_eq!(out.status.code(), Some(1), "no rollout was recorded");
    assert!(text(&out.stderr).contains("no rollout"));
}

#[test]
fn a_full_rollout_ends_done_with_every_member_patched_and_serving() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    let out = run(&lab, &["rollout", "start", "--cluster", "edge", &patch]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("rollout 1 on edge: done"));
    assert!(states(&lab, &patch).values().all(|s| s == "applied"));
    assert!(services(&lab).values().all(|s| s == "up"));

    let st = status(&lab);
    assert_eq!(st["id"], 1);
    assert_eq!(st["cluster"], "edge");
    assert_eq!(st["state"], "done");
    assert_eq!(st["patches"], serde_json::json!([patch]));
    let groups = st["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["name"], "A");
    assert_eq!(groups[0]["members"], serde_json::json!(A));
    assert_eq!(groups[1]["members"], serde_json::json!(B));
    assert!(groups.iter().all(|g| g["state"] == "done"));
    let all = st["steps"].as_array().expect("steps");
    for (i, s) in all.iter().enumerate() {
        assert_eq!(s["seq"], i + 1, "steps in order, numbered from 1");
        for key in ["kind", "command", "state", "started_at", "ended_at"] {
            assert!(s.get(key).is_some(), "step {i} lacks {key}: {s}");
        }
        assert_eq!(s["state"], "done");
    }
    // Every member: drained, applied, restored, once each.
    for n in members() {
        for kind in ["drain", "apply", "restore"] {
            let count = steps(&st)
                .iter()
                .filter(|(k, node, _)| k == kind && node == n)
                .count();
            assert_eq!(count, 1, "{kind} {n}");
        }
    }
    // The journal is readable by status in text too.
    let out = run(&lab, &["rollout", "status"]);
    assert!(text(&out.stdout).contains("group B: 13/13 steps, done"));
}

#[test]
fn a_failure_halts_the_group_and_abort_restores_service() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &["edge-2_2"], "fail_install = true");
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "edge",
            &patch,
            "--on-failure",
            "halt",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("halted"),
        "{}",
        text(&out.stderr)
    );

    let st = status(&lab);
    assert_eq!(st["state"], "failed");
    let all = steps(&st);
    let state_of = |kind: &str, node: &str| {
        all.iter()
            .find(|(k, n, _)| k == kind && n == node)
            .map(|(_, _, s)| s.clone())
            .unwrap_or_default()
    };
    for n in A {
        assert_eq!(state_of("restore", n), "done", "group A is done");
    }
    assert_eq!(state_of("apply", "edge-2_2"), "failed");
    // Two at a time: edge-2_1 was patched along with the failing member;
    // the next pair was never started.
    assert_eq!(state_of("apply", "edge-2_1"), "done");
    for n in ["edge-2_3", "edge-2_4"] {
        assert_eq!(state_of("apply", n), "pending");
    }
    for n in B {
        assert_eq!(state_of("restore", n), "pending");
    }
    assert_eq!(state_of("consistency", ""), "pending");
    let groups = st["groups"].as_array().expect("groups");
    assert_eq!(
        (groups[0]["state"].as_str(), groups[1]["state"].as_str()),
        (Some("done"), Some("failed"))
    );
    let svc = services(&lab);
    assert!(A.iter().all(|n| svc[*n] == "up"));
    assert!(
        B.iter().all(|n| svc[*n] == "down"),
        "B stays drained: {svc:?}"
    );
    let p = states(&lab, &patch);
    assert!(A.iter().all(|n| p[*n] == "applied"));
    assert_eq!(p["edge-2_2"], "staged");

    // A second rollout is refused while this one is unfinished.
    let out = run(&lab, &["rollout", "start", "--cluster", "edge", &patch]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("unfinished rollout 1") && err.contains("failed"),
        "{err}"
    );

    let out = run(&lab, &["rollout", "abort"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(services(&lab).values().all(|s| s == "up"));
    assert_eq!(status(&lab)["state"], "aborted");
    let out = run(&lab, &["rollout", "resume"]);
    assert_eq!(out.status.code(), Some(1), "an aborted rollout is over");
}

#[test]
fn auto_rollback_puts_the_failed_group_back_as_it_was() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    // B is patched two at a time: edge-2_1 and edge-2_2 get the patch,
    // then edge-2_3 fails next to edge-2_4, which had the patch before the
    // rollout (installed by hand) and must keep it.
    let out = run(&lab, &["install", &patch, "--nodes", "edge-2_4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Its install asked for a service restart, which any restore (the
    // rollout's too) carries out: restart it now, so "before" is settled.
    Node::open(&node_root(&lab, "edge-2_4"), "edge-2_4")
        .and_then(|mut n| n.set_service(Service::Up))
        .expect("restart");
    knobs(&lab, &["edge-2_3"], "fail_install = true");
    let before = digests(&lab, &members());
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "edge",
            &patch,
            "--auto-rollback",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let st = status(&lab);
    assert_eq!(st["state"], "failed");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("edge-2_3") && message.contains("rolled back"),
        "{message}"
    );
    let after = digests(&lab, &B);
    for n in B {
        assert_eq!(after[n], before[n], "{n} is exactly as before the rollout");
    }
    for n in A {
        assert_ne!(digest(&lab, n), before[n], "{n} keeps the patch");
    }
    let p = states(&lab, &patch);
    assert!(A.iter().all(|n| p[*n] == "applied"));
    assert_eq!(p["edge-2_4"], "applied", "installed before the rollout");
    assert!(
        ["edge-2_1", "edge-2_2", "edge-2_3"]
            .iter()
            .all(|n| p[*n] == "staged")
    );
    assert!(services(&lab).values().all(|s| s == "up"));
    // The rollback's steps are journaled after the plan, all done.
    let all = steps(&st);
    let reverts: Vec<&(String, String, String)> =
        all.iter().filter(|(k, _, _)| k == "revert").collect();
    assert!(
        !reverts.is_empty()
            && reverts
                .iter()
                .all(|(_, n, s)| B.contains(&n.as_str()) && s == "done")
    );
}

/// Waits until the newest rollout's journal satisfies `ok`.
fn wait_for(lab: &Path, what: &str, ok: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    loop {
        let out = run(lab, &["rollout", "status", "--json"]);
        if out.status.success() && ok(&json(&out)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pause_from_another_process_then_resume_finishes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &members(), "slow_ms = 150");
    let first = spawn(&lab, &["rollout", "start", "--cluster", "edge", &patch]);
    wait_for(&lab, "group A's first drain", |st| {
        steps(st)
            .iter()
            .any(|(k, _, s)| k == "drain" && s == "done")
    });
    let out = run(&lab, &["rollout", "pause"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pause requested"));
    let out = wait(first);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rollout 1 on edge: paused"),
        "{}",
        text(&out.stdout)
    );
    let st = status(&lab);
    assert_eq!(st["state"], "paused");
    assert!(
        steps(&st).iter().any(|(_, _, s)| s == "pending"),
        "paused before the end"
    );
    // Paused holds the cluster: another start is refused, naming it.
    let out = run(&lab, &["rollout", "start", "--cluster", "edge", &patch]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("unfinished rollout 1 (paused)") && err.contains("rollout resume 1"),
        "{err}"
    );
    let out = run(&lab, &["rollout", "resume"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let st = status(&lab);
    assert_eq!(st["state"], "done");
    assert!(steps(&st).iter().all(|(_, _, s)| s == "done"));
    assert!(states(&lab, &patch).values().all(|s| s == "applied"));
    assert!(services(&lab).values().all(|s| s == "up"));
}

#[test]
fn two_consoles_starting_at_once_exactly_one_proceeds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &members(), "slow_ms = 100");
    let args = ["rollout", "start", "--cluster", "edge", patch.as_str()];
    let (one, two) = (spawn(&lab, &args), spawn(&lab, &args));
    let pids = [one.id(), two.id()];
    let outs = [wait(one), wait(two)];
    let winners: Vec<usize> = (0..2).filter(|&i| outs[i].status.success()).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one proceeds: {:?} / {:?}",
        text(&outs[0].stderr),
        text(&outs[1].stderr)
    );
    let (w, l) = (winners[0], 1 - winners[0]);
    assert_eq!(outs[l].status.code(), Some(1));
    let err = text(&outs[l].stderr);
    // The holder is the winner's command until its runner takes over.
    assert!(
        err.contains("rollout 1") && err.contains("pid"),
        "the refusal names the holder: {err}"
    );
    let _ = pids[w];
    // Only one rollout was recorded, and it finished.
    let st = status(&lab);
    assert_eq!(
        (st["id"].as_i64(), st["state"].as_str()),
        (Some(1), Some("done"))
    );
    assert!(states(&lab, &patch).values().all(|s| s == "applied"));
}

/// Each member's drain and restore command appends a line to this log.
fn count_log(log: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        *counts.entry(line.trim().to_string()).or_default() += 1;
    }
    counts
}

/// The install seq of `patch` on a node (1: the node's first install).
fn install_seq(lab: &Path, node: &str, patch: &str) -> Option<i64> {
    let db = rusqlite::Connection::open(node_root(lab, node).join("var/lib/patchdeck/ipd.sqlite"))
        .expect("ipd");
    db.query_row("SELECT seq FROM patch WHERE id=?1", [patch], |r| r.get(0))
        .expect("seq")
}

/// SIGKILL to `pid` if it is a patchdeck process of this lab (a pid read
/// from a journal or lock file may be stale and reused by now).
fn kill_runner(lab: &Path, pid: i64) {
    let ours = pid > 0
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("patchdeck") && c.contains(&*lab.to_string_lossy())
        });
    if ours {
        // SAFETY: a signal to a process this test started (checked above).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Runs a rollout to its end, killing the console (SIGKILL) at random
/// moments and resuming it each time. Returns the kills, and for each
/// member step, how many kills caught it running (it may run again).
/// `id` is the rollout `start` creates (older ones are finished).
fn run_with_kills(
    lab: &Path,
    start: &[&str],
    id: i64,
    rng: &mut ChaCha8Rng,
) -> (usize, BTreeMap<(String, String), usize>) {
    let mut kills = 0;
    let mut interrupted: BTreeMap<(String, String), usize> = BTreeMap::new();
    for attempt in 0.. {
        assert!(attempt < 80, "the rollout never finished");
        let latest = run(lab, &["rollout", "status", "--json"]);
        let started = latest.status.success() && json(&latest)["id"].as_i64() == Some(id);
        let args: Vec<String> = if started {
            let st = json(&latest);
            if st["state"] == "done" {
                return (kills, interrupted);
            }
            assert!(
                st["state"] == "running" || st["state"] == "pending",
                "only killed, never halted: {st}"
            );
            if st["interrupted"] == false {
                // A runner that took over just as its follower was killed.
                if let Some(pid) = st["pid"].as_i64() {
                    kill_runner(lab, pid);
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            vec!["rollout".into(), "resume".into(), st["id"].to_string()]
        } else {
            start.iter().map(|s| s.to_string()).collect()
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = spawn(lab, &args);
        // Later attempts live longer, so a slow machine still finishes.
        let delay = Duration::from_millis(rng.random_range(20..500) + 40 * attempt);
        std::thread::sleep(delay);
        match child.try_wait().expect("try_wait") {
            Some(_) => {
                let out = wait(child);
                assert!(
                    out.status.success(),
                    "{args:?}: {}\n{}",
                    text(&out.stdout),
                    text(&out.stderr)
                );
            }
            None => {
                // The rollout runs in its own process: kill that one (the
                // command only follows it), then the follower.
                let mut st = run(lab, &["rollout", "status", "--json"]);
                // Until its runner takes it up, a rollout's pid is the
                // command's own: wait for the runner.
                let taking = Instant::now();
                while st.status.success()
                    && json(&st)["state"] == "pending"
                    && json(&st)["interrupted"] == false
                    && taking.elapsed() < Duration::from_secs(10)
                {
                    st = run(lab, &["rollout", "status", "--json"]);
                }
                if st.status.success() {
                    let st = json(&st);
                    if st["id"].as_i64() == Some(id)
                        && let Some(pid) = st["pid"].as_i64()
                    {
                        kill_runner(lab, pid);
                    }
                }
                // A runner that took the cluster but has not recorded
                // itself yet is named by the cluster's lock file.
                let holder = std::fs::read_to_string(lab.join("locks/rollout-edge.lock"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|h| h["pid"].as_i64())
                    .filter(|p| *p > 0);
                if let Some(pid) = holder {
                    kill_runner(lab, pid);
                }
                child.kill().expect("kill");
                let _ = wait(child);
                kills += 1;
                let st = run(lab, &["rollout", "status", "--json"]);
                if st.status.success() {
                    for (kind, node, state) in steps(&json(&st)) {
                        if state == "running" {
                            *interrupted.entry((kind, node)).or_default() += 1;
                        }
                    }
                }
            }
        }
    }
    unreachable!()
}

#[test]
fn a_console_killed_at_random_moments_resumes_to_the_same_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &members(), "slow_ms = 120");
    let log = tmp.path().join("service.log");
    cluster_keys(
        &lab,
        &format!(
            "drain = \"echo drain {{node}} >> {0}\"\nrestore = \"echo restore {{node}} >> {0}\"",
            log.display()
        ),
    );
    // An identical lab, rolled out without interruption.
    let twin = tmp.path().join("twin");
    let status_cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&lab)
        .arg(&twin)
        .status()
        .expect("cp");
    assert!(status_cp.success());
    let start = ["rollout", "start", "--cluster", "edge", patch.as_str()];
    let out = run(&twin, &start);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let uninstall = [
        "rollout",
        "start",
        "--cluster",
        "edge",
        patch.as_str(),
        "--uninstall",
    ];
    let expected_installed = digests(&twin, &members());
    std::fs::remove_file(&log).ok();

    let mut rng = ChaCha8Rng::seed_from_u64(0x6b11);
    let (kills, interrupted) = run_with_kills(&lab, &start, 1, &mut rng);
    assert_eq!(
        digests(&lab, &members()),
        expected_installed,
        "killed {kills} times, the members end exactly as after an uninterrupted rollout"
    );
    assert!(services(&lab).values().all(|s| s == "up"));
    // No finished step ran again: each member was installed once (its
    // first install), and drained and restored once, plus once more for
    // each kill that caught that very step running.
    let counts = count_log(&log);
    for n in members() {
        assert_eq!(install_seq(&lab, n, &patch), Some(1), "{n}");
        for kind in ["drain", "restore"] {
            let ran = counts.get(&format!("{kind} {n}")).copied().unwrap_or(0);
            let may = 1 + interrupted
                .get(&(kind.to_string(), n.to_string()))
                .copied()
                .unwrap_or(0);
            assert!(
                (1..=may).contains(&ran),
                "{kind} {n} ran {ran} times (allowed {may})"
            );
        }
    }
    let st = status(&lab);
    assert_eq!(
        st["steps"].as_array().map(Vec::len),
        status(&twin)["steps"].as_array().map(Vec::len),
        "no step was added or repeated"
    );

    // The same machinery backwards: uninstall, killed at random moments.
    let out = run(&twin, &uninstall);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected_removed = digests(&twin, &members());
    let (more, _) = run_with_kills(&lab, &uninstall, 2, &mut rng);
    assert_eq!(digests(&lab, &members()), expected_removed);
    assert!(states(&lab, &patch).values().all(|s| s == "staged"));
    assert!(services(&lab).values().all(|s| s == "up"));
    eprintln!("console killed {kills} times installing, {more} times uninstalling");
    assert!(kills + more >= 10, "only {} kills", kills + more);
}

// ---------------------------------------------------------------------------
// Regressions, each named for the rule it keeps.

/// A patch of the demo depot with prerequisites (none of them with a base
/// version): returns the named patch and the whole selection, in install
/// order.
fn patch_with_prerequisites(lab: &Path) -> (String, Vec<String>) {
    let rows = json(&run(lab, &["depot", "list", "--json"]));
    let rows = rows.as_array().expect("rows");
    let base = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .is_some_and(|r| r.get("base_version").is_some_and(|b| !b.is_null()))
    };
    for r in rows {
        let id = r["id"].as_str().unwrap_or_default();
        let product = r["product"].as_str().unwrap_or_default();
        if r["requires"].as_array().is_none_or(|a| a.is_empty())
            || !(product == "gateway" || product == "kernel")
        {
            continue;
        }
        let sel = json(&run(lab, &["select", id, "--json"]));
        let ids: Vec<String> = sel["patches"]
            .as_array()
            .expect("patches")
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect();
        // A requirement met by a superseding patch is another rule, kept
        // by the node; here each prerequisite is the patch itself.
        let through_supersession = sel["patches"].as_array().is_some_and(|a| {
            a.iter()
                .any(|p| p["reason"].as_str().unwrap_or("").contains("supersedes"))
        });
        if sel["problems"].as_array().is_some_and(|p| p.is_empty())
            && !through_supersession
            && ids.len() > 1
            && !ids.iter().any(|i| base(i))
        {
            return (id.to_string(), ids);
        }
    }
    panic!("no patch with prerequisites in the demo depot");
}

/// Sets the `edge` cluster's `on_failure` in fleet.toml.
fn edge_policy(lab: &Path, policy: &str) {
    let path = lab.join("fleet.toml");
    let t = std::fs::read_to_string(&path).expect("fleet");
    let blocks: Vec<String> = t
        .split("[[cluster]]")
        .map(|b| {
            if b.starts_with("\nid = \"edge\"\n") {
                let kept: Vec<&str> = b.lines().filter(|l| !l.starts_with("on_failure")).collect();
                format!(
                    "{}\non_failure = \"{policy}\"\n\n",
                    kept.join("\n").trim_end()
                )
            } else {
                b.to_string()
            }
        })
        .collect();
    std::fs::write(&path, blocks.join("[[cluster]]")).expect("fleet");
    let out = run(lab, &["nodes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn start_args<'a>(patch: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["rollout", "start", "--cluster", "edge", patch];
    a.extend_from_slice(extra);
    a
}

/// The state of the step of `kind` on `node` (or the first such step).
fn step_state(st: &Value, kind: &str, node: &str) -> String {
    steps(st)
        .into_iter()
        .find(|(k, n, _)| k == kind && n == node)
        .map(|(_, _, s)| s)
        .unwrap_or_default()
}

#[test]
fn refusal_before_a_rollout_names_every_member_and_the_replicate_command_that_fixes_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, _) = lab_with_patch(tmp.path());
    let (named, all) = patch_with_prerequisites(&lab);
    // Only the named patch is copied; its prerequisites are not.
    let out = run(
        &lab,
        &["replicate", &named, "--nodes", &members().join(",")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&lab, &start_args(&named, &[]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("not every member of edge is ready"), "{err}");
    // One member a line, as lines (not `^J`).
    assert!(!err.contains("^J"), "{err}");
    for n in members() {
        assert!(err.contains(&format!("{n}: ")), "{n} is named: {err}");
        assert!(
            err.lines()
                .any(|l| l.trim_start().starts_with(&format!("{n}: "))),
            "{n} on a line of its own: {err}"
        );
    }
    assert!(!err.contains("step 0"), "{err}");
    let fix = err
        .lines()
        .find_map(|l| {
            l.split_once("patchdeck ")
                .map(|(_, c)| c.trim().to_string())
        })
        .filter(|c| c.starts_with("replicate "))
        .unwrap_or_else(|| panic!("no replicate command in: {err}"));
    for p in all.iter().filter(|p| **p != named) {
        assert!(fix.contains(p.as_str()), "{p} is to be replicated: {fix}");
    }
    let out = run(&lab, &["rollout", "status"]);
    assert_eq!(out.status.code(), Some(1), "nothing was recorded");
    // Following the advice is enough.
    let args: Vec<&str> = fix.split_whitespace().collect();
    let out = run(&lab, &args);
    assert!(out.status.success(), "{fix}: {}", text(&out.stderr));
    let out = run(&lab, &start_args(&named, &[]));
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for p in &all {
        assert!(states(&lab, p).values().all(|s| s == "applied"), "{p}");
    }
}

#[test]
fn a_failure_with_the_default_policy_leaves_every_group_serving() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &["edge-2_3"], "fail_install = true");
    let before = digests(&lab, &B);
    let out = run(&lab, &start_args(&patch, &["--dry-run"]));
    assert!(
        text(&out.stdout).contains("on failure: rollback"),
        "the preview names the policy: {}",
        text(&out.stdout)
    );
    let out = run(&lab, &start_args(&patch, &[]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let st = status(&lab);
    assert_eq!(st["state"], "failed");
    assert_eq!(st["on_failure"], "rollback");
    assert!(
        services(&lab).values().all(|s| s == "up"),
        "{:?}",
        services(&lab)
    );
    assert_eq!(digests(&lab, &B), before, "group B is as before");
    let groups = st["groups"].as_array().expect("groups");
    assert_eq!(groups[0]["state"], "done");
    assert_eq!(groups[1]["state"], "rolled back");
    assert_nothing_left_in_flight(&st);
    assert_eq!(step_state(&st, "hook_after", ""), "done", "after-hooks ran");
    // Over: the cluster is free for the next rollout.
    let fleet = lab.join("fleet.toml");
    let t = std::fs::read_to_string(&fleet).expect("fleet");
    std::fs::write(
        &fleet,
        t.replace("fail_install = true", "fail_install = false"),
    )
    .expect("fleet");
    let out = run(&lab, &start_args(&patch, &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_rollback_that_fails_too_names_the_members_it_left_drained() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    // edge-2_3's install fails, and so does putting it back in service
    // while the marker exists: the rollback of group B cannot finish.
    let marker = tmp.path().join("restore-fails");
    std::fs::write(&marker, "").expect("marker");
    cluster_keys(
        &lab,
        &format!(
            "restore = \"test $PATCHDECK_NODE != edge-2_3 || test ! -e {}\"",
            marker.display()
        ),
    );
    knobs(&lab, &["edge-2_3"], "fail_install = true");
    let out = run(&lab, &start_args(&patch, &[]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let st = status(&lab);
    assert_eq!(st["state"], "failed");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("group B is left drained (edge-2_3)")
            && message.contains("patchdeck rollout abort 1"),
        "says plainly what is out of service and how to restore it: {message}"
    );
    assert_eq!(services(&lab)["edge-2_3"], "down");
    std::fs::remove_file(&marker).expect("marker");
    let out = run(&lab, &["rollout", "abort", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(services(&lab).values().all(|s| s == "up"));
}

#[test]
fn a_member_busy_with_another_command_is_waited_for_not_failed() {
    use std::os::fd::AsRawFd;
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    // Another command holds a member's node lock, as a second operator's
    // install would; the rollout's step on it waits instead of failing.
    let lock = std::fs::File::open(node_root(&lab, "edge-1_3").join("var/lib/patchdeck/lock"))
        .expect("node lock file");
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let rollout = spawn(&lab, &start_args(&patch, &[]));
    wait_for(&lab, "edge-1_3's drain waiting on the lock", |st| {
        step_state(st, "drain", "edge-1_3") == "running"
    });
    // Meanwhile the history shows the step as under way, not as failed.
    let rows = json(&run(&lab, &["history", "--json", "--nodes", "edge-1_3"]));
    let drain = rows
        .as_array()
        .and_then(|a| a.iter().find(|r| r["op"] == "drain"))
        .cloned()
        .unwrap_or_default();
    assert!(
        drain["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("still running")),
        "{drain}"
    );
    drop(lock);
    let out = wait(rollout);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(status(&lab)["state"], "done");
    assert!(services(&lab).values().all(|s| s == "up"));
}

#[test]
fn a_member_that_would_refuse_the_install_is_found_before_any_group_drains() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, _) = lab_with_patch(tmp.path());
    // A gateway patch superseded by another, neither needing anything.
    let rows = json(&run(
        &lab,
        &["depot", "list", "--json", "--filter", "gateway"],
    ));
    let rows = rows.as_array().expect("rows");
    let plain = |r: &Value| {
        r["requires"].as_array().is_some_and(|a| a.is_empty()) && r.get("base_version").is_none()
    };
    let (newer, older) = rows
        .iter()
        .filter(|r| plain(r))
        .find_map(|r| {
            let old = r["supersedes"].as_array()?.first()?.as_str()?;
            let old_row = rows.iter().find(|o| o["id"] == old)?;
            (plain(old_row) && old_row["supersedes"].as_array()?.is_empty()).then_some(())?;
            Some((r["id"].as_str()?.to_string(), old.to_string()))
        })
        .expect("a superseding pair of plain gateway patches");
    let all = members().join(",");
    let out = run(&lab, &["replicate", &older, &newer, "--nodes", &all]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&lab, &["install", &newer, "--nodes", "edge-2_4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "edge",
            &older,
            "--allow-drift",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("edge-2_4") && err.contains(&format!("{newer}, which supersedes it")),
        "{err}"
    );
    assert!(services(&lab).values().all(|s| s == "up"));
    assert!(
        states(&lab, &older).values().all(|s| s == "staged"),
        "nothing installed"
    );
}

#[test]
fn an_uninstall_that_stopped_half_way_can_be_run_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    let out = run(&lab, &start_args(&patch, &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Part of the uninstall already happened (a rollout that failed in
    // group B after group A was done leaves the same).
    let out = run(
        &lab,
        &[
            "rollback",
            &patch,
            "--nodes",
            "edge-1_1,edge-1_2",
            "--all-at-once",
            "--reason",
            "test",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&lab, &start_args(&patch, &["--uninstall"]));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(states(&lab, &patch).values().all(|s| s == "staged"));
    assert!(services(&lab).values().all(|s| s == "up"));
}

#[test]
fn cluster_on_failure_halt_leaves_the_group_drained_and_names_the_restoring_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    edge_policy(&lab, "halt");
    let preview = |extra: &[&str]| {
        let mut a = start_args(&patch, &["--dry-run", "--json"]);
        a.extend_from_slice(extra);
        json(&run(&lab, &a))["on_failure"].clone()
    };
    assert_eq!(preview(&[]), "halt");
    assert_eq!(preview(&["--on-failure", "rollback"]), "rollback");
    assert_eq!(preview(&["--auto-rollback"]), "rollback");
    knobs(&lab, &["edge-1_3"], "fail_install = true");
    let out = run(&lab, &start_args(&patch, &[]));
    assert_eq!(out.status.code(), Some(1));
    let st = status(&lab);
    assert_eq!(st["state"], "failed");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("group A is left drained")
            && message.contains("patchdeck rollout abort 1"),
        "{message}"
    );
    let svc = services(&lab);
    assert!(A.iter().all(|n| svc[*n] == "down"), "{svc:?}");
    assert!(B.iter().all(|n| svc[*n] == "up"), "{svc:?}");
    assert_eq!(step_state(&st, "hook_after", ""), "done", "after-hooks ran");
    let out = run(&lab, &["rollout", "abort", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(services(&lab).values().all(|s| s == "up"));
}

#[test]
fn a_failure_names_the_step_that_failed_with_the_plans_number() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    // Two at a time: edge-1_2 fails in the batch edge-1_1 starts.
    knobs(&lab, &["edge-1_2"], "fail_install = true");
    let plan = json(&run(&lab, &start_args(&patch, &["--dry-run", "--json"])));
    let seq = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["kind"] == "apply" && s["node"] == "edge-1_2")
        .and_then(|s| s["seq"].as_u64())
        .expect("apply edge-1_2");
    let first = plan["steps"][0]["seq"].as_u64();
    assert_eq!(first, Some(1), "steps are numbered from 1");
    let out = run(&lab, &start_args(&patch, &["--on-failure", "halt"]));
    assert_eq!(out.status.code(), Some(1));
    let st = status(&lab);
    let message = st["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("step {seq} (apply edge-1_2)")),
        "{message}"
    );
    let text_status = text(&run(&lab, &["rollout", "status"]).stdout);
    assert!(!text_status.contains("step 0"), "{text_status}");
}

#[test]
fn pause_starts_no_new_step_in_a_parallel_batch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &A, "slow_ms = 1500");
    let follower = spawn(&lab, &start_args(&patch, &[]));
    wait_for(&lab, "the first drains running", |st| {
        step_state(st, "drain", "edge-1_1") == "running"
    });
    let out = run(&lab, &["rollout", "pause"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = wait(follower);
    assert!(
        text(&out.stdout).contains("paused"),
        "{}",
        text(&out.stdout)
    );
    let st = status(&lab);
    assert_eq!(st["state"], "paused");
    for n in ["edge-1_3", "edge-1_4"] {
        assert_eq!(
            step_state(&st, "drain", n),
            "pending",
            "{n} was not drained"
        );
    }
    let down = services(&lab).values().filter(|s| *s == "down").count();
    assert_eq!(down, 2, "only the batch in progress is out of service");
    let out = run(&lab, &["rollout", "resume"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(status(&lab)["state"], "done");
}

#[test]
fn status_after_an_abort_shows_no_group_in_progress_and_no_next_step() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &A, "slow_ms = 600");
    let follower = spawn(&lab, &start_args(&patch, &[]));
    wait_for(&lab, "group A drained", |st| {
        step_state(st, "drain", "edge-1_1") == "done"
    });
    assert!(run(&lab, &["rollout", "pause"]).status.success());
    let _ = wait(follower);
    let out = run(&lab, &["rollout", "abort"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = status(&lab);
    assert_eq!(st["state"], "aborted");
    assert_nothing_left_in_flight(&st);
    assert_eq!(step_state(&st, "hook_after", ""), "done", "after-hooks ran");
    assert!(services(&lab).values().all(|s| s == "up"));
    let t = text(&run(&lab, &["rollout", "status"]).stdout);
    assert!(
        t.contains(": aborted") && !t.contains("next:") && !t.contains("in progress"),
        "{t}"
    );
}

#[test]
fn an_abort_after_the_runner_was_killed_mid_step_leaves_nothing_in_flight() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &A, "slow_ms = 1500");
    let follower = spawn(&lab, &start_args(&patch, &[]));
    wait_for(&lab, "an install running", |st| {
        step_state(st, "apply", "edge-1_1") == "running"
    });
    // The rollout runs in its own process: kill that one, then the
    // command that follows it.
    kill_runner(&lab, status(&lab)["pid"].as_i64().unwrap_or(0));
    wait_for(&lab, "the runner gone", |st| st["interrupted"] == true);
    let mut follower = follower;
    let _ = follower.kill();
    let _ = wait(follower);
    let out = run(&lab, &["rollout", "abort"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = status(&lab);
    assert_eq!(st["state"], "aborted");
    assert_nothing_left_in_flight(&st);
    // The step a dead runner left says what happened on its member.
    let took = states(&lab, &patch)["edge-1_1"] == "applied";
    let expected = if took { "done" } else { "failed" };
    assert_eq!(step_state(&st, "apply", "edge-1_1"), expected, "{st}");
    assert!(services(&lab).values().all(|s| s == "up"));
    // The history does not show a step that never ran as a failed install.
    let rows = json(&run(&lab, &["history", "--json", "--rollout", "1"]));
    let never_ran = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["node"] == "edge-1_3" && r["op"] == "install")
        .count();
    assert_eq!(never_ran, 0, "{rows}");
}

#[test]
fn an_abort_requested_while_a_step_fails_is_carried_out() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &["edge-1_1"], "slow_ms = 1500\nfail_install = true");
    let follower = spawn(&lab, &start_args(&patch, &["--on-failure", "halt"]));
    wait_for(&lab, "the failing install running", |st| {
        step_state(st, "apply", "edge-1_1") == "running"
    });
    let out = run(&lab, &["rollout", "abort"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _ = wait(follower);
    let st = status(&lab);
    assert_eq!(st["state"], "aborted", "{st}");
    assert_eq!(step_state(&st, "apply", "edge-1_1"), "failed");
    assert_eq!(step_state(&st, "hook_after", ""), "done");
    assert!(
        services(&lab).values().all(|s| s == "up"),
        "{:?}",
        services(&lab)
    );
}

#[test]
fn a_rollout_outlives_the_terminal_that_started_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    knobs(&lab, &members(), "slow_ms = 200");
    let follower = spawn(&lab, &start_args(&patch, &[]));
    wait_for(&lab, "the rollout at work", |st| {
        step_state(st, "drain", "edge-1_1") == "done"
    });
    // The terminal closes: the follower gets a hangup and dies.
    // SAFETY: a signal to a process this test started.
    unsafe { libc::kill(follower.id() as libc::pid_t, libc::SIGHUP) };
    let _ = wait(follower);
    wait_for(&lab, "the rollout to end by itself", |st| {
        st["state"] == "done"
    });
    assert!(states(&lab, &patch).values().all(|s| s == "applied"));

    // --detach returns at once; the rollout goes on.
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "edge",
            &patch,
            "--uninstall",
            "--detach",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("rollout 2 on edge started"),
        "{}",
        text(&out.stdout)
    );
    wait_for(&lab, "the detached rollout to end", |st| {
        st["id"] == 2 && st["state"] == "done"
    });
    assert!(states(&lab, &patch).values().all(|s| s == "staged"));
}

#[test]
fn rollout_list_shows_every_rollout_newest_first_with_its_state() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    assert!(run(&lab, &start_args(&patch, &[])).status.success());
    knobs(&lab, &["edge-1_1"], "fail_install = true");
    let out = run(&lab, &start_args(&patch, &["--uninstall"]));
    assert!(
        out.status.success(),
        "an uninstall does not install: {}",
        text(&out.stderr)
    );
    let out = run(&lab, &start_args(&patch, &[]));
    assert_eq!(out.status.code(), Some(1));
    let list = json(&run(&lab, &["rollout", "list", "--json"]));
    let rows: Vec<(i64, String)> = list
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap_or(0),
                r["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![(3, "failed".into()), (2, "done".into()), (1, "done".into())]
    );
    let only = json(&run(
        &lab,
        &["rollout", "list", "--cluster", "app", "--json"],
    ));
    assert_eq!(only.as_array().map(Vec::len), Some(0));
    let t = text(&run(&lab, &["rollout", "list"]).stdout);
    let first = t.lines().next().unwrap_or_default();
    assert!(
        first.trim_start().starts_with('3') && first.contains("failed"),
        "{t}"
    );
}

#[test]
fn groups_on_a_multi_site_cluster_gets_a_warning() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    let out = run(&lab, &start_args(&patch, &["--groups", "3", "--dry-run"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("--groups 3") && err.contains("site"),
        "{err}"
    );
    let out = run(&lab, &["groups", "--cluster", "edge", "--groups", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    // Honoured where it can be: no warning.
    let out = run(
        &lab,
        &[
            "rollout",
            "start",
            "--cluster",
            "app",
            &patch,
            "--groups",
            "3",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rolling_back_a_group_drains_it_first_and_status_shows_it_rolled_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, patch) = lab_with_patch(tmp.path());
    let log = tmp.path().join("service.log");
    cluster_keys(
        &lab,
        &format!(
            "drain = \"echo drain {{node}} >> {0}\"\nrestore = \"echo restore {{node}} >> {0}\"",
            log.display()
        ),
    );
    let before = digests(&lab, &B);
    assert!(run(&lab, &start_args(&patch, &[])).status.success());
    std::fs::remove_file(&log).ok();
    let out = run(&lab, &["rollout", "rollback", "1", "--group", "B"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Each member of B was taken out of service before its change was undone.
    let counts = count_log(&log);
    for n in B {
        assert_eq!(counts.get(&format!("drain {n}")), Some(&1), "{counts:?}");
        assert_eq!(counts.get(&format!("restore {n}")), Some(&1), "{counts:?}");
    }
    assert!(
        A.iter()
            .all(|n| !counts.contains_key(&format!("drain {n}")))
    );
    assert_eq!(digests(&lab, &B), before);
    assert!(services(&lab).values().all(|s| s == "up"));
    let st = status(&lab);
    let groups = st["groups"].as_array().expect("groups");
    assert_eq!(groups[0]["state"], "done");
    assert_eq!(groups[1]["state"], "rolled back");
    let t = text(&run(&lab, &["rollout", "status"]).stdout);
    assert!(t.contains("group B") && t.contains("rolled back"), "{t}");
}

#[test]
fn restarts_happen_inside_the_rollout_while_the_group_is_drained() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (lab, _) = lab_with_patch(tmp.path());
    // A patch that needs a reboot, with nothing else to install first.
    let rows = json(&run(&lab, &["depot", "list", "--json"]));
    let patch = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| {
            r["restart"] == "reboot"
                && r["hot"] == false
                && r["requires"].as_array().is_some_and(|a| a.is_empty())
                && r.get("base_version").is_none_or(|b| b.is_null())
                && (r["product"] == "kernel" || r["product"] == "gateway")
        })
        .and_then(|r| r["id"].as_str())
        .expect("a reboot patch")
        .to_string();
    let out = run(
        &lab,
        &["replicate", &patch, "--nodes", &members().join(",")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&lab, &start_args(&patch, &[]));
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let list = json(&run(
        &lab,
        &["list", "--nodes", &members().join(","), "--json"],
    ));
    let rows: Vec<&Value> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["patch"] == patch.as_str())
        .collect();
    assert_eq!(rows.len(), 8);
    for r in rows {
        assert_eq!(r["state"], "applied", "{r}");
        assert!(
            r["pending_restart"].is_null(),
            "the reboot happened while drained, not left for a serving member: {r}"
        );
    }
    assert!(services(&lab).values().all(|s| s == "up"));
}
