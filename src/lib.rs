//! patchdeck: a patch console for operators, on an embedded engine.
//!
//! `engine` owns every rule and all state; `cli` and `tui` only send it
//! commands and render what it reports.

pub mod cli;
pub mod engine;
pub mod front;
pub mod tui;
