//! Remembered signature verdicts, so a 100,000-patch depot still opens fast:
//! one table in the depot's cache index file, keyed by the patch file's and
//! its `.minisig`'s size and modification time and by the trusted key set.
//! Any change to either file reads and verifies again; each key set keeps
//! its own rows, so a listing by the lab's keys and one of a bare
//! `--depot` (no keys) do not evict each other.
//! Like the index, it is only a cache: any failure is ignored, and staging
//! and installing always verify from the files themselves.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, params};
use sha2::Digest;

use super::verify::Verdict;
use crate::engine::index;

/// A file's identity as the cache sees it: (size, mtime in ns); a missing
/// signature is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps {
    pub patch: (u64, i64),
    pub sig: Option<(u64, i64)>,
}

pub struct Cache {
    conn: Connection,
}

impl Cache {
    /// Opens the table in `depot`'s index file; `None` when read-only or unusable.
    pub fn open(depot: &Path) -> Option<Cache> {
        let conn = index::open_file(
            depot,
            "CREATE TABLE IF NOT EXISTS signature_verdict(
                 file TEXT NOT NULL, keys TEXT NOT NULL,
                 size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                 sig_size INTEGER, sig_mtime_ns INTEGER, verdict TEXT NOT NULL,
                 PRIMARY KEY(file, keys));",
        )?;
        Some(Cache { conn })
    }

    /// The short digest of a key set's fingerprint that rows carry.
    pub fn keys_digest(fingerprint: &str) -> String {
        hex::encode(&sha2::Sha256::digest(fingerprint.as_bytes())[..16])
    }

    /// Remembered verdicts whose stamps and key set still match.
    pub fn load(&self, keys: &str, current: &HashMap<String, Stamps>) -> HashMap<String, Verdict> {
        let mut out = HashMap::new();
        let Ok(mut stmt) = self.conn.prepare(
            "SELECT file, size, mtime_ns, sig_size, sig_mtime_ns, verdict FROM signature_verdict WHERE keys=?1",
        ) else {
            return out;
        };
        let rows = stmt.query_map([keys], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, String>(5)?,
            ))
        });
        let Ok(rows) = rows else { return out };
        for (file, size, mtime, sig_size, sig_mtime, verdict) in rows.flatten() {
            let stamps = Stamps {
                patch: (size as u64, mtime),
                sig: sig_size.zip(sig_mtime).map(|(s, m)| (s as u64, m)),
            };
            if current.get(&file) == Some(&stamps)
                && let Ok(v) = serde_json::from_str(&verdict)
            {
                out.insert(file, v);
            }
        }
        out
    }

    /// Records fresh verdicts in one transaction.
    pub fn store(&mut self, keys: &str, fresh: &[(String, Stamps, Verdict)]) {
        let Ok(tx) = self.conn.transaction() else {
            return;
        };
        {
            let Ok(mut put) = tx.prepare(
                "INSERT OR REPLACE INTO signature_verdict(file, size, mtime_ns, sig_size, sig_mtime_ns, keys, verdict) \
                 VALUES(?1,?2,?3,?4,?5,?6,?7)",
            ) else {
                return;
            };
            for (file, s, v) in fresh {
                let Ok(json) = serde_json::to_string(v) else {
                    continue;
                };
                let _ = put.execute(params![
                    file,
                    s.patch.0 as i64,
                    s.patch.1,
                    s.sig.map(|x| x.0 as i64),
                    s.sig.map(|x| x.1),
                    keys,
                    json
                ]);
            }
        }
        let _ = tx.commit();
    }
}
