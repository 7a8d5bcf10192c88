//! End to end in a real terminal: the real binary under tmux, driven with
//! send-keys and read with capture-pane. tmux is required (scripts/test
//! installs it); without it these tests fail and say so.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, command: &str, width: u16, height: u16) -> Tmux {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "tmux is required for the end-to-end tests: install it (apt-get install tmux) or run scripts/test"
        );
        let socket = format!("patchdeck-test-{}-{name}", std::process::id());
        let t = Tmux { socket };
        let ok = t
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                command,
            ])
            .status
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux runs")
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "t", k]);
        }
    }

    fn literal(&self, text: &str) {
        self.cmd(&["send-keys", "-t", "t", "-l", text]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `pred`, failing with the screen.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alternate_screen(&self) -> bool {
        let out = self.cmd(&["display-message", "-p", "-t", "t", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn demo_lab(dir: &Path) -> String {
    let lab = dir.join("lab").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
        .args(["demo", "--lab", &lab, "--patches", "150"])
        .output()
        .unwrap();
    assert!(out.status.success());
    lab
}

#[test]
fn search_mark_filter_and_quit_restores_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let command = format!(
        "TERM=xterm {} --lab {lab} --theme mono; echo patchdeck-exited-$?; sleep 60",
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("flow", &command, 80, 24);
    t.wait("the depot pane", |s| s.contains("Depot 150/150"));
    assert!(
        t.alternate_screen(),
        "the console uses the alternate screen"
    );

    t.keys(&["/"]);
    t.literal("jwt");
    let s = t.wait("search results", |s| {
        s.contains("match(es)") && !s.contains("Depot 150/150")
    });
    assert!(s.contains("JWT"), "{s}");
    t.keys(&["Enter", "Space"]);
    t.wait("one mark", |s| s.contains("1 marked"));
    t.keys(&["Escape"]);
    t.wait("the search to clear", |s| s.contains("Depot 150/150"));
    t.keys(&["2"]);
    t.wait("the filter pane", |s| {
        s.contains("Categories & filters") && s.contains("critical_patch")
    });
    t.keys(&["e"]);
    t.literal("kernel,hot=true");
    t.keys(&["Enter"]);
    let s = t.wait("the filtered depot", |s| {
        s.contains("filter kernel,hot=true")
    });
    assert!(s.contains("KRN_"), "{s}");
    assert!(!s.contains("GW_"), "{s}");
    t.keys(&["?"]);
    t.wait("the help", |s| {
        s.contains("Keys") && s.contains("mark or unmark")
    });
    // ESC followed at once by a key reads as Alt+key, as on any terminal.
    t.keys(&["Escape"]);
    t.wait("the help to close", |s| !s.contains("this help"));
    t.keys(&["q"]);
    let s = t.wait("the console to exit", |s| s.contains("patchdeck-exited-0"));
    assert!(!t.alternate_screen(), "terminal restored after quit:\n{s}");
}

#[test]
fn first_run_creates_the_demo_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = tmp.path().join("fresh");
    let command = format!(
        "PATCHDECK_LAB={} TERM=xterm {}; echo patchdeck-exited-$?; sleep 60",
        lab.display(),
        env!("CARGO_BIN_EXE_patchdeck")
    );
    let t = Tmux::start("first", &command, 80, 24);
    t.wait("the demo depot", |s| s.contains("Depot 300/300"));
    t.keys(&["q"]);
    t.wait("exit", |s| s.contains("patchdeck-exited-0"));
    assert!(lab.join("fleet.toml").is_file());
}
