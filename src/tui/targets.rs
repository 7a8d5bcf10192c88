//! Acting on the marked patches where the operator chooses: the target
//! picker (all data centers, a data center, an organization, a cluster, a
//! node), the preview of install, roll back, commit, remove and replicate
//! on the picked target, resolving the marks against a node, and saving
//! and recalling named selections. Each dialog leads to the next through
//! [`Step`]; what a target covers and what the command would refuse is
//! decided in the engine (`engine::preview`).

use crate::engine::inventory::PatchState;
use crate::engine::ops::Op;
use crate::engine::preview::{self, Target};
use crate::engine::select;
use crate::tui::app::App;
use crate::tui::state::{Confirm, Dialog, Effect, InputFor, Mode, Operation, Step};

impl App {
    /// Opens the dialog a step asks for.
    pub(crate) fn step(&mut self, step: Step) -> Effect {
        match step {
            Step::Target(op) => self.target_picker(op),
            Step::Preview(Operation::Replicate, target) => self.replicate_on(&target),
            Step::Preview(op, target) => self.lifecycle_preview(op, &target),
            Step::ResolveFor(node) => {
                self.resolve_for(node.as_deref());
                Effect::None
            }
            Step::Recall(name) => Effect::RecallMarks(name),
        }
    }

    /// `o`: which operation to carry out on the marked patches.
    pub(crate) fn operate_dialog(&mut self) -> Effect {
        let patches = self.chosen_patches();
        if patches.is_empty() || self.ops.fleet.is_none() {
            self.status = Some(("mark patches in the depot pane (space) first".into(), true));
            return Effect::None;
        }
        let choice = |c: char, label: &str, op: Operation| {
            (c, label.to_string(), Effect::Step(Step::Target(op)))
        };
        let lines = vec![
            format!("On {}:", patches.join(" ")),
            String::new(),
            "i  install     b  roll back     c  commit     d  remove".into(),
            "Esc  cancel    (then pick where; a preview comes before anything runs)".into(),
        ];
        self.open(Dialog {
            confirm: Confirm::Keys(vec![
                choice('i', "install", Operation::Install),
                choice('b', "roll back", Operation::Rollback),
                choice('c', "commit", Operation::Commit),
                choice('d', "remove", Operation::Remove),
            ]),
            ..Dialog::info(" Act on the marked patches ", lines)
        })
    }

    /// Where to carry out `op`: replication goes to all data centers, one
    /// data center or one organization; the lifecycle operations also to
    /// a cluster or a node.
    fn target_picker(&mut self, op: Operation) -> Effect {
        let patches = self.chosen_patches();
        if patches.is_empty() {
            self.status = Some(("mark patches in the depot pane (space) first".into(), true));
            return Effect::None;
        }
        let Some(fleet) = &self.ops.fleet else {
            return Effect::None;
        };
        let wide_only = op == Operation::Replicate;
        let choices: Vec<(String, Effect)> = preview::targets(fleet, wide_only)
            .into_iter()
            // Install and the like take named nodes, not "everything".
            .filter(|(t, n)| *n > 0 && (wide_only || *t != Target::All))
            .map(|(t, n)| {
                let label = match t {
                    Target::Node(_) => t.describe(),
                    _ => format!(
                        "{} ({n} node{})",
                        t.describe(),
                        if n == 1 { "" } else { "s" }
                    ),
                };
                (label, Effect::Step(Step::Preview(op, t)))
            })
            .collect();
        let lines = vec![format!("{} {} where?", op.verb(), patches.join(" "))];
        self.open(Dialog {
            confirm: Confirm::Pick(choices),
            ..Dialog::info(format!(" {}: pick the target ", op.verb()), lines)
        })
    }

    /// What `op` would do on `target`, and `y` to do it.
    fn lifecycle_preview(&mut self, op: Operation, target: &Target) -> Effect {
        let patches = self.chosen_patches();
        let Some(fleet) = &self.ops.fleet else {
            return Effect::None;
        };
        let engine_op = match op {
            Operation::Install => Op::Install,
            Operation::Rollback => Op::Rollback,
            Operation::Commit => Op::Commit,
            Operation::Remove | Operation::Replicate => Op::Remove,
        };
        let held = self
            .ops
            .lab
            .as_ref()
            .and_then(|lab| crate::engine::console::open(lab).ok());
        let seen = preview::preview(
            fleet,
            &self.depot,
            &self.ops.snapshot.fleet,
            held.as_ref(),
            engine_op,
            &patches,
            target,
        );
        let title = format!(" {} on {} ", op.verb(), target.describe());
        let mut lines = vec![format!(
            "{} {} on {} ({} node{}):",
            op.verb(),
            patches.join(" "),
            target.describe(),
            seen.nodes.len(),
            if seen.nodes.len() == 1 { "" } else { "s" }
        )];
        for (node, states) in &seen.nodes {
            let states: Vec<String> = states
                .iter()
                .map(|(p, s)| match s {
                    Some(s) => format!("{p} {}", s.as_str()),
                    None => format!("{p} not read"),
                })
                .collect();
            lines.push(format!("  {node}: {}", states.join(", ")));
        }
        lines.push(String::new());
        if let Some(why) = seen.refusal {
            lines.push(format!("Refused: {why}"));
            return self.open(Dialog::info(title, lines));
        }
        lines.push(match op {
            Operation::Install => {
                "Each node resolves its own selection and installs only what it has staged and verified."
            }
            Operation::Rollback => "Each node restores the saved files of the patches it has applied.",
            Operation::Commit => "Committed patches drop their saved files: no rollback after this.",
            Operation::Remove | Operation::Replicate => {
                "Staged copies are removed; installed patches stay (roll them back first)."
            }
        }
        .to_string());
        let applies = seen.nodes.iter().any(|(_, states)| {
            states.iter().any(|(_, s)| match op {
                Operation::Install => !matches!(
                    s,
                    Some(PatchState::Applied | PatchState::Committed | PatchState::Superseded)
                ),
                Operation::Rollback | Operation::Commit => {
                    matches!(s, Some(PatchState::Applied) | None)
                }
                Operation::Remove | Operation::Replicate => {
                    matches!(s, Some(PatchState::Staged) | None)
                }
            })
        });
        if !applies {
            lines.push(
                match op {
                    Operation::Install => "Nothing to install: every node has it installed.",
                    Operation::Rollback | Operation::Commit => {
                        "Nothing to do: no node has it applied (the command will say so)."
                    }
                    Operation::Remove | Operation::Replicate => {
                        "Nothing to remove: no node has it staged (the command will say so)."
                    }
                }
                .to_string(),
            );
        }
        lines.push(String::new());
        lines.push(format!("y  {}    Esc  cancel", op.verb()));
        let mut args = vec![op.verb().to_string()];
        args.extend(patches.iter().cloned());
        args.extend(target.args());
        let effect = Effect::Run {
            title: format!(
                "{} {} on {}",
                op.verb(),
                patches.join(" "),
                target.describe()
            ),
            args,
            detached: false,
        };
        self.open(Dialog {
            confirm: Confirm::Keys(vec![('y', op.verb().to_string(), effect)]),
            ..Dialog::info(title, lines)
        })
    }

    /// `s`: resolve the marks in the abstract, or against a node (match
    /// target) picked from the fleet.
    pub(crate) fn resolve_dialog(&mut self) -> Effect {
        if self.marks.is_empty() {
            self.status = Some(("mark patches with space first, then press s".into(), true));
            return Effect::None;
        }
        let Some(fleet) = &self.ops.fleet else {
            self.resolve_for(None);
            return Effect::None;
        };
        let mut choices = vec![(
            "in the abstract (no target)".to_string(),
            Effect::Step(Step::ResolveFor(None)),
        )];
        choices.extend(fleet.nodes.iter().map(|n| {
            (
                format!("against {} ({}, {})", n.id, n.dc, n.org),
                Effect::Step(Step::ResolveFor(Some(n.id.clone()))),
            )
        }));
        let lines = vec!["Resolve the marks against which node's installed patches?".into()];
        self.open(Dialog {
            confirm: Confirm::Pick(choices),
            ..Dialog::info(" resolve: match target ", lines)
        })
    }

    /// Resolves the marks, against what `node` has installed as last read.
    pub(crate) fn resolve_for(&mut self, node: Option<&str>) {
        let inventory = node
            .and_then(|n| self.ops.snapshot.fleet.node(n))
            .map(|v| v.inventory());
        if let Some(n) = node
            && inventory.is_none()
        {
            self.status = Some((
                format!("{n} has not been read yet; try again shortly"),
                true,
            ));
            return;
        }
        let filters = self.filters.clone();
        let narrow = move |p: &crate::engine::patch::Patch| filters.matches(p);
        let request = select::Request {
            specs: self.marks.iter().cloned().collect(),
            autoselect: true,
            target: inventory.as_ref(),
            narrow: &narrow,
        };
        self.selection = Some(select::resolve(&self.depot.patches, &request));
        self.selection_target = node.map(str::to_string);
        self.mode = Mode::Selection;
    }

    /// `S`: save the marks under a name.
    pub(crate) fn save_marks_dialog(&mut self) -> Effect {
        if self.marks.is_empty() {
            self.status = Some(("mark patches with space first, then press S".into(), true));
            return Effect::None;
        }
        let lines = vec![
            format!(
                "Save the {} marked patch(es) under the name:",
                self.marks.len()
            ),
            "Enter saves (a selection of that name is replaced), Esc cancels".into(),
        ];
        self.open(Dialog {
            confirm: Confirm::Input(InputFor::SaveMarks),
            ..Dialog::info(" save the selection ", lines)
        })
    }

    /// `L`: recall a saved selection in place of the marks.
    pub(crate) fn recall_dialog(&mut self) -> Effect {
        if self.saved_selections.is_empty() {
            self.status = Some((
                "no saved selections yet: mark patches, then press S".into(),
                true,
            ));
            return Effect::None;
        }
        let choices = self
            .saved_selections
            .iter()
            .map(|(name, n)| {
                (
                    format!("{name} ({n} patches)"),
                    Effect::Step(Step::Recall(name.clone())),
                )
            })
            .collect();
        let lines = vec!["Recall which selection? It replaces the marks.".into()];
        self.open(Dialog {
            confirm: Confirm::Pick(choices),
            ..Dialog::info(" recall a selection ", lines)
        })
    }

    /// What the text typed into an input dialog does.
    pub(crate) fn input_done(&mut self, purpose: InputFor, text: String) -> Effect {
        match purpose {
            InputFor::SaveMarks if text.is_empty() => {
                self.status = Some(("not saved: no name given".into(), true));
                Effect::None
            }
            InputFor::SaveMarks => Effect::SaveMarks(text),
        }
    }

    /// Puts a recalled selection in place of the marks (the ids the depot
    /// still has); the event loop read it from the lab.
    pub fn recalled(&mut self, name: &str, ids: std::collections::BTreeSet<String>) {
        let known: std::collections::BTreeSet<String> = ids
            .iter()
            .filter(|id| self.depot.get(id).is_some())
            .cloned()
            .collect();
        let gone = ids.len() - known.len();
        self.marks = known;
        self.marks_changed = true;
        self.status = Some((
            match gone {
                0 => format!("recalled {name}: {} marked", self.marks.len()),
                n => format!(
                    "recalled {name}: {} marked, {n} no longer in the depot",
                    self.marks.len()
                ),
            },
            false,
        ));
    }
}
