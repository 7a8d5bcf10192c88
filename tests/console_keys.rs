//! End to end: keys as operators really type them, into the real binary
//! under tmux. Keys typed ahead arrive in one read, a key straight after a
//! search acts on the rows the search found, Escape followed at once by a
//! key is two keys, and a terminal shrunk and grown again is redrawn whole.

mod common;

use std::path::Path;
use std::process::Command;

use common::tmux::Tmux;

fn demo_lab(dir: &Path, patches: usize) -> String {
    let lab = dir.join("lab").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["demo", "--lab", &lab, "--patches", &patches.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    lab
}

fn console(name: &str, lab: &str) -> Tmux {
    let command = format!(
        "TERM=xterm LC_ALL=C.UTF-8 {} --lab {lab} --theme mono; sleep 60",
        env!("CARGO_BIN_EXE_patchdeck")
    );
    Tmux::start(name, &command, 80, 24)
}

/// The depot pane of the 150-patch lab with its frame complete: the status
/// line is the last row a frame writes, so a capture taken mid-frame does
/// not count.
fn drawn(screen: &str) -> bool {
    screen.contains("Depot 150/150")
        && screen
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.contains("q quit"))
}

/// Ids of the depot pane's rows, top to bottom.
fn row_ids(screen: &str) -> Vec<String> {
    screen
        .lines()
        .filter_map(|l| l.strip_prefix("|[ ] ").or_else(|| l.strip_prefix("|[x] ")))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The id the detail line (the selected patch) names.
fn selected_id(screen: &str, ids: &[String]) -> Option<String> {
    let detail = screen.lines().rev().find(|l| {
        l.strip_prefix('|')
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|w| w.contains('_') && !l.starts_with("|[") && l.contains('.'))
    })?;
    let id = detail.strip_prefix('|')?.split_whitespace().next()?;
    ids.iter().any(|i| i == id).then(|| id.to_string())
}

fn marked_count(screen: &str) -> usize {
    screen
        .lines()
        .find(|l| l.contains(" Depot "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn typeahead_burst_ends_on_the_row_the_keys_reach() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path(), 150);
    let t = console("burst", &lab);
    let first = t.wait("the depot pane, fully drawn", drawn);
    let top = row_ids(&first);
    assert!(top.len() > 5, "{first}");
    // Twenty rows down and two back up, typed in one burst.
    t.literal(&format!("{}kk", "j".repeat(20)));
    let ids = patchdeck_ids(&lab);
    let want = ids[18].clone();
    let s = t.wait("the cursor on row 19", |s| {
        selected_id(s, &ids).as_deref() == Some(want.as_str())
    });
    let rows = row_ids(&s);
    assert!(rows.contains(&want), "{s}");
    assert_eq!(rows.len(), top.len(), "every list row is drawn: {s}");
}

/// The depot's ids in the order the depot pane lists them.
fn patchdeck_ids(lab: &str) -> Vec<String> {
    listed(lab, &[])
}

/// Ids of `depot list --json` with extra arguments, in its order.
fn listed(lab: &str, extra: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["depot", "list", "--lab", lab, "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn keys_straight_after_a_search_act_on_the_rows_it_found() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path(), 20_000);
    let t = console("after-search", &lab);
    t.wait("the depot pane", |s| s.contains("Depot 20000/20000"));
    // Search, keep it, mark the first hit and resolve: one burst.
    t.literal("/x11fontc\r s");
    t.wait("the resolved selection", |s| s.contains("1 marked"));
    t.keys(&["Escape"]);
    let s = t.wait("the marked row", |s| s.contains("|[x] "));
    let hits = patchdeck_hits(&lab, "x11fontc");
    let marked = s
        .lines()
        .find_map(|l| l.strip_prefix("|[x] "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default();
    assert!(
        hits.iter().any(|id| id == marked),
        "the marked patch {marked} is one the search found: {s}"
    );
    // Mark all: only the rows shown.
    t.literal("ua");
    let s = t.wait("all shown marked", |s| marked_count(s) > 1);
    assert_eq!(marked_count(&s), hits.len(), "{s}");
}

fn patchdeck_hits(lab: &str, query: &str) -> Vec<String> {
    listed(lab, &["--query", query])
}

#[test]
fn escape_then_a_key_in_one_read_is_two_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path(), 150);
    let t = console("escape", &lab);
    t.wait("the depot pane", |s| s.contains("Depot 150/150"));
    t.keys(&["?"]);
    t.wait("the help", |s| s.contains("closes this help"));
    // Escape closes the help; `2` then focuses the filter pane.
    t.literal("\u{1b}2");
    t.wait("the filter pane without the help", |s| {
        !s.contains("closes this help") && s.contains("enter use")
    });
    // The arrow keys a terminal sends as escape sequences stay arrows.
    t.keys(&["1"]);
    t.wait("the depot pane again", |s| s.contains("space mark"));
    let ids = patchdeck_ids(&lab);
    t.literal("\u{1b}[B\u{1b}[B");
    let want = ids[2].clone();
    t.wait("the cursor two rows down", |s| {
        selected_id(s, &ids).as_deref() == Some(want.as_str())
    });
}

#[test]
fn shrinking_and_growing_the_terminal_redraws_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path(), 150);
    let t = console("resize", &lab);
    let first = t.wait("the depot pane, fully drawn", drawn);
    let full = row_ids(&first).len();
    t.keys(&["G"]);
    let ids = patchdeck_ids(&lab);
    let last = ids.last().unwrap().clone();
    t.wait("the last row", |s| row_ids(s).contains(&last));
    t.cmd(&["resize-window", "-t", "t", "-x", "40", "-y", "10"]);
    t.wait("the depot pane at 40x10", |s| {
        s.contains("Depot") && s.lines().all(|l| l.chars().count() <= 40)
    });
    t.cmd(&["resize-window", "-t", "t", "-x", "80", "-y", "24"]);
    let s = t.wait("the depot pane at full size", |s| {
        row_ids(s).len() == full && row_ids(s).contains(&last)
    });
    assert!(s.contains("Depot 150/150"), "{s}");
    t.keys(&["4"]);
    let s = t.wait("the groups pane", |s| s.contains("Cluster groups"));
    for cluster in ["edge", "app", "db"] {
        assert!(
            s.contains(cluster),
            "{cluster} listed after the resize: {s}"
        );
    }
}

#[test]
fn marks_survive_a_restart_and_a_saved_selection_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path(), 150);
    let t = console("marks", &lab);
    t.wait("the depot pane, fully drawn", drawn);
    // Two marks saved by name, then only the first row marked.
    t.literal("  ");
    t.wait("two marks", |s| marked_count(s) == 2);
    t.literal("S");
    t.wait("the name dialog", |s| s.contains("save the selection"));
    t.literal("two");
    t.keys(&["Enter"]);
    t.wait("the saved note", |s| s.contains("saved 2 patch(es) as two"));
    t.literal("ug ");
    t.wait("one mark", |s| marked_count(s) == 1 && drawn(s));
    t.literal("q");
    t.wait("the console gone", |s| !s.contains("Depot 150/150"));
    drop(t);
    // A new console has the mark it left with, and recalls the saved two.
    let t = console("marks-again", &lab);
    let s = t.wait("the depot pane, fully drawn", drawn);
    assert_eq!(marked_count(&s), 1, "{s}");
    t.literal("L");
    t.wait("the recall picker", |s| s.contains("two (2 patches)"));
    t.keys(&["Enter"]);
    // The status line (the last row a frame writes) says what came back.
    t.wait("the recalled marks", |s| {
        marked_count(s) == 2 && s.contains("recalled two: 2 marked")
    });
}
