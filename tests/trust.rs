//! Signed patches and bundles through the real binary (docs/trust.md): a
//! corpus of attacks, each refused with its reason, and interoperability
//! with the standard `minisign` tool (installed by scripts/test).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{demo_lab, json, manifest, patchdeck, write_patch};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> Output {
    let out = patchdeck(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    out
}

/// The command fails with `code` and its output says `words`.
fn refused(args: &[&str], code: i32, words: &str) {
    let out = patchdeck(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
    assert!(
        text(&out).contains(words),
        "{args:?} should say {words:?}: {}",
        text(&out)
    );
}

struct Lab {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    lab: String,
    src: PathBuf,
}

/// A demo lab (signed depot, signatures required) plus a trusted key
/// `ops` and an untrusted key `stranger`, both without passphrase.
fn setup() -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let lab = demo_lab(&dir);
    let keys = dir.join("keys").display().to_string();
    for name in ["ops", "stranger"] {
        ok(&[
            "key",
            "generate",
            "-o",
            &keys,
            "--name",
            name,
            "--no-passphrase",
        ]);
    }
    ok(&[
        "depot",
        "trust",
        "add",
        "--lab",
        &lab,
        &format!("{keys}/ops.pub"),
    ]);
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    Lab {
        _tmp: tmp,
        dir,
        lab,
        src,
    }
}

impl Lab {
    fn key(&self, name: &str) -> String {
        self.dir
            .join("keys")
            .join(format!("{name}.key"))
            .display()
            .to_string()
    }

    /// A gateway patch `id` (version 10.1.1 unless `extra` says) in src/.
    fn patch(&self, id: &str, extra: &str, payload: &str) -> PathBuf {
        write_patch(
            &self.src,
            id,
            &manifest(id, extra),
            &[("opt/gw/trust-test", payload.as_bytes())],
        )
    }

    fn sign(&self, file: &Path, key: &str, comment: Option<&str>) {
        let f = file.display().to_string();
        let k = self.key(key);
        let mut args = vec!["sign", f.as_str(), "--key", k.as_str()];
        if let Some(c) = comment {
            args.extend(["--comment", c]);
        }
        ok(&args);
    }

    fn add(&self, file: &Path) {
        ok(&[
            "depot",
            "add",
            "--lab",
            &self.lab,
            &file.display().to_string(),
        ]);
    }

    /// The patch's `signature` in `depot list --json`.
    fn listed(&self, id: &str) -> serde_json::Value {
        let rows = json(&ok(&["depot", "list", "--lab", &self.lab, "--json"]));
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))["signature"]
            .clone()
    }

    /// Staging `id` is refused (exit 2) naming the patch and `words`, and
    /// the listing calls it untrusted (or unsigned) with the same reason.
    fn refuses(&self, id: &str, words: &str, kind: Option<&str>) {
        refused(
            &["stage", "--lab", &self.lab, id, "--nodes", "gw-east-1"],
            2,
            words,
        );
        refused(
            &["stage", "--lab", &self.lab, id, "--nodes", "gw-east-1"],
            2,
            id,
        );
        let sig = self.listed(id);
        match kind {
            Some(kind) => {
                assert_eq!(sig["state"], "untrusted", "{id}: {sig}");
                assert_eq!(sig["reason"]["kind"], kind, "{id}: {sig}");
            }
            None => assert_eq!(sig["state"], "unsigned", "{id}: {sig}"),
        }
        let out = ok(&["list", "--lab", &self.lab, "--nodes", "gw-east-1", "--json"]);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&format!("\"{id}\"")),
            "{id} reached the node: {}",
            text(&out)
        );
    }
}

#[test]
fn a_patch_signed_by_a_trusted_key_is_staged_and_listed_with_its_signer() {
    let l = setup();
    let p = l.patch("TR_OK", "", "good");
    l.sign(&p, "ops", None);
    l.add(&p);
    assert!(l.dir.join("lab/depot/TR_OK.patch.minisig").is_file());
    let sig = l.listed("TR_OK");
    assert_eq!(sig["state"], "signed", "{sig}");
    assert_eq!(sig["key_name"], "ops", "{sig}");
    ok(&["stage", "--lab", &l.lab, "TR_OK", "--nodes", "gw-east-1"]);
    // The demo's own patches are signed by its key.
    assert_eq!(l.listed("GW_1001")["key_name"], "demo");
    let check = ok(&["depot", "check", "--lab", &l.lab]);
    assert!(
        text(&check).contains("every patch signed by a trusted key"),
        "{}",
        text(&check)
    );
}

#[test]
fn attack_no_signature() {
    let l = setup();
    l.add(&l.patch("TR_NOSIG", "", "x"));
    l.refuses("TR_NOSIG", "has no signature", None);
    refused(&["depot", "check", "--lab", &l.lab], 1, "TR_NOSIG");
}

#[test]
fn attack_tampered_payload() {
    let l = setup();
    let p = l.patch("TR_PAY", "", "the signed payload");
    l.sign(&p, "ops", None);
    l.patch("TR_PAY", "", "a replaced payload");
    l.add(&p);
    l.refuses("TR_PAY", "not what was signed", Some("bad_signature"));
}

#[test]
fn attack_tampered_manifest() {
    let l = setup();
    let p = l.patch("TR_MAN", "", "same payload");
    l.sign(&p, "ops", None);
    l.patch("TR_MAN", "restart = \"reboot\"", "same payload");
    l.add(&p);
    l.refuses("TR_MAN", "not what was signed", Some("bad_signature"));
}

#[test]
fn attack_untrusted_key() {
    let l = setup();
    let p = l.patch("TR_STR", "", "x");
    l.sign(&p, "stranger", None);
    l.add(&p);
    l.refuses(
        "TR_STR",
        "which is not a trusted key",
        Some("untrusted_key"),
    );
}

#[test]
fn attack_valid_signature_moved_to_another_patch() {
    let l = setup();
    let a = l.patch("TR_A", "", "a");
    l.sign(&a, "ops", None);
    let b = l.patch("TR_B", "", "b");
    fs::copy(
        l.src.join("TR_A.patch.minisig"),
        l.src.join("TR_B.patch.minisig"),
    )
    .unwrap();
    l.add(&b);
    l.refuses("TR_B", "bad signature", Some("bad_signature"));
}

#[test]
fn attack_same_bytes_under_another_id() {
    let l = setup();
    // No `id` in the manifest: the same bytes are a valid patch under any name.
    let body = manifest("X", "").replace("id = \"X\"\n", "");
    let a = write_patch(&l.src, "TR_SAME1", &body, &[("opt/gw/same", b"same")]);
    l.sign(&a, "ops", None);
    let b = l.src.join("TR_SAME2.patch");
    fs::copy(&a, &b).unwrap();
    fs::copy(
        l.src.join("TR_SAME1.patch.minisig"),
        l.src.join("TR_SAME2.patch.minisig"),
    )
    .unwrap();
    l.add(&a);
    l.add(&b);
    assert_eq!(l.listed("TR_SAME1")["state"], "signed");
    l.refuses("TR_SAME2", "does not name TR_SAME2", Some("other_id"));
}

#[test]
fn attack_truncated_signature() {
    let l = setup();
    let p = l.patch("TR_TRUNC", "", "x");
    l.sign(&p, "ops", None);
    let sig = l.src.join("TR_TRUNC.patch.minisig");
    let text = fs::read_to_string(&sig).unwrap();
    fs::write(&sig, &text[..text.len() / 2]).unwrap();
    l.add(&p);
    l.refuses("TR_TRUNC", "malformed signature", Some("malformed"));
}

#[test]
fn attack_malformed_signature() {
    let l = setup();
    let p = l.patch("TR_JUNK", "", "x");
    fs::write(
        l.src.join("TR_JUNK.patch.minisig"),
        "this is not a signature\n",
    )
    .unwrap();
    l.add(&p);
    l.refuses("TR_JUNK", "malformed signature", Some("malformed"));
}

#[test]
fn attack_trusted_comment_names_another_id() {
    let l = setup();
    let p = l.patch("TR_CMT", "", "x");
    l.sign(
        &p,
        "ops",
        Some("patchdeck patch id=GW_1001 file=GW_1001.patch"),
    );
    l.add(&p);
    l.refuses("TR_CMT", "does not name TR_CMT", Some("other_id"));
}

#[test]
fn attack_trusted_comment_altered_after_signing() {
    let l = setup();
    let p = l.patch("TR_ALT", "", "x");
    l.sign(&p, "ops", Some("patchdeck patch id=GW_1001"));
    let sig = l.src.join("TR_ALT.patch.minisig");
    let text = fs::read_to_string(&sig)
        .unwrap()
        .replace("id=GW_1001", "id=TR_ALT");
    fs::write(&sig, text).unwrap();
    l.add(&p);
    l.refuses(
        "TR_ALT",
        "trusted comment was altered",
        Some("bad_signature"),
    );
}

#[test]
fn attack_revoked_key() {
    let l = setup();
    let p = l.patch("TR_REV", "", "x");
    l.sign(&p, "ops", None);
    l.add(&p);
    assert_eq!(l.listed("TR_REV")["state"], "signed");
    ok(&["depot", "trust", "remove", "--lab", &l.lab, "ops"]);
    let keys = json(&ok(&["depot", "trust", "list", "--lab", &l.lab, "--json"]));
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "ops" && k["revoked"] == true),
        "{keys}"
    );
    l.refuses("TR_REV", "revoked", Some("revoked"));
    // Rotation: trusting the key again restores what it signed.
    let pubkey = l.dir.join("keys/ops.pub").display().to_string();
    ok(&["depot", "trust", "add", "--lab", &l.lab, &pubkey]);
    assert_eq!(l.listed("TR_REV")["state"], "signed");
    // A key is also removed by the public key file it was added from.
    ok(&["depot", "trust", "remove", "--lab", &l.lab, &pubkey]);
    l.refuses("TR_REV", "revoked", Some("revoked"));
}

#[test]
fn attack_downgrade_is_not_offered_and_install_refuses_it() {
    let l = setup();
    // gw-east-1 has gateway.core at the demo's base; bring it to 10.9.7.
    let versioned = |id: &str, v: &str| {
        let body = manifest(id, "").replace("version = \"10.1.1\"", &format!("version = \"{v}\""));
        write_patch(&l.src, id, &body, &[("opt/gw/trust-test", id.as_bytes())])
    };
    let new = versioned("TR_NEW", "10.9.7");
    let old = versioned("TR_OLD", "10.0.1");
    for p in [&new, &old] {
        l.sign(p, "ops", None);
        l.add(p);
    }
    ok(&[
        "stage",
        "--lab",
        &l.lab,
        "TR_NEW",
        "TR_OLD",
        "--nodes",
        "gw-east-1",
    ]);
    ok(&["install", "--lab", &l.lab, "TR_NEW", "--nodes", "gw-east-1"]);
    // The resolver does not offer it against the node...
    let sel = patchdeck(&[
        "select",
        "--lab",
        &l.lab,
        "TR_OLD",
        "--match-target",
        "gw-east-1",
        "--json",
    ]);
    assert!(text(&sel).contains("downgrade"), "{}", text(&sel));
    // ... and install refuses it, saying so.
    refused(
        &["install", "--lab", &l.lab, "TR_OLD", "--nodes", "gw-east-1"],
        1,
        "downgrade",
    );
    let list = ok(&["list", "--lab", &l.lab, "--nodes", "gw-east-1", "--json"]);
    let rows = json(&list);
    let state = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["patch"] == "TR_OLD")
        .map(|p| p["state"].clone());
    assert_eq!(state, Some(serde_json::json!("staged")), "{rows}");
}

#[test]
fn attack_unsigned_or_foreign_bundle_is_refused_by_apply() {
    let l = setup();
    let snap = l.dir.join("north.snap").display().to_string();
    ok(&[
        "snapshot", "--lab", &l.lab, "--nodes", "north-1", "-o", &snap,
    ]);
    let bundle = l.dir.join("north.bundle").display().to_string();
    // Unsigned.
    ok(&["prepare", "--lab", &l.lab, &snap, "gateway", "-o", &bundle]);
    refused(
        &["apply", "--lab", &l.lab, &bundle, "--nodes", "north-1"],
        2,
        "has no signature",
    );
    // Signed by a key the site does not trust.
    ok(&[
        "prepare",
        "--lab",
        &l.lab,
        &snap,
        "gateway",
        "-o",
        &bundle,
        "--key",
        &l.key("stranger"),
    ]);
    refused(
        &["apply", "--lab", &l.lab, &bundle, "--nodes", "north-1"],
        2,
        "not a trusted key",
    );
    // A patch's valid signature passed off as the bundle's.
    let p = l.patch("TR_BND", "", "x");
    l.sign(&p, "ops", None);
    fs::copy(
        l.src.join("TR_BND.patch.minisig"),
        format!("{bundle}.minisig"),
    )
    .unwrap();
    refused(
        &["apply", "--lab", &l.lab, &bundle, "--nodes", "north-1"],
        2,
        "refused",
    );
    // `patchdeck sign` of a bundle writes the bundle's signature: applied.
    ok(&["sign", &bundle, "--key", &l.key("ops")]);
    ok(&["apply", "--lab", &l.lab, &bundle, "--nodes", "north-1"]);
    // Signed by a trusted key at prepare: accepted.
    ok(&[
        "prepare",
        "--lab",
        &l.lab,
        &snap,
        "gateway",
        "-o",
        &bundle,
        "--key",
        &l.key("ops"),
    ]);
    ok(&["apply", "--lab", &l.lab, &bundle, "--nodes", "north-1"]);
}

#[test]
fn attack_a_node_with_keys_refuses_an_unsigned_stage_from_a_compromised_console() {
    let l = setup();
    ok(&["trust", "push", "--lab", &l.lab, "--nodes", "gw-east-2"]);
    // Like any change to a node, it is journaled, attributed and settled.
    let rows = common::json(&ok(&[
        "history",
        "--lab",
        &l.lab,
        "--nodes",
        "gw-east-2",
        "--json",
    ]));
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["op"], "trust");
    assert_eq!(rows[0]["ok"], true);
    assert!(
        rows[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ops")),
        "names the keys: {rows:?}"
    );
    // The console is compromised: its lab no longer requires signatures.
    common::allow_unsigned(Path::new(&l.lab));
    l.add(&l.patch("TR_EVIL", "", "evil"));
    let stranger = l.patch("TR_EVIL2", "", "evil too");
    l.sign(&stranger, "stranger", None);
    l.add(&stranger);
    // The lab lets them through; the node does not.
    refused(
        &["stage", "--lab", &l.lab, "TR_EVIL", "--nodes", "gw-east-2"],
        1,
        "came without a signature",
    );
    refused(
        &["stage", "--lab", &l.lab, "TR_EVIL2", "--nodes", "gw-east-2"],
        1,
        "not a trusted key",
    );
    // A node without keys takes it, as before signatures.
    ok(&["stage", "--lab", &l.lab, "TR_EVIL", "--nodes", "gw-east-1"]);
    // What the keys signed still goes through.
    ok(&["stage", "--lab", &l.lab, "GW_1001", "--nodes", "gw-east-2"]);
}

/// The `minisign` binary; its absence fails the test (scripts/test installs it).
fn minisign() -> &'static str {
    let found = std::process::Command::new("minisign")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the minisign tool is missing: run scripts/test, or apt-get install minisign"
    );
    "minisign"
}

fn run_minisign(args: &[&str]) -> Output {
    let out = std::process::Command::new(minisign())
        .args(args)
        .output()
        .expect("run minisign");
    assert!(out.status.success(), "minisign {args:?}: {}", text(&out));
    out
}

#[test]
fn signatures_interoperate_with_the_minisign_tool() {
    let l = setup();
    // minisign signs, patchdeck accepts (the id as the trusted comment).
    let pk = l.dir.join("ms.pub").display().to_string();
    let sk = l.dir.join("ms.key").display().to_string();
    run_minisign(&["-G", "-W", "-p", &pk, "-s", &sk]);
    ok(&["depot", "trust", "add", "--lab", &l.lab, &pk]);
    let p = l.patch("TR_MS", "", "minisign");
    let f = p.display().to_string();
    run_minisign(&["-S", "-s", &sk, "-t", "TR_MS", "-m", &f]);
    l.add(&p);
    let sig = l.listed("TR_MS");
    assert_eq!(sig["state"], "signed", "{sig}");
    ok(&["stage", "--lab", &l.lab, "TR_MS", "--nodes", "gw-east-1"]);
    // patchdeck signs, minisign verifies, trusted comment included.
    let q = l.patch("TR_PD", "", "patchdeck");
    l.sign(&q, "ops", None);
    let ops_pub = l.dir.join("keys/ops.pub").display().to_string();
    let out = run_minisign(&["-V", "-p", &ops_pub, "-m", &q.display().to_string()]);
    assert!(
        text(&out).contains("patchdeck patch id=TR_PD"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_passphrase_protects_the_secret_key() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys").display().to_string();
    let pass = tmp.path().join("pass");
    fs::write(&pass, "correct horse\n").unwrap();
    let pass = pass.display().to_string();
    ok(&[
        "key",
        "generate",
        "-o",
        &keys,
        "--name",
        "k",
        "--passphrase-file",
        &pass,
    ]);
    // Never overwritten.
    refused(
        &[
            "key",
            "generate",
            "-o",
            &keys,
            "--name",
            "k",
            "--no-passphrase",
        ],
        2,
        "already exists",
    );
    let secret = fs::read_to_string(format!("{keys}/k.key")).unwrap();
    assert!(secret.contains("secret key"), "{secret}");
    // The lab never takes a secret key.
    let lab = demo_lab(tmp.path());
    refused(
        &[
            "depot",
            "trust",
            "add",
            "--lab",
            &lab,
            &format!("{keys}/k.key"),
        ],
        2,
        "secret key",
    );
    let p = common::good(tmp.path(), "TR_PASS", "");
    let f = p.display().to_string();
    let wrong = tmp.path().join("wrong");
    fs::write(&wrong, "wrong\n").unwrap();
    refused(
        &[
            "sign",
            &f,
            "--key",
            &format!("{keys}/k.key"),
            "--passphrase-file",
            &wrong.display().to_string(),
        ],
        2,
        "cannot open the secret key",
    );
    ok(&[
        "sign",
        &f,
        "--key",
        &format!("{keys}/k.key"),
        "--passphrase-file",
        &pass,
    ]);
    run_minisign(&["-V", "-p", &format!("{keys}/k.pub"), "-m", &f]);
}

#[test]
fn a_lab_without_the_setting_keeps_working_and_says_its_depot_is_unsigned() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let config = Path::new(&lab).join("config.toml");
    let text_before = fs::read_to_string(&config).unwrap();
    let cut = text_before.split("[trust]").next().unwrap().to_string();
    fs::write(&config, cut).unwrap();
    fs::remove_dir_all(Path::new(&lab).join("trust")).unwrap();
    for e in fs::read_dir(Path::new(&lab).join("depot")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "minisig") {
            fs::remove_file(p).unwrap();
        }
    }
    let check = ok(&["depot", "check", "--lab", &lab]);
    assert!(text(&check).contains("depot unsigned"), "{}", text(&check));
    ok(&["stage", "--lab", &lab, "GW_1001", "--nodes", "gw-east-1"]);
}

#[test]
fn a_node_over_the_protocol_takes_keys_and_refuses_what_they_did_not_sign() {
    let l = setup();
    // gw-west-2 is reached through `patchdeck node`, as ssh would run it.
    let fleet = Path::new(&l.lab).join("fleet.toml");
    let root = Path::new(&l.lab).join("nodes/gw-west-2");
    let exe = env!("CARGO_BIN_EXE_patchdeck");
    let text = fs::read_to_string(&fleet).unwrap().replace(
        "root = \"nodes/gw-west-2\"",
        &format!(
            "command = \"{exe} node --root {} --name gw-west-2\"",
            root.display()
        ),
    );
    fs::write(&fleet, text).unwrap();
    let pushed = json(&ok(&[
        "trust",
        "push",
        "--lab",
        &l.lab,
        "--nodes",
        "gw-west-2",
        "--json",
    ]));
    assert_eq!(pushed[0]["keys"], 2, "{pushed}");
    assert!(root.join("var/lib/patchdeck/trust").is_dir());
    common::allow_unsigned(Path::new(&l.lab));
    l.add(&l.patch("TR_WIRE", "", "unsigned"));
    refused(
        &["stage", "--lab", &l.lab, "TR_WIRE", "--nodes", "gw-west-2"],
        1,
        "came without a signature",
    );
    refused(
        &[
            "replicate",
            "--lab",
            &l.lab,
            "TR_WIRE",
            "--nodes",
            "gw-west-2",
            "--wait",
        ],
        1,
        "gw-west-2",
    );
    // The signature travels with the stage request.
    let signed = l.patch("TR_WIRE_OK", "", "signed");
    l.sign(&signed, "ops", None);
    l.add(&signed);
    ok(&[
        "stage",
        "--lab",
        &l.lab,
        "TR_WIRE_OK",
        "--nodes",
        "gw-west-2",
    ]);
    ok(&[
        "replicate",
        "--lab",
        &l.lab,
        "GW_1001",
        "--nodes",
        "gw-west-2",
        "--wait",
    ]);
}
