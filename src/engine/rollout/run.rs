//! Running a rollout: take the first unfinished step, run it (member steps
//! of one group in parallel batches), journal every transition, and between
//! steps honour pause and abort. Everything the rollout does to the world
//! goes through [`Env`], so a simulated cluster can check the rules.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;

use super::journal::{self, Rollout, State, StepRow, StepState};
use super::plan::{Plan, StepKind};
use crate::engine::window::{self, Gate, Schedule};

/// What a rollout does to the world.
pub trait Env: Sync {
    /// The member is ready: the patches are staged (applied, to uninstall).
    fn preflight(&self, node: &str, plan: &Plan) -> Result<(), String>;
    fn drain(&self, node: &str, plan: &Plan) -> Result<(), String>;
    fn restore(&self, node: &str, plan: &Plan) -> Result<(), String>;
    /// Installs the patches (rolls them back, to uninstall); idempotent.
    fn apply(&self, node: &str, plan: &Plan) -> Result<String, String>;
    /// Undoes `apply` on a member; idempotent.
    fn revert(&self, node: &str, plan: &Plan) -> Result<String, String>;
    /// Carrying traffic (service up).
    fn in_service(&self, node: &str) -> bool;
    /// In service and working (files verified, health check passing).
    fn healthy(&self, node: &str) -> Result<(), String>;
    fn hook(&self, command: &str, plan: &Plan) -> Result<String, String>;
    /// The patches applied on a member, for the same-release check.
    fn applied(&self, node: &str) -> Result<Vec<String>, String>;
    fn sleep(&self, d: Duration);
    /// Time since an arbitrary start.
    fn now(&self) -> Duration;
    /// The wall clock, for maintenance windows: the system's in a real
    /// fleet ([`crate::engine::window::now`]), a fake one in tests.
    fn clock(&self) -> DateTime<Utc>;
}

/// Something that happened, for whoever renders the rollout live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub rollout: i64,
    /// The step, or `None` for the rollout as a whole.
    pub seq: Option<usize>,
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Event {
    /// An event of the rollout as a whole (no step): its state and message.
    pub fn rollout(id: i64, state: &str, message: &str) -> Event {
        Event {
            rollout: id,
            seq: None,
            kind: "rollout".into(),
            group: String::new(),
            node: String::new(),
            state: state.into(),
            message: message.into(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Done,
    Paused,
    Aborted,
    /// Halted on a failure; the failed group is as it was left.
    Failed,
    /// Halted on a failure, and the failed group was rolled back.
    RolledBack,
}

/// Runs one rollout's steps against an environment, journaling each.
/// Built with [`Runner::new`], then [`Runner::events`] and [`Runner::poll`]
/// where the defaults (no events, health polled every 200 ms) do not fit.
pub struct Runner<'a, E: Env> {
    pub conn: &'a Mutex<Connection>,
    pub env: &'a E,
    pub events: &'a (dyn Fn(&Event) + Sync),
    /// How often health is polled.
    pub poll: Duration,
}

fn no_events(_: &Event) {}

impl<'a, E: Env> Runner<'a, E> {
    /// A runner over the console database `conn` and the environment `env`.
    pub fn new(conn: &'a Mutex<Connection>, env: &'a E) -> Runner<'a, E> {
        Runner {
            conn,
            env,
            events: &no_events,
            poll: Duration::from_millis(200),
        }
    }

    /// Calls `events` with every step and rollout change as it happens.
    pub fn events(self, events: &'a (dyn Fn(&Event) + Sync)) -> Runner<'a, E> {
        Runner { events, ..self }
    }

    /// Polls member health every `poll`.
    pub fn poll(self, poll: Duration) -> Runner<'a, E> {
        Runner { poll, ..self }
    }
}

type Fail = String;

/// A step that failed: its number and why.
type StepFail = (usize, String);

/// How a step row is named in messages: `apply edge-1_3`, `preflight`.
fn what(row: &StepRow) -> String {
    match row.step.node.as_str() {
        "" => row.step.kind.as_str().to_string(),
        node => format!("{} {node}", row.step.kind.as_str()),
    }
}

/// Read-only member checks (preflight, health, consistency) run this many
/// members at once, whatever the cluster's `parallel` for changes.
const CHECKS_AT_ONCE: usize = crate::engine::ops::DEFAULT_PARALLEL;

impl<E: Env> Runner<'_, E> {
    fn db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, Fail> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| "the console database lock was poisoned".to_string())?;
        f(&conn).map_err(|e| format!("console database: {e}"))
    }

    fn load(&self, id: i64) -> Result<Rollout, Fail> {
        self.db(|c| journal::load(c, id))?
            .ok_or_else(|| format!("no rollout {id}"))
    }

    fn emit_rollout(&self, id: i64, state: &str, message: &str) {
        (self.events)(&Event::rollout(id, state, message));
    }

    fn step(&self, id: i64, row: &StepRow, state: StepState, message: &str) -> Result<(), Fail> {
        self.db(|c| journal::set_step(c, id, row.step.seq, state, message))?;
        (self.events)(&Event {
            rollout: id,
            seq: Some(row.step.seq),
            kind: row.step.kind.as_str().into(),
            group: row.step.group.clone(),
            node: row.step.node.clone(),
            state: state.as_str().into(),
            message: message.into(),
        });
        Ok(())
    }

    fn finish(&self, id: i64, state: State, ending: Ending, message: &str) -> Result<Ending, Fail> {
        if state.ended() {
            self.settle_interrupted(id)?;
        }
        let mut message = message.to_string();
        if matches!(state, State::Failed | State::RolledBack | State::Aborted) {
            // However a rollout ends, the cluster's after-hooks run (e.g.
            // image cloning switched back on), journaled as their steps.
            // The ending is recorded first: a runner that dies among the
            // hooks is finished the same way, never decided again.
            self.db(|c| journal::set_closing(c, id, state, &message))?;
            for problem in self.closing_hooks(id)? {
                message.push_str(&format!("; {problem}"));
            }
        }
        self.db(|c| journal::set_state(c, id, state, &message))?;
        self.emit_rollout(id, state.as_str(), &message);
        Ok(ending)
    }

    /// Asks each member whether a step a dead runner left running took
    /// effect, so a rollout that ends says what happened: a change that
    /// was made is `done`, not failed (what stays unknown is marked
    /// interrupted as the rollout ends, see [`journal::set_state`]).
    fn settle_interrupted(&self, id: i64) -> Result<(), Fail> {
        let r = self.load(id)?;
        for row in r
            .steps
            .iter()
            .filter(|s| s.state == StepState::Running && !s.step.node.is_empty())
        {
            let node = &row.step.node;
            let took = match row.step.kind {
                StepKind::Apply | StepKind::Revert => {
                    // Whether the step puts the plan's patches on or off.
                    let putting_on = (row.step.kind == StepKind::Apply) != r.plan.uninstall;
                    self.env.applied(node).is_ok_and(|applied| {
                        r.plan
                            .patches
                            .iter()
                            .all(|p| applied.contains(p) == putting_on)
                    })
                }
                StepKind::Drain => !self.env.in_service(node),
                StepKind::Restore => self.env.in_service(node),
                _ => false,
            };
            if took {
                self.step(
                    id,
                    row,
                    StepState::Done,
                    "took effect before its runner stopped",
                )?;
            }
        }
        Ok(())
    }

    /// Runs the plan's after-hooks that have not run, in order; returns
    /// what went wrong with any of them.
    fn closing_hooks(&self, id: i64) -> Result<Vec<String>, Fail> {
        let rollout = self.load(id)?;
        let last = rollout.plan.last_seq();
        let mut problems = Vec::new();
        for row in rollout
            .steps
            .iter()
            .filter(|s| s.step.seq <= last && s.step.kind == StepKind::HookAfter)
            // One that ran and failed (the step the rollout halted at) is
            // not run twice.
            .filter(|s| matches!(s.state, StepState::Pending | StepState::Running))
        {
            self.step(id, row, StepState::Running, "")?;
            match self.env.hook(&row.step.command, &rollout.plan) {
                Ok(m) => self.step(id, row, StepState::Done, &m)?,
                Err(m) => {
                    self.step(id, row, StepState::Failed, &m)?;
                    problems.push(format!("after-hook step {} failed: {m}", row.step.seq));
                }
            }
        }
        Ok(problems)
    }

    /// A failed rollout taken up again starts over with its before-hooks
    /// if it ran its after-hooks when it halted.
    fn reopen_hooks(&self, rollout: &Rollout) -> Result<(), Fail> {
        let last = rollout.plan.last_seq();
        let closed = rollout
            .steps
            .iter()
            .any(|s| s.step.kind == StepKind::HookAfter && s.state != StepState::Pending);
        let unfinished = rollout.steps.iter().any(|s| {
            s.step.seq <= last
                && !matches!(s.step.kind, StepKind::HookBefore | StepKind::HookAfter)
                && s.state != StepState::Done
        });
        if !(closed && unfinished) {
            return Ok(());
        }
        for row in rollout.steps.iter().filter(|s| {
            s.step.seq <= last && matches!(s.step.kind, StepKind::HookBefore | StepKind::HookAfter)
        }) {
            self.db(|c| journal::set_step(c, rollout.id, row.step.seq, StepState::Pending, ""))?;
        }
        Ok(())
    }

    /// Whether another process asked this rollout to pause or abort.
    fn stop_requested(&self, id: i64) -> Result<bool, Fail> {
        Ok(matches!(
            self.db(|c| journal::requested(c, id))?.as_str(),
            "pause" | "abort"
        ))
    }

    /// Runs rollout `id` from its first unfinished step until it is done,
    /// paused, aborted or halted. A failed step is tried again.
    pub fn run(&self, id: i64) -> Result<Ending, Fail> {
        if let Some((state, message)) = self.db(|c| journal::closing(c, id))? {
            let ending = match state {
                State::RolledBack => Ending::RolledBack,
                State::Aborted => Ending::Aborted,
                _ => Ending::Failed,
            };
            return self.finish(id, state, ending, &message);
        }
        let taken = self.load(id)?;
        if taken.state == State::Failed {
            self.reopen_hooks(&taken)?;
        }
        self.db(|c| journal::set_state(c, id, State::Running, ""))?;
        self.emit_rollout(id, "running", "");
        loop {
            match self.db(|c| journal::requested(c, id))?.as_str() {
                "pause" => {
                    return self.finish(id, State::Paused, Ending::Paused, "paused between steps");
                }
                "abort" => return self.abort(id),
                _ => {}
            }
            let rollout = self.load(id)?;
            let last = rollout.plan.last_seq();
            // Steps beyond the plan are a rollback decided before this
            // console took over: carry it on, never retry the failed step
            // instead (that would roll forward, then revert the group at
            // the end). A console that died between recording a failure
            // and deciding the rollback decides it now.
            if rollout.steps.iter().any(|s| s.step.seq > last) {
                return self.roll_back(id);
            }
            if rollout.plan.rolls_back()
                && let Some(halt) = halting_step(&rollout).filter(|s| !s.step.group.is_empty())
            {
                return self.failed(&rollout, halt, &halt.message);
            }
            let Some(first) = rollout
                .steps
                .iter()
                .position(|s| s.state != StepState::Done)
            else {
                let drift = rollout
                    .steps
                    .iter()
                    .rev()
                    .find(|s| s.step.kind == StepKind::Consistency)
                    .map(|s| s.message.clone());
                let message = drift.filter(|m| m.starts_with("drift")).unwrap_or_default();
                return self.finish(id, State::Done, Ending::Done, &message);
            };
            if self.waits_for_window(&rollout, first)? {
                match self.wait_for_window(id, &rollout)? {
                    Some(ending) => return Ok(ending),
                    None => continue,
                }
            }
            let batch = batch_at(&rollout.steps, first);
            if let Err((seq, message)) = self.run_batch(&rollout, &batch) {
                // An abort asked for while the failing step ran is still
                // carried out: restore, then the after-hooks.
                if self.db(|c| journal::requested(c, id))? == "abort" {
                    return self.abort(id);
                }
                let current = self.load(id)?;
                let Some(row) = current.steps.iter().find(|s| s.step.seq == seq) else {
                    return Err(format!("rollout {id} has no step {seq}"));
                };
                return self.failed(&current, row, &message);
            }
        }
    }

    /// Whether step `first` must wait for a maintenance window: the plan
    /// has windows (and no override), the step starts the rollout (its
    /// preflight or before-hooks) or a group (its first drain, with every
    /// member still serving), and no window is open before its cutoff
    /// now. A group already under way is never held: it finishes, so a
    /// closing window leaves no group drained.
    fn waits_for_window(&self, rollout: &Rollout, first: usize) -> Result<bool, Fail> {
        let plan = &rollout.plan;
        let Some(head) = rollout.steps.get(first) else {
            return Ok(false);
        };
        if !plan.windowed() || head.step.seq > plan.last_seq() {
            return Ok(false);
        }
        let starts = match head.step.kind {
            StepKind::Preflight | StepKind::HookBefore => true,
            StepKind::Drain => {
                let group = &head.step.group;
                let under_way = rollout.steps.iter().any(|s| {
                    &s.step.group == group
                        && s.step.kind == StepKind::Drain
                        && matches!(s.state, StepState::Done | StepState::Running)
                });
                !under_way && plan.members(group).iter().all(|n| self.env.in_service(n))
            }
            _ => false,
        };
        if !starts {
            return Ok(false);
        }
        Ok(!schedule(plan)?.gate(self.env.clock()).may_drain())
    }

    /// Waits, in state `waiting` with the next opening in its message,
    /// until a window is open before its cutoff (`None`: carry on), or a
    /// pause or abort is asked for (the ending).
    fn wait_for_window(&self, id: i64, rollout: &Rollout) -> Result<Option<Ending>, Fail> {
        let schedule = schedule(&rollout.plan)?;
        let mut said = String::new();
        loop {
            match self.db(|c| journal::requested(c, id))?.as_str() {
                "pause" => {
                    let m = "paused while waiting for a maintenance window";
                    return self.finish(id, State::Paused, Ending::Paused, m).map(Some);
                }
                "abort" => return self.abort(id).map(Some),
                _ => {}
            }
            let gate = schedule.gate(self.env.clock());
            if gate.may_drain() {
                let m = match gate {
                    Gate::Open(s) => format!(
                        "maintenance window open until {} (no group drained from {})",
                        window::show(s.closes, s.tz),
                        window::show(s.cutoff, s.tz)
                    ),
                    _ => String::new(),
                };
                self.db(|c| journal::set_state(c, id, State::Running, &m))?;
                self.emit_rollout(id, "running", &m);
                return Ok(None);
            }
            let m = waiting_words(&rollout.plan.cluster, &gate);
            if m != said {
                self.db(|c| journal::set_state(c, id, State::Waiting, &m))?;
                self.emit_rollout(id, State::Waiting.as_str(), &m);
                said = m;
            }
            // Windows are minutes apart; a second is soon enough.
            self.env.sleep(self.poll.max(Duration::from_secs(1)));
        }
    }

    /// Runs the steps of `batch` that are not done yet. Between parallel
    /// chunks a pause or abort request stops it: no new step starts once
    /// one is asked for. A failure names the step that failed.
    fn run_batch(&self, rollout: &Rollout, batch: &[&StepRow]) -> Result<(), StepFail> {
        let plan = &rollout.plan;
        let Some(head) = batch.iter().copied().find(|s| s.state != StepState::Done) else {
            return Ok(());
        };
        let fail = |e: Fail| (head.step.seq, e);
        if head.step.kind == StepKind::Drain {
            // The halt is recorded on the step it stops, so status shows
            // where and why and a resume tries it again.
            if let Err(message) = self.wait_others_healthy(rollout, &head.step.group) {
                self.step(rollout.id, head, StepState::Failed, &message)
                    .map_err(fail)?;
                return Err((head.step.seq, message));
            }
        }
        if !head.step.kind.per_member() {
            self.step(rollout.id, head, StepState::Running, "")
                .map_err(fail)?;
            let result = match head.step.kind {
                StepKind::Preflight => self.preflight(rollout.id, plan),
                StepKind::HookBefore | StepKind::HookAfter => {
                    self.env.hook(&head.step.command, plan)
                }
                StepKind::Healthy => self.wait_healthy(plan, &plan.members(&head.step.group)),
                StepKind::Consistency => self.consistency(plan),
                _ => Ok(String::new()),
            };
            return match result {
                Ok(message) => self
                    .step(rollout.id, head, StepState::Done, &message)
                    .map_err(fail),
                Err(message) => {
                    self.step(rollout.id, head, StepState::Failed, &message)
                        .map_err(fail)?;
                    Err((head.step.seq, message))
                }
            };
        }
        // A revert undoes what this rollout changed: patches a member had
        // applied before it started stay (an uninstall puts back only what
        // the member had). Without a record, every patch of the plan.
        let before = if head.step.kind == StepKind::Revert {
            self.db(|c| journal::before(c, rollout.id)).map_err(fail)?
        } else {
            Default::default()
        };
        let revert_plan = |node: &str| -> Plan {
            let Some(had) = before.get(node) else {
                return plan.clone();
            };
            let patches = plan
                .patches
                .iter()
                .filter(|p| had.contains(p) == plan.uninstall)
                .cloned()
                .collect();
            Plan {
                patches,
                ..plan.clone()
            }
        };
        // Member steps: `parallel` at a time; the first failure is reported
        // after the chunk it was in has finished.
        let mut started = false;
        for chunk in batch.chunks(plan.parallel.max(1)) {
            let chunk: Vec<&StepRow> = chunk
                .iter()
                .copied()
                .filter(|s| s.state != StepState::Done)
                .collect();
            if chunk.is_empty() {
                continue;
            }
            if started && self.stop_requested(rollout.id).map_err(fail)? {
                return Ok(());
            }
            started = true;
            for row in &chunk {
                self.step(rollout.id, row, StepState::Running, "")
                    .map_err(fail)?;
            }
            let results: Vec<Result<String, String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|row| {
                        scope.spawn(move || {
                            let node = row.step.node.as_str();
                            match row.step.kind {
                                StepKind::Drain => {
                                    self.env.drain(node, plan).map(|_| String::new())
                                }
                                StepKind::Restore => {
                                    self.env.restore(node, plan).map(|_| String::new())
                                }
                                StepKind::Apply => self.env.apply(node, plan),
                                StepKind::Revert => self.env.revert(node, &revert_plan(node)),
                                _ => Ok(String::new()),
                            }
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("the step panicked".into())))
                    .collect()
            });
            let mut first_error = None;
            for (row, result) in chunk.iter().zip(results) {
                match result {
                    Ok(message) => self
                        .step(rollout.id, row, StepState::Done, &message)
                        .map_err(fail)?,
                    Err(message) => {
                        self.step(rollout.id, row, StepState::Failed, &message)
                            .map_err(fail)?;
                        first_error.get_or_insert((row.step.seq, message));
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Every member ready and healthy; what each has applied is recorded,
    /// so a rollback undoes this rollout's change and nothing before it.
    fn preflight(&self, id: i64, plan: &Plan) -> Result<String, Fail> {
        let members = plan.all_members();
        let checked = each_member(&members, |node| {
            self.env.preflight(node, plan)?;
            self.env
                .healthy(node)
                .map_err(|e| format!("not healthy: {e}"))?;
            self.env.applied(node)
        })?;
        let mut problems = Vec::new();
        let mut before = Vec::new();
        for (node, result) in members.into_iter().zip(checked) {
            match result {
                Ok(applied) => before.push((node, applied)),
                Err(e) => problems.push(format!("{node}: {e}")),
            }
        }
        if problems.is_empty() {
            self.db(|c| journal::record_before(c, id, &before))?;
            Ok(format!("{} members ready", plan.all_members().len()))
        } else {
            Err(format!(
                "not every member is ready; nothing was changed: {}",
                problems.join("; ")
            ))
        }
    }

    /// Draining a group needs every other group in service and healthy.
    fn wait_others_healthy(&self, rollout: &Rollout, group: &str) -> Result<(), Fail> {
        let others: Vec<String> = rollout
            .plan
            .groups
            .iter()
            .filter(|g| g.name != group)
            .flat_map(|g| g.members.clone())
            .collect();
        // Saturating: a plan journaled before fleet.toml bounded its
        // deadline may still carry any number.
        let deadline = self
            .env
            .now()
            .saturating_add(Duration::from_secs(rollout.plan.health_deadline_secs));
        loop {
            let sick = self.sick(&others)?;
            if sick.is_empty() {
                return Ok(());
            }
            if self.env.now() >= deadline {
                return Err(format!(
                    "group {group} is not drained: other members are not healthy: {}",
                    sick.join(", ")
                ));
            }
            self.env.sleep(self.poll);
        }
    }

    /// The members that are not healthy now, each with the reason.
    fn sick(&self, members: &[String]) -> Result<Vec<String>, Fail> {
        let checked = each_member(members, |n| self.env.healthy(n))?;
        Ok(members
            .iter()
            .zip(checked)
            .filter_map(|(n, r)| r.err().map(|e| format!("{n} ({e})")))
            .collect())
    }

    /// Healthy within the deadline, then healthy without a break for the
    /// minimum time.
    fn wait_healthy(&self, plan: &Plan, members: &[String]) -> Result<String, Fail> {
        let start = self.env.now();
        let deadline = start.saturating_add(Duration::from_secs(plan.health_deadline_secs));
        let min = Duration::from_secs(plan.min_healthy_secs);
        let mut healthy_since = None;
        loop {
            let sick = self.sick(members)?;
            let now = self.env.now();
            if sick.is_empty() {
                let since = *healthy_since.get_or_insert(now);
                if now.saturating_sub(since) >= min {
                    return Ok(format!(
                        "healthy after {:.1} s",
                        now.saturating_sub(start).as_secs_f64()
                    ));
                }
            } else {
                healthy_since = None;
                if now >= deadline {
                    return Err(format!(
                        "not healthy within {} s: {}",
                        plan.health_deadline_secs,
                        sick.join(", ")
                    ));
                }
            }
            self.env.sleep(self.poll);
        }
    }

    /// The closing check: members' applied patches compared by the same
    /// function as `patchdeck drift` ([`crate::engine::drift::compare`]).
    fn consistency(&self, plan: &Plan) -> Result<String, Fail> {
        use crate::engine::inventory::{Inventory, PatchState};
        let members = plan.all_members();
        let applied = each_member(&members, |node| self.env.applied(node))?;
        let mut inventories = Vec::new();
        for (node, applied) in members.into_iter().zip(applied) {
            inventories.push(Inventory {
                node,
                products: Default::default(),
                components: Default::default(),
                patches: applied?
                    .into_iter()
                    .map(|id| (id, PatchState::Applied))
                    .collect(),
            });
        }
        let report = crate::engine::drift::compare(&plan.cluster, &inventories);
        if !report.drifted {
            let count = inventories.first().map(|i| i.patches.len()).unwrap_or(0);
            return Ok(format!(
                "all {} members have the same {count} applied patch(es)",
                inventories.len()
            ));
        }
        let what: Vec<String> = report.differences.iter().map(|d| d.describe()).collect();
        Ok(format!("drift: {}", what.join("; ")))
    }

    /// Halts on a failed step: with auto-rollback, the failed group's
    /// members that were changed are drained (if serving), reverted,
    /// restored and waited for.
    fn failed(&self, rollout: &Rollout, head: &StepRow, message: &str) -> Result<Ending, Fail> {
        let group = head.step.group.clone();
        if !rollout.plan.rolls_back() || group.is_empty() {
            let mut m = format!(
                "halted at step {} ({}): {message}",
                head.step.seq,
                what(head)
            );
            m.push_str(&self.left_drained(rollout, " for inspection"));
            return self.finish(rollout.id, State::Failed, Ending::Failed, &m);
        }
        // What the failed batch did is in the journal, not in `rollout`.
        let current = self.load(rollout.id)?;
        let steps = self.rollback_steps(&current, &group);
        if steps.is_empty() {
            let m = format!(
                "halted at step {} ({}): {message}; group {group} was not changed and is serving",
                head.step.seq,
                what(head)
            );
            return self.finish(rollout.id, State::RolledBack, Ending::RolledBack, &m);
        }
        self.db(|c| journal::append(c, rollout.id, &steps))?;
        self.roll_back(rollout.id)
    }

    /// The rollout's members not carrying traffic now, in plan order.
    fn out_of_service(&self, rollout: &Rollout) -> Vec<String> {
        rollout
            .plan
            .all_members()
            .into_iter()
            .filter(|n| !self.env.in_service(n))
            .collect()
    }

    /// Whether a group of `plan` may be drained now, by the plan's
    /// maintenance windows and the environment's clock, as a rollout's own
    /// drains are; the error says when it may and how to override.
    fn window_allows_drain(&self, plan: &Plan, group: &str) -> Result<(), Fail> {
        let gate = schedule(plan)?.gate(self.env.clock());
        if gate.may_drain() {
            return Ok(());
        }
        let next = match gate.next() {
            Some(s) => format!(
                "the next window opens {} (drains until {})",
                window::show(s.opens, s.tz),
                window::show(s.cutoff, s.tz)
            ),
            None => "no window opens again".to_string(),
        };
        Err(format!(
            "rolling group {group} back drains members that serve, and cluster {}'s maintenance windows do not allow a drain now; {next}; run it then, or give --now --reason TEXT",
            plan.cluster
        ))
    }

    /// What a halted rollout leaves out of service, said plainly with the
    /// command that restores it; empty when every member serves.
    fn left_drained(&self, rollout: &Rollout, why: &str) -> String {
        let drained = self.out_of_service(rollout);
        if drained.is_empty() {
            return String::new();
        }
        let groups: Vec<&str> = rollout
            .plan
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| drained.contains(m)))
            .map(|g| g.name.as_str())
            .collect();
        format!(
            "; group {} is left drained{why} ({}); `patchdeck rollout abort {}` restores it",
            groups.join(", "),
            drained.join(", "),
            rollout.id
        )
    }

    /// Runs the rollback steps that are not done yet, in order; the
    /// rollout ends rolled back, or failed if a rollback step fails (a
    /// resume then carries the rollback on).
    fn roll_back(&self, id: i64) -> Result<Ending, Fail> {
        loop {
            let r = self.load(id)?;
            let last = r.plan.last_seq();
            let (halted, group) = match halting_step(&r) {
                Some(h) => (
                    format!("halted at step {} ({}): {}", h.step.seq, what(h), h.message),
                    h.step.group.clone(),
                ),
                None => ("halted".to_string(), String::new()),
            };
            let Some(first) = r
                .steps
                .iter()
                .position(|s| s.step.seq > last && s.state != StepState::Done)
            else {
                let m = format!("{halted}; group {group} rolled back and serving");
                return self.finish(id, State::RolledBack, Ending::RolledBack, &m);
            };
            let batch = batch_at(&r.steps, first);
            if let Err((_, e)) = self.run_batch(&r, &batch) {
                let m = format!(
                    "{halted}; rolling group {group} back failed too: {e}{}",
                    self.left_drained(&r, "")
                );
                return self.finish(id, State::Failed, Ending::Failed, &m);
            }
        }
    }

    /// Rolls one group of a rollout that is not running back, on the
    /// operator's request: the members the rollout changed are drained if
    /// they serve (only while every other group is healthy), their change
    /// is undone, they are restored and the group is waited for; members
    /// it did not change are left alone. A halted (failed) rollout then
    /// ends rolled back; an ended one keeps its state, and its status shows
    /// the group rolled back.
    ///
    /// A rollback that would drain a member that serves keeps to the
    /// cluster's maintenance windows (the rollout's plan), as a rollout
    /// does: outside an open window before its cutoff it is refused unless
    /// `window_override` (the operator's journaled reason) is given.
    /// Restoring members a failure left drained needs no window.
    ///
    /// Errors: no such group, the rollout still running or paused, nothing
    /// of the rollout left to roll back on that group, a closed window, or
    /// a first step refused before anything changed (the rollout then
    /// keeps its state).
    pub fn roll_back_group(
        &self,
        id: i64,
        group: &str,
        window_override: Option<&str>,
    ) -> Result<Ending, Fail> {
        let rollout = self.load(id)?;
        if !rollout.plan.groups.iter().any(|g| g.name == group) {
            let names: Vec<&str> = rollout
                .plan
                .groups
                .iter()
                .map(|g| g.name.as_str())
                .collect();
            return Err(format!(
                "rollout {id} has no group {group}; its groups are {}",
                names.join(", ")
            ));
        }
        if matches!(
            rollout.state,
            State::Pending | State::Waiting | State::Running | State::Paused
        ) {
            return Err(format!(
                "rollout {id} is {}; abort it (or let it end) before rolling a group back",
                rollout.state.as_str()
            ));
        }
        let steps = self.rollback_steps(&rollout, group);
        if steps.is_empty() {
            return Err(format!(
                "group {group} of rollout {id} has nothing of it to roll back"
            ));
        }
        let drains = steps.iter().any(|(kind, ..)| *kind == StepKind::Drain);
        if drains && window_override.is_none() {
            self.window_allows_drain(&rollout.plan, group)?;
        }
        let seqs = self.db(|c| journal::append(c, id, &steps))?;
        loop {
            let r = self.load(id)?;
            let Some(first) = r
                .steps
                .iter()
                .position(|s| seqs.contains(&s.step.seq) && s.state != StepState::Done)
            else {
                break;
            };
            let batch = batch_at(&r.steps, first);
            if let Err((seq, e)) = self.run_batch(&r, &batch) {
                let changed = self
                    .load(id)?
                    .steps
                    .iter()
                    .any(|s| seqs.contains(&s.step.seq) && s.state == StepState::Done);
                if !changed {
                    // Refused before anything changed: the rollout stays
                    // as it was (a done rollout does not become failed).
                    self.db(|c| journal::set_state(c, id, rollout.state, &rollout.message))?;
                    return Err(format!(
                        "rolling group {group} back was refused at step {seq}, before anything changed: {e}"
                    ));
                }
                let m = format!(
                    "rolling group {group} back failed at step {seq}: {e}{}",
                    self.left_drained(&r, "")
                );
                return self.finish(id, State::Failed, Ending::Failed, &m);
            }
        }
        let m = format!("group {group} rolled back and serving");
        match rollout.state {
            State::Failed => {
                let m = format!("{}; {m}", rollout.message);
                self.finish(id, State::RolledBack, Ending::RolledBack, &m)
            }
            state => {
                let m = if rollout.message.is_empty() {
                    m
                } else {
                    format!("{}; {m}", rollout.message)
                };
                self.db(|c| journal::set_state(c, id, state, &m))?;
                self.emit_rollout(id, state.as_str(), &m);
                Ok(Ending::RolledBack)
            }
        }
    }

    /// The steps that roll a failed group back. Only members whose apply
    /// ran (or was running when a console stopped) can have changed; they
    /// are reverted, drained first if they already serve again, because
    /// nothing changes on a member while it carries traffic. Members left
    /// out of service are restored, and the group is waited for.
    fn rollback_steps(
        &self,
        rollout: &Rollout,
        group: &str,
    ) -> Vec<(StepKind, String, String, String)> {
        let members = rollout.plan.members(group);
        let touched: Vec<&String> = members
            .iter()
            .filter(|n| {
                rollout.steps.iter().any(|s| {
                    s.step.kind == StepKind::Apply && &s.step.node == *n && s.state.started()
                })
            })
            // Already rolled back by an earlier rollback of this group.
            .filter(|n| {
                !rollout.steps.iter().any(|s| {
                    s.step.kind == StepKind::Revert
                        && &s.step.node == *n
                        && s.state == StepState::Done
                })
            })
            .collect();
        let serving: Vec<&String> = members.iter().filter(|n| self.env.in_service(n)).collect();
        let mut steps = Vec::new();
        let step = |kind: StepKind, n: &str, command: String| {
            (kind, group.to_string(), n.to_string(), command)
        };
        for n in touched.iter().filter(|n| serving.contains(n)) {
            steps.push(step(
                StepKind::Drain,
                n,
                format!("drain {n}: service down, to roll it back"),
            ));
        }
        for n in &touched {
            steps.push(step(
                StepKind::Revert,
                n,
                format!("revert this rollout's change on {n}"),
            ));
        }
        for n in members
            .iter()
            .filter(|n| touched.contains(n) || !serving.contains(n))
        {
            steps.push(step(
                StepKind::Restore,
                n,
                format!("restore {n}: service up"),
            ));
        }
        if !steps.is_empty() {
            steps.push(step(
                StepKind::Healthy,
                "",
                format!("wait until group {group} is healthy again"),
            ));
        }
        steps
    }

    /// Stops, bringing every member this rollout drained back into service.
    /// The request is journaled first, so a console that dies while
    /// aborting finishes the abort when resumed. Every drained member is
    /// tried; if one cannot be restored the rollout stays failed with the
    /// abort still requested, and aborting (or resuming) again retries.
    pub fn abort(&self, id: i64) -> Result<Ending, Fail> {
        self.db(|c| journal::request(c, id, "abort"))?;
        let rollout = self.load(id)?;
        let last = rollout.plan.last_seq();
        let drained = self.out_of_service(&rollout);
        // Restores an interrupted abort (or rollback) left are reused.
        let pending = |r: &Rollout, n: &str| -> Option<usize> {
            r.steps
                .iter()
                .find(|s| {
                    s.step.seq > last
                        && s.step.kind == StepKind::Restore
                        && s.step.node == n
                        && s.state != StepState::Done
                })
                .map(|s| s.step.seq)
        };
        let missing: Vec<_> = drained
            .iter()
            .filter(|n| pending(&rollout, n).is_none())
            .map(|n| {
                (
                    StepKind::Restore,
                    group_of(&rollout.plan, n),
                    n.clone(),
                    format!("restore {n}: service up (abort)"),
                )
            })
            .collect();
        if !missing.is_empty() {
            self.db(|c| journal::append(c, id, &missing))?;
        }
        let reloaded = self.load(id)?;
        let mut failures = Vec::new();
        for n in &drained {
            let Some(row) = pending(&reloaded, n)
                .and_then(|seq| reloaded.steps.iter().find(|s| s.step.seq == seq))
            else {
                continue;
            };
            if let Err((_, e)) = self.run_batch(&reloaded, &[row]) {
                failures.push(format!("restore {n}: {e}"));
            }
        }
        if !failures.is_empty() {
            let m = format!(
                "abort incomplete: {}; `patchdeck rollout abort {id}` tries again",
                failures.join("; ")
            );
            self.db(|c| {
                let tx = c.unchecked_transaction()?;
                journal::set_state(&tx, id, State::Failed, &m)?;
                journal::request(&tx, id, "abort")?;
                tx.commit()
            })?;
            self.emit_rollout(id, State::Failed.as_str(), &m);
            return Ok(Ending::Failed);
        }
        let message = if drained.is_empty() {
            "aborted; every group is serving".to_string()
        } else {
            format!(
                "aborted; restored {} so every group is serving",
                drained.join(", ")
            )
        };
        self.finish(id, State::Aborted, Ending::Aborted, &message)
    }
}

/// Runs a read-only check on every member, several at once (members are
/// separate machines, and a 1,000-member cluster checked one by one waits
/// on each in turn); results come back in member order. A check that
/// panicked is an error, never a silently missing result.
fn each_member<T: Send>(
    members: &[String],
    check: impl Fn(&str) -> T + Sync,
) -> Result<Vec<T>, Fail> {
    crate::engine::ops::bounded_map(members, CHECKS_AT_ONCE, |m| check(m))
        .map_err(|e| format!("a member check failed: {e}"))
}

/// The plan's windows, checked (they were when fleet.toml was read; a plan
/// journaled by another version may still hold a bad one).
fn schedule(plan: &Plan) -> Result<Schedule, Fail> {
    Schedule::parse(&plan.windows)
        .map_err(|(i, e)| format!("maintenance window {} of {}: {e}", i + 1, plan.cluster))
}

/// What a waiting rollout waits for, in words: when the next window opens
/// and how long it has for starting groups.
fn waiting_words(cluster: &str, gate: &Gate) -> String {
    let next = match gate.next() {
        Some(n) => format!(
            "the next opens {} and closes {} (no group drained from {})",
            window::show(n.opens, n.tz),
            window::show(n.closes, n.tz),
            window::show(n.cutoff, n.tz)
        ),
        None => format!(
            "no maintenance window of {cluster} opens again; abort it, or start again with --now --reason TEXT"
        ),
    };
    match gate {
        Gate::PastCutoff { current, .. } => format!(
            "waiting for a maintenance window: the cutoff of the open one passed at {}; {next}",
            window::show(current.cutoff, current.tz)
        ),
        _ => format!("waiting for a maintenance window: {next}"),
    }
}

/// The step a rollout halted at: the first step of the plan that failed.
fn halting_step(r: &Rollout) -> Option<&StepRow> {
    r.steps
        .iter()
        .filter(|s| s.step.seq <= r.plan.last_seq())
        .find(|s| s.state == StepState::Failed)
}

/// The steps run together with step `first`: for member steps, every step
/// of that kind and group (done ones included, so `parallel` chunks are
/// always the same members, resumed or not); else the one step.
fn batch_at(steps: &[StepRow], first: usize) -> Vec<&StepRow> {
    let head = &steps[first];
    if !head.step.kind.per_member() {
        return vec![head];
    }
    let same = |s: &StepRow| s.step.kind == head.step.kind && s.step.group == head.step.group;
    let start = steps[..first]
        .iter()
        .rposition(|s| !same(s))
        .map_or(0, |i| i + 1);
    steps[start..].iter().take_while(|s| same(s)).collect()
}

fn group_of(plan: &Plan, node: &str) -> String {
    plan.groups
        .iter()
        .find(|g| g.members.iter().any(|m| m == node))
        .map(|g| g.name.clone())
        .unwrap_or_default()
}
