//! Node benchmark: install and rollback of a 100-file, 10 MiB patch over
//! existing files, side by side with copying the same files with `cp`
//! followed by `sync`; and install + rollback cycles per second for a
//! one-file patch. Run with `scripts/bench`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use patchdeck::engine::archive;
use patchdeck::engine::node::Node;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A pack directory with `files` payload files of `size` bytes each, laid
/// out as `opt/app/fNNN`.
fn patch_dir(dir: &Path, id: &str, files: usize, size: usize, seed: u8) {
    fs::create_dir_all(dir.join("files/opt/app")).expect("mkdir");
    fs::write(
        dir.join("PATCH.toml"),
        format!("title = \"bench\"\nproduct = \"app\"\nversion = \"1.1\"\nseverity = \"low\"\nreleased = 2026-01-01\nid = \"{id}\"\n"),
    )
    .expect("manifest");
    for i in 0..files {
        let data: Vec<u8> = (0..size)
            .map(|j| {
                (j as u8)
                    .wrapping_mul(31)
                    .wrapping_add(i as u8)
                    .wrapping_add(seed)
            })
            .collect();
        fs::write(dir.join(format!("files/opt/app/f{i:03}")), data).expect("payload");
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (rounds, cycles) = if measuring { (15, 200) } else { (1, 3) };
    let tmp = tempfile::tempdir_in(
        std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .expect("temp");
    let t = tmp.path();

    // 100 files of 100 KiB = 10 MiB (rounded to 10,240,000 bytes).
    let (files, size) = if measuring {
        (100, 10 * 1024 * 1024 / 100)
    } else {
        (10, 4096)
    };
    patch_dir(&t.join("src"), "BIG_1", files, size, 1);
    let patch = t.join("BIG_1.patch");
    archive::pack(&t.join("src"), &patch).expect("pack");

    let mut install = Vec::new();
    let mut rollback = Vec::new();
    let mut copy = Vec::new();
    for round in 0..rounds {
        let root = t.join(format!("node{round}"));
        // The node already has every file the patch replaces.
        patch_dir(&t.join(format!("old{round}")), "OLD", files, size, 2);
        fs::create_dir_all(root.join("opt")).expect("mkdir");
        fs::rename(
            t.join(format!("old{round}/files/opt/app")),
            root.join("opt/app"),
        )
        .expect("seed node");
        let mut node = Node::open(&root, "bench").expect("open");
        node.set_product("app", "1.0").expect("product");
        node.stage("BIG_1", &patch).expect("stage");
        Command::new("sync").status().expect("sync");

        let start = Instant::now();
        node.install("BIG_1", true).expect("install");
        install.push(start.elapsed());
        let start = Instant::now();
        node.rollback("BIG_1").expect("rollback");
        rollback.push(start.elapsed());

        // The same bytes copied with cp, then sync, into a fresh directory.
        let dest = t.join(format!("copy{round}"));
        Command::new("sync").status().expect("sync");
        let start = Instant::now();
        let ok = Command::new("cp")
            .arg("-r")
            .arg(t.join("src/files/opt/app"))
            .arg(&dest)
            .status()
            .expect("cp")
            .success()
            && Command::new("sync").status().expect("sync").success();
        copy.push(start.elapsed());
        assert!(ok, "cp and sync succeed");
        fs::remove_dir_all(&root).ok();
        fs::remove_dir_all(&dest).ok();
    }

    // Cycles per second, one small file.
    let small = t.join("small");
    fs::create_dir_all(small.join("files/etc")).expect("mkdir");
    fs::write(small.join("PATCH.toml"), "title = \"one\"\nproduct = \"app\"\nversion = \"1.2\"\nseverity = \"low\"\nreleased = 2026-01-01\n").expect("manifest");
    fs::write(small.join("files/etc/app.conf"), b"tuned=1\n").expect("payload");
    let one = t.join("ONE_1.patch");
    archive::pack(&small, &one).expect("pack");
    let root = t.join("cycles");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    fs::write(root.join("etc/app.conf"), b"tuned=0\n").expect("seed");
    let mut node = Node::open(&root, "bench").expect("open");
    node.set_product("app", "1.0").expect("product");
    node.stage("ONE_1", &one).expect("stage");
    let start = Instant::now();
    for _ in 0..cycles {
        node.install("ONE_1", true).expect("install");
        node.rollback("ONE_1").expect("rollback");
    }
    let per_cycle = start.elapsed() / cycles;

    let (i, r, c) = (median(install), median(rollback), median(copy));
    println!(
        "\npatchdeck node benchmark: {files} files, {} bytes in all, {rounds} rounds\n",
        files * size
    );
    println!("| measure | median | ratio to cp + sync |");
    println!("|---|---|---|");
    println!("| cp -r + sync of the same files | {} | 1.00 |", ms(c));
    println!(
        "| install (save originals, write, fsync, commit) | {} | {:.2} |",
        ms(i),
        i.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "| rollback (restore byte for byte, commit) | {} | {:.2} |",
        ms(r),
        r.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "\ninstall + rollback of a one-file patch: {} per cycle, {:.0} cycles/s ({cycles} cycles)",
        ms(per_cycle),
        1.0 / per_cycle.as_secs_f64()
    );
}
