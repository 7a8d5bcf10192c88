//! A real OpenSSH server for the tests, on 127.0.0.1 at a free port, run
//! as the current user with a configuration, host key and user key made
//! for the test (nothing of the machine's own ssh set-up is read or
//! changed). Stopped when dropped.
//!
//! `scripts/test` installs openssh-server and openssh-client; without them
//! the tests fail saying so, never skip.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The longest any wait for the server's state may take before the test
/// fails (a wait ends as soon as the state is reached).
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Sshd {
    /// Where the configuration, keys, known_hosts and the log are.
    pub dir: PathBuf,
    pub port: u16,
    /// The login user (the current user).
    pub user: String,
    /// The client's configuration file: key, known_hosts, no agent. Tests
    /// may add `Host` blocks to it with [`Sshd::add_host`].
    pub ssh_config: PathBuf,
    pub known_hosts: PathBuf,
    child: Option<Child>,
}

/// The path of a program, or a failure saying how to get it.
pub fn tool(name: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
        "/bin",
    ] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is missing: the ssh tests need OpenSSH (apt-get install openssh-server openssh-client; scripts/test does this)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    run(Command::new(tool("ssh-keygen"))
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "patchdeck-test",
            "-f",
        ])
        .arg(path));
}

fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; the
    // name is copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        assert!(!pw.is_null(), "the current user has no passwd entry");
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Generates keys under `dir` and starts the server, returning once its
    /// port accepts connections.
    pub fn start(dir: &Path) -> Sshd {
        let dir = dir.join("sshd");
        fs::create_dir_all(&dir).unwrap();
        keygen(&dir.join("host_key"));
        keygen(&dir.join("user_key"));
        fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd refuses to start as root without its privilege separation
        // directory, which a container may not have yet.
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            fs::create_dir_all("/run/sshd").unwrap();
        }
        let mut sshd = Sshd {
            ssh_config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            dir,
            port: 0,
            user: current_user(),
            child: None,
        };
        // A port found free may be taken before sshd binds it: try again.
        for _ in 0..5 {
            sshd.port = free_port();
            sshd.write_config();
            if sshd.launch() {
                sshd.trust_host_key();
                sshd.write_client_config("");
                return sshd;
            }
        }
        panic!("sshd did not start: {}", sshd.log());
    }

    fn write_config(&self) {
        let d = self.dir.display();
        let root_login = if self.user == "root" {
            "PermitRootLogin prohibit-password\n"
        } else {
            ""
        };
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             {root_login}UseDNS no\nPrintMotd no\nPrintLastLog no\n\
             Subsystem sftp internal-sftp\nMaxStartups 400:30:800\nMaxSessions 400\n\
             LogLevel ERROR\n",
            port = self.port
        );
        fs::write(self.dir.join("sshd_config"), config).unwrap();
    }

    /// The client configuration, `extra` (Host blocks) first: ssh takes the
    /// first value it finds.
    fn write_client_config(&self, extra: &str) {
        let d = self.dir.display();
        let config = format!(
            "{extra}\nHost *\n  IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  IdentityAgent none\n\
             \x20 UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n\
             \x20 LogLevel ERROR\n"
        );
        fs::write(&self.ssh_config, config).unwrap();
    }

    /// Adds a `Host` block (e.g. a ProxyCommand for one alias) to the
    /// client configuration.
    pub fn add_host(&self, block: &str) {
        let current = fs::read_to_string(&self.ssh_config).unwrap();
        fs::write(&self.ssh_config, format!("{block}\n{current}")).unwrap();
    }

    /// Records the server's host key as known for `[127.0.0.1]:PORT`.
    pub fn trust_host_key(&self) {
        let key = fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        let mut fields = key.split_whitespace();
        let (kind, body) = (fields.next().unwrap(), fields.next().unwrap());
        fs::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{} {kind} {body}\n", self.port),
        )
        .unwrap();
    }

    /// Gives the server a new host key (as a reinstalled host would have);
    /// takes effect at the next start.
    pub fn change_host_key(&mut self) {
        self.stop();
        keygen(&self.dir.join("host_key"));
        assert!(self.launch(), "sshd did not restart: {}", self.log());
    }

    /// Starts sshd and waits until its port accepts, or it exits (false).
    fn launch(&mut self) -> bool {
        let log = fs::File::create(self.dir.join("sshd.log")).unwrap();
        let child = Command::new(tool("sshd"))
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                eprintln!("sshd exited ({status}): {}", self.log());
                self.child = None;
                return false;
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "sshd did not accept on port {} in time: {}",
            self.port,
            self.log()
        );
    }

    /// Starts the server again on the same port with the same keys.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.launch(), "sshd did not restart: {}", self.log());
    }

    /// What sshd wrote to its log.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.dir.join("sshd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// `USER@127.0.0.1:PORT`, a node's `ssh` value.
    pub fn dest(&self) -> String {
        format!("{}@127.0.0.1:{}", self.user, self.port)
    }

    /// The `[ssh] options` that make patchdeck's ssh use this server's
    /// client configuration.
    pub fn options(&self) -> Vec<String> {
        vec!["-F".into(), self.ssh_config.display().to_string()]
    }

    /// The `[ssh]` table for a fleet.toml, with `extra` lines added.
    pub fn ssh_table(&self, patchdeck: &Path, extra: &str) -> String {
        format!(
            "[ssh]\noptions = [\"-F\", \"{}\"]\npatchdeck = \"{}\"\n{extra}\n",
            self.ssh_config.display(),
            patchdeck.display()
        )
    }

    /// Every process below the listener whose name is `sshd` (the
    /// per-connection servers; not the commands they run).
    fn sessions(&self) -> Vec<i32> {
        let Some(listener) = self.child.as_ref().map(|c| c.id() as i32) else {
            return Vec::new();
        };
        let mut parents: Vec<(i32, i32, String)> = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head
                .split_once('(')
                .map(|(_, c)| c)
                .unwrap_or("")
                .to_string();
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            parents.push((pid, ppid, comm));
        }
        let mut found = vec![listener];
        let mut grew = true;
        while grew {
            grew = false;
            for (pid, ppid, _) in &parents {
                if found.contains(ppid) && !found.contains(pid) {
                    found.push(*pid);
                    grew = true;
                }
            }
        }
        parents
            .iter()
            .filter(|(pid, _, comm)| *pid != listener && found.contains(pid) && comm == "sshd")
            .map(|(pid, _, _)| *pid)
            .collect()
    }

    /// Kills the listener and every connection's server at once, as a
    /// crashed or rebooted sshd would go (what the sessions run is left to
    /// notice on its own).
    pub fn kill(&mut self) {
        let sessions = self.sessions();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in sessions {
            // SAFETY: signals a process of this test's own sshd.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Stops the server and every session.
    pub fn stop(&mut self) {
        self.kill();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
