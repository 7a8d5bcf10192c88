//! Numbered fault points for crash-safety tests.
//!
//! `PATCHDECK_FAULT=N` makes the process abort (as a kill would) the first
//! time it reaches point N; `PATCHDECK_FAIL=N` makes point N return an I/O
//! error instead, to test clean failure. Unset, a point costs one load.

use std::io;
use std::sync::OnceLock;

pub const CRASH_ENV: &str = "PATCHDECK_FAULT";
pub const FAIL_ENV: &str = "PATCHDECK_FAIL";

/// Every point: number, operation, and where it sits. Tests walk this list.
pub const POINTS: &[(u32, &str, &str)] = &[
    (1, "stage", "intent recorded, nothing copied"),
    (2, "stage", "patch copied to a temporary file"),
    (3, "stage", "patch renamed into staged/"),
    (10, "install", "intent recorded"),
    (11, "install", "an original saved"),
    (12, "install", "a new file extracted"),
    (13, "install", "all prepared, before the point of no return"),
    (14, "install", "past the point of no return"),
    (15, "install", "a file renamed into place"),
    (
        16,
        "install",
        "all files in place, before the database commit",
    ),
    (
        17,
        "install",
        "database committed, save area not yet tidied",
    ),
    (20, "rollback", "intent recorded"),
    (21, "rollback", "a restore prepared"),
    (22, "rollback", "past the point of no return"),
    (23, "rollback", "a file restored"),
    (
        24,
        "rollback",
        "all files restored, before the database commit",
    ),
    (
        25,
        "rollback",
        "database committed, saved files not yet dropped",
    ),
    (
        30,
        "commit",
        "database committed, saved files not yet dropped",
    ),
    (31, "commit", "one save area dropped"),
    (
        40,
        "remove",
        "database committed, staged file not yet deleted",
    ),
];

fn configured(var: &str) -> Option<u32> {
    std::env::var(var).ok().and_then(|v| v.trim().parse().ok())
}

fn crash_at() -> Option<u32> {
    static AT: OnceLock<Option<u32>> = OnceLock::new();
    *AT.get_or_init(|| configured(CRASH_ENV))
}

fn fail_at() -> Option<u32> {
    static AT: OnceLock<Option<u32>> = OnceLock::new();
    *AT.get_or_init(|| configured(FAIL_ENV))
}

/// Marks fault point `n`: aborts or fails there when a test asks for it.
pub fn point(n: u32) -> io::Result<()> {
    if crash_at() == Some(n) {
        std::process::abort();
    }
    if fail_at() == Some(n) {
        return Err(io::Error::other(format!(
            "injected failure at fault point {n}"
        )));
    }
    Ok(())
}

/// `PATCHDECK_NO_SPACE_CHECK=1` skips the up-front free-space check, so the
/// full-disk tests reach the writes that fail and prove their undo.
pub const NO_SPACE_CHECK_ENV: &str = "PATCHDECK_NO_SPACE_CHECK";

/// Whether the free-space check is switched off for a test.
pub fn space_check_disabled() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| std::env::var(NO_SPACE_CHECK_ENV).is_ok_and(|v| v == "1"))
}
