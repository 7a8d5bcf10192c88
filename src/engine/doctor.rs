//! `patchdeck doctor`: what is damaged in a lab and its nodes, and how to
//! recover it. It only reads: it never repairs, recreates or recovers.
//!
//! Checked: the lab's `console.sqlite` and each node's `ipd.sqlite` (the
//! file's header and SQLite's `integrity_check`), a node store whose
//! database is missing while it still holds staged or saved files, a node
//! root that does not exist, an operation left unfinished, and the node's
//! files against its saved state (staged copies, save areas, installed
//! files).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::lab::Lab;
use crate::engine::node::{STORE_DIR, store_leftovers};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The node id, or `lab`.
    pub subject: String,
    /// The file or directory concerned.
    pub path: String,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub recovery: String,
}

/// The lab's console database: sound, missing (made on first use) or
/// damaged.
pub fn check_lab(lab: &Lab) -> Vec<Finding> {
    let path = lab.db_path();
    if !path.exists() {
        // Missing is fine for a lab never used.
        return crate::engine::console::lost(lab)
            .map(|why| lab_damaged(&path, why))
            .into_iter()
            .collect();
    }
    match crate::engine::sqlite::integrity(&path) {
        Ok(problems) if problems.is_empty() => Vec::new(),
        Ok(problems) => vec![lab_damaged(&path, problems.join("; "))],
        Err(e) => vec![lab_damaged(&path, e)],
    }
}

fn lab_damaged(path: &Path, problem: String) -> Finding {
    Finding {
        subject: "lab".into(),
        path: path.display().to_string(),
        problem,
        recovery: format!(
            "the journal and rollout state are in this file. Stop every patchdeck using the lab, keep a copy (cp {p} {p}.damaged), then restore it from a backup, or salvage it with `sqlite3 {p}.damaged .recover | sqlite3 {p}`. Check `patchdeck rollout list` before starting a rollout: a rollout the damaged file held may still be unfinished",
            p = path.display()
        ),
    }
}

/// Everything wrong with the node `id` rooted at `root`.
pub fn check_node(id: &str, root: &Path) -> Vec<Finding> {
    let finding = |path: &Path, problem: String, recovery: String| Finding {
        subject: id.to_string(),
        path: path.display().to_string(),
        problem,
        recovery,
    };
    if !root.is_dir() {
        return vec![finding(
            root,
            "the node root does not exist".into(),
            "correct the node's root in fleet.toml, or restore the directory; patchdeck never creates it".into(),
        )];
    }
    let store = root.join(STORE_DIR);
    let db = store.join("ipd.sqlite");
    if !db.exists() {
        return match store_leftovers(&store) {
            None => Vec::new(),
            Some(left) => vec![finding(
                &db,
                format!("the database is missing, but the store holds {left}"),
                format!(
                    "restore {} from a backup. Without one, move the store aside (mv {s} {s}.lost), compare the node's files with what the patches in {s}.lost/staged install, and stage again what should be there",
                    db.display(),
                    s = store.display()
                ),
            )],
        };
    }
    let damaged = match crate::engine::sqlite::integrity(&db) {
        Ok(problems) if problems.is_empty() => None,
        Ok(problems) => Some(problems.join("; ")),
        Err(e) => Some(e),
    };
    if let Some(problem) = damaged {
        return vec![finding(
            &db,
            problem,
            format!(
                "stop operations on this node, keep a copy (cp {p} {p}.damaged), then restore it from a backup, or salvage it with `sqlite3 {p}.damaged .recover | sqlite3 {p}` and run `patchdeck doctor` again",
                p = db.display()
            ),
        )];
    }
    match crate::engine::node::audit(root) {
        Ok(problems) => problems
            .into_iter()
            .map(|(path, problem, recovery)| finding(&path, problem, recovery))
            .collect(),
        Err(e) => vec![finding(&db, e, "restore the database from a backup".into())],
    }
}

/// A node's root as the fleet gives it, relative to the lab.
pub fn node_root(lab: &Lab, root: &str) -> PathBuf {
    lab.resolve_root(root)
}
