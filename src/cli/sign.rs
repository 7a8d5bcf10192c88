//! `sign FILE... --key NAME.key`: writes `FILE.minisig` beside each file, in
//! the minisign format. A patch (`ID.patch`) gets the trusted comment
//! `patchdeck patch id=ID file=ID.patch`, which binds the signature to
//! that id; any other file (a bundle) `patchdeck bundle file=NAME`, which
//! is what `apply` looks for (engine::offline::signature).

use std::path::PathBuf;

use clap::Args;

use super::global::Global;
use super::key::{ask, key_failure, passphrase_from_file};
use crate::engine::archive;
use crate::engine::trust::{SecretKey, keys};
use crate::front::{Failure, Outcome, say};

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Files to sign (patches ID.patch, bundles).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The secret key (NAME.key from `patchdeck key generate` or `minisign -G`).
    #[arg(long, value_name = "NAME.key")]
    key: PathBuf,
    /// Read the key's passphrase from the first line of this file instead of asking.
    #[arg(long, value_name = "F")]
    passphrase_file: Option<PathBuf>,
    /// The trusted comment (signed with the file); default names the patch id.
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
}

pub fn run(_global: &Global, args: SignArgs) -> Outcome {
    for f in &args.files {
        if !f.is_file() {
            return Err(Failure::Input(format!(
                "{}: not a file to sign",
                f.display()
            )));
        }
    }
    let secret = open_secret(&args.key, args.passphrase_file.as_deref())?;
    for file in &args.files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let comment = match (&args.comment, archive::id_from_path(file)) {
            (Some(c), _) => c.clone(),
            (None, Ok(id)) => keys::patch_comment(&id, &name),
            (None, Err(_)) => format!(
                "patchdeck {} file={name}",
                crate::engine::offline::signature::BUNDLE_WORD
            ),
        };
        if comment.contains(['\n', '\r']) {
            return Err(Failure::Input("--comment must be one line".to_string()));
        }
        let out = secret.sign_file(file, &comment).map_err(key_failure)?;
        say!(
            "signed {} with key {}: {}",
            file.display(),
            secret.id,
            out.display()
        );
    }
    Ok(())
}

/// Opens a secret key, asking its passphrase (file or terminal) only when
/// the key is encrypted.
pub fn open_secret(
    key: &std::path::Path,
    passphrase_file: Option<&std::path::Path>,
) -> Result<SecretKey, Failure> {
    let mut asked: Option<Failure> = None;
    let result = SecretKey::open(key, || {
        let got = match passphrase_file {
            Some(f) => passphrase_from_file(f),
            None => ask(&format!("Passphrase for {}: ", key.display())),
        };
        got.map_err(|f| {
            let e = crate::engine::trust::KeyError::Invalid {
                path: key.display().to_string(),
                message: f.message().to_string(),
            };
            asked = Some(f);
            e
        })
    });
    match (result, asked) {
        (Ok(k), _) => Ok(k),
        (Err(_), Some(f)) => Err(f),
        (Err(e), None) => Err(key_failure(e)),
    }
}
