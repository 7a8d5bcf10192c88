//! Tests of the server and the client over real pipes and children.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::child::{sigpipe_pending, write_quietly};
use super::server::serve;
use super::wire::{MAX_REQUEST_LINE, SOFTWARE, UPLOAD_PREFIX, base64_encode};
use crate::engine::node::{Node, STORE_DIR};

/// Runs `serve` on `input` over a fresh node; returns the result and
/// the answers, one JSON value per line.
fn run(root: &Path, input: &str) -> (io::Result<()>, Vec<Value>) {
    let mut out = Vec::new();
    let r = serve(root, "gw-1", input.as_bytes(), &mut out);
    let text = String::from_utf8(out).expect("the server writes UTF-8");
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (r, lines)
}

fn node_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

const HELLO: &str = r#"{"id":0,"op":"hello","protocol":1,"client":"patchdeck 0.1.0"}"#;

fn error_kind(v: &Value) -> &str {
    v["error"]["kind"].as_str().unwrap_or("")
}

fn error_message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

#[test]
fn hello_names_protocol_software_node_and_root() {
    let tmp = node_dir();
    let (r, out) = run(
        tmp.path(),
        &format!("{HELLO}\n{{\"id\":1,\"op\":\"bye\"}}\n"),
    );
    r.unwrap();
    assert_eq!(
        out[0],
        json!({"id":0,"ok":true,"result":{
            "protocol":1,
            "server":SOFTWARE,
            "node":"gw-1",
            "root":tmp.path().display().to_string(),
        }})
    );
    assert_eq!(out[1], json!({"id":1,"ok":true,"result":null}));
    assert_eq!(out.len(), 2);
}

#[test]
fn an_unknown_service_state_is_that_fields_error_not_an_unknown_op() {
    let tmp = node_dir();
    let input = format!("{HELLO}\n{{\"id\":1,\"op\":\"service\",\"state\":\"sideways\"}}\n");
    let (r, out) = run(tmp.path(), &input);
    r.unwrap();
    assert_eq!(error_kind(&out[1]), "protocol");
    let m = error_message(&out[1]);
    assert!(!m.contains("unknown op"), "{m}");
    assert!(
        m.contains("service: `state`: unknown variant `sideways`"),
        "{m}"
    );
}

#[test]
fn an_upload_announcing_more_than_a_patch_or_the_disk_is_refused_at_once() {
    let tmp = node_dir();
    let free = crate::engine::node::space::free(tmp.path()).unwrap().bytes;
    let cases = [
        (1u64 << 62, "a patch may be at most"),
        (
            crate::engine::archive::MAX_PATCH_BYTES + 1,
            "a patch may be at most",
        ),
    ];
    for (size, words) in cases {
        let input = format!("{HELLO}\n{}\n", upload_line(1, "GW_1", 0, size, b"x"));
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        assert_eq!(error_kind(&out[1]), "invalid", "{}", out[1]);
        let m = error_message(&out[1]);
        assert!(m.contains(words) && m.contains(&size.to_string()), "{m}");
    }
    // Within the patch limit but more than this disk holds.
    if free < crate::engine::archive::MAX_PATCH_BYTES {
        let input = format!("{HELLO}\n{}\n", upload_line(1, "GW_1", 0, free, b"x"));
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        assert_eq!(error_kind(&out[1]), "invalid", "{}", out[1]);
        assert!(error_message(&out[1]).contains("bytes free"), "{}", out[1]);
    }
    let leftovers: Vec<_> = fs::read_dir(tmp.path().join(STORE_DIR))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(UPLOAD_PREFIX))
        .collect();
    assert!(leftovers.is_empty(), "an upload file was created");
}

#[test]
fn an_unknown_version_is_refused_naming_both_and_the_server_stops() {
    let tmp = node_dir();
    let input = "{\"id\":0,\"op\":\"hello\",\"protocol\":99,\"client\":\"patchdeck 9.0.0\"}\n{\"id\":1,\"op\":\"list\"}\n";
    let (r, out) = run(tmp.path(), input);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(out.len(), 1, "nothing is answered after the refusal");
    assert_eq!(
        (out[0]["id"].as_u64(), out[0]["ok"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(error_kind(&out[0]), "protocol");
    let m = error_message(&out[0]);
    assert!(m.contains("protocol 99") && m.contains("protocol 1"), "{m}");
    assert!(
        !tmp.path().join(STORE_DIR).exists(),
        "the node was not opened"
    );
}

#[test]
fn requests_before_hello_are_refused_and_hello_still_works() {
    let tmp = node_dir();
    let input = format!("{{\"id\":5,\"op\":\"list\"}}\n{HELLO}\n{{\"id\":6,\"op\":\"list\"}}\n");
    let (r, out) = run(tmp.path(), &input);
    r.unwrap();
    assert_eq!(out[0]["id"], 5);
    assert_eq!(error_kind(&out[0]), "protocol");
    assert!(error_message(&out[0]).contains("hello"), "{}", out[0]);
    assert_eq!(out[1]["ok"], true);
    assert_eq!(out[2], json!({"id":6,"ok":true,"result":[]}));
}

#[test]
fn malformed_lines_get_errors_and_the_server_keeps_serving() {
    let tmp = node_dir();
    let bad = [
        ("this is not json", None, "not JSON"),
        ("[1,2]", None, "JSON object"),
        ("{\"op\":\"list\"}", None, "missing field `id`"),
        ("{\"id\":-1,\"op\":\"list\"}", None, "`id`"),
        ("{\"id\":7}", Some(7), "missing field `op`"),
        ("{\"id\":8,\"op\":\"frobnicate\"}", Some(8), "unknown op"),
        (
            "{\"id\":9,\"op\":\"install\",\"save\":true}",
            Some(9),
            "missing field `patch`",
        ),
        (
            "{\"id\":10,\"op\":\"install\",\"patch\":\"GW_1\",\"save\":\"yes\"}",
            Some(10),
            "invalid type",
        ),
        (
            "{\"id\":11,\"op\":\"hello\",\"protocol\":1}",
            Some(11),
            "already",
        ),
    ];
    let mut input = format!("{HELLO}\n\n");
    for (line, _, _) in &bad {
        input.push_str(line);
        input.push('\n');
    }
    input.push_str("{\"id\":12,\"op\":\"list\",\"from_the_future\":true}");
    let (r, out) = run(tmp.path(), &input);
    r.unwrap();
    assert_eq!(out.len(), bad.len() + 2, "{out:?}");
    for (i, (line, id, says)) in bad.iter().enumerate() {
        let answer = &out[i + 1];
        assert_eq!(answer["ok"], false, "{line}");
        assert_eq!(answer["id"].as_u64(), *id, "{line}: {answer}");
        assert_eq!(error_kind(answer), "protocol", "{line}");
        let m = error_message(answer);
        assert!(m.contains(says), "{line}: {m}");
        assert!(m.starts_with(&format!("line {}:", i + 3)), "{line}: {m}");
    }
    // The last line has no newline and an unknown field: still served.
    assert_eq!(out[bad.len() + 1], json!({"id":12,"ok":true,"result":[]}));
}

#[test]
fn unknown_op_lists_the_known_ones() {
    let tmp = node_dir();
    let (_, out) = run(
        tmp.path(),
        &format!("{HELLO}\n{{\"id\":1,\"op\":\"reboot\"}}\n"),
    );
    let m = error_message(&out[1]);
    assert!(
        m.contains("reboot") && m.contains("install") && m.contains("verify"),
        "{m}"
    );
}

#[test]
fn eof_ends_the_session_cleanly() {
    let tmp = node_dir();
    let (r, out) = run(tmp.path(), "");
    r.unwrap();
    assert!(out.is_empty());
    let (r, out) = run(tmp.path(), HELLO);
    r.unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn an_overlong_line_is_refused_and_skipped() {
    let tmp = node_dir();
    let long = format!(
        "{{\"id\":1,\"op\":\"list\",\"pad\":\"{}\"}}",
        "x".repeat(MAX_REQUEST_LINE)
    );
    let input = format!("{HELLO}\n{long}\n{{\"id\":2,\"op\":\"list\"}}\n");
    let (r, out) = run(tmp.path(), &input);
    r.unwrap();
    assert_eq!(out[1]["id"], Value::Null);
    assert!(error_message(&out[1]).contains("longer than"), "{}", out[1]);
    assert_eq!(out[2]["ok"], true);
}

#[test]
fn a_missing_root_fails_the_handshake() {
    let tmp = node_dir();
    let root = tmp.path().join("absent");
    let (r, out) = run(&root, HELLO);
    assert!(r.is_err());
    assert_eq!(error_kind(&out[0]), "io");
    assert!(
        error_message(&out[0]).contains("not a directory"),
        "{}",
        out[0]
    );
    assert!(!root.exists(), "serving never creates the root");
}

fn upload_line(id: u64, patch: &str, offset: u64, size: u64, data: &[u8]) -> String {
    json!({"id":id,"op":"upload","patch":patch,"offset":offset,"size":size,"data":base64_encode(data)})
        .to_string()
}

fn tiny_patch(id: &str) -> Vec<u8> {
    let payload = b"library\n";
    let manifest = format!(
        "id = \"{id}\"\ntitle = \"Fix\"\nproduct = \"gateway\"\nversion = \"10.1.1\"\nvendor = \"acme\"\n\
         severity = \"high\"\nreleased = 2026-01-02\n\n[[files]]\npath = \"opt/lib.so\"\nsha256 = \"{}\"\nsize = {}\nmode = \"0644\"\n",
        hex::encode(Sha256::digest(payload)),
        payload.len()
    );
    let mut bytes = Vec::new();
    let mut b = tar::Builder::new(&mut bytes);
    crate::engine::archive::append(&mut b, "PATCH.toml", 0o644, manifest.as_bytes()).unwrap();
    crate::engine::archive::append(&mut b, "files/opt/lib.so", 0o644, payload).unwrap();
    b.finish().unwrap();
    drop(b);
    bytes
}

fn leftovers(root: &Path) -> Vec<String> {
    fs::read_dir(root.join(STORE_DIR))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(UPLOAD_PREFIX))
        .collect()
}

#[test]
fn chunks_are_acknowledged_with_progress_and_staged() {
    let tmp = node_dir();
    Node::open(tmp.path(), "gw-1")
        .unwrap()
        .set_product("gateway", "10.1")
        .unwrap();
    let patch = tiny_patch("GW_1");
    let size = patch.len() as u64;
    let (a, b) = patch.split_at(1000);
    let sha = hex::encode(Sha256::digest(&patch));
    let input = [
        HELLO.to_string(),
        upload_line(1, "GW_1", 0, size, a),
        upload_line(2, "GW_1", 1000, size, b),
        json!({"id":3,"op":"stage","patch":"GW_1","size":size,"sha256":sha}).to_string(),
        "{\"id\":4,\"op\":\"install\",\"patch\":\"GW_1\",\"save\":true}".into(),
    ]
    .join("\n");
    let (r, out) = run(tmp.path(), &input);
    r.unwrap();
    assert_eq!(
        out[1],
        json!({"id":1,"event":"progress","done":1000,"total":size})
    );
    assert_eq!(out[2], json!({"id":1,"ok":true,"result":{"received":1000}}));
    assert_eq!(
        out[3],
        json!({"id":2,"event":"progress","done":size,"total":size})
    );
    assert_eq!(out[4], json!({"id":2,"ok":true,"result":{"received":size}}));
    assert_eq!(
        (&out[5]["id"], &out[5]["ok"]),
        (&json!(3), &json!(true)),
        "{}",
        out[5]
    );
    assert_eq!(out[5]["result"]["state"], "staged");
    assert_eq!(
        out[6],
        json!({"id":4,"event":"progress","done":0,"total":1})
    );
    assert_eq!(
        out[7],
        json!({"id":4,"event":"progress","done":1,"total":1})
    );
    assert_eq!(out[8]["result"]["state"], "applied", "{}", out[8]);
    assert_eq!(
        fs::read(tmp.path().join("opt/lib.so")).unwrap(),
        b"library\n"
    );
    assert!(
        leftovers(tmp.path()).is_empty(),
        "the temporary file is gone"
    );
}

#[test]
fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let tmp = node_dir();
    let patch = tiny_patch("GW_1");
    let size = patch.len() as u64;
    let sha = hex::encode(Sha256::digest(&patch));
    let stage = |id: u64, sha: &str| {
        json!({"id":id,"op":"stage","patch":"GW_1","size":size,"sha256":sha}).to_string()
    };
    let input = [
        HELLO.to_string(),
        // Not from the start.
        upload_line(1, "GW_1", 10, size, &patch[10..20]),
        // A gap.
        upload_line(2, "GW_1", 0, size, &patch[..10]),
        upload_line(3, "GW_1", 20, size, &patch[20..30]),
        // Incomplete.
        stage(4, &sha),
        // Corrupted in transit.
        upload_line(5, "GW_1", 0, size, &[0u8; 1].repeat(patch.len())),
        stage(6, &sha),
        // Not base64.
        "{\"id\":7,\"op\":\"upload\",\"patch\":\"GW_1\",\"offset\":0,\"size\":3,\"data\":\"a*==\"}"
            .into(),
        // Past the announced size.
        upload_line(8, "GW_1", 0, 2, b"abc"),
        // Stage without upload.
        stage(9, &sha),
        // A bad id is the node's to refuse.
        upload_line(10, "../x", 0, size, &patch),
        json!({"id":11,"op":"stage","patch":"../x","size":size,"sha256":sha}).to_string(),
    ]
    .join("\n");
    let (r, out) = run(tmp.path(), &input);
    r.unwrap();
    let answers: Vec<&Value> = out.iter().filter(|v| v.get("event").is_none()).collect();
    let expect = [
        (1, "protocol", "must start at offset 0"),
        (3, "protocol", "expected offset 10, got 20"),
        (4, "invalid", "incomplete: 10 of"),
        (6, "invalid", "sha256"),
        (7, "protocol", "not base64"),
        (8, "protocol", "past the announced size 2"),
        (9, "protocol", "nothing uploaded"),
        (11, "invalid", "patch id"),
    ];
    for (id, kind, says) in expect {
        let a = answers.iter().find(|a| a["id"] == id).unwrap();
        assert_eq!(error_kind(a), kind, "{a}");
        assert!(error_message(a).contains(says), "{a}");
    }
    assert!(
        leftovers(tmp.path()).is_empty(),
        "{:?}",
        leftovers(tmp.path())
    );
}

#[test]
fn uploads_abandoned_by_dead_servers_are_swept() {
    let tmp = node_dir();
    fs::create_dir_all(tmp.path().join(STORE_DIR)).unwrap();
    // pid_max is at most 2^22 on Linux: this pid cannot be running.
    let dead = format!("{UPLOAD_PREFIX}{}-abc.tmp", (1 << 22) + 1);
    let live = format!("{UPLOAD_PREFIX}{}-abc.tmp", std::process::id());
    for name in [&dead, &live] {
        fs::write(tmp.path().join(STORE_DIR).join(name), b"partial").unwrap();
    }
    let (r, _) = run(tmp.path(), HELLO);
    r.unwrap();
    assert_eq!(leftovers(tmp.path()), [live]);
}

#[cfg(target_os = "linux")]
#[test]
fn writing_to_a_dead_child_fails_without_a_sigpipe() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HITS: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn on_sigpipe(_: libc::c_int) {
        HITS.fetch_add(1, Ordering::SeqCst);
    }
    let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    child.wait().unwrap();
    // Count deliveries instead of dying of them (the test harness
    // ignores SIGPIPE, which would hide them).
    let handler = on_sigpipe as extern "C" fn(libc::c_int);
    // SAFETY: installs a handler that only touches an atomic.
    let old = unsafe { libc::signal(libc::SIGPIPE, handler as libc::sighandler_t) };
    let before = HITS.load(Ordering::SeqCst);
    let quiet = write_quietly(&mut stdin, b"hello\n", std::time::Duration::from_secs(5));
    let after_quiet = HITS.load(Ordering::SeqCst);
    let plain = stdin.write_all(b"hello\n");
    let after_plain = HITS.load(Ordering::SeqCst);
    // SAFETY: puts back the previous disposition.
    unsafe { libc::signal(libc::SIGPIPE, old) };
    assert_eq!(quiet.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(after_quiet, before, "the quiet write raised no SIGPIPE");
    assert!(plain.is_err());
    assert!(
        after_plain > after_quiet,
        "a plain write does (the test means something)"
    );
    assert!(!sigpipe_pending());
}
