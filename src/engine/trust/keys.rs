//! Keys and signatures in the minisign format (Ed25519 over the BLAKE2b-512
//! hash of a file, with a signed "trusted comment"), through the `minisign`
//! crate, so the standard `minisign` tool signs and verifies the same files.
//!
//! This file owns generating a key pair, reading public and secret key
//! files, signing a file into `FILE.minisig`, and the [`Keyring`]: a set of
//! trusted public keys (plus the revoked ones, kept so a refusal can say
//! "revoked" rather than "unknown") read from a directory of `KEYID.pub`
//! files. The format is minisign's own: <https://jedisct1.github.io/minisign/>.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;

/// A signature file is the signed file's name plus this suffix.
pub const SIG_SUFFIX: &str = ".minisig";
/// A key file's suffixes, as `minisign -G` and `patchdeck key generate` write them.
pub const PUB_SUFFIX: &str = ".pub";
pub const SECRET_SUFFIX: &str = ".key";
/// A `.minisig` is about 300 bytes; anything far larger is not one.
pub const MAX_SIG_BYTES: u64 = 64 * 1024;
/// Public and secret key files are a few hundred bytes.
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Marks the key name in the comment line of a key file patchdeck writes.
const NAME_MARK: &str = " name=";

/// What went wrong with a key or a signature file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file is not what it should be (bad input: exit 2).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// Reading or writing failed.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl KeyError {
    fn invalid(path: &Path, message: impl Into<String>) -> KeyError {
        KeyError::Invalid {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
    fn io(path: &Path, e: impl std::fmt::Display) -> KeyError {
        KeyError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// A key id as minisign prints it: the 8-byte key number read as a
/// little-endian integer, 16 upper-case hex digits.
pub fn key_id(keynum: &[u8]) -> String {
    let mut n = [0u8; 8];
    for (d, s) in n.iter_mut().zip(keynum) {
        *d = *s;
    }
    format!("{:016X}", u64::from_le_bytes(n))
}

/// Where the signature of `file` lives: `FILE.minisig` beside it.
pub fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_os_string();
    s.push(SIG_SUFFIX);
    PathBuf::from(s)
}

/// The trusted comment patchdeck writes when it signs patch `id` in file
/// `file_name`. Verification accepts any comment in which the id stands as
/// a word (see `verify::comment_names`), so `minisign -S -t ID` works too.
pub fn patch_comment(id: &str, file_name: &str) -> String {
    format!("patchdeck patch id={id} file={file_name}")
}

/// Key names: what a file name may safely be (letters, digits, `_ - . +`),
/// 1 to 64 characters, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with(['.', '-']) {
        return Err(format!(
            "{name:?} is not a key name; expected 1 to 64 letters, digits, '_', '-', '.' or '+', \
             not starting with '.' or '-'"
        ));
    }
    Ok(())
}

/// A public key, with its id and the name it is known by.
#[derive(Clone)]
pub struct PublicKey {
    /// 16 hex digits, as minisign prints it.
    pub id: String,
    /// The key's name (`NAME` of `NAME.pub`), or its id when it has none.
    pub name: String,
    pub key: minisign::PublicKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} {})", self.id, self.name)
    }
}

impl PublicKey {
    /// Parses a public key file's text (minisign's two lines: an untrusted
    /// comment, then the base64 key). `fallback_name` names the key when
    /// the comment does not (`name=` is what patchdeck writes). `origin`
    /// names the text in errors.
    pub fn parse(text: &str, fallback_name: &str, origin: &Path) -> Result<PublicKey, KeyError> {
        if text
            .lines()
            .next()
            .unwrap_or_default()
            .contains("secret key")
        {
            return Err(KeyError::invalid(
                origin,
                "this is a secret key; give the public key (NAME.pub), never the secret one",
            ));
        }
        let mut lines = text.lines();
        let comment = lines.next().unwrap_or_default();
        let encoded = lines.next().map(str::trim).unwrap_or_default();
        if !comment.starts_with("untrusted comment:") || encoded.is_empty() {
            return Err(KeyError::invalid(
                origin,
                "not a minisign public key; expected an \"untrusted comment:\" line and a base64 key line",
            ));
        }
        let key = minisign::PublicKey::from_base64(encoded).map_err(|e| {
            KeyError::invalid(origin, format!("line 2: not a minisign public key: {e}"))
        })?;
        let id = key_id(key.keynum());
        let name = comment
            .split_once(NAME_MARK)
            .map(|(_, n)| n.trim())
            .filter(|n| check_name(n).is_ok())
            .unwrap_or(fallback_name)
            .to_string();
        Ok(PublicKey { id, name, key })
    }

    /// Reads `NAME.pub`; its name is the comment's `name=`, else the file stem.
    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_small(path, MAX_KEY_BYTES)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| check_name(s).is_ok())
            .unwrap_or_default();
        let mut key = PublicKey::parse(&text, &stem, path)?;
        if key.name.is_empty() {
            key.name = key.id.clone();
        }
        Ok(key)
    }

    /// The file text patchdeck stores for this key: minisign's format, the
    /// comment carrying the name.
    pub fn to_text(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}{NAME_MARK}{}\n{}\n",
            self.id,
            self.name,
            self.key.to_base64()
        )
    }
}

/// Trusted public keys, and the revoked ones a refusal names as revoked.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    pub keys: Vec<PublicKey>,
    pub revoked: Vec<PublicKey>,
}

impl Keyring {
    /// Reads every `*.pub` in `dir` (trusted) and in `dir/revoked/`
    /// (revoked). A missing directory is an empty keyring; an unreadable
    /// key file is an error naming it, never skipped silently.
    pub fn load_dir(dir: &Path) -> Result<Keyring, KeyError> {
        let keys = read_keys(dir)?;
        let revoked = read_keys(&dir.join("revoked"))?
            .into_iter()
            .filter(|r| !keys.iter().any(|k| k.id == r.id))
            .collect();
        Ok(Keyring { keys, revoked })
    }

    pub fn trusted(&self, id: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn revoked(&self, id: &str) -> Option<&PublicKey> {
        self.revoked.iter().find(|k| k.id == id)
    }

    /// Identifies the key set, for caching results that depend on it.
    pub fn fingerprint(&self) -> String {
        let mut parts: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("+{}:{}:{}", k.id, k.name, k.key.to_base64()))
            .chain(self.revoked.iter().map(|k| format!("-{}", k.id)))
            .collect();
        parts.sort();
        parts.join(",")
    }
}

fn read_keys(dir: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(KeyError::io(dir, format!("cannot read: {e}"))),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| KeyError::io(dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pub") && path.is_file() {
            keys.push(PublicKey::read(&path)?);
        }
    }
    keys.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(keys)
}

/// Reads a small text file, refusing one larger than `max` bytes.
pub fn read_small(path: &Path, max: u64) -> Result<String, KeyError> {
    let meta = fs::metadata(path).map_err(|e| KeyError::io(path, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(KeyError::invalid(path, "is not a regular file"));
    }
    if meta.len() > max {
        return Err(KeyError::invalid(
            path,
            format!("is {} bytes; expected at most {max}", meta.len()),
        ));
    }
    let bytes = fs::read(path).map_err(|e| KeyError::io(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| KeyError::invalid(path, "is not UTF-8 text"))
}

/// What `generate` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    pub id: String,
    pub public: PathBuf,
    pub secret: PathBuf,
}

/// Writes a new key pair as `dir/NAME.pub` and `dir/NAME.key` (mode 0600),
/// the secret key encrypted with `passphrase` (minisign's scrypt) or not
/// encrypted when it is `None`. Refuses to overwrite either file.
pub fn generate(dir: &Path, name: &str, passphrase: Option<String>) -> Result<Generated, KeyError> {
    check_name(name).map_err(|m| KeyError::invalid(dir, m))?;
    let public = dir.join(format!("{name}{PUB_SUFFIX}"));
    let secret = dir.join(format!("{name}{SECRET_SUFFIX}"));
    for p in [&public, &secret] {
        if p.exists() {
            return Err(KeyError::invalid(
                p,
                "already exists; patchdeck never overwrites a key: choose another --name or directory",
            ));
        }
    }
    fs::create_dir_all(dir).map_err(|e| KeyError::io(dir, e))?;
    let pair = match passphrase {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| KeyError::io(dir, format!("cannot generate a key: {e}")))?;
    let id = key_id(pair.pk.keynum());
    let pk = PublicKey {
        id: id.clone(),
        name: name.to_string(),
        key: pair.pk,
    };
    let sk_text = pair
        .sk
        .to_box(Some(&format!("minisign secret key {id}{NAME_MARK}{name}")))
        .map_err(|e| KeyError::io(&secret, e))?
        .into_string();
    write_new(&secret, sk_text.as_bytes(), 0o600)?;
    write_new(&public, pk.to_text().as_bytes(), 0o644)?;
    Ok(Generated { id, public, secret })
}

/// Creates a file that must not exist yet, with `mode`, and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| KeyError::io(path, format!("cannot create: {e}")))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| KeyError::io(path, e))
}

/// A secret key ready to sign.
pub struct SecretKey {
    pub id: String,
    key: minisign::SecretKey,
}

/// Whether a secret key file's text holds an encrypted key (minisign's
/// layout: two bytes of algorithm, then two of KDF, zero when none).
pub fn secret_is_encrypted(text: &str, origin: &Path) -> Result<bool, KeyError> {
    let line = text.lines().nth(1).map(str::trim).unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|_| KeyError::invalid(origin, "line 2: not a minisign secret key"))?;
    match bytes.get(2..4) {
        Some(kdf) => Ok(kdf != [0, 0]),
        None => Err(KeyError::invalid(
            origin,
            "line 2: not a minisign secret key",
        )),
    }
}

impl SecretKey {
    /// Reads a secret key file; `passphrase` is asked only when the key is
    /// encrypted. A wrong passphrase is bad input naming the file.
    pub fn open(
        path: &Path,
        passphrase: impl FnOnce() -> Result<String, KeyError>,
    ) -> Result<SecretKey, KeyError> {
        let text = read_small(path, MAX_KEY_BYTES)?;
        let first = text.lines().next().unwrap_or_default();
        if !first.starts_with("untrusted comment:") || first.contains("public key") {
            return Err(KeyError::invalid(
                path,
                "not a minisign secret key (NAME.key); sign with the secret key, not the public one",
            ));
        }
        let sk_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| KeyError::invalid(path, e.to_string()))?;
        let key = if secret_is_encrypted(&text, path)? {
            let pass = passphrase()?;
            minisign::SecretKey::from_box(sk_box, Some(pass))
                .map_err(|e| KeyError::invalid(path, format!("cannot open the secret key: {e}")))?
        } else {
            sk_box
                .into_unencrypted_secret_key()
                .map_err(|e| KeyError::invalid(path, format!("cannot open the secret key: {e}")))?
        };
        Ok(SecretKey {
            id: key_id(key.keynum()),
            key,
        })
    }

    /// A key made in memory (the demo lab signs its depot with one and
    /// then forgets it).
    pub fn ephemeral() -> Result<(SecretKey, PublicKey), KeyError> {
        let pair = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|e| KeyError::io(Path::new("."), format!("cannot generate a key: {e}")))?;
        let id = key_id(pair.pk.keynum());
        Ok((
            SecretKey {
                id: id.clone(),
                key: pair.sk,
            },
            PublicKey {
                id,
                name: String::new(),
                key: pair.pk,
            },
        ))
    }

    /// Signs `data` with `trusted_comment`; returns the `.minisig` text.
    pub fn sign_reader(
        &self,
        data: impl std::io::Read,
        trusted_comment: &str,
        origin: &Path,
    ) -> Result<String, KeyError> {
        let untrusted = format!("signature from patchdeck secret key {}", self.id);
        minisign::sign(
            None,
            &self.key,
            data,
            Some(trusted_comment),
            Some(&untrusted),
        )
        .map(|b| b.into_string())
        .map_err(|e| KeyError::io(origin, format!("cannot sign: {e}")))
    }

    /// Signs `file` into `FILE.minisig` (written through a temporary file
    /// and a rename, so a reader never sees half a signature). Returns the
    /// signature's path.
    pub fn sign_file(&self, file: &Path, trusted_comment: &str) -> Result<PathBuf, KeyError> {
        let data =
            fs::File::open(file).map_err(|e| KeyError::io(file, format!("cannot read: {e}")))?;
        let text = self.sign_reader(std::io::BufReader::new(data), trusted_comment, file)?;
        let out = sig_path(file);
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temp =
            crate::engine::archive::shared_temp(dir).map_err(|e| KeyError::io(&out, e))?;
        temp.write_all(text.as_bytes())
            .and_then(|_| temp.as_file().sync_all())
            .map_err(|e| KeyError::io(&out, e))?;
        temp.persist(&out)
            .map_err(|e| KeyError::io(&out, e.error))?;
        Ok(out)
    }
}
