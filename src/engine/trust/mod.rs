//! Signed patches and bundles (docs/trust.md): keys and signatures in the
//! minisign format (`keys`), checking one signature (`verify`), a
//! directory of trusted keys (`store`), the cache of verdicts (`cache`),
//! and the lab's policy that every verb asks (`gate`).

pub mod cache;
pub mod gate;
pub mod keys;
pub mod store;
pub mod verify;

pub use gate::{Assessment, Gate, GateError, Refusal};
pub use keys::{KeyError, Keyring, PublicKey, SecretKey};
pub use verify::{Reason, Verdict};
