//! Fleet benchmark: a 1 MiB patch replicated to 1,000 local nodes and
//! rolled out across them as one cluster of two groups, with no artificial
//! delay (no slow_ms, min_healthy_secs = 0).
//!
//! - Replication (`replicate::replicate`, then `sync`) side by side with
//!   copying the same file into 1,000 directories with `cp` from a shell
//!   loop, then `sync`. One `cp` per directory is how an operator would do
//!   it (a single `cp` cannot fan out to many directories); the loop's
//!   process starts are part of that baseline, so a one-process fan-out
//!   (`tee` into every target) is measured too and printed as a note.
//! - Rollout (`Runner` with the real `FleetEnv`: journal, drain, install,
//!   restore, health checks that verify every file, consistency) side by
//!   side with the same installs done directly (`Node::open` + `install`
//!   on each node, as many at a time as the cluster's `parallel`).
//!   Engine overhead per node = (rollout − direct) / nodes.
//!
//! Run with `scripts/bench` (or `cargo bench --bench fleet -- --nodes N
//! --rounds R`). Without `--bench` (as `cargo test --all-targets` runs it)
//! a 20-node, 64 KiB smoke pass checks that the benchmark still works.
//! BENCH_DIR chooses where it writes (default: the temp directory); the
//! full run needs about 3 GiB there.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use patchdeck::engine::archive;
use patchdeck::engine::console;
use patchdeck::engine::depot::Depot;
use patchdeck::engine::fleet::{self, Cluster, Datacenter, Fleet, Grouping, Organization, Role};
use patchdeck::engine::groups;
use patchdeck::engine::lab::Lab;
use patchdeck::engine::node::Node;
use patchdeck::engine::ops;
use patchdeck::engine::replicate;
use patchdeck::engine::rollout::fleet_env::FleetEnv;
use patchdeck::engine::rollout::{Ending, Event, Plan, Runner, StepState, journal};

const PATCH: &str = "BIG_1";
const PARALLEL: usize = 8;

#[path = "support/table.rs"]
mod table;
use table::{median, ratio, row, secs};

fn ms(seconds: f64) -> String {
    table::ms(seconds, 2)
}

fn sync() {
    let ok = Command::new("sync").status().expect("sync").success();
    assert!(ok, "sync");
}

/// A pack directory: PATCH.toml and one payload file of `size` bytes.
fn patch_dir(dir: &Path, size: usize) {
    fs::create_dir_all(dir.join("files/opt/app")).expect("mkdir");
    fs::write(
        dir.join("PATCH.toml"),
        "title = \"fleet bench\"\nproduct = \"app\"\nversion = \"1.1\"\nseverity = \"low\"\nreleased = 2026-01-01\n",
    )
    .expect("manifest");
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    fs::write(dir.join("files/opt/app/blob.bin"), data).expect("payload");
}

/// One data center, one cluster `big` of `n` single-site members `1_1`..,
/// split in two groups, `PARALLEL` at a time.
fn fleet_of(n: usize) -> Fleet {
    Fleet {
        datacenters: vec![Datacenter {
            id: "dc1".into(),
            name: "bench".into(),
        }],
        organizations: vec![Organization {
            id: "org".into(),
            name: "bench".into(),
        }],
        clusters: vec![Cluster {
            id: "big".into(),
            groups: Some(Grouping::Count(2)),
            parallel: PARALLEL,
            health_deadline_secs: 60,
            min_healthy_secs: 0,
            before: vec![],
            after: vec![],
            drain: None,
            restore: None,
            on_failure: fleet::OnFailure::Halt,
            windows: Vec::new(),
        }],
        nodes: (1..=n)
            .map(|i| fleet::Node {
                id: format!("n1_{i}"),
                dc: "dc1".into(),
                org: "org".into(),
                site: "1".into(),
                cluster: Some("big".into()),
                member: Some(format!("1_{i}")),
                role: Role::Primary,
                root: Some(format!("nodes/n1_{i}")),
                command: None,
                ssh: None,
                remote_root: None,
                sudo: None,
                offline: false,
                products: vec!["app".into()],
                demo: Default::default(),
            })
            .collect(),
        ssh: Default::default(),
    }
}

/// Runs `f` on every node root, `PARALLEL` at a time.
fn each_node(lab: &Lab, fleet: &Fleet, f: impl Fn(&mut Node) + Sync) {
    let nodes: Vec<&fleet::Node> = fleet.nodes.iter().collect();
    ops::for_each_node(&nodes, PARALLEL, |n| {
        let root = lab.resolve_root(n.root.as_deref().expect("root"));
        let mut node = Node::open(&root, &n.id).expect("open node");
        f(&mut node);
    });
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (mut nodes, mut size, mut rounds) = if measuring {
        (1000usize, 1usize << 20, 3usize)
    } else {
        (20, 64 * 1024, 1)
    };
    let mut profile = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || {
            args.next()
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--nodes" => nodes = num(),
            "--rounds" => rounds = num(),
            "--kib" => size = num() * 1024,
            "--profile" => profile = true,
            _ => {} // cargo passes --bench
        }
    }
    let tmp = tempfile::tempdir_in(
        std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .expect("temp");
    let t = tmp.path();

    // The lab: a depot with the patch, fleet.toml, node stores.
    let setup = Instant::now();
    let lab = Lab::new(t.join("lab"));
    fs::create_dir_all(lab.depot_dir()).expect("depot");
    fs::write(lab.depot_dir().join("categories.toml"), "").expect("categories");
    patch_dir(&t.join("src"), size);
    let patch_file = lab.depot_dir().join(format!("{PATCH}.patch"));
    archive::pack(&t.join("src"), &patch_file).expect("pack");
    let fleet = fleet_of(nodes);
    // A node's root is its machine: it exists before patchdeck reaches it.
    for n in &fleet.nodes {
        fs::create_dir_all(lab.resolve_root(n.root.as_deref().expect("root"))).expect("node root");
    }
    fs::write(lab.fleet_path(), fleet.to_toml()).expect("fleet.toml");
    let fleet = Fleet::load(&lab.fleet_path()).expect("fleet loads");
    each_node(&lab, &fleet, |n| {
        n.set_product("app", "1.0").expect("product")
    });
    let depot = Depot::open(&lab.depot_dir()).expect("depot opens");
    assert!(depot.get(PATCH).is_some(), "the patch is in the depot");
    let targets: Vec<&fleet::Node> = fleet.nodes.iter().collect();
    let patches = vec![PATCH.to_string()];
    let bytes = fs::metadata(&patch_file).expect("patch").len();
    eprintln!(
        "set up {nodes} nodes in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    // Targets for the copies: one directory per node, listed in `list`;
    // `files` lists the copy each directory gets.
    let list = t.join("dirs.txt");
    let files = t.join("files.txt");
    let copy_dirs = |round: usize, kind: &str| -> PathBuf {
        let base = t.join(format!("{kind}{round}"));
        let (mut dirs, mut copies) = (String::new(), String::new());
        for i in 1..=nodes {
            let d = base.join(format!("n1_{i}"));
            fs::create_dir_all(&d).expect("mkdir");
            dirs.push_str(&format!("{}\n", d.display()));
            copies.push_str(&format!("{}\n", d.join(format!("{PATCH}.patch")).display()));
        }
        fs::write(&list, dirs).expect("list");
        fs::write(&files, copies).expect("list");
        base
    };

    let mut replication = Vec::new();
    let mut cp_loop = Vec::new();
    let mut tee = Vec::new();
    for round in 0..rounds {
        // Replication from scratch: no node has the patch.
        each_node(&lab, &fleet, |n| {
            n.remove(PATCH).ok();
        });
        console::open(&lab)
            .and_then(|c| c.execute("DELETE FROM replication", []))
            .expect("reset replication");
        sync();
        let start = Instant::now();
        let progress = replicate::replicate(
            &lab,
            &depot,
            &patches,
            &targets,
            replicate::Options::default(),
            &|_| {},
        )
        .expect("replicate");
        sync();
        replication.push(start.elapsed());
        assert_eq!(progress[0].done, nodes, "every node verified");

        // cp of the same file into as many directories, one cp each.
        let base = copy_dirs(round, "cp");
        sync();
        let start = Instant::now();
        let ok = Command::new("sh")
            .arg("-c")
            .arg("while read -r d; do cp \"$1\" \"$d/\" || exit 1; done < \"$2\"; sync")
            .arg("sh")
            .arg(&patch_file)
            .arg(&list)
            .status()
            .expect("cp loop")
            .success();
        cp_loop.push(start.elapsed());
        assert!(ok, "cp loop");
        fs::remove_dir_all(&base).ok();

        // One process writing every copy: tee into all targets.
        let base = copy_dirs(round, "tee");
        sync();
        let start = Instant::now();
        let ok = Command::new("sh")
            .arg("-c")
            .arg("xargs -a \"$2\" tee < \"$1\" > /dev/null && sync")
            .arg("sh")
            .arg(&patch_file)
            .arg(&files)
            .status()
            .expect("tee")
            .success();
        tee.push(start.elapsed());
        assert!(ok, "tee");
        let copied = fs::metadata(base.join(format!("n1_{nodes}/{PATCH}.patch")))
            .map(|m| m.len())
            .unwrap_or(0);
        assert_eq!(copied, bytes, "tee wrote every copy");
        fs::remove_dir_all(&base).ok();
    }

    // Rollouts: every node has the patch staged now.
    let partition = groups::partition(&fleet, "big", None).expect("partition");
    let cluster = fleet.clusters[0].clone();
    let mut rollout = Vec::new();
    let mut direct = Vec::new();
    let rollback_all = || {
        each_node(&lab, &fleet, |n| {
            n.rollback(PATCH).expect("rollback");
            n.set_service(patchdeck::engine::node::Service::Up)
                .expect("service up");
        });
    };
    for _ in 0..rounds {
        let plan = Plan::new(
            &cluster,
            &partition,
            &patches,
            false,
            fleet::OnFailure::Halt,
        );
        let conn = console::open(&lab).expect("console");
        let id = journal::create(&conn, &plan)
            .expect("create")
            .expect("cluster free");
        let conn = Mutex::new(conn);
        let env = FleetEnv::new(&lab, &fleet, id);
        let runner = Runner {
            conn: &conn,
            env: &env,
            events: &|_: &Event| {},
            poll: Duration::from_millis(10),
        };
        sync();
        let start = Instant::now();
        let ending = runner.run(id).expect("rollout runs");
        rollout.push(start.elapsed());
        assert_eq!(ending, Ending::Done);
        if profile {
            print_profile(&conn, id);
        }
        rollback_all();

        sync();
        let start = Instant::now();
        each_node(&lab, &fleet, |n| {
            n.install(PATCH, true).expect("install");
        });
        direct.push(start.elapsed());
        rollback_all();
    }

    let (r, c, tee) = (median(replication), median(cp_loop), median(tee));
    let (ro, d) = (median(rollout), median(direct));
    let n = nodes as f64;
    let overhead = (ro.as_secs_f64() - d.as_secs_f64()) / n;
    println!(
        "\npatchdeck fleet benchmark: {nodes} nodes, one cluster of 2 groups, {PARALLEL} at a time, \
         a {:.0} KiB patch, {rounds} rounds\n",
        bytes as f64 / 1024.0
    );
    table::head();
    row(
        "`cp` into each directory (shell loop) + sync",
        c,
        nodes,
        2,
        Some(1.0),
    );
    row(
        "replicate (stage + verify on every node) + sync",
        r,
        nodes,
        2,
        Some(ratio(r, c)),
    );
    row(
        &format!("direct installs (`Node::install`, {PARALLEL} at a time)"),
        d,
        nodes,
        2,
        Some(1.0),
    );
    row(
        "rollout (journal, drain, install, restore, health, consistency)",
        ro,
        nodes,
        2,
        Some(ratio(ro, d)),
    );
    println!(
        "\nreplication / cp loop: {:.2} (target ≤ 1.5); rollout engine overhead: {} per node (target ≤ 5 ms)",
        r.as_secs_f64() / c.as_secs_f64(),
        ms(overhead)
    );
    println!(
        "one-process fan-out (`tee` into every directory) + sync: {} ({:.2} of the cp loop)",
        secs(tee),
        tee.as_secs_f64() / c.as_secs_f64()
    );
}

/// Wall time of each batch of steps (one kind, one group), from the
/// journal's start and end times.
fn print_profile(conn: &Mutex<rusqlite::Connection>, id: i64) {
    let c = conn.lock().expect("db");
    let mut stmt = c
        .prepare(
            "SELECT kind, grp, COUNT(*),
                (julianday(MAX(ended_at)) - julianday(MIN(started_at))) * 86400.0
             FROM rollout_step WHERE rollout=?1 GROUP BY kind, grp ORDER BY MIN(seq)",
        )
        .expect("profile query");
    let rows = stmt
        .query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
            ))
        })
        .expect("profile rows");
    eprintln!("rollout {id}: wall time per batch");
    for row in rows.flatten() {
        eprintln!(
            "  {:<12} {:<2} {:>5} steps {:>8.3} s",
            row.0, row.1, row.2, row.3
        );
    }
    // What journaling alone costs: every step marked running, then done.
    let steps: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM rollout_step WHERE rollout=?1",
            [id],
            |r| r.get(0),
        )
        .expect("count");
    let start = Instant::now();
    for seq in 1..=steps as usize {
        journal::set_step(&c, id, seq, StepState::Running, "").expect("journal");
        journal::set_step(&c, id, seq, StepState::Done, "").expect("journal");
    }
    eprintln!(
        "  journaling {steps} steps again (running, done): {:.3} s",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    for _ in 0..10 {
        journal::load(&c, id).expect("load");
    }
    eprintln!(
        "  loading the rollout: {:.1} ms",
        start.elapsed().as_secs_f64() * 100.0
    );
}
