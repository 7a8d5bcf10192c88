//! `depot mirror`: refresh a private mirror of an upstream depot (see
//! engine::mirror).

use crate::front::{say, shout};
use std::path::PathBuf;

use clap::Args;

use super::global::Global;
use crate::engine::filter::FilterList;
use crate::engine::mirror;
use crate::front::{Failure, Outcome, print_json};

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The upstream depot directory (default: `[depot] upstream` in the lab's config.toml).
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// Only patches matching these filters (repeat: any may match).
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    /// The mirror's directory (default: the lab's depot, or --depot).
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: MirrorArgs) -> Outcome {
    let lab = global.lab();
    let from = match args.from {
        Some(dir) => dir,
        None => {
            let config = lab.config().map_err(|e| Failure::Input(e.to_string()))?;
            let upstream = config.depot.upstream.ok_or_else(|| {
                Failure::Input(format!(
                    "no upstream: pass --from DIR, or set `[depot] upstream = \"DIR\"` in {}",
                    lab.config_path().display()
                ))
            })?;
            lab.resolve_root(&upstream)
        }
    };
    let to = match (args.to, &global.depot) {
        (Some(dir), _) => dir,
        (None, Some(dir)) => dir.clone(),
        (None, None) => lab.depot_dir(),
    };
    let filters =
        FilterList::parse_all(&args.filters).map_err(|e| Failure::Input(e.to_string()))?;
    let report =
        mirror::mirror(&from, &to, &filters).map_err(|e| Failure::Failed(e.to_string()))?;
    if args.json {
        print_json(&report)?;
    } else {
        for f in &report.copied {
            say!("copied {f}");
        }
        say!(
            "{} copied, {} unchanged, {} failed ({} -> {})",
            report.copied.len(),
            report.unchanged,
            report.failed.len(),
            report.from.display(),
            report.to.display()
        );
    }
    for f in &report.failed {
        shout!("patchdeck: {}: {}", f.file, f.error);
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported(
            1,
            format!("{} file(s) could not be mirrored", report.failed.len()),
        ))
    }
}
