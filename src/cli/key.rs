//! `key generate`: a minisign key pair for signing patches and bundles, and
//! how a secret key's passphrase is obtained (asked twice on the terminal,
//! never echoed, or read from a file for automation).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::global::Global;
use crate::engine::trust::{KeyError, keys};
use crate::front::{Failure, Outcome, say};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory to write the key files into (created if missing).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    dir: PathBuf,
    /// The key's name: NAME.key and NAME.pub.
    #[arg(long, default_value = "patchdeck")]
    name: String,
    /// Leave the secret key unencrypted (for automation; guard the file).
    #[arg(long, conflicts_with = "passphrase_file")]
    no_passphrase: bool,
    /// Read the passphrase from the first line of this file instead of asking.
    #[arg(long, value_name = "F")]
    passphrase_file: Option<PathBuf>,
}

pub fn run(_global: &Global, command: KeyCommand) -> Outcome {
    match command {
        KeyCommand::Generate(args) => generate(args),
    }
}

fn generate(args: GenerateArgs) -> Outcome {
    keys::check_name(&args.name).map_err(Failure::Input)?;
    let passphrase = if args.no_passphrase {
        None
    } else if let Some(file) = &args.passphrase_file {
        Some(passphrase_from_file(file)?)
    } else {
        let first = ask("Passphrase for the new secret key: ")?;
        let again = ask("The same passphrase again: ")?;
        if first != again {
            return Err(Failure::Input(
                "the two passphrases differ; nothing was written".into(),
            ));
        }
        Some(first)
    };
    if passphrase.as_deref() == Some("") {
        return Err(Failure::Input(
            "an empty passphrase protects nothing; give one, or --no-passphrase".into(),
        ));
    }
    let made = keys::generate(&args.dir, &args.name, passphrase).map_err(key_failure)?;
    say!("key {} written:", made.id);
    say!("  secret {} (keep it off the lab)", made.secret.display());
    say!(
        "  public {} (trust it: patchdeck depot trust add {})",
        made.public.display(),
        made.public.display()
    );
    Ok(())
}

/// A key error as a failure: bad files are bad input (exit 2).
pub fn key_failure(e: KeyError) -> Failure {
    match e {
        KeyError::Invalid { .. } => Failure::Input(e.to_string()),
        KeyError::Io { .. } => Failure::Failed(e.to_string()),
    }
}

/// The first line of `file`, without its line ending.
pub fn passphrase_from_file(file: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Failure::Input(format!(
            "{}: cannot read the passphrase: {e}",
            file.display()
        ))
    })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Asks on the terminal without echo; no terminal is bad usage.
pub fn ask(prompt: &str) -> Result<String, Failure> {
    rpassword::prompt_password(prompt).map_err(|e| {
        Failure::Input(format!(
            "cannot ask for the passphrase ({e}): no terminal? use --passphrase-file F"
        ))
    })
}
