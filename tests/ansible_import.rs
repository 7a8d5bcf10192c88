//! `patchdeck fleet import --ansible` through the real binary: the same
//! inventory in INI and YAML gives the same fleet.toml, `-o` writes it
//! atomically and keeps an existing file without `--force`, and bad
//! inventories exit 2 naming the file and the line.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;

const INI: &str = r#"# edge appliances
[all:vars]
org=retail

[west]
gw-west-[1:2] ansible_user=ops
gw-west-db ansible_host=2001:db8::10 ansible_port=2222

[west:vars]
dc=west
ansible_become=yes

[edge:children]
west

[edge:vars]
cluster=edge
site=1
"#;

const YAML: &str = r#"all:
  vars:
    org: retail
  children:
    edge:
      vars:
        cluster: edge
        site: 1
      children:
        west:
          vars:
            dc: west
            ansible_become: yes
          hosts:
            gw-west-[1:2]:
              ansible_user: ops
            gw-west-db:
              ansible_host: "2001:db8::10"
              ansible_port: 2222
"#;

fn import(args: &[&str]) -> Output {
    let mut all = vec!["fleet", "import"];
    all.extend(args);
    common::patchdeck(&all)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn ini_and_yaml_give_the_same_fleet_of_ssh_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "hosts", INI);
    let yaml = write(dir.path(), "hosts.yml", YAML);
    let a = import(&["--ansible", &ini]);
    let b = import(&["--ansible", &yaml]);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    assert_eq!(text(&a.stdout), text(&b.stdout));
    // Every member gets its member name from the id's S_M suffix or is
    // reported; here none has one, and the notes say so on stderr.
    assert!(
        text(&a.stderr).contains("no member name"),
        "{}",
        text(&a.stderr)
    );
    let fleet: toml::Table = toml::from_str(&text(&a.stdout)).unwrap();
    let nodes = fleet["node"].as_array().unwrap();
    let row = |id: &str| {
        nodes
            .iter()
            .find(|n| n["id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("{id} in {nodes:?}"))
    };
    assert_eq!(nodes.len(), 3);
    assert_eq!(row("gw-west-1")["ssh"].as_str(), Some("ops@gw-west-1"));
    assert_eq!(
        row("gw-west-db")["ssh"].as_str(),
        Some("[2001:db8::10]:2222")
    );
    for n in nodes {
        assert_eq!(n["dc"].as_str(), Some("west"));
        assert_eq!(n["org"].as_str(), Some("retail"));
        assert_eq!(n["cluster"].as_str(), Some("edge"));
        assert_eq!(n["site"].as_str(), Some("1"));
        assert_eq!(n["sudo"].as_bool(), Some(true));
    }
    assert_eq!(fleet["datacenter"][0]["id"].as_str(), Some("west"));
    assert_eq!(fleet["organization"][0]["id"].as_str(), Some("retail"));
    assert_eq!(fleet["cluster"][0]["id"].as_str(), Some("edge"));
    assert!(fleet.get("ssh").is_none(), "no [ssh] table unless asked");
}

#[test]
fn output_file_is_kept_without_force_and_replaced_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(dir.path(), "hosts.ini", INI);
    let out = dir.path().join("fleet.toml");
    let out_s = out.display().to_string();
    let first = import(&["--ansible", &ini, "-o", &out_s]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        first.stdout.starts_with(b"wrote "),
        "{}",
        text(&first.stdout)
    );
    let written = fs::read_to_string(&out).unwrap();
    assert!(written.contains("[[node]]"), "{written}");

    fs::write(&out, "# mine\n").unwrap();
    let again = import(&["--ansible", &ini, "-o", &out_s]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "# mine\n");

    let forced = import(&["--ansible", &ini, "-o", &out_s, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_eq!(fs::read_to_string(&out).unwrap(), written);
    // Nothing but the inventory and the fleet: no temporary file left.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["fleet.toml", "hosts.ini"]);
}

#[test]
fn bad_inventories_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "bad.ini",
            "[west]\ngw-1\ngw-2 dc\n",
            ":3: expected key=value",
        ),
        (
            "bad.ini",
            "[edge:children]\nwest\n",
            ":2: section [edge:children] names group \"west\"",
        ),
        ("bad.ini", "[west]\ngw-[9:1]\n", ":2: host \"gw-[9:1]\""),
        (
            "bad.yml",
            "all:\n  hosts:\n    gw-1:\n      ansible_port: [22]\n      dc: d\n      org: o\n",
            ":4: host \"gw-1\": ansible_port is a list",
        ),
        (
            "bad.yml",
            "all:\n  hosts: {gw-1: }\n  chidren: {}\n",
            ":3: group \"all\": unexpected key \"chidren\"",
        ),
        ("bad.yml", "all:\n  hosts: [gw-1\n", ":3: YAML"),
    ];
    for (name, body, want) in cases {
        let path = write(dir.path(), name, body);
        let out = import(&["--ansible", &path]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body:?}: {err}");
        assert!(err.contains(&format!("{path}{want}")), "{body:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{body:?}: nothing printed on failure"
        );
    }
    let missing = dir.path().join("absent").display().to_string();
    let out = import(&["--ansible", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("{missing}: cannot read")));
}

#[test]
fn hosts_without_dc_or_org_are_listed_unless_defaults_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(
        dir.path(),
        "hosts",
        "gw-1 dc=west\ngw-2\n[x]\ngw-3 org=o dc=d\n",
    );
    let out = import(&["--ansible", &ini]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("without a data center") && err.contains("gw-2 (line 2)"),
        "{err}"
    );
    assert!(
        err.contains("without an organization") && err.contains("gw-1 (line 1), gw-2 (line 2)"),
        "{err}"
    );
    assert!(!err.contains("gw-3"), "{err}");
    let out = import(&[
        "--ansible",
        &ini,
        "--default-dc",
        "main",
        "--default-org",
        "ops",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fleet: toml::Table = toml::from_str(&text(&out.stdout)).unwrap();
    let dcs: Vec<_> = fleet["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["dc"].as_str().unwrap(), n["org"].as_str().unwrap()))
        .collect();
    assert_eq!(dcs, [("west", "ops"), ("main", "ops"), ("d", "o")]);
}

#[test]
fn an_inventory_whose_fleet_would_not_load_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // A remote root with a line break, and one that is not absolute.
        "all:\n  hosts:\n    a1: {dc: e, org: o, patchdeck_remote_root: \"/x\\n[ssh]\"}\n",
        "all:\n  hosts:\n    a1: {dc: e, org: o, patchdeck_remote_root: relative/dir}\n",
        // Ids with a line break or NUL.
        "all:\n  hosts:\n    h1: {dc: e, org: \"multi\\nline\"}\n",
        "all:\n  hosts:\n    h1: {dc: \"e\\u0000x\", org: o}\n",
        "all:\n  hosts:\n    h1: {dc: e, org: o, cluster: \"x\\n[ssh]\"}\n",
    ];
    for body in cases {
        let path = write(dir.path(), "inv.yml", body);
        let out = import(&["--ansible", &path]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body:?}: {err}");
        assert!(err.contains(&path), "{body:?}: names the inventory: {err}");
        assert!(out.stdout.is_empty(), "{body:?}: nothing printed");
    }
}
