//! The node protocol: versioned JSON lines between the console and
//! `patchdeck node --root DIR`, spoken over a child process's stdin and
//! stdout, so the same bytes go through OpenSSH to a remote node.
//! docs/protocol.md is the reference for the wire format.
//!
//! One request at a time: the client writes a request line and reads lines
//! until the response carrying the same id, taking progress events on the
//! way. A patch file travels as base64 `upload` chunks into a temporary file
//! in the node's store, then `stage` checks size and checksum and stages it.
//!
//! [`serve`] is the node side; [`Remote`] is the console side, a
//! [`Transport`] like the in-process one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::engine::inventory::Inventory;
use crate::engine::node::environment::Environment;
use crate::engine::node::{
    Drift, ErrorKind, Listed, Node, NodeError, Report, STORE_DIR, Service, ServiceStatus,
};
use crate::engine::transport::{Progress, Transport};

/// The protocol version this build speaks. It changes only when a change
/// would break the other side; additions (new ops, new optional fields, new
/// event kinds) keep it.
pub const PROTOCOL: u64 = 1;

/// How this build names itself in the handshake.
pub const SOFTWARE: &str = concat!("patchdeck ", env!("CARGO_PKG_VERSION"));

/// Bytes per `upload` chunk (before base64).
pub const CHUNK: usize = 256 * 1024;

/// The longest request line the server reads (a chunk is about 350 KB).
const MAX_REQUEST_LINE: usize = 4 << 20;

/// The longest response line the client reads (a big `list` or `inventory`).
const MAX_RESPONSE_LINE: usize = 256 << 20;

/// Prefix of upload temporaries in the store; the server's pid follows, so
/// a later server can tell abandoned ones from live ones.
const UPLOAD_PREFIX: &str = ".upload-";

/// What the server answers to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the server speaks.
    pub protocol: u64,
    /// Software and version, e.g. `patchdeck 0.1.0`.
    pub server: String,
    /// The node's own name for itself.
    pub node: String,
    /// The root directory the server patches.
    pub root: String,
}

// ----- wire types -----

/// Error kinds on the wire: the node's own, plus `protocol` for a request
/// the server could not take (bad JSON, unknown op, missing field, order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum WireKind {
    Refused,
    Busy,
    Invalid,
    Io,
    Protocol,
}

impl From<ErrorKind> for WireKind {
    fn from(kind: ErrorKind) -> WireKind {
        match kind {
            ErrorKind::Refused => WireKind::Refused,
            ErrorKind::Busy => WireKind::Busy,
            ErrorKind::Invalid => WireKind::Invalid,
            ErrorKind::Io => WireKind::Io,
        }
    }
}

#[derive(Serialize)]
struct WireError<'a> {
    kind: WireKind,
    message: &'a str,
}

#[derive(Serialize)]
struct Okay<T> {
    id: u64,
    ok: bool,
    result: T,
}

#[derive(Serialize)]
struct Fail<'a> {
    /// `None` (null) when the line had no usable id.
    id: Option<u64>,
    ok: bool,
    error: WireError<'a>,
}

#[derive(Serialize)]
struct Event {
    id: u64,
    event: &'static str,
    done: u64,
    total: u64,
}

/// A request, after its `id` has been taken out. Unknown fields are
/// ignored so that a newer client's optional additions do not break an
/// older server.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Hello {
        protocol: u64,
        #[serde(default)]
        #[allow(dead_code)]
        client: Option<String>,
    },
    Upload {
        patch: String,
        offset: u64,
        size: u64,
        data: String,
    },
    Stage {
        patch: String,
        size: u64,
        sha256: String,
    },
    Install {
        patch: String,
        save: bool,
        /// Supersession edges from the console's depot (optional).
        #[serde(default)]
        known: crate::engine::requirement::Supersession,
    },
    Rollback {
        patch: String,
    },
    Commit {
        patch: String,
    },
    Remove {
        patch: String,
    },
    List {},
    Inventory {},
    /// The node's environment id and host name (offline bundles).
    Environment {},
    Verify {},
    /// Whether installing `patches` fits in the node's free space.
    Space {
        patches: Vec<String>,
    },
    Recovered {},
    /// Supersession edges to keep.
    Learn {
        #[serde(default)]
        known: crate::engine::requirement::Supersession,
    },
    /// Who would lose a requirement if `patches` were rolled back.
    Blocked {
        patches: Vec<String>,
    },
    /// Reads the service state; with `state`, drains or restores first.
    Service {
        #[serde(default)]
        state: Option<Service>,
    },
    Bye {},
}

/// Any line the client reads: a response or an event.
#[derive(Debug, Deserialize)]
struct Incoming {
    id: Option<u64>,
    ok: Option<bool>,
    #[serde(default)]
    result: Value,
    error: Option<IncomingError>,
    event: Option<String>,
    done: Option<u64>,
    total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct IncomingError {
    kind: String,
    message: String,
}

// ----- base64 (standard alphabet, padded) -----

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())
}

// ----- lines -----

enum Line {
    Eof,
    /// The line is in the buffer, without its line end.
    Text,
    /// A line longer than the limit, of this many bytes, was skipped.
    TooLong(usize),
}

/// Reads one line into `buf`, never holding more than `max` bytes: a longer
/// line is consumed and reported, so a reader cannot be made to eat memory.
fn read_line(input: &mut impl BufRead, max: usize, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let mut total = 0usize;
    let mut overflow = false;
    loop {
        let avail = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            // A last line without a newline still counts.
            return Ok(match (total, overflow) {
                (0, _) => Line::Eof,
                (_, true) => Line::TooLong(total),
                _ => Line::Text,
            });
        }
        let (take, end) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !overflow {
            if buf.len() + take > max + 1 {
                overflow = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..take]);
            }
        }
        total += take;
        input.consume(take);
        if end {
            if overflow {
                return Ok(Line::TooLong(total));
            }
            while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                buf.pop();
            }
            return Ok(Line::Text);
        }
    }
}

/// A line as an error message can quote it: short, one line, readable.
fn snippet(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut s: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        s.push('…');
    }
    s.escape_debug().to_string()
}

// ----- server -----

/// Serves the node protocol for the node rooted at `root` until the client
/// says `bye` or closes `input`: both end with `Ok(())`. A handshake the
/// server refuses (a protocol version it does not speak, a root it cannot
/// open) is answered and then ends with an error of kind `InvalidData`.
/// `Err` also means `output` failed. Nothing but protocol lines is written
/// to `output`.
pub fn serve(root: &Path, name: &str, input: impl BufRead, output: impl Write) -> io::Result<()> {
    let mut server = Server {
        root,
        name,
        out: output,
        node: None,
        uploads: BTreeMap::new(),
        line: 0,
    };
    let mut input = input;
    let mut buf = Vec::new();
    loop {
        let line = read_line(&mut input, MAX_REQUEST_LINE, &mut buf)?;
        server.line += 1;
        match line {
            Line::Eof => return Ok(()),
            Line::TooLong(n) => {
                let message = format!(
                    "line {}: {n} bytes is longer than the {MAX_REQUEST_LINE} a request may have",
                    server.line
                );
                server.fail(None, WireKind::Protocol, &message)?;
            }
            Line::Text if buf.iter().all(u8::is_ascii_whitespace) => {}
            Line::Text => {
                if let Flow::Stop = server.handle(&buf)? {
                    return Ok(());
                }
            }
        }
    }
}

enum Flow {
    Go,
    Stop,
}

struct Upload {
    file: tempfile::NamedTempFile,
    size: u64,
    received: u64,
    hash: Sha256,
}

struct Server<'a, W: Write> {
    root: &'a Path,
    name: &'a str,
    out: W,
    /// Opened by a successful hello.
    node: Option<Node>,
    uploads: BTreeMap<String, Upload>,
    line: u64,
}

/// Splits a line into its id and request, or says what is wrong with it
/// (with the id when there is one, so the client can match the error).
fn parse(line: &[u8]) -> Result<(u64, Request), (Option<u64>, String)> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| (None, format!("not JSON: {e}")))?;
    let Value::Object(map) = &value else {
        return Err((None, "expected a JSON object".into()));
    };
    let id = match map.get("id") {
        Some(v) => v.as_u64().ok_or((
            None,
            format!("`id` must be a non-negative integer, not {v}"),
        ))?,
        None => return Err((None, "missing field `id`".into())),
    };
    let op = match map.get("op") {
        Some(Value::String(op)) => op.clone(),
        Some(v) => return Err((Some(id), format!("`op` must be a string, not {v}"))),
        None => return Err((Some(id), "missing field `op`".into())),
    };
    // Short string fields, to name one whose value is unknown (upload data
    // is long and never an enum value: not copied).
    let short: Vec<(String, String)> = map
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str().filter(|s| s.len() <= 64)?.to_string())))
        .collect();
    let request = Request::deserialize(value).map_err(|e| {
        let e = e.to_string();
        // Only the op's own name makes an unknown op; an unknown value of
        // a field (a service `state`) is that field's error.
        if e.starts_with(&format!("unknown variant `{op}`")) {
            return (Some(id), format!("unknown op: {e}"));
        }
        // Name the field whose value is unknown, which serde does not.
        let value = e
            .strip_prefix("unknown variant `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(v, _)| v);
        let field = value.and_then(|v| {
            short
                .iter()
                .find(|(k, x)| k.as_str() != "op" && x == v)
                .map(|(k, _)| k.clone())
        });
        match field {
            Some(field) => (Some(id), format!("{op}: `{field}`: {e}")),
            None => (Some(id), format!("{op}: {e}")),
        }
    })?;
    Ok((id, request))
}

impl<W: Write> Server<'_, W> {
    fn send(&mut self, message: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, message)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    fn ok(&mut self, id: u64, result: impl Serialize) -> io::Result<()> {
        self.send(&Okay {
            id,
            ok: true,
            result,
        })
    }

    fn fail(&mut self, id: Option<u64>, kind: WireKind, message: &str) -> io::Result<()> {
        self.send(&Fail {
            id,
            ok: false,
            error: WireError { kind, message },
        })
    }

    fn progress(&mut self, id: u64, done: u64, total: u64) -> io::Result<()> {
        self.send(&Event {
            id,
            event: "progress",
            done,
            total,
        })
    }

    fn answer<T: Serialize>(&mut self, id: u64, result: Result<T, NodeError>) -> io::Result<()> {
        match result {
            Ok(value) => self.ok(id, value),
            Err(e) => self.fail(Some(id), e.kind.into(), &e.message),
        }
    }

    fn handle(&mut self, line: &[u8]) -> io::Result<Flow> {
        let (id, request) = match parse(line) {
            Ok(parsed) => parsed,
            Err((id, message)) => {
                let message = format!("line {}: {message}", self.line);
                self.fail(id, WireKind::Protocol, &message)?;
                return Ok(Flow::Go);
            }
        };
        let Some(node) = self.node.as_mut() else {
            return match request {
                Request::Hello { protocol, .. } => self.hello(id, protocol),
                Request::Bye {} => {
                    self.ok(id, ())?;
                    Ok(Flow::Stop)
                }
                _ => {
                    let message = format!(
                        "line {}: refused before the handshake; send {{\"id\":0,\"op\":\"hello\",\"protocol\":{PROTOCOL}}} first",
                        self.line
                    );
                    self.fail(Some(id), WireKind::Protocol, &message)?;
                    Ok(Flow::Go)
                }
            };
        };
        match request {
            Request::Hello { .. } => {
                let message = format!("line {}: hello was already said", self.line);
                self.fail(Some(id), WireKind::Protocol, &message)?;
            }
            Request::Upload {
                patch,
                offset,
                size,
                data,
            } => self.upload(id, patch, offset, size, &data)?,
            Request::Stage {
                patch,
                size,
                sha256,
            } => self.stage(id, &patch, size, &sha256)?,
            Request::Install { patch, save, known } => {
                self.progress(id, 0, 1)?;
                let r = self.with_node(|n| n.install_with(&patch, save, &known));
                self.progress(id, 1, 1)?;
                self.answer(id, r)?;
            }
            Request::Rollback { patch } => {
                self.progress(id, 0, 1)?;
                let r = self.with_node(|n| n.rollback(&patch));
                self.progress(id, 1, 1)?;
                self.answer(id, r)?;
            }
            Request::Commit { patch } => {
                self.progress(id, 0, 1)?;
                let r = self.with_node(|n| n.commit(&patch));
                self.progress(id, 1, 1)?;
                self.answer(id, r)?;
            }
            Request::Remove { patch } => {
                let r = node.remove(&patch);
                self.answer(id, r)?;
            }
            Request::List {} => {
                let r = node.list();
                self.answer(id, r)?;
            }
            Request::Inventory {} => {
                let r = node.inventory();
                self.answer(id, r)?;
            }
            Request::Environment {} => {
                let r = node.environment();
                self.answer(id, r)?;
            }
            Request::Verify {} => {
                let r = node.verify();
                self.answer(id, r)?;
            }
            Request::Space { patches } => {
                let r = node.check_install_space(&patches);
                self.answer(id, r)?;
            }
            Request::Recovered {} => {
                let r = node.take_recovered();
                self.answer(id, r)?;
            }
            Request::Learn { known } => {
                let r = node.learn(&known);
                self.answer(id, r)?;
            }
            Request::Blocked { patches } => {
                let r = node.removal_blocked(&patches);
                self.answer(id, r)?;
            }
            Request::Service { state } => {
                let r = match state {
                    Some(state) => node.set_service(state),
                    None => node.service(),
                };
                self.answer(id, r)?;
            }
            Request::Bye {} => {
                self.ok(id, ())?;
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }

    fn with_node<T>(
        &mut self,
        f: impl FnOnce(&mut Node) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        match self.node.as_mut() {
            Some(node) => f(node),
            None => Err(NodeError {
                node: self.name.to_string(),
                kind: ErrorKind::Io,
                message: "the node is not open".into(),
            }),
        }
    }

    fn hello(&mut self, id: u64, protocol: u64) -> io::Result<Flow> {
        if protocol != PROTOCOL {
            let message = format!(
                "the client speaks protocol {protocol}, but this node ({SOFTWARE}) speaks protocol {PROTOCOL}; \
                 install the same major version of patchdeck on the console and the node"
            );
            self.fail(Some(id), WireKind::Protocol, &message)?;
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
        let opened = if self.root.is_dir() {
            Node::open(self.root, self.name)
        } else {
            Err(NodeError {
                node: self.name.to_string(),
                kind: ErrorKind::Io,
                message: format!("root {} is not a directory", self.root.display()),
            })
        };
        match opened {
            Ok(node) => {
                self.node = Some(node);
                sweep_abandoned_uploads(&self.root.join(STORE_DIR));
                let hello = Hello {
                    protocol: PROTOCOL,
                    server: SOFTWARE.into(),
                    node: self.name.into(),
                    root: self.root.display().to_string(),
                };
                self.ok(id, hello)?;
                Ok(Flow::Go)
            }
            Err(e) => {
                self.fail(Some(id), e.kind.into(), &e.message)?;
                Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            }
        }
    }

    fn upload(
        &mut self,
        id: u64,
        patch: String,
        offset: u64,
        size: u64,
        data: &str,
    ) -> io::Result<()> {
        let line = self.line;
        let bytes = match base64_decode(data) {
            Ok(b) => b,
            Err(e) => {
                let message = format!("line {line}: upload of {patch}: `data` is not base64: {e}");
                return self.fail(Some(id), WireKind::Protocol, &message);
            }
        };
        // A chunk at offset 0 starts the upload afresh; any other continues it.
        let (received, announced) = if offset == 0 {
            (0, size)
        } else {
            match self.uploads.get(&patch) {
                Some(up) => (up.received, up.size),
                None => {
                    let message = format!(
                        "line {line}: upload of {patch} must start at offset 0, not {offset}"
                    );
                    return self.fail(Some(id), WireKind::Protocol, &message);
                }
            }
        };
        let problem = if received != offset {
            Some(format!(
                "line {line}: upload of {patch}: expected offset {received}, got {offset}"
            ))
        } else if announced != size {
            Some(format!(
                "line {line}: upload of {patch}: size changed from {announced} to {size}"
            ))
        } else if received + bytes.len() as u64 > size {
            Some(format!(
                "line {line}: upload of {patch}: {} bytes at offset {offset} go past the announced size {size}",
                bytes.len()
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            return self.fail(Some(id), WireKind::Protocol, &message);
        }
        // Announced too large for a patch or for this disk: refused before
        // a byte is written.
        if offset == 0 {
            let free =
                crate::engine::node::space::free(&self.root.join(STORE_DIR)).map(|f| f.bytes);
            let need = size.saturating_add(crate::engine::node::space::MARGIN_BYTES);
            let refusal = if size > crate::engine::archive::MAX_PATCH_BYTES {
                Some(format!(
                    "line {line}: upload of {patch}: {size} bytes announced; a patch may be at most {} bytes",
                    crate::engine::archive::MAX_PATCH_BYTES
                ))
            } else {
                match free {
                    Ok(free) if free < need => Some(format!(
                        "line {line}: upload of {patch}: {size} bytes announced; the node needs {need} bytes free to take it and has {free}"
                    )),
                    _ => None,
                }
            };
            if let Some(message) = refusal {
                return self.fail(Some(id), WireKind::Invalid, &message);
            }
        }
        if offset == 0 {
            let store = self.root.join(STORE_DIR);
            let created = tempfile::Builder::new()
                .prefix(&format!("{UPLOAD_PREFIX}{}-", std::process::id()))
                .suffix(".tmp")
                .tempfile_in(&store);
            match created {
                Ok(file) => {
                    self.uploads.insert(
                        patch.clone(),
                        Upload {
                            file,
                            size,
                            received: 0,
                            hash: Sha256::new(),
                        },
                    );
                }
                Err(e) => {
                    self.uploads.remove(&patch);
                    let message = format!(
                        "upload of {patch}: creating a temporary file in {}: {e}",
                        store.display()
                    );
                    return self.fail(Some(id), WireKind::Io, &message);
                }
            }
        }
        let Some(up) = self.uploads.get_mut(&patch) else {
            return Ok(());
        };
        if let Err(e) = up.file.as_file_mut().write_all(&bytes) {
            self.uploads.remove(&patch);
            let message = format!("upload of {patch}: writing the temporary file: {e}");
            return self.fail(Some(id), WireKind::Io, &message);
        }
        up.hash.update(&bytes);
        up.received += bytes.len() as u64;
        let received = up.received;
        self.progress(id, received, size)?;
        self.ok(id, json!({ "received": received }))
    }

    fn stage(&mut self, id: u64, patch: &str, size: u64, sha256: &str) -> io::Result<()> {
        let Some(mut up) = self.uploads.remove(patch) else {
            let message = format!(
                "line {}: stage {patch}: nothing uploaded; send `upload` chunks first",
                self.line
            );
            return self.fail(Some(id), WireKind::Protocol, &message);
        };
        if up.received != size || up.size != size {
            let message = format!(
                "{patch}: the upload is incomplete: {} of {size} bytes arrived; upload it again",
                up.received
            );
            return self.fail(Some(id), WireKind::Invalid, &message);
        }
        let actual = hex::encode(up.hash.finalize_reset());
        if !actual.eq_ignore_ascii_case(sha256) {
            let message = format!(
                "{patch}: the upload arrived with sha256 {actual}, but the console sent {sha256}; upload it again"
            );
            return self.fail(Some(id), WireKind::Invalid, &message);
        }
        let result = self.with_node(|n| n.stage(patch, up.file.path()));
        // Dropping the upload deletes the temporary file.
        drop(up);
        self.answer(id, result)
    }
}

/// Deletes upload temporaries left by servers that died (their pid is gone).
fn sweep_abandoned_uploads(store: &Path) {
    let Ok(entries) = fs::read_dir(store) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(UPLOAD_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if pid > 0 && !process_alive(pid) {
            tracing::info!(file = %entry.path().display(), "removing an abandoned upload");
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

// ----- client -----

/// A node reached through a child process speaking the protocol: `patchdeck
/// node` run directly, or through `sh -c` (how OpenSSH reaches remote nodes).
/// Dropping it says `bye` and waits for the child (killing it if it lingers).
pub struct Remote {
    node: String,
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: StderrTail,
    next_id: u64,
    hello: Hello,
    /// Set when the child died or spoke garbage: every later call fails so.
    broken: Option<NodeError>,
}

impl Remote {
    /// Starts `command` (its stdin, stdout and stderr are taken over) and
    /// shakes hands. `node` is the name errors give the node.
    pub fn spawn(mut command: Command, node: &str) -> Result<Remote, NodeError> {
        let described = describe(&command);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| NodeError {
            node: node.to_string(),
            kind: ErrorKind::Io,
            message: format!("cannot start `{described}`: {e}"),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NodeError {
                node: node.to_string(),
                kind: ErrorKind::Io,
                message: format!("`{described}` started without pipes"),
            });
        };
        let mut remote = Remote {
            node: node.to_string(),
            command: described,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr: StderrTail::start(stderr),
            next_id: 0,
            hello: Hello {
                protocol: 0,
                server: String::new(),
                node: String::new(),
                root: String::new(),
            },
            broken: None,
        };
        let mut body = Map::new();
        body.insert("protocol".into(), PROTOCOL.into());
        body.insert("client".into(), SOFTWARE.into());
        let answer = match remote.call("hello", "hello", body, &mut |_, _| {}) {
            Ok(value) => value,
            Err(mut e) => {
                if e.message.starts_with("protocol: ") {
                    e.message = format!(
                        "the node refused the handshake: {}",
                        &e.message["protocol: ".len()..]
                    );
                }
                remote.broken = Some(e.clone());
                return Err(e);
            }
        };
        let hello: Hello = remote.decode("hello", answer)?;
        if hello.protocol != PROTOCOL {
            let e = remote.error(format!(
                "the node ({}) speaks protocol {}, but this console ({SOFTWARE}) speaks protocol {PROTOCOL}; \
                 install the same major version of patchdeck on both",
                hello.server, hello.protocol
            ));
            remote.broken = Some(e.clone());
            return Err(e);
        }
        remote.hello = hello;
        Ok(remote)
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
        let written = match self.stdin.as_mut() {
            Some(stdin) => write_quietly(stdin, &line),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin closed")),
        };
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

    /// The child stopped answering: say how it ended and what it last wrote
    /// to stderr.
    fn died(&mut self, what: &str, how: &str) -> NodeError {
        let message = match wait_for(&mut self.child, Duration::from_secs(2)) {
            Some(status) => format!(
                "no answer to {what}: the node process ended ({})",
                describe_status(status)
            ),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                format!("no answer to {what}: the node process {how} but did not exit; stopped it")
            }
        };
        self.finish(message)
    }

    /// The child said something that is not the protocol.
    fn garbage(&mut self, what: &str, said: &str) -> NodeError {
        // Stop it first, so its stderr closes and its last words are in.
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let report = self.patch_call(
            "stage",
            id,
            &[("size", size.into()), ("sha256", sha256.into())],
        )?;
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
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Waits up to `limit` for the child to exit.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                libc::SIGHUP => " (SIGHUP)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGPIPE => " (SIGPIPE)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        _ => status.to_string(),
    }
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last few kilobytes a child wrote to stderr, read by a thread so the
/// child never blocks on a full pipe.
struct StderrTail {
    text: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

const TAIL_BYTES: usize = 4096;

impl StderrTail {
    fn start(mut stderr: impl Read + Send + 'static) -> StderrTail {
        let text = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut t = shared.lock().unwrap_or_else(|p| p.into_inner());
                        t.extend_from_slice(&buf[..n]);
                        if t.len() > TAIL_BYTES {
                            let cut = t.len() - TAIL_BYTES;
                            t.drain(..cut);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        StderrTail { text, done }
    }

    /// The last lines written, waiting up to `limit` for the child's stderr
    /// to close first (so a dying child's last words are in).
    fn tail(&self, limit: Duration) -> String {
        let _ = self.done.recv_timeout(limit);
        let t = self.text.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&t);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let last = &lines[lines.len().saturating_sub(5)..];
        let joined = last.join(" | ");
        if joined.chars().count() > 600 {
            let skip = joined.chars().count() - 600;
            format!("…{}", joined.chars().skip(skip).collect::<String>())
        } else {
            joined
        }
    }
}

/// Writes to a child's stdin without dying of SIGPIPE when the child is
/// gone: the binary restores SIGPIPE's default action (so `| head` works),
/// which would otherwise kill the whole console along with one dead node.
/// SIGPIPE is blocked on this thread for the write and a SIGPIPE the write
/// raised is taken back, so the write just fails with `BrokenPipe`.
fn write_quietly(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let _blocked = SigpipeBlocked::new();
    w.write_all(data)?;
    w.flush()
}

#[cfg(target_os = "linux")]
struct SigpipeBlocked {
    was_blocked: bool,
    was_pending: bool,
}

#[cfg(target_os = "linux")]
fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

#[cfg(target_os = "linux")]
fn sigpipe_pending() -> bool {
    // SAFETY: sigpending fills a sigset_t we own.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, libc::SIGPIPE) == 1
    }
}

#[cfg(target_os = "linux")]
impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        let set = sigpipe_set();
        // SAFETY: changes only this thread's signal mask; `old` is ours.
        let was_blocked = unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            libc::sigismember(&old, libc::SIGPIPE) == 1
        };
        SigpipeBlocked {
            was_blocked,
            was_pending: sigpipe_pending(),
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        let set = sigpipe_set();
        if !self.was_pending && sigpipe_pending() {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: takes the pending SIGPIPE our write raised; returns at
            // once (zero timeout) whatever happens.
            unsafe {
                while libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) == -1
                    && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {
                }
            }
        }
        if !self.was_blocked {
            // SAFETY: restores this thread's mask as it was.
            unsafe {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
struct SigpipeBlocked;

#[cfg(not(target_os = "linux"))]
impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        SigpipeBlocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `serve` on `input` over a fresh node; returns the result and
    /// the answers, one JSON value per line.
    fn run(root: &Path, input: &str) -> (io::Result<()>, Vec<Value>) {
        let mut out = Vec::new();
        let r = serve(root, "gw-1", input.as_bytes(), &mut out);
        let text = String::from_utf8(out).expect("the server writes UTF-8");
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (r, lines)
    }

    fn node_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    const HELLO: &str = r#"{"id":0,"op":"hello","protocol":1,"client":"patchdeck 0.1.0"}"#;

    fn error_kind(v: &Value) -> &str {
        v["error"]["kind"].as_str().unwrap_or("")
    }

    fn error_message(v: &Value) -> &str {
        v["error"]["message"].as_str().unwrap_or("")
    }

    #[test]
    fn hello_names_protocol_software_node_and_root() {
        let tmp = node_dir();
        let (r, out) = run(
            tmp.path(),
            &format!("{HELLO}\n{{\"id\":1,\"op\":\"bye\"}}\n"),
        );
        r.unwrap();
        assert_eq!(
            out[0],
            json!({"id":0,"ok":true,"result":{
                "protocol":1,
                "server":SOFTWARE,
                "node":"gw-1",
                "root":tmp.path().display().to_string(),
            }})
        );
        assert_eq!(out[1], json!({"id":1,"ok":true,"result":null}));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn an_unknown_service_state_is_that_fields_error_not_an_unknown_op() {
        let tmp = node_dir();
        let input = format!("{HELLO}\n{{\"id\":1,\"op\":\"service\",\"state\":\"sideways\"}}\n");
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        assert_eq!(error_kind(&out[1]), "protocol");
        let m = error_message(&out[1]);
        assert!(!m.contains("unknown op"), "{m}");
        assert!(
            m.contains("service: `state`: unknown variant `sideways`"),
            "{m}"
        );
    }

    #[test]
    fn an_upload_announcing_more_than_a_patch_or_the_disk_is_refused_at_once() {
        let tmp = node_dir();
        let free = crate::engine::node::space::free(tmp.path()).unwrap().bytes;
        let cases = [
            (1u64 << 62, "a patch may be at most"),
            (
                crate::engine::archive::MAX_PATCH_BYTES + 1,
                "a patch may be at most",
            ),
        ];
        for (size, words) in cases {
            let input = format!("{HELLO}\n{}\n", upload_line(1, "GW_1", 0, size, b"x"));
            let (r, out) = run(tmp.path(), &input);
            r.unwrap();
            assert_eq!(error_kind(&out[1]), "invalid", "{}", out[1]);
            let m = error_message(&out[1]);
            assert!(m.contains(words) && m.contains(&size.to_string()), "{m}");
        }
        // Within the patch limit but more than this disk holds.
        if free < crate::engine::archive::MAX_PATCH_BYTES {
            let input = format!("{HELLO}\n{}\n", upload_line(1, "GW_1", 0, free, b"x"));
            let (r, out) = run(tmp.path(), &input);
            r.unwrap();
            assert_eq!(error_kind(&out[1]), "invalid", "{}", out[1]);
            assert!(error_message(&out[1]).contains("bytes free"), "{}", out[1]);
        }
        let leftovers: Vec<_> = fs::read_dir(tmp.path().join(STORE_DIR))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(UPLOAD_PREFIX))
            .collect();
        assert!(leftovers.is_empty(), "an upload file was created");
    }

    #[test]
    fn an_unknown_version_is_refused_naming_both_and_the_server_stops() {
        let tmp = node_dir();
        let input = "{\"id\":0,\"op\":\"hello\",\"protocol\":99,\"client\":\"patchdeck 9.0.0\"}\n{\"id\":1,\"op\":\"list\"}\n";
        let (r, out) = run(tmp.path(), input);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(out.len(), 1, "nothing is answered after the refusal");
        assert_eq!(
            (out[0]["id"].as_u64(), out[0]["ok"].as_bool()),
            (Some(0), Some(false))
        );
        assert_eq!(error_kind(&out[0]), "protocol");
        let m = error_message(&out[0]);
        assert!(m.contains("protocol 99") && m.contains("protocol 1"), "{m}");
        assert!(
            !tmp.path().join(STORE_DIR).exists(),
            "the node was not opened"
        );
    }

    #[test]
    fn requests_before_hello_are_refused_and_hello_still_works() {
        let tmp = node_dir();
        let input =
            format!("{{\"id\":5,\"op\":\"list\"}}\n{HELLO}\n{{\"id\":6,\"op\":\"list\"}}\n");
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        assert_eq!(out[0]["id"], 5);
        assert_eq!(error_kind(&out[0]), "protocol");
        assert!(error_message(&out[0]).contains("hello"), "{}", out[0]);
        assert_eq!(out[1]["ok"], true);
        assert_eq!(out[2], json!({"id":6,"ok":true,"result":[]}));
    }

    #[test]
    fn malformed_lines_get_errors_and_the_server_keeps_serving() {
        let tmp = node_dir();
        let bad = [
            ("this is not json", None, "not JSON"),
            ("[1,2]", None, "JSON object"),
            ("{\"op\":\"list\"}", None, "missing field `id`"),
            ("{\"id\":-1,\"op\":\"list\"}", None, "`id`"),
            ("{\"id\":7}", Some(7), "missing field `op`"),
            ("{\"id\":8,\"op\":\"frobnicate\"}", Some(8), "unknown op"),
            (
                "{\"id\":9,\"op\":\"install\",\"save\":true}",
                Some(9),
                "missing field `patch`",
            ),
            (
                "{\"id\":10,\"op\":\"install\",\"patch\":\"GW_1\",\"save\":\"yes\"}",
                Some(10),
                "invalid type",
            ),
            (
                "{\"id\":11,\"op\":\"hello\",\"protocol\":1}",
                Some(11),
                "already",
            ),
        ];
        let mut input = format!("{HELLO}\n\n");
        for (line, _, _) in &bad {
            input.push_str(line);
            input.push('\n');
        }
        input.push_str("{\"id\":12,\"op\":\"list\",\"from_the_future\":true}");
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        assert_eq!(out.len(), bad.len() + 2, "{out:?}");
        for (i, (line, id, says)) in bad.iter().enumerate() {
            let answer = &out[i + 1];
            assert_eq!(answer["ok"], false, "{line}");
            assert_eq!(answer["id"].as_u64(), *id, "{line}: {answer}");
            assert_eq!(error_kind(answer), "protocol", "{line}");
            let m = error_message(answer);
            assert!(m.contains(says), "{line}: {m}");
            assert!(m.starts_with(&format!("line {}:", i + 3)), "{line}: {m}");
        }
        // The last line has no newline and an unknown field: still served.
        assert_eq!(out[bad.len() + 1], json!({"id":12,"ok":true,"result":[]}));
    }

    #[test]
    fn unknown_op_lists_the_known_ones() {
        let tmp = node_dir();
        let (_, out) = run(
            tmp.path(),
            &format!("{HELLO}\n{{\"id\":1,\"op\":\"reboot\"}}\n"),
        );
        let m = error_message(&out[1]);
        assert!(
            m.contains("reboot") && m.contains("install") && m.contains("verify"),
            "{m}"
        );
    }

    #[test]
    fn eof_ends_the_session_cleanly() {
        let tmp = node_dir();
        let (r, out) = run(tmp.path(), "");
        r.unwrap();
        assert!(out.is_empty());
        let (r, out) = run(tmp.path(), HELLO);
        r.unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn an_overlong_line_is_refused_and_skipped() {
        let tmp = node_dir();
        let long = format!(
            "{{\"id\":1,\"op\":\"list\",\"pad\":\"{}\"}}",
            "x".repeat(MAX_REQUEST_LINE)
        );
        let input = format!("{HELLO}\n{long}\n{{\"id\":2,\"op\":\"list\"}}\n");
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        assert_eq!(out[1]["id"], Value::Null);
        assert!(error_message(&out[1]).contains("longer than"), "{}", out[1]);
        assert_eq!(out[2]["ok"], true);
    }

    #[test]
    fn a_missing_root_fails_the_handshake() {
        let tmp = node_dir();
        let root = tmp.path().join("absent");
        let (r, out) = run(&root, HELLO);
        assert!(r.is_err());
        assert_eq!(error_kind(&out[0]), "io");
        assert!(
            error_message(&out[0]).contains("not a directory"),
            "{}",
            out[0]
        );
        assert!(!root.exists(), "serving never creates the root");
    }

    fn upload_line(id: u64, patch: &str, offset: u64, size: u64, data: &[u8]) -> String {
        json!({"id":id,"op":"upload","patch":patch,"offset":offset,"size":size,"data":base64_encode(data)})
            .to_string()
    }

    fn tiny_patch(id: &str) -> Vec<u8> {
        let payload = b"library\n";
        let manifest = format!(
            "id = \"{id}\"\ntitle = \"Fix\"\nproduct = \"gateway\"\nversion = \"10.1.1\"\nvendor = \"acme\"\n\
             severity = \"high\"\nreleased = 2026-01-02\n\n[[files]]\npath = \"opt/lib.so\"\nsha256 = \"{}\"\nsize = {}\nmode = \"0644\"\n",
            hex::encode(Sha256::digest(payload)),
            payload.len()
        );
        let mut bytes = Vec::new();
        let mut b = tar::Builder::new(&mut bytes);
        crate::engine::archive::append(&mut b, "PATCH.toml", 0o644, manifest.as_bytes()).unwrap();
        crate::engine::archive::append(&mut b, "files/opt/lib.so", 0o644, payload).unwrap();
        b.finish().unwrap();
        drop(b);
        bytes
    }

    fn leftovers(root: &Path) -> Vec<String> {
        fs::read_dir(root.join(STORE_DIR))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(UPLOAD_PREFIX))
            .collect()
    }

    #[test]
    fn chunks_are_acknowledged_with_progress_and_staged() {
        let tmp = node_dir();
        Node::open(tmp.path(), "gw-1")
            .unwrap()
            .set_product("gateway", "10.1")
            .unwrap();
        let patch = tiny_patch("GW_1");
        let size = patch.len() as u64;
        let (a, b) = patch.split_at(1000);
        let sha = hex::encode(Sha256::digest(&patch));
        let input = [
            HELLO.to_string(),
            upload_line(1, "GW_1", 0, size, a),
            upload_line(2, "GW_1", 1000, size, b),
            json!({"id":3,"op":"stage","patch":"GW_1","size":size,"sha256":sha}).to_string(),
            "{\"id\":4,\"op\":\"install\",\"patch\":\"GW_1\",\"save\":true}".into(),
        ]
        .join("\n");
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        assert_eq!(
            out[1],
            json!({"id":1,"event":"progress","done":1000,"total":size})
        );
        assert_eq!(out[2], json!({"id":1,"ok":true,"result":{"received":1000}}));
        assert_eq!(
            out[3],
            json!({"id":2,"event":"progress","done":size,"total":size})
        );
        assert_eq!(out[4], json!({"id":2,"ok":true,"result":{"received":size}}));
        assert_eq!(
            (&out[5]["id"], &out[5]["ok"]),
            (&json!(3), &json!(true)),
            "{}",
            out[5]
        );
        assert_eq!(out[5]["result"]["state"], "staged");
        assert_eq!(
            out[6],
            json!({"id":4,"event":"progress","done":0,"total":1})
        );
        assert_eq!(
            out[7],
            json!({"id":4,"event":"progress","done":1,"total":1})
        );
        assert_eq!(out[8]["result"]["state"], "applied", "{}", out[8]);
        assert_eq!(
            fs::read(tmp.path().join("opt/lib.so")).unwrap(),
            b"library\n"
        );
        assert!(
            leftovers(tmp.path()).is_empty(),
            "the temporary file is gone"
        );
    }

    #[test]
    fn bad_uploads_are_refused_and_leave_nothing_behind() {
        let tmp = node_dir();
        let patch = tiny_patch("GW_1");
        let size = patch.len() as u64;
        let sha = hex::encode(Sha256::digest(&patch));
        let stage = |id: u64, sha: &str| {
            json!({"id":id,"op":"stage","patch":"GW_1","size":size,"sha256":sha}).to_string()
        };
        let input = [
            HELLO.to_string(),
            // Not from the start.
            upload_line(1, "GW_1", 10, size, &patch[10..20]),
            // A gap.
            upload_line(2, "GW_1", 0, size, &patch[..10]),
            upload_line(3, "GW_1", 20, size, &patch[20..30]),
            // Incomplete.
            stage(4, &sha),
            // Corrupted in transit.
            upload_line(5, "GW_1", 0, size, &[0u8; 1].repeat(patch.len())),
            stage(6, &sha),
            // Not base64.
            "{\"id\":7,\"op\":\"upload\",\"patch\":\"GW_1\",\"offset\":0,\"size\":3,\"data\":\"a*==\"}".into(),
            // Past the announced size.
            upload_line(8, "GW_1", 0, 2, b"abc"),
            // Stage without upload.
            stage(9, &sha),
            // A bad id is the node's to refuse.
            upload_line(10, "../x", 0, size, &patch),
            json!({"id":11,"op":"stage","patch":"../x","size":size,"sha256":sha}).to_string(),
        ]
        .join("\n");
        let (r, out) = run(tmp.path(), &input);
        r.unwrap();
        let answers: Vec<&Value> = out.iter().filter(|v| v.get("event").is_none()).collect();
        let expect = [
            (1, "protocol", "must start at offset 0"),
            (3, "protocol", "expected offset 10, got 20"),
            (4, "invalid", "incomplete: 10 of"),
            (6, "invalid", "sha256"),
            (7, "protocol", "not base64"),
            (8, "protocol", "past the announced size 2"),
            (9, "protocol", "nothing uploaded"),
            (11, "invalid", "patch id"),
        ];
        for (id, kind, says) in expect {
            let a = answers.iter().find(|a| a["id"] == id).unwrap();
            assert_eq!(error_kind(a), kind, "{a}");
            assert!(error_message(a).contains(says), "{a}");
        }
        assert!(
            leftovers(tmp.path()).is_empty(),
            "{:?}",
            leftovers(tmp.path())
        );
    }

    #[test]
    fn uploads_abandoned_by_dead_servers_are_swept() {
        let tmp = node_dir();
        fs::create_dir_all(tmp.path().join(STORE_DIR)).unwrap();
        // pid_max is at most 2^22 on Linux: this pid cannot be running.
        let dead = format!("{UPLOAD_PREFIX}{}-abc.tmp", (1 << 22) + 1);
        let live = format!("{UPLOAD_PREFIX}{}-abc.tmp", std::process::id());
        for name in [&dead, &live] {
            fs::write(tmp.path().join(STORE_DIR).join(name), b"partial").unwrap();
        }
        let (r, _) = run(tmp.path(), HELLO);
        r.unwrap();
        assert_eq!(leftovers(tmp.path()), [live]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn writing_to_a_dead_child_fails_without_a_sigpipe() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static HITS: AtomicUsize = AtomicUsize::new(0);
        extern "C" fn on_sigpipe(_: libc::c_int) {
            HITS.fetch_add(1, Ordering::SeqCst);
        }
        let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        child.wait().unwrap();
        // Count deliveries instead of dying of them (the test harness
        // ignores SIGPIPE, which would hide them).
        let handler = on_sigpipe as extern "C" fn(libc::c_int);
        // SAFETY: installs a handler that only touches an atomic.
        let old = unsafe { libc::signal(libc::SIGPIPE, handler as libc::sighandler_t) };
        let before = HITS.load(Ordering::SeqCst);
        let quiet = write_quietly(&mut stdin, b"hello\n");
        let after_quiet = HITS.load(Ordering::SeqCst);
        let plain = stdin.write_all(b"hello\n");
        let after_plain = HITS.load(Ordering::SeqCst);
        // SAFETY: puts back the previous disposition.
        unsafe { libc::signal(libc::SIGPIPE, old) };
        assert_eq!(quiet.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(after_quiet, before, "the quiet write raised no SIGPIPE");
        assert!(plain.is_err());
        assert!(
            after_plain > after_quiet,
            "a plain write does (the test means something)"
        );
        assert!(!sigpipe_pending());
    }
}
