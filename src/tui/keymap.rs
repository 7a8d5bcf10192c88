//! Key bindings: one table that drives key handling, the `?` help and the
//! status line's hints, so none of them can disagree with what the keys
//! do. Keys are written as text (`j`, `down`, `ctrl-f`, `space`) so user
//! bindings can use the same notation; actions and scopes are named in
//! `keys.toml` by their serde names (`focus_depot`, `[groups]`).

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use serde::de::IntoDeserializer;

/// Where a binding applies; the table names of `keys.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Global,
    Depot,
    Filter,
    Replication,
    Groups,
    History,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Depot => "Depot pane",
            Scope::Filter => "Category/filter pane",
            Scope::Replication => "Replication pane",
            Scope::Groups => "Cluster groups pane",
            Scope::History => "History pane",
        }
    }
}

/// What a key does; the entry names of `keys.toml` (`focus_depot = ["1"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    Help,
    FocusDepot,
    FocusFilter,
    FocusReplication,
    FocusGroups,
    FocusHistory,
    NextPane,
    Left,
    Right,
    /// `:` command line for the CLI's verbs.
    Command,
    /// Replicate the marked patches (depot) or retry the selected one (replication).
    Replicate,
    RolloutStart,
    Pause,
    Resume,
    Abort,
    RollbackGroup,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Search,
    EditFilter,
    ClearFilter,
    Resolve,
    Mark,
    MarkAll,
    UnmarkAll,
    Apply,
    /// The updates view for the selected cluster.
    Updates,
    /// Install, roll back, commit or remove the marked patches on a target.
    Operate,
    /// Save the marks under a name.
    SaveMarks,
    /// Recall a saved selection.
    RecallMarks,
}

/// (keys, action, scope, what it does). The first key is the one shown in
/// the status line.
pub const BINDINGS: &[(&[&str], Action, Scope, &str)] = &[
    (&["?"], Action::Help, Scope::Global, "this help"),
    (&["q"], Action::Quit, Scope::Global, "quit"),
    (&["1"], Action::FocusDepot, Scope::Global, "depot pane"),
    (&["2"], Action::FocusFilter, Scope::Global, "filter pane"),
    (
        &["3"],
        Action::FocusReplication,
        Scope::Global,
        "replication pane",
    ),
    (
        &["4"],
        Action::FocusGroups,
        Scope::Global,
        "cluster groups pane",
    ),
    (&["5"], Action::FocusHistory, Scope::Global, "history pane"),
    (&["tab"], Action::NextPane, Scope::Global, "next pane"),
    (&[":"], Action::Command, Scope::Global, "command line"),
    (&["k", "up"], Action::Up, Scope::Global, "move up"),
    (&["j", "down"], Action::Down, Scope::Global, "move down"),
    (
        &["ctrl-b", "pageup"],
        Action::PageUp,
        Scope::Global,
        "page up",
    ),
    (
        &["ctrl-f", "pagedown"],
        Action::PageDown,
        Scope::Global,
        "page down",
    ),
    (&["g", "home"], Action::Top, Scope::Global, "first row"),
    (&["G", "end"], Action::Bottom, Scope::Global, "last row"),
    (&["e"], Action::EditFilter, Scope::Global, "edit the filter"),
    (
        &["x"],
        Action::ClearFilter,
        Scope::Global,
        "clear filter/search",
    ),
    (
        &["s"],
        Action::Resolve,
        Scope::Global,
        "resolve (on a node)",
    ),
    (&["/"], Action::Search, Scope::Depot, "fuzzy search"),
    (&["space"], Action::Mark, Scope::Depot, "mark or unmark"),
    (&["a"], Action::MarkAll, Scope::Depot, "mark all shown"),
    (&["u"], Action::UnmarkAll, Scope::Depot, "unmark everything"),
    (&["enter"], Action::Apply, Scope::Filter, "use this filter"),
    (&["R"], Action::Replicate, Scope::Depot, "replicate marked"),
    (&["U"], Action::Updates, Scope::Depot, "updates view"),
    (&["o"], Action::Operate, Scope::Depot, "act on the marked"),
    (
        &["S"],
        Action::SaveMarks,
        Scope::Depot,
        "save marks by name",
    ),
    (
        &["L"],
        Action::RecallMarks,
        Scope::Depot,
        "recall a selection",
    ),
    (
        &["R"],
        Action::Replicate,
        Scope::Replication,
        "retry selected",
    ),
    (
        &["h", "left"],
        Action::Left,
        Scope::Groups,
        "previous group",
    ),
    (&["l", "right"], Action::Right, Scope::Groups, "next group"),
    (
        &["r"],
        Action::RolloutStart,
        Scope::Groups,
        "roll out marked",
    ),
    (&["/"], Action::Search, Scope::History, "filter the history"),
    (
        &["enter"],
        Action::Apply,
        Scope::History,
        "the whole record",
    ),
    (
        &["enter"],
        Action::Apply,
        Scope::Groups,
        "what differs (drift)",
    ),
    (&["p"], Action::Pause, Scope::Groups, "pause rollout"),
    (&["u"], Action::Resume, Scope::Groups, "resume rollout"),
    (&["A"], Action::Abort, Scope::Groups, "abort rollout"),
    (
        &["b"],
        Action::RollbackGroup,
        Scope::Groups,
        "roll back group",
    ),
];

/// Parses `j`, `G`, `ctrl-f`, `space`, `enter`, `tab`, `pageup`, ….
pub fn parse_key(text: &str) -> Option<KeyEvent> {
    let (mods, name) = match text.strip_prefix("ctrl-") {
        Some(rest) => (KeyModifiers::CONTROL, rest),
        None => (KeyModifiers::NONE, text),
    };
    let code = match name {
        "space" => KeyCode::Char(' '),
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" => KeyCode::BackTab,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "backspace" => KeyCode::Backspace,
        s if s.chars().count() == 1 => KeyCode::Char(s.chars().next()?),
        _ => return None,
    };
    Some(KeyEvent::new(code, mods))
}

/// A binding in force: the built-in table, with keys the user rebound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub keys: Vec<String>,
    pub action: Action,
    pub scope: Scope,
    pub what: &'static str,
}

/// The bindings in force: the built-in table with the keys the user
/// rebound. The console's [`App`](crate::tui::app::App) owns one, as it
/// owns its theme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl Default for Keymap {
    /// The built-in bindings.
    fn default() -> Keymap {
        Keymap {
            bindings: BINDINGS
                .iter()
                .map(|(keys, action, scope, what)| Binding {
                    keys: keys.iter().map(|k| k.to_string()).collect(),
                    action: *action,
                    scope: *scope,
                    what,
                })
                .collect(),
        }
    }
}

/// A name from `keys.toml` as the enum serde reads it into.
fn from_name<'de, T: Deserialize<'de>>(name: &'de str) -> Option<T> {
    let de: serde::de::value::StrDeserializer<'de, serde::de::value::Error> =
        name.into_deserializer();
    T::deserialize(de).ok()
}

impl Keymap {
    /// Applies a user's `keys.toml` to the defaults:
    ///
    /// ```toml
    /// [global]
    /// quit = ["q", "ctrl-q"]
    /// [depot]
    /// mark = ["space", "m"]
    /// ```
    ///
    /// Each entry replaces the keys of that action in that table's scope.
    /// Errors name the line (TOML syntax), the table, the action or the key.
    pub fn with_user_keys(text: &str) -> Result<Keymap, String> {
        let tables: BTreeMap<String, BTreeMap<String, Vec<String>>> = toml::from_str(text)
            .map_err(|e| {
                let line = e
                    .span()
                    .map(|s| crate::engine::tomlspan::line_of(text, s.start))
                    .unwrap_or(0);
                format!("line {line}: {}", e.message().trim())
            })?;
        let mut keymap = Keymap::default();
        for (scope, entries) in &tables {
            let known_scope: Scope = from_name(scope).ok_or_else(|| {
                format!(
                    "unknown table [{scope}]; expected global, depot, filter, replication, groups or history"
                )
            })?;
            for (name, keys) in entries {
                for k in keys {
                    parse_key(k).ok_or_else(|| format!("[{scope}] {name}: unknown key {k:?}; keys look like j, G, ctrl-f, space, enter, pageup"))?;
                }
                let action: Option<Action> = from_name(name);
                let binding = keymap
                    .bindings
                    .iter_mut()
                    .find(|b| b.scope == known_scope && Some(b.action) == action)
                    .ok_or_else(|| {
                        format!("[{scope}] has no action {name:?}; `?` in the console lists them")
                    })?;
                binding.keys = keys.clone();
            }
        }
        Ok(keymap)
    }

    /// The action bound to `key` in `scope` (pane bindings win over global ones).
    pub fn action_for(&self, key: KeyEvent, scope: Scope) -> Option<Action> {
        let wanted = normalise(key);
        self.binding_where(scope, |b| {
            b.keys
                .iter()
                .any(|k| parse_key(k).map(normalise) == Some(wanted))
        })
        .map(|b| b.action)
    }

    /// The first key of `action` in `scope` (or globally), as the status
    /// line shows it; `None` when the user left the action without keys.
    pub fn key_of(&self, action: Action, scope: Scope) -> Option<&str> {
        self.binding_where(scope, |b| b.action == action)
            .and_then(|b| b.keys.first())
            .map(String::as_str)
    }

    fn binding_where(&self, scope: Scope, test: impl Fn(&Binding) -> bool) -> Option<&Binding> {
        [scope, Scope::Global]
            .into_iter()
            .find_map(|s| self.bindings.iter().find(|b| b.scope == s && test(b)))
    }

    /// Help lines for a pane: its own keys, then the global ones.
    pub fn help(&self, scope: Scope) -> Vec<(Scope, String, &'static str)> {
        let mut rows = Vec::new();
        for wanted in [scope, Scope::Global] {
            for b in self.bindings.iter().filter(|b| b.scope == wanted) {
                rows.push((b.scope, b.keys.join(" "), b.what));
            }
        }
        rows
    }
}

/// Shift is implied by an upper-case character; terminals differ on
/// whether they report it, so it is ignored for characters.
fn normalise(key: KeyEvent) -> (KeyCode, KeyModifiers) {
    let mods = match key.code {
        KeyCode::Char(_) => key.modifiers - KeyModifiers::SHIFT,
        _ => key.modifiers,
    };
    (key.code, mods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_parses() {
        for (keys, action, _, _) in BINDINGS {
            for k in *keys {
                assert!(parse_key(k).is_some(), "{k} for {action:?}");
            }
        }
    }

    #[test]
    fn vi_keys_and_arrows_do_the_same() {
        let j = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE);
        let down = KeyEvent::new(KeyCode::Down, KeyModifiers::NONE);
        let keys = Keymap::default();
        assert_eq!(keys.action_for(j, Scope::Depot), Some(Action::Down));
        assert_eq!(keys.action_for(down, Scope::Filter), Some(Action::Down));
        let shift_g = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(keys.action_for(shift_g, Scope::Depot), Some(Action::Bottom));
    }

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        let mut seen = std::collections::HashSet::new();
        for (keys, _, scope, _) in BINDINGS {
            for k in *keys {
                let key = normalise(parse_key(k).unwrap());
                assert!(
                    seen.insert((format!("{scope:?}"), key)),
                    "{k} bound twice in {scope:?}"
                );
            }
        }
    }

    #[test]
    fn user_keys_replace_an_actions_keys() {
        let b = Keymap::with_user_keys("[global]\nquit = [\"ctrl-q\"]\n[depot]\nmark = [\"m\"]\n")
            .unwrap();
        assert_eq!(b.key_of(Action::Quit, Scope::Depot), Some("ctrl-q"));
        assert_eq!(b.key_of(Action::Mark, Scope::Depot), Some("m"));
        let ctrl_q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL);
        assert_eq!(b.action_for(ctrl_q, Scope::Groups), Some(Action::Quit));
        assert!(
            Keymap::with_user_keys("[depot]\nfly = [\"f\"]")
                .unwrap_err()
                .contains("no action \"fly\"")
        );
        assert!(
            Keymap::with_user_keys("[global]\nquit = [\"hyper-x\"]")
                .unwrap_err()
                .contains("unknown key")
        );
        assert!(
            Keymap::with_user_keys("[nowhere]\nquit = [\"q\"]")
                .unwrap_err()
                .contains("unknown table")
        );
        assert!(
            Keymap::with_user_keys("[global\n")
                .unwrap_err()
                .starts_with("line 1")
        );
        assert_eq!(from_name::<Action>("focus_depot"), Some(Action::FocusDepot));
    }

    #[test]
    fn pane_help_lists_pane_keys_first() {
        let rows = Keymap::default().help(Scope::Depot);
        assert_eq!(rows[0].0, Scope::Depot);
        assert!(rows.iter().any(|r| r.2 == "quit"));
        assert!(!rows.iter().any(|r| r.0 == Scope::Filter));
    }
}
