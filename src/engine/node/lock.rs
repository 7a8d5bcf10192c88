//! One mutating operation per node at a time: an exclusive `flock` on
//! `var/lib/patchdeck/lock`, whose content says who holds it. The kernel
//! drops the lock when its holder dies, so a dead holder never blocks.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct NodeLock {
    file: fs::File,
}

/// Who holds a lock, as written in the lock file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub op: String,
    pub patch: String,
    pub since: String,
    pub pid: u32,
}

pub enum Acquired {
    Held(NodeLock),
    Busy(Option<Holder>),
}

impl NodeLock {
    pub fn try_acquire(path: &Path, op: &str, patch: &str) -> std::io::Result<Acquired> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Ok(Acquired::Busy(serde_json::from_str(&text).ok()));
            }
            return Err(err);
        }
        let holder = Holder {
            op: op.into(),
            patch: patch.into(),
            since: super::store::now(),
            pid: std::process::id(),
        };
        // Who holds it is for messages only; the flock is the lock. On a
        // full disk the note cannot be written, and the operation still
        // runs (it checks its own space and says what it needs).
        let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| {
            file.write_all(
                serde_json::to_string(&holder)
                    .unwrap_or_default()
                    .as_bytes(),
            )
        });
        Ok(Acquired::Held(NodeLock { file }))
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        // SAFETY: as above; unlocking our own descriptor.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}
