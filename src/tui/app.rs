//! The console's state and how keys change it. Pure: no terminal, no
//! threads. Work that must not block input (fuzzy search) is returned as an
//! [`Effect`] for the event loop to run elsewhere; its results come back
//! through [`App::search_done`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::depot::Depot;
use crate::engine::filter::FilterList;
use crate::engine::fuzzy::{Hit, SearchLines, Searcher};
use crate::engine::lab::LabConfig;
use crate::engine::patch::Patch;
use crate::engine::select::Selection;
use crate::tui::keymap::{Action, Keymap, Scope};
use crate::tui::state::{Editor, Effect, FilterItem, ListCursor, Mode, OpsState, Pane};
use crate::tui::theme::Theme;

pub struct App {
    pub lab_name: String,
    pub depot: Arc<Depot>,
    pub theme: Theme,
    /// The key bindings in force (built-in, with the user's `keys.toml`).
    pub keymap: Keymap,
    pub focus: Pane,
    pub mode: Mode,
    /// The applied filter expression, as typed.
    pub filter_text: String,
    pub filters: FilterList,
    /// Depot indexes passing the filter, in depot order.
    pub filtered: Arc<Vec<usize>>,
    pub query: String,
    /// Bumped on every query change; results for an older one are dropped.
    pub generation: u64,
    /// Rows of the depot pane: indexes into `depot.patches`.
    pub rows: Vec<usize>,
    /// True while the shown rows belong to an older query.
    pub searching: bool,
    pub marks: BTreeSet<String>,
    /// Set when the marks changed, so the event loop saves them in the lab.
    pub marks_changed: bool,
    /// The saved selections' names and sizes, as the lab last had them.
    pub saved_selections: Vec<(String, usize)>,
    pub depot_cursor: ListCursor,
    pub filter_items: Vec<FilterItem>,
    pub filter_cursor: ListCursor,
    pub editor: Editor,
    pub selection: Option<Selection>,
    /// The node the selection was resolved against (`None`: in the abstract).
    pub selection_target: Option<String>,
    pub status: Option<(String, bool)>,
    /// Rows the last render had for the focused list, for paging.
    pub page: usize,
    pub lines: SearchLines,
    /// The operations side: fleet, replication, rollouts, dialogs.
    pub ops: OpsState,
    /// Each patch's signature verdict and the lab's policy (docs/trust.md);
    /// empty when the console was not opened on a lab.
    pub trust: crate::engine::trust::Assessment,
}

impl App {
    pub fn new(lab_name: String, depot: Depot, config: &LabConfig, theme: Theme) -> App {
        let lines = SearchLines::new(&depot.patches);
        let filter_items = filter_items(&depot, config);
        let all: Arc<Vec<usize>> = Arc::new((0..depot.patches.len()).collect());
        App {
            lab_name,
            rows: all.to_vec(),
            filtered: all,
            depot: Arc::new(depot),
            theme,
            keymap: Keymap::default(),
            focus: Pane::Depot,
            mode: Mode::Normal,
            filter_text: String::new(),
            filters: FilterList::default(),
            query: String::new(),
            generation: 0,
            searching: false,
            marks: BTreeSet::new(),
            marks_changed: false,
            saved_selections: Vec::new(),
            depot_cursor: ListCursor::default(),
            filter_items,
            filter_cursor: ListCursor::default(),
            editor: Editor::default(),
            selection: None,
            selection_target: None,
            status: None,
            page: 10,
            lines,
            ops: Default::default(),
            trust: Default::default(),
        }
    }

    pub fn current_patch(&self) -> Option<&Patch> {
        self.rows
            .get(self.depot_cursor.selected)
            .map(|&i| &self.depot.patches[i])
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> Effect {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Effect::Quit;
        }
        match self.mode {
            Mode::Search => return self.search_key(key),
            Mode::EditFilter => return self.editor_key(key),
            Mode::Dialog => return self.dialog_key(key),
            Mode::Command => return self.command_key(key),
            Mode::HistoryFilter => return self.history_filter_key(key),
            Mode::Help | Mode::Selection => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') | KeyCode::Char('?')
                ) {
                    self.mode = Mode::Normal;
                }
                return Effect::None;
            }
            Mode::Normal => {}
        }
        if key.code == KeyCode::Esc {
            self.status = None;
            return if self.query.is_empty() {
                Effect::None
            } else {
                self.set_query(String::new())
            };
        }
        let Some(action) = self.keymap.action_for(key, self.focus.scope()) else {
            return Effect::None;
        };
        self.status = None;
        match action {
            Action::Quit => return self.quit(),
            Action::Help => self.mode = Mode::Help,
            Action::FocusDepot => self.focus = Pane::Depot,
            Action::FocusFilter => self.focus = Pane::Filter,
            Action::FocusReplication => self.focus = Pane::Replication,
            Action::FocusGroups => self.focus = Pane::Groups,
            Action::FocusHistory => self.focus = Pane::History,
            Action::NextPane => self.focus = self.focus.next(),
            Action::Left | Action::Right => self.move_group(action == Action::Right),
            Action::Command => {
                self.ops.command = Editor::default();
                self.mode = Mode::Command;
            }
            Action::Replicate => return self.replicate_dialog(),
            Action::RolloutStart => return self.rollout_dialog(),
            Action::Pause | Action::Resume | Action::Abort => return self.control_rollout(action),
            Action::RollbackGroup => return self.rollback_group_dialog(),
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => match self.focus {
                Pane::Depot => self.depot_cursor.apply(action, self.rows.len(), self.page),
                Pane::Filter => {
                    self.filter_cursor
                        .apply(action, self.filter_items.len(), self.page)
                }
                Pane::Replication => {
                    let len = self.ops.snapshot.replication.len();
                    self.ops.repl_cursor.apply(action, len, self.page)
                }
                Pane::Groups => {
                    let len = self.ops.clusters.len();
                    self.ops.cluster_cursor.apply(action, len, self.page);
                    self.ops.group = 0;
                }
                Pane::History => {
                    let len = self.history_rows().len();
                    self.ops.history_cursor.apply(action, len, self.page)
                }
            },
            Action::Search if self.focus == Pane::History => {
                self.mode = Mode::HistoryFilter;
            }
            Action::ClearFilter if self.focus == Pane::History => {
                self.ops.history_filter = Editor::default();
                self.ops.history_cursor = ListCursor::default();
            }
            Action::Apply if self.focus == Pane::Groups => {
                if let Some(cluster) = self.ops.selected_cluster().map(|c| c.id.clone()) {
                    let lines = match self.ops.snapshot.fleet.drift(&cluster) {
                        Some(r) if r.drifted => {
                            let mut lines = vec![format!(
                                "{cluster} has drifted: its members are not on the same release."
                            )];
                            lines.extend(
                                r.differences.iter().map(|d| format!("  {}", d.describe())),
                            );
                            lines.push(String::new());
                            lines.push(format!("`patchdeck drift --cluster {cluster}` says the same; a rollout needs --allow-drift unless it brings them level."));
                            lines
                        }
                        Some(_) => vec![format!(
                            "{cluster}: every member has the same patches and component versions."
                        )],
                        None => vec![format!(
                            "{cluster}: fewer than two members could be read; no comparison."
                        )],
                    };
                    return self.open(crate::tui::state::Dialog::info(
                        format!(" drift: {cluster} "),
                        lines,
                    ));
                }
            }
            Action::Apply if self.focus == Pane::History => {
                let rows = self.history_rows();
                if let Some(&i) = rows.get(self.ops.history_cursor.selected)
                    && let Some(change) = self.ops.snapshot.history.get(i)
                {
                    let lines = crate::engine::history::record(change);
                    let title = format!(" {} {} {} ", change.op, change.patch, change.node);
                    return self.open(crate::tui::state::Dialog::info(title, lines));
                }
            }
            Action::Search => {
                self.focus = Pane::Depot;
                self.mode = Mode::Search;
            }
            Action::EditFilter => {
                self.focus = Pane::Filter;
                self.mode = Mode::EditFilter;
                self.editor = Editor {
                    cursor: self.filter_text.chars().count(),
                    text: self.filter_text.clone(),
                    error: None,
                };
            }
            Action::ClearFilter => {
                let effect = self.apply_filter(String::new());
                self.query.clear();
                return self.refresh_rows(effect);
            }
            Action::Resolve => return self.resolve_dialog(),
            Action::Operate => return self.operate_dialog(),
            Action::SaveMarks => return self.save_marks_dialog(),
            Action::RecallMarks => return self.recall_dialog(),
            Action::Updates => return self.updates_dialog(),
            Action::Mark => {
                if let Some(id) = self.current_patch().map(|p| p.id.clone()) {
                    if !self.marks.remove(&id) {
                        self.marks.insert(id);
                    }
                    self.marks_changed = true;
                    self.depot_cursor
                        .apply(Action::Down, self.rows.len(), self.page);
                }
            }
            Action::MarkAll => {
                let ids: Vec<String> = self
                    .rows
                    .iter()
                    .map(|&i| self.depot.patches[i].id.clone())
                    .collect();
                self.marks.extend(ids);
                self.marks_changed = true;
            }
            Action::UnmarkAll => {
                self.marks.clear();
                self.marks_changed = true;
            }
            Action::Apply => {
                if let Some(item) = self.filter_items.get(self.filter_cursor.selected) {
                    let expr = item.expr();
                    let effect = self.apply_filter(expr);
                    self.focus = Pane::Depot;
                    return effect;
                }
            }
        }
        Effect::None
    }

    fn search_key(&mut self, key: KeyEvent) -> Effect {
        match key.code {
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                Effect::None
            }
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                self.set_query(String::new())
            }
            KeyCode::Up | KeyCode::Down | KeyCode::PageUp | KeyCode::PageDown => {
                let action = self
                    .keymap
                    .action_for(key, Scope::Depot)
                    .unwrap_or(Action::Down);
                self.depot_cursor.apply(action, self.rows.len(), self.page);
                Effect::None
            }
            KeyCode::Backspace => {
                let mut q = self.query.clone();
                q.pop();
                self.set_query(q)
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.set_query(String::new())
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                let q = format!("{}{c}", self.query);
                self.set_query(q)
            }
            _ => Effect::None,
        }
    }

    pub(crate) fn editor_key(&mut self, key: KeyEvent) -> Effect {
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                Effect::None
            }
            KeyCode::Enter => match FilterList::parse_file_text(&self.editor.text) {
                Ok(_) => {
                    self.mode = Mode::Normal;
                    self.focus = Pane::Depot;
                    let text = self.editor.text.trim().to_string();
                    self.apply_filter(text)
                }
                Err(e) => {
                    self.editor.error = Some(e);
                    Effect::None
                }
            },
            _ => {
                self.editor.edit(key);
                Effect::None
            }
        }
    }

    /// Sets the filter from its text (already known to parse, or empty).
    pub fn apply_filter(&mut self, text: String) -> Effect {
        let filters = match FilterList::parse_file_text(&text) {
            Ok(f) => f,
            Err(e) => {
                self.status = Some((e.to_string(), true));
                return Effect::None;
            }
        };
        let filtered: Vec<usize> = (0..self.depot.patches.len())
            .filter(|&i| filters.matches(&self.depot.patches[i]))
            .collect();
        self.status = Some((
            if text.is_empty() {
                "filter cleared".to_string()
            } else {
                format!("filter {text}: {} patches", filtered.len())
            },
            false,
        ));
        self.filters = filters;
        self.filter_text = text;
        self.filtered = Arc::new(filtered);
        self.refresh_rows(Effect::None)
    }

    fn set_query(&mut self, query: String) -> Effect {
        self.query = query;
        self.refresh_rows(Effect::None)
    }

    /// Recomputes the rows: directly for an empty query, else by asking for
    /// a search of the filtered set.
    fn refresh_rows(&mut self, otherwise: Effect) -> Effect {
        self.generation += 1;
        if self.query.trim().is_empty() {
            self.rows = self.filtered.to_vec();
            self.searching = false;
            self.depot_cursor.clamp(self.rows.len());
            return otherwise;
        }
        self.searching = true;
        Effect::Search {
            generation: self.generation,
            query: self.query.clone(),
            candidates: self.filtered.clone(),
        }
    }

    /// Takes search results; those for an outdated query are dropped.
    /// The history rows the pane's filter keeps (indexes into the snapshot).
    pub fn history_rows(&self) -> Vec<usize> {
        crate::engine::history::rows(&self.ops.snapshot.history, &self.ops.history_filter.text)
    }

    /// Typing the history filter: Enter keeps it, Esc clears it.
    fn history_filter_key(&mut self, key: KeyEvent) -> Effect {
        match key.code {
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                self.ops.history_filter = Editor::default();
            }
            _ => self.ops.history_filter.edit_text(key),
        }
        self.ops.history_cursor = ListCursor::default();
        Effect::None
    }

    /// Whether keys that act on rows must wait: the rows shown belong to
    /// an older query than the one typed, and the search box is closed (so
    /// the key is not part of the query).
    pub fn rows_pending(&self) -> bool {
        self.searching && self.mode != Mode::Search
    }

    pub fn search_done(&mut self, generation: u64, hits: Vec<Hit>) -> bool {
        if generation != self.generation {
            return false;
        }
        self.rows = hits.into_iter().map(|h| h.index).collect();
        self.searching = false;
        self.depot_cursor = ListCursor::default();
        true
    }

    /// Runs a search synchronously (tests and tools without an event loop).
    pub fn run_effect_now(&mut self, effect: Effect, searcher: &mut Searcher) {
        if let Effect::Search {
            generation,
            query,
            candidates,
        } = effect
        {
            let hits = searcher.search(&query, &candidates);
            self.search_done(generation, hits);
        }
    }
}

/// The filter pane's items: all, each category with its count, saved filters.
fn filter_items(depot: &Depot, config: &LabConfig) -> Vec<FilterItem> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &depot.patches {
        for c in &p.categories {
            *counts.entry(c.as_str()).or_default() += 1;
        }
    }
    let mut tags: BTreeSet<&str> = counts.keys().copied().collect();
    tags.extend(depot.categories.keys().map(String::as_str));
    let mut items = vec![FilterItem::All];
    items.extend(tags.into_iter().map(|tag| FilterItem::Category {
        tag: tag.to_string(),
        description: depot.categories.get(tag).cloned().unwrap_or_default(),
        count: counts.get(tag).copied().unwrap_or(0),
    }));
    items.extend(config.filters.iter().map(|f| FilterItem::Saved {
        name: f.name.clone(),
        expr: f.expr.clone(),
    }));
    items
}
