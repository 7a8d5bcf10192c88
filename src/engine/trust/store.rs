//! A directory of trusted public keys: `DIR/KEYID.pub`, one file per key so
//! an auditor can read the trust of a lab (`LAB/trust/`) or a node (its
//! store's `trust/`) with `ls` and `cat`. Removing a key moves its file to
//! `DIR/revoked/`, so what it signed is then refused as signed by a revoked
//! key, not merely an unknown one. Only public keys are ever stored here.

use std::fs;
use std::path::{Path, PathBuf};

use super::keys::{KeyError, Keyring, PublicKey};

/// The file a trusted key is kept in.
pub fn key_file(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.pub"))
}

/// Adds the public key in `pub_file` to the trusted keys in `dir`; a key
/// that was revoked is trusted again. Returns the key and whether it was
/// already trusted (then nothing changed).
pub fn add(dir: &Path, pub_file: &Path) -> Result<(PublicKey, bool), KeyError> {
    let key = PublicKey::read(pub_file)?;
    add_key(dir, &key).map(|fresh| (key, !fresh))
}

/// Stores `key` in `dir`; false when it was already there.
pub fn add_key(dir: &Path, key: &PublicKey) -> Result<bool, KeyError> {
    let io = |p: &Path, e: std::io::Error| KeyError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let dest = key_file(dir, &key.id);
    let known = Keyring::load_dir(dir)?;
    if let Some(k) = known.trusted(&key.id) {
        if k.key != key.key {
            return Err(KeyError::Invalid {
                path: dest.display().to_string(),
                message: format!(
                    "a different key with id {} is already trusted; remove it first",
                    key.id
                ),
            });
        }
        return Ok(false);
    }
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut temp = crate::engine::archive::shared_temp(dir).map_err(|e| io(dir, e))?;
    use std::io::Write;
    temp.write_all(key.to_text().as_bytes())
        .and_then(|_| temp.as_file().sync_all())
        .map_err(|e| io(&dest, e))?;
    temp.persist(&dest).map_err(|e| io(&dest, e.error))?;
    let revoked = key_file(&dir.join("revoked"), &key.id);
    if revoked.exists() {
        fs::remove_file(&revoked).map_err(|e| io(&revoked, e))?;
    }
    Ok(true)
}

/// Removes the trusted key named by id (16 hex digits, any case), by name,
/// or by its public key file (`KEY.pub`, as `add` took it), moving its file
/// to `dir/revoked/`. An unknown key is bad input.
pub fn remove(dir: &Path, which: &str) -> Result<PublicKey, KeyError> {
    let file = Path::new(which);
    let from_file;
    let which = if which.ends_with(".pub") || which.contains('/') {
        from_file = PublicKey::read(file)?.id;
        from_file.as_str()
    } else {
        which
    };
    let ring = Keyring::load_dir(dir)?;
    let matches: Vec<&PublicKey> = ring
        .keys
        .iter()
        .filter(|k| k.id.eq_ignore_ascii_case(which) || k.name == which)
        .collect();
    let key = match matches.as_slice() {
        [k] => (*k).clone(),
        [] => {
            let known: Vec<String> = ring
                .keys
                .iter()
                .map(|k| format!("{} ({})", k.id, k.name))
                .collect();
            return Err(KeyError::Invalid {
                path: dir.display().to_string(),
                message: format!(
                    "no trusted key {which:?}; trusted: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|k| k.id.as_str()).collect();
            return Err(KeyError::Invalid {
                path: dir.display().to_string(),
                message: format!(
                    "{which:?} names {} keys ({}); give the key id",
                    many.len(),
                    ids.join(", ")
                ),
            });
        }
    };
    let revoked_dir = dir.join("revoked");
    let io = |p: &Path, e: std::io::Error| KeyError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    fs::create_dir_all(&revoked_dir).map_err(|e| io(&revoked_dir, e))?;
    let from = key_file(dir, &key.id);
    let to = key_file(&revoked_dir, &key.id);
    fs::rename(&from, &to).map_err(|e| io(&from, e))?;
    Ok(key)
}

/// Replaces the whole trusted set in `dir` with `keys` (what a node is
/// sent): keys not in the new set are revoked, new ones added.
pub fn replace(dir: &Path, keys: &[PublicKey]) -> Result<(), KeyError> {
    let ring = Keyring::load_dir(dir)?;
    for k in keys {
        add_key(dir, k)?;
    }
    for old in ring
        .keys
        .iter()
        .filter(|o| !keys.iter().any(|k| k.id == o.id))
    {
        remove(dir, &old.id)?;
    }
    Ok(())
}
