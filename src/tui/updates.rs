//! The updates view (seed 003: which updates are available, and which
//! apply hot): `U` in the depot pane shows, for the cluster selected in the
//! groups pane, each member's components with an update, the version the
//! depot brings them to, the restart the path needs and its patches. `m`
//! marks every path, `h` only the hot ones. The engine decides the paths
//! (engine::components); this only renders them.

use crate::engine::components::{self, Update};
use crate::engine::manifest::Restart;
use crate::engine::ops;
use crate::tui::app::App;
use crate::tui::state::{Confirm, Dialog, Effect};

impl App {
    pub(crate) fn updates_dialog(&mut self) -> Effect {
        let (Some(lab), Some(fleet)) = (self.ops.lab.clone(), self.ops.fleet.clone()) else {
            self.status = Some(("no lab: updates need the fleet's nodes".into(), true));
            return Effect::None;
        };
        let Some(cluster) = self.ops.selected_cluster().map(|c| c.id.clone()) else {
            self.status = Some(("no cluster to show updates for".into(), true));
            return Effect::None;
        };
        let nodes: Vec<_> = fleet
            .nodes
            .iter()
            .filter(|n| n.cluster.as_deref() == Some(cluster.as_str()))
            .collect();
        let mut rows: Vec<Update> = Vec::new();
        let mut lines = Vec::new();
        for (node, inv) in
            nodes
                .iter()
                .zip(components::inventories(&lab, &nodes, ops::DEFAULT_PARALLEL))
        {
            match inv {
                Ok(inv) => rows.extend(components::updates_for(&self.depot.patches, &inv, false)),
                Err(e) => lines.push(format!("{}: cannot be read: {}", node.id, e.message)),
            }
        }
        let every: Vec<String> = path_ids(rows.iter());
        let hot: Vec<String> = path_ids(rows.iter().filter(|u| u.restart == Restart::None));
        // The keys first: a long table scrolls, the keys stay in view.
        let mut table = vec![
            format!("Updates on cluster {cluster} ({} member(s)):", nodes.len()),
            format!(
                "m  mark every path ({})   h  mark hot paths ({})   Esc  close",
                every.len(),
                hot.len()
            ),
            format!(
                "{:<10} {:<19} {:<17} {:<7} PATH",
                "NODE", "COMPONENT", "HAS -> TO", "RESTART"
            ),
        ];
        for u in &rows {
            let path = match u.patches.as_slice() {
                [one] => one.id.clone(),
                many => format!("{} patches", many.len()),
            };
            table.push(format!(
                "{:<10} {:<19} {:<17} {:<7} {path}",
                u.node,
                u.component,
                format!("{} -> {}", u.installed, u.available),
                u.restart.as_str(),
            ));
        }
        if rows.is_empty() {
            table.push("  no updates available".into());
        }
        table.extend(lines);
        self.open_dialog(Dialog {
            confirm: Confirm::Keys(vec![
                ('m', "mark every path".into(), Effect::Mark(every)),
                ('h', "mark hot paths".into(), Effect::Mark(hot)),
            ]),
            ..Dialog::info(" Updates ", table)
        })
    }
}

/// The patch ids of the paths, each once, in order.
fn path_ids<'a>(rows: impl Iterator<Item = &'a Update>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in rows {
        for p in &u.patches {
            if !out.contains(&p.id) {
                out.push(p.id.clone());
            }
        }
    }
    out
}
