//! Hostile patches. Archives are built by hand (not with `pack`, which
//! refuses all of this) with raw tar headers: absolute and `..` paths, entry
//! names that leave `files/` (also through PAX and GNU long names), links,
//! devices and fifos, setuid bits, payloads larger than declared, missing
//! and duplicate entries; and node roots holding symlinks, fifos and hard
//! links where a patch writes.
//!
//! Every case checks three things: the refusal names the problem; nothing
//! outside the node root changed (SHA-256 of every file, every symlink
//! target and the set of paths next to the node root, in a directory the
//! attacks aim at); and the node itself is exactly as before (its digest).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use common::{copy_tree, diff_listings, listing, manifest, sha};
use patchdeck::engine::archive;
use patchdeck::engine::node::{ErrorKind, Node, NodeError};

const NODE: &str = "gw-1";

/// A scratch directory holding the node root, an `outside` directory the
/// attacks aim at, and the patches.
struct World {
    tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    patches: PathBuf,
}

/// What must never change: every path next to the node root, with file
/// hashes, modes and link targets; and the absolute targets some patches
/// name.
#[derive(Debug, PartialEq, Eq)]
struct Outside {
    tree: BTreeMap<String, String>,
    absolute: Vec<(String, bool)>,
}

const ABSOLUTE: &[&str] = &["/etc/x", "/tmp/patchdeck-hostile-escape"];

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("node");
        let outside = tmp.path().join("outside");
        let patches = tmp.path().join("patches");
        fs::create_dir_all(outside.join("dir")).unwrap();
        fs::create_dir_all(&patches).unwrap();
        fs::write(outside.join("secret"), b"outside secret\n").unwrap();
        fs::write(outside.join("dir/new.conf"), b"outside config\n").unwrap();
        fs::write(outside.join("hl-target"), b"shared inode\n").unwrap();
        symlink("/etc/passwd", outside.join("link-to-etc")).unwrap();
        fs::create_dir_all(root.join("opt/gw")).unwrap();
        fs::write(root.join("opt/gw/lib.so"), b"original library\n").unwrap();
        {
            let mut node = Node::open(&root, NODE).unwrap();
            node.set_product("gateway", "10.1").unwrap();
        }
        World {
            tmp,
            root,
            outside,
            patches,
        }
    }

    fn outside(&self) -> Outside {
        Outside {
            tree: listing(self.tmp.path(), &["node", "patches"]),
            absolute: ABSOLUTE
                .iter()
                .map(|p| (p.to_string(), fs::symlink_metadata(p).is_ok()))
                .collect(),
        }
    }

    fn node(&self) -> Node {
        Node::open(&self.root, NODE).unwrap()
    }

    fn digest(&self) -> String {
        self.node().digest().unwrap()
    }

    fn write(&self, id: &str, bytes: &[u8]) -> PathBuf {
        let path = self.patches.join(format!("{id}.patch"));
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Stages `patch` and expects a refusal naming `problem`, with nothing
    /// changed inside or outside the node.
    fn refused_at_stage(&self, case: &str, id: &str, patch: &Path, problem: &str) {
        let (outside, digest) = (self.outside(), self.digest());
        let e = self.node().stage(id, patch).unwrap_err();
        self.check_refusal(case, &e, problem);
        self.unchanged(case, &outside, &digest);
        assert!(
            !self
                .root
                .join(format!("var/lib/patchdeck/staged/{id}.patch"))
                .exists()
                && !self
                    .root
                    .join(format!("var/lib/patchdeck/staged/{id}.patch.tmp"))
                    .exists(),
            "{case}: a refused patch was left in staged/"
        );
    }

    /// Stages `patch` (which must work), then expects install to refuse
    /// naming `problem`, with nothing changed since it was staged.
    fn refused_at_install(&self, case: &str, id: &str, patch: &Path, problem: &str) {
        self.node()
            .stage(id, patch)
            .unwrap_or_else(|e| panic!("{case}: staging failed: {e}"));
        let (outside, digest) = (self.outside(), self.digest());
        let e = self.node().install(id, true).unwrap_err();
        self.check_refusal(case, &e, problem);
        self.unchanged(case, &outside, &digest);
    }

    fn check_refusal(&self, case: &str, e: &NodeError, problem: &str) {
        assert_eq!(e.kind, ErrorKind::Invalid, "{case}: {e}");
        assert!(
            e.message.contains(problem),
            "{case}: the refusal does not name the problem ({problem:?}): {e}"
        );
    }

    fn unchanged(&self, case: &str, outside: &Outside, digest: &str) {
        let now = self.outside();
        assert!(
            now == *outside,
            "{case}: something outside the node root changed:\n  {}\n  absolute: {:?} vs {:?}",
            diff_listings(&outside.tree, &now.tree).join("\n  "),
            outside.absolute,
            now.absolute
        );
        assert_eq!(self.digest(), digest, "{case}: the node changed");
        no_setid_bits(&self.root);
    }
}

/// No file or directory anywhere in the tree has setuid or setgid.
fn no_setid_bits(root: &Path) {
    for (path, entry) in listing(root, &[]) {
        let mode = entry
            .split(' ')
            .nth(1)
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0);
        if !entry.starts_with("link") {
            assert_eq!(
                mode & 0o6000,
                0,
                "{path} has a setuid or setgid bit: {entry}"
            );
        }
    }
}

// ----- raw archives -----

#[derive(Clone)]
enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char,
    Block,
    Fifo,
    /// A PAX extended header for the next entry.
    Pax,
    /// A GNU long name for the next entry.
    LongName,
}

#[derive(Clone)]
struct Raw {
    name: Vec<u8>,
    kind: Kind,
    mode: u32,
    data: Vec<u8>,
}

fn file(name: &str, data: &[u8]) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind: Kind::File,
        mode: 0o644,
        data: data.to_vec(),
    }
}

fn special(name: &str, kind: Kind) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        data: Vec::new(),
    }
}

/// A PAX record setting the next entry's path.
fn pax_path(path: &str) -> Raw {
    let body = format!(" path={path}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    Raw {
        name: b"PaxHeaders/x".to_vec(),
        kind: Kind::Pax,
        mode: 0o644,
        data: format!("{len}{body}").into_bytes(),
    }
}

fn long_name(path: &str) -> Raw {
    let mut data = path.as_bytes().to_vec();
    data.push(0);
    Raw {
        name: b"././@LongLink".to_vec(),
        kind: Kind::LongName,
        mode: 0o644,
        data,
    }
}

/// A tar with `PATCH.toml` = `text` first, then `entries` with their names
/// and types written into the headers as given (nothing normalised).
fn raw_tar(text: &str, entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    archive::append(&mut b, "PATCH.toml", 0o644, text.as_bytes()).unwrap();
    for e in entries {
        let mut h = tar::Header::new_gnu();
        assert!(e.name.len() <= 100, "raw names fit the header");
        h.as_old_mut().name[..e.name.len()].copy_from_slice(&e.name);
        h.set_entry_type(match &e.kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink(_) => tar::EntryType::Symlink,
            Kind::Hardlink(_) => tar::EntryType::Link,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Pax => tar::EntryType::XHeader,
            Kind::LongName => tar::EntryType::GNULongName,
        });
        if let Kind::Symlink(to) | Kind::Hardlink(to) = &e.kind {
            h.as_old_mut().linkname[..to.len()].copy_from_slice(to);
        }
        if matches!(e.kind, Kind::Char | Kind::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// `[[files]]` tables for (path, bytes, mode), with true size and SHA-256.
fn files_toml(files: &[(&str, &[u8], u32)]) -> String {
    files
        .iter()
        .map(|(p, d, m)| listed(p, &sha(d), d.len() as u64, *m))
        .collect()
}

fn listed(path: &str, sha256: &str, size: u64, mode: u32) -> String {
    format!(
        "\n[[files]]\npath = {path:?}\nsha256 = \"{sha256}\"\nsize = {size}\nmode = \"{mode:04o}\"\n"
    )
}

/// A patch whose manifest lists `files` and whose archive holds `entries`.
fn hostile(w: &World, id: &str, files: &str, entries: &[Raw]) -> PathBuf {
    let text = format!("{}{files}", manifest(id, ""));
    w.write(id, &raw_tar(&text, entries))
}

// ----- refused when staged -----

#[test]
fn paths_that_leave_the_node_root_are_refused() {
    let w = World::new();
    let abs_outside = w.outside.join("abs-pwned");
    let abs_outside = abs_outside.to_str().unwrap();
    let data: &[u8] = b"pwned\n";
    for (case, path, problem) in [
        ("absolute /etc/x", "/etc/x", "is absolute"),
        ("absolute into outside/", abs_outside, "is absolute"),
        ("../escape", "../escape", "contains '..'"),
        ("a/../../escape", "a/../../escape", "contains '..'"),
        (
            "opt/../../outside/secret",
            "opt/../../outside/secret",
            "contains '..'",
        ),
        ("empty component", "opt//gw/x", "empty or '.' component"),
        ("dot component", "./opt/x", "empty or '.' component"),
    ] {
        let p = hostile(
            &w,
            "GW_1",
            &files_toml(&[(path, data, 0o644)]),
            &[file(&format!("files/{path}"), data)],
        );
        w.refused_at_stage(case, "GW_1", &p, problem);
    }
}

#[test]
fn archive_entries_that_leave_files_are_refused() {
    let w = World::new();
    let ok: &[u8] = b"fine\n";
    let listed_ok = files_toml(&[("opt/gw/ok.txt", ok, 0o644)]);
    let escape = format!("{}/escaped", w.outside.display());
    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        (
            "entry ../escape",
            vec![file("files/opt/gw/ok.txt", ok), file("../escape", b"x")],
            "is outside files/",
        ),
        (
            "absolute entry",
            vec![file("files/opt/gw/ok.txt", ok), file(&escape, b"x")],
            "is outside files/",
        ),
        (
            "entry files/../../escape, not listed",
            vec![
                file("files/opt/gw/ok.txt", ok),
                file("files/../../escape", b"x"),
            ],
            "is not listed",
        ),
        (
            "PAX path ../../escape",
            vec![
                file("files/opt/gw/ok.txt", ok),
                pax_path("../../escape"),
                file("files/opt/gw/innocent", b"x"),
            ],
            "is outside files/",
        ),
        (
            "GNU long name files/../../escape",
            vec![
                file("files/opt/gw/ok.txt", ok),
                long_name("files/../../../escape"),
                file("files/opt/gw/innocent", b"x"),
            ],
            "is not listed",
        ),
    ];
    for (case, entries, problem) in cases {
        let p = hostile(&w, "GW_1", &listed_ok, &entries);
        w.refused_at_stage(case, "GW_1", &p, problem);
    }
    // PATCH.toml must come first: a payload ahead of it is refused.
    let mut b = tar::Builder::new(Vec::new());
    archive::append(&mut b, "files/opt/gw/ok.txt", 0o644, ok).unwrap();
    let text = format!("{}{listed_ok}", manifest("GW_1", ""));
    archive::append(&mut b, "PATCH.toml", 0o644, text.as_bytes()).unwrap();
    let p = w.write("GW_1", &b.into_inner().unwrap());
    w.refused_at_stage(
        "payload before the manifest",
        "GW_1",
        &p,
        "expected PATCH.toml",
    );
}

#[test]
fn entries_that_are_not_regular_files_are_refused() {
    let w = World::new();
    let secret = w.outside.join("secret");
    let secret = secret.to_str().unwrap().as_bytes().to_vec();
    for (case, kind) in [
        ("symlink to outside", Kind::Symlink(secret.clone())),
        (
            "relative symlink",
            Kind::Symlink(b"../../../outside/secret".to_vec()),
        ),
        ("hard link to outside", Kind::Hardlink(secret.clone())),
        (
            "hard link to another entry",
            Kind::Hardlink(b"files/opt/gw/a".to_vec()),
        ),
        ("character device", Kind::Char),
        ("block device", Kind::Block),
        ("fifo", Kind::Fifo),
    ] {
        // Listed in the manifest as the empty file, so only the type is wrong.
        let p = hostile(
            &w,
            "GW_1",
            &format!(
                "{}{}",
                files_toml(&[("opt/gw/a", b"a", 0o644)]),
                listed("opt/gw/x", &sha(b""), 0, 0o644)
            ),
            &[
                file("files/opt/gw/a", b"a"),
                special("files/opt/gw/x", kind),
            ],
        );
        w.refused_at_stage(case, "GW_1", &p, "not a regular file");
    }
}

#[test]
fn missing_and_duplicate_entries_are_refused() {
    let w = World::new();
    let a: &[u8] = b"a\n";
    let b: &[u8] = b"b\n";
    let p = hostile(
        &w,
        "GW_1",
        &files_toml(&[("opt/gw/a", a, 0o644), ("opt/gw/b", b, 0o644)]),
        &[file("files/opt/gw/a", a)],
    );
    w.refused_at_stage("listed but missing", "GW_1", &p, "missing from the archive");

    let p = hostile(
        &w,
        "GW_1",
        &files_toml(&[("opt/gw/a", a, 0o644)]),
        &[file("files/opt/gw/a", a), file("files/opt/gw/a", a)],
    );
    w.refused_at_stage("duplicate entry", "GW_1", &p, "appears twice");

    let p = hostile(
        &w,
        "GW_1",
        &files_toml(&[("opt/gw/a", a, 0o644), ("opt/gw/a", a, 0o644)]),
        &[file("files/opt/gw/a", a)],
    );
    w.refused_at_stage("listed twice", "GW_1", &p, "listed twice");

    let p = hostile(
        &w,
        "GW_1",
        &files_toml(&[("opt/gw/a", a, 0o644)]),
        &[file("files/opt/gw/a", b)],
    );
    w.refused_at_stage("wrong checksum", "GW_1", &p, "has sha256");

    // One path both a file and a directory: either order.
    for (case, first, second) in [
        ("file then directory", "opt/gw/new", "opt/gw/new/x"),
        ("directory then file", "opt/gw/new/x", "opt/gw/new"),
    ] {
        let p = hostile(
            &w,
            "GW_1",
            &files_toml(&[(first, a, 0o644), (second, b, 0o644)]),
            &[
                file(&format!("files/{first}"), a),
                file(&format!("files/{second}"), b),
            ],
        );
        w.refused_at_stage(case, "GW_1", &p, "both a file and a directory");
    }
}

// ----- oversized payloads -----

#[test]
fn a_payload_larger_than_declared_is_cut_off_and_refused() {
    let w = World::new();
    let big = vec![b'A'; 1 << 20];
    // Declared: 10 bytes, with the checksum of the first 10.
    let declared = listed("opt/gw/big", &sha(&big[..10]), 10, 0o644);
    let p = hostile(&w, "GW_1", &declared, &[file("files/opt/gw/big", &big)]);
    w.refused_at_stage(
        "1 MiB declared as 10",
        "GW_1",
        &p,
        "declared 10 bytes in PATCH.toml, found 1048576 in the archive",
    );
    // Shorter than declared: both sizes are named too.
    let short = b"eleven byte";
    let p = hostile(
        &w,
        "GW_3",
        &listed("opt/gw/short", &sha(short), 12, 0o644),
        &[file("files/opt/gw/short", short)],
    );
    w.refused_at_stage(
        "11 bytes declared as 12",
        "GW_3",
        &p,
        "declared 12 bytes in PATCH.toml, found 11 in the archive",
    );

    // Staged honestly, then the staged copy is swapped for the oversized one.
    let honest = hostile(
        &w,
        "GW_2",
        &declared,
        &[file("files/opt/gw/big", &big[..10])],
    );
    w.node().stage("GW_2", &honest).unwrap();
    let staged = w.root.join("var/lib/patchdeck/staged/GW_2.patch");
    let text = format!("{}{declared}", manifest("GW_2", ""));
    fs::write(&staged, raw_tar(&text, &[file("files/opt/gw/big", &big)])).unwrap();
    let (outside, digest) = (w.outside(), w.digest());
    let e = w.node().install("GW_2", true).unwrap_err();
    w.check_refusal("tampered staged copy", &e, "fails verification");
    assert!(
        e.message
            .contains("declared 10 bytes in PATCH.toml, found 1048576"),
        "{e}"
    );
    w.unchanged("tampered staged copy", &outside, &digest);
    assert!(!w.root.join("opt/gw/big").exists());
    assert!(!w.root.join("var/lib/patchdeck/save/GW_2").exists());
}

// ----- the node root -----

#[test]
fn writes_through_symlinks_in_the_node_root_are_refused() {
    let w = World::new();
    let data: &[u8] = b"pwned\n";
    let outside = w.outside.clone();
    let secret = outside.join("secret");
    type Plant = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, &str, Plant)> = vec![
        (
            "a directory symlink on the way",
            "opt/link/pwned",
            Box::new(move |root| symlink(&outside, root.join("opt/link")).unwrap()),
        ),
        (
            "a symlink higher up, with directories to create below it",
            "srv/a/b/pwned",
            Box::new({
                let outside = w.outside.clone();
                move |root| symlink(&outside, root.join("srv")).unwrap()
            }),
        ),
        (
            "a relative symlink",
            "opt/rel/pwned",
            Box::new(|root| symlink("../../outside", root.join("opt/rel")).unwrap()),
        ),
        (
            "the final component is a symlink to an outside file",
            "opt/gw/cfg",
            Box::new(move |root| symlink(&secret, root.join("opt/gw/cfg")).unwrap()),
        ),
        (
            "the final component is a dangling symlink",
            "opt/gw/dangling",
            Box::new({
                let target = w.outside.join("created-through-link");
                move |root| symlink(&target, root.join("opt/gw/dangling")).unwrap()
            }),
        ),
    ];
    for (i, (case, path, plant)) in cases.into_iter().enumerate() {
        plant(&w.root);
        let id = format!("GW_{}", 10 + i);
        let p = hostile(
            &w,
            &id,
            &files_toml(&[(path, data, 0o644)]),
            &[file(&format!("files/{path}"), data)],
        );
        w.refused_at_install(case, &id, &p, "symbolic link");
    }
}

#[test]
fn special_files_and_directories_in_the_node_root_are_not_replaced() {
    let w = World::new();
    let data: &[u8] = b"x\n";
    let fifo = w.root.join("opt/gw/fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    fs::create_dir_all(w.root.join("opt/gw/adir")).unwrap();
    fs::write(w.root.join("opt/gw/afile"), b"a file\n").unwrap();
    for (i, (case, path, problem)) in [
        (
            "a fifo (opening it would hang)",
            "opt/gw/fifo",
            "not a regular file",
        ),
        ("a directory", "opt/gw/adir", "not a regular file"),
        (
            "a file where a directory is needed",
            "opt/gw/afile/x",
            "not a directory",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("GW_{}", 20 + i);
        let p = hostile(
            &w,
            &id,
            &files_toml(&[(path, data, 0o644)]),
            &[file(&format!("files/{path}"), data)],
        );
        w.refused_at_install(case, &id, &p, problem);
    }
}

#[test]
fn payloads_into_the_patch_store_are_refused() {
    let w = World::new();
    // Something staged whose copy a patch could overwrite.
    let other = common::good(&w.patches, "GW_0", "");
    w.node().stage("GW_0", &other).unwrap();
    let data: &[u8] = b"not a database\n";
    for (i, path) in [
        "var/lib/patchdeck/ipd.sqlite",
        "var/lib/patchdeck/staged/GW_0.patch",
        "var/lib/patchdeck/save/GW_0/orig/opt/gw/lib.so",
        "var/lib/patchdeck/lock",
        "var/lib/patchdeck/new/file",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("GW_{}", 30 + i);
        let p = hostile(
            &w,
            &id,
            &files_toml(&[(path, data, 0o644)]),
            &[file(&format!("files/{path}"), data)],
        );
        w.refused_at_install(path, &id, &p, "patch store");
    }
    assert!(w.node().verify().unwrap().is_empty());
}

#[test]
fn a_hard_link_in_the_node_root_is_replaced_not_written_through() {
    let w = World::new();
    fs::hard_link(w.outside.join("hl-target"), w.root.join("opt/gw/hl")).unwrap();
    let outside = w.outside();
    let p = common::write_patch(
        &w.patches,
        "GW_1",
        &manifest("GW_1", ""),
        &[("opt/gw/hl", b"replaced\n")],
    );
    let mut node = w.node();
    node.stage("GW_1", &p).unwrap();
    node.install("GW_1", true).unwrap();
    assert_eq!(fs::read(w.root.join("opt/gw/hl")).unwrap(), b"replaced\n");
    assert_eq!(w.outside(), outside, "install wrote through a hard link");
    node.rollback("GW_1").unwrap();
    assert_eq!(
        fs::read(w.root.join("opt/gw/hl")).unwrap(),
        b"shared inode\n"
    );
    assert_eq!(w.outside(), outside, "rollback wrote through a hard link");
}

#[test]
fn rollback_does_not_write_through_a_symlink_that_appeared_since_install() {
    let w = World::new();
    let p = common::write_patch(
        &w.patches,
        "GW_1",
        &manifest("GW_1", ""),
        &[
            ("opt/gw/lib.so", b"new library\n"),
            ("opt/gw/conf.d/new.conf", b"patch config\n"),
        ],
    );
    let mut node = w.node();
    node.stage("GW_1", &p).unwrap();
    node.install("GW_1", true).unwrap();
    drop(node);
    // An administrator moves conf.d out of the tree and links it back; the
    // directory outside holds its own new.conf.
    fs::remove_dir_all(w.root.join("opt/gw/conf.d")).unwrap();
    symlink(w.outside.join("dir"), w.root.join("opt/gw/conf.d")).unwrap();
    let (outside, digest) = (w.outside(), w.digest());
    let e = w.node().rollback("GW_1").unwrap_err();
    w.check_refusal("rollback through a symlink", &e, "symbolic link");
    w.unchanged("rollback through a symlink", &outside, &digest);
    assert_eq!(
        fs::read(w.outside.join("dir/new.conf")).unwrap(),
        b"outside config\n"
    );
}

// ----- modes -----

#[test]
fn setuid_and_setgid_bits_are_never_written() {
    let w = World::new();
    let files: &[(&str, &[u8], u32)] = &[
        ("opt/gw/bin/suid", b"#!/bin/sh\n", 0o4755),
        ("opt/gw/bin/sgid", b"#!/bin/sh\n", 0o2755),
        ("opt/gw/bin/both", b"#!/bin/sh\n", 0o6777),
        ("opt/gw/sticky", b"sticky\n", 0o1777),
    ];
    // The tar headers carry the setuid bits as well.
    let entries: Vec<Raw> = files
        .iter()
        .map(|(p, d, m)| Raw {
            mode: *m,
            ..file(&format!("files/{p}"), d)
        })
        .collect();
    let p = hostile(&w, "GW_1", &files_toml(files), &entries);
    let outside = w.outside();
    let mut node = w.node();
    node.stage("GW_1", &p).unwrap();
    node.install("GW_1", true).unwrap();
    for (path, _, mode) in files {
        let on_disk = fs::metadata(w.root.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(on_disk, mode & 0o777, "{path}");
    }
    assert!(node.verify().unwrap().is_empty());
    no_setid_bits(&w.root);
    node.rollback("GW_1").unwrap();
    no_setid_bits(&w.root);
    assert_eq!(w.outside(), outside);
}

/// Rollback restores exactly what was there: an original with setuid and
/// setgid (6755) that a patch replaced comes back 6755, while the patch's
/// own file, declared 6755, was installed without the bits.
#[test]
fn rollback_restores_a_setuid_original_exactly() {
    let w = World::new();
    let original = w.root.join("opt/gw/bin/helper");
    fs::create_dir_all(original.parent().unwrap()).unwrap();
    fs::write(&original, b"original setuid helper\n").unwrap();
    fs::set_permissions(&original, fs::Permissions::from_mode(0o6755)).unwrap();
    let files: &[(&str, &[u8], u32)] = &[("opt/gw/bin/helper", b"patched helper\n", 0o6755)];
    let entries: Vec<Raw> = files
        .iter()
        .map(|(p, d, m)| Raw {
            mode: *m,
            ..file(&format!("files/{p}"), d)
        })
        .collect();
    let p = hostile(&w, "GW_1", &files_toml(files), &entries);
    let before = w.digest();
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    let mut node = w.node();
    node.stage("GW_1", &p).unwrap();
    node.install("GW_1", true).unwrap();
    assert_eq!(mode(&original), 0o755, "the payload got setuid bits");
    assert_eq!(fs::read(&original).unwrap(), b"patched helper\n");
    node.rollback("GW_1").unwrap();
    assert_eq!(
        mode(&original),
        0o6755,
        "the original's bits did not come back"
    );
    assert_eq!(fs::read(&original).unwrap(), b"original setuid helper\n");
    node.remove("GW_1").unwrap();
    drop(node);
    assert_eq!(w.digest(), before);
}

// ----- harmless oddities -----

/// Directory entries are allowed and ignored, wherever they point: they
/// never create anything.
#[test]
fn directory_entries_are_never_created() {
    let w = World::new();
    let data: &[u8] = b"ok\n";
    let p = hostile(
        &w,
        "GW_1",
        &files_toml(&[("opt/gw/ok", data, 0o644)]),
        &[
            special("files/../../escaped-dir", Kind::Dir),
            special("files/opt/gw/made-by-entry", Kind::Dir),
            file("files/opt/gw/ok", data),
        ],
    );
    let outside = w.outside();
    let mut node = w.node();
    node.stage("GW_1", &p).unwrap();
    node.install("GW_1", true).unwrap();
    assert_eq!(w.outside(), outside);
    assert!(!w.root.join("opt/gw/made-by-entry").exists());
    assert_eq!(fs::read(w.root.join("opt/gw/ok")).unwrap(), data);
}

/// The outside snapshot is not blind: a new path, changed bytes and a
/// changed link target are all seen.
#[test]
fn the_outside_snapshot_sees_every_kind_of_change() {
    let w = World::new();
    let before = w.outside();
    let copy = w.tmp.path().join("copy-of-outside");
    copy_tree(&w.outside, &copy);
    assert_ne!(w.outside(), before, "a new directory is seen");
    fs::remove_dir_all(&copy).unwrap();
    assert_eq!(w.outside(), before);
    fs::write(w.outside.join("secret"), b"changed\n").unwrap();
    assert_ne!(w.outside(), before, "changed content is seen");
    fs::write(w.outside.join("secret"), b"outside secret\n").unwrap();
    fs::remove_file(w.outside.join("link-to-etc")).unwrap();
    symlink("/etc/shadow", w.outside.join("link-to-etc")).unwrap();
    assert_ne!(w.outside(), before, "a changed link target is seen");
}

// ----- messages that point at the right place -----

/// The 1-based line of `needle` in `text`.
fn line_in(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// A bad value in the fourth `[[files]]` table is reported at that table's
/// line, not at the first `path =`.
#[test]
fn errors_in_a_later_files_table_point_at_its_line() {
    let w = World::new();
    let good: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("opt/gw/f{i}"), format!("file {i}\n").into_bytes()))
        .collect();
    let files: String = good
        .iter()
        .map(|(p, d)| listed(p, &sha(d), d.len() as u64, 0o644))
        .collect();
    for (what, fourth, needle) in [
        (
            "bad path",
            listed("opt/../../etc/x", &sha(b"x"), 1, 0o644),
            "opt/../../etc/x",
        ),
        (
            "bad sha256",
            listed("opt/gw/f3", "abc", 1, 0o644),
            "\"abc\"",
        ),
        (
            "duplicate path",
            listed("opt/gw/f1", &sha(b"x"), 1, 0o644),
            "",
        ),
    ] {
        let text = format!("{}{files}{fourth}", manifest("GW_1", ""));
        let line = if needle.is_empty() {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains("\"opt/gw/f1\""))
                .nth(1)
                .unwrap()
                .0
                + 1
        } else {
            line_in(&text, needle)
        };
        assert!(
            line > 20,
            "{what}: the fourth table is further down ({line})"
        );
        let entries: Vec<Raw> = good
            .iter()
            .map(|(p, d)| file(&format!("files/{p}"), d))
            .collect();
        let p = w.write("GW_1", &raw_tar(&text, &entries));
        let e = archive::read_patch(&p).unwrap_err();
        assert_eq!(e.line, Some(line), "{what}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("PATCH.toml line {line}:")),
            "{what}: {e}"
        );
    }
}

/// A `PATCH.toml` that is a symbolic link is refused as such.
#[test]
fn a_manifest_that_is_a_link_is_refused_as_a_link() {
    let w = World::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_path("PATCH.toml").unwrap();
    h.set_link_name("/etc/passwd").unwrap();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let p = w.write("GW_1", &b.into_inner().unwrap());
    w.refused_at_stage(
        "PATCH.toml symlink",
        "GW_1",
        &p,
        "PATCH.toml is a symbolic link in the archive; the manifest must be a regular file",
    );
}

/// A huge name in an archive is quoted capped, in the error and in what
/// the depot's cache index stores.
#[test]
fn huge_names_are_capped_in_messages_and_in_the_index() {
    let w = World::new();
    let name = format!("files/{}", "n".repeat(4 << 20));
    let p = w.write(
        "GW_1",
        &raw_tar(&manifest("GW_1", ""), &[pax_path(&name), file("x", b"x")]),
    );
    let e = archive::read_patch(&p).unwrap_err();
    assert!(
        e.message.len() < 400,
        "{} bytes of message",
        e.message.len()
    );
    assert!(e.message.contains("bytes in all"), "{}", e.message);
    let e = w.node().stage("GW_1", &p).unwrap_err();
    assert!(
        e.message.len() < 600,
        "{} bytes of message",
        e.message.len()
    );
    for round in ["read", "from the index"] {
        let depot = patchdeck::engine::depot::Depot::open(&w.patches).unwrap();
        let b = depot
            .broken
            .iter()
            .find(|b| b.file == "GW_1.patch")
            .unwrap();
        assert!(b.message.len() < 400, "{round}: {} bytes", b.message.len());
    }
}

/// A manifest that is not UTF-8 names the line and the byte offset.
#[test]
fn a_manifest_that_is_not_utf8_names_line_and_byte_offset() {
    let w = World::new();
    let mut text = manifest("GW_1", "").into_bytes();
    let line = text.iter().filter(|&&b| b == b'\n').count() + 1;
    let at = text.len() + 9;
    text.extend_from_slice(b"# comment\xff\n");
    let mut b = tar::Builder::new(Vec::new());
    archive::append(&mut b, "PATCH.toml", 0o644, &text).unwrap();
    let p = w.write("GW_1", &b.into_inner().unwrap());
    let e = archive::read_patch(&p).unwrap_err();
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.message.contains(&format!("byte offset {at}")), "{e}");
}
