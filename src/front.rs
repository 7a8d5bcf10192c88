//! What both front ends share below them: how a command ends (a
//! [`Failure`] and its exit status), opening a depot with progress on a
//! terminal, and JSON on stdout. Neither the console nor the command line
//! imports the other; both import this.

use std::path::Path;
use std::process::ExitCode;

use crate::engine::depot::Depot;

/// Prints one line on stdout with every control character in it made
/// visible ([`crate::engine::text::neutralise`]): text output carries
/// strings from patches, fleets, nodes and logs, which must never reach a
/// terminal raw. JSON goes through `println!`: its escaping is enough.
macro_rules! say {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", $crate::engine::text::neutralise(&format!($($arg)*)))
    };
}
pub(crate) use say;

/// [`say!`] for stderr, for messages: line breaks in a message (a refusal
/// listing one member per line) are kept; every other control is shown.
macro_rules! shout {
    () => {
        eprintln!()
    };
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::engine::text::neutralise_lines(&format!($($arg)*)))
    };
}
pub(crate) use shout;

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
            shout!("patchdeck: {}", failure.message());
            if json && !matches!(failure, Failure::Reported(..)) {
                let body = serde_json::json!({ "error": { "code": failure.code(), "message": failure.message() } });
                println!("{body}");
            }
            ExitCode::from(failure.code())
        }
    }
}

/// A progress bar on standard error for long work over `total` items
/// (nodes, patch files, rollout steps), drawn in plain ASCII so a serial
/// console shows it too. It is hidden, and every call on it does nothing,
/// when standard error is not a terminal or the output is JSON: scripts
/// and pipes see nothing extra. Lines printed while it is shown go through
/// [`indicatif::ProgressBar::suspend`] so they do not tear it.
pub fn progress(total: u64, what: &str, json: bool) -> indicatif::ProgressBar {
    if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
        .map(|s| s.progress_chars("#>-"))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let bar = indicatif::ProgressBar::new(total).with_style(style);
    bar.set_message(what.to_string());
    bar
}

/// Opens a depot, showing progress on stderr when it has many files to read.
pub fn open_depot(dir: &Path) -> Result<Depot, Failure> {
    let bar = std::sync::OnceLock::new();
    let progress = |done: usize, total: usize| {
        if total < 2000 {
            return;
        }
        let bar = bar.get_or_init(|| progress(total as u64, "reading depot", false));
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
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

/// Where log lines go.
pub enum LogTo {
    /// Standard error: the verbs (their answers are on standard output).
    Stderr,
    /// A file, appended to: the console, whose screen is standard output.
    File(std::path::PathBuf),
}

/// Sets up logging once for the process. `level` is `--log-level`
/// (off, error, warn, info, debug or trace);
/// `RUST_LOG`, when set, wins; else `default`. Errors: a level that is not
/// a valid directive (bad input), a log file that cannot be opened.
pub fn init_logging(level: Option<&str>, default: &str, to: LogTo) -> Result<(), Failure> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()) {
        Some(env) => {
            EnvFilter::try_new(&env).map_err(|e| Failure::Input(format!("RUST_LOG={env}: {e}")))?
        }
        None => {
            let wanted = level.unwrap_or(default).to_ascii_lowercase();
            if !["off", "error", "warn", "info", "debug", "trace"].contains(&wanted.as_str()) {
                return Err(Failure::Input(format!(
                    "--log-level {wanted}: not a level; use off, error, warn, info, debug or trace"
                )));
            }
            EnvFilter::new(wanted)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match to {
        LogTo::Stderr => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
        LogTo::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Failure::Failed(format!("{}: {e}", dir.display())))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Failure::Failed(format!("{}: {e}", path.display())))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init()
        }
    };
    Ok(())
}
