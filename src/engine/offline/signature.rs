//! Signed bundles (docs/trust.md): `prepare --key` writes `BUNDLE.minisig`
//! beside the bundle, a minisign signature of every byte of it whose
//! trusted comment names the word `bundle` (so a patch's signature, which
//! names a patch id, is never taken for a bundle's; `minisign -S -t
//! bundle` signs one too). Where the site's lab requires signatures,
//! `apply` refuses a bundle without a valid signature by a trusted key.
//! The bundle's patches passed the preparing lab's trust rule, and the
//! bundle's signature covers them byte for byte.

use std::path::{Path, PathBuf};

use crate::engine::trust::{Gate, KeyError, SecretKey, Verdict, verify};

/// The word a bundle signature's trusted comment must name.
pub const BUNDLE_WORD: &str = "bundle";

/// Signs the bundle file `path` into `PATH.minisig`.
pub fn sign_bundle(key: &SecretKey, path: &Path) -> Result<PathBuf, KeyError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    key.sign_file(path, &format!("patchdeck {BUNDLE_WORD} file={name}"))
}

/// Why a site refuses a bundle's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{bundle}: refused: {why}; this lab requires bundles signed by a trusted key \
     ([trust] require_signatures; prepare with --key, and `patchdeck depot trust add` the key here)"
)]
pub struct BundleRefusal {
    pub bundle: String,
    pub why: String,
}

/// The verdict on the bundle at `path` by the lab's keys; an error when the
/// lab requires signatures and the bundle has no valid one.
pub fn check_bundle(gate: &Gate, path: &Path) -> Result<Verdict, BundleRefusal> {
    let verdict = verify::verify_file(&gate.keyring, BUNDLE_WORD, path);
    if !gate.required || verdict.is_signed() {
        return Ok(verdict);
    }
    let why = match &verdict {
        Verdict::Unsigned => format!(
            "it has no signature ({})",
            crate::engine::trust::keys::sig_path(path).display()
        ),
        Verdict::Untrusted { reason } => reason.to_string(),
        Verdict::Signed { .. } => String::new(),
    };
    Err(BundleRefusal {
        bundle: path.display().to_string(),
        why,
    })
}
