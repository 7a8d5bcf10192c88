//! `depot mirror` through the real binary: verified copies, only what is
//! missing or changed, resumed after an interruption, a second run copying
//! nothing, filters, and the lab's `[depot] upstream`.

mod common;

use std::path::Path;

use common::{demo_lab, json, patchdeck};

fn mirror(lab: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["depot", "mirror", "--lab", lab, "--json"];
    args.extend(extra);
    let out = patchdeck(&args);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

fn copied(r: &serde_json::Value) -> Vec<String> {
    r["copied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn patch_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".patch"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_second_run_copies_nothing_and_an_interrupted_one_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let upstream = Path::new(&lab).join("depot").display().to_string();
    let to = tmp.path().join("mirror");
    let to_s = to.display().to_string();

    let first = mirror(&lab, &["--from", &upstream, "--to", &to_s]);
    let all = patch_files(Path::new(&upstream));
    assert_eq!(patch_files(&to), all);
    assert_eq!(
        copied(&first).len(),
        2 * all.len() + 1,
        "patches, their signatures and categories.toml"
    );
    for f in &all {
        assert_eq!(
            std::fs::read(to.join(f)).unwrap(),
            std::fs::read(Path::new(&upstream).join(f)).unwrap()
        );
    }

    let second = mirror(&lab, &["--from", &upstream, "--to", &to_s]);
    assert!(copied(&second).is_empty(), "{second}");
    assert_eq!(second["unchanged"], 2 * all.len() + 1);

    // An interruption: one file never arrived, one arrived damaged, and a
    // temporary file was left behind. The next run repairs exactly those.
    std::fs::remove_file(to.join(&all[0])).unwrap();
    std::fs::write(to.join(&all[1]), b"half a patch").unwrap();
    std::fs::write(to.join(format!(".mirror-{}.partial", all[2])), b"half").unwrap();
    let third = mirror(&lab, &["--from", &upstream, "--to", &to_s]);
    let mut got = copied(&third);
    got.sort();
    assert_eq!(got, vec![all[0].clone(), all[1].clone()]);
    assert_eq!(third["partials_removed"], 1);
    assert!(!to.join(format!(".mirror-{}.partial", all[2])).exists());
    assert!(copied(&mirror(&lab, &["--from", &upstream, "--to", &to_s])).is_empty());
}

#[test]
fn filters_narrow_the_mirror_and_broken_files_are_not_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = demo_lab(tmp.path());
    let upstream = Path::new(&lab).join("depot");
    std::fs::write(upstream.join("ZZ_9999.patch"), b"not a patch").unwrap();
    let to = tmp.path().join("mirror");
    let args = vec![
        "depot".to_string(),
        "mirror".into(),
        "--lab".into(),
        lab.clone(),
        "--from".into(),
        upstream.display().to_string(),
        "--to".into(),
        to.display().to_string(),
        "--filter".into(),
        "kernel".into(),
        "--json".into(),
    ];
    let out = patchdeck(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "the broken file is reported");
    let r = json(&out);
    assert!(r["failed"].to_string().contains("ZZ_9999"));
    let files = patch_files(&to);
    assert!(!files.is_empty());
    assert!(files.iter().all(|f| f.starts_with("KRN_")), "{files:?}");
}

#[test]
fn the_labs_upstream_is_used_without_from() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream_lab = demo_lab(&tmp.path().join("up"));
    let lab = tmp.path().join("site");
    std::fs::create_dir_all(lab.join("depot")).unwrap();
    std::fs::write(
        lab.join("config.toml"),
        format!(
            "[depot]\nupstream = {:?}\n",
            format!("{upstream_lab}/depot")
        ),
    )
    .unwrap();
    let lab_s = lab.display().to_string();
    let r = mirror(&lab_s, &[]);
    assert!(!copied(&r).is_empty());
    assert_eq!(
        patch_files(&lab.join("depot")),
        patch_files(&Path::new(&upstream_lab).join("depot"))
    );
    let out = patchdeck(&["depot", "list", "--lab", &lab_s, "--json"]);
    assert!(out.status.success());
    // Without an upstream or --from: a usage error saying what to do.
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(bare.join("depot")).unwrap();
    let out = patchdeck(&["depot", "mirror", "--lab", &bare.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream"));
}
