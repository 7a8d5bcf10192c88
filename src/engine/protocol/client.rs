//! The console side: [`Remote`] drives a child process that speaks the
//! protocol (`patchdeck node` directly, or through OpenSSH) as a [`Transport`].

use std::fs;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::child::{StderrTail, describe, describe_status, read_full, wait_for, write_quietly};
use super::wire::{
    CHUNK, Hello, Incoming, Line, MAX_RESPONSE_LINE, PROTOCOL, SOFTWARE, base64_encode, read_line,
    snippet,
};
use crate::engine::deadline::{self, DeadlineReader, Limit, SharedLimit};
use crate::engine::inventory::Inventory;
use crate::engine::node::environment::Environment;
use crate::engine::node::{Drift, ErrorKind, Listed, NodeError, Report, Service, ServiceStatus};
use crate::engine::transport::{Progress, Transport};

/// Turns how a node's child process ended (its exit status when it exited,
/// the last lines of its stderr) into a clearer error than "the node process
/// ended", or `None` to keep that one. The ssh transport names a changed
/// host key, a refused login or a missing remote binary this way.
pub type Explain = Box<dyn Fn(Option<ExitStatus>, &str) -> Option<(ErrorKind, String)> + Send>;

/// How long a [`Remote`] waits for its node, and how it explains failures.
pub struct Setup {
    /// The whole handshake: from starting the child to the answer to `hello`.
    pub connect: Duration,
    /// Silence allowed while a request runs; every byte the node sends (a
    /// progress event, say) starts the count again.
    pub op: Duration,
    /// See [`Explain`].
    pub explain: Option<Explain>,
    /// What the operator should do when the node speaks another protocol.
    pub upgrade: String,
}

impl Default for Setup {
    /// The `[ssh]` defaults of fleet.toml: 10 s to connect, 300 s of silence.
    fn default() -> Setup {
        Setup {
            connect: Duration::from_secs(10),
            op: Duration::from_secs(300),
            explain: None,
            upgrade: "install the same major version of patchdeck on both".into(),
        }
    }
}

/// A node reached through a child process speaking the protocol: `patchdeck
/// node` run directly, through `sh -c`, or through OpenSSH. The child runs
/// in a process group of its own; every read and write has a deadline (see
/// [`Setup`]), and at a deadline the whole group is ended and the node is
/// reported `unreachable` ([`ErrorKind::Unreachable`]).
/// Dropping it says `bye` and waits for the child (ending it if it lingers).
pub struct Remote {
    node: String,
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<DeadlineReader<ChildStdout>>,
    /// How long the next read may wait (changed per request).
    limit: SharedLimit,
    stderr: StderrTail,
    next_id: u64,
    hello: Hello,
    setup: Setup,
    started: Instant,
    /// Set when the child died or spoke garbage: every later call fails so.
    broken: Option<NodeError>,
}

impl Remote {
    /// Starts `command` (its stdin, stdout and stderr are taken over) and
    /// shakes hands, with the default [`Setup`]. `node` is the name errors
    /// give the node.
    pub fn spawn(command: Command, node: &str) -> Result<Remote, NodeError> {
        Remote::spawn_with(command, node, Setup::default())
    }

    /// [`Remote::spawn`] with deadlines and explanations of its own.
    /// Errors: the child cannot start; the handshake fails or misses its
    /// deadline ([`ErrorKind::Unreachable`]); the node speaks another
    /// protocol ([`ErrorKind::Version`]); or what `setup.explain` makes of
    /// the child's end.
    pub fn spawn_with(mut command: Command, node: &str, setup: Setup) -> Result<Remote, NodeError> {
        let described = describe(&command);
        deadline::own_group(&mut command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| NodeError {
            node: node.to_string(),
            kind: ErrorKind::Io,
            message: format!("cannot start `{described}`: {e}"),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            deadline::kill_group(&mut child);
            return Err(NodeError {
                node: node.to_string(),
                kind: ErrorKind::Io,
                message: format!("`{described}` started without pipes"),
            });
        };
        let first = match started.checked_add(setup.connect) {
            Some(until) => Limit::Until(until),
            None => Limit::Silence(setup.connect),
        };
        let (stdout, limit) = DeadlineReader::new(stdout, first);
        let mut remote = Remote {
            node: node.to_string(),
            command: described,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            limit,
            stderr: StderrTail::start(stderr),
            next_id: 0,
            hello: Hello {
                protocol: 0,
                server: String::new(),
                node: String::new(),
                root: String::new(),
            },
            setup,
            started,
            broken: None,
        };
        let mut body = Map::new();
        body.insert("protocol".into(), PROTOCOL.into());
        body.insert("client".into(), SOFTWARE.into());
        let answer = match remote.call("hello", "hello", body, &mut |_, _| {}) {
            Ok(value) => value,
            Err(mut e) => {
                if let Some(rest) = e.message.strip_prefix("protocol: ") {
                    e.message = format!("the node refused the handshake: {rest}");
                }
                remote.broken = Some(e.clone());
                return Err(e);
            }
        };
        let hello: Hello = remote.decode("hello", answer)?;
        if hello.protocol != PROTOCOL {
            let e = remote.version_error(hello.protocol, &hello.server);
            remote.broken = Some(e.clone());
            return Err(e);
        }
        remote.hello = hello;
        Ok(remote)
    }

    /// The node speaks protocol `theirs` (software `server`): which side is
    /// older, and what to do.
    fn version_error(&mut self, theirs: u64, server: &str) -> NodeError {
        let (who, than) = if theirs < PROTOCOL {
            ("older", "")
        } else {
            ("newer", "; or upgrade this console")
        };
        let server = if server.is_empty() {
            "its patchdeck".to_string()
        } else {
            server.to_string()
        };
        NodeError {
            node: self.node.clone(),
            kind: ErrorKind::Version,
            message: format!(
                "the node's patchdeck is {who} than this console: the node ({server}) speaks protocol {theirs}, \
                 this console ({SOFTWARE}) speaks protocol {PROTOCOL}; {}{than}",
                self.setup.upgrade
            ),
        }
    }

    /// Runs `EXE node --root ROOT --name NODE` as a child.
    pub fn local_child(exe: &Path, root: &Path, node: &str) -> Result<Remote, NodeError> {
        let mut command = Command::new(exe);
        command
            .arg("node")
            .arg("--root")
            .arg(root)
            .arg("--name")
            .arg(node);
        Remote::spawn(command, node)
    }

    /// Runs `sh -c COMMAND_LINE`, e.g. `ssh -T gw-3.example patchdeck node --root /`.
    pub fn shell(command_line: &str, node: &str) -> Result<Remote, NodeError> {
        let mut command = Command::new("sh");
        command.arg("-c").arg(command_line);
        Remote::spawn(command, node)
    }

    /// What the node said about itself in the handshake.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    fn error(&self, message: String) -> NodeError {
        NodeError {
            node: self.node.clone(),
            kind: ErrorKind::Io,
            message,
        }
    }

    fn decode<T: DeserializeOwned>(&mut self, what: &str, value: Value) -> Result<T, NodeError> {
        serde_json::from_value(value).map_err(|e| {
            let e = self.error(format!(
                "the node answered {what} with a result this console cannot read: {e}"
            ));
            self.broken = Some(e.clone());
            e
        })
    }

    /// Sends one request and reads until its response, passing progress
    /// events to `progress`. `what` names the request in errors.
    fn call(
        &mut self,
        op: &str,
        what: &str,
        mut body: Map<String, Value>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Value, NodeError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let id = self.next_id;
        self.next_id += 1;
        body.insert("id".into(), id.into());
        body.insert("op".into(), op.into());
        let mut line = serde_json::to_vec(&Value::Object(body))
            .map_err(|e| self.error(format!("cannot encode {what}: {e}")))?;
        line.push(b'\n');
        // The handshake has one deadline from the start; a request may run
        // as long as the node keeps talking.
        let (limit, silence) = if op == "hello" {
            // A connect time too long for an instant waits for silence instead.
            let limit = match self.started.checked_add(self.setup.connect) {
                Some(until) => Limit::Until(until),
                None => Limit::Silence(self.setup.connect),
            };
            (limit, self.setup.connect)
        } else {
            (Limit::Silence(self.setup.op), self.setup.op)
        };
        *self.limit.lock().unwrap_or_else(|p| p.into_inner()) = limit;
        let sent = Instant::now();
        let written = match self.stdin.as_mut() {
            Some(stdin) => write_quietly(stdin, &line, silence),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin closed")),
        };
        if let Err(e) = &written
            && e.kind() == io::ErrorKind::TimedOut
        {
            return Err(self.timed_out(what, silence, sent));
        }
        // Even when the write failed, the node may have said why before it
        // went: read on, and report what it said.
        let mut buf = Vec::new();
        loop {
            match read_line(&mut self.stdout, MAX_RESPONSE_LINE, &mut buf) {
                Ok(Line::Text) => {}
                Ok(Line::Eof) => {
                    let how = match &written {
                        Err(e) => format!("stopped reading ({e}) and closed its output"),
                        Ok(()) => "closed its output".into(),
                    };
                    return Err(self.died(what, &how));
                }
                Ok(Line::TooLong(n)) => {
                    return Err(self.garbage(what, &format!("a line of {n} bytes")));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(self.timed_out(what, silence, sent));
                }
                Err(e) => return Err(self.died(what, &format!("could not be read ({e})"))),
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(incoming) = serde_json::from_slice::<Incoming>(&buf) else {
                let quoted = format!("`{}`", snippet(&buf));
                return Err(self.garbage(what, &quoted));
            };
            if let Some(event) = &incoming.event {
                // Events are advisory: kinds this console does not know,
                // and events for other requests, are skipped.
                if let ("progress", Some(done), Some(total)) =
                    (event.as_str(), incoming.done, incoming.total)
                    && incoming.id == Some(id)
                {
                    progress(done, total);
                }
                continue;
            }
            match (incoming.ok, incoming.id) {
                (Some(true), Some(got)) if got == id => return Ok(incoming.result),
                (Some(false), got) if got.is_none() || got == Some(id) => {
                    let Some(error) = incoming.error else {
                        let quoted = format!("`{}`", snippet(&buf));
                        return Err(self.garbage(what, &quoted));
                    };
                    if op == "hello"
                        && error.kind == "protocol"
                        && let Some(theirs) = error.protocol.or_else(|| spoken(&error.message))
                        && theirs != PROTOCOL
                    {
                        let e = self.version_error(theirs, error.server.as_deref().unwrap_or(""));
                        return Err(e);
                    }
                    let (kind, message) = match error.kind.as_str() {
                        "refused" => (ErrorKind::Refused, error.message),
                        "busy" => (ErrorKind::Busy, error.message),
                        "invalid" => (ErrorKind::Invalid, error.message),
                        "io" => (ErrorKind::Io, error.message),
                        other => (ErrorKind::Io, format!("{other}: {}", error.message)),
                    };
                    return Err(NodeError {
                        node: self.node.clone(),
                        kind,
                        message,
                    });
                }
                _ => {
                    let quoted = format!("`{}` (waiting for the answer to id {id})", snippet(&buf));
                    return Err(self.garbage(what, &quoted));
                }
            }
        }
    }

    /// Nothing came within the deadline: end the child's whole group and
    /// report the node unreachable, with how long it was waited for.
    fn timed_out(&mut self, what: &str, limit: Duration, since: Instant) -> NodeError {
        deadline::kill_group(&mut self.child);
        let waited = if what == "hello" {
            self.started.elapsed()
        } else {
            since.elapsed()
        };
        let mut message = format!(
            "unreachable: no answer to {what} within {} (waited {}); ended the connection",
            deadline::secs(limit),
            deadline::secs(waited)
        );
        let tail = self.stderr.tail(Duration::from_millis(200));
        if !tail.is_empty() {
            message.push_str(&format!("; its stderr ends: {tail}"));
        }
        let e = NodeError {
            node: self.node.clone(),
            kind: ErrorKind::Unreachable,
            message,
        };
        self.broken = Some(e.clone());
        e
    }

    /// The child stopped answering: say how it ended and what it last wrote
    /// to stderr.
    fn died(&mut self, what: &str, how: &str) -> NodeError {
        let (status, message) = match wait_for(&mut self.child, Duration::from_secs(2)) {
            Some(status) => (
                Some(status),
                format!(
                    "no answer to {what}: the node process ended ({})",
                    describe_status(status)
                ),
            ),
            None => {
                deadline::kill_group(&mut self.child);
                (
                    None,
                    format!(
                        "no answer to {what}: the node process {how} but did not exit; stopped it"
                    ),
                )
            }
        };
        let tail = self.stderr.tail(Duration::from_secs(1));
        if let Some(explain) = &self.setup.explain
            && let Some((kind, said)) = explain(status, &tail)
        {
            let message = if what == "hello" {
                said
            } else {
                format!("{said} (while waiting for the answer to {what})")
            };
            let e = NodeError {
                node: self.node.clone(),
                kind,
                message,
            };
            self.broken = Some(e.clone());
            return e;
        }
        self.finish(message)
    }

    /// The child said something that is not the protocol.
    fn garbage(&mut self, what: &str, said: &str) -> NodeError {
        // Stop it first, so its stderr closes and its last words are in.
        deadline::kill_group(&mut self.child);
        let message = format!(
            "the node answered {what} with {said}, which is not the node protocol; \
             check that the command runs `patchdeck node` and that nothing else \
             (a login banner, a shell profile) writes to its output"
        );
        self.finish(message)
    }

    fn finish(&mut self, mut message: String) -> NodeError {
        let tail = self.stderr.tail(Duration::from_secs(1));
        if !tail.is_empty() {
            message.push_str(&format!("; its stderr ends: {tail}"));
        }
        message.push_str(&format!(" (command: {})", self.command));
        let e = self.error(message);
        self.broken = Some(e.clone());
        e
    }

    fn patch_call<T: DeserializeOwned>(
        &mut self,
        op: &str,
        id: &str,
        extra: &[(&str, Value)],
    ) -> Result<T, NodeError> {
        let mut body = Map::new();
        body.insert("patch".into(), id.into());
        for (k, v) in extra {
            body.insert((*k).into(), v.clone());
        }
        let what = format!("{op} {id}");
        let value = self.call(op, &what, body, &mut |_, _| {})?;
        self.decode(&what, value)
    }

    fn plain_call<T: DeserializeOwned>(&mut self, op: &str) -> Result<T, NodeError> {
        let value = self.call(op, op, Map::new(), &mut |_, _| {})?;
        self.decode(op, value)
    }
}

impl Transport for Remote {
    fn node(&self) -> &str {
        &self.node
    }

    fn stage(&mut self, id: &str, file: &Path, progress: Progress) -> Result<Report, NodeError> {
        self.stage_signed(id, file, None, progress)
    }

    fn trust(&mut self, keys: &[String]) -> Result<usize, NodeError> {
        let mut body = Map::new();
        body.insert("keys".into(), keys.into());
        let value = self.call("trust", "trust", body, &mut |_, _| {})?;
        self.decode("trust", value)
    }

    fn stage_signed(
        &mut self,
        id: &str,
        file: &Path,
        sig: Option<&str>,
        progress: Progress,
    ) -> Result<Report, NodeError> {
        let node = self.node.clone();
        let local = |e: io::Error| NodeError {
            node: node.clone(),
            kind: ErrorKind::Io,
            message: format!("reading {}: {e}", file.display()),
        };
        let mut f = fs::File::open(file).map_err(local)?;
        let size = f.metadata().map_err(local)?.len();
        progress(0, size);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        loop {
            let n = read_full(&mut f, &mut buf).map_err(local)?;
            if offset + n as u64 > size {
                break;
            }
            hash.update(&buf[..n]);
            let mut body = Map::new();
            body.insert("patch".into(), id.into());
            body.insert("offset".into(), offset.into());
            body.insert("size".into(), size.into());
            body.insert("data".into(), base64_encode(&buf[..n]).into());
            let what = format!("upload of {id}");
            let answer = self.call("upload", &what, body, progress)?;
            offset += n as u64;
            if answer.get("received").and_then(Value::as_u64) != Some(offset) {
                let said = format!("`{answer}` where {offset} bytes received was expected");
                return Err(self.garbage(&what, &said));
            }
            if n < CHUNK || offset == size {
                break;
            }
        }
        let mut rest = [0u8; 1];
        if offset != size || f.read(&mut rest).map_err(local)? != 0 {
            return Err(self.error(format!(
                "{} changed while it was uploaded ({size} bytes when it started); try again",
                file.display()
            )));
        }
        let sha256 = hex::encode(hash.finalize());
        let mut extra = vec![("size", size.into()), ("sha256", sha256.into())];
        // Only when there is one, so an unsigned stage line stays as before.
        if let Some(sig) = sig {
            extra.push(("minisig", sig.into()));
        }
        let report = self.patch_call("stage", id, &extra)?;
        progress(size, size);
        Ok(report)
    }

    fn install_with(
        &mut self,
        id: &str,
        save: bool,
        known: &crate::engine::requirement::Supersession,
    ) -> Result<Report, NodeError> {
        let mut extra = vec![("save", Value::from(save))];
        // Only when there is something to say, so the line stays as before.
        if !known.is_empty() {
            extra.push(("known", serde_json::to_value(known).unwrap_or_default()));
        }
        self.patch_call("install", id, &extra)
    }

    fn rollback(&mut self, id: &str) -> Result<Report, NodeError> {
        self.patch_call("rollback", id, &[])
    }

    fn commit(&mut self, id: &str) -> Result<Report, NodeError> {
        self.patch_call("commit", id, &[])
    }

    fn remove(&mut self, id: &str) -> Result<Report, NodeError> {
        self.patch_call("remove", id, &[])
    }

    fn list(&mut self) -> Result<Vec<Listed>, NodeError> {
        self.plain_call("list")
    }

    fn inventory(&mut self) -> Result<Inventory, NodeError> {
        self.plain_call("inventory")
    }

    fn verify(&mut self) -> Result<Vec<Drift>, NodeError> {
        self.plain_call("verify")
    }

    fn environment(&mut self) -> Result<Environment, NodeError> {
        self.plain_call("environment")
    }

    fn recovered(&mut self) -> Result<Vec<crate::engine::node::Recovery>, NodeError> {
        self.plain_call("recovered")
    }

    fn learn(&mut self, known: &crate::engine::requirement::Supersession) -> Result<(), NodeError> {
        if known.is_empty() {
            return Ok(());
        }
        let mut body = Map::new();
        body.insert(
            "known".into(),
            serde_json::to_value(known).unwrap_or_default(),
        );
        let value = self.call("learn", "learn", body, &mut |_, _| {})?;
        self.decode("learn", value)
    }

    fn removal_blocked(
        &mut self,
        leaving: &[String],
    ) -> Result<Vec<crate::engine::requirement::Dependent>, NodeError> {
        let mut body = Map::new();
        body.insert("patches".into(), leaving.into());
        let value = self.call("blocked", "blocked", body, &mut |_, _| {})?;
        self.decode("blocked", value)
    }

    fn service(&mut self, set: Option<Service>) -> Result<ServiceStatus, NodeError> {
        let mut body = Map::new();
        if let Some(state) = set {
            body.insert("state".into(), state.as_str().into());
        }
        let value = self.call("service", "service", body, &mut |_, _| {})?;
        self.decode("service", value)
    }

    fn check_space(&mut self, patches: &[String]) -> Result<(), NodeError> {
        let mut body = Map::new();
        body.insert("patches".into(), patches.into());
        self.call("space", "space", body, &mut |_, _| {})
            .map(|_| ())
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if self.broken.is_none() {
            // A goodbye is not worth a long wait.
            self.setup.op = self.setup.op.min(self.setup.connect);
            let _ = self.call("bye", "bye", Map::new(), &mut |_, _| {});
        }
        // Closing stdin ends a server that missed the bye; a child that
        // broke the protocol is not waited for.
        drop(self.stdin.take());
        let patience = if self.broken.is_none() {
            Duration::from_secs(5)
        } else {
            Duration::ZERO
        };
        if wait_for(&mut self.child, patience).is_none() {
            deadline::kill_group(&mut self.child);
        }
    }
}

/// The node's protocol as a [`ErrorKind::Version`] error from
/// [`Remote::spawn_with`] names it (`the node (...) speaks protocol N`).
pub fn node_protocol(message: &str) -> Option<u64> {
    let (_, after) = message.split_once(") speaks protocol ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The protocol an older node names in its refusal of `hello` (`... this
/// node (patchdeck X) speaks protocol N; ...`), for nodes that do not send
/// it as a field.
fn spoken(message: &str) -> Option<u64> {
    let (_, after) = message.rsplit_once("speaks protocol ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
