//! Rolling a change out across a cluster, group by group: drain one logical
//! group while the others carry traffic, install (or roll back, for an
//! uninstall), restore, wait until healthy, then the next group. Never all
//! at once: a group is drained only while every other group is healthy.
//!
//! The plan is fixed and journaled step by step in the console database;
//! a console killed at any moment resumes from its first unfinished step
//! (member steps are idempotent, so a step interrupted while running is
//! safely run again, and a finished one never repeats). One rollout holds a
//! cluster at a time: a file lock per cluster, released by the kernel when
//! its holder dies.

pub mod fleet_env;
pub mod journal;
pub mod plan;
pub mod prepare;
pub mod run;

use std::path::PathBuf;

use crate::engine::lab::Lab;
use crate::engine::node::lock::{Acquired, Holder, NodeLock};

pub use journal::{Rollout, State, StepState};
pub use plan::{Plan, Step, StepKind};
pub use run::{Ending, Env, Event, Runner};

/// The lock file of one cluster's rollouts.
pub fn lock_path(lab: &Lab, cluster: &str) -> PathBuf {
    lab.root
        .join("locks")
        .join(format!("rollout-{cluster}.lock"))
}

/// Holds a cluster for one rollout while this process works on it.
pub struct ClusterLock {
    _lock: NodeLock,
}

impl ClusterLock {
    /// Takes the cluster, or says who holds it.
    pub fn acquire(lab: &Lab, cluster: &str, rollout: i64) -> Result<ClusterLock, String> {
        let path = lock_path(lab, cluster);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        match NodeLock::try_acquire(&path, &format!("rollout {rollout}"), cluster) {
            Ok(Acquired::Held(lock)) => Ok(ClusterLock { _lock: lock }),
            Ok(Acquired::Busy(holder)) => Err(busy(cluster, holder)),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

fn busy(cluster: &str, holder: Option<Holder>) -> String {
    match holder {
        Some(h) => format!(
            "cluster {cluster} is held by {} (pid {}, since {}); only one rollout runs on a cluster",
            h.op, h.pid, h.since
        ),
        None => format!(
            "cluster {cluster} is held by another rollout; only one rollout runs on a cluster"
        ),
    }
}

/// The process holding a cluster's rollout lock, as its lock file names
/// it, while the lock is held (a dead holder's stale name is no holder: the
/// kernel releases the lock with its process). It takes the lock before it
/// records itself in the rollout, so this sees a runner first.
pub fn lock_holder(lab: &Lab, cluster: &str) -> Option<Holder> {
    let path = lock_path(lab, cluster);
    if !lock_held(&path) {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether rollout `r` is being worked on now: running (or waiting for a
/// maintenance window) with its cluster's
/// lock held (by this process or another). Never judged by a pid alone,
/// which the system reuses once its process dies. A `pending` rollout has
/// a runner starting that has not taken the lock yet: it counts while that
/// runner's process lives.
pub fn is_running(lab: &Lab, r: &Rollout) -> bool {
    match r.state {
        State::Running | State::Waiting => lock_held(&lock_path(lab, &r.cluster)),
        State::Pending => lock_held(&lock_path(lab, &r.cluster)) || alive(r.pid),
        _ => false,
    }
}

/// Whether a process exists and is not a zombie (a killed runner whose
/// parent has not reaped it yet runs nothing).
pub fn alive(pid: i64) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let exists = pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    exists && !zombie(pid)
}

/// Whether process `pid` is alive and was already running at `t`: a row
/// written at `t` by `pid` is still that process's only then, since the
/// system may have given the number to a newer process after it died.
/// Where the start time cannot be read, liveness alone answers.
pub fn alive_since(pid: i64, t: chrono::DateTime<chrono::Utc>) -> bool {
    alive(pid) && started_at(pid).is_none_or(|s| s <= t + chrono::TimeDelta::seconds(1))
}

/// When process `pid` started, from `/proc` (its start in clock ticks
/// after boot, and the boot time).
fn started_at(pid: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis start at field 3;
    // field 22 is the start time.
    let ticks: i64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = i64::from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as i32).max(1);
    chrono::DateTime::from_timestamp(boot.checked_add(ticks / hz)?, 0)
}

fn zombie(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Whether some open file holds `path`'s lock. Probed with a shared lock
/// on a new descriptor, which conflicts with any exclusive holder, even one
/// in this process.
fn lock_held(path: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: as above, releasing the probe.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_the_writer_of_rows_only_from_its_start() {
        let me = i64::from(std::process::id());
        assert!(alive_since(me, chrono::Utc::now()));
        // A row written before this process existed was another's.
        let long_ago = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        assert!(!alive_since(me, long_ago));
        assert!(!alive_since(0, chrono::Utc::now()));
    }
}
