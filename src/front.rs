//! What both front ends share below them: how a command ends (a
//! [`Failure`] and its exit status), opening a depot with progress on a
//! terminal, and JSON on stdout. Neither the console nor the command line
//! imports the other; both import this.

use std::path::Path;
use std::process::ExitCode;

use crate::engine::depot::Depot;

/// How a command failed, and so which exit status it gets.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or bad input: exit 2.
    Input(String),
    /// The operation failed: exit 1.
    Failed(String),
    /// Failed, and the command's own output (JSON included) already says
    /// why: only the message goes to stderr.
    Reported(u8, String),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Input(_) => 2,
            Failure::Failed(_) => 1,
            Failure::Reported(code, _) => *code,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Failure::Input(m) | Failure::Failed(m) | Failure::Reported(_, m) => m,
        }
    }
}

pub type Outcome = Result<(), Failure>;

/// Ends the process for an outcome: the message on stderr, and for a
/// command asked for `--json`, the error as JSON on stdout too (unless the
/// command's own output already said it).
pub fn exit(outcome: Outcome, json: bool) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("patchdeck: {}", failure.message());
            if json && !matches!(failure, Failure::Reported(..)) {
                let body = serde_json::json!({ "error": { "code": failure.code(), "message": failure.message() } });
                println!("{body}");
            }
            ExitCode::from(failure.code())
        }
    }
}

/// Opens a depot, showing progress on stderr when it has many files to read.
pub fn open_depot(dir: &Path) -> Result<Depot, Failure> {
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = move |done: usize, total: usize| {
        if show && total >= 2000 {
            eprint!("\rreading depot: {done}/{total} patch files");
            if done == total {
                eprintln!();
            }
        }
    };
    Depot::open_with(dir, true, &progress).map_err(|e| Failure::Failed(e.to_string()))
}

/// Prints a value as JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Outcome {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Failed(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
