//! The console's updates view (`U` in the depot pane) through the same
//! `App::handle_key` the terminal uses, rendered with ratatui's
//! TestBackend: the table for the selected cluster, and its marking keys.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use patchdeck::engine::components;
use patchdeck::engine::demo;
use patchdeck::engine::depot::Depot;
use patchdeck::engine::fleet::Fleet;
use patchdeck::engine::fuzzy::Searcher;
use patchdeck::engine::lab::Lab;
use patchdeck::engine::node::Node;
use patchdeck::tui::app::App;
use patchdeck::tui::state::{Mode, OpsState};
use patchdeck::tui::theme::Theme;
use patchdeck::tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

struct Console {
    app: App,
    searcher: Searcher,
    lab: Lab,
    _dir: tempfile::TempDir,
}

impl Console {
    fn new() -> Console {
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
        let depot = Depot::open(&lab.depot_dir()).unwrap();
        let mut app = App::new("demo".into(), depot, &lab.config().unwrap(), Theme::mono());
        let fleet = Fleet::load(&lab.fleet_path()).unwrap();
        app.ops = OpsState::new(lab.clone(), fleet);
        let searcher = Searcher::new(app.lines.clone());
        Console {
            app,
            searcher,
            lab,
            _dir: dir,
        }
    }

    fn key(&mut self, c: char) {
        let effect = self
            .app
            .handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        self.app.run_effect_now(effect, &mut self.searcher);
    }

    fn select_cluster(&mut self, id: &str) {
        let at = self
            .app
            .ops
            .clusters
            .iter()
            .position(|c| c.id == id)
            .unwrap();
        self.app.ops.cluster_cursor.selected = at;
    }

    fn screen(&mut self, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| view::render(&mut self.app, f)).unwrap();
        terminal.backend().to_string()
    }

    /// What the engine says the cluster's members can get.
    fn expected(&self, cluster: &str, hot_only: bool) -> Vec<String> {
        let fleet = Fleet::load(&self.lab.fleet_path()).unwrap();
        let mut ids = Vec::new();
        for n in fleet
            .nodes
            .iter()
            .filter(|n| n.cluster.as_deref() == Some(cluster))
        {
            let root = self.lab.resolve_root(n.root.as_deref().unwrap());
            let inv = Node::open(&root, &n.id).unwrap().inventory().unwrap();
            for u in components::updates_for(&self.app.depot.patches, &inv, false) {
                if hot_only && u.restart.as_str() != "none" {
                    continue;
                }
                for p in u.patches {
                    if !ids.contains(&p.id) {
                        ids.push(p.id);
                    }
                }
            }
        }
        ids.sort();
        ids
    }
}

#[test]
fn updates_view_80x24() {
    let mut c = Console::new();
    c.select_cluster("db");
    c.key('U');
    assert_eq!(c.app.mode, Mode::Dialog);
    let screen = c.screen(80, 24);
    assert!(screen.contains("Updates on cluster db"), "{screen}");
    assert!(screen.contains("db-1_1"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn m_marks_every_path_and_h_only_the_hot_ones() {
    let mut c = Console::new();
    c.select_cluster("legacy");
    c.key('U');
    c.key('h');
    assert_eq!(c.app.mode, Mode::Normal);
    let hot: Vec<String> = c.app.marks.iter().cloned().collect();
    assert_eq!(hot, c.expected("legacy", true));
    c.app.marks.clear();
    c.key('U');
    c.key('m');
    let every: Vec<String> = c.app.marks.iter().cloned().collect();
    assert_eq!(every, c.expected("legacy", false));
    assert!(every.len() > hot.len(), "{every:?} vs {hot:?}");
}
