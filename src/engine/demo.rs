//! The demo lab: a deterministic, realistic depot and fleet for trying the
//! console and for tests and benchmarks. The same seed always gives the same
//! bytes.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use chrono::{Days, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::engine::archive;
use crate::engine::depot::CATEGORIES_FILE;
use crate::engine::fleet::{Cluster, Datacenter, Fleet, Grouping, Node, Organization, Role};
use crate::engine::lab::{Lab, LabConfig, SavedFilter, TrustConfig};
use crate::engine::manifest::{FileEntry, Manifest, Restart, Severity};
use crate::engine::trust::{SecretKey, keys, store};

pub const DEFAULT_SEED: u64 = 7;
pub const DEFAULT_PATCHES: usize = 300;
pub const DEFAULT_NODES: usize = 25;
/// The four demo clusters and the offline site take 21 nodes; at least two
/// appliances stand alone.
pub const MIN_NODES: usize = 23;
/// Nodes beside the three first clusters and the standalone appliances:
/// the offline site `north`, with the `legacy` cluster (3) and two
/// standalone appliances.
const EXTRA_NODES: usize = 5;

#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    pub seed: u64,
    pub patches: usize,
    pub nodes: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: DEFAULT_SEED,
            patches: DEFAULT_PATCHES,
            nodes: DEFAULT_NODES,
        }
    }
}

/// A product the demo patches: its id prefix, filesets, base version, and
/// how its patches usually behave.
struct Product {
    name: &'static str,
    prefix: &'static str,
    filesets: &'static [&'static str],
    base: &'static str,
    vendor: &'static str,
    kernel: bool,
    restart: Restart,
    hot_share: f64,
    titles: &'static [&'static str],
}

const PRODUCTS: &[Product] = &[
    Product {
        name: "kernel",
        prefix: "KRN",
        filesets: &["core", "net", "fs", "drivers"],
        base: "6.1",
        vendor: "corelinux",
        kernel: true,
        restart: Restart::Reboot,
        hot_share: 0.25,
        titles: &[
            "scheduler stall under load",
            "TCP retransmit storm",
            "ext4 journal replay",
            "NIC firmware reset",
            "memory cgroup leak",
            "NFS lock recovery",
            "page cache corruption on resize",
        ],
    },
    Product {
        name: "gateway",
        prefix: "GW",
        filesets: &["core", "policy", "runtime", "admin"],
        base: "10.1",
        vendor: "layerseven",
        kernel: false,
        restart: Restart::Service,
        hot_share: 0.15,
        titles: &[
            "JWT validation bypass",
            "policy cache eviction",
            "TLS session resumption",
            "admin console XSS",
            "OAuth token refresh race",
            "rate limiter drift",
            "cluster property sync",
        ],
    },
    Product {
        name: "X11",
        prefix: "X11",
        filesets: &["server", "fonts", "clients", "libs"],
        base: "7.7",
        vendor: "xorg",
        kernel: false,
        restart: Restart::Service,
        hot_share: 0.3,
        titles: &[
            "font server crash",
            "XKB keymap overflow",
            "GLX context leak",
            "xterm paste injection",
            "Xt resource parsing",
        ],
    },
    Product {
        name: "appserver",
        prefix: "APP",
        filesets: &["web", "db", "cache", "scheduler"],
        base: "4.2",
        vendor: "acme",
        kernel: false,
        restart: Restart::Service,
        hot_share: 0.5,
        titles: &[
            "connection pool exhaustion",
            "slow query plan",
            "cache stampede",
            "cron drift after DST",
            "session fixation",
            "upload size check",
        ],
    },
    Product {
        name: "crypto",
        prefix: "CRY",
        filesets: &["libssl", "libcrypto"],
        base: "3.0",
        vendor: "openproj",
        kernel: false,
        restart: Restart::Service,
        hot_share: 0.1,
        titles: &[
            "certificate chain check",
            "timing side channel",
            "RSA padding oracle",
            "X.509 name constraints",
        ],
    },
];

const CATEGORIES: &[(&str, &str)] = &[
    (
        "critical_patch",
        "Fixes a problem that can stop service or lose data",
    ),
    ("security", "Closes a security vulnerability"),
    ("defect_repair", "Repairs a defect"),
    ("enhancement", "Adds or improves a feature"),
    ("performance", "Makes something faster or lighter"),
    ("firmware", "Updates device firmware"),
    (
        "hot_fix",
        "Targeted fix released between cumulative updates",
    ),
    (
        "special_release",
        "Limited release for named customers; not inherited",
    ),
    (
        "manual_dependencies",
        "Needs manual steps; read the description; not inherited",
    ),
];

/// Writes a demo lab into `lab.root` (which must not already hold a lab).
pub fn write_lab(lab: &Lab, options: DemoOptions) -> std::io::Result<()> {
    fs::create_dir_all(lab.depot_dir())?;
    write_depot(&lab.depot_dir(), options.seed, options.patches)?;
    let fleet = fleet(options.nodes);
    fs::write(lab.fleet_path(), fleet.to_toml())?;
    for node in &fleet.nodes {
        if let Some(root) = &node.root {
            write_node(&lab.resolve_root(root), node)?;
        }
    }
    drift_legacy(lab, &fleet)?;
    let config = LabConfig {
        filters: vec![
            SavedFilter {
                name: "Critical".into(),
                expr: "*.*,c=critical_patch".into(),
            },
            SavedFilter {
                name: "Security, high and up".into(),
                expr: "*.*,c=security,sev>=high".into(),
            },
            SavedFilter {
                name: "Hot kernel fixes".into(),
                expr: "kernel,hot=true".into(),
            },
            SavedFilter {
                name: "Gateway 10.1 line".into(),
                expr: "gateway,r>=10.1,r<10.2".into(),
            },
        ],
        console: Default::default(),
        depot: Default::default(),
        trust: TrustConfig {
            require_signatures: true,
        },
    };
    sign_depot(lab)?;
    fs::write(
        lab.config_path(),
        toml::to_string(&config).expect("config serialises"),
    )?;
    Ok(())
}

/// The name the demo's signing key is trusted under.
pub const DEMO_KEY_NAME: &str = "demo";

/// Signs every patch in the lab's depot with a key made for the purpose,
/// trusts its public key (`LAB/trust/`), and forgets the secret key: the
/// demo's patches are signed, and nothing in the lab can sign more (an
/// operator signs new patches with a key of their own, trusted with
/// `depot trust add`). Signatures, unlike the patches, differ on each run.
pub fn sign_depot(lab: &Lab) -> std::io::Result<()> {
    use rayon::prelude::*;
    let to_io = |e: crate::engine::trust::KeyError| std::io::Error::other(e.to_string());
    let (secret, mut public) = SecretKey::ephemeral().map_err(to_io)?;
    public.name = DEMO_KEY_NAME.into();
    let dir = lab.depot_dir();
    let mut files: Vec<String> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".patch"))
        .collect();
    files.sort();
    files
        .par_iter()
        .map(|name| {
            let id = name.trim_end_matches(".patch");
            secret
                .sign_file(&dir.join(name), &keys::patch_comment(id, name))
                .map(|_| ())
        })
        .collect::<Result<Vec<()>, _>>()
        .map_err(to_io)?;
    store::add_key(&lab.trust_dir(), &public).map_err(to_io)?;
    Ok(())
}

/// Writes `count` patches and `categories.toml` into `dir`.
pub fn write_depot(dir: &Path, seed: u64, count: usize) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut categories = String::from("# Patch categories: tag = \"description\"\n");
    for (tag, text) in CATEGORIES {
        categories.push_str(&format!("{tag} = {text:?}\n"));
    }
    fs::write(dir.join(CATEGORIES_FILE), categories)?;
    for (manifest, payloads) in generate(seed, count) {
        let id = manifest.id.clone().unwrap_or_default();
        let mut bytes = Vec::new();
        {
            let mut builder = tar::Builder::new(&mut bytes);
            archive::append(
                &mut builder,
                archive::MANIFEST_NAME,
                0o644,
                manifest.to_toml().as_bytes(),
            )?;
            for (entry, data) in manifest.files.iter().zip(&payloads) {
                archive::append(
                    &mut builder,
                    &format!("{}{}", archive::PAYLOAD_DIR, entry.path),
                    entry.mode,
                    data,
                )?;
            }
            builder.finish()?;
        }
        let mut file = fs::File::create(dir.join(format!("{id}.patch")))?;
        file.write_all(&bytes)?;
    }
    Ok(())
}

/// The demo patches with their payloads, oldest first.
pub fn generate(seed: u64, count: usize) -> Vec<(Manifest, Vec<Vec<u8>>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = NaiveDate::from_ymd_opt(2024, 1, 8).unwrap_or_default();
    // Per product.fileset: the current top of the supersession chain, and
    // the fileset's patch level.
    let mut tops: BTreeMap<(usize, usize), (String, u32)> = BTreeMap::new();
    let mut ids_by_product: Vec<Vec<String>> = vec![Vec::new(); PRODUCTS.len()];
    let mut out = Vec::with_capacity(count);
    let mut serial: BTreeMap<usize, u32> = BTreeMap::new();
    for i in 0..count {
        let p = pick_product(&mut rng);
        let product = &PRODUCTS[p];
        let f = rng.random_range(0..product.filesets.len());
        let fileset = product.filesets[f];
        let number = serial.entry(p).or_insert(1000);
        *number += 1;
        let id = format!("{}_{}", product.prefix, number);
        let released = start + Days::new((i as u64 * 900) / count.max(1) as u64);

        let previous = tops.get(&(p, f)).cloned();
        let level = previous.as_ref().map(|(_, l)| l + 1).unwrap_or(1);
        let supersedes = match &previous {
            Some((old, _)) if rng.random_bool(0.65) => vec![old.clone()],
            _ => Vec::new(),
        };
        tops.insert((p, f), (id.clone(), level));

        let mut categories = vec![];
        let severity = match rng.random_range(0..100) {
            0..12 => Severity::Critical,
            12..40 => Severity::High,
            40..80 => Severity::Medium,
            _ => Severity::Low,
        };
        if severity == Severity::Critical {
            categories.push("critical_patch");
        }
        if rng.random_bool(0.35) {
            categories.push("security");
        }
        categories.push(if rng.random_bool(0.7) {
            "defect_repair"
        } else {
            "enhancement"
        });
        for (tag, share) in [
            ("performance", 0.1),
            ("hot_fix", 0.12),
            ("special_release", 0.03),
            ("manual_dependencies", 0.03),
        ] {
            if rng.random_bool(share) {
                categories.push(tag);
            }
        }
        if product.kernel && f == 3 && rng.random_bool(0.5) {
            categories.push("firmware");
        }

        // Prerequisites only point at older patches of the same product, so
        // the demo never has a requirement cycle.
        let requires = match ids_by_product[p].len() {
            n if n > 3 && rng.random_bool(0.15) => {
                let pick = ids_by_product[p][rng.random_range(0..n - 1)].clone();
                if supersedes.contains(&pick) {
                    Vec::new()
                } else {
                    vec![pick]
                }
            }
            _ => Vec::new(),
        };
        ids_by_product[p].push(id.clone());

        let hot = rng.random_bool(product.hot_share);
        let restart = if hot { Restart::None } else { product.restart };
        let version = format!("{}.{}", product.base, level);
        let title_base = product.titles[rng.random_range(0..product.titles.len())];
        let title = format!("{} {fileset}: {title_base}", product.name);
        let base_version = rng.random_bool(0.2).then(|| format!(">={}", product.base));

        let payload_count = 1 + rng.random_range(0..3);
        let mut files = Vec::new();
        let mut payloads = Vec::new();
        for k in 0..payload_count {
            let path = match k {
                0 => format!("opt/{}/{fileset}/lib{fileset}.so", product.name),
                1 => format!("opt/{}/{fileset}/VERSION", product.name),
                _ => format!("opt/{}/{fileset}/conf/{fileset}.defaults", product.name),
            };
            let data = format!(
                "{id} {path} level {level}\n{}\n",
                "x".repeat(rng.random_range(16..256))
            )
            .into_bytes();
            files.push(FileEntry {
                path,
                sha256: hex::encode(Sha256::digest(&data)),
                size: data.len() as u64,
                mode: if k == 0 { 0o755 } else { 0o644 },
            });
            payloads.push(data);
        }

        let manifest = Manifest {
            id: Some(id.clone()),
            title,
            description: format!(
                "Level {level} of {} {fileset}. {}",
                product.name,
                if hot {
                    "Applies without a restart."
                } else {
                    "Needs a restart to take effect."
                }
            ),
            product: product.name.to_string(),
            fileset: Some(fileset.to_string()),
            version,
            vendor: product.vendor.to_string(),
            arch: "x86_64".to_string(),
            categories: categories.into_iter().map(String::from).collect(),
            severity,
            released,
            supersedes,
            requires,
            restart,
            hot,
            kernel: product.kernel,
            base_version,
            files,
        };
        out.push((manifest, payloads));
    }
    out
}

fn pick_product(rng: &mut ChaCha8Rng) -> usize {
    // Weighted so the gateway and app server dominate, as in the field.
    match rng.random_range(0..100) {
        0..20 => 0,
        20..50 => 1,
        50..62 => 2,
        62..88 => 3,
        _ => 4,
    }
}

/// A node root with its products' base files and a store that records the
/// products and components at their base versions.
fn write_node(root: &Path, node: &Node) -> std::io::Result<()> {
    let to_io = |e: crate::engine::node::NodeError| std::io::Error::other(e.to_string());
    // The demo makes its nodes; a node store never creates its own root.
    fs::create_dir_all(root)?;
    let mut store = crate::engine::node::Node::open(root, &node.id).map_err(to_io)?;
    for product in PRODUCTS
        .iter()
        .filter(|p| node.products.iter().any(|n| n == p.name))
    {
        store
            .set_product(product.name, product.base)
            .map_err(to_io)?;
        for fileset in product.filesets {
            let dir = root.join("opt").join(product.name).join(fileset);
            fs::create_dir_all(&dir)?;
            fs::write(
                dir.join(format!("lib{fileset}.so")),
                format!("{} {fileset} base {}\n", product.name, product.base),
            )?;
            fs::write(dir.join("VERSION"), format!("{}\n", product.base))?;
            let name = format!("{}.{fileset}", product.name);
            let version = demo_versions(&node.id)
                .iter()
                .find(|(c, _)| *c == name)
                .map_or(product.base, |(_, v)| v);
            store.set_component(&name, version).map_err(to_io)?;
        }
    }
    Ok(())
}

/// Component versions some new demo nodes carry instead of their
/// product's base version, so `components` and `drift` have something to
/// show (seed 003: components each at their own version).
fn demo_versions(node: &str) -> &'static [(&'static str, &'static str)] {
    match node {
        "north-2" => &[("gateway.core", "10.1.3"), ("crypto.libssl", "3.0.2")],
        "legacy-1_3" => &[("appserver.web", "4.2.5")],
        _ => &[],
    }
}

/// Makes the `legacy` cluster drift: its second member gets the oldest
/// appserver patch that installs on its own (when the depot has one), and
/// its third member a newer web component (see [`demo_versions`]).
fn drift_legacy(lab: &Lab, fleet: &Fleet) -> std::io::Result<()> {
    let to_io = |e: crate::engine::node::NodeError| std::io::Error::other(e.to_string());
    let Some(node) = fleet.node("legacy-1_2") else {
        return Ok(());
    };
    let Some(root) = &node.root else {
        return Ok(());
    };
    let dir = lab.depot_dir();
    let mut files: Vec<_> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("APP_") && n.ends_with(".patch"))
        .collect();
    files.sort();
    for name in files {
        let path = dir.join(&name);
        let Ok(m) = archive::read_patch(&path) else {
            continue;
        };
        if !m.requires.is_empty() || !m.supersedes.is_empty() {
            continue;
        }
        let id = name.trim_end_matches(".patch");
        let mut store =
            crate::engine::node::Node::open(&lab.resolve_root(root), &node.id).map_err(to_io)?;
        store.stage(id, &path).map_err(to_io)?;
        store.install(id, true).map_err(to_io)?;
        break;
    }
    Ok(())
}

/// The demo fleet: two data centers, three organizations, a dual-site
/// cluster of 4+4, a single-site cluster of 5, a cluster of 3, and the rest
/// as standalone appliances (primary and secondary per data center).
pub fn fleet(nodes: usize) -> Fleet {
    let nodes = nodes.max(MIN_NODES);
    let dc = |id: &str, name: &str| Datacenter {
        id: id.into(),
        name: name.into(),
    };
    let org = |id: &str, name: &str| Organization {
        id: id.into(),
        name: name.into(),
    };
    let mut fleet = Fleet {
        datacenters: vec![
            dc("east", "East (primary site)"),
            dc("west", "West (secondary site)"),
            dc("north", "North (offline site)"),
        ],
        organizations: vec![
            org("retail", "Retail"),
            org("payments", "Payments"),
            org("internal", "Internal IT"),
        ],
        clusters: vec![
            cluster("edge", None, 2),
            cluster("app", Some(Grouping::Count(2)), 2),
            cluster("db", None, 1),
            cluster("legacy", None, 1),
        ],
        nodes: Vec::new(),
        ..Fleet::default()
    };
    let member = |cluster: &str, site: u32, m: u32, dc: &str, org: &str, products: &[&str]| Node {
        id: format!("{cluster}-{site}_{m}"),
        dc: dc.into(),
        org: org.into(),
        site: site.to_string(),
        cluster: Some(cluster.into()),
        member: Some(format!("{site}_{m}")),
        role: if m == 1 {
            Role::Primary
        } else {
            Role::Secondary
        },
        root: Some(format!("nodes/{cluster}-{site}_{m}")),
        command: None,
        ssh: None,
        remote_root: None,
        sudo: None,
        offline: false,
        products: products.iter().map(|s| s.to_string()).collect(),
        demo: Default::default(),
    };
    for site in 1..=2 {
        let dc = if site == 1 { "east" } else { "west" };
        for m in 1..=4 {
            fleet.nodes.push(member(
                "edge",
                site,
                m,
                dc,
                "payments",
                &["kernel", "gateway", "crypto"],
            ));
        }
    }
    for m in 1..=5 {
        fleet.nodes.push(member(
            "app",
            1,
            m,
            "east",
            "retail",
            &["kernel", "appserver", "crypto", "X11"],
        ));
    }
    for m in 1..=3 {
        fleet.nodes.push(member(
            "db",
            1,
            m,
            "west",
            "retail",
            &["kernel", "appserver"],
        ));
    }
    for n in 0..nodes - 16 - EXTRA_NODES {
        let dc = if n % 2 == 0 { "east" } else { "west" };
        let org = ["retail", "payments", "internal"][n % 3];
        let id = format!("gw-{dc}-{}", n / 2 + 1);
        fleet.nodes.push(Node {
            id: id.clone(),
            dc: dc.into(),
            org: org.into(),
            site: if dc == "east" { "1".into() } else { "2".into() },
            cluster: None,
            member: None,
            role: if (n / 2) % 2 == 0 {
                Role::Primary
            } else {
                Role::Secondary
            },
            root: Some(format!("nodes/{id}")),
            command: None,
            ssh: None,
            remote_root: None,
            sudo: None,
            offline: false,
            products: vec!["kernel".into(), "gateway".into(), "crypto".into()],
            demo: Default::default(),
        });
    }
    // New demo content goes after the nodes scripts already know.
    // The legacy cluster sits on the offline site: it is patched with
    // bundles, and has drifted.
    for m in 1..=3 {
        let mut node = member(
            "legacy",
            1,
            m,
            "north",
            "internal",
            &["kernel", "appserver"],
        );
        node.offline = true;
        fleet.nodes.push(node);
    }
    for n in 1..=2 {
        let id = format!("north-{n}");
        fleet.nodes.push(Node {
            id: id.clone(),
            dc: "north".into(),
            org: "internal".into(),
            site: "3".into(),
            cluster: None,
            member: None,
            role: if n == 1 {
                Role::Primary
            } else {
                Role::Secondary
            },
            root: Some(format!("nodes/{id}")),
            command: None,
            ssh: None,
            remote_root: None,
            sudo: None,
            offline: true,
            products: vec!["kernel".into(), "gateway".into(), "crypto".into()],
            demo: Default::default(),
        });
    }
    fleet
}

fn cluster(id: &str, groups: Option<Grouping>, parallel: usize) -> Cluster {
    Cluster {
        id: id.into(),
        groups,
        parallel,
        health_deadline_secs: 60,
        min_healthy_secs: 2,
        before: vec![format!("echo disable image cloning on {id}")],
        after: vec![format!("echo enable image cloning on {id}")],
        drain: None,
        restore: None,
        on_failure: Default::default(),
        windows: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_patches() {
        let a: Vec<_> = generate(3, 50).into_iter().map(|(m, _)| m).collect();
        let b: Vec<_> = generate(3, 50).into_iter().map(|(m, _)| m).collect();
        assert_eq!(a, b);
        let c: Vec<_> = generate(4, 50).into_iter().map(|(m, _)| m).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn fleet_has_the_promised_clusters() {
        let fleet = fleet(DEFAULT_NODES);
        let members = |c: &str| {
            fleet
                .nodes
                .iter()
                .filter(|n| n.cluster.as_deref() == Some(c))
                .count()
        };
        assert_eq!((members("edge"), members("app"), members("db")), (8, 5, 3));
        assert_eq!(fleet.nodes.len(), DEFAULT_NODES);
        assert!(fleet.nodes.iter().any(|n| n.cluster.is_none()));
        let sites: std::collections::BTreeSet<_> = fleet
            .nodes
            .iter()
            .filter(|n| n.cluster.as_deref() == Some("edge"))
            .map(|n| &n.site)
            .collect();
        assert_eq!(sites.len(), 2);
        assert_eq!(Fleet::load_str(&fleet.to_toml()), fleet);
    }
}
