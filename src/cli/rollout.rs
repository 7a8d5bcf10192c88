//! `rollout start|status|list|pause|resume|abort`: gradual rollouts on a
//! cluster. A rollout runs in its own process (`rollout run`, started by
//! `start` and `resume` in a session of its own), so closing the terminal
//! or Ctrl-C stops only the command following it, never the rollout.

use crate::front::{say, shout};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::global::Global;
use super::nodes::load_fleet;
use crate::engine::console;
use crate::engine::fleet::OnFailure;
use crate::engine::journal::{Journal, Source};
use crate::engine::lab::Lab;
use crate::engine::rollout::fleet_env::FleetEnv;
use crate::engine::rollout::prepare::{self, Prepared};
use crate::engine::rollout::{
    self, ClusterLock, Ending, Event, Rollout, Runner, State, StepState, journal,
};
use crate::front::{Failure, Outcome, open_depot, print_json};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Plan and run a rollout: drain, install, restore and check each group in turn.
    Start(StartArgs),
    /// A rollout's groups, steps and state (default: the newest).
    Status(IdArgs),
    /// Every rollout, newest first, with its state.
    List(ListArgs),
    /// Stop between steps; `resume` carries on.
    Pause(IdArgs),
    /// Carry on with a paused, failed or interrupted rollout.
    Resume(IdArgs),
    /// Stop and bring every drained member back into service.
    Abort(IdArgs),
    /// Roll one group of a rollout back (draining it first if it serves).
    Rollback(RollbackArgs),
    /// Run a recorded rollout in this process (what `start` and `resume`
    /// start in the background).
    #[command(hide = true)]
    Run(RunArgs),
}

/// The `--on-failure` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailurePolicy {
    /// Roll the failed group back and restore it.
    Rollback,
    /// Leave the failed group drained for inspection.
    Halt,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this cluster's rollouts.
    #[arg(long, value_name = "C")]
    cluster: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Rollout id (default: the newest).
    id: Option<i64>,
    /// The group to roll back (A, B, ...).
    #[arg(long, value_name = "G")]
    group: String,
    /// Roll back now even if the cluster's maintenance windows are closed.
    /// Needs --reason.
    #[arg(long)]
    now: bool,
    /// Why --now is needed; journaled with the operator's name.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    id: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(long, value_name = "C")]
    cluster: String,
    /// Patch ids or product specs.
    #[arg(required = true, value_name = "PATCH")]
    patches: Vec<String>,
    /// Roll the patches back group by group instead of installing them.
    #[arg(long)]
    uninstall: bool,
    /// What a failed step does to its group (default: the cluster's
    /// `on_failure`, else rollback).
    #[arg(long, value_enum, value_name = "POLICY")]
    on_failure: Option<FailurePolicy>,
    /// The old spelling of `--on-failure rollback`.
    #[arg(long, conflicts_with = "on_failure")]
    auto_rollback: bool,
    /// Start the rollout and return at once (`rollout status --follow`
    /// follows it).
    #[arg(long)]
    detach: bool,
    /// Groups for a single-site cluster (default: the cluster's setting, else 2).
    #[arg(long, value_name = "N")]
    groups: Option<usize>,
    /// Print the plan (groups, and each step with its command); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Start even when the cluster's members differ (see `patchdeck drift`).
    #[arg(long)]
    allow_drift: bool,
    /// Start now, whatever the cluster's maintenance windows say, and go on
    /// past their cutoffs. Needs --reason.
    #[arg(long)]
    now: bool,
    /// Why --now is needed; journaled with the operator's name.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Rollout id (default: the newest).
    id: Option<i64>,
    /// Status only: keep printing steps as they change until the rollout stops.
    #[arg(long)]
    follow: bool,
    /// Resume only: return once the rollout is running again.
    #[arg(long)]
    detach: bool,
    #[arg(long)]
    pub json: bool,
}

impl RolloutCommand {
    pub fn json(&self) -> bool {
        match self {
            RolloutCommand::Start(a) => a.json,
            RolloutCommand::List(a) => a.json,
            RolloutCommand::Rollback(a) => a.json,
            RolloutCommand::Run(a) => a.json,
            RolloutCommand::Status(a)
            | RolloutCommand::Pause(a)
            | RolloutCommand::Resume(a)
            | RolloutCommand::Abort(a) => a.json,
        }
    }
}

pub fn run(global: &Global, command: RolloutCommand) -> Outcome {
    match command {
        RolloutCommand::Start(args) => start(global, args),
        RolloutCommand::Status(args) => status(global, args),
        RolloutCommand::Pause(args) => pause(global, args),
        RolloutCommand::Resume(args) => resume(global, args),
        RolloutCommand::Abort(args) => abort(global, args),
        RolloutCommand::List(args) => list(global, args),
        RolloutCommand::Rollback(args) => rollback_group(global, args),
        RolloutCommand::Run(args) => {
            let lab = global.lab();
            let fleet = load_fleet(&lab)?;
            execute(&lab, &fleet, args.id, args.json)
        }
    }
}

fn db_err(lab: &Lab) -> impl Fn(rusqlite::Error) -> Failure + '_ {
    move |e| Failure::Failed(format!("{}: {e}", lab.db_path().display()))
}

fn start(global: &Global, args: StartArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let depot = open_depot(&lab.depot_dir())?;
    depot
        .check_specs(&args.patches)
        .map_err(|e| Failure::Input(e.to_string()))?;
    let on_failure = match (args.on_failure, args.auto_rollback) {
        (Some(FailurePolicy::Halt), _) => Some(OnFailure::Halt),
        (Some(FailurePolicy::Rollback), _) | (None, true) => Some(OnFailure::Rollback),
        (None, false) => None,
    };
    let window_override = window_override(args.now, args.reason.as_deref())?;
    let request = prepare::Request {
        cluster: args.cluster.clone(),
        specs: args.patches.clone(),
        uninstall: args.uninstall,
        groups: args.groups,
        on_failure,
        window_override,
    };
    let prepared = prepare::prepare(&fleet, &depot, &request).map_err(prepare_failure)?;
    if !args.uninstall {
        // The lab's trust policy over everything the rollout would install.
        crate::engine::trust::Gate::for_lab(&lab)
            .map_err(|e| Failure::Input(e.to_string()))?
            .may_use_all(&depot, prepared.plan.patches.iter().map(String::as_str))
            .map_err(|e| Failure::Input(e.to_string()))?;
    }
    for w in &prepared.warnings {
        shout!("warning: {w}");
    }
    let gate = crate::engine::drift::rollout_gate(
        &lab,
        &fleet,
        &|id: &str| {
            depot
                .get(id)
                .map(|p| crate::engine::components::component_of(&p.manifest))
        },
        &args.cluster,
        &prepared.plan.patches,
        args.allow_drift,
        !args.dry_run,
    )
    .map_err(|e| Failure::Failed(e.to_string()))?;
    if let crate::engine::drift::Gate::Allowed(note) = &gate {
        shout!("patchdeck: {note}");
    }
    if args.dry_run {
        return print_plan(&prepared, args.json);
    }
    let plan = &prepared.plan;
    let busy = |lab: &Lab| -> Result<Option<String>, Failure> {
        let conn = console::open(lab).map_err(db_err(lab))?;
        Ok(journal::unfinished(&conn, &plan.cluster)
            .map_err(db_err(lab))?
            .map(|id| held_by(lab, &conn, id)))
    };
    if let Some(m) = busy(&lab)? {
        return Err(Failure::Failed(m));
    }
    let ready = prepare::readiness(&lab, &fleet, plan);
    if let Some(refusal) = prepare::refusal(plan, &ready) {
        // A rollout started meanwhile (draining members) is the reason.
        return Err(Failure::Failed(busy(&lab)?.unwrap_or(refusal)));
    }
    let conn = console::open(&lab).map_err(db_err(&lab))?;
    let id = match journal::create(&conn, plan).map_err(db_err(&lab))? {
        Ok(id) => id,
        Err(existing) => return Err(Failure::Failed(held_by(&lab, &conn, existing))),
    };
    if let Some(reason) = &plan.window_override {
        // Journaled before anything runs; a rollout whose override cannot
        // be recorded does not start.
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let recorded = Journal::open_as(&lab, &command, Source::Rollout(id)).and_then(|j| {
            j.record(
                &plan.cluster,
                &plan.patches.join(","),
                "window_override",
                true,
                &format!(
                    "rollout {id} on {} started with --now, outside its maintenance windows if need be: {reason}",
                    plan.cluster
                ),
            )
        });
        if let Err(e) = recorded {
            let m = format!("the window override could not be journaled: {e}");
            journal::set_state(&conn, id, State::Aborted, &m).map_err(db_err(&lab))?;
            return Err(Failure::Failed(format!("rollout {id} not started: {m}")));
        }
    }
    drop(conn);
    background(&lab, id, args.detach, args.json)
}

/// `--now --reason TEXT`: the reason, or `None` without `--now`; either
/// flag alone, or an empty reason, is bad usage.
fn window_override(now: bool, reason: Option<&str>) -> Result<Option<String>, Failure> {
    match (now, reason.map(str::trim)) {
        (true, Some(r)) if !r.is_empty() => Ok(Some(r.to_string())),
        (true, _) => Err(Failure::Input(
            "--now needs --reason TEXT, which is journaled with your name".into(),
        )),
        (false, Some(_)) => Err(Failure::Input("--reason goes with --now".into())),
        (false, None) => Ok(None),
    }
}

fn prepare_failure(e: prepare::PrepareError) -> Failure {
    if e.is_input() {
        Failure::Input(e.to_string())
    } else {
        Failure::Failed(e.to_string())
    }
}

/// Starts `rollout run ID` in a session of its own with its output in the
/// lab's logs, then follows it (or, detached, says where it runs).
fn background(lab: &Lab, id: i64, detach: bool, json: bool) -> Outcome {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Failed(format!("cannot find the patchdeck binary: {e}")))?;
    let logs = lab.root.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| Failure::Failed(format!("{}: {e}", logs.display())))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
    let log: PathBuf = logs.join(format!("rollout-{id}-{stamp}.log"));
    let out = std::fs::File::create(&log)
        .map_err(|e| Failure::Failed(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["rollout", "run", &id.to_string(), "--lab"])
        .arg(&lab.root)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid in the child before exec touches no shared state; it
    // keeps the terminal's hangup and Ctrl-C away from the rollout.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Failed(format!("cannot start rollout {id}: {e}")))?;
    // This command may exit before the runner takes the rollout up; the
    // runner's pid says it is starting, not that its starter died.
    if let Ok(conn) = console::open(lab) {
        let _ = journal::hand_to(&conn, id, child.id());
    }
    if detach {
        let r = load(lab, Some(id))?;
        if json {
            return print_json(&serde_json::json!({
                "rollout": id, "cluster": r.cluster, "state": r.state, "pid": child.id(), "log": log,
            }));
        }
        say!(
            "rollout {id} on {} started in pid {}; `patchdeck rollout status {id} --follow` follows it (log {})",
            r.cluster,
            child.id(),
            log.display()
        );
        return Ok(());
    }
    let mut printer = Printer::default();
    loop {
        let exited = child
            .try_wait()
            .map_err(|e| Failure::Failed(e.to_string()))?
            .is_some();
        let r = load(lab, Some(id))?;
        printer.steps(&r, json);
        printer.waiting(&r, json);
        // Another live process took the rollout (two resumes at once: the
        // cluster lock let one run): follow that one instead.
        let elsewhere = (matches!(r.state, State::Running | State::Waiting)
            && rollout::is_running(lab, &r))
            || (!r.state.ended()
                && rollout::lock_holder(lab, &r.cluster).is_some_and(|h| h.pid != child.id()));
        if exited && !elsewhere {
            if r.state.active() {
                // The runner stopped without a word in the journal: its
                // log says why (e.g. it could not take the cluster).
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = said.lines().rev().take(3).collect();
                if !tail.is_empty() {
                    shout!(
                        "rollout {id}: its runner said: {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                    );
                }
            }
            return ended(&r, json);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The last word on a rollout whose runner has stopped, and the exit status.
fn ended(r: &Rollout, json: bool) -> Outcome {
    if json {
        say!(
            "{}",
            serde_json::json!({ "rollout": r.id, "cluster": r.cluster, "state": r.state, "message": r.message })
        );
    } else {
        say!(
            "rollout {} on {}: {}{}",
            r.id,
            r.cluster,
            r.state.as_str(),
            if r.message.is_empty() {
                String::new()
            } else {
                format!(": {}", r.message)
            }
        );
    }
    match r.state {
        State::Done | State::Paused | State::Aborted => Ok(()),
        State::Failed | State::RolledBack => Err(Failure::Reported(
            1,
            format!("rollout {} failed: {}", r.id, r.message),
        )),
        State::Pending | State::Waiting | State::Running => Err(Failure::Failed(format!(
            "rollout {} was interrupted: its runner stopped; `patchdeck rollout resume {}` carries on",
            r.id, r.id
        ))),
    }
}

/// Prints each step once when it finishes, in the order they finish, and
/// each new reason a rollout waits for a maintenance window.
#[derive(Default)]
struct Printer {
    shown: BTreeSet<(usize, &'static str)>,
    waiting: String,
    /// Steps done of all, while following on a terminal.
    bar: Option<indicatif::ProgressBar>,
}

impl Printer {
    fn waiting(&mut self, r: &Rollout, json: bool) {
        if r.state != State::Waiting || r.message == self.waiting {
            return;
        }
        self.waiting = r.message.clone();
        if !json {
            // The message says `waiting for ...` itself.
            say!("rollout {}: {}", r.id, r.message);
            return;
        }
        let e = Event::rollout(r.id, r.state.as_str(), &r.message);
        print_event(&e, json);
    }

    fn steps(&mut self, r: &Rollout, json: bool) {
        for s in r
            .steps
            .iter()
            .filter(|s| matches!(s.state, StepState::Done | StepState::Failed))
        {
            if !self.shown.insert((s.step.seq, s.state.as_str())) {
                continue;
            }
            let e = Event {
                rollout: r.id,
                seq: Some(s.step.seq),
                kind: s.step.kind.as_str().into(),
                group: s.step.group.clone(),
                node: s.step.node.clone(),
                state: s.state.as_str().into(),
                message: s.message.clone(),
            };
            print_event(&e, json);
        }
    }
}

/// Why a cluster is not free: who holds it, or what is left unfinished.
fn held_by(lab: &Lab, conn: &rusqlite::Connection, id: i64) -> String {
    match journal::load(conn, id) {
        Ok(Some(r)) if rollout::is_running(lab, &r) => format!(
            "cluster {} is busy: rollout {id} is {} in pid {} (since {}); only one rollout runs on a cluster",
            r.cluster,
            if r.state == State::Pending {
                "starting"
            } else {
                "running"
            },
            r.pid,
            r.created_at
        ),
        Ok(Some(r)) => format!(
            "cluster {} has unfinished rollout {id} ({}); `patchdeck rollout resume {id}` or `patchdeck rollout abort {id}` first",
            r.cluster,
            describe_state(lab, &r)
        ),
        _ => format!("cluster has unfinished rollout {id}"),
    }
}

fn describe_state(lab: &Lab, r: &Rollout) -> String {
    match r.state {
        State::Running | State::Pending | State::Waiting if !rollout::is_running(lab, r) => {
            format!("interrupted: its runner, pid {}, died", r.pid)
        }
        s => s.as_str().to_string(),
    }
}

/// Runs rollout `id` here, holding its cluster, printing events live.
pub(crate) fn execute(
    lab: &Lab,
    fleet: &crate::engine::fleet::Fleet,
    id: i64,
    json: bool,
) -> Outcome {
    let conn = Mutex::new(console::open(lab).map_err(db_err(lab))?);
    let cluster = {
        let c = conn
            .lock()
            .map_err(|_| Failure::Failed("console database lock poisoned".into()))?;
        let r = journal::load(&c, id)
            .map_err(db_err(lab))?
            .ok_or_else(|| Failure::Input(format!("no rollout {id}")))?;
        if r.state.ended() {
            return Err(Failure::Failed(format!(
                "rollout {id} is {}; there is nothing left to run",
                r.state.as_str()
            )));
        }
        r.cluster
    };
    let _lock = ClusterLock::acquire(lab, &cluster, id).map_err(Failure::Failed)?;
    let env = FleetEnv::new(lab, fleet, id);
    let print = |e: &Event| print_event(e, json);
    let runner = Runner::new(&conn, &env).events(&print);
    let ending = runner.run(id).map_err(Failure::Failed)?;
    let c = conn
        .lock()
        .map_err(|_| Failure::Failed("console database lock poisoned".into()))?;
    let r = journal::load(&c, id)
        .map_err(db_err(lab))?
        .ok_or_else(|| Failure::Failed(format!("rollout {id} vanished")))?;
    if json {
        say!(
            "{}",
            serde_json::json!({ "rollout": id, "cluster": r.cluster, "ending": ending, "state": r.state, "message": r.message })
        );
    } else {
        say!(
            "rollout {id} on {}: {}{}",
            r.cluster,
            r.state.as_str(),
            if r.message.is_empty() {
                String::new()
            } else {
                format!(": {}", r.message)
            }
        );
    }
    match ending {
        Ending::Done | Ending::Paused | Ending::Aborted => Ok(()),
        Ending::Failed | Ending::RolledBack => Err(Failure::Reported(
            1,
            format!("rollout {id} halted: {}", r.message),
        )),
    }
}

fn print_event(e: &Event, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(e) {
            say!("{line}");
        }
        return;
    }
    if e.seq.is_none() {
        say!(
            "rollout {}: {}{}",
            e.rollout,
            e.state,
            if e.message.is_empty() {
                String::new()
            } else {
                format!(": {}", e.message)
            }
        );
        return;
    }
    if e.state == "running" {
        return;
    }
    let group = if e.group.is_empty() {
        "-".to_string()
    } else {
        e.group.clone()
    };
    say!(
        "  {:>3}. [{group}] {:<12} {:<11} {:<7} {}",
        e.seq.unwrap_or_default(),
        e.node,
        e.kind,
        e.state,
        e.message
    );
}

/// What a failure does under a policy, in plain words.
fn policy_words(p: OnFailure) -> &'static str {
    match p {
        OnFailure::Rollback => "the failed group is rolled back and restored",
        OnFailure::Halt => "the failed group stays drained for inspection",
    }
}

fn print_plan(prepared: &Prepared, json: bool) -> Outcome {
    let plan = &prepared.plan;
    if json {
        let mut body = serde_json::to_value(plan).map_err(|e| Failure::Failed(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.insert("warnings".into(), serde_json::json!(prepared.warnings));
            let why: Vec<serde_json::Value> = prepared
                .patches
                .iter()
                .map(|p| serde_json::json!({ "id": p.id, "reason": p.reason }))
                .collect();
            o.insert("reasons".into(), serde_json::json!(why));
        }
        return print_json(&body);
    }
    let what = if plan.uninstall {
        "uninstall"
    } else {
        "install"
    };
    say!(
        "plan: {what} {} on cluster {} ({} at a time within a group)",
        plan.patches.join(" "),
        plan.cluster,
        plan.parallel
    );
    for p in &prepared.patches {
        say!("  {}: {}", p.id, p.reason);
    }
    say!(
        "on failure: {} ({})",
        plan.on_failure.as_str(),
        policy_words(plan.on_failure)
    );
    if let Some(w) = window_words(plan) {
        say!("{w}");
    }
    for g in &plan.groups {
        say!("  group {}: {}", g.name, g.members.join(" "));
    }
    for s in &plan.steps {
        let group = if s.group.is_empty() {
            "-".to_string()
        } else {
            s.group.clone()
        };
        say!(
            "  {:>3}. [{group}] {:<11} {}",
            s.seq,
            s.kind.as_str(),
            s.command
        );
    }
    say!("dry run: nothing was changed");
    Ok(())
}

/// A plan's maintenance windows now, for `status --json`: `null` without
/// windows; else whether one is open and a group may be drained, the
/// stretch open now or next (`opens`, `closes`, `cutoff`), when a group
/// may next be drained if not now (`waiting_until`), and the override's
/// reason, if any.
fn window_json(plan: &crate::engine::rollout::Plan) -> serde_json::Value {
    use crate::engine::window::{self, Schedule};
    let Ok(schedule) = Schedule::parse(&plan.windows) else {
        return serde_json::Value::Null;
    };
    if schedule.is_empty() {
        return serde_json::Value::Null;
    }
    let now = window::now();
    let span = schedule.span_from(now);
    let gate = schedule.gate(now);
    serde_json::json!({
        "open": span.is_some_and(|s| s.contains(now)),
        "may_drain": gate.may_drain(),
        "waiting_until": gate.next().map(|s| s.opens),
        "now": now,
        "opens": span.map(|s| s.opens),
        "closes": span.map(|s| s.closes),
        "cutoff": span.map(|s| s.cutoff),
        "override": plan.window_override,
    })
}

/// One line on the plan's windows for the dry run, or `None` without any.
fn window_words(plan: &crate::engine::rollout::Plan) -> Option<String> {
    use crate::engine::window::{self, Gate, Schedule};
    if plan.windows.is_empty() {
        return None;
    }
    if let Some(reason) = &plan.window_override {
        return Some(format!("maintenance windows: overridden (--now): {reason}"));
    }
    let schedule = Schedule::parse(&plan.windows).ok()?;
    Some(match schedule.gate(window::now()) {
        Gate::Open(s) => format!(
            "maintenance windows: open now until {}; no group drained from {}",
            window::show(s.closes, s.tz),
            window::show(s.cutoff, s.tz)
        ),
        g => match g.next() {
            Some(n) => format!(
                "maintenance windows: closed now; the rollout waits until {} (no group drained from {})",
                window::show(n.opens, n.tz),
                window::show(n.cutoff, n.tz)
            ),
            None => "maintenance windows: none opens again".to_string(),
        },
    })
}

fn load(lab: &Lab, id: Option<i64>) -> Result<Rollout, Failure> {
    let conn = console::open(lab).map_err(db_err(lab))?;
    let id = match id {
        Some(id) => id,
        None => journal::latest(&conn, None)
            .map_err(db_err(lab))?
            .ok_or_else(|| Failure::Failed("no rollout yet".into()))?,
    };
    journal::load(&conn, id)
        .map_err(db_err(lab))?
        .ok_or_else(|| Failure::Input(format!("no rollout {id}")))
}

/// Progress of each group: steps done of all, and the group's state.
fn group_lines(lab: &Lab, r: &Rollout) -> Vec<serde_json::Value> {
    let live = rollout::is_running(lab, r);
    r.plan
        .groups
        .iter()
        .map(|g| {
            let total = r.steps.iter().filter(|s| s.step.group == g.name).count();
            let done = r
                .steps
                .iter()
                .filter(|s| s.step.group == g.name && s.state == StepState::Done)
                .count();
            let state = r.group_state(&g.name, live);
            serde_json::json!({ "name": g.name, "members": g.members, "done": done, "total": total, "state": state })
        })
        .collect()
}

fn status(global: &Global, args: IdArgs) -> Outcome {
    let lab = global.lab();
    let mut r = load(&lab, args.id)?;
    let mut printer = Printer::default();
    loop {
        if args.json && !args.follow {
            let current = r.next_step().map(|s| s.step.seq);
            let body = serde_json::json!({
                "id": r.id, "cluster": r.cluster, "state": r.state, "interrupted": r.state.active() && !rollout::is_running(&lab, &r),
                "window": window_json(&r.plan),
                "on_failure": r.plan.on_failure.as_str(),
                "message": r.message, "requested": r.requested, "pid": r.pid, "patches": r.plan.patches, "uninstall": r.plan.uninstall,
                "groups": group_lines(&lab, &r), "current_step": current, "steps": r.steps,
            });
            return print_json(&body);
        }
        if !args.follow {
            say!(
                "rollout {} on {}: {} ({})",
                r.id,
                r.cluster,
                describe_state(&lab, &r),
                r.plan.patches.join(" ")
            );
            if !r.message.is_empty() {
                say!("  {}", r.message);
            }
            say!(
                "  on failure: {} ({})",
                r.plan.on_failure.as_str(),
                policy_words(r.plan.on_failure)
            );
            for g in group_lines(&lab, &r) {
                say!(
                    "  group {}: {}/{} steps, {}",
                    g["name"].as_str().unwrap_or(""),
                    g["done"],
                    g["total"],
                    g["state"].as_str().unwrap_or("")
                );
            }
            if let Some(s) = r.next_step() {
                say!(
                    "  next: step {} {} {} ({})",
                    s.step.seq,
                    s.step.kind.as_str(),
                    s.step.node,
                    s.state.as_str()
                );
            }
            return Ok(());
        }
        // Follow: print step changes as they land in the journal, under a
        // bar of the steps done (on a terminal, without --json).
        let bar = printer.bar.get_or_insert_with(|| {
            crate::front::progress(
                r.steps.len() as u64,
                &format!("rollout {}", r.id),
                args.json,
            )
        });
        let done = r
            .steps
            .iter()
            .filter(|s| matches!(s.state, StepState::Done | StepState::Failed))
            .count();
        bar.set_position(done as u64);
        let bar = bar.clone();
        bar.suspend(|| {
            printer.steps(&r, args.json);
            printer.waiting(&r, args.json);
        });
        if !rollout::is_running(&lab, &r) {
            bar.finish_and_clear();
            let e = Event::rollout(r.id, &describe_state(&lab, &r), &r.message);
            print_event(&e, args.json);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
        r = load(&lab, Some(r.id))?;
    }
}

fn pause(global: &Global, args: IdArgs) -> Outcome {
    let lab = global.lab();
    let r = load(&lab, args.id)?;
    let conn = console::open(&lab).map_err(db_err(&lab))?;
    match r.state {
        s if s.active() && rollout::is_running(&lab, &r) => {
            journal::request(&conn, r.id, "pause").map_err(db_err(&lab))?;
            say!(
                "rollout {}: pause requested; no new step starts, and steps already running finish",
                r.id
            );
        }
        s if s.active() => {
            journal::set_state(&conn, r.id, State::Paused, "paused while interrupted")
                .map_err(db_err(&lab))?;
            say!("rollout {}: paused (its console had died)", r.id);
        }
        State::Paused => say!("rollout {}: already paused", r.id),
        s => {
            return Err(Failure::Failed(format!(
                "rollout {} is {}; only a running rollout can pause",
                r.id,
                s.as_str()
            )));
        }
    }
    Ok(())
}

fn resume(global: &Global, args: IdArgs) -> Outcome {
    let lab = global.lab();
    let r = load(&lab, args.id)?;
    if !r.state.unfinished() {
        return Err(Failure::Failed(format!(
            "rollout {} is {}; there is nothing to resume",
            r.id,
            r.state.as_str()
        )));
    }
    if rollout::is_running(&lab, &r) && r.pid != std::process::id() as i64 {
        let conn = console::open(&lab).map_err(db_err(&lab))?;
        return Err(Failure::Failed(held_by(&lab, &conn, r.id)));
    }
    background(&lab, r.id, args.detach, args.json)
}

fn list(global: &Global, args: ListArgs) -> Outcome {
    let lab = global.lab();
    let conn = console::open(&lab).map_err(db_err(&lab))?;
    let ids = journal::ids(&conn, args.cluster.as_deref()).map_err(db_err(&lab))?;
    if let Some(cluster) = &args.cluster
        && ids.is_empty()
        && let Ok(fleet) = crate::engine::fleet::Fleet::load_in(&lab.fleet_path(), &lab.root)
        && !fleet.clusters.iter().any(|c| &c.id == cluster)
    {
        // A cluster gone from the fleet keeps its rollouts; one that never
        // had any and is not in the fleet is a mistyped id.
        return Err(Failure::Input(format!(
            "unknown cluster {cluster:?}: not in {}",
            lab.fleet_path().display()
        )));
    }
    let mut rows = Vec::new();
    for id in ids {
        if let Some(r) = journal::load(&conn, id).map_err(db_err(&lab))? {
            rows.push(r);
        }
    }
    if args.json {
        let body: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "cluster": r.cluster, "state": r.state,
                    "interrupted": r.state.active() && !rollout::is_running(&lab, r),
                    "patches": r.plan.patches, "uninstall": r.plan.uninstall,
                    "on_failure": r.plan.on_failure.as_str(),
                    "created_at": r.created_at, "updated_at": r.updated_at, "message": r.message,
                })
            })
            .collect();
        return print_json(&body);
    }
    if rows.is_empty() {
        say!("no rollout yet");
    }
    for r in &rows {
        let what = if r.plan.uninstall {
            "uninstall"
        } else {
            "install"
        };
        say!(
            "{:>4}  {:<10} {:<28} {} {what} {}",
            r.id,
            r.cluster,
            describe_state(&lab, r),
            r.created_at,
            r.plan.patches.join(" ")
        );
    }
    Ok(())
}

fn abort(global: &Global, args: IdArgs) -> Outcome {
    let lab = global.lab();
    let r = load(&lab, args.id)?;
    if !r.state.unfinished() {
        return Err(Failure::Failed(format!(
            "rollout {} is {}; there is nothing to abort",
            r.id,
            r.state.as_str()
        )));
    }
    if rollout::is_running(&lab, &r) {
        let conn = console::open(&lab).map_err(db_err(&lab))?;
        journal::request(&conn, r.id, "abort").map_err(db_err(&lab))?;
        say!(
            "rollout {}: abort requested; no new step starts, and once the steps in progress end every drained member is restored and the after-hooks run",
            r.id
        );
        return Ok(());
    }
    let fleet = load_fleet(&lab)?;
    let conn = Mutex::new(console::open(&lab).map_err(db_err(&lab))?);
    let _lock = ClusterLock::acquire(&lab, &r.cluster, r.id).map_err(Failure::Failed)?;
    let env = FleetEnv::new(&lab, &fleet, r.id);
    let print = |e: &Event| print_event(e, args.json);
    let runner = Runner::new(&conn, &env).events(&print);
    match runner.abort(r.id).map_err(Failure::Failed)? {
        Ending::Aborted => Ok(()),
        // Some drained member could not be restored: the rollout stays
        // failed with the abort requested, and says which and why.
        _ => Err(Failure::Failed(load(&lab, Some(r.id))?.message)),
    }
}

fn rollback_group(global: &Global, args: RollbackArgs) -> Outcome {
    let lab = global.lab();
    let r = load(&lab, args.id)?;
    if !r.plan.groups.iter().any(|g| g.name == args.group) {
        let names: Vec<&str> = r.plan.groups.iter().map(|g| g.name.as_str()).collect();
        return Err(Failure::Input(format!(
            "rollout {} has no group {}; its groups are {}",
            r.id,
            args.group,
            names.join(", ")
        )));
    }
    let window_override = window_override(args.now, args.reason.as_deref())?;
    if rollout::is_running(&lab, &r) {
        return Err(Failure::Failed(format!(
            "rollout {} is running; pause or abort it before rolling a group back",
            r.id
        )));
    }
    let fleet = load_fleet(&lab)?;
    let conn = Mutex::new(console::open(&lab).map_err(db_err(&lab))?);
    {
        // Another rollout left unfinished owns the cluster now.
        let c = conn
            .lock()
            .map_err(|_| Failure::Failed("console database lock poisoned".into()))?;
        if let Some(other) = journal::unfinished(&c, &r.cluster)
            .map_err(db_err(&lab))?
            .filter(|other| *other != r.id)
        {
            return Err(Failure::Failed(held_by(&lab, &c, other)));
        }
    }
    let _lock = ClusterLock::acquire(&lab, &r.cluster, r.id).map_err(Failure::Failed)?;
    let env = FleetEnv::new(&lab, &fleet, r.id);
    let print = |e: &Event| print_event(e, args.json);
    let runner = Runner::new(&conn, &env).events(&print);
    if let Some(reason) = &window_override {
        // Journaled before anything is drained.
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        Journal::open_as(&lab, &command, Source::Rollout(r.id))
            .and_then(|j| {
                j.record(
                    &r.cluster,
                    &r.plan.patches.join(","),
                    "window_override",
                    true,
                    &format!(
                        "group {} of rollout {} rolled back with --now, outside its maintenance windows if need be: {reason}",
                        args.group, r.id
                    ),
                )
            })
            .map_err(|e| {
                Failure::Failed(format!(
                    "the window override could not be journaled: {e}; nothing was done"
                ))
            })?;
    }
    let ending = runner
        .roll_back_group(r.id, &args.group, window_override.as_deref())
        .map_err(Failure::Failed)?;
    let after = load(&lab, Some(r.id))?;
    match ending {
        Ending::RolledBack => {
            if !args.json {
                say!("rollout {}: {}", r.id, after.message);
            }
            Ok(())
        }
        _ => Err(Failure::Failed(after.message)),
    }
}
