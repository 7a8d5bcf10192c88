//! The console's state types, shared by the key handling (`app`, `operate`)
//! and the drawing (`view`, `panes`): which pane has focus, which mode the
//! keys are in, what the event loop must do next, dialogs, cursors, and the
//! operations side (fleet, live snapshot, rollouts).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::filter::{FilterError, FilterList};
use crate::engine::fleet::Fleet;
use crate::engine::groups::{self, Partition};
use crate::engine::lab::Lab;
use crate::engine::rollout::Rollout;
use crate::tui::keymap::{Action, Scope};
use crate::tui::live::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Depot,
    Filter,
    Replication,
    Groups,
    History,
}

impl Pane {
    pub fn scope(self) -> Scope {
        match self {
            Pane::Depot => Scope::Depot,
            Pane::Filter => Scope::Filter,
            Pane::Replication => Scope::Replication,
            Pane::Groups => Scope::Groups,
            Pane::History => Scope::History,
        }
    }

    pub fn next(self) -> Pane {
        match self {
            Pane::Depot => Pane::Filter,
            Pane::Filter => Pane::Replication,
            Pane::Replication => Pane::Groups,
            Pane::Groups => Pane::History,
            Pane::History => Pane::Depot,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a fuzzy query in the depot pane.
    Search,
    /// Editing the filter expression.
    EditFilter,
    Help,
    /// Showing the resolved selection.
    Selection,
    /// A dialog (preview, confirmation, output) has the keys.
    Dialog,
    /// Typing a `:` command.
    Command,
    /// Typing the history pane's filter line.
    HistoryFilter,
}

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    Quit,
    /// Run a fuzzy search off the input path; answer with `search_done`.
    Search {
        generation: u64,
        query: String,
        candidates: Arc<Vec<usize>>,
    },
    /// Run `patchdeck ARGS --lab LAB` as a child process. `detached` work
    /// (replication, rollouts) outlives the console and is watched through
    /// the journal; otherwise its output is shown in a dialog when it ends.
    Run {
        title: String,
        args: Vec<String>,
        detached: bool,
    },
    /// Leave, asking a rollout this console started to pause first.
    QuitPausing(i64),
    /// Mark these patch ids in the depot (a choice in the updates view;
    /// the app applies it itself).
    Mark(Vec<String>),
    /// Open the next dialog of a flow (the app applies it itself).
    Step(Step),
    /// Save the marks in the lab under this name.
    SaveMarks(String),
    /// Read the selection saved under this name; the event loop hands it
    /// to [`App::recalled`](crate::tui::app::App::recalled).
    RecallMarks(String),
}

/// The operations on the marked patches that a target is picked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Install,
    Rollback,
    Commit,
    Remove,
    Replicate,
}

impl Operation {
    /// The verb that carries it out.
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Install => "install",
            Operation::Rollback => "rollback",
            Operation::Commit => "commit",
            Operation::Remove => "remove",
            Operation::Replicate => "replicate",
        }
    }
}

/// A dialog that leads to another: picking a target, previewing on it,
/// resolving against a node, saving and recalling selections.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Pick the target of an operation on the chosen patches.
    Target(Operation),
    /// Preview the operation on the target, then confirm it.
    Preview(Operation, crate::engine::preview::Target),
    /// Resolve the marks against this node (`None`: in the abstract).
    ResolveFor(Option<String>),
    /// Replace the marks with the selection saved under this name.
    Recall(String),
}

/// What the text typed into an input dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFor {
    /// The name to save the marks under.
    SaveMarks,
}

/// A cursor over a list that keeps the cursor on screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListCursor {
    pub selected: usize,
    pub offset: usize,
}

impl ListCursor {
    pub fn apply(&mut self, action: Action, len: usize, page: usize) {
        let last = len.saturating_sub(1);
        let page = page.max(1);
        self.selected = match action {
            Action::Up => self.selected.saturating_sub(1),
            Action::Down => (self.selected + 1).min(last),
            Action::PageUp => self.selected.saturating_sub(page),
            Action::PageDown => (self.selected + page).min(last),
            Action::Top => 0,
            Action::Bottom => last,
            _ => self.selected,
        };
        self.clamp(len);
    }

    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }

    /// Scrolls just enough that the cursor is visible in `height` rows of
    /// a `len`-row list, and never past the end, so a list that grew
    /// taller (a resized terminal) is filled rather than left with blank rows.
    pub fn scroll(&mut self, height: usize, len: usize) {
        let height = height.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(len.saturating_sub(height));
    }
}

/// One line of the category/filter pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterItem {
    All,
    Category {
        tag: String,
        description: String,
        count: usize,
    },
    Saved {
        name: String,
        expr: String,
    },
}

impl FilterItem {
    /// The filter expression choosing this item sets.
    pub fn expr(&self) -> String {
        match self {
            FilterItem::All => String::new(),
            FilterItem::Category { tag, .. } => format!("*.*,c={tag}"),
            FilterItem::Saved { expr, .. } => expr.clone(),
        }
    }
}

/// The filter expression being edited, checked as it is typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Editor {
    pub text: String,
    /// Cursor position in characters.
    pub cursor: usize,
    pub error: Option<FilterError>,
}

impl Editor {
    /// Edits the text; the filter error is checked for the filter editor.
    pub fn edit(&mut self, key: KeyEvent) {
        self.edit_text(key);
        self.error = FilterList::parse_file_text(&self.text).err();
    }

    /// Edits the text only.
    pub fn edit_text(&mut self, key: KeyEvent) {
        let chars: Vec<char> = self.text.chars().collect();
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text = chars[self.cursor..].iter().collect();
                self.cursor = 0;
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                let mut chars = chars;
                chars.insert(self.cursor, c);
                self.text = chars.into_iter().collect();
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let mut chars = chars;
                chars.remove(self.cursor - 1);
                self.text = chars.into_iter().collect();
                self.cursor -= 1;
            }
            KeyCode::Delete if self.cursor < chars.len() => {
                let mut chars = chars;
                chars.remove(self.cursor);
                self.text = chars.into_iter().collect();
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(chars.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = chars.len(),
            _ => {}
        }
    }
}

/// How a dialog is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    /// Information only: any of Esc, Enter, q closes it.
    Close,
    /// A key per choice, with its label; Esc cancels.
    Keys(Vec<(char, String, Effect)>),
    /// Type `expected` and press Enter; Esc cancels.
    Typed { expected: String, effect: Effect },
    /// A list of choices: arrows (or j/k) move, Enter picks, Esc cancels.
    Pick(Vec<(String, Effect)>),
    /// Type a line and press Enter; Esc cancels.
    Input(InputFor),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    pub title: String,
    pub lines: Vec<String>,
    pub confirm: Confirm,
    pub typed: String,
    pub scroll: usize,
    /// The chosen row of a [`Confirm::Pick`].
    pub pick: usize,
    /// The cluster whose rollout settings (failure policy, group count)
    /// Tab and Left/Right change while this dialog is open.
    pub adjusts: Option<String>,
}

impl Dialog {
    pub fn info(title: impl Into<String>, lines: Vec<String>) -> Dialog {
        Dialog {
            title: title.into(),
            lines,
            confirm: Confirm::Close,
            typed: String::new(),
            scroll: 0,
            pick: 0,
            adjusts: None,
        }
    }
}

/// A cluster and its partition (or why it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub id: String,
    pub partition: Result<Partition, groups::PartitionError>,
}

#[derive(Debug, Default)]
pub struct OpsState {
    pub lab: Option<Lab>,
    pub fleet: Option<Fleet>,
    pub clusters: Vec<ClusterView>,
    pub snapshot: Snapshot,
    /// Per patch: (nodes with it applied or committed, nodes with its product).
    pub coverage: HashMap<String, (usize, usize)>,
    pub repl_cursor: ListCursor,
    pub cluster_cursor: ListCursor,
    /// Selected group within the selected cluster.
    pub group: usize,
    pub dialog: Option<Dialog>,
    pub command: Editor,
    /// Rollouts this console started, to ask about on quit.
    pub started_here: bool,
    /// The history pane's cursor and filter line.
    pub history_cursor: ListCursor,
    pub history_filter: Editor,
    /// What happened recently, newest last.
    pub log: VecDeque<String>,
    /// The rollout dialog's choices, before the cluster's defaults.
    pub rollout_settings: RolloutSettings,
}

/// What the operator changed in the rollout dialog (`None`: the cluster's
/// own setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolloutSettings {
    pub on_failure: Option<crate::engine::fleet::OnFailure>,
    pub groups: Option<usize>,
}

const LOG_LINES: usize = 50;

impl OpsState {
    pub fn new(lab: Lab, fleet: Fleet) -> OpsState {
        let clusters = fleet
            .clusters
            .iter()
            .map(|c| ClusterView {
                id: c.id.clone(),
                partition: groups::partition(&fleet, &c.id, None),
            })
            .collect();
        OpsState {
            lab: Some(lab),
            fleet: Some(fleet),
            clusters,
            ..OpsState::default()
        }
    }

    pub fn rollout_of(&self, cluster: &str) -> Option<&Rollout> {
        self.snapshot.rollouts.iter().find(|r| r.cluster == cluster)
    }

    pub fn selected_cluster(&self) -> Option<&ClusterView> {
        self.clusters.get(self.cluster_cursor.selected)
    }

    pub fn push_log(&mut self, line: String) {
        self.log.push_back(line);
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
    }
}
