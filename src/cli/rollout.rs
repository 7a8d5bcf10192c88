//! `rollout start|status|pause|resume|abort`: gradual rollouts on a cluster.

use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::nodes::load_fleet;
use super::{Failure, Global, Outcome, open_depot, print_json};
use crate::engine::console;
use crate::engine::groups;
use crate::engine::lab::Lab;
use crate::engine::rollout::fleet_env::FleetEnv;
use crate::engine::rollout::{
    self, ClusterLock, Ending, Event, Plan, Rollout, Runner, State, StepState, journal,
};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Plan and run a rollout: drain, install, restore and check each group in turn.
    Start(StartArgs),
    /// A rollout's groups, steps and state (default: the newest).
    Status(IdArgs),
    /// Stop between steps; `resume` carries on.
    Pause(IdArgs),
    /// Carry on with a paused, failed or interrupted rollout, in this process.
    Resume(IdArgs),
    /// Stop and bring every drained member back into service.
    Abort(IdArgs),
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
    /// On a failure, roll the failed group back and restore it.
    #[arg(long)]
    auto_rollback: bool,
    /// Groups for a single-site cluster (default: the cluster's setting, else 2).
    #[arg(long, value_name = "N")]
    groups: Option<usize>,
    /// Print the plan (groups, and each step with its command); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Start even when the cluster's members differ (see `patchdeck drift`).
    #[arg(long)]
    allow_drift: bool,
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
    #[arg(long)]
    pub json: bool,
}

impl RolloutCommand {
    pub fn json(&self) -> bool {
        match self {
            RolloutCommand::Start(a) => a.json,
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
    }
}

fn db_err(lab: &Lab) -> impl Fn(rusqlite::Error) -> Failure + '_ {
    move |e| Failure::Failed(format!("{}: {e}", lab.db_path().display()))
}

fn start(global: &Global, args: StartArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    let cluster = fleet
        .clusters
        .iter()
        .find(|c| c.id == args.cluster)
        .ok_or_else(|| Failure::Input(format!("unknown cluster {:?}", args.cluster)))?;
    let partition =
        groups::partition(&fleet, &args.cluster, args.groups).map_err(Failure::Input)?;
    let depot = open_depot(&lab.depot_dir())?;
    // Patch ids in the resolver's order (product specs expanded).
    let request = crate::engine::select::Request {
        autoselect: true,
        ..crate::engine::select::Request::new(args.patches.clone())
    };
    let selection = crate::engine::select::resolve(&depot.patches, &request);
    if let Some(p) = selection.problems.first() {
        return Err(Failure::Input(p.message.clone()));
    }
    let ids: Vec<String> = selection.patches.into_iter().map(|s| s.id).collect();
    let gate = crate::engine::drift::rollout_gate(
        &lab,
        &fleet,
        &|id: &str| {
            depot
                .get(id)
                .map(|p| crate::engine::components::component_of(&p.manifest))
        },
        &args.cluster,
        &ids,
        args.allow_drift,
        !args.dry_run,
    )
    .map_err(|e| Failure::Failed(e.to_string()))?;
    if let crate::engine::drift::Gate::Allowed(note) = &gate {
        eprintln!("patchdeck: {note}");
    }
    let plan = Plan::new(
        cluster,
        &partition,
        &ids,
        args.uninstall,
        args.auto_rollback,
    );
    if args.dry_run {
        return print_plan(&plan, args.json);
    }
    let conn = console::open(&lab).map_err(db_err(&lab))?;
    let id = match journal::create(&conn, &plan).map_err(db_err(&lab))? {
        Ok(id) => id,
        Err(existing) => return Err(Failure::Failed(held_by(&conn, existing))),
    };
    drop(conn);
    execute(&lab, &fleet, id, args.json)
}

/// Why a cluster is not free: who holds it, or what is left unfinished.
fn held_by(conn: &rusqlite::Connection, id: i64) -> String {
    match journal::load(conn, id) {
        Ok(Some(r)) if r.state == State::Running && rollout::alive(r.pid) => format!(
            "cluster {} is busy: rollout {id} is running in pid {} (since {}); only one rollout runs on a cluster",
            r.cluster, r.pid, r.created_at
        ),
        Ok(Some(r)) => format!(
            "cluster {} has unfinished rollout {id} ({}); `patchdeck rollout resume {id}` or `patchdeck rollout abort {id}` first",
            r.cluster,
            describe_state(&r)
        ),
        _ => format!("cluster has unfinished rollout {id}"),
    }
}

fn describe_state(r: &Rollout) -> String {
    match r.state {
        State::Running if !rollout::alive(r.pid) => {
            format!("interrupted: its console, pid {}, died", r.pid)
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
        journal::load(&c, id)
            .map_err(db_err(lab))?
            .ok_or_else(|| Failure::Input(format!("no rollout {id}")))?
            .cluster
    };
    let _lock = ClusterLock::acquire(lab, &cluster, id).map_err(Failure::Failed)?;
    let env = FleetEnv::new(lab, fleet, id);
    let print = |e: &Event| print_event(e, json);
    let runner = Runner {
        conn: &conn,
        env: &env,
        events: &print,
        poll: Duration::from_millis(200),
    };
    let ending = runner.run(id).map_err(Failure::Failed)?;
    let c = conn
        .lock()
        .map_err(|_| Failure::Failed("console database lock poisoned".into()))?;
    let r = journal::load(&c, id)
        .map_err(db_err(lab))?
        .ok_or_else(|| Failure::Failed(format!("rollout {id} vanished")))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "rollout": id, "cluster": r.cluster, "ending": ending, "state": r.state, "message": r.message })
        );
    } else {
        println!(
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
            println!("{line}");
        }
        return;
    }
    if e.seq.is_none() {
        println!(
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
    println!(
        "  [{group}] {:<12} {:<11} {:<7} {}",
        e.node, e.kind, e.state, e.message
    );
}

fn print_plan(plan: &Plan, json: bool) -> Outcome {
    if json {
        return print_json(plan);
    }
    let what = if plan.uninstall {
        "uninstall"
    } else {
        "install"
    };
    println!(
        "plan: {what} {} on cluster {} ({} at a time within a group)",
        plan.patches.join(" "),
        plan.cluster,
        plan.parallel
    );
    for g in &plan.groups {
        println!("  group {}: {}", g.name, g.members.join(" "));
    }
    for s in &plan.steps {
        let group = if s.group.is_empty() {
            "-".to_string()
        } else {
            s.group.clone()
        };
        println!(
            "  {:>3}. [{group}] {:<11} {}",
            s.seq + 1,
            s.kind.as_str(),
            s.command
        );
    }
    println!("dry run: nothing was changed");
    Ok(())
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

/// Progress of each group: member steps done of all.
fn group_lines(r: &Rollout) -> Vec<serde_json::Value> {
    r.plan
        .groups
        .iter()
        .map(|g| {
            let steps: Vec<_> = r.steps.iter().filter(|s| s.step.group == g.name).collect();
            let done = steps.iter().filter(|s| s.state == StepState::Done).count();
            let failed = steps.iter().any(|s| s.state == StepState::Failed);
            let running = steps.iter().any(|s| s.state == StepState::Running);
            let state = if failed { "failed" } else if done == steps.len() { "done" } else if running || done > 0 { "in progress" } else { "waiting" };
            serde_json::json!({ "name": g.name, "members": g.members, "done": done, "total": steps.len(), "state": state })
        })
        .collect()
}

fn status(global: &Global, args: IdArgs) -> Outcome {
    let lab = global.lab();
    let mut r = load(&lab, args.id)?;
    let mut shown = 0usize;
    loop {
        if args.json && !args.follow {
            let current = r
                .steps
                .iter()
                .find(|s| s.state != StepState::Done)
                .map(|s| s.step.seq);
            let body = serde_json::json!({
                "id": r.id, "cluster": r.cluster, "state": r.state, "interrupted": r.state == State::Running && !rollout::alive(r.pid),
                "message": r.message, "requested": r.requested, "pid": r.pid, "patches": r.plan.patches, "uninstall": r.plan.uninstall,
                "groups": group_lines(&r), "current_step": current, "steps": r.steps,
            });
            return print_json(&body);
        }
        if !args.follow {
            println!(
                "rollout {} on {}: {} ({})",
                r.id,
                r.cluster,
                describe_state(&r),
                r.plan.patches.join(" ")
            );
            if !r.message.is_empty() {
                println!("  {}", r.message);
            }
            for g in group_lines(&r) {
                println!(
                    "  group {}: {}/{} steps, {}",
                    g["name"].as_str().unwrap_or(""),
                    g["done"],
                    g["total"],
                    g["state"].as_str().unwrap_or("")
                );
            }
            if let Some(s) = r.steps.iter().find(|s| s.state != StepState::Done) {
                println!(
                    "  next: step {} {} {} ({})",
                    s.step.seq + 1,
                    s.step.kind.as_str(),
                    s.step.node,
                    s.state.as_str()
                );
            }
            return Ok(());
        }
        // Follow: print step changes as they land in the journal.
        let finished: Vec<_> = r
            .steps
            .iter()
            .filter(|s| matches!(s.state, StepState::Done | StepState::Failed))
            .collect();
        for s in finished.iter().skip(shown) {
            let e = Event {
                rollout: r.id,
                seq: Some(s.step.seq),
                kind: s.step.kind.as_str().into(),
                group: s.step.group.clone(),
                node: s.step.node.clone(),
                state: s.state.as_str().into(),
                message: s.message.clone(),
            };
            print_event(&e, args.json);
        }
        shown = finished.len();
        let live = r.state == State::Running && rollout::alive(r.pid);
        if !live {
            let e = Event {
                rollout: r.id,
                seq: None,
                kind: "rollout".into(),
                group: String::new(),
                node: String::new(),
                state: describe_state(&r),
                message: r.message.clone(),
            };
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
        State::Running if rollout::alive(r.pid) => {
            journal::request(&conn, r.id, "pause").map_err(db_err(&lab))?;
            println!(
                "rollout {}: pause requested; it stops after the step in progress",
                r.id
            );
        }
        State::Running => {
            journal::set_state(&conn, r.id, State::Paused, "paused while interrupted")
                .map_err(db_err(&lab))?;
            println!("rollout {}: paused (its console had died)", r.id);
        }
        State::Paused => println!("rollout {}: already paused", r.id),
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
    if r.state == State::Running && rollout::alive(r.pid) && r.pid != std::process::id() as i64 {
        let conn = console::open(&lab).map_err(db_err(&lab))?;
        return Err(Failure::Failed(held_by(&conn, r.id)));
    }
    let fleet = load_fleet(&lab)?;
    execute(&lab, &fleet, r.id, args.json)
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
    if r.state == State::Running && rollout::alive(r.pid) {
        let conn = console::open(&lab).map_err(db_err(&lab))?;
        journal::request(&conn, r.id, "abort").map_err(db_err(&lab))?;
        println!(
            "rollout {}: abort requested; its console stops after the step in progress and restores drained members",
            r.id
        );
        return Ok(());
    }
    let fleet = load_fleet(&lab)?;
    let conn = Mutex::new(console::open(&lab).map_err(db_err(&lab))?);
    let _lock = ClusterLock::acquire(&lab, &r.cluster, r.id).map_err(Failure::Failed)?;
    let env = FleetEnv::new(&lab, &fleet, r.id);
    let print = |e: &Event| print_event(e, args.json);
    let runner = Runner {
        conn: &conn,
        env: &env,
        events: &print,
        poll: Duration::from_millis(200),
    };
    match runner.abort(r.id).map_err(Failure::Failed)? {
        Ending::Aborted => Ok(()),
        // Some drained member could not be restored: the rollout stays
        // failed with the abort requested, and says which and why.
        _ => Err(Failure::Failed(load(&lab, Some(r.id))?.message)),
    }
}
