//! Maintenance windows, driven by an injected clock (no test sleeps
//! through a real window).
//!
//! The first half runs the rollout runner against a small simulated
//! cluster whose clock is fake: `sleep` moves it on, and a member's drain
//! can jump it (the cutoff passing while a group is under way). It checks
//! waiting, opening, the cutoff mid-rollout, pause and abort while waiting,
//! the override, time zones and both daylight saving changes.
//!
//! The second half drives the real binary, its clock set by
//! `PATCHDECK_NOW` or by `PATCHDECK_CLOCK_FILE` (a file holding the
//! current instant, which the test rewrites): `windows --json`, a rollout
//! that waits and starts when the clock moves into its window, a rollout
//! cut off mid-way that finishes its group and waits, `--now --reason`
//! journaled with the operator, and a waiting rollout whose runner dies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use patchdeck::engine::console;
use patchdeck::engine::fleet::{Cluster, OnFailure};
use patchdeck::engine::groups::{Group, Partition};
use patchdeck::engine::rollout::journal;
use patchdeck::engine::rollout::{Ending, Env, Event, Plan, Runner, State, StepKind};
use patchdeck::engine::window::WindowSpec;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

// ---------------------------------------------------------------------
// The runner against a simulated cluster with a fake clock.

struct World {
    clock: DateTime<Utc>,
    serving: BTreeMap<String, bool>,
    /// Every drain and restore with the instant it happened.
    log: Vec<(String, String, DateTime<Utc>)>,
    /// When this member is drained, the clock jumps here.
    jump: Option<(String, DateTime<Utc>)>,
    hooks: Vec<String>,
}

struct Sim {
    w: Mutex<World>,
}

impl Sim {
    fn new(start: &str, members: &[&str]) -> Sim {
        Sim {
            w: Mutex::new(World {
                clock: at(start),
                serving: members.iter().map(|m| (m.to_string(), true)).collect(),
                log: Vec::new(),
                jump: None,
                hooks: Vec::new(),
            }),
        }
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.w.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn all_serving(&self) -> bool {
        self.w().serving.values().all(|s| *s)
    }

    /// When each member was drained.
    fn drains(&self) -> Vec<(String, DateTime<Utc>)> {
        self.w()
            .log
            .iter()
            .filter(|(k, _, _)| k == "drain")
            .map(|(_, n, t)| (n.clone(), *t))
            .collect()
    }
}

impl Env for Sim {
    fn preflight(&self, _: &str, _: &Plan) -> Result<(), String> {
        Ok(())
    }
    fn drain(&self, node: &str, _: &Plan) -> Result<(), String> {
        let mut w = self.w();
        let now = w.clock;
        w.serving.insert(node.into(), false);
        w.log.push(("drain".into(), node.into(), now));
        if let Some((n, t)) = w.jump.clone()
            && n == node
        {
            w.clock = t;
        }
        Ok(())
    }
    fn restore(&self, node: &str, _: &Plan) -> Result<(), String> {
        let mut w = self.w();
        let now = w.clock;
        w.serving.insert(node.into(), true);
        w.log.push(("restore".into(), node.into(), now));
        Ok(())
    }
    fn apply(&self, node: &str, _: &Plan) -> Result<String, String> {
        assert!(!self.w().serving[node], "{node} changed while serving");
        Ok("applied".into())
    }
    fn revert(&self, _: &str, _: &Plan) -> Result<String, String> {
        Ok("reverted".into())
    }
    fn in_service(&self, node: &str) -> bool {
        self.w().serving[node]
    }
    fn healthy(&self, node: &str) -> Result<(), String> {
        if self.w().serving[node] {
            Ok(())
        } else {
            Err("service down".into())
        }
    }
    fn hook(&self, command: &str, _: &Plan) -> Result<String, String> {
        self.w().hooks.push(command.into());
        Ok(String::new())
    }
    fn applied(&self, _: &str) -> Result<Vec<String>, String> {
        Ok(vec!["P1".into()])
    }
    /// Time moves a minute per nap, whatever was asked: waits are hours.
    fn sleep(&self, _: Duration) {
        self.w().clock += TimeDelta::minutes(1);
    }
    fn now(&self) -> Duration {
        let w = self.w();
        (w.clock - at("2000-01-01T00:00:00Z"))
            .to_std()
            .unwrap_or_default()
    }
    fn clock(&self) -> DateTime<Utc> {
        self.w().clock
    }
}

const MEMBERS: [&str; 4] = ["a1", "a2", "b1", "b2"];

fn window(cron: &str, duration: &str, cutoff: &str, tz: &str) -> WindowSpec {
    WindowSpec {
        cron: cron.into(),
        duration: duration.into(),
        cutoff: Some(cutoff.into()),
        tz: Some(tz.into()),
    }
}

fn plan(windows: Vec<WindowSpec>) -> Plan {
    let cluster: Cluster = toml::from_str(
        "id = \"c\"\nhealth_deadline_secs = 600\nbefore = [\"cloning off\"]\nafter = [\"cloning on\"]",
    )
    .expect("cluster");
    let cluster = Cluster { windows, ..cluster };
    let partition = Partition {
        cluster: "c".into(),
        groups: vec![
            Group {
                name: "A".into(),
                members: vec!["a1".into(), "a2".into()],
            },
            Group {
                name: "B".into(),
                members: vec!["b1".into(), "b2".into()],
            },
        ],
    };
    Plan::new(
        &cluster,
        &partition,
        &["P1".into()],
        false,
        OnFailure::Rollback,
    )
}

/// What one run saw: every rollout-level event, with whether every member
/// served at that moment.
struct Seen {
    events: Vec<(String, String, bool)>,
}

/// Records `plan` and runs it; `on_event` may ask for a pause or an abort.
fn run_plan(
    sim: &Sim,
    conn: &Mutex<rusqlite::Connection>,
    id: i64,
    on_event: &(dyn Fn(&Event) + Sync),
) -> (Ending, Seen) {
    let seen = Mutex::new(Seen { events: Vec::new() });
    let events = |e: &Event| {
        if e.seq.is_none() {
            seen.lock().expect("seen").events.push((
                e.state.clone(),
                e.message.clone(),
                sim.all_serving(),
            ));
        }
        on_event(e);
    };
    let runner = Runner::new(conn, sim).events(&events);
    let ending = runner.run(id).expect("runner");
    (ending, seen.into_inner().expect("seen"))
}

fn create(plan: &Plan) -> (Mutex<rusqlite::Connection>, i64) {
    let conn = console::open_in_memory().expect("console db");
    let id = journal::create(&conn, plan)
        .expect("create")
        .expect("cluster free");
    (Mutex::new(conn), id)
}

fn state(conn: &Mutex<rusqlite::Connection>, id: i64) -> journal::Rollout {
    journal::load(&conn.lock().expect("db"), id)
        .expect("load")
        .expect("rollout")
}

/// 2026-11-28 is a Saturday; Berlin is on CET (UTC+1) then, so the window
/// is 01:00Z to 05:00Z with its cutoff at 04:00Z.
fn saturday_night() -> WindowSpec {
    window("0 2 * * SAT", "4h", "1h", "Europe/Berlin")
}

#[test]
fn started_outside_a_window_it_waits_and_starts_when_one_opens() {
    let sim = Sim::new("2026-11-27T22:00:00Z", &MEMBERS);
    let (conn, id) = create(&plan(vec![saturday_night()]));
    let (ending, seen) = run_plan(&sim, &conn, id, &|_| {});
    assert_eq!(ending, Ending::Done);
    let waiting: Vec<_> = seen.events.iter().filter(|e| e.0 == "waiting").collect();
    assert_eq!(waiting.len(), 1, "{:?}", seen.events);
    assert!(
        waiting[0]
            .1
            .contains("the next opens 2026-11-28 02:00 CET (01:00Z)"),
        "{}",
        waiting[0].1
    );
    // Nothing ran before the window: not even the before-hook.
    let drains = sim.drains();
    assert_eq!(drains.len(), 4);
    for (n, t) in &drains {
        assert!(
            *t >= at("2026-11-28T01:00:00Z") && *t < at("2026-11-28T04:00:00Z"),
            "{n} drained at {t}"
        );
    }
    assert_eq!(sim.w().hooks, vec!["cloning off", "cloning on"]);
    assert!(sim.all_serving());
}

#[test]
fn at_the_cutoff_the_group_under_way_finishes_is_restored_and_the_next_waits() {
    let sim = Sim::new("2026-11-28T03:50:00Z", &MEMBERS);
    // Draining a1 takes so long that the cutoff (04:00Z) passes.
    sim.w().jump = Some(("a1".into(), at("2026-11-28T04:30:00Z")));
    let (conn, id) = create(&plan(vec![saturday_night()]));
    let (ending, seen) = run_plan(&sim, &conn, id, &|_| {});
    assert_eq!(ending, Ending::Done);
    // Past the cutoff, then (once the window has closed) closed: the
    // reason changes, never with a group drained.
    let waiting: Vec<_> = seen.events.iter().filter(|e| e.0 == "waiting").collect();
    assert_eq!(waiting.len(), 2, "{:?}", seen.events);
    assert!(
        waiting.iter().all(|w| w.2),
        "a group was left drained while waiting"
    );
    let (_, message, _) = waiting[0];
    assert!(
        message.contains("cutoff of the open one passed at 2026-11-28 05:00 CET (04:00Z)")
            && message.contains("the next opens 2026-12-05 02:00 CET (01:00Z)"),
        "{message}"
    );
    let drains = sim.drains();
    let when = |n: &str| drains.iter().find(|(m, _)| m == n).map(|(_, t)| *t);
    // a2 belongs to the group under way: drained past the cutoff, as
    // finishing the group needs.
    assert_eq!(when("a2"), Some(at("2026-11-28T04:30:00Z")));
    assert!(when("b1").is_some_and(|t| t >= at("2026-12-05T01:00:00Z")));
    assert!(sim.all_serving());
}

#[test]
fn pause_and_abort_while_waiting() {
    // Pause: the runner stops waiting and says paused; a resume waits again
    // and finishes once the window opens.
    let sim = Sim::new("2026-11-27T22:00:00Z", &MEMBERS);
    let (conn, id) = create(&plan(vec![saturday_night()]));
    fn ask<'a>(
        conn: &'a Mutex<rusqlite::Connection>,
        id: i64,
        what: &'static str,
    ) -> impl Fn(&Event) + Sync + 'a {
        move |e: &Event| {
            if e.seq.is_none() && e.state == "waiting" {
                journal::request(&conn.lock().expect("db"), id, what).expect("request");
            }
        }
    }
    let (ending, _) = run_plan(&sim, &conn, id, &ask(&conn, id, "pause"));
    assert_eq!(ending, Ending::Paused);
    assert_eq!(state(&conn, id).state, State::Paused);
    assert!(sim.drains().is_empty());
    let (ending, seen) = run_plan(&sim, &conn, id, &|_| {});
    assert_eq!(ending, Ending::Done);
    assert!(seen.events.iter().any(|e| e.0 == "waiting"));

    // Abort: nothing was drained, the after-hooks still run.
    let sim = Sim::new("2026-11-27T22:00:00Z", &MEMBERS);
    let (conn, id) = create(&plan(vec![saturday_night()]));
    let (ending, _) = run_plan(&sim, &conn, id, &ask(&conn, id, "abort"));
    assert_eq!(ending, Ending::Aborted);
    assert!(sim.drains().is_empty());
    assert_eq!(sim.w().hooks, vec!["cloning on"]);
    assert!(sim.all_serving());
}

#[test]
fn the_override_starts_at_once_and_runs_past_the_cutoff() {
    let sim = Sim::new("2026-11-27T22:00:00Z", &MEMBERS);
    let mut p = plan(vec![saturday_night()]);
    p.window_override = Some("security fix cannot wait".into());
    let (conn, id) = create(&p);
    let (ending, seen) = run_plan(&sim, &conn, id, &|_| {});
    assert_eq!(ending, Ending::Done);
    assert!(!seen.events.iter().any(|e| e.0 == "waiting"));
    assert!(
        sim.drains()
            .iter()
            .all(|(_, t)| *t < at("2026-11-28T01:00:00Z"))
    );
}

#[test]
fn time_zones_decide_the_instant() {
    // 02:00 in New York on Saturday 2026-11-28 is 07:00Z (EST, UTC-5).
    let sim = Sim::new("2026-11-28T00:00:00Z", &MEMBERS);
    let ny = window("0 2 * * SAT", "2h", "30m", "America/New_York");
    let (conn, id) = create(&plan(vec![ny]));
    let (ending, _) = run_plan(&sim, &conn, id, &|_| {});
    assert_eq!(ending, Ending::Done);
    let first = sim.drains().first().map(|(_, t)| *t);
    assert_eq!(first, Some(at("2026-11-28T07:00:00Z")));
}

#[test]
fn spring_forward_opens_at_the_first_instant_after_the_gap() {
    // 2026-03-29: Berlin skips 02:00-03:00; a 02:30 window opens at 03:00
    // CEST (01:00Z).
    let sim = Sim::new("2026-03-28T23:00:00Z", &MEMBERS);
    let w = window("30 2 * * SUN", "2h", "30m", "Europe/Berlin");
    let (conn, id) = create(&plan(vec![w]));
    let (ending, seen) = run_plan(&sim, &conn, id, &|_| {});
    assert_eq!(ending, Ending::Done);
    let waiting = seen
        .events
        .iter()
        .find(|e| e.0 == "waiting")
        .expect("waits");
    assert!(
        waiting.1.contains("opens 2026-03-29 03:00 CEST (01:00Z)"),
        "{}",
        waiting.1
    );
    assert_eq!(
        sim.drains().first().map(|(_, t)| *t),
        Some(at("2026-03-29T01:00:00Z"))
    );
}

#[test]
fn fall_back_does_not_open_the_window_twice() {
    // 2026-10-25: Berlin's 02:30 happens at 00:30Z (CEST) and again at
    // 01:30Z (CET). The window opens at the first only; a rollout whose
    // group A runs until 01:35Z (02:35 again, on the wall clock) finds it
    // closed and waits a week for group B.
    let sim = Sim::new("2026-10-25T00:29:00Z", &MEMBERS);
    sim.w().jump = Some(("a1".into(), at("2026-10-25T01:35:00Z")));
    let w = window("30 2 * * SUN", "30m", "10m", "Europe/Berlin");
    let (conn, id) = create(&plan(vec![w]));
    let (ending, seen) = run_plan(&sim, &conn, id, &|_| {});
    assert_eq!(ending, Ending::Done);
    let waits: Vec<_> = seen.events.iter().filter(|e| e.0 == "waiting").collect();
    assert_eq!(waits.len(), 2, "{:?}", seen.events);
    assert!(
        waits[1].1.contains("opens 2026-11-01 02:30 CET (01:30Z)"),
        "{}",
        waits[1].1
    );
    let drains = sim.drains();
    let when = |n: &str| drains.iter().find(|(m, _)| m == n).map(|(_, t)| *t);
    assert_eq!(when("a1"), Some(at("2026-10-25T00:30:00Z")));
    assert_eq!(when("b1"), Some(at("2026-11-01T01:30:00Z")));
}

#[test]
fn the_plan_keeps_its_windows_and_its_override_in_the_journal() {
    let mut p = plan(vec![saturday_night()]);
    p.window_override = Some("why".into());
    let (conn, id) = create(&p);
    let r = state(&conn, id);
    assert_eq!(r.plan.windows, vec![saturday_night()]);
    assert_eq!(r.plan.window_override.as_deref(), Some("why"));
    assert!(r.plan.steps.iter().any(|s| s.kind == StepKind::Drain));
}

// ---------------------------------------------------------------------
// The real binary, its clock set by PATCHDECK_NOW or PATCHDECK_CLOCK_FILE.

const A: [&str; 4] = ["edge-1_1", "edge-1_2", "edge-1_3", "edge-1_4"];
const B: [&str; 4] = ["edge-2_1", "edge-2_2", "edge-2_3", "edge-2_4"];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The binary with `clock` as its `PATCHDECK_CLOCK_FILE`.
fn cmd(lab: &Path, clock: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("patchdeck")
        .expect("binary")
        .env_remove("PATCHDECK_LAB")
        .env_remove("PATCHDECK_NOW")
        .env("PATCHDECK_CLOCK_FILE", clock)
        .args(args)
        .arg("--lab")
        .arg(lab)
        .output()
        .expect("run patchdeck")
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

fn set_clock(clock: &Path, t: &str) {
    // Written whole, then renamed, so a reader never sees half an instant.
    let tmp = clock.with_extension("tmp");
    std::fs::write(&tmp, t).expect("clock");
    std::fs::rename(&tmp, clock).expect("clock");
}

/// A demo lab whose `edge` cluster has a Saturday-night window in Berlin
/// (`extra` lines added to the cluster), with a plain gateway patch staged
/// on every member. Returns the lab, the clock file and the patch.
fn lab(dir: &Path, extra: &str) -> (PathBuf, PathBuf, String) {
    let lab = dir.join("lab");
    let clock = dir.join("clock");
    set_clock(&clock, "2026-11-27T22:00:00Z");
    let out = Command::cargo_bin("patchdeck")
        .expect("binary")
        .args(["demo", "--patches", "120", "--lab"])
        .arg(&lab)
        .output()
        .expect("demo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fleet = lab.join("fleet.toml");
    let t = std::fs::read_to_string(&fleet).expect("fleet");
    let cluster = "[[cluster]]\nid = \"edge\"\n";
    assert!(t.contains(cluster), "the demo lab has cluster edge");
    let window = format!(
        "{extra}\n[[cluster.window]]\ncron = \"0 2 * * SAT\"\nduration = \"4h\"\ncutoff = \"1h\"\ntz = \"Europe/Berlin\"\n\n[[cluster]]\nid = \"app\"\n"
    );
    let t = t
        .replace("min_healthy_secs = 2", "min_healthy_secs = 0")
        .replace("health_deadline_secs = 60", "health_deadline_secs = 5")
        .replacen("\n[[cluster]]\nid = \"app\"\n", &window, 1);
    std::fs::write(&fleet, t).expect("fleet");
    let rows = json(&cmd(
        &lab,
        &clock,
        &["depot", "list", "--json", "--filter", "gateway"],
    ));
    let patch = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| {
            r["requires"].as_array().is_some_and(|a| a.is_empty())
                && r.get("base_version").is_none()
                && r["supersedes"].as_array().is_some_and(|a| a.is_empty())
        })
        .and_then(|r| r["id"].as_str())
        .expect("a plain gateway patch")
        .to_string();
    let all: Vec<&str> = A.iter().chain(B.iter()).copied().collect();
    let out = cmd(
        &lab,
        &clock,
        &["replicate", &patch, "--nodes", &all.join(","), "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    (lab, clock, patch)
}

fn status(lab: &Path, clock: &Path, id: &str) -> Value {
    let out = cmd(lab, clock, &["rollout", "status", id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    json(&out)
}

/// Polls `rollout status` until `ok` holds (a minute at most).
fn wait_for(lab: &Path, clock: &Path, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let st = status(lab, clock, id);
        if ok(&st) {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "rollout {id} never became {what}: {st:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether every edge member serves, as `nodes --json` says.
fn all_serving(lab: &Path, clock: &Path) -> bool {
    let rows = json(&cmd(lab, clock, &["nodes", "--json"]));
    rows.as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["cluster"] == "edge")
        .all(|r| r["service"] == "up")
}

fn installed_on(lab: &Path, clock: &Path, node: &str, patch: &str) -> bool {
    let rows = json(&cmd(lab, clock, &["list", "--nodes", node, "--json"]));
    rows.as_array()
        .expect("rows")
        .iter()
        .any(|r| r["node"] == node && r["patch"] == patch && r["state"] == "applied")
}

fn start(lab: &Path, clock: &Path, patch: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "rollout",
        "start",
        "--cluster",
        "edge",
        patch,
        "--detach",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = cmd(lab, clock, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    json(&out)["rollout"].to_string()
}

#[test]
fn windows_json_lists_openings_in_the_zone_and_in_utc() {
    let dir = tempfile::tempdir().expect("tmp");
    let (lab, clock, _) = lab(dir.path(), "");
    let out = Command::cargo_bin("patchdeck")
        .expect("binary")
        .env_remove("PATCHDECK_CLOCK_FILE")
        .env("PATCHDECK_NOW", "2026-11-28T04:30:00Z")
        .args([
            "windows",
            "--cluster",
            "edge",
            "--count",
            "2",
            "--json",
            "--lab",
        ])
        .arg(&lab)
        .output()
        .expect("windows");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = json(&out);
    let edge = &rows[0];
    assert_eq!(edge["cluster"], "edge");
    assert_eq!(edge["open"], true);
    assert_eq!(edge["may_drain"], false, "04:30Z is past the 04:00Z cutoff");
    let o = edge["openings"].as_array().expect("openings");
    assert_eq!(o.len(), 2);
    assert_eq!(o[0]["opens"], "2026-11-28T01:00:00Z");
    assert_eq!(o[0]["closes"], "2026-11-28T05:00:00Z");
    assert_eq!(o[0]["cutoff"], "2026-11-28T04:00:00Z");
    assert_eq!(o[0]["opens_local"], "2026-11-28T02:00:00+01:00");
    assert_eq!(o[1]["opens"], "2026-12-05T01:00:00Z");
    // Every cluster without --cluster; one without windows says so.
    let all = json(&cmd(&lab, &clock, &["windows", "--json"]));
    let app = all
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["cluster"] == "app")
        .expect("app");
    assert_eq!(app["windows"], serde_json::json!([]));
    assert_eq!(app["may_drain"], true);
    // An unknown cluster and a bad window are bad input, named.
    let out = cmd(&lab, &clock, &["windows", "--cluster", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let fleet = lab.join("fleet.toml");
    let t = std::fs::read_to_string(&fleet).expect("fleet");
    std::fs::write(&fleet, t.replace("Europe/Berlin", "Europe/Atlantis")).expect("fleet");
    let out = cmd(&lab, &clock, &["windows"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let line = std::fs::read_to_string(&fleet)
        .expect("fleet")
        .lines()
        .position(|l| l.contains("Europe/Atlantis"))
        .expect("tz line")
        + 1;
    assert!(
        err.contains(&format!(
            "fleet.toml:{line}: cluster edge: window 1: tz \"Europe/Atlantis\""
        )),
        "{err}"
    );
}

#[test]
fn a_rollout_started_outside_its_window_waits_until_the_clock_moves_into_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let (lab, clock, patch) = lab(dir.path(), "");
    let id = start(&lab, &clock, &patch, &[]);
    let st = wait_for(&lab, &clock, &id, "waiting", |s| s["state"] == "waiting");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the next opens 2026-11-28 02:00 CET (01:00Z)"),
        "{message}"
    );
    assert_eq!(st["window"]["open"], false);
    assert_eq!(st["window"]["opens"], "2026-11-28T01:00:00Z");
    assert_eq!(st["window"]["waiting_until"], "2026-11-28T01:00:00Z");
    assert!(all_serving(&lab, &clock));
    assert!(!installed_on(&lab, &clock, A[0], &patch));
    // The runner dies while waiting: the rollout is interrupted, and a
    // resume waits again.
    let pid = st["pid"].as_i64().expect("pid");
    // SAFETY: signalling the runner this test started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    wait_for(&lab, &clock, &id, "interrupted", |s| {
        s["interrupted"] == true
    });
    let out = cmd(&lab, &clock, &["rollout", "resume", &id, "--detach"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = wait_for(&lab, &clock, &id, "waiting again", |s| {
        s["state"] == "waiting" && s["interrupted"] == false && s["pid"].as_i64() != Some(pid)
    });
    assert_eq!(st["groups"][0]["state"], "waiting");
    // The window opens.
    set_clock(&clock, "2026-11-28T01:00:30Z");
    wait_for(&lab, &clock, &id, "done", |s| s["state"] == "done");
    assert!(all_serving(&lab, &clock));
    for n in A.iter().chain(B.iter()) {
        assert!(installed_on(&lab, &clock, n, &patch), "{n}");
    }
}

#[test]
fn at_the_cutoff_the_group_under_way_is_finished_and_restored_then_it_waits() {
    let dir = tempfile::tempdir().expect("tmp");
    let clock = dir.path().join("clock");
    // Draining the first member of group A takes the clock past the cutoff.
    let hook = format!(
        "drain = \"[ {{node}} = edge-1_1 ] && printf 2026-11-28T04:20:00Z > {}.tmp && mv {}.tmp {} || true\"",
        clock.display(),
        clock.display(),
        clock.display()
    );
    let (lab, clock, patch) = lab(dir.path(), &hook);
    set_clock(&clock, "2026-11-28T03:30:00Z");
    let id = start(&lab, &clock, &patch, &[]);
    let st = wait_for(&lab, &clock, &id, "waiting", |s| s["state"] == "waiting");
    let message = st["message"].as_str().unwrap_or_default();
    assert!(message.contains("cutoff"), "{message}");
    assert!(
        message.contains("the next opens 2026-12-05 02:00 CET (01:00Z)"),
        "{message}"
    );
    assert_eq!(st["groups"][0]["state"], "done");
    assert_eq!(st["groups"][1]["state"], "waiting");
    assert_eq!(st["window"]["open"], true);
    assert_eq!(st["window"]["may_drain"], false);
    assert_eq!(st["window"]["waiting_until"], "2026-12-05T01:00:00Z");
    assert!(all_serving(&lab, &clock), "no group is left drained");
    for n in A {
        assert!(installed_on(&lab, &clock, n, &patch), "{n}");
    }
    for n in B {
        assert!(!installed_on(&lab, &clock, n, &patch), "{n}");
    }
    set_clock(&clock, "2026-12-05T01:00:30Z");
    wait_for(&lab, &clock, &id, "done", |s| s["state"] == "done");
    for n in B {
        assert!(installed_on(&lab, &clock, n, &patch), "{n}");
    }
}

#[test]
fn now_needs_a_reason_and_the_override_is_journaled_with_the_operator() {
    let dir = tempfile::tempdir().expect("tmp");
    let (lab, clock, patch) = lab(dir.path(), "");
    for bad in [
        vec!["--now"],
        vec!["--reason", "x"],
        vec!["--now", "--reason", "  "],
    ] {
        let mut args = vec!["rollout", "start", "--cluster", "edge", &patch];
        args.extend(bad.iter().copied());
        let out = cmd(&lab, &clock, &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
    // A waiting rollout holds its cluster; an abort ends it at once.
    let waiting = start(&lab, &clock, &patch, &[]);
    wait_for(&lab, &clock, &waiting, "waiting", |s| {
        s["state"] == "waiting"
    });
    let out = cmd(
        &lab,
        &clock,
        &["rollout", "start", "--cluster", "edge", &patch, "--detach"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("busy"), "{}", text(&out.stderr));
    let out = cmd(&lab, &clock, &["rollout", "abort", &waiting]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for(&lab, &clock, &waiting, "aborted", |s| {
        s["state"] == "aborted" && s["interrupted"] == false
    });
    assert!(all_serving(&lab, &clock));
    let id = start(
        &lab,
        &clock,
        &patch,
        &["--now", "--reason", "CVE fix ordered by the CISO"],
    );
    let st = wait_for(&lab, &clock, &id, "done", |s| s["state"] == "done");
    assert_eq!(st["window"]["override"], "CVE fix ordered by the CISO");
    let out = cmd(&lab, &clock, &["history", "--rollout", &id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = json(&out);
    let row = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["op"] == "window_override")
        .unwrap_or_else(|| panic!("no override in the history: {rows:#}"));
    assert!(
        row["message"]
            .as_str()
            .is_some_and(|m| m.contains("CVE fix ordered by the CISO")),
        "{row}"
    );
    assert!(
        row["operator"].as_str().is_some_and(|o| o.contains('@')),
        "{row}"
    );
    assert_eq!(row["node"], "edge");
}

#[test]
fn a_group_rollback_keeps_to_the_windows_and_a_refusal_keeps_the_rollout_as_it_was() {
    let dir = tempfile::tempdir().expect("tmp");
    let (lab, clock, patch) = lab(dir.path(), "");
    // Saturday 02:10 in Berlin: inside the window, before its cutoff.
    set_clock(&clock, "2026-11-28T01:10:00Z");
    let id = start(&lab, &clock, &patch, &[]);
    wait_for(&lab, &clock, &id, "done", |s| s["state"] == "done");
    // Saturday noon: the window has closed.
    set_clock(&clock, "2026-11-28T12:00:00Z");
    let rollback = |extra: &[&str]| {
        let mut args = vec!["rollout", "rollback", id.as_str()];
        args.extend_from_slice(extra);
        cmd(&lab, &clock, &args)
    };
    let out = rollback(&["--group", "Z"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = rollback(&["--group", "A", "--now"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = rollback(&["--group", "A"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("maintenance windows") && err.contains("--now --reason"),
        "{err}"
    );
    assert!(
        all_serving(&lab, &clock),
        "nothing drained outside the window"
    );
    assert!(installed_on(&lab, &clock, "edge-1_1", &patch));
    assert_eq!(status(&lab, &clock, &id)["state"], "done");
    // With the operator's reason it goes ahead, journaled.
    let out = rollback(&["--group", "A", "--now", "--reason", "bad build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!installed_on(&lab, &clock, "edge-1_1", &patch));
    assert!(all_serving(&lab, &clock));
    let rows = json(&cmd(&lab, &clock, &["history", "--rollout", &id, "--json"]));
    assert!(
        rows.as_array()
            .expect("rows")
            .iter()
            .any(|r| r["op"] == "window_override"
                && r["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("bad build"))),
        "{rows:#}"
    );
    // A rollback refused before anything changed (another group is not
    // healthy) leaves the rollout done, not failed and holding the cluster.
    let db = lab.join("nodes/edge-1_2/var/lib/patchdeck/ipd.sqlite");
    let set = |state: &str| {
        rusqlite::Connection::open(&db)
            .expect("node db")
            .execute("UPDATE service SET state=?1", [state])
            .expect("service");
    };
    set("down");
    let out = rollback(&["--group", "B", "--now", "--reason", "bad build"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    set("up");
    let st = status(&lab, &clock, &id);
    assert_eq!(st["state"], "done", "{st:#}");
    assert!(installed_on(&lab, &clock, "edge-2_1", &patch));
    assert!(all_serving(&lab, &clock));
}
