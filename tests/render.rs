//! Render snapshots of the console at 80x24 (the serial console size) and
//! one larger size, through ratatui's TestBackend. Keys go through the same
//! `App::handle_key` the terminal uses; searches run synchronously here.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use patchdeck::engine::demo;
use patchdeck::engine::depot::Depot;
use patchdeck::engine::fuzzy::Searcher;
use patchdeck::engine::lab::Lab;
use patchdeck::tui::app::{App, Mode, Pane};
use patchdeck::tui::theme::Theme;
use patchdeck::tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

struct Console {
    app: App,
    searcher: Searcher,
    _dir: tempfile::TempDir,
}

fn console() -> Console {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::new(dir.path().join("demo"));
    demo::write_lab(
        &lab,
        demo::DemoOptions {
            patches: 80,
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::write(lab.depot_dir().join("ZZ_BROKEN.patch"), b"not a patch").unwrap();
    let depot = Depot::open(&lab.depot_dir()).unwrap();
    let app = App::new("demo".into(), depot, &lab.config().unwrap(), Theme::mono());
    let searcher = Searcher::new(app.lines.clone());
    Console {
        app,
        searcher,
        _dir: dir,
    }
}

impl Console {
    fn keys(&mut self, keys: &str) {
        for c in keys.chars() {
            self.key(KeyCode::Char(c));
        }
    }
    fn key(&mut self, code: KeyCode) {
        let effect = self.app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
        self.app.run_effect_now(effect, &mut self.searcher);
    }
    fn screen(&mut self, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| view::render(&mut self.app, f)).unwrap();
        terminal.backend().to_string()
    }
}

#[test]
fn depot_pane_80x24() {
    let mut c = console();
    c.keys("jj ");
    insta::assert_snapshot!(c.screen(80, 24));
}

#[test]
fn fuzzy_search_narrows_live() {
    let mut c = console();
    c.keys("/");
    assert_eq!(c.app.mode, Mode::Search);
    c.keys("tls");
    let screen = c.screen(80, 24);
    assert!(c.app.rows.len() < 80, "search narrowed the list");
    insta::assert_snapshot!(screen);
    c.key(KeyCode::Esc);
    assert_eq!(c.app.rows.len(), 80, "Esc clears the search");
}

#[test]
fn filter_pane_80x24() {
    let mut c = console();
    c.keys("2");
    assert_eq!(c.app.focus, Pane::Filter);
    c.keys("jj");
    insta::assert_snapshot!(c.screen(80, 24));
}

#[test]
fn choosing_a_category_sets_the_filter() {
    let mut c = console();
    c.keys("2");
    let row = c
        .app
        .filter_items
        .iter()
        .position(|i| i.expr() == "*.*,c=critical_patch")
        .unwrap();
    for _ in 0..row {
        c.keys("j");
    }
    c.key(KeyCode::Enter);
    assert_eq!(c.app.filter_text, "*.*,c=critical_patch");
    assert_eq!(c.app.focus, Pane::Depot);
    assert!(
        c.app
            .rows
            .iter()
            .all(|&i| c.app.depot.patches[i].has_category("critical_patch"))
    );
    insta::assert_snapshot!(c.screen(80, 24));
}

#[test]
fn filter_editor_shows_errors_inline() {
    let mut c = console();
    c.keys("e");
    assert_eq!(c.app.mode, Mode::EditFilter);
    c.keys("*.*,c=security,bogus>1");
    c.key(KeyCode::Enter);
    assert_eq!(c.app.mode, Mode::EditFilter, "a bad filter is not applied");
    insta::assert_snapshot!(c.screen(80, 24));
}

#[test]
fn help_overlay_lists_the_pane_keys() {
    let mut c = console();
    c.keys("?");
    let screen = c.screen(80, 24);
    // The whole help fits 80x24: nothing wraps, the last line is shown.
    assert!(screen.contains("closes this help"), "{screen}");
    assert!(screen.contains("ctrl-f pagedown page down"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn resolved_selection_dialog() {
    let mut c = console();
    c.keys("/");
    c.keys("GW");
    c.key(KeyCode::Enter);
    c.keys("   s");
    assert_eq!(c.app.mode, Mode::Selection);
    insta::assert_snapshot!(c.screen(80, 24));
}

#[test]
fn wide_terminal_shows_both_panes() {
    let mut c = console();
    insta::assert_snapshot!(c.screen(140, 30));
}

#[test]
fn tiny_terminal_gets_a_notice_not_a_panic() {
    let mut c = console();
    let screen = c.screen(30, 6);
    assert!(screen.contains("too small"), "{screen}");
}
