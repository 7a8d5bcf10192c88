//! The wire format: the handshake, request and response shapes, base64
//! chunks and bounded line reading, shared by the server and the client.

use std::io::{self, BufRead};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::node::{ErrorKind, Service};

/// The protocol version this build speaks. It changes only when a change
/// would break the other side; additions (new ops, new optional fields, new
/// event kinds) keep it.
pub const PROTOCOL: u64 = 1;

/// How this build names itself in the handshake.
pub const SOFTWARE: &str = concat!("patchdeck ", env!("CARGO_PKG_VERSION"));

/// Bytes per `upload` chunk (before base64).
pub const CHUNK: usize = 256 * 1024;

/// The longest request line the server reads (a chunk is about 350 KB).
pub(super) const MAX_REQUEST_LINE: usize = 4 << 20;

/// The longest response line the client reads (a big `list` or `inventory`).
pub(super) const MAX_RESPONSE_LINE: usize = 256 << 20;

/// Prefix of upload temporaries in the store; the server's pid follows, so
/// a later server can tell abandoned ones from live ones.
pub(super) const UPLOAD_PREFIX: &str = ".upload-";

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
pub(super) enum WireKind {
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
            // Only the console sees these (its transport's own failures);
            // a node never sends them.
            ErrorKind::Io
            | ErrorKind::Unreachable
            | ErrorKind::HostKey
            | ErrorKind::Login
            | ErrorKind::Missing
            | ErrorKind::Version => WireKind::Io,
        }
    }
}

#[derive(Serialize)]
pub(super) struct WireError<'a> {
    pub(super) kind: WireKind,
    pub(super) message: &'a str,
    /// On a refused `hello`: the protocol the node speaks and its software,
    /// so the console can say which side is older.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) protocol: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) server: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct Okay<T> {
    pub(super) id: u64,
    pub(super) ok: bool,
    pub(super) result: T,
}

#[derive(Serialize)]
pub(super) struct Fail<'a> {
    /// `None` (null) when the line had no usable id.
    pub(super) id: Option<u64>,
    pub(super) ok: bool,
    pub(super) error: WireError<'a>,
}

#[derive(Serialize)]
pub(super) struct Event {
    pub(super) id: u64,
    pub(super) event: &'static str,
    pub(super) done: u64,
    pub(super) total: u64,
}

/// A request, after its `id` has been taken out. Unknown fields are
/// ignored so that a newer client's optional additions do not break an
/// older server.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Request {
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
        /// The patch's signature (`.minisig` text), which a node holding
        /// trusted keys checks (optional; docs/trust.md).
        #[serde(default)]
        minisig: Option<String>,
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
    /// Replaces the node's trusted public keys (minisign files' text).
    Trust {
        keys: Vec<String>,
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
pub(super) struct Incoming {
    pub(super) id: Option<u64>,
    pub(super) ok: Option<bool>,
    #[serde(default)]
    pub(super) result: Value,
    pub(super) error: Option<IncomingError>,
    pub(super) event: Option<String>,
    pub(super) done: Option<u64>,
    pub(super) total: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct IncomingError {
    pub(super) kind: String,
    pub(super) message: String,
    /// Set on a refused `hello` by nodes that say which protocol they speak.
    #[serde(default)]
    pub(super) protocol: Option<u64>,
    #[serde(default)]
    pub(super) server: Option<String>,
}

// ----- base64 (standard alphabet, padded) -----

pub(super) fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub(super) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())
}

// ----- lines -----

pub(super) enum Line {
    Eof,
    /// The line is in the buffer, without its line end.
    Text,
    /// A line longer than the limit, of this many bytes, was skipped.
    TooLong(usize),
}

/// Reads one line into `buf`, never holding more than `max` bytes: a longer
/// line is consumed and reported, so a reader cannot be made to eat memory.
pub(super) fn read_line(
    input: &mut impl BufRead,
    max: usize,
    buf: &mut Vec<u8>,
) -> io::Result<Line> {
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
pub(super) fn snippet(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut s: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        s.push('…');
    }
    s.escape_debug().to_string()
}
