//! Free space on a node: how much an operation needs, measured before it
//! starts, and how a full disk is recognised when a write fails anyway.
//!
//! An operation checks up front that the file system holding the node's
//! store has what it will write (payload bytes rounded up to whole blocks)
//! plus [`MARGIN_BYTES`] for the database, its write-ahead log and new
//! directories. The rollout preflight asks the same question through
//! [`install_need`], so both refuse at the same fill level.

use std::io;
use std::path::Path;

/// Room kept free beyond the payload, in bytes: database pages, WAL frames
/// and directory blocks an operation and its undo may write.
pub const MARGIN_BYTES: u64 = 256 * 1024;

/// Free space for an unprivileged writer, and the block size, of the file
/// system holding `path`.
pub fn free(path: &Path) -> io::Result<Free> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string for the duration of the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = (st.f_frsize as u64).max(512);
    Ok(Free {
        bytes: (st.f_bavail as u64).saturating_mul(block),
        block,
    })
}

/// What [`free`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Free {
    /// Bytes an ordinary writer may still use.
    pub bytes: u64,
    /// The file system's allocation unit, in bytes.
    pub block: u64,
}

/// `size` bytes rounded up to whole blocks of `block` bytes.
pub fn rounded(size: u64, block: u64) -> u64 {
    let block = block.max(1);
    size.div_ceil(block).saturating_mul(block)
}

/// Bytes installing files of `sizes` needs on a file system with `block`
/// byte blocks: the extracted payload (kept in the save area until it is
/// renamed into place) plus the margin.
pub fn install_need(sizes: impl IntoIterator<Item = u64>, block: u64) -> u64 {
    sizes
        .into_iter()
        .map(|s| rounded(s, block))
        .fold(MARGIN_BYTES, u64::saturating_add)
}

/// Whether an I/O error means the disk (or the writer's quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Whether a database error means the disk is full.
pub fn db_is_full(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            f.code == rusqlite::ErrorCode::DiskFull
                || (f.code == rusqlite::ErrorCode::SystemIoFailure
                    && f.extended_code == rusqlite::ffi::SQLITE_IOERR_WRITE)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_whole_blocks() {
        assert_eq!(rounded(0, 4096), 0);
        assert_eq!(rounded(1, 4096), 4096);
        assert_eq!(rounded(4096, 4096), 4096);
        assert_eq!(rounded(4097, 4096), 8192);
        assert_eq!(install_need([1, 4097], 4096), MARGIN_BYTES + 12288);
    }

    #[test]
    fn free_space_of_a_directory_is_measured() {
        let tmp = tempfile::tempdir().unwrap();
        let f = free(tmp.path()).unwrap();
        assert!(f.block >= 512);
        assert!(free(&tmp.path().join("missing")).is_err());
    }
}
