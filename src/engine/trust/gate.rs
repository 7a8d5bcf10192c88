//! The one decision "may this patch be used here": the lab's policy
//! (`[trust] require_signatures` in `config.toml`) over the lab's trusted
//! keys (`LAB/trust/`). Staging, replicating, installing, rollouts, offline
//! bundles and the console all ask [`Gate::may_use`]; listings and the
//! console's status line ask [`Gate::assess`], which caches verdicts.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use super::cache::{Cache, Stamps};
use super::keys::{self, KeyError, Keyring};
use super::verify::{self, Verdict};
use crate::engine::depot::Depot;
use crate::engine::lab::Lab;

/// The lab's trust policy and keys.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// Whether only signed patches may be used.
    pub required: bool,
    pub keyring: Keyring,
}

/// Why the policy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// `config.toml` is bad (the message names the file and line).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A patch the lab's policy refuses, with the signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error(
    "{patch} is not trusted: {why}; this lab requires patches signed by a trusted key \
     ([trust] require_signatures; see `patchdeck depot trust list`)"
)]
pub struct Refusal {
    pub patch: String,
    pub why: String,
    pub verdict: Verdict,
}

impl Gate {
    /// The lab's policy and trusted keys.
    pub fn for_lab(lab: &Lab) -> Result<Gate, GateError> {
        let config = lab.config().map_err(|e| GateError::Config(e.to_string()))?;
        Ok(Gate {
            required: config.trust.require_signatures,
            keyring: Keyring::load_dir(&lab.trust_dir())?,
        })
    }

    /// The verdict on depot patch `id`, verified now from its files (no
    /// cache). An id the depot does not hold is unsigned.
    pub fn verdict(&self, depot: &Depot, id: &str) -> Verdict {
        match depot.get(id) {
            Some(p) => verify::verify_file(&self.keyring, id, &depot.root.join(&p.file)),
            None => Verdict::Unsigned,
        }
    }

    /// May depot patch `id` be staged, replicated, bundled or installed?
    /// Without `require_signatures`, always (the verdict still says what
    /// the signature is); with it, only when signed by a trusted key for
    /// this id. Verifies from the files, never from the cache.
    pub fn may_use(&self, depot: &Depot, id: &str) -> Result<Verdict, Refusal> {
        let verdict = self.verdict(depot, id);
        self.judge(id, verdict)
    }

    /// Applies the policy to a verdict already made.
    pub fn judge(&self, id: &str, verdict: Verdict) -> Result<Verdict, Refusal> {
        if !self.required || verdict.is_signed() {
            return Ok(verdict);
        }
        let why = match &verdict {
            Verdict::Unsigned => format!("it has no signature ({id}.patch.minisig)"),
            Verdict::Untrusted { reason } => reason.to_string(),
            Verdict::Signed { .. } => String::new(),
        };
        Err(Refusal {
            patch: id.to_string(),
            why,
            verdict,
        })
    }

    /// [`Gate::may_use`] for each id in order; the first refusal.
    pub fn may_use_all<'a>(
        &self,
        depot: &Depot,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Refusal> {
        for id in ids {
            self.may_use(depot, id)?;
        }
        Ok(())
    }

    /// The verdict on every good patch of the depot, through the cache (a
    /// patch whose files and the key set are unchanged is not read again).
    pub fn assess(&self, depot: &Depot) -> Assessment {
        let stamp = |p: &Path| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.len(),
                    m.mtime()
                        .saturating_mul(1_000_000_000)
                        .saturating_add(m.mtime_nsec()),
                )
            })
        };
        let stamps: HashMap<String, Stamps> = depot
            .patches
            .par_iter()
            .filter_map(|p| {
                let file = depot.root.join(&p.file);
                Some((
                    p.file.clone(),
                    Stamps {
                        patch: stamp(&file)?,
                        sig: stamp(&keys::sig_path(&file)),
                    },
                ))
            })
            .collect();
        let digest = Cache::keys_digest(&self.keyring.fingerprint());
        let mut cache = Cache::open(&depot.root);
        let mut known = cache
            .as_ref()
            .map(|c| c.load(&digest, &stamps))
            .unwrap_or_default();
        let fresh: Vec<(String, Stamps, Verdict)> = depot
            .patches
            .par_iter()
            .filter(|p| !known.contains_key(&p.file))
            .filter_map(|p| {
                let s = *stamps.get(&p.file)?;
                let v = verify::verify_file(&self.keyring, &p.id, &depot.root.join(&p.file));
                Some((p.file.clone(), s, v))
            })
            .collect();
        if let Some(c) = cache.as_mut()
            && !fresh.is_empty()
        {
            c.store(&digest, &fresh);
        }
        known.extend(fresh.into_iter().map(|(f, _, v)| (f, v)));
        let verdicts = depot
            .patches
            .iter()
            .map(|p| {
                let v = known.remove(&p.file).unwrap_or(Verdict::Unsigned);
                (p.id.clone(), v)
            })
            .collect();
        Assessment {
            required: self.required,
            verdicts,
        }
    }
}

/// Every patch's verdict, for listings, `depot check` and the console.
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    pub required: bool,
    /// Patch id → verdict.
    pub verdicts: HashMap<String, Verdict>,
}

impl Assessment {
    pub fn get(&self, id: &str) -> Option<&Verdict> {
        self.verdicts.get(id)
    }

    /// (signed, unsigned, untrusted) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for v in self.verdicts.values() {
            match v {
                Verdict::Signed { .. } => c.0 += 1,
                Verdict::Unsigned => c.1 += 1,
                Verdict::Untrusted { .. } => c.2 += 1,
            }
        }
        c
    }

    /// Whether the policy lets patch `id` be used, by the cached verdict
    /// (for marking lists; the verbs decide with [`Gate::may_use`]).
    pub fn usable(&self, id: &str) -> bool {
        !self.required || self.verdicts.get(id).is_some_and(Verdict::is_signed)
    }

    /// A few words on the depot's signatures for a status line, `None`
    /// when every patch is signed by a trusted key: "depot unsigned",
    /// "3 untrusted", "12 unsigned, 3 untrusted".
    pub fn summary(&self) -> Option<String> {
        let (signed, unsigned, untrusted) = self.counts();
        let mut parts = Vec::new();
        if signed == 0 && untrusted == 0 && unsigned > 0 {
            parts.push("depot unsigned".to_string());
        } else if unsigned > 0 {
            parts.push(format!("{unsigned} unsigned"));
        }
        if untrusted > 0 {
            parts.push(format!("{untrusted} untrusted"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}
