//! Helpers shared by the integration tests: build patch files by hand.
#![allow(dead_code)]

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
