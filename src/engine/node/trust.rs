//! A node's own trusted keys (docs/trust.md): public keys kept in its store
//! (`var/lib/patchdeck/trust/KEYID.pub`), set by the console with `trust
//! push` or `bootstrap`. A node that holds keys stages only patches whose
//! signature, sent with the stage request, is valid by one of them for
//! that patch id, so a compromised console (one whose lab does not require
//! signatures) still cannot put an unsigned patch on it. A node without
//! keys stages as before.

use std::path::{Path, PathBuf};

use super::{ErrorKind, Node, Report, Result, STORE_DIR};
use crate::engine::trust::{Keyring, PublicKey, Verdict, keys::KeyError, store, verify};

impl Node {
    /// Where the node keeps its trusted keys.
    pub fn trust_dir(&self) -> PathBuf {
        self.root().join(STORE_DIR).join("trust")
    }

    /// The node's trusted (and revoked) keys; empty when it has none.
    pub fn keyring(&self) -> Result<Keyring> {
        Keyring::load_dir(&self.trust_dir()).map_err(|e| self.key_err(e))
    }

    fn key_err(&self, e: KeyError) -> super::NodeError {
        let kind = match e {
            KeyError::Invalid { .. } => ErrorKind::Invalid,
            KeyError::Io { .. } => ErrorKind::Io,
        };
        self.err(kind, e.to_string())
    }

    /// Replaces the node's trusted keys with `keys` (public key files'
    /// text, minisign format); keys left out are revoked. An empty list is
    /// refused: a node stops checking only by an operator removing its
    /// trust directory by hand, never over the protocol. Returns how many
    /// keys the node now trusts.
    pub fn set_trust(&mut self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Err(self.err(
                ErrorKind::Refused,
                "no keys given; a node's keys are replaced, never emptied, over the protocol",
            ));
        }
        let origin = Path::new("trust request");
        let parsed = keys
            .iter()
            .map(|t| PublicKey::parse(t, "", origin))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.key_err(e))?;
        let parsed: Vec<PublicKey> = parsed
            .into_iter()
            .map(|mut k| {
                if k.name.is_empty() {
                    k.name = k.id.clone();
                }
                k
            })
            .collect();
        let _lock = self.lock("trust", "-")?;
        store::replace(&self.trust_dir(), &parsed).map_err(|e| self.key_err(e))?;
        Ok(parsed.len())
    }

    /// Stages `id` from `source` as [`Node::stage`] does, after checking
    /// `sig` (the `.minisig` text) when the node holds trusted keys.
    pub fn stage_signed(&mut self, id: &str, source: &Path, sig: Option<&str>) -> Result<Report> {
        let ring = self.keyring()?;
        if !ring.keys.is_empty() {
            let names: Vec<String> = ring
                .keys
                .iter()
                .map(|k| format!("{} ({})", k.id, k.name))
                .collect();
            let verdict = match sig {
                None => Verdict::Unsigned,
                Some(s) => verify::verify_with(&ring, id, source, s),
            };
            let why = match verdict {
                Verdict::Signed { .. } => None,
                Verdict::Unsigned => Some("it came without a signature".to_string()),
                Verdict::Untrusted { reason } => Some(reason.to_string()),
            };
            if let Some(why) = why {
                return Err(self.err(
                    ErrorKind::Refused,
                    format!(
                        "{id} refused: {why}; this node stages only patches signed by its trusted keys: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
        self.stage(id, source)
    }
}
