//! `patchdeck windows [--cluster C] [--count N] [--json]`: each cluster's
//! maintenance windows, whether one is open now, and the next openings with
//! their close and cutoff, in the window's zone and in UTC. The engine
//! (engine::window) does the arithmetic; this renders it.

use clap::Args;

use super::global::Global;
use super::nodes::load_fleet;
use crate::engine::window::{self, Outlook, SpanView};
use crate::front::{Failure, Outcome, print_json, say};

#[derive(Debug, Args)]
pub struct WindowsArgs {
    /// Only this cluster.
    #[arg(long, value_name = "C")]
    cluster: Option<String>,
    /// How many openings to list per cluster (the open one counts; 1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    count: u16,
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: WindowsArgs) -> Outcome {
    let lab = global.lab();
    let fleet = load_fleet(&lab)?;
    if let Some(c) = &args.cluster
        && !fleet.clusters.iter().any(|k| &k.id == c)
    {
        let known: Vec<&str> = fleet.clusters.iter().map(|k| k.id.as_str()).collect();
        return Err(Failure::Input(format!(
            "unknown cluster {c:?}; known: {}",
            known.join(", ")
        )));
    }
    let now = window::now();
    let mut rows: Vec<Outlook> = Vec::new();
    for c in fleet
        .clusters
        .iter()
        .filter(|c| args.cluster.as_ref().is_none_or(|w| *w == c.id))
    {
        let o = window::outlook(&c.id, &c.windows, now, usize::from(args.count))
            .map_err(|e| Failure::Input(format!("cluster {}: {e}", c.id)))?;
        rows.push(o);
    }
    if args.json {
        return print_json(&rows);
    }
    for o in &rows {
        if o.windows.is_empty() {
            say!(
                "{}: no maintenance windows; a rollout may run at any time",
                o.cluster
            );
            continue;
        }
        let state = match (o.open, o.may_drain) {
            (true, true) => "open now",
            (true, false) => "open now, past its cutoff: no group is drained",
            _ => "closed now",
        };
        say!("{}: {state}", o.cluster);
        for w in &o.windows {
            say!(
                "  window {:?} for {}, cutoff {}, {}",
                w.cron,
                w.duration,
                w.cutoff.as_deref().unwrap_or("0m"),
                w.tz.as_deref().unwrap_or("UTC")
            );
        }
        for s in &o.openings {
            say!("  {}", span_line(s));
        }
    }
    Ok(())
}

/// `opens ... closes ... cutoff ...`, each local and UTC.
fn span_line(s: &SpanView) -> String {
    let tz = s.tz.parse().unwrap_or(chrono_tz::Tz::UTC);
    format!(
        "opens {}  closes {}  cutoff {}",
        window::show(s.opens, tz),
        window::show(s.closes, tz),
        window::show(s.cutoff, tz)
    )
}
