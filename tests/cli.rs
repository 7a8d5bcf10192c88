//! The promised command-line interface: JSON shapes, exit codes, errors
//! that name what is wrong. Runs the real binary on a demo lab.

mod common;

use serde_json::Value;
use std::path::Path;

use common::{demo_lab, json, patchdeck};

#[test]
fn depot_list_json_has_the_promised_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let out = patchdeck(&["depot", "list", "--lab", &lab, "--json"]);
    assert!(out.status.success());
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 120);
    for key in [
        "id",
        "title",
        "product",
        "fileset",
        "version",
        "categories",
        "supersedes",
        "requires",
        "severity",
        "restart",
        "hot",
    ] {
        assert!(rows.iter().all(|r| r.get(key).is_some()), "missing {key}");
    }
    // Categories are after inheritance: a superseder has its predecessor's.
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap();
    let inherited = rows.iter().any(|r| {
        let mine: Vec<&Value> = r["categories"].as_array().unwrap().iter().collect();
        r["supersedes"].as_array().unwrap().iter().all(|old| {
            by_id(old.as_str().unwrap())["categories"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| *c != "special_release" && *c != "manual_dependencies")
                .all(|c| mine.contains(&c))
        }) && !r["supersedes"].as_array().unwrap().is_empty()
    });
    assert!(inherited);
}

#[test]
fn filter_and_query_narrow_the_list() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let out = patchdeck(&[
        "depot",
        "list",
        "--lab",
        &lab,
        "--json",
        "--filter",
        "*.*,c=critical_patch",
    ]);
    let rows = json(&out);
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty() && rows.len() < 120);
    assert!(rows.iter().all(|r| {
        r["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "critical_patch")
    }));

    let out = patchdeck(&[
        "depot", "list", "--lab", &lab, "--json", "--filter", "kernel", "--filter", "crypto",
    ]);
    let rows = json(&out);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["product"] == "kernel" || r["product"] == "crypto")
    );

    let out = patchdeck(&[
        "depot", "list", "--lab", &lab, "--json", "--query", "GW_1001",
    ]);
    assert_eq!(json(&out)[0]["id"], "GW_1001", "the exact id ranks first");
}

#[test]
fn a_bad_filter_is_bad_input_and_points_at_the_column() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let out = patchdeck(&["depot", "list", "--lab", &lab, "--filter", "*.*,zz=1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column 5"), "{err}");
}

#[test]
fn depot_check_exits_1_naming_the_broken_file() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let out = patchdeck(&["depot", "check", "--lab", &lab]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(Path::new(&lab).join("depot/ZZ_9.patch"), b"garbage").unwrap();
    let out = patchdeck(&["depot", "check", "--lab", &lab, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let body = json(&out);
    assert_eq!(body["ok"], 120);
    assert_eq!(body["broken"][0]["file"], "ZZ_9.patch");
    // The list still works and says what it left out.
    let out = patchdeck(&["depot", "list", "--lab", &lab]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 broken"));
}

#[test]
fn depot_flag_reads_a_depot_without_a_lab() {
    let tmp = tempfile::tempdir().unwrap();
    common::good(tmp.path(), "GW_7", "");
    let out = patchdeck(&[
        "depot",
        "list",
        "--depot",
        &tmp.path().display().to_string(),
        "--json",
    ]);
    assert!(out.status.success());
    assert_eq!(json(&out)[0]["id"], "GW_7");
    let out = patchdeck(&[
        "depot",
        "list",
        "--lab",
        &tmp.path().join("nope").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("patchdeck demo --lab"));
}

#[test]
fn select_json_shape_order_and_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    common::good(d, "A1", "categories = [\"security\"]");
    common::good(d, "A2", "supersedes = [\"A1\"]");
    common::good(d, "B1", "requires = [\"C1\"]");
    common::good(d, "C1", "");
    let depot = d.display().to_string();
    let out = patchdeck(&["select", "--depot", &depot, "--json", "B1", "A2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = json(&out);
    let ids: Vec<&str> = body["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let pos = |id: &str| ids.iter().position(|x| *x == id).unwrap();
    assert!(pos("C1") < pos("B1"), "prerequisite first: {ids:?}");
    assert!(
        body["patches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["reason"].is_string())
    );
    assert!(body["dropped"].is_array() && body["problems"].as_array().unwrap().is_empty());

    // Autoselection keeps only the chain top and says what it dropped.
    let out = patchdeck(&[
        "select",
        "--depot",
        &depot,
        "--json",
        "gateway",
        "--filter",
        "*.*,c=security",
    ]);
    let body = json(&out);
    let ids: Vec<&str> = body["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A2"]);
    assert_eq!(body["dropped"][0]["id"], "A1");
    assert_eq!(body["dropped"][0]["superseded_by"], "A2");

    // Naming a superseded patch beside its superseder is an error.
    let out = patchdeck(&["select", "--depot", &depot, "--json", "A1", "A2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!json(&out)["problems"].as_array().unwrap().is_empty());

    // An unknown id is bad input, as it is for install.
    let out = patchdeck(&["select", "--depot", &depot, "NOPE_1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOPE_1"));
}

#[test]
fn pack_and_add_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("files/etc")).unwrap();
    std::fs::write(src.join("PATCH.toml"), common::manifest("GW_50", "")).unwrap();
    std::fs::write(src.join("files/etc/gw.conf"), b"a=1\n").unwrap();
    let out_file = tmp.path().join("GW_50.patch").display().to_string();
    let out = patchdeck(&["pack", &src.display().to_string(), "-o", &out_file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let lab = demo_lab(tmp.path());
    let out = patchdeck(&["depot", "add", "--lab", &lab, &out_file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = patchdeck(&[
        "depot",
        "list",
        "--lab",
        &lab,
        "--json",
        "--filter",
        "*,id=GW_50",
    ]);
    assert_eq!(json(&out).as_array().unwrap().len(), 1);

    std::os::unix::fs::symlink("/etc/hostname", src.join("files/etc/link")).unwrap();
    let out = patchdeck(&["pack", &src.display().to_string(), "-o", &out_file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));

    let junk = tmp.path().join("JUNK_1.patch");
    std::fs::write(&junk, b"junk").unwrap();
    let out = patchdeck(&["depot", "add", "--lab", &lab, &junk.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JUNK_1.patch"));
}

#[test]
fn demo_is_deterministic_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a").display().to_string();
    let b = tmp.path().join("b").display().to_string();
    for lab in [&a, &b] {
        assert!(
            patchdeck(&["demo", "--lab", lab, "--seed", "42", "--patches", "60"])
                .status
                .success()
        );
    }
    for file in ["fleet.toml", "depot/categories.toml"] {
        assert_eq!(
            std::fs::read(Path::new(&a).join(file)).unwrap(),
            std::fs::read(Path::new(&b).join(file)).unwrap()
        );
    }
    // Signatures differ from run to run (a fresh demo key); patches do not.
    let list = |lab: &str| {
        let mut rows = json(&patchdeck(&["depot", "list", "--lab", lab, "--json"]));
        for row in rows.as_array_mut().unwrap() {
            assert_eq!(row["signature"]["state"], "signed", "{row}");
            row.as_object_mut().unwrap().remove("signature");
        }
        rows
    };
    assert_eq!(list(&a), list(&b));
    let out = patchdeck(&["demo", "--lab", &a]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out = patchdeck(&[
        "demo",
        "--lab",
        &tmp.path().join("c").display().to_string(),
        "--nodes",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_flags_are_usage_errors() {
    let out = patchdeck(&["depot", "list", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_fits_an_80_column_console() {
    for args in [
        vec!["--help"],
        vec!["rollout", "start", "--help"],
        vec!["install", "--help"],
        vec!["replicate", "--help"],
    ] {
        let out = patchdeck(&args);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let wide: Vec<&str> = text.lines().filter(|l| l.chars().count() > 80).collect();
        assert!(wide.is_empty(), "{args:?}: {wide:?}");
    }
}

/// Escape sequences in every text field of a manifest (legal TOML) reach a
/// terminal only as visible text (`^[`) through `depot list`, `select` and
/// `depot check`; `--json` keeps them, escaped as JSON escapes them.
#[test]
fn escape_sequences_in_metadata_never_reach_the_terminal_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let depot = tmp.path().join("depot");
    std::fs::create_dir_all(&depot).unwrap();
    let esc = "\\u001b]0;owned\\u0007\\u001b[2J\\u202e";
    let text = format!(
        "id = \"EVIL_1\"\ntitle = \"t{esc}\"\ndescription = \"d{esc}\"\nproduct = \"gateway\"\nfileset = \"f\\u001b\"\nversion = \"1\\u0008.0\"\nvendor = \"v{esc}\"\narch = \"a\\u001b\"\nseverity = \"high\"\nreleased = 2026-01-02\ncategories = [\"c\\u001bx\"]\nbase_version = \"10\\u001b\"\n"
    );
    common::write_raw(&depot, "EVIL_1", &text, &[]);
    // A broken file whose name and message carry escapes too.
    common::write_raw(
        &depot,
        "BAD_1",
        &format!("title = \"{esc}\"\nnonsense"),
        &[],
    );
    let d = depot.display().to_string();
    for args in [
        vec!["depot", "list", "--depot", &d],
        vec!["depot", "check", "--depot", &d],
    ] {
        let out = patchdeck(&args);
        for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let s = String::from_utf8_lossy(bytes);
            assert!(
                !s.contains(['\u{1b}', '\u{7}', '\u{8}', '\u{202e}']),
                "{args:?} {name} carries a raw control character: {s:?}"
            );
        }
    }
    let out = patchdeck(&["depot", "list", "--depot", &d]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("t^[]0;owned^G^[[2J<U+202E>"), "{s}");
    let out = patchdeck(&["depot", "list", "--depot", &d, "--json"]);
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(!raw.contains('\u{1b}') && raw.contains("\\u001b"), "{raw}");
    let rows = json(&out);
    assert_eq!(rows[0]["title"], "t\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}");
}

/// Files given on the command line that are not UTF-8 name the line and
/// the byte offset of the first bad byte.
#[test]
fn input_files_that_are_not_utf8_name_line_and_byte_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let inv = tmp.path().join("inventory.json");
    std::fs::write(&inv, b"{\n  \"node\": \"x\xff\"\n}\n").unwrap();
    let out = patchdeck(&[
        "select",
        "--lab",
        &lab,
        "--inventory",
        inv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("inventory.json:2:") && err.contains("byte offset 14"),
        "{err}"
    );
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("PATCH.toml"), b"title = \"a\"\n# \xfe\n").unwrap();
    let out = patchdeck(&[
        "pack",
        src.to_str().unwrap(),
        "-o",
        tmp.path().join("X_1.patch").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PATCH.toml: line 2:") && err.contains("byte offset 14"),
        "{err}"
    );
}

/// Exit 2 for an id or input file that names nothing, on every verb that
/// takes one, and nothing journaled or changed for it.
#[test]
fn ids_and_paths_that_name_nothing_are_bad_input_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let missing = tmp.path().join("missing").display().to_string();
    let journal_rows = || {
        let out = patchdeck(&["history", "--json", "--lab", &lab]);
        json(&out).as_array().map(Vec::len).unwrap_or(0)
    };
    let before = journal_rows();
    let cases: Vec<Vec<&str>> = vec![
        vec!["rollback", "NOPE_1", "--nodes", "gw-east-1"],
        vec!["commit", "NOPE_1", "--nodes", "gw-east-1,gw-west-2"],
        vec!["remove", "NOPE_1", "--cluster", "edge"],
        vec!["rollback", "NOPE_1", "--cluster", "edge"],
        vec!["install", "NOPE_1", "--nodes", "gw-east-1"],
        vec!["history", "--nodes", "no-such-node"],
        vec!["history", "--patch", "NOPE_1"],
        vec!["rollout", "list", "--cluster", "no-such-cluster"],
        vec!["rollout", "status", "999"],
        vec!["apply", &missing, "--nodes", "gw-east-1"],
    ];
    for args in &cases {
        let mut all = args.clone();
        all.extend(["--lab", &lab]);
        let out = patchdeck(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(journal_rows(), before, "nothing journaled for bad input");
    // Known ids that simply have no rows are not errors.
    let out = patchdeck(&["history", "--nodes", "gw-east-2", "--lab", &lab]);
    assert!(out.status.success());
    let out = patchdeck(&["rollout", "list", "--cluster", "db", "--lab", &lab]);
    assert!(out.status.success());
}
