//! The patch file on disk: a tar archive with `PATCH.toml` first and the
//! payload under `files/`. Reading verifies every payload byte against the
//! manifest; writing (`pack`) builds the manifest's file list from a
//! directory and refuses anything that is not a plain file.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::engine::manifest::{self, FileEntry, Manifest, ManifestError};

pub const MANIFEST_NAME: &str = "PATCH.toml";
pub const PAYLOAD_DIR: &str = "files/";
/// The largest patch file patchdeck accepts, in bytes (4 GiB): `depot add`
/// refuses a larger file, and a node refuses an upload announcing more
/// before it writes anything.
pub const MAX_PATCH_BYTES: u64 = 4 << 30;

/// A manifest larger than this is refused rather than read into memory.
const MANIFEST_LIMIT: u64 = 1 << 20;

/// Why a patch file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFileError {
    /// Line in `PATCH.toml`, when the problem is in the manifest.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for PatchFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{MANIFEST_NAME} line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PatchFileError {}

impl From<ManifestError> for PatchFileError {
    fn from(e: ManifestError) -> Self {
        PatchFileError {
            line: e.line,
            message: e.message,
        }
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, PatchFileError> {
    Err(PatchFileError {
        line: None,
        message: message.into(),
    })
}

/// The id a patch file must carry: its file name without `.patch`.
pub fn id_from_path(path: &Path) -> Result<String, PatchFileError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(stem) = name.strip_suffix(".patch") else {
        return fail(format!("{name:?} is not named ID.patch"));
    };
    manifest::check_id(stem).map_err(|m| PatchFileError {
        line: None,
        message: m,
    })?;
    Ok(stem.to_string())
}

/// Reads and fully verifies a patch file: manifest first, every payload
/// entry a regular file listed in the manifest with matching size and
/// SHA-256, and every listed file present exactly once.
pub fn read_patch(path: &Path) -> Result<Manifest, PatchFileError> {
    let id = id_from_path(path)?;
    // Never open a fifo or a device: reading one could block or never end.
    match fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return fail("is not a regular file; a patch is a regular file"),
        Err(e) => return fail(format!("cannot read: {e}")),
    }
    let file = fs::File::open(path).map_err(|e| PatchFileError {
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    let manifest = read_archive_full(io::BufReader::new(file), Some(&id), None, |f, data| {
        hash_limited(data, f.size).map_err(|e| io::Error::other(e.message))
    })?;
    if let Some(declared) = &manifest.id
        && *declared != id
    {
        return fail(format!(
            "manifest id {declared:?} does not match the file name; expected {id:?}"
        ));
    }
    Ok(manifest)
}

/// Verifies an archive from any reader (see [`read_patch`]).
pub fn read_archive(reader: impl Read) -> Result<Manifest, PatchFileError> {
    read_archive_with(reader, None, |f, data| {
        hash_limited(data, f.size).map_err(|e| io::Error::other(e.message))
    })
}

/// The one reader of patch archives: what the depot, staging and install
/// accept is decided here, the same way for each.
///
/// Entry names are normalised first: leading `./` (as GNU tar and bsdtar
/// write them when given `.`) is dropped, and the archive's root directory
/// entry is ignored. `PATCH.toml` must come first and be a regular file;
/// it must equal `expected` when given (a staged copy must still be what
/// was staged). Every other entry is a directory under `files/` (ignored)
/// or a regular file listed in the manifest, exactly once, whose header
/// size is the declared one. `payload` receives each such file's listed
/// entry and its bytes and returns the size and SHA-256 it read (reading
/// at most size + 1 bytes); both must match the manifest. Every listed
/// file must be present.
pub fn read_archive_with(
    reader: impl Read,
    expected: Option<&Manifest>,
    payload: impl FnMut(&FileEntry, &mut dyn Read) -> io::Result<(u64, String)>,
) -> Result<Manifest, PatchFileError> {
    read_archive_full(reader, None, expected, payload)
}

/// [`read_archive_with`] for the patch whose id is `id` when known (its
/// file name): the manifest is checked as that patch's
/// ([`Manifest::parse_as`]).
fn read_archive_full(
    reader: impl Read,
    id: Option<&str>,
    expected: Option<&Manifest>,
    mut payload: impl FnMut(&FileEntry, &mut dyn Read) -> io::Result<(u64, String)>,
) -> Result<Manifest, PatchFileError> {
    let q = crate::engine::text::quoted;
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(|e| PatchFileError {
        line: None,
        message: format!("not a tar archive: {e}"),
    })?;
    let manifest = loop {
        let Some(first) = entries.next() else {
            return fail(format!(
                "empty archive; expected {MANIFEST_NAME} as the first entry"
            ));
        };
        let mut first = first.map_err(|e| PatchFileError {
            line: None,
            message: format!("not a tar archive: {e}"),
        })?;
        let name = entry_name(&first)?;
        let kind = first.header().entry_type();
        if name.is_empty() && kind.is_dir() {
            continue;
        }
        if name != MANIFEST_NAME {
            return fail(format!(
                "first entry is {}; expected {MANIFEST_NAME}",
                q(&name)
            ));
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return fail(format!(
                "{MANIFEST_NAME} is a {} link in the archive; the manifest must be a regular file",
                if kind.is_symlink() {
                    "symbolic"
                } else {
                    "hard"
                }
            ));
        }
        if !kind.is_file() {
            return fail(format!(
                "{MANIFEST_NAME} is a {kind:?} entry in the archive; the manifest must be a regular file"
            ));
        }
        if first.size() > MANIFEST_LIMIT {
            return fail(format!(
                "{MANIFEST_NAME} is {} bytes; the limit is {MANIFEST_LIMIT}",
                first.size()
            ));
        }
        let mut bytes = Vec::new();
        first.read_to_end(&mut bytes).map_err(|e| PatchFileError {
            line: None,
            message: format!("damaged archive: {e}"),
        })?;
        let text = crate::engine::text::utf8(bytes).map_err(|(line, message)| PatchFileError {
            line: Some(line),
            message,
        })?;
        break Manifest::parse_as(&text, id)?;
    };
    if let Some(expected) = expected
        && expected.files != manifest.files
    {
        return fail("its PATCH.toml no longer lists the files it listed when it was staged");
    }
    // No path may be a file and, for another file, a directory.
    let listed: std::collections::HashSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    for f in &manifest.files {
        let mut dir = f.path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if listed.contains(parent) {
                return fail(format!(
                    "payload {} is both a file and a directory (holding {})",
                    q(parent),
                    q(&f.path)
                ));
            }
            dir = parent;
        }
    }

    let mut seen = vec![false; manifest.files.len()];
    for entry in entries {
        let mut entry = entry.map_err(|e| PatchFileError {
            line: None,
            message: format!("damaged archive: {e}"),
        })?;
        let name = entry_name(&entry)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() && (name.is_empty() || name == "files" || name.starts_with(PAYLOAD_DIR)) {
            continue;
        }
        let Some(rel) = name.strip_prefix(PAYLOAD_DIR) else {
            return fail(format!(
                "archive entry {} is outside {PAYLOAD_DIR}",
                q(&name)
            ));
        };
        if !kind.is_file() {
            return fail(format!(
                "archive entry {} is a {kind:?}, not a regular file",
                q(&name)
            ));
        }
        let Some(index) = manifest.files.iter().position(|f| f.path == rel) else {
            return fail(format!(
                "archive entry {} is not listed in {MANIFEST_NAME}",
                q(&name)
            ));
        };
        if std::mem::replace(&mut seen[index], true) {
            return fail(format!("archive entry {} appears twice", q(&name)));
        }
        let expected = &manifest.files[index];
        let declared = expected.size;
        let header = entry.size();
        if header != declared {
            return fail(format!(
                "payload {} has the wrong size: declared {declared} bytes in {MANIFEST_NAME}, found {header} in the archive",
                q(rel)
            ));
        }
        let (size, sha) = payload(expected, &mut entry).map_err(|e| PatchFileError {
            line: None,
            message: format!("payload {}: {e}", q(rel)),
        })?;
        if size != declared {
            let found = if size > declared {
                format!("{size} or more")
            } else {
                size.to_string()
            };
            return fail(format!(
                "payload {} has the wrong size: declared {declared} bytes in {MANIFEST_NAME}, found {found} in the archive",
                q(rel)
            ));
        }
        if sha != expected.sha256.to_ascii_lowercase() {
            return fail(format!(
                "payload {} has sha256 {sha}; the manifest says {}",
                q(rel),
                q(&expected.sha256)
            ));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return fail(format!(
            "payload {} is listed in {MANIFEST_NAME} but missing from the archive",
            q(&manifest.files[missing].path)
        ));
    }
    Ok(manifest)
}

/// An entry's name as the archive rules see it: UTF-8, with any leading
/// `./` and trailing `/` dropped (`./` alone, the archive root, is empty).
fn entry_name<R: Read>(entry: &tar::Entry<R>) -> Result<String, PatchFileError> {
    let path = entry.path().map_err(|e| PatchFileError {
        line: None,
        message: format!(
            "bad entry name: {}",
            crate::engine::text::cap(&e.to_string())
        ),
    })?;
    match path.to_str() {
        Some(s) => {
            let mut s = s;
            while let Some(rest) = s.strip_prefix("./") {
                s = rest;
            }
            if s == "." {
                s = "";
            }
            Ok(s.trim_end_matches('/').to_string())
        }
        None => fail(format!(
            "entry name {} is not UTF-8",
            crate::engine::text::quoted(&path.to_string_lossy())
        )),
    }
}

/// Hashes at most `limit + 1` bytes, so an oversized payload is caught
/// without reading all of it.
fn hash_limited<R: Read + ?Sized>(
    reader: &mut R,
    limit: u64,
) -> Result<(u64, String), PatchFileError> {
    let mut hasher = Sha256::new();
    let mut limited = reader.take(limit.saturating_add(1));
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = limited.read(&mut buf).map_err(|e| PatchFileError {
            line: None,
            message: format!("damaged archive: {e}"),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// SHA-256 of a whole file, hex encoded.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hex::encode(hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Why `pack` refused a directory.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl PackError {
    fn input(path: &Path, message: impl Into<String>) -> Self {
        PackError::Input {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
    fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| PackError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Builds `out` from `dir/PATCH.toml` and the files under `dir/files/`.
/// Checksums, sizes and modes are computed here; any list of files already
/// in the manifest is replaced. Writes through a temporary file and renames.
pub fn pack(dir: &Path, out: &Path) -> Result<Manifest, PackError> {
    let manifest_path = dir.join(MANIFEST_NAME);
    let bytes = fs::read(&manifest_path).map_err(PackError::io(&manifest_path))?;
    let text = crate::engine::text::utf8(bytes).map_err(|(line, message)| {
        PackError::input(&manifest_path, format!("line {line}: {message}"))
    })?;
    let id = id_from_path(out).map_err(|e| PackError::input(out, e.message))?;
    let mut manifest = Manifest::parse_as(&text, Some(&id))
        .map_err(|e| PackError::input(&manifest_path, e.to_string()))?;
    if let Some(declared) = &manifest.id
        && *declared != id
    {
        return Err(PackError::input(
            out,
            format!("manifest id is {declared:?}; the output must be named {declared}.patch"),
        ));
    }

    let payload_root = dir.join("files");
    // The output must not be read as its own payload, nor replace the
    // manifest or a payload file it is built from.
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let (Ok(o), Ok(p)) = (fs::canonicalize(out_dir), fs::canonicalize(&payload_root))
        && o.starts_with(&p)
    {
        return Err(PackError::input(
            out,
            format!(
                "is inside the payload directory {}; expected an output outside it",
                payload_root.display()
            ),
        ));
    }
    if crate::engine::outputs::same_file(out, &manifest_path) {
        return Err(PackError::input(
            out,
            format!(
                "is the same file as the manifest {}; expected another output path",
                manifest_path.display()
            ),
        ));
    }
    let mut files = Vec::new();
    if payload_root.exists() {
        collect_payload(&payload_root, &payload_root, &mut files)?;
    }
    files.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    manifest.files = files.iter().map(|(entry, _)| entry.clone()).collect();
    // Re-parse what we will write, so a packed patch always reads back.
    let rendered = manifest.to_toml();
    Manifest::parse_as(&rendered, Some(&id))
        .map_err(|e| PackError::input(&manifest_path, e.to_string()))?;

    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A pack killed earlier left its temporary file here; any being
    // written now is locked and kept.
    remove_leftover_temps(parent).map_err(PackError::io(parent))?;
    let mut temp = shared_temp(parent).map_err(PackError::io(parent))?;
    {
        let mut builder = tar::Builder::new(io::BufWriter::new(temp.as_file_mut()));
        append(&mut builder, MANIFEST_NAME, 0o644, rendered.as_bytes())
            .map_err(PackError::io(out))?;
        for (entry, source) in &files {
            let data = fs::read(source).map_err(PackError::io(source))?;
            let name = format!("{PAYLOAD_DIR}{}", entry.path);
            append(&mut builder, &name, entry.mode, &data).map_err(PackError::io(out))?;
        }
        builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(PackError::io(out))?;
    }
    temp.as_file().sync_all().map_err(PackError::io(out))?;
    temp.persist(out).map_err(|e| PackError::Io {
        path: out.to_path_buf(),
        source: e.error,
    })?;
    Ok(manifest)
}

/// A temporary file in `dir` that becomes a patch file other operators
/// read: created with mode 0666 less the umask (a plain temporary file is
/// 0600 whatever the umask, which made another operator's `depot check`
/// call the patch broken).
///
/// The file is locked (flock) for as long as it is open, so a later run
/// tells a temporary file whose writer was killed from one being written
/// ([`remove_leftover_temps`]).
pub fn shared_temp(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .rand_bytes(TEMP_RANDOM)
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    temp.as_file().lock()?;
    Ok(temp)
}

/// Names of [`shared_temp`] files: this prefix and [`TEMP_RANDOM`] letters
/// or digits. The depot's index (`.patchdeck-index.sqlite`) and lock file
/// share the prefix but not the shape.
pub const TEMP_PREFIX: &str = ".patchdeck-";
const TEMP_RANDOM: usize = 6;

fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX).is_some_and(|rest| {
        rest.len() == TEMP_RANDOM && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The [`shared_temp`] files in `dir` that nobody is writing (their lock
/// is free: the writer was killed), by name, sorted.
///
/// Errors: `dir` cannot be read.
pub fn leftover_temps(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for dirent in fs::read_dir(dir)? {
        let dirent = dirent?;
        let Ok(name) = dirent.file_name().into_string() else {
            continue;
        };
        if !is_temp_name(&name) || !dirent.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        // Opened read-only: flock does not need write access. A file gone
        // meanwhile was persisted or removed by its writer.
        let Ok(file) = fs::File::open(dirent.path()) else {
            continue;
        };
        if file.try_lock().is_ok() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Removes [`leftover_temps`] from `dir`; returns their names.
///
/// Errors: `dir` cannot be read, or a leftover cannot be removed.
pub fn remove_leftover_temps(dir: &Path) -> io::Result<Vec<String>> {
    let names = leftover_temps(dir)?;
    for name in &names {
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(names)
}

/// Appends one regular file with fixed owner and time, so packing the same
/// directory twice gives the same bytes.
pub fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    mode: u32,
    data: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder.append_data(&mut header, name, data)
}

fn collect_payload(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(FileEntry, PathBuf)>,
) -> Result<(), PackError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(PackError::io(dir))?
        .collect::<Result<_, _>>()
        .map_err(PackError::io(dir))?;
    names.sort_by_key(|e| e.file_name());
    for dirent in names {
        let path = dirent.path();
        let meta = fs::symlink_metadata(&path).map_err(PackError::io(&path))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(PackError::input(
                &path,
                "is a symbolic link; a patch carries only regular files",
            ));
        }
        if kind.is_dir() {
            collect_payload(root, &path, out)?;
            continue;
        }
        if !kind.is_file() {
            return Err(PackError::input(
                &path,
                "is a device, socket or pipe; a patch carries only regular files",
            ));
        }
        if meta.nlink() > 1 {
            return Err(PackError::input(
                &path,
                "is a hard link; a patch carries only regular files",
            ));
        }
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let Some(rel) = rel.to_str() else {
            return Err(PackError::input(&path, "file name is not UTF-8"));
        };
        manifest::check_payload_path(rel).map_err(|m| PackError::input(&path, m))?;
        let sha256 = sha256_file(&path).map_err(PackError::io(&path))?;
        // Permission bits only: setuid, setgid and sticky bits are never carried.
        let mode = meta.permissions().mode() & 0o777;
        out.push((
            FileEntry {
                path: rel.to_string(),
                sha256,
                size: meta.len(),
                mode,
            },
            path,
        ));
    }
    Ok(())
}
