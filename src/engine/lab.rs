//! A lab: the directory holding a depot, a fleet, the console's config and
//! its own database. `patchdeck` with no arguments uses the default lab.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Overrides the default lab location (useful for scripts and tests).
pub const LAB_ENV: &str = "PATCHDECK_LAB";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub root: PathBuf,
}

/// A named filter offered in the console's filter pane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedFilter {
    pub name: String,
    pub expr: String,
}

/// The lab's `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabConfig {
    #[serde(default, rename = "filter")]
    pub filters: Vec<SavedFilter>,
    #[serde(default, skip_serializing_if = "ConsoleConfig::is_default")]
    pub console: ConsoleConfig,
    #[serde(default, skip_serializing_if = "DepotConfig::is_default")]
    pub depot: DepotConfig,
    #[serde(default, skip_serializing_if = "TrustConfig::is_default")]
    pub trust: TrustConfig,
}

/// `[trust]` in the lab's config (see docs/trust.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Only patches (and bundles) with a valid signature by a trusted key
    /// may be staged, replicated, bundled or installed. Absent: false, so
    /// a lab made before signatures keeps working.
    #[serde(default)]
    pub require_signatures: bool,
}

impl TrustConfig {
    pub fn is_default(&self) -> bool {
        *self == TrustConfig::default()
    }
}

/// `[depot]` in the lab's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepotConfig {
    /// The depot directory `depot mirror` refreshes from when no `--from`
    /// is given (relative to the lab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

impl DepotConfig {
    pub fn is_default(&self) -> bool {
        *self == DepotConfig::default()
    }
}

/// `[console]` in the lab's config: defaults the command line can override.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Minimum milliseconds between live redraws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
}

impl ConsoleConfig {
    pub fn is_default(&self) -> bool {
        *self == ConsoleConfig::default()
    }
}

impl Lab {
    pub fn new(root: impl Into<PathBuf>) -> Lab {
        Lab { root: root.into() }
    }

    /// `$PATCHDECK_LAB`, else `lab` under the user's data directory.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os(LAB_ENV).filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        directories::ProjectDirs::from("", "", "patchdeck")
            .map(|d| d.data_dir().join("lab"))
            .unwrap_or_else(|| PathBuf::from(".patchdeck-lab"))
    }

    pub fn depot_dir(&self) -> PathBuf {
        self.root.join("depot")
    }
    pub fn fleet_path(&self) -> PathBuf {
        self.root.join("fleet.toml")
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn db_path(&self) -> PathBuf {
        self.root.join("console.sqlite")
    }
    /// The lab's trusted public keys, one `KEYID.pub` each (docs/trust.md).
    pub fn trust_dir(&self) -> PathBuf {
        self.root.join("trust")
    }

    /// A lab exists once it has a depot directory or a fleet.
    pub fn exists(&self) -> bool {
        self.depot_dir().is_dir() || self.fleet_path().is_file()
    }

    /// Reads `config.toml`; a missing file is an empty config.
    pub fn config(&self) -> Result<LabConfig, crate::engine::text::FileError> {
        use crate::engine::text::{FileError, read_file};
        let path = self.config_path();
        let text = match read_file(&path) {
            Ok(t) => t,
            Err(FileError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(LabConfig::default());
            }
            Err(e) => return Err(e),
        };
        toml::from_str(&text).map_err(|e| FileError::Syntax {
            path: path.display().to_string(),
            line: e
                .span()
                .map(|s| crate::engine::tomlspan::line_of(&text, s.start)),
            message: e.message().trim().to_string(),
        })
    }

    pub fn resolve_root(&self, relative: &str) -> PathBuf {
        let p = Path::new(relative);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }
}
