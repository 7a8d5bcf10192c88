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

mod child;
mod client;
mod server;
#[cfg(test)]
mod tests;
mod wire;

pub use client::{Explain, Remote, Setup, node_protocol};
pub use server::serve;
pub use wire::{CHUNK, Hello, PROTOCOL, SOFTWARE};
