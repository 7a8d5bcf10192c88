//! The node side: `serve` reads requests from stdin and answers on stdout,
//! one at a time, for the node rooted at a directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::wire::{
    Event, Fail, Hello, Line, MAX_REQUEST_LINE, Okay, PROTOCOL, Request, SOFTWARE, UPLOAD_PREFIX,
    WireError, WireKind, base64_decode, read_line,
};
use crate::engine::node::{ErrorKind, Node, NodeError, STORE_DIR};

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

pub(super) enum Flow {
    Go,
    Stop,
}

pub(super) struct Upload {
    file: tempfile::NamedTempFile,
    size: u64,
    received: u64,
    hash: Sha256,
}

pub(super) struct Server<'a, W: Write> {
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
pub(super) fn parse(line: &[u8]) -> Result<(u64, Request), (Option<u64>, String)> {
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
            error: WireError {
                kind,
                message,
                protocol: None,
                server: None,
            },
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
                minisig,
            } => self.stage(id, &patch, size, &sha256, minisig.as_deref())?,
            Request::Trust { keys } => {
                let r = node.set_trust(&keys);
                self.answer(id, r)?;
            }
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
            self.send(&Fail {
                id: Some(id),
                ok: false,
                error: WireError {
                    kind: WireKind::Protocol,
                    message: &message,
                    protocol: Some(PROTOCOL),
                    server: Some(SOFTWARE),
                },
            })?;
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

    fn stage(
        &mut self,
        id: u64,
        patch: &str,
        size: u64,
        sha256: &str,
        minisig: Option<&str>,
    ) -> io::Result<()> {
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
        let result = self.with_node(|n| n.stage_signed(patch, up.file.path(), minisig));
        // Dropping the upload deletes the temporary file.
        drop(up);
        self.answer(id, result)
    }
}

/// Deletes upload temporaries left by servers that died (their pid is gone).
pub(super) fn sweep_abandoned_uploads(store: &Path) {
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

pub(super) fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
