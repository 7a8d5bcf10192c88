//! `history`: the lab's journal, newest first, narrowed by node, patch,
//! rollout and time.

use crate::front::say;
use clap::Args;

use super::global::Global;
use crate::engine::journal::{self, Operator, Query};
use crate::front::{Failure, Outcome, print_json};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Comma-separated node ids.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Only changes to this patch.
    #[arg(long, value_name = "ID")]
    patch: Option<String>,
    /// Only what rollout N did.
    #[arg(long, value_name = "N")]
    rollout: Option<i64>,
    /// Only changes since TIME: RFC 3339 (2026-01-02T10:00:00Z) or a span back from now (90m, 2h, 3d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: HistoryArgs) -> Outcome {
    let lab = global.existing_lab()?;
    let since = args
        .since
        .as_deref()
        .map(|t| journal::parse_since(t, chrono::Utc::now()))
        .transpose()
        .map_err(Failure::Input)?;
    let query = Query {
        nodes: args.nodes.unwrap_or_default(),
        patch: args.patch,
        rollout: args.rollout,
        since,
        newest: None,
    };
    let conn = crate::engine::console::open(&lab)
        .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?;
    let changes = journal::history(&conn, &query)
        .map_err(|e| Failure::Failed(format!("{}: {e}", lab.db_path().display())))?;
    if changes.is_empty() {
        refuse_unknown(&lab, &conn, &query)?;
    }
    if args.json {
        return print_json(&changes);
    }
    // Narrow enough for an 80-column console: the message goes last and
    // wraps; --json has every field in full.
    say!(
        "{:<19} {:<10} {:<10} {:<11} {:<4} BY (FROM): MESSAGE",
        "TIME (UTC)",
        "NODE",
        "PATCH",
        "OP",
        "OK"
    );
    for c in &changes {
        let by = Operator::display(
            if c.operator.is_empty() {
                "-"
            } else {
                &c.operator
            },
            c.sudo_user.as_deref(),
        );
        let from = match c.rollout {
            Some(id) => format!("rollout {id}"),
            None => c.source.clone(),
        };
        let time: String = c
            .time
            .chars()
            .take(19)
            .collect::<String>()
            .replace('T', " ");
        say!(
            "{time:<19} {:<10} {:<10} {:<11} {:<4} {by} ({from}): {}",
            c.node,
            c.patch,
            c.op,
            if c.ok { "ok" } else { "FAIL" },
            c.message
        );
    }
    say!("{} change(s)", changes.len());
    Ok(())
}

/// An empty answer to a mistyped id is bad input, not "nothing happened":
/// a node neither the fleet nor the journal knows, a patch neither the
/// depot nor the journal knows. (What left the fleet or the depot keeps
/// its history.)
fn refuse_unknown(
    lab: &crate::engine::lab::Lab,
    conn: &rusqlite::Connection,
    query: &Query,
) -> Result<(), Failure> {
    if let Some(patch) = &query.patch {
        let only = Query {
            patch: Some(patch.clone()),
            newest: Some(1),
            ..Query::default()
        };
        let in_journal = journal::history(conn, &only).is_ok_and(|c| !c.is_empty());
        let in_depot = lab.depot_dir().join(format!("{patch}.patch")).exists();
        if !in_journal && !in_depot {
            return Err(Failure::Input(format!(
                "unknown patch id {patch:?}: not in the depot {} and never in the journal",
                lab.depot_dir().display()
            )));
        }
    }
    let fleet = crate::engine::fleet::Fleet::load_in(&lab.fleet_path(), &lab.root).ok();
    for node in &query.nodes {
        let in_fleet = fleet
            .as_ref()
            .is_none_or(|f| f.nodes.iter().any(|n| &n.id == node));
        let only = Query {
            nodes: vec![node.clone()],
            newest: Some(1),
            ..Query::default()
        };
        let in_journal = journal::history(conn, &only).is_ok_and(|c| !c.is_empty());
        if !in_fleet && !in_journal {
            return Err(Failure::Input(format!(
                "unknown node {node:?}: not in {} and never in the journal",
                lab.fleet_path().display()
            )));
        }
    }
    Ok(())
}
