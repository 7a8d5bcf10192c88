//! Key bindings: one table that drives both key handling and the `?` help,
//! so the help can never disagree with what the keys do. Keys are written
//! as text (`j`, `down`, `ctrl-f`, `space`) so user bindings can use the
//! same notation.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Depot,
    Filter,
    Replication,
    Groups,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Depot => "Depot pane",
            Scope::Filter => "Category/filter pane",
            Scope::Replication => "Replication pane",
            Scope::Groups => "Cluster groups pane",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    FocusDepot,
    FocusFilter,
    FocusReplication,
    FocusGroups,
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
    (&["s"], Action::Resolve, Scope::Global, "resolve the marks"),
    (&["/"], Action::Search, Scope::Depot, "fuzzy search"),
    (&["space"], Action::Mark, Scope::Depot, "mark or unmark"),
    (&["a"], Action::MarkAll, Scope::Depot, "mark all shown"),
    (&["u"], Action::UnmarkAll, Scope::Depot, "unmark everything"),
    (&["enter"], Action::Apply, Scope::Filter, "use this filter"),
    (&["R"], Action::Replicate, Scope::Depot, "replicate marked"),
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

static ACTIVE: std::sync::OnceLock<Vec<Binding>> = std::sync::OnceLock::new();

/// The built-in bindings.
pub fn defaults() -> Vec<Binding> {
    BINDINGS
        .iter()
        .map(|(keys, action, scope, what)| Binding {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            action: *action,
            scope: *scope,
            what,
        })
        .collect()
}

fn active() -> &'static [Binding] {
    ACTIVE.get_or_init(defaults)
}

/// Puts bindings in force for this process (once, at start).
pub fn install(bindings: Vec<Binding>) {
    let _ = ACTIVE.set(bindings);
}

/// `FocusDepot` → `focus_depot`: the names keys.toml uses.
pub fn action_name(action: Action) -> String {
    let mut out = String::new();
    for (i, c) in format!("{action:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Global => "global",
        Scope::Depot => "depot",
        Scope::Filter => "filter",
        Scope::Replication => "replication",
        Scope::Groups => "groups",
    }
}

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
pub fn with_user_keys(text: &str) -> Result<Vec<Binding>, String> {
    use std::collections::BTreeMap;
    let tables: BTreeMap<String, BTreeMap<String, Vec<String>>> =
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| crate::engine::manifest::line_of(text, s.start))
                .unwrap_or(0);
            format!("line {line}: {}", e.message().trim())
        })?;
    let mut bindings = defaults();
    for (scope, entries) in tables {
        let known_scope = [
            Scope::Global,
            Scope::Depot,
            Scope::Filter,
            Scope::Replication,
            Scope::Groups,
        ]
        .into_iter()
        .find(|s| scope_name(*s) == scope)
        .ok_or_else(|| {
            format!(
                "unknown table [{scope}]; expected global, depot, filter, replication or groups"
            )
        })?;
        for (name, keys) in entries {
            for k in &keys {
                parse_key(k).ok_or_else(|| format!("[{scope}] {name}: unknown key {k:?}; keys look like j, G, ctrl-f, space, enter, pageup"))?;
            }
            let binding = bindings
                .iter_mut()
                .find(|b| b.scope == known_scope && action_name(b.action) == name)
                .ok_or_else(|| {
                    format!("[{scope}] has no action {name:?}; `?` in the console lists them")
                })?;
            binding.keys = keys;
        }
    }
    Ok(bindings)
}

/// The action bound to `key` in `scope` (pane bindings win over global ones).
pub fn action_for(key: KeyEvent, scope: Scope) -> Option<Action> {
    let wanted = normalise(key);
    let hit = |s: Scope| {
        active().iter().find(|b| {
            b.scope == s
                && b.keys
                    .iter()
                    .any(|k| parse_key(k).map(normalise) == Some(wanted))
        })
    };
    hit(scope).or_else(|| hit(Scope::Global)).map(|b| b.action)
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

/// Help lines for a pane: its own keys, then the global ones.
pub fn help(scope: Scope) -> Vec<(Scope, String, &'static str)> {
    let mut rows = Vec::new();
    for wanted in [scope, Scope::Global] {
        for b in active().iter().filter(|b| b.scope == wanted) {
            rows.push((b.scope, b.keys.join(" "), b.what));
        }
    }
    rows
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
        assert_eq!(action_for(j, Scope::Depot), Some(Action::Down));
        assert_eq!(action_for(down, Scope::Filter), Some(Action::Down));
        let shift_g = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(action_for(shift_g, Scope::Depot), Some(Action::Bottom));
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
        let b = with_user_keys("[global]\nquit = [\"ctrl-q\"]\n[depot]\nmark = [\"m\"]\n").unwrap();
        let quit = b.iter().find(|b| b.action == Action::Quit).unwrap();
        assert_eq!(quit.keys, ["ctrl-q"]);
        assert!(
            b.iter()
                .any(|b| b.action == Action::Mark && b.keys == ["m"])
        );
        assert!(
            with_user_keys("[depot]\nfly = [\"f\"]")
                .unwrap_err()
                .contains("no action \"fly\"")
        );
        assert!(
            with_user_keys("[global]\nquit = [\"hyper-x\"]")
                .unwrap_err()
                .contains("unknown key")
        );
        assert!(
            with_user_keys("[nowhere]\nquit = [\"q\"]")
                .unwrap_err()
                .contains("unknown table")
        );
        assert!(
            with_user_keys("[global\n")
                .unwrap_err()
                .starts_with("line 1")
        );
        assert_eq!(action_name(Action::FocusDepot), "focus_depot");
    }

    #[test]
    fn pane_help_lists_pane_keys_first() {
        let rows = help(Scope::Depot);
        assert_eq!(rows[0].0, Scope::Depot);
        assert!(rows.iter().any(|r| r.2 == "quit"));
        assert!(!rows.iter().any(|r| r.0 == Scope::Filter));
    }
}
