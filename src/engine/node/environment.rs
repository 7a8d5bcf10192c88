//! A node's environment identity: a random id the node creates once and
//! keeps in its store, plus its host name. An offline bundle is bound to
//! the environment its snapshot was taken in, so one applied to another
//! environment is refused (seed 003: on offline sites the danger is mixing
//! up environments).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// File in the store directory holding the id (one line, 32 hex digits).
pub const FILE: &str = "environment";

/// Who a node is, for binding bundles to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// 128 random bits as 32 lowercase hex digits, created once per store.
    pub id: String,
    /// The host the node runs on (`gethostname`), for people.
    pub host: String,
}

/// Reads the store's environment id, creating it first if the store has
/// none. Creation is atomic (written aside, then hard-linked into place),
/// so two processes racing agree on one id. Errors: reading or writing
/// `store/environment`.
pub fn ensure(store: &Path) -> io::Result<String> {
    let path = store.join(FILE);
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    let bytes: [u8; 16] = rand::random();
    let id = hex::encode(bytes);
    let mut temp = tempfile::NamedTempFile::new_in(store)?;
    writeln!(temp, "{id}")?;
    temp.as_file().sync_all()?;
    match fs::hard_link(temp.path(), &path) {
        Ok(()) => {
            fs::File::open(store)?.sync_all()?;
            Ok(id)
        }
        // Someone else created it first: theirs is the id.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| io::Error::other(format!("{} is empty", path.display())))
        }
        Err(e) => Err(e),
    }
}

fn read(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let id = text.trim();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Some(id.to_ascii_lowercase()))
            } else {
                Err(io::Error::other(format!(
                    "{} does not hold an environment id (32 hex digits)",
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// This machine's host name, or `unknown`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned()
}
