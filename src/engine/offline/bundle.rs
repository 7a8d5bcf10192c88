//! Preparing and reading bundles.
//!
//! A bundle is one tar file: `BUNDLE.json` (the request, the snapshot it was
//! made for, and the plan per node), then `patches/ID.patch` for every patch
//! a plan needs, then `CHECKSUM`: the SHA-256, in hex, of every byte of
//! the file before the checksum entry's header (headers and padding too).
//! Reading refuses anything else: other names, links, entries after the
//! checksum, a missing or wrong checksum.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BUNDLE_FORMAT, FORMAT_VERSION, OfflineError, Snapshot, file_err, write_atomic};
use crate::engine::components::{component_of, effective_restart, is_hot};
use crate::engine::depot::Depot;
use crate::engine::filter::FilterList;
use crate::engine::inventory::Inventory;
use crate::engine::manifest::{Manifest, Restart};
use crate::engine::patch::Patch;
use crate::engine::requirement::Supersession;
use crate::engine::select::{self, Request};

const JSON_NAME: &str = "BUNDLE.json";
const CHECKSUM_NAME: &str = "CHECKSUM";
const PATCH_DIR: &str = "patches/";
/// `BUNDLE.json` larger than this is refused (it holds no payloads).
const JSON_LIMIT: u64 = 64 << 20;

/// What the operator asked `prepare` for, kept so `apply --rebase` can ask
/// again on the site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionRequest {
    /// Patch ids and `PRODUCT[.FILESET]` specs; empty: everything that
    /// applies to each node (match target).
    pub specs: Vec<String>,
    /// Filter expressions (`--filter`), in canonical form.
    pub filters: Vec<String>,
    /// Only patches that apply without a restart.
    pub hot_only: bool,
}

/// One patch of a node's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub id: String,
    pub component: String,
    pub version: String,
    pub restart: Restart,
    /// Why the resolver chose it.
    pub reason: String,
}

/// What to install on one node, in install order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub node: String,
    pub patches: Vec<Planned>,
}

/// The content of `BUNDLE.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub format: String,
    pub version: u32,
    pub created_at: String,
    pub request: SelectionRequest,
    /// The snapshot the plans were resolved against.
    pub snapshot: Snapshot,
    pub plans: Vec<NodePlan>,
    /// Patch id → SHA-256 of its file in the bundle.
    pub files: BTreeMap<String, String>,
    /// The depot's supersession chains below the bundle's patches, which
    /// the node learns before installing: a requirement met by a superseder
    /// through patches the bundle does not carry is then seen as met, as
    /// online (the one requirement rule).
    #[serde(default)]
    pub known: Supersession,
}

/// A bundle read from disk, its patch files extracted and checked.
#[derive(Debug)]
pub struct Bundle {
    pub prepared: Prepared,
    /// Where the patch files were extracted; removed when dropped.
    dir: tempfile::TempDir,
    /// The bundle's patches as a depot would hold them (for `--rebase`).
    pub patches: Vec<Patch>,
}

impl Bundle {
    /// The extracted file of patch `id`.
    pub fn patch_file(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.patch"))
    }
}

/// Resolves `request` for one node's inventory against `patches`: match
/// target when there are no specs, filters narrowing autoselection, and
/// with `hot_only` only hot patches (a path that still needs a restart is
/// a problem). The one rule `prepare` and `apply --rebase` share.
/// Errors: [`OfflineError::Selection`] naming the resolver's problems.
pub fn plan_for(
    patches: &[Patch],
    inv: &Inventory,
    request: &SelectionRequest,
) -> Result<Vec<Planned>, OfflineError> {
    let filters = FilterList::parse_all(&request.filters).map_err(|e| OfflineError::Selection {
        node: inv.node.clone(),
        problems: vec![e.to_string()],
    })?;
    let narrow = |p: &Patch| (!request.hot_only || is_hot(p)) && filters.matches(p);
    let selection = select::resolve(
        patches,
        &Request {
            specs: request.specs.clone(),
            autoselect: true,
            target: Some(inv),
            narrow: &narrow,
        },
    );
    let by_id: std::collections::HashMap<&str, &Manifest> = patches
        .iter()
        .map(|p| (p.id.as_str(), &p.manifest))
        .collect();
    let mut problems: Vec<String> = selection
        .problems
        .iter()
        .map(|p| p.message.clone())
        .collect();
    let mut out = Vec::new();
    for s in &selection.patches {
        let Some(m) = by_id.get(s.id.as_str()) else {
            continue;
        };
        let restart = effective_restart(m);
        if request.hot_only && restart != Restart::None {
            problems.push(format!(
                "{} ({}) needs a {restart} restart, and only hot patches were asked for",
                s.id, s.reason
            ));
        }
        out.push(Planned {
            id: s.id.clone(),
            component: component_of(m),
            version: m.version.clone(),
            restart,
            reason: s.reason.clone(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(OfflineError::Selection {
            node: inv.node.clone(),
            problems,
        })
    }
}

/// Plans every node of `snapshot` against `depot` (see [`plan_for`]).
/// Errors: a node whose selection has problems.
pub fn prepare(
    snapshot: &Snapshot,
    depot: &Depot,
    request: SelectionRequest,
) -> Result<Prepared, OfflineError> {
    let mut plans = Vec::new();
    let mut files = BTreeMap::new();
    for n in &snapshot.nodes {
        let patches = plan_for(&depot.patches, &n.inventory, &request)?;
        for p in &patches {
            files.insert(p.id.clone(), String::new());
        }
        plans.push(NodePlan {
            node: n.inventory.node.clone(),
            patches,
        });
    }
    let known = Supersession::from_depot(|p| depot.get(p), files.keys().map(String::as_str));
    Ok(Prepared {
        known,
        format: BUNDLE_FORMAT.into(),
        version: FORMAT_VERSION,
        created_at: crate::engine::node::store::now(),
        request,
        snapshot: snapshot.clone(),
        plans,
        files,
    })
}

/// Writes the bundle: every planned patch copied from `depot` (verified
/// first), atomically under `path`. Fills in `prepared.files`.
/// Errors: a depot file that does not verify, or writing fails.
pub fn write_bundle(
    path: &Path,
    prepared: &mut Prepared,
    depot: &Depot,
) -> Result<(), OfflineError> {
    let mut contents = Vec::new();
    let ids: Vec<String> = prepared.files.keys().cloned().collect();
    for id in &ids {
        let Some(p) = depot.get(id) else {
            return Err(file_err(path, format!("{id} is not in the depot")));
        };
        let source = depot.root.join(&p.file);
        crate::engine::archive::read_patch(&source).map_err(|e| file_err(&source, e))?;
        let data = std::fs::read(&source).map_err(|e| file_err(&source, e))?;
        prepared
            .files
            .insert(id.clone(), hex::encode(Sha256::digest(&data)));
        contents.push((format!("{PATCH_DIR}{id}.patch"), data));
    }
    let json = serde_json::to_vec_pretty(prepared).map_err(|e| file_err(path, e))?;
    contents.insert(0, (JSON_NAME.to_string(), json));
    let mut bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut bytes);
        for (name, data) in &contents {
            crate::engine::archive::append(&mut builder, name, 0o644, data)
                .map_err(|e| file_err(path, e))?;
        }
        let sum = format!("{}\n", hex::encode(Sha256::digest(builder.get_ref())));
        crate::engine::archive::append(&mut builder, CHECKSUM_NAME, 0o644, sum.as_bytes())
            .map_err(|e| file_err(path, e))?;
        builder.finish().map_err(|e| file_err(path, e))?;
    }
    write_atomic(path, &bytes).map_err(|e| file_err(path, e))
}

/// Reads and verifies a bundle: the checksum over the whole, each patch
/// file against `BUNDLE.json` and as a patch (manifest and payloads), and
/// that every planned patch is there. Errors: [`OfflineError::File`]
/// naming the bundle and what is wrong.
pub fn read_bundle(path: &Path) -> Result<Bundle, OfflineError> {
    let bad = |m: String| file_err(path, m);
    let file = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let dir = tempfile::tempdir().map_err(|e| file_err(path, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a bundle (tar): {e}")))?;
    let mut json: Option<Vec<u8>> = None;
    let mut covered = 0u64;
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    let mut checksum: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("damaged: {e}")))?;
        if checksum.is_some() {
            return Err(bad("damaged: entries after the checksum".into()));
        }
        if !entry.header().entry_type().is_file() {
            return Err(bad("damaged: an entry that is not a regular file".into()));
        }
        let name = entry
            .path()
            .map_err(|e| bad(format!("damaged: {e}")))?
            .to_string_lossy()
            .into_owned();
        if name == CHECKSUM_NAME {
            covered = entry.raw_header_position();
            let mut text = String::new();
            entry
                .by_ref()
                .take(256)
                .read_to_string(&mut text)
                .map_err(|e| bad(format!("damaged checksum: {e}")))?;
            checksum = Some(text.trim().to_string());
        } else if name == JSON_NAME {
            let mut data = Vec::new();
            entry
                .by_ref()
                .take(JSON_LIMIT)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("damaged: {e}")))?;
            json = Some(data);
        } else if let Some(id) = name
            .strip_prefix(PATCH_DIR)
            .and_then(|n| n.strip_suffix(".patch"))
        {
            crate::engine::manifest::check_id(id).map_err(|m| bad(format!("damaged: {m}")))?;
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("damaged: {e}")))?;
            let target = dir.path().join(format!("{id}.patch"));
            std::fs::write(&target, &data).map_err(|e| file_err(&target, e))?;
            extracted.insert(id.to_string(), hex::encode(Sha256::digest(&data)));
        } else {
            return Err(bad(format!("damaged: unexpected entry {name:?}")));
        }
    }
    let Some(sum) = checksum else {
        return Err(bad("incomplete: no checksum at the end".into()));
    };
    let actual = {
        let mut hash = Sha256::new();
        let file = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
        let mut part = file.take(covered);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = part.read(&mut buf).map_err(|e| file_err(path, e))?;
            match buf.get(..n) {
                Some(chunk) if n > 0 => hash.update(chunk),
                _ => break,
            }
        }
        hex::encode(hash.finalize())
    };
    // Nothing may follow the checksum but its own entry and the end of the
    // archive, exactly as written: the whole file is accounted for.
    let tail = {
        let mut bytes = Vec::new();
        let mut builder = tar::Builder::new(&mut bytes);
        crate::engine::archive::append(
            &mut builder,
            CHECKSUM_NAME,
            0o644,
            format!("{sum}\n").as_bytes(),
        )
        .map_err(|e| file_err(path, e))?;
        builder.finish().map_err(|e| file_err(path, e))?;
        drop(builder);
        bytes
    };
    let len = std::fs::metadata(path)
        .map_err(|e| file_err(path, e))?
        .len();
    let mut rest = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(covered))?;
            f.take(tail.len() as u64 + 1).read_to_end(&mut rest)
        })
        .map_err(|e| file_err(path, e))?;
    if rest != tail || len != covered + tail.len() as u64 {
        return Err(bad(
            "damaged: the end of the bundle is not what was written after the checksum".into(),
        ));
    }
    if sum != actual {
        return Err(bad(format!(
            "checksum mismatch: the bundle says {sum}, its content hashes to {actual}; \
             it was damaged or altered in transit"
        )));
    }
    let json = json.ok_or_else(|| bad(format!("no {JSON_NAME}")))?;
    let prepared: Prepared = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("{JSON_NAME} is not a bundle plan: {e}")))?;
    if prepared.format != BUNDLE_FORMAT || prepared.version > FORMAT_VERSION {
        return Err(bad(format!(
            "format {:?} version {}; expected {BUNDLE_FORMAT:?} version {FORMAT_VERSION} or older",
            prepared.format, prepared.version
        )));
    }
    if prepared.files != extracted {
        return Err(bad(
            "its patch files do not match the list in BUNDLE.json".into()
        ));
    }
    let mut patches = Vec::new();
    for id in extracted.keys() {
        let file = dir.path().join(format!("{id}.patch"));
        let manifest =
            crate::engine::archive::read_patch(&file).map_err(|e| bad(format!("{id}: {e}")))?;
        patches.push(Patch::new(id.clone(), format!("{id}.patch"), manifest));
    }
    for plan in &prepared.plans {
        if let Some(p) = plan.patches.iter().find(|p| !extracted.contains_key(&p.id)) {
            return Err(bad(format!(
                "the plan for {} needs {}, which the bundle does not hold",
                plan.node, p.id
            )));
        }
    }
    Ok(Bundle {
        prepared,
        dir,
        patches,
    })
}
