//! The engine: everything patchdeck knows and decides, with no knowledge of
//! the terminal. The TUI and CLI are thin clients on top of it.

pub mod inventory;
pub mod manifest;
pub mod patch;
pub mod select;
pub mod version;
