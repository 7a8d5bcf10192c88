//! Helpers shared by the integration tests: build patch files by hand.
#![allow(dead_code)]

pub mod sshd;
pub mod tmux;

use std::fs;
use std::path::{Path, PathBuf};

use patchdeck::engine::archive;
use sha2::{Digest, Sha256};

/// A minimal valid manifest body (no [[files]]) for `id`.
pub fn manifest(id: &str, extra: &str) -> String {
    format!(
        "id = \"{id}\"\ntitle = \"Fix {id}\"\nproduct = \"gateway\"\nfileset = \"core\"\nversion = \"10.1.1\"\nvendor = \"acme\"\nseverity = \"high\"\nreleased = 2026-01-02\n{extra}\n"
    )
}

pub fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes `dir/ID.patch` as a tar of `manifest_text` (with a [[files]] entry
/// appended per payload) and the payloads.
pub fn write_patch(
    dir: &Path,
    id: &str,
    manifest_text: &str,
    payloads: &[(&str, &[u8])],
) -> PathBuf {
    let mut text = manifest_text.to_string();
    for (path, data) in payloads {
        text.push_str(&format!(
            "\n[[files]]\npath = \"{path}\"\nsha256 = \"{}\"\nsize = {}\nmode = \"0644\"\n",
            sha(data),
            data.len()
        ));
    }
    let entries: Vec<(String, Vec<u8>)> = payloads
        .iter()
        .map(|(p, d)| (format!("files/{p}"), d.to_vec()))
        .collect();
    write_raw(dir, id, &text, &entries)
}

/// Writes a tar with `PATCH.toml` = `text` and the given raw entries.
pub fn write_raw(dir: &Path, id: &str, text: &str, entries: &[(String, Vec<u8>)]) -> PathBuf {
    let path = dir.join(format!("{id}.patch"));
    let mut bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut bytes);
        archive::append(&mut b, "PATCH.toml", 0o644, text.as_bytes()).unwrap();
        for (name, data) in entries {
            archive::append(&mut b, name, 0o644, data).unwrap();
        }
        b.finish().unwrap();
    }
    fs::write(&path, bytes).unwrap();
    path
}

/// A good patch with one payload file.
pub fn good(dir: &Path, id: &str, extra: &str) -> PathBuf {
    write_patch(
        dir,
        id,
        &manifest(id, extra),
        &[("opt/gw/lib.so", format!("payload of {id}").as_bytes())],
    )
}

/// Like [`write_patch`], with a mode per payload file.
pub fn write_patch_modes(
    dir: &Path,
    id: &str,
    manifest_text: &str,
    payloads: &[(&str, &[u8], u32)],
) -> PathBuf {
    let mut text = manifest_text.to_string();
    for (path, data, mode) in payloads {
        text.push_str(&format!(
            "\n[[files]]\npath = \"{path}\"\nsha256 = \"{}\"\nsize = {}\nmode = \"{mode:04o}\"\n",
            sha(data),
            data.len()
        ));
    }
    let path = dir.join(format!("{id}.patch"));
    let mut bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut bytes);
        archive::append(&mut b, "PATCH.toml", 0o644, text.as_bytes()).unwrap();
        for (name, data, mode) in payloads {
            archive::append(&mut b, &format!("files/{name}"), *mode, data).unwrap();
        }
        b.finish().unwrap();
    }
    fs::write(&path, bytes).unwrap();
    path
}

/// Copies a directory tree: files with their permission bits, symbolic
/// links as links, directories with their modes (set after their content).
pub fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::symlink;
    let meta = fs::symlink_metadata(from).unwrap();
    if meta.file_type().is_symlink() {
        symlink(fs::read_link(from).unwrap(), to).unwrap();
    } else if meta.is_dir() {
        fs::create_dir(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
        fs::set_permissions(to, meta.permissions()).unwrap();
    } else {
        fs::copy(from, to).unwrap();
    }
}

/// Every entry below `root` (relative path → kind, mode and SHA-256 of a
/// file's bytes or a link's target), for comparing trees and naming what
/// differs. `skip` leaves out entries whose relative path starts with it.
pub fn listing(root: &Path, skip: &[&str]) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(
        root: &Path,
        dir: &Path,
        skip: &[&str],
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let kind = meta.file_type();
            if kind.is_symlink() {
                let to = fs::read_link(&path).unwrap();
                out.insert(rel, format!("link -> {}", to.display()));
            } else if kind.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                walk(root, &path, skip, out);
            } else if kind.is_file() {
                out.insert(
                    rel,
                    format!("file {mode:o} {}", sha(&fs::read(&path).unwrap())),
                );
            } else {
                out.insert(rel, format!("special {mode:o} {:?}", kind));
            }
        }
    }
    let mut out = Default::default();
    walk(root, root, skip, &mut out);
    out
}

/// What differs between two listings, one line per path.
pub fn diff_listings(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut keys: std::collections::BTreeSet<&String> = a.keys().collect();
    keys.extend(b.keys());
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} vs {:?}", a.get(k), b.get(k)))
        .collect()
}

/// Runs the real binary with `args`, never the user's default lab.
pub fn patchdeck(args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("patchdeck")
        .unwrap()
        .env_remove("PATCHDECK_LAB")
        .args(args)
        .output()
        .unwrap()
}

/// Stdout as JSON, or a failure that shows what came out instead.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A demo lab of 120 patches under `dir`.
pub fn demo_lab(dir: &Path) -> String {
    let lab = dir.join("lab").display().to_string();
    let out = patchdeck(&["demo", "--lab", &lab, "--patches", "120"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab
}

/// Lets a demo lab use unsigned patches: a new demo lab requires
/// signatures (docs/trust.md), and tests that add hand-made patches to it
/// are about other rules.
pub fn allow_unsigned(lab: &Path) {
    let path = lab.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config.toml");
    let changed = text.replace("require_signatures = true", "require_signatures = false");
    assert_ne!(text, changed, "{} requires signatures", path.display());
    std::fs::write(&path, changed).expect("config.toml");
}
