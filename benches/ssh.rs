//! ssh scale benchmark: one real sshd on 127.0.0.1 (its own configuration,
//! `MaxStartups`/`MaxSessions` raised as a fleet of this size needs)
//! serving 200 ssh nodes, each with its own root directory, reached with
//! the system's ssh exactly as a fleet of remote appliances would be.
//!
//! - Replication of a 1 MiB patch to every node (`replicate::replicate`,
//!   the engine's own parallelism), side by side in the same run with a
//!   shell loop of `scp` of the same file into each node root through the
//!   same sshd, sequential and with the same parallelism (`xargs -P`).
//! - A rollout over a 200-member two-group cluster of those nodes (the real
//!   runner and `FleetEnv`), against the same installs done directly on
//!   the roots: the difference per member is what ssh and the rollout add.
//! - `patchdeck list` over the 200 nodes with `[ssh] multiplex` on (a warm
//!   master connection) and off, and a parallel loop of `ssh HOST true`.
//!
//! Run with `scripts/bench ssh` (or `cargo bench --bench ssh -- --nodes N
//! --rounds R`). Without `--bench` (as `cargo test --all-targets` runs it)
//! a 4-node smoke pass checks that the benchmark still works. BENCH_DIR
//! chooses where it writes (default: the temp directory).

#[path = "../tests/common/sshd.rs"]
#[allow(dead_code)]
mod sshd;
#[path = "support/table.rs"]
mod table;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use patchdeck::engine::archive;
use patchdeck::engine::console;
use patchdeck::engine::depot::Depot;
use patchdeck::engine::fleet::{self, Fleet};
use patchdeck::engine::groups;
use patchdeck::engine::lab::Lab;
use patchdeck::engine::node::{Node, Service};
use patchdeck::engine::ops;
use patchdeck::engine::replicate;
use patchdeck::engine::rollout::fleet_env::FleetEnv;
use patchdeck::engine::rollout::{Ending, Plan, Runner, journal};

const PATCH: &str = "BIG_1";
const EXE: &str = env!("CARGO_BIN_EXE_patchdeck");

use table::{median, ratio, row, secs};

/// A pack directory: PATCH.toml and one payload file of `size` bytes.
fn patch_dir(dir: &Path, size: usize) {
    fs::create_dir_all(dir.join("files/opt/app")).expect("mkdir");
    fs::write(
        dir.join("PATCH.toml"),
        "title = \"ssh bench\"\nproduct = \"app\"\nversion = \"1.1\"\nseverity = \"low\"\nreleased = 2026-01-01\n",
    )
    .expect("manifest");
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    fs::write(dir.join("files/opt/app/blob.bin"), data).expect("payload");
}

fn fleet_text(
    sshd: &sshd::Sshd,
    roots: &Path,
    nodes: usize,
    parallel: usize,
    multiplex: bool,
) -> String {
    let mut t = format!(
        "[[datacenter]]\nid = \"dc1\"\n\n[[organization]]\nid = \"org\"\n\n\
         [[cluster]]\nid = \"big\"\ngroups = 2\nparallel = {parallel}\nhealth_deadline_secs = 120\non_failure = \"halt\"\n\n{}",
        sshd.ssh_table(
            Path::new(EXE),
            &format!("multiplex = {multiplex}\nconnect_timeout_secs = 60\n")
        )
    );
    for i in 1..=nodes {
        t.push_str(&format!(
            "\n[[node]]\nid = \"n1_{i}\"\ndc = \"dc1\"\norg = \"org\"\nsite = \"1\"\ncluster = \"big\"\nmember = \"1_{i}\"\nssh = \"{}\"\nremote_root = \"{}\"\n",
            sshd.dest(),
            roots.join(format!("n1_{i}")).display()
        ));
    }
    t
}

/// Runs `script` with `sh -c`, `args` as $1.., and its wall time.
fn timed_sh(script: &str, args: &[&str]) -> Duration {
    let start = Instant::now();
    let ok = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .status()
        .expect("sh")
        .success();
    let took = start.elapsed();
    assert!(ok, "{script} failed");
    took
}

fn list_once(lab: &Lab) -> Duration {
    let start = Instant::now();
    let out = Command::new(EXE)
        .args(["list", "--json", "--lab"])
        .arg(&lab.root)
        .output()
        .expect("list");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (mut nodes, mut rounds) = if measuring {
        (200usize, 3usize)
    } else {
        (4, 1)
    };
    let mut parallel = ops::DEFAULT_PARALLEL;
    let mut only_list = false;
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
            "--parallel" => parallel = num(),
            "--list-only" => only_list = true,
            _ => {} // cargo passes --bench
        }
    }
    let tmp = tempfile::tempdir_in(
        std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .expect("temp");
    let t = tmp.path();
    let setup = Instant::now();
    let sshd = sshd::Sshd::start(t);
    let roots = t.join("roots");
    let lab = Lab::new(t.join("lab"));
    fs::create_dir_all(lab.depot_dir()).expect("depot");
    fs::write(lab.depot_dir().join("categories.toml"), "").expect("categories");
    patch_dir(&t.join("src"), 1 << 20);
    let patch_file = lab.depot_dir().join(format!("{PATCH}.patch"));
    archive::pack(&t.join("src"), &patch_file).expect("pack");
    for i in 1..=nodes {
        let root = roots.join(format!("n1_{i}"));
        fs::create_dir_all(&root).expect("root");
        Node::open(&root, &format!("n1_{i}"))
            .and_then(|mut n| n.set_product("app", "1.0"))
            .expect("node");
    }
    let root_list = t.join("roots.txt");
    let lines: String = (1..=nodes)
        .map(|i| format!("{}\n", roots.join(format!("n1_{i}")).display()))
        .collect();
    fs::write(&root_list, lines).expect("roots.txt");
    fs::write(
        lab.fleet_path(),
        fleet_text(&sshd, &roots, nodes, parallel, true),
    )
    .expect("fleet");
    let fleet = Fleet::load(&lab.fleet_path()).expect("fleet loads");
    let depot = Depot::open(&lab.depot_dir()).expect("depot opens");
    let targets: Vec<&fleet::Node> = fleet.nodes.iter().collect();
    let patches = vec![PATCH.to_string()];
    let each_root = |f: &(dyn Fn(&mut Node) + Sync)| {
        ops::for_each_node(&targets, parallel, |n| {
            let mut node = Node::open(&roots.join(&n.id), &n.id).expect("open node");
            f(&mut node);
        });
    };
    eprintln!(
        "set up sshd on port {} and {nodes} nodes in {:.1} s",
        sshd.port,
        setup.elapsed().as_secs_f64()
    );

    // The scp baselines: the same file into each node root, through the
    // same sshd, one scp (one connection) per node.
    let cfg = sshd.ssh_config.display().to_string();
    let port = sshd.port.to_string();
    let dest = format!("{}@127.0.0.1", sshd.user);
    let scp = "scp -q -o BatchMode=yes -F \"$1\" -P \"$2\" \"$3\"";
    let seq_script =
        format!("while read -r d; do {scp} \"$4:$d/scp-copy.patch\" || exit 1; done < \"$5\"");
    let par_script =
        format!("xargs -P {parallel} -I {{}} {scp} \"$4:{{}}/scp-copy.patch\" < \"$5\"");
    let patch_arg = patch_file.display().to_string();
    let list_arg = root_list.display().to_string();
    let sh_args = [
        cfg.as_str(),
        port.as_str(),
        patch_arg.as_str(),
        dest.as_str(),
        list_arg.as_str(),
    ];

    if only_list {
        list_table(&lab, &sshd, &roots, nodes, parallel, rounds, &sh_args);
        return;
    }
    let mut replication = Vec::new();
    let mut scp_seq = Vec::new();
    let mut scp_par = Vec::new();
    for _ in 0..rounds {
        each_root(&|n: &mut Node| {
            n.remove(PATCH).ok();
        });
        console::open(&lab)
            .and_then(|c| c.execute("DELETE FROM replication", []))
            .expect("reset replication");
        let start = Instant::now();
        let progress = replicate::replicate(
            &lab,
            &depot,
            &patches,
            &targets,
            replicate::Options {
                parallel,
                ..Default::default()
            },
            &|_| {},
        )
        .expect("replicate");
        replication.push(start.elapsed());
        assert_eq!(progress[0].done, nodes, "every node verified: {progress:?}");
        scp_seq.push(timed_sh(&seq_script, &sh_args));
        scp_par.push(timed_sh(&par_script, &sh_args));
        eprintln!(
            "round {}: replicate {}, scp loop {}, scp xargs -P {parallel} {}",
            replication.len(),
            secs(replication[replication.len() - 1]),
            secs(scp_seq[scp_seq.len() - 1]),
            secs(scp_par[scp_par.len() - 1])
        );
    }
    let copied = fs::metadata(roots.join(format!("n1_{nodes}/scp-copy.patch")))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(
        copied,
        fs::metadata(&patch_file).expect("patch").len(),
        "scp copied"
    );

    // Rollout over ssh, then the same installs directly on the roots.
    let partition = groups::partition(&fleet, "big", None).expect("partition");
    let cluster = fleet.clusters[0].clone();
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
    let runner = Runner::new(&conn, &env).poll(Duration::from_millis(10));
    let start = Instant::now();
    let ending = runner.run(id).expect("rollout runs");
    let rollout = start.elapsed();
    assert_eq!(ending, Ending::Done);
    drop(env);
    each_root(&|n: &mut Node| {
        n.rollback(PATCH).expect("rollback");
        n.set_service(Service::Up).expect("service up");
    });
    let start = Instant::now();
    each_root(&|n: &mut Node| {
        n.install(PATCH, true).expect("install");
    });
    let direct = start.elapsed();
    eprintln!(
        "rollout {}, direct installs {}",
        secs(rollout),
        secs(direct)
    );

    let (lm, ln, st) = list_measures(&lab, &sshd, &roots, nodes, parallel, rounds, &sh_args);
    let (r, s, p) = (median(replication), median(scp_seq), median(scp_par));
    let n = nodes as f64;
    println!(
        "\npatchdeck ssh benchmark: {nodes} ssh nodes on one sshd (127.0.0.1), a 1 MiB patch, \
         {parallel} at a time, {rounds} rounds (medians)\n"
    );
    table::head();
    row(
        "scp into each node root, sequential loop",
        s,
        nodes,
        1,
        Some(1.0),
    );
    row(
        &format!("scp into each node root, `xargs -P {parallel}`"),
        p,
        nodes,
        1,
        Some(ratio(p, s)),
    );
    row(
        "replicate (upload, stage, verify on every node)",
        r,
        nodes,
        1,
        Some(ratio(r, s)),
    );
    list_rows(parallel, nodes, (lm, ln, st));
    row(
        &format!("direct installs on the roots ({parallel} at a time)"),
        direct,
        nodes,
        1,
        None,
    );
    row(
        "rollout over ssh (2 groups; drain, install, restore, health)",
        rollout,
        nodes,
        1,
        None,
    );
    println!(
        "\nreplication / sequential scp: {:.2} (target ≤ 1.0); replication / xargs -P {parallel} scp: {:.2} (target ≤ 1.5)",
        ratio(r, s),
        ratio(r, p)
    );
    println!(
        "list without / with multiplexing: {:.2}× (target ≥ 3); rollout overhead over ssh: {} per member",
        ratio(ln, lm),
        table::ms((rollout.as_secs_f64() - direct.as_secs_f64()) / n, 1)
    );
}

/// `list` with a warm master connection, then without multiplexing, and a
/// parallel `ssh HOST true` loop: medians.
fn list_measures(
    lab: &Lab,
    sshd: &sshd::Sshd,
    roots: &Path,
    nodes: usize,
    parallel: usize,
    rounds: usize,
    sh_args: &[&str],
) -> (Duration, Duration, Duration) {
    // list: warm master connection, then no multiplexing; and the
    // parallel `ssh HOST true` loop.
    list_once(lab);
    let with_mux: Vec<Duration> = (0..rounds).map(|_| list_once(lab)).collect();
    fs::write(
        lab.fleet_path(),
        fleet_text(sshd, roots, nodes, parallel, false),
    )
    .expect("fleet");
    let without_mux: Vec<Duration> = (0..rounds).map(|_| list_once(lab)).collect();
    let true_script = format!(
        "xargs -P {parallel} -I {{}} ssh -T -o BatchMode=yes -F \"$1\" -p \"$2\" \"$4\" true < \"$5\""
    );
    let ssh_true: Vec<Duration> = (0..rounds)
        .map(|_| timed_sh(&true_script, sh_args))
        .collect();

    // Back to the fleet as it was.
    fs::write(
        lab.fleet_path(),
        fleet_text(sshd, roots, nodes, parallel, true),
    )
    .expect("fleet");
    (median(with_mux), median(without_mux), median(ssh_true))
}

/// The rows of `list_measures`' (with, without multiplexing, `ssh true`).
fn list_rows(parallel: usize, nodes: usize, (lm, ln, st): (Duration, Duration, Duration)) {
    row(
        &format!("`ssh HOST true`, `xargs -P {parallel}`, no multiplexing"),
        st,
        nodes,
        1,
        None,
    );
    row("`patchdeck list`, multiplex off", ln, nodes, 1, Some(1.0));
    row(
        "`patchdeck list`, multiplex on (warm master)",
        lm,
        nodes,
        1,
        Some(ratio(lm, ln)),
    );
}

/// `--list-only`: the list rows alone.
fn list_table(
    lab: &Lab,
    sshd: &sshd::Sshd,
    roots: &Path,
    nodes: usize,
    parallel: usize,
    rounds: usize,
    sh_args: &[&str],
) {
    let (lm, ln, st) = list_measures(lab, sshd, roots, nodes, parallel, rounds, sh_args);
    println!(
        "\npatchdeck ssh benchmark (list only): {nodes} ssh nodes, {parallel} at a time, {rounds} rounds (medians)\n"
    );
    table::head();
    list_rows(parallel, nodes, (lm, ln, st));
    println!(
        "\nlist without / with multiplexing: {:.2}× (target ≥ 3)",
        ratio(ln, lm)
    );
}
