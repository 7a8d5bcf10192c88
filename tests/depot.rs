//! The depot and the patch file: pack round trip, every kind of broken file
//! named while the rest still loads, the cache index, category inheritance.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use common::{good, manifest, sha, write_patch, write_raw};
use patchdeck::engine::archive::{self, PackError};
use patchdeck::engine::depot::Depot;

#[test]
fn pack_round_trip_keeps_bytes_modes_and_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("files/opt/gw/bin")).unwrap();
    fs::write(src.join("PATCH.toml"), manifest("GW_1", "")).unwrap();
    fs::write(src.join("files/opt/gw/bin/gw"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(
        src.join("files/opt/gw/bin/gw"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::write(src.join("files/opt/gw/README"), vec![7u8; 100_000]).unwrap();

    let out = tmp.path().join("GW_1.patch");
    let packed = archive::pack(&src, &out).unwrap();
    let read = archive::read_patch(&out).unwrap();
    assert_eq!(packed, read);
    let paths: Vec<&str> = read.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["opt/gw/README", "opt/gw/bin/gw"]);
    let gw = &read.files[1];
    assert_eq!(gw.mode, 0o755, "setuid bit is never carried");
    assert_eq!(gw.sha256, sha(b"#!/bin/sh\necho hi\n"));
    assert_eq!(read.files[0].size, 100_000);

    // The archive carries the exact bytes.
    let mut ar = tar::Archive::new(fs::File::open(&out).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names[0], "PATCH.toml");

    // Packing again gives identical bytes.
    let again = tmp.path().join("again");
    fs::create_dir(&again).unwrap();
    archive::pack(&src, &again.join("GW_1.patch")).unwrap();
    assert_eq!(
        fs::read(&out).unwrap(),
        fs::read(again.join("GW_1.patch")).unwrap()
    );
}

fn pack_refuses(setup: impl FnOnce(&std::path::Path), expect: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("files")).unwrap();
    fs::write(src.join("PATCH.toml"), manifest("GW_1", "")).unwrap();
    setup(&src.join("files"));
    let out = tmp.path().join("GW_1.patch");
    match archive::pack(&src, &out) {
        Err(PackError::Input { message, .. }) => assert!(message.contains(expect), "{message}"),
        other => panic!("expected refusal containing {expect:?}, got {other:?}"),
    }
    assert!(!out.exists(), "nothing written on refusal");
}

#[test]
fn pack_refuses_links_and_special_files() {
    pack_refuses(
        |f| symlink("/etc/passwd", f.join("passwd")).unwrap(),
        "symbolic link",
    );
    pack_refuses(
        |f| {
            fs::write(f.join("a"), b"x").unwrap();
            fs::hard_link(f.join("a"), f.join("b")).unwrap();
        },
        "hard link",
    );
    pack_refuses(
        |f| {
            let status = std::process::Command::new("mkfifo")
                .arg(f.join("pipe"))
                .status()
                .expect("mkfifo runs");
            assert!(status.success());
        },
        "device, socket or pipe",
    );
}

#[test]
fn pack_refuses_an_output_name_that_is_not_the_id() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("PATCH.toml"), manifest("GW_1", "")).unwrap();
    let err = archive::pack(&src, &tmp.path().join("OTHER.patch")).unwrap_err();
    assert!(err.to_string().contains("GW_1.patch"), "{err}");
}

/// Each broken kind: (file id, how to write it, words the error must hold,
/// expected line).
#[test]
fn each_broken_kind_is_named_and_the_rest_still_load() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for id in ["OK_1", "OK_2", "OK_3"] {
        good(d, id, "");
    }
    let mut expected: Vec<(&str, &str, Option<usize>)> = Vec::new();

    write_raw(d, "BAD_TOML", "title = \"x\"\nproduct = gateway\n", &[]);
    expected.push(("BAD_TOML.patch", "string", Some(2)));

    write_raw(
        d,
        "NO_FIELD",
        "title = \"x\"\nproduct = \"gw\"\nseverity = \"low\"\nreleased = 2026-01-01\n",
        &[],
    );
    expected.push(("NO_FIELD.patch", "version", None));

    write_patch(d, "WRONG_ID", &manifest("OTHER_ID", ""), &[]);
    expected.push(("WRONG_ID.patch", "does not match the file name", None));

    good(d, "ok_1", "");
    expected.push(("ok_1.patch", "duplicate id", None));

    good(d, "CYC_A", "supersedes = [\"CYC_B\"]");
    good(d, "CYC_B", "supersedes = [\"CYC_A\"]");
    expected.push(("CYC_A.patch", "supersedes cycle", None));
    expected.push(("CYC_B.patch", "supersedes cycle", None));

    let text = format!(
        "{}\n[[files]]\npath = \"a\"\nsha256 = \"{}\"\nsize = 3\n",
        manifest("BAD_SUM", ""),
        sha(b"abc")
    );
    write_raw(d, "BAD_SUM", &text, &[("files/a".into(), b"abd".to_vec())]);
    expected.push(("BAD_SUM.patch", "sha256", None));

    let text = format!(
        "{}\n[[files]]\npath = \"a\"\nsha256 = \"{}\"\nsize = 2\n",
        manifest("BAD_SIZE", ""),
        sha(b"ab")
    );
    write_raw(d, "BAD_SIZE", &text, &[("files/a".into(), b"abc".to_vec())]);
    expected.push((
        "BAD_SIZE.patch",
        "declared 2 bytes in PATCH.toml, found 3 in the archive",
        None,
    ));

    write_raw(
        d,
        "EXTRA",
        &manifest("EXTRA", ""),
        &[("files/sneaky".into(), b"x".to_vec())],
    );
    expected.push(("EXTRA.patch", "not listed", None));

    let text = format!(
        "{}\n[[files]]\npath = \"gone\"\nsha256 = \"{}\"\nsize = 1\n",
        manifest("MISSING", ""),
        sha(b"x")
    );
    write_raw(d, "MISSING", &text, &[]);
    expected.push(("MISSING.patch", "missing from the archive", None));

    write_raw(
        d,
        "ESCAPE",
        &manifest("ESCAPE", ""),
        &[("etc/passwd".into(), b"x".to_vec())],
    );
    expected.push(("ESCAPE.patch", "outside files/", None));

    fs::write(
        d.join("NOT_TAR.patch"),
        b"this is not an archive at all, not even close",
    )
    .unwrap();
    expected.push(("NOT_TAR.patch", "", None));

    let depot = Depot::open(d).unwrap();
    let ids: Vec<&str> = depot.patches.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        ["OK_1", "OK_2", "OK_3"],
        "every good patch still loads"
    );
    for (file, words, line) in &expected {
        let b = depot
            .broken
            .iter()
            .find(|b| b.file == *file)
            .unwrap_or_else(|| panic!("{file} not reported: {:?}", depot.broken));
        assert!(b.message.contains(words), "{file}: {b}");
        if line.is_some() {
            assert_eq!(b.line, *line, "{file}: {b}");
        }
    }
    assert_eq!(depot.broken.len(), expected.len(), "{:?}", depot.broken);
}

#[test]
fn reopening_uses_the_index_and_rereads_only_changed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for i in 0..20 {
        good(d, &format!("P_{i:02}"), "");
    }
    let first = Depot::open(d).unwrap();
    assert_eq!((first.stats.read, first.stats.from_index), (20, 0));
    let second = Depot::open(d).unwrap();
    assert_eq!((second.stats.read, second.stats.from_index), (0, 20));
    assert_eq!(first.patches, second.patches);

    // Change one file (size changes) and remove another.
    write_patch(
        d,
        "P_03",
        &manifest("P_03", "hot = true"),
        &[("x", b"changed payload")],
    );
    fs::remove_file(d.join("P_04.patch")).unwrap();
    let third = Depot::open(d).unwrap();
    assert_eq!((third.stats.read, third.stats.from_index), (1, 18));
    assert!(third.get("P_03").unwrap().manifest.hot);
    assert!(third.get("P_04").is_none());

    // A broken file is remembered as broken, not re-read each time.
    fs::write(d.join("JUNK.patch"), b"junk").unwrap();
    Depot::open(d).unwrap();
    let fifth = Depot::open(d).unwrap();
    assert_eq!(fifth.stats.read, 0);
    assert_eq!(fifth.broken.len(), 1);
}

#[test]
fn superseding_patches_inherit_categories_transitively() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    good(
        d,
        "P1",
        "categories = [\"security\", \"special_release\", \"manual_dependencies\"]",
    );
    good(
        d,
        "P2",
        "categories = [\"defect_repair\"]\nsupersedes = [\"P1\"]",
    );
    good(d, "P3", "supersedes = [\"P2\", \"GONE\"]");
    let depot = Depot::open(d).unwrap();
    assert_eq!(
        depot.get("P3").unwrap().categories,
        ["defect_repair", "security"]
    );
    assert_eq!(
        depot.get("P2").unwrap().categories,
        ["defect_repair", "security"]
    );
    assert_eq!(depot.get("P1").unwrap().superseded_by, ["P2"]);
    let tops: Vec<&str> = depot
        .superseders("P1")
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(tops, ["P2", "P3"]);
}

#[test]
fn bad_categories_file_is_reported_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    good(tmp.path(), "P1", "");
    fs::write(
        tmp.path().join("categories.toml"),
        "security = \"ok\"\nbroken = 12\n",
    )
    .unwrap();
    let depot = Depot::open(tmp.path()).unwrap();
    assert_eq!(depot.patches.len(), 1);
    let b = &depot.broken[0];
    assert_eq!((b.file.as_str(), b.line), ("categories.toml", Some(2)));
}

#[test]
fn add_verifies_and_copies_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let depot_dir = tmp.path().join("depot");
    let incoming = tmp.path().join("in");
    fs::create_dir_all(&depot_dir).unwrap();
    fs::create_dir_all(&incoming).unwrap();
    let p = good(&incoming, "NEW_1", "");
    assert_eq!(
        Depot::add(&depot_dir, std::slice::from_ref(&p)).unwrap(),
        ["NEW_1"]
    );
    assert_eq!(
        fs::read(&p).unwrap(),
        fs::read(depot_dir.join("NEW_1.patch")).unwrap()
    );
    // The same file again is fine and changes nothing.
    assert!(
        Depot::add(&depot_dir, std::slice::from_ref(&p))
            .unwrap()
            .is_empty()
    );
    // A different file under the same id is refused.
    let other = tmp.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let q = good(&other, "NEW_1", "hot = true");
    assert!(
        Depot::add(&depot_dir, &[q])
            .unwrap_err()
            .to_string()
            .contains("already has a different")
    );
    // A broken file is refused and nothing lands in the depot.
    let bad = write_raw(&incoming, "BAD_1", "nonsense", &[]);
    assert!(Depot::add(&depot_dir, &[bad]).is_err());
    // (The cache index, written when add reads the depot, and the lock
    // file writers take turns on are not patches.)
    let names: Vec<_> = fs::read_dir(&depot_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| {
            let n = n.to_string_lossy();
            !n.starts_with(".patchdeck-index") && n != patchdeck::engine::depot::LOCK_FILE
        })
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

// ----- one archive reader, whatever wrote the archive -----

/// Runs an archiver the suite needs; scripts/test installs them.
fn archiver(program: &str, args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed by this test (scripts/test installs it: tar, libarchive-tools' bsdtar, python3): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Patches written by GNU tar, bsdtar and Python's tarfile, with and
/// without `./` before every name, are read the same by `depot add`,
/// `depot check`, staging and install: each installs.
#[test]
fn archives_from_gnu_tar_bsdtar_and_python_are_read_the_same_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = common::demo_lab(tmp.path());
    // The hand-made patches are unsigned; signatures are tests/trust.rs's.
    common::allow_unsigned(std::path::Path::new(&lab));
    let work = tmp.path().join("work");
    let mut ids = Vec::new();
    for (tool, dotted) in [
        ("GNU", false),
        ("GNU", true),
        ("BSD", false),
        ("BSD", true),
        ("PY", false),
        ("PY", true),
    ] {
        let id = format!("{tool}_{}", if dotted { 2 } else { 1 });
        let src = work.join(&id);
        let rel = format!("opt/acme/{}", id.to_lowercase());
        let data = format!("written by {tool}\n");
        fs::create_dir_all(src.join("files").join(&rel).parent().unwrap()).unwrap();
        fs::write(src.join("files").join(&rel), &data).unwrap();
        fs::write(
            src.join("PATCH.toml"),
            format!(
                "{}\n[[files]]\npath = \"{rel}\"\nsha256 = \"{}\"\nsize = {}\nmode = \"0644\"\n",
                manifest(&id, ""),
                sha(data.as_bytes()),
                data.len()
            ),
        )
        .unwrap();
        let out = work.join(format!("{id}.patch"));
        let out = out.to_str().unwrap();
        let (m, f) = if dotted {
            ("./PATCH.toml", "./files")
        } else {
            ("PATCH.toml", "files")
        };
        match tool {
            "GNU" => archiver("tar", &["--format=gnu", "-cf", out, m, f], &src),
            "BSD" => archiver("bsdtar", &["-cf", out, m, f], &src),
            _ => archiver(
                "python3",
                &[
                    "-c",
                    "import sys, tarfile\nwith tarfile.open(sys.argv[1], 'w') as t:\n    for n in sys.argv[2:]: t.add(n)",
                    out,
                    m,
                    f,
                ],
                &src,
            ),
        }
        ids.push(id);
    }
    let files: Vec<String> = ids
        .iter()
        .map(|id| work.join(format!("{id}.patch")).display().to_string())
        .collect();
    let run = |args: &[&str]| {
        let out = common::patchdeck(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let mut add = vec!["depot", "add", "--lab", &lab];
    add.extend(files.iter().map(String::as_str));
    run(&add);
    run(&["depot", "check", "--lab", &lab]);
    let mut stage = vec!["stage", "--lab", lab.as_str(), "--nodes", "gw-east-1"];
    stage.extend(ids.iter().map(String::as_str));
    run(&stage);
    let mut install = vec!["install", "--lab", lab.as_str(), "--nodes", "gw-east-1"];
    install.extend(ids.iter().map(String::as_str));
    run(&install);
    let listed = common::json(&run(&[
        "list",
        "--lab",
        &lab,
        "--nodes",
        "gw-east-1",
        "--json",
    ]));
    let text = listed.to_string();
    for id in &ids {
        let rel = format!("opt/acme/{}", id.to_lowercase());
        assert!(
            std::path::Path::new(&lab)
                .join("nodes/gw-east-1")
                .join(&rel)
                .is_file(),
            "{id} was not installed: {text}"
        );
    }
}

// ----- checks that do not trust caches, and depot-wide rules on add -----

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_patchdeck")
}

fn run_in(umask: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(bin())
        .args(args)
        .env_remove("PATCHDECK_LAB")
        .output()
        .unwrap()
}

#[test]
fn depot_check_reads_the_bytes_not_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("depot");
    fs::create_dir_all(&d).unwrap();
    let p = good(&d, "GW_1", "");
    let depot = d.display().to_string();
    let out = common::patchdeck(&["depot", "list", "--depot", &depot]);
    assert!(out.status.success());
    assert!(
        Depot::open(&d).unwrap().stats.from_index == 1,
        "the cache index was not written"
    );
    // Flip one payload bit, keeping the size and the modification time.
    let meta = fs::metadata(&p).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    let at = bytes.windows(10).position(|w| w == b"payload of").unwrap();
    bytes[at] ^= 1;
    fs::write(&p, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), meta.len());
    let out = common::patchdeck(&["depot", "check", "--depot", &depot]);
    assert_eq!(out.status.code(), Some(1), "a flipped bit passed the check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("GW_1.patch") && text.contains("sha256"),
        "{text}"
    );
}

fn add(depot: &str, files: &[&std::path::Path]) -> std::process::Output {
    let mut args = vec![
        "depot".to_string(),
        "add".into(),
        "--depot".into(),
        depot.into(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::patchdeck(&args)
}

#[test]
fn depot_add_refuses_what_would_break_the_depot_as_it_will_be() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("depot");
    let incoming = tmp.path().join("in");
    fs::create_dir_all(&d).unwrap();
    fs::create_dir_all(&incoming).unwrap();
    let depot = d.display().to_string();
    good(&d, "GW_1", "supersedes = [\"GW_2\"]");
    good(&d, "KRN_1", "");
    let before: Vec<String> = Depot::open(&d)
        .unwrap()
        .patches
        .iter()
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(before, ["GW_1", "KRN_1"]);

    // GW_2 superseding GW_1 closes a cycle with the patch already there.
    let cycle = good(&incoming, "GW_2", "supersedes = [\"GW_1\"]");
    // krn_1 differs from KRN_1 only in case.
    let case = good(&incoming, "krn_1", "");
    // GW_3 -> GW_4 -> GW_3, both new, given together.
    let three = good(&incoming, "GW_3", "supersedes = [\"GW_4\"]");
    let four = good(&incoming, "GW_4", "supersedes = [\"GW_3\"]");
    for (what, files, words) in [
        (
            "cycle with the depot",
            vec![cycle.as_path()],
            "supersedes cycle",
        ),
        (
            "id differing only in case",
            vec![case.as_path()],
            "only in case",
        ),
        (
            "cycle among new files",
            vec![three.as_path(), four.as_path()],
            "supersedes cycle",
        ),
    ] {
        let out = add(&depot, &files);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(words) && err.contains("nothing was added"),
            "{what}: {err}"
        );
        let now: Vec<String> = Depot::open(&d)
            .unwrap()
            .patches
            .iter()
            .map(|p| p.id.clone())
            .collect();
        assert_eq!(now, before, "{what}: the depot changed");
        assert!(Depot::open(&d).unwrap().broken.is_empty(), "{what}");
    }
    // A patch that fits is still added.
    let fine = good(&incoming, "GW_5", "supersedes = [\"GW_1\"]");
    assert!(add(&depot, &[&fine]).status.success());
}

#[test]
fn pack_and_depot_add_honour_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("files/opt")).unwrap();
    fs::write(src.join("PATCH.toml"), manifest("GW_1", "")).unwrap();
    fs::write(src.join("files/opt/x"), b"x\n").unwrap();
    for (umask, mode) in [("022", 0o644), ("027", 0o640), ("077", 0o600)] {
        let d = tmp.path().join(format!("depot-{umask}"));
        fs::create_dir_all(&d).unwrap();
        let out = tmp.path().join(format!("out-{umask}"));
        fs::create_dir_all(&out).unwrap();
        let packed = out.join("GW_1.patch");
        let o = run_in(
            umask,
            &[
                "pack",
                src.to_str().unwrap(),
                "-o",
                packed.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = fs::metadata(&packed).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "pack under umask {umask}: {got:o}");
        let o = run_in(
            umask,
            &[
                "depot",
                "add",
                "--depot",
                d.to_str().unwrap(),
                packed.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = fs::metadata(d.join("GW_1.patch"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(got, mode, "depot add under umask {umask}: {got:o}");
    }
}

#[test]
fn depot_add_refuses_a_fifo_or_device_without_opening_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("depot");
    fs::create_dir_all(&d).unwrap();
    let fifo = tmp.path().join("GW_1.patch");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path this test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let dev = tmp.path().join("NULL_1.patch");
    symlink("/dev/null", &dev).unwrap();
    for (what, file) in [("fifo", &fifo), ("device", &dev)] {
        let mut child = std::process::Command::new(bin())
            .args([
                "depot",
                "add",
                "--depot",
                d.to_str().unwrap(),
                file.to_str().unwrap(),
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the exit, with a generous deadline so a hang fails
        // instead of blocking the suite.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("depot add of a {what} hangs");
            }
            std::thread::yield_now();
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("not a regular file"), "{what}: {err}");
    }
}

#[test]
fn a_categories_file_that_is_not_utf8_names_line_and_byte_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("depot");
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("categories.toml"),
        b"security = \"Security\"\nbad = \"caf\xe9\"\n",
    )
    .unwrap();
    let depot = Depot::open(&d).unwrap();
    let b = depot
        .broken
        .iter()
        .find(|b| b.file == "categories.toml")
        .unwrap();
    assert_eq!(b.line, Some(2), "{b}");
    assert!(b.message.contains("byte offset 32"), "{b}");
}
