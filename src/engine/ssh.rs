//! Nodes reached through the system's OpenSSH (`ssh = "HOST"` in
//! fleet.toml): the `ssh` and `scp` command lines, their control sockets,
//! and what ssh's failures mean. patchdeck never speaks SSH itself: it runs
//! `ssh`, so `~/.ssh/config`, agents, jump hosts and `known_hosts` work as
//! the operator has them.
//!
//! Every ssh gets `-T -o BatchMode=yes` (nothing may prompt), a connect
//! timeout, and, with `[ssh] multiplex`, a shared master connection per host
//! whose socket lives in the lab's `run/` directory (or, where that path
//! would pass the socket path limit, a short private directory named by a
//! hash of it). Host keys are checked as the operator's OpenSSH checks them;
//! `StrictHostKeyChecking=accept-new` is added only when asked
//! (`nodes --check --accept-new`).

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::engine::deadline::{self, Ran};
use crate::engine::fleet::{self, SshConfig, SshDest};
use crate::engine::lab::Lab;
use crate::engine::node::{ErrorKind, NodeError};
use crate::engine::protocol::{Remote, Setup};

/// The longest Unix socket path (`sun_path`, 104 bytes on the BSDs and
/// macOS, 108 on Linux: the smaller one, so a lab moved between them keeps
/// working), counting its final NUL.
const SOCKET_PATH_MAX: usize = 104;

/// The length of OpenSSH's `%C` (a SHA-1 of the connection, in hex) plus
/// the random suffix ssh adds while it sets up a master socket
/// (`.XXXXXXXXXXXXXXXX`, see ssh(1) mux.c), plus the `/` before them.
const SOCKET_NAME_LEN: usize = 1 + 40 + 17;

/// Seconds a master connection outlives its last session.
const CONTROL_PERSIST_SECS: u64 = 60;

/// Everything needed to reach one ssh node.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The node's id in fleet.toml.
    pub node: String,
    pub dest: SshDest,
    /// The directory the node patches on its host.
    pub remote_root: String,
    /// Whether the remote patchdeck runs through `sudo -n`.
    pub sudo: bool,
    pub config: Arc<SshConfig>,
    /// Where control sockets go; `None`: no multiplexing.
    pub control_dir: Option<PathBuf>,
    /// Record the host key of a host not yet in known_hosts.
    pub accept_new: bool,
}

impl SshTarget {
    /// The target for fleet node `node` (which must have `ssh`), with the
    /// lab's `[ssh]` table. Errors ([`ErrorKind::Invalid`]): the node has
    /// no usable `ssh` value.
    pub fn new(
        lab: &Lab,
        config: Arc<SshConfig>,
        node: &fleet::Node,
    ) -> Result<SshTarget, NodeError> {
        let invalid = |message: String| NodeError {
            node: node.id.clone(),
            kind: ErrorKind::Invalid,
            message,
        };
        let text = node
            .ssh
            .as_deref()
            .ok_or_else(|| invalid("no ssh destination in fleet.toml".into()))?;
        let dest = SshDest::parse(text).map_err(|m| invalid(format!("ssh = {text:?}: {m}")))?;
        let control_dir = if config.multiplex {
            match control_dir(lab) {
                Ok(dir) => Some(dir),
                Err(e) => {
                    tracing::warn!("ssh multiplexing off: {e}");
                    None
                }
            }
        } else {
            None
        };
        Ok(SshTarget {
            node: node.id.clone(),
            dest,
            remote_root: node.remote_root.clone().unwrap_or_else(|| "/".into()),
            sudo: node.sudo.unwrap_or(config.sudo),
            control_dir,
            config,
            accept_new: false,
        })
    }

    /// The login user: the node's, else `[ssh] user`, else ssh's own.
    pub fn user(&self) -> Option<&str> {
        self.dest.user.as_deref().or(self.config.user.as_deref())
    }

    /// `user@host` (or just `host`) for messages.
    pub fn shown(&self) -> String {
        let host = match self.dest.port {
            Some(p) if self.dest.host.contains(':') => format!("[{}]:{p}", self.dest.host),
            Some(p) => format!("{}:{p}", self.dest.host),
            None => self.dest.host.clone(),
        };
        match self.user() {
            Some(u) => format!("{u}@{host}"),
            None => host,
        }
    }

    /// The `-o` options every ssh and scp to this node gets, after the
    /// operator's own (`[ssh] options`): ssh takes the first value it sees
    /// for an option, so the operator's win where they set one, except
    /// `BatchMode`, which nothing may turn off.
    fn options(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["-o".into(), "BatchMode=yes".into()];
        if self.accept_new {
            args.extend(["-o".into(), "StrictHostKeyChecking=accept-new".into()]);
        }
        args.extend(self.config.options.iter().cloned());
        let secs = self.config.connect_timeout_secs.max(1);
        args.extend(["-o".into(), format!("ConnectTimeout={secs}")]);
        // A master whose link died must not serve new sessions for long.
        args.extend(["-o".into(), format!("ServerAliveInterval={secs}")]);
        args.extend(["-o".into(), "ServerAliveCountMax=3".into()]);
        if let Some(dir) = &self.control_dir {
            args.extend([
                "-o".into(),
                "ControlMaster=auto".into(),
                "-o".into(),
                format!("ControlPath={}/%C", dir.display()),
                "-o".into(),
                format!("ControlPersist={CONTROL_PERSIST_SECS}"),
            ]);
        }
        if let Some(user) = self.user() {
            args.extend(["-o".into(), format!("User={user}")]);
        }
        args
    }

    /// `ssh -T ... HOST REMOTE`: runs the shell command line `remote` on
    /// the node's host.
    pub fn ssh(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-T").args(self.options());
        if let Some(port) = self.dest.port {
            c.arg("-p").arg(port.to_string());
        }
        c.arg("--").arg(&self.dest.host).arg(remote);
        c
    }

    /// `scp ... LOCAL HOST:REMOTE` over the same options (and master
    /// connection) as [`SshTarget::ssh`].
    pub fn scp(&self, local: &Path, remote: &str) -> Command {
        let mut c = Command::new("scp");
        c.arg("-q").args(self.options());
        if let Some(port) = self.dest.port {
            c.arg("-P").arg(port.to_string());
        }
        let host = if self.dest.host.contains(':') {
            format!("[{}]", self.dest.host)
        } else {
            self.dest.host.clone()
        };
        c.arg("--").arg(local).arg(format!("{host}:{remote}"));
        c
    }

    /// The remote shell words that run `args` with the node's patchdeck
    /// (through `sudo -n` when asked), each quoted for a POSIX shell.
    pub fn patchdeck_line(&self, args: &[&str]) -> String {
        let mut words: Vec<String> = vec!["exec".into()];
        if self.sudo {
            words.extend(["sudo".into(), "-n".into()]);
        }
        words.push(quote(&self.config.patchdeck));
        words.extend(args.iter().map(|a| quote(a)));
        words.join(" ")
    }

    /// Opens the node protocol on the node: `patchdeck node --root ROOT
    /// --name ID` through ssh, with the `[ssh]` deadlines. Errors name the
    /// node and say what went wrong: [`ErrorKind::Unreachable`],
    /// [`ErrorKind::HostKey`], [`ErrorKind::Login`],
    /// [`ErrorKind::Missing`], [`ErrorKind::Version`].
    pub fn connect(&self) -> Result<Remote, NodeError> {
        let line =
            self.patchdeck_line(&["node", "--root", &self.remote_root, "--name", &self.node]);
        let me = self.clone();
        let setup = Setup {
            connect: Duration::from_secs(self.config.connect_timeout_secs.max(1)),
            op: Duration::from_secs(self.config.op_timeout_secs.max(1)),
            explain: Some(Box::new(move |status, tail| me.explain(status, tail))),
            upgrade: format!(
                "`patchdeck bootstrap --nodes {}` puts this console's patchdeck there",
                self.node
            ),
        };
        Remote::spawn_with(self.ssh(&line), &self.node, setup)
    }

    /// Runs the shell command line `remote` on the node's host with
    /// `input` on its stdin, ended after `limit`. Errors: the deadline
    /// ([`ErrorKind::Unreachable`]) or ssh's own failure (see
    /// [`SshTarget::explain`]); a remote command that ran and failed is
    /// not an error here: its status is in the output.
    pub fn run(
        &self,
        remote: &str,
        input: &[u8],
        limit: Duration,
    ) -> Result<std::process::Output, NodeError> {
        self.finish(self.ssh(remote), input, limit, "ssh")
    }

    /// Copies `local` to `remote` on the node's host with scp. Errors as
    /// for [`SshTarget::run`], and a failed copy ([`ErrorKind::Io`]).
    pub fn copy(&self, local: &Path, remote: &str, limit: Duration) -> Result<(), NodeError> {
        let out = self.finish(self.scp(local, remote), b"", limit, "scp")?;
        if out.status.success() {
            return Ok(());
        }
        Err(NodeError {
            node: self.node.clone(),
            kind: ErrorKind::Io,
            message: format!(
                "scp of {} to {}:{remote} failed ({}): {}",
                local.display(),
                self.shown(),
                out.status,
                last_lines(&String::from_utf8_lossy(&out.stderr))
            ),
        })
    }

    fn finish(
        &self,
        mut command: Command,
        input: &[u8],
        limit: Duration,
        tool: &str,
    ) -> Result<std::process::Output, NodeError> {
        let ran = deadline::run(&mut command, input, limit).map_err(|e| NodeError {
            node: self.node.clone(),
            kind: ErrorKind::Io,
            message: format!("cannot run {tool}: {e}"),
        })?;
        match ran {
            Ran::Exited(out) => {
                // 255 is ssh's own failure; anything else is the remote
                // command's.
                if out.status.code() == Some(255)
                    && let Some((kind, message)) =
                        self.explain(Some(out.status), &String::from_utf8_lossy(&out.stderr))
                {
                    return Err(NodeError {
                        node: self.node.clone(),
                        kind,
                        message,
                    });
                }
                Ok(out)
            }
            Ran::TimedOut { waited, stderr, .. } => Err(NodeError {
                node: self.node.clone(),
                kind: ErrorKind::Unreachable,
                message: format!(
                    "unreachable: {tool} to {} did not finish within {} (waited {}); ended it{}",
                    self.shown(),
                    deadline::secs(limit),
                    deadline::secs(waited),
                    match last_lines(&String::from_utf8_lossy(&stderr)) {
                        s if s.is_empty() => String::new(),
                        s => format!("; it said: {s}"),
                    }
                ),
            }),
        }
    }

    /// What an ssh that ended with `status` and wrote `stderr` means, in
    /// words naming the node: a changed or unknown host key, a refused
    /// login, sudo wanting a password, the remote binary missing, or the
    /// host unreachable. `None` when it is none of these.
    pub fn explain(&self, status: Option<ExitStatus>, stderr: &str) -> Option<(ErrorKind, String)> {
        let host = self.shown();
        let said = last_lines(stderr);
        let has = |s: &str| stderr.contains(s);
        let code = status.and_then(|s| s.code());
        if has("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || has("Host key for") && has("has changed")
        {
            return Some((
                ErrorKind::HostKey,
                format!(
                    "the host key of {host} has changed since it was recorded in known_hosts: \
                     refused (this may be an attack, or the host was reinstalled); check the new \
                     key out of band, remove the old one (`ssh-keygen -R HOST`), then \
                     `patchdeck nodes --check --accept-new --nodes {}`",
                    self.node
                ),
            ));
        }
        if has("Host key verification failed") || has("host key is known for") {
            return Some((
                ErrorKind::HostKey,
                format!(
                    "the host key of {host} is not in known_hosts, so it is not trusted; check \
                     it, then `patchdeck nodes --check --accept-new --nodes {}` records it",
                    self.node
                ),
            ));
        }
        if has("Permission denied (") || has("Too many authentication failures") {
            return Some((
                ErrorKind::Login,
                format!(
                    "{host} refused the login: {said}; check the user, the key (ssh-agent, or \
                     `-i KEY` in [ssh] options) and the node's authorized_keys"
                ),
            ));
        }
        if self.sudo && (has("sudo: a password is required") || has("sudo: a terminal is required"))
        {
            return Some((
                ErrorKind::Login,
                format!(
                    "sudo on {host} asks for a password, and patchdeck runs `sudo -n`: allow the \
                     login user to run {} without one (NOPASSWD), or log in as root",
                    self.config.patchdeck
                ),
            ));
        }
        let not_found = has("not found") || has("No such file or directory");
        if code == Some(127) || self.sudo && code == Some(1) && not_found {
            return Some((
                ErrorKind::Missing,
                format!(
                    "patchdeck is not at {} on {host} ({said}); `patchdeck bootstrap --nodes {}` \
                     puts it there, or set [ssh] patchdeck to where it is",
                    self.config.patchdeck, self.node
                ),
            ));
        }
        if code == Some(126) {
            return Some((
                ErrorKind::Missing,
                format!(
                    "{} on {host} cannot be run ({said}); `patchdeck bootstrap --nodes {}` \
                     replaces it",
                    self.config.patchdeck, self.node
                ),
            ));
        }
        let unreachable = [
            "Connection refused",
            "Connection timed out",
            "timed out during banner exchange",
            "No route to host",
            "Network is unreachable",
            "Could not resolve hostname",
            "Name or service not known",
            "Connection closed by",
            "Connection reset",
            "closed by remote host",
            "kex_exchange_identification",
            "Broken pipe",
            "Timeout, server",
            "not responding",
        ];
        if code == Some(255) && unreachable.iter().any(|s| has(s))
            || code == Some(255) && said.is_empty()
        {
            let why = if said.is_empty() {
                "ssh ended without a word".to_string()
            } else {
                said
            };
            return Some((
                ErrorKind::Unreachable,
                format!("unreachable: {host}: {why}"),
            ));
        }
        None
    }
}

/// Quotes `word` for a POSIX shell (as the remote login shell reads the
/// command ssh sends).
fn quote(word: &str) -> String {
    match shlex::try_quote(word) {
        Ok(q) => q.into_owned(),
        // Only a NUL cannot be quoted; fleet.toml cannot hold one either.
        Err(_) => format!("'{}'", word.replace('\0', "").replace('\'', "'\\''")),
    }
}

/// The last few non-empty lines of `text`, joined, without ssh's banner
/// of `@` signs.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("@@@") && !l.starts_with("Warning: Permanently added")
        })
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// The directory for this lab's control sockets: `LAB/run`, or where a
/// socket there would pass [`SOCKET_PATH_MAX`], `patchdeck-HASH` (a hash of
/// the lab's path) under `$XDG_RUNTIME_DIR`, or `/tmp/patchdeck-UID-HASH`.
/// Created private (0700); an existing one must be ours and private.
pub fn control_dir(lab: &Lab) -> Result<PathBuf, String> {
    let run = std::path::absolute(lab.root.join("run")).map_err(|e| e.to_string())?;
    let fits = |dir: &Path| dir.as_os_str().len() + SOCKET_NAME_LEN < SOCKET_PATH_MAX;
    if fits(&run) {
        private_dir(&run)?;
        return Ok(run);
    }
    let hash = hex::encode(Sha256::digest(run.as_os_str().as_encoded_bytes()));
    let short = hash.get(..12).unwrap_or(&hash);
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut candidates = Vec::new();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && runtime.is_absolute()
        && runtime.is_dir()
    {
        candidates.push(runtime.join(format!("patchdeck-{short}")));
    }
    candidates.push(PathBuf::from(format!("/tmp/patchdeck-{uid}-{short}")));
    for dir in candidates.into_iter().filter(|d| fits(d)) {
        if private_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    Err(format!(
        "{} is too long for a control socket and no short private directory could be made",
        run.display()
    ))
}

/// Makes `dir` (mode 0700), or checks that the existing one is a directory
/// of ours that nobody else can enter.
fn private_dir(dir: &Path) -> Result<(), String> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!("{} is not a directory of this user", dir.display()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

/// The lab's `[ssh]` table, read from its fleet.toml once per change of
/// the file (every connection to an ssh node needs it, and the callers that
/// open connections hold a node, not the fleet). A fleet that does not
/// read gives the defaults: whoever loaded the fleet has reported that.
pub fn settings(lab: &Lab) -> Arc<SshConfig> {
    type Seen = (Option<SystemTime>, u64, Arc<SshConfig>);
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Seen>>> = OnceLock::new();
    let path = lab.fleet_path();
    let meta = std::fs::metadata(&path).ok();
    let stamp = (
        meta.as_ref().and_then(|m| m.modified().ok()),
        meta.as_ref().map(|m| m.len()).unwrap_or(0),
    );
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(seen) = cache.lock()
        && let Some((modified, len, config)) = seen.get(&path)
        && (*modified, *len) == stamp
    {
        return Arc::clone(config);
    }
    let config = Arc::new(fleet::Fleet::load(&path).map(|f| f.ssh).unwrap_or_default());
    if let Ok(mut seen) = cache.lock() {
        seen.insert(path, (stamp.0, stamp.1, Arc::clone(&config)));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn target(dest: &str, config: SshConfig) -> SshTarget {
        SshTarget {
            node: "gw-7".into(),
            dest: SshDest::parse(dest).unwrap(),
            remote_root: "/srv/root dir".into(),
            sudo: config.sudo,
            config: Arc::new(config),
            control_dir: Some(PathBuf::from("/lab/run")),
            accept_new: false,
        }
    }

    fn argv(c: &Command) -> Vec<String> {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_ssh_line_keeps_batch_mode_first_and_the_operators_options_before_ours() {
        let config = SshConfig {
            options: vec!["-F".into(), "/etc/pd/ssh_config".into()],
            connect_timeout_secs: 7,
            ..SshConfig::default()
        };
        let t = target("ops@gw-7.example:2222", config);
        let line = t.patchdeck_line(&["node", "--root", &t.remote_root, "--name", "gw-7"]);
        assert_eq!(
            line,
            "exec /usr/local/bin/patchdeck node --root '/srv/root dir' --name gw-7"
        );
        let a = argv(&t.ssh(&line));
        let pos = |s: &str| {
            a.iter()
                .position(|x| x == s)
                .unwrap_or_else(|| panic!("{s} in {a:?}"))
        };
        assert_eq!(&a[..4], ["ssh", "-T", "-o", "BatchMode=yes"]);
        assert!(pos("-F") < pos("ConnectTimeout=7"));
        assert!(pos("ControlPath=/lab/run/%C") > pos("-F"));
        assert!(a.contains(&"ControlMaster=auto".to_string()));
        assert!(a.contains(&"User=ops".to_string()));
        assert!(!a.iter().any(|x| x.contains("StrictHostKeyChecking")));
        assert_eq!(a[pos("-p") + 1], "2222");
        assert_eq!(&a[a.len() - 3..], ["--", "gw-7.example", line.as_str()]);
    }

    #[test]
    fn sudo_accept_new_and_scp_are_asked_for_explicitly() {
        let mut t = target(
            "[fe80::1]:22",
            SshConfig {
                sudo: true,
                multiplex: false,
                ..SshConfig::default()
            },
        );
        t.control_dir = None;
        t.accept_new = true;
        assert!(
            t.patchdeck_line(&["--version"])
                .starts_with("exec sudo -n /usr/local/bin/patchdeck")
        );
        let a = argv(&t.ssh("true"));
        assert!(a.contains(&"StrictHostKeyChecking=accept-new".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("Control")));
        let s = argv(&t.scp(Path::new("/bin/pd"), "/opt/pd.new"));
        assert_eq!(s[0], "scp");
        assert_eq!(s[s.iter().position(|x| x == "-P").unwrap() + 1], "22");
        assert_eq!(s.last().unwrap(), "[fe80::1]:/opt/pd.new");
    }

    #[test]
    fn ssh_failures_are_told_apart() {
        let t = target("ops@gw", SshConfig::default());
        let st = |code: i32| Some(ExitStatus::from_raw(code << 8));
        let cases = [
            (
                255,
                "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n",
                ErrorKind::HostKey,
                "has changed",
            ),
            (
                255,
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n",
                ErrorKind::HostKey,
                "not in known_hosts",
            ),
            (
                255,
                "ops@127.0.0.1: Permission denied (publickey).\n",
                ErrorKind::Login,
                "refused the login",
            ),
            (
                127,
                "sh: 1: exec: /usr/local/bin/patchdeck: not found\n",
                ErrorKind::Missing,
                "bootstrap --nodes gw-7",
            ),
            (
                126,
                "sh: 1: exec: /usr/local/bin/patchdeck: Permission denied\n",
                ErrorKind::Missing,
                "cannot be run",
            ),
            (
                255,
                "ssh: connect to host gw port 22: Connection refused\n",
                ErrorKind::Unreachable,
                "Connection refused",
            ),
            (
                255,
                "Connection timed out during banner exchange\n",
                ErrorKind::Unreachable,
                "unreachable",
            ),
        ];
        for (code, stderr, kind, says) in cases {
            let (k, m) = t
                .explain(st(code), stderr)
                .unwrap_or_else(|| panic!("{stderr}"));
            assert_eq!(k, kind, "{stderr}");
            assert!(m.contains(says), "{stderr}: {m}");
            assert!(!m.contains("@@@"), "{m}");
        }
        assert_eq!(t.explain(st(1), "patchdeck: some error of its own\n"), None);
        let mut s = target(
            "ops@gw",
            SshConfig {
                sudo: true,
                ..SshConfig::default()
            },
        );
        s.sudo = true;
        let (k, m) = s.explain(st(1), "sudo: a password is required\n").unwrap();
        assert_eq!(k, ErrorKind::Login, "{m}");
    }

    #[test]
    fn a_lab_too_deep_for_a_socket_gets_a_short_private_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let shallow = Lab::new(tmp.path().join("lab"));
        let dir = control_dir(&shallow).unwrap();
        assert_eq!(
            dir,
            std::path::absolute(tmp.path().join("lab/run")).unwrap()
        );
        let deep = Lab::new(tmp.path().join("x".repeat(60)).join("lab"));
        let dir = control_dir(&deep).unwrap();
        assert!(
            dir.as_os_str().len() + SOCKET_NAME_LEN < SOCKET_PATH_MAX,
            "{}",
            dir.display()
        );
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(
            control_dir(&deep).unwrap(),
            dir,
            "the same lab, the same directory"
        );
        std::fs::remove_dir(&dir).unwrap();
    }
}
