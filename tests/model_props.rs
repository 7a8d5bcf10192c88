//! A model-based property of the whole command line: random short sequences
//! of `stage`, `replicate`, `install`, `rollback`, `commit`, `remove` and
//! `rollout start / pause / resume / abort` run by the real binary on a
//! small real lab (a four-member cluster `edge`, two groups of two, and two
//! standalone gateways), some with a member whose rollout install fails and
//! some killed (SIGKILL after a random short delay, or abort at a node fault
//! point through `PATCHDECK_FAULT`). After every step the nodes must agree
//! with a reference model written here, apart from the engine: per node and
//! patch `none / staged / applied / committed / superseded`, with the rules
//! of DESIGN.md (remove only while staged, rollback only while applied,
//! commit drops rollback, supersession through chains, a requirement met by
//! the patch or anything superseding it, a rollout owns its cluster). A
//! killed step may end in any state its node operations pass through, and
//! the model then follows the node. Invariants checked as well: `verify`
//! finds no drift, every applied patch has its requirements met, no member
//! is left drained unless the rollout ended with `on_failure = "halt"` and
//! says so, every ended rollout ran its after-hook, and every change the
//! nodes show has a row in the journal (`history`).
//!
//! The depot holds five hand-made patches: MA1 ← MA2 ← MA3 (each superseding
//! the one before, all writing `opt/m/core`), MB requiring MA1, and MH (hot).
//!
//! ```sh
//! cargo test --locked --test model_props                          # 100 sequences
//! PATCHDECK_MODEL_CASES=1000 cargo test --locked --test model_props -- --nocapture
//! PATCHDECK_MODEL_SEED=1234 PATCHDECK_MODEL_CASES=1 cargo test --locked --test model_props
//! ```
//!
//! A failure prints the seed of the sequence and the steps run so far;
//! `PATCHDECK_MODEL_SEED` with `PATCHDECK_MODEL_CASES=1` replays it (kill
//! delays are random, so a kill may land elsewhere on a replay).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

const MEMBERS: [&str; 4] = ["edge-1_1", "edge-1_2", "edge-1_3", "edge-1_4"];
const SOLO: [&str; 2] = ["gw-east-1", "gw-west-1"];
const PATCHES: [&str; 5] = ["MA1", "MA2", "MA3", "MB", "MH"];

fn nodes() -> Vec<&'static str> {
    MEMBERS.iter().chain(SOLO.iter()).copied().collect()
}

// ---------------------------------------------------------------- the model

/// What each patch supersedes directly.
fn supersedes_directly(p: &str) -> &'static [&'static str] {
    match p {
        "MA2" => &["MA1"],
        "MA3" => &["MA2"],
        _ => &[],
    }
}

fn requires(p: &str) -> &'static [&'static str] {
    match p {
        "MB" => &["MA1"],
        _ => &[],
    }
}

/// Everything `p` supersedes, directly or through a chain.
fn supersedes(p: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut todo: Vec<&str> = supersedes_directly(p).to_vec();
    while let Some(q) = todo.pop() {
        let q = PATCHES.iter().copied().find(|x| *x == q).unwrap_or("?");
        if !out.contains(&q) {
            out.push(q);
            todo.extend(supersedes_directly(q));
        }
    }
    out
}

/// Every patch that supersedes `p` through a chain.
fn superseders(p: &str) -> Vec<&'static str> {
    PATCHES
        .iter()
        .copied()
        .filter(|x| supersedes(x).contains(&p))
        .collect()
}

/// The newest patch of the depot standing in for `p`: the top of its chain.
fn top_of_chain(p: &'static str) -> &'static str {
    superseders(p)
        .into_iter()
        .find(|x| superseders(x).is_empty())
        .unwrap_or(p)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Staged,
    Applied,
    Committed,
    Superseded,
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct Ps {
    st: St,
    /// Saved files dropped (committed, or superseded after a commit).
    committed: bool,
    by: Option<&'static str>,
}

impl Ps {
    fn installed(&self) -> bool {
        self.st != St::Staged
    }
}

/// One node: patch → state; absent means `none`.
type NodeM = BTreeMap<&'static str, Ps>;

fn render(n: &NodeM) -> BTreeMap<String, String> {
    n.iter()
        .map(|(p, s)| {
            let mut t = match s.st {
                St::Staged => "staged".to_string(),
                St::Applied => "applied".to_string(),
                St::Committed => "committed".to_string(),
                St::Superseded => format!("superseded by {}", s.by.unwrap_or("?")),
            };
            if s.st == St::Superseded && s.committed {
                t.push_str(", committed");
            }
            (p.to_string(), t)
        })
        .collect()
}

fn state(n: &NodeM, p: &str) -> Option<St> {
    n.get(p).map(|s| s.st)
}

fn installed(n: &NodeM, p: &str) -> bool {
    n.get(p).is_some_and(Ps::installed)
}

/// The one rule: a requirement on `r` is met by `r` or anything superseding it.
fn met(n: &NodeM, r: &str) -> bool {
    installed(n, r) || superseders(r).iter().any(|s| installed(n, s))
}

fn unmet_requirements(n: &NodeM) -> Vec<String> {
    let mut out = Vec::new();
    for (p, s) in n {
        if matches!(s.st, St::Applied | St::Committed) {
            for r in requires(p) {
                if !met(n, r) {
                    out.push(format!("{p} requires {r}"));
                }
            }
        }
    }
    out
}

/// One install on the node itself (no resolution): refused unless staged,
/// not superseded by something installed, and its requirements met.
fn install_one(n: &NodeM, p: &'static str) -> Option<NodeM> {
    if state(n, p) != Some(St::Staged) {
        return None;
    }
    if superseders(p).iter().any(|s| installed(n, s)) {
        return None;
    }
    if requires(p).iter().any(|r| !met(n, r)) {
        return None;
    }
    let mut m = n.clone();
    for q in supersedes(p) {
        if let Some(s) = m.get_mut(q)
            && matches!(s.st, St::Applied | St::Committed)
        {
            s.committed = s.st == St::Committed;
            s.st = St::Superseded;
            s.by = Some(p);
        }
    }
    m.insert(
        p,
        Ps {
            st: St::Applied,
            committed: false,
            by: None,
        },
    );
    Some(m)
}

fn rollback_one(n: &NodeM, p: &str) -> Option<NodeM> {
    if state(n, p) != Some(St::Applied) {
        return None;
    }
    let mut m = n.clone();
    for s in m.values_mut() {
        if s.st == St::Superseded && s.by.is_some_and(|b| b == p) {
            s.st = if s.committed {
                St::Committed
            } else {
                St::Applied
            };
            s.by = None;
        }
    }
    if let Some(s) = m.get_mut(p) {
        s.st = St::Staged;
    }
    // Nothing is taken from under a patch that needs it.
    if !unmet_requirements(&m).is_empty() {
        return None;
    }
    Some(m)
}

/// What a CLI verb does on one node: each state it passes through after
/// the one before (the last is the end), or `None` when it is refused.
/// `Some(vec![])` is a success that changes nothing.
fn verb(n: &NodeM, op: &str, p: &'static str) -> Option<Vec<NodeM>> {
    match op {
        "stage" | "replicate" => match state(n, p) {
            None => {
                let mut m = n.clone();
                m.insert(
                    p,
                    Ps {
                        st: St::Staged,
                        committed: false,
                        by: None,
                    },
                );
                Some(vec![m])
            }
            Some(St::Staged) => Some(vec![]),
            // Staging is for patches not on the node; replicate skips them.
            Some(_) if op == "replicate" => Some(vec![]),
            Some(_) => None,
        },
        "install" => {
            if installed(n, p) {
                return Some(vec![]);
            }
            if superseders(p).iter().any(|s| installed(n, s)) {
                return None;
            }
            // The resolver adds the top of the chain of an unmet requirement.
            let mut plan: Vec<&'static str> = Vec::new();
            for r in requires(p) {
                let r = PATCHES.iter().copied().find(|x| x == r).unwrap_or("?");
                if !met(n, r) {
                    plan.push(top_of_chain(r));
                }
            }
            plan.push(p);
            // The whole plan is checked before anything goes.
            let mut cur = n.clone();
            let mut out = Vec::new();
            for q in plan {
                cur = install_one(&cur, q)?;
                out.push(cur.clone());
            }
            Some(out)
        }
        "rollback" => rollback_one(n, p).map(|m| vec![m]),
        "commit" => {
            if state(n, p) != Some(St::Applied) {
                return None;
            }
            let mut m = n.clone();
            // What it replaced, through the chain, loses its saved files too.
            let mut below = vec![p];
            while let Some(b) = below.pop() {
                for (q, s) in m.iter_mut() {
                    if s.st == St::Superseded && s.by == Some(b) {
                        s.committed = true;
                        below.push(q);
                    }
                }
            }
            if let Some(s) = m.get_mut(p) {
                s.st = St::Committed;
                s.committed = true;
            }
            Some(vec![m])
        }
        "remove" => {
            if state(n, p) != Some(St::Staged) {
                return None;
            }
            let mut m = n.clone();
            m.remove(p);
            Some(vec![m])
        }
        _ => None,
    }
}

/// The states a rollout's apply (or, uninstalling, its rollbacks) takes a
/// member through, `before` first; `complete` when every patch could go.
fn rollout_chain(before: &NodeM, plan: &[&'static str], uninstall: bool) -> (Vec<NodeM>, bool) {
    let mut chain = vec![before.clone()];
    let mut cur = before.clone();
    let order: Vec<&'static str> = if uninstall {
        plan.iter().rev().copied().collect()
    } else {
        plan.to_vec()
    };
    for p in order {
        let next = if uninstall {
            match state(&cur, p) {
                Some(St::Applied) => rollback_one(&cur, p),
                _ => continue,
            }
        } else {
            match state(&cur, p) {
                Some(St::Staged) => install_one(&cur, p),
                Some(_) => continue,
                None => None,
            }
        };
        match next {
            Some(m) => {
                cur = m;
                chain.push(cur.clone());
            }
            None => return (chain, false),
        }
    }
    (chain, true)
}

// ------------------------------------------------------------ the real lab

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_patchdeck")
}

fn cmd(lab: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe());
    c.env_remove("PATCHDECK_LAB")
        .env_remove("PATCHDECK_FAULT")
        .env_remove("PATCHDECK_FAIL")
        .args(args)
        .arg("--lab")
        .arg(lab)
        .stdin(Stdio::null());
    c
}

fn run(lab: &Path, args: &[&str]) -> Output {
    cmd(lab, args).output().expect("run patchdeck")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// The template lab: the demo's fleet cut down to the cluster `edge` with
/// four members on one site and two standalone gateways, rollouts that do
/// not wait for health to settle, an after-hook that appends the rollout id
/// to a log, and the five model patches in the depot.
fn template(dir: &Path) -> PathBuf {
    let lab = dir.join("template");
    let out = run(&lab, &["demo", "--patches", "12"]);
    assert!(out.status.success(), "{}", text(&out));
    // The model patches are unsigned; signatures are tests/trust.rs's subject.
    let config = std::fs::read_to_string(lab.join("config.toml")).expect("config");
    std::fs::write(
        lab.join("config.toml"),
        config.replace("require_signatures = true", "require_signatures = false"),
    )
    .expect("config");
    let fleet = std::fs::read_to_string(lab.join("fleet.toml")).expect("fleet");
    let mut kept = String::new();
    for block in fleet.split("\n[[") {
        let block = block.strip_prefix("[[").unwrap_or(block);
        let keep = block.starts_with("datacenter]]")
            || block.starts_with("organization]]")
            || (block.starts_with("cluster]]") && block.contains("id = \"edge\""))
            || (block.starts_with("node]]")
                && nodes()
                    .iter()
                    .any(|n| block.contains(&format!("id = \"{n}\"\n"))));
        if !keep {
            continue;
        }
        let mut b = format!("[[{}", block.trim_end());
        if b.starts_with("[[cluster]]") {
            b = b
                .replace("min_healthy_secs = 2", "min_healthy_secs = 0")
                .replace("health_deadline_secs = 60", "health_deadline_secs = 5");
            let after = b
                .lines()
                .find(|l| l.starts_with("after = "))
                .unwrap_or_default()
                .to_string();
            assert!(!after.is_empty(), "the demo's edge cluster has after hooks");
            b = b.replace(&after, "after = [\"echo $PATCHDECK_ROLLOUT >> @HOOKLOG@\"]");
        }
        if let Some(id) = nodes()
            .into_iter()
            .find(|n| b.starts_with("[[node]]") && b.contains(&format!("id = \"{n}\"\n")))
        {
            b.push_str(&format!("\n#KNOB {id}"));
        }
        kept.push_str(&b);
        kept.push_str("\n\n");
    }
    std::fs::write(lab.join("fleet.toml"), kept).expect("fleet");
    for entry in std::fs::read_dir(lab.join("nodes")).expect("nodes") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !nodes().contains(&name) {
            std::fs::remove_dir_all(&path).expect("rm node");
        }
    }
    let src = dir.join("src");
    let mut files = Vec::new();
    for p in PATCHES {
        let d = src.join(p);
        std::fs::create_dir_all(d.join("files/opt/m")).expect("src");
        let sup: Vec<String> = supersedes_directly(p)
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        let req: Vec<String> = requires(p).iter().map(|s| format!("\"{s}\"")).collect();
        let manifest = format!(
            "id = \"{p}\"\ntitle = \"Model patch {p}\"\nproduct = \"gateway\"\nfileset = \"core\"\n\
             version = \"10.1.1\"\nvendor = \"acme\"\nseverity = \"high\"\nreleased = 2026-01-02\n\
             supersedes = [{}]\nrequires = [{}]\nhot = {}\n",
            sup.join(", "),
            req.join(", "),
            p == "MH"
        );
        std::fs::write(d.join("PATCH.toml"), manifest).expect("manifest");
        // The chain replaces one shared file, so supersession moves bytes.
        let file = if p.starts_with("MA") { "core" } else { p };
        std::fs::write(d.join("files/opt/m").join(file), format!("{p}\n")).expect("payload");
        std::fs::write(d.join("files/opt/m").join(format!("own-{p}")), p).expect("payload");
        let out_file = src.join(format!("{p}.patch"));
        let out = run(
            &lab,
            &[
                "pack",
                &d.display().to_string(),
                "-o",
                &out_file.display().to_string(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        files.push(out_file.display().to_string());
    }
    let mut args = vec!["depot", "add"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&lab, &args);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&lab, &["nodes"]);
    assert!(out.status.success(), "the cut fleet parses: {}", text(&out));
    lab
}

/// A fresh copy of the template for one sequence, with `failing` (if any)
/// failing its rollout installs.
fn case_lab(template: &Path, dir: &Path, failing: Option<&str>) -> (PathBuf, PathBuf) {
    let lab = dir.join("lab");
    let st = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(&lab)
        .status()
        .expect("cp");
    assert!(st.success());
    let hooks = dir.join("hooks.log");
    let path = lab.join("fleet.toml");
    let mut t = std::fs::read_to_string(&path).expect("fleet");
    t = t.replace("@HOOKLOG@", &hooks.display().to_string());
    if let Some(f) = failing {
        t = t.replace(&format!("#KNOB {f}"), "[node.demo]\nfail_install = true");
    }
    std::fs::write(&path, t).expect("fleet");
    (lab, hooks)
}

// ------------------------------------------------------------- the property

#[derive(Clone, Debug)]
enum Kill {
    No,
    /// SIGKILL after this many milliseconds.
    After(u64),
    /// Abort at this node fault point (docs/crash-safety.md).
    Fault(u32),
}

#[derive(Clone, Debug)]
enum Step {
    Verb {
        op: &'static str,
        patch: &'static str,
        node: &'static str,
        kill: Kill,
    },
    Start {
        patches: Vec<&'static str>,
        uninstall: bool,
        policy: Option<&'static str>,
        /// Pause or abort it once it is seen running.
        then: Option<&'static str>,
        kill: Kill,
    },
    /// `replicate PATCH --wait` to every node of the lab.
    Spread {
        patch: &'static str,
        kill: Kill,
    },
    Pause,
    Resume,
    Abort,
}

fn fault_points(op: &str) -> &'static [u32] {
    match op {
        "stage" | "replicate" => &[1, 2, 3],
        "install" => &[10, 11, 12, 13, 14, 15, 16, 17],
        "rollback" => &[20, 21, 22, 23, 24, 25],
        "commit" => &[30, 31],
        "remove" => &[40],
        _ => &[],
    }
}

fn kill_for(rng: &mut ChaCha8Rng, op: &str) -> Kill {
    match rng.random_range(0..10) {
        0 | 1 => Kill::After(rng.random_range(0..60)),
        2 | 3 => {
            let points = fault_points(op);
            Kill::Fault(points[rng.random_range(0..points.len())])
        }
        _ => Kill::No,
    }
}

/// A random step; a verb mostly picks a patch the model says it accepts
/// on that node, so sequences go somewhere rather than being refused.
fn random_step(
    rng: &mut ChaCha8Rng,
    on_failure: bool,
    model: &BTreeMap<&'static str, NodeM>,
) -> Step {
    let patch = PATCHES[rng.random_range(0..PATCHES.len())];
    match rng.random_range(0..20) {
        0..=4 => Step::Spread {
            patch,
            kill: kill_for(rng, "replicate"),
        },
        5..=11 => {
            let ops = [
                "stage",
                "replicate",
                "install",
                "install",
                "rollback",
                "commit",
                "remove",
            ];
            let op = ops[rng.random_range(0..ops.len())];
            let all = nodes();
            let node = all[rng.random_range(0..all.len())];
            let fitting: Vec<&'static str> = PATCHES
                .iter()
                .copied()
                .filter(|p| verb(&model[node], op, p).is_some_and(|c| !c.is_empty()))
                .collect();
            let patch = if !fitting.is_empty() && rng.random_bool(0.75) {
                fitting[rng.random_range(0..fitting.len())]
            } else {
                patch
            };
            Step::Verb {
                op,
                patch,
                node,
                kill: kill_for(rng, op),
            }
        }
        12..=16 => {
            let sets: [&[&'static str]; 5] = [&["MA2"], &["MA3"], &["MB"], &["MH"], &["MA3", "MB"]];
            let uninstall = rng.random_bool(0.3);
            // Mostly a set every member is ready for, so rollouts run.
            let ready: Vec<&[&'static str]> = sets
                .iter()
                .copied()
                .filter(|set| {
                    MEMBERS.iter().all(|m| {
                        set.iter().all(|p| match state(&model[m], p) {
                            Some(St::Applied) => true,
                            Some(St::Staged) => !uninstall,
                            Some(_) => !uninstall,
                            None => false,
                        })
                    })
                })
                .collect();
            let patches = if !ready.is_empty() && rng.random_bool(0.8) {
                ready[rng.random_range(0..ready.len())].to_vec()
            } else {
                sets[rng.random_range(0..sets.len())].to_vec()
            };
            let policy = if on_failure && rng.random_bool(0.5) {
                Some(if rng.random_bool(0.5) {
                    "halt"
                } else {
                    "rollback"
                })
            } else {
                None
            };
            let then = match rng.random_range(0..6) {
                0 => Some("pause"),
                1 => Some("abort"),
                _ => None,
            };
            Step::Start {
                patches,
                uninstall,
                policy,
                then,
                kill: kill_for(rng, if uninstall { "rollback" } else { "install" }),
            }
        }
        17 => Step::Pause,
        18 => Step::Resume,
        _ => Step::Abort,
    }
}

/// What the sequences exercised, so a run that tested little says so.
#[derive(Default, Debug)]
struct Tally {
    verbs_ok: usize,
    verbs_refused: usize,
    /// Commands killed before they ended, and of those, the ones that left
    /// a node changed.
    killed: usize,
    killed_mid_way: usize,
    rollouts: BTreeMap<String, usize>,
}

/// A rollout the model follows while it holds the cluster.
#[derive(Clone, Debug)]
struct Active {
    id: i64,
    plan: Vec<&'static str>,
    uninstall: bool,
    before: BTreeMap<&'static str, NodeM>,
}

struct Case<'a> {
    seed: u64,
    lab: &'a Path,
    hooks: &'a Path,
    rng: ChaCha8Rng,
    model: BTreeMap<&'static str, NodeM>,
    log: Vec<String>,
    /// Journal rows seen so far (serialized, with their counts).
    journal_rows: BTreeMap<String, usize>,
    active: Option<Active>,
    /// Every rollout id recorded so far.
    rollouts: BTreeSet<i64>,
    tally: &'a mut Tally,
    /// The last `list --json`, until the next step changes anything.
    seen: Option<BTreeMap<&'static str, BTreeMap<String, String>>>,
}

fn patch_id(s: &str) -> Option<&'static str> {
    PATCHES.iter().copied().find(|p| *p == s)
}

fn alive(pid: i64) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

/// Whether `pid` is a patchdeck process working on `lab` (so a recycled
/// pid is never killed).
fn ours(pid: i64, lab: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let c = String::from_utf8_lossy(&c);
        c.contains("patchdeck") && c.contains(&*lab.to_string_lossy())
    })
}

impl Case<'_> {
    fn fail(&self, what: String) -> ! {
        panic!(
            "{what}\n\nsequence seed {} (replay: PATCHDECK_MODEL_SEED={} PATCHDECK_MODEL_CASES=1)\nsteps:\n  {}",
            self.seed,
            self.seed,
            self.log.join("\n  ")
        )
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = run(self.lab, args);
        if !out.status.success() {
            self.fail(format!("{args:?} failed: {}", text(&out)));
        }
        out
    }

    /// Patch states per node, as `list --json` says.
    fn observe(&mut self) -> BTreeMap<&'static str, BTreeMap<String, String>> {
        if let Some(seen) = &self.seen {
            return seen.clone();
        }
        let rows = json(&self.ok(&["list", "--nodes", &nodes().join(","), "--json"]));
        let mut out: BTreeMap<&'static str, BTreeMap<String, String>> =
            nodes().into_iter().map(|n| (n, BTreeMap::new())).collect();
        for r in rows.as_array().into_iter().flatten() {
            let (Some(node), Some(patch)) = (r["node"].as_str(), r["patch"].as_str()) else {
                continue;
            };
            let Some(slot) = out.get_mut(node) else {
                continue;
            };
            let st = r["state"].as_str().unwrap_or("?");
            let mut t = if st == "superseded" {
                format!(
                    "superseded by {}",
                    r["superseded_by"].as_str().unwrap_or("?")
                )
            } else {
                st.to_string()
            };
            if st == "superseded" && r["committed"] == true {
                t.push_str(", committed");
            }
            slot.insert(patch.to_string(), t);
        }
        self.seen = Some(out.clone());
        out
    }

    /// The node's states turned back into the model's terms.
    fn as_model(&self, obs: &BTreeMap<String, String>) -> NodeM {
        let mut n = NodeM::new();
        for (p, t) in obs {
            let Some(p) = patch_id(p) else {
                self.fail(format!("a patch outside the model appeared: {p} {t}"));
            };
            let committed = t.ends_with(", committed") || t == "committed";
            let (st, by) = if let Some(rest) = t.strip_prefix("superseded by ") {
                let by = rest.trim_end_matches(", committed");
                (St::Superseded, patch_id(by))
            } else {
                match t.as_str() {
                    "staged" => (St::Staged, None),
                    "applied" => (St::Applied, None),
                    "committed" => (St::Committed, None),
                    _ => self.fail(format!("unknown state {t} of {p}")),
                }
            };
            n.insert(p, Ps { st, committed, by });
        }
        n
    }

    fn status(&self, id: Option<i64>) -> Option<Value> {
        let ids = id.map(|i| i.to_string());
        let mut args = vec!["rollout", "status", "--json"];
        if let Some(i) = &ids {
            args.insert(2, i);
        }
        let out = run(self.lab, &args);
        out.status.success().then(|| json(&out))
    }

    fn latest(&self) -> Option<Value> {
        self.status(None)
    }

    /// Waits until rollout `id` is no longer running: it ended, paused,
    /// failed, or its runner died (then it is resumed, which runs it on).
    fn settle(&mut self, id: i64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let Some(st) = self.status(Some(id)) else {
                self.fail(format!("rollout {id} vanished"));
            };
            let state = st["state"].as_str().unwrap_or("?").to_string();
            if !matches!(state.as_str(), "running" | "pending" | "waiting") {
                return;
            }
            let pid = st["pid"].as_i64().unwrap_or(0);
            if st["interrupted"] == true || !alive(pid) {
                self.log
                    .push(format!("    (runner gone; rollout resume {id})"));
                let out = run(self.lab, &["rollout", "resume", &id.to_string()]);
                self.log.push(format!(
                    "    resume: {}",
                    text(&out).trim().replace('\n', " | ")
                ));
            } else if Instant::now() > deadline {
                self.fail(format!("rollout {id} still {state} after 90 s: {st}"));
            } else {
                // Polling a running rollout for its end.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Runs `args`, killing it as `kill` says. Returns its output, or None
    /// when it was killed before it ended.
    fn act(&mut self, args: &[&str], kill: &Kill) -> Option<Output> {
        let mut c = cmd(self.lab, args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Kill::Fault(p) = kill {
            c.env("PATCHDECK_FAULT", p.to_string());
        }
        let mut child: Child = c.spawn().expect("spawn");
        if let Kill::After(ms) = kill {
            // The kill lands at a random instant of the command's run.
            std::thread::sleep(Duration::from_millis(*ms));
            if child.try_wait().expect("try_wait").is_none() {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
        let out = child.wait_with_output().expect("wait");
        // Aborted at the fault point: as good as killed.
        use std::os::unix::process::ExitStatusExt;
        if out.status.signal().is_some() {
            return None;
        }
        Some(out)
    }

    /// The latest rollout, while it holds the cluster: unfinished, or
    /// failed and left halted (a failure rolled back lets go).
    fn held(&self) -> Option<Value> {
        self.latest().filter(|st| !ended(st))
    }

    fn step(&mut self, step: &Step) {
        self.seen = None;
        self.log.push(format!("{step:?}"));
        let before = self.model.clone();
        let mut killed = false;
        match step {
            Step::Verb {
                op,
                patch,
                node,
                kill,
            } => {
                let mut args = vec![*op, *patch, "--nodes", *node, "--json"];
                if *op == "replicate" {
                    args.push("--wait");
                }
                let holder = if MEMBERS.contains(node) && *op != "replicate" && *op != "stage" {
                    self.held()
                } else {
                    None
                };
                let out = self.act(&args, kill);
                killed = out.is_none();
                if let Some(o) = &out {
                    self.log
                        .push(format!("    exit {:?}: {}", o.status.code(), first_line(o)));
                }
                let n = &before[node];
                // A rollout owns its cluster: refused, nothing changes.
                let expect = if holder.is_some() {
                    None
                } else {
                    verb(n, op, patch)
                };
                let obs = self.observe();
                let now = self.as_model(&obs[node]);
                let mut allowed: Vec<NodeM> = vec![n.clone()];
                if let Some(ch) = &expect {
                    if killed {
                        allowed.extend(ch.iter().cloned());
                    } else {
                        allowed = vec![ch.last().cloned().unwrap_or_else(|| n.clone())];
                    }
                }
                if !allowed.contains(&now) {
                    self.fail(format!(
                        "{op} {patch} on {node}: node shows {:?}, the model allows {:?}",
                        render(&now),
                        allowed.iter().map(render).collect::<Vec<_>>()
                    ));
                }
                if let Some(o) = &out {
                    let want_ok = expect.is_some();
                    if o.status.success() != want_ok {
                        self.fail(format!(
                            "{op} {patch} on {node}: exit {:?}, the model says {}: {}",
                            o.status.code(),
                            if want_ok { "success" } else { "refusal" },
                            text(o)
                        ));
                    }
                }
                if killed {
                    self.tally.killed += 1;
                    if allowed.len() > 1 && now != *n {
                        self.tally.killed_mid_way += 1;
                    }
                } else if expect.is_some() {
                    self.tally.verbs_ok += 1;
                } else {
                    self.tally.verbs_refused += 1;
                }
                self.model.insert(node, now);
            }
            Step::Start {
                patches,
                uninstall,
                policy,
                then,
                kill,
            } => {
                let was = self.latest().and_then(|s| s["id"].as_i64());
                let mut args = vec!["rollout", "start", "--cluster", "edge"];
                args.extend(patches.iter().copied());
                if *uninstall {
                    args.push("--uninstall");
                }
                if let Some(p) = policy {
                    args.extend(["--on-failure", p]);
                }
                let kill = if then.is_some() { &Kill::No } else { kill };
                let out = if let Some(then) = then {
                    let mut child = cmd(self.lab, &args)
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("spawn");
                    // Waits for the new rollout to be recorded, then asks.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        let id = self.latest().and_then(|s| s["id"].as_i64());
                        if id != was || child.try_wait().expect("try_wait").is_some() {
                            break;
                        }
                        if Instant::now() > deadline {
                            self.fail("no rollout recorded in 30 s".into());
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let o = run(self.lab, &["rollout", then]);
                    self.log.push(format!("    {then}: {}", first_line(&o)));
                    Some(child.wait_with_output().expect("wait"))
                } else {
                    self.act(&args, kill)
                };
                killed = out.is_none();
                if let Some(o) = &out {
                    self.log
                        .push(format!("    exit {:?}: {}", o.status.code(), first_line(o)));
                }
                let now = self.latest();
                let id = now.as_ref().and_then(|s| s["id"].as_i64());
                if id != was
                    && let Some(id) = id
                {
                    if killed {
                        // The runner may live on after its follower died,
                        // or die with it: kill it too, then resume.
                        if let Some(st) = self.status(Some(id)) {
                            let pid = st["pid"].as_i64().unwrap_or(0);
                            if alive(pid) && ours(pid, self.lab) {
                                // SAFETY: a patchdeck runner this test started.
                                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                            }
                        }
                    }
                    let st = self.status(Some(id)).unwrap_or_default();
                    let plan: Vec<&'static str> = st["patches"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str().and_then(patch_id))
                        .collect();
                    self.rollouts.insert(id);
                    self.active = Some(Active {
                        id,
                        plan,
                        uninstall: st["uninstall"] == true,
                        before: MEMBERS.iter().map(|m| (*m, before[m].clone())).collect(),
                    });
                    self.settle(id);
                } else if let Some(o) = &out
                    && o.status.success()
                {
                    self.fail(format!(
                        "rollout start succeeded, no rollout recorded: {}",
                        text(o)
                    ));
                }
            }
            Step::Spread { patch, kill } => {
                let all = nodes().join(",");
                let args = ["replicate", *patch, "--nodes", &all, "--wait"];
                let out = self.act(&args, kill);
                killed = out.is_none();
                if let Some(o) = &out {
                    self.log
                        .push(format!("    exit {:?}: {}", o.status.code(), first_line(o)));
                    if !o.status.success() {
                        self.fail(format!("replicate {patch}: {}", text(o)));
                    }
                }
                let obs = self.observe();
                for n in nodes() {
                    let was = &before[n];
                    let now = self.as_model(&obs[n]);
                    let after = verb(was, "replicate", patch)
                        .and_then(|c| c.last().cloned())
                        .unwrap_or_else(|| was.clone());
                    if !(now == after || (killed && now == *was)) {
                        self.fail(format!(
                            "replicate {patch}: {n} shows {:?}, the model expects {:?}",
                            render(&now),
                            render(&after)
                        ));
                    }
                    self.model.insert(n, now);
                }
            }
            Step::Pause | Step::Resume | Step::Abort => {
                let verb = match step {
                    Step::Pause => "pause",
                    Step::Resume => "resume",
                    _ => "abort",
                };
                let out = run(self.lab, &["rollout", verb]);
                self.log.push(format!(
                    "    exit {:?}: {}",
                    out.status.code(),
                    first_line(&out)
                ));
                if let Some(a) = &self.active {
                    let id = a.id;
                    self.settle(id);
                }
            }
        }
        // Staging goes on while a rollout holds the cluster: the rollout
        // starts from what it found plus what was staged since.
        if let Some(a) = &mut self.active
            && matches!(step, Step::Verb { .. } | Step::Spread { .. })
        {
            for m in MEMBERS {
                for (p, s) in &self.model[m] {
                    if s.st == St::Staged
                        && !before[m].contains_key(p)
                        && let Some(b) = a.before.get_mut(m)
                    {
                        b.insert(p, s.clone());
                    }
                }
            }
        }
        self.check_members(killed);
        self.invariants(&before, killed);
    }

    /// Members against the rollout that holds (or just held) them.
    fn check_members(&mut self, _killed: bool) {
        let Some(a) = self.active.clone() else {
            return;
        };
        let st = self.status(Some(a.id)).unwrap_or_default();
        let state = st["state"].as_str().unwrap_or("?").to_string();
        let policy = st["on_failure"].as_str().unwrap_or("-").to_string();
        let obs = self.observe();
        for m in MEMBERS {
            let now = self.as_model(&obs[m]);
            let (chain, complete) = rollout_chain(&a.before[m], &a.plan, a.uninstall);
            let ok = match state.as_str() {
                "done" => complete && chain.last() == Some(&now),
                // A failed group is put back as it was; others are whole.
                "failed" | "rolled_back" if policy == "rollback" => {
                    chain.first() == Some(&now) || (complete && chain.last() == Some(&now))
                }
                _ => chain.contains(&now),
            };
            if !ok {
                self.fail(format!(
                    "rollout {} ({state}, on_failure {policy}) of {:?}{}: {m} shows {:?}, the model allows {:?}\nstatus: {st}",
                    a.id,
                    a.plan,
                    if a.uninstall { " uninstall" } else { "" },
                    render(&now),
                    chain.iter().map(render).collect::<Vec<_>>()
                ));
            }
            self.model.insert(m, now);
        }
        if matches!(
            state.as_str(),
            "done" | "aborted" | "failed" | "rolled_back"
        ) {
            self.told_the_end(a.id, &st);
        }
        if ended(&st) {
            self.active = None;
            self.hook_ran(a.id, &st);
        }
    }

    fn invariants(&mut self, before: &BTreeMap<&'static str, NodeM>, killed: bool) {
        // Every node as the model has it (synced above) and as it shows.
        let obs = self.observe();
        for n in nodes() {
            let now = self.as_model(&obs[n]);
            if now != self.model[n] {
                self.fail(format!(
                    "{n} changed behind the step: shows {:?}, model {:?}",
                    render(&now),
                    render(&self.model[n])
                ));
            }
            let unmet = unmet_requirements(&now);
            if !unmet.is_empty() {
                self.fail(format!(
                    "{n}: an applied patch's requirement is unmet: {unmet:?}"
                ));
            }
        }
        let out = run(
            self.lab,
            &["verify", "--nodes", &nodes().join(","), "--json"],
        );
        if !out.status.success() {
            self.fail(format!("verify found drift: {}", text(&out)));
        }
        self.services();
        self.journal(before, killed);
    }

    /// No member out of service unless a halted rollout says so.
    fn services(&self) {
        let rows = json(&self.ok(&["nodes", "--json"]));
        let down: Vec<String> = rows
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["service"] != "up")
            .filter_map(|r| r["id"].as_str().map(String::from))
            .filter(|id| nodes().contains(&id.as_str()))
            .collect();
        if down.is_empty() {
            return;
        }
        let st = self.latest().unwrap_or_default();
        let halted = st["state"] == "failed" && st["on_failure"] == "halt";
        let said = st["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("rollout abort {}", st["id"])));
        let groups: Vec<Vec<String>> = st["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                g["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str().map(String::from))
                    .collect()
            })
            .collect();
        let one_group = groups.iter().any(|g| down.iter().all(|d| g.contains(d)));
        // A paused rollout stops between groups' steps; it may hold a group
        // drained while it waits, which its status shows as paused.
        let paused = st["state"] == "paused" && one_group;
        if !((halted && said && one_group) || paused) {
            self.fail(format!(
                "left out of service: {down:?}; latest rollout: state {} on_failure {} message {:?}",
                st["state"], st["on_failure"], st["message"]
            ));
        }
    }

    /// After its end, a rollout's status shows no step or group as still
    /// going and no next step.
    fn told_the_end(&self, id: i64, st: &Value) {
        let going = |s: &Value| {
            matches!(
                s["state"].as_str(),
                Some("running" | "in progress" | "paused" | "waiting" | "interrupted")
            )
        };
        let groups = st["groups"].as_array().into_iter().flatten();
        let steps = st["steps"].as_array().into_iter().flatten();
        if !st["current_step"].is_null() || groups.clone().any(going) || steps.clone().any(going) {
            self.fail(format!(
                "rollout {id} ended {} yet its status shows something still going: current_step {}, groups {}",
                st["state"], st["current_step"], st["groups"]
            ));
        }
    }

    /// An ended rollout ran its after-hook.
    fn hook_ran(&self, id: i64, st: &Value) {
        let ran = std::fs::read_to_string(self.hooks).unwrap_or_default();
        if !ran.lines().any(|l| l.trim() == id.to_string()) {
            self.fail(format!(
                "rollout {id} ended {} (on_failure {}) without its after-hook; the hook log: {ran:?}",
                st["state"], st["on_failure"]
            ));
        }
    }

    /// Every change a node shows since the last step has a journal row on
    /// that node naming the patch or one of its chain (a superseder's
    /// install or rollback changes what it replaced).
    fn journal(&mut self, before: &BTreeMap<&'static str, NodeM>, killed: bool) {
        // Rows are compared by content: intents are replaced by outcomes,
        // so counting rows would not say which are new.
        let rows = json(&self.ok(&["history", "--json"]));
        let mut seen = std::mem::take(&mut self.journal_rows);
        let mut fresh = Vec::new();
        for r in rows.as_array().cloned().unwrap_or_default() {
            let key = r.to_string();
            match seen.get_mut(&key) {
                Some(c) if *c > 0 => *c -= 1,
                _ => fresh.push(r.clone()),
            }
            *self.journal_rows.entry(key).or_default() += 1;
        }
        let fresh = &fresh[..];
        for n in nodes() {
            let (a, b) = (&before[n], &self.model[n]);
            for p in PATCHES {
                if a.get(p) == b.get(p) {
                    continue;
                }
                let kin: Vec<&str> = std::iter::once(p)
                    .chain(supersedes(p))
                    .chain(superseders(p))
                    .collect();
                let covered = fresh.iter().any(|r| {
                    r["node"] == n
                        && (r["ok"] == true || killed)
                        && r["patch"]
                            .as_str()
                            .is_some_and(|s| s.split(',').any(|x| kin.contains(&x.trim())))
                });
                if !covered {
                    self.fail(format!(
                        "{n}: {p} went from {:?} to {:?} with no journal row; new rows: {}",
                        a.get(p).map(|s| format!("{:?}", s.st)),
                        b.get(p).map(|s| format!("{:?}", s.st)),
                        serde_json::to_string_pretty(fresh).unwrap_or_default()
                    ));
                }
            }
        }
    }

    /// Ends whatever rollout still holds the cluster, then checks once more.
    fn finish(&mut self) {
        for _ in 0..6 {
            let Some(st) = self.held() else {
                break;
            };
            let how = if st["state"] == "paused" && self.rng.random_bool(0.5) {
                "resume"
            } else {
                "abort"
            };
            let step = if how == "resume" {
                Step::Resume
            } else {
                Step::Abort
            };
            self.step(&step);
        }
        if let Some(st) = self.held() {
            self.fail(format!(
                "a rollout still holds the cluster at the end: {st}"
            ));
        }
        for id in self.rollouts.clone() {
            let st = self.status(Some(id)).unwrap_or_default();
            let key = format!(
                "{} {}",
                st["state"].as_str().unwrap_or("?"),
                st["on_failure"].as_str().unwrap_or("-")
            );
            *self.tally.rollouts.entry(key).or_default() += 1;
            if !matches!(
                st["state"].as_str(),
                Some("done" | "aborted" | "failed" | "rolled_back")
            ) {
                self.fail(format!("rollout {id} did not end: {st}"));
            }
        }
        let ran = std::fs::read_to_string(self.hooks).unwrap_or_default();
        for id in &self.rollouts {
            if !ran.lines().any(|l| l.trim() == id.to_string()) {
                self.fail(format!("rollout {id} ended without its after-hook"));
            }
        }
    }
}

/// Whether a rollout is over for good: done, aborted, or failed with its
/// group rolled back (a failure left halted still holds the cluster; a
/// status without `on_failure` predates the policy and holds too).
fn ended(st: &Value) -> bool {
    matches!(
        st["state"].as_str(),
        Some("done" | "aborted" | "rolled_back")
    ) || (st["state"] == "failed" && st["on_failure"] == "rollback")
}

fn first_line(o: &Output) -> String {
    text(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("tmp")
    } else {
        tempfile::tempdir().expect("tmp")
    }
}

#[test]
fn random_sequences_agree_with_the_reference_model() {
    let cases: u64 = std::env::var("PATCHDECK_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let base: u64 = std::env::var("PATCHDECK_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    let tmp = scratch();
    let template = template(tmp.path());
    let help = run(&template, &["rollout", "start", "--help"]);
    let on_failure = text(&help).contains("--on-failure");
    let started = Instant::now();
    let mut steps = 0usize;
    let mut tally = Tally::default();
    eprintln!("model_props: {cases} sequences from seed {base}");
    for i in 0..cases {
        let seed = base.wrapping_add(i);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let failing = rng
            .random_bool(0.35)
            .then(|| MEMBERS[rng.random_range(0..MEMBERS.len())]);
        let dir = tmp.path().join(format!("case-{i}"));
        std::fs::create_dir(&dir).expect("case dir");
        let (lab, hooks) = case_lab(&template, &dir, failing);
        let n = rng.random_range(5..=12);
        let mut case = Case {
            seed,
            lab: &lab,
            hooks: &hooks,
            rng,
            model: nodes().into_iter().map(|n| (n, NodeM::new())).collect(),
            log: vec![format!("failing member: {failing:?}")],
            journal_rows: BTreeMap::new(),
            active: None,
            rollouts: BTreeSet::new(),
            tally: &mut tally,
            seen: None,
        };
        for r in json(&case.ok(&["history", "--json"]))
            .as_array()
            .into_iter()
            .flatten()
        {
            *case.journal_rows.entry(r.to_string()).or_default() += 1;
        }
        for _ in 0..n {
            let s = random_step(&mut case.rng, on_failure, &case.model);
            case.step(&s);
        }
        case.finish();
        steps += case.log.len();
        std::fs::remove_dir_all(&dir).ok();
    }
    eprintln!(
        "model_props: {cases} sequences ({steps} log lines) in {:.1} s: {tally:?}",
        started.elapsed().as_secs_f64()
    );
    // A run that rolled nothing out or killed nothing tested little.
    if cases >= 50 {
        assert!(
            tally.rollouts.keys().any(|k| k.starts_with("done"))
                && tally.rollouts.keys().any(|k| !k.starts_with("done"))
                && tally.killed > 0
                && tally.verbs_ok > 0,
            "the sequences exercised too little: {tally:?}"
        );
    }
}
