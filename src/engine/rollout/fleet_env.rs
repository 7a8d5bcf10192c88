//! The rollout environment of a real fleet: members reached through their
//! transports, hooks run with `sh -c`, and the demo knobs of fleet.toml
//! (slow a member, make its install or health check fail).

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::plan::Plan;
use super::run::Env;
use crate::engine::fleet::{Fleet, Knobs};
use crate::engine::inventory::PatchState;
use crate::engine::lab::Lab;
use crate::engine::node::{ErrorKind, NodeError, Service};
use crate::engine::ops::connect;
use crate::engine::transport::Transport;

/// Connections kept open for reuse: a member's checks come in a row
/// (preflight asks whether it is ready, healthy and what it has), and
/// opening a node store costs more than the question. Small, so a
/// 1,000-member cluster does not hold 1,000 databases open.
const KEEP_OPEN: usize = 16;

/// How long a step waits for a member another command holds (its node
/// lock is taken) before the step fails. Another operator's install on
/// one node takes seconds; failing at once would leave a group drained
/// because someone listed a node at the wrong moment.
const BUSY_WAIT: Duration = Duration::from_secs(30);

pub struct FleetEnv<'a> {
    pub lab: &'a Lab,
    pub fleet: &'a Fleet,
    pub rollout: i64,
    start: Instant,
    /// Recently used connections, oldest first; one user at a time (a
    /// connection is taken out while in use).
    open: Mutex<Vec<(String, Box<dyn Transport>)>>,
    /// The lab's depot, opened when a preflight first needs manifests.
    depot: std::sync::OnceLock<Result<crate::engine::depot::Depot, String>>,
}

impl<'a> FleetEnv<'a> {
    pub fn new(lab: &'a Lab, fleet: &'a Fleet, rollout: i64) -> FleetEnv<'a> {
        FleetEnv {
            lab,
            fleet,
            rollout,
            start: Instant::now(),
            open: Mutex::new(Vec::new()),
            depot: std::sync::OnceLock::new(),
        }
    }

    /// Runs `f` on a connection to `node`, reusing a recent one. A
    /// connection that failed is not kept.
    fn with<T>(
        &self,
        node: &str,
        f: impl FnOnce(&mut dyn Transport) -> Result<T, String>,
    ) -> Result<T, String> {
        let kept = self.open.lock().ok().and_then(|mut open| {
            let i = open.iter().position(|(n, _)| n == node)?;
            Some(open.remove(i).1)
        });
        let mut t = match kept {
            Some(t) => t,
            None => {
                let n = self
                    .fleet
                    .node(node)
                    .ok_or_else(|| format!("{node} is no longer in fleet.toml"))?;
                connect(self.lab, n).map_err(|e| e.to_string())?
            }
        };
        let result = f(t.as_mut());
        if result.is_ok()
            && let Ok(mut open) = self.open.lock()
        {
            open.push((node.to_string(), t));
            if open.len() > KEEP_OPEN {
                open.remove(0);
            }
        }
        result
    }

    /// [`Self::with`], trying again while the member is busy (another
    /// command holds its lock), for up to [`BUSY_WAIT`].
    fn with_patience<T>(
        &self,
        node: &str,
        f: impl Fn(&mut dyn Transport) -> Result<T, NodeError>,
    ) -> Result<T, String> {
        let until = Instant::now() + BUSY_WAIT;
        loop {
            let mut busy = false;
            let result = self.with(node, |t| {
                f(t).map_err(|e| {
                    busy = e.kind == ErrorKind::Busy;
                    e.to_string()
                })
            });
            match result {
                Err(_) if busy && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                result => return result,
            }
        }
    }

    fn knobs(&self, node: &str) -> Knobs {
        self.fleet
            .node(node)
            .map(|n| n.demo.clone())
            .unwrap_or_default()
    }

    fn slow(&self, node: &str) {
        let ms = self.knobs(node).slow_ms;
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    fn shell(&self, command: &str, plan: &Plan, node: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .env("PATCHDECK_CLUSTER", &plan.cluster)
            .env("PATCHDECK_ROLLOUT", self.rollout.to_string());
        if let Some(n) = node {
            cmd.env("PATCHDECK_NODE", n);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {command:?}: {e}"))?;
        let text = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string()
        };
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(format!(
                "{command:?} failed ({}): {}",
                out.status,
                text(&out.stderr)
            ))
        }
    }

    fn set_service(&self, node: &str, state: Service, plan: &Plan) -> Result<(), String> {
        self.slow(node);
        // A member counts as serving only once everything that puts it
        // back has worked: out of service first when draining, in service
        // last when restoring. A restore hook that fails leaves it down,
        // and said to be down.
        let hook = |c: &Option<String>| match c {
            Some(c) => self
                .shell(&c.replace("{node}", node), plan, Some(node))
                .map(|_| ()),
            None => Ok(()),
        };
        if state == Service::Down {
            self.with_patience(node, |t| t.service(Some(state)))?;
            hook(&plan.drain_command)
        } else {
            hook(&plan.restore_command)?;
            self.with_patience(node, |t| t.service(Some(state)))
                .map(|_| ())
        }
    }

    /// Installs `ids` in order where staged; rolls back, newest first, where applied.
    fn change(&self, node: &str, ids: &[String], install: bool) -> Result<String, String> {
        self.with_patience(node, |t| Self::change_on(t, ids, install))
    }

    fn change_on(
        t: &mut dyn Transport,
        ids: &[String],
        install: bool,
    ) -> Result<String, NodeError> {
        let inv = t.inventory()?;
        let mut done = Vec::new();
        if install {
            for id in ids {
                if inv.state(id) == PatchState::Staged {
                    t.install(id, true)?;
                    done.push(id.as_str());
                }
            }
        } else {
            for id in ids.iter().rev() {
                if inv.state(id) == PatchState::Applied {
                    t.rollback(id)?;
                    done.push(id.as_str());
                }
            }
        }
        let verb = if install { "installed" } else { "rolled back" };
        Ok(if done.is_empty() {
            "nothing left to do".to_string()
        } else {
            format!("{verb} {}", done.join(" "))
        })
    }
}

impl FleetEnv<'_> {
    /// Why the member would refuse the plan's install, by the same check
    /// `install` makes ([`crate::engine::ops::check_install_plan`]) over
    /// the patches it has staged; `Ok` when it would take them.
    fn install_refusal(&self, node: &str, plan: &Plan) -> Result<(), String> {
        let depot = self.depot.get_or_init(|| {
            crate::engine::depot::Depot::open(&self.lab.depot_dir()).map_err(|e| e.to_string())
        });
        let depot = depot.as_ref().map_err(|e| e.clone())?;
        let inv = self.with(node, |t| t.inventory().map_err(|e| e.to_string()))?;
        let ids: Vec<String> = plan
            .patches
            .iter()
            .filter(|p| inv.state(p) == PatchState::Staged)
            // A bundle's patches (offline sites) need not be in the lab's
            // depot; the member checks those itself at install.
            .filter(|p| depot.get(p).is_some())
            .cloned()
            .collect();
        let roots = inv
            .patches
            .keys()
            .map(String::as_str)
            .chain(ids.iter().map(String::as_str));
        let known = crate::engine::requirement::Supersession::from_depot(|id| depot.get(id), roots);
        crate::engine::ops::check_install_plan(&inv, &ids, depot, &known)
            .map_err(|r| format!("would refuse the install: {r}"))
    }

    /// The plan's patches a member cannot take part with: to install, not
    /// staged (nor already installed); to uninstall, neither applied nor
    /// already rolled back (staged), so an uninstall that stopped half way
    /// can be run again, as an install can.
    pub fn missing(&self, node: &str, plan: &Plan) -> Result<Vec<String>, String> {
        let inv = self.with(node, |t| t.inventory().map_err(|e| e.to_string()))?;
        Ok(plan
            .patches
            .iter()
            .filter(|p| {
                let s = inv.state(p);
                if plan.uninstall {
                    !matches!(s, PatchState::Applied | PatchState::Staged)
                } else {
                    s != PatchState::Staged && !s.is_installed()
                }
            })
            .cloned()
            .collect())
    }
}

/// Why a member missing `missing` cannot take part, in the words both the
/// preflight step and the refusal before a rollout use.
pub fn missing_words(missing: &[String], uninstall: bool) -> String {
    if uninstall {
        format!(
            "{} not applied (an uninstall rolls back applied patches)",
            missing.join(", ")
        )
    } else {
        format!("{} not staged; replicate first", missing.join(", "))
    }
}

impl Env for FleetEnv<'_> {
    fn preflight(&self, node: &str, plan: &Plan) -> Result<(), String> {
        // Room for the install on every member before any group is drained.
        if !plan.uninstall {
            self.with(node, |t| {
                t.check_space(&plan.patches).map_err(|e| e.to_string())
            })?;
        }
        let missing = self.missing(node, plan)?;
        if missing.is_empty() && !plan.uninstall {
            // The whole install, checked as the member will check it, so a
            // member that would refuse is found before any group drains.
            return self.install_refusal(node, plan);
        }
        if missing.is_empty() && plan.uninstall {
            // Nothing is taken away from under a patch that needs it.
            let blocked = self.with(node, |t| {
                t.removal_blocked(&plan.patches).map_err(|e| e.to_string())
            })?;
            if blocked.is_empty() {
                return Ok(());
            }
            let why: Vec<String> = blocked
                .iter()
                .map(|d| format!("{} requires {}", d.dependent, d.requirement))
                .collect();
            let mut first: Vec<&str> = blocked.iter().map(|d| d.dependent.as_str()).collect();
            first.dedup();
            Err(format!(
                "cannot uninstall {}: applied {}, and nothing else installed meets it; \
                 uninstall {} first, or with it",
                plan.patches.join(", "),
                why.join(", "),
                first.join(", ")
            ))
        } else if missing.is_empty() {
            Ok(())
        } else {
            Err(missing_words(&missing, plan.uninstall))
        }
    }

    fn drain(&self, node: &str, plan: &Plan) -> Result<(), String> {
        self.set_service(node, Service::Down, plan)
    }

    fn restore(&self, node: &str, plan: &Plan) -> Result<(), String> {
        self.set_service(node, Service::Up, plan)
    }

    fn apply(&self, node: &str, plan: &Plan) -> Result<String, String> {
        self.slow(node);
        if self.knobs(node).fail_install && !plan.uninstall {
            return Err("install failed (demo knob fail_install in fleet.toml)".into());
        }
        self.change(node, &plan.patches, !plan.uninstall)
    }

    fn revert(&self, node: &str, plan: &Plan) -> Result<String, String> {
        self.slow(node);
        self.change(node, &plan.patches, plan.uninstall)
    }

    fn in_service(&self, node: &str) -> bool {
        self.with(node, |t| t.service(None).map_err(|e| e.to_string()))
            .is_ok_and(|s| s.state == Service::Up)
    }

    fn healthy(&self, node: &str) -> Result<(), String> {
        if self.knobs(node).fail_health {
            return Err("health check fails (demo knob fail_health in fleet.toml)".into());
        }
        let (state, drift) = self.with(node, |t| {
            let s = t.service(None).map_err(|e| e.to_string())?;
            if s.state != Service::Up {
                return Ok((s.state, Vec::new()));
            }
            Ok((s.state, t.verify().map_err(|e| e.to_string())?))
        })?;
        if state != Service::Up {
            return Err("service down".into());
        }
        match drift.first() {
            None => Ok(()),
            Some(d) => Err(format!(
                "{} file(s) fail verification, e.g. {}",
                drift.len(),
                d.path
            )),
        }
    }

    fn hook(&self, command: &str, plan: &Plan) -> Result<String, String> {
        self.shell(command, plan, None)
    }

    fn applied(&self, node: &str) -> Result<Vec<String>, String> {
        let list = self.with(node, |t| t.list().map_err(|e| e.to_string()))?;
        Ok(list
            .into_iter()
            .filter(|l| matches!(l.state, PatchState::Applied | PatchState::Committed))
            .map(|l| l.patch)
            .collect())
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn clock(&self) -> chrono::DateTime<chrono::Utc> {
        crate::engine::window::now()
    }
}
