//! Crash safety of the node store, end to end.
//!
//! Each operation (stage, install, rollback, commit, remove) runs in a child
//! process: this test binary re-executed with `--exact child_entry` and
//! `PATCHDECK_CRASH_CHILD=op:patch:root`. The child is made to abort at each
//! numbered fault point (`PATCHDECK_FAULT=N`), killed with SIGKILL at random
//! instants while the operation runs, or made to fail at a point
//! (`PATCHDECK_FAIL=N`). Afterwards the node is opened (which recovers) and
//! its [`Node::digest`] — SHA-256 over every file, directory and link in the
//! node tree plus the database's meaning — must equal exactly the digest of
//! the state before the operation or exactly the state after it; `verify()`
//! must report no drift and the patch states must agree with the digest.
//!
//! `PATCHDECK_CRASH_SEED=N` replays the random kill delays of a run (the
//! seed is printed at the start and in every failure).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{copy_tree, diff_listings, listing, manifest, write_patch_modes};
use patchdeck::engine::node::{Node, fault};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CHILD_ENV: &str = "PATCHDECK_CRASH_CHILD";
const SOURCE_ENV: &str = "PATCHDECK_CRASH_SOURCE";
const READY: &str = "PATCHDECK-CHILD-READY";
const RESULT: &str = "PATCHDECK-CHILD-RESULT";
const NODE: &str = "n";
/// Kills per operation in `random_kills_*` (three operations: 1,050 in all).
const KILLS_PER_OP: usize = 350;

// ----- the child -----

/// Does nothing unless `PATCHDECK_CRASH_CHILD=op:patch:root` is set; then it
/// opens the node, says it is ready on stderr, runs that one operation and
/// reports its result and duration on stderr.
#[test]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (op, id, root) = match (parts.next(), parts.next(), parts.next()) {
        (Some(op), Some(id), Some(root)) => (op, id, PathBuf::from(root)),
        _ => panic!("{CHILD_ENV}={spec:?} is not op:patch:root"),
    };
    let mut node = match Node::open(&root, NODE) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("{RESULT} err 0 {e}");
            return;
        }
    };
    eprintln!("{READY}");
    let start = Instant::now();
    let result = match op {
        "stage" => {
            let source = std::env::var(SOURCE_ENV).expect("child: no source for stage");
            node.stage(id, Path::new(&source))
        }
        "install" => node.install(id, true),
        "install-nosave" => node.install(id, false),
        "rollback" => node.rollback(id),
        "commit" => node.commit(id),
        "remove" => node.remove(id),
        other => panic!("child: unknown operation {other}"),
    };
    let micros = start.elapsed().as_micros();
    match result {
        Ok(r) => eprintln!("{RESULT} ok {micros} {}", r.message),
        Err(e) => eprintln!("{RESULT} err {micros} {e}"),
    }
}

/// The operations under test and which fault points belong to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Stage,
    Install,
    InstallNoSave,
    Rollback,
    Commit,
    Remove,
}

const ALL_OPS: [Op; 6] = [
    Op::Stage,
    Op::Install,
    Op::InstallNoSave,
    Op::Rollback,
    Op::Commit,
    Op::Remove,
];

impl Op {
    fn arg(self) -> &'static str {
        match self {
            Op::Stage => "stage",
            Op::Install => "install",
            Op::InstallNoSave => "install-nosave",
            Op::Rollback => "rollback",
            Op::Commit => "commit",
            Op::Remove => "remove",
        }
    }
    /// The operation name the fault points are listed under.
    fn points_name(self) -> &'static str {
        match self {
            Op::InstallNoSave => "install",
            op => op.arg(),
        }
    }
    fn points(self) -> Vec<u32> {
        fault::POINTS
            .iter()
            .filter(|(_, op, _)| *op == self.points_name())
            .map(|(n, _, _)| *n)
            .collect()
    }
    /// The last point at which the operation can still end "before": up to
    /// here nothing in the node tree or database has taken effect. Past it
    /// (the recorded point of no return, or the database commit) a crash
    /// rolls forward.
    fn last_before_point(self) -> u32 {
        match self {
            Op::Stage => 3,
            Op::Install | Op::InstallNoSave => 13,
            Op::Rollback => 21,
            Op::Commit => 0,
            Op::Remove => 0,
        }
    }
    /// Points after the database commit: a failure there is reported, but
    /// the operation has taken effect and cannot be undone.
    fn committed_points(self) -> &'static [u32] {
        match self {
            Op::Stage => &[],
            Op::Install | Op::InstallNoSave => &[17],
            Op::Rollback => &[25],
            Op::Commit => &[30, 31],
            Op::Remove => &[40],
        }
    }
}

// ----- the scenario -----

/// Deterministic bytes: `len` bytes naming `tag`.
fn blob(tag: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(format!("{tag} line {i}\n").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// `gateway 10.1` with originals under opt/gw, GW_0 applied (it replaces an
/// original and creates opt/gw/share/gw0/), and GW_1 — 20 files, superseding
/// GW_0 — ready to stage from `source`: 7 files replace originals, 2 replace
/// GW_0's, 3 are new in an existing directory, 8 are new in new nested
/// directories.
struct Scenario {
    /// Keeps every template alive.
    _dir: tempfile::TempDir,
    work: PathBuf,
    source: PathBuf,
    /// Node roots: GW_1 not on the node, staged, applied.
    absent: PathBuf,
    staged: PathBuf,
    applied: PathBuf,
}

/// Where trees are built: `PATCHDECK_CRASH_TMP`, else `/dev/shm` when it is
/// there (a process kill loses nothing on tmpfs that it would keep on disk,
/// and a thousand fsync-heavy trials run several times faster), else the
/// system's temporary directory.
fn scratch() -> tempfile::TempDir {
    let base = std::env::var_os("PATCHDECK_CRASH_TMP")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()));
    base.and_then(|b| tempfile::Builder::new().prefix("crash").tempdir_in(b).ok())
        .unwrap_or_else(|| tempfile::tempdir().unwrap())
}

fn build_scenario() -> Scenario {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let work = dir.path().to_path_buf();
    let patches = work.join("patches");
    fs::create_dir_all(&patches).unwrap();

    let absent = work.join("t-absent/node");
    let originals: Vec<(String, Vec<u8>, u32)> = (0..8)
        .map(|i| (format!("opt/gw/bin/tool{i}"), 3 * 1024 + i * 100, 0o755))
        .chain((0..4).map(|i| (format!("opt/gw/lib/lib{i}.so"), 4 * 1024, 0o644)))
        .chain([("opt/gw/etc/gw.conf".to_string(), 1024, 0o640)])
        .chain([("etc/untouched".to_string(), 100, 0o644)])
        .map(|(p, len, mode)| {
            let data = blob(&format!("original {p}"), len);
            (p, data, mode)
        })
        .collect();
    for (p, data, mode) in &originals {
        let path = absent.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
    }

    let gw0: Vec<(String, Vec<u8>, u32)> = [
        "opt/gw/lib/lib0.so",
        "opt/gw/share/gw0/data0.txt",
        "opt/gw/share/gw0/data1.txt",
    ]
    .iter()
    .map(|p| (p.to_string(), blob(&format!("GW_0 {p}"), 2500), 0o644))
    .collect();
    let mut gw1: Vec<(String, u32)> = Vec::new();
    gw1.extend((0..6).map(|i| (format!("opt/gw/bin/tool{i}"), 0o755)));
    gw1.push(("opt/gw/etc/gw.conf".into(), 0o600));
    gw1.push(("opt/gw/lib/lib0.so".into(), 0o644));
    gw1.push(("opt/gw/share/gw0/data0.txt".into(), 0o644));
    gw1.extend((0..3).map(|i| (format!("opt/gw/lib/new{i}.so"), 0o644)));
    gw1.extend((0..4).map(|i| (format!("opt/gw/plugins/a/p{i}.so"), 0o755)));
    gw1.extend((0..4).map(|i| (format!("opt/gw/plugins/b/c/q{i}.conf"), 0o644)));
    assert_eq!(gw1.len(), 20);
    let gw1: Vec<(String, Vec<u8>, u32)> = gw1
        .into_iter()
        .enumerate()
        .map(|(i, (p, mode))| {
            let data = blob(&format!("GW_1 {p}"), 2048 + 211 * i);
            (p, data, mode)
        })
        .collect();
    let write = |id: &str, extra: &str, files: &[(String, Vec<u8>, u32)]| {
        let refs: Vec<(&str, &[u8], u32)> = files
            .iter()
            .map(|(p, d, m)| (p.as_str(), d.as_slice(), *m))
            .collect();
        write_patch_modes(&patches, id, &manifest(id, extra), &refs)
    };
    let p0 = write("GW_0", "", &gw0);
    let source = write(
        "GW_1",
        "supersedes = [\"GW_0\"]\nrestart = \"service\"",
        &gw1,
    );

    {
        let mut node = Node::open(&absent, NODE).unwrap();
        node.set_product("gateway", "10.1").unwrap();
        node.stage("GW_0", &p0).unwrap();
        node.install("GW_0", true).unwrap();
    }
    let staged = work.join("t-staged/node");
    fs::create_dir_all(staged.parent().unwrap()).unwrap();
    copy_tree(&absent, &staged);
    Node::open(&staged, NODE)
        .unwrap()
        .stage("GW_1", &source)
        .unwrap();
    let applied = work.join("t-applied/node");
    fs::create_dir_all(applied.parent().unwrap()).unwrap();
    copy_tree(&staged, &applied);
    Node::open(&applied, NODE)
        .unwrap()
        .install("GW_1", true)
        .unwrap();
    Scenario {
        _dir: dir,
        work,
        source,
        absent,
        staged,
        applied,
    }
}

/// One patch's state as `list()` shows it.
type States = Vec<(String, String, bool, Option<String>)>;

fn states(node: &Node) -> States {
    node.list()
        .unwrap()
        .into_iter()
        .map(|l| {
            (
                l.patch,
                format!("{:?}", l.state),
                l.committed,
                l.superseded_by,
            )
        })
        .collect()
}

/// A known state of the node: its digest, patch states and a listing.
struct Known {
    root: PathBuf,
    digest: String,
    states: States,
}

impl Known {
    fn of(root: &Path) -> Known {
        let node = Node::open(root, NODE).unwrap();
        assert!(node.verify().unwrap().is_empty(), "drift in a template");
        Known {
            root: root.to_path_buf(),
            digest: node.digest().unwrap(),
            states: states(&node),
        }
    }
}

/// One operation with its before and after states.
struct Case {
    op: Op,
    id: &'static str,
    before: Known,
    after: Known,
}

/// Builds the case for `op`: the template it starts from, and "after" by
/// running the operation to completion in-process on a copy.
fn case(s: &Scenario, op: Op) -> Case {
    let template = match op {
        Op::Stage => &s.absent,
        Op::Install | Op::InstallNoSave | Op::Remove => &s.staged,
        Op::Rollback | Op::Commit => &s.applied,
    };
    let before = Known::of(template);
    let done = s.work.join(format!("after-{}/node", op.arg()));
    fs::create_dir_all(done.parent().unwrap()).unwrap();
    copy_tree(template, &done);
    {
        let mut node = Node::open(&done, NODE).unwrap();
        match op {
            Op::Stage => node.stage("GW_1", &s.source),
            Op::Install => node.install("GW_1", true),
            Op::InstallNoSave => node.install("GW_1", false),
            Op::Rollback => node.rollback("GW_1"),
            Op::Commit => node.commit("GW_1"),
            Op::Remove => node.remove("GW_1"),
        }
        .unwrap();
    }
    let after = Known::of(&done);
    assert_ne!(
        before.digest,
        after.digest,
        "{} changes nothing the digest sees",
        op.arg()
    );
    // A copy of a tree has the same digest: trials can start from copies.
    let copy = s.work.join(format!("copy-{}/node", op.arg()));
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    copy_tree(template, &copy);
    assert_eq!(
        Node::open(&copy, NODE).unwrap().digest().unwrap(),
        before.digest,
        "a copy of the {} template has another digest",
        op.arg()
    );
    fs::remove_dir_all(copy.parent().unwrap()).unwrap();
    Case {
        op,
        id: "GW_1",
        before,
        after,
    }
}

// ----- running children -----

fn child(case: &Case, root: &Path, s: &Scenario, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}:{}:{}", case.op.arg(), case.id, root.display()),
        )
        .env(SOURCE_ENV, &s.source)
        .env_remove(fault::CRASH_ENV)
        .env_remove(fault::FAIL_ENV)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// How a child run ended.
#[derive(Debug)]
struct Ran {
    status: ExitStatus,
    /// `Ok(message)` or `Err(message)` as the child reported it.
    result: Option<Result<String, String>>,
    micros: Option<u64>,
    stderr: String,
}

fn parse_run(status: ExitStatus, stderr: String) -> Ran {
    let mut result = None;
    let mut micros = None;
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix(RESULT) {
            let mut it = rest.trim().splitn(3, ' ');
            let kind = it.next().unwrap_or_default();
            micros = it.next().and_then(|m| m.parse().ok());
            let msg = it.next().unwrap_or_default().to_string();
            result = Some(if kind == "ok" { Ok(msg) } else { Err(msg) });
        }
    }
    Ran {
        status,
        result,
        micros,
        stderr,
    }
}

fn run_child(case: &Case, root: &Path, s: &Scenario, env: &[(&str, String)]) -> Ran {
    let out = child(case, root, s, env).output().unwrap();
    parse_run(
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts the child, waits until it has opened the node, lets it run for
/// `delay`, then kills it with SIGKILL. Returns whether the kill landed
/// before the child exited by itself.
fn kill_child(case: &Case, root: &Path, s: &Scenario, delay: Duration) -> bool {
    let mut c = child(case, root, s, &[]).spawn().unwrap();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            let _ = c.wait();
            panic!("child ended before it was ready:\n{seen}");
        }
        if line.trim_end() == READY {
            break;
        }
        seen.push_str(&line);
    }
    std::thread::sleep(delay);
    c.kill().unwrap();
    let status = c.wait().unwrap();
    drop(err);
    status.signal() == Some(libc::SIGKILL)
}

// ----- checking -----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Before,
    After,
}

/// The interrupted operation the database records, read without recovering.
fn raw_intent(root: &Path) -> Option<(String, String, String)> {
    let conn = rusqlite::Connection::open(root.join("var/lib/patchdeck/ipd.sqlite")).unwrap();
    conn.query_row("SELECT op, patch, phase FROM intent", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .ok()
}

/// Opens the node (recovering it) and checks the invariant: exactly the
/// state before or exactly the state after, no drift, patch states that
/// agree. The error names what differs.
fn recover_and_check(case: &Case, root: &Path) -> Result<Outcome, String> {
    let node = Node::open(root, NODE).map_err(|e| format!("recovery failed: {e}"))?;
    if let Some(i) = raw_intent(root) {
        return Err(format!("an intent is left after recovery: {i:?}"));
    }
    let digest = node.digest().map_err(|e| e.to_string())?;
    let drift = node.verify().map_err(|e| e.to_string())?;
    let now = states(&node);
    drop(node);
    let outcome = if digest == case.before.digest {
        Outcome::Before
    } else if digest == case.after.digest {
        Outcome::After
    } else {
        let skip = ["var/lib/patchdeck/ipd.sqlite", "var/lib/patchdeck/lock"];
        let here = listing(root, &skip);
        return Err(format!(
            "digest is neither before nor after\nstates now {now:?}\n  before {:?}\n  after {:?}\nfiles vs before:\n  {}\nfiles vs after:\n  {}",
            case.before.states,
            case.after.states,
            diff_listings(&here, &listing(&case.before.root, &skip)).join("\n  "),
            diff_listings(&here, &listing(&case.after.root, &skip)).join("\n  "),
        ));
    };
    if !drift.is_empty() {
        return Err(format!("drift after recovery: {drift:?}"));
    }
    let expected = match outcome {
        Outcome::Before => &case.before.states,
        Outcome::After => &case.after.states,
    };
    if &now != expected {
        return Err(format!(
            "digest says {outcome:?} but the patch states are {now:?}, expected {expected:?}"
        ));
    }
    Ok(outcome)
}

/// A fresh copy of the case's "before" tree for one trial.
fn trial_root(s: &Scenario, case: &Case, name: &str) -> PathBuf {
    let dir = s.work.join("trials").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let root = dir.join("node");
    copy_tree(&case.before.root, &root);
    root
}

fn drop_trial(root: &Path) {
    fs::remove_dir_all(root.parent().unwrap()).unwrap();
}

/// Every point the fault list names belongs to one of the operations here,
/// so a point added later cannot be left untested.
#[test]
fn every_fault_point_belongs_to_a_tested_operation() {
    let mut numbers: Vec<u32> = fault::POINTS.iter().map(|p| p.0).collect();
    let n = numbers.len();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), n, "fault point numbers must be unique");
    for (n, op, what) in fault::POINTS {
        assert!(
            ALL_OPS.iter().any(|o| o.points_name() == *op),
            "point {n} ({op}: {what}) belongs to no tested operation"
        );
    }
}

// ----- every numbered point -----

/// Aborts each operation at each of its numbered points; recovery must end
/// exactly before (up to the point of no return) or exactly after (past
/// it). Points of other operations are never reached: the child finishes.
#[test]
fn abort_at_every_fault_point_recovers_to_before_or_after() {
    let s = build_scenario();
    let mut report = Vec::new();
    for op in ALL_OPS {
        let case = case(&s, op);
        let mine = op.points();
        assert!(!mine.is_empty(), "{} has no fault points", op.arg());
        for &(n, _, what) in fault::POINTS {
            let root = trial_root(&s, &case, &format!("point-{}-{n}", op.arg()));
            let ran = run_child(&case, &root, &s, &[(fault::CRASH_ENV, n.to_string())]);
            let outcome = recover_and_check(&case, &root)
                .unwrap_or_else(|m| panic!("{} aborted at point {n} ({what}): {m}", op.arg()));
            if mine.contains(&n) {
                assert_eq!(
                    ran.status.signal(),
                    Some(libc::SIGABRT),
                    "{} did not abort at its point {n} ({what}): {ran:?}",
                    op.arg()
                );
                let expected = if n <= op.last_before_point() {
                    Outcome::Before
                } else {
                    Outcome::After
                };
                assert_eq!(
                    outcome,
                    expected,
                    "{} aborted at point {n} ({what})",
                    op.arg()
                );
                report.push(format!("{}@{n}={outcome:?}", op.arg()));
            } else {
                assert!(
                    ran.status.success() && matches!(ran.result, Some(Ok(_))),
                    "{} with point {n} of another operation set did not finish: {ran:?}",
                    op.arg()
                );
                assert_eq!(
                    outcome,
                    Outcome::After,
                    "{} with foreign point {n}",
                    op.arg()
                );
            }
            drop_trial(&root);
        }
    }
    eprintln!("aborts: {}", report.join(" "));
}

// ----- injected failures -----

/// Makes each point of each operation return an I/O error. Up to the
/// database commit the operation must undo itself at once: it reports an
/// error naming the failure and the node is exactly as before, with no
/// intent left for recovery. Past the database commit the change has taken
/// effect: the error says so, and the node is exactly "after" once the next
/// open has finished the tidying.
#[test]
fn injected_failures_end_fully_before_with_a_clear_error() {
    let s = build_scenario();
    for op in ALL_OPS {
        let case = case(&s, op);
        for n in op.points() {
            let root = trial_root(&s, &case, &format!("fail-{}-{n}", op.arg()));
            let ran = run_child(&case, &root, &s, &[(fault::FAIL_ENV, n.to_string())]);
            let ctx = format!("{} failing at point {n}", op.arg());
            assert!(ran.status.success(), "{ctx}: the child crashed: {ran:?}");
            let message = match &ran.result {
                Some(Err(m)) => m.clone(),
                other => panic!("{ctx}: expected an error, got {other:?}\n{}", ran.stderr),
            };
            assert!(
                message.contains(&format!("injected failure at fault point {n}")),
                "{ctx}: the error does not name the failure: {message}"
            );
            if op.committed_points().contains(&n) {
                assert!(
                    message.contains("took effect"),
                    "{ctx}: past the database commit the error must say the change took effect: {message}"
                );
                let outcome =
                    recover_and_check(&case, &root).unwrap_or_else(|m| panic!("{ctx}: {m}"));
                assert_eq!(outcome, Outcome::After, "{ctx}: {message}");
            } else {
                // Without any recovery: no intent, and exactly "before".
                assert_eq!(
                    raw_intent(&root),
                    None,
                    "{ctx}: intent left behind: {message}"
                );
                let outcome =
                    recover_and_check(&case, &root).unwrap_or_else(|m| panic!("{ctx}: {m}"));
                assert_eq!(outcome, Outcome::Before, "{ctx}: {message}");
            }
            drop_trial(&root);
        }
    }
}

// ----- random kills -----

fn seed() -> u64 {
    std::env::var("PATCHDECK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Tallies for one operation.
#[derive(Debug, Default)]
struct Tally {
    /// Killed, no intent recorded yet, recovered to before.
    not_started: usize,
    /// Killed mid-way (an intent was recorded) and rolled back.
    rolled_back: usize,
    /// Killed mid-way and rolled forward.
    rolled_forward: usize,
    /// Killed after the database commit, before the child exited.
    finished: usize,
    /// The child had exited by itself before the kill.
    exited_first: usize,
}

impl Tally {
    fn total(&self) -> usize {
        self.not_started
            + self.rolled_back
            + self.rolled_forward
            + self.finished
            + self.exited_first
    }
}

/// How long the operation itself runs in a child, in microseconds: the
/// fastest of five full runs after a warm-up run (a slower trial only moves
/// more kills inside the operation). Each full run must end in exactly
/// "after".
fn calibrate(s: &Scenario, case: &Case) -> u64 {
    let runs: Vec<u64> = (0..6)
        .map(|i| {
            let root = trial_root(s, case, &format!("calibrate-{}-{i}", case.op.arg()));
            let ran = run_child(case, &root, s, &[]);
            assert!(
                matches!(ran.result, Some(Ok(_))),
                "{}: a full run fails: {ran:?}",
                case.op.arg()
            );
            assert_eq!(recover_and_check(case, &root), Ok(Outcome::After));
            drop_trial(&root);
            ran.micros.unwrap()
        })
        .skip(1)
        .collect();
    runs.into_iter().min().unwrap()
}

/// Kills `op` at `kills` random instants drawn uniformly from 0 to 1.2 times
/// its calibrated run time, counted from the moment the child has opened
/// the node; each time, recovery must end exactly before or exactly after.
fn random_kills(s: &Scenario, op: Op, kills: usize, seed: u64, rng: &mut ChaCha8Rng) -> Tally {
    let case = case(s, op);
    let runs = calibrate(s, &case);
    let span = (runs * 12 / 10).max(1);
    let mut tally = Tally::default();
    for i in 0..kills {
        let root = trial_root(s, &case, &format!("kill-{}-{i}", op.arg()));
        let delay = rng.random_range(0..=span);
        let killed = kill_child(&case, &root, s, Duration::from_micros(delay));
        let intent = raw_intent(&root);
        let outcome = recover_and_check(&case, &root).unwrap_or_else(|m| {
            panic!(
                "seed {seed}: {} killed after {delay}µs (trial {i}, intent {intent:?}): {m}",
                op.arg()
            )
        });
        match (intent.is_some(), outcome) {
            (false, Outcome::Before) => tally.not_started += 1,
            (true, Outcome::Before) => tally.rolled_back += 1,
            (true, Outcome::After) => tally.rolled_forward += 1,
            (false, Outcome::After) if killed => tally.finished += 1,
            (false, Outcome::After) => tally.exited_first += 1,
        }
        drop_trial(&root);
    }
    eprintln!(
        "{}: the operation runs ~{runs}µs; {kills} kills drawn from 0..={span}µs: {tally:?}",
        op.arg()
    );
    tally
}

fn check_tallies(seed: u64, tallies: &BTreeMap<Op, Tally>) {
    for (op, t) in tallies {
        let ctx = format!("seed {seed}: {} {t:?}", op.arg());
        assert!(
            t.not_started + t.rolled_back > 0,
            "{ctx}: no kill ended before"
        );
        assert!(
            t.rolled_forward + t.finished + t.exited_first > 0,
            "{ctx}: no kill ended after"
        );
        assert!(
            t.rolled_back + t.rolled_forward > 0,
            "{ctx}: no kill landed inside the operation"
        );
    }
}

/// SIGKILLs the child at random instants while install, rollback and
/// commit run (350 each, 1,050 in all): after recovery the node is exactly
/// before or exactly after every time, and kills must have landed before,
/// inside and after each operation.
#[test]
fn random_kills_during_install_rollback_and_commit() {
    let seed = seed();
    eprintln!("random kills: seed {seed} (PATCHDECK_CRASH_SEED={seed} to replay)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = build_scenario();
    let tallies: BTreeMap<Op, Tally> = [Op::Install, Op::Rollback, Op::Commit]
        .into_iter()
        .map(|op| (op, random_kills(&s, op, KILLS_PER_OP, seed, &mut rng)))
        .collect();
    check_tallies(seed, &tallies);
    let total: usize = tallies.values().map(Tally::total).sum();
    assert!(total >= 1000, "only {total} kills");
}

/// The same for stage and remove, fewer times: they are short.
#[test]
fn random_kills_during_stage_and_remove() {
    let seed = seed();
    eprintln!("random kills: seed {seed} (PATCHDECK_CRASH_SEED={seed} to replay)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let s = build_scenario();
    let tallies: BTreeMap<Op, Tally> = [Op::Stage, Op::Remove]
        .into_iter()
        .map(|op| (op, random_kills(&s, op, 100, seed, &mut rng)))
        .collect();
    check_tallies(seed, &tallies);
}

// ----- full disks -----

/// A tmpfs mounted on a fresh directory, unmounted when dropped. The tests
/// run as root (as scripts/test does); without the right to mount they fail
/// and say so rather than skip.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("fulldisk")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("the full-disk tests run `mount -t tmpfs`: {e}"));
        assert!(
            out.status.success(),
            "the full-disk tests need to mount a tmpfs (run them as root, or with CAP_SYS_ADMIN): mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free(&self) -> u64 {
        patchdeck::engine::node::space::free(self.path())
            .unwrap()
            .bytes
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// How a run on a full disk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    Refused,
    Done,
}

/// Copies the case's "before" tree onto `fs`, fills the file system until
/// about `free` bytes are left, runs the operation in a child and checks
/// it ended exactly before (with no intent, without any recovery, and an
/// error saying how much space was needed) or exactly after.
fn full_disk_trial(
    s: &Scenario,
    case: &Case,
    fs_: &Tmpfs,
    free: u64,
    env: &[(&str, String)],
) -> (Full, String) {
    let root = fs_.path().join("node");
    let filler = fs_.path().join("filler");
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_file(&filler);
    copy_tree(&case.before.root, &root);
    let have = fs_.free();
    if have > free {
        fs::write(&filler, vec![0u8; (have - free) as usize]).unwrap();
    }
    let left = fs_.free();
    let ran = run_child(case, &root, s, env);
    let ctx = format!("{} with {left} bytes free ({env:?})", case.op.arg());
    assert!(ran.status.success(), "{ctx}: the child crashed: {ran:?}");
    let outcome = match &ran.result {
        Some(Ok(_)) => Full::Done,
        Some(Err(m)) => {
            assert_eq!(raw_intent(&root), None, "{ctx}: intent left behind: {m}");
            assert!(
                m.contains(" needs ") && m.contains("bytes free"),
                "{ctx}: the error does not say how much space was needed: {m}"
            );
            Full::Refused
        }
        None => panic!("{ctx}: no result: {}", ran.stderr),
    };
    // What the operation left is checked with the space given back: the
    // check opens the store, and SQLite sizes a WAL database's shared-memory
    // index afresh on the first open, which a disk with no page free refuses
    // ("disk I/O error") whatever the operation did.
    let _ = fs::remove_file(&filler);
    let recovered = recover_and_check(case, &root).unwrap_or_else(|m| panic!("{ctx}: {m}"));
    let expected = match outcome {
        Full::Done => Outcome::After,
        Full::Refused => Outcome::Before,
    };
    assert_eq!(recovered, expected, "{ctx}: {:?}", ran.result);
    (outcome, format!("{ctx}: {:?}", ran.result))
}

const FULL_OPS: [Op; 5] = [
    Op::Stage,
    Op::Install,
    Op::InstallNoSave,
    Op::Rollback,
    Op::Commit,
];

/// With the up-front check switched off, every operation runs into the
/// full disk at each fill level, page by page, from nothing free until it
/// succeeds three times in a row: wherever the write fails (the intent, the
/// copy, the extraction, the database commit), the node is exactly as
/// before, no intent is left, and the error says how much space was needed.
#[test]
fn full_disk_at_every_fill_level_ends_exactly_before_with_the_space_needed() {
    let s = build_scenario();
    let off = [(fault::NO_SPACE_CHECK_ENV, "1".to_string())];
    for op in FULL_OPS {
        let case = case(&s, op);
        let fs_ = Tmpfs::mount(16 << 20);
        let mut refused = 0;
        let mut done_in_a_row = 0;
        let mut free = 0;
        while done_in_a_row < 3 {
            assert!(free < (4 << 20), "{} never succeeds", op.arg());
            match full_disk_trial(&s, &case, &fs_, free, &off).0 {
                Full::Refused => {
                    refused += 1;
                    done_in_a_row = 0;
                }
                Full::Done => done_in_a_row += 1,
            }
            free += 4096;
        }
        eprintln!(
            "{}: refused at {refused} fill levels, done from {} bytes free",
            op.arg(),
            free - 3 * 4096
        );
        if op != Op::Commit {
            assert!(refused > 0, "{}: the disk was never too full", op.arg());
        }
    }
}

/// With the check on, an operation that would not fit is refused before it
/// starts, saying how much it needs and how much is free, and only when
/// what is free is less than what it needs; with what it said it needs
/// free (and a little slack for the measurement), it succeeds. (Commit is
/// not checked up front: it frees space; the sweep above covers it.)
#[test]
fn full_disk_is_refused_up_front_with_the_space_needed() {
    let s = build_scenario();
    for op in [Op::Stage, Op::Install, Op::InstallNoSave, Op::Rollback] {
        let case = case(&s, op);
        let fs_ = Tmpfs::mount(16 << 20);
        let mut need = None;
        let mut done = 0;
        let mut free = 0;
        while free <= 1 << 20 {
            let (outcome, what) = full_disk_trial(&s, &case, &fs_, free, &[]);
            match outcome {
                Full::Refused => {
                    // "... it needs N bytes (...), and ROOT has F bytes free"
                    let number = |after: &str| -> Option<u64> {
                        let rest = what.split(after).nth(1)?;
                        rest.split_whitespace().next()?.parse().ok()
                    };
                    if let (Some(n), Some(f)) = (number("it needs "), number(" has ")) {
                        assert!(f < n, "refused although {f} bytes >= {n} needed: {what}");
                        need = Some(n);
                    }
                    if let Some(n) = need {
                        assert!(
                            free < n + 64 * 1024,
                            "refused with {free} bytes free, well over the {n} it needs: {what}"
                        );
                    }
                }
                Full::Done => done += 1,
            }
            free += 16 * 1024;
        }
        assert!(need.is_some(), "{} was never refused up front", op.arg());
        assert!(done > 0, "{} never succeeds", op.arg());
    }
}
