//! Render snapshots of the console at 80x24 (the serial console size) and
//! one larger size, through ratatui's TestBackend. Keys go through the same
//! `App::handle_key` the terminal uses; searches run synchronously here.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use patchdeck::engine::demo;
use patchdeck::engine::depot::Depot;
use patchdeck::engine::fuzzy::Searcher;
use patchdeck::engine::lab::Lab;
use patchdeck::engine::preview::Target;
use std::sync::Mutex;

use patchdeck::engine::console;
use patchdeck::engine::fleet::{Fleet, OnFailure};
use patchdeck::engine::groups;
use patchdeck::engine::replicate;
use patchdeck::engine::rollout::fleet_env::FleetEnv;
use patchdeck::engine::rollout::{Plan, Runner, journal};
use patchdeck::engine::status::FleetView;
use patchdeck::tui::app::App;
use patchdeck::tui::live::{self, Snapshot};
use patchdeck::tui::state::OpsState;
use patchdeck::tui::state::{Mode, Pane};
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

/// Snapshots of live screens: temporary paths and elapsed times vary.
fn stable(check: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"/tmp/[^ |]*", "[tmp]");
    settings.add_filter(r"steps \d+(m\d+)?s", "steps [elapsed]");
    settings.add_filter(r"after \d+\.\d s", "after [elapsed]");
    settings.bind(check);
}

/// A console whose lab has replicated one gateway patch everywhere (one
/// node failing), rolled it out on cluster `edge`, and failed a rollout of
/// it on `db` (a member fails its install).
fn console_with_operations() -> Console {
    let mut c = console();
    let lab = c.lab.clone();
    let fleet_path = lab.fleet_path();
    // Fast health checks, and one db member that fails its install.
    let text = std::fs::read_to_string(&fleet_path)
        .unwrap()
        .replace("min_healthy_secs = 2", "min_healthy_secs = 0");
    let at = text.find("id = \"db-1_3\"").unwrap();
    let end = text[at..]
        .find("[[node]]")
        .map(|i| at + i)
        .unwrap_or(text.len());
    let text = format!(
        "{}[node.demo]\nfail_install = true\n\n{}",
        &text[..end],
        &text[end..]
    );
    std::fs::write(&fleet_path, text).unwrap();
    let fleet = Fleet::load(&fleet_path).unwrap();
    let depot = Depot::open(&lab.depot_dir()).unwrap();
    let patch = depot
        .patches
        .iter()
        .find(|p| {
            p.manifest.product == "kernel"
                && p.manifest.requires.is_empty()
                && p.manifest.base_version.is_none()
        })
        .unwrap()
        .id
        .clone();
    // gw-west-2 cannot receive it: its store is a file.
    let broken = lab.root.join("nodes/gw-west-2/var");
    std::fs::remove_dir_all(&broken).unwrap();
    std::fs::write(&broken, b"x").unwrap();
    let nodes: Vec<_> = fleet.nodes.iter().collect();
    let quick = replicate::Options {
        backoff: std::time::Duration::from_millis(1),
        ..Default::default()
    };
    replicate::replicate(
        &lab,
        &depot,
        std::slice::from_ref(&patch),
        &nodes,
        quick,
        &|_| {},
    )
    .unwrap();
    for cluster in ["edge", "db"] {
        let config = fleet.clusters.iter().find(|k| k.id == cluster).unwrap();
        let partition = groups::partition(&fleet, cluster, None).unwrap();
        let plan = Plan::new(
            config,
            &partition,
            std::slice::from_ref(&patch),
            false,
            OnFailure::Halt,
        );
        let conn = Mutex::new(console::open(&lab).unwrap());
        let id = journal::create(&conn.lock().unwrap(), &plan)
            .unwrap()
            .unwrap();
        let env = FleetEnv::new(&lab, &fleet, id);
        let runner = Runner::new(&conn, &env).poll(std::time::Duration::from_millis(10));
        runner.run(id).unwrap();
    }
    c.app.ops = OpsState::new(lab.clone(), fleet.clone());
    let (replication, rollouts) = live::read_journal(&lab, &fleet).unwrap();
    c.app.apply_snapshot(Snapshot {
        replication,
        running: live::running(&lab, &rollouts),
        rollouts,
        fleet: FleetView::take(&lab, &fleet),
        history: live::read_history(&lab).unwrap(),
    });
    c
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
    let screen = c.screen(80, 24);
    // The whole message, wrapped, never cut at the pane's edge.
    assert!(screen.contains("hot, restart"), "{screen}");
    insta::assert_snapshot!(screen);
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
fn status_hints_and_help_follow_the_users_key_bindings() {
    let mut c = console();
    c.app.keymap = patchdeck::tui::keymap::Keymap::with_user_keys(
        "[global]\nquit = [\"ctrl-q\"]\n[depot]\nsearch = [\"f\"]\n",
    )
    .unwrap();
    let screen = c.screen(80, 24);
    let status = screen.lines().last().unwrap_or_default().to_string();
    assert!(status.contains("ctrl-q quit"), "{status}");
    assert!(status.contains("f search"), "{status}");
    assert!(!status.contains("/ search"), "{status}");
    // The rebound key is the one that acts, and `?` lists it.
    c.keys("?");
    let help = c.screen(80, 24);
    assert!(help.contains("ctrl-q"), "{help}");
}

#[test]
fn resolved_selection_dialog() {
    let mut c = console();
    c.keys("/");
    c.keys("GW");
    c.key(KeyCode::Enter);
    c.keys("   s");
    // `s` asks what to resolve against; the first choice is no target.
    assert_eq!(c.app.mode, Mode::Dialog);
    c.key(KeyCode::Enter);
    assert_eq!(c.app.mode, Mode::Selection);
    insta::assert_snapshot!(c.screen(80, 24));
}

#[test]
fn resolve_against_a_node_picker_and_answer() {
    let mut c = console_with_operations();
    c.keys("/");
    c.keys("GW");
    c.key(KeyCode::Enter);
    c.keys(" s");
    insta::assert_snapshot!("resolve_picker", c.screen(80, 24));
    // Down to the first node, and resolve against what it has.
    c.key(KeyCode::Down);
    c.key(KeyCode::Enter);
    assert_eq!(c.app.mode, Mode::Selection);
    let first = c.app.ops.fleet.as_ref().unwrap().nodes[0].id.clone();
    assert_eq!(c.app.selection_target.as_deref(), Some(first.as_str()));
    assert!(
        c.screen(80, 24)
            .contains(&format!("Install order on {first}"))
    );
}

/// The rows of the install target picker: every target with a node, but
/// "all data centers".
fn picker_rows(fleet: &patchdeck::engine::fleet::Fleet) -> Vec<Target> {
    patchdeck::engine::preview::targets(fleet, false)
        .into_iter()
        .filter(|(t, n)| *n > 0 && *t != Target::All)
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn operate_on_marked_picks_a_target_then_previews() {
    let mut c = console_with_operations();
    c.keys(" o");
    insta::assert_snapshot!("operate_choices", c.screen(80, 24));
    c.keys("c");
    insta::assert_snapshot!("operate_target_picker", c.screen(80, 24));
    // Down past the data centers and organizations to a node.
    let fleet = c.app.ops.fleet.clone().unwrap();
    let to_node = picker_rows(&fleet)
        .iter()
        .position(|t| matches!(t, Target::Node(_)))
        .unwrap();
    for _ in 0..to_node {
        c.key(KeyCode::Down);
    }
    c.key(KeyCode::Enter);
    let screen = c.screen(80, 24);
    insta::assert_snapshot!("operate_preview", screen);
    assert!(
        screen.contains(&format!("commit on node {}", fleet.nodes[0].id)),
        "{screen}"
    );
}

#[test]
fn install_on_a_cluster_previews_the_refusal() {
    let mut c = console_with_operations();
    // A patch that is not hot: installing it on two members at once is refused.
    let row = c
        .app
        .rows
        .iter()
        .position(|&i| !c.app.depot.patches[i].manifest.hot)
        .unwrap();
    for _ in 0..row {
        c.key(KeyCode::Down);
    }
    c.keys(" oi");
    let fleet = c.app.ops.fleet.clone().unwrap();
    let to_cluster = picker_rows(&fleet)
        .iter()
        .position(|t| matches!(t, Target::Cluster(_)))
        .unwrap();
    for _ in 0..to_cluster {
        c.key(KeyCode::Down);
    }
    c.key(KeyCode::Enter);
    let screen = c.screen(80, 24);
    assert!(screen.contains("Refused"), "{screen}");
    assert!(screen.contains("rollout start"), "{screen}");
}

#[test]
fn replicate_asks_for_the_target() {
    let mut c = console_with_operations();
    c.keys(" R");
    let screen = c.screen(80, 24);
    insta::assert_snapshot!("replicate_target_picker", screen);
    assert!(screen.contains("all data centers"), "{screen}");
    assert!(!screen.contains("cluster edge"), "{screen}");
}

#[test]
fn save_the_marks_asks_for_a_name() {
    let mut c = console_with_operations();
    c.keys(" S");
    c.keys("friday");
    insta::assert_snapshot!("save_marks_input", c.screen(80, 24));
}

#[test]
fn wide_terminal_shows_more_panes() {
    let mut c = console_with_operations();
    let screen = c.screen(160, 40);
    assert!(
        screen.contains("Depot")
            && screen.contains("Cluster groups")
            && screen.contains("Replication"),
        "{screen}"
    );
    stable(|| insta::assert_snapshot!(screen));
}

#[test]
fn tiny_terminal_gets_a_notice_not_a_panic() {
    let mut c = console();
    let screen = c.screen(30, 6);
    assert!(screen.contains("too small"), "{screen}");
}

#[test]
fn operations_panes_80x24() {
    let mut c = console_with_operations();
    c.keys("3");
    let replication = c.screen(80, 24);
    assert!(replication.contains("19/20"), "{replication}");
    assert!(
        replication.contains("gw-west-2") && replication.contains("failed"),
        "{replication}"
    );
    stable(|| insta::assert_snapshot!("replication_80x24", replication));

    c.keys("4");
    let edge = c.screen(80, 24);
    assert!(edge.contains("edge") && edge.contains("done"), "{edge}");
    stable(|| insta::assert_snapshot!("groups_done_80x24", edge));

    // The db rollout halted on its failing member.
    let db = c
        .app
        .ops
        .clusters
        .iter()
        .position(|k| k.id == "db")
        .unwrap();
    for _ in 0..db {
        c.keys("j");
    }
    let failed = c.screen(80, 24);
    assert!(
        failed.contains("failed") && failed.contains("db-1_3:failed"),
        "{failed}"
    );
    stable(|| insta::assert_snapshot!("groups_failed_80x24", failed));
    // With halt, the screen says which group is left drained and how to
    // restore it, in full.
    assert!(
        failed.contains("group B is left drained") && failed.contains("rollout abort 2"),
        "{failed}"
    );

    // b on the failed group previews what it changes and what it leaves,
    // then asks the rollout to roll that group back.
    c.keys("l");
    c.keys("b");
    assert_eq!(c.app.mode, Mode::Dialog);
    let preview = c.screen(80, 24);
    assert!(
        preview.contains("members it changed: db-1_3") && preview.contains("Type db"),
        "{preview}"
    );
    c.keys("db");
    match c
        .app
        .handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
    {
        patchdeck::tui::state::Effect::Run { args, .. } => {
            assert_eq!(args, ["rollout", "rollback", "2", "--group", "B"]);
        }
        other => panic!("expected a run, got {other:?}"),
    }
    c.keys("h");

    // The depot pane shows where each patch is applied.
    c.keys("1");
    let depot = c.screen(80, 24);
    assert!(depot.contains("FLEET"), "{depot}");
}

#[test]
fn the_rollout_preview_says_when_the_clusters_window_is_closed() {
    let mut c = console_with_operations();
    // A window that opens on the first of January only: closed on any
    // other day, open for a whole day on that one.
    let mut fleet = c.app.ops.fleet.clone().unwrap();
    let edge = fleet.clusters.iter_mut().find(|k| k.id == "edge").unwrap();
    edge.windows = vec![patchdeck::engine::window::WindowSpec {
        cron: "0 0 1 1 *".into(),
        duration: "24h".into(),
        cutoff: None,
        tz: None,
    }];
    c.app.ops.fleet = Some(fleet);
    c.keys("1");
    c.keys(" ");
    c.keys("4");
    c.keys("r");
    assert_eq!(c.app.mode, Mode::Dialog);
    let lines = c.app.ops.dialog.as_ref().unwrap().lines.join("\n");
    assert!(lines.contains("Maintenance window: window "), "{lines}");
    assert!(lines.contains("the rollout waits otherwise"), "{lines}");
}

#[test]
fn destructive_actions_preview_and_need_the_cluster_typed() {
    let mut c = console_with_operations();
    c.keys("1");
    c.keys(" ");
    c.keys("4");
    c.keys("r");
    assert_eq!(c.app.mode, Mode::Dialog);
    let screen = c.screen(80, 24);
    assert!(
        screen.contains("group A") && screen.contains("Type edge"),
        "{screen}"
    );
    stable(|| insta::assert_snapshot!("rollout_preview_80x24", screen));
    // Tab switches the failure policy, Right asks for one more group (which
    // a cluster on two sites cannot honour, and the preview says so).
    c.key(KeyCode::Tab);
    c.key(KeyCode::Right);
    let screen = c.screen(80, 24);
    assert!(screen.contains("On failure: halt"), "{screen}");
    assert!(screen.contains("--groups 3 is not used"), "{screen}");
    // A wrong name does nothing; the right one starts the rollout.
    c.keys("edgy");
    let effect = c
        .app
        .handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(effect, patchdeck::tui::state::Effect::None);
    assert_eq!(c.app.mode, Mode::Dialog);
    c.keys("edge");
    match c
        .app
        .handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
    {
        patchdeck::tui::state::Effect::Run { args, detached, .. } => {
            assert_eq!(&args[..4], ["rollout", "start", "--cluster", "edge"]);
            // The command returns once the rollout runs on its own (or
            // with its refusal, which the console then shows).
            assert!(args.iter().any(|a| a == "--detach"), "{args:?}");
            assert!(
                args.windows(2).any(|w| w == ["--on-failure", "halt"])
                    && args.windows(2).any(|w| w == ["--groups", "3"]),
                "{args:?}"
            );
            assert!(!detached);
        }
        other => panic!("expected a run, got {other:?}"),
    }
}

#[test]
fn history_pane_80x24_filters_and_shows_a_whole_record() {
    let mut c = console_with_operations();
    assert!(!c.app.ops.snapshot.history.is_empty());
    c.keys("5");
    let screen = c.screen(80, 24);
    assert!(screen.contains("History"), "{screen}");
    // Narrow to one op: every row shown is that op.
    c.keys("/op=drain");
    c.key(KeyCode::Enter);
    let rows = c.app.history_rows();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|&i| c.app.ops.snapshot.history[i].op == "drain")
    );
    let screen = c.screen(80, 24);
    assert!(screen.contains("filter: op=drain"), "{screen}");
    // Enter shows the whole record.
    c.key(KeyCode::Enter);
    let screen = c.screen(80, 24);
    assert!(
        screen.contains("operator") && screen.contains("source"),
        "{screen}"
    );
    c.key(KeyCode::Esc);
    c.keys("x");
    assert_eq!(c.app.history_rows().len(), c.app.ops.snapshot.history.len());
}

#[test]
fn history_pane_snapshot_80x24() {
    use patchdeck::engine::journal::Change;
    let mut c = console();
    let row = |minute: u32, node: &str, patch: &str, op: &str, ok: bool, who: &str| Change {
        time: format!("2026-11-29T20:{minute:02}:00Z"),
        operator: who.into(),
        sudo_user: None,
        source: "cli".into(),
        rollout: None,
        node: node.into(),
        patch: patch.into(),
        op: op.into(),
        ok,
        message: format!("{op} {patch}"),
        command: String::new(),
    };
    c.app.ops.snapshot.history = vec![
        row(9, "edge-1_2", "KRN_1001", "install", false, "bob@ops2"),
        row(8, "edge-1_1", "KRN_1001", "install", true, "ann@ops1"),
        row(7, "edge-1_1", "KRN_1001", "stage", true, "ann@ops1"),
        row(6, "gw-east-1", "GW_1021", "commit", true, "ann@ops1"),
    ];
    c.keys("5");
    insta::assert_snapshot!(c.screen(80, 24));
    c.keys("/operator=ann");
    insta::assert_snapshot!("history_pane_filtered_80x24", c.screen(80, 24));
}

#[test]
fn groups_pane_marks_a_drifted_cluster_and_enter_names_the_difference() {
    let mut c = console_with_operations();
    c.keys("4");
    let screen = c.screen(80, 24);
    let legacy = screen
        .lines()
        .find(|l| l.contains("legacy"))
        .unwrap_or_default();
    assert!(legacy.contains("DRIFTED"), "{screen}");
    let edge = screen
        .lines()
        .find(|l| l.contains("  edge ") || l.contains("> edge "))
        .unwrap_or_default();
    assert!(!edge.contains("DRIFTED"), "{screen}");
    while c
        .app
        .ops
        .selected_cluster()
        .is_some_and(|cl| cl.id != "legacy")
    {
        c.keys("j");
    }
    c.key(KeyCode::Enter);
    let screen = c.screen(80, 24);
    assert!(screen.contains("legacy has drifted"), "{screen}");
    assert!(
        screen.contains("missing on") || screen.contains("component"),
        "{screen}"
    );
}

#[test]
fn groups_pane_says_whether_the_selected_clusters_window_is_open() {
    let mut c = console_with_operations();
    c.keys("4");
    let screen = c.screen(80, 24);
    assert!(
        !screen.contains("window"),
        "no cluster has windows: {screen}"
    );
    let fleet = c.app.ops.fleet.as_mut().unwrap();
    let edge = fleet.clusters.iter_mut().find(|k| k.id == "edge").unwrap();
    edge.windows = vec![patchdeck::engine::window::WindowSpec {
        cron: "0 2 * * SAT".into(),
        duration: "4h".into(),
        cutoff: Some("1h".into()),
        tz: Some("Europe/Berlin".into()),
    }];
    // Open or closed depends on when the test runs; either way one line
    // says which, and when it changes.
    let screen = c.screen(80, 24);
    let line = screen
        .lines()
        .find(|l| {
            l.contains("window open until")
                || l.contains("window past cutoff; closes")
                || l.contains("window closed; opens")
        })
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(line.is_ascii() && line.contains("Z)"), "{line}");
}

#[test]
fn groups_pane_keeps_the_newest_events_when_member_lines_wrap() {
    let mut c = console_with_operations();
    for n in 1..=40 {
        c.app.ops.push_log(format!("event number {n}"));
    }
    c.keys("4");
    let screen = c.screen(80, 24);
    // The edge cluster's groups wrap their member lists at 80 columns.
    assert!(screen.contains("edge-1_4"), "{screen}");
    assert!(screen.contains("event number 40"), "{screen}");
    assert!(!screen.contains("event number 1 "), "{screen}");
}

#[test]
fn command_line_refuses_verbs_that_rewrite_the_lab() {
    let mut c = console();
    for line in ["demo --force", "demo --lab /tmp/x --force", "node --root /"] {
        c.keys(":");
        c.keys(line);
        let effect = c
            .app
            .handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        assert_eq!(effect, patchdeck::tui::state::Effect::None, "{line}");
        let screen = c.screen(80, 24);
        assert!(screen.contains("inside the console"), "{screen}");
        c.key(KeyCode::Esc);
    }
}

#[test]
fn command_line_previews_an_install_with_order_skips_and_restarts() {
    let mut c = console_with_operations();
    let kernel = c.app.ops.snapshot.replication[0].patch.clone();
    c.keys(":");
    assert_eq!(c.app.mode, Mode::Command);
    c.keys(&format!("install {kernel} --cluster edge"));
    c.key(KeyCode::Enter);
    assert_eq!(c.app.mode, Mode::Dialog);
    let screen = c.screen(80, 24);
    assert!(
        screen.contains("install order:") && screen.contains(&format!("1. {kernel} named")),
        "{screen}"
    );
    assert!(
        screen.contains("on 8 node(s)") && screen.contains("restart"),
        "{screen}"
    );
    assert!(
        screen.contains("Type edge"),
        "a whole cluster needs its name typed:\n{screen}"
    );
    // A read-only verb runs at once.
    c.key(KeyCode::Esc);
    c.keys(":");
    c.keys("list --nodes edge-1_1");
    match c
        .app
        .handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
    {
        patchdeck::tui::state::Effect::Run { args, detached, .. } => {
            assert_eq!(args, ["list", "--nodes", "edge-1_1"]);
            assert!(!detached);
        }
        other => panic!("expected a run, got {other:?}"),
    }
    // Words are split as a shell splits them.
    c.keys(":");
    c.keys("history --patch 'A B' --nodes \"edge-1_1\"");
    match c
        .app
        .handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
    {
        patchdeck::tui::state::Effect::Run { args, .. } => {
            assert_eq!(args, ["history", "--patch", "A B", "--nodes", "edge-1_1"]);
        }
        other => panic!("expected a run, got {other:?}"),
    }
    c.keys(":");
    c.keys("list --nodes 'edge-1_1");
    let effect = c
        .app
        .handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(effect, patchdeck::tui::state::Effect::None);
    let screen = c.screen(80, 24);
    assert!(screen.contains("quote is not closed"), "{screen}");
}

/// Metadata with escape sequences (legal in TOML) is drawn visibly, never
/// obeyed: a title that would retitle the window and clear the screen, and
/// control characters in the product and version, show as `^[` and kin.
#[test]
fn hostile_metadata_is_shown_not_obeyed() {
    let mut c = console();
    let text = "id = \"AAA_1\"\ntitle = \"\\u001b]0;owned\\u0007\\u001b[2Jgone \\u202eevil\"\nproduct = \"gate\\u001bway\"\nversion = \"1\\u0008\\u0008.0\"\nvendor = \"acme\"\nseverity = \"high\"\nreleased = 2026-01-02\ncategories = [\"bad\\u001bcat\"]\n";
    let mut bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut bytes);
        patchdeck::engine::archive::append(&mut b, "PATCH.toml", 0o644, text.as_bytes()).unwrap();
        b.finish().unwrap();
    }
    std::fs::write(c.lab.depot_dir().join("AAA_1.patch"), bytes).unwrap();
    let depot = Depot::open(&c.lab.depot_dir()).unwrap();
    assert!(depot.get("AAA_1").is_some(), "{:?}", depot.broken);
    c.app = App::new(
        "demo".into(),
        depot,
        &c.lab.config().unwrap(),
        Theme::mono(),
    );
    c.searcher = Searcher::new(c.app.lines.clone());
    let screen = c.screen(80, 24);
    assert!(
        !screen.contains('\u{1b}') && !screen.contains('\u{7}') && !screen.contains('\u{202e}'),
        "a control character reached the screen"
    );
    assert!(screen.contains("^[]0;owned^G^[[2Jgone"), "{screen}");
    assert!(screen.contains("gate^[way"), "{screen}");
    insta::assert_snapshot!(screen);
}

/// A cluster that cannot be split as configured still shows how many
/// members it has above the reason, never "0 members".
#[test]
fn a_cluster_that_cannot_be_partitioned_keeps_its_member_count() {
    let mut c = console();
    let lab = c.lab.clone();
    let fleet_path = lab.fleet_path();
    let text = std::fs::read_to_string(&fleet_path).unwrap().replacen(
        "id = \"db\"\n",
        "id = \"db\"\ngroups = 1000\n",
        1,
    );
    std::fs::write(&fleet_path, text).unwrap();
    let fleet = Fleet::load(&fleet_path).unwrap();
    c.app.ops = OpsState::new(lab, fleet);
    c.keys("4");
    let screen = c.screen(80, 24);
    let row = screen
        .lines()
        .find(|l| l.contains(" db "))
        .unwrap_or_default()
        .to_string();
    assert!(row.contains(" 3 members"), "{screen}");
}
