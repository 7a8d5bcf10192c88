//! The operations side of the console: what the replication and cluster
//! panes show, and the actions started from them. Every action opens a
//! dialog that says exactly what will happen where before anything runs;
//! destructive actions on a whole cluster need the cluster's name typed.
//! Actions run as `patchdeck` child processes (see [`Effect::Run`]).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::fleet::OnFailure;
use crate::engine::fleet::Targets;
use crate::engine::inventory::PatchState;
use crate::engine::preview::Target;
use crate::engine::rollout::prepare;
use crate::engine::rollout::{Rollout, State, StepKind, StepState};
use crate::tui::app::App;
use crate::tui::keymap::Action;
use crate::tui::live::Snapshot;
use crate::tui::state::{Confirm, Dialog, Effect, Mode, Operation, Pane, RolloutSettings};

/// What a member is doing, as the groups pane shows it.
pub fn member_state(r: Option<&Rollout>, snapshot: &Snapshot, node: &str) -> &'static str {
    if let Some(r) = r {
        let last = r
            .steps
            .iter()
            .filter(|s| s.step.node == node && s.state.started())
            .max_by_key(|s| s.step.seq);
        if let Some(s) = last {
            match (s.state, s.step.kind) {
                (StepState::Failed, _) => return "failed",
                (StepState::Running, StepKind::Drain) => return "draining",
                (StepState::Running, StepKind::Apply) if r.plan.uninstall => return "rolling back",
                (StepState::Running, StepKind::Apply) => return "installing",
                (StepState::Running, StepKind::Revert) => return "rolling back",
                (StepState::Running, StepKind::Restore) => return "restoring",
                // Drained by this rollout and not yet restored: the journal
                // knows without asking the node.
                (StepState::Done, StepKind::Drain | StepKind::Apply | StepKind::Revert) => {
                    return "drained";
                }
                _ => {}
            }
        }
    }
    match snapshot.fleet.node(node) {
        Some(n) if n.error.is_some() => "unreachable",
        Some(n) if n.service == Some(crate::engine::node::Service::Down) => "drained",
        Some(_) => "serving",
        None => "unknown",
    }
}

impl App {
    /// Takes a new snapshot from the poller; notes what changed in the log.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let mut log = Vec::new();
        for r in &snapshot.rollouts {
            let before = self.ops.snapshot.rollouts.iter().find(|o| o.id == r.id);
            for s in &r.steps {
                let was = before
                    .and_then(|b| b.steps.iter().find(|x| x.step.seq == s.step.seq))
                    .map(|x| x.state);
                if was != Some(s.state)
                    && matches!(s.state, StepState::Done | StepState::Failed)
                    && before.is_some()
                {
                    let who = if s.step.node.is_empty() {
                        s.step.group.clone()
                    } else {
                        s.step.node.clone()
                    };
                    let msg = if s.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", s.message)
                    };
                    log.push(format!(
                        "{} {} {} {}{msg}",
                        r.cluster,
                        who,
                        s.step.kind.as_str(),
                        s.state.as_str()
                    ));
                }
            }
            if before.is_some_and(|b| b.state != r.state) {
                log.push(format!(
                    "rollout {} on {}: {}",
                    r.id,
                    r.cluster,
                    r.state.as_str()
                ));
            }
        }
        for line in log {
            self.ops.push_log(line);
        }
        let depot = self.depot.clone();
        self.ops.coverage = snapshot
            .fleet
            .coverage(|id| depot.get(id).map(|p| p.manifest.product.clone()));
        self.ops.snapshot = snapshot;
        self.ops
            .repl_cursor
            .clamp(self.ops.snapshot.replication.len());
    }

    pub fn move_group(&mut self, right: bool) {
        let count = match self.ops.selected_cluster().map(|c| &c.partition) {
            Some(Ok(p)) => p.groups.len(),
            _ => 0,
        };
        if count == 0 {
            return;
        }
        self.ops.group = if right {
            (self.ops.group + 1).min(count - 1)
        } else {
            self.ops.group.saturating_sub(1)
        };
    }

    pub(crate) fn open_dialog(&mut self, dialog: Dialog) -> Effect {
        self.open(dialog)
    }

    pub(crate) fn open(&mut self, dialog: Dialog) -> Effect {
        self.ops.dialog = Some(dialog);
        self.mode = Mode::Dialog;
        Effect::None
    }

    /// Shows the end of a child process's output.
    /// A one-line success goes to the status line and the event log, so
    /// the pane stays in view; anything else opens a scrollable dialog
    /// with the whole output (a refusal's every reason).
    pub fn run_done(&mut self, title: &str, ok: bool, output: &str) {
        let mut lines: Vec<String> = output.lines().map(str::to_string).collect();
        if ok && lines.len() == 1 {
            let line = lines.remove(0);
            self.ops.push_log(format!("{title}: {line}"));
            self.status = Some((line, false));
            return;
        }
        if lines.is_empty() {
            lines.push(if ok { "done".into() } else { "failed".into() });
        }
        self.ops
            .push_log(format!("{title}: {}", if ok { "done" } else { "failed" }));
        let title = format!(" {title}: {} ", if ok { "done" } else { "FAILED" });
        let scroll = lines.len().saturating_sub(12);
        self.open(Dialog {
            scroll,
            ..Dialog::info(title, lines)
        });
    }

    pub(crate) fn dialog_key(&mut self, key: KeyEvent) -> Effect {
        let Some(dialog) = self.ops.dialog.as_mut() else {
            self.mode = Mode::Normal;
            return Effect::None;
        };
        let close = |app: &mut App| {
            app.ops.dialog = None;
            app.mode = Mode::Normal;
        };
        match &dialog.confirm {
            Confirm::Pick(choices) => {
                let last = choices.len().saturating_sub(1);
                let pick = &mut dialog.pick;
                match key.code {
                    KeyCode::Up | KeyCode::Char('k') => *pick = pick.saturating_sub(1),
                    KeyCode::Down | KeyCode::Char('j') => *pick = (*pick + 1).min(last),
                    KeyCode::PageUp => *pick = pick.saturating_sub(10),
                    KeyCode::PageDown => *pick = (*pick + 10).min(last),
                    KeyCode::Home | KeyCode::Char('g') => *pick = 0,
                    KeyCode::End | KeyCode::Char('G') => *pick = last,
                    KeyCode::Enter => {
                        let effect = choices.get(*pick).map(|(_, e)| e.clone());
                        close(self);
                        return effect.map_or(Effect::None, |e| self.follow(e));
                    }
                    KeyCode::Esc => close(self),
                    _ => {}
                }
                return Effect::None;
            }
            Confirm::Input(purpose) => {
                let purpose = *purpose;
                match key.code {
                    KeyCode::Enter => {
                        let text = dialog.typed.trim().to_string();
                        close(self);
                        return self.input_done(purpose, text);
                    }
                    KeyCode::Esc => close(self),
                    KeyCode::Backspace => {
                        dialog.typed.pop();
                    }
                    KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                        dialog.typed.push(c)
                    }
                    _ => {}
                }
                return Effect::None;
            }
            _ => {}
        }
        if let Some(cluster) = dialog.adjusts.clone()
            && matches!(key.code, KeyCode::Tab | KeyCode::Left | KeyCode::Right)
        {
            let typed = dialog.typed.clone();
            let settings = &mut self.ops.rollout_settings;
            match key.code {
                KeyCode::Tab => {
                    let now = settings.on_failure.unwrap_or_else(|| {
                        self.ops
                            .fleet
                            .as_ref()
                            .and_then(|f| f.clusters.iter().find(|c| c.id == cluster))
                            .map(|c| c.on_failure)
                            .unwrap_or_default()
                    });
                    settings.on_failure = Some(match now {
                        OnFailure::Rollback => OnFailure::Halt,
                        OnFailure::Halt => OnFailure::Rollback,
                    });
                }
                KeyCode::Left => {
                    let n = settings.groups.unwrap_or(2);
                    settings.groups = Some(n.saturating_sub(1).max(2));
                }
                _ => settings.groups = Some(settings.groups.unwrap_or(2) + 1),
            }
            return self.open_rollout_dialog(&cluster, typed);
        }
        match key.code {
            KeyCode::Esc => {
                close(self);
                return Effect::None;
            }
            KeyCode::Up => dialog.scroll = dialog.scroll.saturating_sub(1),
            KeyCode::Down => {
                // Rows as wrapped on the narrowest overlay (the view stops
                // at the last row it has).
                let rows: usize = dialog
                    .lines
                    .iter()
                    .map(|l| crate::tui::text::wrap(l, 20).len())
                    .sum();
                dialog.scroll = (dialog.scroll + 1).min(rows.saturating_sub(1))
            }
            _ => {}
        }
        match &dialog.confirm {
            Confirm::Close => {
                if matches!(key.code, KeyCode::Enter | KeyCode::Char('q')) {
                    close(self);
                }
                Effect::None
            }
            Confirm::Keys(choices) => {
                let pick = choices
                    .iter()
                    .find(|(c, _, _)| key.code == KeyCode::Char(*c))
                    .map(|(_, _, e)| e.clone());
                match pick {
                    Some(effect) => {
                        close(self);
                        self.follow(effect)
                    }
                    None => Effect::None,
                }
            }
            // Answered above, before the keys that scroll.
            Confirm::Pick(_) | Confirm::Input(_) => Effect::None,
            Confirm::Typed { expected, effect } => match key.code {
                KeyCode::Enter if dialog.typed == *expected => {
                    let effect = effect.clone();
                    close(self);
                    effect
                }
                KeyCode::Enter => {
                    dialog.typed.clear();
                    Effect::None
                }
                KeyCode::Backspace => {
                    dialog.typed.pop();
                    Effect::None
                }
                KeyCode::Char(c) => {
                    dialog.typed.push(c);
                    Effect::None
                }
                _ => Effect::None,
            },
        }
    }

    /// Carries out what a dialog's choice asks: marks and next dialogs
    /// here, anything else by the event loop.
    pub(crate) fn follow(&mut self, effect: Effect) -> Effect {
        match effect {
            Effect::Mark(ids) => {
                let n = ids.len();
                self.marks.extend(ids);
                self.marks_changed = true;
                self.status = Some((format!("marked {n} patch(es)"), false));
                Effect::None
            }
            Effect::Step(step) => self.step(step),
            other => other,
        }
    }

    pub(crate) fn quit(&mut self) -> Effect {
        let running: Vec<(i64, String)> = self
            .ops
            .snapshot
            .rollouts
            .iter()
            .filter(|r| {
                self.ops
                    .lab
                    .as_ref()
                    .is_some_and(|lab| crate::engine::rollout::is_running(lab, r))
            })
            .map(|r| (r.id, r.cluster.clone()))
            .collect();
        let Some((id, cluster)) = running.first().cloned() else {
            return Effect::Quit;
        };
        let lines = vec![
            format!("Rollout {id} is running on cluster {cluster}."),
            "It runs on its own and is journaled either way.".into(),
            String::new(),
            "c  quit, and let the rollout continue".into(),
            "p  pause the rollout (no new step starts), then quit".into(),
            "Esc  stay".into(),
        ];
        let confirm = Confirm::Keys(vec![
            ('c', "continue".into(), Effect::Quit),
            ('p', "pause".into(), Effect::QuitPausing(id)),
        ]);
        self.open(Dialog {
            confirm,
            ..Dialog::info(" Quit during a rollout? ", lines)
        })
    }

    /// Marked patches, or the one under the cursor.
    pub(crate) fn chosen_patches(&self) -> Vec<String> {
        if self.marks.is_empty() {
            self.current_patch()
                .map(|p| vec![p.id.clone()])
                .unwrap_or_default()
        } else {
            self.marks.iter().cloned().collect()
        }
    }

    /// `R`: in the replication pane, retries the selected patch everywhere;
    /// in the depot, asks for the target first (see `targets.rs`).
    pub(crate) fn replicate_dialog(&mut self) -> Effect {
        if self.focus != Pane::Replication {
            return self.step(crate::tui::state::Step::Target(Operation::Replicate));
        }
        self.replicate_on(&Target::All)
    }

    /// The replicate preview for `target`: what is copied where.
    pub(crate) fn replicate_on(&mut self, target: &Target) -> Effect {
        let patches = match self.focus {
            Pane::Replication => match self
                .ops
                .snapshot
                .replication
                .get(self.ops.repl_cursor.selected)
            {
                Some(p) => vec![p.patch.clone()],
                None => return Effect::None,
            },
            _ => self.chosen_patches(),
        };
        if patches.is_empty() {
            self.status = Some(("mark patches in the depot pane (space) first".into(), true));
            return Effect::None;
        }
        // From the depot: exactly what a rollout of these patches installs,
        // prerequisites included, so `r` finds everything staged.
        let mut added = Vec::new();
        let patches = if self.focus == Pane::Replication {
            patches
        } else {
            match prepare::needs(&self.depot, &patches, false) {
                Ok(needed) => {
                    added = needed
                        .iter()
                        .filter(|s| !patches.contains(&s.id))
                        .map(|s| format!("  {}: {}", s.id, s.reason))
                        .collect();
                    needed.into_iter().map(|s| s.id).collect()
                }
                Err(e) => {
                    let lines = e.to_string().lines().map(str::to_string).collect();
                    return self.open(Dialog::info(" Cannot replicate ", lines));
                }
            }
        };
        let Some(fleet) = &self.ops.fleet else {
            return Effect::None;
        };
        let chosen: Vec<String> = match fleet.targets(&target.targets()) {
            Ok(nodes) => nodes.iter().map(|n| n.id.clone()).collect(),
            Err(e) => return self.open(Dialog::info(" Cannot replicate ", vec![e.to_string()])),
        };
        let mut lines = vec![format!(
            "Copy {} to {}, verified on arrival:",
            patches.join(" "),
            target.describe()
        )];
        if !added.is_empty() {
            lines.push("with what a rollout of them needs besides:".into());
            lines.extend(added);
        }
        let mut dcs: Vec<(String, usize, usize)> = Vec::new();
        // Offline sites take bundles, not replication.
        for n in fleet
            .nodes
            .iter()
            .filter(|n| !n.offline && chosen.contains(&n.id))
        {
            let has = patches.iter().all(|p| {
                self.ops
                    .snapshot
                    .fleet
                    .node(&n.id)
                    .is_some_and(|v| v.patches.get(p).is_some_and(|s| *s != PatchState::None))
            });
            match dcs.iter_mut().find(|d| d.0 == n.dc) {
                Some(d) => {
                    d.1 += 1;
                    d.2 += usize::from(has);
                }
                None => dcs.push((n.dc.clone(), 1, usize::from(has))),
            }
        }
        for (dc, total, has) in &dcs {
            lines.push(format!(
                "  {dc}: {total} node(s), {has} already have it, {} to copy",
                total - has
            ));
        }
        let offline = fleet
            .nodes
            .iter()
            .filter(|n| n.offline && chosen.contains(&n.id))
            .count();
        if offline > 0 {
            lines.push(format!(
                "  {offline} offline node(s) left out: patch them with snapshot, prepare, apply"
            ));
        }
        lines
            .push("Only what is missing is copied; failed copies are retried with backoff.".into());
        lines.push(String::new());
        lines.push("y  replicate    Esc  cancel".into());
        let mut args = vec!["replicate".to_string()];
        args.extend(patches.iter().cloned());
        if *target != Target::All {
            args.extend(target.args());
        }
        let effect = Effect::Run {
            title: format!("replicate {} to {}", patches.join(" "), target.describe()),
            args,
            detached: true,
        };
        self.open(Dialog {
            confirm: Confirm::Keys(vec![('y', "replicate".into(), effect)]),
            ..Dialog::info(" Replicate ", lines)
        })
    }

    pub(crate) fn rollout_dialog(&mut self) -> Effect {
        let Some(cluster) = self.ops.selected_cluster().cloned() else {
            return Effect::None;
        };
        if self.marks.is_empty() {
            self.status = Some((
                "mark the patches to roll out in the depot pane (space), then press r here".into(),
                true,
            ));
            return Effect::None;
        }
        self.ops.rollout_settings = RolloutSettings::default();
        self.open_rollout_dialog(&cluster.id, String::new())
    }

    /// The rollout preview, planned by the engine as `rollout start` plans
    /// it, with the failure policy and group count the operator can change.
    fn open_rollout_dialog(&mut self, cluster: &str, typed: String) -> Effect {
        let Some(fleet) = &self.ops.fleet else {
            return Effect::None;
        };
        let specs: Vec<String> = self.marks.iter().cloned().collect();
        let settings = self.ops.rollout_settings;
        let request = prepare::Request {
            cluster: cluster.to_string(),
            specs: specs.clone(),
            uninstall: false,
            groups: settings.groups,
            on_failure: settings.on_failure,
            window_override: None,
        };
        let prepared = match prepare::prepare(fleet, &self.depot, &request) {
            Ok(p) => p,
            Err(e) => {
                let lines = e.to_string().lines().map(str::to_string).collect();
                return self.open(Dialog::info(
                    format!(" Cannot roll out on {cluster} "),
                    lines,
                ));
            }
        };
        let plan = &prepared.plan;
        // The answer it waits for first, so a long preview never hides it.
        let mut lines = vec![
            format!("Type {cluster} and Enter to start; Esc cancels; arrows scroll."),
            format!(
                "Install {} on cluster {cluster}, one group at a time:",
                plan.patches.join(" ")
            ),
        ];
        for p in &prepared.patches {
            lines.push(format!("  {}: {}", p.id, p.reason));
        }
        for g in &plan.groups {
            lines.push(format!("  group {}: {}", g.name, g.members.join(" ")));
        }
        for w in &prepared.warnings {
            lines.push(format!("  ! {w}"));
        }
        if let Some(c) = fleet.clusters.iter().find(|k| k.id == cluster)
            && !c.windows.is_empty()
        {
            let now = crate::engine::window::now();
            lines.push(format!(
                "Maintenance window: {}; a group is drained only inside one, before its cutoff (the rollout waits otherwise; `:rollout start --now --reason TEXT` overrides)",
                crate::engine::window::summary(&c.windows, now)
            ));
        }
        let policy = match plan.on_failure {
            OnFailure::Rollback => "rollback: a failed group is rolled back and restored",
            OnFailure::Halt => "halt: a failed group stays drained for inspection",
        };
        lines.push(format!("On failure: {policy} (Tab changes)"));
        lines.push(format!(
            "Groups: {} (Left/Right change; a cluster on several sites: one per site)",
            plan.groups.len()
        ));
        let not_staged: Vec<String> = plan
            .all_members()
            .into_iter()
            .filter(|n| {
                let v = self.ops.snapshot.fleet.node(n);
                !plan.patches.iter().all(|p| {
                    v.is_some_and(|v| v.patches.get(p).is_some_and(|s| *s != PatchState::None))
                })
            })
            .collect();
        if !not_staged.is_empty() {
            lines.push(format!(
                "  NOT READY (not staged): {}; R in the depot pane replicates what this rollout needs",
                not_staged.join(", ")
            ));
        }
        let restarts: Vec<String> = plan
            .patches
            .iter()
            .filter_map(|p| self.depot.get(p))
            .filter(|p| {
                !p.manifest.hot && p.manifest.restart != crate::engine::manifest::Restart::None
            })
            .map(|p| format!("{} ({})", p.id, p.manifest.restart))
            .collect();
        if !restarts.is_empty() {
            lines.push(format!(
                "  restarts, while each group is drained: {}",
                restarts.join(", ")
            ));
        }
        lines.push(format!("Steps ({}):", plan.steps.len()));
        for s in plan.steps.iter().take(4) {
            lines.push(format!("  {:>2}. {}", s.seq, s.command));
        }
        if plan.steps.len() > 4 {
            lines.push(format!(
                "  ... {} more; each group: drain, install, restore, wait healthy",
                plan.steps.len() - 4
            ));
        }
        let mut args = vec![
            "rollout".to_string(),
            "start".into(),
            "--cluster".into(),
            cluster.to_string(),
            "--on-failure".into(),
            plan.on_failure.as_str().into(),
        ];
        if let Some(n) = settings.groups {
            args.push("--groups".into());
            args.push(n.to_string());
        }
        // It returns once the rollout runs on its own, or with the whole
        // refusal, which the console shows.
        args.push("--detach".into());
        args.extend(specs);
        let effect = Effect::Run {
            title: format!("rollout on {cluster}"),
            args,
            detached: false,
        };
        self.ops.started_here = true;
        self.open(Dialog {
            confirm: Confirm::Typed {
                expected: cluster.to_string(),
                effect,
            },
            typed,
            adjusts: Some(cluster.to_string()),
            ..Dialog::info(format!(" Roll out on {cluster} "), lines)
        })
    }

    pub(crate) fn control_rollout(&mut self, action: Action) -> Effect {
        let Some(cluster) = self.ops.selected_cluster().map(|c| c.id.clone()) else {
            return Effect::None;
        };
        let Some(r) = self.ops.rollout_of(&cluster).cloned() else {
            self.status = Some((format!("no rollout on {cluster} yet; r starts one"), true));
            return Effect::None;
        };
        let id = r.id.to_string();
        match action {
            Action::Pause => Effect::Run {
                title: format!("pause rollout {id}"),
                args: vec!["rollout".into(), "pause".into(), id],
                detached: false,
            },
            Action::Resume => Effect::Run {
                title: format!("resume rollout {id}"),
                // Returns once the rollout runs on its own again.
                args: vec!["rollout".into(), "resume".into(), id, "--detach".into()],
                detached: false,
            },
            _ => {
                let lines = vec![
                    format!("Abort rollout {id} on {cluster} ({}).", r.state.as_str()),
                    "No new step starts; once the steps in progress end, every drained".into(),
                    "member is brought back into service and the after-hooks run.".into(),
                    "Installed members keep what they have (b rolls a group back).".into(),
                    String::new(),
                    format!("Type {cluster} and Enter to abort; Esc cancels."),
                ];
                let effect = Effect::Run {
                    title: format!("abort rollout {id}"),
                    args: vec!["rollout".into(), "abort".into(), id],
                    detached: false,
                };
                self.open(Dialog {
                    confirm: Confirm::Typed {
                        expected: cluster.clone(),
                        effect,
                    },
                    ..Dialog::info(format!(" Abort on {cluster} "), lines)
                })
            }
        }
    }

    pub(crate) fn rollback_group_dialog(&mut self) -> Effect {
        let Some(cluster) = self.ops.selected_cluster().cloned() else {
            return Effect::None;
        };
        let Some(r) = self.ops.rollout_of(&cluster.id).cloned() else {
            self.status = Some((
                format!(
                    "no rollout on {}: b rolls back a group of a rollout",
                    cluster.id
                ),
                true,
            ));
            return Effect::None;
        };
        let Some(group) = r.plan.groups.get(self.ops.group).cloned() else {
            return Effect::None;
        };
        let changed: Vec<String> = group
            .members
            .iter()
            .filter(|n| {
                r.steps.iter().any(|s| {
                    s.step.kind == StepKind::Apply && &s.step.node == *n && s.state.started()
                })
            })
            .cloned()
            .collect();
        let verb = if r.plan.uninstall {
            "put back"
        } else {
            "roll back"
        };
        let mut lines = vec![format!(
            "{verb} {} on group {} of {} (rollout {}, {}):",
            r.plan.patches.join(" "),
            group.name,
            cluster.id,
            r.id,
            r.state.as_str()
        )];
        if changed.is_empty() {
            lines.push("  the rollout changed no member of this group: nothing to do".into());
        } else {
            lines.push(format!("  members it changed: {}", changed.join(" ")));
            lines.push("  each is drained first if it serves (only while every other group".into());
            lines.push("  is healthy), gets back exactly what it had before the rollout,".into());
            lines.push("  is restored, and the group is waited for.".into());
        }
        let left: Vec<&String> = group
            .members
            .iter()
            .filter(|n| !changed.contains(n))
            .collect();
        if !left.is_empty() {
            lines.push(format!(
                "  left alone (not changed by the rollout): {}",
                left.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        if matches!(
            r.state,
            State::Running | State::Waiting | State::Paused | State::Pending
        ) {
            lines.push(format!(
                "  rollout {} is {}: abort it (A) first; this will be refused",
                r.id,
                r.state.as_str()
            ));
        }
        lines.push(String::new());
        lines.push(format!(
            "Type {} and Enter to roll back; Esc cancels.",
            cluster.id
        ));
        let effect = Effect::Run {
            title: format!("roll back group {}", group.name),
            args: vec![
                "rollout".into(),
                "rollback".into(),
                r.id.to_string(),
                "--group".into(),
                group.name.clone(),
            ],
            detached: false,
        };
        self.open(Dialog {
            confirm: Confirm::Typed {
                expected: cluster.id.clone(),
                effect,
            },
            ..Dialog::info(format!(" Roll back group {} ", group.name), lines)
        })
    }

    pub(crate) fn command_key(&mut self, key: KeyEvent) -> Effect {
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                Effect::None
            }
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                let line = self.ops.command.text.trim().to_string();
                if line.is_empty() {
                    return Effect::None;
                }
                self.command_dialog(&line)
            }
            _ => {
                self.ops.command.edit_text(key);
                Effect::None
            }
        }
    }

    /// `:VERB ARGS`: read-only verbs run at once; verbs that change nodes
    /// show where they will act and ask first.
    fn command_dialog(&mut self, line: &str) -> Effect {
        // Words as a POSIX shell splits them, so `--reason "two words"`
        // is one value, as it is at a prompt.
        let Some(args) = shlex::split(line) else {
            return self.open(Dialog::info(
                " command ".to_string(),
                vec![
                    format!("Cannot read {line:?}: a quote is not closed."),
                    "Words are split as a shell splits them; close the quote.".into(),
                ],
            ));
        };
        let verb = args.first().cloned().unwrap_or_default();
        // Verbs that rewrite the lab under the running console (its fleet,
        // nodes and journal would no longer be what it shows), or that
        // serve a protocol on stdio, are not for the command line here.
        if let Some(why) = match verb.as_str() {
            "demo" => Some("rewrites the lab (fleet, nodes and journal) under this console"),
            "node" => Some("serves the node protocol on standard input and output"),
            _ => None,
        } {
            return self.open(Dialog::info(
                format!(" {verb} "),
                vec![
                    format!("`{verb}` {why}: it does not run inside the console."),
                    format!("Quit the console (q) and run `patchdeck {line}` from a shell."),
                ],
            ));
        }
        let changes = matches!(
            verb.as_str(),
            "stage" | "install" | "rollback" | "commit" | "remove" | "replicate" | "rollout"
        );
        let detached = matches!(verb.as_str(), "replicate")
            || (verb == "rollout" && args.get(1).is_some_and(|a| a == "start" || a == "resume"));
        let effect = Effect::Run {
            title: line.to_string(),
            args: args.clone(),
            detached,
        };
        if !changes {
            return effect;
        }
        let mut lines = vec![format!("patchdeck {line}")];
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let patches: Vec<String> = args
            .iter()
            .skip(1)
            .take_while(|a| !a.starts_with("--"))
            .cloned()
            .collect();
        let mut target_ids: Vec<String> = Vec::new();
        if let Some(fleet) = &self.ops.fleet {
            let targets = Targets {
                nodes: value("--nodes").map(|v| v.split(',').map(str::to_string).collect()),
                cluster: value("--cluster"),
                org: value("--org"),
                dc: value("--dc"),
            };
            if !targets.is_empty() && verb != "rollout" {
                match fleet.targets(&targets) {
                    Ok(nodes) => {
                        target_ids = nodes.iter().map(|n| n.id.clone()).collect();
                        lines.push(format!(
                            "on {} node(s): {}",
                            nodes.len(),
                            target_ids.join(" ")
                        ));
                    }
                    Err(e) => lines.push(format!("targets: {e}")),
                }
            }
        }
        if verb == "install" {
            // The resolver's order and reasons (each node also skips what it
            // already has), and the nodes replication has not reached.
            let request = crate::engine::select::Request::new(patches.clone());
            let selection = crate::engine::select::resolve(&self.depot.patches, &request);
            lines.push("install order:".into());
            for (n, e) in selection.patches.iter().enumerate() {
                lines.push(format!("  {}. {} {}", n + 1, e.id, e.reason));
            }
            for p in &selection.problems {
                lines.push(format!("  ! {}", p.message));
            }
            let needed: Vec<String> = selection.patches.iter().map(|e| e.id.clone()).collect();
            let staged = |n: &String| {
                let v = self.ops.snapshot.fleet.node(n);
                needed.iter().all(|p| {
                    v.is_some_and(|v| v.patches.get(p).is_some_and(|s| *s != PatchState::None))
                })
            };
            let skipped: Vec<&str> = target_ids
                .iter()
                .filter(|n| !staged(n))
                .map(String::as_str)
                .collect();
            if !skipped.is_empty() {
                lines.push(format!(
                    "  skipped, replication incomplete: {}",
                    skipped.join(" ")
                ));
            }
        }
        for p in patches.iter().filter_map(|p| self.depot.get(p)) {
            let restart = if p.manifest.hot {
                "no restart".to_string()
            } else {
                format!("{} restart", p.manifest.restart)
            };
            lines.push(format!(
                "  {} {} {}: {restart}",
                p.id, p.manifest.product, p.manifest.version
            ));
        }
        lines.push(String::new());
        // A whole cluster at once needs its name typed.
        if let (Some(cluster), false) = (value("--cluster"), verb == "rollout") {
            lines.push(format!("This acts on every member of {cluster} at once. Type {cluster} and Enter; Esc cancels."));
            return self.open(Dialog {
                confirm: Confirm::Typed {
                    expected: cluster,
                    effect,
                },
                ..Dialog::info(format!(" {verb} "), lines)
            });
        }
        lines.push("y  run it    Esc  cancel".into());
        self.open(Dialog {
            confirm: Confirm::Keys(vec![('y', "run".into(), effect)]),
            ..Dialog::info(format!(" {verb} "), lines)
        })
    }
}
