//! Checking one signature: is `FILE.minisig` a valid minisign signature of
//! exactly these bytes, by a key of the keyring, made for this id? The
//! answer is a [`Verdict`]: signed by a key, unsigned, or untrusted with
//! the [`Reason`]. The node and the console ask the same function.
//!
//! The id rule: the trusted comment (signed with the file) must name the
//! id as a word. A valid signature copied beside another file, even one
//! with the same bytes under another id, is refused because its comment
//! names the id it was made for.

use std::io::{Read, Seek};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::keys::{self, Keyring};

/// What a file's signature says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Verdict {
    /// A valid signature by a trusted key, made for this id.
    Signed { key_id: String, key_name: String },
    /// No `.minisig` beside the file.
    Unsigned,
    /// A signature that does not prove what it should, and why.
    Untrusted { reason: Reason },
}

impl Verdict {
    pub fn is_signed(&self) -> bool {
        matches!(self, Verdict::Signed { .. })
    }

    /// A few words for lists and the console: the signer, `unsigned`, or
    /// `UNTRUSTED: reason`.
    pub fn short(&self) -> String {
        match self {
            Verdict::Signed { key_name, .. } => format!("signed by {key_name}"),
            Verdict::Unsigned => "unsigned".into(),
            Verdict::Untrusted { reason } => format!("UNTRUSTED: {reason}"),
        }
    }
}

/// Why a signature is not accepted. Each names the key where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The `.minisig` is not a minisign signature (truncated, garbled).
    #[error("malformed signature: {why}")]
    Malformed { why: String },
    /// Signed by a key the keyring does not hold.
    #[error("signed by key {key_id}, which is not a trusted key")]
    UntrustedKey { key_id: String },
    /// Signed by a key that was trusted and has been removed.
    #[error(
        "signed by key {key_id} ({key_name}), which was revoked (removed from the trusted keys)"
    )]
    Revoked { key_id: String, key_name: String },
    /// The signature does not match the bytes (or its comment was altered).
    #[error("bad signature by key {key_id} ({key_name}): {why}")]
    BadSignature {
        key_id: String,
        key_name: String,
        why: String,
    },
    /// A valid signature made for another id.
    #[error(
        "the signature's trusted comment {comment:?} does not name {id}: it was made for another patch"
    )]
    OtherId { comment: String, id: String },
}

/// Whether `id` stands as a word in `comment`: patchdeck's own
/// `id=ID` wins when present; otherwise any token between characters that
/// cannot be in an id (so `minisign -t ID` and `-t "release ID"` pass,
/// and `ID2` or `ID.patch` do not name `ID`).
pub fn comment_names(comment: &str, id: &str) -> bool {
    let is_id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+');
    let words: Vec<&str> = comment.split(|c| !is_id_char(c) && c != '=').collect();
    let tagged: Vec<&str> = words.iter().filter_map(|w| w.strip_prefix("id=")).collect();
    if !tagged.is_empty() {
        return tagged.contains(&id);
    }
    comment.split(|c| !is_id_char(c)).any(|w| w == id)
}

/// Checks signature text `sig` over `data` for `id` against `keyring`.
/// Never panics on outside input; every refusal is a [`Reason`].
pub fn verify<R: Read + Seek>(keyring: &Keyring, id: &str, data: R, sig: &str) -> Verdict {
    let untrusted = |reason| Verdict::Untrusted { reason };
    let sig_box = match minisign::SignatureBox::from_string(sig) {
        Ok(b) => b,
        Err(e) => {
            return untrusted(Reason::Malformed { why: e.to_string() });
        }
    };
    let key_id = keys::key_id(sig_box.keynum());
    let Some(key) = keyring.trusted(&key_id) else {
        return untrusted(match keyring.revoked(&key_id) {
            Some(k) => Reason::Revoked {
                key_id,
                key_name: k.name.clone(),
            },
            None => Reason::UntrustedKey { key_id },
        });
    };
    // Comment and global signature are checked with the data: an altered
    // trusted comment fails here, not later.
    if let Err(e) = minisign::verify(&key.key, &sig_box, data, true, false, true) {
        return untrusted(Reason::BadSignature {
            key_id,
            key_name: key.name.clone(),
            why: match e.to_string().as_str() {
                "Signature verification failed" => {
                    "the file is not what was signed (altered or replaced)".into()
                }
                "Comment signature verification failed" => {
                    "the trusted comment was altered after signing".into()
                }
                other => other.to_string(),
            },
        });
    }
    let comment = sig_box.trusted_comment().unwrap_or_default();
    if !comment_names(&comment, id) {
        return untrusted(Reason::OtherId {
            comment,
            id: id.to_string(),
        });
    }
    Verdict::Signed {
        key_id,
        key_name: key.name.clone(),
    }
}

/// Checks `file` against `FILE.minisig` beside it for `id`: unsigned when
/// there is no signature file, malformed when it cannot be read.
pub fn verify_file(keyring: &Keyring, id: &str, file: &Path) -> Verdict {
    let sig_path = keys::sig_path(file);
    if !sig_path.exists() {
        return Verdict::Unsigned;
    }
    let sig = match keys::read_small(&sig_path, keys::MAX_SIG_BYTES) {
        Ok(s) => s,
        Err(e) => {
            return Verdict::Untrusted {
                reason: Reason::Malformed { why: e.to_string() },
            };
        }
    };
    verify_with(keyring, id, file, &sig)
}

/// Checks `file` against signature text `sig` for `id`.
pub fn verify_with(keyring: &Keyring, id: &str, file: &Path, sig: &str) -> Verdict {
    match std::fs::File::open(file) {
        Ok(f) => verify(keyring, id, std::io::BufReader::new(f), sig),
        Err(e) => Verdict::Untrusted {
            reason: Reason::BadSignature {
                key_id: String::new(),
                key_name: String::new(),
                why: format!("{}: cannot read: {e}", file.display()),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_must_stand_as_a_word() {
        assert!(comment_names("GW_1", "GW_1"));
        assert!(comment_names("release GW_1 by ops", "GW_1"));
        assert!(comment_names(
            "patchdeck patch id=GW_1 file=GW_1.patch",
            "GW_1"
        ));
        assert!(!comment_names(
            "patchdeck patch id=GW_2 file=GW_1.patch",
            "GW_1"
        ));
        assert!(!comment_names("GW_10", "GW_1"));
        assert!(!comment_names("GW_1.patch", "GW_1"));
        assert!(!comment_names("timestamp:1 file:GW_2.patch hashed", "GW_1"));
    }
}
