//! The rollout engine against a simulated cluster, over thousands of random
//! failure schedules.
//!
//! The simulation implements [`Env`]: each member has a service state and
//! "files" (the set of patches installed on it), time is virtual (`sleep`
//! advances a clock), and every change is checked against the rules the
//! engine keeps as it happens:
//!
//! - a member is drained only while no member of another group is out of
//!   service and every other group is healthy (never all at once);
//! - a member's files change only while it is drained.
//!
//! After each run the outcome is checked against the failure schedule:
//! a failure halts before the next group; with auto-rollback the failed
//! group's files are as before and it serves again; without failures the
//! rollout is done everywhere; and the journal agrees with what happened.
//! A second property interrupts runs (a simulated kill between any two
//! journal writes or right after a change reached a member, a pause, a
//! resume) and requires the same end as an uninterrupted run.
//!
//! Cases are generated from seeds; a failing case prints its seed and
//! `ROLLOUT_SEED=N` replays just that one.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;

use patchdeck::engine::console;
use patchdeck::engine::fleet::{Cluster, OnFailure};
use patchdeck::engine::groups;
use patchdeck::engine::rollout::journal::{self, StepRow};
use patchdeck::engine::rollout::{Ending, Env, Event, Plan, Runner, State, StepKind, StepState};

const ALWAYS: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
enum Health {
    /// Sick for this many seconds after every restore.
    SlowStart(u64),
    /// Sick while its files differ from what it had before the rollout.
    BadPatch,
    /// Sick from `at` for `secs` seconds of virtual time.
    Flap { at: u64, secs: u64 },
}

/// What goes wrong, and when. Counted faults fail the first `n` calls of
/// that kind on that member (`ALWAYS`: every call).
#[derive(Debug, Clone, Default)]
struct Faults {
    /// Preflight refuses the member (patch not staged / not applied).
    not_ready: BTreeSet<String>,
    /// This hook command fails (every time).
    hook: Option<String>,
    drain: BTreeMap<String, u32>,
    restore: BTreeMap<String, u32>,
    /// Fails after installing (or rolling back) this many of the patches.
    apply: BTreeMap<String, (u32, usize)>,
    revert: BTreeMap<String, u32>,
    health: BTreeMap<String, Health>,
}

impl Faults {
    fn none(&self) -> bool {
        self.not_ready.is_empty()
            && self.hook.is_none()
            && self.drain.is_empty()
            && self.restore.is_empty()
            && self.apply.is_empty()
            && self.revert.is_empty()
            && self.health.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    serving: bool,
    /// The member's "files": which of the patches are installed.
    installed: BTreeSet<String>,
    /// Bumped on every change of `installed`.
    version: u64,
    restored_at: Option<Duration>,
}

/// An interruption of the run, triggered at the n-th journal event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// The console dies right after this journal write.
    KillAfterEvent(usize),
    /// The console dies right after the n-th change reached a member,
    /// before the journal heard of it.
    KillAfterChange(usize),
    Pause(usize),
    Abort(usize),
}

struct World {
    clock: Duration,
    members: BTreeMap<String, Member>,
    /// Group index of each member.
    group: BTreeMap<String, usize>,
    /// What each member had before the rollout.
    before: BTreeMap<String, BTreeSet<String>>,
    faults: Faults,
    /// Calls made, per (kind, node); hooks under ("hook", command).
    calls: BTreeMap<(String, String), u32>,
    /// Every change in order: (kind, node).
    log: Vec<(String, String)>,
    violations: Vec<String>,
    /// Successful changes so far, and the one after which the console dies.
    changes: usize,
    kill_after_change: Option<usize>,
    /// Set when the console "died" inside a change; the runner thread
    /// unwinds at its next journal event.
    killed: bool,
}

struct Sim {
    world: Mutex<World>,
}

fn sick(w: &World, node: &str) -> Option<String> {
    let m = &w.members[node];
    if !m.serving {
        return Some("service down".into());
    }
    match w.faults.health.get(node) {
        Some(Health::SlowStart(s)) => match m.restored_at {
            Some(t) if w.clock < t + Duration::from_secs(*s) => Some("starting".into()),
            _ => None,
        },
        Some(Health::BadPatch) if m.installed != w.before[node] => {
            Some("bad patch: health check fails".into())
        }
        Some(Health::Flap { at, secs })
            if w.clock >= Duration::from_secs(*at) && w.clock < Duration::from_secs(at + secs) =>
        {
            Some("flapping".into())
        }
        _ => None,
    }
}

impl Sim {
    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the call.
    fn count(w: &mut World, kind: &str, node: &str) {
        *w.calls.entry((kind.into(), node.into())).or_default() += 1;
    }

    /// An engine that loops forever instead of halting is caught here:
    /// the clock and the calls are bounded.
    fn runaway(w: &World) -> bool {
        w.clock > Duration::from_secs(24 * 3600) || w.calls.values().sum::<u32>() > 50_000
    }

    /// Whether a counted fault fires.
    fn fires(fault: Option<&mut u32>) -> bool {
        match fault {
            Some(n) if *n > 0 => {
                if *n != ALWAYS {
                    *n -= 1;
                }
                true
            }
            _ => false,
        }
    }

    /// A change reached a member: log it, and maybe "kill the console".
    fn changed(w: &mut World, kind: &str, node: &str) {
        w.log.push((kind.into(), node.into()));
        w.changes += 1;
        if w.kill_after_change == Some(w.changes) {
            w.killed = true;
        }
    }

    fn must_be_drained(w: &mut World, kind: &str, node: &str) {
        if w.members[node].serving {
            w.violations
                .push(format!("{kind} changed {node} while it was in service"));
        }
    }

    /// Installs (or, `add` false, removes) `patches` in order, stopping
    /// after `limit`.
    fn change_files(w: &mut World, node: &str, patches: &[String], add: bool, limit: usize) {
        let m = w.members.get_mut(node).expect("member");
        let mut done = 0;
        let order: Vec<&String> = if add {
            patches.iter().collect()
        } else {
            patches.iter().rev().collect()
        };
        for p in order {
            if done == limit {
                break;
            }
            let changed = if add {
                m.installed.insert(p.clone())
            } else {
                m.installed.remove(p)
            };
            if changed {
                m.version += 1;
                done += 1;
            }
        }
    }
}

impl Env for Sim {
    fn preflight(&self, node: &str, plan: &Plan) -> Result<(), String> {
        let w = self.w();
        if w.faults.not_ready.contains(node) {
            return Err("not staged".into());
        }
        if plan.uninstall
            && !plan
                .patches
                .iter()
                .all(|p| w.members[node].installed.contains(p))
        {
            return Err("not applied".into());
        }
        Ok(())
    }

    fn drain(&self, node: &str, _plan: &Plan) -> Result<(), String> {
        let mut w = self.w();
        let w = &mut *w;
        Sim::count(w, "drain", node);
        if Sim::fires(w.faults.drain.get_mut(node)) {
            return Err("drain failed (injected)".into());
        }
        let g = w.group[node];
        let others: Vec<String> = w
            .group
            .iter()
            .filter(|(_, og)| **og != g)
            .map(|(n, _)| n.clone())
            .collect();
        for o in &others {
            if !w.members[o].serving {
                let v = format!(
                    "drained {node} (group {g}) while {o} (group {}) was out of service",
                    w.group[o]
                );
                w.violations.push(v);
            } else if let Some(why) = sick(w, o) {
                let v = format!("drained {node} while {o} of another group was not healthy: {why}");
                w.violations.push(v);
            }
        }
        w.members.get_mut(node).expect("member").serving = false;
        Sim::changed(w, "drain", node);
        Ok(())
    }

    fn restore(&self, node: &str, _plan: &Plan) -> Result<(), String> {
        let mut w = self.w();
        let w = &mut *w;
        Sim::count(w, "restore", node);
        if Sim::fires(w.faults.restore.get_mut(node)) {
            return Err("restore failed (injected)".into());
        }
        let now = w.clock;
        let m = w.members.get_mut(node).expect("member");
        m.serving = true;
        m.restored_at = Some(now);
        Sim::changed(w, "restore", node);
        Ok(())
    }

    fn apply(&self, node: &str, plan: &Plan) -> Result<String, String> {
        let mut w = self.w();
        let w = &mut *w;
        Sim::must_be_drained(w, "apply", node);
        let partial = w.faults.apply.get(node).map(|f| f.1).unwrap_or(0);
        Sim::count(w, "apply", node);
        let fires = Sim::fires(w.faults.apply.get_mut(node).map(|f| &mut f.0));
        let limit = if fires { partial } else { usize::MAX };
        Sim::change_files(w, node, &plan.patches, !plan.uninstall, limit);
        if fires {
            w.log.push(("apply".into(), node.into()));
            return Err("install failed (injected)".into());
        }
        Sim::changed(w, "apply", node);
        Ok("applied".into())
    }

    fn revert(&self, node: &str, plan: &Plan) -> Result<String, String> {
        let mut w = self.w();
        let w = &mut *w;
        Sim::must_be_drained(w, "revert", node);
        Sim::count(w, "revert", node);
        if Sim::fires(w.faults.revert.get_mut(node)) {
            return Err("revert failed (injected)".into());
        }
        Sim::change_files(w, node, &plan.patches, plan.uninstall, usize::MAX);
        Sim::changed(w, "revert", node);
        Ok("reverted".into())
    }

    fn in_service(&self, node: &str) -> bool {
        self.w().members[node].serving
    }

    fn healthy(&self, node: &str) -> Result<(), String> {
        match sick(&self.w(), node) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn hook(&self, command: &str, _plan: &Plan) -> Result<String, String> {
        let mut w = self.w();
        let w = &mut *w;
        *w.calls.entry(("hook".into(), command.into())).or_default() += 1;
        if w.faults.hook.as_deref() == Some(command) {
            return Err("hook failed (injected)".into());
        }
        Sim::changed(w, "hook", command);
        Ok(String::new())
    }

    fn applied(&self, node: &str) -> Result<Vec<String>, String> {
        Ok(self.w().members[node].installed.iter().cloned().collect())
    }

    fn sleep(&self, d: Duration) {
        let mut w = self.w();
        w.clock += d;
        assert!(
            !Sim::runaway(&w),
            "runaway: the rollout never stops waiting"
        );
    }

    fn now(&self) -> Duration {
        self.w().clock
    }

    fn clock(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::UNIX_EPOCH + self.w().clock
    }
}

/// One generated scenario.
#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    cluster: Cluster,
    members: Vec<(String, String)>,
    asked: Option<usize>,
    patches: Vec<String>,
    uninstall: bool,
    auto_rollback: bool,
    /// Members that already have the patches before the rollout (install).
    pre_applied: BTreeSet<String>,
    faults: Faults,
}

fn gen_case(seed: u64, permanent_only: bool) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(2..=12usize);
    let sites = rng.random_range(1..=3usize).min(n);
    let mut members = Vec::new();
    let mut per_site = vec![0usize; sites];
    for i in 0..n {
        // Every site gets at least one member.
        let s = if i < sites {
            i
        } else {
            rng.random_range(0..sites)
        };
        per_site[s] += 1;
        members.push((format!("c-{}_{}", s + 1, per_site[s]), (s + 1).to_string()));
    }
    members.sort_by(|a, b| groups::natural_cmp(&a.0, &b.0));
    let asked = (sites == 1).then(|| rng.random_range(2..=n.min(4)));
    let hooks_before = rng.random_range(0..=2usize);
    let hooks_after = rng.random_range(0..=2usize);
    let mut cluster = Cluster {
        id: "c".into(),
        groups: None,
        parallel: rng.random_range(1..=4),
        health_deadline_secs: rng.random_range(3..=20),
        min_healthy_secs: rng.random_range(0..=3),
        before: (0..hooks_before).map(|i| format!("before-{i}")).collect(),
        after: (0..hooks_after).map(|i| format!("after-{i}")).collect(),
        drain: None,
        restore: None,
        on_failure: OnFailure::Halt,
        windows: Vec::new(),
    };
    let patches: Vec<String> = (1..=rng.random_range(1..=3))
        .map(|i| format!("P{i}"))
        .collect();
    let uninstall = rng.random_bool(0.25);
    let auto_rollback = rng.random_bool(0.5);
    if auto_rollback {
        cluster.on_failure = OnFailure::Rollback;
    }
    let names: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
    let pick = |rng: &mut ChaCha8Rng| names[rng.random_range(0..names.len())].clone();
    let mut pre_applied = BTreeSet::new();
    if !uninstall && rng.random_bool(0.2) {
        pre_applied.insert(pick(&mut rng));
    }
    let mut f = Faults::default();
    // About one case in five runs clean.
    if rng.random_bool(0.8) {
        let count = |rng: &mut ChaCha8Rng| {
            if permanent_only || rng.random_bool(0.4) {
                ALWAYS
            } else {
                rng.random_range(1..=2)
            }
        };
        for _ in 0..rng.random_range(1..=3) {
            let node = pick(&mut rng);
            match rng.random_range(0..100) {
                0..5 => {
                    f.not_ready.insert(node);
                }
                5..12 if hooks_before + hooks_after > 0 => {
                    let i = rng.random_range(0..hooks_before + hooks_after);
                    f.hook = Some(if i < hooks_before {
                        format!("before-{i}")
                    } else {
                        format!("after-{}", i - hooks_before)
                    });
                }
                12..24 => {
                    f.drain.insert(node, count(&mut rng));
                }
                24..36 => {
                    f.restore.insert(node, count(&mut rng));
                }
                36..62 => {
                    let partial = rng.random_range(0..patches.len());
                    f.apply.insert(node, (count(&mut rng), partial));
                }
                62..70 => {
                    f.revert.insert(node, count(&mut rng));
                }
                70..80 => {
                    f.health.insert(node, Health::BadPatch);
                }
                80..90 => {
                    f.health
                        .insert(node, Health::SlowStart(rng.random_range(1..=25)));
                }
                _ if !permanent_only => {
                    // Virtual time moves only while waiting for health, so
                    // flaps early enough to meet the waits.
                    let at = rng.random_range(1..=6);
                    let secs = rng.random_range(1..=30);
                    f.health.insert(node, Health::Flap { at, secs });
                }
                _ => {}
            }
        }
    }
    Case {
        seed,
        cluster,
        members,
        asked,
        patches,
        uninstall,
        auto_rollback,
        pre_applied,
        faults: f,
    }
}

/// Everything one run leaves behind.
#[derive(Debug)]
struct Outcome {
    ending: Ending,
    state: State,
    plan: Plan,
    steps: Vec<StepRow>,
    members: BTreeMap<String, Member>,
    before: BTreeMap<String, BTreeSet<String>>,
    group: BTreeMap<String, usize>,
    calls: BTreeMap<(String, String), u32>,
    log: Vec<(String, String)>,
    violations: Vec<String>,
    /// Runs it took (1 without interruptions).
    runs: usize,
}

const CRASH: &str = "simulated console crash";

fn quiet_crashes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&CRASH) {
                default(info);
            }
        }));
    });
}

fn run_case(case: &Case, interrupts: &[Interrupt]) -> Outcome {
    quiet_crashes();
    let partition = groups::split("c", &case.members, case.asked).expect("partition");
    let plan = Plan::new(
        &case.cluster,
        &partition,
        &case.patches,
        case.uninstall,
        case.cluster.on_failure,
    );
    let mut members = BTreeMap::new();
    let mut group = BTreeMap::new();
    let mut before = BTreeMap::new();
    for (gi, g) in partition.groups.iter().enumerate() {
        for n in &g.members {
            let installed: BTreeSet<String> = if case.uninstall || case.pre_applied.contains(n) {
                case.patches.iter().cloned().collect()
            } else {
                BTreeSet::new()
            };
            before.insert(n.clone(), installed.clone());
            members.insert(
                n.clone(),
                Member {
                    serving: true,
                    installed,
                    version: 0,
                    restored_at: None,
                },
            );
            group.insert(n.clone(), gi);
        }
    }
    let sim = Sim {
        world: Mutex::new(World {
            clock: Duration::ZERO,
            members,
            group,
            before,
            faults: case.faults.clone(),
            calls: BTreeMap::new(),
            log: Vec::new(),
            violations: Vec::new(),
            changes: 0,
            kill_after_change: None,
            killed: false,
        }),
    };
    let conn: Mutex<Connection> = Mutex::new(console::open_in_memory().expect("console db"));
    let id = {
        let c = conn.lock().expect("db");
        journal::create(&c, &plan)
            .expect("create")
            .expect("cluster free")
    };
    let mut pending: Vec<Interrupt> = interrupts.to_vec();
    let mut runs = 0;
    let ending = loop {
        runs += 1;
        assert!(runs < 200, "seed {}: the rollout never finishes", case.seed);
        // The next interruption, counted from the start of this run.
        let next = pending.first().copied();
        if !pending.is_empty() {
            pending.remove(0);
        }
        sim.w().kill_after_change = match next {
            Some(Interrupt::KillAfterChange(n)) => Some(sim.w().changes + n),
            _ => None,
        };
        sim.w().killed = false;
        let seen = AtomicUsize::new(0);
        let events = |e: &Event| {
            let k = seen.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(
                !Sim::runaway(&sim.w()),
                "seed {}: runaway: the rollout keeps running steps without end",
                case.seed
            );
            if sim.w().killed {
                // The change reached the member but the console died
                // before journaling its outcome: the step is still running.
                if let Some(seq) = e.seq {
                    let c = conn.lock().expect("db");
                    journal::set_step(&c, id, seq, StepState::Running, "").expect("rewind");
                    drop(c);
                }
                std::panic::panic_any(CRASH);
            }
            match next {
                Some(Interrupt::KillAfterEvent(n)) if n == k => std::panic::panic_any(CRASH),
                Some(Interrupt::Pause(n)) if n == k => {
                    let c = conn.lock().expect("db");
                    journal::request(&c, id, "pause").expect("pause");
                }
                Some(Interrupt::Abort(n)) if n == k => {
                    let c = conn.lock().expect("db");
                    journal::request(&c, id, "abort").expect("abort");
                }
                _ => {}
            }
        };
        let runner = Runner::new(&conn, &sim)
            .events(&events)
            .poll(Duration::from_secs(1));
        match std::panic::catch_unwind(AssertUnwindSafe(|| runner.run(id))) {
            Err(p) if p.downcast_ref::<&str>() == Some(&CRASH) => continue,
            Err(p) => std::panic::resume_unwind(p),
            Ok(Err(e)) => panic!("seed {}: runner error: {e}", case.seed),
            Ok(Ok(Ending::Paused)) => continue,
            Ok(Ok(ending)) => break ending,
        }
    };
    // An abort that could not restore everyone stays requested; once the
    // operator has fixed the member, aborting again finishes it.
    let requested = journal::requested(&conn.lock().expect("db"), id).expect("requested");
    let ending = if ending == Ending::Failed && requested == "abort" {
        sim.w().faults = Faults::default();
        let runner = Runner::new(&conn, &sim).poll(Duration::from_secs(1));
        runner.abort(id).expect("abort again")
    } else {
        ending
    };
    let c = conn.lock().expect("db");
    let r = journal::load(&c, id).expect("load").expect("rollout");
    let w = sim.world.into_inner().unwrap_or_else(|p| p.into_inner());
    Outcome {
        ending,
        state: r.state,
        plan: r.plan,
        steps: r.steps,
        members: w.members,
        before: w.before,
        group: w.group,
        calls: w.calls,
        log: w.log,
        violations: w.violations,
        runs,
    }
}

/// The step the rollout halted at: the first failed step of the plan.
fn halting_step(o: &Outcome) -> Option<&StepRow> {
    o.steps
        .iter()
        .filter(|s| s.step.seq <= o.plan.last_seq())
        .find(|s| s.state == StepState::Failed)
}

fn group_index(o: &Outcome, name: &str) -> Option<usize> {
    o.plan.groups.iter().position(|g| g.name == name)
}

/// Whether auto-rollback of group `gi` can only succeed: nothing on its
/// members fails besides the install, and every health problem is one a
/// revert cures.
fn rollback_cannot_fail(case: &Case, o: &Outcome, gi: usize) -> bool {
    let f = &case.faults;
    let g = &o.plan.groups[gi].members;
    let deadline = case.cluster.health_deadline_secs;
    g.iter().all(|n| {
        !f.drain.contains_key(n) && !f.restore.contains_key(n) && !f.revert.contains_key(n)
    }) && f.health.iter().all(|(n, h)| match h {
        Health::Flap { .. } => false,
        Health::SlowStart(s) => !g.contains(n) || *s < deadline,
        Health::BadPatch => true,
    })
}

fn check(case: &Case, o: &Outcome) -> Result<(), String> {
    let fail = |m: String| {
        Err(format!(
            "{m}\ncase: {case:#?}\nending {:?}, state {:?}\nsteps: {:#?}\nlog: {:?}\nmembers: {:#?}",
            o.ending,
            o.state,
            o.steps
                .iter()
                .map(|s| format!(
                    "{} {} {} {} {:?} {}",
                    s.step.seq,
                    s.step.kind.as_str(),
                    s.step.group,
                    s.step.node,
                    s.state,
                    s.message
                ))
                .collect::<Vec<_>>(),
            o.log,
            o.members
        ))
    };
    // (a) Never all at once; nothing changed while serving.
    if let Some(v) = o.violations.first() {
        return fail(format!("rule broken: {v}"));
    }
    let drained_groups: BTreeSet<usize> = o
        .members
        .iter()
        .filter(|(_, m)| !m.serving)
        .map(|(n, _)| o.group[n])
        .collect();
    if drained_groups.len() > 1 {
        return fail(format!(
            "groups {drained_groups:?} are all out of service at the end"
        ));
    }
    let ok_state = match o.ending {
        Ending::Done => o.state == State::Done,
        Ending::Failed => o.state == State::Failed,
        Ending::RolledBack => o.state == State::RolledBack,
        Ending::Aborted => o.state == State::Aborted,
        Ending::Paused => o.state == State::Paused,
    };
    if !ok_state {
        return fail("the recorded state does not match the ending".into());
    }
    // What a member has once the rollout reached it.
    let target = |n: &str| -> BTreeSet<String> {
        if o.plan.uninstall {
            BTreeSet::new()
        } else {
            o.plan.patches.iter().chain(&o.before[n]).cloned().collect()
        }
    };
    // (d) Done means done everywhere; no faults means done.
    if o.ending == Ending::Done {
        for (n, m) in &o.members {
            if m.installed != target(n) || !m.serving {
                return fail(format!("done, but {n} is not patched and serving"));
            }
        }
        if let Some(s) = o.steps.iter().find(|s| s.state != StepState::Done) {
            return fail(format!("done, but step {} is {:?}", s.step.seq, s.state));
        }
    }
    if let Some(s) = o.steps.iter().find(|s| s.state == StepState::Running) {
        return fail(format!("step {} left running", s.step.seq));
    }
    // (f) However it ended, the rollout ran its after-hooks.
    if o.ending != Ending::Paused
        && let Some(s) = o.steps.iter().find(|s| {
            s.step.seq <= o.plan.last_seq()
                && s.step.kind == StepKind::HookAfter
                && s.state == StepState::Pending
        })
    {
        return fail(format!(
            "ended, but after-hook step {} never ran",
            s.step.seq
        ));
    }
    let interrupted_by_abort = o.ending == Ending::Aborted;
    if case.faults.none() && !interrupted_by_abort && o.ending != Ending::Done {
        return fail("no failure was injected, yet the rollout did not finish".into());
    }
    if interrupted_by_abort {
        if let Some((n, _)) = o.members.iter().find(|(_, m)| !m.serving) {
            return fail(format!("aborted, but {n} is still drained"));
        }
        return Ok(());
    }
    // (e) The journal agrees with the calls: every member step that ran is
    // done or failed exactly once per call (nothing is left running, above).
    if o.runs == 1 {
        let mut recorded: BTreeMap<(String, String), u32> = BTreeMap::new();
        for s in &o.steps {
            let key = match s.step.kind {
                StepKind::Drain | StepKind::Apply | StepKind::Restore | StepKind::Revert => {
                    (s.step.kind.as_str().to_string(), s.step.node.clone())
                }
                StepKind::HookBefore | StepKind::HookAfter => {
                    ("hook".to_string(), s.step.command.clone())
                }
                _ => continue,
            };
            // A drain halted while waiting for the other groups made no call.
            let waited = s.step.kind == StepKind::Drain
                && s.message.contains("other members are not healthy");
            if matches!(s.state, StepState::Done | StepState::Failed) && !waited {
                *recorded.entry(key).or_default() += 1;
            }
        }
        if recorded != o.calls {
            return fail(format!(
                "journal and calls disagree:\n journal {recorded:?}\n calls   {:?}",
                o.calls
            ));
        }
    }
    if o.ending == Ending::Done {
        return Ok(());
    }
    // A halt is recorded at the step it happened.
    let Some(halt) = halting_step(o) else {
        return fail("halted, but no step of the plan is marked failed".into());
    };
    let gi = group_index(o, &halt.step.group);
    // (b) Nothing after the failed group was touched; with no group
    // (preflight, hooks before), no member was touched at all.
    let last_touchable = match (gi, halt.step.kind) {
        (Some(gi), _) => Some(gi),
        (None, StepKind::HookAfter | StepKind::Consistency) => Some(usize::MAX),
        (None, _) => None,
    };
    for (kind, node) in &o.log {
        if kind == "hook" {
            continue;
        }
        let g = o.group[node];
        if last_touchable.is_none_or(|l| g > l) {
            return fail(format!(
                "{kind} on {node} (group {g}) after a failure in {}",
                halt.step.group
            ));
        }
    }
    // Groups before the failed one stay done and serving.
    if let Some(gi) = gi {
        for (n, m) in &o.members {
            if o.group[n] < gi && (m.installed != target(n) || !m.serving) {
                return fail(format!("{n} of an earlier group lost its change"));
            }
            if o.group[n] > gi && (m.installed != o.before[n] || !m.serving) {
                return fail(format!("{n} of a later group was changed"));
            }
        }
    }
    // (c) Auto-rollback puts the failed group back as it was.
    match (case.auto_rollback, gi) {
        (true, Some(gi)) => {
            if o.ending == Ending::RolledBack {
                for n in &o.plan.groups[gi].members {
                    let m = &o.members[n];
                    if m.installed != o.before[n] || !m.serving {
                        return fail(format!(
                            "rolled back, but {n} has {:?} (before: {:?}), serving {}",
                            m.installed, o.before[n], m.serving
                        ));
                    }
                }
                if let Some(s) = o
                    .steps
                    .iter()
                    .find(|s| s.step.seq > o.plan.last_seq() && s.state != StepState::Done)
                {
                    return fail(format!(
                        "rolled back, but rollback step {} is {:?}",
                        s.step.seq, s.state
                    ));
                }
            } else if rollback_cannot_fail(case, o, gi) {
                return fail("auto-rollback could not fail, yet it did not roll back".into());
            }
        }
        _ => {
            if o.ending != Ending::Failed {
                return fail("a failure without auto-rollback must end failed".into());
            }
            for (n, m) in &o.members {
                if gi.is_none_or(|gi| o.group[n] != gi) && !m.serving {
                    return fail(format!("{n} is out of service outside the failed group"));
                }
            }
        }
    }
    Ok(())
}

/// One line per kind of problem, with how often it came up.
fn summary(problems: &[String]) -> String {
    let mut kinds: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for p in problems {
        let first = p.lines().next().unwrap_or_default();
        // "seed N ...: what" -> what, without node names and numbers.
        let what = first.split(": ").skip(1).collect::<Vec<_>>().join(": ");
        let key: String = what
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        let e = kinds.entry(key).or_insert((0, first.to_string()));
        e.0 += 1;
    }
    kinds
        .values()
        .map(|(n, example)| format!("{n:5} x {example}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("ROLLOUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => default.collect(),
    }
}

/// ≥ 1,000 random failure schedules: the rules hold at every instant and
/// every outcome is the one the schedule calls for.
#[test]
fn random_failure_schedules_keep_the_rules() {
    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for seed in seeds(0..1200) {
        let case = gen_case(seed, false);
        let o = run_case(&case, &[]);
        *endings.entry(format!("{:?}", o.ending)).or_default() += 1;
        if let Err(e) = check(&case, &o) {
            problems.push(format!("seed {seed}: {e}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of the schedules broke a rule:\n{}\nfirst:\n{}",
        problems.len(),
        summary(&problems),
        problems[0]
    );
    // The schedules reach every kind of ending.
    eprintln!("endings: {endings:?}");
    if std::env::var("ROLLOUT_SEED").is_err() {
        for e in ["Done", "Failed", "RolledBack"] {
            assert!(endings.get(e).copied().unwrap_or(0) >= 50, "{endings:?}");
        }
    }
}

/// The state a run leaves that an operator could tell apart: the world,
/// the rollout's state and every step's state.
fn fingerprint(o: &Outcome) -> String {
    let members: Vec<String> = o
        .members
        .iter()
        .map(|(n, m)| format!("{n} {:?} serving={}", m.installed, m.serving))
        .collect();
    let steps: Vec<String> = o
        .steps
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {:?}",
                s.step.kind.as_str(),
                s.step.group,
                s.step.node,
                s.state
            )
        })
        .collect();
    format!(
        "{:?} {:?}\n{}\n{}",
        o.ending,
        o.state,
        members.join("\n"),
        steps.join("\n")
    )
}

/// Killing the console at random moments (between any two journal writes,
/// or after a change reached a member and before the journal heard of it),
/// pausing and resuming: the end is exactly that of an uninterrupted run,
/// and the rules hold throughout.
#[test]
fn kills_and_pauses_end_like_an_uninterrupted_run() {
    let mut problems = Vec::new();
    let mut kills = 0;
    for seed in seeds(10_000..10_400) {
        // Faults that fire every time, so a retried step fails the same way.
        let case = gen_case(seed, true);
        let clean = run_case(&case, &[]);
        let events = 1 + clean.steps.len() * 2;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let interrupts: Vec<Interrupt> = (0..rng.random_range(1..=4))
            .map(|_| match rng.random_range(0..10) {
                0..4 => Interrupt::KillAfterEvent(rng.random_range(1..=events)),
                4..8 => Interrupt::KillAfterChange(rng.random_range(1..=clean.log.len().max(1))),
                _ => Interrupt::Pause(rng.random_range(1..=events)),
            })
            .collect();
        kills += interrupts
            .iter()
            .filter(|i| !matches!(i, Interrupt::Pause(_)))
            .count();
        let o = run_case(&case, &interrupts);
        if let Err(e) = check(&case, &o) {
            problems.push(format!("seed {seed} {interrupts:?}: {e}"));
            continue;
        }
        let (a, b) = (fingerprint(&clean), fingerprint(&o));
        if a != b {
            problems.push(format!(
                "seed {seed} {interrupts:?}: interrupted run ends differently\nuninterrupted:\n{a}\ninterrupted:\n{b}\ncase: {case:#?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} interrupted runs went wrong:\n{}\nfirst:\n{}",
        problems.len(),
        summary(&problems),
        problems[0]
    );
    if std::env::var("ROLLOUT_SEED").is_err() {
        assert!(kills >= 300, "{kills} kills");
    }
}

/// An abort requested at any moment stops the rollout with every member
/// serving, and never drains two groups.
#[test]
fn abort_at_any_moment_leaves_every_member_serving() {
    let mut problems = Vec::new();
    for seed in seeds(20_000..20_200) {
        let case = gen_case(seed, false);
        let clean = run_case(&case, &[]);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xab07);
        let at = rng.random_range(1..=1 + clean.steps.len() * 2);
        let o = run_case(&case, &[Interrupt::Abort(at)]);
        if let Err(e) = check(&case, &o) {
            problems.push(format!("seed {seed} abort at event {at}: {e}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} aborts went wrong:\n{}\nfirst:\n{}",
        problems.len(),
        summary(&problems),
        problems[0]
    );
}
