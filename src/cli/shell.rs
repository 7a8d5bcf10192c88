//! `completions` and `man`: the command line described for shells and for
//! `man`, generated from the same clap definitions the binary parses with,
//! so they cannot drift from what it accepts.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::front::{Failure, Outcome};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write patchdeck.1 and one page per verb (patchdeck-install.1, …) into
    /// this directory; without it, patchdeck.1 goes to standard output.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Prints the completion script for a shell on standard output, e.g.
/// `patchdeck completions bash > /etc/bash_completion.d/patchdeck`.
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> Outcome {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "patchdeck", &mut std::io::stdout());
    Ok(())
}

/// Writes the manual pages (roff): the whole command to standard output, or
/// every page into a directory.
pub fn man(args: ManArgs, cmd: clap::Command) -> Outcome {
    let Some(dir) = args.output else {
        return clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| Failure::Failed(format!("cannot write the manual page: {e}")));
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Failed(format!("{}: {e}", dir.display())))?;
    clap_mangen::generate_to(cmd, &dir)
        .map_err(|e| Failure::Failed(format!("{}: {e}", dir.display())))?;
    Ok(())
}
