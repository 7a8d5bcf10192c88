//! The options every verb takes (`--lab`, `--depot`, `--log-level`) and
//! the console's drawing flags, and where they lead: the lab, the depot.

use std::path::PathBuf;

use clap::Args;

use crate::engine::lab::Lab;
use crate::front::Failure;

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The lab directory (default: $PATCHDECK_LAB or the user's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub lab: Option<PathBuf>,
    /// For commands that only read a depot: use this depot directory instead of the lab's.
    #[arg(long, global = true, value_name = "DIR")]
    pub depot: Option<PathBuf>,
    /// What goes to the log: off, error, warn, info, debug or trace
    /// (default warn; RUST_LOG, when set, wins). Verbs log to standard
    /// error; the console logs to LAB/logs/console.log.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// How the console draws; given to the console as plain values.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Colour theme: default, mono, high-contrast, or a user theme name.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// Serial-console profile: ASCII only, no colour, at most one redraw a
    /// second. Chosen by itself for TERM=vt100/vt102/vt220/linux or a
    /// locale that is not UTF-8.
    #[arg(long)]
    pub serial: bool,
    /// Minimum milliseconds between redraws for live updates (default 100; 1000 in the serial profile).
    #[arg(long, value_name = "MS")]
    pub refresh_ms: Option<u64>,
}

impl Global {
    pub fn lab(&self) -> Lab {
        Lab::new(self.lab.clone().unwrap_or_else(Lab::default_root))
    }

    /// The depot a read-only command works on: `--depot`, else the lab's.
    pub fn depot_dir(&self) -> Result<PathBuf, Failure> {
        if let Some(dir) = &self.depot {
            return Ok(dir.clone());
        }
        let lab = self.lab();
        if !lab.exists() {
            return Err(Failure::Failed(format!(
                "no lab at {}; create one with `patchdeck demo --lab {}` or pass --depot DIR",
                lab.root.display(),
                lab.root.display()
            )));
        }
        Ok(lab.depot_dir())
    }
}
